//! Errors, grouped by who is at fault.

use crate::{State, TransactionKey};

/// Why the transaction layer refused an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ----- the peer sent something malformed ------------------------------
    /// A header the transaction layer needs (Via, CSeq, Call-ID, From, To,
    /// the Request-URI) is missing or malformed.
    #[error("message cannot be matched to a transaction: {0}")]
    Malformed(#[from] habla_message::Error),

    // ----- local misuse ---------------------------------------------------
    /// `send_request` was given a response, or `send_response` a request.
    #[error("expected a {expected}")]
    WrongKind {
        /// "request" or "response".
        expected: &'static str,
    },
    /// A request's top Via lacks an RFC 3261 branch (`z9hG4bK...`,
    /// RFC 3261 §8.1.1.7): locally built requests must carry one.
    #[error("request's top Via has no RFC 3261 branch (z9hG4bK...)")]
    NoRfc3261Branch,
    /// ACK is never sent in a client transaction (RFC 3261 §17.1): the ACK
    /// for a 2xx is the TU's, sent with `send_stateless`.
    #[error("ACK creates no client transaction; send it with send_stateless")]
    AckTransaction,
    /// A client transaction with this branch and method exists already.
    #[error("a client transaction with this branch and method exists")]
    Duplicate,
    /// No live transaction has this key (it may have terminated).
    #[error("no live transaction {0:?}")]
    UnknownTransaction(TransactionKey),
    /// The transaction exists but cannot take this input in its state.
    #[error("transaction {key:?} in state {state:?} cannot {what}")]
    InvalidState {
        /// The transaction.
        key: TransactionKey,
        /// Its state.
        state: State,
        /// What was attempted.
        what: &'static str,
    },

    // ----- a limit was hit ------------------------------------------------
    /// [`crate::Config::max_transactions`] live transactions exist.
    #[error("transaction limit ({limit}) reached")]
    TooManyTransactions {
        /// The configured limit.
        limit: usize,
    },
}
