//! The RFC 3263 §4 state machine.
//!
//! ```text
//!              new(target)
//!                  │
//!   IP literal ────┼──────────────────────────────────────────────► Done
//!   explicit port ─┼─────────────────────────────► Address ──────► Done
//!   transport= ────┼──────────────► Srv ──────────► Address ──────► Done
//!   name alone ────┴─► Naptr ─────► Srv ──────────► Address ──────► Done
//!                    (no usable NAPTR:      (no SRV: the name,
//!                     SRV per supported      default port)
//!                     transport)
//! ```
//!
//! In each phase the queries are sent (possibly at once), and the phase
//! ends when every one has an answer (from the cache or the driver).

use crate::cache::Cache;
use crate::candidates::{Candidate, Candidates};
use crate::dns::{normalize_name, Answer, Naptr, Query, RecordType, Srv};
use crate::srv::{order_srv, SplitMix64};
use habla_message::Uri;
use habla_transaction::Transport;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// The next hop to locate (RFC 3263 §4): what a SIP or SIPS URI says about
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The `maddr` parameter if present, else the host: a name, an IPv4
    /// address or an IPv6 reference (brackets optional).
    pub host: String,
    /// The explicit port, if any.
    pub port: Option<u16>,
    /// The `transport` parameter, if any.
    pub transport: Option<Transport>,
    /// Whether the URI is `sips:` (TLS required).
    pub secure: bool,
}

impl Target {
    /// A `sip:` target naming only a host.
    pub fn name(host: &str) -> Target {
        Target {
            host: host.to_string(),
            port: None,
            transport: None,
            secure: false,
        }
    }

    /// The target of a SIP or SIPS URI (its `maddr` wins over its host).
    /// Other schemes and unknown `transport` values are refused.
    pub fn from_uri(uri: &Uri) -> Result<Target, LocateError> {
        let sip = uri.as_sip().ok_or(LocateError::InvalidTarget)?;
        let transport = match sip.transport() {
            Some(t) => Some(Transport::from_via(t).ok_or(LocateError::InvalidTarget)?),
            None => None,
        };
        Ok(Target {
            host: sip.maddr().unwrap_or(sip.host().as_str()).to_string(),
            port: sip.port(),
            transport,
            secure: sip.is_secure(),
        })
    }
}

/// Which address families to use, in which order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Families {
    /// IPv4 only (A queries).
    Ipv4,
    /// IPv6 only (AAAA queries).
    Ipv6,
    /// Both, IPv4 addresses first.
    #[default]
    Ipv4ThenIpv6,
    /// Both, IPv6 addresses first.
    Ipv6ThenIpv4,
}

impl Families {
    fn rtypes(self) -> &'static [RecordType] {
        match self {
            Families::Ipv4 => &[RecordType::A],
            Families::Ipv6 => &[RecordType::Aaaa],
            Families::Ipv4ThenIpv6 => &[RecordType::A, RecordType::Aaaa],
            Families::Ipv6ThenIpv4 => &[RecordType::Aaaa, RecordType::A],
        }
    }
}

/// Bounds on what hostile DNS answers can make a resolution do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// NAPTR services followed (default 8).
    pub max_services: usize,
    /// SRV records used per SRV name (default 16).
    pub max_srv_records: usize,
    /// Distinct hosts whose addresses are looked up (default 16).
    pub max_hosts: usize,
    /// Addresses used per host and family (default 8).
    pub max_addresses_per_host: usize,
    /// Candidates in the result (default 32).
    pub max_candidates: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_services: 8,
            max_srv_records: 16,
            max_hosts: 16,
            max_addresses_per_host: 8,
            max_candidates: 32,
        }
    }
}

/// What the client supports and prefers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Transports the client can use, most preferred first: this is the
    /// order of the SRV queries when a domain has no NAPTR records
    /// (default TLS, TCP, UDP: `_sips._tcp`, `_sip._tcp`, `_sip._udp`).
    pub transports: Vec<Transport>,
    /// Address families, in order.
    pub families: Families,
    /// Bounds.
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            transports: vec![Transport::Tls, Transport::Tcp, Transport::Udp],
            families: Families::default(),
            limits: Limits::default(),
        }
    }
}

/// Why there is nothing to send to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocateError {
    /// Not a SIP/SIPS URI, an empty host, or an unknown transport.
    InvalidTarget,
    /// The target asks for a transport the client does not support.
    UnsupportedTransport(Transport),
    /// A SIPS URI with `transport=udp` (RFC 3261 §26.2.2: SIPS needs TLS).
    SipsOverUdp,
    /// The DNS answered: no such records.
    NotFound,
    /// Some queries got no answer (timeout, SERVFAIL, no DNS), and the
    /// others gave nothing usable.
    DnsFailure,
}

