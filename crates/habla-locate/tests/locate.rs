//! RFC 3263 resolutions against canned DNS answers.

use habla_locate::{
    Answer, Cache, Candidates, Config, Families, LocateError, Naptr, Query, RecordType, Resolution,
    Srv, Target, Transport,
};
use habla_message::Uri;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// A canned zone: answers by query; anything else is NXDOMAIN.
#[derive(Default)]
struct Zone(BTreeMap<Query, Answer>);

impl Zone {
    fn naptr(mut self, name: &str, recs: &[(u16, u16, &str, &str, &str)]) -> Self {
        let records = recs
            .iter()
            .map(|(order, preference, flags, services, replacement)| Naptr {
                order: *order,
                preference: *preference,
                flags: flags.to_string(),
                services: services.to_string(),
                regexp: String::new(),
                replacement: replacement.to_string(),
            })
            .collect();
        self.0.insert(
            Query::new(name, RecordType::Naptr),
            Answer::Naptr { records, ttl: 300 },
        );
        self
    }

    fn srv(mut self, name: &str, recs: &[(u16, u16, u16, &str)], ttl: u32) -> Self {
        let records = recs
            .iter()
            .map(|(priority, weight, port, target)| Srv {
                priority: *priority,
                weight: *weight,
                port: *port,
                target: target.to_string(),
            })
            .collect();
        self.0.insert(
            Query::new(name, RecordType::Srv),
            Answer::Srv { records, ttl },
        );
        self
    }

    fn a(mut self, name: &str, addrs: &[&str], ttl: u32) -> Self {
        let records = addrs
            .iter()
            .map(|a| a.parse::<Ipv4Addr>().unwrap())
            .collect();
        self.0
            .insert(Query::new(name, RecordType::A), Answer::A { records, ttl });
        self
    }

    fn aaaa(mut self, name: &str, addrs: &[&str]) -> Self {
        let records = addrs
            .iter()
            .map(|a| a.parse::<Ipv6Addr>().unwrap())
            .collect();
        self.0.insert(
            Query::new(name, RecordType::Aaaa),
            Answer::Aaaa { records, ttl: 300 },
        );
        self
    }

    fn answer(&self, q: &Query) -> Answer {
        self.0
            .get(q)
            .cloned()
            .unwrap_or(Answer::NotFound { ttl: 60 })
    }
}

/// The example domain: NAPTR for TLS, TCP and UDP; SRV sets with
/// priorities and weights; A and AAAA for the targets. No CNAMEs.
fn example() -> Zone {
    Zone::default()
        .naptr(
            "example.test",
            &[
                (50, 50, "s", "SIP+D2U", "_sip._udp.example.test."),
                (10, 50, "S", "SIPS+D2T", "_sips._tcp.example.test."),
                (20, 50, "s", "SIP+D2T", "_sip._tcp.example.test."),
                // Not for RFC 3263: wrong flag, unknown service.
                (5, 10, "u", "SIP+D2U", "_sip._udp.other.test."),
                (5, 10, "s", "E2U+sip", "_sip._udp.other.test."),
            ],
        )
        .srv(
            "_sips._tcp.example.test",
            &[(10, 0, 5061, "tls.example.test.")],
            300,
        )
        .srv(
            "_sip._tcp.example.test",
            &[
                (20, 0, 5070, "c.example.test."),
                (10, 60, 5060, "a.example.test."),
                (10, 40, 5060, "b.example.test."),
            ],
            300,
        )
        .srv(
            "_sip._udp.example.test",
            &[(10, 0, 5060, "a.example.test.")],
            300,
        )
        .a("a.example.test", &["192.0.2.1"], 300)
        .aaaa("a.example.test", &["2001:db8::1"])
        .a("b.example.test", &["192.0.2.2"], 300)
        .a("c.example.test", &["192.0.2.3"], 300)
        .a("tls.example.test", &["192.0.2.10"], 300)
        // No NAPTR: SRV for UDP only.
        .srv(
            "_sip._udp.srvonly.test",
            &[(1, 0, 5080, "host.srvonly.test")],
            300,
        )
        .a("host.srvonly.test", &["198.51.100.7"], 300)
        // Neither NAPTR nor SRV.
        .a("plain.test", &["198.51.100.8"], 300)
        // The service is decidedly not offered.
        .srv("_sip._udp.closed.test", &[(0, 0, 0, ".")], 300)
        .a("closed.test", &["198.51.100.9"], 300)
}

