//! Database maintenance of a session table, per backend: what it occupies
//! and how much of that is dead ([`analyze`]), the indexes cleanup and the
//! per-user queries need ([`create_indexes`]), reclaiming space and
//! refreshing planner statistics ([`optimize`]), the engine's integrity
//! check plus consistency counts of the session rows ([`integrity_check`]),
//! and one combined summary ([`stats`]).
//!
//! Every operation that changes something has a dry run that changes
//! nothing and lists the statements it would run.

use std::time::Instant;

use dbwarden_core::Timestamp;
use serde::Serialize;

use crate::analytics::{self, AnalyticsError, Counts, Unavailable};
use crate::catalog::{self, Bind, Kind, Layout};
pub use crate::catalog::{IndexInfo, TableSizes};
use crate::db::{Backend, SessionDatabase, redact_url};
use crate::schema::CLEANUP_RUNS_TABLE;
use crate::table::{SessionTable, placeholder, quote_ident};

/// Longest index name both PostgreSQL (63) and MySQL (64) accept.
const MAX_INDEX_NAME: usize = 63;
/// Prefix length for indexing a MySQL `TEXT` / `BLOB` column (fits utf8mb4's 767-byte limit).
const MYSQL_TEXT_PREFIX: u32 = 191;

/// A maintenance operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MaintenanceError {
    /// A statement against the database failed.
    #[error("cannot {action} of `{table}`: {message}")]
    Database {
        /// What was being done.
        action: &'static str,
        /// The session table.
        table: String,
        /// The driver's message (passwords redacted).
        message: String,
    },
    /// Counting the sessions failed.
    #[error(transparent)]
    Analytics(#[from] AnalyticsError),
}

fn db_err<'a>(action: &'static str, table: &'a SessionTable) -> impl Fn(sqlx::Error) -> MaintenanceError + 'a {
    move |err| MaintenanceError::Database {
        action,
        table: table.display_name().to_owned(),
        message: redact_url(&err.to_string()),
    }
}

fn millis(now: Timestamp) -> i64 {
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

// ------------------------------------------------------------------ analyze

/// What the session table occupies and how much of it is dead.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnalyzeReport {
    /// The table.
    pub table: String,
    /// `postgres`, `mysql` or `sqlite`.
    pub backend: &'static str,
    /// Rows, counted.
    pub rows: i64,
    /// Sizes on disk, where the backend tells.
    #[serde(flatten)]
    pub sizes: TableSizes,
    /// The table's indexes.
    pub indexes: Vec<IndexInfo>,
    /// PostgreSQL: dead row versions awaiting vacuum (`pg_stat_user_tables`).
    pub dead_tuples: Option<i64>,
    /// PostgreSQL: `dead / (live + dead)` by the statistics collector.
    pub dead_fraction: Option<f64>,
    /// PostgreSQL: the last manual or automatic vacuum, epoch milliseconds.
    pub last_vacuum_ms: Option<i64>,
    /// PostgreSQL: the last manual or automatic analyze, epoch milliseconds.
    pub last_analyze_ms: Option<i64>,
    /// Space allocated but unused that an optimize could give back: MySQL
    /// `data_free`, SQLite free pages × page size (the whole database file).
    pub reclaimable_bytes: Option<i64>,
    /// How to read the figures on this backend.
    pub notes: Vec<String>,
}

