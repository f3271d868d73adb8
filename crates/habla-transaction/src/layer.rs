//! [`TransactionLayer`]: every transaction of one SIP element, driven by
//! the caller with messages, commands and the time.

use crate::build;
use crate::completed::CompletedServers;
use crate::config::{Config, Target, Timer};
use crate::keys::CounterHash;
use crate::matching::{
    legacy_matches, ClientKey, Found, LegacyKey, LegacyLookup, ServerKey, ServerTable,
};
use crate::schedule::Schedule;
use crate::state::{
    ClientInviteState, ClientNonInviteState, ServerInviteState, ServerNonInviteState, State,
};
use crate::Error;
use bytes::Bytes;
use habla_message::{Message, Method};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Names one transaction for as long as it lives. Keys are never reused by
/// a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionKey(u64);

impl TransactionKey {
    /// The key as a number (for logs).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// What [`TransactionLayer::poll_output`] hands out.
// Events carry a parsed `Message` by value (about 1 KiB, most of it the
// message's parse cache); boxing it would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Output<A> {
    /// Bytes for the transport layer.
    Transmit(Transmit<A>),
    /// News for the transaction user.
    Event(Event<A>),
}

/// Bytes to send.
#[derive(Debug, Clone)]
pub struct Transmit<A> {
    /// Where to: for a client transaction the target given to
    /// [`TransactionLayer::send_request`]; for a server transaction the
    /// source its request came from (the transport layer applies RFC 3261
    /// §18.2.2 / RFC 3581 there).
    pub destination: Target<A>,
    /// One whole message.
    pub bytes: Bytes,
    /// The transaction sending it (`None` for stateless sends). The driver
    /// reports a failed send with [`TransactionLayer::handle_transport_error`].
    pub key: Option<TransactionKey>,
}

/// Something the transaction user must know about.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<A> {
    /// A request created a server transaction (RFC 3261 §17.2). Answer it
    /// with [`TransactionLayer::send_response`].
    Request {
        /// The new server transaction.
        key: TransactionKey,
        /// The request.
        request: Message,
        /// Where it came from.
        source: Target<A>,
        /// For a CANCEL: the INVITE server transaction it cancels
        /// (RFC 3261 §9.2), if one is live.
        cancels: Option<TransactionKey>,
    },
    /// An ACK for the TU: the ACK for a 2xx, which matches no transaction
    /// (`key` is `None`, RFC 3261 §17.2.3), or an ACK matching an INVITE
    /// server transaction in Accepted (RFC 6026 §8.7, "ACK / to TU"). The
    /// ACK for a non-2xx never comes here: its transaction absorbs it.
    Ack {
        /// The matching server transaction, if any.
        key: Option<TransactionKey>,
        /// The ACK.
        request: Message,
        /// Where it came from.
        source: Target<A>,
    },
    /// A response for a client transaction: provisional, final, and (for
    /// INVITE, RFC 6026) every 2xx, retransmissions and forks included.
    /// Retransmitted non-2xx finals are absorbed.
    Response {
        /// The client transaction.
        key: TransactionKey,
        /// The response.
        response: Message,
    },
    /// A response matching no client transaction (RFC 3261 §18.1.2: passed
    /// to the core; a proxy forwards a stray 2xx statelessly).
    StrayResponse {
        /// The response.
        response: Message,
        /// Where it came from.
        source: Target<A>,
    },
    /// A transaction timed out: Timer B or F (no final response; the TU
    /// treats it as `408 Request Timeout`, RFC 3261 §8.1.3.1), Timer C,
    /// Timer H (no ACK for a non-2xx final, §17.2.1) or the TU guard.
    /// A [`Event::Terminated`] follows.
    Timeout {
        /// The transaction.
        key: TransactionKey,
        /// Which timer fired.
        timer: Timer,
        /// For client transactions: a `408 Request Timeout` built from the
        /// request, to hand to code that expects a response.
        response: Option<Message>,
    },
    /// Sending failed (reported by the driver); the transaction follows
    /// its RFC diagram (usually to Terminated).
    TransportError {
        /// The transaction.
        key: TransactionKey,
    },
    /// A request that would have created a server transaction was refused
    /// because [`Config::max_transactions`] is reached. Answer it with
    /// [`Refusal::response`] (503 + Retry-After) sent via
    /// [`TransactionLayer::send_stateless`], or drop it.
    Refused(Refusal<A>),
    /// The transaction is gone; its key is dead.
    Terminated {
        /// The transaction.
        key: TransactionKey,
    },
}

/// A request refused for lack of room (see [`Event::Refused`]).
#[derive(Debug)]
pub struct Refusal<A> {
    /// The request.
    pub request: Message,
    /// Where it came from.
    pub source: Target<A>,
    /// Suggested Retry-After, seconds ([`Config::retry_after`]).
    pub retry_after: u32,
}

impl<A> Refusal<A> {
    /// `503 Service Unavailable` with `Retry-After` (RFC 3261 §21.5.4).
    pub fn response(&self) -> Result<Bytes, habla_message::Error> {
        build::overload_response(&self.request, self.retry_after)
    }
}

/// Most timers one transaction has armed at once (two in every state of
/// the RFC's machines: A and B, E and F, G and H, 100 Trying and the TU
/// guard...; the rest is headroom).
const MAX_ARMED: usize = 4;

/// The timers armed for one transaction, mirrored in the layer's schedule.
/// A few slots rather than one per timer kind: a transaction waiting out
/// Timer J is mostly this, and a busy server holds hundreds of thousands.
#[derive(Debug)]
struct Slots {
    id: u64,
    armed: [Option<(Timer, Instant)>; MAX_ARMED],
}

impl Slots {
    fn new(id: u64) -> Slots {
        Slots {
            id,
            armed: [None; MAX_ARMED],
        }
    }

    /// When `timer` fires, if armed.
    fn at(&self, timer: Timer) -> Option<Instant> {
        self.armed
            .iter()
            .flatten()
            .find(|(t, _)| *t == timer)
            .map(|&(_, at)| at)
    }

