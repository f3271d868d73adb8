//! # habla-transaction: the SIP transaction layer
//!
//! The four transaction state machines of RFC 3261 §17 — client and
//! server, INVITE and non-INVITE — with the corrections of RFC 6026 (the
//! Accepted states and Timers L and M), their matching rules (§17.1.3,
//! §17.2.3 with the RFC 2543 fallback, §9.2 for CANCEL) and every timer
//! (A to M), as one sans-IO object: [`TransactionLayer`].
//!
//! Nothing here reads a clock, draws a random number or touches a socket:
//! the time comes in as an `Instant` argument, branch ids come in on the
//! requests (drawn by the caller, e.g. with [`new_branch`]), and bytes go
//! out as [`Transmit`] values.
//!
//! ## The drive loop
//!
//! Inputs are `handle_*` (from the network and the clock) and `send_*`
//! (commands from the transaction user); outputs are drained with
//! `poll_*`:
//!
//! 1. Call [`TransactionLayer::handle_message`] for each parsed message
//!    received, [`TransactionLayer::handle_transport_error`] when a send
//!    fails, and the `send_*` commands as the TU decides.
//! 2. After any of those, call [`TransactionLayer::poll_output`] until it
//!    returns `None`: each [`Output::Transmit`] goes to the transport,
//!    each [`Output::Event`] to the TU (which may call `send_*` again:
//!    keep draining).
//! 3. Ask [`TransactionLayer::poll_timeout`] for the next deadline; when
//!    the clock reaches it, call [`TransactionLayer::handle_timeout`] and
//!    drain again.
//!
//! ```
//! use habla_message::{Message, Method, RequestBuilder, Uri};
//! use habla_transaction::{Config, Event, Output, Target, TransactionLayer, Transport};
//! use std::time::{Duration, Instant};
//!
//! let now = Instant::now(); // the driver's clock, read outside the layer
//! let mut uac: TransactionLayer<&str> = TransactionLayer::new(Config::default());
//! let req = RequestBuilder::new(Method::Options, &Uri::parse("sip:bob@example.org")?)
//!     .via("UDP", "192.0.2.1:5060", "z9hG4bK74bf9", false)
//!     .max_forwards(70)
//!     .from("<sip:alice@example.org>;tag=1")
//!     .to("<sip:bob@example.org>")
//!     .call_id("a84b4c76e66710")
//!     .cseq(1)
//!     .build()?;
//! let key = uac.send_request(now, req, Target::new(Transport::Udp, "bob"))?;
//! assert!(matches!(uac.poll_output(), Some(Output::Transmit(_))));
//! assert_eq!(uac.poll_timeout(), Some(now + Duration::from_millis(500))); // Timer E
//! // ...no answer: Timer F fires at 64*T1 and the TU hears of it.
//! uac.handle_timeout(now + Duration::from_secs(32));
//! let mut timed_out = false;
//! while let Some(o) = uac.poll_output() {
//!     if let Output::Event(Event::Timeout { key: k, .. }) = o {
//!         timed_out = k == key;
//!     }
//! }
//! assert!(timed_out && uac.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## What the TU keeps
//!
//! The 2xx to an INVITE is passed up and neither ACKed nor retransmitted
//! here (RFC 6026): the UAC core sends the ACK with
//! [`TransactionLayer::send_stateless`]; the UAS core retransmits its 2xx
//! by calling [`TransactionLayer::send_response`] again while the server
//! transaction is Accepted. Answering a CANCEL (200, then 487 to the
//! INVITE) is the TU's as well: [`Event::Request`] tells it which INVITE a
//! CANCEL cancels.
//!
//! ## Bounds
//!
//! The number of live transactions is capped ([`Config::max_transactions`]):
//! beyond it new requests are refused ([`Event::Refused`], answerable with
//! a 503). Every transaction ends: each state has a timer leading to
//! Terminated (Proceeding states through [`Timer::C`] and
//! [`Timer::TuGuard`], see [`TimerConfig`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod build;
mod completed;
mod config;
mod error;
mod keys;
mod layer;
mod matching;
mod schedule;
mod state;

pub use build::{ack_for_non_2xx, cancel_for, overload_response};
pub use config::{Config, Target, Timer, TimerConfig, Transport};
pub use error::Error;
pub use keys::{CounterHash, CounterHasher};
pub use layer::{Event, Output, Refusal, TransactionKey, TransactionLayer, Transmit};
pub use state::{
    ClientInviteState, ClientNonInviteState, ServerInviteState, ServerNonInviteState, State,
};

/// A source of random numbers for branch ids (the layer itself draws none).
pub trait RandomSource {
    /// 64 random bits.
    fn next_u64(&mut self) -> u64;
}

impl<F: FnMut() -> u64> RandomSource for F {
    fn next_u64(&mut self) -> u64 {
        self()
    }
}

/// A fresh RFC 3261 branch id: the magic cookie `z9hG4bK` and 128 random
/// bits in hex (RFC 3261 §8.1.1.7: unique across space and time).
pub fn new_branch(rng: &mut impl RandomSource) -> String {
    format!(
        "{}{:016x}{:016x}",
        habla_message::MAGIC_COOKIE,
        rng.next_u64(),
        rng.next_u64()
    )
}
