//! The driver task: owns the transaction layer, the sockets' send sides,
//! the connection registry and the timer; runs the drive loop of
//! `habla-transaction` and carries events to the transaction user.

use crate::flow::{ConnId, Flow};
use crate::shard::Dispatch;
use crate::stats::StatsSnapshot;
use crate::transport::{connect_tcp, run_tcp_listener, run_udp, Input, Shared};
use crate::via::{response_destination, set_sent_by, set_sent_by_and_mark};
use crate::{Error, ListenPoint, TransportConfig};
use bytes::Bytes;
use habla_message::Message;
use habla_transaction::{
    Config, Event, Output, Target, TransactionKey, TransactionLayer, Transmit, Transport,
};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

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

type Reply<T> = oneshot::Sender<Result<T, Error>>;

#[derive(Debug)]
enum Command {
    Request {
        request: Message,
        dest: Destination,
        reply: Reply<TransactionKey>,
    },
    Stateless {
        message: Message,
        dest: Destination,
        reply: Reply<()>,
    },
    Response {
        key: TransactionKey,
        response: Message,
        reply: Reply<()>,
    },
    Terminate {
        key: TransactionKey,
    },
    Shutdown,
}

/// A request waiting for its connection (or a response whose connection
/// closed, RFC 3261 §18.2.2). Short-lived and rare: size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Pending {
    Request {
        request: Message,
        reply: Option<Reply<TransactionKey>>,
        stateless: Option<Reply<()>>,
        /// Moved from UDP by the size rule: the UDP flow to fall back to
        /// when the connection cannot be opened (§18.1.1).
        udp_fallback: Option<Flow>,
    },
    Transmit {
        bytes: Bytes,
        key: Option<TransactionKey>,
    },
}

/// A cheap, cloneable handle for the transaction user to send through the
/// driver (one shard's driver, for a [`ShardedEndpoint`]: the client
/// transactions it starts live on that shard, and their responses come
/// back to that shard's events). Every method waits for the driver's
/// answer.
#[derive(Debug, Clone)]
pub struct Handle {
    cmd: mpsc::Sender<Command>,
    /// Responses sent without waiting ([`Handle::respond`]). Unbounded, yet
    /// bounded in practice: each is for a live server transaction of this
    /// shard (at most `max_transactions`), and a full queue must not lose a
    /// final response to a request whose effect (a stored binding) is done.
    responses: mpsc::UnboundedSender<(TransactionKey, Message)>,
    shared: Arc<Shared>,
    shard: usize,
}

impl Handle {
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(make(tx)).await.map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Starts a client transaction (RFC 3261 §17.1) for `request` and sends
    /// it towards `dest`. The request's top Via must carry a fresh RFC 3261
    /// branch (see `habla_transaction::new_branch`); the transport rewrites
    /// its transport token and sent-by (§18.1.1), keeping its parameters.
    /// Responses come back as [`Event::Response`] with the returned key;
    /// a timeout as [`Event::Timeout`]. For TCP the key is returned once the
    /// connection is open.
    pub async fn send_request(
        &self,
        request: Message,
        dest: impl Into<Destination>,
    ) -> Result<TransactionKey, Error> {
        let dest = dest.into();
        self.call(|reply| Command::Request {
            request,
            dest,
            reply,
        })
        .await
    }

    /// Sends a response in the server transaction `key` (from
    /// [`Event::Request`]). It goes where RFC 3261 §18.2.2 says: over the
    /// request's connection for streams (a new connection to the
    /// `received` address and sent-by port if that one closed), to the
    /// `received`/`rport` address for UDP.
    pub async fn send_response(&self, key: TransactionKey, response: Message) -> Result<(), Error> {
        self.call(|reply| Command::Response {
            key,
            response,
            reply,
        })
        .await
    }

    /// Like [`Handle::send_response`], without waiting for the driver: the
    /// response is queued and the caller goes on (it may be a plain thread,
    /// e.g. a database writer answering once a change is durable). A
    /// response the transaction layer refuses (unknown key, wrong state) is
    /// dropped and logged at debug level.
    pub fn respond(&self, key: TransactionKey, response: Message) -> Result<(), Error> {
        self.responses
            .send((key, response))
            .map_err(|_| Error::Stopped)
    }

