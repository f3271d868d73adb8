//! # habla-tokio: sockets, clocks and threads for habla
//!
//! The only crate of habla that does network I/O. It owns the UDP and TCP
//! transports (RFC 3261 §18, RFC 3581, RFC 5626 §3.5.1 keep-alives) and
//! runs the sans-IO [`habla_transaction::TransactionLayer`] and the
//! transaction user (TU) above it.
//!
//! ## Shape: run to completion
//!
//! ```text
//!  UDP receive threads ──┐ recvmmsg (every datagram waiting, with its kernel
//!  (N per socket)        │ receive time), parse, stamp received/rport,
//!                        │ 400 for malformed requests
//!  TCP connection task ──┤ StreamFramer, CRLF pong, idle / slow-loris /
//!  (one per connection)  │ buffer caps, parse
//!                        ▼
//!        shard_of(message) ──► lock shard k: TransactionLayer<Flow>::handle_message
//!                                            TU::on_event(event, Io)   (in place)
//!                                            Io::send_* ──► the same layer
//!                              unlock ──► the batch's datagrams: sendmmsg;
//!                                         connection writes: its write queue
//!  timer task of shard k: sleeps until min(layer, TU) deadline, then the same
//! ```
//!
//! A message is handled start to finish by the thread that read it: no
//! queue, task or thread hand-off between the socket and the TU. A shard
//! ([`shard_of`]: requests by a hash of the top Via branch, or of Call-ID,
//! From tag and CSeq number for RFC 2543; responses by the shard mark
//! ([`mark_branch`]) the sending shard put in the branch) is a lock domain:
//! its transaction layer and its TU behind one mutex, so a transaction's
//! messages always meet on one shard and there is no global lock. There
//! are more shards than threads (four per thread by default: [`Layout`]),
//! so two threads rarely want the same one. Any shard writes to any
//! connection through a lock-striped registry of per-connection write
//! queues.
//!
//! What cannot finish at once leaves the lock and comes back through a
//! [`ShardHandle`]: a connection being opened (a request to it gets its
//! transaction key at once and waits for it), a TU's DNS lookup or disk
//! write. A TU must not block.
//!
//! ## Using it
//!
//! * [`Element`]: a [`TransactionUser`] per shard, called in place — what
//!   `habla serve` uses. Act through the [`Io`] each call gets:
//!   [`Io::send_response`] (RFC 3261 §18.2.2: same connection for TCP,
//!   `received`/`rport` for UDP), [`Io::send_request`] (a client
//!   transaction; its responses come back as [`Event::Response`] with the
//!   returned key, a timeout as [`Event::Timeout`]),
//!   [`Io::send_stateless`] (the ACK of a 2xx, stateless forwards).
//! * [`Endpoint`] / [`ShardedEndpoint`]: the same, with the events passed
//!   into a bounded channel for a TU running in a task of its own (the
//!   user agent, tests) and a cloneable [`Handle`] to send with. When the
//!   channel is full a new request is answered `503` (with `Retry-After`)
//!   and other events are dropped and counted.
//!
//! A [`Destination`] is a [`Flow`] (the stable token for "the connection
//! or 5-tuple a message came from", found in every event's `source`) or a
//! transport and socket address. Requests reuse an open connection to the
//! address, whoever opened it; a UDP request larger than the RFC 3261
//! §18.1.1 threshold goes over TCP (and over UDP after all if the
//! connection cannot be opened). The transport writes the top Via's
//! transport and sent-by.
//!
//! ## What the transport does by itself
//!
//! Fills `received` and `rport` on received requests; answers malformed
//! requests `400` (`ParseError::response`) and drops what cannot be
//! answered; answers `503` + `Retry-After` to a new request that finds the
//! transaction table full or that waited in the socket longer than
//! `max_queue_delay` (kernel receive time, `SO_TIMESTAMPNS`); answers
//! CRLFCRLF pings with CRLF; closes connections that are idle, that do not
//! complete a message within the deadline (slow loris), that buffer too
//! much or lose their framing; refuses connections beyond the cap.
//! Everything is counted ([`StatsSnapshot`]).
//!
//! ## Adding transports
//!
//! [`Flow`] and [`Destination`] carry a `habla_transaction::Transport`, and
//! the shards only know connections as write queues in a registry keyed by
//! flow. A TLS transport is an acceptor/connector that wraps the TCP stream
//! and runs the same generic stream task (any `AsyncRead + AsyncWrite`);
//! WebSocket needs a reader that yields one message per frame and hands it
//! to the shards the same way. Neither touches the transaction layer.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod batch;
mod config;
mod core;
mod endpoint;
mod flow;
pub mod options;
mod shard;
mod stats;
mod transport;
pub mod via;

pub use crate::batch::batch;
pub use crate::core::{Destination, Io, ShardHandle, TransactionUser};
pub use config::{ListenPoint, TransportConfig};
pub use endpoint::{
    default_shards, ChannelUser, Element, Endpoint, Handle, Layout, ShardedEndpoint,
};
pub use flow::{ConnId, Flow};
pub use habla_transaction::{Event, TransactionKey, Transport};
pub use shard::{mark_branch, marked_shard, shard_of, MARK};
pub use stats::StatsSnapshot;

use std::net::SocketAddr;

/// Why a send or a bind failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transaction layer refused (unknown transaction, wrong state,
    /// missing branch, limit reached...).
    #[error(transparent)]
    Transaction(#[from] habla_transaction::Error),
    /// The message lacks what the transport needs (a top Via).
    #[error("message: {0}")]
    Message(#[from] habla_message::Error),
    /// Binding a listening point failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The transport is not implemented (yet): TLS, SCTP, WS, WSS.
    #[error("transport {0:?} is not supported")]
    Unsupported(Transport),
    /// No listening point can reach the address (e.g. no UDP socket of its
    /// address family).
    #[error("no route to {1} over {0:?}")]
    NoRoute(Transport, SocketAddr),
    /// The driver has stopped.
    #[error("the driver has stopped")]
    Stopped,
}
