//! Scenario tests of the transaction layer in simulated time.

mod sim;

use bytes::Bytes;
use habla_message::{HeaderName, Limits, Message, Method, RequestBuilder, Uri};
use habla_transaction::{
    ack_for_non_2xx, cancel_for, ClientInviteState, ClientNonInviteState, Config, Error, Event,
    Output, ServerInviteState, ServerNonInviteState, State, Timer, TimerConfig, TransactionKey,
    TransactionLayer, Transport,
};
use sim::*;
use std::time::Duration;

type Layer = TransactionLayer<Addr>;

const UAC: Addr = 1;
const UAS: Addr = 2;

fn layer() -> Layer {
    TransactionLayer::new(Config::default())
}

/// Runs a layer's timers (no network) up to `until_ms`; returns what came
/// out, stamped with the time in ms.
type Stamped<T> = Vec<(u64, T)>;

fn run_timers(l: &mut Layer, until_ms: u64) -> (Stamped<Bytes>, Stamped<Event<Addr>>) {
    let mut txs = Vec::new();
    let mut evs = Vec::new();
    while let Some(t) = l.poll_timeout() {
        let ms = ms_since_t0(t);
        if ms > until_ms {
            break;
        }
        l.handle_timeout(t);
        let (tx, ev) = drain(l);
        txs.extend(tx.into_iter().map(|t| (ms, t.bytes)));
        evs.extend(ev.into_iter().map(|e| (ms, e)));
    }
    (txs, evs)
}

fn times(v: &[(u64, Bytes)]) -> Vec<u64> {
    v.iter().map(|(t, _)| *t).collect()
}

fn response(req: &Message, code: u16, tag: Option<&str>) -> Message {
    let mut b = req.response(code);
    if let Some(tag) = tag {
        b = b.to_tag(req, tag);
    }
    b.build().unwrap()
}

/// Hands `req` (from the UAC, over UDP) to the layer at `at` ms; returns
/// the server transaction it created.
fn received(l: &mut Layer, at: u64, req: &Message) -> TransactionKey {
    l.handle_message(at_ms(at), req.clone(), udp(UAC)).unwrap();
    match drain(l).1.as_slice() {
        [Event::Request { key, .. }] => *key,
        other => panic!("{other:?}"),
    }
}

fn is_timeout(e: &Event<Addr>, timer: Timer) -> bool {
    matches!(e, Event::Timeout { timer: t, .. } if *t == timer)
}

fn terminated(evs: &[(u64, Event<Addr>)]) -> Vec<u64> {
    evs.iter()
        .filter(|(_, e)| matches!(e, Event::Terminated { .. }))
        .map(|(t, _)| *t)
        .collect()
}

// ----- retransmission schedules ---------------------------------------------

/// RFC 3261 §17.1.2.2: Timer E starts at T1 and doubles up to T2; Timer F
/// fires at 64*T1 with a timeout for the TU (a 408).
#[test]
fn non_invite_retransmissions_double_up_to_t2_then_timer_f() {
    let mut l = layer();
    let req = request(Method::Options, "z9hG4bKnict1", "c1", 1, Transport::Udp);
    let key = l.send_request(at_ms(0), req, udp(UAS)).unwrap();
    let (first, _) = drain(&mut l);
    assert_eq!(first.len(), 1);
    let (txs, evs) = run_timers(&mut l, 100_000);
    // Intervals 500 ms, 1 s, 2 s, 4 s, 4 s, ... (capped by T2).
    assert_eq!(
        times(&txs),
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert!(txs.iter().all(|(_, b)| b == &first[0].bytes));
    let (t, e) = &evs[0];
    assert_eq!(*t, 32_000);
    match e {
        Event::Timeout {
            key: k,
            timer: Timer::F,
            response: Some(r),
        } => {
            assert_eq!(*k, key);
            assert_eq!(r.status(), Some(408));
        }
        other => panic!("expected Timer F timeout, got {other:?}"),
    }
    assert_eq!(terminated(&evs), vec![32_000]);
    assert!(l.is_empty());
    assert_eq!(l.poll_timeout(), None);
}

/// RFC 3261 §17.1.1.2: Timer A starts at T1 and doubles without cap
/// (500 ms, 1, 2, 4, 8, 16 s; the next, 32 s, would end after Timer B);
/// Timer B fires at 64*T1 = 32 s with a timeout (408) for the TU.
#[test]
fn invite_timer_a_doubles_until_timer_b() {
    let mut l = layer();
    let req = request(Method::Invite, "z9hG4bKict1", "c2", 1, Transport::Udp);
    let key = l.send_request(at_ms(0), req, udp(UAS)).unwrap();
    assert_eq!(drain(&mut l).0.len(), 1);
    let (txs, evs) = run_timers(&mut l, 100_000);
    assert_eq!(times(&txs), vec![500, 1500, 3500, 7500, 15500, 31500]);
    let gaps: Vec<u64> = std::iter::once(0)
        .chain(times(&txs))
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    assert_eq!(gaps, vec![500, 1000, 2000, 4000, 8000, 16000]);
    assert!(
        matches!(&evs[0], (32_000, Event::Timeout { key: k, timer: Timer::B, response: Some(r) })
        if *k == key && r.status() == Some(408))
    );
    assert_eq!(terminated(&evs), vec![32_000]);
    assert!(l.is_empty());
}

/// T1/T2 come from the layer's `TimerConfig`, not from statics.
#[test]
fn timer_values_come_from_config() {
    let mut l: Layer = TransactionLayer::new(Config {
        timers: TimerConfig {
            t1: Duration::from_millis(100),
            t2: Duration::from_millis(400),
            ..TimerConfig::default()
        },
        ..Config::default()
    });
    let req = request(Method::Message, "z9hG4bKcfg", "c3", 1, Transport::Udp);
    l.send_request(at_ms(0), req, udp(UAS)).unwrap();
    drain(&mut l);
    let (txs, evs) = run_timers(&mut l, 100_000);
    assert_eq!(&times(&txs)[..5], &[100, 300, 700, 1100, 1500]);
    assert!(is_timeout(&evs[0].1, Timer::F));
    assert_eq!(evs[0].0, 6_400);
}

/// RFC 3261 §17.1.2.2: in Proceeding, Timer E fires every T2; a final
/// response stops it and Timer K (T4) ends the transaction; retransmitted
/// finals are absorbed.
#[test]
fn non_invite_proceeding_retransmits_every_t2_then_timer_k() {
    let mut l = layer();
    let req = request(Method::Options, "z9hG4bKprc", "c4", 1, Transport::Udp);
    let key = l.send_request(at_ms(0), req.clone(), udp(UAS)).unwrap();
    drain(&mut l);
    let (txs, _) = run_timers(&mut l, 600);
    assert_eq!(times(&txs), vec![500]);
    l.handle_message(at_ms(600), response(&req, 100, None), udp(UAS))
        .unwrap();
    let (_, ev) = drain(&mut l);
    assert!(matches!(&ev[..], [Event::Response { key: k, .. }] if *k == key));
    assert_eq!(
        l.state(key),
        Some(State::ClientNonInvite(ClientNonInviteState::Proceeding))
    );
    // E was armed at 1500 (interval 1 s) before the 1xx; then every T2.
    let (txs, _) = run_timers(&mut l, 10_000);
    assert_eq!(times(&txs), vec![1500, 5500, 9500]);
    assert!(l.request(key).is_some());
    let ok = response(&req, 200, Some("b"));
    l.handle_message(at_ms(10_000), ok.clone(), udp(UAS))
        .unwrap();
    let (_, ev) = drain(&mut l);
    assert!(
        matches!(&ev[..], [Event::Response { response, .. }] if response.status() == Some(200))
    );
    // Completed keeps nothing of the request (it lives T4 for every
    // request a proxy forwards over UDP).
    assert!(l.request(key).is_none());
    // Retransmitted 200: absorbed.
    l.handle_message(at_ms(10_100), ok, udp(UAS)).unwrap();
    assert!(drain(&mut l).1.is_empty());
    let (txs, evs) = run_timers(&mut l, 100_000);
    assert!(txs.is_empty());
    assert_eq!(terminated(&evs), vec![15_000]); // K = T4 = 5 s
    assert!(l.is_empty());
}

// ----- server transactions: absorption --------------------------------------

/// RFC 3261 §17.2.2: a retransmitted request is absorbed in Trying, gets
/// the last provisional in Proceeding and the final in Completed; it never
/// reaches the TU twice. Timer J (64*T1) ends the transaction.
#[test]
fn server_non_invite_absorbs_retransmissions() {
    let mut l = layer();
    let req = request(Method::Register, "z9hG4bKnist", "c5", 7, Transport::Udp);
    l.handle_message(at_ms(0), req.clone(), udp(UAC)).unwrap();
    let (tx, ev) = drain(&mut l);
    assert!(tx.is_empty());
    let key = match &ev[..] {
        [Event::Request {
            key, cancels: None, ..
        }] => *key,
        other => panic!("{other:?}"),
    };
    // Matched by its branch, it needs no copy of the request, ever.
    assert!(l.request(key).is_none());
    // Trying: retransmission absorbed silently.
    l.handle_message(at_ms(500), req.clone(), udp(UAC)).unwrap();
    assert!(drain(&mut l).0.is_empty() && drain(&mut l).1.is_empty());
    let trying = response(&req, 100, None);
    l.send_response(at_ms(600), key, trying.clone()).unwrap();
    let (tx, _) = drain(&mut l);
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0].destination, udp(UAC));
    // Proceeding: retransmission gets the 100 again.
    l.handle_message(at_ms(1500), req.clone(), udp(UAC))
        .unwrap();
    let (tx, ev) = drain(&mut l);
    assert!(ev.is_empty());
    assert_eq!(parse(&tx[0].bytes).status(), Some(100));
    l.send_response(at_ms(2000), key, response(&req, 200, Some("x")))
        .unwrap();
    drain(&mut l);
    assert_eq!(
        l.state(key),
        Some(State::ServerNonInvite(ServerNonInviteState::Completed))
    );
    // Completed keeps only what answers retransmissions (it lives 32 s for
    // every request a busy server answers): not the request.
    assert!(l.request(key).is_none());
    // Completed: retransmission gets the 200 again.
    l.handle_message(at_ms(3500), req.clone(), udp(UAC))
        .unwrap();
    let (tx, ev) = drain(&mut l);
    assert!(ev.is_empty());
    assert_eq!(parse(&tx[0].bytes).status(), Some(200));
    // A second final is refused.
    assert!(matches!(
        l.send_response(at_ms(3600), key, response(&req, 500, None)),
        Err(Error::InvalidState { .. })
    ));
    let (_, evs) = run_timers(&mut l, 100_000);
    assert_eq!(terminated(&evs), vec![2000 + 32_000]);
    assert!(l.is_empty());
    // Gone from the matching table too: the same request now starts a new
    // transaction (and reaches the TU again).
    l.handle_message(at_ms(100_000), req.clone(), udp(UAC))
        .unwrap();
    let (_, ev) = drain(&mut l);
    assert!(
        matches!(&ev[..], [Event::Request { key: k, .. }] if *k != key),
        "{ev:?}"
    );
}

