//! Starting an element — sockets, receive threads, shards, timer tasks —
//! and the channel-based [`Endpoint`] built on it for transaction users
//! that prefer to receive events from a channel in a task of their own
//! (the user agent, tests) over being called in place.

use crate::core::{Inbound, Io, Shard, ShardHandle, Shards, TransactionUser};
use crate::flow::Flow;
use crate::stats::StatsSnapshot;
use crate::transport::{run_tcp_listener, run_udp, wake_udp, Shared, UdpHelpers};
use crate::{Destination, Error, ListenPoint, TransportConfig};
use habla_message::Message;
use habla_transaction::{Config, Event, TransactionKey, Transport};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How many receive threads and shards an element runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Receive threads per UDP socket (they also run the shards' work).
    pub threads: usize,
    /// Shards: lock domains, each with its own transaction layer and TU.
    /// More shards than threads make it rare that two threads want the
    /// same shard at once.
    pub shards: usize,
}

impl Layout {
    /// `threads` receive threads per UDP socket (0: one per available
    /// core) and four shards per thread.
    pub fn per_core(threads: usize) -> Layout {
        let threads = if threads == 0 {
            default_shards()
        } else {
            threads
        };
        Layout {
            threads,
            shards: threads * 4,
        }
    }
}

/// One per available core.
pub fn default_shards() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A running SIP element: the listening sockets, the receive threads and
/// connection tasks, and the shards — each a `TransactionLayer<Flow>` and a
/// [`TransactionUser`] of type `U` behind one lock — with their timers.
///
/// Every message is run to completion by the thread that received it:
/// parse, transaction layer, TU, send (see [`TransactionUser`]). Messages
/// go to the shard that owns their transaction ([`crate::shard_of`]).
/// Dropping the element stops it; [`Element::shutdown`] also waits for
/// the receive threads.
pub struct Element<U> {
    shards: Arc<Shards<U>>,
    points: Vec<ListenPoint>,
    running: Arc<Running>,
}

impl<U> std::fmt::Debug for Element<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Element")
            .field("points", &self.points)
            .field("shards", &self.shards.list.len())
            .finish()
    }
}

impl<U: TransactionUser> Element<U> {
    /// Binds every listening point of `config`, makes the TU of each shard
    /// with `make_tu` (given the shard's handle, to come back to it from
    /// other tasks, and the bound listening points), and starts. Each shard's transaction layer gets
    /// `transactions` with `max_transactions` divided among the shards.
    /// Fails if any point cannot be bound (nothing keeps running then).
    pub async fn bind(
        config: TransportConfig,
        transactions: Config,
        layout: Layout,
        make_tu: impl FnMut(ShardHandle<U>, &[ListenPoint]) -> U,
    ) -> Result<Element<U>, Error> {
        let (shards, points, running) = start(config, transactions, layout, make_tu).await?;
        Ok(Element {
            shards,
            points,
            running,
        })
    }

    /// The bound listening points (with the ports picked for port 0).
    pub fn listening_points(&self) -> &[ListenPoint] {
        &self.points
    }

    /// The first listening address of a transport.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        local_addr(&self.points, transport)
    }

    /// The number of shards.
    pub fn len(&self) -> usize {
        self.shards.list.len()
    }

    /// Always false: an element has at least one shard.
    pub fn is_empty(&self) -> bool {
        self.shards.list.is_empty()
    }

    /// The handle of every shard, in order.
    pub fn shards(&self) -> Vec<ShardHandle<U>> {
        self.shards.list.iter().map(|s| s.handle()).collect()
    }

    /// The transport counters (of every shard).
    pub fn stats(&self) -> StatsSnapshot {
        self.running.shared.stats.snapshot()
    }

    /// Stops: closes every socket and connection, stops the timers, and
    /// waits (bounded) for the receive threads to return.
    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

fn local_addr(points: &[ListenPoint], transport: Transport) -> Option<SocketAddr> {
    points
        .iter()
        .find(|p| p.transport == transport)
        .map(|p| p.addr)
}

/// What runs for an element, stopped when the last owner drops it.
struct Running {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Each UDP socket's address and number of receive threads, to wake
    /// them when stopping.
    udp_threads: Vec<(SocketAddr, usize)>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").finish_non_exhaustive()
    }
}

impl Running {
    fn stop(&self) {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        for t in &self.tasks {
            t.abort();
        }
        // Dropping every connection's write queue closes the connections.
        self.shared.conns.clear();
        for (local, n) in &self.udp_threads {
            wake_udp(*local, *n);
        }
    }

    async fn shutdown(&self) {
        self.stop();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        if threads.is_empty() {
            return;
        }
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        });
        let _ = tokio::time::timeout(Duration::from_secs(3), joined).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds the listening points, makes the shards and starts the receive
