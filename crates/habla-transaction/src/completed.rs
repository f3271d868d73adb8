//! Non-INVITE server transactions waiting out Timer J (RFC 3261 §17.2.2),
//! kept compactly in the order they completed.
//!
//! Over an unreliable transport every answered non-INVITE request keeps
//! its server transaction 64·T1 (32 s) in Completed, only to answer a
//! retransmission of the request with the last response. A busy registrar
//! holds hundreds of thousands of them, and ending each one used to touch
//! its boxed transaction, its timer slots and its response buffer, all
//! cold after 32 s, and free them from whichever thread ran the timer.
//! Here one is a record in a queue ordered by expiry (all share the one
//! delay), its response copied into a shared buffer that is freed a whole
//! chunk at a time: ending one reads the queue's front (sequential memory)
//! and removes two table entries.

use crate::config::Target;
use crate::keys::CounterHash;
use crate::matching::ServerKey;
use bytes::{Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// Size of one chunk of the response buffer (a chunk is freed when the
/// last transaction whose response it holds has ended).
const CHUNK: usize = 64 * 1024;

/// One completed transaction.
#[derive(Debug)]
struct Record<A> {
    /// The transaction; `None` once it ended early (a transport error, or
    /// the TU ending it): the record then waits for its turn to be dropped.
    id: Option<u64>,
    /// When Timer J fires.
    until: Instant,
    /// Where its key is in the matching table.
    key: ServerKey,
    /// Where the request came from (where responses go).
    target: Target<A>,
    /// The final response, for retransmissions of the request.
    last: Bytes,
}

/// What ended at Timer J.
pub(crate) struct Ended {
    pub id: u64,
    pub key: ServerKey,
}

/// The completed non-INVITE server transactions of one layer.
#[derive(Debug)]
pub(crate) struct CompletedServers<A> {
    /// By expiry (deadlines never decrease along the queue).
    queue: VecDeque<Record<A>>,
    /// The sequence number of the queue's front record.
    front: u64,
    /// Transaction id → sequence number of its record.
    ids: HashMap<u64, u64, CounterHash>,
    /// Where responses are copied (the unused end of the current chunk).
    buffer: BytesMut,
}

impl<A> Default for CompletedServers<A> {
    fn default() -> Self {
        CompletedServers {
            queue: VecDeque::new(),
            front: 0,
            ids: HashMap::default(),
            buffer: BytesMut::new(),
        }
    }
}

impl<A> CompletedServers<A> {
    /// How many transactions are here.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// The transactions' ids.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.ids.keys().copied()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.ids.contains_key(&id)
    }

    /// Adds a transaction that sent its final response `last` to `target`;
    /// Timer J fires at `until` (or, should the caller's clock have
    /// stepped back a little, when the transaction completed before it
    /// expires: the queue stays in order).
    pub fn insert(
        &mut self,
        id: u64,
        until: Instant,
        key: ServerKey,
        target: Target<A>,
        last: &[u8],
    ) {
        let until = self.queue.back().map_or(until, |b| b.until.max(until));
        let last = self.copy(last);
        let seq = self.front + self.queue.len() as u64;
        self.queue.push_back(Record {
            id: Some(id),
            until,
            key,
            target,
            last,
        });
        self.ids.insert(id, seq);
    }

    /// Where a transaction's responses go and its final response.
    pub fn get(&self, id: u64) -> Option<(&Target<A>, &Bytes)> {
        let record = self.record(id)?;
        Some((&record.target, &record.last))
    }

    /// Ends a transaction before Timer J; returns its key.
    pub fn remove(&mut self, id: u64) -> Option<ServerKey> {
        let seq = self.ids.remove(&id)?;
        let i = usize::try_from(seq - self.front).ok()?;
        if i + 1 == self.queue.len() {
            // The newest (a send of its final response failed): gone now,
            // so that failing sends cannot pile up records the limit on
            // transactions no longer counts.
            return self.queue.pop_back().map(|r| r.key);
        }
        let record = self.queue.get_mut(i)?;
        record.id = None;
        record.last = Bytes::new();
        Some(record.key)
    }

    /// When the first Timer J fires.
    pub fn first(&self) -> Option<Instant> {
        self.queue.front().map(|r| r.until)
    }

    /// The next transaction whose Timer J fired at `now`, removed.
    pub fn pop_due(&mut self, now: Instant) -> Option<Ended> {
        while self.queue.front().is_some_and(|r| r.until <= now) {
            let record = self.queue.pop_front()?;
            self.front += 1;
            if let Some(id) = record.id {
                self.ids.remove(&id);
                return Some(Ended {
                    id,
                    key: record.key,
                });
            }
        }
        None
    }

    fn record(&self, id: u64) -> Option<&Record<A>> {
        let seq = *self.ids.get(&id)?;
        self.queue.get(usize::try_from(seq - self.front).ok()?)
    }

    /// `octets` in the shared buffer: the copy is freed with its chunk,
    /// when every response in that chunk is gone.
    fn copy(&mut self, octets: &[u8]) -> Bytes {
        if self.buffer.capacity() < octets.len() {
            self.buffer = BytesMut::with_capacity(CHUNK.max(octets.len()));
        }
        self.buffer.extend_from_slice(octets);
        self.buffer.split().freeze()
    }
}
