//! Session analytics over any verified session table: counts and
//! distributions computed in SQL (never by loading rows), daily snapshots
//! and the trends they give, security signals (users with many sessions or
//! clients, id guessing), and the health report that turns all of it into
//! findings with recommendations.
//!
//! Foreign tables (Django, Rails, …) get every part their columns allow; a
//! part their table cannot support is listed under `unavailable` with the
//! reason instead of failing the whole report. Field names of every report
//! are stable: they are dbwarden's JSON output.

use std::time::Duration;

use dbwarden_core::Timestamp;
use serde::Serialize;

use crate::catalog::{self, Bind, Kind, Layout, TimeColumn, int_div};
use crate::db::{Backend, SessionDatabase, redact_url};
use crate::schema::{CLEANUP_RUNS_TABLE, SNAPSHOTS_TABLE, SchemaConfig, migration_statements};
use crate::store::{StoreStats, UnknownIdBucket};
use crate::table::{SessionTable, placeholder};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Hourly creation counts cover this many hours.
pub const CREATED_PER_HOUR_SPAN: usize = 48;
/// Daily creation counts cover this many days.
pub const CREATED_PER_DAY_SPAN: usize = 30;
/// Longest trend window accepted, in days.
pub const MAX_TREND_DAYS: u32 = 3660;

/// An analytics query failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnalyticsError {
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
    /// A trend window outside 1..=[`MAX_TREND_DAYS`].
    #[error("invalid trend window of {days} days: expected 1 to {MAX_TREND_DAYS}")]
    InvalidDays {
        /// The rejected window.
        days: u32,
    },
}

fn db_err<'a>(action: &'static str, table: &'a SessionTable) -> impl Fn(sqlx::Error) -> AnalyticsError + 'a {
    move |err| AnalyticsError::Database {
        action,
        table: table.display_name().to_owned(),
        message: redact_url(&err.to_string()),
    }
}

/// A part of a report the table cannot support, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unavailable {
    /// The report field left out (`age_distribution`, `users`, …).
    pub part: &'static str,
    /// Why.
    pub reason: String,
}

fn unavailable(part: &'static str, reason: impl Into<String>) -> Unavailable {
    Unavailable { part, reason: reason.into() }
}

/// Statement text with its binds, numbered as they are added.
struct Statement {
    backend: Backend,
    binds: Vec<Bind>,
}

impl Statement {
    fn new(backend: Backend) -> Statement {
        Statement { backend, binds: Vec::new() }
    }

    /// A bind of `ms` as a value comparable with `column`.
    fn time(&mut self, column: &TimeColumn, ms: i64) -> String {
        self.binds.push(Bind::Int(ms));
        column.param(self.binds.len())
    }

    fn int(&mut self, value: i64) -> String {
        self.binds.push(Bind::Int(value));
        placeholder(self.backend, self.binds.len())
    }

    fn text(&mut self, value: &str) -> String {
        self.binds.push(Bind::Text(value.to_owned()));
        placeholder(self.backend, self.binds.len())
    }
}

fn text_cast(backend: Backend, expr: &str) -> String {
    match backend {
        Backend::MySql => format!("CAST({expr} AS CHAR)"),
        Backend::Postgres | Backend::Sqlite => format!("CAST({expr} AS TEXT)"),
    }
}

/// How many rows a table holds and how many of them are past their expiry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counts {
    /// All rows.
    pub total: i64,
    /// Rows not yet expired.
    pub active: i64,
    /// Rows past their expiry (or idle past the trim age), awaiting cleanup.
    pub expired: i64,
    /// `expired / total` (0 for an empty table).
    pub expired_fraction: f64,
}

impl Counts {
    fn new(total: i64, expired: i64) -> Counts {
        let expired_fraction = if total > 0 { expired as f64 / total as f64 } else { 0.0 };
        Counts { total, active: total - expired, expired, expired_fraction }
    }
}

/// Counts the rows of `table` at `now`.
pub async fn counts(db: &SessionDatabase, table: &SessionTable, now: Timestamp) -> Result<Counts, AnalyticsError> {
    let layout = Layout::read(db, table).await.map_err(db_err("read the columns", table))?;
    counts_with(db, table, &layout, now).await
}

async fn counts_with(
    db: &SessionDatabase,
    table: &SessionTable,
    layout: &Layout,
    now: Timestamp,
) -> Result<Counts, AnalyticsError> {
    let mut st = Statement::new(table.backend());
    let cutoff = st.time(&layout.expiry, table.expiry_cutoff_ms(now_ms(now)));
    let sql = format!(
        "SELECT COUNT(*), COUNT(CASE WHEN {} < {cutoff} THEN 1 END) FROM {}",
        layout.expiry.sql(),
        table.sql_name()
    );
    let row = catalog::fetch_ints(db, &sql, &st.binds, 2).await.map_err(db_err("count the sessions", table))?;
    let total = row.first().copied().flatten().unwrap_or(0);
    let expired = row.get(1).copied().flatten().unwrap_or(0);
    Ok(Counts::new(total, expired))
}

fn now_ms(now: Timestamp) -> i64 {
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// One bucket of a distribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// The range, e.g. `<1h`, `1h-24h`, `>30d`.
    pub label: &'static str,
    /// Sessions in it.
    pub count: i64,
}

/// Age buckets: upper bounds in milliseconds (the last is open).
const AGE_BUCKETS: [(&str, i64); 5] =
    [("<1h", HOUR_MS), ("1h-24h", DAY_MS), ("1d-7d", 7 * DAY_MS), ("7d-30d", 30 * DAY_MS), (">30d", i64::MAX)];
/// Idle-time buckets: the 15-minute bound is the default touch throttle.
const IDLE_BUCKETS: [(&str, i64); 5] =
    [("<5m", 5 * 60_000), ("5m-15m", 15 * 60_000), ("15m-1h", HOUR_MS), ("1h-24h", DAY_MS), (">24h", i64::MAX)];

