//! # habla-ua: a SIP user agent with media
//!
//! The user agent behind `habla register`, `habla call`, `habla answer`,
//! `habla message` and `habla options`, as a library that later services
//! (conferences, queues, IVR) reuse. It sits beside `habla-tokio` (it does
//! I/O): SIP goes through a `habla_tokio::Endpoint`, RTP through its own
//! tokio UDP socket per call. Protocol logic comes from the sans-IO crates:
//! dialogs (`habla-dialog`), digest (`habla-auth`), offer/answer
//! (`habla-sdp`), G.711/RTP/DTMF/jitter buffer (`habla-media`).
//!
//! ```text
//!  UserAgent::bind ──► Endpoint + dispatcher task
//!     dispatcher: Response/Timeout ─► the ClientTransaction that sent it (by key)
//!                 Request/ACK/stray 2xx with a known Call-ID ─► that call
//!                 new INVITE, MESSAGE ─► Incoming (the application)
//!                 OPTIONS ─► 200; unknown in-dialog request ─► 481
//!  Registration ─► REGISTER (+digest), keep_refreshed, unregister
//!  place_call / answer ─► INVITE session: dialog, ACK, CANCEL, BYE, media
//!  RtpSocket::start ─► MediaSession: 20 ms frames on a tokio interval,
//!                      jitter buffer → recording, RFC 4733 DTMF, symmetric RTP
//! ```
//!
//! In a call: early media (a provisional response with SDP starts the
//! media before the 2xx), hold/resume both ways by re-INVITE (RFC 3264
//! §8.4; [`CallControl::hold`], the peer's re-INVITE or UPDATE moves or
//! silences our stream), 491 on glare and retry after the RFC 3261 §14.1
//! delay, session timers (RFC 4028: we refresh at half the interval when we
//! are the refresher, answer the peer's refreshes, end the call when they
//! stop), RTCP SR/RR every ~5 s on RTP port + 1 (the peer's view of our
//! stream lands in [`MediaReport::peer`]).
//!
//! Not here yet: late offers (INVITE without SDP gets 488), reliable
//! provisional responses (100rel/PRACK), SRV/NAPTR lookups, 422/Min-SE
//! (any interval the peer asks for is accepted).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod agent;
mod call;
mod error;
pub mod media;
mod register;

pub use agent::{
    new_branch, random_hex, random_u32, resolve_host, CallMessage, ClientTransaction, Credentials,
    Identity, Incoming, IncomingCall, TxEvent, UaConfig, UserAgent, ALLOW,
};
pub use call::{
    answer, ignore_events, place_call, AnswerOptions, CallControl, CallEvent, CallOptions,
    CallReport, Ending, EventSink,
};
pub use error::UaError;
pub use media::{
    AudioSource, LiveStats, MediaConfig, MediaReport, MediaStats, PeerReport, RtpSocket,
};
pub use register::{RegisterOutcome, Registration};