impl std::error::Error for LocateError {}

impl std::fmt::Display for LocateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LocateError::InvalidTarget => f.write_str("not a locatable SIP or SIPS target"),
            LocateError::UnsupportedTransport(t) => write!(f, "transport {t:?} is not supported"),
            LocateError::SipsOverUdp => f.write_str("a SIPS URI cannot use UDP"),
            LocateError::NotFound => f.write_str("no DNS records for the target"),
            LocateError::DnsFailure => f.write_str("the DNS did not answer"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Naptr,
    Srv,
    Address,
    Done,
}

/// A (transport, host, port) to look addresses up for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    transport: Transport,
    host: String,
    port: u16,
}

/// One RFC 3263 resolution. See the crate documentation for the drain
/// contract: [`Resolution::poll_query`] until `None`, perform those queries,
/// [`Resolution::handle_answer`] each, until [`Resolution::poll_result`]
/// gives the result.
#[derive(Debug, Clone)]
pub struct Resolution {
    host: String,
    secure: bool,
    /// The transport for A/AAAA without SRV (§4.1/§4.2).
    default_transport: Transport,
    config: Config,
    rng: SplitMix64,
    phase: Phase,
    to_send: VecDeque<Query>,
    pending: HashSet<Query>,
    answers: HashMap<Query, Answer>,
    /// SRV phase: (transport, SRV name) in order.
    services: Vec<(Transport, String)>,
    /// Address phase: what to look up, in order.
    entries: Vec<Entry>,
    failed: bool,
    result: Option<Result<Candidates, LocateError>>,
}

impl Resolution {
    /// Starts locating `target`. `seed` drives the RFC 2782 weighted choice
    /// between SRV records of equal priority (the caller's randomness).
    pub fn new(target: Target, config: &Config, seed: u64) -> Resolution {
        let host = normalize_name(target.host.trim_start_matches('[').trim_end_matches(']'));
        let mut r = Resolution {
            host,
            secure: target.secure,
            default_transport: Transport::Udp,
            config: config.clone(),
            rng: SplitMix64::new(seed),
            phase: Phase::Done,
            to_send: VecDeque::new(),
            pending: HashSet::new(),
            answers: HashMap::new(),
            services: Vec::new(),
            entries: Vec::new(),
            failed: false,
            result: None,
        };
        if let Err(e) = r.start(&target) {
            r.finish(Err(e));
        }
        r
    }

    fn supports(&self, t: Transport) -> bool {
        self.config.transports.contains(&t)
    }

    fn start(&mut self, target: &Target) -> Result<(), LocateError> {
        if self.host.is_empty() {
            return Err(LocateError::InvalidTarget);
        }
        let explicit = match (target.transport, self.secure) {
            (Some(Transport::Udp), true) => return Err(LocateError::SipsOverUdp),
            (Some(Transport::Tcp), true) => Some(Transport::Tls),
            (t, _) => t,
        };
        self.default_transport = match explicit {
            Some(t) => t,
            None if self.secure => Transport::Tls,
            None => [Transport::Udp, Transport::Tcp]
                .into_iter()
                .find(|t| self.supports(*t))
                .unwrap_or(Transport::Udp),
        };
        let ip = self.host.parse::<IpAddr>().ok();
        // §4.1: an IP address or an explicit port fixes the transport
        // without NAPTR/SRV (the parameter, else UDP, TLS for SIPS).
        if (ip.is_some() || target.port.is_some() || explicit.is_some())
            && !self.supports(self.default_transport)
        {
            return Err(LocateError::UnsupportedTransport(self.default_transport));
        }
        if let Some(ip) = ip {
            let port = target
                .port
                .unwrap_or_else(|| default_port(self.default_transport));
            let c = Candidate {
                transport: self.default_transport,
                addr: SocketAddr::new(ip, port),
                host: self.host.clone(),
            };
            self.finish(Ok(Candidates::new(vec![c])));
            return Ok(());
        }
        if let Some(port) = target.port {
            // §4.2: a name with a port: A/AAAA only.
            let e = Entry {
                transport: self.default_transport,
                host: self.host.clone(),
                port,
            };
            self.enter_address(vec![e]);
        } else if let Some(t) = explicit {
            // §4.1: a transport parameter: SRV for that transport.
            let name =
                srv_name(t, self.secure, &self.host).ok_or(LocateError::UnsupportedTransport(t))?;
            self.enter_srv(vec![(t, name)]);
        } else {
            // §4.1: NAPTR first.
            self.phase = Phase::Naptr;
            self.to_send
                .push_back(Query::new(&self.host, RecordType::Naptr));
        }
        Ok(())
    }

