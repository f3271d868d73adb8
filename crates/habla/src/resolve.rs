//! RFC 3263 next-hop resolution for `habla serve`: the `habla-locate` state
//! machine driven by `hickory-resolver` (NAPTR, SRV, A/AAAA), with a shared
//! TTL cache. Configured by `[dns]`; `[proxy] outbound` names an outbound
//! proxy for requests leaving this server's domains.
//!
//! Without a usable DNS configuration (no or an unreadable
//! /etc/resolv.conf, no nameserver), names are still resolved through the
//! system's `getaddrinfo` (A/AAAA, /etc/hosts), without NAPTR and SRV.

use habla_locate::{
    Answer, Cache, Candidates, Config as LocateConfig, Families, LocateError, Naptr, Query,
    RecordType, Resolution, Srv, Target,
};
use habla_proxy::NextHop;
use habla_tokio::Destination;
use habla_transaction::Transport;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType as HickoryType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{ResolveError, TokioResolver};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `[dns]` in habla.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSection {
    /// Name servers ("IP:port"); empty: the system's (/etc/resolv.conf).
    pub servers: Vec<SocketAddr>,
    /// How long to wait for one answer, in milliseconds.
    pub timeout_ms: u64,
    /// Most answers cached (each for its TTL).
    pub cache_size: usize,
}

impl Default for DnsSection {
    fn default() -> Self {
        DnsSection {
            servers: Vec::new(),
            timeout_ms: 2000,
            cache_size: 10_000,
        }
    }
}

/// `[proxy]` in habla.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxySection {
    /// Outbound proxy for requests to other domains (a `sip:`/`sips:` URI,
    /// `lr` implied); none: RFC 3263 on the Request-URI.
    pub outbound: Option<String>,
}

impl ProxySection {
    /// The outbound proxy as a URI (checked by `Config::check`).
    pub fn outbound_uri(&self) -> anyhow::Result<Option<habla_message::Uri>> {
        let Some(s) = self.outbound.as_deref() else {
            return Ok(None);
        };
        let uri = habla_message::Uri::parse(s.trim())
            .map_err(|e| anyhow::anyhow!("`proxy.outbound`: {s:?} is not a URI: {e}"))?;
        anyhow::ensure!(
            uri.as_sip().is_some(),
            "`proxy.outbound`: {s:?} is not a sip: or sips: URI"
        );
        Ok(Some(uri))
    }
}

/// Performs RFC 3263 resolutions; cheap to clone (shared cache).
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

struct Inner {
    dns: Option<TokioResolver>,
    cache: Mutex<Cache>,
    config: LocateConfig,
    /// Secret mixed into the per-URI seeds of the SRV weighted choice.
    secret: u64,
}

/// Transports `habla-tokio` can send over, most preferred first (the order
/// of SRV queries for domains without NAPTR records).
const TRANSPORTS: [Transport; 2] = [Transport::Tcp, Transport::Udp];

/// Most addresses tried for one request (the first and its failovers).
pub const MAX_CANDIDATES: usize = 4;

/// Bound on the rounds of one resolution (NAPTR, SRV, A/AAAA).
const MAX_ROUNDS: usize = 8;

