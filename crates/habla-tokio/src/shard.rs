//! Sharding: which driver shard owns a message, the shard mark in the
//! branches a shard sends, and the lock-striped connection registry that
//! every shard writes through.
//!
//! The invariant: **a transaction lives on exactly one shard, and every
//! message of it is dispatched there.**
//!
//! * A request goes to the shard picked by a hash of its top Via branch
//!   (RFC 3261 §17.2.3 matching keys on it), so an INVITE, its
//!   retransmissions, its CANCEL and the ACK of a non-2xx final response
//!   (all with the INVITE's branch) meet on one shard. Without the magic
//!   cookie (RFC 2543, §17.2.3's fallback) the hash covers the Call-ID, the
//!   From tag and the CSeq number, which the INVITE, its CANCEL and its ACK
//!   share.
//! * A response goes to the shard that sent its request: a shard marks the
//!   branch of every request it starts a client transaction for with
//!   [`MARK`] and its number (`z9hG4bK…-sh3`), and the response carries the
//!   branch back in its top Via. A response without a valid mark (not ours:
//!   a stray) is hashed like a request.

use crate::flow::{ConnId, Flow};
use bytes::Bytes;
use habla_message::{Fnv1a, Message, MAGIC_COOKIE};
use habla_transaction::Transport;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::RwLock;
use tokio::sync::mpsc;

/// What separates the shard number from the rest of a branch a shard
/// sent: `z9hG4bK<tu's part>-sh<shard, decimal>`.
pub const MARK: &str = "-sh";

fn reduce(h: Fnv1a, shards: usize) -> usize {
    (h.finish() % shards as u64) as usize
}

/// The shard a branch names with its [`MARK`], if it has a valid one for
/// `shards` shards.
pub fn marked_shard(branch: &str, shards: usize) -> Option<usize> {
    let (_, n) = branch.rsplit_once(MARK)?;
    if n.is_empty() || n.len() > 5 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse::<usize>().ok().filter(|&s| s < shards)
}

/// `branch` marked for `shard`: an existing mark is replaced, so marking
/// is idempotent (a CANCEL built from the INVITE's unmarked branch gets the
/// same branch as the INVITE). Branches without the magic cookie are left
/// alone (the transaction layer refuses them anyway).
pub fn mark_branch(branch: &str, shard: usize) -> String {
    let base = match branch.rsplit_once(MARK) {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => branch,
    };
    format!("{base}{MARK}{shard}")
}

/// The shard that owns `msg` among `shards` (see the module documentation).
/// Total: a message without the headers it needs goes to shard 0.
pub fn shard_of(msg: &Message, shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    let branch = msg.top_via().ok().and_then(|v| v.branch());
    if !msg.is_request() {
        if let Some(s) = branch.and_then(|b| marked_shard(b, shards)) {
            return s;
        }
    }
    match branch {
        Some(b) if b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE) => {
            reduce(Fnv1a::default().write(b.as_bytes()), shards)
        }
        _ => {
            // RFC 2543: what the INVITE, its CANCEL and its ACK share.
            let mut h = Fnv1a::default();
            if let Ok(c) = msg.call_id() {
                h = h.write(c.as_bytes());
            }
            h = h.write(b"\0");
            if let Some(t) = msg.from().ok().and_then(|f| f.tag()) {
                h = h.write(t.as_bytes());
            }
            h = h.write(b"\0");
            if let Ok(c) = msg.cseq() {
                h = h.write(&c.seq.to_be_bytes());
            }
            reduce(h, shards)
        }
    }
}

const STRIPES: usize = 64;

/// A hash map split into independently locked stripes: lookups from
/// different shards contend only when they hit the same stripe, and every
/// critical section is a map operation (no I/O, no await).
#[derive(Debug)]
pub(crate) struct Striped<K, V> {
    stripes: Box<[RwLock<HashMap<K, V>>]>,
}

