//! The network side: receive threads per UDP socket, one acceptor task per
//! TCP listener, one task per stream connection. They frame and parse what
//! arrives, stamp `received`/`rport`, answer what the transport answers
//! itself (400 to malformed requests, CRLF to CRLFCRLF pings) and run each
//! message on the shard that owns it, in place ([`Inbound`]).
//!
//! A stream transport is any `AsyncRead + AsyncWrite` byte stream: TLS
//! plugs in by wrapping the accepted `TcpStream` (e.g. with tokio-rustls)
//! and calling [`run_stream`] with `Transport::Tls`; the driver, the
//! connection registry and the transaction layer do not change. WebSocket
//! (RFC 7118) carries whole messages per frame, so it needs its own reader
//! task, which talks to the driver with the same [`Input`] values.

use crate::core::Inbound;
use crate::flow::{ConnId, Flow};
use crate::shard::ConnRegistry;
use crate::stats::Stats;
use crate::via::stamp_received;
use crate::TransportConfig;
use bytes::{Bytes, BytesMut};
use habla_message::{Frame, Message, StreamFramer};
use habla_transaction::Transport;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};

/// What the shards share with every network task.
pub(crate) struct Shared {
    pub(crate) config: TransportConfig,
    pub(crate) stats: Stats,
    /// Every open connection's write queue (any shard writes to any).
    pub(crate) conns: ConnRegistry,
    /// The UDP sockets (blocking: the receive threads wait in them; any
    /// thread sends on them) by local address.
    pub(crate) udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    /// The TCP listening addresses.
    pub(crate) tcp: Vec<SocketAddr>,
    /// Origin of the shards' timer deadlines (kept in atomics as
    /// nanoseconds since it).
    pub(crate) epoch: std::time::Instant,
    /// The shards, for the tasks that open connections.
    inbound: OnceLock<Weak<dyn Inbound>>,
    /// Set when the element stops: connections close, none registers,
    /// receive threads return.
    pub(crate) closed: AtomicBool,
    open_connections: AtomicUsize,
    next_conn: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("udp", &self.udp)
            .field("tcp", &self.tcp)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(
        config: TransportConfig,
        udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
        tcp: Vec<SocketAddr>,
    ) -> Self {
        Shared {
            config,
            stats: Stats::default(),
            conns: ConnRegistry::new(),
            udp,
            tcp,
            epoch: std::time::Instant::now(),
            inbound: OnceLock::new(),
            closed: AtomicBool::new(false),
            open_connections: AtomicUsize::new(0),
            next_conn: AtomicU64::new(1),
        }
    }

    pub(crate) fn set_inbound(&self, inbound: Weak<dyn Inbound>) {
        let _ = self.inbound.set(inbound);
    }

    /// The shards, while the element runs.
    pub(crate) fn inbound(&self) -> Option<Arc<dyn Inbound>> {
        self.inbound.get().and_then(Weak::upgrade)
    }

