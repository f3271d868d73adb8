//! A bounded DNS answer cache that honours TTLs, with time as an input.

use crate::dns::{Answer, Query};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Answers by query until they expire. Time is passed in; nothing here
/// reads a clock. Bounded: when full, expired entries go first, then the
/// one closest to expiry.
#[derive(Debug, Clone)]
pub struct Cache {
    entries: HashMap<Query, (Answer, Instant)>,
    max_entries: usize,
    max_ttl: Duration,
    max_negative_ttl: Duration,
}

impl Cache {
    /// An empty cache holding at most `max_entries` answers (0: caches
    /// nothing). Positive answers live at most a day, negative ones at most
    /// five minutes (see [`Cache::with_ttl_bounds`]).
    pub fn new(max_entries: usize) -> Cache {
        Cache::with_ttl_bounds(
            max_entries,
            Duration::from_secs(86_400),
            Duration::from_secs(300),
        )
    }

    /// An empty cache with explicit upper bounds on how long positive and
    /// negative (NXDOMAIN/NODATA) answers are kept, whatever their TTL.
    pub fn with_ttl_bounds(
        max_entries: usize,
        max_ttl: Duration,
        max_negative_ttl: Duration,
    ) -> Cache {
        Cache {
            entries: HashMap::new(),
            max_entries,
            max_ttl,
            max_negative_ttl,
        }
    }

    /// The cached answer to `query`, if it has not expired at `now`.
    pub fn get(&self, now: Instant, query: &Query) -> Option<&Answer> {
        match self.entries.get(query) {
            Some((answer, until)) if now < *until => Some(answer),
            _ => None,
        }
    }

    /// Keeps `answer` for its TTL from `now` (bounded). A failed answer, a
    /// TTL of zero, or an answer of the wrong type is not kept.
    pub fn insert(&mut self, now: Instant, query: &Query, answer: &Answer) {
        let Some(ttl) = answer.ttl() else {
            return;
        };
        if ttl == 0 || self.max_entries == 0 || !answer.fits(query.rtype) {
            return;
        }
        let bound = if answer.is_positive() {
            self.max_ttl
        } else {
            self.max_negative_ttl
        };
        let life = Duration::from_secs(u64::from(ttl)).min(bound);
        let Some(until) = now.checked_add(life) else {
            return;
        };
        if self.entries.len() >= self.max_entries && !self.entries.contains_key(query) {
            self.purge(now);
            if self.entries.len() >= self.max_entries {
                if let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(q, _)| q.clone())
                {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.entries.insert(query.clone(), (answer.clone(), until));
    }

    /// Drops every answer expired at `now`.
    pub fn purge(&mut self, now: Instant) {
        self.entries.retain(|_, (_, until)| now < *until);
    }

    /// Number of answers held (expired ones included until purged).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}
