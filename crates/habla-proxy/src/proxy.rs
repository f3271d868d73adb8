//! [`Proxy`]: the response contexts of a stateful proxy (RFC 3261 §16),
//! driven by the caller with requests, responses, transaction outcomes and
//! the time.

use crate::config::{Interface, ProxyConfig};
use crate::location::{LocationContact, LocationLookup, Lookup};
use crate::Error;
use habla_message::{Error as MessageError, HeaderName, Host, Message, Method, Uri, MAGIC_COOKIE};
use habla_transaction::{cancel_for, CounterHash, TransactionKey, Transport};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Instant;

/// Names one branch (one forwarded copy of a request, RFC 3261 §16.6) for
/// as long as its response context lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BranchId {
    context: u64,
    index: u32,
}

impl BranchId {
    /// The response context's number (for logs).
    pub fn context(self) -> u64 {
        self.context
    }
    /// The branch's number within its context (for logs).
    pub fn index(self) -> u32 {
        self.index
    }
}

/// Where a forwarded request goes next (RFC 3261 §16.6 step 7): the URI to
/// resolve with RFC 3263 (the top Route, else the Request-URI, else the
/// outbound proxy), the `maddr` or host and port to resolve, the transport,
/// the flow to reuse, and the local interface chosen to send from.
#[derive(Debug, Clone, PartialEq)]
pub struct NextHop {
    /// The URI the next hop was taken from.
    pub uri: Uri,
    /// Its `maddr` parameter if present, else its host (RFC 3263 §4).
    pub host: String,
    /// Its explicit port (`None`: SRV or the default port).
    pub port: Option<u16>,
    /// Its `transport` parameter; for `sips:` TLS; UDP otherwise
    /// (RFC 3263 §4.1 without NAPTR, which the driver may still consult).
    pub transport: Transport,
    /// The registered flow to send over (RFC 5626), when the target is a
    /// contact with a flow and no Path.
    pub flow: Option<String>,
    /// The local interface the request's Via and Record-Route name.
    pub interface: Interface,
}

/// What [`Proxy::poll_action`] hands out.
// Actions carry a parsed `Message` by value (as the transaction layer's
// events do); boxing would cost an allocation per action.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
#[non_exhaustive]
pub enum Action {
    /// Send a response in a server transaction
    /// (`TransactionLayer::send_response`). May fail if that transaction
    /// has ended or moved on (a late 2xx): drop it then.
    SendResponse {
        /// The server transaction.
        server_key: TransactionKey,
        /// The response.
        response: Message,
    },
    /// Start a client transaction for a branch
    /// (`TransactionLayer::send_request` towards `next_hop`), then report
    /// its key with [`Proxy::handle_forwarded`], or the failure (no
    /// address, transaction refused) with [`Proxy::handle_forward_failed`].
    Forward {
        /// The branch.
        branch: BranchId,
        /// The request to send.
        request: Message,
        /// Where to.
        next_hop: NextHop,
    },
    /// Send a CANCEL for a branch (RFC 3261 §9.1, §16.10) in a client
    /// transaction of its own, to the same destination as the branch's
    /// INVITE. Its responses need not be reported.
    Cancel {
        /// The branch cancelled.
        branch: BranchId,
        /// The branch's INVITE client transaction.
        client_key: Option<TransactionKey>,
        /// The CANCEL.
        request: Message,
        /// The branch's next hop.
        next_hop: NextHop,
    },
    /// Forward a request outside any transaction (`send_stateless`): the
    /// ACK for a 2xx, which travels end to end (RFC 3261 §16.6, §13.2.2.4).
    ForwardStateless {
        /// The request.
        request: Message,
        /// Where to.
        next_hop: NextHop,
    },
    /// Forward a response outside any transaction (a 2xx whose response
    /// context is gone, RFC 3261 §16.7 / RFC 6026 §7.2): send it to its
    /// (new) top Via as RFC 3261 §18.2.2 says.
    ForwardResponseStateless {
        /// The response, our Via removed.
        response: Message,
    },
}

/// How a branch ended.
#[derive(Debug, Clone)]
enum Outcome {
    /// A final response.
    Response(Box<Message>),
    /// No final response in time (client transaction timeout, Timer C):
    /// a 408 (RFC 3261 §16.8).
    Timeout,
    /// Could not be sent (transport error, no address): a 503 (RFC 3261
    /// §16.9).
    Unreachable,
}

impl Outcome {
    fn code(&self) -> u16 {
        match self {
            Outcome::Response(m) => m.status().unwrap_or(500),
            Outcome::Timeout => 408,
            Outcome::Unreachable => 503,
        }
    }
}

/// One target of the target set (RFC 3261 §16.5).
#[derive(Debug, Clone)]
struct Target {
    /// The new Request-URI, `None` to keep it.
    uri: Option<Uri>,
    path: Vec<Uri>,
    flow: Option<String>,
}

#[derive(Debug)]
struct Branch {
    key: Option<TransactionKey>,
    request: Message,
    /// `None` when the target could not be forwarded to.
    next_hop: Option<NextHop>,
    /// A provisional response arrived (CANCEL may be sent, RFC 3261 §9.1).
    provisional: bool,
    /// `Some` once the branch is complete.
    outcome: Option<Outcome>,
    /// A CANCEL is owed as soon as a provisional response arrives.
    cancel_wanted: bool,
    cancel_sent: bool,
    /// Timer C (INVITE) or the non-INVITE guard.
    timer_at: Option<Instant>,
}

