//! Whole conversations through the proxy in simulated time (see
//! `harness`): alice (UAC) → proxy (with its own transaction layers) →
//! scripted UASes.

mod harness;

use habla_message::{HeaderName, Message, Method, Uri};
use habla_proxy::{Interface, LocationContact, Lookup};
use habla_transaction::Transport;
use harness::*;
use std::time::Duration;

fn world(contacts: &[(&str, u16)]) -> World {
    let mut loc = Loc::default();
    loc.add("sip:bob@example.org", contacts);
    World::new(proxy_config(), loc)
}

fn vias(m: &Message) -> Vec<String> {
    m.vias()
        .unwrap()
        .iter()
        .map(|v| v.as_str().to_owned())
        .collect()
}

fn values(m: &Message, name: &str) -> Vec<String> {
    m.header_values(name).map(str::to_owned).collect()
}

const LONG: Duration = Duration::from_secs(300);

#[test]
fn invite_180_200_ack_and_bye_end_to_end() {
    let mut w = world(&[("sip:bob@192.0.2.21:5060", 1000)]);
    w.add_uas(BOB1, Behaviour::Answer(vec![180, 200]));
    let key = w.invite("sip:bob@example.org", "call-1");
    w.settle();

    // Downstream: the INVITE as bob received it.
    let inv = w.requests_to(BOB1, Method::Invite);
    assert_eq!(inv.len(), 1);
    let inv = inv[0];
    // §16.6 step 2: the Request-URI is the registered contact.
    assert_eq!(inv.request_uri_str(), Some("sip:bob@192.0.2.21:5060"));
    // Step 3: Max-Forwards decremented.
    assert_eq!(inv.max_forwards().unwrap(), Some(69));
    // Step 4: one Record-Route with lr naming the proxy's interface.
    assert_eq!(
        values(inv, "Record-Route"),
        vec!["<sip:192.0.2.10:5060;lr>"]
    );
    // Step 8: our Via on top with a loop-detecting branch, alice's below.
    let v = vias(inv);
    assert_eq!(v.len(), 2);
    assert!(
        v[0].starts_with("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK"),
        "{}",
        v[0]
    );
    let branch = inv.top_via().unwrap().branch().unwrap();
    let (hash, suffix) = branch["z9hG4bK".len()..].split_once('.').unwrap();
    assert_eq!(hash.len(), 16);
    assert!(!suffix.is_empty());
    assert!(v[1].starts_with(&format!("SIP/2.0/UDP {ALICE};branch=z9hG4bKalice")));
    // Everything else untouched.
    assert_eq!(inv.call_id().unwrap().as_str(), "call-1");
    assert_eq!(inv.body().as_ref(), b"v=0\r\n");
    assert!(inv.header("Route").is_none());

    // Upstream: 100 from the proxy, 180 and 200 forwarded, our Via removed.
    assert_eq!(w.codes(key), vec![100, 180, 200]);
    for (_, r) in w.alice.responses.iter().filter(|(k, _)| *k == key) {
        assert_eq!(vias(r).len(), 1, "only alice's Via goes back");
        assert!(vias(r)[0].contains("z9hG4bKalice"));
    }
    let ok = w.final_response(key).unwrap().clone();
    assert_eq!(
        values(&ok, "Record-Route"),
        vec!["<sip:192.0.2.10:5060;lr>"]
    );
    assert_eq!(values(&ok, "Contact"), vec![format!("<sip:bob@{BOB1}>")]);

    // The ACK for the 2xx goes end to end through the proxy (it is on the
    // route set), statelessly, with our Route removed.
    let acks = w.requests_to(BOB1, Method::Ack);
    assert_eq!(acks.len(), 1);
    let ack = acks[0];
    assert_eq!(ack.request_uri_str(), Some("sip:bob@192.0.2.21:5060"));
    assert!(ack.header("Route").is_none());
    assert!(ack.header("Record-Route").is_none());
    assert_eq!(ack.max_forwards().unwrap(), Some(69));
    assert_eq!(vias(ack).len(), 2);
    assert!(vias(ack)[0].starts_with("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK"));
    assert!(w.p.actions.contains(&format!("stateless {BOB1}")));

    // A BYE inside the dialog: loose-routed through the proxy, no new
    // Record-Route, Route removed.
    let bye = w.in_dialog(Method::Bye, &ok);
    w.settle();
    let byes = w.requests_to(BOB1, Method::Bye);
    assert_eq!(byes.len(), 1);
    assert!(byes[0].header("Route").is_none());
    assert!(byes[0].header("Record-Route").is_none());
    assert_eq!(byes[0].request_uri_str(), Some("sip:bob@192.0.2.21:5060"));
    assert_eq!(w.codes(bye), vec![200]);

    w.run_for(LONG);
    w.assert_empty();
}