struct Run {
    result: Result<Candidates, LocateError>,
    asked: Vec<Query>,
}

fn run(
    zone: &Zone,
    target: Target,
    config: &Config,
    seed: u64,
    now: Instant,
    cache: &mut Cache,
) -> Run {
    let mut res = Resolution::new(target, config, seed);
    let mut asked = Vec::new();
    for _ in 0..100 {
        let mut batch = Vec::new();
        while let Some(q) = res.poll_query(now, cache) {
            batch.push(q);
        }
        if let Some(result) = res.poll_result() {
            assert!(batch.is_empty());
            assert!(res.is_done());
            return Run { result, asked };
        }
        assert!(!batch.is_empty(), "waiting with no query outstanding");
        // Answer in reverse order: the machine must not depend on it.
        for q in batch.iter().rev() {
            res.handle_answer(now, cache, q, zone.answer(q));
        }
        asked.extend(batch);
    }
    panic!("the resolution did not end");
}

fn target(uri: &str) -> Target {
    Target::from_uri(&Uri::parse(uri).unwrap()).unwrap()
}

fn list(c: &Candidates) -> Vec<String> {
    c.as_slice()
        .iter()
        .map(|c| format!("{:?} {}", c.transport, c.addr).to_ascii_lowercase())
        .collect()
}

/// Puts the two equal-priority TCP targets of example.test (a, b) in a
/// fixed order.
fn sort_weighted(v: &mut [String]) {
    if let Some(i) = v
        .iter()
        .position(|s| s == "tcp 192.0.2.1:5060" || s == "tcp 192.0.2.2:5060")
    {
        let end = (i + 2).min(v.len());
        v[i..end].sort();
    }
}

fn q(name: &str, rtype: RecordType) -> Query {
    Query::new(name, rtype)
}

fn tls_tcp_udp() -> Config {
    Config::default()
}

fn tcp_udp() -> Config {
    Config {
        transports: vec![Transport::Tcp, Transport::Udp],
        ..Config::default()
    }
}

