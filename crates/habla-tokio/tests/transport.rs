//! The transports and the driver on loopback sockets (port 0 only).

mod common;

use common::*;
use habla_message::{Message, Method, RequestBuilder, Uri};
use habla_tokio::{Destination, Endpoint, Event, Flow, Handle, Transport, TransportConfig};
use habla_transaction::new_branch;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

fn rng() -> impl FnMut() -> u64 {
    static SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0x9E37_79B9);
    let mut x: u64 = SEED.fetch_add(0x7F4A_7C15, std::sync::atomic::Ordering::Relaxed) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// An OPTIONS (or other) request built by a TU: the transport fills the
/// Via's transport and sent-by.
fn tu_request(method: Method, to: &str, extra_len: usize) -> Message {
    let mut r = rng();
    let mut b = RequestBuilder::new(method, &Uri::parse(to).unwrap())
        .via("UDP", "placeholder.invalid", &new_branch(&mut r), true)
        .max_forwards(70)
        .from("<sip:client@127.0.0.1>;tag=c1")
        .to(&format!("<{to}>"))
        .call_id(&format!("{:x}@test", r()))
        .cseq(1);
    if extra_len > 0 {
        b = b.header("X-Padding", &"p".repeat(extra_len));
    }
    b.build().unwrap()
}

async fn next_response(ep: &mut Endpoint) -> Message {
    loop {
        match within("a response event", ep.recv())
            .await
            .expect("driver alive")
        {
            Event::Response { response, .. } => return response,
            Event::Timeout { timer, .. } => panic!("transaction timed out ({timer:?})"),
            _ => {}
        }
    }
}

/// Answers `req` (transaction `key`) with a 200 made from it.
async fn answer_200(h: &Handle, key: habla_tokio::TransactionKey, req: &Message) {
    h.send_response(key, req.response(200).build().unwrap())
        .await
        .unwrap();
}

async fn next_request(ep: &mut Endpoint) -> (habla_tokio::TransactionKey, Message, Flow) {
    loop {
        if let Event::Request {
            key,
            request,
            source,
            ..
        } = within("a request event", ep.recv())
            .await
            .expect("driver alive")
        {
            return (key, request, source.addr);
        }
    }
}

#[tokio::test]
async fn udp_round_trip_options_200_and_other_501() {
    let server = OptionsServer::start(loopback_config()).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = sock.local_addr().unwrap();
    let via = format!("SIP/2.0/UDP {me};branch=z9hG4bKudp1");
    sock.send_to(request("OPTIONS", 1, &via, "").as_bytes(), server.udp)
        .await
        .unwrap();
    let r = parse(&recv_datagram(&sock).await);
    assert_eq!(r.status(), Some(200));
    assert_eq!(r.header("Allow"), Some("OPTIONS"));
    assert!(r.header("Accept").is_some() && r.header("Supported").is_some());
    assert!(r.to().unwrap().tag().is_some());
    // Host and port match the source and no rport: the Via is untouched.
    assert_eq!(r.top_via().unwrap().as_str(), via);

    let via = format!("SIP/2.0/UDP {me};branch=z9hG4bKudp2");
    sock.send_to(request("MESSAGE", 2, &via, "").as_bytes(), server.udp)
        .await
        .unwrap();
    assert_eq!(parse(&recv_datagram(&sock).await).status(), Some(501));

    // A retransmission is absorbed by the server transaction, which
    // resends its response (one response per copy, same bytes).
    let first = {
        let via = format!("SIP/2.0/UDP {me};branch=z9hG4bKudp3");
        let req = request("OPTIONS", 3, &via, "");
        sock.send_to(req.as_bytes(), server.udp).await.unwrap();
        let a = recv_datagram(&sock).await;
        sock.send_to(req.as_bytes(), server.udp).await.unwrap();
        let b = recv_datagram(&sock).await;
        assert_eq!(a, b, "retransmitted response differs");
        a
    };
    assert_eq!(parse(&first).status(), Some(200));
}

