//! Parse + access benchmarks, habla-message side by side with rsip (the
//! most used Rust SIP parser), on the same messages in the same run.
//!
//! Run: `cargo bench -p habla-message --bench parse`

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use habla_message::Message;
use rsip::prelude::*;

const INVITE: &[u8] = include_bytes!("../testdata/invite.sip");
const REGISTER: &[u8] = include_bytes!("../testdata/register.sip");
const OK200: &[u8] = include_bytes!("../testdata/ok200.sip");

/// What a proxy or UA reads from every message: the transaction and dialog
/// identifiers, hop count, target and body framing.
fn habla_access(buf: Bytes) -> usize {
    let m = Message::parse(buf).expect("valid");
    let mut n = 0;
    if let Ok(u) = m.request_uri() {
        n += u.as_str().len();
    }
    let via = m.top_via().expect("via");
    n += via.branch().map_or(0, str::len) + via.host().as_str().len();
    n += m.from().expect("from").tag().map_or(0, str::len);
    n += m.to().expect("to").tag().map_or(0, str::len);
    n += m.call_id().expect("call-id").len();
    n += m.cseq().expect("cseq").seq as usize;
    n += m.max_forwards().expect("mf").unwrap_or(0) as usize;
    if let Some(c) = m
        .contacts()
        .expect("contact")
        .first()
        .and_then(|c| c.addr())
    {
        n += c.uri().as_str().len();
    }
    if let Some(ct) = m.content_type().expect("ct") {
        n += ct.subtype().len();
    }
    n + m.body().len()
}

fn rsip_access(buf: Bytes) -> usize {
    let m = rsip::SipMessage::try_from(buf).expect("valid");
    let mut n = 0;
    if let rsip::SipMessage::Request(r) = &m {
        n += r.uri.to_string().len();
    }
    let via = m.via_header().expect("via").typed().expect("via typed");
    n += via.branch().map_or(0, |b| b.to_string().len()) + via.uri.host_with_port.to_string().len();
    n += m
        .from_header()
        .expect("from")
        .typed()
        .expect("from typed")
        .tag()
        .map_or(0, |t| t.to_string().len());
    n += m
        .to_header()
        .expect("to")
        .typed()
        .expect("to typed")
        .tag()
        .map_or(0, |t| t.to_string().len());
    n += m.call_id_header().expect("call-id").value().len();
    n += m
        .cseq_header()
        .expect("cseq")
        .typed()
        .expect("cseq typed")
        .seq as usize;
    if let Ok(mf) = m.max_forwards_header() {
        n += mf.num().expect("mf num") as usize;
    }
    if let Ok(c) = m.contact_header() {
        n += c.typed().expect("contact typed").uri.to_string().len();
    }
    for h in m.headers().iter() {
        if let rsip::Header::ContentType(ct) = h {
            n += ct.value().len();
        }
    }
    n + m.body().len()
}

fn habla_response(req: &Message) -> Bytes {
    req.response(200)
        .to_tag(req, "a6c85cf")
        .header("Contact", "<sip:bob@192.0.2.4>")
        .to_bytes()
        .expect("response")
}

fn rsip_response(req: &rsip::Request) -> String {
    let mut headers: rsip::Headers = Default::default();
    headers.push(req.via_header().expect("via").clone().into());
    headers.push(req.from_header().expect("from").clone().into());
    let to = req.to_header().expect("to").typed().expect("to typed");
    headers.push(to.with_tag("a6c85cf".into()).into());
    headers.push(req.call_id_header().expect("call-id").clone().into());
    headers.push(req.cseq_header().expect("cseq").clone().into());
    headers.push(rsip::Header::Contact("<sip:bob@192.0.2.4>".into()));
    headers.push(rsip::Header::ContentLength(Default::default()));
    rsip::Response {
        status_code: 200.into(),
        version: rsip::Version::V2,
        headers,
        body: Default::default(),
    }
    .to_string()
}

fn benches(c: &mut Criterion) {
    for (name, msg) in [("invite", INVITE), ("register", REGISTER), ("200ok", OK200)] {
        let buf = Bytes::from_static(msg);
        assert_eq!(habla_access(buf.clone()) > 0, rsip_access(buf.clone()) > 0);
        let mut g = c.benchmark_group(format!("parse+access/{name}"));
        g.bench_function("habla", |b| b.iter(|| habla_access(black_box(buf.clone()))));
        g.bench_function("rsip", |b| b.iter(|| rsip_access(black_box(buf.clone()))));
        g.finish();
    }
    let req = Message::parse(Bytes::from_static(INVITE)).expect("valid");
    let rreq = rsip::Request::try_from(INVITE).expect("valid");
    let mut g = c.benchmark_group("response-from-request/invite");
    g.bench_function("habla", |b| b.iter(|| habla_response(black_box(&req))));
    g.bench_function("rsip", |b| b.iter(|| rsip_response(black_box(&rreq))));
    g.finish();
}

criterion_group!(parse, benches);
criterion_main!(parse);