/// RFC 3261 §17.2.1: the INVITE server transaction sends 100 Trying after
/// 200 ms when the TU is silent, and answers INVITE retransmissions with
/// the latest provisional.
#[test]
fn server_invite_sends_100_trying_and_resends_latest_provisional() {
    let mut l = layer();
    let req = request(Method::Invite, "z9hG4bKist1", "c6", 1, Transport::Udp);
    l.handle_message(at_ms(0), req.clone(), udp(UAC)).unwrap();
    let (tx, ev) = drain(&mut l);
    assert!(tx.is_empty());
    let key = match &ev[..] {
        [Event::Request { key, .. }] => *key,
        other => panic!("{other:?}"),
    };
    // An INVITE keeps its request until its final response (the 100
    // Trying is built from it).
    assert!(l.request(key).is_some());
    // A retransmission before any response: nothing to resend.
    l.handle_message(at_ms(100), req.clone(), udp(UAC)).unwrap();
    let (tx, ev) = drain(&mut l);
    assert!(tx.is_empty() && ev.is_empty());
    let (txs, _) = run_timers(&mut l, 300);
    assert_eq!(times(&txs), vec![200]);
    assert_eq!(parse(&txs[0].1).status(), Some(100));
    l.handle_message(at_ms(500), req.clone(), udp(UAC)).unwrap();
    let (tx, _) = drain(&mut l);
    assert_eq!(parse(&tx[0].bytes).status(), Some(100));
    l.send_response(at_ms(600), key, response(&req, 180, Some("t")))
        .unwrap();
    drain(&mut l);
    l.handle_message(at_ms(1500), req.clone(), udp(UAC))
        .unwrap();
    let (tx, ev) = drain(&mut l);
    assert!(ev.is_empty());
    assert_eq!(parse(&tx[0].bytes).status(), Some(180));
}

/// A TU that answers within 200 ms means no 100 Trying is generated.
#[test]
fn no_100_trying_when_the_tu_answers_quickly() {
    let mut l = layer();
    let req = request(Method::Invite, "z9hG4bKist2", "c7", 1, Transport::Udp);
    l.handle_message(at_ms(0), req.clone(), udp(UAC)).unwrap();
    let key = match drain(&mut l).1.as_slice() {
        [Event::Request { key, .. }] => *key,
        other => panic!("{other:?}"),
    };
    l.send_response(at_ms(50), key, response(&req, 180, Some("t")))
        .unwrap();
    drain(&mut l);
    let (txs, _) = run_timers(&mut l, 1000);
    assert!(txs.is_empty());
}

// ----- INVITE: ACK for non-2xx, 2xx passed up ---------------------------------

/// RFC 3261 §17.1.1.3: the client INVITE transaction ACKs a 300-699 itself,
/// building the ACK from the original request; final retransmissions get
/// the ACK again without reaching the TU; Timer D ends it.
#[test]
fn client_invite_acks_non_2xx_per_17_1_1_3() {
    let mut l = layer();
    let invite = RequestBuilder::new(
        Method::Invite,
        &Uri::parse("sip:bob@biloxi.example.com").unwrap(),
    )
    .via("UDP", "pc33.atlanta.example.com", "z9hG4bKack1", true)
    .max_forwards(70)
    .header("Route", "<sip:p1.example.com;lr>")
    .header("Route", "<sip:p2.example.com;lr>")
    .to("Bob <sip:bob@biloxi.example.com>")
    .from("Alice <sip:alice@atlanta.example.com>;tag=88")
    .call_id("ack-test@atlanta")
    .cseq(4711)
    .header("Contact", "<sip:alice@pc33.atlanta.example.com>")
    .body("application/sdp", &b"v=0\r\n"[..])
    .build()
    .unwrap();
    let key = l.send_request(at_ms(0), invite.clone(), udp(UAS)).unwrap();
    drain(&mut l);
    // The response passed through a proxy: an extra Via below ours.
    let busy = response(&invite, 486, Some("bobtag"));
    l.handle_message(at_ms(100), busy.clone(), udp(UAS))
        .unwrap();
    let (tx, ev) = drain(&mut l);
    assert!(
        matches!(&ev[..], [Event::Response { key: k, response }] if *k == key && response.status() == Some(486))
    );
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0].destination, udp(UAS));
    let ack = parse(&tx[0].bytes);
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(ack.request_uri_str(), invite.request_uri_str());
    assert_eq!(ack.call_id().unwrap(), invite.call_id().unwrap());
    assert_eq!(
        ack.from().unwrap().as_str(),
        invite.from().unwrap().as_str()
    );
    assert_eq!(ack.to().unwrap().tag(), Some("bobtag"));
    assert_eq!(ack.cseq().unwrap().seq, 4711);
    assert_eq!(ack.cseq().unwrap().method, Method::Ack);
    assert_eq!(ack.vias().unwrap().len(), 1);
    assert_eq!(ack.top_via().unwrap(), invite.top_via().unwrap());
    let routes: Vec<String> = ack
        .routes()
        .unwrap()
        .iter()
        .map(|r| r.as_str().to_owned())
        .collect();
    assert_eq!(
        routes,
        ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    );
    assert!(ack.body().is_empty());
    assert_eq!(
        l.state(key),
        Some(State::ClientInvite(ClientInviteState::Completed))
    );
    // A retransmitted 486: ACK again, nothing for the TU.
    l.handle_message(at_ms(600), busy, udp(UAS)).unwrap();
    let (tx2, ev) = drain(&mut l);
    assert!(ev.is_empty());
    assert_eq!(tx2.len(), 1);
    assert_eq!(tx2[0].bytes, tx[0].bytes);
    let (txs, evs) = run_timers(&mut l, 100_000);
    assert!(txs.is_empty(), "no INVITE retransmission after the final");
    assert_eq!(terminated(&evs), vec![100 + 32_000]); // Timer D
                                                      // The free builder gives the same ACK.
    let again = ack_for_non_2xx(&invite, &response(&invite, 486, Some("bobtag"))).unwrap();
    assert_eq!(again, tx[0].bytes);
}