/// Reads the table's size, indexes and dead space.
pub async fn analyze(db: &SessionDatabase, table: &SessionTable) -> Result<AnalyzeReport, MaintenanceError> {
    let rows_sql = format!("SELECT COUNT(*) FROM {}", table.sql_name());
    let rows = catalog::fetch_ints(db, &rows_sql, &[], 1).await.map_err(db_err("count the rows", table))?;
    let sizes = catalog::sizes(db, table).await.map_err(db_err("read the size", table))?;
    let indexes = catalog::indexes(db, table).await.map_err(db_err("read the indexes", table))?;
    let mut report = AnalyzeReport {
        table: table.display_name().to_owned(),
        backend: table.backend().as_str(),
        rows: rows.first().copied().flatten().unwrap_or(0),
        sizes,
        indexes,
        dead_tuples: None,
        dead_fraction: None,
        last_vacuum_ms: None,
        last_analyze_ms: None,
        reclaimable_bytes: None,
        notes: Vec::new(),
    };
    match db.backend() {
        Backend::Postgres => {
            let epoch = |c: &str| format!("CAST(EXTRACT(EPOCH FROM {c}) * 1000 AS BIGINT)");
            let sql = format!(
                "SELECT n_live_tup::bigint, n_dead_tup::bigint, {}, {} FROM pg_stat_user_tables WHERE relid = to_regclass($1)",
                epoch("GREATEST(last_vacuum, last_autovacuum)"),
                epoch("GREATEST(last_analyze, last_autoanalyze)")
            );
            let row = catalog::fetch_ints(db, &sql, &[Bind::Text(table.sql_name())], 4)
                .await
                .map_err(db_err("read the vacuum statistics", table))?;
            let (live, dead) = (row.first().copied().flatten(), row.get(1).copied().flatten());
            report.dead_tuples = dead;
            report.dead_fraction = match (live, dead) {
                (Some(l), Some(d)) if l + d > 0 => Some(d as f64 / (l + d) as f64),
                _ => None,
            };
            report.last_vacuum_ms = row.get(2).copied().flatten();
            report.last_analyze_ms = row.get(3).copied().flatten();
            report.notes.push(
                "dead tuples come from the statistics collector and lag by a few seconds; \
                 VACUUM makes their space reusable, only VACUUM FULL returns it to the OS"
                    .to_owned(),
            );
        }
        Backend::MySql => {
            let row = catalog::fetch_ints(
                db,
                "SELECT CAST(data_free AS SIGNED) FROM information_schema.tables \
                 WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?",
                &[Bind::OptText(table.schema().map(str::to_owned)), Bind::Text(table.name().to_owned())],
                1,
            )
            .await
            .map_err(db_err("read the free space", table))?;
            report.reclaimable_bytes = row.first().copied().flatten();
            report.notes.push(
                "InnoDB sizes are estimates refreshed by ANALYZE TABLE; data_free is space OPTIMIZE TABLE can reclaim \
                 (for a shared tablespace, the whole tablespace's)"
                    .to_owned(),
            );
        }
        Backend::Sqlite => {
            let row = catalog::fetch_ints(
                db,
                "SELECT (SELECT freelist_count FROM pragma_freelist_count()) * (SELECT page_size FROM pragma_page_size())",
                &[],
                1,
            )
            .await
            .map_err(db_err("read the free pages", table))?;
            report.reclaimable_bytes = row.first().copied().flatten();
            report
                .notes
                .push("free pages belong to the whole database file; VACUUM rebuilds the file without them".to_owned());
        }
    }
    Ok(report)
}

// ----------------------------------------------------------- create_indexes

/// One recommended index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecommendedIndex {
    /// The column it covers.
    pub column: String,
    /// Why it is recommended.
    pub purpose: &'static str,
    /// The index that already serves it, or the name of the one to create.
    pub index: String,
    /// The statements that create it (empty when it is already present).
    pub statements: Vec<String>,
}

/// What [`create_indexes`] did or, in a dry run, would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexReport {
    /// The table.
    pub table: String,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Indexes created (or to be created in a dry run).
    pub created: Vec<RecommendedIndex>,
    /// Recommended indexes an existing index already serves.
    pub already_present: Vec<RecommendedIndex>,
}

