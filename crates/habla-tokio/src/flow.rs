//! [`Flow`]: the stable token for "the connection or 5-tuple a message came
//! from", the transaction layer's address type.

use habla_transaction::Transport;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

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
        f.write_str(&self.token())
    }
}

impl Flow {
    /// The flow as text (what `Display` writes): `udp:LOCAL->REMOTE`, and
    /// `#N` for a connection. A registrar keys bindings by it (one per
    /// REGISTER): written in one buffer, without the formatting
    /// machinery's padding support, which cost more than the rest.
    pub fn token(&self) -> String {
        let t = match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Sctp => "sctp",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
            _ => "?",
        };
        let mut s = String::with_capacity(64);
        s.push_str(t);
        s.push(':');
        push_socket_addr(&mut s, self.local);
        s.push_str("->");
        push_socket_addr(&mut s, self.remote);
        if self.is_stream() {
            s.push('#');
            push_decimal(&mut s, self.conn.0);
        }
        s
    }
}

/// Appends `n` in decimal.
pub(crate) fn push_decimal(s: &mut String, n: u64) {
    s.push_str(habla_message::Decimal::new(n).as_str());
}

/// Appends an IP address as `Display` writes it (IPv6 through `Display`:
/// rare on the hot path and intricate to compress).
pub(crate) fn push_ip(s: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            // Written in a stack buffer, then appended at once.
            let mut text = [0u8; 15];
            let mut n = 0;
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[n] = b'.';
                    n += 1;
                }
                if o >= 100 {
                    text[n] = b'0' + o / 100;
                    n += 1;
                }
                if o >= 10 {
                    text[n] = b'0' + o / 10 % 10;
                    n += 1;
                }
                text[n] = b'0' + o % 10;
                n += 1;
            }
            // Digits and dots only.
            s.push_str(std::str::from_utf8(&text[..n]).unwrap_or_default());
        }
        IpAddr::V6(v6) => {
            use fmt::Write;
            let _ = write!(s, "{v6}");
        }
    }
}

/// Appends a socket address as `Display` writes it (`ip:port`, `[ip6]:port`).
pub(crate) fn push_socket_addr(s: &mut String, a: SocketAddr) {
    match a {
        SocketAddr::V4(_) => push_ip(s, a.ip()),
        SocketAddr::V6(v6) => {
            use fmt::Write;
            let _ = write!(s, "[{}", v6.ip());
            if v6.scope_id() != 0 {
                let _ = write!(s, "%{}", v6.scope_id());
            }
            s.push(']');
        }
    }
    s.push(':');
    push_decimal(s, u64::from(a.port()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for a in [
            "127.0.0.1:5060",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.20.30.4:9",
            "100.105.9.99:1",
            "[::1]:5060",
            "[2001:db8::1]:40000",
            "[fe80::1%3]:5060",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            let mut s = String::new();
            push_socket_addr(&mut s, a);
            assert_eq!(s, a.to_string());
            let mut s = String::new();
            push_ip(&mut s, a.ip());
            assert_eq!(s, a.ip().to_string());
        }
        let flow = Flow {
            transport: Transport::Tcp,
            local: "192.0.2.1:5060".parse().unwrap(),
            remote: "[::1]:40000".parse().unwrap(),
            conn: ConnId(7),
        };
        assert_eq!(flow.to_string(), "tcp:192.0.2.1:5060->[::1]:40000#7");
    }
}