/// RFC 6026 §8.4: a 2xx goes to the TU, moves the client INVITE
/// transaction to Accepted, is never ACKed nor retransmitted by it; later
/// 2xx (retransmissions, forks) go up too; Timer M ends it.
#[test]
fn client_invite_passes_2xx_up_and_waits_in_accepted() {
    let mut l = layer();
    let invite = request(Method::Invite, "z9hG4bKok1", "c8", 1, Transport::Udp);
    let key = l.send_request(at_ms(0), invite.clone(), udp(UAS)).unwrap();
    drain(&mut l);
    l.handle_message(at_ms(100), response(&invite, 180, Some("a")), udp(UAS))
        .unwrap();
    drain(&mut l);
    let ok = response(&invite, 200, Some("a"));
    l.handle_message(at_ms(200), ok.clone(), udp(UAS)).unwrap();
    let (tx, ev) = drain(&mut l);
    assert!(tx.is_empty(), "the transaction must not ACK a 2xx");
    assert!(
        matches!(&ev[..], [Event::Response { key: k, response }] if *k == key && response.status() == Some(200))
    );
    assert_eq!(
        l.state(key),
        Some(State::ClientInvite(ClientInviteState::Accepted))
    );
    // Retransmitted 2xx and a forked 2xx: both to the TU.
    l.handle_message(at_ms(700), ok, udp(UAS)).unwrap();
    l.handle_message(at_ms(800), response(&invite, 200, Some("fork2")), udp(UAS))
        .unwrap();
    let (tx, ev) = drain(&mut l);
    assert!(tx.is_empty());
    assert_eq!(ev.len(), 2);
    let (txs, evs) = run_timers(&mut l, 100_000);
    assert!(txs.is_empty());
    assert_eq!(terminated(&evs), vec![200 + 32_000]); // Timer M = 64*T1
}

/// RFC 6026 §8.7: the server INVITE transaction sends the TU's 2xx and its
/// retransmissions, absorbs INVITE retransmissions, hands ACKs to the TU,
/// and ends on Timer L.
#[test]
fn server_invite_accepted_state() {
    let mut l = layer();
    let invite = request(Method::Invite, "z9hG4bKsok", "c9", 1, Transport::Udp);
    l.handle_message(at_ms(0), invite.clone(), udp(UAC))
        .unwrap();
    let key = match drain(&mut l).1.as_slice() {
        [Event::Request { key, .. }] => *key,
        other => panic!("{other:?}"),
    };
    let ok = response(&invite, 200, Some("s"));
    l.send_response(at_ms(10), key, ok.clone()).unwrap();
    assert_eq!(drain(&mut l).0.len(), 1);
    assert_eq!(
        l.state(key),
        Some(State::ServerInvite(ServerInviteState::Accepted))
    );
    // INVITE retransmission: absorbed, nothing sent, nothing to the TU.
    l.handle_message(at_ms(500), invite.clone(), udp(UAC))
        .unwrap();
    let (tx, ev) = drain(&mut l);
    assert!(tx.is_empty() && ev.is_empty());
    // The TU retransmits its 2xx through the transaction.
    l.send_response(at_ms(510), key, ok.clone()).unwrap();
    assert_eq!(drain(&mut l).0.len(), 1);
    // A non-2xx is refused now.
    assert!(l
        .send_response(at_ms(520), key, response(&invite, 486, None))
        .is_err());
    // The ACK for the 2xx (new branch, §13.2.2.4): no transaction, to TU.
    let mut ack = Message::parse(ack_for_non_2xx(&invite, &ok).unwrap()).unwrap();
    ack.set_header(
        HeaderName::Via,
        "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKnewbranch",
    )
    .unwrap();
    let ack = Message::parse(ack.to_bytes()).unwrap();
    l.handle_message(at_ms(600), ack, udp(UAC)).unwrap();
    let (tx, ev) = drain(&mut l);
    assert!(tx.is_empty());
    assert!(matches!(&ev[..], [Event::Ack { key: None, .. }]));
    // An ACK reusing the INVITE's branch matches the Accepted transaction.
    let same_branch = Message::parse(ack_for_non_2xx(&invite, &ok).unwrap()).unwrap();
    l.handle_message(at_ms(650), same_branch, udp(UAC)).unwrap();
    let (_, ev) = drain(&mut l);
    assert!(matches!(&ev[..], [Event::Ack { key: Some(k), .. }] if *k == key));
    let (_, evs) = run_timers(&mut l, 100_000);
    assert_eq!(terminated(&evs), vec![10 + 32_000]); // Timer L
    assert!(l.is_empty());
}

/// RFC 3261 §17.2.1: a non-2xx final is retransmitted on Timer G (T1
/// doubling up to T2) until the ACK; the ACK (absorbed, not passed up)
/// moves to Confirmed, and Timer I (T4) ends it.
#[test]
fn server_invite_non_2xx_retransmits_until_ack() {
    let mut l = layer();
    let invite = request(Method::Invite, "z9hG4bKsg", "c10", 1, Transport::Udp);
    l.handle_message(at_ms(0), invite.clone(), udp(UAC))
        .unwrap();
    let key = match drain(&mut l).1.as_slice() {
        [Event::Request { key, .. }] => *key,
        other => panic!("{other:?}"),
    };
    let busy = response(&invite, 486, Some("s"));
    l.send_response(at_ms(0), key, busy.clone()).unwrap();
    assert_eq!(drain(&mut l).0.len(), 1);
    let (txs, _) = run_timers(&mut l, 12_000);
    assert_eq!(times(&txs), vec![500, 1500, 3500, 7500, 11500]);
    // INVITE retransmission in Completed: the 486 again.
    l.handle_message(at_ms(12_000), invite.clone(), udp(UAC))
        .unwrap();
    let (tx, _) = drain(&mut l);
    assert_eq!(parse(&tx[0].bytes).status(), Some(486));
    let ack = Message::parse(ack_for_non_2xx(&invite, &busy).unwrap()).unwrap();
    l.handle_message(at_ms(12_100), ack.clone(), udp(UAC))
        .unwrap();
    let (tx, ev) = drain(&mut l);
    assert!(
        tx.is_empty() && ev.is_empty(),
        "ACK for non-2xx is absorbed"
    );
    assert_eq!(
        l.state(key),
        Some(State::ServerInvite(ServerInviteState::Confirmed))
    );
    l.handle_message(at_ms(12_200), ack, udp(UAC)).unwrap();
    assert!(drain(&mut l).1.is_empty());
    let (txs, evs) = run_timers(&mut l, 100_000);
    assert!(txs.is_empty(), "Timer G stopped");
    assert_eq!(terminated(&evs), vec![12_100 + 5_000]); // Timer I = T4
}

/// RFC 3261 §17.2.1: without an ACK, Timer H (64*T1) ends the transaction
/// and the TU is told.
#[test]
fn server_invite_timer_h_without_ack() {
    let mut l = layer();
    let invite = request(Method::Invite, "z9hG4bKsh", "c11", 1, Transport::Udp);
    l.handle_message(at_ms(0), invite.clone(), udp(UAC))
        .unwrap();
    let key = match drain(&mut l).1.as_slice() {
        [Event::Request { key, .. }] => *key,
        other => panic!("{other:?}"),
    };
    l.send_response(at_ms(0), key, response(&invite, 603, Some("s")))
        .unwrap();
    drain(&mut l);
    let (_, evs) = run_timers(&mut l, 100_000);
    assert!(matches!(
        &evs[0],
        (
            32_000,
            Event::Timeout {
                timer: Timer::H,
                response: None,
                ..
            }
        )
    ));
    assert_eq!(terminated(&evs), vec![32_000]);
}

// ----- CANCEL -----------------------------------------------------------------

