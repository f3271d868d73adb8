//! Transport settings: where to listen and every limit, with defaults.

use habla_message::Limits;
use habla_transaction::Transport;
use std::net::SocketAddr;
use std::time::Duration;

/// One listening point: a transport and a socket address (port 0 picks a
/// free port; [`crate::Endpoint::listening_points`] tells which).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenPoint {
    /// UDP or TCP (TLS and WebSocket are not implemented yet:
    /// [`crate::Endpoint::bind`] refuses them).
    pub transport: Transport,
    /// The local address.
    pub addr: SocketAddr,
}

impl ListenPoint {
    /// A listening point.
    pub fn new(transport: Transport, addr: SocketAddr) -> Self {
        ListenPoint { transport, addr }
    }
}

/// Every transport limit and setting. The defaults suit a server facing
/// the Internet; tests shrink the timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// Where to listen. Several points, of both transports and both address
    /// families, may be given.
    pub listen: Vec<ListenPoint>,
    /// Parser limits for every message received (datagram or stream).
    pub limits: Limits,
    /// The path MTU towards peers, if known. RFC 3261 §18.1.1: a request
    /// "within 200 bytes of the path MTU, or ... larger than 1300 bytes and
    /// the path MTU is unknown" goes over TCP instead of UDP. `None`
    /// (default): the 1300-byte rule.
    pub path_mtu: Option<usize>,
    /// Most TCP connections open at once (accepted and initiated
    /// together). Beyond it, new connections are refused (closed at
    /// accept). Default 1024.
    pub max_connections: usize,
    /// Most octets a connection may buffer while a message is incomplete
    /// (beyond it the connection is closed). Default 2 × `limits.max_message_size`
    /// is the framer's own bound; this one may only be lower. Default 128 KiB.
    pub max_buffered_per_connection: usize,
    /// A connection that started a message and has not completed it within
    /// this time is closed (slow-loris protection). Default 10 s.
    pub message_deadline: Duration,
    /// A connection with no traffic either way for this long is closed.
    /// Default 5 min (RFC 5626 keep-alives every ~2 min keep a flow open).
    pub idle_timeout: Duration,
    /// Longest wait for a TCP connect to finish. Default 5 s.
    pub connect_timeout: Duration,
    /// Longest a write to a connection may block (a peer that does not
    /// read is closed). Default 10 s.
    pub write_timeout: Duration,
    /// Messages queued for writing per connection before a send fails.
    /// Default 256.
    pub write_queue: usize,
    /// Capacity of the channel that carries events to the transaction user
    /// (bounded: a TU that falls behind makes new requests be answered 503,
    /// other events be dropped and counted). Default 1024.
    pub event_queue: usize,
    /// Capacity of the channel from the network tasks and the TU handles to
    /// the driver (bounded: when full, readers stop reading). Default 1024.
    pub input_queue: usize,
    /// Longest a new request may have waited between the socket and the
    /// driver before it is answered 503 + Retry-After instead of handled.
    /// Under overload queues grow; a request that waited half of T1 is
    /// about to be retransmitted, and handling stale requests while their
    /// retransmissions pile up is how servers collapse. In-dialog requests,
    /// CANCEL and ACK are never shed. Default 250 ms.
    pub max_queue_delay: Duration,
    /// Receive buffer of each UDP socket (SO_RCVBUF), in octets: what a
    /// burst can queue while the receive threads are busy (beyond it the
    /// kernel drops datagrams and clients retransmit after T1). The kernel
    /// caps it at `net.core.rmem_max`. Default 4 MiB (~8,000 typical
    /// requests; `max_queue_delay` bounds how stale a queued one may be).
    pub udp_receive_buffer: usize,
    /// Send buffer of each UDP socket (SO_SNDBUF), in octets (capped at
    /// `net.core.wmem_max`). Default 1 MiB.
    pub udp_send_buffer: usize,
    /// The `Server`/`User-Agent` token used in `Warning` headers of the 400
    /// answers the transport sends itself. Default `habla/<version>`.
    pub agent: String,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            listen: Vec::new(),
            limits: Limits::default(),
            path_mtu: None,
            max_connections: 1024,
            max_buffered_per_connection: 128 * 1024,
            message_deadline: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            write_queue: 256,
            event_queue: 1024,
            input_queue: 1024,
            max_queue_delay: Duration::from_millis(250),
            udp_receive_buffer: 4 << 20,
            udp_send_buffer: 1 << 20,
            agent: concat!("habla/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl TransportConfig {
    /// Listens on UDP and TCP at `addr` (with port 0, TCP takes the port
    /// picked for UDP when it is free on TCP too; see
    /// [`crate::Endpoint::listening_points`]).
    pub fn udp_and_tcp(addr: SocketAddr) -> Self {
        TransportConfig {
            listen: vec![
                ListenPoint::new(Transport::Udp, addr),
                ListenPoint::new(Transport::Tcp, addr),
            ],
            ..TransportConfig::default()
        }
    }

    /// The largest request sent over UDP (RFC 3261 §18.1.1): below
    /// `path_mtu - 200` when the MTU is known ("within 200 bytes of the
    /// path MTU" goes over TCP), else 1300.
    pub fn udp_request_limit(&self) -> usize {
        match self.path_mtu {
            Some(mtu) => mtu.saturating_sub(201),
            None => 1300,
        }
    }
}
