//! Parses a message N times: a fixed workload for profilers
//! (`valgrind --tool=callgrind target/release/examples/parse_loop FILE N`).
//! With a third argument `bench`, reads what `benches/parse.rs` reads
//! (Request-URI, top Via, From, To, Call-ID, CSeq, Max-Forwards, Contact,
//! Content-Type, body) instead of the default set; `auth` adds the
//! Authorization credentials a registrar reads.

use bytes::Bytes;
use habla_message::Message;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "crates/habla-message/testdata/invite.sip".into());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let mode = args.next();
    let bench_set = matches!(mode.as_deref(), Some("bench" | "auth"));
    let auth = mode.as_deref() == Some("auth");
    let buf = Bytes::from(std::fs::read(&path).expect("readable file"));
    let mut total = 0usize;
    if bench_set {
        for _ in 0..n {
            total += bench_access(buf.clone(), auth);
        }
        println!("{total}");
        return;
    }
    for _ in 0..n {
        let m = Message::parse(buf.clone()).expect("valid message");
        total += m.top_via().map_or(0, |v| v.branch().map_or(0, str::len));
        total += m.from().map_or(0, |f| f.tag().map_or(0, str::len));
        total += m.to().map_or(0, |t| t.uri().as_str().len());
        total += m.contacts().map_or(0, |c| c.len());
        total += m
            .content_type()
            .map_or(0, |c| c.map_or(0, |c| c.subtype().len()));
    }
    println!("{total}");
}

/// The accesses of `habla_access` in `benches/parse.rs`.
fn bench_access(buf: Bytes, auth: bool) -> usize {
    let m = Message::parse(buf).expect("valid message");
    let mut n = 0;
    if auth {
        // What a registrar reads from the credentials.
        for a in m.auth_headers(habla_message::HeaderName::Authorization) {
            let a = a.expect("credentials");
            n += a.get("username").map_or(0, |u| u.len());
            n += a.get("nonce").map_or(0, |u| u.len());
            n += a.get("response").map_or(0, |u| u.len());
        }
    }
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
