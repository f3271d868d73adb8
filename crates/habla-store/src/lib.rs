//! # habla-store: durable storage on SQLite
//!
//! [`SqliteLocationService`] is habla's embedded default location service:
//! the bindings live in memory (sharded, no global lock — see
//! [`MemoryLocationService`]) and every committed change is written to an
//! SQLite database by one writer thread that groups the changes that arrive
//! together into one transaction (group commit). A change is acknowledged
//! (its `done` callback runs, and only then does the 200 go out) after its
//! transaction committed: a registration answered 200 survives `kill -9`.
//!
//! [`UserStore`] keeps subscribers: only digest HA1 hashes, never passwords.
//!
//! This crate does file I/O and runs a thread: it sits above the sans-IO
//! line, beside the tokio driver.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use habla_registrar::{
    Binding, Committed, LocationError, LocationService, MemoryLocationService, RegisterDecision,
};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

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
    /// The writer thread is gone (the store is shutting down).
    #[error("the database writer has stopped")]
    WriterGone,
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
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Database file (`./habla.db` by default in `habla serve`).
    pub path: PathBuf,
    /// What a commit must survive.
    pub durability: Durability,
    /// Most changes grouped in one transaction.
    pub max_group: usize,
    /// Changes waiting for the writer; beyond it `register` fails fast
    /// (the caller answers 503) instead of queueing without bound.
    pub queue: usize,
}

impl StoreConfig {
    /// Defaults for a database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            path: path.into(),
            durability: Durability::default(),
            max_group: 512,
            queue: 16_384,
        }
    }
}

const SCHEMA: &str = "
-- One row per binding, clustered by (aor, contact) (WITHOUT ROWID: one
-- b-tree, so a refresh dirties one page, not three). No index on
-- expires_at: expired rows are skipped when loading and purged rarely
-- (a full scan), since every index is one more random page per REGISTER.
CREATE TABLE IF NOT EXISTS location (
    aor TEXT NOT NULL,
    contact TEXT NOT NULL,
    q INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    cseq INTEGER NOT NULL,
    path TEXT NOT NULL,
    source TEXT,
    user_agent TEXT,
    PRIMARY KEY (aor, contact)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users (
    username TEXT NOT NULL,
    domain TEXT NOT NULL,
    ha1_md5 TEXT NOT NULL,
    ha1_sha256 TEXT NOT NULL,
    PRIMARY KEY (username, domain)
);
";

fn open(cfg: &StoreConfig) -> Result<Connection, StoreError> {
    let err = |source| StoreError::Sqlite {
        path: cfg.path.clone(),
        source,
    };
    let conn = Connection::open(&cfg.path).map_err(err)?;
    let sync = match cfg.durability {
        Durability::Process => "NORMAL",
        Durability::PowerLoss => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA busy_timeout=5000;"
    ))
    .map_err(err)?;
    conn.execute_batch(SCHEMA).map_err(err)?;
    migrate(&conn).map_err(err)?;
    Ok(conn)
}

/// Databases made before the `location` table kept bindings in `bindings`
/// (a rowid table with two indexes): move them over once.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let old: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'bindings'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if old.is_some() {
        conn.execute_batch(
            "BEGIN;
             INSERT OR REPLACE INTO location
               SELECT aor, contact, q, expires_at, call_id, cseq, path, source, user_agent
               FROM bindings;
             DROP TABLE bindings;
             COMMIT;",
        )?;
    }
    Ok(())
}

/// Expired rows are harmless (never loaded); deleting them scans the whole
/// table, so it is done at most this often.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

enum Job {
    /// One REGISTER's change to an AOR: only the bindings it removed and
    /// the ones it added or refreshed (a refresh rewrites one row, not the
    /// AOR's whole set).
    Put {
        aor: String,
        removed: Vec<String>,
        upserts: Vec<Binding>,
        done: Committed,
    },
    Purge(u64),
    Flush(SyncSender<()>),
}