    /// Arms `timer` to fire `after` from `now`; a deadline beyond what
    /// `Instant` can hold never fires.
    fn arm_in(&mut self, schedule: &mut Schedule, timer: Timer, now: Instant, after: Duration) {
        self.disarm(schedule, timer);
        let Some(at) = now.checked_add(after) else {
            return;
        };
        let free = self.armed.iter_mut().find(|s| s.is_none());
        debug_assert!(free.is_some(), "more than {MAX_ARMED} timers armed");
        // (Cannot happen: every state arms at most two. Were it to, the
        // latest timer would take the first slot's place.)
        let slot = match free {
            Some(slot) => slot,
            None => {
                schedule.disarmed();
                &mut self.armed[0]
            }
        };
        *slot = Some((timer, at));
        schedule.push(after, (at, self.id, timer));
    }

    fn disarm(&mut self, schedule: &mut Schedule, timer: Timer) {
        if let Some(slot) = self
            .armed
            .iter_mut()
            .find(|s| matches!(s, Some((t, _)) if *t == timer))
        {
            *slot = None;
            schedule.disarmed();
        }
    }

    fn clear(&mut self, schedule: &mut Schedule) {
        if self.armed.iter().any(Option::is_some) {
            self.armed = [None; MAX_ARMED];
            schedule.disarmed();
        }
    }
}

/// Which matching table holds the transaction.
#[derive(Debug)]
enum Index {
    Client(ClientKey),
    Server(ServerKey),
    Legacy(LegacyKey),
}

// Named as the RFC names the four machines.
#[allow(clippy::enum_variant_names)]
#[derive(Debug)]
enum Machine {
    ClientInvite {
        state: ClientInviteState,
        /// The INVITE as sent, for Timer A.
        request: Bytes,
        /// The ACK sent for the non-2xx final, resent on its retransmissions.
        ack: Option<Bytes>,
    },
    ClientNonInvite {
        state: ClientNonInviteState,
        request: Bytes,
    },
    ServerInvite {
        state: ServerInviteState,
        /// The last provisional (Proceeding) or the non-2xx final (Completed).
        last: Option<Bytes>,
        /// The To tag of the final response sent, for RFC 2543 ACK matching.
        to_tag: Option<Box<str>>,
    },
    ServerNonInvite {
        state: ServerNonInviteState,
        last: Option<Bytes>,
    },
}

impl Machine {
    fn state(&self) -> State {
        match self {
            Machine::ClientInvite { state, .. } => State::ClientInvite(*state),
            Machine::ClientNonInvite { state, .. } => State::ClientNonInvite(*state),
            Machine::ServerInvite { state, .. } => State::ServerInvite(*state),
            Machine::ServerNonInvite { state, .. } => State::ServerNonInvite(*state),
        }
    }
}

#[derive(Debug)]
struct Tx<A> {
    /// Client: where requests go. Server: where the request came from.
    target: Target<A>,
    reliable: bool,
    /// The request that created the transaction. A server transaction
    /// matched by branch keeps it only for an INVITE (for its 100 Trying),
    /// until the final response (Completed, Accepted): from then on only
    /// its key and last response are needed, and it may live 32 s (Timer
    /// J, L) for every request a busy server answers, so it must be small.
    /// Boxed: a `Message` is large, and the table holds every live
    /// transaction inline.
    request: Option<Box<Message>>,
    slots: Slots,
    /// The current retransmission interval (Timer A, E or G).
    interval: Duration,
    index: Index,
    machine: Machine,
}

/// What a step decided about the transaction's life.
enum Fate {
    Lives,
    /// Terminated, after reporting a timeout.
    TimedOut(Timer),
    Ends,
}

fn transmit<A: Clone>(out: &mut VecDeque<Output<A>>, target: &Target<A>, bytes: Bytes, id: u64) {
    out.push_back(Output::Transmit(Transmit {
        destination: target.clone(),
        bytes,
        key: Some(TransactionKey(id)),
    }));
}

/// Every transaction of one SIP element: the client and server machines of
/// RFC 3261 §17 (with RFC 6026), their matching tables and their timers.
///
/// `A` is the driver's address type (a socket address, a flow token...).
/// See the crate documentation for the drive loop.
#[derive(Debug)]
pub struct TransactionLayer<A> {
    config: Config,
    next_id: u64,
    /// Every transaction but those in `completed`. Boxed: the table is
    /// rehashed as it grows (tens of thousands of transactions alive at a
    /// few thousand calls a second, INVITEs held 32 s by Timer L), and a
    /// rehash that moves half-kilobyte entries
    /// holds the caller for milliseconds; moving pointers, for
    /// microseconds.
    txs: HashMap<u64, Box<Tx<A>>, CounterHash>,
    clients: HashMap<ClientKey, u64>,
    servers: ServerTable,
    /// Non-INVITE server transactions matched by branch, in Completed over
    /// an unreliable transport (most of a busy server's transactions):
    /// not in `txs`, kept compactly until Timer J.
    completed: CompletedServers<A>,
    legacy: HashMap<LegacyKey, Vec<u64>>,
    schedule: Schedule,
    out: VecDeque<Output<A>>,
}

impl<A: Clone> TransactionLayer<A> {
    /// An empty layer.
    pub fn new(config: Config) -> Self {
        TransactionLayer {
            config,
            next_id: 0,
            txs: HashMap::default(),
            clients: HashMap::new(),
            servers: ServerTable::default(),
            completed: CompletedServers::default(),
            legacy: HashMap::new(),
            schedule: Schedule::default(),
            out: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How many transactions are live.
    pub fn len(&self) -> usize {
        self.txs.len() + self.completed.len()
    }

    /// Whether no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state of a live transaction.
    pub fn state(&self, key: TransactionKey) -> Option<State> {
        match self.txs.get(&key.0) {
            Some(tx) => Some(tx.machine.state()),
            None => self
                .completed
                .contains(key.0)
                .then_some(State::ServerNonInvite(ServerNonInviteState::Completed)),
        }
    }

    /// The request that created a live transaction. Not kept by a server
    /// transaction for a non-INVITE request with an RFC 3261 branch, nor
    /// by any server transaction once it has sent its final response, nor
    /// by a non-INVITE client transaction once it has received one (an
    /// INVITE's stays for the TU's ACK of a 2xx, RFC 3261 §13.2.2.4).
    pub fn request(&self, key: TransactionKey) -> Option<&Message> {
        self.txs.get(&key.0).and_then(|tx| tx.request.as_deref())
    }

    /// The keys of every live transaction (in no particular order).
    pub fn keys(&self) -> impl Iterator<Item = TransactionKey> + '_ {
        self.txs
            .keys()
            .copied()
            .chain(self.completed.ids())
            .map(TransactionKey)
    }

    // ----- output -----------------------------------------------------------

    /// The next thing to send or report. Call until `None` after every
    /// `handle_*` and `send_*` call.
    pub fn poll_output(&mut self) -> Option<Output<A>> {
        let out = self.out.pop_front();
        if out.is_none() {
            // Drained: let the schedule's fronts name live deadlines.
            let txs = &self.txs;
            self.schedule.prune(|&(at, id, timer)| {
                txs.get(&id)
                    .is_some_and(|tx| tx.slots.at(timer) == Some(at))
            });
        }
        out
    }

    /// The earliest armed timer's deadline: call
    /// [`TransactionLayer::handle_timeout`] then (not before).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.poll_timeout_coalesced(Duration::ZERO)
    }

