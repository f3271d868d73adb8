//! Typed values share the message's whole header section; their `Debug`
//! output shows their own text, not that section.

use bytes::Bytes;
use habla_message::Message;

#[test]
fn debug_shows_the_value_not_the_header_section() {
    let m = Message::parse(Bytes::from_static(include_bytes!("../testdata/invite.sip"))).unwrap();
    let outputs = [
        format!("{:?}", m.top_via().unwrap()),
        format!("{:?}", m.from().unwrap()),
        format!("{:?}", m.request_uri().unwrap()),
        format!("{:?}", m.contacts().unwrap()),
    ];
    for out in &outputs {
        assert!(!out.contains("Call-ID"), "{out}");
        assert!(out.len() < 400, "{out}");
    }
    assert!(
        outputs[0].contains("z9hG4bK77ef4c2312983.1"),
        "{}",
        outputs[0]
    );
    assert!(outputs[1].contains("1928301774"), "{}", outputs[1]);
    assert!(
        outputs[2].contains("sip:bob@biloxi.example.com"),
        "{}",
        outputs[2]
    );
}