/// RFC 3261 §9.2: a CANCEL creates its own server transaction and is
/// matched to the INVITE server transaction with the same branch and
/// sent-by; a CANCEL with another branch cancels nothing.
#[test]
fn cancel_is_matched_to_its_invite() {
    let mut uas = layer();
    let mut uac = layer();
    let invite = request(Method::Invite, "z9hG4bKcan", "c12", 1, Transport::Udp);
    let ikey_c = uac
        .send_request(at_ms(0), invite.clone(), udp(UAS))
        .unwrap();
    let sent = drain(&mut uac).0;
    uas.handle_message(at_ms(10), parse(&sent[0].bytes), udp(UAC))
        .unwrap();
    let ikey = match drain(&mut uas).1.as_slice() {
        [Event::Request { key, .. }] => *key,
        other => panic!("{other:?}"),
    };
    // The UAC's CANCEL is its own client transaction (same branch, method
    // CANCEL).
    let cancel = cancel_for(&invite).unwrap();
    assert_eq!(cancel.top_via().unwrap().branch(), Some("z9hG4bKcan"));
    let ckey_c = uac.send_request(at_ms(20), cancel, udp(UAS)).unwrap();
    assert_ne!(ckey_c, ikey_c);
    let sent = drain(&mut uac).0;
    uas.handle_message(at_ms(30), parse(&sent[0].bytes), udp(UAC))
        .unwrap();
    let (ckey, req) = match drain(&mut uas).1.as_slice() {
        [Event::Request {
            key,
            request,
            cancels: Some(k),
            ..
        }] => {
            assert_eq!(*k, ikey);
            (*key, request.clone())
        }
        other => panic!("{other:?}"),
    };
    assert_ne!(ckey, ikey);
    // The TU answers: 200 to the CANCEL, 487 to the INVITE.
    uas.send_response(at_ms(30), ckey, response(&req, 200, Some("s")))
        .unwrap();
    uas.send_response(at_ms(30), ikey, response(&invite, 487, Some("s")))
        .unwrap();
    let (tx, _) = drain(&mut uas);
    for t in tx {
        uac.handle_message(at_ms(40), parse(&t.bytes), udp(UAS))
            .unwrap();
    }
    let (tx, ev) = drain(&mut uac);
    // Each response reached its own client transaction; the 487 was ACKed.
    let keys: Vec<(TransactionKey, u16)> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Response { key, response } => Some((*key, response.status().unwrap())),
            _ => None,
        })
        .collect();
    assert_eq!(keys, vec![(ckey_c, 200), (ikey_c, 487)]);
    assert_eq!(tx.len(), 1);
    assert_eq!(parse(&tx[0].bytes).method(), Some(&Method::Ack));
    // A CANCEL with another branch cancels nothing.
    let other = request(Method::Cancel, "z9hG4bKother", "c12", 1, Transport::Udp);
    uas.handle_message(at_ms(50), other, udp(UAC)).unwrap();
    assert!(matches!(
        drain(&mut uas).1.as_slice(),
        [Event::Request { cancels: None, .. }]
    ));
}

// ----- RFC 2543 ---------------------------------------------------------------

fn legacy_invite(branch: Option<&str>, cseq: u32) -> Message {
    let via = match branch {
        Some(b) => format!("SIP/2.0/UDP old.example.com;branch={b}"),
        None => "SIP/2.0/UDP old.example.com".to_owned(),
    };
    let raw = format!(
        "INVITE sip:bob@biloxi.example.com SIP/2.0\r\nVia: {via}\r\n\
         From: <sip:carol@old.example.com>;tag=c1\r\nTo: <sip:bob@biloxi.example.com>\r\n\
         Call-ID: legacy-1@old\r\nCSeq: {cseq} INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    Message::parse(Bytes::from(raw)).unwrap()
}

/// RFC 3261 §17.2.3, RFC 2543 fallback: without the magic cookie, matching
/// uses Request-URI, To tag, From tag, Call-ID, CSeq and top Via; the ACK
/// matches with the To tag of the response sent; CANCEL finds its INVITE.
#[test]
fn rfc2543_requests_are_matched_by_headers() {
    // The final response given as a message, or as bytes (the layer then
    // reads the To tag the ACK must carry from them).
    for (branch, as_bytes) in [(None, false), (Some("1234"), false), (None, true)] {
        let mut l = layer();
        let invite = legacy_invite(branch, 1);
        l.handle_message(at_ms(0), invite.clone(), udp(UAC))
            .unwrap();
        let key = match drain(&mut l).1.as_slice() {
            [Event::Request { key, .. }] => *key,
            other => panic!("{other:?}"),
        };
        l.send_response(at_ms(10), key, response(&invite, 180, Some("b1")))
            .unwrap();
        drain(&mut l);
        // Retransmission: matched, the 180 again.
        l.handle_message(at_ms(500), invite.clone(), udp(UAC))
            .unwrap();
        let (tx, ev) = drain(&mut l);
        assert!(ev.is_empty());
        assert_eq!(parse(&tx[0].bytes).status(), Some(180));
        // Another CSeq: another transaction.
        l.handle_message(at_ms(600), legacy_invite(branch, 2), udp(UAC))
            .unwrap();
        assert!(matches!(drain(&mut l).1.as_slice(), [Event::Request { key: k, .. }] if *k != key));
        // CANCEL (same URI, tags, Call-ID, CSeq number, top Via).
        let cancel = cancel_for(&invite).unwrap();
        l.handle_message(at_ms(700), cancel, udp(UAC)).unwrap();
        assert!(
            matches!(drain(&mut l).1.as_slice(), [Event::Request { cancels: Some(k), .. }] if *k == key)
        );
        // Final 487 with To tag b1; the ACK carries that tag.
        let fin = response(&invite, 487, Some("b1"));
        if as_bytes {
            l.send_response_bytes(at_ms(800), key, 487, fin.to_bytes())
                .unwrap();
        } else {
            l.send_response(at_ms(800), key, fin.clone()).unwrap();
        }
        drain(&mut l);
        // An ACK with a wrong To tag does not match: it goes up unmatched.
        let mut wrong = Message::parse(ack_for_non_2xx(&invite, &fin).unwrap()).unwrap();
        wrong
            .set_header(HeaderName::To, "<sip:bob@biloxi.example.com>;tag=zz")
            .unwrap();
        let wrong = Message::parse(wrong.to_bytes()).unwrap();
        l.handle_message(at_ms(850), wrong, udp(UAC)).unwrap();
        assert!(matches!(
            drain(&mut l).1.as_slice(),
            [Event::Ack { key: None, .. }]
        ));
        let ack = Message::parse(ack_for_non_2xx(&invite, &fin).unwrap()).unwrap();
        l.handle_message(at_ms(900), ack, udp(UAC)).unwrap();
        let (_, ev) = drain(&mut l);
        assert!(ev.is_empty());
        assert_eq!(
            l.state(key),
            Some(State::ServerInvite(ServerInviteState::Confirmed)),
            "branch {branch:?}"
        );
    }
}

// ----- reliable transports ----------------------------------------------------

/// RFC 3261 §17: over a reliable transport nothing is retransmitted and
/// Timers D, I, J, K are zero (the transactions end at once); B, F, H, L,
/// M keep their values.
#[test]
fn reliable_transports_skip_retransmission_and_zero_timers() {
    // Client non-INVITE: one send, F only; K = 0.
    let mut l = layer();
    let req = request(Method::Options, "z9hG4bKtcp1", "t1", 1, Transport::Tcp);
    let key = l.send_request(at_ms(0), req.clone(), tcp(UAS)).unwrap();
    assert_eq!(drain(&mut l).0.len(), 1);
    assert_eq!(l.poll_timeout(), Some(at_ms(32_000)));
    l.handle_message(at_ms(100), response(&req, 200, Some("x")), tcp(UAS))
        .unwrap();
    let (_, ev) = drain(&mut l);
    assert!(matches!(&ev[..], [Event::Response { .. }, Event::Terminated { key: k }] if *k == key));
    assert!(l.is_empty() && l.poll_timeout().is_none());

    // Client INVITE: no Timer A; 486 → ACK, D = 0.
    let inv = request(Method::Invite, "z9hG4bKtcp2", "t2", 1, Transport::Tcp);
    l.send_request(at_ms(0), inv.clone(), tcp(UAS)).unwrap();
    drain(&mut l);
    assert_eq!(l.poll_timeout(), Some(at_ms(32_000)));
    l.handle_message(at_ms(100), response(&inv, 486, Some("x")), tcp(UAS))
        .unwrap();
    let (tx, ev) = drain(&mut l);
    assert_eq!(parse(&tx[0].bytes).method(), Some(&Method::Ack));
    assert!(matches!(ev.last(), Some(Event::Terminated { .. })));
    assert!(l.is_empty());

    // Client INVITE over TCP without answer: Timer B still fires.
    let inv = request(Method::Invite, "z9hG4bKtcp3", "t3", 1, Transport::Tcp);
    l.send_request(at_ms(0), inv, tcp(UAS)).unwrap();
    drain(&mut l);
    let (txs, evs) = run_timers(&mut l, 100_000);
    assert!(txs.is_empty());
    assert!(matches!(&evs[0], (32_000, e) if is_timeout(e, Timer::B)));

    // Server non-INVITE: J = 0.
    let mut s = layer();
    s.handle_message(at_ms(0), req.clone(), tcp(UAC)).unwrap();
    let key = match drain(&mut s).1.as_slice() {
        [Event::Request { key, .. }] => *key,
        other => panic!("{other:?}"),
    };
    s.send_response(at_ms(1), key, response(&req, 200, Some("y")))
        .unwrap();
    let (tx, ev) = drain(&mut s);
    assert_eq!(tx.len(), 1);
    assert!(matches!(&ev[..], [Event::Terminated { .. }]));

    // Server INVITE: no Timer G; ACK → Confirmed with I = 0.
    let inv = request(Method::Invite, "z9hG4bKtcp4", "t4", 1, Transport::Tcp);
    s.handle_message(at_ms(0), inv.clone(), tcp(UAC)).unwrap();
    let key = match drain(&mut s).1.as_slice() {
        [Event::Request { key, .. }] => *key,
        other => panic!("{other:?}"),
    };
    let busy = response(&inv, 486, Some("y"));
    s.send_response(at_ms(1), key, busy.clone()).unwrap();
    drain(&mut s);
    let (txs, _) = run_timers(&mut s, 10_000);
    assert!(txs.is_empty(), "no Timer G over TCP");
    s.handle_message(
        at_ms(10_000),
        Message::parse(ack_for_non_2xx(&inv, &busy).unwrap()).unwrap(),
        tcp(UAC),
    )
    .unwrap();
    let (_, ev) = drain(&mut s);
    assert!(matches!(&ev[..], [Event::Terminated { key: k }] if *k == key));
    assert!(s.is_empty());
}

/// RFC 3261 §18.1.1: a request the transport meant for TCP goes over UDP
/// when the connection cannot be opened. The transaction moves: same key,
/// the new bytes sent at once, Timer A started afresh (it had none over
/// TCP), Timer B still counting from the first send. Once answered, it can
/// no longer move.
#[test]
fn an_unanswered_client_transaction_moves_to_another_target() {
    let mut l = layer();
    let inv = request(Method::Invite, "z9hG4bKmove1", "m1", 1, Transport::Tcp);
    let key = l.send_request(at_ms(0), inv.clone(), tcp(UAS)).unwrap();
    assert_eq!(drain(&mut l).0.len(), 1);
    let over_udp = request(Method::Invite, "z9hG4bKmove1", "m1", 1, Transport::Udp);
    l.retarget(at_ms(100), key, over_udp, udp(UAS)).unwrap();
    let (tx, ev) = drain(&mut l);
    assert!(ev.is_empty());
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0].destination, udp(UAS));
    assert_eq!(tx[0].key, Some(key));
    assert_eq!(
        parse(&tx[0].bytes).top_via().unwrap().transport(),
        "UDP",
        "the moved request is the one sent"
    );
    // Timer A from the move (600 ms, 1.6 s, ...), Timer B from the start.
    let (txs, evs) = run_timers(&mut l, 100_000);
    assert_eq!(times(&txs)[..3], [600, 1_600, 3_600]);
    assert!(txs.iter().all(|(_, b)| b == &tx[0].bytes));
    assert!(matches!(&evs[0], (32_000, e) if is_timeout(e, Timer::B)));

    // Answered: it stays where it is.
    let req = request(Method::Options, "z9hG4bKmove2", "m2", 1, Transport::Tcp);
    let key = l.send_request(at_ms(0), req.clone(), tcp(UAS)).unwrap();
    drain(&mut l);
    l.handle_message(at_ms(10), response(&req, 100, None), tcp(UAS))
        .unwrap();
    drain(&mut l);
    let again = request(Method::Options, "z9hG4bKmove2", "m2", 1, Transport::Udp);
    assert!(matches!(
        l.retarget(at_ms(20), key, again, udp(UAS)),
        Err(Error::InvalidState { .. })
    ));
}