impl Resolver {
    /// A resolver from `[dns]`: its servers, else the system configuration,
    /// else none (getaddrinfo only).
    pub fn new(section: &DnsSection) -> Resolver {
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_millis(section.timeout_ms.max(1));
        opts.attempts = 2;
        opts.edns0 = true;
        // habla-locate keeps the answers; hickory needs only a little.
        opts.cache_size = 64;
        let dns = if section.servers.is_empty() {
            match TokioResolver::builder_tokio() {
                Ok(mut b) => {
                    let sys = b.options_mut();
                    sys.timeout = opts.timeout;
                    sys.attempts = opts.attempts;
                    sys.edns0 = true;
                    sys.cache_size = opts.cache_size;
                    Some(b.build())
                }
                Err(e) => {
                    tracing::warn!(
                        "no usable DNS configuration ({e}): next hops named by host name are \
                         resolved by the system (A/AAAA only, no SRV/NAPTR); set [dns] servers"
                    );
                    None
                }
            }
        } else {
            let mut cfg = ResolverConfig::new();
            for s in &section.servers {
                cfg.add_name_server(NameServerConfig::new(*s, Protocol::Udp));
                cfg.add_name_server(NameServerConfig::new(*s, Protocol::Tcp));
            }
            Some(
                TokioResolver::builder_with_config(cfg, TokioConnectionProvider::default())
                    .with_options(opts)
                    .build(),
            )
        };
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        let seed = u64::from_le_bytes(seed);
        Resolver {
            inner: Arc::new(Inner {
                dns,
                cache: Mutex::new(Cache::new(section.cache_size)),
                config: LocateConfig {
                    transports: TRANSPORTS.to_vec(),
                    families: Families::Ipv4ThenIpv6,
                    ..LocateConfig::default()
                },
                secret: seed,
            }),
        }
    }

    /// Where to send a request for `hop` (RFC 3263): its candidates in
    /// order (at most [`MAX_CANDIDATES`]), the first to try first, the
    /// others for failover (§4.3). Empty when the name does not resolve.
    /// A registered flow is the caller's business (checked before).
    ///
    /// The RFC 2782 weighted choice is seeded by the hop's URI (and a
    /// per-process secret), so a CANCEL resolves to where its INVITE went
    /// (RFC 3261 §9.1) while different targets spread over the servers.
    pub async fn destinations(&self, hop: &NextHop) -> Vec<Destination> {
        let seed = self.seed_for(hop.uri.as_str());
        destinations_of(hop, self.locate(target_of(hop), seed).await)
    }

    /// [`Resolver::destinations`] when the cache holds every answer it
    /// needs (the usual case for a busy next hop): no waiting. `None` when
    /// a query must go out.
    pub fn cached_destinations(&self, hop: &NextHop) -> Option<Vec<Destination>> {
        let inner = &self.inner;
        let seed = self.seed_for(hop.uri.as_str());
        let mut res = Resolution::new(target_of(hop), &inner.config, seed);
        let mut cache = inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        if res.poll_query(Instant::now(), &mut cache).is_some() {
            return None;
        }
        Some(destinations_of(hop, res.poll_result()?))
    }

    /// A seed for the SRV weighted choice, the same for the same `key`.
    pub fn seed_for(&self, key: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inner.secret.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    }

    /// The ordered candidates for `target` (RFC 3263 §4); `seed` drives the
    /// RFC 2782 weighted choice.
    pub async fn locate(&self, target: Target, seed: u64) -> Result<Candidates, LocateError> {
        let inner = &self.inner;
        let mut res = Resolution::new(target, &inner.config, seed);
        for _ in 0..MAX_ROUNDS {
            let queries = {
                let mut cache = inner.cache.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                std::iter::from_fn(|| res.poll_query(now, &mut cache)).collect::<Vec<_>>()
            };
            if let Some(r) = res.poll_result() {
                return r;
            }
            let mut set = tokio::task::JoinSet::new();
            for q in queries {
                let dns = inner.dns.clone();
                set.spawn(async move {
                    let a = query(dns.as_ref(), &q).await;
                    (q, a)
                });
            }
            while let Some(done) = set.join_next().await {
                let Ok((q, a)) = done else { continue };
                let mut cache = inner.cache.lock().unwrap_or_else(|p| p.into_inner());
                res.handle_answer(Instant::now(), &mut cache, &q, a);
            }
        }
        res.poll_result().unwrap_or(Err(LocateError::DnsFailure))
    }
}