/// Creates the recommended indexes that are missing: on the expiry column
/// (cleanup and expired counts) and on the user column (per-user limits and
/// "log out everywhere"). An index whose first column is the one wanted
/// counts as present, so a second call creates nothing.
///
/// PostgreSQL builds with `CREATE INDEX CONCURRENTLY` so sessions keep being
/// written meanwhile; an invalid index a failed concurrent build left behind
/// under the same name is dropped first.
pub async fn create_indexes(
    db: &SessionDatabase,
    table: &SessionTable,
    dry_run: bool,
) -> Result<IndexReport, MaintenanceError> {
    let layout = Layout::read(db, table).await.map_err(db_err("read the columns", table))?;
    let indexes = catalog::indexes(db, table).await.map_err(db_err("read the indexes", table))?;
    let mut wanted = vec![(layout.expiry.name.clone(), "cleanup and expiry counts range-scan it", None)];
    if let Some((user, data_type)) = &layout.user {
        wanted.push((user.clone(), "per-user session limits and logout everywhere look users up", Some(data_type)));
    }
    let mut report = IndexReport {
        table: table.display_name().to_owned(),
        dry_run,
        created: Vec::new(),
        already_present: Vec::new(),
    };
    for (column, purpose, data_type) in wanted {
        if let Some(existing) =
            indexes.iter().find(|i| i.valid && i.columns.first().is_some_and(|c| c.eq_ignore_ascii_case(&column)))
        {
            report.already_present.push(RecommendedIndex {
                column,
                purpose,
                index: existing.name.clone(),
                statements: Vec::new(),
            });
            continue;
        }
        let name = index_name(table.name(), &column);
        let leftover = indexes.iter().any(|i| !i.valid && i.name == name);
        let statements = index_statements(table, &name, &column, data_type.map(String::as_str), leftover);
        if !dry_run {
            for statement in &statements {
                catalog::run_simple(db, statement).await.map_err(db_err("create an index", table))?;
            }
            tracing::info!(table = %table.display_name(), index = %name, "created a session-table index");
        }
        report.created.push(RecommendedIndex { column, purpose, index: name, statements });
    }
    Ok(report)
}

fn index_name(table: &str, column: &str) -> String {
    let mut name = format!("{table}_{column}_idx");
    if name.len() > MAX_INDEX_NAME {
        // Identifiers are validated ASCII, so byte truncation is safe.
        let hash = xxhash_rust::xxh3::xxh3_64(name.as_bytes());
        name.truncate(MAX_INDEX_NAME - 9);
        name = format!("{name}_{:08x}", hash as u32);
    }
    name
}

fn index_statements(
    table: &SessionTable,
    name: &str,
    column: &str,
    data_type: Option<&str>,
    drop_leftover: bool,
) -> Vec<String> {
    let backend = table.backend();
    let q = |s: &str| quote_ident(backend, s);
    let col = q(column);
    match backend {
        Backend::Postgres => {
            let qualified = match table.schema() {
                Some(schema) => format!("{}.{}", q(schema), q(name)),
                None => q(name),
            };
            let mut out = Vec::new();
            if drop_leftover {
                out.push(format!("DROP INDEX CONCURRENTLY IF EXISTS {qualified}"));
            }
            out.push(format!("CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} ({col})", q(name), table.sql_name()));
            out
        }
        Backend::MySql => {
            let needs_prefix = data_type.is_some_and(|t| t.contains("text") || t.contains("blob"));
            let key = if needs_prefix { format!("{col}({MYSQL_TEXT_PREFIX})") } else { col };
            vec![format!("CREATE INDEX {} ON {} ({key})", q(name), table.sql_name())]
        }
        Backend::Sqlite => {
            let (index, on) = match table.schema() {
                Some(schema) => (format!("{}.{}", q(schema), q(name)), q(table.name())),
                None => (q(name), table.sql_name()),
            };
            vec![format!("CREATE INDEX IF NOT EXISTS {index} ON {on} ({col})")]
        }
    }
}

// ----------------------------------------------------------------- optimize

