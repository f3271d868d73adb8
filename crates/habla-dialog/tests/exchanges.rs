//! Dialogs from whole message exchanges (RFC 3261 §12, §13.2.2.4).

mod common;
use common::*;
use habla_dialog::{
    cancel_request, Dialog, DialogError, DialogId, DialogState, DialogTable, InDialogDecision,
    LocalVia, Role, UacOutcome,
};
use habla_message::{Message, Method};

/// Two proxies, P1 (next to Alice) then P2 (next to Bob), record-route:
/// P2's value is on top of the request Bob receives. Written as two lines,
/// the second holding a comma-separated pair, to exercise both forms.
const RR: [&str; 2] = [
    "<sip:p3.chicago.com;lr>",
    "<sip:p2.biloxi.com;lr>, <sip:p1.atlanta.com;lr;transport=tcp>",
];

fn ids_of(d: &Dialog) -> (&str, &str, &str) {
    let id = d.id();
    (&id.call_id, &id.local_tag, &id.remote_tag)
}

fn routes(d: &Dialog) -> Vec<&str> {
    d.route_set().iter().map(|r| r.as_str()).collect()
}

#[test]
fn uac_dialog_from_a_2xx_follows_section_12_1_2() {
    let inv = invite(&RR);
    let ok = answer(&inv, 200, "bobtag", Some(BOB_CONTACT));
    let d = Dialog::from_uac_response(&inv, &ok).unwrap();
    assert_eq!(ids_of(&d), (CALL_ID, ALICE_TAG, "bobtag"));
    assert_eq!(d.state(), DialogState::Confirmed);
    assert_eq!(d.role(), Role::Uac);
    // Reversed: the UAC's first hop is the proxy next to it.
    assert_eq!(
        routes(&d),
        [
            "<sip:p1.atlanta.com;lr;transport=tcp>",
            "<sip:p2.biloxi.com;lr>",
            "<sip:p3.chicago.com;lr>"
        ]
    );
    assert_eq!(d.remote_target().as_str(), "sip:bob@192.0.2.4");
    assert_eq!(d.local_seq(), Some(314159));
    assert_eq!(d.remote_seq(), None);
    assert_eq!(d.local_uri().as_str(), "sip:alice@atlanta.com");
    assert_eq!(d.remote_uri().as_str(), "sip:bob@biloxi.com");
    assert!(!d.is_secure());
}

#[test]
fn uas_dialog_from_the_2xx_it_sends_follows_section_12_1_1() {
    let inv = invite(&RR);
    let ok = answer(&inv, 200, "bobtag", Some(BOB_CONTACT));
    let d = Dialog::from_uas_response(&inv, &ok).unwrap();
    assert_eq!(ids_of(&d), (CALL_ID, "bobtag", ALICE_TAG));
    assert_eq!(d.role(), Role::Uas);
    // As received: the UAS's first hop is the proxy next to it.
    assert_eq!(
        routes(&d),
        [
            "<sip:p3.chicago.com;lr>",
            "<sip:p2.biloxi.com;lr>",
            "<sip:p1.atlanta.com;lr;transport=tcp>"
        ]
    );
    assert_eq!(d.remote_target().as_str(), "sip:alice@pc33.atlanta.com");
    assert_eq!(d.local_seq(), None);
    assert_eq!(d.remote_seq(), Some(314159));
    assert_eq!(d.local_uri().as_str(), "sip:bob@biloxi.com");
    assert_eq!(d.remote_uri().as_str(), "sip:alice@atlanta.com");
}

#[test]
fn route_sets_of_both_ends_give_mirror_route_headers() {
    let inv = invite(&RR);
    let ok = answer(&inv, 200, "bobtag", Some(BOB_CONTACT));
    let mut alice = Dialog::from_uac_response(&inv, &ok).unwrap();
    let mut bob = Dialog::from_uas_response(&inv, &ok).unwrap();
    let a = alice.info(&via("z9hG4bKa1")).unwrap().build().unwrap();
    let b = bob.info(&via("z9hG4bKb1")).unwrap().build().unwrap();
    let mut ra = values(&a, "Route");
    let rb = values(&b, "Route");
    assert_eq!(ra.len(), 3);
    ra.reverse();
    assert_eq!(ra, rb);
    // And the Record-Route order the proxies wrote survives exactly.
    assert_eq!(rb[0], "<sip:p3.chicago.com;lr>");
}