/// A response context (RFC 3261 §16.7) and the server transaction it
/// answers.
#[derive(Debug)]
struct Context {
    server_key: TransactionKey,
    /// The request after validation and route pre-processing (§16.4).
    request: Message,
    inbound: Interface,
    invite: bool,
    loop_hash: u64,
    /// What a CANCEL must match (RFC 3261 §9.2): the INVITE's top Via
    /// branch, sent-by and Call-ID as received.
    cancel_match: (String, String, String),
    /// Target groups not yet tried, best q first (serial forking).
    groups: VecDeque<Vec<Target>>,
    branches: Vec<Branch>,
    final_sent: bool,
    got_2xx: bool,
    /// A 2xx or 6xx arrived, or the caller cancelled: no new branches
    /// (RFC 3261 §16.7 steps 5 and 10).
    no_new_branches: bool,
    cancelled: bool,
    linger_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Branch(u32),
    Linger,
}

/// What validation (§16.3) and route pre-processing (§16.4) decided.
enum Verdict {
    Reject(u16, Vec<(&'static str, String)>),
    AnswerOptions,
    Proceed(Box<Message>),
}

/// A sans-IO stateful proxy core: see the crate documentation for the
/// drive loop.
#[derive(Debug)]
pub struct Proxy<L> {
    config: ProxyConfig,
    location: L,
    seed: u64,
    counter: u64,
    next_context: u64,
    contexts: HashMap<u64, Box<Context>, CounterHash>,
    by_server: HashMap<TransactionKey, u64, CounterHash>,
    by_client: HashMap<TransactionKey, BranchId, CounterHash>,
    schedule: BTreeSet<(Instant, u64, Slot)>,
    actions: VecDeque<Action>,
}

impl<L: LocationLookup> Proxy<L> {
    /// A proxy with no live context. `seed` is the entropy of its branch
    /// suffixes and To tags (draw it from the OS at start; tests fix it).
    pub fn new(config: ProxyConfig, location: L, seed: u64) -> Self {
        Proxy {
            config,
            location,
            seed,
            counter: 0,
            next_context: 0,
            contexts: HashMap::default(),
            by_server: HashMap::default(),
            by_client: HashMap::default(),
            schedule: BTreeSet::new(),
            actions: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// The location service.
    pub fn location(&self) -> &L {
        &self.location
    }

    /// The location service, mutably.
    pub fn location_mut(&mut self) -> &mut L {
        &mut self.location
    }

    /// Live response contexts (lingering ones included).
    pub fn len(&self) -> usize {
        self.contexts.len()
    }

    /// Whether no response context is live.
    pub fn is_empty(&self) -> bool {
        self.contexts.is_empty()
    }

    /// The next action. Call until `None` after every `handle_*` call.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The earliest deadline: call [`Proxy::handle_timeout`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.schedule.first().map(|&(at, _, _)| at)
    }

    // ----- inputs: requests ---------------------------------------------------

    /// A request that created a server transaction (`Event::Request`),
    /// received on the local interface `inbound`. ACK goes to
    /// [`Proxy::handle_ack`] (given here it is handled the same way). A
    /// CANCEL is matched to the INVITE it cancels (RFC 3261 §9.2) and
    /// answered here.
    pub fn handle_request(
        &mut self,
        now: Instant,
        server_key: TransactionKey,
        request: Message,
        inbound: Interface,
    ) -> Result<(), Error> {
        let Some(method) = request.method().cloned() else {
            return Err(Error::WrongKind {
                expected: "request",
            });
        };
        match method {
            Method::Ack => return self.handle_ack(now, request, inbound),
            Method::Cancel => return self.handle_cancel(now, server_key, request),
            _ => {}
        }
        if self.by_server.contains_key(&server_key) {
            return Err(Error::DuplicateServerKey(server_key));
        }
        let loop_hash = self.loop_hash(&request);
        let request = match self.validate(request.clone(), loop_hash) {
            Verdict::Proceed(m) => *m,
            Verdict::Reject(code, headers) => {
                return self.respond(server_key, &request, code, &headers);
            }
            Verdict::AnswerOptions => {
                let headers = self.options_headers();
                return self.respond(server_key, &request, 200, &headers);
            }
        };
        // Bound state: a new context only below the limit.
        if self.contexts.len() >= self.config.max_contexts {
            let ra = self.config.retry_after.to_string();
            return self.respond(server_key, &request, 503, &[("Retry-After", ra)]);
        }
        // RFC 3261 §16.5: determine the target set.
        let targets = match self.targets(&request) {
            Ok(t) => t,
            Err(code) => return self.respond(server_key, &request, code, &[]),
        };
        let invite = method == Method::Invite;
        if invite {
            // RFC 3261 §16.2: "the proxy ... SHOULD generate a 100 (Trying)".
            // Not fatal: the transaction layer sends its own 100 otherwise.
            let _ = self.respond(server_key, &request, 100, &[]);
        }
        let via = request.top_via().ok();
        let cancel_match = (
            via.and_then(|v| v.branch()).unwrap_or("").to_owned(),
            via.map(|v| format!("{}:{:?}", v.host().as_str().to_ascii_lowercase(), v.port()))
                .unwrap_or_default(),
            request.call_id().map(|c| c.to_string()).unwrap_or_default(),
        );
        self.next_context += 1;
        let id = self.next_context;
        let ctx = Context {
            server_key,
            request,
            inbound,
            invite,
            loop_hash,
            cancel_match,
            groups: targets,
            branches: Vec::new(),
            final_sent: false,
            got_2xx: false,
            no_new_branches: false,
            cancelled: false,
            linger_at: None,
        };
        self.by_server.insert(server_key, id);
        self.contexts.insert(id, Box::new(ctx));
        self.advance(now, id);
        Ok(())
    }

    /// An ACK that matched no transaction (`Event::Ack`): the ACK for a 2xx,
    /// which a proxy forwards end to end like any request, statelessly
    /// (RFC 3261 §16.6; there is no response to it, so a broken ACK is
    /// dropped).
    pub fn handle_ack(
        &mut self,
        _now: Instant,
        ack: Message,
        inbound: Interface,
    ) -> Result<(), Error> {
        if !ack.is_request() {
            return Err(Error::WrongKind {
                expected: "request",
            });
        }
        let loop_hash = self.loop_hash(&ack);
        let ack = match self.validate(ack, loop_hash) {
            Verdict::Proceed(m) => *m,
            _ => return Ok(()),
        };
        let Ok(routes) = ack.routes() else {
            return Ok(());
        };
        if routes.is_empty()
            && self
                .config
                .identity
                .is_local_domain(match ack.request_uri() {
                    Ok(u) => u,
                    Err(_) => return Ok(()),
                })
        {
            // An ACK for a 2xx carries the remote target; one addressed to
            // a local domain is not for us to retarget.
            return Ok(());
        }
        // Deterministic branch: a retransmitted ACK gets the same one (§16.11).
        let incoming = ack
            .top_via()
            .ok()
            .and_then(|v| v.branch())
            .unwrap_or("")
            .to_owned();
        let suffix = mix(fnv(fnv(FNV_OFFSET, incoming.as_bytes()), b"ACK") ^ self.seed);
        let target = Target {
            uri: None,
            path: Vec::new(),
            flow: None,
        };
        if let Ok((request, next_hop)) =
            self.build_forward(&ack, &target, inbound, loop_hash, suffix, false)
        {
            self.actions
                .push_back(Action::ForwardStateless { request, next_hop });
        }
        Ok(())
    }

    fn handle_cancel(
        &mut self,
        now: Instant,
        server_key: TransactionKey,
        cancel: Message,
    ) -> Result<(), Error> {
        // RFC 3261 §9.2: the CANCEL's top Via branch and sent-by and its
        // Call-ID match the INVITE's.
        let via = cancel.top_via().ok();
        let key = (
            via.and_then(|v| v.branch()).unwrap_or("").to_owned(),
            via.map(|v| format!("{}:{:?}", v.host().as_str().to_ascii_lowercase(), v.port()))
                .unwrap_or_default(),
            cancel.call_id().map(|c| c.to_string()).unwrap_or_default(),
        );
        let found = self
            .contexts
            .iter()
            .find(|(_, c)| c.invite && c.cancel_match == key && !key.0.is_empty())
            .map(|(&id, _)| id);
        let Some(id) = found else {
            // RFC 3261 §16.10: no response context. This proxy keeps state
            // for everything it forwards, so nothing matching exists
            // downstream either.
            return self.respond(server_key, &cancel, 481, &[]);
        };
        // RFC 3261 §16.10: answer the CANCEL with 200, then cancel every
        // pending branch and create no new one.
        self.respond(server_key, &cancel, 200, &[])?;
        let Some(mut ctx) = self.contexts.remove(&id) else {
            return Ok(());
        };
        ctx.cancelled = true;
        ctx.no_new_branches = true;
        self.cancel_pending(id, &mut ctx);
        self.contexts.insert(id, ctx);
        self.check_done(now, id);
        Ok(())
    }

    // ----- inputs: what became of branches ------------------------------------

    /// The client transaction started for a [`Action::Forward`].
    pub fn handle_forwarded(
        &mut self,
        branch: BranchId,
        client_key: TransactionKey,
    ) -> Result<(), Error> {
        let b = self.branch_mut(branch)?;
        if b.key.is_some() {
            return Err(Error::BranchBound(branch));
        }
        b.key = Some(client_key);
        self.by_client.insert(client_key, branch);
        Ok(())
    }

    /// RFC 3263 §4.3 failover: the client transaction `old` of a branch
    /// failed (transport error, timeout, or a 503 the driver kept from the
    /// proxy) and the driver sent the same request, with a new branch ID,
    /// to the next address of the branch's next hop, in client transaction
    /// `new`. The branch now follows `new`; a CANCEL for it is built from
    /// `request` (the request as re-sent).
    pub fn handle_failover(
        &mut self,
        old: TransactionKey,
        new: TransactionKey,
        request: Message,
    ) -> Result<(), Error> {
        let Some(bid) = self.by_client.remove(&old) else {
            return Err(Error::UnknownClient(old));
        };
        let b = self.branch_mut(bid)?;
        b.key = Some(new);
        b.request = request;
        self.by_client.insert(new, bid);
        Ok(())
    }

    /// A [`Action::Forward`] could not be sent (no address for the next hop,
    /// transaction refused): the branch counts as a 503 (RFC 3261 §16.9).
    pub fn handle_forward_failed(&mut self, now: Instant, branch: BranchId) -> Result<(), Error> {
        self.branch_mut(branch)?;
        self.complete(now, branch, Outcome::Unreachable);
        Ok(())
    }

    /// A response for a client transaction (`Event::Response`). Responses
    /// for unknown transactions (the proxy's CANCELs) are ignored, except a
    /// 2xx, which is forwarded statelessly.
    pub fn handle_response(
        &mut self,
        now: Instant,
        client_key: TransactionKey,
        response: Message,
    ) -> Result<(), Error> {
        let Some(code) = response.status() else {
            return Err(Error::WrongKind {
                expected: "response",
            });
        };
        let Some(&bid) = self.by_client.get(&client_key) else {
            if (200..300).contains(&code) {
                self.handle_stray_response(now, response);
            }
            return Ok(());
        };
        let Some(mut ctx) = self.contexts.remove(&bid.context) else {
            return Ok(());
        };
        self.on_response(now, bid, &mut ctx, code, response);
        self.contexts.insert(bid.context, ctx);
        self.check_done(now, bid.context);
        Ok(())
    }

    /// A client transaction timed out (`Event::Timeout`: Timer B, F or the
    /// layer's C): a 408 for its branch (RFC 3261 §16.7 / §8.1.3.1).
    pub fn handle_client_timeout(&mut self, now: Instant, client_key: TransactionKey) {
        if let Some(&bid) = self.by_client.get(&client_key) {
            self.complete(now, bid, Outcome::Timeout);
        }
    }

    /// A client transaction could not send (`Event::TransportError`): a
    /// 503 for its branch (RFC 3261 §16.9).
    pub fn handle_transport_error(&mut self, now: Instant, client_key: TransactionKey) {
        if let Some(&bid) = self.by_client.get(&client_key) {
            self.complete(now, bid, Outcome::Unreachable);
        }
    }

    /// A response that matched no client transaction
    /// (`Event::StrayResponse`): a 2xx whose top Via is the proxy's is
    /// forwarded statelessly, our Via removed (RFC 3261 §16.7 step 3,
    /// RFC 6026 §7.2); anything else is dropped.
    pub fn handle_stray_response(&mut self, _now: Instant, mut response: Message) {
        if !response.status().is_some_and(|c| (200..300).contains(&c)) {
            return;
        }
        let ours = response.top_via().is_ok_and(|v| self.is_our_via(v));
        if !ours {
            return;
        }
        response.remove_first_value(HeaderName::Via);
        if response.top_via().is_ok() {
            self.actions
                .push_back(Action::ForwardResponseStateless { response });
        }
    }

    /// Fires every timer due at `now`: Timer C and the non-INVITE guard
    /// (a branch ends as a 408, with a CANCEL if it had a provisional
    /// response, RFC 3261 §16.8), and the end of lingering contexts.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id, slot)) = self.schedule.first() {
            if at > now {
                break;
            }
            self.schedule.pop_first();
            match slot {
                Slot::Linger => self.destroy(id),
                Slot::Branch(index) => {
                    let bid = BranchId { context: id, index };
                    let Some(mut ctx) = self.contexts.remove(&id) else {
                        continue;
                    };
                    if let Some(b) = ctx.branches.get_mut(index as usize) {
                        b.timer_at = None;
                        if b.outcome.is_none() {
                            // RFC 3261 §16.8: with a provisional response,
                            // CANCEL; without, behave as if a 408 arrived.
                            if ctx.invite && b.provisional && !b.cancel_sent {
                                b.cancel_sent = true;
                                push_cancel(&mut self.actions, bid, b);
                            }
                            b.outcome = Some(Outcome::Timeout);
                        }
                    }
                    self.contexts.insert(id, ctx);
                    self.check_done(now, id);
                }
            }
        }
    }

    // ----- §16.3 and §16.4 -----------------------------------------------------

    fn validate(&self, request: Message, loop_hash: u64) -> Verdict {
        use Verdict::Reject;
        // RFC 3261 §16.3 step 1: reasonable syntax. The parser checked the
        // mandatory headers; the lists a proxy walks are checked here.
        let Ok(ruri) = request.request_uri() else {
            return Reject(400, vec![]);
        };
        // §16.3 step 2: URI scheme.
        if !matches!(ruri, Uri::Sip(_)) {
            return Reject(416, vec![]);
        }
        if request.routes().is_err() || request.vias().is_err() {
            return Reject(400, vec![]);
        }
        // §16.3 step 3: Max-Forwards.
        match request.max_forwards() {
            Err(_) => return Reject(400, vec![]),
            Ok(Some(0)) => {
                // "the proxy ... MAY act as a UAS for OPTIONS addressed to
                // itself" (RFC 3261 §16.3 step 3).
                if self.is_options_to_self(&request) {
                    return Verdict::AnswerOptions;
                }
                return Reject(483, vec![]);
            }
            Ok(_) => {}
        }
        // §16.3 step 4: loop detection (§16.6 step 8's branch).
        if self.is_loop(&request, loop_hash) {
            return Reject(482, vec![]);
        }
        // §16.3 step 5: Proxy-Require.
        let unsupported: Vec<String> = request
            .typed_values(HeaderName::ProxyRequire)
            .flat_map(|v| {
                v.split(',')
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
            })
            .filter(|t| {
                !self
                    .config
                    .supported
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(t))
            })
            .collect();
        if !unsupported.is_empty() {
            return Reject(420, vec![("Unsupported", unsupported.join(", "))]);
        }
        // §16.3 step 6 (Proxy-Authorization) belongs to the auth layer above.
        match self.preprocess_routes(request) {
            Ok(m) => {
                if m.method() == Some(&Method::Options) && self.is_options_to_self(&m) {
                    Verdict::AnswerOptions
                } else {
                    Verdict::Proceed(Box::new(m))
                }
            }
            Err(_) => Reject(400, vec![]),
        }
    }

