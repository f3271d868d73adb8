//! Configuration values, the timer names, and where messages go.

use std::time::Duration;

/// The RFC 3261 timer base values, per layer (never statics).
///
/// RFC 3261 §17.1.1.1 and Table 4 (Appendix A): T1 is the round-trip time
/// estimate (500 ms), T2 the longest retransmission interval for
/// non-INVITE requests and INVITE responses (4 s), T4 the longest time a
/// message stays in the network (5 s). Every other timer derives from these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// T1, the RTT estimate (default 500 ms). Must not be zero (a zero value
    /// is raised to 1 ms).
    pub t1: Duration,
    /// T2, the retransmission interval cap (default 4 s).
    pub t2: Duration,
    /// T4, the network lifetime of a message (default 5 s).
    pub t4: Duration,
    /// Timer D over unreliable transports: "at least 32 seconds"
    /// (RFC 3261 §17.1.1.2). Default 32 s.
    pub timer_d: Duration,
    /// Longest a client INVITE transaction waits in Proceeding for a final
    /// response, restarted by every provisional response: the analogue of
    /// the proxy's Timer C (RFC 3261 §16.6 step 11, "greater than 3
    /// minutes"). Also bounds how long an INVITE server transaction waits
    /// for its TU's final response. `None` follows RFC 3261 to the letter
    /// (the TU alone ends such transactions). Default 200 s.
    pub timer_c: Option<Duration>,
    /// Delay before an INVITE server transaction sends `100 Trying` itself
    /// when its TU has not answered (RFC 3261 §17.2.1: "unless it knows
    /// that the TU will generate a provisional or final response within
    /// 200 ms"). `None` leaves it to the TU. Default 200 ms.
    pub trying_delay: Option<Duration>,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            timer_d: Duration::from_secs(32),
            timer_c: Some(Duration::from_secs(200)),
            trying_delay: Some(Duration::from_millis(200)),
        }
    }
}

impl TimerConfig {
    /// T1, never zero.
    pub(crate) fn t1(&self) -> Duration {
        self.t1.max(Duration::from_millis(1))
    }

    /// T2, never below T1.
    pub(crate) fn t2(&self) -> Duration {
        self.t2.max(self.t1())
    }

    /// 64*T1: Timers B, F, H, J (unreliable), L and M.
    pub(crate) fn t1x64(&self) -> Duration {
        self.t1().saturating_mul(64)
    }
}

/// Layer-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Timer values.
    pub timers: TimerConfig,
    /// Most live transactions (client and server together). When reached, a
    /// request that would create a server transaction is refused
    /// ([`crate::Event::Refused`]) and [`crate::TransactionLayer::send_request`]
    /// fails. Default 100 000.
    pub max_transactions: usize,
    /// The Retry-After value (seconds) suggested in a refusal. Default 5.
    pub retry_after: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timers: TimerConfig::default(),
            max_transactions: 100_000,
            retry_after: 5,
        }
    }
}

/// The timers of RFC 3261 §17 (Table 4) and RFC 6026, plus two named
/// safety nets. [`crate::TransactionLayer::poll_timeout`] answers the
/// earliest armed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Timer {
    /// INVITE request retransmission, unreliable only: T1, doubling
    /// (RFC 3261 §17.1.1.2).
    A,
    /// INVITE transaction timeout: 64*T1 (RFC 3261 §17.1.1.2).
    B,
    /// Client INVITE Proceeding limit ([`TimerConfig::timer_c`]).
    C,
    /// Wait for response retransmissions in client INVITE Completed: 32 s
    /// unreliable, zero reliable (RFC 3261 §17.1.1.2).
    D,
    /// Non-INVITE request retransmission, unreliable only: T1 doubling up
    /// to T2, then T2 in Proceeding (RFC 3261 §17.1.2.2).
    E,
    /// Non-INVITE transaction timeout: 64*T1 (RFC 3261 §17.1.2.2).
    F,
    /// INVITE final response retransmission, unreliable only: T1 doubling
    /// up to T2 (RFC 3261 §17.2.1).
    G,
    /// Wait for ACK receipt: 64*T1 (RFC 3261 §17.2.1).
    H,
    /// Wait for ACK retransmissions in Confirmed: T4 unreliable, zero
    /// reliable (RFC 3261 §17.2.1).
    I,
    /// Wait for non-INVITE request retransmissions: 64*T1 unreliable, zero
    /// reliable (RFC 3261 §17.2.2).
    J,
    /// Wait for non-INVITE response retransmissions: T4 unreliable, zero
    /// reliable (RFC 3261 §17.1.2.2).
    K,
    /// Server INVITE Accepted lifetime: 64*T1 (RFC 6026 §8.7).
    L,
    /// Client INVITE Accepted lifetime: 64*T1 (RFC 6026 §8.4).
    M,
    /// Not in the RFC: a server transaction whose TU never answers is ended
    /// after 64*T1 (non-INVITE: the client gave up at Timer F) or
    /// [`TimerConfig::timer_c`] (INVITE), so it cannot leak.
    TuGuard,
    /// The 200 ms `100 Trying` rule of RFC 3261 §17.2.1
    /// ([`TimerConfig::trying_delay`]).
    Trying100,
}

impl Timer {
    pub(crate) const COUNT: usize = 15;

    /// Every timer, in declaration order.
    pub const ALL: [Timer; Timer::COUNT] = [
        Timer::A,
        Timer::B,
        Timer::C,
        Timer::D,
        Timer::E,
        Timer::F,
        Timer::G,
        Timer::H,
        Timer::I,
        Timer::J,
        Timer::K,
        Timer::L,
        Timer::M,
        Timer::TuGuard,
        Timer::Trying100,
    ];
}

/// The transport a message travels over. Only reliability matters to the
/// transaction layer (RFC 3261 §17: retransmissions and the zero timers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// UDP (unreliable).
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// SCTP.
    Sctp,
    /// WebSocket (RFC 7118).
    Ws,
    /// Secure WebSocket (RFC 7118).
    Wss,
}

impl Transport {
    /// The transport's token in a Via (RFC 3261 §20.42: `UDP`, `TCP`...).
    pub fn token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Sctp => "SCTP",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// Whether the transport delivers reliably (everything but UDP).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// Recognises a Via transport token (case-insensitive).
    pub fn from_via(token: &str) -> Option<Transport> {
        let t = token.as_bytes();
        Some(if t.eq_ignore_ascii_case(b"UDP") {
            Transport::Udp
        } else if t.eq_ignore_ascii_case(b"TCP") {
            Transport::Tcp
        } else if t.eq_ignore_ascii_case(b"TLS") {
            Transport::Tls
        } else if t.eq_ignore_ascii_case(b"SCTP") {
            Transport::Sctp
        } else if t.eq_ignore_ascii_case(b"WS") {
            Transport::Ws
        } else if t.eq_ignore_ascii_case(b"WSS") {
            Transport::Wss
        } else {
            return None;
        })
    }
}

/// Where a message goes or came from: a transport and an address whose type
/// belongs to the driver (a socket address, a flow id...).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target<A> {
    /// The transport.
    pub transport: Transport,
    /// The driver's address or flow token.
    pub addr: A,
}

impl<A> Target<A> {
    /// A target.
    pub fn new(transport: Transport, addr: A) -> Self {
        Target { transport, addr }
    }
}