/// Sessions per time bucket (an hour or a UTC day).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimePoint {
    /// Start of the bucket, epoch milliseconds.
    pub start_ms: i64,
    /// Start of the bucket, RFC 3339 UTC.
    pub start: String,
    /// Sessions created in it (among those still stored).
    pub count: i64,
}

/// Live sessions of one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserSessions {
    /// The user.
    pub user_id: String,
    /// Live sessions.
    pub sessions: i64,
}

/// Who holds the live sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserSummary {
    /// Distinct users with at least one live session.
    pub users_with_sessions: i64,
    /// Live sessions without a user.
    pub anonymous_sessions: i64,
    /// The users with the most live sessions, most first.
    pub top: Vec<UserSessions>,
}

/// What the session table holds now.
///
/// `total` / `active` / `expired` describe every row; the distributions and
/// user counts describe live (unexpired) sessions; the creation series count
/// rows still stored, by the hour or UTC day they were created in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overview {
    /// The table as configured.
    pub table: String,
    /// `postgres`, `mysql` or `sqlite`.
    pub backend: &'static str,
    /// When it was computed, epoch milliseconds.
    pub generated_at_ms: i64,
    /// All rows.
    pub total: i64,
    /// Live sessions.
    pub active: i64,
    /// Expired rows awaiting cleanup.
    pub expired: i64,
    /// `expired / total`.
    pub expired_fraction: f64,
    /// Live sessions by time since creation (needs a created column).
    pub age_distribution: Option<Vec<Bucket>>,
    /// Live sessions by time since last activity (needs a last-seen column).
    pub idle_distribution: Option<Vec<Bucket>>,
    /// Live sessions per user (needs a user column).
    pub users: Option<UserSummary>,
    /// Sessions created per hour, last 48 hours, oldest first.
    pub created_per_hour: Option<Vec<TimePoint>>,
    /// Sessions created per UTC day, last 30 days, oldest first.
    pub created_per_day: Option<Vec<TimePoint>>,
    /// Parts left out, with the reason.
    pub unavailable: Vec<Unavailable>,
}

/// Computes the [`Overview`] of `table` at `now`, listing the `top_users` users with the most sessions.
pub async fn overview(
    db: &SessionDatabase,
    table: &SessionTable,
    now: Timestamp,
    top_users: usize,
) -> Result<Overview, AnalyticsError> {
    let layout = Layout::read(db, table).await.map_err(db_err("read the columns", table))?;
    let now_ms = now_ms(now);
    let counts = counts_with(db, table, &layout, now).await?;
    let mut missing = Vec::new();
    let live_cutoff = table.expiry_cutoff_ms(now_ms);

    let age_distribution = match &layout.created {
        Some(created) => Some(distribution(db, table, &layout, created, &AGE_BUCKETS, now_ms, live_cutoff).await?),
        None => {
            missing.push(unavailable("age_distribution", "the table has no created column"));
            None
        }
    };
    let idle_distribution = match &layout.last_seen {
        Some(seen) => Some(distribution(db, table, &layout, seen, &IDLE_BUCKETS, now_ms, live_cutoff).await?),
        None => {
            missing.push(unavailable("idle_distribution", "the table has no last-activity column"));
            None
        }
    };
    let users = match &layout.user {
        Some((column, _)) => Some(user_summary(db, table, &layout, column, live_cutoff, top_users).await?),
        None => {
            missing.push(unavailable("users", "the table has no user column"));
            None
        }
    };
    let (created_per_hour, created_per_day) = match &layout.created {
        Some(created) => (
            Some(created_series(db, table, created, now_ms, HOUR_MS, CREATED_PER_HOUR_SPAN).await?),
            Some(created_series(db, table, created, now_ms, DAY_MS, CREATED_PER_DAY_SPAN).await?),
        ),
        None => {
            missing.push(unavailable("created_per_hour", "the table has no created column"));
            missing.push(unavailable("created_per_day", "the table has no created column"));
            (None, None)
        }
    };
    Ok(Overview {
        table: table.display_name().to_owned(),
        backend: table.backend().as_str(),
        generated_at_ms: now_ms,
        total: counts.total,
        active: counts.active,
        expired: counts.expired,
        expired_fraction: counts.expired_fraction,
        age_distribution,
        idle_distribution,
        users,
        created_per_hour,
        created_per_day,
        unavailable: missing,
    })
}

