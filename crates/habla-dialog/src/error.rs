//! Errors, grouped by who is at fault.

/// Why a dialog could not be created, updated or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialogError {
    // ----- the peer sent something malformed ------------------------------
    /// A header the dialog needs (From, To, Call-ID, CSeq, Contact,
    /// Record-Route, the Request-URI) does not follow its grammar.
    #[error("malformed {header}: {source}")]
    Malformed {
        /// Which header (or "Request-URI").
        header: &'static str,
        /// What the message layer found wrong.
        #[source]
        source: habla_message::Error,
    },
    /// A From or To tag the dialog id needs is absent (RFC 3261 §12.1.1,
    /// §12.1.2; RFC 2543 peers without tags are not supported).
    #[error("{0} header has no tag")]
    MissingTag(&'static str),
    /// The message establishing or refreshing the dialog has no Contact
    /// (RFC 3261 §12.1.1, §12.1.2 require one).
    #[error("no Contact to take the remote target from")]
    MissingContact,
    /// The Contact cannot be a remote target: `*`, several values, or not a
    /// SIP/SIPS URI.
    #[error("Contact cannot be the remote target: {0}")]
    BadContact(&'static str),
    /// A Record-Route entry is not a SIP or SIPS URI.
    #[error("Record-Route entry {0:?} is not a SIP or SIPS URI")]
    BadRecordRoute(String),

    // ----- the peer misbehaved --------------------------------------------
    /// The response does not answer the request given with it, or the
    /// message does not belong to this dialog.
    #[error("message does not match: {0}")]
    Mismatch(&'static str),

    // ----- local misuse ---------------------------------------------------
    /// A request was given where a response was expected, or the reverse.
    #[error("expected a {0}")]
    WrongKind(&'static str),
    /// This response does not create a dialog (RFC 3261 §12.1: only 101-199
    /// with a To tag and 2xx do).
    #[error("status {0} does not create a dialog")]
    NotDialogCreating(u16),
    /// The dialog is terminated: nothing but an ACK may be sent in it.
    #[error("dialog is terminated")]
    Terminated,
    /// The method cannot be sent this way (ACK and CANCEL have their own
    /// builders; re-INVITE is not allowed in an early dialog, RFC 3261 §14.1).
    #[error("{method} cannot be sent here: {reason}")]
    MethodNotAllowed {
        /// The method.
        method: String,
        /// Why not.
        reason: &'static str,
    },
    /// The request could not be built (a caller-given value holds CR/LF...).
    #[error("request could not be built: {0}")]
    Build(#[source] habla_message::Error),

    // ----- a limit was hit ------------------------------------------------
    /// The local CSeq reached 2**32-1 (RFC 3261 §8.1.1.5 caps it at 32 bits).
    #[error("local CSeq space is exhausted")]
    CSeqExhausted,
    /// The [`crate::DialogTable`] holds its maximum number of dialogs (in
    /// all, or created by one request through forking).
    #[error("dialog limit ({limit}) reached")]
    TooManyDialogs {
        /// The limit hit.
        limit: usize,
    },
}

impl DialogError {
    pub(crate) fn malformed(header: &'static str) -> impl FnOnce(habla_message::Error) -> Self {
        move |source| DialogError::Malformed { header, source }
    }
}