/// The destinations of a finished resolution, at most [`MAX_CANDIDATES`].
fn destinations_of(hop: &NextHop, located: Result<Candidates, LocateError>) -> Vec<Destination> {
    match located {
        Ok(c) => {
            let list: Vec<Destination> = c
                .as_slice()
                .iter()
                .take(MAX_CANDIDATES)
                .map(|c| Destination::Address(c.transport, c.addr))
                .collect();
            tracing::debug!("{} resolved to {list:?}", hop.uri);
            list
        }
        Err(e) => {
            tracing::info!("cannot resolve {}: {e}", hop.uri);
            Vec::new()
        }
    }
}

/// What the proxy's next hop says, for RFC 3263: `maddr` or host, port, the
/// `transport` parameter as written (the proxy's `transport` field already
/// defaults it), `sips:`.
pub fn target_of(hop: &NextHop) -> Target {
    let sip = hop.uri.as_sip();
    Target {
        host: hop.host.clone(),
        port: hop.port,
        transport: sip
            .and_then(|s| s.transport())
            .map(|t| Transport::from_via(t).unwrap_or(hop.transport)),
        secure: sip.is_some_and(|s| s.is_secure()),
    }
}

/// Negative answers without an SOA are kept this long (seconds).
const DEFAULT_NEGATIVE_TTL: u32 = 30;

async fn query(dns: Option<&TokioResolver>, q: &Query) -> Answer {
    let Some(dns) = dns else {
        return system_query(q).await;
    };
    let rtype = match q.rtype {
        RecordType::Naptr => HickoryType::NAPTR,
        RecordType::Srv => HickoryType::SRV,
        RecordType::A => HickoryType::A,
        RecordType::Aaaa => HickoryType::AAAA,
    };
    // Fully qualified (no search list), except a single label.
    let name = if q.name.contains('.') {
        format!("{}.", q.name)
    } else {
        q.name.clone()
    };
    match dns.lookup(name.as_str(), rtype).await {
        Ok(lookup) => {
            let ttl = lookup
                .valid_until()
                .saturating_duration_since(Instant::now())
                .as_secs()
                .min(u64::from(u32::MAX)) as u32;
            let data = lookup.record_iter().map(|r| r.data());
            let answer = match q.rtype {
                RecordType::Naptr => Answer::Naptr {
                    records: data
                        .filter_map(|d| match d {
                            RData::NAPTR(n) => Some(Naptr {
                                order: n.order(),
                                preference: n.preference(),
                                flags: String::from_utf8_lossy(n.flags()).into_owned(),
                                services: String::from_utf8_lossy(n.services()).into_owned(),
                                regexp: String::from_utf8_lossy(n.regexp()).into_owned(),
                                replacement: n.replacement().to_ascii(),
                            }),
                            _ => None,
                        })
                        .collect(),
                    ttl,
                },
                RecordType::Srv => Answer::Srv {
                    records: data
                        .filter_map(|d| match d {
                            RData::SRV(s) => Some(Srv {
                                priority: s.priority(),
                                weight: s.weight(),
                                port: s.port(),
                                target: s.target().to_ascii(),
                            }),
                            _ => None,
                        })
                        .collect(),
                    ttl,
                },
                RecordType::A => Answer::A {
                    records: data
                        .filter_map(|d| match d {
                            RData::A(a) => Some(a.0),
                            _ => None,
                        })
                        .collect(),
                    ttl,
                },
                RecordType::Aaaa => Answer::Aaaa {
                    records: data
                        .filter_map(|d| match d {
                            RData::AAAA(a) => Some(a.0),
                            _ => None,
                        })
                        .collect(),
                    ttl,
                },
            };
            answer
        }
        Err(e) => failure(&e, q),
    }
}

fn failure(e: &ResolveError, q: &Query) -> Answer {
    match e.proto().map(|p| p.kind()) {
        Some(ProtoErrorKind::NoRecordsFound { negative_ttl, .. }) => Answer::NotFound {
            ttl: negative_ttl.unwrap_or(DEFAULT_NEGATIVE_TTL),
        },
        _ => {
            tracing::debug!("DNS {:?} {}: {e}", q.rtype, q.name);
            Answer::Failed
        }
    }
}

