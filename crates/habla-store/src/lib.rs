//! # habla-store: durable storage on SQLite
//!
//! [`SqliteLocationService`] is habla's embedded default location service:
//! the bindings live in memory (sharded, no global lock — see
//! [`MemoryLocationService`]) and every change is staged, then written to
//! an SQLite database by one committer thread, which writes everything
//! staged so far in one transaction (group commit). A change is
//! acknowledged (its `done` callback runs, and only then does the 200 go
//! out) after its transaction committed: a registration answered 200
//! survives `kill -9`.
//!
//! A commit of one row costs ~16 µs of CPU (the WAL append and its locks);
//! of 32 rows, ~2 µs a row. So commits are spaced by at least
//! [`StoreConfig::commit_window`] (5 ms): a change staged within a window
//! of the last commit waits for the window's end, with the others staged
//! meanwhile; one staged after a quiet spell is committed at once. Under
//! load a REGISTER waits at most a window longer for its 200, and the
//! commits' cost is shared.
//!
//! [`UserStore`] keeps subscribers: only digest HA1 hashes, never passwords.
//!
//! This crate does file I/O and runs a thread: it sits above the sans-IO
//! line, beside the tokio driver.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod codec;

use habla_registrar::{
    Binding, Committed, LocationError, LocationService, MemoryLocationService, RegisterDecision,
};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Errors opening or using the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite refused: the message says why.
    #[error("database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The store was closed (the server is shutting down).
    #[error("the location store is closed")]
    Closed,
}

/// How much a commit must survive before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Survives a crash of habla (kill -9): WAL with `synchronous=NORMAL`.
    #[default]
    Process,
    /// Survives a power loss too: `synchronous=FULL` (an fsync per group).
    PowerLoss,
}

/// Options of the SQLite stores.
#[derive(Clone)]
pub struct StoreConfig {
    /// Database file (`./habla.db` by default in `habla serve`).
    pub path: PathBuf,
    /// What a commit must survive.
    pub durability: Durability,
    /// Changes staged and not yet committed; beyond it `register` fails
    /// fast (the caller answers 503) instead of queueing without bound.
    pub queue: usize,
    /// Least time between two commits: changes staged meanwhile wait for
    /// the next one and share it. Zero commits every change at once.
    pub commit_window: Duration,
    /// Runs the acknowledgements of one committed group (the `done`
    /// callbacks, on the committer thread): habla serve sends their 200s
    /// together from inside it.
    pub acknowledge: Option<Acknowledge>,
}

/// See [`StoreConfig::acknowledge`]: called with a closure that runs the
/// `done` callbacks of one group; it must call it.
pub type Acknowledge = Arc<dyn Fn(&mut dyn FnMut()) + Send + Sync>;

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("path", &self.path)
            .field("durability", &self.durability)
            .field("queue", &self.queue)
            .field("commit_window", &self.commit_window)
            .finish_non_exhaustive()
    }
}

impl StoreConfig {
    /// Defaults for a database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            path: path.into(),
            durability: Durability::default(),
            queue: 16_384,
            commit_window: Duration::from_millis(5),
            acknowledge: None,
        }
    }
}

const SCHEMA: &str = "
-- One row per address-of-record with bindings: all of them in one value
-- (see codec.rs), and when the last one expires. WITHOUT ROWID: one
-- b-tree, so a REGISTER dirties one page. No index on expires_at: expired
-- rows are skipped when loading and purged rarely (a full scan), since
-- every index is one more random page per REGISTER.
CREATE TABLE IF NOT EXISTS registrations (
    aor TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL,
    bindings BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users (
    username TEXT NOT NULL,
    domain TEXT NOT NULL,
    ha1_md5 TEXT NOT NULL,
    ha1_sha256 TEXT NOT NULL,
    PRIMARY KEY (username, domain)
);
-- A counter that moves with every change of `users`, whoever makes it
-- (habla, another process, the sqlite3 shell): a server's cached lookups
-- are good while it stands still. (SQLite's data_version would also move
-- with every registration written.)
CREATE TABLE IF NOT EXISTS users_version (version INTEGER NOT NULL);
INSERT INTO users_version SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM users_version);
CREATE TRIGGER IF NOT EXISTS users_inserted AFTER INSERT ON users
    BEGIN UPDATE users_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS users_updated AFTER UPDATE ON users
    BEGIN UPDATE users_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS users_deleted AFTER DELETE ON users
    BEGIN UPDATE users_version SET version = version + 1; END;
