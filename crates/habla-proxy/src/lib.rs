//! # habla-proxy: a stateful SIP proxy core (RFC 3261 §16)
//!
//! [`Proxy`] holds the response contexts of a transaction-stateful proxy:
//! request validation (§16.3: 416, 483, 482 with spiral detection, 420),
//! self recognition and route pre-processing (§16.4, strict-route
//! compatibility included), target determination through a
//! [`LocationLookup`] (§16.5: 404 / 480), forwarding (§16.6: Request-URI,
//! Max-Forwards, Record-Route, Path, Via with a loop-detecting branch, next
//! hop), forking and the response context (§16.7: parallel within a q
//! group, serial across groups, best response, merged challenges, 503 →
//! 500, 2xx forwarded at once, CANCEL after a 2xx or 6xx), CANCEL from the
//! caller (§16.10), Timer C (§16.8) and the end-to-end ACK for a 2xx.
//!
//! It sits above two `habla_transaction::TransactionLayer`s the driver
//! owns (one for server transactions, one for client transactions, or one
//! for both), and below nothing: no socket, clock, DNS or randomness here.
//! The time is an argument, the entropy of branches and tags is the `seed`
//! given to [`Proxy::new`], and resolving a [`NextHop`] (RFC 3263) is the
//! driver's.
//!
//! ## The drive loop
//!
//! 1. Feed the transaction layers' events in:
//!    - `Event::Request { key, request, .. }` → [`Proxy::handle_request`]
//!      (with the local [`Interface`] it arrived on; CANCEL included);
//!    - `Event::Ack { request, .. }` → [`Proxy::handle_ack`];
//!    - for a client transaction: `Event::Response` →
//!      [`Proxy::handle_response`], `Event::Timeout` →
//!      [`Proxy::handle_client_timeout`], `Event::TransportError` →
//!      [`Proxy::handle_transport_error`]; `Event::StrayResponse` →
//!      [`Proxy::handle_stray_response`].
//! 2. After each call, drain [`Proxy::poll_action`] until `None`:
//!    - [`Action::SendResponse`] → `send_response(now, server_key, response)`
//!      (an error — the transaction ended — is ignored);
//!    - [`Action::Forward`] → resolve `next_hop`, `send_request`, then tell
//!      the proxy the client transaction's key with
//!      [`Proxy::handle_forwarded`], or [`Proxy::handle_forward_failed`]
//!      if no transaction could be started;
//!    - [`Action::Cancel`] → `send_request` of the CANCEL to the branch's
//!      destination (its responses need not come back);
//!    - [`Action::ForwardStateless`] / [`Action::ForwardResponseStateless`]
//!      → `send_stateless`.
//!
//!    Those calls may produce more actions: keep draining.
//! 3. When the clock reaches [`Proxy::poll_timeout`], call
//!    [`Proxy::handle_timeout`] and drain again.
//!
//! The location lookup is synchronous (through the trait): a proxy step
//! never waits, so the store answers from memory. That keeps one input →
//! its actions, with no lookup state to carry between calls.
//!
//! ## Bounds
//!
//! At most [`ProxyConfig::max_contexts`] response contexts live; beyond,
//! new requests get 503 with Retry-After. Every branch ends (a final
//! response, the client transaction's timeout, Timer C, or the non-INVITE
//! guard), a context ends when all its branches have and its final
//! response is sent, and an INVITE context that forwarded a 2xx lingers
//! [`ProxyConfig::linger`] for retransmitted 2xx, then goes.
//!
//! ## Not here
//!
//! Authentication (Proxy-Authorization, §16.3 step 6) belongs to the
//! layer above; REGISTER is for the registrar (the binary routes it
//! there); 3xx responses are forwarded, not recursed on (§16.5 allows
//! both).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod error;
mod location;
mod proxy;

pub use config::{Interface, LocalIdentity, ProxyConfig};
pub use error::Error;
pub use location::{LocationContact, LocationLookup, Lookup};
pub use proxy::{Action, BranchId, NextHop, Proxy};