/// Without DNS: A/AAAA through getaddrinfo (not cached), no NAPTR/SRV.
async fn system_query(q: &Query) -> Answer {
    let want_v4 = match q.rtype {
        RecordType::A => true,
        RecordType::Aaaa => false,
        _ => return Answer::Failed,
    };
    let Ok(addrs) = tokio::net::lookup_host((q.name.as_str(), 0)).await else {
        return Answer::Failed;
    };
    let ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
    if want_v4 {
        Answer::A {
            records: ips
                .iter()
                .filter_map(|ip| match ip {
                    IpAddr::V4(v4) => Some(*v4),
                    _ => None,
                })
                .collect(),
            ttl: 0,
        }
    } else {
        Answer::Aaaa {
            records: ips
                .iter()
                .filter_map(|ip| match ip {
                    IpAddr::V6(v6) => Some(*v6),
                    _ => None,
                })
                .collect(),
            ttl: 0,
        }
    }
}

#[cfg(test)]
#[path = "../tests/support/dns.rs"]
mod test_dns;

#[cfg(test)]
mod tests {
    use super::test_dns::{start, Rec};
    use super::*;
    use hickory_resolver::proto::rr::RecordType as T;
    use std::net::Ipv4Addr;

    fn resolver(dns: SocketAddr) -> Resolver {
        Resolver::new(&DnsSection {
            servers: vec![dns],
            timeout_ms: 1000,
            cache_size: 100,
        })
    }

    fn zone() -> Vec<(&'static str, Rec)> {
        vec![
            (
                "example.test",
                Rec::Naptr(10, 10, "s", "SIP+D2T", "_sip._tcp.example.test"),
            ),
            (
                "example.test",
                Rec::Naptr(20, 10, "s", "SIP+D2U", "_sip._udp.example.test"),
            ),
            (
                "_sip._tcp.example.test",
                Rec::Srv(10, 0, 5071, "tcp.example.test"),
            ),
            (
                "_sip._udp.example.test",
                Rec::Srv(10, 0, 5072, "udp.example.test"),
            ),
            ("tcp.example.test", Rec::A(Ipv4Addr::new(127, 0, 0, 21))),
            ("udp.example.test", Rec::A(Ipv4Addr::new(127, 0, 0, 22))),
            // No NAPTR: SRV for UDP only.
            ("_sip._udp.srv.test", Rec::Srv(1, 0, 5099, "host.srv.test")),
            ("host.srv.test", Rec::A(Ipv4Addr::new(127, 0, 0, 23))),
            ("plain.test", Rec::A(Ipv4Addr::new(127, 0, 0, 24))),
        ]
    }

    fn list(c: &Candidates) -> Vec<String> {
        c.as_slice()
            .iter()
            .map(|c| format!("{:?} {}", c.transport, c.addr))
            .collect()
    }

    #[tokio::test]
    async fn naptr_srv_and_a_from_a_dns_server_on_loopback() {
        let server = start(zone(), 300);
        let r = resolver(server.addr);
        let c = r.locate(Target::name("Example.Test"), 1).await.unwrap();
        assert_eq!(list(&c), ["Tcp 127.0.0.21:5071", "Udp 127.0.0.22:5072"]);
        let asked = server.queries.lock().unwrap().clone();
        assert_eq!(asked[0], ("example.test".to_string(), T::NAPTR));
        assert!(asked.contains(&("_sip._tcp.example.test".into(), T::SRV)));
        assert!(asked.contains(&("udp.example.test".into(), T::AAAA)));
        // Everything is cached now (the AAAA misses negatively).
        let n = asked.len();
        let again = r.locate(Target::name("example.test"), 1).await.unwrap();
        assert_eq!(list(&again), list(&c));
        assert_eq!(server.queries.lock().unwrap().len(), n);

        let c = r.locate(Target::name("srv.test"), 1).await.unwrap();
        assert_eq!(list(&c), ["Udp 127.0.0.23:5099"]);
        let c = r.locate(Target::name("plain.test"), 1).await.unwrap();
        assert_eq!(list(&c), ["Udp 127.0.0.24:5060"]);
        let e = r.locate(Target::name("nowhere.test"), 1).await.unwrap_err();
        assert_eq!(e, LocateError::NotFound);
    }

