//! The SQL of one cleanup: which rows a mode selects, and the per-backend
//! batch statement that deletes at most `n` of them in one short
//! transaction.
//!
//! - PostgreSQL 14+, ordinary table: a sweep of the pages the table had
//!   when the run started, in row-address (`ctid`) order, `DELETE … WHERE
//!   ctid >= (p,0) AND ctid < (p+k,0) AND condition`. TID range scans read
//!   each page in place, as one plain `DELETE` does, instead of fetching
//!   every row again by address or key. For batches of at least
//!   [`MIN_RANGE_BATCH`] rows, `k` is sized from the density the previous
//!   range showed to hold about 80 % of `n` targets; a range that holds
//!   more than `n` fails on purpose, which undoes it, and is shrunk to the
//!   density it showed, so no batch exceeds `n`. Each statement is its own
//!   implicit transaction, on a connection set to wait at most 100 ms for a
//!   row lock and to commit without waiting for the WAL flush
//!   ([`BATCH_SESSION_SETTINGS`]): one round trip a batch.
//!   Smaller batches (and a single page holding more than `n` targets) use
//!   one statement that finds the `n`-th target from where the last batch
//!   stopped and deletes the targets up to it, in one snapshot. A row an
//!   application has locked is waited for at most 100 ms (a save is one
//!   short write), and its condition is checked again on the version that
//!   transaction left: a session refreshed meanwhile stays. A lock held
//!   longer makes the batch take its range again with `FOR UPDATE SKIP
//!   LOCKED`, leaving the locked rows to the statement below.
//! - Then, and on other PostgreSQL tables: `DELETE … WHERE ctid =
//!   ANY(ARRAY(SELECT ctid … LIMIT n FOR UPDATE SKIP LOCKED))`, which finds
//!   what the sweep could not, skipping rows an application is updating
//!   right now. The array keeps the planner from a hash join that reads the
//!   whole table for every large batch (what `key IN (SELECT …)` gets). A
//!   partitioned table's `ctid` is only unique within a partition, so there
//!   the batch goes by key. After a sweep that skipped no locked row, what
//!   it could not have seen is on pages added since the run started (rows
//!   inserted or moved by an update meanwhile), so the statement looks only
//!   there (`ctid >= (end,0)`) instead of reading the whole table to find
//!   nothing. An update that leaves a session expired and moves it into an
//!   already swept page is missed; the next run removes it.
//! - MySQL / MariaDB: a chunk of keys is read first, then deleted by key
//!   with the condition checked again, so a session refreshed in between
//!   survives; deleting by primary key locks only those rows.
//! - SQLite: `rowid` chunks (the key for `WITHOUT ROWID` tables).
//!
//! Every value (the cut-off, the chunk size, the keys) is a bind parameter;
//! identifiers come from a verified [`SessionTable`] or are validated here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Row};

use crate::catalog::Layout;
use crate::db::{Backend, SessionDatabase, on_pool};
use crate::table::{ExpiryRule, SessionTable, TableError, placeholder, quote_ident, read_columns, split_table};

use super::{CleanupError, CleanupMode, OrphanRule};

/// Alias of the session table inside batch statements.
const ALIAS: &str = "dbw_s";
/// Alias of the user table in the orphan condition.
const USER_ALIAS: &str = "dbw_u";

/// How MySQL keys travel from the chunk query to the delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    /// Binary keys (dbwarden's SHA-256 `id_hash`): read and bound as bytes.
    Bytes,
    /// Anything else, read as text and compared by MySQL's usual conversion.
    Text,
}

/// A key read by a MySQL chunk query.
#[derive(Debug, Clone)]
enum Key {
    Bytes(Vec<u8>),
    Text(String),
}

/// Batches from this size on sweep page ranges sized by density; smaller
/// ones find the `n`-th target row instead (a few pages hold them all, and
/// a density estimate over so few rows is too coarse).
const MIN_RANGE_BATCH: u64 = 1000;
/// Most pages one range covers (64 MiB of 8 KiB pages), so a stretch with
/// few targets is still crossed in short statements.
const MAX_RANGE_PAGES: u64 = 8192;
/// Share of the batch size a range is sized to hold, leaving room for a
/// denser stretch before the range has to be undone.
const RANGE_FILL: f64 = 0.8;