#[test]
fn rfc3263_cases() {
    use RecordType::*;
    struct Case {
        uri: &'static str,
        config: Config,
        want: Result<&'static [&'static str], LocateError>,
        asked: &'static [(&'static str, RecordType)],
    }
    let cases = [
        // §4.1: a numeric IP: no DNS, UDP (TLS for SIPS), default port.
        Case {
            uri: "sip:bob@192.0.2.5",
            config: tcp_udp(),
            want: Ok(&["udp 192.0.2.5:5060"]),
            asked: &[],
        },
        Case {
            uri: "sip:bob@[2001:db8::5]:5070;transport=TCP",
            config: tcp_udp(),
            want: Ok(&["tcp [2001:db8::5]:5070"]),
            asked: &[],
        },
        Case {
            uri: "sips:bob@192.0.2.5",
            config: tls_tcp_udp(),
            want: Ok(&["tls 192.0.2.5:5061"]),
            asked: &[],
        },
        Case {
            uri: "sips:bob@192.0.2.5",
            config: tcp_udp(),
            want: Err(LocateError::UnsupportedTransport(Transport::Tls)),
            asked: &[],
        },
        Case {
            uri: "sips:bob@192.0.2.5;transport=udp",
            config: tls_tcp_udp(),
            want: Err(LocateError::SipsOverUdp),
            asked: &[],
        },
        // maddr wins over the host.
        Case {
            uri: "sip:bob@example.test;maddr=192.0.2.99",
            config: tcp_udp(),
            want: Ok(&["udp 192.0.2.99:5060"]),
            asked: &[],
        },
        // §4.2: a name with a port: A/AAAA only.
        Case {
            uri: "sip:bob@A.Example.Test:5080",
            config: tcp_udp(),
            want: Ok(&["udp 192.0.2.1:5080", "udp [2001:db8::1]:5080"]),
            asked: &[("a.example.test", A), ("a.example.test", Aaaa)],
        },
        Case {
            uri: "sip:bob@a.example.test:5080;transport=tcp",
            config: Config {
                families: Families::Ipv6ThenIpv4,
                ..tcp_udp()
            },
            want: Ok(&["tcp [2001:db8::1]:5080", "tcp 192.0.2.1:5080"]),
            asked: &[("a.example.test", Aaaa), ("a.example.test", A)],
        },
        // §4.1: a transport parameter: that transport's SRV.
        Case {
            uri: "sip:bob@example.test;transport=udp",
            config: tcp_udp(),
            want: Ok(&["udp 192.0.2.1:5060", "udp [2001:db8::1]:5060"]),
            asked: &[
                ("_sip._udp.example.test", Srv),
                ("a.example.test", A),
                ("a.example.test", Aaaa),
            ],
        },
        Case {
            uri: "sips:bob@example.test;transport=tcp",
            config: Config {
                families: Families::Ipv4,
                ..tls_tcp_udp()
            },
            want: Ok(&["tls 192.0.2.10:5061"]),
            asked: &[("_sips._tcp.example.test", Srv), ("tls.example.test", A)],
        },
        // Transport parameter without SRV: A/AAAA on the default port.
        Case {
            uri: "sip:bob@plain.test;transport=tcp",
            config: Config {
                families: Families::Ipv4,
                ..tcp_udp()
            },
            want: Ok(&["tcp 198.51.100.8:5060"]),
            asked: &[("_sip._tcp.plain.test", Srv), ("plain.test", A)],
        },
        Case {
            uri: "sip:bob@plain.test;transport=sctp",
            config: tcp_udp(),
            want: Err(LocateError::UnsupportedTransport(Transport::Sctp)),
            asked: &[],
        },
        // NAPTR, SIP URI: SIPS+D2T (order 10), SIP+D2T (20), SIP+D2U (50);
        // the `u` and E2U records are ignored.
        Case {
            uri: "sip:bob@example.test",
            config: Config {
                families: Families::Ipv4,
                ..tls_tcp_udp()
            },
            want: Ok(&[
                "tls 192.0.2.10:5061",
                // priority 10: a/b by weight (seed-dependent), then c.
                "tcp 192.0.2.1:5060",
                "tcp 192.0.2.2:5060",
                "tcp 192.0.2.3:5070",
                "udp 192.0.2.1:5060",
            ]),
            asked: &[
                ("example.test", Naptr),
                ("_sips._tcp.example.test", Srv),
                ("_sip._tcp.example.test", Srv),
                ("_sip._udp.example.test", Srv),
                ("tls.example.test", A),
                ("a.example.test", A),
                ("b.example.test", A),
                ("c.example.test", A),
            ],
        },
        // Without TLS support, SIPS+D2T is skipped.
        Case {
            uri: "sip:bob@example.test",
            config: Config {
                families: Families::Ipv4,
                ..tcp_udp()
            },
            want: Ok(&[
                "tcp 192.0.2.1:5060",
                "tcp 192.0.2.2:5060",
                "tcp 192.0.2.3:5070",
                "udp 192.0.2.1:5060",
            ]),
            asked: &[
                ("example.test", Naptr),
                ("_sip._tcp.example.test", Srv),
                ("_sip._udp.example.test", Srv),
                ("a.example.test", A),
                ("b.example.test", A),
                ("c.example.test", A),
            ],
        },
        // A SIPS URI uses SIPS services only.
        Case {
            uri: "sips:bob@example.test",
            config: Config {
                families: Families::Ipv4,
                ..tls_tcp_udp()
            },
            want: Ok(&["tls 192.0.2.10:5061"]),
            asked: &[
                ("example.test", Naptr),
                ("_sips._tcp.example.test", Srv),
                ("tls.example.test", A),
            ],
        },
        // No NAPTR: SRV for every supported transport, in preference order.
        Case {
            uri: "sip:bob@srvonly.test",
            config: Config {
                families: Families::Ipv4,
                ..tls_tcp_udp()
            },
            want: Ok(&["udp 198.51.100.7:5080"]),
            asked: &[
                ("srvonly.test", Naptr),
                ("_sips._tcp.srvonly.test", Srv),
                ("_sip._tcp.srvonly.test", Srv),
                ("_sip._udp.srvonly.test", Srv),
                ("host.srvonly.test", A),
            ],
        },
        // Neither NAPTR nor SRV: A/AAAA, UDP on 5060.
        Case {
            uri: "sip:bob@plain.test",
            config: tcp_udp(),
            want: Ok(&["udp 198.51.100.8:5060"]),
            asked: &[
                ("plain.test", Naptr),
                ("_sip._tcp.plain.test", Srv),
                ("_sip._udp.plain.test", Srv),
                ("plain.test", A),
                ("plain.test", Aaaa),
            ],
        },
        // ... and TLS on 5061 for SIPS.
        Case {
            uri: "sips:bob@plain.test",
            config: Config {
                families: Families::Ipv4,
                ..tls_tcp_udp()
            },
            want: Ok(&["tls 198.51.100.8:5061"]),
            asked: &[
                ("plain.test", Naptr),
                ("_sips._tcp.plain.test", Srv),
                ("plain.test", A),
            ],
        },
        // SRV target ".": not offered, and no fallback to A.
        Case {
            uri: "sip:bob@closed.test;transport=udp",
            config: tcp_udp(),
            want: Err(LocateError::NotFound),
            asked: &[("_sip._udp.closed.test", Srv)],
        },
        // Nothing at all.
        Case {
            uri: "sip:bob@nowhere.test",
            config: Config {
                families: Families::Ipv4,
                ..tcp_udp()
            },
            want: Err(LocateError::NotFound),
            asked: &[
                ("nowhere.test", Naptr),
                ("_sip._tcp.nowhere.test", Srv),
                ("_sip._udp.nowhere.test", Srv),
                ("nowhere.test", A),
            ],
        },
    ];
    let zone = example();
    for (i, c) in cases.into_iter().enumerate() {
        let mut cache = Cache::new(100);
        let r = run(
            &zone,
            target(c.uri),
            &c.config,
            1,
            Instant::now(),
            &mut cache,
        );
        let asked: Vec<Query> = c.asked.iter().map(|(n, t)| q(n, *t)).collect();
        assert_eq!(r.asked, asked, "case {i}: {}", c.uri);
        match (r.result, c.want) {
            (Ok(got), Ok(want)) => {
                let mut got = list(&got);
                let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
                // Equal-priority SRV records come in a weighted random
                // order; the set is checked here, the order below.
                sort_weighted(&mut got);
                sort_weighted(&mut want);
                assert_eq!(got, want, "case {i}: {}", c.uri);
            }
            (got, want) => assert_eq!(
                got.map(|c| list(&c)),
                want.map(|_| vec![]),
                "case {i}: {}",
                c.uri
            ),
        }
    }
}

