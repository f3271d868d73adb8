//! The shard core: one transaction layer and its transaction user behind
//! one lock, run to completion by whichever thread holds the input.
//!
//! A message read by a UDP receive thread (or a TCP connection task) is
//! parsed there, and that same thread locks the shard that owns it
//! ([`crate::shard_of`]), runs the transaction layer, hands the layer's
//! events to the TU *synchronously* ([`TransactionUser::on_event`]),
//! carries out what the TU sends through [`Io`], and, after releasing the
//! lock, sends the datagrams. No queue, task or thread hand-off sits
//! between the socket and the TU: at load a receive thread never sleeps,
//! and one message costs one lock.
//!
//! What cannot finish at once leaves the lock and comes back through a
//! [`ShardHandle`]: a connection being opened (its queued messages are
//! flushed when it is up), a DNS lookup or a database commit of the TU's.
//! Each shard has a timer task that sleeps until the earlier of the
//! layer's and the TU's next deadline.

use crate::batch::{self, Datagram};
use crate::flow::{ConnId, Flow};
use crate::shard::shard_of;
use crate::stats::StatsSnapshot;
use crate::transport::{connect_tcp, Shared};
use crate::via::{response_destination, set_sent_by, set_sent_by_and_mark};
use crate::Error;
use bytes::Bytes;
use habla_message::Message;
use habla_transaction::{
    Config, Event, Output, Target, TransactionKey, TransactionLayer, Transmit, Transport,
};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};

/// Where the TU wants a request (or a stateless message) to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Destination {
    /// Over an existing flow (the connection a request came on, a
    /// registered client's flow). If the flow is a closed connection, a new
    /// connection to its remote address is opened.
    Flow(Flow),
    /// To a transport address. TCP reuses an open connection to that
    /// address (one we opened or one the peer opened) or opens one; UDP
    /// goes from a listening socket of the same address family, or over
    /// TCP when the request is too large (RFC 3261 §18.1.1).
    Address(Transport, SocketAddr),
}

impl From<Flow> for Destination {
    fn from(f: Flow) -> Self {
        Destination::Flow(f)
    }
}

impl From<Target<Flow>> for Destination {
    fn from(t: Target<Flow>) -> Self {
        Destination::Flow(t.addr)
    }
}

/// The transaction user (RFC 3261 §5: the layer above the transactions),
/// called synchronously, under its shard's lock, by whichever thread
/// brought the input. It must not block: anything slow (a DNS lookup, a
/// disk write) is started elsewhere and comes back through the shard's
/// [`ShardHandle`].
pub trait TransactionUser: Send + 'static {
    /// An event of this shard's transaction layer: act on it through `io`.
    /// Requests the driver refuses itself (no room, waited too long) never
    /// come here: they are answered 503.
    fn on_event(&mut self, event: Event<Flow>, io: &mut Io<'_>);

    /// The TU's own next deadline (a proxy's Timer C, say), if any.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Called once the clock reaches [`TransactionUser::poll_timeout`].
    fn handle_timeout(&mut self, _now: Instant, _io: &mut Io<'_>) {}
}

/// What a [`TransactionUser`] acts through while it holds its shard: the
/// shard's transaction layer and transports.
pub struct Io<'a> {
    net: &'a mut Net,
}

impl Io<'_> {
    pub(crate) fn net(&mut self) -> &mut Net {
        self.net
    }

    /// The number of this shard.
    pub fn shard(&self) -> usize {
        self.net.shard
    }

    /// Starts a client transaction (RFC 3261 §17.1) for `request` and sends
    /// it towards `dest`. The request's top Via must carry a fresh RFC 3261
    /// branch (see `habla_transaction::new_branch`); the transport rewrites
    /// its transport token and sent-by (§18.1.1), keeping its parameters.
    /// Responses come back as [`Event::Response`] with the returned key, a
    /// timeout as [`Event::Timeout`]. A request that needs a connection
    /// opened gets its key at once; it is sent when the connection is up,
    /// and if it cannot be opened the TU hears [`Event::TransportError`].
    pub fn send_request(
        &mut self,
        request: Message,
        dest: impl Into<Destination>,
    ) -> Result<TransactionKey, Error> {
        self.net
            .route_request(request, dest.into(), true)?
            // `route_request` starts a transaction when asked to.
            .ok_or(Error::Stopped)
    }

    /// Sends a response in the server transaction `key` (from
    /// [`Event::Request`]). It goes where RFC 3261 §18.2.2 says: over the
    /// request's connection for streams (a new connection to the
    /// `received` address and sent-by port if that one closed), to the
    /// `received`/`rport` address for UDP.
    pub fn send_response(&mut self, key: TransactionKey, response: Message) -> Result<(), Error> {
        self.net.send_response(key, response)
    }

    /// [`Io::send_response`] for a response held as bytes, with status
    /// `code` (e.g. one made by `ResponseBuilder::to_bytes`): it is not
    /// parsed again.
    pub fn send_response_bytes(
        &mut self,
        key: TransactionKey,
        code: u16,
        bytes: Bytes,
    ) -> Result<(), Error> {
        self.net.send_response_bytes(key, code, bytes)
    }

    /// Sends a message outside any transaction: the ACK for a 2xx
    /// (RFC 3261 §13.2.2.4), a stateless proxy's forward. A request gets
    /// the same Via and transport treatment as [`Io::send_request`]; a
    /// response goes by §18.2.2 over `dest`'s flow.
    pub fn send_stateless(
        &mut self,
        message: Message,
        dest: impl Into<Destination>,
    ) -> Result<(), Error> {
        self.net.send_stateless(message, dest.into())
    }

    /// Ends a transaction now (a TU giving up). Whether it was live.
    pub fn terminate(&mut self, key: TransactionKey) -> bool {
        self.net.layer.terminate(key)
    }

    /// The transport counters (of the whole element, every shard).
    pub fn stats(&self) -> StatsSnapshot {
        self.net.shared.stats.snapshot()
    }
}