";

fn open(cfg: &StoreConfig) -> Result<Connection, StoreError> {
    let err = |source| StoreError::Sqlite {
        path: cfg.path.clone(),
        source,
    };
    let mut conn = Connection::open(&cfg.path).map_err(err)?;
    let sync = match cfg.durability {
        Durability::Process => "NORMAL",
        Durability::PowerLoss => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA busy_timeout=5000;"
    ))
    .map_err(err)?;
    conn.execute_batch(SCHEMA).map_err(err)?;
    migrate(&mut conn).map_err(err)?;
    Ok(conn)
}

/// Databases of earlier versions kept a row per binding: in `location`
/// (and before it in `bindings`, a rowid table with two indexes). Their
/// bindings move to `registrations` once, in one transaction.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let table = |conn: &Connection, name: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |_| Ok(()),
        )
        .optional()
        .map(|r| r.is_some())
    };
    let tx = conn.transaction()?;
    for old in ["bindings", "location"] {
        if !table(&tx, old)? {
            continue;
        }
        let mut by_aor: Vec<(String, Vec<Binding>)> = Vec::new();
        {
            let mut stmt = tx.prepare(&format!(
                "SELECT aor, contact, q, expires_at, call_id, cseq, path, source, user_agent
                 FROM {old} ORDER BY aor"
            ))?;
            let rows = stmt.query_map([], |r| {
                let path: String = r.get(6)?;
                Ok((
                    r.get::<_, String>(0)?,
                    Binding {
                        contact: r.get::<_, String>(1)?.into(),
                        q: r.get::<_, i64>(2)?.clamp(0, 1000) as u16,
                        expires_at: r.get::<_, i64>(3)?.max(0) as u64,
                        call_id: r.get::<_, String>(4)?.into(),
                        cseq: r.get::<_, i64>(5)?.clamp(0, i64::from(u32::MAX)) as u32,
                        path: path
                            .split('\n')
                            .filter(|p| !p.is_empty())
                            .map(std::sync::Arc::from)
                            .collect(),
                        source: r.get::<_, Option<String>>(7)?.map(Into::into),
                        user_agent: r.get::<_, Option<String>>(8)?.map(Into::into),
                    },
                ))
            })?;
            for row in rows {
                let (aor, b) = row?;
                match by_aor.last_mut() {
                    Some((a, list)) if *a == aor => list.push(b),
                    _ => by_aor.push((aor, vec![b])),
                }
            }
        }
        {
            let mut upsert = tx.prepare(UPSERT)?;
            let mut value = Vec::new();
            for (aor, bindings) in &by_aor {
                value.clear();
                codec::encode(bindings, &mut value);
                upsert.execute(params![aor, last_expiry(bindings), &value[..]])?;
            }
        }
        tx.execute_batch(&format!("DROP TABLE {old};"))?;
    }
    tx.commit()
}

/// Writes an AOR's bindings (its row replaced).
const UPSERT: &str =
    "INSERT OR REPLACE INTO registrations (aor, expires_at, bindings) VALUES (?1, ?2, ?3)";

/// When the last of `bindings` expires: the row's `expires_at`.
fn last_expiry(bindings: &[Binding]) -> i64 {
    bindings
        .iter()
        .map(|b| b.expires_at)
        .max()
        .unwrap_or(0)
        .min(i64::MAX as u64) as i64
}

/// Expired rows are harmless (never loaded); deleting them scans the whole
/// table, so it is done at most this often.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// One REGISTER's change to an AOR: its new set of bindings (written as
/// the AOR's row; none removes the row), and whom to tell once it is
/// durable.
struct Change {
    /// Shared with the in-memory table (a reference count, not a copy).
    aor: std::sync::Arc<str>,
    bindings: Vec<Binding>,
    done: Committed,
}