/// One statement of [`optimize`] and what the database said.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatementOutcome {
    /// The statement.
    pub statement: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Messages it returned (MySQL's `Msg_text`, SQLite's checkpoint counts).
    pub messages: Vec<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
}

/// What [`optimize`] did or would do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptimizeReport {
    /// The table.
    pub table: String,
    /// `postgres`, `mysql` or `sqlite`.
    pub backend: &'static str,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// The statements, in order.
    pub statements: Vec<String>,
    /// Each statement's outcome (empty in a dry run).
    pub outcomes: Vec<StatementOutcome>,
    /// Table plus indexes before, where known.
    pub bytes_before: Option<i64>,
    /// And after (absent in a dry run).
    pub bytes_after: Option<i64>,
    /// Whether every statement succeeded.
    pub ok: bool,
}

/// The statements [`optimize`] runs on `table`'s backend.
pub fn optimize_statements(table: &SessionTable) -> Vec<String> {
    let name = table.sql_name();
    match table.backend() {
        // VACUUM cannot run inside a transaction: it goes out alone through the simple protocol.
        Backend::Postgres => vec![format!("VACUUM (ANALYZE) {name}")],
        Backend::MySql => vec![format!("OPTIMIZE TABLE {name}"), format!("ANALYZE TABLE {name}")],
        Backend::Sqlite => {
            let schema = table.schema().map(|s| format!(" {}", quote_ident(Backend::Sqlite, s))).unwrap_or_default();
            vec![format!("VACUUM{schema}"), format!("ANALYZE {name}"), "PRAGMA wal_checkpoint(TRUNCATE)".to_owned()]
        }
    }
}

/// Reclaims dead space and refreshes planner statistics: PostgreSQL
/// `VACUUM (ANALYZE)`, MySQL `OPTIMIZE TABLE` and `ANALYZE TABLE`, SQLite
/// `VACUUM` (the whole file), `ANALYZE` and a truncating WAL checkpoint.
///
/// Statements run one after another, each on its own; a failing one is
/// reported in its outcome and the rest still run.
pub async fn optimize(
    db: &SessionDatabase,
    table: &SessionTable,
    dry_run: bool,
) -> Result<OptimizeReport, MaintenanceError> {
    let statements = optimize_statements(table);
    let before = catalog::sizes(db, table).await.map_err(db_err("read the size", table))?;
    let mut report = OptimizeReport {
        table: table.display_name().to_owned(),
        backend: table.backend().as_str(),
        dry_run,
        statements: statements.clone(),
        outcomes: Vec::new(),
        bytes_before: before.total_bytes,
        bytes_after: None,
        ok: true,
    };
    if dry_run {
        return Ok(report);
    }
    for statement in statements {
        let started = Instant::now();
        let outcome = match catalog::run_simple(db, &statement).await {
            Ok(rows) => outcome_of(db.backend(), &statement, &rows),
            Err(err) => (false, vec![redact_url(&err.to_string())]),
        };
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if !outcome.0 {
            tracing::warn!(table = %table.display_name(), duration_ms, "an optimize statement failed");
        }
        report.ok &= outcome.0;
        report.outcomes.push(StatementOutcome { statement, ok: outcome.0, messages: outcome.1, duration_ms });
    }
    report.bytes_after = catalog::sizes(db, table).await.map_err(db_err("read the size", table))?.total_bytes;
    tracing::info!(table = %table.display_name(), ok = report.ok, "optimized the session table");
    Ok(report)
}

