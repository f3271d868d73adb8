//! Errors, grouped by who is at fault. Problems with a received message are
//! never errors: they become SIP responses (or silent drops for ACK).

use crate::BranchId;
use habla_transaction::TransactionKey;

/// Why the proxy refused an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ----- local misuse ---------------------------------------------------
    /// The branch does not exist (its response context ended, or it was
    /// never created).
    #[error("no live branch {0:?}")]
    UnknownBranch(BranchId),
    /// `handle_forwarded` was called twice for one branch.
    #[error("branch {0:?} already has a client transaction")]
    BranchBound(BranchId),
    /// No live branch follows this client transaction.
    #[error("no branch follows client transaction {0:?}")]
    UnknownClient(TransactionKey),
    /// A server transaction key is already used by a live response context.
    #[error("server transaction {0:?} already has a response context")]
    DuplicateServerKey(TransactionKey),
    /// The input was not a request (`handle_request`, `handle_ack`) or not a
    /// response (`handle_response`).
    #[error("expected a {expected}")]
    WrongKind {
        /// "request" or "response".
        expected: &'static str,
    },

    // ----- a message could not be built -----------------------------------
    /// Building a response or a forwarded request failed (a header the
    /// proxy copies is malformed beyond what the parser caught).
    #[error("could not build a message: {0}")]
    Build(#[from] habla_message::Error),
}
