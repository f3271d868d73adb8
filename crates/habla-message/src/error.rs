//! Errors of the message layer, each naming what is wrong so that the text
//! can go straight into a `Warning` header or a log line.

use crate::Message;
use std::fmt;

/// What is wrong with a message, a header, or a URI.
///
/// Every variant maps to the response a server sends for it
/// ([`Error::status_code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Nothing but whitespace was received.
    #[error("message is empty")]
    Empty,
    /// The start line does not follow RFC 3261 §7.1 / §7.2.
    #[error("start line is malformed: {0}")]
    StartLine(String),
    /// A SIP version other than SIP/2.0 (answered with 505).
    #[error("SIP version {0} is not supported; only SIP/2.0 is")]
    Version(String),
    /// A status code that is not three digits between 100 and 699.
    #[error("status code {0} is not between 100 and 699")]
    StatusCode(String),
    /// The header section contains octets that are not UTF-8 (RFC 3261 §7.3.1).
    #[error("header section is not valid UTF-8")]
    NotUtf8,
    /// A header line that is not `name: value`.
    #[error("header line {line} is malformed: {reason}")]
    HeaderLine {
        /// 1-based line number, the start line being line 1.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A header whose value does not follow its grammar.
    #[error("{header} header is malformed: {reason}")]
    Header {
        /// The header's canonical name.
        header: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A URI that does not follow its grammar.
    #[error("URI {uri:?} is malformed: {reason}")]
    Uri {
        /// The URI as written (truncated to 100 octets).
        uri: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A header that RFC 3261 §8.1.1 requires is absent.
    #[error("mandatory {0} header is missing")]
    Missing(&'static str),
    /// A header that may appear once appears several times with different values.
    #[error("{0} header appears more than once with different values")]
    Duplicate(&'static str),
    /// RFC 3261 §8.1.1.5: the CSeq method must equal the request method.
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMismatch {
        /// Method named in CSeq.
        cseq: String,
        /// Method of the request line.
        method: String,
    },
    /// Content-Length announces more octets than arrived (RFC 3261 §18.3).
    #[error("Content-Length {declared} exceeds the {available} octets of body received")]
    BodyTruncated {
        /// The announced length.
        declared: usize,
        /// What the datagram holds.
        available: usize,
    },
    /// A stream message without Content-Length (mandatory on streams, RFC 3261 §18.3).
    #[error("Content-Length is mandatory on stream transports")]
    ContentLengthRequired,
    /// A configured limit was hit.
    #[error("{what} exceeds the limit of {limit}")]
    Limit {
        /// Which limit.
        what: LimitKind,
        /// Its configured value.
        limit: usize,
    },
    /// The Request-URI carries URI headers, which RFC 3261 §19.1.1 forbids there.
    #[error("Request-URI must not carry URI headers (?...)")]
    RequestUriHeaders,
}

/// Which configured limit a message exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKind {
    /// Whole message size in octets.
    MessageSize,
    /// Header section size in octets.
    HeaderSize,
    /// Number of header lines.
    HeaderCount,
    /// Body size in octets.
    BodySize,
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitKind::MessageSize => "message size",
            LimitKind::HeaderSize => "header section size",
            LimitKind::HeaderCount => "number of header lines",
            LimitKind::BodySize => "body size",
        })
    }
}

impl Error {
    /// The response code a server answers this error with.
    pub fn status_code(&self) -> u16 {
        match self {
            Error::Version(_) => 505,
            Error::Limit {
                what: LimitKind::MessageSize | LimitKind::BodySize,
                ..
            } => 513,
            Error::Limit { .. } => 400,
            _ => 400,
        }
    }

    pub(crate) fn header(header: &'static str, reason: impl Into<String>) -> Self {
        Error::Header {
            header,
            reason: reason.into(),
        }
    }

    pub(crate) fn uri(uri: &str, reason: &'static str) -> Self {
        let mut end = uri.len().min(100);
        while !uri.is_char_boundary(end) {
            end -= 1;
        }
        Error::Uri {
            uri: uri.get(..end).unwrap_or("").to_owned(),
            reason,
        }
    }
}

/// A message that could not be parsed, with what survived of it.
///
/// When the start line and header lines were readable, [`ParseError::message`]
/// holds the message parsed lazily, so that a server can answer it with
/// [`ParseError::status_code`] (RFC 3261 §8.2.6.1: a response copies Via,
/// From, To, Call-ID and CSeq; [`ParseError::can_answer`] says whether enough
/// of those survived).
#[derive(Debug, Clone)]
pub struct ParseError {
    error: Error,
    message: Option<Box<Message>>,
}

impl ParseError {
    pub(crate) fn new(error: Error, message: Option<Message>) -> Self {
        ParseError {
            error,
            message: message.map(Box::new),
        }
    }

    /// What is wrong.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The response code to answer with, when the message can be answered.
    pub fn status_code(&self) -> u16 {
        self.error.status_code()
    }

    /// The unvalidated message, when the framing and header lines were readable.
    pub fn message(&self) -> Option<&Message> {
        self.message.as_deref()
    }

    /// Whether a response can be sent: the message is a request with a Via
    /// and a CSeq line, which the response copies as written (RFC 3261
    /// §8.2.6.2) so that the client can match it even when their values are
    /// malformed; it goes back to where the request came from (RFC 3581
    /// style). Responses are never answered: a malformed one is dropped.
    pub fn can_answer(&self) -> bool {
        match self.message.as_deref() {
            Some(m) => {
                m.is_request()
                    && m.typed_values(crate::HeaderName::Via).next().is_some()
                    && m.typed_values(crate::HeaderName::CSeq).next().is_some()
            }
            None => false,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for ParseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Error {
        e.error
    }
}