    /// The shards, without keeping them alive.
    pub(crate) fn inbound_weak(&self) -> Weak<dyn Inbound> {
        match self.inbound.get() {
            Some(w) => w.clone(),
            None => Weak::<crate::core::Shards<crate::ChannelUser>>::new(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn next_conn_id(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn count(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// One open connection's place under `max_connections`, released on drop.
#[derive(Debug)]
pub(crate) struct ConnSlot(Arc<Shared>);

impl ConnSlot {
    pub(crate) fn try_new(shared: &Arc<Shared>) -> Option<ConnSlot> {
        let max = shared.config.max_connections;
        shared
            .open_connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ConnSlot(shared.clone()))
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Parses one message received on `flow`; answers or drops what is
/// malformed. Returns the message for the driver.
fn parse(shared: &Shared, bytes: Bytes, flow: &Flow) -> Result<Message, Option<Bytes>> {
    match Message::parse_with(bytes, &shared.config.limits) {
        Ok(mut m) => {
            if m.is_request() {
                if let Err(e) = stamp_received(&mut m, flow.remote) {
                    // `parse` validated the Via, so this is unexpected.
                    tracing::debug!(%flow, "cannot stamp Via: {e}");
                }
            }
            Ok(m)
        }
        Err(e) => {
            let reply = e.response(&shared.config.agent);
            if reply.is_some() {
                shared.count(&shared.stats.malformed_answered);
            } else {
                shared.count(&shared.stats.malformed_dropped);
            }
            tracing::debug!(%flow, "malformed message: {e}");
            Err(reply)
        }
    }
}

/// Most datagrams taken from a socket by one `recvmmsg`.
const RECV_BATCH: usize = 32;

/// Calls the helper threads of a UDP socket when its first thread cannot
/// keep up. One thread blocking on a socket takes each burst of datagrams
/// with one wake-up; several blocking on it were each woken for a part of
/// it (at 8,000 REGISTERs a second, two threads cost ~9 % more CPU than
/// one). So one thread waits on the socket, and the others sleep here
/// until it takes a full batch (a backlog), then read without blocking
/// until the socket is empty and sleep again.
#[derive(Default)]
pub(crate) struct UdpHelpers {
    /// Calls not yet taken by a helper.
    wanted: std::sync::Mutex<usize>,
    call: std::sync::Condvar,
}

impl UdpHelpers {
    fn call(&self) {
        let mut wanted = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        // (Bounded: calls pile up while the helpers are busy.)
        if *wanted < 64 {
            *wanted += 1;
        }
        self.call.notify_one();
    }

    /// Waits for a call (true), or `timeout` (false).
    fn wait(&self, timeout: std::time::Duration) -> bool {
        let mut wanted = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        if *wanted == 0 {
            wanted = self
                .call
                .wait_timeout(wanted, timeout)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if *wanted == 0 {
            return false;
        }
        *wanted -= 1;
        true
    }
}

/// Receives datagrams from one UDP socket until the element stops: a
/// loop on a thread of its own (several per socket: the `first` blocks on
/// the socket, the others are called in by it on a backlog, see
/// [`UdpHelpers`]). Each wait returns every datagram waiting (up
/// to [`RECV_BATCH`]); each is parsed and run on its shard right here, in
/// one batch (see `batch.rs`), so at load a receive thread never sleeps,
/// no hand-off sits between the socket and the transaction user, and the
/// batch's sends share their system calls.
pub(crate) fn run_udp(
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    shared: Arc<Shared>,
    inbound: Arc<dyn Inbound>,
    runtime: tokio::runtime::Handle,
    helpers: Arc<UdpHelpers>,
    first: bool,
) {
    use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;
    // The TU may spawn tasks (a DNS lookup, a connection) from here.
    let _runtime = runtime.enter();
    // The kernel's receive time of each datagram (SO_TIMESTAMPNS): how long
    // it waited in the socket is what overload shedding looks at.
    let stamped = nix::sys::socket::setsockopt(
        &*socket,
        nix::sys::socket::sockopt::ReceiveTimestampns,
        &true,
    )
    .is_ok();
    // One octet more than the largest message: a datagram that fills it
    // was too large (and is truncated).
    let size = shared.config.limits.max_message_size.clamp(1024, 65_535) + 1;
    let mut bufs: Vec<Vec<u8>> = (0..RECV_BATCH).map(|_| vec![0u8; size]).collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(
        RECV_BATCH,
        Some(nix::cmsg_space!(nix::sys::time::TimeSpec)),
    );
    // Datagrams are copied into a large arena and split off it, so that a
    // packet costs no allocation of its own: one arena serves thousands of
    // typical datagrams. A message keeps only its slice (and the arena
    // alive) while it is in use.
    const ARENA: usize = 1 << 20;
    let mut arena = BytesMut::with_capacity(ARENA);
    let mut got: Vec<Received> = Vec::with_capacity(RECV_BATCH);
    let fd = socket.as_raw_fd();
    // A helper reads without blocking while there is a backlog.
    let mut helping = false;
    loop {
        got.clear();
        if !first && !helping {
            if shared.is_closed() {
                return;
            }
            helping = helpers.wait(std::time::Duration::from_millis(200));
            continue;
        }
        {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> =
                bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
            let flags = if first {
                MsgFlags::MSG_WAITFORONE
            } else {
                MsgFlags::MSG_DONTWAIT
            };
            match recvmmsg(fd, &mut headers, iovs.iter_mut(), flags, None) {
                Ok(results) => {
                    for m in results {
                        got.push(Received {
                            len: m.bytes,
                            from: m.address.and_then(socket_addr),
                            truncated: m.flags.contains(MsgFlags::MSG_TRUNC),
                            stamp: if stamped { kernel_stamp(&m) } else { None },
                        });
                    }
                }
                // Woken to stop, the read timeout, a signal, or an ICMP
                // error reported on the socket: look at the flag, go on.
                Err(e) => {
                    if !matches!(e, nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) {
                        tracing::debug!(%local, "udp recv: {e}");
                    }
                }
            }
        }
        if shared.is_closed() {
            return;
        }
        if got.is_empty() {
            // A helper found the socket empty: back to sleep.
            helping = false;
            continue;
        }
        if first && got.len() == RECV_BATCH {
            helpers.call();
        } else if !first {
            shared.count(&shared.stats.udp_helper_batches);
        }
        let now = std::time::Instant::now();
        let wall = std::time::SystemTime::now();
        crate::batch::batch(|| {
            for (r, buf) in got.iter().zip(&bufs) {
                let (Some(remote), Some(data)) = (r.from, buf.get(..r.len)) else {
                    continue;
                };
                if data.is_empty() {
                    continue;
                }
                shared.count(&shared.stats.datagrams_received);
                if r.truncated || r.len >= size {
                    shared.count(&shared.stats.malformed_dropped);
                    tracing::debug!(%remote, "datagram larger than max_message_size dropped");
                    continue;
                }
                if data.iter().all(|&b| b == b'\r' || b == b'\n') {
                    // CRLF keep-alives over UDP (RFC 5626 uses STUN there;
                    // some clients send CRLF anyway): nothing to answer.
                    shared.count(&shared.stats.datagram_keepalives);
                    continue;
                }
                // When it arrived: the kernel's stamp, on our clock.
                let at = r
                    .stamp
                    .and_then(|t| wall.duration_since(t).ok())
                    .and_then(|waited| now.checked_sub(waited))
                    .unwrap_or(now);
                if arena.capacity() - arena.len() < data.len() {
                    arena = BytesMut::with_capacity(ARENA);
                }
                arena.extend_from_slice(data);
                let data = arena.split_to(arena.len()).freeze();
                let flow = Flow {
                    transport: Transport::Udp,
                    local,
                    remote,
                    conn: ConnId::DATAGRAM,
                };
                match parse(&shared, data, &flow) {
                    Ok(message) => inbound.message(message, flow, at),
                    Err(Some(reply)) => {
                        // RFC 3581-style: back to the packet's source.
                        if let Err(e) = socket.send_to(&reply, remote) {
                            tracing::debug!(%flow, "cannot send 400: {e}");
                        }
                    }
                    Err(None) => {}
                }
            }
        });
    }
}

/// What `recvmmsg` said of one datagram.
struct Received {
    len: usize,
    from: Option<SocketAddr>,
    truncated: bool,
    /// The kernel's receive time (wall clock).
    stamp: Option<std::time::SystemTime>,
}

fn socket_addr(a: nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(std::net::SocketAddrV4::from(*v4)));
    }
    a.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(std::net::SocketAddrV6::from(*v6)))
}

fn kernel_stamp<S>(m: &nix::sys::socket::RecvMsg<'_, '_, S>) -> Option<std::time::SystemTime> {
    use nix::sys::socket::ControlMessageOwned;
    m.cmsgs().ok()?.find_map(|c| match c {
        ControlMessageOwned::ScmTimestampns(ts) => {
            let secs = u64::try_from(ts.tv_sec()).ok()?;
            let nanos = u32::try_from(ts.tv_nsec()).ok()?;
            std::time::UNIX_EPOCH.checked_add(std::time::Duration::new(secs, nanos))
        }
        _ => None,
    })
}

/// Wakes the receive threads of `socket` (bound at `local`) so that they
/// see that the element stopped: one empty datagram each.
pub(crate) fn wake_udp(local: SocketAddr, threads: usize) {
    let to = match local.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), local.port())
        }
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => {
            SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), local.port())
        }
        _ => local,
    };
    let any: SocketAddr = if to.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    if let Ok(s) = UdpSocket::bind(any) {
        for _ in 0..threads {
            let _ = s.send_to(&[], to);
        }
    }
}

