//! [`Flow`]: the stable token for "the connection or 5-tuple a message came
//! from", the transaction layer's address type.

use habla_transaction::Transport;
use std::fmt;
use std::net::SocketAddr;

/// Identifies one connection for as long as the endpoint lives (ids are
/// never reused). Datagram flows have [`ConnId::DATAGRAM`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) u64);

impl ConnId {
    /// The id of every datagram (UDP) flow: a UDP flow is its 5-tuple.
    pub const DATAGRAM: ConnId = ConnId(0);

    /// The id as a number (for logs).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// Where a message came from or goes to, precisely enough to answer over
/// the same path: the transport, the local and remote socket addresses and,
/// for connection-oriented transports, the connection. Two messages with
/// equal flows travelled over the same connection (TCP) or between the same
/// two sockets (UDP).
///
/// Flows are the driver's address type for the transaction layer
/// (`TransactionLayer<Flow>`), so a response, a retransmission or a later
/// request addressed to a flow goes back over the same connection
/// (RFC 3261 §18.2.2, RFC 5626 flows). A flow whose connection has closed
/// is dead: sending to it fails (a response then follows §18.2.2 and opens
/// a new connection to the `received` address and sent-by port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// The transport.
    pub transport: Transport,
    /// The local socket address (the listening socket for UDP, the
    /// connection's local end for TCP).
    pub local: SocketAddr,
    /// The peer's socket address (the packet source for UDP).
    pub remote: SocketAddr,
    /// The connection, or [`ConnId::DATAGRAM`].
    pub conn: ConnId,
}

impl Flow {
    /// Whether this is a connection-oriented flow.
    pub fn is_stream(&self) -> bool {
        self.conn != ConnId::DATAGRAM
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Sctp => "sctp",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
            _ => "?",
        };
        write!(f, "{t}:{}->{}", self.local, self.remote)?;
        if self.is_stream() {
            write!(f, "#{}", self.conn.0)?;
        }
        Ok(())
    }
}