#[test]
fn busy_from_the_callee_is_forwarded_and_acked_hop_by_hop() {
    let mut w = world(&[("sip:bob@192.0.2.21:5060", 1000)]);
    w.add_uas(BOB1, Behaviour::Answer(vec![486]));
    let key = w.invite("sip:bob@example.org", "call-busy");
    w.settle();
    assert_eq!(w.codes(key), vec![100, 486]);
    let busy = w.final_response(key).unwrap();
    assert_eq!(vias(busy).len(), 1);
    // The proxy's client transaction ACKed the 486 (§17.1.1.3): the ACK
    // bob got carries the proxy's branch, not alice's.
    let acks = w.requests_to(BOB1, Method::Ack);
    assert_eq!(acks.len(), 1);
    assert_eq!(vias(acks[0]).len(), 1);
    assert!(vias(acks[0])[0].starts_with("SIP/2.0/UDP 192.0.2.10:5060"));
    // And alice's ACK stopped at the proxy (absorbed by its server transaction).
    assert!(!w.p.actions.iter().any(|a| a.starts_with("stateless")));
    w.run_for(LONG);
    w.assert_empty();
}

#[test]
fn not_registered_is_480_and_unknown_is_404() {
    let mut loc = Loc::default();
    loc.0
        .insert("sip:carol@example.org".into(), Lookup::NotRegistered);
    loc.0
        .insert("sip:erin@example.org".into(), Lookup::Contacts(vec![]));
    let mut w = World::new(proxy_config(), loc);
    let carol = w.invite("sip:carol@example.org", "c1");
    let erin = w.invite("sip:erin@example.org", "c2");
    let dave = w.invite("sip:dave@example.org", "c3");
    w.settle();
    assert_eq!(w.codes(carol), vec![480]);
    assert_eq!(w.codes(erin), vec![480]);
    assert_eq!(w.codes(dave), vec![404]);
    // Locally generated: a To tag, no 100 first (answered at once).
    assert!(w
        .final_response(dave)
        .unwrap()
        .to()
        .unwrap()
        .tag()
        .is_some());
    w.run_for(LONG);
    w.assert_empty();
}

#[test]
fn parallel_fork_first_200_cancels_the_other_branch() {
    let mut w = world(&[
        ("sip:bob@192.0.2.21:5060", 1000),
        ("sip:bob@192.0.2.22:5060", 1000),
    ]);
    w.add_uas(BOB1, Behaviour::Ring);
    w.add_uas(BOB2, Behaviour::Answer(vec![180, 200]));
    let key = w.invite("sip:bob@example.org", "fork");
    w.settle();
    // Both contacts got the INVITE, with different branches.
    let b1 = w.requests_to(BOB1, Method::Invite)[0]
        .top_via()
        .unwrap()
        .branch()
        .unwrap()
        .to_owned();
    let b2 = w.requests_to(BOB2, Method::Invite)[0]
        .top_via()
        .unwrap()
        .branch()
        .unwrap()
        .to_owned();
    assert_ne!(b1, b2);
    // Same loop hash, different suffix.
    assert_eq!(b1.split('.').next(), b2.split('.').next());
    // The 200 went up; bob1 was cancelled with its own branch; its 487 was
    // absorbed by the proxy.
    let codes = w.codes(key);
    assert_eq!(
        codes.iter().filter(|&&c| c >= 200).collect::<Vec<_>>(),
        vec![&200]
    );
    assert!(!codes.contains(&487));
    let cancels = w.requests_to(BOB1, Method::Cancel);
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].top_via().unwrap().branch(), Some(b1.as_str()));
    assert!(w.requests_to("192.0.2.99:5060", Method::Cancel).is_empty());
    assert!(!w.p.actions.iter().any(|a| a == "cancel 192.0.2.99:5060"));
    w.run_for(LONG);
    w.assert_empty();
}

