//! # habla-message: the SIP message layer
//!
//! Parses SIP requests and responses (RFC 3261 §7, §20, §25) from bytes,
//! without copying: a [`Message`] keeps the received buffer (`bytes::Bytes`)
//! and every value it hands out is a slice of it ([`SipStr`]). Header values
//! are parsed on first access and the parsed view is cached.
//!
//! ```
//! use habla_message::{Message, Method};
//! let m = Message::parse(bytes::Bytes::from_static(
//!     b"OPTIONS sip:bob@example.org SIP/2.0\r\n\
//!       Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9\r\n\
//!       From: <sip:alice@example.org>;tag=1\r\n\
//!       To: <sip:bob@example.org>\r\n\
//!       Call-ID: a84b4c76e66710\r\n\
//!       CSeq: 1 OPTIONS\r\n\
//!       Content-Length: 0\r\n\r\n",
//! ))?;
//! assert_eq!(m.method(), Some(&Method::Options));
//! assert_eq!(m.top_via()?.branch(), Some("z9hG4bK74bf9"));
//! assert_eq!(m.from()?.tag(), Some("1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What is here: the parser and its [`Limits`]; typed headers ([`Via`],
//! [`NameAddr`], [`Contact`], [`CSeq`], [`MediaType`], [`AuthParams`]);
//! URIs ([`Uri`], with RFC 3261 §19.1.4 equality); builders
//! ([`RequestBuilder`], [`ResponseBuilder`]); edits that serialise untouched
//! lines byte for byte; the stream framer ([`StreamFramer`]). What is not:
//! any I/O, clock or randomness.
//!
//! Every input is treated as hostile: no function here panics on any bytes,
//! recursion never depends on the input, and allocation is bounded by the
//! input's size and the limits.

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod builder;
mod error;
mod framing;
mod headers;
mod lines;
mod message;
mod method;
mod name;
mod params;
mod scan;
mod simd;
mod text;
mod uri;

pub mod fuzzing;

pub use builder::{reason_phrase, RequestBuilder, ResponseBuilder};
pub use error::{Error, LimitKind, ParseError};
pub use framing::{Frame, StreamFramer};
pub use headers::{
    parse_qvalue, AuthParams, CSeq, Contact, MediaType, NameAddr, Via, MAGIC_COOKIE,
};
pub use message::{HeaderRef, Limits, Message};
pub use method::Method;
pub use name::HeaderName;
pub use params::{ParamIter, Params};
pub use text::{Decimal, Fnv1a, SipStr};
pub use uri::{percent_decode, AbsoluteUri, Host, HostKind, SipUri, TelUri, Uri};
