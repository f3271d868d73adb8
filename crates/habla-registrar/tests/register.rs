//! REGISTER processing against RFC 3261 §10.3 and the torture corpus's
//! registrar cases.

use bytes::Bytes;
use habla_message::{Message, Method, RequestBuilder, Uri};
use habla_registrar::{
    by_preference, process_register, process_register_from, response, Binding, RegisterDecision,
    RegistrarConfig,
};
use std::path::PathBuf;

const NOW: u64 = 1_800_000_000;

fn register(call_id: &str, cseq: u32, contacts: &[&str], expires: Option<&str>) -> Message {
    let mut b = RequestBuilder::new(Method::Register, &Uri::parse("sip:example.org").unwrap())
        .via("UDP", "192.0.2.4:5060", &format!("z9hG4bK{cseq}"), true)
        .max_forwards(70)
        .to("Bob <sip:bob@Example.ORG>")
        .from("Bob <sip:bob@example.org>;tag=456248")
        .call_id(call_id)
        .cseq(cseq);
    for c in contacts {
        b = b.header("Contact", c);
    }
    if let Some(e) = expires {
        b = b.header("Expires", e);
    }
    b.build().unwrap()
}

fn update(d: RegisterDecision) -> (String, Vec<Binding>, Vec<String>) {
    match d {
        RegisterDecision::Update {
            aor,
            bindings,
            contacts,
        } => (aor, bindings, contacts),
        other => panic!("expected an update, got {other:?}"),
    }
}

fn rejected(d: RegisterDecision) -> u16 {
    match d {
        RegisterDecision::Reject(r) => r.code,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn cfg() -> RegistrarConfig {
    RegistrarConfig::default()
}

#[test]
fn expiry_comes_from_the_contact_then_the_header_then_the_default_and_is_capped() {
    let req = register(
        "c1",
        1,
        &[
            "<sip:bob@192.0.2.4>;expires=600",
            "<sip:bob@192.0.2.5>",
            "<sip:bob@192.0.2.6>;expires=999999",
        ],
        Some("300"),
    );
    let (aor, b, contacts) = update(process_register(&cfg(), NOW, &req, &[]).unwrap());
    assert_eq!(
        aor, "sip:bob@example.org",
        "host lower-cased, display name and port ignored"
    );
    assert_eq!(b.len(), 3);
    assert_eq!(b[0].expires_at, NOW + 600);
    assert_eq!(b[1].expires_at, NOW + 300);
    assert_eq!(b[2].expires_at, NOW + u64::from(cfg().max_expires));
    assert_eq!(contacts[0], "<sip:bob@192.0.2.4>;expires=600");
    let req = register("c1", 2, &["<sip:bob@192.0.2.7>"], None);
    let (_, b, _) = update(process_register(&cfg(), NOW, &req, &[]).unwrap());
    assert_eq!(b[0].expires_at, NOW + u64::from(cfg().default_expires));
}

#[test]
fn too_brief_gets_423_with_min_expires() {
    let req = register("c1", 1, &["<sip:bob@192.0.2.4>;expires=10"], None);
    let d = process_register(&cfg(), NOW, &req, &[]).unwrap();
    let RegisterDecision::Reject(r) = &d else {
        panic!("{d:?}")
    };
    assert_eq!(r.code, 423);
    assert_eq!(r.headers, vec![("Min-Expires", "60".to_string())]);
    let bytes = response(&req, &d, "t1", "Sat, 13 Nov 2010 23:29:00 GMT");
    let resp = Message::parse(bytes).unwrap();
    assert_eq!(resp.status(), Some(423));
    assert_eq!(resp.header("Min-Expires"), Some("60"));
}

#[test]
fn a_stale_register_does_not_overwrite_a_newer_one() {
    let first = register("c1", 10, &["<sip:bob@192.0.2.4>;expires=600"], None);
    let (_, stored, _) = update(process_register(&cfg(), NOW, &first, &[]).unwrap());
    // Same Call-ID, lower or equal CSeq: refused, nothing changes.
    for cseq in [9, 10] {
        let stale = register("c1", cseq, &["<sip:bob@192.0.2.4>;expires=0"], None);
        assert_eq!(
            rejected(process_register(&cfg(), NOW, &stale, &stored).unwrap()),
            500
        );
    }
    // Higher CSeq refreshes.
    let newer = register("c1", 11, &["<sip:bob@192.0.2.4>;expires=900"], None);
    let (_, b, _) = update(process_register(&cfg(), NOW + 5, &newer, &stored).unwrap());
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].expires_at, NOW + 905);
    assert_eq!(b[0].cseq, 11);
    // Another Call-ID (a rebooted phone) replaces it whatever its CSeq.
    let other = register("c2", 1, &["<sip:bob@192.0.2.4>;expires=0"], None);
    let (_, b, contacts) = update(process_register(&cfg(), NOW, &other, &stored).unwrap());
    assert!(b.is_empty() && contacts.is_empty());
}