#[test]
fn a_6xx_cancels_the_rest_and_is_forwarded() {
    let mut w = world(&[
        ("sip:bob@192.0.2.21:5060", 1000),
        ("sip:bob@192.0.2.22:5060", 1000),
    ]);
    w.add_uas(BOB1, Behaviour::Ring);
    w.add_uas(BOB2, Behaviour::Answer(vec![603]));
    let key = w.invite("sip:bob@example.org", "decline");
    w.settle();
    assert_eq!(w.requests_to(BOB1, Method::Cancel).len(), 1);
    let finals: Vec<u16> = w.codes(key).into_iter().filter(|&c| c >= 200).collect();
    assert_eq!(finals, vec![603]);
    w.run_for(LONG);
    w.assert_empty();
}

#[test]
fn serial_forking_across_q_groups() {
    let mut w = world(&[
        ("sip:bob@192.0.2.22:5060", 500),
        ("sip:bob@192.0.2.21:5060", 1000),
    ]);
    w.add_uas(BOB1, Behaviour::Answer(vec![486]));
    w.add_uas(BOB2, Behaviour::Answer(vec![180, 200]));
    let key = w.invite("sip:bob@example.org", "serial");
    w.settle();
    // q=1.0 first; q=0.5 only after it failed.
    let order: Vec<&str> = w
        .trace
        .iter()
        .filter(|(_, _, m)| m.method() == Some(&Method::Invite) || m.status() == Some(486))
        .map(|(_, to, m)| match (to.as_str(), m.status()) {
            (BOB1, None) => "invite bob1",
            (BOB2, None) => "invite bob2",
            (_, Some(486)) => "486",
            _ => "",
        })
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(order[..3], ["invite bob1", "486", "invite bob2"]);
    assert_eq!(w.codes(key), vec![100, 180, 200]);
    w.run_for(LONG);
    w.assert_empty();

    // A 2xx in the first group ends forking: the second is never tried.
    let mut w = world(&[
        ("sip:bob@192.0.2.22:5060", 500),
        ("sip:bob@192.0.2.21:5060", 1000),
    ]);
    w.add_uas(BOB1, Behaviour::Answer(vec![200]));
    w.add_uas(BOB2, Behaviour::Answer(vec![200]));
    w.invite("sip:bob@example.org", "serial2");
    w.settle();
    assert!(w.requests_to(BOB2, Method::Invite).is_empty());
}

#[test]
fn challenges_of_401_and_407_are_merged() {
    let mut w = world(&[
        ("sip:bob@192.0.2.21:5060", 1000),
        ("sip:bob@192.0.2.22:5060", 1000),
    ]);
    w.add_uas(BOB1, Behaviour::Answer(vec![401]));
    w.add_uas(BOB2, Behaviour::Answer(vec![407]));
    let key = w.invite("sip:bob@example.org", "auth");
    w.settle();
    let r = w.final_response(key).unwrap();
    assert!(matches!(r.status(), Some(401 | 407)));
    assert_eq!(
        values(r, "WWW-Authenticate"),
        vec![format!("Digest realm=\"{BOB1}\", nonce=\"n401\"")]
    );
    assert_eq!(
        values(r, "Proxy-Authenticate"),
        vec![format!("Digest realm=\"{BOB2}\", nonce=\"n407\"")]
    );
    assert_eq!(vias(r).len(), 1);
    w.run_for(LONG);
    w.assert_empty();
}

#[test]
fn a_503_is_forwarded_as_500() {
    let mut w = world(&[("sip:bob@192.0.2.21:5060", 1000)]);
    w.add_uas(BOB1, Behaviour::Answer(vec![503]));
    let key = w.invite("sip:bob@example.org", "overload");
    w.settle();
    assert_eq!(w.codes(key), vec![100, 500]);
}