/// Settings of the connection a PostgreSQL run's batches go through (the
/// one holding the run's lock, closed when the run ends, so they never reach
/// another user of the pool). A row an application holds locked is waited
/// for this long at most (its save is one short statement); a longer lock
/// makes the batch take that range again without the locked rows, which the
/// run's last statements pick up once they are free. Commits do not wait for
/// their WAL flush: a crash can only undo the last few batches, which the
/// next run deletes again, and small batches would otherwise spend more time
/// waiting for the disk than deleting. Each batch is then one statement in
/// its own implicit transaction: one round trip instead of three
/// (`BEGIN`, the statement, `COMMIT`), which on a busy two-core server was a
/// third of a batch's time.
const BATCH_SESSION_SETTINGS: &str = "SET lock_timeout = '100ms'; SET synchronous_commit = off";

/// Text of the error a range statement raises, before it deletes anything,
/// when the range holds more targets than the batch may delete. The server
/// logs it like any error (`invalid input syntax for type bigint: "N targets:
/// more than the batch"`); it happens when the density of expired rows jumps
/// between two ranges, and the run goes on with a smaller range.
const OVER_BATCH: &str = " targets: more than the batch";

/// Whether a range statement undid itself for holding more than the batch.
fn is_over_batch(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db)
        if db.code().as_deref() == Some("22P02") && db.message().contains(OVER_BATCH))
}

/// How many targets the range held, from the text of an [`is_over_batch`]
/// error (`invalid input syntax for type bigint: "1834 targets: …"`).
fn over_batch_count(error: &sqlx::Error) -> Option<u64> {
    let sqlx::Error::Database(db) = error else { return None };
    let message = db.message();
    let start = message.find('"')? + 1;
    let digits = message[start..].split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok().filter(|&count| count > 0)
}

/// Whether PostgreSQL gave up waiting for a row lock (`lock_not_available`).
fn is_lock_timeout(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03"))
}

/// Where the page sweep of a PostgreSQL table is.
#[derive(Debug, Clone, Copy)]
struct Sweep {
    /// The first row address (page, item) not yet swept.
    from: (u64, u64),
    /// Pages of the table when the run started: the sweep ends there.
    end_page: u64,
    /// Pages the next range covers; 0 until the first range is sized.
    pages: u64,
    /// Rows per page by the catalog's statistics, to size the first range.
    rows_per_page: f64,
    /// A batch took its range with `SKIP LOCKED`: rows may be left behind
    /// on swept pages.
    skipped_locked: bool,
}

/// The statements of one run, built once before the lock is taken.
#[derive(Debug)]
pub(crate) struct Plan {
    table_sql: String,
    key: String,
    /// The condition on the aliased table (columns unqualified or `dbw_s.`).
    condition: String,
    /// The same condition on the unaliased table (MySQL's re-check).
    condition_unaliased: String,
    /// Bind values of the condition, in placeholder order.
    binds: Vec<i64>,
    /// PostgreSQL 14+ ordinary tables: the page sweep, `None` once it ended.
    sweep: Mutex<Option<Sweep>>,
    /// Where the statement after the sweep looks: from this page on, or
    /// (`None`) the whole table.
    tail_from_page: Mutex<Option<u64>>,
    /// The held connection has [`BATCH_SESSION_SETTINGS`].
    held_connection_set: AtomicBool,
    mysql_key: KeyKind,
    /// The batch statements, built once for the run.
    sql: Statements,
}

/// The text of a run's batch statements; each takes the condition's binds
/// first, then its own parameters.
#[derive(Debug)]
struct Statements {
    /// PostgreSQL sweep: targets in a row-address range (`from`, `to`), failing
    /// when they are more than `n` (`n`).
    range: Arc<str>,
    /// PostgreSQL sweep: targets from `from` up to the `n`-th (`from`, `end`, `n`).
    to_nth: Arc<str>,
    /// PostgreSQL sweep: up to `n` unlocked targets in a range (`from`, `to`, `n`).
    unlocked: Arc<str>,
    /// PostgreSQL and SQLite: up to `n` targets anywhere (`n`); MySQL: the
    /// chunk of keys to delete (`n`).
    limited: Arc<str>,
    /// PostgreSQL after a sweep: up to `n` targets from a row address on
    /// (`from`, `n`).
    limited_after: Arc<str>,
}