/// A way back into one shard from outside its lock (a spawned task, a
/// database thread): [`ShardHandle::with`] locks the shard and runs a
/// closure on its TU with an [`Io`]; [`ShardHandle::send_response_bytes`]
/// sends a response, batched per shard inside a [`crate::batch`]. Cheap
/// to clone; it does not keep the element alive.
pub struct ShardHandle<U> {
    shard: Weak<Shard<U>>,
    index: usize,
}

impl<U> Clone for ShardHandle<U> {
    fn clone(&self) -> Self {
        ShardHandle {
            shard: self.shard.clone(),
            index: self.index,
        }
    }
}

impl<U> std::fmt::Debug for ShardHandle<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ShardHandle({})", self.index)
    }
}

impl<U: TransactionUser> ShardHandle<U> {
    /// Runs `f` on the shard's TU, then everything it caused, and sends
    /// what it sent. `None` when the element has stopped.
    pub fn with<R>(&self, f: impl FnOnce(&mut U, &mut Io<'_>) -> R) -> Option<R> {
        let shard = self.shard.upgrade()?;
        if shard.shared.is_closed() {
            return None;
        }
        Some(shard.run(|tu, net| f(tu, &mut Io { net })))
    }

    /// Sends `bytes`, a response with status `code`, in transaction `key`
    /// of this shard (as [`Io::send_response_bytes`]). Inside a
    /// [`crate::batch`], it goes when the batch closes, together with the
    /// batch's other responses for the shard, under one lock of it; else
    /// at once. Nothing when the element has stopped.
    pub fn send_response_bytes(&self, key: TransactionKey, code: u16, bytes: Bytes) {
        let Some(shard) = self.shard.upgrade() else {
            return;
        };
        let response = batch::Response {
            shard,
            key,
            code,
            bytes,
        };
        if let Some(r) = batch::respond(response) {
            let shard = r.shard.clone();
            shard.respond_all(&mut std::iter::once(r));
        }
    }

    /// The number of the shard.
    pub fn index(&self) -> usize {
        self.index
    }
}

/// The finest a shard's timer task divides time under load: deadlines
/// closer than this to its last wake-up wait for the next (RFC 3261's
/// timers count in half seconds; 20 ms late is 4% of T1). A proxy
/// relaying 2,000 MESSAGEs a second has a Timer K ending every 0.5 ms:
/// waking every 5 ms cost it 0.5 wake-ups and ~5 µs per MESSAGE.
const TIMER_GRANULARITY: Duration = Duration::from_millis(20);

/// The longest a shard's timer task sleeps before looking at its
/// deadline again (see [`Shard::wake_at`]).
const TIMER_MAX_SLEEP: Duration = Duration::from_millis(50);

/// How late a shard's timer task lets Timer J end completed non-INVITE
/// server transactions ([`TransactionLayer::poll_timeout_coalesced`]): at
/// 10,000 requests a second a wake per 100 ms ends a thousand at once,
/// where one per [`TIMER_GRANULARITY`] cost more in waking than in ending.
const TIMER_J_SLACK: Duration = Duration::from_millis(100);

/// When a shard's timer task wakes for `deadline`, having last fired at
/// `fired`: at most once per [`TIMER_GRANULARITY`] (a busy server has a
/// deadline every few microseconds, Timer J ending every answered UDP
/// request, and waking for each cost more than the expiries), and on time
/// for a timer after a quiet spell.
fn next_wake(deadline: Instant, fired: Option<Instant>) -> Instant {
    match fired {
        Some(f) => deadline.max(f + TIMER_GRANULARITY),
        None => deadline,
    }
}

impl<U: TransactionUser> batch::Respond for Shard<U> {
    fn respond_all(&self, list: &mut dyn Iterator<Item = batch::Response>) {
        if self.shared.is_closed() {
            return;
        }
        self.run(|_, net| {
            for r in list {
                if let Err(e) = net.send_response_bytes(r.key, r.code, r.bytes) {
                    tracing::debug!("response not sent: {e}");
                }
            }
        });
    }
}

/// One shard: its state behind a lock, and the timer that wakes it.
pub(crate) struct Shard<U> {
    index: usize,
    state: Mutex<State<U>>,
    shared: Arc<Shared>,
    /// Wakes the timer task when a deadline earlier than
    /// [`Shard::wake_at`] appears.
    timer: Notify,
    /// The earliest deadline, in nanoseconds since `shared.epoch`
    /// (`u64::MAX`: none). Written under the lock.
    armed: AtomicU64,
    /// When the timer task next looks at `armed` (same unit; `u64::MAX`:
    /// only when notified). It never sleeps longer than
    /// [`TIMER_MAX_SLEEP`], so a deadline armed later than that needs no
    /// wake-up: a proxy arms Timer E (500 ms) for every request it
    /// forwards, and waking the task for each cost more than the request.
    wake_at: AtomicU64,
}

struct State<U> {
    tu: U,
    net: Net,
}

/// A shard's transport side: its transaction layer and what the TU's sends
/// need. Lives under the shard's lock.
pub(crate) struct Net {
    layer: TransactionLayer<Flow>,
    shared: Arc<Shared>,
    shard: usize,
    /// Whether branches are marked with the shard number (more than one).
    mark: bool,
    /// Connections this shard is opening, by (transport, remote address):
    /// the flow they will have and what waits to go over them.
    connecting: HashMap<(Transport, SocketAddr), Connecting>,
    /// Datagrams to send once the lock is released.
    out: Vec<Datagram>,
    /// Where the responses of a UDP server transaction go when that is not
    /// where its request came from (RFC 3261 §18.2.2: a client without
    /// `rport` whose sent-by port is not its source port, or `maddr`).
    /// Worked out once from the request, so that no response is parsed
    /// again to find it; the usual client is not in here.
    respond_elsewhere: HashMap<TransactionKey, SocketAddr, habla_transaction::CounterHash>,
}

/// A connection being opened, and what waits for it.
struct Connecting {
    flow: Flow,
    queued: Vec<(Bytes, Option<TransactionKey>)>,
    /// Requests moved from UDP by the size rule (RFC 3261 §18.1.1), to be
    /// sent over UDP instead if the connection cannot be opened.
    udp_fallback: Vec<(TransactionKey, Message, Flow)>,
}

/// Every shard of an element: what the network tasks deliver to.
pub(crate) struct Shards<U> {
    pub(crate) list: Vec<Arc<Shard<U>>>,
    pub(crate) shared: Arc<Shared>,
    /// The Retry-After of overload answers, in seconds.
    pub(crate) retry_after: u32,
}

impl<U> Shards<U> {
    /// Answers a new request that waited longer than `max_queue_delay` in
    /// the socket 503 + Retry-After (RFC 3261 §21.5.4) without a
    /// transaction or a shard's lock: under overload the cheapest answer
    /// is the best (a retransmission gets another one), and handling stale
    /// requests while their retransmissions pile up is how servers
    /// collapse.
    fn shed(&self, request: &Message, flow: Flow) {
        let shared = &self.shared;
        shared.count(&shared.stats.overload_rejections);
        let Ok(bytes) = request
            .response(503)
            .header("Retry-After", &self.retry_after.to_string())
            .to_bytes()
        else {
            return;
        };
        if flow.is_stream() {
            if shared.conns.try_send(flow.conn, bytes).is_err() {
                shared.count(&shared.stats.send_failures);
            }
            return;
        }
        let Some(socket) = shared.udp.iter().find(|(l, _)| *l == flow.local) else {
            return;
        };
        let to = match request.top_via() {
            Ok(v) => response_destination(v, flow.remote),
            Err(_) => flow.remote,
        };
        let mut out = vec![Datagram {
            socket: socket.1.clone(),
            to,
            bytes,
            failed: None,
        }];
        batch::batch(|| batch::add(&mut out));
    }
}

/// How the network tasks hand over what arrives, without knowing the TU.
pub(crate) trait Inbound: Send + Sync + 'static {
    /// A parsed message (requests carry `received`/`rport`) read from
    /// `flow` at `received`: run it on the shard that owns it.
    fn message(&self, message: Message, flow: Flow, received: Instant);
    /// A connection shard `shard` asked for is open (`Ok`, registered in
    /// the connection registry) or could not be opened.
    fn connected(
        &self,
        shard: usize,
        transport: Transport,
        remote: SocketAddr,
        result: Result<Flow, std::io::Error>,
    );
    /// A datagram of transaction `key` of shard `shard` could not be sent
    /// (RFC 3261 §17.1.4, §17.2.4).
    fn transport_error(&self, shard: usize, key: TransactionKey);
}