/// Accepts TCP connections until the element stops.
pub(crate) async fn run_tcp_listener(
    listener: TcpListener,
    shared: Arc<Shared>,
    inbound: Arc<dyn Inbound>,
) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly
                // instead of spinning.
                tracing::warn!("tcp accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = ConnSlot::try_new(&shared) else {
            shared.count(&shared.stats.connections_refused);
            tracing::debug!(%remote, "connection refused: max_connections reached");
            continue;
        };
        if shared.is_closed() {
            return;
        }
        shared.count(&shared.stats.connections_accepted);
        let conn = shared.next_conn_id();
        spawn_tcp(
            stream,
            remote,
            conn,
            slot,
            shared.clone(),
            inbound.clone(),
            None,
        );
    }
}

/// Opens a TCP connection for shard `shard`, which gave it the id `conn`
/// and queued what is to go over it; the shard hears when it is open or
/// failed ([`Inbound::connected`]). Messages received on it go to whichever
/// shard owns them.
pub(crate) async fn connect_tcp(
    remote: SocketAddr,
    conn: ConnId,
    shard: usize,
    shared: Arc<Shared>,
    inbound: Option<Arc<dyn Inbound>>,
) {
    let Some(inbound) = inbound else { return };
    let fail = |error| inbound.connected(shard, Transport::Tcp, remote, Err(error));
    let Some(slot) = ConnSlot::try_new(&shared) else {
        shared.count(&shared.stats.connections_refused);
        return fail(std::io::Error::other("max_connections reached"));
    };
    match timeout(shared.config.connect_timeout, TcpStream::connect(remote)).await {
        Ok(Ok(stream)) => {
            shared.count(&shared.stats.connections_opened);
            spawn_tcp(
                stream,
                remote,
                conn,
                slot,
                shared,
                inbound.clone(),
                Some(shard),
            );
        }
        Ok(Err(e)) => fail(e),
        Err(_) => fail(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connect timed out",
        )),
    }
}