    /// [`TransactionLayer::poll_timeout`], but letting the Timer J of
    /// completed non-INVITE server transactions wait up to `slack`, so
    /// that a driver wakes once to end a batch of them rather than every
    /// few microseconds on a busy server. Nothing on the wire depends on
    /// when Timer J fires: the transaction absorbs retransmissions of its
    /// request that much longer.
    pub fn poll_timeout_coalesced(&self, slack: Duration) -> Option<Instant> {
        let lazy = self
            .completed
            .first()
            .map(|t| t.checked_add(slack).unwrap_or(t));
        match (self.schedule.first(), lazy) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- commands from the TU --------------------------------------------

    /// Starts a client transaction for `request` (RFC 3261 §17.1) and sends
    /// it to `target`. The request's top Via must carry an RFC 3261 branch
    /// (the TU draws it, e.g. with [`crate::new_branch`]). Not for ACK.
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Message,
        target: Target<A>,
    ) -> Result<TransactionKey, Error> {
        let method = request
            .method()
            .ok_or(Error::WrongKind {
                expected: "request",
            })?
            .clone();
        if method == Method::Ack {
            return Err(Error::AckTransaction);
        }
        if !request.top_via()?.has_rfc3261_branch() {
            return Err(Error::NoRfc3261Branch);
        }
        let key = ClientKey::of(&request)?.ok_or(Error::NoRfc3261Branch)?;
        if self.clients.contains_key(&key) {
            return Err(Error::Duplicate);
        }
        if self.len() >= self.config.max_transactions {
            return Err(Error::TooManyTransactions {
                limit: self.config.max_transactions,
            });
        }
        let id = self.alloc_id();
        let t = self.config.timers;
        let reliable = target.transport.is_reliable();
        let bytes = request.to_bytes();
        let machine = if method == Method::Invite {
            Machine::ClientInvite {
                state: ClientInviteState::Calling,
                request: bytes.clone(),
                ack: None,
            }
        } else {
            Machine::ClientNonInvite {
                state: ClientNonInviteState::Trying,
                request: bytes.clone(),
            }
        };
        let mut tx = Tx {
            target,
            reliable,
            request: Some(Box::new(request)),
            slots: Slots::new(id),
            interval: t.t1(),
            index: Index::Client(key.clone()),
            machine,
        };
        let (retransmit, timeout) = if method == Method::Invite {
            // RFC 3261 §17.1.1.2: "For unreliable transports, the client
            // transaction MUST start timer A with a value of T1 ... For any
            // transport, the client transaction MUST start timer B with a
            // value of 64*T1 seconds".
            (Timer::A, Timer::B)
        } else {
            // RFC 3261 §17.1.2.2: Timer F = 64*T1; Timer E = T1 when
            // unreliable.
            (Timer::E, Timer::F)
        };
        if !reliable {
            tx.slots.arm_in(&mut self.schedule, retransmit, now, t.t1());
        }
        tx.slots.arm_in(&mut self.schedule, timeout, now, t.t1x64());
        transmit(&mut self.out, &tx.target, bytes, id);
        self.clients.insert(key, id);
        self.txs.insert(id, Box::new(tx));
        Ok(TransactionKey(id))
    }

    /// Sends a response in a server transaction (RFC 3261 §17.2.1,
    /// §17.2.2; RFC 6026 §8.7 for 2xx retransmissions in Accepted).
    pub fn send_response(
        &mut self,
        now: Instant,
        key: TransactionKey,
        response: Message,
    ) -> Result<(), Error> {
        let code = response.status().ok_or(Error::WrongKind {
            expected: "response",
        })?;
        let bytes = response.to_bytes();
        self.respond(now, key, code, bytes, || {
            response.to().ok().and_then(|t| t.tag()).map(Into::into)
        })
    }

    /// [`TransactionLayer::send_response`] for a response the TU holds as
    /// bytes, with status `code`: it is not parsed (but for the To tag of
    /// an INVITE's final response, kept for RFC 2543 ACK matching). The
    /// bytes must be a response to the transaction's request.
    pub fn send_response_bytes(
        &mut self,
        now: Instant,
        key: TransactionKey,
        code: u16,
        bytes: Bytes,
    ) -> Result<(), Error> {
        if !(100..=699).contains(&code) {
            return Err(Error::WrongKind {
                expected: "response",
            });
        }
        let tag_source = bytes.clone();
        self.respond(now, key, code, bytes, move || {
            let m = Message::parse_lazy(tag_source, &habla_message::Limits::default()).ok()?;
            m.to().ok().and_then(|t| t.tag()).map(Into::into)
        })
    }

