//! A tiny authoritative DNS responder for tests: UDP on 127.0.0.1, answers
//! NAPTR/SRV/A/AAAA from a table (NXDOMAIN for unknown names, NODATA for
//! known names without that type, both with an SOA for negative caching).
//! Loopback only; it stops when dropped. Shared by the resolver's unit
//! tests (`src/resolve.rs`) and the `habla serve` integration test.

#![allow(dead_code)]

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, NAPTR, SOA, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One record of the table.
#[derive(Debug, Clone)]
pub enum Rec {
    /// order, preference, flags, service, replacement
    Naptr(u16, u16, &'static str, &'static str, &'static str),
    /// priority, weight, port, target
    Srv(u16, u16, u16, &'static str),
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
}

/// The running responder.
pub struct DnsServer {
    /// Where it listens (UDP).
    pub addr: SocketAddr,
    /// Every query received, as (name without trailing dot, type).
    pub queries: Arc<Mutex<Vec<(String, RecordType)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn name(s: &str) -> Name {
    let fq = if s.ends_with('.') {
        s.to_string()
    } else {
        format!("{s}.")
    };
    Name::from_ascii(fq).expect("a valid test name")
}

fn key(n: &Name) -> String {
    n.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

fn rtype(r: &Rec) -> RecordType {
    match r {
        Rec::Naptr(..) => RecordType::NAPTR,
        Rec::Srv(..) => RecordType::SRV,
        Rec::A(_) => RecordType::A,
        Rec::Aaaa(_) => RecordType::AAAA,
    }
}

fn rdata(r: &Rec) -> RData {
    match r {
        Rec::Naptr(order, pref, flags, service, replacement) => RData::NAPTR(NAPTR::new(
            *order,
            *pref,
            flags.as_bytes().into(),
            service.as_bytes().into(),
            Box::new([]),
            name(replacement),
        )),
        Rec::Srv(p, w, port, target) => RData::SRV(SRV::new(*p, *w, *port, name(target))),
        Rec::A(a) => RData::A(A(*a)),
        Rec::Aaaa(a) => RData::AAAA(AAAA(*a)),
    }
}

/// Starts answering from `zone` (name, record) with TTL `ttl`.
pub fn start(zone: Vec<(&'static str, Rec)>, ttl: u32) -> DnsServer {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind the test DNS server");
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let queries = Arc::new(Mutex::new(Vec::new()));
    let zone: Vec<(String, Rec)> = zone
        .into_iter()
        .map(|(n, r)| (n.trim_end_matches('.').to_ascii_lowercase(), r))
        .collect();
    let thread = {
        let stop = stop.clone();
        let queries = queries.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(req) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let Some(q) = req.queries().first().cloned() else {
                    continue;
                };
                let qname = key(q.name());
                queries
                    .lock()
                    .unwrap()
                    .push((qname.clone(), q.query_type()));
                let mut resp = Message::new();
                resp.set_id(req.id())
                    .set_message_type(MessageType::Response)
                    .set_op_code(req.op_code())
                    .set_authoritative(true)
                    .set_recursion_desired(req.recursion_desired())
                    .set_recursion_available(true)
                    .add_query(q.clone());
                let mut known = false;
                for (n, r) in &zone {
                    if *n != qname {
                        continue;
                    }
                    known = true;
                    if rtype(r) == q.query_type() {
                        resp.add_answer(Record::from_rdata(q.name().clone(), ttl, rdata(r)));
                    }
                }
                if resp.answers().is_empty() {
                    if !known {
                        resp.set_response_code(ResponseCode::NXDomain);
                    }
                    let soa = SOA::new(name("ns.test"), name("admin.test"), 1, 60, 60, 60, 30);
                    resp.add_name_server(Record::from_rdata(name("test"), 30, RData::SOA(soa)));
                }
                if let Ok(bytes) = resp.to_vec() {
                    let _ = sock.send_to(&bytes, from);
                }
            }
        })
    };
    DnsServer {
        addr,
        queries,
        stop,
        thread: Some(thread),
    }
}
