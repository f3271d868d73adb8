//! An in-memory world for the proxy: a UAC (alice), the proxy with its own
//! server and client transaction layers, and scripted UASes, over a
//! lossless zero-latency network in simulated time. Everything delivered is
//! kept in a trace for header-by-header checks.

#![allow(dead_code)]

use bytes::Bytes;
use habla_message::{HeaderName, Message, Method, RequestBuilder, Uri};
use habla_proxy::{
    Action, Interface, LocalIdentity, LocationContact, LocationLookup, Lookup, NextHop, Proxy,
    ProxyConfig,
};
use habla_transaction::{
    Config, Event, Output, Target, TransactionKey, TransactionLayer, Transport,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const PROXY: &str = "192.0.2.10:5060";
pub const ALICE: &str = "192.0.2.1:5060";
pub const BOB1: &str = "192.0.2.21:5060";
pub const BOB2: &str = "192.0.2.22:5060";

pub fn t0() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// The location service: AOR (`sip:user@host`, host lower-cased) → answer.
#[derive(Debug, Default)]
pub struct Loc(pub HashMap<String, Lookup>);

impl Loc {
    pub fn add(&mut self, aor: &str, contacts: &[(&str, u16)]) {
        let c = contacts
            .iter()
            .map(|(u, q)| LocationContact {
                q: *q,
                ..LocationContact::new(Uri::parse(u).unwrap())
            })
            .collect();
        self.0.insert(aor.to_owned(), Lookup::Contacts(c));
    }
}

impl LocationLookup for Loc {
    fn lookup(&mut self, uri: &Uri) -> Lookup {
        let Some(sip) = uri.as_sip() else {
            return Lookup::Unknown;
        };
        let key = format!(
            "sip:{}@{}",
            sip.user().unwrap_or(""),
            sip.host().as_str().to_ascii_lowercase()
        );
        self.0.get(&key).cloned().unwrap_or(Lookup::Unknown)
    }
}

pub fn proxy_iface() -> Interface {
    Interface::new(Transport::Udp, PROXY.parse().unwrap())
}

pub fn proxy_config() -> ProxyConfig {
    ProxyConfig {
        identity: LocalIdentity {
            interfaces: vec![proxy_iface()],
            aliases: vec!["proxy.example.org".into()],
            domains: vec!["example.org".into()],
        },
        ..ProxyConfig::default()
    }
}

/// What a UAS does with an INVITE (other requests get 200).
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Send these responses at once.
    Answer(Vec<u16>),
    /// 180, then wait (answers CANCEL with 200 + 487).
    Ring,
    /// Never answer.
    Silent,
}

pub struct Uas {
    pub addr: String,
    pub layer: TransactionLayer<String>,
    pub behaviour: Behaviour,
    /// Every request its TU saw (ACK and CANCEL included).
    pub received: Vec<Message>,
    pending: HashMap<TransactionKey, Message>,
}

pub struct ProxyNode {
    pub proxy: Proxy<Loc>,
    pub server: TransactionLayer<String>,
    pub client: TransactionLayer<String>,
    pub iface: Interface,
    pub actions: Vec<String>,
}

pub struct Uac {
    pub layer: TransactionLayer<String>,
    /// Responses with the key of the client transaction they came in.
    pub responses: Vec<(TransactionKey, Message)>,
    pub requests: HashMap<TransactionKey, Message>,
    pub received: Vec<Message>,
    n: u64,
}

pub struct World {
    pub now: Instant,
    pub net: VecDeque<(String, String, Bytes)>,
    /// (from, to, message) for every delivered message.
    pub trace: Vec<(String, String, Message)>,
    pub alice: Uac,
    pub p: ProxyNode,
    pub uas: BTreeMap<String, Uas>,
}

/// Where a next hop goes in this world: our names to the proxy, addresses
/// to themselves.
pub fn resolve(hop: &NextHop) -> String {
    let host = hop.host.to_ascii_lowercase();
    if host == "example.org" || host == "proxy.example.org" {
        return PROXY.to_owned();
    }
    format!("{}:{}", hop.host, hop.port.unwrap_or(5060))
}

