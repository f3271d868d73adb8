//! `habla serve` forwards requests for other domains where RFC 3263 says
//! (NAPTR → SRV → A from a DNS server on loopback, `[dns] servers`), or to
//! the configured outbound proxy (`[proxy] outbound`). Loopback only: the
//! DNS server is the tiny responder in `support/dns.rs`.

#[path = "support/dns.rs"]
mod dns;

use bytes::Bytes;
use dns::Rec;
use habla_message::Message;
use hickory_resolver::proto::rr::RecordType;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Server {
    child: Child,
    udp: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("habla-dns-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `habla serve` with auth off, on 127.0.0.1, with `extra` appended to its
/// configuration file.
fn start(name: &str, extra: &str) -> Server {
    let dir = temp_dir(name);
    let conf = dir.join("habla.toml");
    std::fs::write(
        &conf,
        format!(
            "listen = [\"127.0.0.1:0\"]\n\
             [database]\npath = {:?}\n\
             [auth]\nenabled = false\n{extra}",
            dir.join("habla.db").to_str().unwrap()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_habla"))
        .args(["serve", "--config", conf.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("habla starts");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut udp = None;
    for _ in 0..8 {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(a) = line.trim().strip_prefix("listening on udp:") {
            udp = Some(a.parse().unwrap());
            break;
        }
    }
    std::thread::spawn(move || for _ in out.lines() {});
    Server {
        child,
        udp: udp.expect("habla printed its UDP address"),
    }
}

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn recv(s: &UdpSocket) -> Option<(Message, SocketAddr)> {
    let mut buf = [0u8; 65536];
    loop {
        let (n, from) = s.recv_from(&mut buf).ok()?;
        let m = Message::parse(Bytes::copy_from_slice(&buf[..n])).unwrap();
        if m.status().is_none_or(|c| c >= 200) {
            return Some((m, from));
        }
    }
}

fn message(client: &UdpSocket, to: &str, call_id: &str) -> Vec<u8> {
    let port = client.local_addr().unwrap().port();
    format!(
        "MESSAGE {to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@client.test>;tag=a1\r\n\
         To: <{to}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 MESSAGE\r\n\
         Content-Type: text/plain\r\n\
         Content-Length: 5\r\n\r\nhello"
    )
    .into_bytes()
}

/// The callee answers 200 to what it received; the client must get it.
fn answer_and_check(callee: &UdpSocket, client: &UdpSocket, req: &Message, from: SocketAddr) {
    let ok = req.response(200).to_tag(req, "callee").to_bytes().unwrap();
    callee.send_to(&ok, from).unwrap();
    let (resp, _) = recv(client).expect("the 200 comes back through habla");
    assert_eq!(resp.status(), Some(200));
}

#[test]
fn a_request_for_another_domain_follows_naptr_and_srv() {
    let callee = socket();
    let port = callee.local_addr().unwrap().port();
    let zone = vec![
        (
            "example.test",
            Rec::Naptr(10, 10, "s", "SIP+D2U", "_sip._udp.example.test"),
        ),
        (
            "example.test",
            Rec::Naptr(20, 10, "s", "SIP+D2T", "_sip._tcp.example.test"),
        ),
        // The UDP service, on the callee's port; TCP is second choice.
        (
            "_sip._udp.example.test",
            Rec::Srv(10, 0, port, "callee.example.test"),
        ),
        (
            "_sip._tcp.example.test",
            Rec::Srv(10, 0, 9, "callee.example.test"),
        ),
        ("callee.example.test", Rec::A(Ipv4Addr::LOCALHOST)),
    ];
    let dns = dns::start(zone, 300);
    let server = start(
        "srv",
        &format!("[dns]\nservers = [\"{}\"]\ntimeout_ms = 500\n", dns.addr),
    );
    let client = socket();
    client
        .send_to(
            &message(&client, "sip:bob@example.test", "dns-srv-1"),
            server.udp,
        )
        .unwrap();
    let (req, from) = recv(&callee).expect("habla forwarded the MESSAGE to the SRV target");
    assert_eq!(req.request_uri_str(), Some("sip:bob@example.test"));
    assert_eq!(req.body().as_ref(), b"hello");
    assert_eq!(from.ip(), server.udp.ip());
    answer_and_check(&callee, &client, &req, from);
    let asked = dns.queries.lock().unwrap().clone();
    assert_eq!(
        asked[0],
        ("example.test".into(), RecordType::NAPTR),
        "{asked:?}"
    );
    assert!(asked.contains(&("_sip._udp.example.test".into(), RecordType::SRV)));
    assert!(asked.contains(&("callee.example.test".into(), RecordType::A)));

    // A second request is resolved from the cache: no new query.
    let n = asked.len();
    client
        .send_to(
            &message(&client, "sip:bob@example.test", "dns-srv-2"),
            server.udp,
        )
        .unwrap();
    let (req, from) = recv(&callee).expect("the second MESSAGE arrives too");
    answer_and_check(&callee, &client, &req, from);
    assert_eq!(dns.queries.lock().unwrap().len(), n);

    // A domain without any record: the client gets an error, not silence.
    client
        .send_to(
            &message(&client, "sip:bob@nowhere.test", "dns-srv-3"),
            server.udp,
        )
        .unwrap();
    let (resp, _) = recv(&client).expect("an error response");
    assert!(resp.status().unwrap() >= 400, "{:?}", resp.status());
}

#[test]
fn requests_for_other_domains_go_to_the_outbound_proxy() {
    let outbound = socket();
    let dns = dns::start(Vec::new(), 300);
    let server = start(
        "outbound",
        &format!(
            "[proxy]\noutbound = \"sip:{};lr\"\n[dns]\nservers = [\"{}\"]\n",
            outbound.local_addr().unwrap(),
            dns.addr
        ),
    );
    let client = socket();
    client
        .send_to(
            &message(&client, "sip:carol@elsewhere.test", "dns-ob-1"),
            server.udp,
        )
        .unwrap();
    let (req, from) = recv(&outbound).expect("habla sent the MESSAGE to the outbound proxy");
    // The Request-URI is untouched: the outbound proxy routes it on.
    assert_eq!(req.request_uri_str(), Some("sip:carol@elsewhere.test"));
    answer_and_check(&outbound, &client, &req, from);
    assert!(
        dns.queries.lock().unwrap().is_empty(),
        "no DNS for an IP outbound proxy"
    );
}

/// RFC 3263 §4.3: when the first SRV target answers 503, the request goes
/// to the next one in a new transaction (new branch ID), and that target's
/// answer is the one the client gets.
#[test]
fn a_503_from_the_first_srv_target_fails_over_to_the_next() {
    let first = socket();
    let second = socket();
    let zone = vec![
        (
            "_sip._udp.failover.test",
            Rec::Srv(
                10,
                0,
                first.local_addr().unwrap().port(),
                "one.failover.test",
            ),
        ),
        (
            "_sip._udp.failover.test",
            Rec::Srv(
                20,
                0,
                second.local_addr().unwrap().port(),
                "two.failover.test",
            ),
        ),
        ("one.failover.test", Rec::A(Ipv4Addr::LOCALHOST)),
        ("two.failover.test", Rec::A(Ipv4Addr::LOCALHOST)),
    ];
    let dns = dns::start(zone, 300);
    let server = start(
        "failover",
        &format!("[dns]\nservers = [\"{}\"]\ntimeout_ms = 500\n", dns.addr),
    );
    let client = socket();
    client
        .send_to(
            &message(&client, "sip:bob@failover.test", "dns-failover-1"),
            server.udp,
        )
        .unwrap();
    let (req1, from1) = recv(&first).expect("the first SRV target gets the MESSAGE");
    let busy = req1.response(503).to_tag(&req1, "one").to_bytes().unwrap();
    first.send_to(&busy, from1).unwrap();
    let (req2, from2) = recv(&second).expect("after the 503 the next target gets it");
    assert_eq!(req2.body().as_ref(), b"hello");
    let branch = |m: &Message| m.top_via().unwrap().branch().unwrap().to_owned();
    assert_ne!(branch(&req1), branch(&req2), "a new transaction");
    // The second target's answer (not a 2xx, which would pass even without
    // the failover: a stray 2xx is relayed) reaches the client, not the 503
    // (a proxy turns a 503 into 500, RFC 3261 §16.7 step 6).
    let not_here = req2.response(404).to_tag(&req2, "two").to_bytes().unwrap();
    second.send_to(&not_here, from2).unwrap();
    let (resp, _) = recv(&client).expect("a final response");
    assert_eq!(resp.status(), Some(404));
}
