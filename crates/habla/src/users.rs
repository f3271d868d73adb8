//! `habla user add|list|passwd|remove`: subscribers with digest HA1 hashes
//! (MD5 and SHA-256) of `user:domain:password`; the password is never stored.

use crate::config::Config;
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use habla_auth::Ha1;
use habla_store::{StoreConfig, User, UserStore};
use std::io::{BufRead, IsTerminal};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user: `habla user add alice@example.org` (the realm is the domain).
    Add {
        /// user@domain
        address: String,
        /// The password (else read from stdin, or prompted on a terminal).
        #[arg(long)]
        password: Option<String>,
    },
    /// List users.
    List,
    /// Change a user's password.
    Passwd {
        /// user@domain
        address: String,
        /// The new password (else read from stdin, or prompted on a terminal).
        #[arg(long)]
        password: Option<String>,
    },
    /// Remove a user.
    Remove {
        /// user@domain
        address: String,
    },
}

fn split(address: &str) -> Result<(String, String)> {
    let a = address.trim_start_matches("sip:");
    match a.split_once('@') {
        Some((u, d)) if !u.is_empty() && !d.is_empty() => {
            Ok((u.to_string(), d.to_ascii_lowercase()))
        }
        _ => bail!("{address:?} is not user@domain (for example alice@example.org)"),
    }
}

fn password(given: Option<String>) -> Result<String> {
    let p = match given {
        Some(p) => p,
        None if std::io::stdin().is_terminal() => {
            rpassword::prompt_password("password: ").context("cannot read the password")?
        }
        None => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if p.is_empty() {
        bail!("the password is empty; pass --password or type one");
    }
    Ok(p)
}

pub fn run(cmd: UserCommand, cfg: &Config) -> Result<()> {
    let store = UserStore::open(&StoreConfig::new(&cfg.database.path))
        .with_context(|| format!("cannot open the database {}", cfg.database.path.display()))?;
    match cmd {
        UserCommand::Add {
            address,
            password: p,
        }
        | UserCommand::Passwd {
            address,
            password: p,
        } => {
            let (user, domain) = split(&address)?;
            let pw = password(p)?;
            // The realm is the domain: HA1 = H(user:domain:password).
            let ha1 = Ha1::compute(&user, &domain, &pw);
            store.put(&User {
                username: user.clone(),
                domain: domain.clone(),
                ha1_md5: ha1.md5_hex(),
                ha1_sha256: ha1.sha256_hex(),
            })?;
            println!("{user}@{domain} saved");
        }
        UserCommand::List => {
            for u in store.list()? {
                println!("{}@{}", u.username, u.domain);
            }
        }
        UserCommand::Remove { address } => {
            let (user, domain) = split(&address)?;
            if !store.remove(&user, &domain)? {
                bail!("no user {user}@{domain}");
            }
            println!("{user}@{domain} removed");
        }
    }
    Ok(())
}