impl Statements {
    fn new(plan: &PlanText<'_>) -> Statements {
        let PlanText { backend, table, key, condition, binds, pg_ctid, sqlite_rowid, mysql_key } = *plan;
        let (p1, p2, p3) = (binds + 1, binds + 2, binds + 3);
        let limit_param = placeholder(backend, p1);
        let limited = match backend {
            Backend::Postgres => {
                let address = if pg_ctid { "ctid" } else { key };
                format!(
                    "DELETE FROM {table} WHERE {address} = ANY(ARRAY(SELECT {ALIAS}.{address} FROM {table} AS {ALIAS} \
                     WHERE {condition} LIMIT {limit_param} FOR UPDATE SKIP LOCKED))"
                )
            }
            Backend::Sqlite => {
                let address = if sqlite_rowid { "rowid" } else { key };
                format!(
                    "DELETE FROM {table} WHERE {address} IN (SELECT {ALIAS}.{address} FROM {table} AS {ALIAS} \
                     WHERE {condition} LIMIT {limit_param})"
                )
            }
            Backend::MySql => {
                let selected = match mysql_key {
                    KeyKind::Bytes => format!("{ALIAS}.{key}"),
                    KeyKind::Text => format!("CAST({ALIAS}.{key} AS CHAR)"),
                };
                format!("SELECT {selected} FROM {table} AS {ALIAS} WHERE {condition} LIMIT ?")
            }
        };
        let range = format!("{ALIAS}.ctid >= ${p1}::tid AND {ALIAS}.ctid < ${p2}::tid");
        let limited_after = format!(
            "DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT {ALIAS}.ctid FROM {table} AS {ALIAS} \
             WHERE {ALIAS}.ctid >= ${p1}::tid AND {condition} LIMIT ${p2} FOR UPDATE SKIP LOCKED))"
        );
        Statements {
            // A range holding more than the batch (`$3`) makes the statement
            // fail before it deletes anything: the count runs first, once
            // (an init plan), and its error text is built from the count, so
            // the planner cannot evaluate the cast ahead of it. Otherwise the
            // delete is a plain range delete, which writes no returned rows.
            range: format!(
                "DELETE FROM {table} AS {ALIAS} WHERE {range} AND {condition} AND \
                 (SELECT CASE WHEN COUNT(*) > ${p3} THEN CAST(COUNT(*)::text || '{OVER_BATCH}' AS bigint) ELSE 0 END \
                 FROM {table} AS {ALIAS} WHERE {range} AND {condition}) = 0"
            )
            .into(),
            // Without ORDER BY the limit stops the TID range scan early; that
            // scan returns rows in address order, and a statement that
            // writes is never run in parallel.
            to_nth: format!(
                "WITH bound AS (SELECT {ALIAS}.ctid AS nth FROM {table} AS {ALIAS} WHERE {range} AND {condition} \
                 OFFSET ${p3} - 1 LIMIT 1), \
                 gone AS (DELETE FROM {table} AS {ALIAS} WHERE {range} \
                 AND {ALIAS}.ctid <= COALESCE((SELECT nth FROM bound), ${p2}::tid) AND {condition} RETURNING 1) \
                 SELECT (SELECT COUNT(*) FROM gone), (SELECT nth::text FROM bound)"
            )
            .into(),
            unlocked: format!(
                "WITH gone AS (DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT {ALIAS}.ctid FROM {table} AS {ALIAS} \
                 WHERE {range} AND {condition} LIMIT ${p3} FOR UPDATE SKIP LOCKED)) RETURNING ctid) \
                 SELECT COUNT(*), MAX(ctid)::text FROM gone"
            )
            .into(),
            limited: limited.into(),
            limited_after: limited_after.into(),
        }
    }
}

/// What the statements are built from.
#[derive(Clone, Copy)]
struct PlanText<'a> {
    backend: Backend,
    table: &'a str,
    key: &'a str,
    condition: &'a str,
    binds: usize,
    pg_ctid: bool,
    sqlite_rowid: bool,
    mysql_key: KeyKind,
}