/// Timers fire in deadline order even when a caller hands in a `now` a
/// little older than the previous one (threads read the clock before they
/// take the lock), and a timer disarmed by a response no longer counts as
/// the next deadline.
#[test]
fn timers_fire_in_order_whatever_order_they_were_armed_in() {
    let mut l = layer();
    let a = request(Method::Options, "z9hG4bKord1", "o1", 1, Transport::Udp);
    let b = request(Method::Options, "z9hG4bKord2", "o2", 1, Transport::Udp);
    let c = request(Method::Options, "z9hG4bKord3", "o3", 1, Transport::Udp);
    l.send_request(at_ms(10), a.clone(), udp(UAS)).unwrap();
    l.send_request(at_ms(5), b.clone(), udp(UAS)).unwrap();
    l.send_request(at_ms(7), c, udp(UAS)).unwrap();
    drain(&mut l);
    assert_eq!(l.poll_timeout(), Some(at_ms(505)));
    // b is answered: its Timer E is no longer the next deadline.
    l.handle_message(at_ms(100), response(&b, 200, Some("t")), udp(UAS))
        .unwrap();
    drain(&mut l);
    assert_eq!(l.poll_timeout(), Some(at_ms(507)));
    let (txs, _) = run_timers(&mut l, 600);
    let order: Vec<(u64, String)> = txs
        .iter()
        .map(|(t, bytes)| (*t, parse(bytes).call_id().unwrap().to_string()))
        .collect();
    assert_eq!(order, [(507, "o3".into()), (510, "o1".into())]);
}

// ----- limits, errors, strays -----------------------------------------------

