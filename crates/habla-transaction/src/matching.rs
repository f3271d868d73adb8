//! Matching messages to transactions: RFC 3261 §17.1.3 (responses to
//! client transactions), §17.2.3 (requests to server transactions, with
//! the RFC 2543 fallback) and §9.2 (CANCEL to the INVITE it cancels).

use habla_message::{Error as MessageError, Message, Method, Via};
use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// RFC 3261 §17.1.3: a response matches a client transaction when the
/// branch of its top Via and the method of its CSeq equal those of the
/// request that created the transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    pub branch: Box<str>,
    pub method: Method,
}

impl ClientKey {
    /// The key of a response (or of a request sent by this layer).
    pub fn of(msg: &Message) -> Result<Option<ClientKey>, MessageError> {
        let via = msg.top_via()?;
        let method = msg.cseq()?.method.clone();
        Ok(via.branch().map(|branch| ClientKey {
            branch: branch.into(),
            method,
        }))
    }
}

/// RFC 3261 §17.2.3: with a magic-cookie branch, a request matches a server
/// transaction when the branch and sent-by of its top Via equal those of
/// the creating request, and so does its method, ACK counting as INVITE.
///
/// The key is those four values in one allocation (method, lower-cased
/// sent-by host, port, branch, separated by spaces, which none of them
/// holds), shared by the matching table and the transaction: a busy server
/// keeps one per request answered in the last 32 s (Timer J). A lookup
/// writes the octets into a reused buffer ([`ServerKey::write`]) and finds
/// the key by them, without allocating.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct ServerKey(Arc<[u8]>);

impl ServerKey {
    /// Writes into `buf` the key's octets for a request whose top Via is
    /// `via`, looked up as `method`. False (and `buf` unspecified) when the
    /// branch lacks the magic cookie (RFC 2543 peer).
    pub fn write(via: &Via, method: &Method, buf: &mut Vec<u8>) -> bool {
        if !via.has_rfc3261_branch() {
            return false;
        }
        let Some(branch) = via.branch() else {
            return false;
        };
        buf.clear();
        // "except for ACK, where the method of the request that created the
        // transaction is INVITE" (§17.2.3)
        let method = match method {
            Method::Ack => Method::Invite.as_str(),
            m => m.as_str(),
        };
        buf.extend_from_slice(method.as_bytes());
        buf.push(b' ');
        // Host names compare case-insensitively.
        buf.extend(via.host().as_str().bytes().map(|b| b.to_ascii_lowercase()));
        buf.push(b' ');
        if let Some(port) = via.port() {
            buf.extend_from_slice(
                habla_message::Decimal::new(u64::from(port))
                    .as_str()
                    .as_bytes(),
            );
        }
        buf.push(b' ');
        buf.extend_from_slice(branch.as_bytes());
        true
    }

    /// The key whose octets [`ServerKey::write`] wrote.
    pub fn from_octets(octets: &[u8]) -> ServerKey {
        ServerKey(Arc::from(octets))
    }
}

impl Borrow<[u8]> for ServerKey {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerKey({:?})", String::from_utf8_lossy(&self.0))
    }
}

/// The bucket of the RFC 2543 fallback (§17.2.3): Call-ID, CSeq number and
/// From tag, which every rule compares; the other fields are checked one
/// candidate at a time ([`legacy_matches`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct LegacyKey {
    pub call_id: Box<str>,
    pub seq: u32,
    pub from_tag: Option<Box<str>>,
}

impl LegacyKey {
    pub fn of(msg: &Message) -> Result<LegacyKey, MessageError> {
        Ok(LegacyKey {
            call_id: msg.call_id()?.to_string().into(),
            seq: msg.cseq()?.seq,
            from_tag: msg.from()?.tag().map(Into::into),
        })
    }
}

/// What an RFC 2543 lookup is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LegacyLookup {
    /// A retransmission of the creating request (or, for ACK, the ACK of
    /// the INVITE).
    Same,
    /// The INVITE a CANCEL cancels (§9.2: as §17.2.3, method aside).
    Cancelled,
}

/// RFC 3261 §17.2.3, RFC 2543 fallback, for one candidate in the bucket.
///
/// - INVITE (and any method but ACK): Request-URI, To tag, From tag,
///   Call-ID, CSeq (number and method) and top Via match the creating
///   request's.
/// - ACK: Request-URI, From tag, Call-ID, CSeq number and top Via match the
///   INVITE's, and the To tag equals the To tag of the response the server
///   transaction sent (`response_to_tag`).
/// - CANCEL looking for its INVITE (§9.2): as for INVITE, method aside.
pub(crate) fn legacy_matches(
    request: &Message,
    method: &Method,
    original: &Message,
    response_to_tag: Option<&str>,
    lookup: LegacyLookup,
) -> bool {
    let Some(orig_method) = original.method() else {
        return false;
    };
    let same_uri = match (request.request_uri(), original.request_uri()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let same_via = match (request.top_via(), original.top_via()) {
        (Ok(a), Ok(b)) => a.as_str() == b.as_str(),
        _ => false,
    };
    if !same_uri || !same_via {
        return false;
    }
    let to_tag = request.to().ok().and_then(|t| t.tag());
    let orig_to_tag = original.to().ok().and_then(|t| t.tag());
    match (lookup, method) {
        (LegacyLookup::Same, Method::Ack) => {
            *orig_method == Method::Invite && response_to_tag.is_some() && to_tag == response_to_tag
        }
        (LegacyLookup::Same, m) => {
            m == orig_method
                && to_tag == orig_to_tag
                && original.cseq().is_ok_and(|c| &c.method == m)
        }
        (LegacyLookup::Cancelled, _) => *orig_method == Method::Invite && to_tag == orig_to_tag,
    }
}
