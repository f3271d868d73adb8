//! Typed errors, grouped by who is at fault (see the architecture guide,
//! habit 9): the peer sent unusable credentials ([`CredentialsError`]), or
//! the local configuration is wrong ([`ConfigError`]).

use thiserror::Error;

/// Why an `Authorization`/`Proxy-Authorization` value (or a challenge a
/// client received) cannot be used. Every variant is the peer's fault and
/// maps to 400 Bad Request when it comes from a request (RFC 7616 §3.4:
/// the server "SHOULD return a 400 Bad Request" for a malformed or
/// mismatching `uri`; RFC 3261 §21.4.1 for syntax).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The header value does not follow the `credentials` grammar (RFC 3261
    /// §25.1); the message layer's reason is kept.
    #[error("unreadable credentials: {0}")]
    Syntax(String),
    /// The scheme is not `Digest` (RFC 3261 §22.4: SIP uses Digest only).
    #[error("authentication scheme {0:?} is not Digest")]
    UnsupportedScheme(String),
    /// A parameter the digest computation needs is absent (RFC 7616 §3.4).
    #[error("credentials lack the {0} parameter")]
    Missing(&'static str),
    /// A parameter appears twice (RFC 7616 §3.4: each at most once).
    #[error("credentials repeat the {0} parameter")]
    Duplicate(&'static str),
    /// A parameter is longer than this engine accepts.
    #[error("the {0} parameter is too long")]
    TooLong(&'static str),
    /// A parameter's value does not follow its grammar (`nc` is 8 hex
    /// digits, `response` is hex of the algorithm's size...).
    #[error("the {0} parameter is malformed")]
    Invalid(&'static str),
    /// The `algorithm` is not one this server offered (RFC 7616 §3.4: the
    /// client uses an algorithm from the challenge). Answered with a new
    /// challenge, not 400.
    #[error("algorithm {0:?} was not offered")]
    UnsupportedAlgorithm(String),
    /// `qop` is absent or not `auth` (this engine offers only `qop="auth"`,
    /// RFC 7616 §3.3; `auth-int` is not offered).
    #[error("qop {0:?} is not supported (only auth)")]
    UnsupportedQop(String),
    /// `uri` does not name the Request-URI (RFC 7616 §3.4.6, RFC 2617
    /// §3.2.2.5).
    #[error("digest uri {digest_uri:?} does not match the Request-URI {request_uri:?}")]
    UriMismatch {
        /// The `uri` parameter as sent.
        digest_uri: String,
        /// The Request-URI as received.
        request_uri: String,
    },
    /// The request has no method or Request-URI (a response was passed).
    #[error("not a request")]
    NotARequest,
    /// A challenge (client side) offers no algorithm this crate implements.
    #[error("no usable digest challenge (realm, nonce, supported algorithm and qop)")]
    NoUsableChallenge,
}

/// A configuration the engine refuses: the operator's fault, reported at
/// start-up.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The nonce secret is shorter than 16 bytes.
    #[error("the nonce secret must be at least 16 bytes (got {0})")]
    SecretTooShort(usize),
    /// The realm is empty or holds characters that cannot be written in a
    /// quoted string (`"`, `\`, control characters).
    #[error("realm {0:?} is empty or not representable in a quoted string")]
    InvalidRealm(String),
    /// The opaque value cannot be written in a quoted string.
    #[error("opaque {0:?} is not representable in a quoted string")]
    InvalidOpaque(String),
    /// A trusted network is not `address/prefix` (or a bare address).
    #[error("invalid network {network:?}: {reason}")]
    InvalidNetwork {
        /// The text as configured.
        network: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A limit that must be positive is zero (nonce lifetime, table
    /// capacities, failure threshold).
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// ACK and CANCEL cannot be challenged (RFC 3261 §22.1: they cannot be
    /// resubmitted with credentials).
    #[error("method {0} cannot be challenged (RFC 3261 §22.1)")]
    UnchallengeableMethod(String),
    /// No algorithm is enabled.
    #[error("at least one digest algorithm must be offered")]
    NoAlgorithm,
}