#[tokio::test]
async fn tcp_round_trip_and_responses_on_the_same_connection() {
    let server = OptionsServer::start(loopback_config()).await;
    let mut s = TcpStream::connect(server.tcp).await.unwrap();
    let me = s.local_addr().unwrap();
    for seq in 1..=3 {
        let via = format!("SIP/2.0/TCP {me};branch=z9hG4bKtcp{seq}");
        s.write_all(request("OPTIONS", seq, &via, "").as_bytes())
            .await
            .unwrap();
        let r = read_message(&mut s).await;
        assert_eq!(r.status(), Some(200));
        assert_eq!(r.cseq().unwrap().seq, seq);
    }
    let st = server.handle.stats();
    assert_eq!(st.connections_accepted, 1);
    assert_eq!(st.stream_messages_received, 3);
}

#[tokio::test]
async fn endpoint_to_endpoint_over_udp_and_tcp() {
    let server = OptionsServer::start(loopback_config()).await;
    let mut client = Endpoint::bind(loopback_config(), Default::default())
        .await
        .unwrap();
    let h = client.handle();
    for (t, addr, token) in [
        (Transport::Udp, server.udp, "UDP"),
        (Transport::Tcp, server.tcp, "TCP"),
    ] {
        let uri = format!("sip:ping@{addr}");
        let req = tu_request(Method::Options, &uri, 0);
        h.send_request(req, Destination::Address(t, addr))
            .await
            .unwrap();
        let resp = next_response(&mut client).await;
        assert_eq!(resp.status(), Some(200));
        let via = resp.top_via().unwrap();
        // The transport wrote the sent-by: the client's listening address.
        assert_eq!(via.transport(), token);
        assert_eq!(via.host().as_str(), "127.0.0.1");
        assert_eq!(
            Some(via.port().unwrap()),
            client.local_addr(t).map(|a| a.port())
        );
    }
    client.shutdown().await;
}