/// Reads MySQL's `(Table, Op, Msg_type, Msg_text)` rows and SQLite's
/// checkpoint row `(busy, log, checkpointed)`.
fn outcome_of(backend: Backend, statement: &str, rows: &[Vec<Option<String>>]) -> (bool, Vec<String>) {
    match backend {
        Backend::MySql => {
            let mut ok = true;
            let mut messages = Vec::new();
            for row in rows {
                let kind = row.get(2).cloned().flatten().unwrap_or_default();
                let text = row.get(3).cloned().flatten().unwrap_or_default();
                if kind.eq_ignore_ascii_case("error") {
                    ok = false;
                }
                messages.push(format!("{kind}: {text}"));
            }
            (ok, messages)
        }
        Backend::Sqlite if statement.starts_with("PRAGMA wal_checkpoint") => match rows.first() {
            Some(row) => {
                let busy = row.first().cloned().flatten().unwrap_or_default();
                let log = row.get(1).cloned().flatten().unwrap_or_default();
                let done = row.get(2).cloned().flatten().unwrap_or_default();
                // busy = 1: a reader kept the checkpoint from finishing; not a failure.
                (true, vec![format!("busy {busy}, wal frames {log}, checkpointed {done}")])
            }
            None => (true, Vec::new()),
        },
        _ => (true, Vec::new()),
    }
}

// ---------------------------------------------------------- integrity_check

/// The database engine's own check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineCheck {
    /// The statement run.
    pub statement: String,
    /// Whether it found nothing wrong.
    pub ok: bool,
    /// What it said.
    pub messages: Vec<String>,
}

/// One consistency rule over the session rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsistencyCheck {
    /// Stable code: `expires_before_created`, `last_seen_before_created`,
    /// `absolute_expiry_before_expiry`, `empty_data`.
    pub code: &'static str,
    /// What the rule looks for.
    pub description: &'static str,
    /// Rows breaking it.
    pub count: i64,
}

/// What [`integrity_check`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntegrityReport {
    /// The table.
    pub table: String,
    /// `postgres`, `mysql` or `sqlite`.
    pub backend: &'static str,
    /// Whether the engine check passed and no row breaks a rule.
    pub ok: bool,
    /// Rows breaking a rule, over all rules.
    pub inconsistent_rows: i64,
    /// SQLite `PRAGMA integrity_check` or MySQL `CHECK TABLE` (none on PostgreSQL).
    pub engine_check: Option<EngineCheck>,
    /// The rules the table's columns allow.
    pub consistency: Vec<ConsistencyCheck>,
    /// Checks left out, with the reason.
    pub unavailable: Vec<Unavailable>,
}