    fn respond(
        &mut self,
        now: Instant,
        key: TransactionKey,
        code: u16,
        bytes: Bytes,
        to_tag_of: impl FnOnce() -> Option<Box<str>>,
    ) -> Result<(), Error> {
        let mut to_tag_of = Some(to_tag_of);
        let mut tag = || to_tag_of.take().and_then(|f| f());
        let t = self.config.timers;
        let Some(tx) = self.txs.get_mut(&key.0) else {
            return Err(self.not_live(key, "send this response"));
        };
        let state_now = tx.machine.state();
        let invalid = Error::InvalidState {
            key,
            state: state_now,
            what: "send this response",
        };
        let sched = &mut self.schedule;
        let mut fate = Fate::Lives;
        let mut lingers = false;
        match &mut tx.machine {
            Machine::ServerInvite {
                state,
                last,
                to_tag,
            } => match (*state, code) {
                (ServerInviteState::Proceeding, 100..=199) => {
                    // RFC 3261 §17.2.1: provisional responses are sent and
                    // remembered for INVITE retransmissions.
                    tx.slots.disarm(sched, Timer::Trying100);
                    *last = Some(bytes.clone());
                    // A provisional response shows the TU is alive: restart
                    // its guard, as a proxy restarts Timer C (§16.8), so that
                    // a long-ringing call is not cut off.
                    if code > 100 {
                        if let Some(c) = t.timer_c {
                            tx.slots.disarm(sched, Timer::TuGuard);
                            tx.slots.arm_in(sched, Timer::TuGuard, now, c);
                        }
                    }
                }
                (ServerInviteState::Proceeding, 200..=299) => {
                    // RFC 6026 §8.5: 2xx from TU: send, go to Accepted,
                    // Timer L = 64*T1 for all transports.
                    tx.slots.disarm(sched, Timer::Trying100);
                    tx.slots.disarm(sched, Timer::TuGuard);
                    *state = ServerInviteState::Accepted;
                    *last = None;
                    if !matches!(tx.index, Index::Legacy(_)) {
                        tx.request = None;
                    }
                    *to_tag = tag();
                    tx.slots.arm_in(sched, Timer::L, now, t.t1x64());
                }
                (ServerInviteState::Proceeding, 300..=699) => {
                    // RFC 3261 §17.2.1: to Completed; Timer G = T1 when
                    // unreliable; Timer H = 64*T1 for any transport.
                    tx.slots.disarm(sched, Timer::Trying100);
                    tx.slots.disarm(sched, Timer::TuGuard);
                    *state = ServerInviteState::Completed;
                    *last = Some(bytes.clone());
                    if !matches!(tx.index, Index::Legacy(_)) {
                        tx.request = None;
                    }
                    *to_tag = tag();
                    if !tx.reliable {
                        tx.interval = t.t1();
                        tx.slots.arm_in(sched, Timer::G, now, t.t1());
                    }
                    tx.slots.arm_in(sched, Timer::H, now, t.t1x64());
                }
                // RFC 6026 §8.7: "2xx from TU / send response" in Accepted
                // (the TU retransmits its 2xx through the transaction).
                (ServerInviteState::Accepted, 200..=299) => {}
                _ => return Err(invalid),
            },
            Machine::ServerNonInvite { state, last } => match (*state, code) {
                (ServerNonInviteState::Trying | ServerNonInviteState::Proceeding, 100..=199) => {
                    // RFC 3261 §17.2.2: to Proceeding.
                    *state = ServerNonInviteState::Proceeding;
                    *last = Some(bytes.clone());
                }
                (ServerNonInviteState::Trying | ServerNonInviteState::Proceeding, 200..=699) => {
                    // RFC 3261 §17.2.2: to Completed; Timer J = 64*T1
                    // unreliable, zero reliable.
                    tx.slots.disarm(sched, Timer::TuGuard);
                    *state = ServerNonInviteState::Completed;
                    if tx.reliable {
                        fate = Fate::Ends;
                    } else if matches!(tx.index, Index::Server(_)) {
                        // Waits out Timer J in the compact queue.
                        lingers = true;
                    } else {
                        *last = Some(bytes.clone());
                        tx.slots.arm_in(sched, Timer::J, now, t.t1x64());
                    }
                }
                _ => return Err(invalid),
            },
            Machine::ClientInvite { .. } | Machine::ClientNonInvite { .. } => {
                return Err(Error::InvalidState {
                    key,
                    state: state_now,
                    what: "send a response in a client transaction",
                })
            }
        }
        transmit(&mut self.out, &tx.target, bytes.clone(), key.0);
        if lingers {
            self.linger(now, key.0, &bytes);
        }
        self.settle(key.0, fate);
        Ok(())
    }

    /// Moves a non-INVITE server transaction that sent its final response
    /// `last` over an unreliable transport into the completed queue, where
    /// it waits out Timer J (RFC 3261 §17.2.2: "Timer J to fire in 64*T1
    /// seconds for unreliable transports").
    fn linger(&mut self, now: Instant, id: u64, last: &[u8]) {
        let Some(mut tx) = self.txs.remove(&id) else {
            return;
        };
        tx.slots.clear(&mut self.schedule);
        let Index::Server(key) = tx.index else {
            return;
        };
        let until = now.checked_add(self.config.timers.t1x64()).unwrap_or(now);
        self.completed.insert(id, until, key, tx.target, last);
    }

    /// The error for a command on `key`, which is not in `txs`: in the
    /// completed queue (a non-INVITE server transaction in Completed) or
    /// unknown.
    fn not_live(&self, key: TransactionKey, what: &'static str) -> Error {
        match self.state(key) {
            Some(state) => Error::InvalidState { key, state, what },
            None => Error::UnknownTransaction(key),
        }
    }

    /// Ends a transaction of the completed queue before Timer J.
    fn end_completed(&mut self, id: u64) -> bool {
        let Some(key) = self.completed.remove(id) else {
            return false;
        };
        self.forget_server_key(key, id);
        self.out.push_back(Output::Event(Event::Terminated {
            key: TransactionKey(id),
        }));
        true
    }

    /// Removes `id`'s key from the matching table.
    fn forget_server_key(&mut self, key: ServerKey, id: u64) {
        self.servers.remove(key, id);
    }

    /// Sends bytes outside any transaction: the ACK for a 2xx (RFC 3261
    /// §13.2.2.4), a refusal's 503, a stateless proxy's forward.
    pub fn send_stateless(&mut self, destination: Target<A>, bytes: Bytes) {
        self.out.push_back(Output::Transmit(Transmit {
            destination,
            bytes,
            key: None,
        }));
    }