    /// Sends a message outside any transaction: the ACK for a 2xx
    /// (RFC 3261 §13.2.2.4), a stateless proxy's forward. A request gets
    /// the same Via and transport treatment as [`Handle::send_request`]; a
    /// response goes by §18.2.2 over `dest`'s flow.
    pub async fn send_stateless(
        &self,
        message: Message,
        dest: impl Into<Destination>,
    ) -> Result<(), Error> {
        let dest = dest.into();
        self.call(|reply| Command::Stateless {
            message,
            dest,
            reply,
        })
        .await
    }

    /// Ends a transaction now (a TU giving up).
    pub async fn terminate(&self, key: TransactionKey) -> Result<(), Error> {
        self.cmd
            .send(Command::Terminate { key })
            .await
            .map_err(|_| Error::Stopped)
    }

    /// The transport counters (of the whole endpoint, every shard).
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The number of the driver shard this handle talks to (0 for an
    /// unsharded [`Endpoint`]).
    pub fn shard(&self) -> usize {
        self.shard
    }
}

/// A running SIP endpoint: listening sockets, the driver task, and the
/// channel of events for the transaction user.
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
    task: Option<JoinHandle<()>>,
}

impl Endpoint {
    /// Binds every listening point of `config` and starts the driver with
    /// a transaction layer configured by `transactions`. Fails if any point
    /// cannot be bound (nothing keeps running then).
    ///
    /// One driver task: see [`ShardedEndpoint`] to use several cores.
    pub async fn bind(config: TransportConfig, transactions: Config) -> Result<Endpoint, Error> {
        let mut shards = start(config, transactions, 1).await?;
        Ok(shards.remove(0))
    }

    /// The bound listening points (with the ports picked for port 0).
    pub fn listening_points(&self) -> &[ListenPoint] {
        &self.points
    }

    /// The first listening address of a transport.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.points
            .iter()
            .find(|p| p.transport == transport)
            .map(|p| p.addr)
    }

    /// A handle to send requests and responses.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// The next event for the transaction user: [`Event::Request`] (answer
    /// with [`Handle::send_response`]), [`Event::Response`] and
    /// [`Event::Timeout`] for requests sent, [`Event::Ack`] for ACKs of 2xx,
    /// [`Event::StrayResponse`], [`Event::TransportError`],
    /// [`Event::Terminated`]. `None` once the driver has stopped. (A request
    /// refused because `max_transactions` is reached never comes here: the
    /// driver answers it 503 with Retry-After itself.)
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

    /// Stops the driver: closes every socket and connection, and waits for
    /// it to finish. (Dropping the endpoint and every [`Handle`] stops it
    /// too, without waiting.)
    pub async fn shutdown(mut self) {
        let _ = self.handle.cmd.send(Command::Shutdown).await;
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// A SIP endpoint whose transaction work is split over several driver
/// shards (tasks, so the runtime spreads them over its worker threads),
/// all behind the same listening sockets.
///
/// Each shard is an [`Endpoint`] of its own: its own
/// `TransactionLayer<Flow>`, bounded input, command and event channels, and
/// [`Handle`]. The network tasks (several readers per UDP socket, one task
/// per TCP connection) parse what arrives and hand each message to the
/// shard that owns its transaction ([`crate::shard_of`]): requests by a
/// hash of the top Via branch (RFC 2543 requests: Call-ID, From tag, CSeq
/// number), responses by the shard mark a shard puts in the branch of
/// every request it sends. So a transaction user runs one task per shard
/// (`into_shards`), and what one shard's TU forwards, cancels or answers
/// stays on that shard. Any shard writes to any connection (a lock-striped
/// registry of per-connection write queues); there is no lock shared by
/// every message.
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
    shared: Arc<Shared>,
}