/// Runs the engine's integrity check and counts rows whose times or data
/// contradict each other.
pub async fn integrity_check(db: &SessionDatabase, table: &SessionTable) -> Result<IntegrityReport, MaintenanceError> {
    let layout = Layout::read(db, table).await.map_err(db_err("read the columns", table))?;
    let mut unavailable = Vec::new();
    let engine_check = match db.backend() {
        Backend::Sqlite => {
            let pragma = match table.schema() {
                Some(schema) => format!("PRAGMA {}.integrity_check", quote_ident(Backend::Sqlite, schema)),
                None => "PRAGMA integrity_check".to_owned(),
            };
            let rows = catalog::run_simple(db, &pragma).await.map_err(db_err("run the integrity check", table))?;
            let messages: Vec<String> = rows.into_iter().filter_map(|r| r.into_iter().next().flatten()).collect();
            let ok = messages.len() == 1 && messages[0] == "ok";
            Some(EngineCheck { statement: pragma, ok, messages })
        }
        Backend::MySql => {
            let statement = format!("CHECK TABLE {}", table.sql_name());
            let rows = catalog::run_simple(db, &statement).await.map_err(db_err("run CHECK TABLE", table))?;
            let mut ok = !rows.is_empty();
            let mut messages = Vec::new();
            for row in &rows {
                let kind = row.get(2).cloned().flatten().unwrap_or_default();
                let text = row.get(3).cloned().flatten().unwrap_or_default();
                if kind.eq_ignore_ascii_case("error") || (kind.eq_ignore_ascii_case("status") && text != "OK") {
                    ok = false;
                }
                messages.push(format!("{kind}: {text}"));
            }
            Some(EngineCheck { statement, ok, messages })
        }
        Backend::Postgres => {
            unavailable.push(analytics_unavailable(
                "engine_check",
                "PostgreSQL has no built-in table check (the amcheck extension verifies B-tree indexes)",
            ));
            None
        }
    };

    let mut rules: Vec<(&'static str, &'static str, String)> = Vec::new();
    match (&layout.created, table.mapping().expiry.column() == table.mapping().last_seen_at.as_deref().unwrap_or("")) {
        (Some(created), false) => rules.push((
            "expires_before_created",
            "the session expires before it was created",
            format!("{} < {}", layout.expiry.epoch_ms(), created.epoch_ms()),
        )),
        (Some(_), true) => unavailable.push(analytics_unavailable(
            "expires_before_created",
            "the table expires sessions by idle time; it has no expiry column",
        )),
        (None, _) => {
            unavailable.push(analytics_unavailable("expires_before_created", "the table has no created column"))
        }
    }
    match (&layout.created, &layout.last_seen) {
        (Some(created), Some(seen)) => rules.push((
            "last_seen_before_created",
            "the session was last seen before it was created",
            format!("{} < {}", seen.epoch_ms(), created.epoch_ms()),
        )),
        _ => unavailable.push(analytics_unavailable(
            "last_seen_before_created",
            "the table lacks a created or last-activity column",
        )),
    }
    match &layout.absolute_expiry {
        Some(absolute) => rules.push((
            "absolute_expiry_before_expiry",
            "the session's hard end comes before its expiry (the store caps expiry by it)",
            format!("{} < {}", absolute.epoch_ms(), layout.expiry.epoch_ms()),
        )),
        None => unavailable.push(analytics_unavailable(
            "absolute_expiry_before_expiry",
            "only dbwarden's session table has an absolute expiry",
        )),
    }
    match &layout.data {
        Some(data) => {
            let d = table.col(data);
            rules.push(("empty_data", "the session data is NULL or empty", format!("{d} IS NULL OR LENGTH({d}) = 0")))
        }
        None => unavailable.push(analytics_unavailable("empty_data", "the table has no data column")),
    }

    let mut consistency = Vec::new();
    if !rules.is_empty() {
        let parts: Vec<String> = rules.iter().map(|(_, _, c)| format!("COUNT(CASE WHEN {c} THEN 1 END)")).collect();
        let sql = format!("SELECT {} FROM {}", parts.join(", "), table.sql_name());
        let row = catalog::fetch_ints(db, &sql, &[], rules.len()).await.map_err(db_err("check consistency", table))?;
        for (i, (code, description, _)) in rules.into_iter().enumerate() {
            consistency.push(ConsistencyCheck { code, description, count: row.get(i).copied().flatten().unwrap_or(0) });
        }
    }
    let inconsistent_rows = consistency.iter().map(|c| c.count).sum();
    let ok = engine_check.as_ref().is_none_or(|e| e.ok) && inconsistent_rows == 0;
    if !ok {
        tracing::warn!(table = %table.display_name(), inconsistent_rows, "the session table's integrity check found problems");
    }
    Ok(IntegrityReport {
        table: table.display_name().to_owned(),
        backend: table.backend().as_str(),
        ok,
        inconsistent_rows,
        engine_check,
        consistency,
        unavailable,
    })
}

fn analytics_unavailable(part: &'static str, reason: &str) -> Unavailable {
    Unavailable { part, reason: reason.to_owned() }
}

// -------------------------------------------------------------------- stats

/// The last finished cleanup run of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CleanupRunInfo {
    /// When it started, epoch milliseconds.
    pub started_at_ms: i64,
    /// When it finished.
    pub finished_at_ms: i64,
    /// `expired`, `force`, …
    pub mode: String,
    /// Rows it removed.
    pub rows_removed: i64,
    /// Batches it ran.
    pub batches: i64,
    /// Failed batches.
    pub errors: i64,
}