#[test]
fn equal_priority_srv_records_follow_their_weights() {
    let zone = example();
    let config = Config {
        families: Families::Ipv4,
        ..tcp_udp()
    };
    let mut a_first = 0;
    for seed in 0..1000 {
        let r = run(
            &zone,
            target("sip:x@example.test;transport=tcp"),
            &config,
            seed,
            Instant::now(),
            &mut Cache::new(0),
        );
        let l = list(&r.result.unwrap());
        assert_eq!(l.len(), 3);
        // Priority 20 always after priority 10.
        assert_eq!(l[2], "tcp 192.0.2.3:5070");
        a_first += usize::from(l[0] == "tcp 192.0.2.1:5060");
    }
    // Weights 60/40.
    assert!((520..680).contains(&a_first), "{a_first}");
    // The same seed gives the same order.
    let once = |seed| {
        list(
            &run(
                &zone,
                target("sip:x@example.test;transport=tcp"),
                &config,
                seed,
                Instant::now(),
                &mut Cache::new(0),
            )
            .result
            .unwrap(),
        )
    };
    assert_eq!(once(7), once(7));
}

#[test]
fn failover_walks_the_candidates_in_order() {
    let zone = example();
    let config = Config {
        families: Families::Ipv4ThenIpv6,
        ..tcp_udp()
    };
    let mut c = run(
        &zone,
        target("sip:x@example.test;transport=udp"),
        &config,
        3,
        Instant::now(),
        &mut Cache::new(10),
    )
    .result
    .unwrap();
    assert_eq!(c.len(), 2);
    let first = c.current().unwrap().clone();
    assert_eq!(first.addr, "192.0.2.1:5060".parse::<SocketAddr>().unwrap());
    assert_eq!(first.host, "a.example.test");
    assert_eq!(c.remaining().len(), 2);
    // A transport error or timeout (RFC 3263 §4.3): the next one.
    let next = c.failover().unwrap().clone();
    assert_eq!(
        next.addr,
        "[2001:db8::1]:5060".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.remaining().len(), 1);
    assert_eq!(c.clone().into_iter().collect::<Vec<_>>(), vec![next]);
    assert!(c.failover().is_none());
    assert!(c.failover().is_none());
    assert!(c.remaining().is_empty());
    assert_eq!(c.len(), 2);

    // Across NAPTR services: TLS, then the TCP targets, then UDP.
    let mut c = run(
        &zone,
        target("sip:x@example.test"),
        &Config {
            families: Families::Ipv4,
            ..tls_tcp_udp()
        },
        3,
        Instant::now(),
        &mut Cache::new(10),
    )
    .result
    .unwrap();
    let mut order = vec![c.current().unwrap().transport];
    while let Some(n) = c.failover() {
        order.push(n.transport);
    }
    use Transport::*;
    assert_eq!(order, [Tls, Tcp, Tcp, Tcp, Udp]);
}

