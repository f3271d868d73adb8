//! `habla serve`: the registrar (with the durable location service), digest
//! authentication and capabilities, on the habla-tokio endpoint.

use crate::config::Config;
use anyhow::{Context, Result};
use bytes::Bytes;
use habla_auth::{AuthConfig, AuthDecision, AuthState, DigestServer, Ha1, ThrottlePolicy};
use habla_message::{HeaderName, Limits, Message, Method, Uri};
use habla_proxy::{
    Action, Interface, LocalIdentity, LocationContact, LocationLookup, Lookup, NextHop, Proxy,
    ProxyConfig,
};
use habla_registrar::{
    address_of_record, process_register_as, LocationService, RegisterDecision, RegistrarConfig,
};
use habla_store::{Durability, SqliteLocationService, StoreConfig, UserStore};
use habla_tokio::{
    Destination, Element, Event, Flow, Io, Layout, ListenPoint, ShardHandle, TransactionKey,
    TransactionUser, TransportConfig,
};
use habla_transaction::Transport;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Instant;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const AGENT: &str = concat!("habla/", env!("CARGO_PKG_VERSION"));
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, INFO, UPDATE";

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// RFC 1123 date for the Date header (RFC 3261 §20.17); the text of the
/// current second is kept per thread (every REGISTER's 200 carries one).
pub fn http_date(secs: u64) -> std::rc::Rc<str> {
    use std::cell::RefCell;
    use std::rc::Rc;
    thread_local! {
        static LAST: RefCell<(u64, Option<Rc<str>>)> = const { RefCell::new((u64::MAX, None)) };
    }
    LAST.with(|l| {
        let mut l = l.borrow_mut();
        match &l.1 {
            Some(text) if l.0 == secs => text.clone(),
            _ => {
                let text: Rc<str> = format_http_date(secs).into();
                *l = (secs, Some(text.clone()));
                text
            }
        }
    })
}

fn format_http_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MO: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WD[days.rem_euclid(7) as usize],
        d,
        MO[(mo - 1) as usize],
        y,
        h,
        m,
        s
    )
}

/// `N` bytes from the OS generator, drawn from a per-thread pool refilled
/// 256 bytes at a time (one system call per ~30 tags instead of one per
/// tag: tags and nonces are made for every response).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use std::cell::RefCell;
    const POOL: usize = 256;
    thread_local! {
        static POOL_BYTES: RefCell<([u8; POOL], usize)> = const { RefCell::new(([0; POOL], POOL)) };
    }
    let mut b = [0u8; N];
    if N > POOL {
        // The OS generator only fails on exotic systems; a zero buffer then
        // still yields unique tags through the counter mixed in by callers.
        let _ = getrandom::fill(&mut b);
        return b;
    }
    POOL_BYTES.with(|p| {
        let mut p = p.borrow_mut();
        let (pool, used) = &mut *p;
        if *used + N > POOL {
            let _ = getrandom::fill(pool);
            *used = 0;
        }
        b.copy_from_slice(&pool[*used..*used + N]);
        // Handed out once: wipe what was taken.
        pool[*used..*used + N].fill(0);
        *used += N;
    });
    b
}