#[test]
fn loose_routing_request_checked_header_by_header() {
    let inv = invite(&RR);
    let ok = answer(&inv, 200, "bobtag", Some(BOB_CONTACT));
    let mut alice = Dialog::from_uac_response(&inv, &ok).unwrap();
    let bye = alice.bye(&via("z9hG4bKnashds7")).unwrap().build().unwrap();
    // RFC 3261 §12.2.1.1: loose first route: Request-URI = remote target,
    // Route = the whole route set in order.
    assert_eq!(bye.method(), Some(&Method::Bye));
    assert_eq!(bye.request_uri_str(), Some("sip:bob@192.0.2.4"));
    assert_eq!(
        values(&bye, "Route"),
        [
            "<sip:p1.atlanta.com;lr;transport=tcp>",
            "<sip:p2.biloxi.com;lr>",
            "<sip:p3.chicago.com;lr>"
        ]
    );
    assert_eq!(
        values(&bye, "Via"),
        ["SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds7"]
    );
    assert_eq!(values(&bye, "Max-Forwards"), ["70"]);
    assert_eq!(
        values(&bye, "From"),
        [format!("Alice <sip:alice@atlanta.com>;tag={ALICE_TAG}")]
    );
    assert_eq!(values(&bye, "To"), ["Bob <sip:bob@biloxi.com>;tag=bobtag"]);
    assert_eq!(values(&bye, "Call-ID"), [CALL_ID]);
    assert_eq!(values(&bye, "CSeq"), ["314160 BYE"]);
    assert_eq!(alice.state(), DialogState::Terminated);
    // Bob's dialog takes it.
    let mut bob = Dialog::from_uas_response(&inv, &ok).unwrap();
    assert_eq!(bob.handle_request(&bye), InDialogDecision::Accept);
    assert_eq!(bob.remote_seq(), Some(314160));
}

#[test]
fn strict_routing_puts_the_first_route_in_the_request_uri() {
    // P1 is an RFC 2543 strict router (no lr) and stamped a method
    // parameter, which a Request-URI may not carry (RFC 3261 §19.1.1).
    let rr = [
        "<sip:p2.biloxi.com;lr>",
        "<sip:p1.atlanta.com;method=INVITE;transport=tcp>",
    ];
    let inv = invite(&rr);
    let ok = answer(
        &inv,
        200,
        "bobtag",
        Some("<sip:bob@192.0.2.4;transport=udp>"),
    );
    let mut alice = Dialog::from_uac_response(&inv, &ok).unwrap();
    let req = alice.info(&via("z9hG4bKs1")).unwrap().build().unwrap();
    // RFC 3261 §12.2.1.1 strict: first route -> Request-URI (params not
    // allowed there stripped), the rest as Route, then the remote target.
    assert_eq!(
        req.request_uri_str(),
        Some("sip:p1.atlanta.com;transport=tcp")
    );
    assert_eq!(
        values(&req, "Route"),
        [
            "<sip:p2.biloxi.com;lr>",
            "<sip:bob@192.0.2.4;transport=udp>"
        ]
    );
    assert_eq!(values(&req, "CSeq"), ["314160 INFO"]);
    assert_eq!(values(&req, "To"), ["Bob <sip:bob@biloxi.com>;tag=bobtag"]);

    // Bob's first hop is P2 (loose): plain loose routing on his side.
    let mut bob = Dialog::from_uas_response(&inv, &ok).unwrap();
    let req = bob.info(&via("z9hG4bKs2")).unwrap().build().unwrap();
    assert_eq!(req.request_uri_str(), Some("sip:alice@pc33.atlanta.com"));
    assert_eq!(
        values(&req, "Route"),
        [
            "<sip:p2.biloxi.com;lr>",
            "<sip:p1.atlanta.com;method=INVITE;transport=tcp>"
        ]
    );
    // A UAS starts its empty local CSeq at 1.
    assert_eq!(values(&req, "CSeq"), ["1 INFO"]);
    assert_eq!(
        values(&req, "From"),
        ["Bob <sip:bob@biloxi.com>;tag=bobtag"]
    );
    assert_eq!(
        values(&req, "To"),
        [format!("Alice <sip:alice@atlanta.com>;tag={ALICE_TAG}")]
    );
}

