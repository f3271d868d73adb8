//! SDP for habla: session descriptions (RFC 8866, formerly RFC 4566) and
//! the offer/answer model (RFC 3264) for an audio call with PCMU, PCMA and
//! telephone-events.
//!
//! - [`SessionDescription::parse`] / [`SessionDescription::to_bytes`]: the
//!   typed model, parsed with [`Limits`] from hostile input (errors, never
//!   panics) and serialized with CRLF lines.
//! - [`OfferAnswer`]: creates offers and answers and takes answers, giving a
//!   [`NegotiatedAudio`] (peer address and port, codec and payload types,
//!   ptime, direction) for the media layer.
//!
//! No I/O: the session id and version (random or clock-derived) come from
//! the caller.
//!
//! ```
//! use habla_sdp::{LocalAudio, OfferAnswer, SessionDescription};
//!
//! let alice_ip = "192.0.2.1".parse().unwrap();
//! let bob_ip = "192.0.2.2".parse().unwrap();
//! let mut alice = OfferAnswer::new("alice", 1, 1, alice_ip);
//! let mut bob = OfferAnswer::new("bob", 2, 1, bob_ip);
//! let offer = alice.create_offer(&LocalAudio::new(alice_ip, 4000)).unwrap();
//! let offer = SessionDescription::parse(&offer.to_bytes()).unwrap();
//! let (answer, audio) = bob.create_answer(&offer, &LocalAudio::new(bob_ip, 5000)).unwrap();
//! assert_eq!(audio.unwrap().remote_port, 4000);
//! let audio = alice.handle_answer(&answer).unwrap().unwrap();
//! assert_eq!(audio.remote_port, 5000);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod offer_answer;
pub mod session;

pub use error::{OfferAnswerError, SdpError};
pub use offer_answer::{AudioCodec, LocalAudio, NegotiatedAudio, OfferAnswer};
pub use session::{
    AddressType, Attribute, Bandwidth, Connection, Direction, Limits, MediaDescription, Origin,
    RtpMap, SessionDescription, Timing,
};