    /// RFC 3261 §16.4: strict-route compatibility, then removal of the
    /// Route values naming this proxy.
    fn preprocess_routes(&self, mut m: Message) -> Result<Message, MessageError> {
        let id = &self.config.identity;
        let ruri = m.request_uri()?.clone();
        let routes: Vec<String> = m.routes()?.iter().map(|r| r.as_str().to_owned()).collect();
        // "If the Request-URI of the request contains a value this proxy
        // previously placed into a Record-Route header field, the proxy MUST
        // replace the Request-URI in the request with the last value from
        // the Route header field, and remove that value": the previous hop
        // was a strict router. Our Record-Route URIs have no user part.
        if !routes.is_empty()
            && id.is_self(&ruri)
            && ruri.as_sip().is_some_and(|s| s.user().is_none())
        {
            let last = m.routes()?.last().map(|r| r.uri().clone());
            if let Some(last) = last {
                m.set_request_uri(&last)?;
                // No "remove last value" edit: rewrite the Route lines.
                m.remove_header(HeaderName::Route);
                for r in &routes[..routes.len() - 1] {
                    m.append_header("Route", r)?;
                }
            }
        }
        // "If the first value in the Route header field indicates this
        // proxy, the proxy MUST remove that value from the request." Repeated:
        // a double Record-Route (§16.6 step 4) leaves two of ours.
        while let Some(first) = m.routes()?.first() {
            if !id.is_self(first.uri()) {
                break;
            }
            m.remove_first_value(HeaderName::Route);
        }
        Ok(m)
    }