/// threads, the connection acceptors and the shards' timers.
async fn start<U: TransactionUser>(
    config: TransportConfig,
    transactions: Config,
    layout: Layout,
    mut make_tu: impl FnMut(ShardHandle<U>, &[ListenPoint]) -> U,
) -> Result<(Arc<Shards<U>>, Vec<ListenPoint>, Arc<Running>), Error> {
    let threads = layout.threads.max(1);
    let n = layout.shards.max(1);
    let mut udp = Vec::new();
    let mut tcp = Vec::new();
    let mut points = Vec::new();
    for p in &config.listen {
        match p.transport {
            Transport::Udp => {
                let s = std::net::UdpSocket::bind(p.addr)?;
                // A safety net for stopping: the receive threads are woken
                // by a datagram, and look at the clock at least this often.
                s.set_read_timeout(Some(Duration::from_secs(1)))?;
                // Room for bursts (the kernel caps both at its maxima; a
                // refusal leaves its default, which still works).
                use nix::sys::socket::{setsockopt, sockopt};
                let _ = setsockopt(&s, sockopt::RcvBuf, &config.udp_receive_buffer);
                let _ = setsockopt(&s, sockopt::SndBuf, &config.udp_send_buffer);
                let local = s.local_addr()?;
                points.push(ListenPoint::new(Transport::Udp, local));
                udp.push((local, Arc::new(s)));
            }
            Transport::Tcp => {
                // Port 0 next to a UDP point on the same IP: take the
                // UDP port when it is free, so that a request moved from
                // UDP to TCP (§18.1.1) reaches the same port.
                let same = udp
                    .iter()
                    .find(|(l, _)| p.addr.port() == 0 && l.ip() == p.addr.ip())
                    .map(|(l, _)| *l);
                let l = match same {
                    Some(a) => match TcpListener::bind(a).await {
                        Ok(l) => l,
                        Err(_) => TcpListener::bind(p.addr).await?,
                    },
                    None => TcpListener::bind(p.addr).await?,
                };
                let local = l.local_addr()?;
                points.push(ListenPoint::new(Transport::Tcp, local));
                tcp.push((local, l));
            }
            other => return Err(Error::Unsupported(other)),
        }
    }
    let mut transactions = transactions;
    if n > 1 {
        transactions.max_transactions = transactions.max_transactions.div_ceil(n).max(1);
    }
    let shared = Arc::new(Shared::new(
        config,
        udp.clone(),
        tcp.iter().map(|(a, _)| *a).collect(),
    ));
    let list: Vec<Arc<Shard<U>>> = (0..n)
        .map(|i| Shard::new(i, n, transactions, shared.clone(), |h| make_tu(h, &points)))
        .collect();
    let shards = Arc::new(Shards {
        list,
        shared: shared.clone(),
        retry_after: transactions.retry_after,
    });
    let inbound: Arc<dyn Inbound> = shards.clone();
    let weak: Weak<dyn Inbound> = Arc::downgrade(&inbound);
    shared.set_inbound(weak);
    let mut tasks = Vec::new();
    for s in &shards.list {
        tasks.push(tokio::spawn(s.clone().run_timers()));
    }
    for (_, l) in tcp {
        tasks.push(tokio::spawn(run_tcp_listener(
            l,
            shared.clone(),
            inbound.clone(),
        )));
    }
    let runtime = tokio::runtime::Handle::current();
    let mut handles = Vec::new();
    let mut udp_threads = Vec::new();
    for (local, socket) in &udp {
        let helpers = Arc::new(UdpHelpers::default());
        for t in 0..threads {
            let (socket, local, shared, inbound, runtime, helpers) = (
                socket.clone(),
                *local,
                shared.clone(),
                inbound.clone(),
                runtime.clone(),
                helpers.clone(),
            );
            let spawned = std::thread::Builder::new()
                .name(format!("habla-udp-{}-{t}", local.port()))
                .spawn(move || run_udp(socket, local, shared, inbound, runtime, helpers, t == 0));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    abort_start(&shards.shared, &tasks);
                    return Err(Error::Io(e));
                }
            }
        }
        udp_threads.push((*local, threads));
    }
    let running = Arc::new(Running {
        shared,
        tasks,
        threads: Mutex::new(handles),
        udp_threads,
    });
    Ok((shards, points, running))
}

fn abort_start(shared: &Shared, tasks: &[JoinHandle<()>]) {
    shared.closed.store(true, Ordering::Release);
    for t in tasks {
        t.abort();
    }
}

// ----- the channel-based endpoint -------------------------------------------

/// The TU of an [`Endpoint`]: passes every event into a bounded channel
/// without ever waiting. When the channel is full (its reader falls
/// behind) a new request is answered 503 with Retry-After and other events
/// are dropped (counted).
#[derive(Debug)]
pub struct ChannelUser {
    events: mpsc::Sender<Event<Flow>>,
}