#[test]
fn caller_cancel_before_answer() {
    let mut w = world(&[("sip:bob@192.0.2.21:5060", 1000)]);
    w.add_uas(BOB1, Behaviour::Ring);
    let invite = w.request(Method::Invite, "sip:bob@example.org", "cancel-me", &[]);
    let key = w.send(invite.clone());
    w.settle();
    assert_eq!(w.codes(key), vec![100, 180]);
    let cancel = habla_transaction::cancel_for(&invite).unwrap();
    let ckey = w.send(cancel);
    w.settle();
    // 200 to the CANCEL (from the proxy), CANCEL downstream, 487 upstream.
    assert_eq!(w.codes(ckey), vec![200]);
    assert_eq!(w.requests_to(BOB1, Method::Cancel).len(), 1);
    assert_eq!(w.codes(key), vec![100, 180, 487]);
    w.run_for(LONG);
    w.assert_empty();
}

#[test]
fn cancel_matching_nothing_is_481() {
    let mut w = world(&[]);
    let invite = w.request(Method::Invite, "sip:bob@example.org", "nothing", &[]);
    let cancel = habla_transaction::cancel_for(&invite).unwrap();
    let ckey = w.send(cancel);
    w.settle();
    assert_eq!(w.codes(ckey), vec![481]);
}

#[test]
fn timer_c_cancels_a_ringing_branch_and_ends_a_silent_one_with_408() {
    let mut cfg = proxy_config();
    cfg.timer_c = Duration::from_secs(10);
    let mut loc = Loc::default();
    loc.add("sip:bob@example.org", &[("sip:bob@192.0.2.21:5060", 1000)]);
    // Nobody at 192.0.2.99: not even a 100 comes back.
    loc.add(
        "sip:carol@example.org",
        &[("sip:carol@192.0.2.99:5060", 1000)],
    );
    let mut w = World::new(cfg, loc);
    w.add_uas(BOB1, Behaviour::Ring);
    let ring = w.invite("sip:bob@example.org", "tc1");
    let silent = w.invite("sip:carol@example.org", "tc2");
    w.run_for(Duration::from_secs(9));
    assert_eq!(w.codes(ring), vec![100, 180]);
    assert_eq!(w.codes(silent), vec![100]);
    w.run_for(Duration::from_secs(2));
    // Ringing: CANCEL downstream; both end with 408 upstream.
    assert_eq!(w.requests_to(BOB1, Method::Cancel).len(), 1);
    assert_eq!(w.codes(ring), vec![100, 180, 408]);
    // Silent (no provisional): no CANCEL (RFC 3261 §9.1), a 408.
    assert!(w.requests_to("192.0.2.99:5060", Method::Cancel).is_empty());
    assert!(!w.p.actions.iter().any(|a| a == "cancel 192.0.2.99:5060"));
    assert_eq!(w.codes(silent), vec![100, 408]);
    w.run_for(LONG);
    w.assert_empty();
}

#[test]
fn a_provisional_response_restarts_timer_c() {
    let mut cfg = proxy_config();
    cfg.timer_c = Duration::from_secs(10);
    let mut loc = Loc::default();
    loc.add("sip:bob@example.org", &[("sip:bob@192.0.2.21:5060", 1000)]);
    let mut w = World::new(cfg, loc);
    w.add_uas(BOB1, Behaviour::Silent);
    let key = w.invite("sip:bob@example.org", "restart");
    w.run_for(Duration::from_secs(8));
    // bob sends 183 at t=8 s by hand.
    let inv = w.requests_to(BOB1, Method::Invite)[0].clone();
    let r = uas_response(BOB1, &inv, 183);
    w.net.push_back((BOB1.into(), PROXY.into(), r.to_bytes()));
    w.run_for(Duration::from_secs(8)); // t = 16 s: the first Timer C would have fired
    assert_eq!(w.codes(key), vec![100, 183]);
    w.run_for(Duration::from_secs(3)); // t = 19 s > 8 + 10
    assert_eq!(w.requests_to(BOB1, Method::Cancel).len(), 1);
    assert_eq!(w.codes(key), vec![100, 183, 408]);
}

