//! `habla.toml`: every key documented in the commented example at the
//! repository root (`habla.toml`); unknown keys are errors that name the key.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole configuration, with the defaults `habla serve` runs on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Addresses to listen on, UDP and TCP each.
    pub listen: Vec<SocketAddr>,
    /// Domains this server is responsible for (besides its own addresses
    /// and `localhost`).
    pub domains: Vec<String>,
    /// Other names of this server (for Route/Request-URI recognition).
    pub aliases: Vec<String>,
    pub database: DatabaseConfig,
    pub auth: AuthSection,
    pub registrar: RegistrarSection,
    pub timers: TimersSection,
    pub limits: LimitsSection,
    pub log: LogSection,
    /// RFC 3263 resolution of next hops (`[dns]`).
    pub dns: crate::resolve::DnsSection,
    /// Proxy routing (`[proxy]`): the outbound proxy.
    pub proxy: crate::resolve::ProxySection,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![
                "0.0.0.0:5060".parse().expect("literal"),
                "[::]:5060".parse().expect("literal"),
            ],
            domains: Vec::new(),
            aliases: Vec::new(),
            database: DatabaseConfig::default(),
            auth: AuthSection::default(),
            registrar: RegistrarSection::default(),
            timers: TimersSection::default(),
            limits: LimitsSection::default(),
            log: LogSection::default(),
            dns: Default::default(),
            proxy: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// SQLite file.
    pub path: PathBuf,
    /// `process` (survives kill -9) or `power-loss` (fsync per commit group).
    pub durability: String,
    /// Least time between two commits, in milliseconds (group commit).
    pub commit_window_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            path: PathBuf::from("habla.db"),
            durability: "process".into(),
            commit_window_ms: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    pub enabled: bool,
    /// Digest realm; default: the first domain, else the host name.
    pub realm: Option<String>,
    pub nonce_lifetime: u64,
    /// Methods challenged (REGISTER always is).
    pub challenge: Vec<String>,
    /// Digest algorithms offered, in order of preference (RFC 8760).
    pub algorithms: Vec<String>,
    /// CIDRs whose requests are not challenged (a carrier trunk, a media server).
    pub trusted_networks: Vec<String>,
    pub max_failures: u32,
    pub failure_window: u64,
    pub block_for: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            enabled: true,
            realm: None,
            nonce_lifetime: 300,
            challenge: [
                "REGISTER",
                "INVITE",
                "MESSAGE",
                "SUBSCRIBE",
                "PUBLISH",
                "REFER",
            ]
            .map(String::from)
            .to_vec(),
            algorithms: vec!["SHA-256".into(), "MD5".into()],
            trusted_networks: Vec::new(),
            max_failures: 10,
            failure_window: 60,
            block_for: 300,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrarSection {
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    pub max_bindings_per_aor: usize,
}

impl Default for RegistrarSection {
    fn default() -> Self {
        let d = habla_registrar::RegistrarConfig::default();
        RegistrarSection {
            min_expires: d.min_expires,
            max_expires: d.max_expires,
            default_expires: d.default_expires,
            max_bindings_per_aor: d.max_bindings_per_aor,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimersSection {
    pub t1_ms: u64,
    pub t2_ms: u64,
    pub t4_ms: u64,
}

impl Default for TimersSection {
    fn default() -> Self {
        TimersSection {
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    pub max_message_size: usize,
    pub max_headers: usize,
    pub max_connections: usize,
    pub max_transactions: usize,
    /// New requests that waited longer than this (ms) in the socket are
    /// answered 503 instead of handled.
    pub max_queue_delay_ms: u64,
    /// Receive threads per UDP socket (4 shards each); 0 = one per
    /// available core.
    pub workers: usize,
    /// SO_RCVBUF of each UDP socket, in octets.
    pub udp_receive_buffer: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_message_size: 65_535,
            max_headers: 256,
            max_connections: 10_000,
            max_transactions: 500_000,
            max_queue_delay_ms: 250,
            workers: 0,
            udp_receive_buffer: 4 << 20,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `text` or `json`.
    pub format: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: "text".into(),
        }
    }
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        let cfg: Config = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid habla configuration", path.display()))?;
        cfg.check()
            .with_context(|| format!("{} is not a valid habla configuration", path.display()))?;
        Ok(cfg)
    }

    /// Checks values serde cannot.
    pub fn check(&self) -> Result<()> {
        anyhow::ensure!(
            !self.listen.is_empty(),
            "`listen` must name at least one address"
        );
        anyhow::ensure!(
            matches!(self.database.durability.as_str(), "process" | "power-loss"),
            "`database.durability` must be \"process\" or \"power-loss\""
        );
        anyhow::ensure!(
            matches!(self.log.format.as_str(), "text" | "json"),
            "`log.format` must be \"text\" or \"json\""
        );
        anyhow::ensure!(
            self.registrar.min_expires <= self.registrar.max_expires,
            "`registrar.min_expires` must not exceed `registrar.max_expires`"
        );
        anyhow::ensure!(
            self.timers.t1_ms > 0 && self.timers.t2_ms >= self.timers.t1_ms,
            "`timers.t2_ms` must be at least `timers.t1_ms` (> 0)"
        );
        anyhow::ensure!(
            !self.auth.algorithms.is_empty(),
            "`auth.algorithms` must name at least one algorithm"
        );
        for a in &self.auth.algorithms {
            anyhow::ensure!(
                habla_auth::Algorithm::parse(a).is_some(),
                "`auth.algorithms`: {a:?} is not MD5, MD5-sess, SHA-256 or SHA-256-sess"
            );
        }
        self.proxy.outbound_uri()?;
        for net in &self.auth.trusted_networks {
            net.parse::<habla_auth::Cidr>()
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("`auth.trusted_networks`: {net:?} is not a CIDR"))?;
        }
        Ok(())
    }

    /// The digest realm.
    pub fn realm(&self) -> String {
        self.auth.realm.clone().unwrap_or_else(|| {
            self.domains.first().cloned().unwrap_or_else(|| {
                hostname::get()
                    .ok()
                    .and_then(|h| h.into_string().ok())
                    .unwrap_or_else(|| "habla".into())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_is_valid_and_complete() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../habla.toml");
        let cfg = Config::load(&path).unwrap();
        assert_eq!(cfg.listen.len(), 2);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = toml::from_str::<Config>("lisen = []")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lisen"), "{e}");
        let e = toml::from_str::<Config>("[auth]\nrelm = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("relm"), "{e}");
    }
}
