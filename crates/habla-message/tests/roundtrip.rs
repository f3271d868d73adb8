//! Property tests: generated valid messages parse to the values they were
//! made of, serialise byte for byte, and survive a proxy's edits.

use bytes::Bytes;
use habla_message::{HeaderName, Message, Method};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Spec {
    method: &'static str,
    user: String,
    host: String,
    port: Option<u16>,
    display: Option<String>,
    from_tag: String,
    branches: Vec<String>,
    via_per_line: usize,
    call_id: String,
    cseq: u32,
    max_forwards: u8,
    compact: bool,
    fold_cseq: bool,
    upper_names: bool,
    extension: Option<(String, String)>,
    body: Vec<u8>,
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,15}"
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (
            prop::sample::select(vec![
                "INVITE", "REGISTER", "OPTIONS", "MESSAGE", "BYE", "FOOBAR",
            ]),
            "[a-z0-9_.!~*'()-]{1,12}",
            prop_oneof![
                "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){1,2}",
                (1u8..=254, 0u8..=255, 0u8..=255, 1u8..=254)
                    .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
                any::<[u16; 8]>().prop_map(|s| format!("[{}]", std::net::Ipv6Addr::from(s))),
            ],
            prop::option::of(1u16..),
            prop::option::of("[ -~&&[^\"\\\\]]{0,20}|[a-zA-Z\"\\\\ ]{0,10}"),
            token(),
            prop::collection::vec(token().prop_map(|t| format!("z9hG4bK{t}")), 1..6),
            1usize..4,
        ),
        (
            "[A-Za-z0-9.!%*_+`'~()<>:/?{}-]{1,20}(@[a-z0-9.]{1,12})?",
            any::<u32>(),
            any::<u8>(),
            any::<(bool, bool, bool)>(),
            prop::option::of(("X-[A-Za-z0-9-]{1,10}", "[ -~]{0,30}")),
            prop::collection::vec(any::<u8>(), 0..200),
        ),
    )
        .prop_map(
            |(
                (method, user, host, port, display, from_tag, branches, via_per_line),
                (call_id, cseq, max_forwards, (compact, fold_cseq, upper_names), extension, body),
            )| Spec {
                method,
                user,
                host,
                port,
                display,
                from_tag,
                branches,
                via_per_line,
                call_id,
                cseq,
                max_forwards,
                compact,
                fold_cseq,
                upper_names,
                extension: extension.map(|(n, v)| (n, v.trim().to_owned())),
                body,
            },
        )
}

fn quote(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

fn render(s: &Spec) -> Vec<u8> {
    let name = |long: &str, short: &str| -> String {
        let n = if s.compact && !short.is_empty() {
            short
        } else {
            long
        };
        if s.upper_names {
            n.to_ascii_uppercase()
        } else {
            n.to_owned()
        }
    };
    let hostport = match s.port {
        Some(p) => format!("{}:{p}", s.host),
        None => s.host.clone(),
    };
    let mut m = format!("{} sip:{}@{} SIP/2.0\r\n", s.method, s.user, hostport);
    for chunk in s.branches.chunks(s.via_per_line) {
        let vals: Vec<String> = chunk
            .iter()
            .map(|b| format!("SIP/2.0/UDP {hostport};branch={b};rport"))
            .collect();
        m += &format!("{}: {}\r\n", name("Via", "v"), vals.join(" , "));
    }
    let display = s
        .display
        .as_deref()
        .map(|d| format!("{} ", quote(d)))
        .unwrap_or_default();
    m += &format!(
        "{}: {display}<sip:{}@{}>;tag={}\r\n",
        name("From", "f"),
        s.user,
        s.host,
        s.from_tag
    );
    m += &format!("{}: <sip:{}@{}>\r\n", name("To", "t"), s.user, s.host);
    m += &format!("{}: {}\r\n", name("Call-ID", "i"), s.call_id);
    if s.fold_cseq {
        m += &format!("{}: {}\r\n\t {}\r\n", name("CSeq", ""), s.cseq, s.method);
    } else {
        m += &format!("{}: {} {}\r\n", name("CSeq", ""), s.cseq, s.method);
    }
    m += &format!("{}: {}\r\n", name("Max-Forwards", ""), s.max_forwards);
    if let Some((n, v)) = &s.extension {
        m += &format!("{n}: {v}\r\n");
    }
    m += &format!("{}: {}\r\n\r\n", name("Content-Length", "l"), s.body.len());
    let mut bytes = m.into_bytes();
    bytes.extend_from_slice(&s.body);
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn generated_messages_parse_to_their_values(s in spec()) {
        let raw = render(&s);
        let m = Message::parse(Bytes::from(raw.clone()))
            .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&raw)));
        prop_assert_eq!(m.method().unwrap(), &Method::from(s.method));
        let uri = m.request_uri().unwrap().as_sip().unwrap().clone();
        prop_assert_eq!(uri.user(), Some(s.user.as_str()));
        prop_assert_eq!(uri.host().as_str(), s.host.as_str());
        prop_assert_eq!(uri.port(), s.port);
        let vias = m.vias().unwrap();
        prop_assert_eq!(vias.len(), s.branches.len());
        for (v, b) in vias.iter().zip(&s.branches) {
            prop_assert_eq!(v.branch(), Some(b.as_str()));
            prop_assert_eq!(v.rport(), Some(None));
        }
        let from = m.from().unwrap();
        prop_assert_eq!(from.tag(), Some(s.from_tag.as_str()));
        prop_assert_eq!(from.display_name().map(|d| d.into_owned()), s.display.clone());
        prop_assert_eq!(m.to().unwrap().tag(), None);
        prop_assert_eq!(m.call_id().unwrap().as_str(), s.call_id.as_str());
        prop_assert_eq!(m.cseq().unwrap().seq, s.cseq);
        prop_assert_eq!(m.max_forwards().unwrap(), Some(u32::from(s.max_forwards)));
        if let Some((n, v)) = &s.extension {
            prop_assert_eq!(m.header(n), Some(v.as_str()));
        }
        prop_assert_eq!(&m.body()[..], &s.body[..]);
        prop_assert_eq!(&m.to_bytes()[..], &raw[..]);
    }

    #[test]
    fn edits_round_trip(s in spec()) {
        let raw = render(&s);
        let mut m = Message::parse(Bytes::from(raw)).unwrap();
        m.push_header(HeaderName::Via, "SIP/2.0/TCP proxy.example;branch=z9hG4bKproxy").unwrap();
        let pushed = m.remove_first_value(HeaderName::Via).unwrap();
        prop_assert_eq!(pushed.as_str(), "SIP/2.0/TCP proxy.example;branch=z9hG4bKproxy");
        let removed = usize::from(s.branches.len() > 1);
        if removed == 1 {
            m.remove_first_value(HeaderName::Via);
        }
        m.set_body(Bytes::from_static(b"new body"));
        let again = Message::parse(m.to_bytes()).unwrap();
        // The pushed Via is gone again, and the first original one when there
        // are others.
        prop_assert_eq!(again.vias().unwrap().len(), s.branches.len() - removed);
        prop_assert_eq!(again.top_via().unwrap().branch(), Some(s.branches[removed].as_str()));
        prop_assert_eq!(again.content_length().unwrap(), Some(8));
        prop_assert_eq!(&again.body()[..], b"new body");
        prop_assert_eq!(again.call_id().unwrap(), m.call_id().unwrap());
    }
}