impl TransactionUser for ChannelUser {
    fn on_event(&mut self, event: Event<Flow>, io: &mut Io<'_>) {
        let event = match self.events.try_send(event) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(e) | mpsc::error::TrySendError::Closed(e)) => e,
        };
        match event {
            Event::Request { key, request, .. } => io.net().overload_503(key, &request),
            _ => io.net().count_dropped_event(),
        }
    }
}

/// A cheap, cloneable handle for an [`Endpoint`]'s transaction user to send
/// through its shard (for a [`ShardedEndpoint`]: the client transactions it
/// starts live on that shard, and their responses come back to that
/// shard's events). Each call takes the shard's lock briefly and returns
/// once the message is sent (or queued on a connection being opened).
#[derive(Clone)]
pub struct Handle {
    shard: ShardHandle<ChannelUser>,
    running: Arc<Running>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Handle(shard {})", self.shard.index())
    }
}

impl Handle {
    fn with<R>(&self, f: impl FnOnce(&mut Io<'_>) -> Result<R, Error>) -> Result<R, Error> {
        self.shard.with(|_, io| f(io)).ok_or(Error::Stopped)?
    }

    /// Starts a client transaction (RFC 3261 §17.1) for `request` and sends
    /// it towards `dest`: see [`Io::send_request`].
    pub async fn send_request(
        &self,
        request: Message,
        dest: impl Into<Destination>,
    ) -> Result<TransactionKey, Error> {
        let dest = dest.into();
        self.with(|io| io.send_request(request, dest))
    }

    /// Sends a response in the server transaction `key` (from
    /// [`Event::Request`]): see [`Io::send_response`].
    pub async fn send_response(&self, key: TransactionKey, response: Message) -> Result<(), Error> {
        self.respond(key, response)
    }

    /// [`Handle::send_response`] from any thread, without a runtime (e.g. a
    /// database writer answering once a change is durable).
    pub fn respond(&self, key: TransactionKey, response: Message) -> Result<(), Error> {
        self.with(|io| io.send_response(key, response))
    }

    /// Sends a message outside any transaction: see [`Io::send_stateless`].
    pub async fn send_stateless(
        &self,
        message: Message,
        dest: impl Into<Destination>,
    ) -> Result<(), Error> {
        let dest = dest.into();
        self.with(|io| io.send_stateless(message, dest))
    }

    /// Ends a transaction now (a TU giving up).
    pub async fn terminate(&self, key: TransactionKey) -> Result<(), Error> {
        self.with(|io| {
            io.terminate(key);
            Ok(())
        })
    }

    /// The transport counters (of the whole endpoint, every shard).
    pub fn stats(&self) -> StatsSnapshot {
        self.running.shared.stats.snapshot()
    }

    /// The number of the shard this handle sends through (0 for an
    /// unsharded [`Endpoint`]).
    pub fn shard(&self) -> usize {
        self.shard.index()
    }
}

/// A running SIP endpoint whose transaction user receives events from a
/// channel: listening sockets, receive threads, one shard, and the channel
/// of events.
///
/// ```no_run
/// use habla_tokio::{Endpoint, Event, TransportConfig};
/// # async fn run() -> Result<(), habla_tokio::Error> {
/// let cfg = TransportConfig::udp_and_tcp("127.0.0.1:5060".parse().unwrap());
/// let mut ep = Endpoint::bind(cfg, Default::default()).await?;
/// let handle = ep.handle();
/// while let Some(event) = ep.recv().await {
///     if let Event::Request { key, request, .. } = event {
///         let response = request.response(501).build().expect("valid");
///         handle.send_response(key, response).await?;
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Endpoint {
    handle: Handle,
    events: mpsc::Receiver<Event<Flow>>,
    points: Vec<ListenPoint>,
}

impl Endpoint {
    /// Binds every listening point of `config` and starts one shard with a
    /// transaction layer configured by `transactions` (one receive thread
    /// per UDP socket). Fails if any point cannot be bound.
    ///
    /// See [`ShardedEndpoint`] for several shards, and [`Element`] for a
    /// TU called in place.
    pub async fn bind(config: TransportConfig, transactions: Config) -> Result<Endpoint, Error> {
        let mut shards = start_channels(config, transactions, 1).await?;
        Ok(shards.remove(0))
    }

    /// The bound listening points (with the ports picked for port 0).
    pub fn listening_points(&self) -> &[ListenPoint] {
        &self.points
    }

    /// The first listening address of a transport.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        local_addr(&self.points, transport)
    }