/// Live sessions bucketed by `now - column`, one conditional count per bucket.
async fn distribution(
    db: &SessionDatabase,
    table: &SessionTable,
    layout: &Layout,
    column: &TimeColumn,
    buckets: &[(&'static str, i64)],
    now_ms: i64,
    live_cutoff: i64,
) -> Result<Vec<Bucket>, AnalyticsError> {
    let mut st = Statement::new(table.backend());
    let c = column.sql();
    let mut parts = Vec::with_capacity(buckets.len());
    let mut previous_upper: Option<i64> = None;
    for (_, upper) in buckets {
        // Within the bucket: `now - column` in [previous upper, upper), i.e.
        // the column after `now - upper` and at or before `now - previous`.
        // Each use binds afresh: `?` markers cannot be referenced twice.
        let mut conditions = Vec::new();
        if *upper != i64::MAX {
            conditions.push(format!("{c} > {}", st.time(column, now_ms.saturating_sub(*upper))));
        }
        if let Some(previous) = previous_upper {
            conditions.push(format!("{c} <= {}", st.time(column, now_ms.saturating_sub(previous))));
        }
        if conditions.is_empty() {
            conditions.push(format!("{c} IS NOT NULL"));
        }
        parts.push(format!("COUNT(CASE WHEN {} THEN 1 END)", conditions.join(" AND ")));
        previous_upper = Some(*upper);
    }
    let live = st.time(&layout.expiry, live_cutoff);
    let sql = format!("SELECT {} FROM {} WHERE {} >= {live}", parts.join(", "), table.sql_name(), layout.expiry.sql());
    let row = catalog::fetch_ints(db, &sql, &st.binds, buckets.len())
        .await
        .map_err(db_err("compute a distribution", table))?;
    Ok(buckets
        .iter()
        .enumerate()
        .map(|(i, (label, _))| Bucket { label, count: row.get(i).copied().flatten().unwrap_or(0) })
        .collect())
}

async fn user_summary(
    db: &SessionDatabase,
    table: &SessionTable,
    layout: &Layout,
    column: &str,
    live_cutoff: i64,
    top_users: usize,
) -> Result<UserSummary, AnalyticsError> {
    let backend = table.backend();
    let user = table.col(column);
    let mut st = Statement::new(backend);
    let live = st.time(&layout.expiry, live_cutoff);
    let sql = format!(
        "SELECT COUNT(DISTINCT {user}), COUNT(CASE WHEN {user} IS NULL THEN 1 END) FROM {} WHERE {} >= {live}",
        table.sql_name(),
        layout.expiry.sql()
    );
    let row = catalog::fetch_ints(db, &sql, &st.binds, 2).await.map_err(db_err("count sessions per user", table))?;
    let mut st = Statement::new(backend);
    let live = st.time(&layout.expiry, live_cutoff);
    let limit = st.int(i64::try_from(top_users).unwrap_or(i64::MAX));
    let sql = format!(
        "SELECT {}, COUNT(*) FROM {} WHERE {user} IS NOT NULL AND {} >= {live} \
         GROUP BY {user} ORDER BY 2 DESC, 1 LIMIT {limit}",
        text_cast(backend, &user),
        table.sql_name(),
        layout.expiry.sql()
    );
    let rows = catalog::fetch(db, &sql, &st.binds, &[Kind::Text, Kind::Int])
        .await
        .map_err(db_err("list the users with the most sessions", table))?;
    Ok(UserSummary {
        users_with_sessions: row.first().copied().flatten().unwrap_or(0),
        anonymous_sessions: row.get(1).copied().flatten().unwrap_or(0),
        top: rows
            .into_iter()
            .filter_map(|r| Some(UserSessions { user_id: r[0].text()?, sessions: r[1].int().unwrap_or(0) }))
            .collect(),
    })
}

/// Rows created per `width` ms over the last `span` buckets (the current one
/// included), grouped in SQL by the bucket number of their creation time.
async fn created_series(
    db: &SessionDatabase,
    table: &SessionTable,
    created: &TimeColumn,
    now_ms: i64,
    width: i64,
    span: usize,
) -> Result<Vec<TimePoint>, AnalyticsError> {
    let backend = table.backend();
    let span_i = i64::try_from(span).unwrap_or(1);
    let last_bucket = now_ms.div_euclid(width);
    let first_bucket = last_bucket - (span_i - 1);
    let mut st = Statement::new(backend);
    let from = st.time(created, first_bucket * width);
    let sql = format!(
        "SELECT {}, COUNT(*) FROM {} WHERE {} >= {from} GROUP BY 1",
        int_div(backend, &created.epoch_ms(), width),
        table.sql_name(),
        created.sql()
    );
    let rows = catalog::fetch(db, &sql, &st.binds, &[Kind::Int, Kind::Int])
        .await
        .map_err(db_err("count sessions created per period", table))?;
    let mut counts = vec![0i64; span];
    for row in rows {
        let (Some(bucket), Some(count)) = (row[0].int(), row[1].int()) else { continue };
        if let Ok(i) = usize::try_from(bucket - first_bucket)
            && i < span
        {
            counts[i] += count;
        }
    }
    Ok(counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| {
            let start_ms = (first_bucket + i as i64) * width;
            TimePoint { start_ms, start: rfc3339(start_ms), count }
        })
        .collect())
}

fn rfc3339(ms: i64) -> String {
    Timestamp::from_millis(u64::try_from(ms).unwrap_or(0)).to_rfc3339()
}

// ---------------------------------------------------------------- snapshots

/// One row of `dbwarden_session_snapshots`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// When it was taken, epoch milliseconds.
    pub taken_at_ms: i64,
    /// The table counted.
    pub table: String,
    /// All rows.
    pub total: i64,
    /// Live sessions.
    pub active: i64,
    /// Expired rows.
    pub expired: i64,
    /// Table plus index size on disk, where the backend tells.
    pub table_bytes: Option<i64>,
}

/// Counts `table` and records the counts in `dbwarden_session_snapshots`
/// (created when missing, so foreign tables get trends too).
pub async fn take_snapshot(
    db: &SessionDatabase,
    table: &SessionTable,
    now: Timestamp,
) -> Result<Snapshot, AnalyticsError> {
    let counts = counts(db, table, now).await?;
    let sizes = catalog::sizes(db, table).await.map_err(db_err("read the size", table))?;
    ensure_snapshots_table(db, table).await?;
    let backend = table.backend();
    let snapshot = Snapshot {
        taken_at_ms: now_ms(now),
        table: table.display_name().to_owned(),
        total: counts.total,
        active: counts.active,
        expired: counts.expired,
        table_bytes: sizes.total_bytes,
    };
    let p = |n| placeholder(backend, n);
    let sql = format!(
        "INSERT INTO {SNAPSHOTS_TABLE} (taken_at, table_name, total, active, expired, table_bytes) \
         VALUES ({}, {}, {}, {}, {}, {})",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6)
    );
    crate::db::on_pool!(db, pool => {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(snapshot.taken_at_ms)
            .bind(snapshot.table.clone())
            .bind(snapshot.total)
            .bind(snapshot.active)
            .bind(snapshot.expired)
            .bind(snapshot.table_bytes)
            .execute(pool)
            .await
            .map_err(db_err("record a snapshot", table))?;
    });
    tracing::info!(table = %snapshot.table, total = snapshot.total, expired = snapshot.expired, "session snapshot taken");
    Ok(snapshot)
}