#[test]
fn a_loop_is_482_and_a_spiral_is_forwarded() {
    let mut loc = Loc::default();
    // loop@ is registered at itself (the same Request-URI comes back);
    // spiral@ at bob@ (the Request-URI changes on the second pass).
    loc.add("sip:loop@example.org", &[("sip:loop@example.org", 1000)]);
    loc.add("sip:spiral@example.org", &[("sip:bob@example.org", 1000)]);
    loc.add("sip:bob@example.org", &[("sip:bob@192.0.2.21:5060", 1000)]);
    let mut w = World::new(proxy_config(), loc);
    w.add_uas(BOB1, Behaviour::Answer(vec![200]));

    let looped = w.invite("sip:loop@example.org", "loop");
    w.settle();
    // The request came back to the proxy once and was refused there.
    let at_proxy = w.requests_to(PROXY, Method::Invite);
    assert_eq!(at_proxy.len(), 2);
    assert!(w.p.actions.contains(&"respond 482".to_owned()));
    let finals: Vec<u16> = w.codes(looped).into_iter().filter(|&c| c >= 200).collect();
    assert_eq!(finals, vec![482]);

    let spiral = w.invite("sip:spiral@example.org", "spiral");
    w.settle();
    assert_eq!(w.codes(spiral).last(), Some(&200));
    let inv = w.requests_to(BOB1, Method::Invite)[0];
    // Two passes through the proxy: two of its Vias, Max-Forwards down by two.
    let ours = vias(inv)
        .iter()
        .filter(|v| v.contains("192.0.2.10:5060"))
        .count();
    assert_eq!(ours, 2);
    assert_eq!(inv.max_forwards().unwrap(), Some(68));
    w.run_for(LONG);
    w.assert_empty();
}

#[test]
fn message_and_options_are_relayed_to_a_registered_user() {
    let mut w = world(&[("sip:bob@192.0.2.21:5060", 1000)]);
    w.add_uas(BOB1, Behaviour::Answer(vec![200]));
    let msg = w.request(
        Method::Message,
        "sip:bob@example.org",
        "msg",
        &[("Content-Type", "text/plain")],
    );
    let mk = w.send(msg);
    let opt = w.request(Method::Options, "sip:bob@example.org", "opt", &[]);
    let ok = w.send(opt);
    w.settle();
    assert_eq!(w.codes(mk), vec![200]);
    assert_eq!(w.codes(ok), vec![200]);
    let m = w.requests_to(BOB1, Method::Message);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].request_uri_str(), Some("sip:bob@192.0.2.21:5060"));
    assert_eq!(w.requests_to(BOB1, Method::Options).len(), 1);
    w.run_for(LONG);
    w.assert_empty();
}

#[test]
fn options_to_the_proxy_itself_are_answered() {
    let mut w = world(&[]);
    let a = w.request(Method::Options, "sip:example.org", "o1", &[]);
    let a = w.send(a);
    let b = w.request(Method::Options, "sip:192.0.2.10", "o2", &[]);
    let b = w.send(b);
    w.settle();
    for key in [a, b] {
        assert_eq!(w.codes(key), vec![200]);
        let r = w.final_response(key).unwrap();
        assert!(r.header("Allow").unwrap().contains("INVITE"));
        assert_eq!(r.header("Accept"), Some("application/sdp"));
        assert_eq!(r.header("Supported"), Some("path"));
    }
    assert!(!w.p.actions.iter().any(|a| a.starts_with("forward")));
}

#[test]
fn strict_route_compatibility() {
    // The previous hop strict-routed: the Request-URI is our Record-Route
    // URI and the remote target is the last Route value.
    let mut w = world(&[]);
    w.add_uas(BOB1, Behaviour::Answer(vec![200]));
    let req = w.request(
        Method::Message,
        "sip:192.0.2.10:5060",
        "strict",
        &[("Route", "<sip:bob@192.0.2.21:5060>")],
    );
    let key = w.send(req);
    w.settle();
    assert_eq!(w.codes(key), vec![200]);
    let m = w.requests_to(BOB1, Method::Message);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].request_uri_str(), Some("sip:bob@192.0.2.21:5060"));
    assert!(m[0].header("Route").is_none());
}

