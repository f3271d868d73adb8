//! Matching messages to transactions: RFC 3261 §17.1.3 (responses to
//! client transactions), §17.2.3 (requests to server transactions, with
//! the RFC 2543 fallback) and §9.2 (CANCEL to the INVITE it cancels).

use habla_message::{Error as MessageError, Message, Method, Via};
use hashbrown::HashTable;
use std::hash::{BuildHasher, RandomState};

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
/// The table maps those four values, as one run of octets (method,
/// lower-cased sent-by host, port, branch, separated by spaces, which none
/// of them holds), to the transaction's id. A lookup writes the octets
/// into a reused buffer and hashes them once: a new transaction is
/// inserted with that hash, and removed by its hash and id, without
/// hashing or reading its key again (a busy server removes one per
/// request answered, 32 s later, from cold memory).
#[derive(Debug, Default)]
pub(crate) struct ServerTable {
    table: HashTable<(Box<[u8]>, u64)>,
    /// Keyed: the octets come from the network.
    hasher: RandomState,
    /// The octets of the last [`ServerTable::find`], and their hash.
    pending: Vec<u8>,
    pending_hash: u64,
    /// For [`ServerTable::peek`].
    scratch: Vec<u8>,
}

/// Where a server transaction is in the [`ServerTable`]: its key's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerKey(u64);

/// What [`ServerTable::find`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// The transaction with this id.
    Transaction(u64),
    /// None: [`ServerTable::insert`] adds the key for a new transaction.
    Nothing,
    /// The branch lacks the magic cookie (RFC 2543 peer): not matched here.
    NoBranch,
}

impl ServerTable {
    /// Looks up a request whose top Via is `via`, as `method`; its key is
    /// kept for [`ServerTable::insert`].
    pub fn find(&mut self, via: &Via, method: &Method) -> Found {
        if !write(via, method, &mut self.pending) {
            return Found::NoBranch;
        }
        self.pending_hash = self.hasher.hash_one(&self.pending[..]);
        match lookup(&self.table, self.pending_hash, &self.pending) {
            Some(id) => Found::Transaction(id),
            None => Found::Nothing,
        }
    }

    /// [`ServerTable::find`] leaving the pending key alone (a CANCEL looks
    /// for its INVITE before its own transaction is inserted).
    pub fn peek(&mut self, via: &Via, method: &Method) -> Found {
        if !write(via, method, &mut self.scratch) {
            return Found::NoBranch;
        }
        let hash = self.hasher.hash_one(&self.scratch[..]);
        match lookup(&self.table, hash, &self.scratch) {
            Some(id) => Found::Transaction(id),
            None => Found::Nothing,
        }
    }

    /// Where [`ServerTable::insert`] will put the key of the last
    /// [`ServerTable::find`].
    pub fn pending_key(&self) -> ServerKey {
        ServerKey(self.pending_hash)
    }

    /// Adds the key of the last [`ServerTable::find`] (which found
    /// nothing) for transaction `id`.
    pub fn insert(&mut self, id: u64) {
        let hasher = &self.hasher;
        self.table.insert_unique(
            self.pending_hash,
            (Box::from(&self.pending[..]), id),
            |(octets, _)| hasher.hash_one(&octets[..]),
        );
    }

    /// Removes transaction `id`'s key.
    pub fn remove(&mut self, key: ServerKey, id: u64) {
        if let Ok(entry) = self.table.find_entry(key.0, |&(_, i)| i == id) {
            entry.remove();
        }
    }
}

fn lookup(table: &HashTable<(Box<[u8]>, u64)>, hash: u64, octets: &[u8]) -> Option<u64> {
    table.find(hash, |(k, _)| **k == *octets).map(|&(_, id)| id)
}

/// Writes into `buf` the key's octets for a request whose top Via is
/// `via`, looked up as `method`. False (and `buf` unspecified) when the
/// branch lacks the magic cookie (RFC 2543 peer).
fn write(via: &Via, method: &Method, buf: &mut Vec<u8>) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use habla_message::Limits;

    fn request(method: &str, via: &str) -> Message {
        let text = format!(
            "{method} sip:a@example.org SIP/2.0\r\nVia: {via}\r\n\
             CSeq: 1 {method}\r\nCall-ID: c\r\nFrom: <sip:b@example.org>;tag=1\r\n\
             To: <sip:a@example.org>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse_lazy(bytes::Bytes::from(text), &Limits::default()).unwrap()
    }

    fn find(t: &mut ServerTable, m: &Message, method: Method) -> Found {
        t.find(m.top_via().unwrap(), &method)
    }

    #[test]
    fn keys_match_by_branch_sent_by_and_method_and_leave_by_id() {
        let mut t = ServerTable::default();
        let reg = request("REGISTER", "SIP/2.0/UDP Host.example:5060;branch=z9hG4bK1");
        assert_eq!(find(&mut t, &reg, Method::Register), Found::Nothing);
        let key = t.pending_key();
        t.insert(7);
        // Host case aside, the same key.
        let again = request("REGISTER", "SIP/2.0/UDP host.EXAMPLE:5060;branch=z9hG4bK1");
        assert_eq!(
            find(&mut t, &again, Method::Register),
            Found::Transaction(7)
        );
        // Another port, branch or method: another transaction.
        for (m, method) in [
            (
                request("REGISTER", "SIP/2.0/UDP host.example:5070;branch=z9hG4bK1"),
                Method::Register,
            ),
            (
                request("REGISTER", "SIP/2.0/UDP host.example:5060;branch=z9hG4bK2"),
                Method::Register,
            ),
            (
                request("OPTIONS", "SIP/2.0/UDP host.example:5060;branch=z9hG4bK1"),
                Method::Options,
            ),
        ] {
            assert_eq!(find(&mut t, &m, method), Found::Nothing);
        }
        // An INVITE, then its ACK (matched as INVITE), found by peek
        // without disturbing the pending key.
        let invite = request("INVITE", "SIP/2.0/UDP host.example;branch=z9hG4bK3");
        assert_eq!(find(&mut t, &invite, Method::Invite), Found::Nothing);
        t.insert(8);
        let options = request("OPTIONS", "SIP/2.0/UDP host.example;branch=z9hG4bK4");
        assert_eq!(find(&mut t, &options, Method::Options), Found::Nothing);
        assert_eq!(
            t.peek(invite.top_via().unwrap(), &Method::Ack),
            Found::Transaction(8)
        );
        t.insert(9);
        assert_eq!(
            find(&mut t, &options, Method::Options),
            Found::Transaction(9)
        );
        // An RFC 2543 branch is not matched here.
        let old = request("INVITE", "SIP/2.0/UDP host.example;branch=1");
        assert_eq!(find(&mut t, &old, Method::Invite), Found::NoBranch);
        // Removal needs the id too: a wrong id leaves the key.
        t.remove(key, 99);
        assert_eq!(find(&mut t, &reg, Method::Register), Found::Transaction(7));
        t.remove(key, 7);
        assert_eq!(find(&mut t, &reg, Method::Register), Found::Nothing);
        assert_eq!(t.table.len(), 2);
    }
}