#[test]
fn star_removes_every_binding_only_with_expires_zero_and_alone() {
    let first = register(
        "c1",
        1,
        &["<sip:bob@192.0.2.4>", "<sip:bob@192.0.2.5>"],
        None,
    );
    let (_, stored, _) = update(process_register(&cfg(), NOW, &first, &[]).unwrap());
    assert_eq!(stored.len(), 2);
    let star = register("c9", 1, &["*"], Some("0"));
    let (_, b, _) = update(process_register(&cfg(), NOW, &star, &stored).unwrap());
    assert!(b.is_empty());
    let star = register("c9", 1, &["*"], Some("10"));
    assert_eq!(
        rejected(process_register(&cfg(), NOW, &star, &stored).unwrap()),
        400
    );
    let star = register("c9", 1, &["*", "<sip:bob@192.0.2.4>"], Some("0"));
    assert_eq!(
        rejected(process_register(&cfg(), NOW, &star, &stored).unwrap()),
        400
    );
}

#[test]
fn fetch_lists_live_bindings_with_remaining_time_and_q() {
    let first = register(
        "c1",
        1,
        &[
            "<sip:bob@192.0.2.4>;expires=600;q=0.5",
            "<sip:bob@192.0.2.5>;expires=100",
        ],
        None,
    );
    let (_, stored, _) = update(process_register(&cfg(), NOW, &first, &[]).unwrap());
    let query = register("c1", 2, &[], None);
    match process_register(&cfg(), NOW + 150, &query, &stored).unwrap() {
        RegisterDecision::Fetch { aor, contacts } => {
            assert_eq!(aor, "sip:bob@example.org");
            // The second one expired at NOW+100: it is not listed.
            assert_eq!(
                contacts,
                vec!["<sip:bob@192.0.2.4>;expires=450;q=0.5".to_string()]
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn contacts_match_by_uri_equality_and_expires_zero_removes_one() {
    let first = register(
        "c1",
        1,
        &[
            "<sip:bob@192.0.2.4;transport=tcp;ob>",
            "<sip:bob@192.0.2.5>",
        ],
        None,
    );
    let (_, stored, _) = update(process_register(&cfg(), NOW, &first, &[]).unwrap());
    // Same URI, other parameter order and case: the same binding.
    let remove = register(
        "c1",
        2,
        &["<sip:bob@192.0.2.4;ob;Transport=TCP>;expires=0"],
        None,
    );
    let (_, b, _) = update(process_register(&cfg(), NOW, &remove, &stored).unwrap());
    assert_eq!(b.len(), 1);
    assert_eq!(&*b[0].contact, "sip:bob@192.0.2.5");
}

#[test]
fn bindings_per_aor_are_bounded() {
    let cfg = RegistrarConfig {
        max_bindings_per_aor: 2,
        ..cfg()
    };
    let req = register(
        "c1",
        1,
        &[
            "<sip:a@192.0.2.1>",
            "<sip:b@192.0.2.1>",
            "<sip:c@192.0.2.1>",
        ],
        None,
    );
    assert_eq!(
        rejected(process_register(&cfg, NOW, &req, &[]).unwrap()),
        403
    );
}

#[test]
fn q_values_order_forking_and_path_and_source_are_kept() {
    let mut req = register(
        "c1",
        1,
        &[
            "<sip:low@192.0.2.1>;q=0.1",
            "<sip:high@192.0.2.1>;q=1.0",
            "<sip:mid@192.0.2.1>",
        ],
        None,
    );
    req.append_header("Path", "<sip:edge.example.org;lr>")
        .unwrap();
    let (_, mut b, _) =
        update(process_register_from(&cfg(), NOW, &req, &[], Some("tcp:192.0.2.1:50000")).unwrap());
    assert_eq!(
        b[0].path.iter().map(|p| &**p).collect::<Vec<_>>(),
        ["<sip:edge.example.org;lr>"]
    );
    assert_eq!(b[0].source.as_deref(), Some("tcp:192.0.2.1:50000"));
    by_preference(&mut b);
    let order: Vec<_> = b.iter().map(|b| &*b.contact).collect();
    assert_eq!(
        order,
        [
            "sip:high@192.0.2.1",
            "sip:mid@192.0.2.1",
            "sip:low@192.0.2.1"
        ]
    );
    let bad = register("c1", 2, &["<sip:x@192.0.2.1>;q=2"], None);
    assert_eq!(
        rejected(process_register(&cfg(), NOW, &bad, &[]).unwrap()),
        400
    );
}

/// A refresh records what its REGISTER carries (Call-ID, CSeq, User-Agent,
/// flow, Path); what it repeats, the binding keeps without a copy, and
/// what it drops (User-Agent, Path) goes.
#[test]
fn a_refresh_records_its_request_and_keeps_what_it_repeats() {
    let first = |call_id: &str, cseq: u32, ua: Option<&str>, path: Option<&str>| {
        let mut req = register(call_id, cseq, &["<sip:bob@192.0.2.4>"], None);
        if let Some(ua) = ua {
            req.append_header("User-Agent", ua).unwrap();
        }
        if let Some(p) = path {
            req.append_header("Path", p).unwrap();
        }
        req
    };
    let decide = |req: &Message, current: &[Binding], flow: &str| {
        update(process_register_from(&cfg(), NOW, req, current, Some(flow)).unwrap()).1
    };
    let path = "<sip:edge.example.org;lr>";
    let one = decide(&first("c1", 1, Some("phone/1"), Some(path)), &[], "udp:a");
    // Same Call-ID, User-Agent, flow and Path: shared, not copied.
    let two = decide(&first("c1", 2, Some("phone/1"), Some(path)), &one, "udp:a");
    assert_eq!(two[0].cseq, 2);
    assert!(std::sync::Arc::ptr_eq(&one[0].call_id, &two[0].call_id));
    assert!(std::sync::Arc::ptr_eq(
        one[0].user_agent.as_ref().unwrap(),
        two[0].user_agent.as_ref().unwrap()
    ));
    assert!(std::sync::Arc::ptr_eq(
        one[0].source.as_ref().unwrap(),
        two[0].source.as_ref().unwrap()
    ));
    assert!(std::sync::Arc::ptr_eq(&one[0].path, &two[0].path));
    // Everything changed: recorded.
    let three = decide(&first("c2", 1, Some("phone/2"), None), &two, "udp:b");
    assert_eq!(&*three[0].call_id, "c2");
    assert_eq!(three[0].cseq, 1);
    assert_eq!(three[0].user_agent.as_deref(), Some("phone/2"));
    assert_eq!(three[0].source.as_deref(), Some("udp:b"));
    assert!(three[0].path.is_empty());
    // No User-Agent any more: none recorded.
    let four = decide(&first("c2", 2, None, Some(path)), &three, "udp:b");
    assert_eq!(four[0].user_agent, None);
    assert_eq!(
        four[0].path.iter().map(|p| &**p).collect::<Vec<_>>(),
        [path]
    );
}

/// RFC 3261 §10.3 step 5: the AOR is the To URI without parameters or
/// port, host in lower case, user unescaped then escaped again only where
/// it must be.
#[test]
fn the_address_of_record_is_canonical() {
    use habla_registrar::address_of_record;
    for (uri, aor) in [
        (
            "sip:bob@Example.ORG:5070;transport=tcp",
            "sip:bob@example.org",
        ),
        ("sips:Bob@EXAMPLE.org", "sips:Bob@example.org"),
        ("sip:%62ob@example.org", "sip:bob@example.org"),
        ("sip:a%20b@example.org", "sip:a%20b@example.org"),
        ("sip:a%00@example.org", "sip:a%00@example.org"),
        (
            "sip:%C3%A9t%C3%A9@[2001:DB8::1]",
            "sip:%C3%A9t%C3%A9@[2001:db8::1]",
        ),
        (
            "sip:+1-212-555-0101;isub=1@gw.example.org",
            "sip:+1-212-555-0101;isub=1@gw.example.org",
        ),
    ] {
        assert_eq!(
            address_of_record(&Uri::parse(uri).unwrap()).as_deref(),
            Some(aor),
            "{uri}"
        );
    }
    assert_eq!(
        address_of_record(&Uri::parse("tel:+12125550101").unwrap()),
        None
    );
}

#[test]
fn the_200_lists_every_binding() {
    let req = register("c1", 1, &["<sip:bob@192.0.2.4>;expires=600"], None);
    let d = process_register(&cfg(), NOW, &req, &[]).unwrap();
    let resp = Message::parse(response(&req, &d, "reg1", "Sat, 13 Nov 2010 23:29:00 GMT")).unwrap();
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.to().unwrap().tag(), Some("reg1"));
    let c = resp.contacts().unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].expires(), Some(600));
    assert!(resp.header("Date").is_some());
}

fn corpus(name: &str) -> Option<Message> {
    let dir = std::env::var_os("HABLA_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        });
    match std::fs::read(dir.join("rfc4475").join(format!("{name}.dat"))) {
        Ok(b) => Some(Message::parse(Bytes::from(b)).unwrap()),
        Err(_) if std::env::var("HABLA_REQUIRE_CONFORMANCE").as_deref() == Ok("1") => {
            panic!("conformance corpus missing at {}", dir.display())
        }
        Err(_) => {
            println!(
                "conformance corpus not found at {}; skipping {name}",
                dir.display()
            );
            None
        }
    }
}

#[test]
fn rfc4475_registrar_cases() {
    // escnull: %00 and %00%00 are two distinct contacts.
    if let Some(m) = corpus("escnull") {
        let (_, b, _) = update(process_register(&cfg(), NOW, &m, &[]).unwrap());
        assert_eq!(b.len(), 2, "{b:?}");
    }
    // cparam01: without <>, ;unknownparam is a contact parameter, not part of the URI.
    if let Some(m) = corpus("cparam01") {
        let (_, b, contacts) = update(process_register(&cfg(), NOW, &m, &[]).unwrap());
        assert!(!b[0].contact.contains("unknownparam"), "{b:?}");
        assert!(!contacts[0].contains("unknownparam"));
    }
    // cparam02: inside <> it is a URI parameter and is kept.
    if let Some(m) = corpus("cparam02") {
        let (_, b, contacts) = update(process_register(&cfg(), NOW, &m, &[]).unwrap());
        assert!(b[0].contact.contains("unknownparam"), "{b:?}");
        assert!(contacts[0].contains("unknownparam"));
    }
    // regescrt: the escaped Route header stays in the binding.
    if let Some(m) = corpus("regescrt") {
        let (_, b, contacts) = update(process_register(&cfg(), NOW, &m, &[]).unwrap());
        assert!(
            b[0].contact.contains("?Route=%3Csip:sip.example.com%3E"),
            "{b:?}"
        );
        assert!(contacts[0].contains("?Route=%3Csip:sip.example.com%3E"));
    }
    // unksm2: a To that is not a SIP AOR is refused with 400.
    if let Some(m) = corpus("unksm2") {
        assert_eq!(
            rejected(process_register(&cfg(), NOW, &m, &[]).unwrap()),
            400
        );
    }
}

#[test]
fn memory_location_service_applies_decisions_and_expires_by_timer() {
    use habla_registrar::{address_of_record, LocationService, MemoryLocationService};
    let store = MemoryLocationService::new();
    let req = register(
        "c1",
        1,
        &[
            "<sip:bob@192.0.2.4>;expires=100",
            "<sip:bob@192.0.2.5>;expires=200",
        ],
        None,
    );
    let aor = address_of_record(req.to().unwrap().uri()).unwrap();
    let committed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c = committed.clone();
    let d = store.register(
        &aor,
        NOW,
        &mut |current| process_register(&cfg(), NOW, &req, current).unwrap(),
        Box::new(move |r| c.store(r.is_ok(), std::sync::atomic::Ordering::SeqCst)),
    );
    assert!(matches!(d, RegisterDecision::Update { .. }));
    assert!(committed.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(store.lookup(&aor, NOW).len(), 2);
    assert_eq!(store.next_expiry(), Some(NOW + 100));
    assert_eq!(store.expire(NOW + 100), 1);
    assert_eq!(store.lookup(&aor, NOW + 100).len(), 1);
    assert_eq!(store.next_expiry(), Some(NOW + 200));
    assert_eq!(store.expire(NOW + 500), 1);
    assert!(store.is_empty());
    assert_eq!(store.next_expiry(), None);
}

/// A refresh moves the AOR's expiry: the timer follows the earliest
/// binding after every change, not the one first scheduled.
#[test]
fn a_refresh_moves_the_expiry_timer() {
    use habla_registrar::{address_of_record, LocationService, MemoryLocationService};
    let store = MemoryLocationService::new();
    let apply = |req: &Message| {
        let aor = address_of_record(req.to().unwrap().uri()).unwrap();
        store.register(
            &aor,
            NOW,
            &mut |current| process_register(&cfg(), NOW, req, current).unwrap(),
            Box::new(|_| {}),
        );
        aor
    };
    let aor = apply(&register(
        "c7",
        1,
        &["<sip:bob@192.0.2.4>;expires=100"],
        None,
    ));
    assert_eq!(store.next_expiry(), Some(NOW + 100));
    apply(&register(
        "c7",
        2,
        &["<sip:bob@192.0.2.4>;expires=300"],
        None,
    ));
    assert_eq!(store.next_expiry(), Some(NOW + 300));
    // Nothing is due at the first deadline any more.
    assert_eq!(store.expire(NOW + 100), 0);
    assert_eq!(store.lookup(&aor, NOW + 100).len(), 1);
    assert_eq!(store.expire(NOW + 300), 1);
    assert_eq!(store.next_expiry(), None);
}

/// Many AORs due in the same second (the usual case on a busy registrar):
/// each leaves at its own deadline, whether it was refreshed, removed or
/// added again in between.
#[test]
fn aors_due_in_the_same_second_expire_each_at_its_own_deadline() {
    use habla_registrar::{LocationService, MemoryLocationService};
    let req = register("c9", 1, &["<sip:bob@192.0.2.4>;expires=100"], None);
    let (_, template, _) = update(process_register(&cfg(), NOW, &req, &[]).unwrap());
    let at = |expires_at: u64| {
        let mut b = template.clone();
        b[0].expires_at = expires_at;
        b
    };
    let store = MemoryLocationService::new();
    let aors: Vec<String> = (0..300).map(|i| format!("sip:u{i}@example.org")).collect();
    for aor in &aors {
        store.replace(aor, at(NOW + 100));
    }
    // Every third refreshed to a later second, every third removed, and of
    // those removed every other one added again at the first second.
    for (i, aor) in aors.iter().enumerate() {
        match i % 3 {
            1 => store.replace(aor, at(NOW + 300)),
            2 => {
                store.replace(aor, Vec::new());
                if i % 2 == 0 {
                    store.replace(aor, at(NOW + 100));
                }
            }
            _ => {}
        }
    }
    assert_eq!(store.next_expiry(), Some(NOW + 100));
    assert_eq!(store.expire(NOW + 99), 0);
    assert_eq!(store.expire(NOW + 100), 100 + 50);
    for (i, aor) in aors.iter().enumerate() {
        let left = store.lookup(aor, NOW + 100).len();
        assert_eq!(left, usize::from(i % 3 == 1), "{aor}");
    }
    assert_eq!(store.next_expiry(), Some(NOW + 300));
    assert_eq!(store.expire(NOW + 300), 100);
    assert!(store.is_empty());
    assert_eq!(store.next_expiry(), None);
}