#[test]
fn a_strict_next_hop_gets_the_request_uri_as_last_route() {
    // §16.6 step 6: a Route without lr: the request goes to it with it as
    // Request-URI, the old Request-URI appended to the Route set.
    let mut w = world(&[]);
    w.add_uas(BOB1, Behaviour::Answer(vec![200]));
    let req = w.request(
        Method::Message,
        "sip:carol@example.net",
        "strict-next",
        &[("Route", "<sip:192.0.2.10;lr>, <sip:192.0.2.21:5060>")],
    );
    let key = w.send(req);
    w.settle();
    assert_eq!(w.codes(key), vec![200]);
    let m = w.requests_to(BOB1, Method::Message)[0];
    assert_eq!(m.request_uri_str(), Some("sip:192.0.2.21:5060"));
    assert_eq!(values(m, "Route"), vec!["<sip:carol@example.net>"]);
}

#[test]
fn the_context_limit_answers_503_with_retry_after() {
    let mut cfg = proxy_config();
    cfg.max_contexts = 1;
    cfg.retry_after = 7;
    let mut loc = Loc::default();
    loc.add("sip:bob@example.org", &[("sip:bob@192.0.2.21:5060", 1000)]);
    let mut w = World::new(cfg, loc);
    w.add_uas(BOB1, Behaviour::Ring);
    let first = w.invite("sip:bob@example.org", "busy1");
    let second = w.invite("sip:bob@example.org", "busy2");
    w.settle();
    assert_eq!(w.codes(first), vec![100, 180]);
    assert_eq!(w.codes(second), vec![503]);
    assert_eq!(
        w.final_response(second).unwrap().header("Retry-After"),
        Some("7")
    );
}

#[test]
fn double_record_route_when_the_transport_changes() {
    let mut cfg = proxy_config();
    let tcp = Interface::new(Transport::Tcp, "192.0.2.10:5060".parse().unwrap());
    cfg.identity.interfaces.push(tcp);
    let mut loc = Loc::default();
    loc.0.insert(
        "sip:bob@example.org".into(),
        Lookup::Contacts(vec![LocationContact::new(
            Uri::parse("sip:bob@192.0.2.21:5060;transport=tcp").unwrap(),
        )]),
    );
    let mut w = World::new(cfg, loc);
    w.add_uas(BOB1, Behaviour::Answer(vec![200]));
    let key = w.invite("sip:bob@example.org", "double");
    w.settle();
    let inv = w.requests_to(BOB1, Method::Invite)[0];
    // Outbound (TCP) on top, inbound (UDP) below; Via names the TCP side.
    assert_eq!(
        values(inv, "Record-Route"),
        vec![
            "<sip:192.0.2.10:5060;transport=tcp;lr>",
            "<sip:192.0.2.10:5060;lr>"
        ]
    );
    assert!(vias(inv)[0].starts_with("SIP/2.0/TCP 192.0.2.10:5060;branch="));
    assert_eq!(w.codes(key).last(), Some(&200));
    // alice's ACK carries both Routes; the proxy removes both.
    let ack = w.requests_to(BOB1, Method::Ack)[0];
    assert!(ack.header("Route").is_none());
    w.run_for(LONG);
    w.assert_empty();
}

