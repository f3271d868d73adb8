//! Nonce-count replay protection (RFC 7616 §3.4 and §5.5; RFC 2617 §3.2.2:
//! "the server ... can detect request replays by maintaining its own copy
//! of this count - if the same nc-value is seen twice, then the request is
//! a replay").
//!
//! A bounded table `nonce tag → highest nc accepted`. An nc that is not
//! greater than the highest one seen for its nonce is a replay. The table
//! is only written after a response verified, so an attacker who has only
//! observed a challenge (nonces are public) cannot fill or poison it.
//!
//! When full, the entry first seen longest ago is evicted, and the table
//! remembers the newest issue time among evicted nonces (the *watermark*).
//! A nonce that is absent from the table but was issued at or before the
//! watermark may have been evicted, so it cannot be proven fresh: it is
//! answered as stale (the client retries with a new nonce, RFC 7616 §3.3
//! `stale`), never accepted. Replays are therefore refused whatever the
//! capacity; a small capacity only costs honest clients extra round trips.

use std::collections::{HashMap, VecDeque};

/// What the table says about one (nonce, nc) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NonceCountCheck {
    /// Greater than any nc seen for this nonce: accepted and recorded.
    Fresh,
    /// Not greater than the highest nc seen for this nonce.
    Replay {
        /// The highest nc accepted so far.
        highest: u32,
    },
    /// The nonce may have been evicted: its history is unknown.
    Forgotten,
}

/// Bounded `nonce → highest nc` table. Sans-IO, `Send`; keep one per
/// shard keyed by nonce if several threads verify.
#[derive(Debug, Clone)]
pub struct NonceCounts {
    capacity: usize,
    counts: HashMap<[u8; 16], Entry>,
    order: VecDeque<[u8; 16]>,
    watermark: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    highest: u32,
    issued: u64,
}

impl NonceCounts {
    /// A table holding at most `capacity` nonces (at least 1).
    pub fn new(capacity: usize) -> NonceCounts {
        let capacity = capacity.max(1);
        NonceCounts {
            capacity,
            counts: HashMap::with_capacity(capacity.min(4096)),
            order: VecDeque::with_capacity(capacity.min(4096)),
            watermark: None,
        }
    }

    /// Number of nonces tracked.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether no nonce is tracked.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Checks `nc` for the nonce with signature `tag` issued at `issued`,
    /// and records it when fresh.
    pub(crate) fn check_and_record(
        &mut self,
        tag: [u8; 16],
        issued: u64,
        nc: u32,
    ) -> NonceCountCheck {
        if let Some(e) = self.counts.get_mut(&tag) {
            if nc <= e.highest {
                return NonceCountCheck::Replay { highest: e.highest };
            }
            e.highest = nc;
            return NonceCountCheck::Fresh;
        }
        if self.watermark.is_some_and(|w| issued <= w) {
            return NonceCountCheck::Forgotten;
        }
        while self.counts.len() >= self.capacity {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(e) = self.counts.remove(&old) {
                self.watermark = Some(self.watermark.map_or(e.issued, |w| w.max(e.issued)));
            }
        }
        self.counts.insert(
            tag,
            Entry {
                highest: nc,
                issued,
            },
        );
        self.order.push_back(tag);
        NonceCountCheck::Fresh
    }

    /// Drops entries, oldest first, whose nonce was issued before
    /// `expired_before` (they can no longer be accepted anyway), so the
    /// table does not hold dead nonces. Call it from time to time (for
    /// example when issuing challenges).
    pub fn prune(&mut self, expired_before: u64) {
        while let Some(front) = self.order.front() {
            match self.counts.get(front) {
                Some(e) if e.issued < expired_before => {
                    let issued = e.issued;
                    self.counts.remove(front);
                    self.order.pop_front();
                    self.watermark = Some(self.watermark.map_or(issued, |w| w.max(issued)));
                }
                _ => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_increase_and_replays_refused() {
        let mut t = NonceCounts::new(4);
        assert_eq!(t.check_and_record([1; 16], 10, 1), NonceCountCheck::Fresh);
        assert_eq!(
            t.check_and_record([1; 16], 10, 1),
            NonceCountCheck::Replay { highest: 1 }
        );
        assert_eq!(t.check_and_record([1; 16], 10, 3), NonceCountCheck::Fresh);
        assert_eq!(
            t.check_and_record([1; 16], 10, 2),
            NonceCountCheck::Replay { highest: 3 }
        );
        assert_eq!(t.check_and_record([2; 16], 10, 1), NonceCountCheck::Fresh);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn eviction_never_lets_a_replay_through() {
        let mut t = NonceCounts::new(2);
        assert_eq!(t.check_and_record([1; 16], 10, 1), NonceCountCheck::Fresh);
        assert_eq!(t.check_and_record([2; 16], 11, 1), NonceCountCheck::Fresh);
        assert_eq!(t.check_and_record([3; 16], 12, 1), NonceCountCheck::Fresh);
        assert_eq!(t.len(), 2);
        // [1] was evicted: it comes back as Forgotten, not Fresh.
        assert_eq!(
            t.check_and_record([1; 16], 10, 1),
            NonceCountCheck::Forgotten
        );
        // A never-seen nonce issued before the watermark is Forgotten too;
        // one issued after it is Fresh.
        assert_eq!(
            t.check_and_record([9; 16], 9, 1),
            NonceCountCheck::Forgotten
        );
        assert_eq!(t.check_and_record([4; 16], 13, 1), NonceCountCheck::Fresh);
    }

    #[test]
    fn prune_drops_expired_entries() {
        let mut t = NonceCounts::new(8);
        t.check_and_record([1; 16], 10, 1);
        t.check_and_record([2; 16], 20, 1);
        t.prune(15);
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.check_and_record([1; 16], 10, 2),
            NonceCountCheck::Forgotten
        );
        assert_eq!(t.check_and_record([2; 16], 20, 2), NonceCountCheck::Fresh);
    }

    #[test]
    fn is_send() {
        fn send<T: Send + Sync>() {}
        send::<NonceCounts>();
    }
}