fn spawn_tcp(
    stream: TcpStream,
    remote: SocketAddr,
    conn: ConnId,
    slot: ConnSlot,
    shared: Arc<Shared>,
    inbound: Arc<dyn Inbound>,
    opened_for: Option<usize>,
) {
    let _ = stream.set_nodelay(true);
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(%remote, "connection lost at once: {e}");
            if let Some(shard) = opened_for {
                inbound.connected(shard, Transport::Tcp, remote, Err(e));
            }
            return;
        }
    };
    let flow = Flow {
        transport: Transport::Tcp,
        local,
        remote,
        conn,
    };
    tokio::spawn(run_stream(stream, flow, slot, shared, inbound, opened_for));
}

/// Why a connection closed.
#[derive(Debug)]
enum Close {
    Eof,
    Driver,
    Idle,
    Slow,
    Framing,
    Write,
}

/// Serves one stream connection: frames and parses what arrives (and runs
/// each message on its shard), writes what the shards queue, answers
/// pings, enforces the idle timeout, the per-message deadline (slow loris)
/// and the buffer bound. `opened_for`: the shard that asked for it.
pub(crate) async fn run_stream<S>(
    stream: S,
    flow: Flow,
    _slot: ConnSlot,
    shared: Arc<Shared>,
    inbound: Arc<dyn Inbound>,
    opened_for: Option<usize>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let cfg = &shared.config;
    let (writer, mut queue) = mpsc::channel::<Bytes>(cfg.write_queue.max(1));
    // Registered before the first message is read, so that every shard
    // can answer over it; removed below when it closes.
    shared.conns.insert(flow, writer);
    if shared.is_closed() {
        shared.conns.remove(&flow);
        return;
    }
    if let Some(shard) = opened_for {
        inbound.connected(shard, flow.transport, flow.remote, Ok(flow));
    }
    tracing::debug!(%flow, "connection open");
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut framer = StreamFramer::new(cfg.limits);
    let buffer_cap = cfg.max_buffered_per_connection.max(1);
    let mut buf = vec![0u8; 16 * 1024];
    let mut idle_at = Instant::now() + cfg.idle_timeout;
    // When the message now in the framer started arriving.
    let mut partial_since: Option<Instant> = None;
    let close = 'conn: loop {
        let slow_at = partial_since.map(|t| t + cfg.message_deadline);
        let deadline = slow_at.map_or(idle_at, |s| s.min(idle_at));
        tokio::select! {
            r = rd.read(&mut buf) => {
                let n = match r {
                    Ok(0) | Err(_) => break Close::Eof,
                    Ok(n) => n,
                };
                let now = Instant::now();
                idle_at = now + cfg.idle_timeout;
                if framer.buffered() + n > buffer_cap || framer.push(&buf[..n]).is_err() {
                    break Close::Framing;
                }
                loop {
                    match framer.next_frame() {
                        Ok(None) => break,
                        Ok(Some(Frame::Ping)) => {
                            // RFC 5626 §3.5.1: answer CRLFCRLF with CRLF.
                            shared.count(&shared.stats.pings_answered);
                            if write(&mut wr, b"\r\n", cfg.write_timeout).await.is_err() {
                                break 'conn Close::Write;
                            }
                        }
                        Ok(Some(Frame::Pong)) => {}
                        Ok(Some(Frame::Message(bytes))) => {
                            shared.count(&shared.stats.stream_messages_received);
                            match parse(&shared, bytes, &flow) {
                                Ok(message) => {
                                    if shared.is_closed() {
                                        break 'conn Close::Driver;
                                    }
                                    inbound.message(message, flow, now.into_std());
                                }
                                Err(Some(reply)) => {
                                    if write(&mut wr, &reply, cfg.write_timeout).await.is_err() {
                                        break 'conn Close::Write;
                                    }
                                }
                                Err(None) => {}
                            }
                            // A new message starts now if octets remain.
                            partial_since = None;
                        }
                        Err(e) => {
                            tracing::debug!(%flow, "framing lost: {e}");
                            break 'conn Close::Framing;
                        }
                    }
                }
                if framer.buffered() == 0 {
                    partial_since = None;
                } else if partial_since.is_none() {
                    partial_since = Some(now);
                }
            }
            out = queue.recv() => {
                let Some(bytes) = out else { break Close::Driver };
                if write(&mut wr, &bytes, cfg.write_timeout).await.is_err() {
                    break Close::Write;
                }
                idle_at = Instant::now() + cfg.idle_timeout;
            }
            _ = sleep_until(deadline) => {
                break if slow_at.is_some_and(|s| s <= Instant::now()) {
                    Close::Slow
                } else {
                    Close::Idle
                };
            }
        }
    };
    // Sends queued from now on fail at once (the driver then reconnects
    // for responses, §18.2.2).
    shared.conns.remove(&flow);
    drop(queue);
    let stats = &shared.stats;
    match close {
        Close::Idle => shared.count(&stats.closed_idle),
        Close::Slow => shared.count(&stats.closed_slow),
        Close::Framing => shared.count(&stats.closed_framing),
        Close::Write => shared.count(&stats.closed_write),
        Close::Eof | Close::Driver => {}
    }
    tracing::debug!(%flow, reason = ?close, "connection closed");
    let _ = timeout(cfg.write_timeout, wr.shutdown()).await;
}

async fn write<W: AsyncWrite + Unpin>(
    wr: &mut W,
    bytes: &[u8],
    limit: std::time::Duration,
) -> std::io::Result<()> {
    match timeout(limit, wr.write_all(bytes)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "write timed out",
        )),
    }
}