/// Changes decided and not yet written, in the order they were decided,
/// and what the committer thread is told.
#[derive(Default)]
struct Staged {
    changes: Vec<Change>,
    /// The committer waits for changes (to be woken when one is staged).
    idle: bool,
    /// Commit now, whatever the window (a flush waits).
    urgent: bool,
    /// Groups committed so far (a flush waits for the one it needs).
    committed: u64,
    /// A group has been taken and is being written.
    writing: bool,
    closed: bool,
    /// The committer has returned.
    stopped: bool,
}

/// The staged changes and the committer's signal.
struct Queue {
    staged: Mutex<Staged>,
    /// The committer waits here for changes; flushes wait here for commits.
    signal: Condvar,
}

/// The embedded, durable location service.
pub struct SqliteLocationService {
    memory: Arc<MemoryLocationService>,
    queue: Arc<Queue>,
    /// The connection, for purges (the committer thread writes through it).
    writer: Arc<Mutex<Connection>>,
    committer: Mutex<Option<JoinHandle<()>>>,
    max_staged: usize,
    path: PathBuf,
    last_purge: Mutex<Option<Instant>>,
    /// When a refused change was last logged (at most once a second: under
    /// overload every REGISTER is refused).
    last_refusal_logged: Mutex<Option<Instant>>,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SqliteLocationService {
    /// Opens (or creates) the database, loads the bindings still live at
    /// `now` (unix seconds) and starts the committer thread.
    pub fn open(cfg: &StoreConfig, now: u64) -> Result<Self, StoreError> {
        let conn = open(cfg)?;
        let memory = Arc::new(MemoryLocationService::new());
        load(&conn, &memory, now).map_err(|source| StoreError::Sqlite {
            path: cfg.path.clone(),
            source,
        })?;
        let queue = Arc::new(Queue {
            staged: Mutex::default(),
            signal: Condvar::new(),
        });
        let writer = Arc::new(Mutex::new(conn));
        let committer = {
            let (queue, writer, path) = (queue.clone(), writer.clone(), cfg.path.clone());
            let (window, acknowledge) = (cfg.commit_window, cfg.acknowledge.clone());
            std::thread::Builder::new()
                .name("habla-store-commit".into())
                .spawn(move || commit_loop(&queue, &writer, window, acknowledge, &path))
                .map_err(|e| StoreError::Sqlite {
                    path: cfg.path.clone(),
                    source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
                })?
        };
        Ok(SqliteLocationService {
            memory,
            queue,
            writer,
            committer: Mutex::new(Some(committer)),
            max_staged: cfg.queue.max(1),
            path: cfg.path.clone(),
            last_purge: Mutex::new(None),
            last_refusal_logged: Mutex::new(None),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of AORs with bindings in memory.
    pub fn aors(&self) -> usize {
        self.memory.len()
    }

    /// Waits until every change staged so far is durable (and
    /// acknowledged), without waiting for the commit window.
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut s = relock(&self.queue.staged);
        // The group being written holds the changes taken; the next one,
        // those staged.
        let want = match (s.changes.is_empty(), s.writing) {
            (true, false) => return Ok(()),
            (true, true) | (false, false) => s.committed + 1,
            (false, true) => s.committed + 2,
        };
        s.urgent = true;
        self.queue.signal.notify_all();
        while s.committed < want {
            if s.stopped {
                return Err(StoreError::Closed);
            }
            s = self.queue.signal.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        Ok(())
    }

    /// Deletes rows of bindings that expired at `now` (the memory copy is
    /// expired by [`LocationService::expire`]), at most once every ten
    /// minutes (a full scan). Blocks while it writes.
    pub fn purge(&self, now: u64) {
        {
            let mut last = relock(&self.last_purge);
            if last.is_some_and(|t| t.elapsed() < PURGE_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        if let Err(e) = relock(&self.writer).execute(
            "DELETE FROM registrations WHERE expires_at <= ?1",
            params![now as i64],
        ) {
            tracing::error!("database {}: {e}", self.path.display());
        }
    }

    /// Writes what is staged, refuses changes from now on and stops the
    /// committer (graceful shutdown).
    pub fn close(&self) {
        {
            let mut s = relock(&self.queue.staged);
            s.closed = true;
            self.queue.signal.notify_all();
        }
        if let Some(t) = relock(&self.committer).take() {
            let _ = t.join();
        }
    }
}

/// The committer thread: waits for staged changes, lets the commit window
/// pass since the last commit, writes everything staged in one
/// transaction, acknowledges; until closed and drained.
fn commit_loop(
    queue: &Queue,
    writer: &Mutex<Connection>,
    window: Duration,
    acknowledge: Option<Acknowledge>,
    path: &Path,
) {
    let mut last_commit: Option<Instant> = None;
    loop {
        let group = {
            let mut s = relock(&queue.staged);
            // Within a window of the last commit: wait for its end (changes
            // join meanwhile), unless told to hurry. Not marked idle, so
            // staging does not wake it: under load it wakes once per
            // commit, when the window ends, and finds the next group.
            if let Some(due) = last_commit.map(|t| t + window) {
                while !s.urgent && !s.closed {
                    let left = due.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    s = queue
                        .signal
                        .wait_timeout(s, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
            // Nothing came: sleep until something does (then, the window
            // long past, it is committed at once).
            while s.changes.is_empty() && !s.closed {
                s.idle = true;
                s = queue.signal.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            s.idle = false;
            if s.changes.is_empty() {
                // Closed, nothing left.
                s.stopped = true;
                queue.signal.notify_all();
                return;
            }
            s.urgent = false;
            s.writing = true;
            std::mem::take(&mut s.changes)
        };
        let result = write_group(&mut relock(writer), &group);
        last_commit = Some(Instant::now());
        if let Err(e) = &result {
            tracing::error!("database {}: {e}", path.display());
        }
        let mut group = group;
        let mut run = || {
            for change in group.drain(..) {
                (change.done)(
                    result
                        .as_ref()
                        .map(|_| ())
                        .map_err(|e| LocationError::Storage(e.to_string())),
                );
            }
        };
        match &acknowledge {
            Some(a) => a(&mut run),
            None => run(),
        }
        let mut s = relock(&queue.staged);
        s.committed += 1;
        s.writing = false;
        queue.signal.notify_all();
    }
}

impl Drop for SqliteLocationService {
    fn drop(&mut self) {
        self.close();
    }
}

impl LocationService for SqliteLocationService {
    fn lookup(&self, aor: &str, now: u64) -> Vec<Binding> {
        self.memory.lookup(aor, now)
    }

    fn register(
        &self,
        aor: &str,
        now: u64,
        decide: &mut dyn FnMut(&[Binding]) -> RegisterDecision,
        done: Committed,
    ) -> RegisterDecision {
        let mut done = Some(done);
        let mut refused: Option<(Committed, &'static str)> = None;
        // Staged while the AOR is locked, so that changes reach the database
        // in the order the decisions were made.
        let decision = self.memory.register_with(aor, now, decide, |aor, new| {
            let Some(d) = done.take() else { return };
            let mut staged = relock(&self.queue.staged);
            if staged.closed {
                refused = Some((d, "the location store is closed"));
            } else if staged.changes.len() >= self.max_staged {
                refused = Some((d, "too many registrations waiting for the database"));
            } else {
                staged.changes.push(Change {
                    aor: aor.clone(),
                    bindings: new.to_vec(),
                    done: d,
                });
                // Wake the committer only if it sleeps for want of work.
                if staged.idle {
                    staged.idle = false;
                    self.queue.signal.notify_all();
                }
            }
        });
        match (refused, done) {
            (Some((d, why)), _) => {
                let mut last = relock(&self.last_refusal_logged);
                if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    *last = Some(Instant::now());
                    tracing::warn!("registrations refused (answered 503): {why}");
                }
                drop(last);
                d(Err(LocationError::Storage(why.into())))
            }
            // Not an update: nothing to write.
            (None, Some(d)) => d(Ok(())),
            (None, None) => {}
        }
        decision
    }

    fn expire(&self, now: u64) -> usize {
        self.memory.expire(now)
    }

    fn next_expiry(&self) -> Option<u64> {
        self.memory.next_expiry()
    }
}

fn load(conn: &Connection, memory: &MemoryLocationService, now: u64) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT aor, bindings FROM registrations WHERE expires_at > ?1")?;
    let mut rows = stmt.query(params![now as i64])?;
    while let Some(row) = rows.next()? {
        let aor: String = row.get(0)?;
        match row.get_ref(1)?.as_blob().ok().and_then(codec::decode) {
            Some(mut bindings) => {
                bindings.retain(|b| b.expires_at > now);
                memory.replace(&aor, bindings);
            }
            None => tracing::warn!(
                "bindings of {aor} in the database cannot be read (damaged, or written by a \
                 newer habla): skipped; the user registers again at its next refresh"
            ),
        }
    }
    Ok(())
}

fn write_group(conn: &mut Connection, group: &[Change]) -> rusqlite::Result<()> {
    // BEGIN and COMMIT as cached statements: parsing them again for every
    // group (what `Connection::transaction` does) cost ~1,000 instructions
    // per REGISTER at 16 a group.
    conn.prepare_cached("BEGIN")?.execute([])?;
    let written = write_changes(conn, group).and_then(|()| {
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    });
    if written.is_err() && !conn.is_autocommit() {
        let _ = conn
            .prepare_cached("ROLLBACK")
            .and_then(|mut r| r.execute([]));
    }
    written
}

fn write_changes(conn: &Connection, group: &[Change]) -> rusqlite::Result<()> {
    let mut delete = conn.prepare_cached("DELETE FROM registrations WHERE aor = ?1")?;
    let mut upsert = conn.prepare_cached(UPSERT)?;
    let mut value = Vec::with_capacity(512);
    // Every change in order (a later one of the same AOR replaces the
    // row again: rare, and cheaper than finding them in a group that
    // may hold thousands under overload).
    for change in group {
        if change.bindings.is_empty() {
            delete.execute([&*change.aor])?;
            continue;
        }
        value.clear();
        codec::encode(&change.bindings, &mut value);
        upsert.execute(params![
            &*change.aor,
            last_expiry(&change.bindings),
            &value[..]
        ])?;
    }
    Ok(())
}

/// A subscriber: digest HA1 hashes (RFC 3261 §22.4, RFC 8760), never the
/// password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user part (`alice`).
    pub username: String,
    /// The domain / realm (`example.org`).
    pub domain: String,
    /// MD5(username:realm:password), hex.
    pub ha1_md5: String,
    /// SHA-256(username:realm:password), hex.
    pub ha1_sha256: String,
}

/// Subscribers in the same database.
///
/// Lookups are cached: every authenticated request looks its user up, and
/// a query costs more than the rest of the digest check. A cached answer
/// (a user, or that there is none) is used while the `users` table is
/// unchanged: a counter moved by triggers on every change, whoever makes
/// it (another `habla user` process included), is read at most every
/// [`USER_RECHECK`], so a change made elsewhere is seen within that.
/// Changes made through this store clear the cache at once. Stores opened
/// with [`UserStore::another_connection`] share one cache, behind a
/// read-write lock: a hit takes the shared side only and copies nothing.
pub struct UserStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    cache: Arc<RwLock<UserCache>>,
}

/// How often a cached lookup checks that the database did not change.
pub const USER_RECHECK: Duration = Duration::from_millis(250);

/// Most lookups cached (beyond it the cache starts afresh): bounded, since
/// unknown user names come from the network.
const USER_CACHE: usize = 100_000;

#[derive(Default)]
struct UserCache {
    /// The `users_version` counter the entries were read at.
    version: Option<i64>,
    checked: Option<Instant>,
    /// By domain, then user name (so that a lookup borrows the names).
    entries: HashMap<String, HashMap<String, Option<Arc<User>>>>,
    /// How many user names `entries` holds.
    len: usize,
}

impl UserCache {
    fn fresh(&self, now: Instant) -> bool {
        self.checked
            .is_some_and(|t| now.saturating_duration_since(t) < USER_RECHECK)
    }

    fn lookup(&self, username: &str, domain: &str) -> Option<Option<Arc<User>>> {
        self.entries.get(domain)?.get(username).cloned()
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.len = 0;
    }
}

fn read_lock<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write_lock<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl UserStore {
    /// Opens (or creates) the database.
    pub fn open(cfg: &StoreConfig) -> Result<Self, StoreError> {
        Ok(UserStore {
            conn: Mutex::new(open(cfg)?),
            path: cfg.path.clone(),
            cache: Arc::default(),
        })
    }

    /// A store on a connection of its own (for a thread of its own: SQLite
    /// readers do not wait for each other) that shares this one's cache.
    pub fn another_connection(&self, cfg: &StoreConfig) -> Result<Self, StoreError> {
        Ok(UserStore {
            conn: Mutex::new(open(cfg)?),
            path: cfg.path.clone(),
            cache: self.cache.clone(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After a change made through this store: the next lookup reads the
    /// counter again (and so drops an entry a concurrent lookup may have
    /// put back from before the change).
    fn forget(&self) {
        let mut c = write_lock(&self.cache);
        c.clear();
        c.version = None;
        c.checked = None;
    }

    /// Adds or replaces a user; durable when it returns.
    pub fn put(&self, user: &User) -> Result<(), StoreError> {
        let r = self
            .conn()
            .execute(
                "INSERT OR REPLACE INTO users (username, domain, ha1_md5, ha1_sha256)
                 VALUES (?1, ?2, ?3, ?4)",
                params![user.username, user.domain, user.ha1_md5, user.ha1_sha256],
            )
            .map(|_| ())
            .map_err(|e| self.err(e));
        self.forget();
        r
    }

    /// Looks a user up (see the cache in [`UserStore`]).
    pub fn get(&self, username: &str, domain: &str) -> Result<Option<Arc<User>>, StoreError> {
        let now = Instant::now();
        let fresh = {
            let c = read_lock(&self.cache);
            if c.fresh(now) {
                if let Some(hit) = c.lookup(username, domain) {
                    return Ok(hit);
                }
            }
            c.fresh(now)
        };
        if !fresh {
            self.recheck(now)?;
            if let Some(hit) = read_lock(&self.cache).lookup(username, domain) {
                return Ok(hit);
            }
        }
        let found = self.query(username, domain)?.map(Arc::new);
        let mut c = write_lock(&self.cache);
        if c.len >= USER_CACHE {
            c.clear();
        }
        let added = c
            .entries
            .entry(domain.to_owned())
            .or_default()
            .insert(username.to_owned(), found.clone())
            .is_none();
        c.len += usize::from(added);
        Ok(found)
    }

    /// Reads the change counter (once per [`USER_RECHECK`], whichever
    /// lookup comes first) and drops the entries if it moved.
    fn recheck(&self, now: Instant) -> Result<(), StoreError> {
        let mut c = write_lock(&self.cache);
        if c.fresh(now) {
            return Ok(());
        }
        let version = self
            .conn()
            .prepare_cached("SELECT version FROM users_version")
            .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
            .map_err(|e| self.err(e))?;
        if c.version != Some(version) {
            c.clear();
            c.version = Some(version);
        }
        c.checked = Some(now);
        Ok(())
    }

    fn query(&self, username: &str, domain: &str) -> Result<Option<User>, StoreError> {
        // Cached statement: compiling the SQL each time cost more than the
        // lookup.
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT username, domain, ha1_md5, ha1_sha256 FROM users
                 WHERE username = ?1 AND domain = ?2",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_row(params![username, domain], |r| {
            Ok(User {
                username: r.get(0)?,
                domain: r.get(1)?,
                ha1_md5: r.get(2)?,
                ha1_sha256: r.get(3)?,
            })
        })
        .optional()
        .map_err(|e| self.err(e))
    }

    /// Removes a user; whether it existed.
    pub fn remove(&self, username: &str, domain: &str) -> Result<bool, StoreError> {
        let r = self
            .conn()
            .execute(
                "DELETE FROM users WHERE username = ?1 AND domain = ?2",
                params![username, domain],
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e));
        self.forget();
        r
    }

    /// Every user, sorted.
    pub fn list(&self) -> Result<Vec<User>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT username, domain, ha1_md5, ha1_sha256 FROM users ORDER BY domain, username",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(User {
                    username: r.get(0)?,
                    domain: r.get(1)?,
                    ha1_md5: r.get(2)?,
                    ha1_sha256: r.get(3)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}
