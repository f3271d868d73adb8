//! Brute-force throttling: failed attempts counted per source; past a
//! threshold within a window the source is refused (403) for a cool-down.
//! RFC 7616 §5.2 and RFC 3261 §26.3.2.4 leave guessing attacks to the
//! server; this is habla's answer. Time is an input (unix seconds).
//!
//! The table is bounded. When it is full, the entry at the front of the
//! insertion order is evicted, unless it is currently blocked, in which case
//! it is moved to the back (a few times at most): a flood of new sources
//! evicts counters before it evicts blocks.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;

/// When a source is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures within `window` that block the source (at least 1).
    pub max_failures: u32,
    /// The counting window, in seconds, from the first failure.
    pub window: u64,
    /// How long a blocked source stays blocked, in seconds.
    pub block_for: u64,
}

impl Default for ThrottlePolicy {
    /// 10 failures in 60 s block for 5 minutes.
    fn default() -> Self {
        ThrottlePolicy {
            max_failures: 10,
            window: 60,
            block_for: 300,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: u64,
    failures: u32,
    blocked_until: u64,
}

/// Failed attempts per source key (`IpAddr` by default; any hashable key,
/// such as an address string or a /64 prefix, works). Sans-IO and `Send`.
#[derive(Debug, Clone)]
pub struct Throttle<K = IpAddr> {
    policy: ThrottlePolicy,
    capacity: usize,
    entries: HashMap<K, Entry>,
    order: VecDeque<K>,
}

/// How many blocked entries eviction skips before evicting one anyway.
const EVICTION_SKIPS: usize = 8;

impl<K: Eq + Hash + Clone> Throttle<K> {
    /// A table of at most `capacity` sources (at least 1).
    pub fn new(policy: ThrottlePolicy, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Throttle {
            policy,
            capacity,
            entries: HashMap::with_capacity(capacity.min(4096)),
            order: VecDeque::with_capacity(capacity.min(4096)),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> ThrottlePolicy {
        self.policy
    }

    /// Number of sources tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Until when (unix seconds, exclusive) `key` is blocked, if it is at
    /// `now`.
    pub fn blocked_until(&self, key: &K, now: u64) -> Option<u64> {
        self.entries
            .get(key)
            .filter(|e| now < e.blocked_until)
            .map(|e| e.blocked_until)
    }

    /// Counts one failure of `key` at `now`; returns `Some(until)` when this
    /// failure blocks the source (or it already was blocked).
    pub fn record_failure(&mut self, key: K, now: u64) -> Option<u64> {
        if !self.entries.contains_key(&key) {
            self.make_room(now);
            self.order.push_back(key.clone());
        }
        let p = self.policy;
        let e = self.entries.entry(key).or_insert(Entry {
            window_start: now,
            failures: 0,
            blocked_until: 0,
        });
        if now < e.blocked_until {
            return Some(e.blocked_until);
        }
        if now.saturating_sub(e.window_start) >= p.window {
            e.window_start = now;
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        if e.failures >= p.max_failures.max(1) {
            e.blocked_until = now.saturating_add(p.block_for);
            e.failures = 0;
            e.window_start = e.blocked_until;
            return Some(e.blocked_until);
        }
        None
    }

    /// Forgets `key` (an operator unblocking a source).
    pub fn clear(&mut self, key: &K) {
        if self.entries.remove(key).is_some() {
            self.order.retain(|k| k != key);
        }
    }

    fn make_room(&mut self, now: u64) {
        let mut skips = 0;
        while self.entries.len() >= self.capacity {
            let Some(front) = self.order.pop_front() else {
                break;
            };
            let blocked = self
                .entries
                .get(&front)
                .is_some_and(|e| now < e.blocked_until);
            if blocked && skips < EVICTION_SKIPS {
                skips += 1;
                self.order.push_back(front);
            } else {
                self.entries.remove(&front);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            max_failures: 3,
            window: 60,
            block_for: 300,
        }
    }

    #[test]
    fn blocks_after_threshold_until_cool_down() {
        let mut t: Throttle<&str> = Throttle::new(policy(), 16);
        assert_eq!(t.record_failure("a", 100), None);
        assert_eq!(t.record_failure("a", 101), None);
        assert_eq!(t.blocked_until(&"a", 101), None);
        assert_eq!(t.record_failure("a", 102), Some(402));
        assert_eq!(t.blocked_until(&"a", 102), Some(402));
        assert_eq!(t.blocked_until(&"a", 401), Some(402));
        assert_eq!(t.blocked_until(&"b", 200), None);
        assert_eq!(t.blocked_until(&"a", 402), None);
        // After the cool-down the count starts over.
        assert_eq!(t.record_failure("a", 403), None);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let mut t: Throttle<&str> = Throttle::new(policy(), 16);
        t.record_failure("a", 0);
        t.record_failure("a", 30);
        assert_eq!(t.record_failure("a", 61), None);
        assert_eq!(t.record_failure("a", 62), None);
        assert_eq!(t.record_failure("a", 63), Some(363));
    }

    #[test]
    fn bounded_and_blocks_survive_a_flood() {
        let mut t: Throttle<u32> = Throttle::new(policy(), 4);
        for _ in 0..3 {
            t.record_failure(0, 10);
        }
        assert!(t.blocked_until(&0, 10).is_some());
        for k in 1..100 {
            t.record_failure(k, 11);
            assert!(t.len() <= 4);
        }
        assert!(t.blocked_until(&0, 12).is_some());
        t.clear(&0);
        assert!(t.blocked_until(&0, 12).is_none());
    }
}
