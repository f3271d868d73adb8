//! The network tasks: one reader per UDP socket, one acceptor per TCP
//! listener, one task per stream connection. They frame and parse what
//! arrives, stamp `received`/`rport`, answer what the transport answers
//! itself (400 to malformed requests, CRLF to CRLFCRLF pings) and hand
//! messages to the driver over a bounded channel.
//!
//! A stream transport is any `AsyncRead + AsyncWrite` byte stream: TLS
//! plugs in by wrapping the accepted `TcpStream` (e.g. with tokio-rustls)
//! and calling [`run_stream`] with `Transport::Tls`; the driver, the
//! connection registry and the transaction layer do not change. WebSocket
//! (RFC 7118) carries whole messages per frame, so it needs its own reader
//! task, which talks to the driver with the same [`Input`] values.

use crate::flow::{ConnId, Flow};
use crate::shard::{ConnRegistry, Dispatch};
use crate::stats::Stats;
use crate::via::stamp_received;
use crate::TransportConfig;
use bytes::{Bytes, BytesMut};
use habla_message::{Frame, Message, StreamFramer};
use habla_transaction::Transport;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};

/// What the driver shards share with every network task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: TransportConfig,
    pub(crate) stats: Stats,
    /// Every open connection's write queue (any shard writes to any).
    pub(crate) conns: ConnRegistry,
    /// Set when the last shard stopped: connections close, none registers.
    pub(crate) closed: AtomicBool,
    open_connections: AtomicUsize,
    next_conn: AtomicU64,
}

impl Shared {
    pub(crate) fn new(config: TransportConfig) -> Self {
        Shared {
            config,
            stats: Stats::default(),
            conns: ConnRegistry::new(),
            closed: AtomicBool::new(false),
            open_connections: AtomicUsize::new(0),
            next_conn: AtomicU64::new(1),
        }
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

/// What the network tasks tell a driver shard.
// A parsed `Message` travels by value (most of its size is the parse
// cache); boxing it would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Input {
    /// A parsed message (requests already carry `received`/`rport`), and
    /// when it was read from the socket.
    Message {
        message: Message,
        flow: Flow,
        received: std::time::Instant,
    },
    /// A connection this shard asked for is open (and registered in
    /// [`Shared::conns`]).
    ConnUp { flow: Flow },
    /// Connecting to `remote` failed.
    ConnectFailed {
        transport: Transport,
        remote: SocketAddr,
        error: std::io::Error,
    },
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

/// Reads datagrams from one UDP socket until the driver goes away.
pub(crate) async fn run_udp(
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    shared: Arc<Shared>,
    net: Dispatch,
) {
    // Datagrams are received into a large arena and split off it, so that a
    // packet costs no allocation of its own: one arena serves ~16 full-size
    // datagrams, or thousands of typical ones. A message keeps only its
    // slice (and the arena alive) while it is in use.
    const ARENA: usize = 1 << 20;
    const MAX_DATAGRAM: usize = 65_536;
    let mut arena = BytesMut::with_capacity(ARENA);
    loop {
        if arena.capacity() - arena.len() < MAX_DATAGRAM {
            arena = BytesMut::with_capacity(ARENA);
        }
        let (n, remote) = match socket.recv_buf_from(&mut arena).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP errors surface here on some systems; keep reading.
                tracing::debug!(%local, "udp recv: {e}");
                continue;
            }
        };
        shared.count(&shared.stats.datagrams_received);
        let data = arena.split_to(n.min(arena.len())).freeze();
        if data.iter().all(|&b| b == b'\r' || b == b'\n') {
            // CRLF keep-alives over UDP (RFC 5626 uses STUN there; some
            // clients send CRLF anyway): nothing to answer.
            shared.count(&shared.stats.datagram_keepalives);
            continue;
        }
        let flow = Flow {
            transport: Transport::Udp,
            local,
            remote,
            conn: ConnId::DATAGRAM,
        };
        match parse(&shared, data, &flow) {
            Ok(message) => {
                if !net.message(message, flow).await {
                    // That shard stopped; the others may still run.
                    shared.count(&shared.stats.events_dropped);
                }
            }
            Err(Some(reply)) => {
                // RFC 3581-style: back to the packet's source.
                if let Err(e) = socket.send_to(&reply, remote).await {
                    tracing::debug!(%flow, "cannot send 400: {e}");
                }
            }
            Err(None) => {}
        }
    }
}

/// Accepts TCP connections until the driver goes away.
pub(crate) async fn run_tcp_listener(listener: TcpListener, shared: Arc<Shared>, net: Dispatch) {
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
        if net.is_closed() {
            return;
        }
        shared.count(&shared.stats.connections_accepted);
        spawn_tcp(stream, remote, slot, shared.clone(), net.clone(), None);
    }
}

/// Opens a TCP connection for a driver shard (which queued what to send on
/// it and hears through `notify` when it is open or failed). Messages
/// received on it go to whichever shard owns them.
pub(crate) async fn connect_tcp(
    remote: SocketAddr,
    shared: Arc<Shared>,
    net: Dispatch,
    notify: mpsc::Sender<Input>,
) {
    let fail = |error| Input::ConnectFailed {
        transport: Transport::Tcp,
        remote,
        error,
    };
    let Some(slot) = ConnSlot::try_new(&shared) else {
        shared.count(&shared.stats.connections_refused);
        let e = std::io::Error::other("max_connections reached");
        let _ = notify.send(fail(e)).await;
        return;
    };
    match timeout(shared.config.connect_timeout, TcpStream::connect(remote)).await {
        Ok(Ok(stream)) => {
            shared.count(&shared.stats.connections_opened);
            spawn_tcp(stream, remote, slot, shared, net, Some(notify));
        }
        Ok(Err(e)) => {
            let _ = notify.send(fail(e)).await;
        }
        Err(_) => {
            let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
            let _ = notify.send(fail(e)).await;
        }
    }
}

fn spawn_tcp(
    stream: TcpStream,
    remote: SocketAddr,
    slot: ConnSlot,
    shared: Arc<Shared>,
    net: Dispatch,
    notify: Option<mpsc::Sender<Input>>,
) {
    let _ = stream.set_nodelay(true);
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(%remote, "connection lost at once: {e}");
            return;
        }
    };
    let flow = Flow {
        transport: Transport::Tcp,
        local,
        remote,
        conn: shared.next_conn_id(),
    };
    tokio::spawn(run_stream(stream, flow, slot, shared, net, notify));
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

/// Serves one stream connection: frames and parses what arrives, writes
/// what the driver queues, answers pings, enforces the idle timeout, the
/// per-message deadline (slow loris) and the buffer bound.
pub(crate) async fn run_stream<S>(
    stream: S,
    flow: Flow,
    _slot: ConnSlot,
    shared: Arc<Shared>,
    net: Dispatch,
    notify: Option<mpsc::Sender<Input>>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let cfg = &shared.config;
    let (writer, mut queue) = mpsc::channel::<Bytes>(cfg.write_queue.max(1));
    // Registered before the first message is read, so that every shard
    // can answer over it; removed below when it closes.
    shared.conns.insert(flow, writer);
    if shared.closed.load(Ordering::Acquire) {
        shared.conns.remove(&flow);
        return;
    }
    if let Some(n) = notify {
        if n.send(Input::ConnUp { flow }).await.is_err() {
            shared.conns.remove(&flow);
            return;
        }
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
                                    if !net.message(message, flow).await {
                                        if net.is_closed() {
                                            break 'conn Close::Driver;
                                        }
                                        shared.count(&shared.stats.events_dropped);
                                    }
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
