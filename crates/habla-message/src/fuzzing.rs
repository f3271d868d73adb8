//! Fuzz bodies: the invariants the `fuzz/` targets check, kept here so that
//! an ordinary test replays the committed corpus and past crashers through
//! exactly the same code (`tests/fuzz_replay.rs`).
//!
//! Each function panics when an invariant breaks; that is the point.

use crate::{Error, Frame, HeaderName, Limits, Message, NameAddr, StreamFramer, Via};
use bytes::Bytes;

/// Reads every typed accessor, so that lazy parsing runs on every header.
pub fn touch_everything(m: &Message) {
    let _ = m.request_uri();
    let _ = m.vias().map(|v| {
        for via in v {
            let _ = (
                via.branch(),
                via.rport(),
                via.received(),
                via.ttl(),
                via.host().ip(),
            );
        }
    });
    let _ = m
        .from()
        .map(|f| (f.tag(), f.display_name(), f.uri().scheme().len()));
    let _ = m.to().map(|t| t.tag().map(str::len));
    let _ = m.call_id();
    let _ = m.cseq();
    let _ = m.max_forwards();
    if let Ok(contacts) = m.contacts() {
        for c in contacts {
            let _ = (c.q(), c.expires(), c.addr().map(|a| a.uri().as_str().len()));
        }
    }
    let _ = m.routes();
    let _ = m.record_routes();
    let _ = m.content_type();
    let _ = m.validate();
    for h in m.headers() {
        if matches!(
            h.name,
            HeaderName::Authorization
                | HeaderName::ProxyAuthorization
                | HeaderName::WwwAuthenticate
                | HeaderName::ProxyAuthenticate
        ) {
            let _ = crate::AuthParams::parse(&crate::SipStr::from(h.value), "Authorization");
        }
    }
}

/// Every typed value of a message, as text (errors included): two
/// messages with the same text give the same string.
pub fn typed_values(m: &Message) -> String {
    let strs = |r: Result<&[NameAddr], Error>| match r {
        Ok(v) => format!("{:?}", v.iter().map(|n| n.as_str()).collect::<Vec<_>>()),
        Err(e) => e.to_string(),
    };
    let via = |v: &Via| {
        format!(
            "{} {:?} {:?} {:?}",
            v.as_str(),
            v.received(),
            v.rport(),
            v.maddr()
        )
    };
    [
        m.top_via().map(via).unwrap_or_else(|e| e.to_string()),
        match m.vias() {
            Ok(v) => v.iter().map(via).collect::<Vec<_>>().join(" | "),
            Err(e) => e.to_string(),
        },
        m.from()
            .map(|n| n.as_str().to_owned())
            .unwrap_or_else(|e| e.to_string()),
        m.to()
            .map(|n| n.as_str().to_owned())
            .unwrap_or_else(|e| e.to_string()),
        m.call_id()
            .map(|c| c.to_string())
            .unwrap_or_else(|e| e.to_string()),
        m.cseq()
            .map(|c| format!("{} {}", c.seq, c.method))
            .unwrap_or_else(|e| e.to_string()),
        format!("{:?}", m.max_forwards().map_err(|e| e.to_string())),
        match m.contacts() {
            Ok(c) => format!(
                "{:?}",
                c.iter()
                    .map(|c| (c.addr().map(|a| a.as_str()), c.expires()))
                    .collect::<Vec<_>>()
            ),
            Err(e) => e.to_string(),
        },
        strs(m.routes()),
        strs(m.record_routes()),
        format!(
            "{:?}",
            m.content_type()
                .map(|t| t.map(|t| t.essence().to_owned()))
                .map_err(|e| e.to_string())
        ),
    ]
    .join("\n")
}

/// Parsing arbitrary bytes never panics; an untouched parsed message
/// serialises to the octets it was parsed from.
pub fn parse(data: &[u8]) {
    let buf = Bytes::copy_from_slice(data);
    match Message::parse(buf.clone()) {
        Ok(m) => {
            touch_everything(&m);
            for h in m.headers() {
                // The parser's name recognition (during the line scan)
                // and the public one agree.
                assert_eq!(HeaderName::parse(h.raw_name), h.name, "{:?}", h.raw_name);
            }
            let out = m.to_bytes();
            assert!(
                memchr::memmem::find(&buf, &out).is_some(),
                "untouched serialisation is a slice of the input"
            );
        }
        Err(e) => {
            let _ = e.to_string();
            let _ = e.response("fuzz");
            if let Some(m) = e.message() {
                touch_everything(m);
            }
        }
    }
}