/// When the live-transaction limit is reached, new server transactions are
/// refused with a decision that becomes a 503 with Retry-After; client
/// transactions fail to start; retransmissions still match.
#[test]
fn transaction_limit_refuses_new_requests() {
    let mut l: Layer = TransactionLayer::new(Config {
        max_transactions: 2,
        retry_after: 7,
        ..Config::default()
    });
    let a = request(Method::Options, "z9hG4bKl1", "l1", 1, Transport::Udp);
    let b = request(Method::Options, "z9hG4bKl2", "l2", 1, Transport::Udp);
    let c = request(Method::Options, "z9hG4bKl3", "l3", 1, Transport::Udp);
    l.handle_message(at_ms(0), a.clone(), udp(UAC)).unwrap();
    l.handle_message(at_ms(0), b, udp(UAC)).unwrap();
    drain(&mut l);
    l.handle_message(at_ms(0), c.clone(), udp(UAC)).unwrap();
    let refusal = match drain(&mut l).1.pop() {
        Some(Event::Refused(r)) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(l.len(), 2);
    let resp = parse(&refusal.response().unwrap());
    assert_eq!(resp.status(), Some(503));
    assert_eq!(resp.header("Retry-After"), Some("7"));
    l.send_stateless(refusal.source.clone(), refusal.response().unwrap());
    assert!(matches!(l.poll_output(), Some(Output::Transmit(t)) if t.key.is_none()));
    assert!(matches!(
        l.send_request(at_ms(0), c, udp(UAS)),
        Err(Error::TooManyTransactions { limit: 2 })
    ));
    // A retransmission of a live one still matches.
    l.handle_message(at_ms(1), a, udp(UAC)).unwrap();
    assert!(drain(&mut l).1.is_empty());
}

/// Local misuse is an error: ACK transactions, missing cookie, duplicates.
#[test]
fn send_request_rejects_misuse() {
    let mut l = layer();
    let ack = request(Method::Ack, "z9hG4bKa", "m1", 1, Transport::Udp);
    assert_eq!(
        l.send_request(at_ms(0), ack, udp(UAS)),
        Err(Error::AckTransaction)
    );
    let old = request(Method::Options, "12345", "m2", 1, Transport::Udp);
    assert_eq!(
        l.send_request(at_ms(0), old, udp(UAS)),
        Err(Error::NoRfc3261Branch)
    );
    let r = request(Method::Options, "z9hG4bKdup", "m3", 1, Transport::Udp);
    l.send_request(at_ms(0), r.clone(), udp(UAS)).unwrap();
    assert_eq!(
        l.send_request(at_ms(0), r.clone(), udp(UAS)),
        Err(Error::Duplicate)
    );
    let resp = response(&r, 200, None);
    assert!(matches!(
        l.send_request(at_ms(0), resp, udp(UAS)),
        Err(Error::WrongKind { .. })
    ));
    let k = l.keys().next().unwrap();
    assert!(matches!(
        l.send_response(at_ms(0), k, response(&r, 200, None)),
        Err(Error::InvalidState { .. })
    ));
}

/// RFC 3261 §18.1.2: a response matching no client transaction goes to
/// the core as a stray; a transport error ends a client transaction.
#[test]
fn stray_responses_and_transport_errors() {
    let mut l = layer();
    let r = request(Method::Options, "z9hG4bKs1", "s1", 1, Transport::Udp);
    l.handle_message(at_ms(0), response(&r, 200, None), udp(UAS))
        .unwrap();
    assert!(matches!(
        drain(&mut l).1.as_slice(),
        [Event::StrayResponse { .. }]
    ));
    // Same branch but another CSeq method: also a stray (§17.1.3).
    let key = l.send_request(at_ms(0), r.clone(), udp(UAS)).unwrap();
    drain(&mut l);
    let other = request(Method::Invite, "z9hG4bKs1", "s1", 1, Transport::Udp);
    l.handle_message(at_ms(1), response(&other, 200, None), udp(UAS))
        .unwrap();
    assert!(matches!(
        drain(&mut l).1.as_slice(),
        [Event::StrayResponse { .. }]
    ));
    l.handle_transport_error(at_ms(2), key);
    assert!(matches!(
        drain(&mut l).1.as_slice(),
        [Event::TransportError { .. }, Event::Terminated { .. }]
    ));
    assert!(l.is_empty());
}

/// A non-INVITE server transaction in Completed over UDP (kept apart from
/// the others until Timer J) still answers to its key: its state, a
/// transport error on its final response (RFC 3261 Figure 8: inform the
/// TU, Terminated), the TU ending it; once ended, the request starts a new
/// transaction.
#[test]
fn a_completed_server_transaction_ends_early_on_a_transport_error_or_the_tus_word() {
    let mut l = layer();
    let answer = |l: &mut Layer, branch: &str, at: u64| {
        let req = request(Method::Message, branch, "m1", 1, Transport::Udp);
        let key = received(l, at, &req);
        l.send_response(at_ms(at + 1), key, response(&req, 200, Some("t")))
            .unwrap();
        let (tx, _) = drain(l);
        assert_eq!(tx[0].key, Some(key));
        (req, key)
    };
    let (req_a, a) = answer(&mut l, "z9hG4bKca", 0);
    let (req_b, b) = answer(&mut l, "z9hG4bKcb", 10);
    let (req_c, c) = answer(&mut l, "z9hG4bKcc", 20);
    let completed = Some(State::ServerNonInvite(ServerNonInviteState::Completed));
    assert_eq!(
        (l.state(a), l.state(b), l.state(c)),
        (completed, completed, completed)
    );
    assert_eq!(l.len(), 3);
    let mut keys: Vec<_> = l.keys().collect();
    keys.sort();
    assert_eq!(keys, vec![a, b, c]);
    assert!(matches!(
        l.send_response(at_ms(30), b, response(&req_b, 500, None)),
        Err(Error::InvalidState { .. })
    ));
    // The driver could not send b's 200.
    l.handle_transport_error(at_ms(30), b);
    assert!(matches!(
        drain(&mut l).1.as_slice(),
        [Event::TransportError { key }, Event::Terminated { key: k2 }] if *key == b && *k2 == b
    ));
    assert_eq!(l.state(b), None);
    // The TU ends a.
    assert!(l.terminate(a));
    assert!(matches!(
        drain(&mut l).1.as_slice(),
        [Event::Terminated { key }] if *key == a
    ));
    assert!(!l.terminate(a));
    assert_eq!(l.len(), 1);
    // Their requests now start new transactions; c's is still absorbed.
    for req in [&req_a, &req_b] {
        l.handle_message(at_ms(40), req.clone(), udp(UAC)).unwrap();
        assert!(matches!(
            drain(&mut l).1.as_slice(),
            [Event::Request { .. }]
        ));
    }
    l.handle_message(at_ms(50), req_c, udp(UAC)).unwrap();
    let (tx, ev) = drain(&mut l);
    assert!(ev.is_empty());
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0].destination, udp(UAC));
    assert_eq!(parse(&tx[0].bytes).status(), Some(200));
    // The newest completed one, d, fails at once: gone too.
    let (req_d, d) = answer(&mut l, "z9hG4bKcd", 60);
    l.handle_transport_error(at_ms(61), d);
    assert_eq!(drain(&mut l).1.len(), 2);
    assert_eq!(l.state(d), None);
    l.handle_message(at_ms(62), req_d, udp(UAC)).unwrap();
    assert!(matches!(
        drain(&mut l).1.as_slice(),
        [Event::Request { .. }]
    ));
    // Timer J ends c alone (a's and b's records are skipped), then the
    // three new transactions time out with the TU guard (nobody answered).
    let (_, evs) = run_timers(&mut l, 100_000);
    assert_eq!(
        terminated(&evs),
        vec![20 + 1 + 32_000, 40 + 32_000, 40 + 32_000, 62 + 32_000]
    );
    assert!(l.is_empty());
}

/// A completed non-INVITE server transaction keeps a copy of its final
/// response (in a buffer shared by many): a retransmission of the request
/// gets it back byte for byte, whatever its size.
#[test]
fn completed_transactions_resend_their_own_response_byte_for_byte() {
    let mut l = layer();
    let mut sent = Vec::new();
    for (i, body) in [10, 70_000, 10, 300].into_iter().enumerate() {
        let branch = format!("z9hG4bKr{i}");
        let req = request(Method::Message, &branch, "r1", 1, Transport::Udp);
        let key = received(&mut l, i as u64, &req);
        let mut bytes = response(&req, 200, Some("t")).to_bytes().to_vec();
        bytes.extend(std::iter::repeat_n(b'a' + i as u8, body));
        l.send_response_bytes(at_ms(i as u64), key, 200, Bytes::from(bytes.clone()))
            .unwrap();
        drain(&mut l);
        sent.push((req, bytes));
    }
    for (req, bytes) in &sent {
        l.handle_message(at_ms(100), req.clone(), udp(UAC)).unwrap();
        let (tx, _) = drain(&mut l);
        assert_eq!(tx.len(), 1);
        assert_eq!(&tx[0].bytes[..], &bytes[..]);
    }
}

/// Threads read the clock before taking the layer's lock, so a response
/// may come with a `now` a little older than the previous one's: its Timer
/// J then fires with the previous one's (the completed queue stays in
/// order), never before its own time.
#[test]
fn timer_j_never_fires_early_when_the_clock_steps_back() {
    let mut l = layer();
    for (i, at) in [(0, 10), (1, 7)] {
        let req = request(
            Method::Message,
            &format!("z9hG4bKs{i}"),
            "s",
            1,
            Transport::Udp,
        );
        let key = received(&mut l, 0, &req);
        l.send_response(at_ms(at), key, response(&req, 200, Some("t")))
            .unwrap();
        drain(&mut l);
    }
    let (_, evs) = run_timers(&mut l, 100_000);
    assert_eq!(terminated(&evs), vec![10 + 32_000, 10 + 32_000]);
}

/// A driver may let Timer J of completed non-INVITE server transactions
/// wait (one wake ends a batch); every other timer keeps its time.
#[test]
fn timer_j_may_be_coalesced_other_timers_not() {
    let mut l = layer();
    let req = request(Method::Register, "z9hG4bKj1", "j1", 1, Transport::Udp);
    let key = received(&mut l, 0, &req);
    l.send_response(at_ms(10), key, response(&req, 200, Some("t")))
        .unwrap();
    drain(&mut l);
    let slack = Duration::from_millis(100);
    assert_eq!(l.poll_timeout(), Some(at_ms(10 + 32_000)));
    assert_eq!(l.poll_timeout_coalesced(slack), Some(at_ms(10 + 32_100)));
    // A client transaction's Timer E is not delayed.
    let out = request(Method::Options, "z9hG4bKj2", "j2", 1, Transport::Udp);
    l.send_request(at_ms(31_500), out, udp(UAS)).unwrap();
    drain(&mut l);
    assert_eq!(l.poll_timeout_coalesced(slack), Some(at_ms(32_000)));
    // Fired late, Timer J still ends the transaction.
    l.handle_timeout(at_ms(10 + 32_100));
    let (_, evs) = drain(&mut l);
    assert!(evs
        .iter()
        .any(|e| matches!(e, Event::Terminated { key: k } if *k == key)));
    assert_eq!(l.state(key), None);
}

