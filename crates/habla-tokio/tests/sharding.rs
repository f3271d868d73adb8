//! A sharded endpoint: every message reaches the shard that holds its
//! transaction. Many concurrent transactions from many sources over UDP and
//! TCP, CANCEL on the INVITE's shard, responses on the sending shard, and a
//! property check of the dispatch rule.

mod common;

use common::*;
use habla_message::{Message, Method, RequestBuilder, Uri};
use habla_tokio::{
    mark_branch, shard_of, Destination, Endpoint, Event, ShardedEndpoint, TransactionKey, Transport,
};
use habla_transaction::new_branch;
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::{TcpStream, UdpSocket};

const SHARDS: usize = 4;

fn rng() -> impl FnMut() -> u64 {
    static SEED: AtomicU64 = AtomicU64::new(0x5EED_0001);
    let mut x: u64 = SEED.fetch_add(0x9E37_79B9, Ordering::Relaxed) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

#[derive(Default)]
struct Counters {
    requests: [AtomicU64; SHARDS],
    /// CANCELs whose INVITE was not on their shard.
    cancel_misses: AtomicU64,
    cancels_matched: AtomicU64,
    /// ACKs that reached a TU (an ACK for a non-2xx must be absorbed by
    /// the INVITE's server transaction, on the INVITE's shard).
    acks_up: AtomicU64,
    strays: AtomicU64,
}

/// One TU per shard: INVITE → 180 and wait for the CANCEL (then 200 to the
/// CANCEL, 487 to the INVITE); anything else → 200.
async fn server_tu(mut ep: Endpoint, c: Arc<Counters>) {
    let h = ep.handle();
    let mut invites: HashMap<TransactionKey, Message> = HashMap::new();
    while let Some(ev) = ep.recv().await {
        match ev {
            Event::Request {
                key,
                request,
                cancels,
                ..
            } => {
                c.requests[h.shard()].fetch_add(1, Ordering::Relaxed);
                match request.method() {
                    Some(Method::Invite) => {
                        let r = request.response(180).to_tag(&request, "s").build();
                        let _ = h.send_response(key, r.unwrap()).await;
                        invites.insert(key, request);
                    }
                    Some(Method::Cancel) => {
                        match cancels.and_then(|k| invites.remove(&k).map(|i| (k, i))) {
                            Some((ik, invite)) => {
                                c.cancels_matched.fetch_add(1, Ordering::Relaxed);
                                let ok = request.response(200).build().unwrap();
                                let _ = h.send_response(key, ok).await;
                                let r = invite.response(487).to_tag(&invite, "s").build();
                                let _ = h.send_response(ik, r.unwrap()).await;
                            }
                            None => {
                                c.cancel_misses.fetch_add(1, Ordering::Relaxed);
                                let r = request.response(481).build().unwrap();
                                let _ = h.send_response(key, r).await;
                            }
                        }
                    }
                    _ => {
                        let r = request.response(200).build().unwrap();
                        let _ = h.send_response(key, r).await;
                    }
                }
            }
            Event::Ack { .. } => {
                c.acks_up.fetch_add(1, Ordering::Relaxed);
            }
            Event::StrayResponse { .. } => {
                c.strays.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

async fn start_server() -> (ShardedEndpoint, Arc<Counters>) {
    let mut ep = ShardedEndpoint::bind(loopback_config(), Default::default(), SHARDS)
        .await
        .unwrap();
    assert_eq!(ep.len(), SHARDS);
    let c = Arc::new(Counters::default());
    for s in ep.take_shards() {
        tokio::spawn(server_tu(s, c.clone()));
    }
    (ep, c)
}

fn tu_request(method: Method, to: &str, r: &mut impl FnMut() -> u64) -> Message {
    RequestBuilder::new(method, &Uri::parse(to).unwrap())
        .via("UDP", "placeholder.invalid", &new_branch(r), true)
        .max_forwards(70)
        .from(&format!("<sip:client@127.0.0.1>;tag=c{:x}", r()))
        .to(&format!("<{to}>"))
        .call_id(&format!("{:x}@shard-test", r()))
        .cseq(1)
        .build()
        .unwrap()
}

fn raw(method: &str, via: &str, call: &str, seq: u32, to_tag: &str) -> String {
    format!(
        "{method} sip:svc@127.0.0.1 SIP/2.0\r\n\
         Via: {via}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:raw@127.0.0.1>;tag=f{call}\r\n\
         To: <sip:svc@127.0.0.1>{to_tag}\r\n\
         Call-ID: {call}@raw\r\n\
         CSeq: {seq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

async fn recv_status(sock: &UdpSocket, want: u16) -> Message {
    loop {
        let m = parse(&recv_datagram(sock).await);
        if m.status() == Some(want) {
            return m;
        }
    }
}

/// Many raw UDP sources: OPTIONS, and INVITE → 180 → CANCEL → 200 + 487 →
/// ACK, with RFC 3261 branches and with RFC 2543 (no magic cookie) Vias.
async fn udp_source(server: std::net::SocketAddr, i: usize, rfc2543: bool) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = sock.local_addr().unwrap();
    for n in 0..5 {
        let via = format!("SIP/2.0/UDP {me};branch=z9hG4bKopt{i}x{n}");
        let call = format!("opt{i}x{n}");
        sock.send_to(raw("OPTIONS", &via, &call, 1, "").as_bytes(), server)
            .await
            .unwrap();
        recv_status(&sock, 200).await;
    }
    let via = if rfc2543 {
        format!("SIP/2.0/UDP {me}")
    } else {
        format!("SIP/2.0/UDP {me};branch=z9hG4bKinv{i}")
    };
    let call = format!("inv{i}");
    sock.send_to(raw("INVITE", &via, &call, 7, "").as_bytes(), server)
        .await
        .unwrap();
    recv_status(&sock, 180).await;
    sock.send_to(raw("CANCEL", &via, &call, 7, "").as_bytes(), server)
        .await
        .unwrap();
    // 200 (CANCEL) and 487 (INVITE), in either order.
    let mut got = Vec::new();
    while got.len() < 2 {
        let m = parse(&recv_datagram(&sock).await);
        match m.status() {
            Some(200) | Some(487) => {
                let method = m.cseq().unwrap().method.clone();
                if !got.contains(&method) {
                    got.push(method);
                }
            }
            _ => {}
        }
    }
    assert!(got.contains(&Method::Cancel) && got.contains(&Method::Invite));
    sock.send_to(raw("ACK", &via, &call, 7, ";tag=s").as_bytes(), server)
        .await
        .unwrap();
}

/// A raw TCP source: several OPTIONS pipelined on one connection.
async fn tcp_source(server: std::net::SocketAddr, i: usize) {
    use tokio::io::AsyncWriteExt;
    let mut s = TcpStream::connect(server).await.unwrap();
    let me = s.local_addr().unwrap();
    let mut all = String::new();
    for n in 0..8 {
        let via = format!("SIP/2.0/TCP {me};branch=z9hG4bKtcp{i}x{n}");
        all.push_str(&raw("OPTIONS", &via, &format!("tcp{i}x{n}"), 1, ""));
    }
    s.write_all(all.as_bytes()).await.unwrap();
    // One framer for the whole connection: responses arrive back to back.
    use tokio::io::AsyncReadExt;
    let mut framer = habla_message::StreamFramer::new(Default::default());
    let mut buf = [0u8; 4096];
    let mut got = 0;
    while got < 8 {
        while let Some(f) = framer.next_frame().unwrap() {
            if let habla_message::Frame::Message(b) = f {
                assert_eq!(parse(&b).status(), Some(200));
                got += 1;
            }
        }
        if got == 8 {
            break;
        }
        let n = within("a TCP message", s.read(&mut buf)).await.unwrap();
        assert!(n > 0, "connection closed");
        framer.push(&buf[..n]).unwrap();
    }
}

/// A sharded client: each shard sends OPTIONS over UDP and TCP and an
/// INVITE it then CANCELs; every response must come back to the shard
/// that sent the request, matched to its transaction.
async fn client_shard(
    mut ep: Endpoint,
    server_udp: std::net::SocketAddr,
    server_tcp: std::net::SocketAddr,
) -> u64 {
    let h = ep.handle();
    let mut r = rng();
    let mut keys = HashMap::new();
    for n in 0..20 {
        let (t, a) = if n % 2 == 0 {
            (Transport::Udp, server_udp)
        } else {
            (Transport::Tcp, server_tcp)
        };
        let req = tu_request(Method::Options, &format!("sip:svc@{a}"), &mut r);
        let k = h
            .send_request(req, Destination::Address(t, a))
            .await
            .unwrap();
        keys.insert(k, 200u16);
    }
    let invite = tu_request(Method::Invite, &format!("sip:svc@{server_udp}"), &mut r);
    let ik = h
        .send_request(
            invite.clone(),
            Destination::Address(Transport::Udp, server_udp),
        )
        .await
        .unwrap();
    let mut matched = 0u64;
    let mut cancelled = false;
    let mut got_487 = false;
    let mut cancel_ok = false;
    while !(keys.is_empty() && got_487 && cancel_ok) {
        match within("a client event", ep.recv())
            .await
            .expect("driver alive")
        {
            Event::Response { key, response, .. } => {
                let status = response.status().unwrap();
                if key == ik {
                    if status == 180 && !cancelled {
                        cancelled = true;
                        // The CANCEL reuses the INVITE's branch as the TU
                        // built it; the shard marks both the same way.
                        let cancel = habla_dialog_free_cancel(&invite);
                        h.send_request(cancel, Destination::Address(Transport::Udp, server_udp))
                            .await
                            .unwrap();
                    } else if status == 487 {
                        got_487 = true;
                    }
                } else if let Some(want) = keys.remove(&key) {
                    assert_eq!(status, want);
                    matched += 1;
                } else if response.cseq().unwrap().method == Method::Cancel {
                    assert_eq!(status, 200);
                    cancel_ok = true;
                } else {
                    panic!("a response for no transaction of this shard: {response:?}");
                }
            }
            Event::StrayResponse { response, .. } => {
                panic!("stray response on shard {}: {response:?}", h.shard())
            }
            Event::Timeout { key, .. } => panic!("timeout of {key:?}"),
            _ => {}
        }
    }
    matched
}

/// RFC 3261 §9.1: the CANCEL of `invite` (same Request-URI, Call-ID, To,
/// From, CSeq number and top Via).
fn habla_dialog_free_cancel(invite: &Message) -> Message {
    let via = invite.top_via().unwrap();
    RequestBuilder::new(
        Method::Cancel,
        &Uri::parse(invite.request_uri_str().unwrap()).unwrap(),
    )
    .via("UDP", "placeholder.invalid", via.branch().unwrap(), true)
    .max_forwards(70)
    .from(invite.from().unwrap().as_str())
    .to(invite.to().unwrap().as_str())
    .call_id(invite.call_id().unwrap().as_str())
    .cseq(invite.cseq().unwrap().seq)
    .build()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_shards_match_every_transaction_from_many_sources() {
    let (server, c) = start_server().await;
    let udp = server.local_addr(Transport::Udp).unwrap();
    let tcp = server.local_addr(Transport::Tcp).unwrap();

    let mut jobs = Vec::new();
    for i in 0..24 {
        jobs.push(tokio::spawn(udp_source(udp, i, i % 3 == 0)));
    }
    for i in 0..8 {
        jobs.push(tokio::spawn(tcp_source(tcp, i)));
    }
    let mut client = ShardedEndpoint::bind(loopback_config(), Default::default(), SHARDS)
        .await
        .unwrap();
    let mut clients = Vec::new();
    for s in client.take_shards() {
        clients.push(tokio::spawn(client_shard(s, udp, tcp)));
    }
    for j in jobs {
        within("a source", j).await.unwrap();
    }
    let mut matched = 0;
    for j in clients {
        matched += within("a client shard", j).await.unwrap();
    }
    assert_eq!(matched, 20 * SHARDS as u64);
    // Let the ACKs land.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(c.cancel_misses.load(Ordering::Relaxed), 0);
    assert_eq!(
        c.cancels_matched.load(Ordering::Relaxed),
        24 + SHARDS as u64
    );
    assert_eq!(
        c.acks_up.load(Ordering::Relaxed),
        0,
        "an ACK left its INVITE's shard"
    );
    assert_eq!(c.strays.load(Ordering::Relaxed), 0);
    let per_shard: Vec<u64> = c
        .requests
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .collect();
    assert!(
        per_shard.iter().all(|&n| n > 0),
        "every shard took requests: {per_shard:?}"
    );
    let st = server.stats();
    assert_eq!(st.unmatchable, 0);
    assert_eq!(st.overload_rejections, 0);
}

fn invite_family(branch: Option<&str>, call: &str, from_tag: &str, seq: u32) -> Vec<Message> {
    let via = match branch {
        Some(b) => format!("SIP/2.0/UDP 192.0.2.1:5060;branch={b}"),
        None => "SIP/2.0/UDP 192.0.2.1:5060".to_string(),
    };
    let one = |method: &str, to_tag: &str, via: &str| {
        let text = format!(
            "{method} sip:bob@example.org SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
             From: <sip:alice@example.org>;tag={from_tag}\r\nTo: <sip:bob@example.org>{to_tag}\r\n\
             Call-ID: {call}\r\nCSeq: {seq} {method}\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(bytes::Bytes::from(text)).unwrap()
    };
    vec![
        one("INVITE", "", &via),
        // A retransmission, stamped with received/rport by our transport.
        one(
            "INVITE",
            "",
            &format!("{via};received=198.51.100.7;rport=40000"),
        ),
        one("CANCEL", "", &via),
        one("ACK", ";tag=callee", &via),
    ]
}

proptest! {
    #[test]
    fn an_invite_its_retransmissions_cancel_and_ack_share_a_shard(
        rfc3261 in any::<bool>(),
        branch in "[a-zA-Z0-9.~_-]{1,24}",
        call in "[a-zA-Z0-9.-]{1,20}(@[a-z0-9.]{1,10})?",
        from_tag in "[a-z0-9]{1,12}",
        seq in 1u32..1_000_000,
        shards in 1usize..33,
    ) {
        let b = if rfc3261 { Some(format!("z9hG4bK{branch}")) } else if branch.len() % 2 == 0 { Some(branch.clone()) } else { None };
        let family = invite_family(b.as_deref(), &call, &from_tag, seq);
        let s = shard_of(&family[0], shards);
        prop_assert!(s < shards);
        for m in &family[1..] {
            prop_assert_eq!(shard_of(m, shards), s, "{:?}", m.method());
        }
        // A response to a request a shard sent goes back to that shard.
        for shard in 0..shards {
            let marked = mark_branch(&format!("z9hG4bK{branch}"), shard);
            let text = format!(
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch={marked}\r\n\
                 From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: {call}\r\n\
                 CSeq: {seq} INVITE\r\nContent-Length: 0\r\n\r\n"
            );
            let resp = Message::parse(bytes::Bytes::from(text)).unwrap();
            prop_assert_eq!(shard_of(&resp, shards), if shards > 1 { shard } else { 0 });
        }
    }
}

/// A burst larger than one read of the socket: the first receive thread
/// takes a full batch and calls the socket's other threads in, which read
/// without blocking until the socket is empty; every request is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_calls_the_other_receive_threads_in() {
    // (One receive thread per shard.)
    let (server, _) = start_server().await;
    let udp = server.local_addr(Transport::Udp).unwrap();
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let me = sock.local_addr().unwrap();
    // (Small enough for the sockets' buffers; answers read as they come.)
    const BURST: usize = 120;
    let reader = {
        let sock = sock.clone();
        tokio::spawn(async move {
            let mut answered = 0;
            while answered < BURST {
                let m = parse(&within("a 200", recv_datagram(&sock)).await);
                if m.status() == Some(200) {
                    answered += 1;
                }
            }
        })
    };
    for n in 0..BURST {
        let via = format!("SIP/2.0/UDP {me};branch=z9hG4bKburst{n}");
        sock.send_to(
            raw("OPTIONS", &via, &format!("burst{n}"), 1, "").as_bytes(),
            udp,
        )
        .await
        .unwrap();
    }
    reader.await.unwrap();
    assert!(
        server.stats().udp_helper_batches > 0,
        "the helper thread never read: {:?}",
        server.stats()
    );
}