/// The embedded, durable location service.
pub struct SqliteLocationService {
    memory: Arc<MemoryLocationService>,
    jobs: Mutex<Option<SyncSender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
}

impl SqliteLocationService {
    /// Opens (or creates) the database and loads the bindings still live at
    /// `now` (unix seconds).
    pub fn open(cfg: &StoreConfig, now: u64) -> Result<Self, StoreError> {
        let conn = open(cfg)?;
        let memory = Arc::new(MemoryLocationService::new());
        load(&conn, &memory, now).map_err(|source| StoreError::Sqlite {
            path: cfg.path.clone(),
            source,
        })?;
        let (tx, rx) = mpsc::sync_channel(cfg.queue.max(1));
        let max_group = cfg.max_group.max(1);
        let path = cfg.path.clone();
        let writer = std::thread::Builder::new()
            .name("habla-store-writer".into())
            .spawn(move || write_loop(conn, rx, max_group, path))
            .map_err(|e| StoreError::Sqlite {
                path: cfg.path.clone(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        Ok(SqliteLocationService {
            memory,
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            path: cfg.path.clone(),
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

    fn sender(&self) -> Option<SyncSender<Job>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Deletes rows of bindings that expired at `now` (the memory copy is
    /// expired by [`LocationService::expire`]).
    pub fn purge(&self, now: u64) {
        if let Some(tx) = self.sender() {
            let _ = tx.try_send(Job::Purge(now));
        }
    }

    /// Waits until every change queued so far is durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        let tx = self.sender().ok_or(StoreError::WriterGone)?;
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        tx.send(Job::Flush(done_tx))
            .map_err(|_| StoreError::WriterGone)?;
        done_rx.recv().map_err(|_| StoreError::WriterGone)
    }

    /// Writes what is queued and stops the writer (graceful shutdown).
    pub fn close(&self) {
        let tx = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(tx);
        if let Some(w) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = w.join();
        }
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
        let Some(tx) = self.sender() else {
            done(Err(LocationError::Storage(
                "the database writer has stopped".into(),
            )));
            return decide(&self.memory.lookup(aor, now));
        };
        let mut done = Some(done);
        let mut queued = Ok(());
        // Queue the write while the AOR is locked, so that writes reach the
        // database in the order the decisions were made.
        let decision = self
            .memory
            .register_with(aor, now, decide, |aor, old, new| {
                if let Some(d) = done.take() {
                    let job = Job::Put {
                        aor: aor.to_string(),
                        removed: old
                            .iter()
                            .filter(|o| !new.iter().any(|n| n.contact == o.contact))
                            .map(|o| o.contact.clone())
                            .collect(),
                        upserts: new.iter().filter(|n| !old.contains(n)).cloned().collect(),
                        done: d,
                    };
                    if let Err(e) = tx.try_send(job) {
                        let job = match e {
                            mpsc::TrySendError::Full(j) | mpsc::TrySendError::Disconnected(j) => j,
                        };
                        if let Job::Put { done, .. } = job {
                            queued = Err(done);
                        }
                    }
                }
            });
        match (queued, done) {
            (Err(d), _) => d(Err(LocationError::Storage(
                "too many registrations waiting for the database".into(),
            ))),
            // Not an update: nothing to write.
            (Ok(()), Some(d)) => d(Ok(())),
            (Ok(()), None) => {}
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
    let mut stmt = conn.prepare(
        "SELECT aor, contact, q, expires_at, call_id, cseq, path, source, user_agent
         FROM location WHERE expires_at > ?1 ORDER BY aor",
    )?;
    let rows = stmt.query_map(params![now as i64], |r| {
        let path: String = r.get(6)?;
        Ok((
            r.get::<_, String>(0)?,
            Binding {
                contact: r.get(1)?,
                q: r.get::<_, i64>(2)?.clamp(0, 1000) as u16,
                expires_at: r.get::<_, i64>(3)?.max(0) as u64,
                call_id: r.get(4)?,
                cseq: r.get::<_, i64>(5)?.clamp(0, i64::from(u32::MAX)) as u32,
                path: path
                    .split('\n')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect(),
                source: r.get(7)?,
                user_agent: r.get(8)?,
            },
        ))
    })?;
    let mut current: Option<(String, Vec<Binding>)> = None;
    for row in rows {
        let (aor, b) = row?;
        match &mut current {
            Some((a, list)) if *a == aor => list.push(b),
            _ => {
                if let Some((a, list)) = current.take() {
                    memory.replace(&a, list);
                }
                current = Some((aor, vec![b]));
            }
        }
    }
    if let Some((a, list)) = current {
        memory.replace(&a, list);
    }
    Ok(())
}

fn write_loop(mut conn: Connection, rx: Receiver<Job>, max_group: usize, path: PathBuf) {
    let mut last_purge: Option<std::time::Instant> = None;
    while let Ok(first) = rx.recv() {
        // Group commit: everything already waiting goes in one transaction.
        let mut group = vec![first];
        while group.len() < max_group {
            match rx.try_recv() {
                Ok(j) => group.push(j),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let purge_due = last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY);
        if purge_due && group.iter().any(|j| matches!(j, Job::Purge(_))) {
            last_purge = Some(std::time::Instant::now());
        } else {
            group.retain(|j| !matches!(j, Job::Purge(_)));
            if group.is_empty() {
                continue;
            }
        }
        let result = write_group(&mut conn, &group);
        if let Err(e) = &result {
            tracing::error!("database {}: {e}", path.display());
        }
        for job in group {
            match job {
                Job::Put { done, .. } => done(
                    result
                        .as_ref()
                        .map(|_| ())
                        .map_err(|e| LocationError::Storage(e.to_string())),
                ),
                Job::Flush(tx) => {
                    let _ = tx.send(());
                }
                Job::Purge(_) => {}
            }
        }
    }
}

fn write_group(conn: &mut Connection, group: &[Job]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut delete =
            tx.prepare_cached("DELETE FROM location WHERE aor = ?1 AND contact = ?2")?;
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO location
             (aor, contact, q, expires_at, call_id, cseq, path, source, user_agent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        let mut purge = tx.prepare_cached("DELETE FROM location WHERE expires_at <= ?1")?;
        for job in group {
            match job {
                Job::Put {
                    aor,
                    removed,
                    upserts,
                    ..
                } => {
                    for contact in removed {
                        delete.execute(params![aor, contact])?;
                    }
                    for b in upserts {
                        insert.execute(params![
                            aor,
                            b.contact,
                            i64::from(b.q),
                            b.expires_at as i64,
                            b.call_id,
                            i64::from(b.cseq),
                            b.path.join("\n"),
                            b.source,
                            b.user_agent,
                        ])?;
                    }
                }
                Job::Purge(now) => {
                    purge.execute(params![*now as i64])?;
                }
                Job::Flush(_) => {}
            }
        }
    }
    tx.commit()
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
pub struct UserStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl UserStore {
    /// Opens (or creates) the database.
    pub fn open(cfg: &StoreConfig) -> Result<Self, StoreError> {
        Ok(UserStore {
            conn: Mutex::new(open(cfg)?),
            path: cfg.path.clone(),
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

    /// Adds or replaces a user; durable when it returns.
    pub fn put(&self, user: &User) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO users (username, domain, ha1_md5, ha1_sha256)
                 VALUES (?1, ?2, ?3, ?4)",
                params![user.username, user.domain, user.ha1_md5, user.ha1_sha256],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Looks a user up.
    pub fn get(&self, username: &str, domain: &str) -> Result<Option<User>, StoreError> {
        // Cached statement: this runs for every authenticated request, and
        // compiling the SQL each time cost more than the lookup.
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
        self.conn()
            .execute(
                "DELETE FROM users WHERE username = ?1 AND domain = ?2",
                params![username, domain],
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
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
