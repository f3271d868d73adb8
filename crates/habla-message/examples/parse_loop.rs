//! Parses a message N times: a fixed workload for profilers
//! (`valgrind --tool=callgrind target/release/examples/parse_loop FILE N`).

use bytes::Bytes;
use habla_message::Message;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "crates/habla-message/testdata/invite.sip".into());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let buf = Bytes::from(std::fs::read(&path).expect("readable file"));
    let mut total = 0usize;
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