/// `sql` with the plan's condition binds bound, ready for its own parameters.
macro_rules! with_binds {
    ($plan:expr, $sql:expr) => {{
        let mut query = sqlx::query(AssertSqlSafe($sql));
        for bind in &$plan.binds {
            query = query.bind(*bind);
        }
        query
    }};
}

/// What one batch did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchOutcome {
    /// Rows deleted.
    pub(crate) deleted: u64,
    /// Rows the batch picked (MySQL: the keys read; elsewhere the deleted
    /// rows; the limit while a PostgreSQL page sweep has pages left). Fewer
    /// than the limit: nothing is left to pick.
    pub(crate) picked: u64,
}

fn db_error<'a>(action: &'static str, table: &'a SessionTable) -> impl Fn(sqlx::Error) -> CleanupError + 'a {
    move |err| CleanupError::database(action, table, &err)
}

impl Plan {
    /// Resolves `mode` on `table`: the condition, its binds (cut-off at
    /// `now_ms`) and how batches address rows.
    pub(crate) async fn build(
        db: &SessionDatabase,
        table: &SessionTable,
        mode: &CleanupMode,
        orphans: Option<&OrphanRule>,
        now_ms: i64,
    ) -> Result<Plan, CleanupError> {
        let backend = table.backend();
        let (condition, condition_unaliased, binds) = match mode {
            CleanupMode::Expired => {
                let condition = table.expired_condition(1);
                (condition.clone(), condition, vec![table.expiry_cutoff_ms(now_ms)])
            }
            CleanupMode::Force { max_age } => {
                let layout = Layout::read(db, table).await.map_err(db_error("read the table's columns", table))?;
                let column = match (layout.created, layout.last_seen, &table.mapping().expiry) {
                    (Some(created), _, _) => created,
                    (None, Some(last_seen), _) => last_seen,
                    (None, None, ExpiryRule::IdleFor { .. }) => layout.expiry,
                    (None, None, ExpiryRule::ExpiresAt { .. }) => {
                        return Err(CleanupError::NoAgeColumn { table: table.display_name().to_owned() });
                    }
                };
                let age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
                let condition = format!("{} < {}", column.sql(), column.param(1));
                (condition.clone(), condition, vec![now_ms.saturating_sub(age_ms)])
            }
            CleanupMode::Orphans => {
                let rule = orphans.ok_or(CleanupError::NoOrphanRule)?;
                let user_column = table
                    .mapping()
                    .user_id
                    .clone()
                    .ok_or_else(|| CleanupError::NoUserColumn { table: table.display_name().to_owned() })?;
                let (aliased, unaliased) = orphan_condition(db, table, &user_column, rule).await?;
                (aliased, unaliased, Vec::new())
            }
        };
        let sqlite_rowid = match backend {
            Backend::Sqlite => has_rowid(db, table).await.map_err(db_error("read the table's catalog", table))?,
            _ => false,
        };
        let pg = match backend {
            Backend::Postgres => pg_relation(db, table).await.map_err(db_error("read the table's catalog", table))?,
            _ => None,
        };
        let pg_ctid = pg.is_some();
        let sweep = pg.and_then(|relation| {
            relation.sweepable.then_some(Sweep {
                from: (0, 0),
                end_page: relation.pages,
                pages: 0,
                rows_per_page: relation.rows_per_page,
                skipped_locked: false,
            })
        });
        let mysql_key = match backend {
            Backend::MySql => {
                let columns = read_columns(db, table.schema(), table.name())
                    .await
                    .map_err(db_error("read the table's columns", table))?;
                let key_type = columns
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(&table.mapping().key))
                    .map(|c| c.data_type.clone())
                    .unwrap_or_default();
                if key_type.contains("binary") || key_type.contains("blob") { KeyKind::Bytes } else { KeyKind::Text }
            }
            _ => KeyKind::Text,
        };
        let table_sql = table.sql_name();
        let key = table.col(&table.mapping().key);
        let sql = Statements::new(&PlanText {
            backend,
            table: &table_sql,
            key: &key,
            condition: &condition,
            binds: binds.len(),
            pg_ctid,
            sqlite_rowid,
            mysql_key,
        });
        Ok(Plan {
            table_sql,
            key,
            condition,
            condition_unaliased,
            binds,
            sweep: Mutex::new(sweep),
            tail_from_page: Mutex::new(None),
            held_connection_set: AtomicBool::new(false),
            mysql_key,
            sql,
        })
    }

    /// `SELECT COUNT(*)` of the rows the run targets.
    pub(crate) async fn count(&self, db: &SessionDatabase) -> Result<u64, sqlx::Error> {
        let sql = format!("SELECT COUNT(*) FROM {} AS {ALIAS} WHERE {}", self.table_sql, self.condition);
        // PostgreSQL would count a large table with parallel workers, which
        // take every core for the scan's length while the application's
        // queries wait for a CPU. A cleanup runs beside the application, so
        // it counts on one core.
        let begin = match db.backend() {
            Backend::Postgres => "BEGIN; SET LOCAL max_parallel_workers_per_gather = 0",
            Backend::MySql | Backend::Sqlite => "BEGIN",
        };
        let count: i64 = on_pool!(db, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let mut query = sqlx::query_scalar(AssertSqlSafe(sql));
            for bind in &self.binds {
                query = query.bind(*bind);
            }
            let count = query.fetch_one(&mut *tx).await?;
            tx.commit().await?;
            count
        });
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The next batch of a PostgreSQL page sweep. `None` once the sweep is
    /// over (or there is none) and the rows it missed are looked for by the
    /// `LIMIT` statement.
    async fn sweep(&self, conn: &mut PgConnection, limit: u64) -> Result<Option<BatchOutcome>, sqlx::Error> {
        if limit < MIN_RANGE_BATCH {
            return self.sweep_to_nth(conn, limit).await;
        }
        let target = (limit as f64 * RANGE_FILL).max(1.0);
        loop {
            let Some(mut sweep) = self.sweep.lock().ok().and_then(|guard| *guard) else { return Ok(None) };
            if sweep.from.0 >= sweep.end_page {
                return Ok(self.end_sweep(sweep, 0, limit));
            }
            if sweep.pages == 0 {
                sweep.pages = ((target / sweep.rows_per_page) as u64).clamp(1, MAX_RANGE_PAGES);
            }
            let to = sweep.from.0.saturating_add(sweep.pages).min(sweep.end_page);
            let covered = to - sweep.from.0;
            let done = with_binds!(self, self.sql.range.clone())
                .bind(format!("({},{})", sweep.from.0, sweep.from.1))
                .bind(format!("({to},0)"))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .execute(&mut *conn)
                .await;
            let deleted = match done {
                Ok(done) => done.rows_affected(),
                Err(error) if is_over_batch(&error) => {
                    if covered == 1 {
                        // One page holds more than a batch: take it `limit` rows at a time.
                        return self.sweep_to_nth(conn, limit).await;
                    }
                    sweep.pages = match over_batch_count(&error) {
                        Some(found) => (((covered as f64) * target / found as f64) as u64).clamp(1, covered / 2),
                        None => covered / 2,
                    };
                    self.store_sweep(Some(sweep));
                    continue;
                }
                Err(error) if is_lock_timeout(&error) => {
                    sweep.skipped_locked = true;
                    self.delete_unlocked(conn, sweep.from, (to, 0), limit).await?.0
                }
                Err(error) => return Err(error),
            };
            // The next range holds about `target` rows at this range's
            // density, growing at most twofold so a dense stretch after a
            // sparse one still gives a short statement.
            let grown = covered.saturating_mul(2).min(MAX_RANGE_PAGES);
            sweep.pages = if deleted == 0 {
                grown
            } else {
                (((covered as f64) * target / deleted as f64) as u64).clamp(1, grown.max(1))
            };
            sweep.from = (to, 0);
            self.store_sweep(Some(sweep));
            if deleted > 0 {
                if to >= sweep.end_page {
                    return Ok(self.end_sweep(sweep, deleted, limit));
                }
                return Ok(Some(BatchOutcome { deleted, picked: limit }));
            }
        }
    }

    fn store_sweep(&self, sweep: Option<Sweep>) {
        if let Ok(mut guard) = self.sweep.lock() {
            *guard = sweep;
        }
    }

    /// Ends the sweep after a batch that deleted `deleted` rows and reached
    /// its last page: `None` (look for missed rows now) or the batch's outcome.
    fn end_sweep(&self, sweep: Sweep, deleted: u64, limit: u64) -> Option<BatchOutcome> {
        self.store_sweep(None);
        if let Ok(mut tail) = self.tail_from_page.lock() {
            *tail = (!sweep.skipped_locked).then_some(sweep.end_page);
        }
        if deleted == 0 {
            return None;
        }
        Some(BatchOutcome { deleted, picked: limit })
    }

    /// One sweep statement that finds the `limit`-th target row from where
    /// the sweep is and deletes the targets up to it.
    async fn sweep_to_nth(&self, conn: &mut PgConnection, limit: u64) -> Result<Option<BatchOutcome>, sqlx::Error> {
        let Some(mut sweep) = self.sweep.lock().ok().and_then(|guard| *guard) else { return Ok(None) };
        let done = with_binds!(self, self.sql.to_nth.clone())
            .bind(format!("({},{})", sweep.from.0, sweep.from.1))
            .bind(format!("({},0)", sweep.end_page))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_one(&mut *conn)
            .await;
        let (deleted, next) = match done {
            Ok(row) => {
                let deleted = u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0);
                let nth: Option<String> = row.try_get(1)?;
                (deleted, nth.as_deref().and_then(parse_tid))
            }
            Err(error) if is_lock_timeout(&error) => {
                sweep.skipped_locked = true;
                let (deleted, last) = self.delete_unlocked(conn, sweep.from, (sweep.end_page, 0), limit).await?;
                // Fewer than `limit` deleted: no free target is left on the swept pages.
                (deleted, last.filter(|_| deleted >= limit))
            }
            Err(error) => return Err(error),
        };
        let Some((page, item)) = next else {
            // Fewer than `limit` targets were left on the swept pages.
            return Ok(self.end_sweep(sweep, deleted, limit));
        };
        sweep.from = (page, item + 1);
        self.store_sweep(Some(sweep));
        Ok(Some(BatchOutcome { deleted, picked: limit }))
    }

    /// Deletes at most `limit` targets between the row addresses `from` and
    /// `to`, skipping rows another transaction holds locked; also returns the
    /// address of the last row it deleted. The sweep moves on past the
    /// skipped rows, and the run's last statements come back for them.
    async fn delete_unlocked(
        &self,
        conn: &mut PgConnection,
        from: (u64, u64),
        to: (u64, u64),
        limit: u64,
    ) -> Result<(u64, Option<(u64, u64)>), sqlx::Error> {
        let row = with_binds!(self, self.sql.unlocked.clone())
            .bind(format!("({},{})", from.0, from.1))
            .bind(format!("({},{})", to.0, to.1))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_one(&mut *conn)
            .await?;
        let deleted = u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0);
        let last: Option<String> = row.try_get(1)?;
        Ok((deleted, last.as_deref().and_then(parse_tid)))
    }

    /// Deletes at most `limit` target rows, each statement its own transaction.
    /// On PostgreSQL the batches run on `held` when given (the connection
    /// that holds the run's lock): no pool checkout per batch, and a run
    /// whose lock connection is lost cannot go on without its lock.
    pub(crate) async fn batch(
        &self,
        db: &SessionDatabase,
        held: Option<&mut PgConnection>,
        limit: u64,
    ) -> Result<BatchOutcome, sqlx::Error> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (table, key) = (&self.table_sql, &self.key);
        match db {
            SessionDatabase::Postgres(pool) => {
                let mut pooled;
                let conn: &mut PgConnection = match held {
                    Some(conn) => {
                        if !self.held_connection_set.swap(true, Ordering::Relaxed) {
                            sqlx::raw_sql(BATCH_SESSION_SETTINGS).execute(&mut *conn).await?;
                        }
                        conn
                    }
                    None => {
                        // Closed after the batch, so its settings reach no one else.
                        pooled = pool.acquire().await?;
                        pooled.close_on_drop();
                        sqlx::raw_sql(BATCH_SESSION_SETTINGS).execute(&mut *pooled).await?;
                        &mut pooled
                    }
                };
                if let Some(outcome) = self.sweep(conn, u64::try_from(limit).unwrap_or(0)).await? {
                    return Ok(outcome);
                }
                let tail_from_page = self.tail_from_page.lock().ok().and_then(|guard| *guard);
                let statement = match tail_from_page {
                    Some(page) => with_binds!(self, self.sql.limited_after.clone()).bind(format!("({page},0)")),
                    None => with_binds!(self, self.sql.limited.clone()),
                };
                let deleted = statement.bind(limit).execute(&mut *conn).await?.rows_affected();
                Ok(BatchOutcome { deleted, picked: deleted })
            }
            SessionDatabase::Sqlite(pool) => {
                let deleted =
                    with_binds!(self, self.sql.limited.clone()).bind(limit).execute(pool).await?.rows_affected();
                Ok(BatchOutcome { deleted, picked: deleted })
            }
            SessionDatabase::MySql(pool) => {
                let rows = with_binds!(self, self.sql.limited.clone()).bind(limit).fetch_all(pool).await?;
                let keys = rows
                    .iter()
                    .map(|row| match self.mysql_key {
                        KeyKind::Bytes => row.try_get::<Vec<u8>, _>(0).map(Key::Bytes),
                        KeyKind::Text => row.try_get::<String, _>(0).map(Key::Text),
                    })
                    .collect::<Result<Vec<Key>, _>>()?;
                if keys.is_empty() {
                    return Ok(BatchOutcome { deleted: 0, picked: 0 });
                }
                let list = vec!["?"; keys.len()].join(", ");
                let delete_sql =
                    format!("DELETE FROM {table} WHERE {key} IN ({list}) AND {}", self.condition_unaliased);
                let mut query = sqlx::query(AssertSqlSafe(delete_sql));
                for key in &keys {
                    query = match key {
                        Key::Bytes(bytes) => query.bind(bytes.clone()),
                        Key::Text(text) => query.bind(text.clone()),
                    };
                }
                for bind in &self.binds {
                    query = query.bind(*bind);
                }
                let deleted = query.execute(pool).await?.rows_affected();
                Ok(BatchOutcome { deleted, picked: keys.len() as u64 })
            }
        }
    }
}