    /// A handle to send requests and responses.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// The next event for the transaction user: [`Event::Request`] (answer
    /// with [`Handle::send_response`]), [`Event::Response`] and
    /// [`Event::Timeout`] for requests sent, [`Event::Ack`] for ACKs of 2xx,
    /// [`Event::StrayResponse`], [`Event::TransportError`],
    /// [`Event::Terminated`]. `None` once the endpoint has stopped. (A
    /// request refused for overload never comes here: it is answered 503
    /// with Retry-After.)
    pub async fn recv(&mut self) -> Option<Event<Flow>> {
        self.events.recv().await
    }

    /// The event channel itself (to move it into a TU task).
    pub fn events(&mut self) -> &mut mpsc::Receiver<Event<Flow>> {
        &mut self.events
    }

    /// The transport counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.handle.stats()
    }

    /// Stops the endpoint (every shard of it, for a [`ShardedEndpoint`]'s
    /// shard): closes every socket and connection and waits for the
    /// receive threads. (Dropping the endpoint and every [`Handle`] stops
    /// it too, without waiting.)
    pub async fn shutdown(self) {
        self.handle.running.shutdown().await;
    }
}

/// A channel-based endpoint whose transaction work is split over several
/// shards behind the same listening sockets, one [`Endpoint`] (events
/// channel and [`Handle`]) per shard: messages go to the shard that owns
/// their transaction ([`crate::shard_of`]), so a TU running one task per
/// shard (`into_shards`) sees every message of the transactions it
/// started or answers.
///
/// ```no_run
/// use habla_tokio::{Event, ShardedEndpoint, TransportConfig};
/// # async fn run() -> Result<(), habla_tokio::Error> {
/// let cfg = TransportConfig::udp_and_tcp("127.0.0.1:5060".parse().unwrap());
/// let ep = ShardedEndpoint::bind(cfg, Default::default(), 0).await?;
/// for mut shard in ep.into_shards() {
///     tokio::spawn(async move {
///         let handle = shard.handle();
///         while let Some(Event::Request { key, request, .. }) = shard.recv().await {
///             let response = request.response(501).build().expect("valid");
///             let _ = handle.send_response(key, response).await;
///         }
///     });
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ShardedEndpoint {
    shards: Vec<Endpoint>,
    count: usize,
    points: Vec<ListenPoint>,
    running: Arc<Running>,
}

impl ShardedEndpoint {
    /// Binds every listening point of `config` and starts `shards` shards
    /// (0: one per available core), with as many receive threads per UDP
    /// socket. Each shard's transaction layer gets `transactions` with
    /// `max_transactions` divided among the shards (rounded up); the
    /// channel capacity of `config` applies per shard.
    pub async fn bind(
        config: TransportConfig,
        transactions: Config,
        shards: usize,
    ) -> Result<ShardedEndpoint, Error> {
        let n = if shards == 0 {
            default_shards()
        } else {
            shards
        };
        let shards = start_channels(config, transactions, n).await?;
        let points = shards[0].points.clone();
        let running = shards[0].handle.running.clone();
        Ok(ShardedEndpoint {
            count: shards.len(),
            shards,
            points,
            running,
        })
    }

    /// The bound listening points (with the ports picked for port 0).
    pub fn listening_points(&self) -> &[ListenPoint] {
        &self.points
    }

    /// The first listening address of a transport.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        local_addr(&self.points, transport)
    }

    /// The number of shards started.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Always false: at least one shard is started.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The shards, to receive their events and send through their handles.
    pub fn shards_mut(&mut self) -> &mut [Endpoint] {
        &mut self.shards
    }

    /// The shards, one per transaction-user task.
    pub fn into_shards(self) -> Vec<Endpoint> {
        self.shards
    }

    /// Moves the shards out, keeping the addresses and counters here.
    pub fn take_shards(&mut self) -> Vec<Endpoint> {
        std::mem::take(&mut self.shards)
    }

    /// The transport counters (of every shard).
    pub fn stats(&self) -> StatsSnapshot {
        self.running.shared.stats.snapshot()
    }

    /// Stops every shard and waits for the receive threads.
    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

/// `n` channel-based shards behind the listening points of `config`.
async fn start_channels(
    config: TransportConfig,
    transactions: Config,
    n: usize,
) -> Result<Vec<Endpoint>, Error> {
    let event_queue = config.event_queue.max(1);
    let mut receivers = Vec::new();
    let (shards, points, running) = start(
        config,
        transactions,
        Layout {
            threads: n,
            shards: n,
        },
        |_, _| {
            let (tx, rx) = mpsc::channel(event_queue);
            receivers.push(rx);
            ChannelUser { events: tx }
        },
    )
    .await?;
    Ok(shards
        .list
        .iter()
        .zip(receivers)
        .map(|(s, events)| Endpoint {
            handle: Handle {
                shard: s.handle(),
                running: running.clone(),
            },
            events,
            points: points.clone(),
        })
        .collect())
}