#[test]
fn cached_answers_are_used_until_their_ttl_runs_out() {
    // SRV lives 60 s, the A record an hour.
    let zone = Zone::default()
        .srv(
            "_sip._udp.cached.test",
            &[(1, 0, 5060, "h.cached.test")],
            60,
        )
        .a("h.cached.test", &["192.0.2.44"], 3600);
    let config = Config {
        families: Families::Ipv4,
        ..tcp_udp()
    };
    let t0 = Instant::now();
    let mut cache = Cache::new(100);
    let t = || target("sip:x@cached.test;transport=udp");
    let first = run(&zone, t(), &config, 0, t0, &mut cache);
    assert_eq!(first.asked.len(), 2);
    let again = run(
        &zone,
        t(),
        &config,
        0,
        t0 + Duration::from_secs(59),
        &mut cache,
    );
    assert!(again.asked.is_empty(), "{:?}", again.asked);
    assert_eq!(list(&again.result.unwrap()), ["udp 192.0.2.44:5060"]);
    // At 60 s the SRV has expired, not the A record.
    let later = run(
        &zone,
        t(),
        &config,
        0,
        t0 + Duration::from_secs(60),
        &mut cache,
    );
    assert_eq!(later.asked, [q("_sip._udp.cached.test", RecordType::Srv)]);
    // Negative answers are cached too (here 60 s).
    let nx = || target("sip:x@nx.test;transport=udp");
    let miss = run(&zone, nx(), &config, 0, t0, &mut cache);
    assert_eq!(miss.asked.len(), 2);
    assert!(run(
        &zone,
        nx(),
        &config,
        0,
        t0 + Duration::from_secs(30),
        &mut cache
    )
    .asked
    .is_empty());
    assert_eq!(
        run(
            &zone,
            nx(),
            &config,
            0,
            t0 + Duration::from_secs(61),
            &mut cache
        )
        .asked
        .len(),
        2
    );
}

#[test]
fn unanswered_queries_are_a_dns_failure_and_not_cached() {
    let config = Config {
        families: Families::Ipv4,
        ..tcp_udp()
    };
    let now = Instant::now();
    let mut cache = Cache::new(100);
    let mut res = Resolution::new(target("sip:x@down.test;transport=tcp"), &config, 0);
    let mut rounds = 0;
    let result = loop {
        let mut batch = Vec::new();
        while let Some(q) = res.poll_query(now, &mut cache) {
            batch.push(q);
        }
        if let Some(r) = res.poll_result() {
            break r;
        }
        for q in batch {
            res.handle_answer(now, &mut cache, &q, Answer::Failed);
        }
        rounds += 1;
        assert!(rounds < 10);
    };
    assert_eq!(result, Err(LocateError::DnsFailure));
    assert!(cache.is_empty());
    assert!(res.poll_result().is_none(), "the result is handed out once");
}

#[test]
fn hostile_answers_are_bounded_and_mismatches_ignored() {
    let config = tcp_udp();
    let now = Instant::now();
    let mut cache = Cache::new(1000);
    let mut res = Resolution::new(target("sip:x@big.test;transport=udp"), &config, 0);
    let srv = res.poll_query(now, &mut cache).unwrap();
    assert!(res.poll_query(now, &mut cache).is_none());
    // An answer to a query never asked, and a duplicate, change nothing.
    res.handle_answer(
        now,
        &mut cache,
        &q("other.test", RecordType::Srv),
        Answer::NotFound { ttl: 5 },
    );
    assert!(res.poll_query(now, &mut cache).is_none());
    let records = (0..5000u32)
        .map(|i| Srv {
            priority: (i % 7) as u16,
            weight: u16::MAX,
            port: 5060,
            target: format!("h{i}.big.test"),
        })
        .collect();
    res.handle_answer(now, &mut cache, &srv, Answer::Srv { records, ttl: 60 });
    res.handle_answer(
        now,
        &mut cache,
        &srv,
        Answer::Srv {
            records: vec![],
            ttl: 60,
        },
    );
    let mut queries = Vec::new();
    while let Some(q) = res.poll_query(now, &mut cache) {
        queries.push(q);
    }
    // At most 16 hosts, A and AAAA each.
    assert_eq!(queries.len(), 32);
    for q in &queries {
        let answer = match q.rtype {
            RecordType::A => Answer::A {
                records: (0..=255).map(|i| Ipv4Addr::new(192, 0, 2, i)).collect(),
                ttl: 60,
            },
            // Wrong type for AAAA: treated as not found.
            _ => Answer::A {
                records: vec![Ipv4Addr::new(203, 0, 113, 1)],
                ttl: 60,
            },
        };
        res.handle_answer(now, &mut cache, q, answer);
    }
    let c = res.poll_result().unwrap().unwrap();
    assert_eq!(c.len(), 8, "duplicates are removed: 8 addresses per host");
    assert!(c
        .as_slice()
        .iter()
        .all(|c| c.addr.is_ipv4() && c.addr.ip() != Ipv4Addr::new(203, 0, 113, 1)));
}