    /// The next query to perform, or `None` when the resolution is waiting
    /// for answers or done. Answers still in `cache` at `now` are used
    /// without asking.
    pub fn poll_query(&mut self, now: Instant, cache: &mut Cache) -> Option<Query> {
        while let Some(q) = self.to_send.pop_front() {
            if let Some(a) = cache.get(now, &q) {
                let a = a.clone();
                self.answers.insert(q, a);
                self.advance_if_complete();
                continue;
            }
            self.pending.insert(q.clone());
            return Some(q);
        }
        None
    }

    /// The answer to a query this resolution asked for (others are
    /// ignored). It goes into `cache` for its TTL.
    pub fn handle_answer(
        &mut self,
        now: Instant,
        cache: &mut Cache,
        query: &Query,
        answer: Answer,
    ) {
        if !self.pending.remove(query) {
            return;
        }
        let answer = if answer.fits(query.rtype) {
            answer
        } else {
            Answer::NotFound { ttl: 0 }
        };
        if answer == Answer::Failed {
            self.failed = true;
        }
        cache.insert(now, query, &answer);
        self.answers.insert(query.clone(), answer);
        self.advance_if_complete();
    }

    /// The result, once: `Some` when the resolution is done (later calls
    /// return `None`).
    pub fn poll_result(&mut self) -> Option<Result<Candidates, LocateError>> {
        self.result.take()
    }

    /// Whether the resolution has finished (its result may have been taken).
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    fn finish(&mut self, result: Result<Candidates, LocateError>) {
        self.phase = Phase::Done;
        self.to_send.clear();
        self.pending.clear();
        self.result = Some(result);
    }

    fn advance_if_complete(&mut self) {
        if !self.to_send.is_empty() || !self.pending.is_empty() {
            return;
        }
        match self.phase {
            Phase::Naptr => self.after_naptr(),
            Phase::Srv => self.after_srv(),
            Phase::Address => self.after_address(),
            Phase::Done => {}
        }
    }

    fn after_naptr(&mut self) {
        let q = Query::new(&self.host, RecordType::Naptr);
        let mut records: Vec<Naptr> = match self.answers.get(&q) {
            Some(Answer::Naptr { records, .. }) => records.clone(),
            _ => Vec::new(),
        };
        // RFC 3403 order, then preference (stable: DNS order on ties).
        records.sort_by_key(|r| (r.order, r.preference));
        let mut services: Vec<(Transport, String)> = Vec::new();
        for r in &records {
            if services.len() >= self.config.limits.max_services {
                break;
            }
            let Some(t) = naptr_transport(r, self.secure) else {
                continue;
            };
            let name = normalize_name(&r.replacement);
            if !self.supports(t) || name.is_empty() || !r.regexp.is_empty() {
                continue;
            }
            if !services.iter().any(|s| s.0 == t && s.1 == name) {
                services.push((t, name));
            }
        }
        if services.is_empty() {
            // §4.1: no (usable) NAPTR: SRV for each supported transport.
            for t in self.config.transports.clone() {
                if let Some(name) = srv_name(t, self.secure, &self.host) {
                    services.push((t, name));
                }
            }
        }
        self.enter_srv(services);
    }

    fn enter_srv(&mut self, services: Vec<(Transport, String)>) {
        self.phase = Phase::Srv;
        for (_, name) in &services {
            let q = Query::new(name, RecordType::Srv);
            if !self.to_send.contains(&q) {
                self.to_send.push_back(q);
            }
        }
        self.services = services;
        self.advance_if_complete();
    }

