//! The `dbwarden_cleanup_runs` record of every cleanup: a row inserted when a
//! run starts (`finished_at` NULL) and completed when it ends, so a run that
//! was killed stays visible as unfinished.
//!
//! On a database dbwarden never migrated (a Django or Rails table), the
//! runs table is created on first use with the same idempotent DDL as
//! migration 2, without recording a migration: the session table there is
//! not dbwarden's, so `dbwarden_migrations` has nothing to say about it. A
//! dry run never creates it; it records itself (`dry_run` true) only where
//! the table already exists.

use serde::Serialize;
use sqlx::{AssertSqlSafe, Executor, Row};

use crate::db::{Backend, SessionDatabase, on_pool};
use crate::schema::{CLEANUP_RUNS_TABLE, SchemaConfig, migration_statements};
use crate::table::{SessionTable, placeholder, read_columns};

/// The schema version whose statements create the runs table.
const RUNS_TABLE_MIGRATION: i64 = 2;

/// How many recent runs [`recent`] returns.
pub(crate) const RECENT_RUNS: i64 = 10;

/// One row of `dbwarden_cleanup_runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CleanupRun {
    /// The row's id.
    pub id: i64,
    /// When the run started, epoch milliseconds.
    pub started_at_ms: i64,
    /// When it ended; `None` while it runs, or when it was killed.
    pub finished_at_ms: Option<i64>,
    /// `expired`, `force` or `orphans`.
    pub mode: String,
    /// Rows removed (in a dry run: rows it would remove).
    pub rows_removed: i64,
    /// Batches committed.
    pub batches: i64,
    /// Failed batch attempts.
    pub errors: i64,
    /// Whether it was a dry run.
    pub dry_run: bool,
    /// The host that ran it.
    pub host: String,
}

/// What a run wrote so far, for [`finish`] and [`progress`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunFigures {
    pub(crate) rows: u64,
    pub(crate) batches: u64,
    pub(crate) errors: u64,
}

pub(crate) async fn exists(db: &SessionDatabase) -> Result<bool, sqlx::Error> {
    Ok(!read_columns(db, None, CLEANUP_RUNS_TABLE).await?.is_empty())
}

/// Creates the runs table when it is missing (idempotent DDL).
pub(crate) async fn ensure(db: &SessionDatabase) -> Result<(), sqlx::Error> {
    if exists(db).await? {
        return Ok(());
    }
    for statement in migration_statements(RUNS_TABLE_MIGRATION, db.backend(), &SchemaConfig::default()) {
        if let Err(err) = on_pool!(db, pool => pool.execute(AssertSqlSafe(statement)).await.map(|_| ())) {
            // Two first runs (of two tables) can race on PostgreSQL's
            // CREATE TABLE IF NOT EXISTS; the loser finds the table there.
            if !exists(db).await? {
                return Err(err);
            }
        }
    }
    Ok(())
}

/// Inserts the row of a run that starts now; returns its id.
pub(crate) async fn start(
    db: &SessionDatabase,
    table: &SessionTable,
    started_at_ms: i64,
    mode: &str,
    dry_run: bool,
    host: &str,
) -> Result<i64, sqlx::Error> {
    let b = db.backend();
    let values: Vec<String> = (1..=5).map(|n| placeholder(b, n)).collect();
    let sql = format!(
        "INSERT INTO {CLEANUP_RUNS_TABLE} (started_at, table_name, mode, dry_run, host) VALUES ({})",
        values.join(", ")
    );
    let table_name = table.display_name();
    // The same five values in the same order on every backend.
    macro_rules! bound {
        ($query:expr) => {
            $query.bind(started_at_ms).bind(table_name).bind(mode).bind(dry_run).bind(host)
        };
    }
    match db {
        SessionDatabase::Postgres(pool) => {
            bound!(sqlx::query_scalar(AssertSqlSafe(format!("{sql} RETURNING id")))).fetch_one(pool).await
        }
        SessionDatabase::MySql(pool) => {
            let done = bound!(sqlx::query(AssertSqlSafe(sql))).execute(pool).await?;
            Ok(i64::try_from(done.last_insert_id()).unwrap_or(i64::MAX))
        }
        SessionDatabase::Sqlite(pool) => {
            let done = bound!(sqlx::query(AssertSqlSafe(sql))).execute(pool).await?;
            Ok(done.last_insert_rowid())
        }
    }
}