#[test]
fn path_becomes_route_and_flow_is_the_next_hop() {
    use habla_proxy::{Action, Proxy};
    let mut contact = LocationContact::new(Uri::parse("sip:bob@10.0.0.5:5060").unwrap());
    contact.path = vec![Uri::parse("sip:edge.example.net;lr").unwrap()];
    let mut flowed = LocationContact::new(Uri::parse("sip:bob@10.0.0.6:5060").unwrap());
    flowed.flow = Some("flow-7".into());
    flowed.q = 500;
    let lookup = move |_: &Uri| Lookup::Contacts(vec![contact.clone(), flowed.clone()]);
    let mut proxy = Proxy::new(proxy_config(), lookup, 1);
    let (key, req) = server_request(
        &World::new(proxy_config(), Loc::default()),
        "sip:bob@example.org",
    );
    let now = t0();
    proxy.handle_request(now, key, req, proxy_iface()).unwrap();
    let mut forwards = Vec::new();
    while let Some(a) = proxy.poll_action() {
        if let Action::Forward {
            branch,
            request,
            next_hop,
        } = a
        {
            forwards.push((branch, request, next_hop));
        }
    }
    assert_eq!(forwards.len(), 1, "q groups are serial");
    let (branch, req, hop) = &forwards[0];
    assert_eq!(values(req, "Route"), vec!["<sip:edge.example.net;lr>"]);
    assert_eq!(req.request_uri_str(), Some("sip:bob@10.0.0.5:5060"));
    assert_eq!(hop.host, "edge.example.net");
    assert_eq!(hop.flow, None);
    // The first branch fails (no address): the flow contact is next.
    proxy.handle_forward_failed(now, *branch).unwrap();
    let mut next = None;
    while let Some(a) = proxy.poll_action() {
        if let Action::Forward { next_hop, .. } = a {
            next = Some(next_hop);
        }
    }
    let hop = next.unwrap();
    assert_eq!(hop.host, "10.0.0.6");
    assert_eq!(hop.flow.as_deref(), Some("flow-7"));
}

/// A request through a real server transaction layer, for its key.
pub fn server_request(_w: &World, ruri: &str) -> (habla_transaction::TransactionKey, Message) {
    let mut layer = habla_transaction::TransactionLayer::<String>::new(Default::default());
    let req = habla_message::RequestBuilder::new(Method::Invite, &Uri::parse(ruri).unwrap())
        .via("UDP", ALICE, "z9hG4bKdirect1", false)
        .max_forwards(70)
        .from("<sip:alice@example.org>;tag=a1")
        .to("<sip:bob@example.org>")
        .call_id("direct")
        .cseq(1)
        .build()
        .unwrap();
    layer
        .handle_message(
            t0(),
            req,
            habla_transaction::Target::new(Transport::Udp, ALICE.into()),
        )
        .unwrap();
    while let Some(o) = layer.poll_output() {
        if let habla_transaction::Output::Event(habla_transaction::Event::Request {
            key,
            request,
            ..
        }) = o
        {
            return (key, request);
        }
    }
    panic!("no request event");
}

#[test]
fn max_forwards_absent_becomes_70_and_header_kinds_are_checked() {
    let mut w = world(&[("sip:bob@192.0.2.21:5060", 1000)]);
    w.add_uas(BOB1, Behaviour::Answer(vec![200]));
    let mut req = w.request(Method::Message, "sip:bob@example.org", "nomf", &[]);
    req.remove_header(HeaderName::MaxForwards);
    let req = Message::parse(req.to_bytes()).unwrap();
    w.send(req);
    w.settle();
    let m = w.requests_to(BOB1, Method::Message)[0];
    assert_eq!(m.max_forwards().unwrap(), Some(70));
}

// ----- the torture corpus (RFC 4475 / RFC 5118) ---------------------------------

fn conformance_dir() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("HABLA_CONFORMANCE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        });
    if dir.join("manifest.toml").exists() {
        return Some(dir);
    }
    if std::env::var("HABLA_REQUIRE_CONFORMANCE").as_deref() == Ok("1") {
        panic!(
            "conformance corpus missing at {} (HABLA_REQUIRE_CONFORMANCE=1)",
            dir.display()
        );
    }
    eprintln!(
        "skipping: conformance corpus not found at {}",
        dir.display()
    );
    None
}

/// Runs one received request through a server transaction layer and a proxy
/// serving example.com with an empty location service; returns the
/// responses the proxy sent and how many requests it forwarded.
fn proxy_answers(msg: Message) -> (Vec<Message>, usize) {
    proxy_answers_checked(msg, true)
}

