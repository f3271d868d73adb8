//! The location service (RFC 3261 §10.2): where bindings live, behind a
//! trait so that the proxy and the registrar do not care whether they sit
//! in memory, in SQLite, or in a store shared by several nodes.

use crate::{Binding, RegisterDecision};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

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
    aors: HashMap<Arc<str>, Aor>,
    /// (when the AOR's first binding expires, the AOR's serial) → AOR,
    /// for timer-driven expiry: one entry per AOR, moved only when that
    /// time changes. Ordered by numbers only: thousands of AORs share a
    /// second, and ordering them by name read every name the search passed
    /// (cold memory: a tenth of a registration's CPU at 8,000/s). The name
    /// is shared with the AOR's entry (a move allocates nothing).
    expiries: BTreeMap<(u64, u64), Arc<str>>,
    /// The next AOR's serial (unique within the shard).
    next_serial: u64,
}

struct Aor {
    /// The AOR's name, shared with its entry in `expiries`.
    key: Arc<str>,
    bindings: Vec<Binding>,
    /// The earliest `expires_at` of `bindings` and the AOR's serial: its
    /// key in `expiries`.
    due: u64,
    serial: u64,
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
        // Which lock, not where in a table: a cheap unkeyed hash (the
        // table inside is keyed).
        let h = habla_message::Fnv1a::default()
            .write(aor.as_bytes())
            .finish();
        let i = (h as usize) % SHARDS;
        // A poisoned shard only means a panic elsewhere while holding it;
        // its data is still consistent (every update is a whole replace).
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces an AOR's bindings (loading a store at start-up, or applying
    /// a decision). An empty set removes the AOR.
    pub fn replace(&self, aor: &str, bindings: Vec<Binding>) {
        let mut shard = self.shard(aor);
        let key = match shard.aors.get(aor) {
            Some(entry) => entry.key.clone(),
            None => Arc::from(aor),
        };
        replace_in(&mut shard, &key, &bindings);
    }

    /// Like [`LocationService::register`], but calls `persist` with the
    /// AOR (shared with the table: no copy) and its new set of bindings,
    /// while the AOR is still locked, so that a durable store queues its
    /// writes in the order the decisions were made.
    pub fn register_with(
        &self,
        aor: &str,
        now: u64,
        decide: &mut dyn FnMut(&[Binding]) -> RegisterDecision,
        persist: impl FnOnce(&Arc<str>, &[Binding]),
    ) -> RegisterDecision {
        let mut guard = self.shard(aor);
        let Shard { aors, expiries, .. } = &mut *guard;
        // One lookup for the decision and the update (a refresh is the
        // common case).
        let mut entry = aors.get_mut(aor);
        let stored = entry.as_ref().map_or(&[][..], |a| &a.bindings[..]);
        // Expiry runs on a timer: stored bindings are usually all live,
        // and then they are decided on where they lie.
        let live;
        let current = if stored.iter().all(|b| b.expires_at > now) {
            stored
        } else {
            live = live_in(stored, now);
            &live[..]
        };
        let decision = decide(current);
        let RegisterDecision::Update { bindings, .. } = &decision else {
            return decision;
        };
        match (entry.as_mut(), bindings.iter().map(|b| b.expires_at).min()) {
            (Some(entry), Some(due)) => {
                persist(&entry.key, bindings);
                update(entry, expiries, due, bindings);
            }
            (Some(entry), None) => {
                let key = entry.key.clone();
                persist(&key, bindings);
                replace_in(&mut guard, &key, bindings);
            }
            (None, _) => {
                let key: Arc<str> = Arc::from(aor);
                persist(&key, bindings);
                replace_in(&mut guard, &key, bindings);
            }
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

/// The bindings of `aor` not yet expired at `now` (expiry runs on a timer,
/// so expired ones may still be stored).
fn live_bindings(shard: &Shard, aor: &str, now: u64) -> Vec<Binding> {
    shard
        .aors
        .get(aor)
        .map(|a| live_in(&a.bindings, now))
        .unwrap_or_default()
}

fn live_in(bindings: &[Binding], now: u64) -> Vec<Binding> {
    bindings
        .iter()
        .filter(|b| b.expires_at > now)
        .cloned()
        .collect()
}

/// Makes `bindings` the AOR's set (none: the AOR goes). An existing entry
/// keeps its vector's allocation: a refresh copies reference counts only.
fn replace_in(shard: &mut Shard, aor: &Arc<str>, bindings: &[Binding]) {
    let due = bindings.iter().map(|b| b.expires_at).min();
    let Some(due) = due else {
        if let Some(old) = shard.aors.remove(&**aor) {
            shard.expiries.remove(&(old.due, old.serial));
        }
        return;
    };
    match shard.aors.get_mut(&**aor) {
        Some(entry) => update(entry, &mut shard.expiries, due, bindings),
        None => {
            let serial = shard.next_serial;
            shard.next_serial += 1;
            shard.expiries.insert((due, serial), aor.clone());
            shard.aors.insert(
                aor.clone(),
                Aor {
                    key: aor.clone(),
                    bindings: bindings.to_vec(),
                    due,
                    serial,
                },
            );
        }
    }
}

/// Makes `bindings` (not empty, the first due at `due`) an existing AOR's
/// set.
fn update(
    entry: &mut Aor,
    expiries: &mut BTreeMap<(u64, u64), Arc<str>>,
    due: u64,
    bindings: &[Binding],
) {
    if entry.due != due {
        if let Some(name) = expiries.remove(&(entry.due, entry.serial)) {
            expiries.insert((due, entry.serial), name);
        }
        entry.due = due;
    }
    entry.bindings.clear();
    entry.bindings.extend_from_slice(bindings);
}

impl LocationService for MemoryLocationService {
    fn lookup(&self, aor: &str, now: u64) -> Vec<Binding> {
        live_bindings(&self.shard(aor), aor, now)
    }

    fn register(
        &self,
        aor: &str,
        now: u64,
        decide: &mut dyn FnMut(&[Binding]) -> RegisterDecision,
        done: Committed,
    ) -> RegisterDecision {
        let d = self.register_with(aor, now, decide, |_, _| {});
        done(Ok(()));
        d
    }

    fn expire(&self, now: u64) -> usize {
        let mut removed = 0;
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            let mut due = Vec::new();
            while let Some((&(at, _), _)) = shard.expiries.first_key_value() {
                if at > now {
                    break;
                }
                if let Some(entry) = shard.expiries.pop_first() {
                    due.push(entry);
                }
            }
            for ((_, serial), aor) in due {
                let Some(entry) = shard.aors.get_mut(&aor) else {
                    continue;
                };
                let before = entry.bindings.len();
                entry.bindings.retain(|b| b.expires_at > now);
                removed += before - entry.bindings.len();
                match entry.bindings.iter().map(|b| b.expires_at).min() {
                    Some(next) => {
                        entry.due = next;
                        shard.expiries.insert((next, serial), aor);
                    }
                    None => {
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
                    .first_key_value()
                    .map(|(&(at, _), _)| at)
            })
            .min()
    }
}