async fn ensure_snapshots_table(db: &SessionDatabase, table: &SessionTable) -> Result<(), AnalyticsError> {
    if catalog::table_exists(db, SNAPSHOTS_TABLE).await.map_err(db_err("look for the snapshots table", table))? {
        return Ok(());
    }
    // The snapshot migration's statements are idempotent and name no session
    // table, so running them here agrees with a later `migrate`.
    for statement in migration_statements(3, db.backend(), &SchemaConfig::default()) {
        catalog::run_simple(db, &statement).await.map_err(db_err("create the snapshots table", table))?;
    }
    Ok(())
}

/// The last snapshot of one UTC day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendPoint {
    /// The day, `YYYY-MM-DD` (UTC).
    pub day: String,
    /// When the snapshot was taken, epoch milliseconds.
    pub taken_at_ms: i64,
    /// All rows.
    pub total: i64,
    /// Live sessions.
    pub active: i64,
    /// Expired rows.
    pub expired: i64,
    /// Size on disk, where known.
    pub table_bytes: Option<i64>,
}

/// Average change per day between the first and last point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Growth {
    /// Rows per day.
    pub total_per_day: f64,
    /// Live sessions per day.
    pub active_per_day: f64,
    /// Expired rows per day.
    pub expired_per_day: f64,
    /// Bytes per day, when both ends have a size.
    pub bytes_per_day: Option<f64>,
}

/// Daily points of a session table from its snapshots.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trends {
    /// The table.
    pub table: String,
    /// The window asked for, in days.
    pub days: u32,
    /// One point per day that has a snapshot, oldest first.
    pub points: Vec<TrendPoint>,
    /// Change per day; `None` with fewer than two points.
    pub growth: Option<Growth>,
    /// Parts left out, with the reason.
    pub unavailable: Vec<Unavailable>,
}

/// Reads the last snapshot of each of the last `days` UTC days (today included).
pub async fn trends(
    db: &SessionDatabase,
    table: &SessionTable,
    days: u32,
    now: Timestamp,
) -> Result<Trends, AnalyticsError> {
    if days == 0 || days > MAX_TREND_DAYS {
        return Err(AnalyticsError::InvalidDays { days });
    }
    let name = table.display_name().to_owned();
    let mut out = Trends { table: name.clone(), days, points: Vec::new(), growth: None, unavailable: Vec::new() };
    if !catalog::table_exists(db, SNAPSHOTS_TABLE).await.map_err(db_err("look for the snapshots table", table))? {
        out.unavailable
            .push(unavailable("points", "no snapshots have been taken (dbwarden maintain --full takes one)"));
        return Ok(out);
    }
    let backend = table.backend();
    let from = (now_ms(now).div_euclid(DAY_MS) - (i64::from(days) - 1)) * DAY_MS;
    let mut st = Statement::new(backend);
    let name_1 = st.text(&name);
    let name_2 = st.text(&name);
    let from_p = st.int(from);
    let sql = format!(
        "SELECT taken_at, total, active, expired, table_bytes FROM {SNAPSHOTS_TABLE} \
         WHERE table_name = {name_1} AND taken_at IN (\
           SELECT MAX(taken_at) FROM {SNAPSHOTS_TABLE} WHERE table_name = {name_2} AND taken_at >= {from_p} \
           GROUP BY {}) \
         ORDER BY taken_at",
        int_div(backend, "taken_at", DAY_MS)
    );
    let rows =
        catalog::fetch(db, &sql, &st.binds, &[Kind::Int; 5]).await.map_err(db_err("read the snapshots", table))?;
    for row in rows {
        let taken_at_ms = row[0].int().unwrap_or(0);
        let day = rfc3339(taken_at_ms).chars().take(10).collect::<String>();
        if out.points.last().is_some_and(|p| p.day == day) {
            continue;
        }
        out.points.push(TrendPoint {
            day,
            taken_at_ms,
            total: row[1].int().unwrap_or(0),
            active: row[2].int().unwrap_or(0),
            expired: row[3].int().unwrap_or(0),
            table_bytes: row[4].int(),
        });
    }
    out.growth = growth(&out.points);
    if out.growth.is_none() {
        out.unavailable.push(unavailable("growth", "fewer than two days with a snapshot"));
    }
    Ok(out)
}

fn growth(points: &[TrendPoint]) -> Option<Growth> {
    let (first, last) = (points.first()?, points.last()?);
    if points.len() < 2 || last.taken_at_ms <= first.taken_at_ms {
        return None;
    }
    let days = (last.taken_at_ms - first.taken_at_ms) as f64 / DAY_MS as f64;
    let per_day = |a: i64, b: i64| (b - a) as f64 / days;
    Some(Growth {
        total_per_day: per_day(first.total, last.total),
        active_per_day: per_day(first.active, last.active),
        expired_per_day: per_day(first.expired, last.expired),
        bytes_per_day: match (first.table_bytes, last.table_bytes) {
            (Some(a), Some(b)) => Some(per_day(a, b)),
            _ => None,
        },
    })
}

// ----------------------------------------------------------------- findings

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing to do now.
    Info,
    /// Needs attention.
    Warn,
    /// Needs action now.
    Critical,
}

/// One observation with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable machine-readable code, e.g. `missing_expiry_index`.
    pub code: &'static str,
    /// How serious it is.
    pub severity: Severity,
    /// What was found, with the numbers.
    pub message: String,
    /// What to do.
    pub recommendation: String,
}

fn finding(code: &'static str, severity: Severity, message: String, recommendation: impl Into<String>) -> Finding {
    Finding { code, severity, message, recommendation: recommendation.into() }
}

