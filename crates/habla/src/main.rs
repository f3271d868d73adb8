//! The `habla` binary: one command line over habla's crates.

mod config;
mod resolve;
mod serve;
mod ua;
mod users;

use anyhow::Result;
use clap::{Parser, Subcommand};
use config::Config;
use std::net::SocketAddr;
use std::path::PathBuf;

/// mimalloc instead of the system allocator: a SIP server allocates and
/// frees many small, short-lived buffers on every thread, and glibc's
/// malloc spent ~13 % of a REGISTER's CPU (fastbin consolidation on
/// every larger allocation, arena locks) where mimalloc's per-thread
/// free lists spend a fraction of that. Built without transparent huge
/// pages (`no_thp`): with them, memory it returned and took again was
/// zeroed 2 MiB at a time (~15 % of the CPU at 20,000 REGISTER/s). Side
/// by side at 16,000 and 20,000 REGISTER/s: 34-46 µs per REGISTER with
/// it, 40-53 with glibc's (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "habla", version, about = "habla: a SIP server and user agent")]
struct Cli {
    /// More logging: one line per request (-v), debug details (-vv).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Log format: text or json.
    #[arg(long, global = true, value_name = "FORMAT")]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the SIP server: registrar, location service, authentication.
    Serve {
        /// Configuration file (see habla.toml in the repository).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Address to listen on, UDP and TCP (repeatable; replaces `listen`).
        #[arg(long = "listen", value_name = "ADDR")]
        listen: Vec<SocketAddr>,
        /// SQLite database file (default ./habla.db).
        #[arg(long, value_name = "PATH")]
        database: Option<PathBuf>,
        /// A domain this server is responsible for (repeatable).
        #[arg(long = "domain", value_name = "NAME")]
        domains: Vec<String>,
        /// Turn digest authentication off (labs only).
        #[arg(long)]
        no_auth: bool,
        /// Receive threads per UDP socket, with 4 shards each (0 = one per
        /// core; replaces `[limits] workers`).
        #[arg(long, value_name = "N")]
        workers: Option<usize>,
    },
    /// Manage subscribers (only password hashes are stored).
    User {
        #[command(subcommand)]
        action: users::UserCommand,
        /// SQLite database file (default ./habla.db).
        #[arg(long, value_name = "PATH", global = true)]
        database: Option<PathBuf>,
        /// Configuration file, for the database path.
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
    },
    /// Register an address and keep the registration fresh until Ctrl-C.
    Register(ua::RegisterArgs),
    /// Place a call: play, record, send DTMF, hang up after a duration.
    Call(ua::CallArgs),
    /// Register and answer calls (or reject them) until Ctrl-C.
    Answer(ua::AnswerArgs),
    /// Send a text MESSAGE.
    Message(ua::MessageArgs),
    /// Ask a server or UA for its capabilities (OPTIONS).
    Options(ua::OptionsArgs),
    /// Check a configuration file.
    Config {
        #[command(subcommand)]
        action: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check FILE and print the effective settings.
    Check {
        /// The configuration file.
        file: PathBuf,
    },
}

fn init_logging(verbose: u8, format: &str) {
    let default = match verbose {
        0 => "warn,habla=warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn load_config(path: Option<&PathBuf>) -> Result<Config> {
    match path {
        Some(p) => Config::load(p),
        None => Ok(Config::default()),
    }
}

/// Runs a user agent command on a small runtime and exits with its code.
fn run_ua<F>(verbose: u8, format: Option<String>, f: F) -> Result<()>
where
    F: std::future::Future<Output = Result<ua::Exit>>,
{
    init_logging(verbose, format.as_deref().unwrap_or("text"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let code = rt.block_on(f)?;
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code as i32);
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Register(a) => run_ua(cli.verbose, cli.log_format, ua::register(a)),
        Command::Call(a) => run_ua(cli.verbose, cli.log_format, ua::call(a)),
        Command::Answer(a) => run_ua(cli.verbose, cli.log_format, ua::answer(a)),
        Command::Message(a) => run_ua(cli.verbose, cli.log_format, ua::message(a)),
        Command::Options(a) => run_ua(cli.verbose, cli.log_format, ua::options(a)),
        Command::Serve {
            config,
            listen,
            database,
            domains,
            no_auth,
            workers,
        } => {
            let mut cfg = load_config(config.as_ref())?;
            if !listen.is_empty() {
                cfg.listen = listen;
            }
            if let Some(d) = database {
                cfg.database.path = d;
            }
            cfg.domains.extend(domains);
            if no_auth {
                cfg.auth.enabled = false;
            }
            if let Some(w) = workers {
                cfg.limits.workers = w;
            }
            if let Some(f) = cli.log_format {
                cfg.log.format = f;
            }
            cfg.check()?;
            init_logging(cli.verbose, &cfg.log.format);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(serve::serve(cfg))
        }
        Command::User {
            action,
            database,
            config,
        } => {
            let mut cfg = load_config(config.as_ref())?;
            if let Some(d) = database {
                cfg.database.path = d;
            }
            init_logging(cli.verbose, cli.log_format.as_deref().unwrap_or("text"));
            users::run(action, &cfg)
        }
        Command::Config {
            action: ConfigCommand::Check { file },
        } => {
            let cfg = Config::load(&file)?;
            println!("{}: valid", file.display());
            println!("  listen: {:?}", cfg.listen);
            println!("  domains: {:?}", cfg.domains);
            println!("  database: {}", cfg.database.path.display());
            println!(
                "  auth: {} (realm {})",
                if cfg.auth.enabled { "on" } else { "off" },
                cfg.realm()
            );
            Ok(())
        }
    }
}
