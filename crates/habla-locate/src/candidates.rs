//! The result of a resolution: transport addresses in the order to try
//! them, with the RFC 3263 §4.3 failover cursor.

use habla_transaction::Transport;
use std::net::SocketAddr;

/// One place to send the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The transport to use.
    pub transport: Transport,
    /// The address and port.
    pub addr: SocketAddr,
    /// The host name this address was found for (the SRV target or the
    /// URI's host; for TLS, the name to verify).
    pub host: String,
}

/// Candidates in RFC 3263 order, with a cursor: the current one is tried
/// first; after a transport error, a timeout or a 503 without Retry-After
/// the client moves to the next (§4.3) with a new transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Candidates {
    list: Vec<Candidate>,
    next: usize,
}

impl Candidates {
    /// Candidates in this order, the first one current.
    pub fn new(list: Vec<Candidate>) -> Candidates {
        Candidates { list, next: 0 }
    }

    /// The candidate to try now (`None` once all have failed).
    pub fn current(&self) -> Option<&Candidate> {
        self.list.get(self.next)
    }

    /// RFC 3263 §4.3: the current candidate failed (transport error,
    /// timeout, 503): the next one to try, if any is left.
    pub fn failover(&mut self) -> Option<&Candidate> {
        if self.next < self.list.len() {
            self.next += 1;
        }
        self.current()
    }

    /// The candidates not tried yet, the current one first.
    pub fn remaining(&self) -> &[Candidate] {
        &self.list[self.next.min(self.list.len())..]
    }

    /// All candidates, in order.
    pub fn as_slice(&self) -> &[Candidate] {
        &self.list
    }

    /// How many there are in all.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there is none at all.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

impl IntoIterator for Candidates {
    type Item = Candidate;
    type IntoIter = std::vec::IntoIter<Candidate>;

    /// The candidates not tried yet, in order.
    fn into_iter(self) -> Self::IntoIter {
        let mut list = self.list;
        list.drain(..self.next.min(list.len()));
        list.into_iter()
    }
}