/// Writes the figures so far; with `finished_at_ms`, marks the run ended.
pub(crate) async fn update(
    db: &SessionDatabase,
    id: i64,
    figures: RunFigures,
    finished_at_ms: Option<i64>,
) -> Result<(), sqlx::Error> {
    let b = db.backend();
    let sql = format!(
        "UPDATE {CLEANUP_RUNS_TABLE} SET rows_removed = {}, batches = {}, errors = {}, finished_at = {} WHERE id = {}",
        placeholder(b, 1),
        placeholder(b, 2),
        placeholder(b, 3),
        placeholder(b, 4),
        placeholder(b, 5)
    );
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    on_pool!(db, pool => sqlx::query(AssertSqlSafe(sql))
        .bind(int(figures.rows))
        .bind(int(figures.batches))
        .bind(int(figures.errors))
        .bind(finished_at_ms)
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ()))
}

/// The host of the newest unfinished run of `table`: when the lock is held,
/// that is almost surely the runner holding it.
pub(crate) async fn running_host(db: &SessionDatabase, table: &SessionTable) -> Result<Option<String>, sqlx::Error> {
    if !exists(db).await? {
        return Ok(None);
    }
    let sql = format!(
        "SELECT host FROM {CLEANUP_RUNS_TABLE} WHERE table_name = {} AND finished_at IS NULL \
         ORDER BY started_at DESC LIMIT 1",
        placeholder(db.backend(), 1)
    );
    on_pool!(db, pool => sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(table.display_name())
        .fetch_optional(pool)
        .await)
}

/// The latest [`RECENT_RUNS`] runs of `table`, newest first (empty without a runs table).
pub(crate) async fn recent(db: &SessionDatabase, table: &SessionTable) -> Result<Vec<CleanupRun>, sqlx::Error> {
    if !exists(db).await? {
        return Ok(Vec::new());
    }
    let b = db.backend();
    // The boolean is read as an integer: BOOLEAN on PostgreSQL, TINYINT on
    // MySQL, INTEGER on SQLite.
    let dry_run = match b {
        Backend::Postgres => "CAST(dry_run AS INT)::BIGINT",
        Backend::MySql => "CAST(dry_run AS SIGNED)",
        Backend::Sqlite => "CAST(dry_run AS INTEGER)",
    };
    let sql = format!(
        "SELECT id, started_at, finished_at, mode, rows_removed, batches, errors, {dry_run}, host \
         FROM {CLEANUP_RUNS_TABLE} WHERE table_name = {} ORDER BY started_at DESC, id DESC LIMIT {RECENT_RUNS}",
        placeholder(b, 1)
    );
    on_pool!(db, pool => {
        let rows = sqlx::query(AssertSqlSafe(sql)).bind(table.display_name()).fetch_all(pool).await?;
        rows.iter()
            .map(|row| {
                Ok(CleanupRun {
                    id: row.try_get(0)?,
                    started_at_ms: row.try_get(1)?,
                    finished_at_ms: row.try_get(2)?,
                    mode: row.try_get(3)?,
                    rows_removed: row.try_get(4)?,
                    batches: row.try_get(5)?,
                    errors: row.try_get(6)?,
                    dry_run: row.try_get::<i64, _>(7)? != 0,
                    host: row.try_get(8)?,
                })
            })
            .collect()
    })
}

/// The name of this host, for the runs table (`unknown` when the system does not say).
pub(crate) fn host_name() -> String {
    let from_file = |path: &str| std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned());
    from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .filter(|h| !h.is_empty())
        .map(|h| h.chars().take(255).collect())
        .unwrap_or_else(|| "unknown".to_owned())
}
