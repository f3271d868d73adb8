//! Per-transaction cost of the engine: one full non-INVITE exchange
//! (request built, client transaction, server transaction, 200, response
//! matched) through a UAC layer and a UAS layer in memory, including the
//! parsing a driver does on receipt.
//!
//! Over UDP the clock advances 1 ms per exchange and both layers' timers
//! run, so the tables hold the steady state of 1000 transactions/s (Timer J
//! keeps ~32 000 server transactions, Timer K ~5 000 client ones). Over
//! TCP both transactions end at once (Timers J and K are zero).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use habla_message::{Message, Method, RequestBuilder, Uri};
use habla_transaction::{Config, Event, Output, Target, TransactionLayer, Transport};
use std::hint::black_box;
use std::time::{Duration, Instant};

struct Pair {
    uac: TransactionLayer<u8>,
    uas: TransactionLayer<u8>,
    now: Instant,
    n: u64,
    uri: Uri,
    transport: Transport,
}

fn take_transmit(l: &mut TransactionLayer<u8>) -> Option<Bytes> {
    let mut out = None;
    while let Some(o) = l.poll_output() {
        if let Output::Transmit(t) = o {
            out = Some(t.bytes);
        }
    }
    out
}

impl Pair {
    fn new(transport: Transport) -> Pair {
        Pair {
            uac: TransactionLayer::new(Config::default()),
            uas: TransactionLayer::new(Config::default()),
            now: Instant::now(),
            n: 0,
            uri: Uri::parse("sip:bob@biloxi.example.com").expect("uri"),
            transport,
        }
    }

    fn exchange(&mut self) {
        self.n += 1;
        self.now += Duration::from_millis(1);
        let branch = format!("z9hG4bK{:x}", self.n);
        let req = RequestBuilder::new(Method::Options, &self.uri)
            .via("UDP", "pc33.atlanta.example.com:5060", &branch, false)
            .max_forwards(70)
            .to("Bob <sip:bob@biloxi.example.com>")
            .from("Alice <sip:alice@atlanta.example.com>;tag=1928301774")
            .call_id("a84b4c76e66710@pc33.atlanta.example.com")
            .cseq(1)
            .build()
            .expect("request");
        let to_uas = Target::new(self.transport, 2);
        let to_uac = Target::new(self.transport, 1);
        self.uac
            .send_request(self.now, req, to_uas)
            .expect("send_request");
        let wire = take_transmit(&mut self.uac).expect("request sent");
        self.uas
            .handle_message(self.now, Message::parse(wire).expect("parse"), to_uac)
            .expect("handle request");
        let (key, request) = match self.uas.poll_output() {
            Some(Output::Event(Event::Request { key, request, .. })) => (key, request),
            other => panic!("{other:?}"),
        };
        let resp = request
            .response(200)
            .to_tag(&request, "b0b")
            .build()
            .expect("response");
        self.uas
            .send_response(self.now, key, resp)
            .expect("send_response");
        let wire = take_transmit(&mut self.uas).expect("response sent");
        self.uac
            .handle_message(
                self.now,
                Message::parse(wire).expect("parse"),
                Target::new(self.transport, 2),
            )
            .expect("handle response");
        while let Some(o) = self.uac.poll_output() {
            black_box(o);
        }
        self.uac.handle_timeout(self.now);
        self.uas.handle_timeout(self.now);
        while self.uac.poll_output().is_some() {}
        while self.uas.poll_output().is_some() {}
    }
}

/// The same message work without the layers (build, parse, build the 200,
/// parse it): subtract it to get the engine's own cost.
fn messages_only(n: u64, uri: &Uri) {
    let branch = format!("z9hG4bK{n:x}");
    let req = RequestBuilder::new(Method::Options, uri)
        .via("UDP", "pc33.atlanta.example.com:5060", &branch, false)
        .max_forwards(70)
        .to("Bob <sip:bob@biloxi.example.com>")
        .from("Alice <sip:alice@atlanta.example.com>;tag=1928301774")
        .call_id("a84b4c76e66710@pc33.atlanta.example.com")
        .cseq(1)
        .build()
        .expect("request");
    let request = Message::parse(req.to_bytes()).expect("parse");
    // What matching reads.
    black_box(request.top_via().expect("via").branch());
    black_box(request.cseq().expect("cseq"));
    let resp = request
        .response(200)
        .to_tag(&request, "b0b")
        .build()
        .expect("response");
    let resp = Message::parse(resp.to_bytes()).expect("parse");
    black_box(resp.top_via().expect("via").branch());
    black_box(resp.cseq().expect("cseq"));
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("non_invite_exchange");
    g.throughput(Throughput::Elements(1));
    for (name, transport) in [("udp", Transport::Udp), ("tcp", Transport::Tcp)] {
        let mut pair = Pair::new(transport);
        // Reach the steady state first.
        for _ in 0..40_000 {
            pair.exchange();
        }
        g.bench_function(name, |b| b.iter(|| pair.exchange()));
    }
    let uri = Uri::parse("sip:bob@biloxi.example.com").expect("uri");
    let mut n = 0;
    g.bench_function("messages_only_baseline", |b| {
        b.iter(|| {
            n += 1;
            messages_only(n, &uri)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