    fn is_options_to_self(&self, m: &Message) -> bool {
        let Ok(ruri) = m.request_uri() else {
            return false;
        };
        m.method() == Some(&Method::Options)
            && m.routes().is_ok_and(|r| {
                r.is_empty() || r.iter().all(|r| self.config.identity.is_self(r.uri()))
            })
            && ruri.as_sip().is_some_and(|s| s.user().is_none())
            && (self.config.identity.is_self(ruri) || self.config.identity.is_local_domain(ruri))
    }

    fn options_headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Allow", self.config.allow.clone()),
            ("Accept", self.config.accept.clone()),
            ("Supported", self.config.supported.join(", ")),
        ]
    }

    /// RFC 3261 §16.3 step 4: a Via of ours whose branch carries the hash
    /// of this very request is a loop; with another hash, a spiral.
    fn is_loop(&self, m: &Message, loop_hash: u64) -> bool {
        let Ok(vias) = m.vias() else {
            return false;
        };
        let want = format!("{MAGIC_COOKIE}{loop_hash:016x}.");
        vias.iter()
            .any(|v| self.is_our_via(v) && v.branch().is_some_and(|b| b.starts_with(&want)))
    }

    fn is_our_via(&self, v: &habla_message::Via) -> bool {
        let tls = v.transport().eq_ignore_ascii_case("TLS");
        self.config.identity.is_self_host(&v.host(), v.port(), tls)
    }

    /// RFC 3261 §16.6 step 8: the part of the branch that reflects
    /// "all information affecting processing of a request": the incoming
    /// Request-URI, To and From tags, Call-ID, CSeq number, Route,
    /// Proxy-Require and Proxy-Authorization. (Not the top Via: a looped
    /// request comes back with ours on top.)
    fn loop_hash(&self, m: &Message) -> u64 {
        let mut h = FNV_OFFSET;
        h = fnv(h, m.request_uri_str().unwrap_or("").as_bytes());
        h = fnv(
            h,
            m.to().ok().and_then(|t| t.tag()).unwrap_or("").as_bytes(),
        );
        h = fnv(
            h,
            m.from().ok().and_then(|t| t.tag()).unwrap_or("").as_bytes(),
        );
        h = fnv(
            h,
            m.call_id()
                .map(|c| c.as_bytes().clone())
                .unwrap_or_default()
                .as_ref(),
        );
        h = fnv(h, &m.cseq().map(|c| c.seq).unwrap_or(0).to_be_bytes());
        for name in [
            HeaderName::Route,
            HeaderName::ProxyRequire,
            HeaderName::ProxyAuthorization,
        ] {
            for v in m.typed_values(name) {
                h = fnv(h, v.as_bytes());
            }
        }
        mix(h ^ self.seed)
    }

    // ----- §16.5 --------------------------------------------------------------

    /// The target set, grouped by q (best first), or the status to answer.
    fn targets(&mut self, m: &Message) -> Result<VecDeque<Vec<Target>>, u16> {
        let ruri = m.request_uri().map_err(|_| 400u16)?;
        let routed = !m.routes().map_err(|_| 400u16)?.is_empty();
        let keep = Target {
            uri: None,
            path: Vec::new(),
            flow: None,
        };
        // A request still routed elsewhere (a preloaded or recorded route)
        // goes on unchanged; so does one for a domain not ours.
        if routed || !self.config.identity.is_local_domain(ruri) {
            return Ok(VecDeque::from([vec![keep]]));
        }
        // "If the Request-URI ... is in a domain this proxy is responsible
        // for, the proxy MUST use the location service" (RFC 3261 §16.5).
        let mut contacts = match self.location.lookup(ruri) {
            Lookup::Unknown => return Err(404),
            Lookup::NotRegistered => return Err(480),
            Lookup::Contacts(c) if c.is_empty() => return Err(480),
            Lookup::Contacts(c) => c,
        };
        contacts.sort_by_key(|c| std::cmp::Reverse(c.q));
        let mut groups: VecDeque<Vec<Target>> = VecDeque::new();
        let mut last_q = None;
        for LocationContact {
            uri, q, path, flow, ..
        } in contacts
        {
            let t = Target {
                uri: Some(uri),
                path,
                flow,
            };
            match groups.back_mut() {
                Some(g) if last_q == Some(q) => g.push(t),
                _ => groups.push_back(vec![t]),
            }
            last_q = Some(q);
        }
        Ok(groups)
    }

    // ----- §16.6 --------------------------------------------------------------

    /// A copy of `request` forwarded to `target` (RFC 3261 §16.6 steps 1-8).
    fn build_forward(
        &self,
        request: &Message,
        target: &Target,
        inbound: Interface,
        loop_hash: u64,
        suffix: u64,
        record_route: bool,
    ) -> Result<(Message, NextHop), MessageError> {
        // Step 1: copy.
        let mut m = request.clone();
        // Step 2: Request-URI.
        if let Some(uri) = &target.uri {
            m.set_request_uri(uri)?;
        }
        // Step 3: Max-Forwards: decrement, or 70 when absent.
        let mf = match m.max_forwards()? {
            Some(n) => n.saturating_sub(1),
            None => 70,
        };
        m.set_header(HeaderName::MaxForwards, &mf.to_string())?;
        // Step 6: a registered Path becomes the Route set (RFC 3327 §5.3),
        // its first element on top.
        for p in target.path.iter().rev() {
            m.push_header(HeaderName::Route, &format!("<{}>", p.as_str()))?;
        }
        // Step 6: "If the ... first Route header field value ... does not
        // contain the lr parameter", the next hop is a strict router: the
        // Request-URI goes to the end of the Route set and the first Route
        // value becomes the Request-URI.
        let strict = m.routes()?.first().map(|r| {
            (
                r.uri().clone(),
                r.uri().as_sip().is_some_and(|s| s.is_loose_route()),
            )
        });
        let strict = match strict {
            Some((first, false)) => {
                let ruri = m.request_uri()?.clone();
                m.remove_first_value(HeaderName::Route);
                m.append_header("Route", &format!("<{}>", ruri.as_str()))?;
                m.set_request_uri(&first)?;
                true
            }
            _ => false,
        };
        // Step 7: the next hop: the Request-URI after a strict-route
        // rewrite, else the top Route, else the outbound proxy for a
        // request leaving our domains, else the Request-URI.
        let ruri = m.request_uri()?.clone();
        let (hop, flow) = match m.routes()?.first() {
            _ if strict => (ruri.clone(), None),
            Some(r) => (r.uri().clone(), None),
            None => match (&self.config.outbound_proxy, target.uri.is_none()) {
                (Some(ob), true) if !self.config.identity.is_local_domain(&ruri) => {
                    (ob.clone(), None)
                }
                _ => (
                    ruri.clone(),
                    if target.path.is_empty() {
                        target.flow.clone()
                    } else {
                        None
                    },
                ),
            },
        };
        let next_hop = self.next_hop(hop, flow, inbound)?;
        let out = next_hop.interface;
        // Step 4: Record-Route, only in dialog-initiating requests (a
        // request inside a dialog keeps the route set it has). Two values
        // when the request leaves by another interface (transport, address
        // family or address), the inbound one below the outbound one.
        let in_dialog = m.to().is_ok_and(|t| t.tag().is_some());
        let method = m.method().cloned();
        if record_route
            && self.config.record_route
            && !in_dialog
            && !matches!(
                method,
                Some(Method::Register | Method::Ack | Method::Cancel)
            )
        {
            let secure = ruri.as_sip().is_some_and(|s| s.is_secure())
                || m.routes()?
                    .first()
                    .and_then(|r| r.uri().as_sip())
                    .is_some_and(|s| s.is_secure());
            if out != inbound {
                m.push_header(HeaderName::RecordRoute, &rr_value(inbound, secure))?;
            }
            m.push_header(HeaderName::RecordRoute, &rr_value(out, secure))?;
        }
        // Step 8: our Via, with the loop-detecting branch.
        let branch = format!("{MAGIC_COOKIE}{loop_hash:016x}.{suffix:x}");
        m.push_header(
            HeaderName::Via,
            &format!(
                "SIP/2.0/{} {};branch={branch}",
                out.via_token(),
                out.host_port()
            ),
        )?;
        Ok((m, next_hop))
    }

    fn next_hop(
        &self,
        uri: Uri,
        flow: Option<String>,
        inbound: Interface,
    ) -> Result<NextHop, MessageError> {
        let Some(sip) = uri.as_sip() else {
            return Err(MessageError::Uri {
                uri: uri.as_str().chars().take(100).collect(),
                reason: "next hop is not a sip: or sips: URI",
            });
        };
        let transport = match sip.transport() {
            Some(t) => parse_transport(t).unwrap_or(Transport::Udp),
            None if sip.is_secure() => Transport::Tls,
            None => Transport::Udp,
        };
        let host = sip.maddr().unwrap_or(sip.host().as_str()).to_owned();
        let v6 = Host::parse(&host)
            .ok()
            .and_then(|h| h.ip())
            .map(|ip| ip.is_ipv6());
        let port = sip.port();
        let interface = self.select_interface(transport, v6, inbound);
        Ok(NextHop {
            uri,
            host,
            port,
            transport,
            flow,
            interface,
        })
    }

    /// The local interface to send from: the transport wanted and the
    /// address family of the next hop (the inbound one's when the next hop
    /// is a name), falling back to the inbound interface.
    fn select_interface(
        &self,
        transport: Transport,
        v6: Option<bool>,
        inbound: Interface,
    ) -> Interface {
        if inbound.transport == transport && v6.is_none_or(|v6| v6 == inbound.is_ipv6()) {
            return inbound;
        }
        let v6 = v6.unwrap_or(inbound.is_ipv6());
        let ifs = &self.config.identity.interfaces;
        ifs.iter()
            .find(|i| i.transport == transport && i.is_ipv6() == v6)
            .or_else(|| ifs.iter().find(|i| i.transport == transport))
            .copied()
            .unwrap_or(inbound)
    }

    // ----- §16.7 --------------------------------------------------------------

    /// Starts the next target group, or ends the context when nothing is
    /// pending any more.
    fn advance(&mut self, now: Instant, id: u64) {
        let Some(mut ctx) = self.contexts.remove(&id) else {
            return;
        };
        if let Some(group) = ctx.groups.pop_front() {
            for target in group {
                let index = ctx.branches.len() as u32;
                let bid = BranchId { context: id, index };
                self.counter += 1;
                let suffix = mix(self.counter ^ self.seed.rotate_left(17));
                let built = self.build_forward(
                    &ctx.request,
                    &target,
                    ctx.inbound,
                    ctx.loop_hash,
                    suffix,
                    true,
                );
                let (request, next_hop, outcome) = match built {
                    Ok((r, h)) => (r, Some(h), None),
                    // A target that cannot be forwarded to counts as a 503.
                    Err(_) => (ctx.request.clone(), None, Some(Outcome::Unreachable)),
                };
                let mut branch = Branch {
                    key: None,
                    request,
                    next_hop,
                    provisional: false,
                    outcome,
                    cancel_wanted: false,
                    cancel_sent: false,
                    timer_at: None,
                };
                if let (None, Some(next_hop)) = (&branch.outcome, &branch.next_hop) {
                    // RFC 3261 §16.6 step 11: Timer C for INVITE; a guard
                    // for the others.
                    let after = if ctx.invite {
                        self.config.timer_c
                    } else {
                        self.config.non_invite_timeout
                    };
                    let at = now + after;
                    branch.timer_at = Some(at);
                    self.schedule.insert((at, id, Slot::Branch(index)));
                    self.actions.push_back(Action::Forward {
                        branch: bid,
                        request: branch.request.clone(),
                        next_hop: next_hop.clone(),
                    });
                }
                ctx.branches.push(branch);
            }
        }
        self.contexts.insert(id, ctx);
        self.check_done(now, id);
    }

    fn on_response(
        &mut self,
        now: Instant,
        bid: BranchId,
        ctx: &mut Context,
        code: u16,
        response: Message,
    ) {
        let invite = ctx.invite;
        let Some(b) = ctx.branches.get_mut(bid.index as usize) else {
            return;
        };
        if code < 200 {
            if b.outcome.is_some() {
                return;
            }
            b.provisional = true;
            if invite && code > 100 {
                // RFC 3261 §16.7 step 2: a provisional other than 100
                // resets Timer C.
                if let Some(at) = b.timer_at.take() {
                    self.schedule
                        .remove(&(at, bid.context, Slot::Branch(bid.index)));
                }
                let at = now + self.config.timer_c;
                b.timer_at = Some(at);
                self.schedule
                    .insert((at, bid.context, Slot::Branch(bid.index)));
            }
            if b.cancel_wanted && !b.cancel_sent {
                // RFC 3261 §9.1: the CANCEL waited for a provisional response.
                b.cancel_sent = true;
                push_cancel(&mut self.actions, bid, b);
            }
            // RFC 3261 §16.7 step 5: provisional responses other than 100
            // are forwarded immediately (100 is hop by hop).
            if code > 100 && !ctx.final_sent {
                self.forward_upstream(ctx.server_key, response);
            }
            return;
        }
        if b.outcome.is_none() {
            if let Some(at) = b.timer_at.take() {
                self.schedule
                    .remove(&(at, bid.context, Slot::Branch(bid.index)));
            }
        }
        if (200..300).contains(&code) {
            if b.outcome.is_none() {
                b.outcome = Some(Outcome::Response(Box::new(response.clone())));
            }
            // RFC 3261 §16.7 step 5: every 2xx to an INVITE is forwarded
            // immediately (forked ones too); for other methods, the first.
            if invite || !ctx.final_sent {
                self.forward_upstream(ctx.server_key, response);
                ctx.final_sent = true;
                ctx.got_2xx = true;
            }
            // RFC 3261 §16.7 step 10: a 2xx cancels the pending branches.
            if !ctx.no_new_branches {
                ctx.no_new_branches = true;
                if invite {
                    self.cancel_pending(bid.context, ctx);
                }
            }
            return;
        }
        if b.outcome.is_some() {
            return;
        }
        b.outcome = Some(Outcome::Response(Box::new(response)));
        if code >= 600 && !ctx.no_new_branches {
            // RFC 3261 §16.7 step 5 / step 10: a 6xx cancels the rest and
            // ends forking.
            ctx.no_new_branches = true;
            if invite {
                self.cancel_pending(bid.context, ctx);
            }
        }
    }

    fn cancel_pending(&mut self, id: u64, ctx: &mut Context) {
        if !ctx.invite {
            return;
        }
        for (i, b) in ctx.branches.iter_mut().enumerate() {
            if b.outcome.is_some() || b.cancel_sent {
                continue;
            }
            if b.provisional {
                b.cancel_sent = true;
                push_cancel(
                    &mut self.actions,
                    BranchId {
                        context: id,
                        index: i as u32,
                    },
                    b,
                );
            } else {
                // RFC 3261 §9.1: no CANCEL before a provisional response.
                b.cancel_wanted = true;
            }
        }
    }

    fn complete(&mut self, now: Instant, bid: BranchId, outcome: Outcome) {
        let Some(ctx) = self.contexts.get_mut(&bid.context) else {
            return;
        };
        let Some(b) = ctx.branches.get_mut(bid.index as usize) else {
            return;
        };
        if b.outcome.is_some() {
            return;
        }
        if let Some(at) = b.timer_at.take() {
            self.schedule
                .remove(&(at, bid.context, Slot::Branch(bid.index)));
        }
        b.outcome = Some(outcome);
        self.check_done(now, bid.context);
    }

    /// When every branch is complete: the next group (serial forking), or
    /// the best response (RFC 3261 §16.7 step 6), then the end of the
    /// context (after lingering for 2xx retransmissions).
    fn check_done(&mut self, now: Instant, id: u64) {
        let Some(ctx) = self.contexts.get(&id) else {
            return;
        };
        if ctx.branches.iter().any(|b| b.outcome.is_none()) {
            return;
        }
        if !ctx.final_sent && !ctx.no_new_branches && !ctx.groups.is_empty() {
            self.advance(now, id);
            return;
        }
        if !ctx.final_sent {
            let Some(mut ctx) = self.contexts.remove(&id) else {
                return;
            };
            ctx.final_sent = true;
            self.send_best(&ctx);
            self.contexts.insert(id, ctx);
        }
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        if ctx.invite && ctx.got_2xx {
            if ctx.linger_at.is_none() {
                let at = now + self.config.linger;
                ctx.linger_at = Some(at);
                self.schedule.insert((at, id, Slot::Linger));
            }
        } else {
            self.destroy(id);
        }
    }

    /// RFC 3261 §16.7 step 6: choose the best final response and forward
    /// it (steps 7-9).
    fn send_best(&mut self, ctx: &Context) {
        let server_key = ctx.server_key;
        if ctx.cancelled {
            // RFC 3261 §16.10 / §9.2: the cancelled INVITE ends with 487.
            let _ = self.respond(server_key, &ctx.request, 487, &[]);
            return;
        }
        let outcomes: Vec<&Outcome> = ctx
            .branches
            .iter()
            .filter_map(|b| b.outcome.as_ref())
            .collect();
        let Some(best) = best_outcome(&outcomes) else {
            let _ = self.respond(server_key, &ctx.request, 408, &[]);
            return;
        };
        match best {
            // "If the selected response is a 503, the proxy MUST convert it
            // to 500" (step 6) - as are our own 503s for unreachable targets.
            Outcome::Unreachable => {
                let _ = self.respond(server_key, &ctx.request, 500, &[]);
            }
            Outcome::Timeout => {
                let _ = self.respond(server_key, &ctx.request, 408, &[]);
            }
            Outcome::Response(r) if r.status() == Some(503) => {
                let _ = self.respond(server_key, &ctx.request, 500, &[]);
            }
            Outcome::Response(r) => {
                let mut r = (**r).clone();
                let code = r.status().unwrap_or(500);
                if code == 401 || code == 407 {
                    // Step 7: every challenge of every 401/407 goes into the
                    // forwarded one, unmodified.
                    for other in &outcomes {
                        let Outcome::Response(o) = other else {
                            continue;
                        };
                        if std::ptr::eq(*other, best) || !matches!(o.status(), Some(401 | 407)) {
                            continue;
                        }
                        for name in ["WWW-Authenticate", "Proxy-Authenticate"] {
                            for v in o.header_values(name) {
                                let _ = r.append_header(name, v);
                            }
                        }
                    }
                }
                self.forward_upstream(server_key, r);
            }
        }
    }

    /// RFC 3261 §16.7 step 3 and 9: remove our Via, forward in the server
    /// transaction.
    fn forward_upstream(&mut self, server_key: TransactionKey, mut response: Message) {
        response.remove_first_value(HeaderName::Via);
        self.actions.push_back(Action::SendResponse {
            server_key,
            response,
        });
    }

    fn destroy(&mut self, id: u64) {
        let Some(ctx) = self.contexts.remove(&id) else {
            return;
        };
        self.by_server.remove(&ctx.server_key);
        for (i, b) in ctx.branches.iter().enumerate() {
            if let Some(k) = b.key {
                self.by_client.remove(&k);
            }
            if let Some(at) = b.timer_at {
                self.schedule.remove(&(at, id, Slot::Branch(i as u32)));
            }
        }
        if let Some(at) = ctx.linger_at {
            self.schedule.remove(&(at, id, Slot::Linger));
        }
    }

    fn branch_mut(&mut self, bid: BranchId) -> Result<&mut Branch, Error> {
        self.contexts
            .get_mut(&bid.context)
            .and_then(|c| c.branches.get_mut(bid.index as usize))
            .ok_or(Error::UnknownBranch(bid))
    }

    /// A locally generated response (with a To tag, except 100).
    fn respond(
        &mut self,
        server_key: TransactionKey,
        request: &Message,
        code: u16,
        headers: &[(&str, String)],
    ) -> Result<(), Error> {
        self.counter += 1;
        let tag = format!("{:x}", mix(self.counter ^ self.seed.rotate_left(31)));
        let build = |request: &Message| {
            let mut b = request.response(code);
            if code > 100 {
                b = b.to_tag(request, &tag);
            }
            if let Some(s) = &self.config.server {
                b = b.header("Server", s);
            }
            for (n, v) in headers {
                b = b.header(n, v);
            }
            b.build().map_err(|e| Error::Build(e.error().clone()))
        };
        let response = match build(request) {
            Ok(r) => r,
            // The builder refuses copied values holding a fold (CRLF + WSP,
            // RFC 3261 §7.3.1, e.g. RFC 4475 wsinv): unfold and retry.
            Err(_) => build(&unfolded(request))?,
        };
        self.actions.push_back(Action::SendResponse {
            server_key,
            response,
        });
        Ok(())
    }
}

