//! Hostile or broken input gives typed errors, never panics, and leaves
//! the dialog table as it was.

mod common;
use common::*;
use habla_dialog::{Dialog, DialogError, DialogTable, InDialogDecision, UacOutcome};
use habla_message::{Message, Method, RequestBuilder, Uri};

fn malformed_header(e: &DialogError) -> Option<&'static str> {
    match e {
        DialogError::Malformed { header, .. } => Some(header),
        _ => None,
    }
}

#[test]
fn missing_contact() {
    let inv = invite(&[]);
    let ok = answer(&inv, 200, "t", None);
    assert_eq!(
        Dialog::from_uac_response(&inv, &ok).unwrap_err(),
        DialogError::MissingContact
    );
    let mut t = DialogTable::new();
    assert_eq!(
        t.handle_uac_response(&inv, &ok).unwrap_err(),
        DialogError::MissingContact
    );
    assert!(t.is_empty());
    // A request without Contact cannot found a UAS dialog either.
    let bare = RequestBuilder::new(Method::Invite, &Uri::parse("sip:bob@biloxi.com").unwrap())
        .via("UDP", "h", "z9hG4bK1", false)
        .from("<sip:a@b>;tag=1")
        .to("<sip:bob@biloxi.com>")
        .call_id("c1")
        .cseq(1)
        .build()
        .unwrap();
    let ok = answer(&bare, 200, "t", Some(BOB_CONTACT));
    assert_eq!(
        Dialog::from_uas_response(&bare, &ok).unwrap_err(),
        DialogError::MissingContact
    );
    assert_eq!(
        t.handle_uas_response(&bare, &ok).unwrap_err(),
        DialogError::MissingContact
    );
    assert!(t.is_empty());
}

#[test]
fn missing_tags() {
    let inv = invite(&[]);
    // A 2xx without To tag (an RFC 2543 peer, or a broken one).
    let ok = answer_with(&inv, 200, None, &[("Contact", BOB_CONTACT)]);
    assert_eq!(
        Dialog::from_uac_response(&inv, &ok).unwrap_err(),
        DialogError::MissingTag("To")
    );
    assert_eq!(
        Dialog::from_uas_response(&inv, &ok).unwrap_err(),
        DialogError::MissingTag("To")
    );
    let mut t = DialogTable::new();
    assert_eq!(
        t.handle_uac_response(&inv, &ok).unwrap_err(),
        DialogError::MissingTag("To")
    );
    // A provisional without To tag creates nothing (RFC 3261 §12.1).
    let ringing = answer_with(&inv, 180, None, &[("Contact", BOB_CONTACT)]);
    assert_eq!(
        t.handle_uac_response(&inv, &ringing).unwrap(),
        UacOutcome::NoDialog
    );
    assert!(t.is_empty());
    // An INVITE without From tag.
    let no_from_tag = RequestBuilder::new(Method::Invite, &Uri::parse("sip:bob@b").unwrap())
        .via("UDP", "h", "z9hG4bK1", false)
        .from("<sip:a@b>")
        .to("<sip:bob@b>")
        .call_id("c1")
        .cseq(1)
        .header("Contact", ALICE_CONTACT)
        .build()
        .unwrap();
    let ok = answer(&no_from_tag, 200, "t", Some(BOB_CONTACT));
    assert_eq!(
        Dialog::from_uas_response(&no_from_tag, &ok).unwrap_err(),
        DialogError::MissingTag("From")
    );
    assert_eq!(
        Dialog::from_uac_response(&no_from_tag, &ok).unwrap_err(),
        DialogError::MissingTag("From")
    );
    assert_eq!(
        t.handle_uas_response(&no_from_tag, &ok).unwrap_err(),
        DialogError::MissingTag("From")
    );
    assert!(t.is_empty());
    // A mid-dialog request without tags gets 481 from the table.
    assert_eq!(
        t.handle_request(&no_from_tag),
        InDialogDecision::Reject(481)
    );
}