/// The overall verdict of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Nothing above info.
    Ok,
    /// At least one warning.
    Warn,
    /// At least one critical finding.
    Critical,
}

impl HealthStatus {
    /// The worst severity among `findings`.
    pub fn of(findings: &[Finding]) -> HealthStatus {
        match findings.iter().map(|f| f.severity).max() {
            Some(Severity::Critical) => HealthStatus::Critical,
            Some(Severity::Warn) => HealthStatus::Warn,
            _ => HealthStatus::Ok,
        }
    }

    /// `ok`, `warn` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Warn => "warn",
            HealthStatus::Critical => "critical",
        }
    }
}

// ----------------------------------------------------------------- security

/// Limits the security analysis flags beyond.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SecurityOptions {
    /// A user with more live sessions than this is listed.
    pub max_sessions_per_user: u64,
    /// Sessions active within this window count for the client spread.
    pub window: Duration,
    /// A user whose recent sessions come from more distinct client IPs than this is listed.
    pub max_distinct_ips: u64,
    /// Likewise for distinct user agents.
    pub max_distinct_agents: u64,
    /// A minute with at least this many unknown-id loads may be a burst …
    pub burst_min_per_minute: u64,
    /// … when it is also this many times the median minute.
    pub burst_factor: f64,
    /// At most this many users per list.
    pub limit: usize,
}

impl Default for SecurityOptions {
    fn default() -> Self {
        SecurityOptions {
            max_sessions_per_user: 10,
            window: Duration::from_secs(24 * 3600),
            max_distinct_ips: 5,
            max_distinct_agents: 5,
            burst_min_per_minute: 30,
            burst_factor: 5.0,
            limit: 50,
        }
    }
}

/// A user whose recent sessions come from many clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientSpread {
    /// The user.
    pub user_id: String,
    /// Sessions active within the window.
    pub sessions: i64,
    /// Distinct client-IP hashes among them.
    pub distinct_ips: i64,
    /// Distinct user-agent hashes among them.
    pub distinct_agents: i64,
}

/// A minute with a burst of loads for ids the store does not have.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnknownIdBurst {
    /// Start of the minute, epoch milliseconds.
    pub minute_ms: i64,
    /// Start of the minute, RFC 3339.
    pub minute: String,
    /// Unknown-id loads in it.
    pub count: u64,
    /// The median minute of the history it was compared with.
    pub baseline: f64,
}

/// Signals of session abuse.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecurityReport {
    /// The table.
    pub table: String,
    /// When it was computed, epoch milliseconds.
    pub generated_at_ms: i64,
    /// `ok`, `warn` or `critical`.
    pub status: HealthStatus,
    /// Users above the live-session limit, most first (needs a user column).
    pub users_with_many_sessions: Option<Vec<UserSessions>>,
    /// Users with many distinct clients in the window (needs dbwarden's client hashes).
    pub users_with_many_clients: Option<Vec<ClientSpread>>,
    /// Median unknown-id loads per minute over the history given.
    pub unknown_id_baseline_per_minute: f64,
    /// Minutes that look like id guessing.
    pub unknown_id_bursts: Vec<UnknownIdBurst>,
    /// The findings.
    pub findings: Vec<Finding>,
    /// Parts left out, with the reason.
    pub unavailable: Vec<Unavailable>,
}