impl<U: TransactionUser> Inbound for Shards<U> {
    fn message(&self, message: Message, flow: Flow, received: Instant) {
        let waited = received.elapsed();
        if waited > self.shared.config.max_queue_delay && sheddable(&message) {
            tracing::debug!(%flow, ?waited, "overload: new request answered 503");
            return self.shed(&message, flow);
        }
        let s = shard_of(&message, self.list.len());
        self.list[s].run(|_, net| net.handle_message(message, flow));
    }

    fn connected(
        &self,
        shard: usize,
        transport: Transport,
        remote: SocketAddr,
        result: Result<Flow, std::io::Error>,
    ) {
        if let Some(s) = self.list.get(shard) {
            s.run(|_, net| net.connected(transport, remote, result));
        }
    }

    fn transport_error(&self, shard: usize, key: TransactionKey) {
        if let Some(s) = self.list.get(shard) {
            s.run(|_, net| net.layer.handle_transport_error(Instant::now(), key));
        }
    }
}

impl<U: TransactionUser> Shard<U> {
    pub(crate) fn new(
        index: usize,
        count: usize,
        config: Config,
        shared: Arc<Shared>,
        make_tu: impl FnOnce(ShardHandle<U>) -> U,
    ) -> Arc<Shard<U>> {
        Arc::new_cyclic(|weak| Shard {
            index,
            state: Mutex::new(State {
                tu: make_tu(ShardHandle {
                    shard: weak.clone(),
                    index,
                }),
                net: Net {
                    layer: TransactionLayer::new(config),
                    shared: shared.clone(),
                    shard: index,
                    mark: count > 1,
                    connecting: HashMap::new(),
                    out: Vec::new(),
                    respond_elsewhere: HashMap::default(),
                },
            }),
            shared,
            timer: Notify::new(),
            armed: AtomicU64::new(u64::MAX),
            wake_at: AtomicU64::new(u64::MAX),
        })
    }