fn proxy_answers_checked(msg: Message, strict: bool) -> (Vec<Message>, usize) {
    use habla_proxy::{Action, Proxy};
    let mut cfg = proxy_config();
    cfg.identity.domains = vec!["example.com".into()];
    let mut proxy = Proxy::new(cfg, |_: &Uri| Lookup::Unknown, 9);
    let mut layer = habla_transaction::TransactionLayer::<String>::new(Default::default());
    let now = t0();
    let src = habla_transaction::Target::new(Transport::Udp, "192.0.2.200:5060".to_owned());
    let _ = layer.handle_message(now, msg, src);
    let mut out = Vec::new();
    let mut forwarded = 0;
    while let Some(o) = layer.poll_output() {
        match o {
            habla_transaction::Output::Event(habla_transaction::Event::Request {
                key,
                request,
                ..
            }) => {
                let name = request.call_id().map(|c| c.to_string()).unwrap_or_default();
                let r = proxy.handle_request(now, key, request, proxy_iface());
                // A strictly parsed request is always answerable; a lazily
                // parsed one may be too broken to answer (a typed error).
                assert!(!strict || r.is_ok(), "{name}: {r:?}");
            }
            habla_transaction::Output::Event(habla_transaction::Event::Ack { request, .. }) => {
                let r = proxy.handle_ack(now, request, proxy_iface());
                assert!(!strict || r.is_ok(), "{r:?}");
            }
            _ => {}
        }
        while let Some(a) = proxy.poll_action() {
            match a {
                Action::SendResponse { response, .. } => out.push(response),
                Action::Forward { .. } | Action::ForwardStateless { .. } => forwarded += 1,
                _ => {}
            }
        }
    }
    // Time passes: every context ends.
    proxy.handle_timeout(now + Duration::from_secs(3600));
    while proxy.poll_action().is_some() {}
    (out, forwarded)
}

fn finals(r: &[Message]) -> Vec<u16> {
    r.iter()
        .filter_map(|m| m.status())
        .filter(|&c| c >= 200)
        .collect()
}

#[test]
fn torture_messages_get_the_answers_rfc_4475_names() {
    let Some(dir) = conformance_dir() else {
        return;
    };
    let load = |name: &str| {
        let bytes = std::fs::read(dir.join("rfc4475").join(format!("{name}.dat"))).unwrap();
        Message::parse(bytes.into()).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    // §16.3 step 3: Max-Forwards 0 (to a user, not to the proxy itself).
    assert_eq!(finals(&proxy_answers(load("zeromf")).0), vec![483]);
    // §16.3 step 2: schemes a proxy cannot route.
    assert_eq!(finals(&proxy_answers(load("unkscm")).0), vec![416]);
    assert_eq!(finals(&proxy_answers(load("novelsc")).0), vec![416]);
    // §16.3 step 5: Proxy-Require (Require is the UAS's business, not ours).
    let (r, _) = proxy_answers(load("bext01"));
    assert_eq!(finals(&r), vec![420]);
    assert_eq!(
        r[0].header("Unsupported"),
        Some("noProxiesSupportThis, norDoAnyProxiesSupportThis")
    );
    // An unknown method to an unknown user of our domain.
    assert_eq!(finals(&proxy_answers(load("intmeth")).0), vec![404]);
    // RFC 2543 peers and a bare magic cookie: handled, no panic.
    let (r, _) = proxy_answers(load("inv2543"));
    assert!(r.iter().all(|m| m.status().is_some()));
    let (r, _) = proxy_answers(load("badbranch"));
    assert!(r.iter().all(|m| m.status().is_some()));
}

#[test]
fn every_torture_request_is_handled_without_panic() {
    let Some(dir) = conformance_dir() else {
        return;
    };
    let mut seen = 0;
    for sub in ["rfc4475", "rfc5118"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let bytes = std::fs::read(e.path()).unwrap();
            // Lazily parsed too: the proxy must cope with what the strict
            // parser would refuse, should a driver hand it over.
            let msgs = [
                (Message::parse(bytes.clone().into()).ok(), true),
                (
                    Message::parse_lazy(bytes.into(), &Default::default()).ok(),
                    false,
                ),
            ];
            for (m, strict) in msgs {
                if let Some(m) = m.filter(|m| m.is_request()) {
                    let _ = proxy_answers_checked(m, strict);
                    seen += 1;
                }
            }
        }
    }
    assert!(seen > 30, "only {seen} requests");
}
