//! The location service (RFC 3261 §10.2): where bindings live, behind a
//! trait so that the proxy and the registrar do not care whether they sit
//! in memory, in SQLite, or in a store shared by several nodes.

use crate::{Binding, RegisterDecision};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard};

/// A storage failure: the change was not made durable and must not be
/// acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocationError {
    /// The backing store refused or lost the write.
    #[error("location store failed: {0}; check the database path and disk space")]
    Storage(String),
}

/// Called once a change is durable (or failed): only then may the 200 go
/// out ("nothing acknowledged is lost").
pub type Committed = Box<dyn FnOnce(Result<(), LocationError>) + Send>;

/// Where bindings live.
///
/// Implementations keep each address-of-record's read-modify-write atomic
/// (no global lock: different AORs proceed in parallel) and call `done`
/// only once the change is durable.
pub trait LocationService: Send + Sync {
    /// The live bindings of an AOR at `now` (unix seconds).
    fn lookup(&self, aor: &str, now: u64) -> Vec<Binding>;

    /// Runs `decide` on the AOR's current bindings under the AOR's lock. If
    /// it returns [`RegisterDecision::Update`], the new set replaces the old
    /// and `done` is called once that is durable; otherwise `done` is called
    /// at once with `Ok`. Returns the decision.
    fn register(
        &self,
        aor: &str,
        now: u64,
        decide: &mut dyn FnMut(&[Binding]) -> RegisterDecision,
        done: Committed,
    ) -> RegisterDecision;

    /// Removes the bindings that expired at `now`; returns how many. Driven
    /// by a timer at [`LocationService::next_expiry`], not by a scan per
    /// request.
    fn expire(&self, now: u64) -> usize;

    /// When the next binding expires (unix seconds).
    fn next_expiry(&self) -> Option<u64>;
}

const SHARDS: usize = 64;

#[derive(Default)]
struct Shard {
    aors: HashMap<String, Vec<Binding>>,
    /// (expires_at, aor) of every binding, for timer-driven expiry.
    expiries: BTreeSet<(u64, String)>,
}

/// An in-memory location service, sharded by AOR (no global lock). It is
/// the hot path of the durable stores, which persist each committed change.
pub struct MemoryLocationService {
    shards: Vec<Mutex<Shard>>,
}

impl Default for MemoryLocationService {
    fn default() -> Self {
        MemoryLocationService {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }
}

impl MemoryLocationService {
    /// An empty service.
    pub fn new() -> Self {
        Self::default()
    }

    fn shard(&self, aor: &str) -> MutexGuard<'_, Shard> {
        let mut h = DefaultHasher::new();
        aor.hash(&mut h);
        let i = (h.finish() as usize) % SHARDS;
        // A poisoned shard only means a panic elsewhere while holding it;
        // its data is still consistent (every update is a whole replace).
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces an AOR's bindings (loading a store at start-up, or applying
    /// a decision). An empty set removes the AOR.
    pub fn replace(&self, aor: &str, bindings: Vec<Binding>) {
        let mut shard = self.shard(aor);
        replace_in(&mut shard, aor, bindings);
    }

    /// Like [`LocationService::register`], but calls `persist` with the
    /// live bindings before and the new set after, while the AOR is still
    /// locked, so that a durable store queues its writes in the order the
    /// decisions were made (and can write only what changed).
    pub fn register_with(
        &self,
        aor: &str,
        now: u64,
        decide: &mut dyn FnMut(&[Binding]) -> RegisterDecision,
        persist: impl FnOnce(&str, &[Binding], &[Binding]),
    ) -> RegisterDecision {
        let mut shard = self.shard(aor);
        let current: Vec<Binding> = shard
            .aors
            .get(aor)
            .map(|b| b.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default();
        let decision = decide(&current);
        if let RegisterDecision::Update { bindings, .. } = &decision {
            persist(aor, &current, bindings);
            replace_in(&mut shard, aor, bindings.clone());
        }
        decision
    }

    /// Number of AORs with bindings.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).aors.len())
            .sum()
    }

    /// Whether no AOR has bindings.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn replace_in(shard: &mut Shard, aor: &str, bindings: Vec<Binding>) {
    if let Some(old) = shard.aors.remove(aor) {
        for b in old {
            shard.expiries.remove(&(b.expires_at, aor.to_string()));
        }
    }
    if !bindings.is_empty() {
        for b in &bindings {
            shard.expiries.insert((b.expires_at, aor.to_string()));
        }
        shard.aors.insert(aor.to_string(), bindings);
    }
}

impl LocationService for MemoryLocationService {
    fn lookup(&self, aor: &str, now: u64) -> Vec<Binding> {
        self.shard(aor)
            .aors
            .get(aor)
            .map(|b| b.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default()
    }

    fn register(
        &self,
        aor: &str,
        now: u64,
        decide: &mut dyn FnMut(&[Binding]) -> RegisterDecision,
        done: Committed,
    ) -> RegisterDecision {
        let d = self.register_with(aor, now, decide, |_, _, _| {});
        done(Ok(()));
        d
    }

    fn expire(&self, now: u64) -> usize {
        let mut removed = 0;
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            let mut due = Vec::new();
            while let Some(first) = shard.expiries.first() {
                if first.0 > now {
                    break;
                }
                if let Some(entry) = shard.expiries.pop_first() {
                    due.push(entry);
                }
            }
            for (_, aor) in due {
                if let Some(list) = shard.aors.get_mut(&aor) {
                    let before = list.len();
                    list.retain(|b| b.expires_at > now);
                    removed += before - list.len();
                    if list.is_empty() {
                        shard.aors.remove(&aor);
                    }
                }
            }
        }
        removed
    }

    fn next_expiry(&self) -> Option<u64> {
        self.shards
            .iter()
            .filter_map(|s| {
                s.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .expiries
                    .first()
                    .map(|e| e.0)
            })
            .min()
    }
}