/// Hostile input: messages lacking what matching needs are errors, and no
/// mutation of valid messages makes the layer panic.
#[test]
fn hostile_input_never_panics() {
    let mut l = layer();
    let lazy =
        |s: &str| Message::parse_lazy(Bytes::from(s.to_owned()), &Limits::default()).unwrap();
    let no_via = lazy("OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\nCall-ID: x\r\n\r\n");
    assert!(matches!(
        l.handle_message(at_ms(0), no_via, udp(UAC)),
        Err(Error::Malformed(_))
    ));
    let no_cseq = lazy("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n\r\n");
    assert!(l.handle_message(at_ms(0), no_cseq, udp(UAC)).is_err());

    let seeds = [
        request(Method::Invite, "z9hG4bKh1", "h1", 1, Transport::Udp).to_bytes(),
        request(Method::Ack, "z9hG4bKh1", "h1", 1, Transport::Udp).to_bytes(),
        request(Method::Cancel, "h1", "h1", 1, Transport::Udp).to_bytes(),
        response(
            &request(Method::Invite, "z9hG4bKh1", "h1", 1, Transport::Udp),
            486,
            Some("t"),
        )
        .to_bytes(),
    ];
    let mut rng = Rng::new(42);
    let mut live = Vec::new();
    for i in 0..4000u64 {
        let seed = &seeds[(i % seeds.len() as u64) as usize];
        let mut b = seed.to_vec();
        for _ in 0..rng.range(1, 4) {
            let at = rng.range(0, b.len() as u64 - 1) as usize;
            match rng.range(0, 2) {
                0 => b[at] = rng.next_u64() as u8,
                1 => {
                    b.remove(at);
                }
                _ => b.insert(at, b";:, <>z9hG4bK"[rng.range(0, 12) as usize]),
            }
        }
        if let Ok(m) = Message::parse_lazy(Bytes::from(b), &Limits::default()) {
            let _ = l.handle_message(at_ms(i), m, udp(UAC));
        }
        for o in std::iter::from_fn(|| l.poll_output()) {
            if let Output::Event(Event::Request { key, request, .. }) = o {
                live.push((key, request));
            }
        }
        if i % 7 == 0 {
            if let Some((key, req)) = live.pop() {
                if let Ok(r) = req.response(486).to_tag(&req, "z").build() {
                    let _ = l.send_response(at_ms(i), key, r);
                }
            }
        }
        l.handle_timeout(at_ms(i));
    }
    l.handle_timeout(at_ms(10_000_000));
    while l.poll_output().is_some() {}
    assert!(l.is_empty(), "{} transactions leaked", l.len());
}

// ----- whole conversations over a lossy network --------------------------------

/// What the UAC's TU saw for one client transaction.
#[derive(Debug, Default, Clone)]
struct Outcome {
    final_status: Option<u16>,
    timed_out: bool,
    terminated: u32,
}

#[derive(Debug)]
enum Action {
    /// The UAC starts call/request number `n`.
    Start(usize),
    /// The UAS TU answers a server transaction.
    Answer {
        key: TransactionKey,
        request: Message,
        code: u16,
    },
    /// The UAS core retransmits its 2xx (RFC 3261 §13.3.1.4) until the ACK.
    Retransmit2xx {
        key: TransactionKey,
        response: Message,
        interval: Duration,
    },
}

struct World {
    rng: Rng,
    net: Net,
    now: std::time::Instant,
    uac: Layer,
    uas: Layer,
    transport: Transport,
    agenda: std::collections::BTreeMap<(std::time::Instant, u64), Action>,
    seq: u64,
    requests: Vec<Message>,
    outcomes: std::collections::HashMap<TransactionKey, Outcome>,
    acked_calls: std::collections::HashSet<String>,
    server_created: u64,
    server_terminated: u64,
}

impl World {
    fn schedule(&mut self, at: std::time::Instant, a: Action) {
        self.seq += 1;
        self.agenda.insert((at, self.seq), a);
    }

    /// Moves every output of one layer onto the network or to its TU.
    fn drain(&mut self, node: Addr) {
        loop {
            let layer = if node == UAC {
                &mut self.uac
            } else {
                &mut self.uas
            };
            let Some(o) = layer.poll_output() else { break };
            match o {
                Output::Transmit(t) => self.net.send(
                    self.now,
                    Datagram {
                        from: node,
                        to: t.destination.addr,
                        transport: t.destination.transport,
                        bytes: t.bytes,
                    },
                ),
                Output::Event(e) if node == UAC => self.uac_tu(e),
                Output::Event(e) => self.uas_tu(e),
            }
        }
    }

    fn uac_tu(&mut self, e: Event<Addr>) {
        match e {
            Event::Response { key, response } => {
                let code = response.status().unwrap_or(0);
                let o = self.outcomes.entry(key).or_default();
                if code >= 200 && o.final_status.is_none() {
                    o.final_status = Some(code);
                }
                if (200..300).contains(&code) && response.cseq().unwrap().method == Method::Invite {
                    // RFC 3261 §13.2.2.4: the UAC core ACKs every 2xx,
                    // outside the transaction, with a new branch.
                    let invite = self
                        .uac
                        .request(key)
                        .expect("Accepted keeps the INVITE")
                        .clone();
                    let mut ack =
                        Message::parse(ack_for_non_2xx(&invite, &response).unwrap()).unwrap();
                    let branch = habla_transaction::new_branch(&mut || self.rng.next_u64());
                    let via = format!(
                        "SIP/2.0/{} uac.example.com;branch={branch}",
                        transport_token(self.transport)
                    );
                    ack.set_header(HeaderName::Via, &via).unwrap();
                    self.uac.send_stateless(
                        habla_transaction::Target::new(self.transport, UAS),
                        ack.to_bytes(),
                    );
                }
            }
            Event::Timeout { key, response, .. } => {
                assert_eq!(response.and_then(|r| r.status()), Some(408));
                self.outcomes.entry(key).or_default().timed_out = true;
            }
            Event::Terminated { key } => self.outcomes.entry(key).or_default().terminated += 1,
            Event::StrayResponse { .. } | Event::TransportError { .. } => {}
            other => panic!("UAC TU got {other:?}"),
        }
    }

    fn uas_tu(&mut self, e: Event<Addr>) {
        match e {
            Event::Request { key, request, .. } => {
                self.server_created += 1;
                let delay = self.rng.millis(0, 1500);
                if request.method() == Some(&Method::Invite) {
                    let ringing = response(&request, 180, Some("uas"));
                    self.uas.send_response(self.now, key, ringing).unwrap();
                    let code = if self.rng.chance(0.5) { 200 } else { 486 };
                    self.schedule(self.now + delay, Action::Answer { key, request, code });
                } else {
                    self.schedule(
                        self.now + delay / 3,
                        Action::Answer {
                            key,
                            request,
                            code: 200,
                        },
                    );
                }
            }
            Event::Ack { request, .. } => {
                self.acked_calls
                    .insert(request.call_id().unwrap().to_string());
            }
            Event::Terminated { .. } => self.server_terminated += 1,
            Event::Timeout { .. } | Event::TransportError { .. } => {}
            other => panic!("UAS TU got {other:?}"),
        }
    }

    fn act(&mut self, a: Action) {
        let t1 = Duration::from_millis(500);
        match a {
            Action::Start(n) => {
                let req = self.requests[n].clone();
                let target = habla_transaction::Target::new(self.transport, UAS);
                let key = self.uac.send_request(self.now, req, target).unwrap();
                self.outcomes.insert(key, Outcome::default());
            }
            Action::Answer { key, request, code } => {
                let resp = response(&request, code, Some("uas"));
                if self.uas.send_response(self.now, key, resp.clone()).is_ok()
                    && (200..300).contains(&code)
                    && request.method() == Some(&Method::Invite)
                    && !self.transport.is_reliable()
                {
                    self.schedule(
                        self.now + t1,
                        Action::Retransmit2xx {
                            key,
                            response: resp,
                            interval: t1,
                        },
                    );
                }
            }
            Action::Retransmit2xx {
                key,
                response,
                interval,
            } => {
                let call = response.call_id().unwrap().to_string();
                // Stops at the ACK, or when Timer L has ended the transaction.
                if !self.acked_calls.contains(&call)
                    && self
                        .uas
                        .send_response(self.now, key, response.clone())
                        .is_ok()
                {
                    let next = (interval * 2).min(Duration::from_secs(4));
                    self.schedule(
                        self.now + next,
                        Action::Retransmit2xx {
                            key,
                            response,
                            interval: next,
                        },
                    );
                }
            }
        }
    }