/// Whether a SQLite table has a rowid (it does unless declared `WITHOUT ROWID`).
async fn has_rowid(db: &SessionDatabase, table: &SessionTable) -> Result<bool, sqlx::Error> {
    let SessionDatabase::Sqlite(pool) = db else { return Ok(false) };
    let without_rowid: Option<i64> =
        sqlx::query_scalar("SELECT wr FROM pragma_table_list WHERE schema = ?1 AND name = ?2")
            .bind(table.schema().unwrap_or("main"))
            .bind(table.name())
            .fetch_optional(pool)
            .await?;
    Ok(without_rowid != Some(1))
}

/// An ordinary PostgreSQL table (not partitioned: its `ctid` addresses one row).
#[derive(Debug, Clone, Copy)]
struct PgRelation {
    /// Its pages now.
    pages: u64,
    /// Rows per page by the catalog's statistics (a default before any).
    rows_per_page: f64,
    /// The server scans TID ranges (PostgreSQL 14+), which the sweep needs.
    sweepable: bool,
}

/// The table's size and the server's abilities; `None` unless the table is
/// an ordinary PostgreSQL table.
async fn pg_relation(db: &SessionDatabase, table: &SessionTable) -> Result<Option<PgRelation>, sqlx::Error> {
    /// Rows per page assumed before the table was ever analyzed.
    const DEFAULT_ROWS_PER_PAGE: f64 = 50.0;
    let SessionDatabase::Postgres(pool) = db else { return Ok(None) };
    let row = sqlx::query(
        "SELECT c.relkind::text, pg_relation_size(c.oid) / current_setting('block_size')::bigint, \
                c.reltuples::float8, c.relpages::float8, current_setting('server_version_num')::int >= 140000 \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = COALESCE($1, current_schema()) AND c.relname = $2",
    )
    .bind(table.schema())
    .bind(table.name())
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    if row.try_get::<String, _>(0)? != "r" {
        return Ok(None);
    }
    let (tuples, relpages): (f64, f64) = (row.try_get(2)?, row.try_get(3)?);
    let rows_per_page = if tuples > 0.0 && relpages > 0.0 { tuples / relpages } else { DEFAULT_ROWS_PER_PAGE };
    Ok(Some(PgRelation {
        pages: u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0),
        rows_per_page: rows_per_page.max(1.0),
        sweepable: row.try_get(4)?,
    }))
}