impl<K: Hash + Eq, V> Striped<K, V> {
    pub(crate) fn new() -> Self {
        Striped {
            stripes: (0..STRIPES).map(|_| RwLock::new(HashMap::new())).collect(),
        }
    }

    fn stripe(&self, k: &K) -> &RwLock<HashMap<K, V>> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let h = BuildHasherDefault::<DefaultHasher>::default().hash_one(k);
        &self.stripes[(h % STRIPES as u64) as usize]
    }

    pub(crate) fn read<R>(&self, k: &K, f: impl FnOnce(Option<&V>) -> R) -> R {
        let g = self.stripe(k).read().unwrap_or_else(|e| e.into_inner());
        f(g.get(k))
    }

    pub(crate) fn insert(&self, k: K, v: V) {
        let mut g = self.stripe(&k).write().unwrap_or_else(|e| e.into_inner());
        g.insert(k, v);
    }

    pub(crate) fn remove_if(&self, k: &K, keep: impl FnOnce(&V) -> bool) {
        let mut g = self.stripe(k).write().unwrap_or_else(|e| e.into_inner());
        if g.get(k).is_some_and(|v| !keep(v)) {
            g.remove(k);
        }
    }

    pub(crate) fn clear(&self) {
        for s in self.stripes.iter() {
            s.write().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
}

/// Every open connection, shared by all shards: any shard writes to any
/// connection through the connection's own bounded queue. Registered by
/// the connection task before it reads a message, removed when it closes.
#[derive(Debug)]
pub(crate) struct ConnRegistry {
    by_id: Striped<ConnId, mpsc::Sender<Bytes>>,
    /// Open connections by (transport, remote address), for reuse.
    by_remote: Striped<(Transport, SocketAddr), Flow>,
}

impl ConnRegistry {
    pub(crate) fn new() -> Self {
        ConnRegistry {
            by_id: Striped::new(),
            by_remote: Striped::new(),
        }
    }

    pub(crate) fn insert(&self, flow: Flow, writer: mpsc::Sender<Bytes>) {
        self.by_id.insert(flow.conn, writer);
        self.by_remote.insert((flow.transport, flow.remote), flow);
    }

    pub(crate) fn remove(&self, flow: &Flow) {
        self.by_id.remove_if(&flow.conn, |_| false);
        self.by_remote
            .remove_if(&(flow.transport, flow.remote), |f| f.conn != flow.conn);
    }

    pub(crate) fn contains(&self, conn: ConnId) -> bool {
        self.by_id.read(&conn, |c| c.is_some())
    }

    pub(crate) fn by_remote(&self, transport: Transport, remote: SocketAddr) -> Option<Flow> {
        self.by_remote.read(&(transport, remote), |f| f.copied())
    }

    /// Queues `bytes` on the connection without waiting.
    pub(crate) fn try_send(
        &self,
        conn: ConnId,
        bytes: Bytes,
    ) -> Result<(), mpsc::error::TrySendError<Bytes>> {
        self.by_id.read(&conn, |c| match c {
            Some(w) => w.try_send(bytes),
            None => Err(mpsc::error::TrySendError::Closed(bytes)),
        })
    }

    /// Drops every writer (the connection tasks then close).
    pub(crate) fn clear(&self) {
        self.by_id.clear();
        self.by_remote.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip_and_are_idempotent() {
        let b = "z9hG4bK0123456789abcdef.42";
        let m = mark_branch(b, 3);
        assert_eq!(m, "z9hG4bK0123456789abcdef.42-sh3");
        assert_eq!(marked_shard(&m, 4), Some(3));
        assert_eq!(marked_shard(&m, 3), None);
        assert_eq!(mark_branch(&m, 3), m);
        assert_eq!(mark_branch(&m, 1), "z9hG4bK0123456789abcdef.42-sh1");
        assert_eq!(marked_shard(b, 4), None);
        assert_eq!(marked_shard("z9hG4bK-sh", 4), None);
        assert_eq!(marked_shard("z9hG4bKx-shy", 4), None);
    }
}