#[test]
fn garbage_record_route() {
    for (rr, header_error) in [
        ("<sip:p1.atlanta.com;lr", true),
        ("garbage!! <<>>", true),
        ("<sip:p1.atlanta.com;lr>, ,,", true),
        ("<tel:+15551234>", false),
        ("<mailto:proxy@atlanta.com>", false),
    ] {
        let inv = invite(&[rr]);
        let ok = answer(&inv, 200, "t", Some(BOB_CONTACT));
        for e in [
            Dialog::from_uac_response(&inv, &ok).unwrap_err(),
            Dialog::from_uas_response(&inv, &ok).unwrap_err(),
        ] {
            if header_error {
                assert_eq!(malformed_header(&e), Some("Record-Route"), "{rr}: {e}");
            } else {
                assert!(matches!(e, DialogError::BadRecordRoute(_)), "{rr}: {e}");
            }
        }
        // An early dialog confirmed by such a 2xx stays as it was.
        let clean = invite(&[]);
        let ringing = answer(&clean, 180, "t", Some(BOB_CONTACT));
        let mut d = Dialog::from_uac_response(&clean, &ringing).unwrap();
        assert!(d.handle_response(&ok).is_err());
        assert!(d.route_set().is_empty());
        assert_eq!(d.state(), habla_dialog::DialogState::Early);
    }
}

#[test]
fn contacts_that_cannot_be_a_remote_target() {
    let inv = invite(&[]);
    for (contact, want) in [
        ("*", DialogError::BadContact("'*' is not a target")),
        (
            "<sip:a@x>, <sip:b@y>",
            DialogError::BadContact("more than one value"),
        ),
        (
            "<mailto:bob@biloxi.com>",
            DialogError::BadContact("not a SIP or SIPS URI"),
        ),
    ] {
        let ok = answer(&inv, 200, "t", Some(contact));
        assert_eq!(
            Dialog::from_uac_response(&inv, &ok).unwrap_err(),
            want,
            "{contact}"
        );
    }
    let ok = answer(&inv, 200, "t", Some("<sip:bob@"));
    let e = Dialog::from_uac_response(&inv, &ok).unwrap_err();
    assert_eq!(malformed_header(&e), Some("Contact"));
}

#[test]
fn responses_that_do_not_answer_the_request() {
    let inv = invite(&[]);
    let other = invite_to("sip:bob@biloxi.com", "UDP", 99, &[]);
    let ok_other = answer(&other, 200, "t", Some(BOB_CONTACT));
    assert!(matches!(
        Dialog::from_uac_response(&inv, &ok_other),
        Err(DialogError::Mismatch(_))
    ));
    let mut t = DialogTable::new();
    assert!(matches!(
        t.handle_uac_response(&inv, &ok_other),
        Err(DialogError::Mismatch(_))
    ));
    // Arguments swapped.
    assert!(matches!(
        Dialog::from_uac_response(&ok_other, &other),
        Err(DialogError::WrongKind(_))
    ));
    assert!(matches!(
        t.handle_uac_response(&ok_other, &other),
        Err(DialogError::WrongKind(_))
    ));
    assert!(matches!(
        t.handle_uas_response(&ok_other, &other),
        Err(DialogError::WrongKind(_))
    ));
    for code in [100, 300, 486] {
        let r = answer(&inv, code, "t", Some(BOB_CONTACT));
        assert_eq!(
            Dialog::from_uac_response(&inv, &r).unwrap_err(),
            DialogError::NotDialogCreating(code)
        );
    }
    // A response fed to the UAS request check.
    let ok = answer(&inv, 200, "t", Some(BOB_CONTACT));
    let mut d = Dialog::from_uas_response(&inv, &ok).unwrap();
    assert_eq!(d.handle_request(&ok), InDialogDecision::Reject(400));
    // A response to an in-dialog request of an unknown dialog.
    let mut alice = Dialog::from_uac_response(&inv, &ok).unwrap();
    let info = alice.info(&via("z9hG4bK9")).unwrap().build().unwrap();
    let info_ok = answer_with(&info, 200, None, &[]);
    assert!(matches!(
        t.handle_uac_response(&info, &info_ok),
        Err(DialogError::Mismatch(_))
    ));
    assert!(t.is_empty());
}

