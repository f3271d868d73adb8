//! # habla-tokio: sockets, clocks and tasks for habla
//!
//! The only crate of habla that does I/O. It owns the UDP and TCP
//! transports (RFC 3261 §18, RFC 3581, RFC 5626 §3.5.1 keep-alives) and a
//! driver task that feeds the sans-IO [`habla_transaction::TransactionLayer`]
//! with parsed messages and the time, executes its transmissions and hands
//! its events to the transaction user (TU).
//!
//! ## Shape
//!
//! ```text
//!  UDP reader task ─┐  parse, stamp received/rport,      ┌──────── driver task ─────────┐
//!  (one per socket) │  400 for malformed requests        │ TransactionLayer<Flow>        │
//!                   ├─── Input (bounded mpsc) ─────────► │ handle_message / handle_timeout│──► Event (bounded mpsc) ──► TU
//!  TCP conn task ───┘  StreamFramer, CRLF pong,          │ poll_output: Transmit ──► UDP │
//!  (one per conn)      idle / slow-loris / buffer caps   │   socket or conn write queue  │◄── Handle::send_* (bounded mpsc)
//!                                                        └───────────────────────────────┘
//! ```
//!
//! ## Sharding
//!
//! [`ShardedEndpoint`] runs N such drivers (shards), each with its own
//! transaction layer, channels and [`Handle`], behind the same sockets:
//! several reader tasks per UDP socket and the connection tasks parse and
//! hand each message to the shard that owns its transaction
//! ([`shard_of`]: requests by a hash of the top Via branch, or of Call-ID,
//! From tag and CSeq number for RFC 2543; responses by the shard mark
//! ([`mark_branch`]) that the sending shard put in the branch). Any shard
//! writes to any connection through a lock-striped registry of
//! per-connection write queues. A TU runs one task per shard.
//! [`Endpoint::bind`] is the one-shard case (no branch marks).
//!
//! Every channel is bounded. The driver never waits for the TU: when the
//! event channel is full, a new request is answered `503` (with
//! `Retry-After`) and other events are dropped and counted. Network tasks
//! wait for the driver (back-pressure onto the sockets).
//!
//! ## Using it as a transaction user
//!
//! 1. [`Endpoint::bind`] with a [`TransportConfig`] (listening points and
//!    limits) and a `habla_transaction::Config` (timers).
//! 2. Receive [`Event`]s with [`Endpoint::recv`] (or move
//!    [`Endpoint::events`] into a task).
//! 3. Act through a cloneable [`Handle`]:
//!    * [`Event::Request`] → [`Handle::send_response`]`(key, response)`:
//!      the response follows RFC 3261 §18.2.2 (same connection for TCP;
//!      `received`/`rport` for UDP).
//!    * [`Handle::send_request`]`(request, destination)` starts a client
//!      transaction; its responses arrive as [`Event::Response`] with the
//!      returned key, a timeout as [`Event::Timeout`].
//!    * [`Handle::send_stateless`] for the ACK of a 2xx and other
//!      transaction-less sends.
//!
//! A [`Destination`] is a [`Flow`] (the stable token for "the connection
//! or 5-tuple a message came from", found in every event's `source`) or a
//! transport and socket address. Requests reuse an open connection to the
//! address, whoever opened it; a UDP request larger than the RFC 3261
//! §18.1.1 threshold goes over TCP (falling back to UDP if the connection
//! fails). The transport writes the top Via's transport and sent-by.
//!
//! ## What the transport does by itself
//!
//! Fills `received` and `rport` on received requests; answers malformed
//! requests `400` (`ParseError::response`) and drops what cannot be
//! answered; answers CRLFCRLF pings with CRLF; closes connections that are
//! idle, that do not complete a message within the deadline (slow loris),
//! that buffer too much or lose their framing; refuses connections beyond
//! the cap. Everything is counted ([`StatsSnapshot`]).
//!
//! ## Adding transports
//!
//! [`Flow`] and [`Destination`] carry a `habla_transaction::Transport`, and
//! the driver only knows connections as write queues in a registry keyed by
//! flow. A TLS transport is an acceptor/connector that wraps the TCP stream
//! and runs the same generic stream task (any `AsyncRead + AsyncWrite`);
//! WebSocket needs a reader that yields one message per frame and talks to
//! the driver with the same inputs. Neither touches the transaction layer.

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
    /// A connection could not be opened.
    #[error("cannot connect to {0}: {1}")]
    Connect(SocketAddr, std::io::ErrorKind),
    /// The driver has stopped.
    #[error("the driver has stopped")]
    Stopped,
}