impl ShardedEndpoint {
    /// Binds every listening point of `config` and starts `shards` driver
    /// shards (0: one per available core). Each shard's transaction layer
    /// gets `transactions` with `max_transactions` divided among the shards
    /// (rounded up); the channel capacities of `config` apply per shard.
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
        let shards = start(config, transactions, n).await?;
        let points = shards[0].points.clone();
        let shared = shards[0].handle.shared.clone();
        Ok(ShardedEndpoint {
            count: shards.len(),
            shards,
            points,
            shared,
        })
    }

    /// The bound listening points (with the ports picked for port 0).
    pub fn listening_points(&self) -> &[ListenPoint] {
        &self.points
    }

    /// The first listening address of a transport.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.points
            .iter()
            .find(|p| p.transport == transport)
            .map(|p| p.addr)
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

    /// The shards, one per transaction-user task. The network tasks stop
    /// when every shard has stopped.
    pub fn into_shards(self) -> Vec<Endpoint> {
        self.shards
    }

    /// Moves the shards out, keeping the addresses and counters here.
    pub fn take_shards(&mut self) -> Vec<Endpoint> {
        std::mem::take(&mut self.shards)
    }

    /// The transport counters (of every shard).
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Stops every shard and waits for them.
    pub async fn shutdown(self) {
        for s in self.shards {
            s.shutdown().await;
        }
    }
}