#[test]
fn targets_come_from_sip_uris_only() {
    assert_eq!(
        Target::from_uri(&Uri::parse("tel:+15551234").unwrap()),
        Err(LocateError::InvalidTarget)
    );
    assert_eq!(
        Target::from_uri(&Uri::parse("sip:a@b.test;transport=carrier-pigeon").unwrap()),
        Err(LocateError::InvalidTarget)
    );
    let t = target("sips:a@B.test:5071;transport=tcp");
    assert_eq!(
        t,
        Target {
            host: "B.test".into(),
            port: Some(5071),
            transport: Some(Transport::Tcp),
            secure: true
        }
    );
    let mut r = Resolution::new(Target::name(""), &Config::default(), 0);
    assert_eq!(r.poll_result(), Some(Err(LocateError::InvalidTarget)));
}

/// The cache on its own.
mod cache {
    use super::*;

    fn a(ttl: u32) -> Answer {
        Answer::A {
            records: vec![Ipv4Addr::LOCALHOST],
            ttl,
        }
    }

    #[test]
    fn answers_expire_with_their_ttl() {
        let t0 = Instant::now();
        let mut c = Cache::new(10);
        let q = Query::new("Host.Example.", RecordType::A);
        c.insert(t0, &q, &a(30));
        assert_eq!(
            c.get(t0, &Query::new("host.example", RecordType::A)),
            Some(&a(30))
        );
        assert!(c.get(t0 + Duration::from_secs(29), &q).is_some());
        assert!(c.get(t0 + Duration::from_secs(30), &q).is_none());
        c.purge(t0 + Duration::from_secs(31));
        assert!(c.is_empty());
    }

    #[test]
    fn negative_answers_are_bounded_and_failures_not_kept() {
        let t0 = Instant::now();
        let mut c = Cache::new(10);
        let q = Query::new("nx.example", RecordType::Srv);
        c.insert(t0, &q, &Answer::NotFound { ttl: 86_400 });
        assert!(c.get(t0 + Duration::from_secs(299), &q).is_some());
        assert!(c.get(t0 + Duration::from_secs(300), &q).is_none());
        let q2 = Query::new("down.example", RecordType::Srv);
        c.insert(t0, &q2, &Answer::Failed);
        c.insert(t0, &q2, &Answer::NotFound { ttl: 0 });
        c.insert(t0, &q2, &a(60)); // wrong type for an SRV query
        assert!(c.get(t0, &q2).is_none());
    }

    #[test]
    fn a_full_cache_evicts_the_expired_then_the_soonest_to_expire() {
        let t0 = Instant::now();
        let mut c = Cache::new(2);
        let q = |n: &str| Query::new(n, RecordType::A);
        c.insert(t0, &q("a"), &a(10));
        c.insert(t0, &q("b"), &a(100));
        c.insert(t0, &q("c"), &a(50));
        assert_eq!(c.len(), 2);
        assert!(c.get(t0, &q("a")).is_none());
        assert!(c.get(t0, &q("b")).is_some() && c.get(t0, &q("c")).is_some());
        // At t0+60 "c" has expired: it makes room.
        c.insert(t0 + Duration::from_secs(60), &q("d"), &a(10));
        assert!(c.get(t0 + Duration::from_secs(60), &q("b")).is_some());
        assert!(c.get(t0 + Duration::from_secs(60), &q("d")).is_some());
        assert_eq!(c.len(), 2);
    }
}
