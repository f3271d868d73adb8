//! Message exchanges built with the habla-message builders.
#![allow(dead_code)]

use habla_message::{Message, Method, RequestBuilder, Uri};

pub const CALL_ID: &str = "a84b4c76e66710@pc33.atlanta.com";
pub const ALICE_TAG: &str = "1928301774";
pub const ALICE_CONTACT: &str = "<sip:alice@pc33.atlanta.com>";
pub const BOB_CONTACT: &str = "<sip:bob@192.0.2.4>";

/// Alice's INVITE as it reaches Bob, after proxies added `record_route`
/// lines (each may be a comma-separated list), top first.
pub fn invite(record_route: &[&str]) -> Message {
    invite_to("sip:bob@biloxi.com", "UDP", 314159, record_route)
}

pub fn invite_to(ruri: &str, transport: &str, cseq: u32, record_route: &[&str]) -> Message {
    let mut b = RequestBuilder::new(Method::Invite, &Uri::parse(ruri).unwrap())
        .via(transport, "pc33.atlanta.com", "z9hG4bK776asdhds", false)
        .max_forwards(70)
        .from(&format!("Alice <sip:alice@atlanta.com>;tag={ALICE_TAG}"))
        .to("Bob <sip:bob@biloxi.com>")
        .call_id(CALL_ID)
        .cseq(cseq)
        .header("Contact", ALICE_CONTACT);
    for rr in record_route {
        b = b.header("Record-Route", rr);
    }
    b.body("application/sdp", &b"v=0\r\n"[..]).build().unwrap()
}

/// Bob's (or a fork's) response: To tag, Contact, Record-Route copied
/// from the request (RFC 3261 §12.1.1).
pub fn answer(req: &Message, code: u16, tag: &str, contact: Option<&str>) -> Message {
    let mut b = req.response(code).to_tag(req, tag);
    for rr in req.header_values("Record-Route") {
        b = b.header("Record-Route", rr);
    }
    if let Some(c) = contact {
        b = b.header("Contact", c);
    }
    b.build().unwrap()
}

/// A response with any extra header lines.
pub fn answer_with(req: &Message, code: u16, tag: Option<&str>, lines: &[(&str, &str)]) -> Message {
    let mut b = req.response(code);
    if let Some(t) = tag {
        b = b.to_tag(req, t);
    }
    for (n, v) in lines {
        b = b.header(n, v);
    }
    b.build().unwrap()
}

/// Header values of a message, by name, in order.
pub fn values(m: &Message, name: &str) -> Vec<String> {
    m.header_values(name).map(str::to_owned).collect()
}

pub fn via<'a>(branch: &'a str) -> habla_dialog::LocalVia<'a> {
    habla_dialog::LocalVia::new("UDP", "pc33.atlanta.com", branch)
}

/// A small deterministic PRNG (xorshift64*), so property tests need no
/// new dependency and replay from their seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