    #[tokio::test]
    async fn next_hops_keep_their_transport_parameter() {
        let server = start(zone(), 300);
        let r = resolver(server.addr);
        let uri = habla_message::Uri::parse("sip:bob@example.test;transport=udp").unwrap();
        let hop = NextHop {
            host: "example.test".into(),
            port: None,
            transport: Transport::Udp,
            flow: None,
            interface: habla_proxy::Interface::new(
                Transport::Udp,
                "127.0.0.1:5060".parse().unwrap(),
            ),
            uri,
        };
        assert_eq!(
            r.destinations(&hop).await.first(),
            Some(&Destination::Address(
                Transport::Udp,
                "127.0.0.22:5072".parse().unwrap()
            ))
        );
        let asked = server.queries.lock().unwrap().clone();
        assert_eq!(asked[0], ("_sip._udp.example.test".to_string(), T::SRV));
    }

    #[tokio::test]
    async fn the_same_uri_goes_to_the_same_server_and_others_spread() {
        let server = start(
            vec![
                ("_sip._udp.lb.test", Rec::Srv(10, 50, 5060, "a.lb.test")),
                ("_sip._udp.lb.test", Rec::Srv(10, 50, 5060, "b.lb.test")),
                ("a.lb.test", Rec::A(Ipv4Addr::new(127, 0, 0, 31))),
                ("b.lb.test", Rec::A(Ipv4Addr::new(127, 0, 0, 32))),
            ],
            300,
        );
        let r = resolver(server.addr);
        let first = |uri: String| {
            let r = r.clone();
            async move {
                let t = Target::name("lb.test");
                let t = Target {
                    transport: Some(Transport::Udp),
                    ..t
                };
                let c = r.locate(t, r.seed_for(&uri)).await.unwrap();
                c.current().unwrap().addr
            }
        };
        // An INVITE and its CANCEL (same URI) resolve alike.
        let once = first("sip:bob@lb.test".into()).await;
        for _ in 0..10 {
            assert_eq!(first("sip:bob@lb.test".into()).await, once);
        }
        let mut seen = std::collections::HashSet::new();
        for i in 0..40 {
            seen.insert(first(format!("sip:user{i}@lb.test")).await);
        }
        assert_eq!(seen.len(), 2, "equal weights share the load");
    }

    #[tokio::test]
    async fn a_silent_dns_server_is_a_failure_not_a_hang() {
        // A bound socket that never answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let r = Resolver::new(&DnsSection {
            servers: vec![silent.local_addr().unwrap()],
            timeout_ms: 100,
            cache_size: 100,
        });
        let t0 = Instant::now();
        let e = r.locate(Target::name("example.test"), 1).await.unwrap_err();
        assert_eq!(e, LocateError::DnsFailure);
        assert!(t0.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn the_outbound_proxy_must_be_a_sip_uri() {
        let p = |s: &str| ProxySection {
            outbound: Some(s.into()),
        };
        assert!(p("sip:proxy.example.org;lr")
            .outbound_uri()
            .unwrap()
            .is_some());
        assert!(p("tel:+1555").outbound_uri().is_err());
        assert!(p("not a uri").outbound_uri().is_err());
        assert!(ProxySection::default().outbound_uri().unwrap().is_none());
    }
}
