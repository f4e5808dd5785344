//! The runner lock that lets one cleanup of a session table run at a time
//! across processes and hosts: a PostgreSQL session-level advisory lock or a
//! MySQL named lock, each held on a connection kept out of the pool for the
//! whole run (so a killed runner's lock dies with its connection), and for
//! SQLite an exclusive OS lock on a file next to the database (a process-local
//! registry for in-memory databases, which no other process can open).

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{MySql, Postgres};

use crate::db::SessionDatabase;
use crate::table::SessionTable;

/// How often a waiting runner asks again for a lock that is held.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// MySQL refuses named locks longer than 64 characters.
const MYSQL_LOCK_NAME_MAX: usize = 64;

/// A lock this process holds; released by [`RunnerLock::release`], or when
/// dropped (a cancelled run): the lock's connection is closed rather than
/// returned to the pool, the file closed, the registry entry removed. If the
/// process dies, the database (connection gone) or the OS (file closed)
/// releases it.
#[derive(Debug)]
pub(crate) enum RunnerLock {
    Postgres { conn: PoolConnection<Postgres>, key: i64 },
    MySql { conn: PoolConnection<MySql>, name: String },
    File { _file: File },
    Memory { _guard: MemoryLock },
}

/// An entry in the process-local registry of in-memory databases' locks.
#[derive(Debug)]
pub(crate) struct MemoryLock {
    key: String,
}

impl Drop for MemoryLock {
    fn drop(&mut self) {
        if let Ok(mut held) = memory_locks().lock() {
            held.remove(&self.key);
        }
    }
}

/// Why the lock could not be taken (as opposed to being held by another runner).
#[derive(Debug, thiserror::Error)]
pub(crate) enum LockFailure {
    #[error("{0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot open the lock file {path}: {source}")]
    File { path: String, source: std::io::Error },
}

/// The PostgreSQL advisory-lock key of `table`: a stable 64-bit hash of its
/// name, so every host computes the same key.
pub(crate) fn advisory_key(table: &SessionTable) -> i64 {
    let hash = xxhash_rust::xxh3::xxh3_64(format!("dbwarden_cleanup:{}", table.display_name()).as_bytes());
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// The MySQL named lock of `table`, hashed when the plain name would be too long.
pub(crate) fn mysql_lock_name(table: &SessionTable) -> String {
    let plain = format!("dbwarden_cleanup:{}", table.display_name());
    if plain.len() <= MYSQL_LOCK_NAME_MAX {
        plain
    } else {
        format!("dbwarden_cleanup:{:016x}", xxhash_rust::xxh3::xxh3_64(plain.as_bytes()))
    }
}

fn memory_locks() -> &'static Mutex<HashSet<String>> {
    static LOCKS: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    LOCKS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Paces the tries of a runner waiting for a held lock.
struct Waiter<'a> {
    deadline: Instant,
    stop: &'a AtomicBool,
    contended: bool,
}

impl Waiter<'_> {
    /// After a try that found the lock held: sleeps before the next one;
    /// `false` once the deadline has passed or a shutdown is asked for.
    async fn again(&mut self) -> bool {
        self.contended = true;
        let now = Instant::now();
        if now >= self.deadline || self.stop.load(Ordering::Relaxed) {
            return false;
        }
        tokio::time::sleep(RETRY_EVERY.min(self.deadline - now)).await;
        true
    }
}

/// A lock taken, and whether another runner held it at first.
#[derive(Debug)]
pub(crate) struct Acquired {
    pub(crate) lock: RunnerLock,
    pub(crate) contended: bool,
}

/// Tries to take the lock of `table`, again and again for up to `wait`
/// (zero: one try) unless `stop` is set. `Ok(None)` means another runner
/// holds it.
pub(crate) async fn acquire(
    db: &SessionDatabase,
    table: &SessionTable,
    wait: Duration,
    stop: &AtomicBool,
) -> Result<Option<Acquired>, LockFailure> {
    let mut waiter = Waiter { deadline: Instant::now() + wait, stop, contended: false };
    let lock = match db {
        SessionDatabase::Postgres(pool) => {
            let key = advisory_key(table);
            let mut conn = pool.acquire().await?;
            // A connection that held the lock never goes back to the pool.
            conn.close_on_drop();
            loop {
                let taken: bool =
                    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(&mut *conn).await?;
                if taken {
                    break RunnerLock::Postgres { conn, key };
                }
                if !waiter.again().await {
                    return Ok(None);
                }
            }
        }
        SessionDatabase::MySql(pool) => {
            let name = mysql_lock_name(table);
            let mut conn = pool.acquire().await?;
            conn.close_on_drop();
            // Tried without a server-side wait, so a shutdown is noticed
            // between tries.
            loop {
                let taken: Option<i64> =
                    sqlx::query_scalar("SELECT GET_LOCK(?, 0)").bind(&name).fetch_one(&mut *conn).await?;
                if taken == Some(1) {
                    break RunnerLock::MySql { conn, name };
                }
                if !waiter.again().await {
                    return Ok(None);
                }
            }
        }
        SessionDatabase::Sqlite(pool) => {
            let file: Option<String> = sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_optional(pool)
                .await?;
            match file.filter(|f| !f.is_empty()) {
                Some(db_file) => {
                    let path = PathBuf::from(format!("{db_file}-dbwarden-cleanup.lock"));
                    let file = OpenOptions::new()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(&path)
                        .map_err(|source| LockFailure::File { path: path.display().to_string(), source })?;
                    loop {
                        match file.try_lock() {
                            Ok(()) => break RunnerLock::File { _file: file },
                            Err(TryLockError::WouldBlock) => {
                                if !waiter.again().await {
                                    return Ok(None);
                                }
                            }
                            Err(TryLockError::Error(source)) => {
                                return Err(LockFailure::File { path: path.display().to_string(), source });
                            }
                        }
                    }
                }
                None => {
                    // Each in-memory database has its own name in sqlx's options.
                    let key = format!("{}:{}", pool.connect_options().get_filename().display(), table.display_name());
                    loop {
                        let inserted = memory_locks().lock().map(|mut held| held.insert(key.clone())).unwrap_or(false);
                        if inserted {
                            break RunnerLock::Memory { _guard: MemoryLock { key } };
                        }
                        if !waiter.again().await {
                            return Ok(None);
                        }
                    }
                }
            }
        }
    };
    Ok(Some(Acquired { lock, contended: waiter.contended }))
}

impl RunnerLock {
    /// The PostgreSQL connection that holds the lock, which the run's
    /// batches use.
    pub(crate) fn postgres_connection(&mut self) -> Option<&mut sqlx::PgConnection> {
        match self {
            RunnerLock::Postgres { conn, .. } => Some(&mut **conn),
            _ => None,
        }
    }

    /// Gives the lock back; the connection that held it is closed either way.
    pub(crate) async fn release(self) {
        let released = match self {
            RunnerLock::Postgres { mut conn, key } => sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)")
                .bind(key)
                .fetch_one(&mut *conn)
                .await
                .is_ok_and(|released| released),
            RunnerLock::MySql { mut conn, name } => sqlx::query_scalar::<_, Option<i64>>("SELECT RELEASE_LOCK(?)")
                .bind(&name)
                .fetch_one(&mut *conn)
                .await
                .is_ok_and(|released| released == Some(1)),
            RunnerLock::File { .. } | RunnerLock::Memory { .. } => true,
        };
        if !released {
            tracing::warn!("could not release the cleanup lock explicitly; it ends with its connection");
        }
    }
}