/// One shard per available core.
pub fn default_shards() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Binds the listening points and starts `n` driver shards behind them.
async fn start(
    config: TransportConfig,
    transactions: Config,
    n: usize,
) -> Result<Vec<Endpoint>, Error> {
    let n = n.max(1);
    let mut udp = Vec::new();
    let mut tcp = Vec::new();
    let mut points = Vec::new();
    for p in &config.listen {
        match p.transport {
            Transport::Udp => {
                let s = UdpSocket::bind(p.addr).await?;
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
    let input_queue = config.input_queue.max(1);
    let event_queue = config.event_queue.max(1);
    let shared = Arc::new(Shared::new(config));
    let mut net_txs = Vec::new();
    let mut net_rxs = Vec::new();
    for _ in 0..n {
        let (tx, rx) = mpsc::channel(input_queue);
        net_txs.push(tx);
        net_rxs.push(rx);
    }
    let dispatch = Dispatch::new(net_txs.clone());
    let mut tasks = Vec::new();
    for (local, s) in &udp {
        // Several readers per socket: parsing runs on every core.
        for _ in 0..n {
            tasks.push(tokio::spawn(run_udp(
                s.clone(),
                *local,
                shared.clone(),
                dispatch.clone(),
            )));
        }
    }
    let mut tcp_points = Vec::new();
    for (local, l) in tcp {
        tcp_points.push(local);
        tasks.push(tokio::spawn(run_tcp_listener(
            l,
            shared.clone(),
            dispatch.clone(),
        )));
    }
    let net = Arc::new(NetTasks {
        tasks,
        shared: shared.clone(),
    });
    let mut endpoints = Vec::new();
    for (shard, (net_tx, net_rx)) in net_txs.into_iter().zip(net_rxs).enumerate() {
        let (event_tx, events) = mpsc::channel(event_queue);
        let (cmd_tx, cmd_rx) = mpsc::channel(input_queue);
        let (resp_tx, resp_rx) = mpsc::unbounded_channel();
        let driver = Driver {
            layer: TransactionLayer::new(transactions),
            shared: shared.clone(),
            shard,
            mark: n > 1,
            udp: udp.clone(),
            tcp: tcp_points.clone(),
            connecting: HashMap::new(),
            events: event_tx,
            net_tx,
            dispatch: dispatch.clone(),
            _net: net.clone(),
            late: false,
        };
        let task = tokio::spawn(driver.run(net_rx, cmd_rx, resp_rx));
        endpoints.push(Endpoint {
            handle: Handle {
                cmd: cmd_tx,
                responses: resp_tx,
                shared: shared.clone(),
                shard,
            },
            events,
            points: points.clone(),
            task: Some(task),
        });
    }
    Ok(endpoints)
}

/// The network tasks of an endpoint, shared by its shards: when the last
/// shard stops, the readers and acceptors are aborted and every connection
/// is closed (its write queue dropped).
#[derive(Debug)]
struct NetTasks {
    tasks: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Drop for NetTasks {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.shared
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.shared.conns.clear();
    }
}

struct Driver {
    layer: TransactionLayer<Flow>,
    shared: Arc<Shared>,
    /// This shard's number, and whether branches are marked with it (more
    /// than one shard).
    shard: usize,
    mark: bool,
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    tcp: Vec<SocketAddr>,
    /// Connections this shard is opening, and what waits for each.
    connecting: HashMap<(Transport, SocketAddr), Vec<Pending>>,
    events: mpsc::Sender<Event<Flow>>,
    /// This shard's own input (connection notices for its connects).
    net_tx: mpsc::Sender<Input>,
    dispatch: Dispatch,
    _net: Arc<NetTasks>,
    /// The message being handled waited longer than `max_queue_delay`: a
    /// new request it creates is answered 503 instead of delivered.
    late: bool,
}

fn via_token(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
        Transport::Tls => "TLS",
        Transport::Sctp => "SCTP",
        Transport::Ws => "WS",
        Transport::Wss => "WSS",
        _ => "UDP",
    }
}

fn is_response(bytes: &[u8]) -> bool {
    bytes.starts_with(b"SIP/")
}

impl Driver {
    async fn run(
        mut self,
        mut net_rx: mpsc::Receiver<Input>,
        mut cmd_rx: mpsc::Receiver<Command>,
        mut resp_rx: mpsc::UnboundedReceiver<(TransactionKey, Message)>,
    ) {
        // One timer entry, moved only when the layer's next deadline moves
        // (a new `Sleep` per message would register a timer each time).
        let sleep = tokio::time::sleep(std::time::Duration::from_secs(3600));
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        loop {
            let deadline = self.layer.poll_timeout();
            if deadline != armed {
                if let Some(at) = deadline {
                    sleep.as_mut().reset(tokio::time::Instant::from_std(at));
                }
                armed = deadline;
            }
            tokio::select! {
                biased;
                cmd = cmd_rx.recv() => match cmd {
                    Some(Command::Shutdown) | None => break,
                    Some(c) => self.command(c),
                },
                Some((key, response)) = resp_rx.recv() => {
                    if let Err(e) = self.layer.send_response(Instant::now(), key, response) {
                        tracing::debug!("response not sent: {e}");
                    }
                }
                Some(input) = net_rx.recv() => self.input(input),
                _ = &mut sleep, if deadline.is_some() => {
                    armed = None;
                    self.layer.handle_timeout(Instant::now());
                }
            }
            self.drain().await;
        }
        // Dropping the last shard's `NetTasks` stops the network tasks and
        // closes every connection.
    }

    // ----- inputs -----------------------------------------------------------

    fn input(&mut self, input: Input) {
        match input {
            Input::Message {
                message,
                flow,
                received,
            } => {
                self.late = received.elapsed() > self.shared.config.max_queue_delay;
                let target = Target::new(flow.transport, flow);
                if let Err(e) = self.layer.handle_message(Instant::now(), message, target) {
                    self.shared.count(&self.shared.stats.unmatchable);
                    tracing::debug!(%flow, "message dropped: {e}");
                }
            }
            Input::ConnUp { flow } => {
                if let Some(waiting) = self.connecting.remove(&(flow.transport, flow.remote)) {
                    for p in waiting {
                        self.send_pending_on(p, flow);
                    }
                }
            }
            Input::ConnectFailed {
                transport,
                remote,
                error,
            } => {
                tracing::debug!(%remote, "connect failed: {error}");
                for p in self
                    .connecting
                    .remove(&(transport, remote))
                    .unwrap_or_default()
                {
                    match p {
                        Pending::Request {
                            request,
                            reply,
                            stateless,
                            udp_fallback: Some(flow),
                        } => {
                            // RFC 3261 §18.1.1: retry over UDP.
                            self.send_request_on(request, flow, reply, stateless);
                        }
                        Pending::Request {
                            reply, stateless, ..
                        } => {
                            let e = || Error::Connect(remote, error.kind());
                            if let Some(r) = reply {
                                let _ = r.send(Err(e()));
                            }
                            if let Some(r) = stateless {
                                let _ = r.send(Err(e()));
                            }
                        }
                        Pending::Transmit { key, .. } => self.send_failed(key),
                    }
                }
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Request {
                request,
                dest,
                reply,
            } => self.route_request(request, dest, Some(reply), None),
            Command::Stateless {
                message,
                dest,
                reply,
            } => {
                if message.is_request() {
                    self.route_request(message, dest, None, Some(reply));
                } else {
                    let flow = match dest {
                        Destination::Flow(f) => f,
                        Destination::Address(t, a) => match self.flow_to(t, a) {
                            Some(f) => f,
                            None => {
                                let _ = reply.send(Err(Error::NoRoute(t, a)));
                                return;
                            }
                        },
                    };
                    self.layer
                        .send_stateless(Target::new(flow.transport, flow), message.to_bytes());
                    let _ = reply.send(Ok(()));
                }
            }
            Command::Response {
                key,
                response,
                reply,
            } => {
                let r = self.layer.send_response(Instant::now(), key, response);
                let _ = reply.send(r.map_err(Error::from));
            }
            Command::Terminate { key } => {
                self.layer.terminate(key);
            }
            Command::Shutdown => {}
        }
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
        self.udp
            .iter()
            .find(|(l, _)| same_family(l) && scope_ok(l))
            .or_else(|| self.udp.iter().find(|(l, _)| same_family(l)))
            .map(|(l, s)| (*l, s.clone()))
    }

    fn udp_socket_at(&self, local: SocketAddr) -> Option<Arc<UdpSocket>> {
        self.udp
            .iter()
            .find(|(l, _)| *l == local)
            .map(|(_, s)| s.clone())
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
            _ => self
                .tcp
                .iter()
                .find(|l| l.is_ipv4() == flow.local.is_ipv4())
                .map_or(flow.local.port(), |l| l.port()),
        };
        SocketAddr::new(ip, port)
    }

    fn route_request(
        &mut self,
        mut request: Message,
        dest: Destination,
        reply: Option<Reply<TransactionKey>>,
        stateless: Option<Reply<()>>,
    ) {
        let (transport, addr) = match dest {
            Destination::Flow(f) if !f.is_stream() || self.shared.conns.contains(f.conn) => {
                self.send_request_on(request, f, reply, stateless);
                return;
            }
            Destination::Flow(f) => (f.transport, f.remote),
            Destination::Address(t, a) => (t, a),
        };
        let fail =
            |reply: Option<Reply<TransactionKey>>, stateless: Option<Reply<()>>, e: Error| {
                if let Some(r) = reply {
                    let _ = r.send(Err(e));
                } else if let Some(r) = stateless {
                    let _ = r.send(Err(e));
                }
            };
        match transport {
            Transport::Udp => {
                let Some(flow) = self.flow_to(Transport::Udp, addr) else {
                    return fail(reply, stateless, Error::NoRoute(transport, addr));
                };
                // RFC 3261 §18.1.1: measure the request as it would go out.
                if let Err(e) = set_sent_by(&mut request, "UDP", self.sent_by(&flow)) {
                    return fail(reply, stateless, e.into());
                }
                if request.to_bytes().len() > self.shared.config.udp_request_limit() {
                    // "...MUST be sent using an RFC 2914 congestion controlled
                    // transport protocol, such as TCP."
                    self.shared.count(&self.shared.stats.udp_to_tcp);
                    let p = Pending::Request {
                        request,
                        reply,
                        stateless,
                        udp_fallback: Some(flow),
                    };
                    self.send_stream(Transport::Tcp, addr, p);
                } else {
                    self.send_request_on(request, flow, reply, stateless);
                }
            }
            Transport::Tcp => {
                let p = Pending::Request {
                    request,
                    reply,
                    stateless,
                    udp_fallback: None,
                };
                self.send_stream(Transport::Tcp, addr, p);
            }
            other => fail(reply, stateless, Error::Unsupported(other)),
        }
    }

    /// Sends over an open connection to `addr`, or opens one and queues.
    fn send_stream(&mut self, transport: Transport, addr: SocketAddr, p: Pending) {
        if let Some(flow) = self.flow_to(transport, addr) {
            self.send_pending_on(p, flow);
            return;
        }
        let key = (transport, addr);
        if let Some(q) = self.connecting.get_mut(&key) {
            q.push(p);
            return;
        }
        self.connecting.insert(key, vec![p]);
        tokio::spawn(connect_tcp(
            addr,
            self.shared.clone(),
            self.dispatch.clone(),
            self.net_tx.clone(),
        ));
    }

    fn send_pending_on(&mut self, p: Pending, flow: Flow) {
        match p {
            Pending::Request {
                request,
                reply,
                stateless,
                ..
            } => self.send_request_on(request, flow, reply, stateless),
            Pending::Transmit { bytes, key } => self.write_stream(flow, bytes, key),
        }
    }

    fn send_request_on(
        &mut self,
        mut request: Message,
        flow: Flow,
        reply: Option<Reply<TransactionKey>>,
        stateless: Option<Reply<()>>,
    ) {
        // A client transaction's branch names this shard, so that its
        // responses are dispatched here (stateless sends get no answer).
        let mark = (self.mark && stateless.is_none()).then_some(self.shard);
        let token = via_token(flow.transport);
        if let Err(e) = set_sent_by_and_mark(&mut request, token, self.sent_by(&flow), mark) {
            if let Some(r) = reply {
                let _ = r.send(Err(e.into()));
            } else if let Some(r) = stateless {
                let _ = r.send(Err(e.into()));
            }
            return;
        }
        let target = Target::new(flow.transport, flow);
        if let Some(r) = stateless {
            self.layer.send_stateless(target, request.to_bytes());
            let _ = r.send(Ok(()));
        } else {
            let res = self.layer.send_request(Instant::now(), request, target);
            if let Some(r) = reply {
                let _ = r.send(res.map_err(Error::from));
            }
        }
    }

    // ----- output -------------------------------------------------------------

    async fn drain(&mut self) {
        while let Some(out) = self.layer.poll_output() {
            match out {
                Output::Transmit(t) => self.transmit(t).await,
                Output::Event(e) => self.deliver(e),
            }
        }
    }

    async fn transmit(&mut self, t: Transmit<Flow>) {
        let Transmit {
            destination,
            bytes,
            key,
        } = t;
        let flow = destination.addr;
        if !flow.is_stream() {
            let to = if is_response(&bytes) {
                udp_response_destination(&bytes, flow.remote)
            } else {
                flow.remote
            };
            let socket = self
                .udp_socket_at(flow.local)
                .or_else(|| self.udp_socket_for(to).map(|(_, s)| s));
            let ok = match socket {
                Some(s) => s.send_to(&bytes, to).await.is_ok(),
                None => false,
            };
            if !ok {
                self.send_failed(key);
            }
            return;
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
            self.send_stream(flow.transport, to, Pending::Transmit { bytes, key });
        } else {
            self.send_failed(key);
        }
    }

    fn write_stream(&mut self, flow: Flow, bytes: Bytes, key: Option<TransactionKey>) {
        let ok = self.shared.conns.try_send(flow.conn, bytes).is_ok();
        if !ok {
            self.send_failed(key);
        }
    }

    fn send_failed(&mut self, key: Option<TransactionKey>) {
        self.shared.count(&self.shared.stats.send_failures);
        if let Some(k) = key {
            self.layer.handle_transport_error(Instant::now(), k);
        }
    }

    /// Hands an event to the TU without ever waiting for it: a full channel
    /// turns a new request into a 503 and drops other events (counted).
    /// A request the transaction layer refused for lack of room is answered
    /// here (503 + Retry-After, RFC 3261 §21.5.4): the TU could add nothing,
    /// and under overload it is the busiest part.
    fn deliver(&mut self, event: Event<Flow>) {
        let event = match event {
            Event::Refused(_) => event,
            Event::Request { ref request, .. } if self.late && sheddable(request) => event,
            event => match self.events.try_send(event) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(e) | mpsc::error::TrySendError::Closed(e)) => e,
            },
        };
        let stats = &self.shared.stats;
        match event {
            Event::Request { key, request, .. } => {
                self.shared.count(&stats.overload_rejections);
                let retry = self.layer.config().retry_after.to_string();
                if let Ok(resp) = request.response(503).header("Retry-After", &retry).build() {
                    let _ = self.layer.send_response(Instant::now(), key, resp);
                }
            }
            Event::Refused(r) => {
                self.shared.count(&stats.overload_rejections);
                if let Ok(bytes) = r.response() {
                    self.layer.send_stateless(r.source, bytes);
                }
            }
            _ => self.shared.count(&stats.events_dropped),
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

/// §18.2.2 for datagrams, from the response's top Via.
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
    let s = std::net::UdpSocket::bind(any).ok()?;
    s.connect(remote).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}