/// `(page,item)` as PostgreSQL prints a `tid`.
fn parse_tid(text: &str) -> Option<(u64, u64)> {
    let (page, item) = text.strip_prefix('(')?.strip_suffix(')')?.split_once(',')?;
    Some((page.trim().parse().ok()?, item.trim().parse().ok()?))
}

/// What kind of value a column holds, to decide whether a comparison needs a cast.
fn type_family(data_type: &str) -> &'static str {
    if data_type.contains("int") || data_type == "numeric" || data_type == "decimal" {
        "integer"
    } else if data_type.contains("char") || data_type.contains("text") || data_type.contains("clob") {
        "text"
    } else if data_type == "uuid" {
        "uuid"
    } else {
        "other"
    }
}

/// "The session names a user and that user does not exist", for the
/// aliased table and for the table by its full name. A user id compared
/// with a key of another type family (text against an integer id) is
/// compared as text on both sides, since not every text is a number.
async fn orphan_condition(
    db: &SessionDatabase,
    table: &SessionTable,
    user_column: &str,
    rule: &OrphanRule,
) -> Result<(String, String), CleanupError> {
    let backend = table.backend();
    let (schema, name) = split_table(&rule.user_table)?;
    if !crate::table::valid_identifier(&rule.user_key) {
        return Err(
            TableError::InvalidIdentifier { what: "column", name: rule.user_key.chars().take(80).collect() }.into()
        );
    }
    let user_columns = read_columns(db, schema.as_deref(), &name)
        .await
        .map_err(|source| TableError::Catalog { table: rule.user_table.clone(), source })?;
    if user_columns.is_empty() {
        return Err(TableError::MissingTable { table: rule.user_table.clone() }.into());
    }
    let key_type = user_columns
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(&rule.user_key))
        .map(|c| c.data_type.clone())
        .ok_or_else(|| TableError::MissingColumn {
            table: rule.user_table.clone(),
            column: rule.user_key.clone(),
            role: "user key",
        })?;
    let session_columns = read_columns(db, table.schema(), table.name())
        .await
        .map_err(|source| TableError::Catalog { table: table.display_name().to_owned(), source })?;
    let user_type =
        session_columns.iter().find(|c| c.name.eq_ignore_ascii_case(user_column)).map(|c| c.data_type.clone());
    let user_type = user_type.unwrap_or_default();
    let users_sql = match &schema {
        Some(schema) => format!("{}.{}", quote_ident(backend, schema), quote_ident(backend, &name)),
        None => quote_ident(backend, &name),
    };
    let as_text = |expr: String| match backend {
        Backend::MySql => format!("CAST({expr} AS CHAR)"),
        Backend::Postgres | Backend::Sqlite => format!("CAST({expr} AS TEXT)"),
    };
    let same_family = type_family(&key_type) == type_family(&user_type);
    let build = |qualifier: &str| {
        let session_user = format!("{qualifier}.{}", table.col(user_column));
        let user_key = format!("{USER_ALIAS}.{}", quote_ident(backend, &rule.user_key));
        let comparison = if same_family {
            format!("{user_key} = {session_user}")
        } else {
            format!("{} = {}", as_text(user_key), as_text(session_user.clone()))
        };
        format!(
            "{session_user} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {users_sql} AS {USER_ALIAS} WHERE {comparison})"
        )
    };
    Ok((build(ALIAS), build(&table.sql_name())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_addresses_parse_as_postgres_prints_them() {
        assert_eq!(parse_tid("(1896,15)"), Some((1896, 15)));
        assert_eq!(parse_tid("(0,1)"), Some((0, 1)));
        for bad in ["", "(1,)", "1,2", "(a,1)", "(1,2"] {
            assert_eq!(parse_tid(bad), None, "{bad}");
        }
    }

    #[test]
    fn type_families_group_what_compares_without_a_cast() {
        assert_eq!(type_family("bigint"), type_family("integer"));
        assert_eq!(type_family("character varying"), type_family("text"));
        assert_ne!(type_family("text"), type_family("bigint"));
        assert_ne!(type_family("uuid"), type_family("text"));
    }
}
