//! Errors of the SDP layer, grouped by who is at fault: the peer's SDP is
//! malformed or too large ([`SdpError`]), or the peer's offer or answer
//! breaks the offer/answer rules, or the local side misused the state
//! machine ([`OfferAnswerError`]).

/// A session description that cannot be parsed (RFC 8866 §5, §9 grammar).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The description is larger than the configured limit.
    #[error("SDP of {size} octets exceeds the limit of {limit}")]
    TooLarge {
        /// Octets received.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// More lines of some kind than the configured limit.
    #[error("SDP has more {what} than the limit of {limit}")]
    TooMany {
        /// What was counted ("media descriptions", "attributes", ...).
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The description is not UTF-8 (RFC 8866 §5: the default charset).
    #[error("SDP is not valid UTF-8")]
    NotUtf8,
    /// A line is not `<type>=<value>` with a single-letter type.
    #[error("line {line}: not a <type>=<value> line")]
    MalformedLine {
        /// 1-based line number.
        line: usize,
    },
    /// A required line is missing or out of place ("v=" first, then "o=",
    /// then "s=", RFC 8866 §5).
    #[error("missing or misplaced \"{0}=\" line")]
    Missing(char),
    /// A field of a line has a bad value.
    #[error("line {line}: invalid {field}")]
    InvalidField {
        /// 1-based line number.
        line: usize,
        /// The field ("version", "origin", "connection", "port", ...).
        field: &'static str,
    },
    /// A line type that is not allowed where it appears (for example "t="
    /// inside a media description) or not known (RFC 8866 §5: parsers reject
    /// descriptions with unknown type letters).
    #[error("line {line}: unexpected \"{kind}=\" line")]
    UnexpectedLine {
        /// 1-based line number.
        line: usize,
        /// The type letter.
        kind: char,
    },
}

/// The offer/answer exchange cannot go on (RFC 3264).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OfferAnswerError {
    /// Local misuse: an offer of ours is still waiting for its answer
    /// (a SIP UA answers a crossing offer with 491, RFC 3261 §14.2).
    #[error("an offer is already pending")]
    OfferPending,
    /// Local misuse: an answer arrived but no offer of ours is pending.
    #[error("no offer is pending")]
    NoOfferPending,
    /// The answer does not have one media description per offered one, in
    /// the same order (RFC 3264 §6).
    #[error("answer has {answer} media descriptions, the offer had {offer}")]
    MediaCountMismatch {
        /// Media descriptions in the offer.
        offer: usize,
        /// Media descriptions in the answer.
        answer: usize,
    },
    /// The answer changed the media type of a stream (RFC 3264 §6).
    #[error("answer media description {0} has another media type than the offer")]
    MediaTypeMismatch(usize),
    /// The answer accepted the audio stream with no format of ours
    /// (RFC 3264 §6.1: an answer only lists offered formats).
    #[error("answer uses no offered codec")]
    NoCommonCodec,
    /// An accepted stream has no connection address ("c=" at media or
    /// session level, RFC 8866 §5.7).
    #[error("media description {0} has no connection address")]
    MissingConnection(usize),
}
