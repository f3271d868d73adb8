//! A deterministic simulator for the transaction layer: a seeded PRNG, a
//! simulated clock (plain `Instant` offsets from one base) and a network
//! that drops, duplicates, delays and so reorders datagrams.

#![allow(dead_code)]

use bytes::Bytes;
use habla_message::{Message, Method, RequestBuilder, Uri};
use habla_transaction::{Event, Output, Target, TransactionLayer, Transmit, Transport};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// xorshift64*: tiny, seeded, deterministic.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Avoid the all-zero state; spread small seeds.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.next_u64() % (hi - lo + 1)
        }
    }

    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

/// The simulated epoch. Tests only ever use offsets from it.
pub fn t0() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

pub fn at_ms(ms: u64) -> Instant {
    t0() + Duration::from_millis(ms)
}

pub fn ms_since_t0(t: Instant) -> u64 {
    t.duration_since(t0()).as_millis() as u64
}

pub type Addr = u8;

#[derive(Debug, Clone)]
pub struct Datagram {
    pub from: Addr,
    pub to: Addr,
    pub transport: Transport,
    pub bytes: Bytes,
}

/// Network impairments.
#[derive(Debug, Clone, Copy)]
pub struct Impairments {
    pub loss: f64,
    pub duplicate: f64,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Impairments {
    pub fn perfect() -> Self {
        Impairments {
            loss: 0.0,
            duplicate: 0.0,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
        }
    }
}

/// Datagrams in flight, delivered in order of arrival time. Unreliable
/// transports lose, duplicate and delay at random (random delays reorder);
/// reliable ones deliver everything, in order, after `min_delay`.
pub struct Net {
    pub rng: Rng,
    pub imp: Impairments,
    in_flight: BTreeMap<(Instant, u64), Datagram>,
    seq: u64,
    pub sent: u64,
    pub dropped: u64,
}

impl Net {
    pub fn new(seed: u64, imp: Impairments) -> Net {
        Net {
            rng: Rng::new(seed),
            imp,
            in_flight: BTreeMap::new(),
            seq: 0,
            sent: 0,
            dropped: 0,
        }
    }

    pub fn send(&mut self, now: Instant, d: Datagram) {
        self.sent += 1;
        if d.transport.is_reliable() {
            self.seq += 1;
            self.in_flight
                .insert((now + self.imp.min_delay, self.seq), d);
            return;
        }
        if self.rng.chance(self.imp.loss) {
            self.dropped += 1;
            return;
        }
        let copies = if self.rng.chance(self.imp.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let lo = self.imp.min_delay.as_millis() as u64;
            let hi = self.imp.max_delay.as_millis() as u64;
            let delay = self.rng.millis(lo, hi);
            self.seq += 1;
            self.in_flight.insert((now + delay, self.seq), d.clone());
        }
    }

    pub fn next_delivery(&self) -> Option<Instant> {
        self.in_flight.keys().next().map(|&(t, _)| t)
    }

    pub fn pop_due(&mut self, now: Instant) -> Option<Datagram> {
        let (&k, _) = self.in_flight.iter().next()?;
        if k.0 > now {
            return None;
        }
        self.in_flight.remove(&k)
    }

    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
    }
}

/// Drains a layer: (transmits, events).
pub fn drain<A: Clone>(layer: &mut TransactionLayer<A>) -> (Vec<Transmit<A>>, Vec<Event<A>>) {
    let mut tx = Vec::new();
    let mut ev = Vec::new();
    while let Some(o) = layer.poll_output() {
        match o {
            Output::Transmit(t) => tx.push(t),
            Output::Event(e) => ev.push(e),
        }
    }
    (tx, ev)
}

pub fn transport_token(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
        Transport::Tls => "TLS",
        _ => "SCTP",
    }
}

/// A request from alice to bob.
pub fn request(
    method: Method,
    branch: &str,
    call_id: &str,
    cseq: u32,
    transport: Transport,
) -> Message {
    RequestBuilder::new(method, &Uri::parse("sip:bob@biloxi.example.com").unwrap())
        .via(
            transport_token(transport),
            "pc33.atlanta.example.com:5060",
            branch,
            false,
        )
        .max_forwards(70)
        .to("Bob <sip:bob@biloxi.example.com>")
        .from("Alice <sip:alice@atlanta.example.com>;tag=1928301774")
        .call_id(call_id)
        .cseq(cseq)
        .header("Contact", "<sip:alice@pc33.atlanta.example.com>")
        .build()
        .unwrap()
}

/// Re-parses transmitted bytes (what the peer would receive).
pub fn parse(bytes: &Bytes) -> Message {
    Message::parse(bytes.clone()).unwrap()
}

pub fn udp(addr: Addr) -> Target<Addr> {
    Target::new(Transport::Udp, addr)
}

pub fn tcp(addr: Addr) -> Target<Addr> {
    Target::new(Transport::Tcp, addr)
}
