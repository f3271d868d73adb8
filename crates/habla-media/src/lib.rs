//! The media layer of habla, sans-IO: bytes, samples and instants in,
//! bytes, samples and deadlines out. Nothing here opens a socket, reads a
//! clock or draws a random number: the SSRC, initial sequence number and
//! timestamp come from the caller, arrival times come in as `Instant`s.
//!
//! - [`g711`]: µ-law/A-law encode and decode (ITU-T G.711, PCMU/PCMA).
//! - [`rtp`]: RTP packets (RFC 3550 §5) and a [`rtp::Packetizer`] for
//!   20 ms frames.
//! - [`rtcp`]: SR/RR/SDES/BYE (RFC 3550 §6) compound packets.
//! - [`statistics`]: receiver statistics of a source (RFC 3550 §A.1, §A.3,
//!   §A.8): sequence validation, loss, jitter, report blocks.
//! - [`jitter`]: a fixed-delay playout buffer.
//! - [`dtmf`]: telephone-events (RFC 4733): payload, sender, receiver.
//! - [`tone`]: sine generation and Goertzel detection.
//! - [`wav`]: WAV files to and from 8 kHz mono (hound).
//!
//! Every parser takes hostile input: errors, never panics.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dtmf;
pub mod error;
pub mod g711;
pub mod jitter;
pub mod rtcp;
pub mod rtp;
pub mod statistics;
pub mod tone;
pub mod wav;

pub use error::{RtcpError, RtpError, TelephoneEventError, WavError};
pub use g711::G711;
pub use rtp::{Packetizer, RtpPacket};