#[test]
fn no_route_set_goes_straight_to_the_remote_target() {
    let inv = invite(&[]);
    let ok = answer(
        &inv,
        200,
        "bobtag",
        Some("<sip:bob@192.0.2.4;transport=tcp?Subject=x>"),
    );
    let mut alice = Dialog::from_uac_response(&inv, &ok).unwrap();
    let req = alice.message(&via("z9hG4bKm")).unwrap().build().unwrap();
    // URI headers cannot go in a Request-URI (RFC 3261 §19.1.1).
    assert_eq!(
        req.request_uri_str(),
        Some("sip:bob@192.0.2.4;transport=tcp")
    );
    assert_eq!(values(&req, "Route"), Vec::<String>::new());
}

#[test]
fn early_dialog_is_confirmed_by_the_2xx_which_recomputes_route_set_and_target() {
    let inv = invite(&["<sip:p1.atlanta.com;lr>"]);
    let ringing = answer(&inv, 180, "bobtag", Some("<sip:bob@early.biloxi.com>"));
    let mut d = Dialog::from_uac_response(&inv, &ringing).unwrap();
    assert_eq!(d.state(), DialogState::Early);
    // The 2xx takes another path: two proxies now.
    let inv2 = invite(&["<sip:p2.biloxi.com;lr>", "<sip:p1.atlanta.com;lr>"]);
    let ok = answer(&inv2, 200, "bobtag", Some(BOB_CONTACT));
    d.handle_response(&ok).unwrap();
    assert_eq!(d.state(), DialogState::Confirmed);
    assert_eq!(d.remote_target().as_str(), "sip:bob@192.0.2.4");
    assert_eq!(
        routes(&d),
        ["<sip:p1.atlanta.com;lr>", "<sip:p2.biloxi.com;lr>"]
    );
    // No re-INVITE while early (RFC 3261 §14.1), but UPDATE is fine.
    let inv = invite(&[]);
    let ringing = answer(&inv, 183, "t", Some(BOB_CONTACT));
    let mut early = Dialog::from_uac_response(&inv, &ringing).unwrap();
    assert!(matches!(
        early.reinvite(&via("z9hG4bKr"), ALICE_CONTACT),
        Err(DialogError::MethodNotAllowed { .. })
    ));
    assert_eq!(early.local_seq(), Some(314159));
    let up = early
        .update(&via("z9hG4bKu"), ALICE_CONTACT)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(values(&up, "CSeq"), ["314160 UPDATE"]);
    assert_eq!(values(&up, "Contact"), [ALICE_CONTACT]);
}

