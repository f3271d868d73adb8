//! Counters of what the transports received, refused and dropped.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Live counters, shared by the driver and the network tasks.
        #[derive(Debug, Default)]
        pub(crate) struct Stats {
            $(pub(crate) $name: AtomicU64,)*
        }

        /// A snapshot of the transport counters ([`crate::Endpoint::stats`]).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct StatsSnapshot {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Stats {
            pub(crate) fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

counters! {
    /// Datagrams received (all UDP sockets).
    datagrams_received,
    /// Batches of datagrams read by a socket's helper threads (called in
    /// when its first thread takes a full batch: a backlog).
    udp_helper_batches,
    /// Datagrams that were only CR/LF (keep-alives), ignored.
    datagram_keepalives,
    /// Messages received over streams.
    stream_messages_received,
    /// Malformed requests answered with 400/505/513 (`ParseError::response`).
    malformed_answered,
    /// Malformed messages dropped (unanswerable, or responses).
    malformed_dropped,
    /// Parsed messages the transaction layer could not match (answered 400
    /// when they were requests).
    unmatchable,
    /// RFC 5626 CRLFCRLF pings answered with CRLF.
    pings_answered,
    /// TCP connections accepted.
    connections_accepted,
    /// TCP connections opened by us.
    connections_opened,
    /// Connections refused because `max_connections` was reached.
    connections_refused,
    /// Connections closed for idleness.
    closed_idle,
    /// Connections closed for not completing a message in time (slow loris).
    closed_slow,
    /// Connections closed because their framing was lost or a buffer limit hit.
    closed_framing,
    /// Connections closed because a write timed out or failed.
    closed_write,
    /// Requests moved from UDP to TCP by the RFC 3261 §18.1.1 size rule.
    udp_to_tcp,
    /// Sends that failed (no route, closed connection, full write queue).
    send_failures,
    /// Events dropped because the TU's channel was full.
    events_dropped,
    /// New requests answered 503 by the driver: the TU's channel was full,
    /// the transaction table was full, or they waited longer than
    /// `max_queue_delay`.
    overload_rejections,
}