/// A tag (RFC 3261 §19.3: globally unique, cryptographically random):
/// 64 random bits in hex.
pub fn random_token() -> Token {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [0u8; 16];
    for (i, b) in random_bytes::<8>().into_iter().enumerate() {
        t[2 * i] = HEX[usize::from(b >> 4)];
        t[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    Token(t)
}

/// A [`random_token`]: sixteen hex digits, held without allocating.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token([u8; 16]);

impl std::ops::Deref for Token {
    type Target = str;
    fn deref(&self) -> &str {
        // Hex digits only: always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

/// The names this server answers to (RFC 3261 §16.4).
#[derive(Debug, Clone)]
pub struct LocalNames {
    names: Names,
}

/// The names, lower-cased: in a list when they are few (comparing a
/// handful of short strings costs less than hashing one: this runs on
/// every REGISTER and routed request), else in a set.
#[derive(Debug, Clone)]
enum Names {
    Few(Vec<String>),
    Many(HashSet<String>),
}

/// Up to this many names are compared one by one.
const FEW_LOCAL_NAMES: usize = 16;

impl LocalNames {
    fn new(cfg: &Config, bound: &[SocketAddr]) -> LocalNames {
        let mut domains: HashSet<String> = cfg
            .domains
            .iter()
            .chain(&cfg.aliases)
            .map(|d| d.to_ascii_lowercase())
            .collect();
        domains.insert("localhost".into());
        if let Some(h) = hostname::get().ok().and_then(|h| h.into_string().ok()) {
            domains.insert(h.to_ascii_lowercase());
        }
        for a in bound {
            let ips: Vec<IpAddr> = if a.ip().is_unspecified() {
                vec![
                    "127.0.0.1".parse().expect("literal"),
                    "::1".parse().expect("literal"),
                ]
            } else {
                vec![a.ip()]
            };
            for ip in ips {
                domains.insert(match ip {
                    IpAddr::V4(v4) => v4.to_string(),
                    IpAddr::V6(v6) => format!("[{v6}]"),
                });
            }
        }
        let names = if domains.len() <= FEW_LOCAL_NAMES {
            Names::Few(domains.into_iter().collect())
        } else {
            Names::Many(domains)
        };
        LocalNames { names }
    }

    /// Every name (lower-cased).
    fn iter(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match &self.names {
            Names::Few(v) => Box::new(v.iter().map(String::as_str)),
            Names::Many(s) => Box::new(s.iter().map(String::as_str)),
        }
    }

    /// Whether a host (as written in a URI) is one of ours.
    pub fn is_local(&self, host: &str) -> bool {
        // Host names compare without case; they are usually written in
        // lower case already (no copy then: this runs several times per
        // request).
        match &self.names {
            Names::Few(few) => few.iter().any(|d| d.eq_ignore_ascii_case(host)),
            Names::Many(set) if host.bytes().any(|b| b.is_ascii_uppercase()) => {
                set.contains(&host.to_ascii_lowercase())
            }
            Names::Many(set) => set.contains(host),
        }
    }
}

/// The proxy's view of the location service: bindings of local AORs, and
/// whether an address-of-record exists at all (404 vs 480).
struct Location {
    store: Arc<SqliteLocationService>,
    users: Arc<UserStore>,
    auth_enabled: bool,
}

impl LocationLookup for Location {
    fn lookup(&mut self, uri: &Uri) -> Lookup {
        let Some(aor) = address_of_record(uri) else {
            return Lookup::Unknown;
        };
        let bindings = self.store.lookup(&aor, unix_now());
        if bindings.is_empty() {
            let (user, domain) = aor
                .trim_start_matches("sips:")
                .trim_start_matches("sip:")
                .rsplit_once('@')
                .unwrap_or(("", ""));
            let known = !self.auth_enabled || self.users.get(user, domain).ok().flatten().is_some();
            return if known {
                Lookup::NotRegistered
            } else {
                Lookup::Unknown
            };
        }
        Lookup::Contacts(
            bindings
                .into_iter()
                .filter_map(|b| {
                    Some(LocationContact {
                        uri: Uri::parse(&b.contact).ok()?,
                        q: b.q,
                        path: b
                            .path
                            .iter()
                            .filter_map(|p| {
                                Uri::parse(p.trim().trim_start_matches('<').trim_end_matches('>'))
                                    .ok()
                            })
                            .collect(),
                        flow: reachable_over_flow(&b.contact, b.source.as_deref()),
                    })
                })
                .collect(),
        )
    }
}

/// Whether a contact should be reached over the flow it registered on
/// rather than at its own address: over a connection (TCP/TLS: the UA may
/// not accept new connections), with RFC 5626 `ob`, or behind NAT (the
/// contact names a private address other than the one the REGISTER came
/// from). Returns the flow token then.
fn reachable_over_flow(contact: &str, source: Option<&str>) -> Option<String> {
    let source = source?;
    if source.starts_with("tcp:") || source.starts_with("tls:") {
        return Some(source.to_string());
    }
    let uri = Uri::parse(contact).ok()?;
    let sip = uri.as_sip()?;
    if sip.params().contains("ob") {
        return Some(source.to_string());
    }
    let remote: SocketAddr = source.rsplit_once("->")?.1.parse().ok()?;
    let behind_nat = match sip.host().ip() {
        Some(IpAddr::V4(v4)) => {
            (v4.is_private() || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
                && IpAddr::V4(v4) != remote.ip()
        }
        Some(IpAddr::V6(v6)) => {
            (v6.segments()[0] & 0xfe00) == 0xfc00 && IpAddr::V6(v6) != remote.ip()
        }
        None => false,
    };
    behind_nat.then(|| source.to_string())
}

/// Most registered flows remembered (to reach a contact over the
/// connection it registered on); beyond, a stripe is forgotten at once and
/// the contact address is used.
const MAX_FLOWS: usize = 100_000;
const FLOW_STRIPES: usize = 64;

/// Registered flows by token, shared by every worker: a REGISTER handled
/// on one worker makes its flow reachable from the worker that forwards an
/// INVITE to it. Lock-striped: workers contend only on the same stripe,
/// and only for a map operation.
struct FlowMap {
    stripes: Box<[RwLock<HashMap<String, Flow>>]>,
}

impl FlowMap {
    fn new() -> FlowMap {
        FlowMap {
            stripes: (0..FLOW_STRIPES)
                .map(|_| RwLock::new(HashMap::new()))
                .collect(),
        }
    }

    fn stripe(&self, token: &str) -> &RwLock<HashMap<String, Flow>> {
        // Which stripe, not where in a table: a cheap unkeyed hash (the
        // map inside is keyed).
        let h = habla_message::Fnv1a::default()
            .write(token.as_bytes())
            .finish();
        &self.stripes[(h % FLOW_STRIPES as u64) as usize]
    }

    fn get(&self, token: &str) -> Option<Flow> {
        let s = self.stripe(token).read().unwrap_or_else(|e| e.into_inner());
        s.get(token).copied()
    }

    fn insert(&self, token: &str, flow: Flow) {
        let stripe = self.stripe(token);
        // A refresh from the same flow (the usual REGISTER) changes nothing:
        // a shared lock is enough to see that.
        if stripe.read().unwrap_or_else(|e| e.into_inner()).get(token) == Some(&flow) {
            return;
        }
        let mut s = stripe.write().unwrap_or_else(|e| e.into_inner());
        if s.len() >= MAX_FLOWS / FLOW_STRIPES {
            s.clear();
        }
        s.insert(token.to_owned(), flow);
    }
}

/// One shard's transaction user: its own proxy and user-store connection;
/// the location service, the digest state and the flow map are shared by
/// every shard. It runs under the shard's lock, on whichever thread brought
/// the message (see `habla_tokio::Element`), and never blocks: DNS lookups
/// and database commits finish elsewhere and come back through `me`.
struct Server {
    cfg: Arc<Config>,
    /// This shard, for work that finishes later (a DNS answer, a commit).
    me: ShardHandle<Server>,
    location: Arc<SqliteLocationService>,
    users: Arc<UserStore>,
    registrar: RegistrarConfig,
    local: LocalNames,
    auth: Arc<Realms>,
    proxy: Proxy<Location>,
    router: Router,
    /// Forwarded requests with failover addresses left, by client
    /// transaction; an entry lives until the first response that is not a
    /// 503 or the transaction's end (at most [`MAX_FAILOVERS`]).
    failover: HashMap<TransactionKey, Failover>,
    /// Where failed-over INVITEs went, so that their CANCEL follows them
    /// (RFC 3261 §9.1), until their transaction ends.
    failed_over_to: HashMap<TransactionKey, Destination>,
}

/// The digest engines, one per realm (the realm is the domain), created on
/// first use and shared by every worker. The map is read-locked to find a
/// realm; each realm's state is striped inside (`AuthState`).
struct Realms {
    secret: [u8; 32],
    cfg: crate::config::AuthSection,
    map: std::sync::RwLock<HashMap<String, Arc<(DigestServer, AuthState)>>>,
}

impl Realms {
    fn get(&self, realm: &str) -> Arc<(DigestServer, AuthState)> {
        if let Some(r) = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(realm)
        {
            return r.clone();
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        map.entry(realm.to_string())
            .or_insert_with(|| {
                let cfg = &self.cfg;
                let mut a = AuthConfig::new(realm);
                a.nonce_lifetime = cfg.nonce_lifetime;
                a.challenge_methods = cfg.challenge.clone();
                a.algorithms = cfg
                    .algorithms
                    .iter()
                    .filter_map(|x| habla_auth::Algorithm::parse(x))
                    .collect();
                if let Ok(t) = habla_auth::TrustedNetworks::parse(&cfg.trusted_networks) {
                    a.trusted_networks = t;
                }
                a.throttle = ThrottlePolicy {
                    max_failures: cfg.max_failures,
                    window: cfg.failure_window,
                    block_for: cfg.block_for,
                };
                let server =
                    DigestServer::new(a, &self.secret).expect("a 32-byte secret is accepted");
                let state = server.new_state();
                Arc::new((server, state))
            })
            .clone()
    }
}

/// Where next hops are. Apart from [`Server`] because it is used across
/// awaits (name lookups) and must be `Sync`, which a proxy holding parsed
/// messages is not.
#[derive(Clone)]
struct Router {
    flows: Arc<FlowMap>,
    /// RFC 3263 resolution of next hops named by host name (shared cache).
    resolver: crate::resolve::Resolver,
}

pub async fn serve(cfg: Config) -> Result<()> {
    let store_cfg = StoreConfig {
        durability: if cfg.database.durability == "power-loss" {
            Durability::PowerLoss
        } else {
            Durability::Process
        },
        commit_window: Duration::from_millis(cfg.database.commit_window_ms),
        // The 200s of one commit group go out together (one sendmmsg).
        acknowledge: Some(Arc::new(|run: &mut dyn FnMut()| habla_tokio::batch(run))),
        ..StoreConfig::new(&cfg.database.path)
    };
    let location = Arc::new(
        SqliteLocationService::open(&store_cfg, unix_now()).with_context(|| {
            format!(
                "cannot open the database {}; pass --database with a writable path",
                cfg.database.path.display()
            )
        })?,
    );
    let users = Arc::new(UserStore::open(&store_cfg)?);
    if !cfg.auth.enabled {
        tracing::warn!("authentication is OFF (--no-auth): anyone can register any address and call through this server");
    } else if users.list()?.is_empty() {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "habla: authentication is on and there are no users yet; add one with\n  habla user add alice@{} --database {}",
            cfg.domains.first().map(String::as_str).unwrap_or("localhost"),
            cfg.database.path.display()
        );
    }

    let mut listen = Vec::new();
    for a in &cfg.listen {
        listen.push(ListenPoint::new(Transport::Udp, *a));
        listen.push(ListenPoint::new(Transport::Tcp, *a));
    }
    let mut tcfg = TransportConfig::udp_and_tcp(cfg.listen[0]);
    tcfg.listen = listen;
    tcfg.limits = Limits {
        max_message_size: cfg.limits.max_message_size,
        max_headers: cfg.limits.max_headers,
        ..Limits::default()
    };
    tcfg.max_connections = cfg.limits.max_connections;
    tcfg.max_queue_delay = Duration::from_millis(cfg.limits.max_queue_delay_ms);
    tcfg.udp_receive_buffer = cfg.limits.udp_receive_buffer;
    tcfg.agent = AGENT.into();
    let mut xcfg = habla_transaction::Config::default();
    xcfg.timers.t1 = Duration::from_millis(cfg.timers.t1_ms);
    xcfg.timers.t2 = Duration::from_millis(cfg.timers.t2_ms);
    xcfg.timers.t4 = Duration::from_millis(cfg.timers.t4_ms);
    xcfg.max_transactions = cfg.limits.max_transactions;
    let layout = Layout::per_core(cfg.limits.workers);
    // One seed for every shard's proxy: the loop-detecting part of the
    // branches (RFC 3261 §16.6 step 8) must be the same whichever shard
    // sees a looped request again; the branches stay unique because each
    // shard marks its own.
    let seed = u64::from_le_bytes(random_bytes());
    // One digest engine and one replay/throttle state per realm, shared by
    // every shard: a nonce issued by one verifies on any other, a replay
    // is caught whichever shard sees it, failures count once per source.
    let realms = Arc::new(Realms {
        secret: random_bytes(),
        cfg: cfg.auth.clone(),
        map: std::sync::RwLock::new(HashMap::new()),
    });
    let flows = Arc::new(FlowMap::new());
    let resolver = crate::resolve::Resolver::new(&cfg.dns);
    let registrar = RegistrarConfig {
        min_expires: cfg.registrar.min_expires,
        max_expires: cfg.registrar.max_expires,
        default_expires: cfg.registrar.default_expires,
        max_bindings_per_aor: cfg.registrar.max_bindings_per_aor,
    };
    // Each shard its own SQLite connection for subscriber lookups (WAL
    // readers do not block each other).
    let mut user_stores = vec![users.clone()];
    for _ in 1..layout.shards {
        user_stores.push(Arc::new(users.another_connection(&store_cfg)?));
    }
    let outbound_proxy = cfg.proxy.outbound_uri()?;
    let cfg = Arc::new(cfg);
    // What every shard knows of this server: its names (RFC 3261 §16.4)
    // and the proxy's configuration, made from the bound listening points
    // when the first shard is made.
    let mut identity: Option<(LocalNames, ProxyConfig)> = None;
    let mut make = |me: ShardHandle<Server>, points: &[ListenPoint]| {
        let (local, proxy_cfg) = identity
            .get_or_insert_with(|| {
                let bound: Vec<SocketAddr> = points.iter().map(|p| p.addr).collect();
                let local = LocalNames::new(&cfg, &bound);
                let proxy_cfg = ProxyConfig {
                    identity: LocalIdentity {
                        interfaces: points
                            .iter()
                            .map(|p| Interface::new(p.transport, p.addr))
                            .collect(),
                        aliases: cfg.aliases.clone(),
                        domains: local.iter().map(str::to_owned).collect(),
                    },
                    server: Some(AGENT.into()),
                    allow: ALLOW.into(),
                    outbound_proxy: outbound_proxy.clone(),
                    ..ProxyConfig::default()
                };
                (local, proxy_cfg)
            })
            .clone();
        let users = user_stores[me.index()].clone();
        Server {
            proxy: Proxy::new(
                proxy_cfg,
                Location {
                    store: location.clone(),
                    users: users.clone(),
                    auth_enabled: cfg.auth.enabled,
                },
                seed,
            ),
            router: Router {
                flows: flows.clone(),
                resolver: resolver.clone(),
            },
            me,
            location: location.clone(),
            users,
            registrar: registrar.clone(),
            local,
            auth: realms.clone(),
            cfg: cfg.clone(),
            failover: HashMap::new(),
            failed_over_to: HashMap::new(),
        }
    };
    let element = match Element::bind(tcfg.clone(), xcfg, layout, &mut make).await {
        Ok(e) => e,
        // IPv6 may be absent: retry with the IPv4 addresses only.
        Err(e)
            if cfg.listen.iter().any(|a| a.is_ipv6()) && cfg.listen.iter().any(|a| a.is_ipv4()) =>
        {
            tracing::warn!("not listening on IPv6: {e}");
            tcfg.listen.retain(|p| p.addr.is_ipv4());
            Element::bind(tcfg, xcfg, layout, &mut make)
                .await
                .context("cannot listen; pass --listen with a free address")?
        }
        Err(e) => return Err(e).context("cannot listen; pass --listen with a free address"),
    };
    for p in element.listening_points() {
        // Tests read these lines to learn the ports when they bind port 0.
        // A closed stdout must not stop the server: ignore write errors.
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "listening on {}:{}",
            transport_name(p.transport),
            p.addr
        );
        let _ = out.flush();
    }
    tracing::info!(
        "{} receive thread(s) per socket, {} shards",
        layout.threads,
        element.len()
    );
    let mut term = terminate_signal();
    loop {
        let next_expiry = location
            .next_expiry()
            .map(|t| t.saturating_sub(unix_now()))
            .unwrap_or(60)
            .clamp(1, 60);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(next_expiry)) => {
                let now = unix_now();
                let n = location.expire(now);
                if n > 0 {
                    tracing::debug!("{n} bindings expired");
                    let purging = location.clone();
                    tokio::task::spawn_blocking(move || purging.purge(now));
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    tracing::info!("stopping: answering the registrations being written");
    // Every change queued so far is committed and answered (bounded), then
    // the sockets close.
    let flushing = location.clone();
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::task::spawn_blocking(move || flushing.flush()),
    )
    .await;
    element.shutdown().await;
    location.close();
    Ok(())
}

impl Router {
    /// Where a next hop is, when that is known without waiting: the
    /// registered flow, an IP literal, or RFC 3263 answers all in the
    /// cache. The first destination is tried first; the others (RFC 3263
    /// only) are for failover (§4.3). Empty: nowhere. `None`: DNS queries
    /// must go out ([`Router::destinations`]).
    fn destinations_now(&self, hop: &NextHop) -> Option<Vec<Destination>> {
        if let Some(f) = hop.flow.as_ref().and_then(|f| self.flows.get(f)) {
            return Some(vec![Destination::Flow(f)]);
        }
        let port = hop.port.unwrap_or(if hop.transport == Transport::Tls {
            5061
        } else {
            5060
        });
        let host = hop.host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(vec![Destination::Address(
                hop.transport,
                SocketAddr::new(ip, port),
            )]);
        }
        self.resolver.cached_destinations(hop)
    }

    /// [`Router::destinations_now`], waiting for DNS when needed (RFC 3263:
    /// NAPTR, SRV, A/AAAA, `resolve.rs`).
    async fn destinations(&self, hop: &NextHop) -> Vec<Destination> {
        match self.destinations_now(hop) {
            Some(d) => d,
            None => self.resolver.destinations(hop).await,
        }
    }
}

/// Most forwarded requests one shard keeps for failover (and most
/// failed-over INVITEs it remembers for their CANCEL).
const MAX_FAILOVERS: usize = 10_000;

/// A forwarded request that still has addresses to fail over to
/// (RFC 3263 §4.3), by the client transaction that carries it now.
struct Failover {
    /// The request as forwarded (before the driver's shard mark).
    request: Message,
    /// Where it went.
    sent_to: Destination,
    /// The addresses left, in order.
    rest: Vec<Destination>,
    /// Failovers so far (makes each new branch ID distinct).
    attempt: u32,
}

/// The same request with a new branch ID in its top Via (our own, with a
/// `branch=` parameter we wrote): RFC 3263 §4.3 wants a new transaction.
fn with_new_branch(request: &Message, attempt: u32) -> Option<Message> {
    let via = request.top_via().ok()?;
    let branch = via.branch()?;
    let value = via.as_str().replacen(
        &format!("branch={branch}"),
        &format!("branch={branch}.{attempt}"),
        1,
    );
    let mut m = request.clone();
    m.remove_first_value(HeaderName::Via)?;
    m.push_header(HeaderName::Via, &value).ok()?;
    Some(m)
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
        Transport::Sctp => "sctp",
        Transport::Ws => "ws",
        Transport::Wss => "wss",
        _ => "other",
    }
}

fn interface_of(flow: &Flow) -> Interface {
    Interface::new(flow.transport, flow.local)
}

fn transport_of(token: &str) -> Transport {
    match token.to_ascii_uppercase().as_str() {
        "TCP" => Transport::Tcp,
        "TLS" => Transport::Tls,
        "SCTP" => Transport::Sctp,
        "WS" => Transport::Ws,
        "WSS" => Transport::Wss,
        _ => Transport::Udp,
    }
}

struct Terminate(Option<tokio::signal::unix::Signal>);

impl Terminate {
    async fn recv(&mut self) {
        match &mut self.0 {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
}

fn terminate_signal() -> Terminate {
    Terminate(tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok())
}

/// Sends a response built by this server (as bytes, from a
/// `ResponseBuilder`) in server transaction `key`, without parsing it again.
fn reply(io: &mut Io<'_>, key: TransactionKey, bytes: Bytes) {
    let Some(code) = status_of(&bytes) else {
        return;
    };
    if let Err(e) = io.send_response_bytes(key, code, bytes) {
        tracing::debug!("response not sent: {e}");
    }
}

/// The answer to a REGISTER whose change could not be made durable, in
/// place of the 200 `made` for it (only a change is written, so there is
/// one): not acknowledged, 503 with Retry-After (too many changes waiting
/// under overload, or the disk failed) rather than a 200 that could be
/// lost. Built from the 200, which holds the request's Via (with
/// `received`/`rport`), From, To (with its tag), Call-ID and CSeq: the
/// request itself is not kept for this rare case.
fn not_stored(made: &Bytes, e: &habla_registrar::LocationError) -> Option<Bytes> {
    let ok = Message::parse_lazy(made.clone(), &Limits::default()).ok()?;
    // Per request, so not above debug: under overload every REGISTER
    // refused would be a line, and a failed commit is logged once by the
    // store's committer.
    tracing::debug!("REGISTER not stored, answered 503: {e}");
    ok.response(503)
        .header("Retry-After", "5")
        .header("Server", AGENT)
        .to_bytes()
        .ok()
}

/// The status code of a response this server built.
fn status_of(bytes: &[u8]) -> Option<u16> {
    // "SIP/2.0 200 OK": the builder writes the status line.
    let code = bytes
        .get(8..11)
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| d.parse::<u16>().ok())
        .filter(|_| bytes.starts_with(b"SIP/2.0 "));
    if code.is_none() {
        tracing::warn!("built a response without a status line");
    }
    code
}

/// A REGISTER's answer: made while the decision is taken, sent once the
/// change is durable (see `on_register`). One allocation per REGISTER.
#[derive(Default)]
struct Answer {
    made: std::sync::OnceLock<Bytes>,
    pending: std::sync::Mutex<Pending>,
}

/// A REGISTER's answer while `register` runs (see `on_register`).
struct Pending {
    /// `register` has not returned: the shard is locked by its caller.
    registering: bool,
    answer: Option<Bytes>,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            registering: true,
            answer: None,
        }
    }
}

/// What the proxy wants sent that waits for a DNS answer.
enum Deferred {
    Forward {
        branch: habla_proxy::BranchId,
        request: Message,
    },
    Cancel {
        request: Message,
    },
    Stateless {
        request: Message,
    },
}

impl TransactionUser for Server {
    fn on_event(&mut self, ev: Event<Flow>, io: &mut Io<'_>) {
        let now = Instant::now();
        match ev {
            Event::Request {
                key,
                request,
                source,
                ..
            } => self.on_request(key, request, source.addr, io),
            Event::Ack {
                key: None,
                request,
                source,
            } => {
                let inbound = interface_of(&source.addr);
                if let Err(e) = self.proxy.handle_ack(now, request, inbound) {
                    tracing::debug!("ACK not forwarded: {e}");
                }
                self.drain(io);
            }
            Event::Response { key, response, .. } => {
                // RFC 3263 §4.3: a 503 means "try the next address".
                if response.status() == Some(503) && self.fail_over(key, io) {
                    return;
                }
                if !self.failover.is_empty() {
                    self.failover.remove(&key);
                }
                if let Err(e) = self.proxy.handle_response(now, key, response) {
                    tracing::debug!("response not for the proxy: {e}");
                }
                self.drain(io);
            }
            Event::Timeout { key, .. } => {
                if self.fail_over(key, io) {
                    return;
                }
                self.proxy.handle_client_timeout(now, key);
                self.drain(io);
            }
            Event::TransportError { key, .. } => {
                if self.fail_over(key, io) {
                    return;
                }
                self.proxy.handle_transport_error(now, key);
                self.drain(io);
            }
            Event::Terminated { key } => {
                if !self.failover.is_empty() {
                    self.failover.remove(&key);
                }
                if !self.failed_over_to.is_empty() {
                    self.failed_over_to.remove(&key);
                }
            }
            Event::StrayResponse { response, .. } => {
                self.proxy.handle_stray_response(now, response);
                self.drain(io);
            }
            other => tracing::trace!("event {other:?}"),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.proxy.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant, io: &mut Io<'_>) {
        self.proxy.handle_timeout(now);
        self.drain(io);
    }
}

impl Server {
    /// Keeps a forwarded request for failover, unless this shard already
    /// keeps [`MAX_FAILOVERS`] (entries leave with the transaction's first
    /// response or its end; under overload those events may be dropped, so
    /// the tables are capped rather than trusted to drain).
    fn remember_failover(&mut self, key: TransactionKey, f: Failover) {
        if self.failover.len() < MAX_FAILOVERS {
            self.failover.insert(key, f);
        }
    }

    /// RFC 3263 §4.3: client transaction `key` failed (transport error,
    /// timeout or 503); if its request has addresses left, sends it again,
    /// with a new branch ID, to the next one, and the proxy's branch follows
    /// the new transaction. Whether it did.
    fn fail_over(&mut self, key: TransactionKey, io: &mut Io<'_>) -> bool {
        let Some(mut f) = self.failover.remove(&key) else {
            return false;
        };
        while !f.rest.is_empty() {
            let dest = f.rest.remove(0);
            f.attempt += 1;
            let Some(request) = with_new_branch(&f.request, f.attempt) else {
                return false;
            };
            tracing::info!("failing over from {:?} to {dest:?}", f.sent_to);
            let Ok(new_key) = io.send_request(request.clone(), dest) else {
                continue;
            };
            let invite = request.method() == Some(&Method::Invite);
            if let Err(e) = self.proxy.handle_failover(key, new_key, request.clone()) {
                tracing::debug!("failover: {e}");
                return false;
            }
            self.failed_over_to.remove(&key);
            if invite && self.failed_over_to.len() < MAX_FAILOVERS {
                self.failed_over_to.insert(new_key, dest);
            }
            if !f.rest.is_empty() {
                f.request = request;
                f.sent_to = dest;
                self.remember_failover(new_key, f);
            }
            return true;
        }
        false
    }

    fn on_request(&mut self, key: TransactionKey, req: Message, flow: Flow, io: &mut Io<'_>) {
        let Some(method) = req.method().cloned() else {
            return;
        };
        tracing::info!(
            "{} {} from {flow}",
            method,
            req.request_uri_str().unwrap_or("")
        );
        match method {
            Method::Ack => {}
            Method::Register if !self.forward_register(&req) => {
                self.on_register(key, &req, &flow, io)
            }
            _ => {
                if !self.authorized(key, &req, &flow, io) {
                    return;
                }
                let inbound = interface_of(&flow);
                if let Err(e) = self.proxy.handle_request(Instant::now(), key, req, inbound) {
                    tracing::debug!("proxy refused: {e}");
                }
                self.drain(io);
            }
        }
    }

    /// A REGISTER for a domain that is not ours is proxied (RFC 3261 §10.3
    /// step 1).
    fn forward_register(&self, req: &Message) -> bool {
        match req.request_uri() {
            Ok(Uri::Sip(u)) => !self.local.is_local(u.host().as_str()),
            _ => false,
        }
    }

    /// Authenticates requests from this server's own users (407 with a
    /// challenge, RFC 3261 §22.3); requests from other domains are not
    /// challenged (nobody here knows their passwords).
    fn authorized(
        &mut self,
        key: TransactionKey,
        req: &Message,
        flow: &Flow,
        io: &mut Io<'_>,
    ) -> bool {
        if !self.cfg.auth.enabled || matches!(req.method(), Some(Method::Cancel | Method::Ack)) {
            return true;
        }
        let from_domain = match req.from().ok().map(|f| f.uri().clone()) {
            Some(Uri::Sip(u)) => u.host().as_str().to_ascii_lowercase(),
            _ => return true,
        };
        if !self.local.is_local(&from_domain) {
            return true;
        }
        // In-dialog requests (To tag) follow a call already authorised.
        if req.to().is_ok_and(|t| t.tag().is_some()) {
            return true;
        }
        let now = unix_now();
        let users = self.users.clone();
        let realm = self.auth_for(&from_domain);
        let (server, state) = (&realm.0, &realm.1);
        let d = server.authenticate(state, req, flow.remote.ip(), now, |username| {
            let u = users.get(username, &from_domain).ok()??;
            Ha1::from_hex(&u.ha1_md5, &u.ha1_sha256)
        });
        if matches!(
            d,
            AuthDecision::Authenticated { .. } | AuthDecision::Trusted | AuthDecision::NotRequired
        ) {
            return true;
        }
        if let Some(b) = server.respond(req, &d, now, &random_bytes()) {
            if let Ok(bytes) = b
                .to_tag(req, &random_token())
                .header("Server", AGENT)
                .to_bytes()
            {
                reply(io, key, bytes);
            }
        }
        false
    }

    /// Carries out what the proxy decided. What needs a DNS answer first
    /// is sent once it comes (from a task, back through this shard).
    fn drain(&mut self, io: &mut Io<'_>) {
        while let Some(action) = self.proxy.poll_action() {
            match action {
                Action::SendResponse {
                    server_key,
                    response,
                } => {
                    if let Err(e) = io.send_response(server_key, response) {
                        tracing::debug!("response dropped: {e}");
                    }
                }
                Action::Forward {
                    branch,
                    request,
                    next_hop,
                } => match self.router.destinations_now(&next_hop) {
                    Some(dests) => self.forward(branch, request, &next_hop, dests, io),
                    None => self.after_dns(next_hop, Deferred::Forward { branch, request }),
                },
                Action::Cancel {
                    request,
                    next_hop,
                    client_key,
                    ..
                } => {
                    // To where the INVITE went (RFC 3261 §9.1).
                    let dest = match client_key.and_then(|k| self.failed_over_to.get(&k)) {
                        Some(d) => Some(vec![*d]),
                        None => self.router.destinations_now(&next_hop),
                    };
                    match dest {
                        Some(dests) => {
                            if let Some(dest) = dests.into_iter().next() {
                                let _ = io.send_request(request, dest);
                            }
                        }
                        None => self.after_dns(next_hop, Deferred::Cancel { request }),
                    }
                }
                Action::ForwardStateless { request, next_hop } => {
                    match self.router.destinations_now(&next_hop) {
                        Some(dests) => {
                            if let Some(dest) = dests.into_iter().next() {
                                let _ = io.send_stateless(request, dest);
                            }
                        }
                        None => self.after_dns(next_hop, Deferred::Stateless { request }),
                    }
                }
                Action::ForwardResponseStateless { response } => {
                    let Ok(via) = response.top_via() else {
                        continue;
                    };
                    let transport = transport_of(via.transport());
                    let fallback = SocketAddr::from(([127, 0, 0, 1], 5060));
                    let addr = habla_tokio::via::response_destination(via, fallback);
                    let _ = io.send_stateless(response, Destination::Address(transport, addr));
                }
                _ => {}
            }
        }
    }

    /// Resolves `hop` in a task (RFC 3263 queries), then carries out what
    /// waited for it back on this shard.
    fn after_dns(&self, hop: NextHop, what: Deferred) {
        let router = self.router.clone();
        let me = self.me.clone();
        tokio::spawn(async move {
            let dests = router.destinations(&hop).await;
            me.with(move |s, io| {
                match what {
                    Deferred::Forward { branch, request } => {
                        s.forward(branch, request, &hop, dests, io)
                    }
                    Deferred::Cancel { request } => {
                        if let Some(dest) = dests.into_iter().next() {
                            let _ = io.send_request(request, dest);
                        }
                    }
                    Deferred::Stateless { request } => {
                        if let Some(dest) = dests.into_iter().next() {
                            let _ = io.send_stateless(request, dest);
                        }
                    }
                }
                s.drain(io);
            });
        });
    }

    /// Sends a forwarded request to the first of `dests` that takes it (a
    /// refused one is a transport error: RFC 3263 §4.3), keeping it for
    /// failover while other addresses are left, and tells the proxy which
    /// client transaction carries the branch.
    fn forward(
        &mut self,
        branch: habla_proxy::BranchId,
        request: Message,
        hop: &NextHop,
        mut dests: Vec<Destination>,
        io: &mut Io<'_>,
    ) {
        let mut sent = None;
        let mut request = Some(request);
        // While other addresses are left a copy is sent and the request
        // kept for failover; the last one takes the request.
        while !dests.is_empty() {
            let dest = dests.remove(0);
            let this = if dests.is_empty() {
                request.take()
            } else {
                request.clone()
            };
            let Some(this) = this else { break };
            match io.send_request(this, dest) {
                Ok(k) => {
                    sent = Some((k, dest));
                    break;
                }
                Err(e) => tracing::debug!("{} not sent to {dest:?}: {e}", hop.uri),
            }
        }
        let r = match sent {
            Some((k, dest)) => {
                if let Some(request) = request.filter(|_| !dests.is_empty()) {
                    self.remember_failover(
                        k,
                        Failover {
                            request,
                            sent_to: dest,
                            rest: dests,
                            attempt: 0,
                        },
                    );
                }
                self.proxy.handle_forwarded(branch, k)
            }
            None => {
                tracing::info!("cannot reach {}", hop.uri);
                self.proxy.handle_forward_failed(Instant::now(), branch)
            }
        };
        if let Err(e) = r {
            tracing::debug!("branch: {e}");
        }
    }

    fn simple(
        &self,
        key: TransactionKey,
        req: &Message,
        code: u16,
        warning: Option<&str>,
        io: &mut Io<'_>,
    ) {
        let mut b = req.response(code).to_tag(req, &random_token());
        if let Some(w) = warning {
            b = b.header("Warning", &format!("399 habla \"{w}\""));
        }
        if let Ok(bytes) = b.header("Server", AGENT).to_bytes() {
            reply(io, key, bytes);
        }
    }

    fn auth_for(&self, realm: &str) -> Arc<(DigestServer, AuthState)> {
        self.auth.get(realm)
    }

    fn on_register(&mut self, key: TransactionKey, req: &Message, flow: &Flow, io: &mut Io<'_>) {
        let now = unix_now();
        // RFC 3261 §10.3 step 1: the Request-URI names our domain (a SIP
        // one that does not was forwarded: see `forward_register`).
        let ruri_host = match req.request_uri() {
            Ok(Uri::Sip(u)) => u.host().as_str(),
            _ => return self.simple(key, req, 416, Some("REGISTER needs a SIP Request-URI"), io),
        };
        debug_assert!(self.local.is_local(ruri_host));
        let aor = match req.to().ok().and_then(|t| address_of_record(t.uri())) {
            Some(a) => a,
            None => {
                return self.simple(
                    key,
                    req,
                    400,
                    Some("To must hold a SIP or SIPS address-of-record"),
                    io,
                )
            }
        };
        let domain = aor.rsplit_once('@').map_or("", |(_, d)| d);
        // Usually the Request-URI's own host, checked already.
        if !domain.eq_ignore_ascii_case(ruri_host) && !self.local.is_local(domain) {
            return self.simple(
                key,
                req,
                403,
                Some("the address-of-record is not in a domain of this server"),
                io,
            );
        }
        // Steps 3-4: authentication, and the user may only register its own AOR.
        if self.cfg.auth.enabled {
            let users = self.users.clone();
            let realm = self.auth_for(domain);
            let (server, state) = (&realm.0, &realm.1);
            let d = server.authenticate(state, req, flow.remote.ip(), now, |username| {
                let u = users.get(username, domain).ok()??;
                Ha1::from_hex(&u.ha1_md5, &u.ha1_sha256)
            });
            if !matches!(
                d,
                AuthDecision::Authenticated { .. }
                    | AuthDecision::Trusted
                    | AuthDecision::NotRequired
            ) {
                if let AuthDecision::Forbidden(f) = &d {
                    tracing::info!("REGISTER {aor} from {flow} refused: {f:?}");
                }
                let builder = server.respond(req, &d, now, &random_bytes());
                if let Some(b) = builder {
                    if let Ok(bytes) = b
                        .to_tag(req, &random_token())
                        .header("Server", AGENT)
                        .to_bytes()
                    {
                        reply(io, key, bytes);
                    }
                }
                return;
            }
        }
        let source = flow.token();
        self.router.flows.insert(&source, *flow);
        let cfg = self.registrar.clone();
        // The answer is made while the decision is taken (the AOR locked),
        // and sent once the change is durable: by whoever commits it (at
        // the end of this batch, usually on this thread), or from here when
        // `register` already knows (nothing to write, or no room to stage
        // it). Nothing is acknowledged before it is durable.
        let answer: Arc<Answer> = Arc::default();
        let later = answer.clone();
        let me = self.me.clone();
        let decision = self.location.register(
            &aor,
            now,
            &mut |current| {
                let decision = process_register_as(&cfg, now, req, &aor, current, Some(&source))
                    .unwrap_or_else(|e| {
                        RegisterDecision::Reject(habla_registrar::Rejection {
                            code: 500,
                            reason: e.to_string(),
                            headers: Vec::new(),
                        })
                    });
                let bytes =
                    habla_registrar::response(req, &decision, &random_token(), &http_date(now));
                let _ = answer.made.set(bytes);
                decision
            },
            Box::new(move |committed| {
                let Some(made) = later.made.get() else {
                    return;
                };
                let bytes = match committed {
                    Ok(()) => made.clone(),
                    Err(e) => match not_stored(made, &e) {
                        Some(b) => b,
                        None => return,
                    },
                };
                let mut p = later.pending.lock().unwrap_or_else(|p| p.into_inner());
                if p.registering {
                    p.answer = Some(bytes);
                } else if let Some(code) = status_of(&bytes) {
                    drop(p);
                    // On the committer's thread, in the batch of its
                    // commit group: one lock of this shard for the group.
                    me.send_response_bytes(key, code, bytes);
                }
            }),
        );
        let known = {
            let mut p = answer.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.registering = false;
            p.answer.take()
        };
        if let Some(bytes) = known {
            reply(io, key, bytes);
        }
        if let RegisterDecision::Update { contacts, .. } = &decision {
            tracing::info!("registered {aor}: {} contact(s)", contacts.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_compare_without_case() {
        // A few names (compared one by one) and many (hashed).
        for extra in [0, FEW_LOCAL_NAMES] {
            let cfg = Config {
                domains: std::iter::once("Example.ORG".to_string())
                    .chain((0..extra).map(|i| format!("d{i}.Example.NET")))
                    .collect(),
                ..Config::default()
            };
            let names = LocalNames::new(&cfg, &["192.0.2.1:5060".parse().unwrap()]);
            assert_eq!(matches!(names.names, Names::Few(_)), extra == 0);
            local_names_are(&names);
            assert_eq!(names.is_local("D3.example.net"), extra > 0);
        }
    }

    fn local_names_are(names: &LocalNames) {
        for host in [
            "example.org",
            "EXAMPLE.org",
            "Example.Org",
            "localhost",
            "LOCALHOST",
            "192.0.2.1",
        ] {
            assert!(names.is_local(host), "{host}");
        }
        for host in ["example.com", "example.org.", "192.0.2.2", ""] {
            assert!(!names.is_local(host), "{host}");
        }
    }

    #[test]
    fn a_registration_not_stored_gets_503_built_from_its_200() {
        let req = Message::parse(bytes::Bytes::from_static(
            b"REGISTER sip:example.org SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bKns1;received=192.0.2.9;rport=4000\r\n\
Max-Forwards: 70\r\n\
From: <sip:bob@example.org>;tag=f1\r\n\
To: <sip:bob@example.org>\r\n\
Call-ID: ns1@192.0.2.4\r\n\
CSeq: 7 REGISTER\r\n\
Contact: <sip:bob@192.0.2.4:5062>\r\n\
Content-Length: 0\r\n\r\n",
        ))
        .unwrap();
        let decision = habla_registrar::process_register_from(
            &RegistrarConfig::default(),
            1_000,
            &req,
            &[],
            None,
        )
        .unwrap();
        let made =
            habla_registrar::response(&req, &decision, "t0", "Thu, 01 Jan 1970 00:16:40 GMT");
        let e = habla_registrar::LocationError::Storage("disk full".into());
        let answer = Message::parse(not_stored(&made, &e).unwrap()).unwrap();
        assert_eq!(answer.status(), Some(503));
        assert_eq!(answer.header("Retry-After"), Some("5"));
        assert!(
            answer.header("Contact").is_none(),
            "no binding is announced"
        );
        let ok = Message::parse(made).unwrap();
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            assert_eq!(answer.header(name), ok.header(name), "{name}");
        }
        assert_eq!(answer.to().unwrap().tag(), Some("t0"));
        assert!(answer.header("Via").unwrap().contains("rport=4000"));
    }

    #[test]
    fn flows_are_used_for_connections_outbound_and_nat_only() {
        let udp = Some("udp:192.0.2.1:5060->127.0.0.1:40000");
        assert_eq!(reachable_over_flow("sip:bob@127.0.0.1:6000", udp), None);
        assert!(reachable_over_flow("sip:bob@127.0.0.1:6000;ob", udp).is_some());
        assert!(reachable_over_flow(
            "sip:bob@192.168.1.20:5060",
            Some("udp:192.0.2.1:5060->203.0.113.7:40000")
        )
        .is_some());
        assert_eq!(
            reachable_over_flow(
                "sip:bob@192.168.1.20:5060",
                Some("udp:192.0.2.1:5060->192.168.1.20:5060")
            ),
            None
        );
        assert!(reachable_over_flow(
            "sip:bob@127.0.0.1:6000",
            Some("tcp:192.0.2.1:5060->127.0.0.1:40000")
        )
        .is_some());
        assert_eq!(reachable_over_flow("sip:bob@127.0.0.1:6000", None), None);
    }

    #[test]
    fn tags_are_64_random_bits_in_hex_and_do_not_repeat() {
        let tags: HashSet<String> = (0..1000).map(|_| random_token().to_string()).collect();
        assert_eq!(tags.len(), 1000);
        assert!(tags
            .iter()
            .all(|t| t.len() == 16 && t.bytes().all(|b| b.is_ascii_hexdigit())));
    }

    #[test]
    fn dates_are_rfc1123() {
        assert_eq!(&*http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&*http_date(1_289_690_940), "Sat, 13 Nov 2010 23:29:00 GMT");
        assert_eq!(&*http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        // The per-thread cache of the current second gives the same text.
        assert_eq!(&*http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(&*http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
