//! # habla-auth: SIP digest authentication, sans-IO
//!
//! The server side of HTTP Digest as SIP uses it (RFC 3261 §22, updated by
//! RFC 8760 for SHA-256; the computations of RFC 7616), plus a small client
//! side. No I/O, no clock, no randomness: the current time comes in as unix
//! seconds ([`unix_seconds`] converts a `SystemTime`), nonce entropy and the
//! signing secret come from the caller, and the user store is looked up by
//! the caller between [`DigestServer::start`] and [`DigestServer::finish`].
//!
//! ```
//! use habla_auth::{AuthConfig, AuthDecision, DigestServer, Ha1};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = DigestServer::new(AuthConfig::new("example.org"), b"sixteen+ secret bytes")?;
//! let mut state = server.new_state();
//! let alice = Ha1::compute("alice", "example.org", "wonderland"); // what `habla user add` stores
//! let req = habla_message::Message::parse(bytes::Bytes::from_static(
//!     b"REGISTER sip:example.org SIP/2.0\r\n\
//!       Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n\
//!       From: <sip:alice@example.org>;tag=1\r\nTo: <sip:alice@example.org>\r\n\
//!       Call-ID: c1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"))?;
//! let now = 1_700_000_000;
//! let d = server.authenticate(&mut state, &req, "192.0.2.1".parse()?, now, |user| {
//!     (user == "alice").then(|| alice.clone())
//! });
//! assert!(matches!(d, AuthDecision::Challenge { stale: false, .. }));
//! // 401 with two WWW-Authenticate headers (SHA-256, then MD5):
//! let resp = server.respond(&req, &d, now, &[0x42; 16]).unwrap();
//! # let _ = resp;
//! # Ok(()) }
//! ```
//!
//! What is here:
//! - stored credentials: [`Ha1`] (`H(username:realm:password)` for MD5 and
//!   SHA-256; never a password);
//! - challenges ([`DigestServer::challenge`]): SHA-256 first, MD5 second,
//!   `qop="auth"`, stateless nonces signed with HMAC-SHA256 over a timestamp,
//!   caller entropy and the realm, a configurable lifetime, `stale=true`;
//! - verification ([`DigestServer::start`]/[`DigestServer::finish`], or
//!   [`DigestServer::authenticate`] with a synchronous lookup) returning an
//!   [`AuthDecision`]: realm, nonce signature and age, `uri` against the
//!   Request-URI, algorithm, qop/cnonce/nc, constant-time response check,
//!   nonce-count replay protection ([`NonceCounts`]), identity
//!   ([`check_identity`]), unknown users verified against a dummy HA1 so
//!   they look like wrong passwords, brute-force throttling per source
//!   ([`Throttle`]), trusted networks ([`TrustedNetworks`]);
//! - the client side ([`client`]): choose a challenge, compute `response`,
//!   write the credentials.
//!
//! Who owns what: [`DigestServer`] is immutable (share it across threads);
//! the two bounded tables live in [`AuthState`], which the driver owns (one
//! per shard on a multi-core server).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
mod credentials;
mod digest;
mod error;
mod identity;
mod network;
mod nonce;
mod replay;
mod server;
mod throttle;

pub use credentials::DigestCredentials;
pub use digest::{Algorithm, Ha1, ResponseInput};
pub use error::{ConfigError, CredentialsError};
pub use identity::{check_identity, matches_user, IdentityError, IdentityHeader};
pub use network::{Cidr, TrustedNetworks};
pub use replay::{NonceCountCheck, NonceCounts};
pub use server::{
    unix_seconds, uri_matches, AuthConfig, AuthDecision, AuthState, Challenge, ChallengeKind,
    ChallengeReason, DigestServer, ForbiddenReason, PendingAuth, Step,
};
pub use throttle::{Throttle, ThrottlePolicy};