#[test]
fn forking_two_early_dialogs_then_two_2xx() {
    let inv = invite(&[]);
    let mut t = DialogTable::new();
    let id = |tag: &str| DialogId {
        call_id: CALL_ID.into(),
        local_tag: ALICE_TAG.into(),
        remote_tag: tag.into(),
    };
    // 100 Trying creates nothing.
    let trying = answer_with(&inv, 100, None, &[]);
    assert_eq!(
        t.handle_uac_response(&inv, &trying).unwrap(),
        UacOutcome::NoDialog
    );
    // Two branches ring.
    let r_a = answer(&inv, 180, "A", Some("<sip:bob@a.biloxi.com>"));
    let r_b = answer(&inv, 180, "B", Some("<sip:bob@b.biloxi.com>"));
    assert_eq!(
        t.handle_uac_response(&inv, &r_a).unwrap(),
        UacOutcome::Early {
            id: id("A"),
            created: true
        }
    );
    assert_eq!(
        t.handle_uac_response(&inv, &r_b).unwrap(),
        UacOutcome::Early {
            id: id("B"),
            created: true
        }
    );
    assert_eq!(
        t.handle_uac_response(&inv, &r_a).unwrap(),
        UacOutcome::Early {
            id: id("A"),
            created: false
        }
    );
    assert_eq!(t.len(), 2);
    assert_eq!(t.dialogs_of(CALL_ID, ALICE_TAG).count(), 2);
    // A answers: its early dialog is confirmed.
    let ok_a = answer(&inv, 200, "A", Some("<sip:bob@a.biloxi.com>"));
    assert_eq!(
        t.handle_uac_response(&inv, &ok_a).unwrap(),
        UacOutcome::Confirmed(id("A"))
    );
    assert_eq!(t.get(&id("A")).unwrap().state(), DialogState::Confirmed);
    assert_eq!(t.get(&id("B")).unwrap().state(), DialogState::Early);
    // A retransmits its 2xx: ACK again.
    assert_eq!(
        t.handle_uac_response(&inv, &ok_a).unwrap(),
        UacOutcome::Retransmitted2xx(id("A"))
    );
    // B answers too: a second dialog, reported so that the UAC core ACKs
    // and BYEs it (RFC 3261 §13.2.2.4).
    let ok_b = answer(&inv, 200, "B", Some("<sip:bob@b.biloxi.com>"));
    assert_eq!(
        t.handle_uac_response(&inv, &ok_b).unwrap(),
        UacOutcome::AdditionalDialog(id("B"))
    );
    // A third branch never rang and answers at once.
    let ok_c = answer(&inv, 200, "C", Some("<sip:bob@c.biloxi.com>"));
    assert_eq!(
        t.handle_uac_response(&inv, &ok_c).unwrap(),
        UacOutcome::AdditionalDialog(id("C"))
    );
    assert_eq!(t.len(), 3);

    let b = t.get_mut(&id("B")).unwrap();
    let ack = b.ack(&ok_b, &via("z9hG4bKackb")).unwrap().build().unwrap();
    assert_eq!(ack.request_uri_str(), Some("sip:bob@b.biloxi.com"));
    assert_eq!(values(&ack, "CSeq"), ["314159 ACK"]);
    assert_eq!(values(&ack, "To"), ["Bob <sip:bob@biloxi.com>;tag=B"]);
    let bye = b.bye(&via("z9hG4bKbyeb")).unwrap().build().unwrap();
    assert_eq!(values(&bye, "CSeq"), ["314160 BYE"]);
    assert_eq!(bye.request_uri_str(), Some("sip:bob@b.biloxi.com"));
    // The BYE's 200 arrives; the terminated dialog is removed.
    let bye_ok = answer_with(&bye, 200, None, &[]);
    assert_eq!(
        t.handle_uac_response(&bye, &bye_ok).unwrap(),
        UacOutcome::InDialog(id("B"))
    );
    assert_eq!(t.remove_terminated(), [id("B")]);
    assert_eq!(t.len(), 2);
    // A's ACK is not bothered by the others.
    let ack_a = t
        .get(&id("A"))
        .unwrap()
        .ack(&ok_a, &via("z9hG4bKacka"))
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(ack_a.request_uri_str(), Some("sip:bob@a.biloxi.com"));
    // An ACK for B's response cannot come out of A's dialog.
    assert!(t
        .get(&id("A"))
        .unwrap()
        .ack(&ok_b, &via("z9hG4bKx"))
        .is_err());
}