    fn after_srv(&mut self) {
        let limits = self.config.limits;
        let mut entries: Vec<Entry> = Vec::new();
        let mut hosts: Vec<String> = Vec::new();
        let mut any_srv = false;
        for (t, name) in std::mem::take(&mut self.services) {
            let q = Query::new(&name, RecordType::Srv);
            let mut records: Vec<Srv> = match self.answers.get(&q) {
                Some(Answer::Srv { records, .. }) => records.clone(),
                _ => continue,
            };
            any_srv |= !records.is_empty();
            records.sort_by_key(|r| r.priority);
            records.truncate(limits.max_srv_records);
            let rng = &mut self.rng;
            order_srv(&mut records, &mut |n| rng.below_or_equal(n));
            for r in records {
                let host = normalize_name(&r.target);
                // "." (here: empty): the service is decidedly not available.
                if host.is_empty() {
                    continue;
                }
                if !hosts.contains(&host) {
                    if hosts.len() >= limits.max_hosts {
                        continue;
                    }
                    hosts.push(host.clone());
                }
                let e = Entry {
                    transport: t,
                    host,
                    port: r.port,
                };
                if !entries.contains(&e) {
                    entries.push(e);
                }
            }
        }
        if entries.is_empty() && any_srv {
            // Only targets of "." (RFC 2782): the service is not offered.
            return self.finish(Err(LocateError::NotFound));
        }
        if entries.is_empty() {
            // §4.2: no SRV records: A/AAAA of the name, default port.
            if !self.supports(self.default_transport) {
                let failed = self.failed;
                return self.finish(Err(if failed {
                    LocateError::DnsFailure
                } else {
                    LocateError::UnsupportedTransport(self.default_transport)
                }));
            }
            entries.push(Entry {
                transport: self.default_transport,
                host: self.host.clone(),
                port: default_port(self.default_transport),
            });
        }
        self.enter_address(entries);
    }

    fn enter_address(&mut self, entries: Vec<Entry>) {
        self.phase = Phase::Address;
        for e in &entries {
            if e.host.parse::<IpAddr>().is_ok() {
                continue;
            }
            for rtype in self.config.families.rtypes() {
                let q = Query::new(&e.host, *rtype);
                if !self.to_send.contains(&q) {
                    self.to_send.push_back(q);
                }
            }
        }
        self.entries = entries;
        self.advance_if_complete();
    }

    fn addresses(&self, host: &str) -> Vec<IpAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return vec![ip];
        }
        let max = self.config.limits.max_addresses_per_host;
        let mut out = Vec::new();
        for rtype in self.config.families.rtypes() {
            match self.answers.get(&Query::new(host, *rtype)) {
                Some(Answer::A { records, .. }) => {
                    out.extend(records.iter().take(max).map(|a| IpAddr::V4(*a)))
                }
                Some(Answer::Aaaa { records, .. }) => {
                    out.extend(records.iter().take(max).map(|a| IpAddr::V6(*a)))
                }
                _ => {}
            }
        }
        out
    }

    fn after_address(&mut self) {
        let mut list: Vec<Candidate> = Vec::new();
        'entries: for e in &self.entries {
            for ip in self.addresses(&e.host) {
                if list.len() >= self.config.limits.max_candidates {
                    break 'entries;
                }
                let c = Candidate {
                    transport: e.transport,
                    addr: SocketAddr::new(ip, e.port),
                    host: e.host.clone(),
                };
                if !list
                    .iter()
                    .any(|x| x.transport == c.transport && x.addr == c.addr)
                {
                    list.push(c);
                }
            }
        }
        let result = if !list.is_empty() {
            Ok(Candidates::new(list))
        } else if self.failed {
            Err(LocateError::DnsFailure)
        } else {
            Err(LocateError::NotFound)
        };
        self.finish(result);
    }
}

/// The default port of a transport (RFC 3261 §19.1.2).
pub(crate) fn default_port(t: Transport) -> u16 {
    match t {
        Transport::Tls | Transport::Wss => 5061,
        _ => 5060,
    }
}

/// The SRV name for a transport (RFC 3263 §4.1): `_sips._tcp` for TLS (and
/// anything over a SIPS URI), `_sip._tcp`, `_sip._udp`, `_sip._sctp`.
fn srv_name(t: Transport, secure: bool, host: &str) -> Option<String> {
    let prefix = match (t, secure) {
        (Transport::Tls, _) | (Transport::Tcp, true) => "_sips._tcp",
        (_, true) => return None,
        (Transport::Tcp, false) => "_sip._tcp",
        (Transport::Udp, false) => "_sip._udp",
        (Transport::Sctp, false) => "_sip._sctp",
        _ => return None,
    };
    Some(format!("{prefix}.{host}"))
}

/// The transport of a NAPTR record usable for SIP (flag `s`, a known
/// service; SIPS services only for a SIPS URI).
fn naptr_transport(r: &Naptr, secure: bool) -> Option<Transport> {
    if !r.flags.eq_ignore_ascii_case("s") {
        return None;
    }
    let s = r.services.to_ascii_uppercase();
    let t = match s.as_str() {
        "SIP+D2U" => Transport::Udp,
        "SIP+D2T" => Transport::Tcp,
        "SIP+D2S" => Transport::Sctp,
        "SIPS+D2T" => return Some(Transport::Tls),
        _ => return None,
    };
    (!secure).then_some(t)
}