#[test]
fn forking_is_bounded() {
    let inv = invite(&[]);
    let mut t = DialogTable::with_limits(100, 2);
    for tag in ["A", "B"] {
        let r = answer(&inv, 180, tag, Some(BOB_CONTACT));
        assert!(matches!(
            t.handle_uac_response(&inv, &r).unwrap(),
            UacOutcome::Early { created: true, .. }
        ));
    }
    let r = answer(&inv, 180, "C", Some(BOB_CONTACT));
    assert_eq!(
        t.handle_uac_response(&inv, &r).unwrap_err(),
        DialogError::TooManyDialogs { limit: 2 }
    );
    let mut t = DialogTable::with_limits(1, 10);
    let r = answer(&inv, 180, "A", Some(BOB_CONTACT));
    let _ = t.handle_uac_response(&inv, &r).unwrap();
    let r = answer(&inv, 180, "B", Some(BOB_CONTACT));
    assert_eq!(
        t.handle_uac_response(&inv, &r).unwrap_err(),
        DialogError::TooManyDialogs { limit: 1 }
    );
    assert_eq!(t.len(), 1);
}

/// Mutates real messages byte by byte (seeded) and feeds whatever still
/// parses to every entry point: errors are fine, panics are not.
#[test]
fn mutated_messages_never_panic() {
    let inv = invite(&["<sip:p2.biloxi.com;lr>", "<sip:p1.atlanta.com;lr>"]);
    let ok = answer(&inv, 200, "bobtag", Some(BOB_CONTACT));
    let ringing = answer(&inv, 180, "bobtag", Some(BOB_CONTACT));
    let mut alice = Dialog::from_uac_response(&inv, &ok).unwrap();
    let info = alice.info(&via("z9hG4bKi")).unwrap().build().unwrap();
    let seeds: Vec<Message> = vec![inv.clone(), ok.clone(), ringing, info];
    let alphabet = b";,<>:@=\"\r\n \t*sip:tag=lr%?0";
    let mut rng = Rng::new(0x00D1_A106);
    let mut fed = 0;
    for _ in 0..3000 {
        let base = &seeds[rng.below(seeds.len() as u64) as usize];
        let mut bytes = base.to_bytes().to_vec();
        for _ in 0..=rng.below(4) {
            let i = rng.below(bytes.len() as u64) as usize;
            match rng.below(3) {
                0 => bytes[i] = alphabet[rng.below(alphabet.len() as u64) as usize],
                1 => {
                    bytes.remove(i);
                }
                _ => bytes.insert(i, alphabet[rng.below(alphabet.len() as u64) as usize]),
            }
        }
        let Ok(m) = Message::parse_lazy(bytes.into(), &Default::default()) else {
            continue;
        };
        fed += 1;
        let mut uac = DialogTable::new();
        let mut uas = DialogTable::new();
        let mut a = alice.clone();
        let mut b = Dialog::from_uas_response(&inv, &ok).unwrap();
        let _ = Dialog::from_uac_response(&inv, &m);
        let _ = Dialog::from_uas_response(&m, &ok);
        let _ = Dialog::from_uas_response(&inv, &m);
        let _ = uac.handle_uac_response(&inv, &m);
        let _ = uac.handle_uac_response(&m, &ok);
        let _ = uas.handle_uas_response(&inv, &m);
        let _ = uas.handle_uas_response(&m, &ok);
        let _ = uas.handle_request(&m);
        let _ = uac.terminate_early_dialogs(&m);
        let _ = a.handle_response(&m);
        let _ = a.ack(&m, &via("z9hG4bKa"));
        let _ = b.handle_request(&m);
        let _ = b.handle_sent_response(&m);
        let _ = habla_dialog::cancel_request(&m);
        // Whatever happened, building requests still works or errs cleanly.
        if let Ok(rb) = a.info(&via("z9hG4bKz")) {
            let _ = rb.build();
        }
        let _ = habla_message::Message::to_bytes(&m);
    }
    assert!(fed > 1000, "only {fed} mutants parsed");
}
