//! Who may act for whom, once a user is authenticated (RFC 3261 §10.3 step
//! 4 for registrations: "the registrar determines if the authenticated user
//! is authorized to modify registrations for this address-of-record"; RFC
//! 3261 §22.1 and §26.3.2.2 for requests in general: the From header is
//! only as trustworthy as the authentication behind it).
//!
//! habla's default policy: the digest `username` must be the user part of
//! the From URI and, for REGISTER, of the To URI (the AOR being
//! registered). A `username` written as `user@domain` must match
//! `user@host` of the URI (host case-insensitive). Whether the host is one
//! of the server's domains is the registrar's business (it knows them).

use habla_message::{Message, Method, Uri};
use std::fmt;
use thiserror::Error;

/// Which header names the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityHeader {
    /// From (the sender).
    From,
    /// To (the address-of-record of a REGISTER).
    To,
}

impl fmt::Display for IdentityHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdentityHeader::From => "From",
            IdentityHeader::To => "To",
        })
    }
}

/// Why an authenticated user may not send this request (answer 403).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The header's URI names another user.
    #[error("authenticated user does not match the {0} URI")]
    Mismatch(IdentityHeader),
    /// The header is missing, unreadable, or its URI has no user part.
    #[error("the {0} URI names no user")]
    NoUser(IdentityHeader),
}

/// Checks that `username` (already authenticated) may send `req`: From's
/// user, and for REGISTER also To's user, must be `username`.
pub fn check_identity(username: &str, req: &Message) -> Result<(), IdentityError> {
    let from = req
        .from()
        .map_err(|_| IdentityError::NoUser(IdentityHeader::From))?;
    matches_user(username, from.uri(), IdentityHeader::From)?;
    if req.method() == Some(&Method::Register) {
        let to = req
            .to()
            .map_err(|_| IdentityError::NoUser(IdentityHeader::To))?;
        matches_user(username, to.uri(), IdentityHeader::To)?;
    }
    Ok(())
}

/// Whether `uri` names the user `username` (see the module doc).
pub fn matches_user(username: &str, uri: &Uri, which: IdentityHeader) -> Result<(), IdentityError> {
    let ok = match uri {
        Uri::Sip(sip) => {
            let Some(user) = sip.user_decoded() else {
                return Err(IdentityError::NoUser(which));
            };
            match username.rsplit_once('@') {
                // User parts compare case-sensitively after unescaping,
                // hosts case-insensitively (RFC 3261 §19.1.4).
                Some((u, host)) => {
                    user.as_ref() == u.as_bytes() && sip.host().as_str().eq_ignore_ascii_case(host)
                }
                None => user.as_ref() == username.as_bytes(),
            }
        }
        // A tel URI (RFC 3966) names a number; the user must be that number.
        Uri::Tel(tel) => tel.number() == username,
        _ => return Err(IdentityError::NoUser(which)),
    };
    if ok {
        Ok(())
    } else {
        Err(IdentityError::Mismatch(which))
    }
}