    pub(crate) fn handle(self: &Arc<Self>) -> ShardHandle<U> {
        ShardHandle {
            shard: Arc::downgrade(self),
            index: self.index,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<U>> {
        // A TU that panicked leaves its state as it was: carry on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the shard's state, then the TU on every event that
    /// caused (until none is left), re-arms the timer, and sends the
    /// datagrams once the lock is released.
    pub(crate) fn run<R>(&self, f: impl FnOnce(&mut U, &mut Net) -> R) -> R {
        self.run_and_rearm(f, false)
    }

    /// [`Shard::run`]; with `exact` (the timer task, which alone may move
    /// the armed deadline later) the timer is set to the next deadline
    /// whatever it was.
    fn run_and_rearm<R>(&self, f: impl FnOnce(&mut U, &mut Net) -> R, exact: bool) -> R {
        // The lock is released before the batch closes: the datagrams go out
        // with no shard locked.
        batch::batch(|| {
            let mut guard = self.lock();
            let st = &mut *guard;
            let r = f(&mut st.tu, &mut st.net);
            st.drain();
            self.rearm(st, exact);
            batch::add(&mut st.net.out);
            r
        })
    }

    /// After any change: the earlier of the layer's and the TU's
    /// deadlines; the timer task is woken only when it must wake sooner.
    fn rearm(&self, st: &State<U>, exact: bool) {
        let layer = st.net.layer.poll_timeout_coalesced(TIMER_J_SLACK);
        let next = match (layer, st.tu.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let at = next.map_or(u64::MAX, |t| self.shared.nanos(t));
        if exact {
            self.armed.store(at, Ordering::SeqCst);
        } else if at < self.armed.load(Ordering::SeqCst) {
            self.armed.store(at, Ordering::SeqCst);
            // (SeqCst with the task's store of `wake_at` and load of
            // `armed`: one of the two sees the other's write.)
            if at < self.wake_at.load(Ordering::SeqCst) {
                self.timer.notify_one();
            }
        }
    }

    /// The timer task: sleeps until the armed deadline (or an earlier one
    /// is announced), then fires what is due.
    pub(crate) async fn run_timers(self: Arc<Self>) {
        let mut fired: Option<Instant> = None;
        loop {
            if self.shared.is_closed() {
                return;
            }
            // Created before `armed` is read: a notification from then on
            // is kept for it.
            let notified = self.timer.notified();
            let at = self.armed.load(Ordering::SeqCst);
            let wake = (at != u64::MAX).then(|| {
                let due = next_wake(self.shared.instant(at), fired);
                due.min(Instant::now() + TIMER_MAX_SLEEP)
            });
            self.wake_at.store(
                wake.map_or(u64::MAX, |w| self.shared.nanos(w)),
                Ordering::SeqCst,
            );
            if self.armed.load(Ordering::SeqCst) < at {
                // An earlier deadline came meanwhile.
                continue;
            }
            let Some(wake) = wake else {
                notified.await;
                continue;
            };
            tokio::select! {
                _ = notified => continue,
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            let now = Instant::now();
            if self.shared.instant(self.armed.load(Ordering::SeqCst)) > now {
                // Woke to look again (TIMER_MAX_SLEEP), nothing due yet.
                continue;
            }
            fired = Some(now);
            self.fire();
        }
    }

    fn fire(&self) {
        self.run_and_rearm(
            |tu, net| {
                let now = Instant::now();
                if net.layer.poll_timeout().is_some_and(|t| t <= now) {
                    net.layer.handle_timeout(now);
                }
                if tu.poll_timeout().is_some_and(|t| t <= now) {
                    tu.handle_timeout(now, &mut Io { net });
                }
            },
            true,
        );
    }
}

impl<U: TransactionUser> State<U> {
    /// Carries the layer's outputs out: datagrams into the outbox,
    /// connection writes at once, events to the TU (which may send more).
    fn drain(&mut self) {
        while let Some(out) = self.net.layer.poll_output() {
            match out {
                Output::Transmit(t) => self.net.transmit(t),
                Output::Event(e) => {
                    self.net.track(&e);
                    if let Some(e) = self.net.admit(e) {
                        self.tu.on_event(e, &mut Io { net: &mut self.net });
                    }
                }
            }
        }
    }
}

fn is_response(bytes: &[u8]) -> bool {
    bytes.starts_with(b"SIP/")
}

impl Net {
    // ----- inputs -----------------------------------------------------------

    fn handle_message(&mut self, message: Message, flow: Flow) {
        let now = Instant::now();
        let target = Target::new(flow.transport, flow);
        if let Err(e) = self.layer.handle_message(now, message, target) {
            self.shared.count(&self.shared.stats.unmatchable);
            tracing::debug!(%flow, "message dropped: {e}");
        }
    }

    fn connected(
        &mut self,
        transport: Transport,
        remote: SocketAddr,
        result: Result<Flow, std::io::Error>,
    ) {
        let Some(c) = self.connecting.remove(&(transport, remote)) else {
            return;
        };
        match result {
            Ok(flow) => {
                for (bytes, key) in c.queued {
                    self.write_stream(flow, bytes, key);
                }
            }
            Err(error) => {
                tracing::debug!(%remote, "connect failed: {error}");
                let now = Instant::now();
                let moved: Vec<TransactionKey> =
                    c.udp_fallback.iter().map(|(k, _, _)| *k).collect();
                for (key, mut request, udp) in c.udp_fallback {
                    // RFC 3261 §18.1.1: "...the element SHOULD retry the
                    // request, using UDP".
                    let token = udp.transport.token();
                    let result = set_sent_by_and_mark(
                        &mut request,
                        token,
                        self.sent_by(&udp),
                        self.mark.then_some(self.shard),
                    )
                    .map_err(Error::from)
                    .and_then(|()| {
                        self.layer
                            .retarget(now, key, request, Target::new(udp.transport, udp))
                            .map_err(Error::from)
                    });
                    if let Err(e) = result {
                        tracing::debug!("cannot fall back to UDP: {e}");
                        self.layer.handle_transport_error(now, key);
                    }
                }
                for (_, key) in c.queued {
                    // The requests moved back to UDP are not lost.
                    if key.is_none_or(|k| !moved.contains(&k)) {
                        self.send_failed(key);
                    }
                }
            }
        }
    }

    /// Lets an event through to the TU, or answers it here: a request the
    /// layer refused for lack of room is answered 503 + Retry-After
    /// (RFC 3261 §21.5.4) by the transport itself; under overload the TU is
    /// the busiest part and could add nothing.
    fn admit(&mut self, event: Event<Flow>) -> Option<Event<Flow>> {
        match event {
            Event::Refused(r) => {
                self.shared.count(&self.shared.stats.overload_rejections);
                if let Ok(bytes) = r.response() {
                    self.layer.send_stateless(r.source, bytes);
                }
                None
            }
            e => Some(e),
        }
    }

    /// Answers a new request 503 with Retry-After (overload).
    pub(crate) fn overload_503(&mut self, key: TransactionKey, request: &Message) {
        self.shared.count(&self.shared.stats.overload_rejections);
        let retry = self.layer.config().retry_after.to_string();
        if let Ok(resp) = request.response(503).header("Retry-After", &retry).build() {
            let _ = self.send_response(key, resp);
        }
    }

    pub(crate) fn count_dropped_event(&self) {
        self.shared.count(&self.shared.stats.events_dropped);
    }

    // ----- commands ---------------------------------------------------------

    fn send_response(&mut self, key: TransactionKey, response: Message) -> Result<(), Error> {
        self.layer
            .send_response(Instant::now(), key, response)
            .map_err(Error::from)
    }

    fn send_response_bytes(
        &mut self,
        key: TransactionKey,
        code: u16,
        bytes: Bytes,
    ) -> Result<(), Error> {
        self.layer
            .send_response_bytes(Instant::now(), key, code, bytes)
            .map_err(Error::from)
    }

    /// Notes where the responses of a new UDP server transaction go, if
    /// not to the request's source (see `respond_elsewhere`), and forgets
    /// it when the transaction ends.
    fn track(&mut self, event: &Event<Flow>) {
        match event {
            Event::Request {
                key,
                request,
                source,
                ..
            } if !source.addr.is_stream() => {
                if let Ok(via) = request.top_via() {
                    let to = response_destination(via, source.addr.remote);
                    if to != source.addr.remote {
                        self.respond_elsewhere.insert(*key, to);
                    }
                }
            }
            Event::Terminated { key } if !self.respond_elsewhere.is_empty() => {
                self.respond_elsewhere.remove(key);
            }
            _ => {}
        }
    }

    fn send_stateless(&mut self, message: Message, dest: Destination) -> Result<(), Error> {
        if message.is_request() {
            return self.route_request(message, dest, false).map(|_| ());
        }
        let flow = match dest {
            Destination::Flow(f) => f,
            Destination::Address(t, a) => self.flow_to(t, a).ok_or(Error::NoRoute(t, a))?,
        };
        self.layer
            .send_stateless(Target::new(flow.transport, flow), message.to_bytes());
        Ok(())
    }

    // ----- routing ------------------------------------------------------------

    /// A flow to `addr` that exists now, without connecting: the UDP socket
    /// of the right family, or an open connection.
    fn flow_to(&self, transport: Transport, addr: SocketAddr) -> Option<Flow> {
        match transport {
            Transport::Udp => self.udp_socket_for(addr).map(|(local, _)| Flow {
                transport,
                local,
                remote: addr,
                conn: ConnId::DATAGRAM,
            }),
            _ => self.shared.conns.by_remote(transport, addr),
        }
    }

    /// The UDP socket to send to `addr` from: same family, loopback to
    /// loopback preferred.
    fn udp_socket_for(&self, addr: SocketAddr) -> Option<(SocketAddr, Arc<UdpSocket>)> {
        let same_family = |l: &SocketAddr| l.is_ipv4() == addr.is_ipv4();
        let scope_ok = |l: &SocketAddr| {
            l.ip().is_unspecified() || l.ip().is_loopback() == addr.ip().is_loopback()
        };
        let udp = &self.shared.udp;
        udp.iter()
            .find(|(l, _)| same_family(l) && scope_ok(l))
            .or_else(|| udp.iter().find(|(l, _)| same_family(l)))
            .map(|(l, s)| (*l, s.clone()))
    }

    fn udp_socket_at(&self, local: SocketAddr) -> Option<&Arc<UdpSocket>> {
        self.shared
            .udp
            .iter()
            .find(|(l, _)| *l == local)
            .map(|(_, s)| s)
    }

    /// The sent-by for requests on `flow` (RFC 3261 §18.1.1): the listening
    /// address, so that responses and new connections come back to it.
    fn sent_by(&self, flow: &Flow) -> SocketAddr {
        let mut ip = flow.local.ip();
        if ip.is_unspecified() {
            ip = local_ip_towards(flow.remote).unwrap_or(ip);
        }
        let port = match flow.transport {
            Transport::Udp => flow.local.port(),
            _ => self.tcp_port(flow.local.is_ipv4(), flow.local.port()),
        };
        SocketAddr::new(ip, port)
    }

    fn tcp_port(&self, ipv4: bool, default: u16) -> u16 {
        self.shared
            .tcp
            .iter()
            .find(|l| l.is_ipv4() == ipv4)
            .map_or(default, |l| l.port())
    }

    /// Sends a request: in a new client transaction (`transaction`; its
    /// key is returned) or statelessly.
    fn route_request(
        &mut self,
        mut request: Message,
        dest: Destination,
        transaction: bool,
    ) -> Result<Option<TransactionKey>, Error> {
        let (transport, addr) = match dest {
            Destination::Flow(f) if !f.is_stream() || self.shared.conns.contains(f.conn) => {
                return self.send_request_on(request, f, transaction);
            }
            Destination::Flow(f) => (f.transport, f.remote),
            Destination::Address(t, a) => (t, a),
        };
        match transport {
            Transport::Udp => {
                let flow = self
                    .flow_to(Transport::Udp, addr)
                    .ok_or(Error::NoRoute(transport, addr))?;
                // RFC 3261 §18.1.1: measure the request as it would go out.
                set_sent_by(&mut request, "UDP", self.sent_by(&flow))?;
                if request.to_bytes().len() <= self.shared.config.udp_request_limit() {
                    return self.send_request_on(request, flow, transaction);
                }
                // "...MUST be sent using an RFC 2914 congestion controlled
                // transport protocol, such as TCP."
                self.shared.count(&self.shared.stats.udp_to_tcp);
                if let Some(tcp) = self.flow_to(Transport::Tcp, addr) {
                    return self.send_request_on(request, tcp, transaction);
                }
                let tcp = self.connecting_flow(Transport::Tcp, addr);
                let fallback = request.clone();
                let key = self.send_request_on(request, tcp, transaction)?;
                if let (Some(k), Some(c)) = (key, self.connecting.get_mut(&(Transport::Tcp, addr)))
                {
                    c.udp_fallback.push((k, fallback, flow));
                }
                Ok(key)
            }
            Transport::Tcp => {
                let flow = match self.flow_to(Transport::Tcp, addr) {
                    Some(f) => f,
                    None => self.connecting_flow(Transport::Tcp, addr),
                };
                self.send_request_on(request, flow, transaction)
            }
            other => Err(Error::Unsupported(other)),
        }
    }

    /// The flow of the connection to `addr` this shard is opening (opening
    /// it now if it is not yet). Its local address is the listening one
    /// until the connection is up; what is sent to it waits until then.
    fn connecting_flow(&mut self, transport: Transport, addr: SocketAddr) -> Flow {
        if let Some(c) = self.connecting.get(&(transport, addr)) {
            return c.flow;
        }
        let local_ip = local_ip_towards(addr).unwrap_or(if addr.is_ipv4() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        });
        let flow = Flow {
            transport,
            local: SocketAddr::new(local_ip, self.tcp_port(addr.is_ipv4(), 0)),
            remote: addr,
            conn: self.shared.next_conn_id(),
        };
        self.connecting.insert(
            (transport, addr),
            Connecting {
                flow,
                queued: Vec::new(),
                udp_fallback: Vec::new(),
            },
        );
        tokio::spawn(connect_tcp(
            addr,
            flow.conn,
            self.shard,
            self.shared.clone(),
            self.shared.inbound(),
        ));
        flow
    }

    fn send_request_on(
        &mut self,
        mut request: Message,
        flow: Flow,
        transaction: bool,
    ) -> Result<Option<TransactionKey>, Error> {
        // A client transaction's branch names this shard, so that its
        // responses are dispatched here (stateless sends get no answer).
        let mark = (self.mark && transaction).then_some(self.shard);
        let token = flow.transport.token();
        set_sent_by_and_mark(&mut request, token, self.sent_by(&flow), mark)?;
        let target = Target::new(flow.transport, flow);
        if transaction {
            let key = self.layer.send_request(Instant::now(), request, target)?;
            Ok(Some(key))
        } else {
            self.layer.send_stateless(target, request.to_bytes());
            Ok(None)
        }
    }

    // ----- output -------------------------------------------------------------

    fn transmit(&mut self, t: Transmit<Flow>) {
        let Transmit {
            destination,
            bytes,
            key,
        } = t;
        let flow = destination.addr;
        if !flow.is_stream() {
            let to = if !is_response(&bytes) {
                flow.remote
            } else if let Some(k) = key {
                // A server transaction's response (§18.2.2).
                self.respond_elsewhere
                    .get(&k)
                    .copied()
                    .unwrap_or(flow.remote)
            } else {
                udp_response_destination(&bytes, flow.remote)
            };
            let socket = self
                .udp_socket_at(flow.local)
                .cloned()
                .or_else(|| self.udp_socket_for(to).map(|(_, s)| s));
            match socket {
                Some(socket) => {
                    let failed = key.map(|k| (self.shared.inbound_weak(), self.shard, k));
                    self.out.push(Datagram {
                        socket,
                        to,
                        bytes,
                        failed,
                    })
                }
                None => self.send_failed(key),
            }
            return;
        }
        if self
            .connecting
            .get(&(flow.transport, flow.remote))
            .is_some_and(|c| c.flow.conn == flow.conn)
        {
            return self.queue_for_connection((flow.transport, flow.remote), bytes, key);
        }
        let bytes = match self.shared.conns.try_send(flow.conn, bytes) {
            Ok(()) => return,
            // The write queue is full: the peer does not keep up.
            Err(mpsc::error::TrySendError::Full(_)) => return self.send_failed(key),
            // The connection is gone (or going).
            Err(mpsc::error::TrySendError::Closed(b)) => b,
        };
        if is_response(&bytes) {
            // RFC 3261 §18.2.2: "If the connection is no longer open, the
            // server SHOULD open a connection to the IP address in the
            // received parameter ... using the port in the sent-by value".
            let to = stream_response_destination(&bytes, flow.remote);
            let flow = match self.flow_to(flow.transport, to) {
                Some(f) => f,
                None => self.connecting_flow(flow.transport, to),
            };
            match self.connecting.get(&(flow.transport, to)) {
                Some(c) if c.flow.conn == flow.conn => {
                    self.queue_for_connection((flow.transport, to), bytes, key)
                }
                _ => self.write_stream(flow, bytes, key),
            }
        } else {
            self.send_failed(key);
        }
    }

    /// Keeps what is to go over a connection being opened, as many
    /// messages as a connection's write queue holds (beyond: the send
    /// fails, as it would on an open connection that does not keep up).
    fn queue_for_connection(
        &mut self,
        to: (Transport, SocketAddr),
        bytes: Bytes,
        key: Option<TransactionKey>,
    ) {
        let limit = self.shared.config.write_queue.max(1);
        match self.connecting.get_mut(&to) {
            Some(c) if c.queued.len() < limit => c.queued.push((bytes, key)),
            _ => self.send_failed(key),
        }
    }

    fn write_stream(&mut self, flow: Flow, bytes: Bytes, key: Option<TransactionKey>) {
        if self.shared.conns.try_send(flow.conn, bytes).is_err() {
            self.send_failed(key);
        }
    }

    fn send_failed(&mut self, key: Option<TransactionKey>) {
        self.shared.count(&self.shared.stats.send_failures);
        if let Some(k) = key {
            self.layer.handle_transport_error(Instant::now(), k);
        }
    }
}

/// Whether a request may be refused under overload: a new one (no To tag:
/// not in a dialog), not CANCEL or ACK (they end what is already going on).
fn sheddable(request: &Message) -> bool {
    !matches!(
        request.method(),
        Some(habla_message::Method::Cancel | habla_message::Method::Ack)
    ) && request.to().is_ok_and(|t| t.tag().is_none())
}

/// §18.2.2 for datagrams, from the response's top Via (for a response the
/// layer resends by itself: its retransmissions).
fn udp_response_destination(bytes: &Bytes, fallback: SocketAddr) -> SocketAddr {
    match Message::parse_lazy(bytes.clone(), &habla_message::Limits::default()) {
        Ok(m) => match m.top_via() {
            Ok(v) => response_destination(v, fallback),
            Err(_) => fallback,
        },
        Err(_) => fallback,
    }
}

/// §18.2.2 for a stream whose connection closed: the `received` address
/// (else the old peer's) and the sent-by port (else 5060).
fn stream_response_destination(bytes: &Bytes, old: SocketAddr) -> SocketAddr {
    let via = Message::parse_lazy(bytes.clone(), &habla_message::Limits::default())
        .ok()
        .and_then(|m| {
            m.top_via().ok().map(|v| {
                let ip = v
                    .received()
                    .and_then(|r| r.trim_matches(['[', ']']).parse::<IpAddr>().ok())
                    .unwrap_or(old.ip());
                SocketAddr::new(ip, v.port().unwrap_or(5060))
            })
        });
    via.unwrap_or(old)
}

/// The local address the system would use towards `remote` (for a sent-by
/// when listening on an unspecified address). No packet is sent.
fn local_ip_towards(remote: SocketAddr) -> Option<IpAddr> {
    let any = if remote.is_ipv4() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
    } else {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
    };
    let s = UdpSocket::bind(any).ok()?;
    s.connect(remote).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

impl Shared {
    /// `at` as nanoseconds since the element's epoch (0 if earlier).
    pub(crate) fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// The instant `nanos` after the epoch.
    pub(crate) fn instant(&self, nanos: u64) -> Instant {
        self.epoch
            .checked_add(Duration::from_nanos(nanos))
            .unwrap_or(self.epoch + Duration::from_secs(86_400 * 365))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_wake_at_most_once_per_granularity_and_on_time_after_a_quiet_spell() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // First wake, and one long after the last: on time.
        assert_eq!(next_wake(t0 + ms(1), None), t0 + ms(1));
        assert_eq!(next_wake(t0 + ms(500), Some(t0)), t0 + ms(500));
        // Deadlines right after a wake wait for the granularity.
        assert_eq!(next_wake(t0 + ms(1), Some(t0)), t0 + TIMER_GRANULARITY);
        assert_eq!(next_wake(t0, Some(t0)), t0 + TIMER_GRANULARITY);
        // A deadline passed long ago, right after a wake: the same.
        assert_eq!(
            next_wake(t0, Some(t0 + ms(100))),
            t0 + ms(100) + TIMER_GRANULARITY
        );
    }
}