    /// Moves a client transaction that nothing has answered yet (Calling,
    /// Trying) to another target, sending `request` there now: the same
    /// request (same branch) as the transport rewrote it for the new
    /// transport. This is the transport's fallback when the connection the
    /// request was to go over cannot be opened (RFC 3261 §18.1.1: a request
    /// moved to TCP by its size is retried over UDP). The retransmission
    /// timer (A or E) starts afresh when the new transport is unreliable;
    /// the timeout (B or F) keeps running.
    pub fn retarget(
        &mut self,
        now: Instant,
        key: TransactionKey,
        request: Message,
        target: Target<A>,
    ) -> Result<(), Error> {
        let t = self.config.timers;
        let Some(tx) = self.txs.get_mut(&key.0) else {
            return Err(self.not_live(key, "move the request to another target"));
        };
        let bytes = request.to_bytes();
        let retransmit = match &mut tx.machine {
            Machine::ClientInvite {
                state: ClientInviteState::Calling,
                request: sent,
                ..
            } => {
                *sent = bytes.clone();
                Timer::A
            }
            Machine::ClientNonInvite {
                state: ClientNonInviteState::Trying,
                request: sent,
            } => {
                *sent = bytes.clone();
                Timer::E
            }
            _ => {
                return Err(Error::InvalidState {
                    key,
                    state: tx.machine.state(),
                    what: "move the request to another target",
                })
            }
        };
        tx.reliable = target.transport.is_reliable();
        tx.target = target;
        tx.request = Some(Box::new(request));
        tx.interval = t.t1();
        if tx.reliable {
            tx.slots.disarm(&mut self.schedule, retransmit);
        } else {
            tx.slots.arm_in(&mut self.schedule, retransmit, now, t.t1());
        }
        transmit(&mut self.out, &tx.target, bytes, key.0);
        Ok(())
    }

    /// Ends a transaction now, whatever its state (a TU giving up, e.g. a
    /// proxy's Timer C). Returns whether it was live.
    pub fn terminate(&mut self, key: TransactionKey) -> bool {
        if self.txs.contains_key(&key.0) {
            self.settle(key.0, Fate::Ends);
            true
        } else {
            self.end_completed(key.0)
        }
    }

    // ----- inputs -----------------------------------------------------------

    /// Takes one message from the network. Requests go to server
    /// transactions (§17.2.3), responses to client transactions (§17.1.3).
    /// An error means the message lacks what matching needs (drop it, or
    /// answer 400 if it is a request); the layer is unchanged then.
    pub fn handle_message(
        &mut self,
        now: Instant,
        message: Message,
        source: Target<A>,
    ) -> Result<(), Error> {
        if message.status().is_some() {
            self.handle_response(now, message, source)
        } else {
            self.handle_request(now, message, source)
        }
    }