#[tokio::test]
async fn tcp_connections_are_reused_both_ways() {
    let mut server = Endpoint::bind(loopback_config(), Default::default())
        .await
        .unwrap();
    let mut client = Endpoint::bind(loopback_config(), Default::default())
        .await
        .unwrap();
    let (sh, ch) = (server.handle(), client.handle());
    let server_tcp = server.local_addr(Transport::Tcp).unwrap();
    let uri = format!("sip:s@{server_tcp}");
    let mut flows = Vec::new();
    for _ in 0..3 {
        ch.send_request(
            tu_request(Method::Options, &uri, 0),
            Destination::Address(Transport::Tcp, server_tcp),
        )
        .await
        .unwrap();
        let (key, req, flow) = next_request(&mut server).await;
        answer_200(&sh, key, &req).await;
        assert_eq!(next_response(&mut client).await.status(), Some(200));
        flows.push(flow);
    }
    assert!(flows.iter().all(|f| *f == flows[0]), "one flow: {flows:?}");
    assert!(flows[0].is_stream());
    // Now the server sends a request back over the client's connection.
    let back = format!("sip:c@{}", flows[0].remote);
    sh.send_request(tu_request(Method::Options, &back, 0), flows[0])
        .await
        .unwrap();
    let (key, req, cflow) = next_request(&mut client).await;
    assert_eq!(
        cflow.remote, server_tcp,
        "came over the client's connection"
    );
    assert_eq!(req.top_via().unwrap().transport(), "TCP");
    answer_200(&ch, key, &req).await;
    assert_eq!(next_response(&mut server).await.status(), Some(200));
    // Also addressing the client's remote address reuses the connection.
    sh.send_request(
        tu_request(Method::Options, &back, 0),
        Destination::Address(Transport::Tcp, flows[0].remote),
    )
    .await
    .unwrap();
    let (_, _, cflow2) = next_request(&mut client).await;
    assert_eq!(cflow2, cflow);
    let (ss, cs) = (server.stats(), client.stats());
    assert_eq!(
        (ss.connections_accepted, ss.connections_opened),
        (1, 0),
        "{ss:?}"
    );
    assert_eq!(
        (cs.connections_accepted, cs.connections_opened),
        (0, 1),
        "{cs:?}"
    );
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn crlf_ping_is_answered_with_crlf() {
    let server = OptionsServer::start(loopback_config()).await;
    let mut s = TcpStream::connect(server.tcp).await.unwrap();
    for _ in 0..2 {
        s.write_all(b"\r\n\r\n").await.unwrap();
        let mut pong = [0u8; 2];
        within("a pong", s.read_exact(&mut pong)).await.unwrap();
        assert_eq!(&pong, b"\r\n");
    }
    // The connection still carries messages afterwards.
    let me = s.local_addr().unwrap();
    let via = format!("SIP/2.0/TCP {me};branch=z9hG4bKping");
    s.write_all(request("OPTIONS", 1, &via, "").as_bytes())
        .await
        .unwrap();
    assert_eq!(read_message(&mut s).await.status(), Some(200));
    assert_eq!(server.handle.stats().pings_answered, 2);
}

/// Reads until the server closes the connection (bounded).
async fn expect_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match within("the server to close", s.read(&mut buf)).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn slow_loris_connection_is_closed() {
    let cfg = TransportConfig {
        message_deadline: Duration::from_millis(300),
        ..loopback_config()
    };
    let server = OptionsServer::start(cfg).await;
    let mut s = TcpStream::connect(server.tcp).await.unwrap();
    s.write_all(b"OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP h")
        .await
        .unwrap();
    expect_closed(&mut s).await;
    let st = server.handle.stats();
    assert_eq!((st.closed_slow, st.closed_idle), (1, 0), "{st:?}");
}

#[tokio::test]
async fn idle_connection_is_closed() {
    let cfg = TransportConfig {
        idle_timeout: Duration::from_millis(300),
        ..loopback_config()
    };
    let server = OptionsServer::start(cfg).await;
    let mut s = TcpStream::connect(server.tcp).await.unwrap();
    expect_closed(&mut s).await;
    let st = server.handle.stats();
    assert_eq!((st.closed_idle, st.closed_slow), (1, 0), "{st:?}");
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused() {
    let cfg = TransportConfig {
        max_connections: 1,
        ..loopback_config()
    };
    let server = OptionsServer::start(cfg).await;
    let mut first = TcpStream::connect(server.tcp).await.unwrap();
    // Make sure the first is accepted and served.
    first.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    within("a pong", first.read_exact(&mut pong)).await.unwrap();
    let mut second = TcpStream::connect(server.tcp).await.unwrap();
    expect_closed(&mut second).await;
    assert_eq!(server.handle.stats().connections_refused, 1);
    // The first still works.
    first.write_all(b"\r\n\r\n").await.unwrap();
    within("a pong", first.read_exact(&mut pong)).await.unwrap();
}

#[tokio::test]
async fn oversized_buffer_closes_the_connection() {
    let cfg = TransportConfig {
        max_buffered_per_connection: 4096,
        ..loopback_config()
    };
    let server = OptionsServer::start(cfg).await;
    let mut s = TcpStream::connect(server.tcp).await.unwrap();
    let mut junk = b"OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\nX: ".to_vec();
    junk.resize(8192, b'a');
    // The server may close before reading it all: ignore write errors.
    let _ = s.write_all(&junk).await;
    expect_closed(&mut s).await;
    assert_eq!(server.handle.stats().closed_framing, 1);
}

#[tokio::test]
async fn large_udp_request_moves_to_tcp() {
    let mut server = Endpoint::bind(loopback_config(), Default::default())
        .await
        .unwrap();
    let udp = server.local_addr(Transport::Udp).unwrap();
    assert_eq!(
        Some(udp.port()),
        server.local_addr(Transport::Tcp).map(|a| a.port()),
        "TCP should share the UDP port"
    );
    let mut client = Endpoint::bind(loopback_config(), Default::default())
        .await
        .unwrap();
    let uri = format!("sip:s@{udp}");
    // Small: stays on UDP.
    client
        .handle()
        .send_request(
            tu_request(Method::Options, &uri, 100),
            Destination::Address(Transport::Udp, udp),
        )
        .await
        .unwrap();
    let (key, req, flow) = next_request(&mut server).await;
    assert_eq!(flow.transport, Transport::Udp);
    assert_eq!(req.top_via().unwrap().transport(), "UDP");
    answer_200(&server.handle(), key, &req).await;
    assert_eq!(next_response(&mut client).await.status(), Some(200));
    // Larger than 1300 bytes: RFC 3261 §18.1.1 sends it over TCP.
    client
        .handle()
        .send_request(
            tu_request(Method::Options, &uri, 1400),
            Destination::Address(Transport::Udp, udp),
        )
        .await
        .unwrap();
    let (key, req, flow) = next_request(&mut server).await;
    assert_eq!(flow.transport, Transport::Tcp);
    assert!(req.to_bytes().len() > 1300);
    assert_eq!(req.top_via().unwrap().transport(), "TCP");
    answer_200(&server.handle(), key, &req).await;
    assert_eq!(next_response(&mut client).await.status(), Some(200));
    assert_eq!(client.stats().udp_to_tcp, 1);
    client.shutdown().await;
    server.shutdown().await;
}

/// RFC 3261 §18.1.1: a request too large for UDP goes over TCP, and when
/// the peer takes no TCP connection it is sent over UDP after all (same
/// transaction, Via rewritten to UDP, retransmitted by Timer E).
#[tokio::test]
async fn large_request_to_a_udp_only_peer_falls_back_to_udp() {
    // A peer with a UDP socket and nothing listening on TCP at its port.
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    assert!(
        std::net::TcpListener::bind(peer_addr).is_ok(),
        "the TCP port must be free so that a connect is refused"
    );
    let mut client = Endpoint::bind(loopback_config(), Default::default())
        .await
        .unwrap();
    let key = client
        .handle()
        .send_request(
            tu_request(Method::Options, &format!("sip:s@{peer_addr}"), 1400),
            Destination::Address(Transport::Udp, peer_addr),
        )
        .await
        .unwrap();
    let bytes = recv_datagram(&peer).await;
    let req = parse(&bytes);
    assert!(bytes.len() > 1300);
    assert_eq!(req.top_via().unwrap().transport(), "UDP");
    // Timer E retransmits it over UDP too: it is a live UDP transaction.
    let again = recv_datagram(&peer).await;
    assert_eq!(again, bytes);
    let ok = req.response(200).build().unwrap().to_bytes();
    let to = habla_tokio::via::response_destination(req.top_via().unwrap(), peer_addr);
    peer.send_to(&ok, to).await.unwrap();
    let ev = within("the 200", client.recv()).await.unwrap();
    assert!(
        matches!(&ev, Event::Response { key: k, response, .. } if *k == key && response.status() == Some(200)),
        "{ev:?}"
    );
    assert_eq!(client.stats().udp_to_tcp, 1);
    client.shutdown().await;
}

#[tokio::test]
async fn received_and_rport_are_filled_and_used() {
    let mut server = Endpoint::bind(loopback_config(), Default::default())
        .await
        .unwrap();
    let udp = server.local_addr(Transport::Udp).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = sock.local_addr().unwrap().port();

    // rport asked, sent-by a name and a wrong port: the response goes to
    // the source address and port (RFC 3581).
    let via = "SIP/2.0/UDP client.invalid:9;rport;branch=z9hG4bKrp1";
    sock.send_to(request("OPTIONS", 1, via, "").as_bytes(), udp)
        .await
        .unwrap();
    let (key, req, flow) = next_request(&mut server).await;
    let v = req.top_via().unwrap();
    assert_eq!(v.received(), Some("127.0.0.1"));
    assert_eq!(v.rport(), Some(Some(port)));
    assert_eq!(flow.remote, sock.local_addr().unwrap());
    answer_200(&server.handle(), key, &req).await;
    let r = parse(&recv_datagram(&sock).await);
    assert_eq!(r.status(), Some(200));
    assert_eq!(
        r.top_via().unwrap().as_str(),
        format!("SIP/2.0/UDP client.invalid:9;branch=z9hG4bKrp1;received=127.0.0.1;rport={port}")
    );

    // No rport, host differs: `received` only; the response goes to the
    // received address and the sent-by port (RFC 3261 §18.2.2).
    let via = format!("SIP/2.0/UDP client.invalid:{port};branch=z9hG4bKrp2");
    sock.send_to(request("OPTIONS", 2, &via, "").as_bytes(), udp)
        .await
        .unwrap();
    let (key, req, _) = next_request(&mut server).await;
    assert_eq!(req.top_via().unwrap().rport(), None);
    assert_eq!(req.top_via().unwrap().received(), Some("127.0.0.1"));
    answer_200(&server.handle(), key, &req).await;
    let r = parse(&recv_datagram(&sock).await);
    assert_eq!(r.top_via().unwrap().received(), Some("127.0.0.1"));

    // No rport, and the sent-by port is not the source port: the response
    // (and its retransmission, as bytes) goes to that port, not back to
    // the source (RFC 3261 §18.2.2).
    let listener = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let elsewhere = listener.local_addr().unwrap().port();
    let via = format!("SIP/2.0/UDP client.invalid:{elsewhere};branch=z9hG4bKrp4");
    sock.send_to(request("OPTIONS", 4, &via, "").as_bytes(), udp)
        .await
        .unwrap();
    let (key, req, flow) = next_request(&mut server).await;
    assert_eq!(flow.remote, sock.local_addr().unwrap());
    answer_200(&server.handle(), key, &req).await;
    let r = parse(&recv_datagram(&listener).await);
    assert_eq!(r.cseq().unwrap().seq, 4);
    // The retransmitted request is answered again, at the same place.
    sock.send_to(request("OPTIONS", 4, &via, "").as_bytes(), udp)
        .await
        .unwrap();
    let again = parse(&recv_datagram(&listener).await);
    assert_eq!(again.cseq().unwrap().seq, 4);

    // Over TCP too: the TU sees the stamped Via.
    let tcp = server.local_addr(Transport::Tcp).unwrap();
    let mut s = TcpStream::connect(tcp).await.unwrap();
    let me = s.local_addr().unwrap();
    let via = "SIP/2.0/TCP client.invalid;rport;branch=z9hG4bKrp3";
    s.write_all(request("OPTIONS", 3, via, "").as_bytes())
        .await
        .unwrap();
    let (key, req, flow) = next_request(&mut server).await;
    assert_eq!(req.top_via().unwrap().rport(), Some(Some(me.port())));
    assert_eq!(flow.remote, me);
    answer_200(&server.handle(), key, &req).await;
    assert_eq!(read_message(&mut s).await.status(), Some(200));
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_requests_get_400_or_are_dropped() {
    let server = OptionsServer::start(loopback_config()).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = sock.local_addr().unwrap();
    // CSeq method does not match the request method: answerable.
    let bad = request(
        "OPTIONS",
        1,
        &format!("SIP/2.0/UDP {me};branch=z9hG4bKbad"),
        "",
    )
    .replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
    sock.send_to(bad.as_bytes(), server.udp).await.unwrap();
    let r = parse(&recv_datagram(&sock).await);
    assert_eq!(r.status(), Some(400));
    assert!(r.header("Warning").unwrap().contains("CSeq"));
    // Garbage cannot be answered: dropped and counted. The next valid
    // request's answer proves the garbage was processed (one reader, in
    // order).
    sock.send_to(b"\x00\xffnot sip at all\r\n\r\n", server.udp)
        .await
        .unwrap();
    sock.send_to(b"\r\n\r\n", server.udp).await.unwrap();
    let via = format!("SIP/2.0/UDP {me};branch=z9hG4bKgood");
    sock.send_to(request("OPTIONS", 2, &via, "").as_bytes(), server.udp)
        .await
        .unwrap();
    assert_eq!(parse(&recv_datagram(&sock).await).status(), Some(200));
    let st = server.handle.stats();
    assert_eq!(st.malformed_answered, 1);
    assert_eq!(st.malformed_dropped, 1);
    assert_eq!(st.datagram_keepalives, 1);

    // Over TCP: 400 on the connection, which stays usable.
    let mut s = TcpStream::connect(server.tcp).await.unwrap();
    let me = s.local_addr().unwrap();
    let bad = request(
        "OPTIONS",
        1,
        &format!("SIP/2.0/TCP {me};branch=z9hG4bKbadt"),
        "",
    )
    .replace("CSeq: 1 OPTIONS", "CSeq: x OPTIONS");
    s.write_all(bad.as_bytes()).await.unwrap();
    assert_eq!(read_message(&mut s).await.status(), Some(400));
    let via = format!("SIP/2.0/TCP {me};branch=z9hG4bKgoodt");
    s.write_all(request("OPTIONS", 2, &via, "").as_bytes())
        .await
        .unwrap();
    assert_eq!(read_message(&mut s).await.status(), Some(200));
}

#[tokio::test]
async fn ipv6_loopback_udp_and_tcp() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("SKIP ipv6_loopback_udp_and_tcp: no IPv6 loopback here");
        return;
    }
    let mut cfg = TransportConfig::udp_and_tcp("[::1]:0".parse().unwrap());
    // Several listening points at once: IPv4 too.
    cfg.listen.extend(loopback_config().listen.iter().copied());
    let server = OptionsServer::start(cfg).await;
    let sock = UdpSocket::bind("[::1]:0").await.unwrap();
    let me = sock.local_addr().unwrap();
    let via = format!("SIP/2.0/UDP {me};rport;branch=z9hG4bKv6");
    sock.send_to(request("OPTIONS", 1, &via, "").as_bytes(), server.udp)
        .await
        .unwrap();
    let r = parse(&recv_datagram(&sock).await);
    assert_eq!(r.status(), Some(200));
    assert_eq!(r.top_via().unwrap().rport(), Some(Some(me.port())));
    let mut s = TcpStream::connect(server.tcp).await.unwrap();
    let me = s.local_addr().unwrap();
    let via = format!("SIP/2.0/TCP {me};branch=z9hG4bKv6t");
    s.write_all(request("OPTIONS", 2, &via, "").as_bytes())
        .await
        .unwrap();
    assert_eq!(read_message(&mut s).await.status(), Some(200));
}

#[tokio::test]
async fn a_tu_that_falls_behind_gets_503_not_a_blocked_driver() {
    let cfg = TransportConfig {
        event_queue: 1,
        ..loopback_config()
    };
    // A TU that never reads its events.
    let server = Endpoint::bind(cfg, Default::default()).await.unwrap();
    let udp = server.local_addr(Transport::Udp).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = sock.local_addr().unwrap();
    // The first request fills the channel; the second is answered 503.
    let via = format!("SIP/2.0/UDP {me};branch=z9hG4bKov1");
    sock.send_to(request("OPTIONS", 1, &via, "").as_bytes(), udp)
        .await
        .unwrap();
    let via = format!("SIP/2.0/UDP {me};branch=z9hG4bKov2");
    sock.send_to(request("OPTIONS", 2, &via, "").as_bytes(), udp)
        .await
        .unwrap();
    expect_overload_503(&sock, 2).await;
    assert_eq!(server.stats().overload_rejections, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_full_transaction_table_is_answered_503_by_the_driver() {
    // Room for one transaction: the first OPTIONS is answered and its
    // transaction stays (Completed, Timer J); the second finds no room.
    let xcfg = habla_transaction::Config {
        max_transactions: 1,
        ..Default::default()
    };
    let mut server = Endpoint::bind(loopback_config(), xcfg).await.unwrap();
    let udp = server.local_addr(Transport::Udp).unwrap();
    let handle = server.handle();
    let tu = tokio::spawn(async move {
        let mut requests = 0;
        while let Some(ev) = server.recv().await {
            if let Event::Request { key, request, .. } = ev {
                requests += 1;
                let ok = request.response(200).build().unwrap();
                handle.send_response(key, ok).await.unwrap();
                if requests == 1 {
                    break;
                }
            }
        }
        server
    });
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = sock.local_addr().unwrap();
    let via = format!("SIP/2.0/UDP {me};branch=z9hG4bKfull1");
    sock.send_to(request("OPTIONS", 1, &via, "").as_bytes(), udp)
        .await
        .unwrap();
    assert_eq!(parse(&recv_datagram(&sock).await).status(), Some(200));
    let server = tu.await.unwrap();
    let via = format!("SIP/2.0/UDP {me};branch=z9hG4bKfull2");
    sock.send_to(request("OPTIONS", 2, &via, "").as_bytes(), udp)
        .await
        .unwrap();
    expect_overload_503(&sock, 2).await;
    assert_eq!(server.stats().overload_rejections, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn new_requests_that_waited_too_long_are_shed_in_dialog_ones_are_not() {
    // Every request counts as late: new ones are answered 503 by the
    // driver, an in-dialog one still reaches the TU.
    let cfg = TransportConfig {
        max_queue_delay: Duration::ZERO,
        ..loopback_config()
    };
    let mut server = Endpoint::bind(cfg, Default::default()).await.unwrap();
    let udp = server.local_addr(Transport::Udp).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = sock.local_addr().unwrap();
    let via = format!("SIP/2.0/UDP {me};branch=z9hG4bKlate1");
    sock.send_to(request("OPTIONS", 1, &via, "").as_bytes(), udp)
        .await
        .unwrap();
    expect_overload_503(&sock, 1).await;
    assert_eq!(server.stats().overload_rejections, 1);
    let via = format!("SIP/2.0/UDP {me};branch=z9hG4bKlate2");
    let bye = request("BYE", 2, &via, "").replace(
        "To: <sip:ping@127.0.0.1>",
        "To: <sip:ping@127.0.0.1>;tag=dialog",
    );
    sock.send_to(bye.as_bytes(), udp).await.unwrap();
    let ev = within("the BYE reaches the TU", server.recv()).await;
    assert!(
        matches!(&ev, Some(Event::Request { request, .. }) if request.method() == Some(&Method::Bye)),
        "{ev:?}"
    );
    server.shutdown().await;
}

/// The next datagram on `sock` is the driver's overload answer to the
/// request with CSeq `seq`: 503 with Retry-After.
async fn expect_overload_503(sock: &UdpSocket, seq: u32) {
    let r = parse(&recv_datagram(sock).await);
    assert_eq!(r.status(), Some(503));
    assert_eq!(r.cseq().unwrap().seq, seq);
    assert!(r.header("Retry-After").is_some());
}

/// A TU that takes `slow` over requests with CSeq 1 (saying when it
/// starts): it keeps the receive thread, and what waits in the socket,
/// waiting, as an overloaded server would.
struct SlowTu {
    slow: Duration,
    started: tokio::sync::mpsc::UnboundedSender<()>,
}

impl habla_tokio::TransactionUser for SlowTu {
    fn on_event(&mut self, event: Event<Flow>, io: &mut habla_tokio::Io<'_>) {
        if let Event::Request { key, request, .. } = event {
            if request.cseq().is_ok_and(|c| c.seq == 1) {
                let _ = self.started.send(());
                std::thread::sleep(self.slow);
            }
            let ok = request.response(200).build().unwrap();
            io.send_response(key, ok).unwrap();
        }
    }
}

/// The time a datagram waited in the socket is the kernel's receive time
/// (SO_TIMESTAMPNS), not the time the receive thread got to it: requests
/// that queued behind a slow one for longer than `max_queue_delay` are
/// answered 503 (new ones) or still handled (in-dialog ones).
#[tokio::test]
async fn requests_that_waited_in_the_socket_too_long_are_shed() {
    let cfg = TransportConfig {
        max_queue_delay: Duration::from_millis(100),
        ..loopback_config()
    };
    let layout = habla_tokio::Layout {
        threads: 1,
        shards: 1,
    };
    let (started, mut slow_started) = tokio::sync::mpsc::unbounded_channel();
    let server = habla_tokio::Element::bind(cfg, Default::default(), layout, |_, _| SlowTu {
        slow: Duration::from_millis(400),
        started: started.clone(),
    })
    .await
    .unwrap();
    let udp = server.local_addr(Transport::Udp).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = sock.local_addr().unwrap();
    let via = |b: &str| format!("SIP/2.0/UDP {me};branch=z9hG4bK{b}");
    sock.send_to(request("OPTIONS", 1, &via("slow1"), "").as_bytes(), udp)
        .await
        .unwrap();
    // The next two arrive while the first is being handled: the receive
    // thread takes them in its next batch, after they waited ~400 ms.
    within("the slow request to start", slow_started.recv()).await;
    sock.send_to(request("OPTIONS", 2, &via("late2"), "").as_bytes(), udp)
        .await
        .unwrap();
    let bye = request("BYE", 3, &via("late3"), "").replace(
        "To: <sip:ping@127.0.0.1>",
        "To: <sip:ping@127.0.0.1>;tag=dialog",
    );
    sock.send_to(bye.as_bytes(), udp).await.unwrap();
    let mut by_seq = std::collections::BTreeMap::new();
    for _ in 0..3 {
        let r = parse(&recv_datagram(&sock).await);
        by_seq.insert(r.cseq().unwrap().seq, r.status().unwrap());
    }
    assert_eq!(by_seq.get(&1), Some(&200));
    assert_eq!(by_seq.get(&2), Some(&503), "waited ~400 ms in the socket");
    assert_eq!(
        by_seq.get(&3),
        Some(&200),
        "in-dialog requests are not shed"
    );
    assert_eq!(server.stats().overload_rejections, 1);
    server.shutdown().await;
}

/// A timer armed while the shard's timer task sleeps toward a later
/// deadline does not wake it (the task looks again at least every 50 ms)
/// and still fires on time: Timer E of a request sent while another
/// transaction's Timer K (5 s) is the only deadline.
#[tokio::test]
async fn a_timer_armed_before_the_next_deadline_fires_on_time() {
    let answering = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut client = Endpoint::bind(loopback_config(), Default::default())
        .await
        .unwrap();
    let to = |s: &UdpSocket| s.local_addr().unwrap();
    let handle = client.handle();
    let options_to = |peer: std::net::SocketAddr| {
        let handle = handle.clone();
        async move {
            handle
                .send_request(
                    tu_request(Method::Options, &format!("sip:a@{peer}"), 0),
                    Destination::Address(Transport::Udp, peer),
                )
                .await
                .unwrap()
        }
    };
    // A request answered at once: its transaction waits out Timer K.
    options_to(to(&answering)).await;
    let bytes = recv_datagram(&answering).await;
    let req = parse(&bytes);
    let ok = req.response(200).build().unwrap().to_bytes();
    let back = habla_tokio::via::response_destination(req.top_via().unwrap(), to(&answering));
    answering.send_to(&ok, back).await.unwrap();
    within("the 200", client.recv()).await.unwrap();
    // Past the first request's (disarmed) Timer E, the task sleeps toward
    // Timer K. Then a request nobody answers: Timer E (500 ms) resends it.
    tokio::time::sleep(Duration::from_millis(700)).await;
    options_to(to(&silent)).await;
    let first = recv_datagram(&silent).await;
    let sent = std::time::Instant::now();
    let again = within("the retransmission", recv_datagram(&silent)).await;
    let after = sent.elapsed();
    assert_eq!(again, first);
    assert!(
        (Duration::from_millis(450)..Duration::from_millis(800)).contains(&after),
        "Timer E fired after {after:?}, not ~500 ms"
    );
    client.shutdown().await;
}