/// Looks for users with too many live sessions or clients, and for bursts of
/// unknown-id loads in `unknown_ids` (a store's `unknown_id_history()`).
pub async fn security(
    db: &SessionDatabase,
    table: &SessionTable,
    unknown_ids: &[UnknownIdBucket],
    options: &SecurityOptions,
    now: Timestamp,
) -> Result<SecurityReport, AnalyticsError> {
    let layout = Layout::read(db, table).await.map_err(db_err("read the columns", table))?;
    let backend = table.backend();
    let now_ms = now_ms(now);
    let live_cutoff = table.expiry_cutoff_ms(now_ms);
    let limit = i64::try_from(options.limit).unwrap_or(i64::MAX);
    let cap = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let mut findings = Vec::new();
    let mut missing = Vec::new();

    let users_with_many_sessions = match &layout.user {
        Some((column, _)) => {
            let user = table.col(column);
            let mut st = Statement::new(backend);
            let live = st.time(&layout.expiry, live_cutoff);
            let over = st.int(cap(options.max_sessions_per_user));
            let lim = st.int(limit);
            let sql = format!(
                "SELECT {}, COUNT(*) FROM {} WHERE {user} IS NOT NULL AND {} >= {live} \
                 GROUP BY {user} HAVING COUNT(*) > {over} ORDER BY 2 DESC, 1 LIMIT {lim}",
                text_cast(backend, &user),
                table.sql_name(),
                layout.expiry.sql()
            );
            let rows = catalog::fetch(db, &sql, &st.binds, &[Kind::Text, Kind::Int])
                .await
                .map_err(db_err("count live sessions per user", table))?;
            let list: Vec<UserSessions> = rows
                .into_iter()
                .filter_map(|r| Some(UserSessions { user_id: r[0].text()?, sessions: r[1].int().unwrap_or(0) }))
                .collect();
            if !list.is_empty() {
                findings.push(finding(
                    "many_sessions_per_user",
                    Severity::Warn,
                    format!(
                        "{} user(s) hold more than {} live sessions (most: {} with {})",
                        list.len(),
                        options.max_sessions_per_user,
                        list[0].user_id,
                        list[0].sessions
                    ),
                    "check these accounts for shared or stolen credentials; cap sessions per user \
                     (StoreConfig::with_user_cap) and offer \"log out everywhere\"",
                ));
            }
            Some(list)
        }
        None => {
            missing.push(unavailable("users_with_many_sessions", "the table has no user column"));
            None
        }
    };

    let users_with_many_clients = match (&layout.user, &layout.ip_hash, &layout.ua_hash, &layout.last_seen) {
        (Some((user_column, _)), Some(ip), Some(ua), Some(seen)) => {
            let user = table.col(user_column);
            let (ip, ua) = (table.col(ip), table.col(ua));
            let mut st = Statement::new(backend);
            let since = st.time(seen, now_ms.saturating_sub(duration_ms(options.window)));
            let max_ips = st.int(cap(options.max_distinct_ips));
            let max_agents = st.int(cap(options.max_distinct_agents));
            let lim = st.int(limit);
            let sql = format!(
                "SELECT {}, COUNT(*), COUNT(DISTINCT {ip}), COUNT(DISTINCT {ua}) FROM {} \
                 WHERE {user} IS NOT NULL AND {} >= {since} GROUP BY {user} \
                 HAVING COUNT(DISTINCT {ip}) > {max_ips} OR COUNT(DISTINCT {ua}) > {max_agents} \
                 ORDER BY 3 DESC, 1 LIMIT {lim}",
                text_cast(backend, &user),
                table.sql_name(),
                seen.sql()
            );
            let rows = catalog::fetch(db, &sql, &st.binds, &[Kind::Text, Kind::Int, Kind::Int, Kind::Int])
                .await
                .map_err(db_err("count distinct clients per user", table))?;
            let list: Vec<ClientSpread> = rows
                .into_iter()
                .filter_map(|r| {
                    Some(ClientSpread {
                        user_id: r[0].text()?,
                        sessions: r[1].int().unwrap_or(0),
                        distinct_ips: r[2].int().unwrap_or(0),
                        distinct_agents: r[3].int().unwrap_or(0),
                    })
                })
                .collect();
            if !list.is_empty() {
                findings.push(finding(
                    "many_clients_per_user",
                    Severity::Warn,
                    format!(
                        "{} user(s) used more than {} client IPs or {} user agents within {} h (most: {} with {} IPs)",
                        list.len(),
                        options.max_distinct_ips,
                        options.max_distinct_agents,
                        options.window.as_secs() / 3600,
                        list[0].user_id,
                        list[0].distinct_ips
                    ),
                    "an account used from many places at once may be shared or taken over; \
                     review it and rotate its sessions",
                ));
            }
            Some(list)
        }
        _ => {
            missing.push(unavailable(
                "users_with_many_clients",
                "needs dbwarden's session table (user, last-seen and client-hash columns)",
            ));
            None
        }
    };

    let (baseline, bursts) = unknown_id_bursts(unknown_ids, options);
    if let Some(worst) = bursts.iter().max_by_key(|b| b.count) {
        findings.push(finding(
            "session_id_guessing",
            Severity::Critical,
            format!(
                "{} minute(s) with bursts of loads for unknown session ids (worst: {} in the minute from {}, median {:.1})",
                bursts.len(),
                worst.count,
                worst.minute,
                baseline
            ),
            "someone may be guessing session ids: rate-limit requests that carry unknown session \
             cookies by client, and check that ids come from a CSPRNG with at least 128 bits",
        ));
    }
    Ok(SecurityReport {
        table: table.display_name().to_owned(),
        generated_at_ms: now_ms,
        status: HealthStatus::of(&findings),
        users_with_many_sessions,
        users_with_many_clients,
        unknown_id_baseline_per_minute: baseline,
        unknown_id_bursts: bursts,
        findings,
        unavailable: missing,
    })
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The median minute (quiet minutes inside the history count as zero) and
/// the minutes far above it.
fn unknown_id_bursts(history: &[UnknownIdBucket], options: &SecurityOptions) -> (f64, Vec<UnknownIdBurst>) {
    let (Some(first), Some(last)) =
        (history.iter().map(|b| b.minute.as_millis()).min(), history.iter().map(|b| b.minute.as_millis()).max())
    else {
        return (0.0, Vec::new());
    };
    let minutes = usize::try_from((last - first) / 60_000 + 1).unwrap_or(usize::MAX).min(24 * 60);
    let mut per_minute: Vec<u64> = vec![0; minutes];
    for bucket in history {
        if let Ok(i) = usize::try_from((bucket.minute.as_millis() - first) / 60_000)
            && i < minutes
        {
            per_minute[i] += bucket.count;
        }
    }
    per_minute.sort_unstable();
    let median = if minutes % 2 == 1 {
        per_minute[minutes / 2] as f64
    } else {
        (per_minute[minutes / 2 - 1] + per_minute[minutes / 2]) as f64 / 2.0
    };
    let threshold = (options.burst_factor * median.max(1.0)).max(options.burst_min_per_minute as f64);
    let bursts = history
        .iter()
        .filter(|b| b.count as f64 >= threshold)
        .map(|b| {
            let minute_ms = i64::try_from(b.minute.as_millis()).unwrap_or(i64::MAX);
            UnknownIdBurst { minute_ms, minute: rfc3339(minute_ms), count: b.count, baseline: median }
        })
        .collect();
    (median, bursts)
}

// ------------------------------------------------------------ health report

/// Thresholds and inputs of the health report.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthOptions {
    /// A store's counters, for throttle advice.
    pub store_stats: Option<StoreStats>,
    /// How often cleanup is meant to run; none finished within twice this is a finding.
    pub cleanup_interval: Duration,
    /// More expired rows than this is a backlog …
    pub backlog_rows: i64,
    /// … and so is a larger expired fraction (with at least 10 expired rows).
    pub backlog_fraction: f64,
    /// Table plus indexes above this is critical.
    pub max_table_bytes: i64,
    /// Growth above this many bytes a day is a warning.
    pub max_growth_bytes_per_day: i64,
    /// Days of snapshots the growth is read from.
    pub trend_days: u32,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions {
            store_stats: None,
            cleanup_interval: Duration::from_secs(3600),
            backlog_rows: 1000,
            backlog_fraction: 0.2,
            max_table_bytes: 100 * 1024 * 1024,
            max_growth_bytes_per_day: 10 * 1024 * 1024,
            trend_days: 7,
        }
    }
}