#[test]
fn final_non_2xx_terminates_every_early_dialog() {
    let inv = invite(&[]);
    let mut t = DialogTable::new();
    for tag in ["A", "B"] {
        let r = answer(&inv, 183, tag, Some(BOB_CONTACT));
        let _ = t.handle_uac_response(&inv, &r).unwrap();
    }
    // An unrelated call's dialog stays.
    let other = invite_to("sip:carol@chicago.com", "UDP", 7, &[]);
    let other = {
        let raw = String::from_utf8(other.to_bytes().to_vec())
            .unwrap()
            .replace(CALL_ID, "other-call");
        Message::parse(raw.into_bytes().into()).unwrap()
    };
    let r = answer(&other, 180, "X", Some(BOB_CONTACT));
    let _ = t.handle_uac_response(&other, &r).unwrap();
    assert_eq!(t.len(), 3);

    let busy = answer(&inv, 486, "A", None);
    match t.handle_uac_response(&inv, &busy).unwrap() {
        UacOutcome::EarlyTerminated(mut ids) => {
            ids.sort();
            let tags: Vec<_> = ids.iter().map(|i| i.remote_tag.as_str()).collect();
            assert_eq!(tags, ["A", "B"]);
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(t.len(), 1);
    assert_eq!(t.iter().next().unwrap().id().call_id, "other-call");
    // The 64*T1 rule ends the rest the same way.
    assert_eq!(t.terminate_early_dialogs(&other).unwrap().len(), 1);
    assert!(t.is_empty());
}

#[test]
fn uas_table_creates_confirms_and_terminates() {
    let inv = invite(&RR);
    let mut t = DialogTable::new();
    let trying = answer_with(&inv, 100, None, &[]);
    assert_eq!(t.handle_uas_response(&inv, &trying).unwrap(), None);
    let ringing = answer(&inv, 180, "bobtag", Some(BOB_CONTACT));
    let id = t.handle_uas_response(&inv, &ringing).unwrap().unwrap();
    assert_eq!(t.get(&id).unwrap().state(), DialogState::Early);
    let ok = answer(&inv, 200, "bobtag", Some(BOB_CONTACT));
    assert_eq!(t.handle_uas_response(&inv, &ok).unwrap(), Some(id.clone()));
    assert_eq!(t.get(&id).unwrap().state(), DialogState::Confirmed);

    // The same INVITE declined instead: the early dialog goes away.
    let mut t = DialogTable::new();
    let _ = t.handle_uas_response(&inv, &ringing).unwrap();
    let decline = answer(&inv, 603, "bobtag", None);
    assert_eq!(t.handle_uas_response(&inv, &decline).unwrap(), None);
    assert!(t.is_empty());
}

/// Alice's dialog and Bob's for one call, plus the table on Bob's side.
fn call() -> (Dialog, DialogTable, DialogId) {
    let inv = invite(&RR);
    let ok = answer(&inv, 200, "bobtag", Some(BOB_CONTACT));
    let alice = Dialog::from_uac_response(&inv, &ok).unwrap();
    let mut bob = DialogTable::new();
    let id = bob.handle_uas_response(&inv, &ok).unwrap().unwrap();
    (alice, bob, id)
}

#[test]
fn cseq_rules_500_for_lower_481_for_unknown() {
    let (mut alice, mut bob, id) = call();
    let first = alice.info(&via("z9hG4bK1")).unwrap().build().unwrap();
    let second = alice.info(&via("z9hG4bK2")).unwrap().build().unwrap();
    assert_eq!(bob.handle_request(&second), InDialogDecision::Accept);
    assert_eq!(bob.get(&id).unwrap().remote_seq(), Some(314161));
    // RFC 3261 §12.2.2: lower than the remote CSeq -> 500.
    assert_eq!(bob.handle_request(&first), InDialogDecision::Reject(500));
    assert_eq!(bob.get(&id).unwrap().remote_seq(), Some(314161));
    // The ACK carries the INVITE's (lower) CSeq and is still accepted.
    let inv = invite(&RR);
    let ok = answer(&inv, 200, "bobtag", Some(BOB_CONTACT));
    let ack = alice.ack(&ok, &via("z9hG4bKack")).unwrap().build().unwrap();
    assert_eq!(values(&ack, "CSeq"), ["314159 ACK"]);
    assert_eq!(alice.local_seq(), Some(314161));
    assert_eq!(bob.handle_request(&ack), InDialogDecision::Accept);

    // Unknown dialog: another remote tag -> 481, from the table and from
    // the dialog itself.
    let raw = String::from_utf8(second.to_bytes().to_vec())
        .unwrap()
        .replace(";tag=bobtag", ";tag=nobody");
    let stray = Message::parse(raw.into_bytes().into()).unwrap();
    assert_eq!(bob.handle_request(&stray), InDialogDecision::Reject(481));
    assert_eq!(
        bob.get_mut(&id).unwrap().handle_request(&stray),
        InDialogDecision::Reject(481)
    );
    // A BYE ends the dialog; anything after it gets 481.
    let bye = alice.bye(&via("z9hG4bK3")).unwrap().build().unwrap();
    assert_eq!(bob.handle_request(&bye), InDialogDecision::Accept);
    assert_eq!(alice.state(), DialogState::Terminated);
    assert_eq!(bob.handle_request(&second), InDialogDecision::Reject(481));
    assert_eq!(bob.remove_terminated(), [id]);
    assert_eq!(bob.handle_request(&bye), InDialogDecision::Reject(481));
}

#[test]
fn target_refresh_updates_the_remote_target_on_both_sides() {
    let (mut alice, mut bob, id) = call();
    // Alice moves: her re-INVITE carries a new Contact.
    let reinvite = alice
        .reinvite(&via("z9hG4bKri"), "<sip:alice@198.51.100.7:5070>")
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(values(&reinvite, "CSeq"), ["314160 INVITE"]);
    assert_eq!(bob.handle_request(&reinvite), InDialogDecision::Accept);
    let d = bob.get_mut(&id).unwrap();
    assert_eq!(d.remote_target().as_str(), "sip:alice@198.51.100.7:5070");
    let bye = d.bye(&via("z9hG4bKbb")).unwrap().build().unwrap();
    assert_eq!(bye.request_uri_str(), Some("sip:alice@198.51.100.7:5070"));

    // Bob moves: the 2xx to Alice's UPDATE carries his new Contact.
    let update = alice
        .update(&via("z9hG4bKup"), ALICE_CONTACT)
        .unwrap()
        .build()
        .unwrap();
    let ok = answer_with(&update, 200, None, &[("Contact", "<sip:bob@203.0.113.9>")]);
    alice.handle_response(&ok).unwrap();
    assert_eq!(alice.remote_target().as_str(), "sip:bob@203.0.113.9");
    // A 2xx to a request that is no target refresh changes nothing.
    let info = alice.info(&via("z9hG4bKin")).unwrap().build().unwrap();
    let ok = answer_with(&info, 200, None, &[("Contact", "<sip:bob@evil.example>")]);
    alice.handle_response(&ok).unwrap();
    assert_eq!(alice.remote_target().as_str(), "sip:bob@203.0.113.9");
    // A re-INVITE without Contact keeps the target; one with two gets 400.
    let (mut alice, mut bob, id) = call();
    let bare = alice
        .request(Method::Update, &via("z9hG4bKb"))
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(bob.handle_request(&bare), InDialogDecision::Accept);
    assert_eq!(
        bob.get(&id).unwrap().remote_target().as_str(),
        "sip:alice@pc33.atlanta.com"
    );
    let two = alice
        .update(&via("z9hG4bKc"), "<sip:a@x.example>, <sip:a@y.example>")
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(bob.handle_request(&two), InDialogDecision::Reject(400));
    assert_eq!(bob.get(&id).unwrap().remote_seq(), Some(314160));
}

#[test]
fn a_481_or_408_to_a_request_in_the_dialog_ends_it() {
    for code in [481, 408] {
        let (mut alice, _, _) = call();
        let info = alice.info(&via("z9hG4bKi")).unwrap().build().unwrap();
        alice
            .handle_response(&answer_with(&info, code, None, &[]))
            .unwrap();
        assert_eq!(alice.state(), DialogState::Terminated);
        assert_eq!(
            alice.info(&via("z9hG4bKj")).unwrap_err(),
            DialogError::Terminated
        );
    }
    // Other failures leave it up.
    let (mut alice, _, _) = call();
    let info = alice.info(&via("z9hG4bKi")).unwrap().build().unwrap();
    alice
        .handle_response(&answer_with(&info, 488, None, &[]))
        .unwrap();
    assert_eq!(alice.state(), DialogState::Confirmed);
}

#[test]
fn ack_and_cancel_reuse_the_invite_cseq() {
    let (mut alice, _, _) = call();
    assert!(matches!(
        alice.request(Method::Ack, &via("z9hG4bKa")),
        Err(DialogError::MethodNotAllowed { .. })
    ));
    assert!(matches!(
        alice.request(Method::Cancel, &via("z9hG4bKa")),
        Err(DialogError::MethodNotAllowed { .. })
    ));
    let reinvite = alice
        .reinvite(&via("z9hG4bKri"), ALICE_CONTACT)
        .unwrap()
        .build()
        .unwrap();
    // RFC 3261 §9.1: CANCEL copies the INVITE's Request-URI, top Via,
    // From, To, Call-ID, CSeq number and Route.
    let cancel = cancel_request(&reinvite).unwrap().build().unwrap();
    assert_eq!(cancel.request_uri_str(), reinvite.request_uri_str());
    assert_eq!(values(&cancel, "Via"), values(&reinvite, "Via"));
    assert_eq!(values(&cancel, "Route"), values(&reinvite, "Route"));
    assert_eq!(values(&cancel, "From"), values(&reinvite, "From"));
    assert_eq!(values(&cancel, "To"), values(&reinvite, "To"));
    assert_eq!(values(&cancel, "CSeq"), ["314160 CANCEL"]);
    assert!(cancel_request(&cancel).is_err());
    // The ACK for the re-INVITE's 2xx: same number, route set, no CSeq move.
    let ok = answer_with(&reinvite, 200, None, &[("Contact", BOB_CONTACT)]);
    alice.handle_response(&ok).unwrap();
    let ack = alice.ack(&ok, &via("z9hG4bKack")).unwrap().build().unwrap();
    assert_eq!(values(&ack, "CSeq"), ["314160 ACK"]);
    assert_eq!(values(&ack, "Route"), values(&reinvite, "Route"));
    assert_eq!(alice.local_seq(), Some(314160));
    // Only 2xx to INVITE are the UA core's to ACK.
    let busy = answer_with(&reinvite, 491, None, &[]);
    assert!(alice.ack(&busy, &via("z9hG4bKx")).is_err());
    // ACK is still possible after the BYE (a late 2xx retransmission).
    let _ = alice.bye(&via("z9hG4bKbye")).unwrap();
    assert!(alice.ack(&ok, &via("z9hG4bKack2")).is_ok());
}

#[test]
fn secure_flag_needs_sips_and_tls() {
    let inv = invite_to("sips:bob@biloxi.com", "TLS", 1, &[]);
    let ok = answer(&inv, 200, "t", Some("<sips:bob@192.0.2.4>"));
    assert!(Dialog::from_uac_response(&inv, &ok).unwrap().is_secure());
    assert!(Dialog::from_uas_response(&inv, &ok).unwrap().is_secure());
    let inv = invite_to("sips:bob@biloxi.com", "UDP", 1, &[]);
    let ok = answer(&inv, 200, "t", Some("<sips:bob@192.0.2.4>"));
    assert!(!Dialog::from_uac_response(&inv, &ok).unwrap().is_secure());
    let inv = invite_to("sip:bob@biloxi.com", "TLS", 1, &[]);
    let ok = answer(&inv, 200, "t", Some(BOB_CONTACT));
    assert!(!Dialog::from_uac_response(&inv, &ok).unwrap().is_secure());
}

#[test]
fn cseq_space_exhaustion_is_an_error() {
    let inv = invite_to("sip:bob@biloxi.com", "UDP", u32::MAX, &[]);
    let ok = answer(&inv, 200, "t", Some(BOB_CONTACT));
    let mut d = Dialog::from_uac_response(&inv, &ok).unwrap();
    assert_eq!(
        d.info(&via("z9hG4bK1")).unwrap_err(),
        DialogError::CSeqExhausted
    );
    assert_eq!(d.local_seq(), Some(u32::MAX));
    assert!(d.ack(&ok, &via("z9hG4bK2")).is_ok());
}

#[test]
fn caller_values_with_crlf_fail_at_build_not_by_injection() {
    let (mut alice, _, _) = call();
    let v = LocalVia::new("UDP", "pc33.atlanta.com", "z9hG4bK1\r\nX-Evil: 1");
    assert!(alice.info(&v).unwrap().build().is_err());
}