    /// Runs until nothing is left to do; returns the number of steps.
    fn run(&mut self) -> u64 {
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 200_000, "simulation does not settle");
            let next = [
                self.net.next_delivery(),
                self.uac.poll_timeout(),
                self.uas.poll_timeout(),
                self.agenda.keys().next().map(|&(t, _)| t),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else { return steps };
            assert!(next >= self.now, "time went backwards");
            self.now = next;
            while let Some(d) = self.net.pop_due(self.now) {
                let msg = Message::parse(d.bytes).expect("the layer sends valid messages");
                let source = habla_transaction::Target::new(d.transport, d.from);
                let layer = if d.to == UAC {
                    &mut self.uac
                } else {
                    &mut self.uas
                };
                layer.handle_message(self.now, msg, source).unwrap();
                self.drain(d.to);
            }
            self.uac.handle_timeout(self.now);
            self.drain(UAC);
            self.uas.handle_timeout(self.now);
            self.drain(UAS);
            while let Some(entry) = self.agenda.first_entry() {
                if entry.key().0 > self.now {
                    break;
                }
                let a = entry.remove();
                self.act(a);
                self.drain(UAC);
                self.drain(UAS);
            }
        }
    }
}

fn conversation(seed: u64) -> (World, u64) {
    let mut rng = Rng::new(seed);
    let transport = if rng.chance(0.15) {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let imp = Impairments {
        loss: rng.range(0, 45) as f64 / 100.0,
        duplicate: rng.range(0, 20) as f64 / 100.0,
        min_delay: Duration::from_millis(5),
        max_delay: rng.millis(5, 1200),
    };
    let mut w = World {
        net: Net::new(rng.next_u64(), imp),
        rng,
        now: t0(),
        uac: layer(),
        uas: layer(),
        transport,
        agenda: Default::default(),
        seq: 0,
        requests: Vec::new(),
        outcomes: Default::default(),
        acked_calls: Default::default(),
        server_created: 0,
        server_terminated: 0,
    };
    let n = w.rng.range(2, 6) as usize;
    for i in 0..n {
        let method = match w.rng.range(0, 2) {
            0 => Method::Invite,
            1 => Method::Options,
            _ => Method::Message,
        };
        let branch = habla_transaction::new_branch(&mut || w.rng.next_u64());
        let req = request(method, &branch, &format!("call-{seed}-{i}"), 1, transport);
        w.requests.push(req);
        let at = t0() + w.rng.millis(0, 5000);
        w.schedule(at, Action::Start(i));
    }
    let steps = w.run();
    (w, steps)
}

/// Property: for 500 seeds of loss, duplication, delay and reordering, a
/// UAC and a UAS exchanging INVITE and non-INVITE transactions end with no
/// live transaction on either side (nothing leaks), every client
/// transaction either got a final response or timed out (exactly one
/// Terminated each), and every server transaction terminated.
#[test]
fn lossy_network_property_no_leaks_every_transaction_ends() {
    let mut timeouts = 0;
    let mut completed = 0;
    let mut dropped = 0;
    for seed in 1..=500u64 {
        let (w, _steps) = conversation(seed);
        assert!(
            w.uac.is_empty(),
            "seed {seed}: UAC leaked {} transactions",
            w.uac.len()
        );
        assert!(
            w.uas.is_empty(),
            "seed {seed}: UAS leaked {} transactions",
            w.uas.len()
        );
        assert!(w.uac.poll_timeout().is_none() && w.uas.poll_timeout().is_none());
        assert_eq!(w.outcomes.len(), w.requests.len(), "seed {seed}");
        for (key, o) in &w.outcomes {
            assert!(
                o.final_status.is_some() ^ o.timed_out,
                "seed {seed}: {key:?} neither completed nor timed out exactly once: {o:?}"
            );
            assert_eq!(o.terminated, 1, "seed {seed}: {key:?}: {o:?}");
            if o.timed_out {
                timeouts += 1;
            } else {
                completed += 1;
            }
        }
        assert_eq!(w.server_created, w.server_terminated, "seed {seed}");
        if w.transport.is_reliable() {
            assert!(
                w.outcomes.values().all(|o| o.final_status.is_some()),
                "seed {seed}"
            );
        }
        dropped += w.net.dropped;
    }
    eprintln!("{completed} completed, {timeouts} timed out, {dropped} datagrams dropped");
    // The network really was lossy, and the layer still got almost
    // everything through.
    assert!(dropped > 1000, "only {dropped} datagrams dropped");
    assert!(
        completed > 10 * timeouts,
        "{completed} completed, {timeouts} timed out"
    );
}

/// The simulator itself is deterministic: one seed, one history.
#[test]
fn simulation_is_deterministic() {
    let (a, sa) = conversation(77);
    let (b, sb) = conversation(77);
    assert_eq!(sa, sb);
    assert_eq!(a.net.sent, b.net.sent);
    assert_eq!(a.now, b.now);
}

/// The safety nets: a client INVITE stuck in Proceeding ends on Timer C
/// (restarted by each provisional), a server transaction whose TU never
/// answers ends on the TU guard (64*T1 for non-INVITE).
#[test]
fn proceeding_states_cannot_leak() {
    let mut l = layer();
    let inv = request(Method::Invite, "z9hG4bKc1", "g1", 1, Transport::Udp);
    let key = l.send_request(at_ms(0), inv.clone(), udp(UAS)).unwrap();
    drain(&mut l);
    l.handle_message(at_ms(100), response(&inv, 180, Some("a")), udp(UAS))
        .unwrap();
    l.handle_message(at_ms(60_000), response(&inv, 183, Some("a")), udp(UAS))
        .unwrap();
    drain(&mut l);
    let (txs, evs) = run_timers(&mut l, 1_000_000);
    assert!(txs.is_empty(), "no retransmission in Proceeding");
    assert!(
        matches!(&evs[0], (260_000, Event::Timeout { key: k, timer: Timer::C, response: Some(_) }) if *k == key)
    );
    assert!(l.is_empty());

    let mut s = layer();
    let req = request(Method::Options, "z9hG4bKg2", "g2", 1, Transport::Udp);
    s.handle_message(at_ms(0), req, udp(UAC)).unwrap();
    drain(&mut s);
    let (_, evs) = run_timers(&mut s, 1_000_000);
    assert!(matches!(
        &evs[0],
        (
            32_000,
            Event::Timeout {
                timer: Timer::TuGuard,
                response: None,
                ..
            }
        )
    ));
    assert!(s.is_empty());
}

/// Branch ids come from the caller's randomness, with the magic cookie.
#[test]
fn branches_come_from_the_callers_randomness() {
    let mut rng = Rng::new(5);
    let a = habla_transaction::new_branch(&mut || rng.next_u64());
    let b = habla_transaction::new_branch(&mut || rng.next_u64());
    assert!(a.starts_with("z9hG4bK") && a.len() == 7 + 32);
    assert_ne!(a, b);
}

#[test]
fn a_provisional_response_restarts_the_tu_guard_of_a_ringing_invite() {
    use habla_message::{Message, Method, RequestBuilder, Uri};
    use habla_transaction::{Config, Event, Output, Target, TransactionLayer, Transport};
    use std::time::{Duration, Instant};
    let invite = RequestBuilder::new(Method::Invite, &Uri::parse("sip:bob@example.org").unwrap())
        .via("UDP", "192.0.2.1:5060", "z9hG4bKring1", false)
        .max_forwards(70)
        .from("<sip:alice@example.org>;tag=1")
        .to("<sip:bob@example.org>")
        .call_id("ringing-long")
        .cseq(1)
        .build()
        .unwrap();
    let mut uas: TransactionLayer<&str> = TransactionLayer::new(Config::default());
    let t0 = Instant::now();
    uas.handle_message(t0, invite, Target::new(Transport::Udp, "alice"))
        .unwrap();
    let mut key = None;
    while let Some(o) = uas.poll_output() {
        if let Output::Event(Event::Request { key: k, .. }) = o {
            key = Some(k);
        }
    }
    let key = key.expect("the INVITE reaches the TU");
    let guard = Config::default()
        .timers
        .timer_c
        .expect("a default TU guard");
    let timed_out = |uas: &mut TransactionLayer<&str>, at: Instant| {
        uas.handle_timeout(at);
        let mut out = false;
        while let Some(o) = uas.poll_output() {
            out |= matches!(o, Output::Event(Event::Timeout { .. }));
        }
        out
    };
    let request = uas.request(key).unwrap().clone();
    // Ringing sent shortly before the guard would fire...
    let ring_at = t0 + guard - Duration::from_secs(10);
    assert!(!timed_out(&mut uas, ring_at));
    let ringing: Message = request
        .response(180)
        .to_tag(&request, "b1")
        .build()
        .unwrap();
    uas.send_response(ring_at, key, ringing).unwrap();
    // ...so the original deadline passes quietly,
    assert!(!timed_out(&mut uas, t0 + guard + Duration::from_secs(1)));
    // and the guard fires one full period after the last provisional.
    assert!(timed_out(
        &mut uas,
        ring_at + guard + Duration::from_secs(1)
    ));
}