/// The health of a session table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The table.
    pub table: String,
    /// `postgres`, `mysql` or `sqlite`.
    pub backend: &'static str,
    /// When it was checked, epoch milliseconds.
    pub checked_at_ms: i64,
    /// The worst finding's severity: `ok`, `warn` or `critical`.
    pub status: HealthStatus,
    /// The row counts it is based on.
    pub counts: Counts,
    /// Table plus indexes on disk, where known.
    pub table_bytes: Option<i64>,
    /// Finished cleanup runs' last end, epoch milliseconds, if any.
    pub last_cleanup_ms: Option<i64>,
    /// What was found.
    pub findings: Vec<Finding>,
    /// Checks that could not run, with the reason.
    pub unavailable: Vec<Unavailable>,
}

/// Checks `table` for a missing expiry index, an expired backlog, growth,
/// size, throttle settings and stale cleanup.
pub async fn health_report(
    db: &SessionDatabase,
    table: &SessionTable,
    options: &HealthOptions,
    now: Timestamp,
) -> Result<HealthReport, AnalyticsError> {
    let layout = Layout::read(db, table).await.map_err(db_err("read the columns", table))?;
    let now_ms = now_ms(now);
    let counts = counts_with(db, table, &layout, now).await?;
    let indexes = catalog::indexes(db, table).await.map_err(db_err("read the indexes", table))?;
    let sizes = catalog::sizes(db, table).await.map_err(db_err("read the size", table))?;
    let mut findings = Vec::new();
    let mut missing = Vec::new();

    let expiry_column = &layout.expiry.name;
    if !catalog::has_leading_index(&indexes, expiry_column) {
        let severity = if counts.total > 100_000 { Severity::Critical } else { Severity::Warn };
        findings.push(finding(
            "missing_expiry_index",
            severity,
            format!(
                "no index starts with the expiry column `{expiry_column}` ({} rows): every cleanup and count of expired \
                 sessions scans the whole table",
                counts.total
            ),
            "run `dbwarden db create-indexes`",
        ));
    }

    let over_rows = counts.expired > options.backlog_rows;
    let over_fraction = counts.expired >= 10 && counts.expired_fraction > options.backlog_fraction;
    if over_rows || over_fraction {
        let severity = if counts.expired > options.backlog_rows.saturating_mul(10) || counts.expired_fraction > 0.5 {
            Severity::Critical
        } else {
            Severity::Warn
        };
        findings.push(finding(
            "expired_backlog",
            severity,
            format!(
                "{} expired sessions await cleanup ({:.0} % of {} rows)",
                counts.expired,
                counts.expired_fraction * 100.0,
                counts.total
            ),
            "run `dbwarden cleanup --once` and check that the periodic cleanup is running",
        ));
    }

    match sizes.total_bytes {
        Some(bytes) if bytes > options.max_table_bytes => findings.push(finding(
            "table_size",
            Severity::Critical,
            format!("the table and its indexes take {} MiB", bytes / (1024 * 1024)),
            "delete expired sessions, then reclaim the space with `dbwarden db optimize`; \
             shorten the session lifetime if live sessions alone are this large",
        )),
        Some(_) => {}
        None => missing.push(unavailable("table_size", "the database does not report the table's size")),
    }

    let trend = trends(db, table, options.trend_days.clamp(2, MAX_TREND_DAYS), now).await?;
    match trend.growth {
        Some(growth) => {
            if let Some(bytes) = growth.bytes_per_day
                && bytes > options.max_growth_bytes_per_day as f64
            {
                findings.push(finding(
                    "table_growth",
                    Severity::Warn,
                    format!("the table grows by {:.1} MiB a day", bytes / (1024.0 * 1024.0)),
                    "check that cleanup runs and removes rows; growth with few expired rows means more live sessions",
                ));
            } else if growth.expired_per_day > 0.0 && growth.expired_per_day * 2.0 > growth.total_per_day.max(0.0) {
                findings.push(finding(
                    "table_growth",
                    Severity::Warn,
                    format!(
                        "expired rows grow by {:.0} a day, most of the table's growth of {:.0} rows a day",
                        growth.expired_per_day, growth.total_per_day
                    ),
                    "cleanup is not keeping up: run it more often or in larger batches",
                ));
            }
        }
        None => missing.push(unavailable("table_growth", "fewer than two days with a snapshot")),
    }

    match &options.store_stats {
        Some(stats) => findings.extend(throttle_advice(stats)),
        None => missing.push(unavailable("throttle", "no session-store counters were given")),
    }

    let last_cleanup_ms = last_cleanup(db, table).await?;
    match last_cleanup_ms {
        None => findings.push(finding(
            "cleanup_not_run",
            Severity::Warn,
            "no finished cleanup run is recorded for this table".to_owned(),
            "schedule `dbwarden cleanup` to run every cleanup interval",
        )),
        Some((finished, errors)) => {
            let interval = duration_ms(options.cleanup_interval);
            let age = now_ms.saturating_sub(finished);
            if age > interval.saturating_mul(2) {
                findings.push(finding(
                    "cleanup_not_run",
                    Severity::Warn,
                    format!(
                        "the last cleanup finished {} min ago, more than twice the {} min interval",
                        age / 60_000,
                        interval / 60_000
                    ),
                    "check that the cleanup service is running",
                ));
            }
            if errors > 0 {
                findings.push(finding(
                    "cleanup_errors",
                    Severity::Warn,
                    format!("the last cleanup run had {errors} failed batch(es)"),
                    "read the cleanup logs; lock timeouts call for smaller batches",
                ));
            }
        }
    }

    Ok(HealthReport {
        table: table.display_name().to_owned(),
        backend: table.backend().as_str(),
        checked_at_ms: now_ms,
        status: HealthStatus::of(&findings),
        counts,
        table_bytes: sizes.total_bytes,
        last_cleanup_ms: last_cleanup_ms.map(|(finished, _)| finished),
        findings,
        unavailable: missing,
    })
}