    /// The driver could not send a transaction's message (RFC 3261 §17.1.4,
    /// §17.2.4).
    pub fn handle_transport_error(&mut self, _now: Instant, key: TransactionKey) {
        let Some(tx) = self.txs.get(&key.0) else {
            // RFC 3261 Figure 8: Completed, transport error: inform the
            // TU, Terminated.
            if self.completed.contains(key.0) {
                self.out
                    .push_back(Output::Event(Event::TransportError { key }));
                self.end_completed(key.0);
            }
            return;
        };
        use ClientInviteState as CI;
        use ClientNonInviteState as CN;
        use ServerInviteState as SI;
        use ServerNonInviteState as SN;
        // (inform the TU, terminate)
        let (inform, end) = match tx.machine.state() {
            State::ClientInvite(CI::Calling | CI::Proceeding | CI::Completed) => (true, true),
            State::ClientInvite(_) => (true, false),
            State::ClientNonInvite(CN::Trying | CN::Proceeding) => (true, true),
            State::ClientNonInvite(_) => (false, false),
            // RFC 6026 Figure 7: Proceeding and Accepted inform the TU and
            // stay; Completed informs and terminates.
            State::ServerInvite(SI::Proceeding | SI::Accepted) => (true, false),
            State::ServerInvite(SI::Completed) => (true, true),
            State::ServerInvite(_) => (false, false),
            State::ServerNonInvite(SN::Proceeding | SN::Completed) => (true, true),
            State::ServerNonInvite(_) => (false, false),
        };
        if inform {
            self.out
                .push_back(Output::Event(Event::TransportError { key }));
        }
        if end {
            self.settle(key.0, Fate::Ends);
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        self.schedule.take_due(now, &mut due);
        for (at, id, timer) in due {
            // The completed queue's Timer J firings, in time order with
            // the others.
            self.end_lingering(at);
            // Disarmed since (or by an earlier firing in this batch).
            let Some(tx) = self.txs.get_mut(&id) else {
                continue;
            };
            if tx.slots.at(timer) != Some(at) {
                continue;
            }
            tx.slots.disarm(&mut self.schedule, timer);
            self.fire(now, id, timer);
        }
        self.end_lingering(now);
    }

    /// Ends the completed transactions whose Timer J fired at `now`
    /// (RFC 3261 §17.2.2: "the server transaction MUST transition to the
    /// Terminated state").
    fn end_lingering(&mut self, now: Instant) {
        while let Some(ended) = self.completed.pop_due(now) {
            self.forget_server_key(ended.key, ended.id);
            self.out.push_back(Output::Event(Event::Terminated {
                key: TransactionKey(ended.id),
            }));
        }
    }

    // ----- internals --------------------------------------------------------

    fn alloc_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn handle_response(
        &mut self,
        now: Instant,
        response: Message,
        source: Target<A>,
    ) -> Result<(), Error> {
        // RFC 3261 §17.1.3: top Via branch + CSeq method.
        let key = ClientKey::of(&response)?;
        let Some(id) = key.and_then(|k| self.clients.get(&k).copied()) else {
            // RFC 3261 §18.1.2: no match: pass it to the core.
            self.out
                .push_back(Output::Event(Event::StrayResponse { response, source }));
            return Ok(());
        };
        let code = response.status().unwrap_or(0);
        let t = self.config.timers;
        let Some(tx) = self.txs.get_mut(&id) else {
            return Ok(());
        };
        let key = TransactionKey(id);
        let sched = &mut self.schedule;
        let mut fate = Fate::Lives;
        let mut to_tu = true;
        match &mut tx.machine {
            Machine::ClientInvite { state, ack, .. } => match (*state, code) {
                (ClientInviteState::Calling | ClientInviteState::Proceeding, 100..=199) => {
                    // RFC 3261 §17.1.1.2: 1xx: to Proceeding, stop
                    // retransmitting (Timer A); Timer B only guards Calling.
                    *state = ClientInviteState::Proceeding;
                    tx.slots.disarm(sched, Timer::A);
                    tx.slots.disarm(sched, Timer::B);
                    if let Some(c) = t.timer_c {
                        tx.slots.arm_in(sched, Timer::C, now, c);
                    }
                }
                (ClientInviteState::Calling | ClientInviteState::Proceeding, 200..=299) => {
                    // RFC 6026 §8.4: 2xx: to TU, to Accepted, Timer M =
                    // 64*T1. The transaction neither ACKs nor retransmits.
                    *state = ClientInviteState::Accepted;
                    tx.slots.disarm(sched, Timer::A);
                    tx.slots.disarm(sched, Timer::B);
                    tx.slots.disarm(sched, Timer::C);
                    tx.slots.arm_in(sched, Timer::M, now, t.t1x64());
                }
                (ClientInviteState::Calling | ClientInviteState::Proceeding, 300..=699) => {
                    // RFC 3261 §17.1.1.2: 300-699: send ACK (§17.1.1.3),
                    // pass up, to Completed; Timer D = 32 s unreliable,
                    // zero reliable.
                    tx.slots.disarm(sched, Timer::A);
                    tx.slots.disarm(sched, Timer::B);
                    tx.slots.disarm(sched, Timer::C);
                    *state = ClientInviteState::Completed;
                    if let Some(bytes) = tx
                        .request
                        .as_ref()
                        .and_then(|r| build::ack_for_non_2xx(r, &response).ok())
                    {
                        *ack = Some(bytes.clone());
                        transmit(&mut self.out, &tx.target, bytes, id);
                    }
                    if tx.reliable {
                        fate = Fate::Ends;
                    } else {
                        tx.slots.arm_in(sched, Timer::D, now, t.timer_d);
                    }
                }
                // RFC 6026 §8.4: "2xx / 2xx to TU" in Accepted (2xx
                // retransmissions and forked 2xx responses). A 2xx from
                // another fork after a non-2xx (Completed) also goes up: it
                // creates a dialog the TU must ACK (RFC 3261 §13.2.2.4).
                (ClientInviteState::Accepted | ClientInviteState::Completed, 200..=299) => {}
                (ClientInviteState::Completed, 300..=699) => {
                    // RFC 3261 §17.1.1.2: a retransmitted final gets the
                    // ACK again and is not passed up.
                    to_tu = false;
                    if let Some(bytes) = ack {
                        transmit(&mut self.out, &tx.target, bytes.clone(), id);
                    }
                }
                _ => to_tu = false,
            },
            Machine::ClientNonInvite {
                state,
                request: sent,
            } => match (*state, code) {
                (ClientNonInviteState::Trying | ClientNonInviteState::Proceeding, 100..=199) => {
                    // RFC 3261 §17.1.2.2: to Proceeding (Timer E keeps
                    // running; it will fire every T2).
                    *state = ClientNonInviteState::Proceeding;
                }
                (ClientNonInviteState::Trying | ClientNonInviteState::Proceeding, 200..=699) => {
                    // RFC 3261 §17.1.2.2: to Completed; Timer K = T4
                    // unreliable, zero reliable.
                    tx.slots.disarm(sched, Timer::E);
                    tx.slots.disarm(sched, Timer::F);
                    *state = ClientNonInviteState::Completed;
                    // Completed only absorbs retransmitted responses: the
                    // request (a copy and its bytes) is freed now, by the
                    // thread that has just touched it, not T4 later.
                    tx.request = None;
                    *sent = Bytes::new();
                    if tx.reliable {
                        fate = Fate::Ends;
                    } else {
                        tx.slots.arm_in(sched, Timer::K, now, t.t4);
                    }
                }
                // Completed absorbs retransmissions.
                _ => to_tu = false,
            },
            // Server transactions are not in the client table.
            Machine::ServerInvite { .. } | Machine::ServerNonInvite { .. } => to_tu = false,
        }
        if to_tu {
            self.out
                .push_back(Output::Event(Event::Response { key, response }));
        }
        self.settle(id, fate);
        Ok(())
    }

    fn handle_request(
        &mut self,
        now: Instant,
        request: Message,
        source: Target<A>,
    ) -> Result<(), Error> {
        let method = request
            .method()
            .ok_or(Error::WrongKind {
                expected: "request",
            })?
            .clone();
        let via = request.top_via()?;
        request.cseq()?;
        // RFC 3261 §17.2.3: magic-cookie branch + sent-by + method, or the
        // RFC 2543 rules.
        let (by_branch, found) = match self.servers.find(via, &method) {
            Found::Transaction(id) => (true, Some(id)),
            Found::Nothing => (true, None),
            Found::NoBranch => (
                false,
                self.find_legacy(&request, &method, LegacyLookup::Same)?,
            ),
        };
        if let Some(id) = found {
            self.server_retransmission(now, id, request, &method, source);
            return Ok(());
        }
        if method == Method::Ack {
            // An ACK creates no transaction (RFC 3261 §17.2.3): the ACK for
            // a 2xx goes to the TU.
            self.out.push_back(Output::Event(Event::Ack {
                key: None,
                request,
                source,
            }));
            return Ok(());
        }
        let index = if by_branch {
            Index::Server(self.servers.pending_key())
        } else {
            Index::Legacy(LegacyKey::of(&request)?)
        };
        if self.len() >= self.config.max_transactions {
            self.out.push_back(Output::Event(Event::Refused(Refusal {
                request,
                source,
                retry_after: self.config.retry_after,
            })));
            return Ok(());
        }
        let cancels = if method == Method::Cancel {
            self.find_cancelled(&request)?
        } else {
            None
        };
        let id = self.alloc_id();
        let t = self.config.timers;
        let reliable = source.transport.is_reliable();
        let mut tx = Tx {
            target: source.clone(),
            reliable,
            // A non-INVITE matched by branch needs its request for nothing
            // (retransmissions are matched by the key, answered with the
            // last response): not copied. An INVITE's builds the 100
            // Trying; an RFC 2543 request's is its key.
            request: if method == Method::Invite || matches!(index, Index::Legacy(_)) {
                Some(Box::new(request.clone()))
            } else {
                None
            },
            slots: Slots::new(id),
            interval: t.t1(),
            index,
            machine: if method == Method::Invite {
                Machine::ServerInvite {
                    state: ServerInviteState::Proceeding,
                    last: None,
                    to_tag: None,
                }
            } else {
                Machine::ServerNonInvite {
                    state: ServerNonInviteState::Trying,
                    last: None,
                }
            },
        };
        if method == Method::Invite {
            // RFC 3261 §17.2.1: 100 Trying unless the TU answers within
            // 200 ms.
            match t.trying_delay {
                Some(d) if d.is_zero() => {
                    if let Ok(bytes) = build::trying(&request) {
                        if let Machine::ServerInvite { last, .. } = &mut tx.machine {
                            *last = Some(bytes.clone());
                        }
                        transmit(&mut self.out, &tx.target, bytes, id);
                    }
                }
                Some(d) => tx
                    .slots
                    .arm_in(&mut self.schedule, Timer::Trying100, now, d),
                None => {}
            }
            if let Some(c) = t.timer_c {
                tx.slots.arm_in(&mut self.schedule, Timer::TuGuard, now, c);
            }
        } else {
            tx.slots
                .arm_in(&mut self.schedule, Timer::TuGuard, now, t.t1x64());
        }
        match &tx.index {
            Index::Server(_) => self.servers.insert(id),
            Index::Legacy(k) => self.legacy.entry(k.clone()).or_default().push(id),
            Index::Client(_) => {}
        }
        self.txs.insert(id, Box::new(tx));
        self.out.push_back(Output::Event(Event::Request {
            key: TransactionKey(id),
            request,
            source,
            cancels,
        }));
        Ok(())
    }

    /// A request matched a live server transaction: a retransmission, or
    /// the ACK of an INVITE (RFC 3261 §17.2.1, §17.2.2; RFC 6026 §8.7).
    fn server_retransmission(
        &mut self,
        now: Instant,
        id: u64,
        request: Message,
        method: &Method,
        source: Target<A>,
    ) {
        let t = self.config.timers;
        let Some(tx) = self.txs.get_mut(&id) else {
            // RFC 3261 §17.2.2: a retransmission in Completed: "the most
            // recently sent ... final response MUST be passed to the
            // transport layer for retransmission".
            if let Some((target, last)) = self.completed.get(id) {
                let (target, last) = (target.clone(), last.clone());
                transmit(&mut self.out, &target, last, id);
            }
            return;
        };
        let sched = &mut self.schedule;
        let mut fate = Fate::Lives;
        let mut resend = None;
        match &mut tx.machine {
            Machine::ServerInvite { state, last, .. } => match (*state, method) {
                (ServerInviteState::Completed, Method::Ack) => {
                    // RFC 3261 §17.2.1: ACK in Completed: to Confirmed,
                    // Timer G stops, Timer I = T4 unreliable, zero reliable.
                    tx.slots.disarm(sched, Timer::G);
                    tx.slots.disarm(sched, Timer::H);
                    *state = ServerInviteState::Confirmed;
                    if tx.reliable {
                        fate = Fate::Ends;
                    } else {
                        tx.slots.arm_in(sched, Timer::I, now, t.t4);
                    }
                }
                (ServerInviteState::Accepted, Method::Ack) => {
                    // RFC 6026 §8.7: "ACK / to TU" in Accepted.
                    self.out.push_back(Output::Event(Event::Ack {
                        key: Some(TransactionKey(id)),
                        request,
                        source,
                    }));
                }
                // Confirmed absorbs ACKs; an ACK before any final response
                // is meaningless and dropped.
                (_, Method::Ack) => {}
                // RFC 3261 §17.2.1: INVITE retransmission in Proceeding or
                // Completed: resend the latest response (none if the TU has
                // not answered yet).
                (ServerInviteState::Proceeding | ServerInviteState::Completed, _) => {
                    resend = last.clone();
                }
                // RFC 6026 §8.7: absorbed in Accepted (the TU retransmits
                // its 2xx); absorbed in Confirmed.
                _ => {}
            },
            Machine::ServerNonInvite { state, last } => match state {
                // RFC 3261 §17.2.2: retransmissions in Trying are discarded.
                ServerNonInviteState::Trying => {}
                // "...the most recently sent provisional/final response MUST
                // be passed to the transport layer for retransmission".
                _ => resend = last.clone(),
            },
            Machine::ClientInvite { .. } | Machine::ClientNonInvite { .. } => {}
        }
        if let Some(bytes) = resend {
            transmit(&mut self.out, &tx.target, bytes, id);
        }
        self.settle(id, fate);
    }

    /// RFC 2543 fallback lookup (RFC 3261 §17.2.3).
    fn find_legacy(
        &self,
        request: &Message,
        method: &Method,
        lookup: LegacyLookup,
    ) -> Result<Option<u64>, Error> {
        let key = LegacyKey::of(request)?;
        let Some(ids) = self.legacy.get(&key) else {
            return Ok(None);
        };
        Ok(ids.iter().copied().find(|id| {
            self.txs.get(id).is_some_and(|tx| {
                let to_tag = match &tx.machine {
                    Machine::ServerInvite { to_tag, .. } => to_tag.as_deref(),
                    _ => None,
                };
                tx.request
                    .as_ref()
                    .is_some_and(|r| legacy_matches(request, method, r, to_tag, lookup))
            })
        }))
    }

    /// RFC 3261 §9.2: the INVITE server transaction a CANCEL cancels: the
    /// one the CANCEL would match by §17.2.3 if its method were INVITE.
    fn find_cancelled(&mut self, cancel: &Message) -> Result<Option<TransactionKey>, Error> {
        let via = cancel.top_via()?;
        let id = match self.servers.peek(via, &Method::Invite) {
            Found::Transaction(id) => Some(id),
            Found::Nothing => None,
            Found::NoBranch => {
                self.find_legacy(cancel, &Method::Cancel, LegacyLookup::Cancelled)?
            }
        };
        Ok(id
            .filter(|id| {
                self.txs
                    .get(id)
                    .is_some_and(|tx| matches!(tx.machine, Machine::ServerInvite { .. }))
            })
            .map(TransactionKey))
    }

    fn fire(&mut self, now: Instant, id: u64, timer: Timer) {
        use ClientInviteState as CI;
        use ClientNonInviteState as CN;
        use ServerInviteState as SI;
        use ServerNonInviteState as SN;
        let t = self.config.timers;
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        let sched = &mut self.schedule;
        let fate = match (&mut tx.machine, timer) {
            (
                Machine::ClientInvite {
                    state: CI::Calling,
                    request,
                    ..
                },
                Timer::A,
            ) => {
                // RFC 3261 §17.1.1.2: retransmit, reset A to twice its
                // previous value (no cap: Timer B ends it).
                transmit(&mut self.out, &tx.target, request.clone(), id);
                tx.interval = tx.interval.saturating_mul(2);
                tx.slots.arm_in(sched, Timer::A, now, tx.interval);
                Fate::Lives
            }
            (
                Machine::ClientInvite {
                    state: CI::Calling, ..
                },
                Timer::B,
            ) => Fate::TimedOut(Timer::B),
            (
                Machine::ClientInvite {
                    state: CI::Proceeding,
                    ..
                },
                Timer::C,
            ) => Fate::TimedOut(Timer::C),
            (
                Machine::ClientInvite {
                    state: CI::Completed,
                    ..
                },
                Timer::D,
            ) => Fate::Ends,
            // RFC 6026 §8.4: Timer M fires in Accepted: Terminated.
            (
                Machine::ClientInvite {
                    state: CI::Accepted,
                    ..
                },
                Timer::M,
            ) => Fate::Ends,
            (Machine::ClientNonInvite { state, request }, Timer::E) if *state != CN::Completed => {
                // RFC 3261 §17.1.2.2: retransmit; in Trying the interval
                // doubles up to T2, in Proceeding it is T2.
                transmit(&mut self.out, &tx.target, request.clone(), id);
                tx.interval = if *state == CN::Trying {
                    tx.interval.saturating_mul(2).min(t.t2())
                } else {
                    t.t2()
                };
                tx.slots.arm_in(sched, Timer::E, now, tx.interval);
                Fate::Lives
            }
            (Machine::ClientNonInvite { state, .. }, Timer::F) if *state != CN::Completed => {
                Fate::TimedOut(Timer::F)
            }
            (
                Machine::ClientNonInvite {
                    state: CN::Completed,
                    ..
                },
                Timer::K,
            ) => Fate::Ends,
            (
                Machine::ServerInvite {
                    state: SI::Proceeding,
                    last,
                    ..
                },
                Timer::Trying100,
            ) => {
                if last.is_none() {
                    if let Some(Ok(bytes)) = tx.request.as_deref().map(build::trying) {
                        *last = Some(bytes.clone());
                        transmit(&mut self.out, &tx.target, bytes, id);
                    }
                }
                Fate::Lives
            }
            (
                Machine::ServerInvite {
                    state: SI::Proceeding,
                    ..
                },
                Timer::TuGuard,
            ) => Fate::TimedOut(Timer::TuGuard),
            (
                Machine::ServerInvite {
                    state: SI::Completed,
                    last,
                    ..
                },
                Timer::G,
            ) => {
                // RFC 3261 §17.2.1: resend the final; G = min(2G, T2).
                if let Some(bytes) = last {
                    transmit(&mut self.out, &tx.target, bytes.clone(), id);
                }
                tx.interval = tx.interval.saturating_mul(2).min(t.t2());
                tx.slots.arm_in(sched, Timer::G, now, tx.interval);
                Fate::Lives
            }
            // RFC 3261 §17.2.1: no ACK before Timer H: Terminated, and the
            // TU is told (§17.2.4 calls it a transaction failure).
            (
                Machine::ServerInvite {
                    state: SI::Completed,
                    ..
                },
                Timer::H,
            ) => Fate::TimedOut(Timer::H),
            (
                Machine::ServerInvite {
                    state: SI::Confirmed,
                    ..
                },
                Timer::I,
            ) => Fate::Ends,
            // RFC 6026 §8.7: Timer L fires in Accepted: Terminated.
            (
                Machine::ServerInvite {
                    state: SI::Accepted,
                    ..
                },
                Timer::L,
            ) => Fate::Ends,
            (Machine::ServerNonInvite { state, .. }, Timer::TuGuard) if *state != SN::Completed => {
                Fate::TimedOut(Timer::TuGuard)
            }
            (
                Machine::ServerNonInvite {
                    state: SN::Completed,
                    ..
                },
                Timer::J,
            ) => Fate::Ends,
            _ => Fate::Lives,
        };
        self.settle(id, fate);
    }

    /// Applies a step's decision: reports a timeout, and removes a
    /// terminated transaction from every table.
    fn settle(&mut self, id: u64, fate: Fate) {
        let key = TransactionKey(id);
        match fate {
            Fate::Lives => return,
            Fate::TimedOut(timer) => {
                let response = self
                    .txs
                    .get(&id)
                    .filter(|tx| tx.machine.state().is_client())
                    .and_then(|tx| build::timeout_response(tx.request.as_deref()?));
                self.out.push_back(Output::Event(Event::Timeout {
                    key,
                    timer,
                    response,
                }));
            }
            Fate::Ends => {}
        }
        let Some(mut tx) = self.txs.remove(&id) else {
            return;
        };
        tx.slots.clear(&mut self.schedule);
        match tx.index {
            Index::Client(k) => {
                if self.clients.get(&k) == Some(&id) {
                    self.clients.remove(&k);
                }
            }
            Index::Server(k) => self.forget_server_key(k, id),
            Index::Legacy(k) => {
                if let Some(ids) = self.legacy.get_mut(&k) {
                    ids.retain(|&x| x != id);
                    if ids.is_empty() {
                        self.legacy.remove(&k);
                    }
                }
            }
        }
        self.out.push_back(Output::Event(Event::Terminated { key }));
    }
}