/// A copy of `m` whose header lines copied into responses have their
/// folds (CRLF + whitespace) replaced by the whitespace alone.
fn unfolded(m: &Message) -> Message {
    let mut m = m.clone();
    for name in [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        let values: Vec<String> = m.typed_values(name).map(|v| v.to_string()).collect();
        if !values.iter().any(|v| v.contains(['\r', '\n'])) {
            continue;
        }
        m.remove_header(name);
        for v in values {
            let v: String = v.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            let _ = m.append_header(name.as_str(), &v);
        }
    }
    m
}

fn push_cancel(actions: &mut VecDeque<Action>, bid: BranchId, b: &Branch) {
    // RFC 3261 §9.1 / §16.10: the CANCEL copies the branch's INVITE (same
    // Via branch, Route set), to the same destination.
    let Some(next_hop) = &b.next_hop else {
        return;
    };
    if let Ok(request) = cancel_for(&b.request) {
        actions.push_back(Action::Cancel {
            branch: bid,
            client_key: b.key,
            request,
            next_hop: next_hop.clone(),
        });
    }
}

/// RFC 3261 §16.7 step 6: a 6xx if any; else the lowest class; within 4xx
/// 401/407 first, then 415, 420, 484; otherwise the lowest code, earliest
/// branch first.
fn best_outcome<'a>(outcomes: &[&'a Outcome]) -> Option<&'a Outcome> {
    if let Some(o) = outcomes.iter().find(|o| o.code() >= 600) {
        return Some(o);
    }
    let class = outcomes.iter().map(|o| o.code() / 100).min()?;
    let in_class = outcomes.iter().filter(|o| o.code() / 100 == class);
    let rank = |o: &&&Outcome| {
        let c = o.code();
        let pref = match c {
            401 | 407 => 0,
            415 | 420 | 484 => 1,
            _ => 2,
        };
        (pref, c)
    };
    in_class.min_by_key(rank).copied()
}

fn rr_value(i: Interface, secure: bool) -> String {
    let scheme = if secure { "sips" } else { "sip" };
    let transport = match i.transport {
        Transport::Udp => String::new(),
        t => format!(";transport={}", t.token().to_ascii_lowercase()),
    };
    format!("<{scheme}:{}{transport};lr>", i.host_port())
}

fn parse_transport(t: &str) -> Option<Transport> {
    Transport::from_via(t)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over `bytes`, then a separator (fields of any content never run
/// into each other).
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes.iter().chain(&[0xff]) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// splitmix64's finaliser.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