/// The last finished, non-dry cleanup run recorded for `table`, if any.
pub async fn last_cleanup_run(
    db: &SessionDatabase,
    table: &SessionTable,
) -> Result<Option<CleanupRunInfo>, MaintenanceError> {
    let exists =
        catalog::table_exists(db, CLEANUP_RUNS_TABLE).await.map_err(db_err("look for the cleanup runs", table))?;
    if !exists {
        return Ok(None);
    }
    let sql = format!(
        "SELECT started_at, finished_at, mode, rows_removed, batches, errors FROM {CLEANUP_RUNS_TABLE} \
         WHERE table_name = {} AND finished_at IS NOT NULL AND NOT dry_run \
         ORDER BY finished_at DESC LIMIT 1",
        placeholder(table.backend(), 1)
    );
    let rows = catalog::fetch(
        db,
        &sql,
        &[Bind::Text(table.display_name().to_owned())],
        &[Kind::Int, Kind::Int, Kind::Text, Kind::Int, Kind::Int, Kind::Int],
    )
    .await
    .map_err(db_err("read the cleanup runs", table))?;
    Ok(rows.into_iter().next().map(|r| CleanupRunInfo {
        started_at_ms: r[0].int().unwrap_or(0),
        finished_at_ms: r[1].int().unwrap_or(0),
        mode: r[2].text().unwrap_or_default(),
        rows_removed: r[3].int().unwrap_or(0),
        batches: r[4].int().unwrap_or(0),
        errors: r[5].int().unwrap_or(0),
    }))
}

/// A combined summary of the session table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DbStats {
    /// The table.
    pub table: String,
    /// `postgres`, `mysql` or `sqlite`.
    pub backend: &'static str,
    /// When it was computed, epoch milliseconds.
    pub generated_at_ms: i64,
    /// Total, live and expired rows.
    pub counts: Counts,
    /// Sizes, indexes and dead space.
    pub storage: AnalyzeReport,
    /// Recommended indexes that are missing (the columns).
    pub missing_indexes: Vec<String>,
    /// The last finished cleanup run.
    pub last_cleanup: Option<CleanupRunInfo>,
}

/// Counts, storage, missing indexes and the last cleanup run in one report.
pub async fn stats(db: &SessionDatabase, table: &SessionTable, now: Timestamp) -> Result<DbStats, MaintenanceError> {
    let counts = analytics::counts(db, table, now).await?;
    let storage = analyze(db, table).await?;
    let plan = create_indexes(db, table, true).await?;
    Ok(DbStats {
        table: table.display_name().to_owned(),
        backend: table.backend().as_str(),
        generated_at_ms: millis(now),
        counts,
        storage,
        missing_indexes: plan.created.into_iter().map(|i| i.column).collect(),
        last_cleanup: last_cleanup_run(db, table).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_fit_identifier_limits() {
        assert_eq!(index_name("django_session", "expire_date"), "django_session_expire_date_idx");
        let long = index_name(&"t".repeat(47), &"c".repeat(40));
        assert_eq!(long.len(), MAX_INDEX_NAME);
        assert_ne!(long, index_name(&"t".repeat(47), &"c".repeat(41)));
    }

    #[test]
    fn mysql_outcomes_fail_on_error_rows() {
        let row = |kind: &str, text: &str| {
            vec![Some("t".into()), Some("optimize".into()), Some(kind.into()), Some(text.into())]
        };
        let (ok, messages) =
            outcome_of(Backend::MySql, "OPTIMIZE TABLE t", &[row("note", "recreate"), row("status", "OK")]);
        assert!(ok);
        assert_eq!(messages, vec!["note: recreate", "status: OK"]);
        assert!(!outcome_of(Backend::MySql, "OPTIMIZE TABLE t", &[row("error", "boom")]).0);
    }
}