/// parse → serialise → parse gives an equal message, untouched and after
/// the edits a proxy makes (push a Via, remove the top Route, add a header).
pub fn roundtrip(data: &[u8]) {
    let Ok(m) = Message::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    let again = Message::parse(m.to_bytes()).expect("a serialised message parses");
    assert_same(&m, &again);

    let mut edited = m.clone();
    // Every value parsed before the edits, as a server would have them:
    // an edit must reset what it changed and keep the rest.
    touch_everything(&edited);
    edited
        .push_header(
            HeaderName::Via,
            "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKpushed",
        )
        .expect("valid Via");
    edited
        .replace_first_value(HeaderName::Via, "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKfuzz")
        .expect("valid Via");
    let _ = edited.remove_first_value(HeaderName::Route);
    edited.append_header("X-Fuzz", "1").expect("valid header");
    let bytes = edited.to_bytes();
    let reparsed = Message::parse(bytes.clone())
        .unwrap_or_else(|e| panic!("edited message does not parse: {e}\n{bytes:?}"));
    assert_eq!(typed_values(&edited), typed_values(&reparsed));
    assert_eq!(
        reparsed.vias().map(|v| v.len()).ok(),
        m.vias().map(|v| v.len() + 1).ok()
    );
    assert_eq!(
        reparsed.top_via().ok().and_then(|v| v.branch()),
        Some("z9hG4bKfuzz")
    );
    assert_eq!(reparsed.call_id().ok(), m.call_id().ok());
    assert_eq!(reparsed.cseq().ok(), m.cseq().ok());
    assert_eq!(reparsed.body(), m.body());
    assert_eq!(reparsed.header("X-Fuzz"), Some("1"));
    assert_eq!(
        reparsed.to_bytes(),
        bytes,
        "a parsed edit serialises as itself"
    );
}

fn assert_same(a: &Message, b: &Message) {
    assert_eq!(a.to_bytes(), b.to_bytes());
    assert_eq!(a.method(), b.method());
    assert_eq!(a.status(), b.status());
    assert_eq!(a.call_id().ok(), b.call_id().ok());
    assert_eq!(a.cseq().ok(), b.cseq().ok());
    assert_eq!(
        a.vias().ok().map(|v| v.len()),
        b.vias().ok().map(|v| v.len())
    );
    assert_eq!(a.body(), b.body());
}

/// Stream framing gives the same messages whatever the chunking: the first
/// octet seeds the chunk sizes, the rest is the stream.
pub fn framing(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_message_size: 4096,
        max_header_size: 2048,
        max_headers: 64,
        max_body_size: 2048,
    };
    let whole = frame_all(stream, &[stream.len().max(1)], limits);
    let sizes: Vec<usize> = (0..16)
        .map(|i| 1 + ((seed as usize).wrapping_mul(31).wrapping_add(i * 7)) % 97)
        .collect();
    let chunked = frame_all(stream, &sizes, limits);
    assert_eq!(whole.0, chunked.0, "same messages whatever the chunking");
    assert_eq!(whole.1, chunked.1, "same failure whatever the chunking");
    for m in &whole.0 {
        assert!(m.len() <= limits.max_header_size + 4 + limits.max_body_size);
        if let Ok(msg) = Message::parse_with(m.clone(), &limits) {
            touch_everything(&msg);
        }
    }
}

fn frame_all(stream: &[u8], sizes: &[usize], limits: Limits) -> (Vec<Bytes>, bool) {
    let mut f = StreamFramer::new(limits);
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let n = sizes[i % sizes.len()].min(stream.len() - pos);
        i += 1;
        if f.push(&stream[pos..pos + n]).is_err() {
            return (out, true);
        }
        pos += n;
        loop {
            match f.next_frame() {
                Ok(Some(Frame::Message(m))) => out.push(m),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}