/// Advice from a store's write counters.
fn throttle_advice(stats: &StoreStats) -> Vec<Finding> {
    let saves = stats.full_writes + stats.touches + stats.writes_avoided;
    let mut out = Vec::new();
    if saves < 100 {
        return out;
    }
    let share = |n: u64| n as f64 / saves as f64;
    if stats.writes_avoided == 0 && share(stats.full_writes) > 0.9 {
        out.push(finding(
            "throttle_off",
            Severity::Warn,
            format!("all {saves} saves wrote the session in full: activity writes are not throttled"),
            "enable the touch throttle (StoreConfig::with_throttle, 15 minutes by default)",
        ));
    } else if share(stats.touches) > 0.5 {
        out.push(finding(
            "throttle_interval",
            Severity::Warn,
            format!(
                "{:.0} % of saves were activity touches: the throttle interval is shorter than the usual gap between requests",
                share(stats.touches) * 100.0
            ),
            "raise the throttle interval (15 minutes writes one touch per active user per quarter hour)",
        ));
    } else {
        out.push(finding(
            "throttle_interval",
            Severity::Info,
            format!("the throttle avoided {:.0} % of session writes", share(stats.writes_avoided) * 100.0),
            "no change needed",
        ));
    }
    if stats.merged_conflicts > saves / 10 {
        out.push(finding(
            "save_conflicts",
            Severity::Info,
            format!("{} of {saves} saves raced another request on the same session", stats.merged_conflicts),
            "parallel requests of one session are merged key by key; keep hot counters out of the session",
        ));
    }
    out
}

/// The end and error count of the last finished, non-dry cleanup run of `table`.
async fn last_cleanup(db: &SessionDatabase, table: &SessionTable) -> Result<Option<(i64, i64)>, AnalyticsError> {
    if !catalog::table_exists(db, CLEANUP_RUNS_TABLE).await.map_err(db_err("look for the cleanup runs", table))? {
        return Ok(None);
    }
    let mut st = Statement::new(table.backend());
    let name = st.text(table.display_name());
    let sql = format!(
        "SELECT finished_at, errors FROM {CLEANUP_RUNS_TABLE} \
         WHERE table_name = {name} AND finished_at IS NOT NULL AND NOT dry_run \
         ORDER BY finished_at DESC LIMIT 1"
    );
    let row = catalog::fetch_ints(db, &sql, &st.binds, 2).await.map_err(db_err("read the cleanup runs", table))?;
    Ok(match (row.first().copied().flatten(), row.get(1).copied().flatten()) {
        (Some(finished), errors) => Some((finished, errors.unwrap_or(0))),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(minute: u64, count: u64) -> UnknownIdBucket {
        UnknownIdBucket { minute: Timestamp::from_millis(minute * 60_000), count }
    }

    #[test]
    fn bursts_stand_out_from_the_median_minute() {
        let options = SecurityOptions::default();
        // Ten minutes: quiet ones count as zero, one minute of 200 loads.
        let history = [bucket(100, 2), bucket(101, 3), bucket(105, 200), bucket(109, 2)];
        let (median, bursts) = unknown_id_bursts(&history, &options);
        assert_eq!(median, 0.0);
        assert_eq!(bursts.len(), 1);
        assert_eq!(bursts[0].count, 200);
        assert_eq!(bursts[0].minute_ms, 105 * 60_000);
        // A steady high rate is the baseline, not a burst.
        let steady: Vec<_> = (0..10).map(|m| bucket(m, 40)).collect();
        assert!(unknown_id_bursts(&steady, &options).1.is_empty());
        assert_eq!(unknown_id_bursts(&[], &options), (0.0, Vec::new()));
    }

    #[test]
    fn status_is_the_worst_severity() {
        let f = |s| finding("x", s, String::new(), "");
        assert_eq!(HealthStatus::of(&[]), HealthStatus::Ok);
        assert_eq!(HealthStatus::of(&[f(Severity::Info)]), HealthStatus::Ok);
        assert_eq!(HealthStatus::of(&[f(Severity::Warn), f(Severity::Info)]), HealthStatus::Warn);
        assert_eq!(HealthStatus::of(&[f(Severity::Warn), f(Severity::Critical)]), HealthStatus::Critical);
    }

    #[test]
    fn throttle_advice_reads_the_counters() {
        let off = StoreStats { full_writes: 500, ..StoreStats::default() };
        assert_eq!(throttle_advice(&off)[0].code, "throttle_off");
        let chatty = StoreStats { full_writes: 10, touches: 300, writes_avoided: 100, ..StoreStats::default() };
        assert_eq!(throttle_advice(&chatty)[0].severity, Severity::Warn);
        let good = StoreStats { full_writes: 10, touches: 20, writes_avoided: 900, ..StoreStats::default() };
        assert_eq!(throttle_advice(&good)[0].severity, Severity::Info);
        assert!(throttle_advice(&StoreStats::default()).is_empty());
    }

    #[test]
    fn growth_needs_two_days() {
        let p = |day: i64, total, bytes| TrendPoint {
            day: String::new(),
            taken_at_ms: day * DAY_MS,
            total,
            active: total,
            expired: 0,
            table_bytes: bytes,
        };
        assert_eq!(growth(&[p(1, 10, None)]), None);
        let g = growth(&[p(1, 100, Some(1000)), p(3, 300, Some(5000))]).expect("growth");
        assert_eq!(g.total_per_day, 100.0);
        assert_eq!(g.bytes_per_day, Some(2000.0));
    }
}