impl World {
    pub fn new(config: ProxyConfig, loc: Loc) -> World {
        let iface = config.identity.interfaces[0];
        World {
            now: t0(),
            net: VecDeque::new(),
            trace: Vec::new(),
            alice: Uac {
                layer: TransactionLayer::new(Config::default()),
                responses: Vec::new(),
                requests: HashMap::new(),
                received: Vec::new(),
                n: 0,
            },
            p: ProxyNode {
                proxy: Proxy::new(config, loc, 0x5eed),
                server: TransactionLayer::new(Config::default()),
                client: TransactionLayer::new(Config::default()),
                iface,
                actions: Vec::new(),
            },
            uas: BTreeMap::new(),
        }
    }

    pub fn add_uas(&mut self, addr: &str, behaviour: Behaviour) {
        self.uas.insert(
            addr.to_owned(),
            Uas {
                addr: addr.to_owned(),
                layer: TransactionLayer::new(Config::default()),
                behaviour,
                received: Vec::new(),
                pending: HashMap::new(),
            },
        );
    }

    // ----- alice's commands ----------------------------------------------------

    pub fn request(
        &mut self,
        method: Method,
        ruri: &str,
        call_id: &str,
        headers: &[(&str, &str)],
    ) -> Message {
        self.alice.n += 1;
        let mut b = RequestBuilder::new(method.clone(), &Uri::parse(ruri).unwrap())
            .via(
                "UDP",
                ALICE,
                &format!("z9hG4bKalice{}", self.alice.n),
                false,
            )
            .max_forwards(70)
            .from("<sip:alice@example.org>;tag=a1")
            .to("<sip:bob@example.org>")
            .call_id(call_id)
            .cseq(self.alice.n as u32);
        if method == Method::Invite {
            b = b.header("Contact", &format!("<sip:alice@{ALICE}>"));
        }
        for (n, v) in headers {
            b = b.header(n, v);
        }
        if method == Method::Invite {
            b = b.body("application/sdp", "v=0\r\n");
        }
        b.build().unwrap()
    }

    /// Alice sends a request to the proxy in a client transaction.
    pub fn send(&mut self, req: Message) -> TransactionKey {
        let key = self
            .alice
            .layer
            .send_request(
                self.now,
                req.clone(),
                Target::new(Transport::Udp, PROXY.to_owned()),
            )
            .unwrap();
        self.alice.requests.insert(key, req);
        self.pump_alice();
        self.settle();
        key
    }

    pub fn invite(&mut self, ruri: &str, call_id: &str) -> TransactionKey {
        let r = self.request(Method::Invite, ruri, call_id, &[]);
        self.send(r)
    }

    /// Codes alice received for one of her transactions, in order.
    pub fn codes(&self, key: TransactionKey) -> Vec<u16> {
        self.alice
            .responses
            .iter()
            .filter(|(k, _)| *k == key)
            .filter_map(|(_, r)| r.status())
            .collect()
    }

    pub fn final_response(&self, key: TransactionKey) -> Option<&Message> {
        self.alice
            .responses
            .iter()
            .filter(|(k, r)| *k == key && r.status().is_some_and(|c| c >= 200))
            .map(|(_, r)| r)
            .next()
    }

    /// Messages delivered to `to`, requests of `method` only.
    pub fn requests_to(&self, to: &str, method: Method) -> Vec<&Message> {
        self.trace
            .iter()
            .filter(|(_, t, m)| t == to && m.method() == Some(&method))
            .map(|(_, _, m)| m)
            .collect()
    }

    // ----- the network and the clock ---------------------------------------------

