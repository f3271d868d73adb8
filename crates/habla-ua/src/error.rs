//! Errors of the user agent, grouped by who is at fault.

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UaError {
    /// A local problem: bad argument, unbindable address, unreadable file.
    #[error("{0}")]
    Local(String),
    /// The transport could not send.
    #[error("transport: {0}")]
    Transport(String),
    /// No final response: 408 (timeout) or 503 (transport failure).
    #[error("no response ({0})")]
    NoResponse(u16),
    /// The peer sent something we could not use (bad SDP, no dialog).
    #[error("peer: {0}")]
    Peer(String),
}