    pub fn settle(&mut self) {
        let mut steps = 0;
        while let Some((from, to, bytes)) = self.net.pop_front() {
            steps += 1;
            assert!(steps < 10_000, "the network does not settle");
            let msg = Message::parse(bytes).expect("every message on the wire parses");
            self.trace.push((from.clone(), to.clone(), msg.clone()));
            let src = Target::new(Transport::Udp, from);
            if to == PROXY {
                if msg.is_request() {
                    let _ = self.p.server.handle_message(self.now, msg, src);
                } else {
                    let _ = self.p.client.handle_message(self.now, msg, src);
                }
                self.pump_proxy();
            } else if to == ALICE {
                let _ = self.alice.layer.handle_message(self.now, msg, src);
                self.pump_alice();
            } else if let Some(u) = self.uas.get_mut(&to) {
                let _ = u.layer.handle_message(self.now, msg, src);
                self.pump_uas(&to);
            }
        }
    }

    /// Runs the world for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..100_000 {
            self.settle();
            let next = [
                self.alice.layer.poll_timeout(),
                self.p.server.poll_timeout(),
                self.p.client.poll_timeout(),
                self.p.proxy.poll_timeout(),
            ]
            .into_iter()
            .chain(self.uas.values().map(|u| u.layer.poll_timeout()))
            .flatten()
            .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    self.alice.layer.handle_timeout(now);
                    self.pump_alice();
                    self.p.server.handle_timeout(now);
                    self.p.client.handle_timeout(now);
                    self.p.proxy.handle_timeout(now);
                    self.pump_proxy();
                    let addrs: Vec<String> = self.uas.keys().cloned().collect();
                    for a in addrs {
                        if let Some(u) = self.uas.get_mut(&a) {
                            u.layer.handle_timeout(now);
                        }
                        self.pump_uas(&a);
                    }
                }
                _ => {
                    self.now = end;
                    return;
                }
            }
        }
        panic!("run_for does not end");
    }

    /// Nothing left anywhere (after enough time).
    pub fn assert_empty(&self) {
        assert!(
            self.p.proxy.is_empty(),
            "response contexts leaked: {}",
            self.p.proxy.len()
        );
        assert!(self.p.proxy.poll_timeout().is_none(), "proxy timers leaked");
        assert!(self.p.server.is_empty(), "proxy server transactions leaked");
        assert!(self.p.client.is_empty(), "proxy client transactions leaked");
        assert!(self.alice.layer.is_empty());
        for u in self.uas.values() {
            assert!(u.layer.is_empty(), "{} leaked transactions", u.addr);
        }
    }

    // ----- nodes -------------------------------------------------------------------

    fn pump_alice(&mut self) {
        while let Some(o) = self.alice.layer.poll_output() {
            match o {
                Output::Transmit(t) => {
                    self.net
                        .push_back((ALICE.into(), t.destination.addr, t.bytes))
                }
                Output::Event(Event::Response { key, response }) => {
                    let is_invite_2xx = response.status().is_some_and(|c| (200..300).contains(&c))
                        && response.cseq().is_ok_and(|c| c.method == Method::Invite);
                    if is_invite_2xx {
                        self.ack_2xx(key, &response);
                    }
                    self.alice.responses.push((key, response));
                }
                Output::Event(Event::Request { key, request, .. }) => {
                    let r = request
                        .response(200)
                        .to_tag(&request, "a1")
                        .build()
                        .unwrap();
                    self.alice.received.push(request);
                    let _ = self.alice.layer.send_response(self.now, key, r);
                }
                Output::Event(_) => {}
            }
        }
    }

    /// RFC 3261 §13.2.2.4: alice's ACK for a 2xx, routed by the route set
    /// (the Record-Route reversed) to the remote target.
    fn ack_2xx(&mut self, key: TransactionKey, resp: &Message) {
        let Some(invite) = self.alice.requests.get(&key).cloned() else {
            return;
        };
        let target = resp.contacts().unwrap()[0].addr().unwrap().uri().clone();
        let routes: Vec<String> = resp
            .record_routes()
            .unwrap()
            .iter()
            .rev()
            .map(|r| r.as_str().to_owned())
            .collect();
        self.alice.n += 1;
        let mut b = RequestBuilder::new(Method::Ack, &target)
            .via(
                "UDP",
                ALICE,
                &format!("z9hG4bKaliceack{}", self.alice.n),
                false,
            )
            .max_forwards(70)
            .from(invite.header("From").unwrap())
            .to(resp.header("To").unwrap())
            .call_id(invite.call_id().unwrap())
            .cseq(invite.cseq().unwrap().seq);
        for r in &routes {
            b = b.header("Route", r);
        }
        let dest = match routes.first() {
            Some(_) => PROXY.to_owned(),
            None => target.as_sip().unwrap().host().as_str().to_owned() + ":5060",
        };
        let bytes = b.to_bytes().unwrap();
        self.alice
            .layer
            .send_stateless(Target::new(Transport::Udp, dest), bytes);
        self.pump_alice();
    }

    /// An in-dialog request from alice after a 2xx (route set + remote
    /// target from the 2xx).
    pub fn in_dialog(&mut self, method: Method, resp: &Message) -> TransactionKey {
        let target = resp.contacts().unwrap()[0].addr().unwrap().uri().clone();
        self.alice.n += 1;
        let mut b = RequestBuilder::new(method, &target)
            .via(
                "UDP",
                ALICE,
                &format!("z9hG4bKalice{}", self.alice.n),
                false,
            )
            .max_forwards(70)
            .from("<sip:alice@example.org>;tag=a1")
            .to(resp.header("To").unwrap())
            .call_id(resp.call_id().unwrap())
            .cseq(100 + self.alice.n as u32);
        for r in resp.record_routes().unwrap().iter().rev() {
            b = b.header("Route", r.as_str());
        }
        let req = b.build().unwrap();
        self.send(req)
    }

    pub fn pump_proxy(&mut self) {
        let now = self.now;
        let p = &mut self.p;
        loop {
            let mut progress = false;
            while let Some(o) = p.server.poll_output() {
                progress = true;
                match o {
                    Output::Transmit(t) => {
                        self.net
                            .push_back((PROXY.into(), t.destination.addr, t.bytes))
                    }
                    Output::Event(Event::Request { key, request, .. }) => {
                        p.proxy.handle_request(now, key, request, p.iface).unwrap();
                    }
                    Output::Event(Event::Ack { request, .. }) => {
                        p.proxy.handle_ack(now, request, p.iface).unwrap();
                    }
                    Output::Event(Event::Refused(r)) => {
                        let bytes = r.response().unwrap();
                        p.server.send_stateless(r.source, bytes);
                    }
                    Output::Event(_) => {}
                }
            }
            while let Some(o) = p.client.poll_output() {
                progress = true;
                match o {
                    Output::Transmit(t) => {
                        self.net
                            .push_back((PROXY.into(), t.destination.addr, t.bytes))
                    }
                    Output::Event(Event::Response { key, response }) => {
                        p.proxy.handle_response(now, key, response).unwrap();
                    }
                    Output::Event(Event::Timeout { key, .. }) => {
                        p.proxy.handle_client_timeout(now, key)
                    }
                    Output::Event(Event::TransportError { key }) => {
                        p.proxy.handle_transport_error(now, key)
                    }
                    Output::Event(Event::StrayResponse { response, .. }) => {
                        p.proxy.handle_stray_response(now, response)
                    }
                    Output::Event(_) => {}
                }
            }
            while let Some(a) = p.proxy.poll_action() {
                progress = true;
                match a {
                    Action::SendResponse {
                        server_key,
                        response,
                    } => {
                        p.actions
                            .push(format!("respond {}", response.status().unwrap_or(0)));
                        let _ = p.server.send_response(now, server_key, response);
                    }
                    Action::Forward {
                        branch,
                        request,
                        next_hop,
                    } => {
                        let to = resolve(&next_hop);
                        p.actions.push(format!("forward {to}"));
                        match p
                            .client
                            .send_request(now, request, Target::new(Transport::Udp, to))
                        {
                            Ok(k) => p.proxy.handle_forwarded(branch, k).unwrap(),
                            Err(_) => p.proxy.handle_forward_failed(now, branch).unwrap(),
                        }
                    }
                    Action::Cancel {
                        request, next_hop, ..
                    } => {
                        let to = resolve(&next_hop);
                        p.actions.push(format!("cancel {to}"));
                        let _ =
                            p.client
                                .send_request(now, request, Target::new(Transport::Udp, to));
                    }
                    Action::ForwardStateless { request, next_hop } => {
                        let to = resolve(&next_hop);
                        p.actions.push(format!("stateless {to}"));
                        p.client
                            .send_stateless(Target::new(Transport::Udp, to), request.to_bytes());
                    }
                    Action::ForwardResponseStateless { response } => {
                        let via = response.top_via().unwrap();
                        let to = format!("{}:{}", via.host().as_str(), via.port().unwrap_or(5060));
                        p.actions.push(format!("stateless response {to}"));
                        p.server
                            .send_stateless(Target::new(Transport::Udp, to), response.to_bytes());
                    }
                    _ => {}
                }
            }
            if !progress {
                break;
            }
        }
    }

    fn pump_uas(&mut self, addr: &str) {
        let now = self.now;
        let Some(u) = self.uas.get_mut(addr) else {
            return;
        };
        let mut sends: Vec<(TransactionKey, Message)> = Vec::new();
        while let Some(o) = u.layer.poll_output() {
            match o {
                Output::Transmit(t) => {
                    self.net
                        .push_back((u.addr.clone(), t.destination.addr, t.bytes))
                }
                Output::Event(Event::Request {
                    key,
                    request,
                    cancels,
                    ..
                }) => {
                    u.received.push(request.clone());
                    match request.method() {
                        Some(Method::Cancel) => {
                            sends.push((key, uas_response(&u.addr, &request, 200)));
                            if let Some(inv) =
                                cancels.and_then(|k| u.pending.remove(&k).map(|r| (k, r)))
                            {
                                sends.push((inv.0, uas_response(&u.addr, &inv.1, 487)));
                            }
                        }
                        Some(Method::Invite) => match &u.behaviour {
                            Behaviour::Answer(codes) => {
                                for &c in codes {
                                    sends.push((key, uas_response(&u.addr, &request, c)));
                                }
                                if codes.iter().all(|&c| c < 200) {
                                    u.pending.insert(key, request);
                                }
                            }
                            Behaviour::Ring => {
                                sends.push((key, uas_response(&u.addr, &request, 180)));
                                u.pending.insert(key, request);
                            }
                            Behaviour::Silent => {
                                u.pending.insert(key, request);
                            }
                        },
                        _ => sends.push((key, uas_response(&u.addr, &request, 200))),
                    }
                }
                Output::Event(Event::Ack { request, .. }) => u.received.push(request),
                Output::Event(_) => {}
            }
            for (k, r) in sends.drain(..) {
                let _ = u.layer.send_response(now, k, r);
            }
        }
    }
}

/// A UAS response: To tag, Contact, the Record-Route copied for 1xx/2xx
/// (RFC 3261 §12.1.1), a challenge for 401/407.
pub fn uas_response(addr: &str, req: &Message, code: u16) -> Message {
    let tag = format!("tag-{}", addr.replace(['.', ':'], ""));
    let mut b = req.response(code);
    if code > 100 {
        b = b.to_tag(req, &tag);
    }
    if code < 300 && req.method() != Some(&Method::Cancel) {
        for rr in req.typed_values(HeaderName::RecordRoute) {
            b = b.header("Record-Route", &rr);
        }
        b = b.header("Contact", &format!("<sip:bob@{addr}>"));
    }
    if code == 401 {
        b = b.header(
            "WWW-Authenticate",
            &format!("Digest realm=\"{addr}\", nonce=\"n401\""),
        );
    }
    if code == 407 {
        b = b.header(
            "Proxy-Authenticate",
            &format!("Digest realm=\"{addr}\", nonce=\"n407\""),
        );
    }
    b.build().unwrap()
}
