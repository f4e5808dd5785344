//! Session cleanup: deletes expired (or too old, or orphaned) sessions from a
//! session table in small batches, each its own short transaction, with a
//! jittered pause between them, so the application keeps reading and writing
//! sessions while a table of millions of expired rows drains.
//!
//! One runner at a time per table, across processes and hosts (see
//! `lock.rs`): a second runner skips, or waits as long as its [`LockPolicy`]
//! allows. Every run that gets the lock is recorded in
//! `dbwarden_cleanup_runs` (see `runs.rs`) when it starts and again when it
//! ends, and, when a [`Monitor`] is attached, reported to it
//! (`record_cleanup` and a `record_session_table` sample), which is what the
//! "cleanup not running" and "expired sessions" alerts watch.
//!
//! A failed batch is retried with exponential backoff; when it keeps failing
//! the run ends cleanly with the failures counted, and [`Cleaner::daemon`]
//! simply tries again at the next interval.

mod lock;
mod plan;
mod runs;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dbwarden_core::{CleanupRecord, Clock, Monitor, SessionTableSample, SystemClock};
use serde::Serialize;

use crate::db::SessionDatabase;
use crate::table::{SessionTable, TableError};

pub use runs::CleanupRun;

use plan::Plan;

/// Longest pause between two attempts of a failing batch.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(30);
/// How often a pause or a backoff looks whether a shutdown was asked for.
const STOP_CHECK_EVERY: Duration = Duration::from_millis(100);
/// How often a long run writes its figures so far to its runs-table row.
const RUN_ROW_REFRESH: Duration = Duration::from_secs(5);
/// A MySQL chunk whose keys were all refreshed before the delete deletes
/// nothing; after this many such chunks in a row the run stops rather than spin.
const MAX_EMPTY_CHUNKS: u32 = 3;

/// What to do when another runner holds the table's cleanup lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockPolicy {
    /// Give up at once: the run is reported as skipped.
    Skip,
    /// Wait up to this long, then give up as with [`LockPolicy::Skip`].
    Wait(Duration),
}

/// Sessions whose user no longer exists: `user_table.user_key` is looked
/// up for each session's user column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanRule {
    /// The users table, optionally `schema.table`.
    pub user_table: String,
    /// Its key column, which the sessions' user column refers to.
    pub user_key: String,
}

/// How a [`Cleaner`] works.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanupConfig {
    /// Rows deleted per batch (default 1000).
    pub batch_size: u64,
    /// Pause between batches (default 50 ms).
    pub pause: Duration,
    /// Random spread of the pause, 0–1 (default 0.5: ±50 %).
    pub jitter: f64,
    /// Stop starting batches after this long (default: none).
    pub time_budget: Option<Duration>,
    /// Retries of a failing batch before the run gives up (default 5).
    pub max_batch_retries: u32,
    /// First retry pause, doubled at each retry up to 30 s (default 200 ms).
    pub retry_backoff: Duration,
    /// What to do when another runner holds the lock (default: skip).
    pub lock: LockPolicy,
    /// Count what would be deleted; change no session.
    pub dry_run: bool,
    /// Count the target rows before the first batch, so progress and the
    /// report have a total (`expected_total`); the CLI does when it shows a
    /// progress bar. Off by default: the count reads every target once more
    /// (about a tenth of a large run's time), for a figure no one reads in
    /// a daemon.
    pub count_first: bool,
    /// The users table, for [`CleanupMode::Orphans`].
    pub orphans: Option<OrphanRule>,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        CleanupConfig {
            batch_size: 1000,
            pause: Duration::from_millis(50),
            jitter: 0.5,
            time_budget: None,
            max_batch_retries: 5,
            retry_backoff: Duration::from_millis(200),
            lock: LockPolicy::Skip,
            dry_run: false,
            count_first: false,
            orphans: None,
        }
    }
}

impl CleanupConfig {
    /// Largest accepted batch: bigger batches hold locks too long to be "small".
    pub const MAX_BATCH_SIZE: u64 = 100_000;

    /// Checks every value; the error names the first bad one.
    pub fn validate(&self) -> Result<(), CleanupError> {
        if self.batch_size == 0 || self.batch_size > Self::MAX_BATCH_SIZE {
            return Err(CleanupError::InvalidConfig {
                field: "batch_size",
                value: self.batch_size.to_string(),
                expected: "between 1 and 100000",
            });
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(CleanupError::InvalidConfig {
                field: "jitter",
                value: self.jitter.to_string(),
                expected: "between 0 and 1",
            });
        }
        if self.time_budget.is_some_and(|b| b.is_zero()) {
            return Err(CleanupError::InvalidConfig {
                field: "time_budget",
                value: "0s".to_owned(),
                expected: "more than zero, or none",
            });
        }
        Ok(())
    }
}

/// Which sessions a run deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupMode {
    /// Sessions past their expiry (by the table's [`crate::ExpiryRule`]).
    Expired,
    /// Sessions created (or, without a creation column, last seen) longer
    /// ago than `max_age`, whatever their expiry.
    Force {
        /// The age past which a session goes.
        max_age: Duration,
    },
    /// Sessions whose user id is set but names no row of the
    /// [`OrphanRule`]'s users table.
    Orphans,
}

impl CleanupMode {
    /// `expired`, `force` or `orphans` (the runs table's `mode`).
    pub fn as_str(&self) -> &'static str {
        match self {
            CleanupMode::Expired => "expired",
            CleanupMode::Force { .. } => "force",
            CleanupMode::Orphans => "orphans",
        }
    }
}

/// How the run went with the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum LockOutcome {
    /// Taken at once.
    Acquired,
    /// Another runner held it; this run did nothing.
    Skipped {
        /// The host of that runner, when the runs table tells.
        held_by: Option<String>,
    },
    /// Taken after waiting this many milliseconds.
    Waited {
        /// Milliseconds waited.
        ms: u64,
    },
}

/// After each batch: how far the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CleanupProgress {
    /// Rows deleted so far.
    pub removed_so_far: u64,
    /// Rows the run targets, counted when it started: `None` unless
    /// [`CleanupConfig::count_first`] is set, or if counting failed.
    pub expected_total: Option<u64>,
    /// Batches committed so far.
    pub batches: u64,
}

/// What one run did. Its JSON form is the stable output of
/// `dbwarden cleanup --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CleanupReport {
    /// `expired`, `force` or `orphans`.
    pub mode: &'static str,
    /// The force mode's age limit, seconds.
    pub max_age_seconds: Option<u64>,
    /// The session table.
    pub table: String,
    /// `postgres`, `mysql` or `sqlite`.
    pub backend: &'static str,
    /// The run's row in `dbwarden_cleanup_runs`, when recorded.
    pub run_id: Option<i64>,
    /// Epoch milliseconds.
    pub started_at_ms: i64,
    /// Epoch milliseconds.
    pub finished_at_ms: i64,
    /// Rows deleted (0 in a dry run).
    pub rows_removed: u64,
    /// In a dry run, the rows a real run would delete now.
    pub rows_would_remove: Option<u64>,
    /// Target rows counted at the start (with [`CleanupConfig::count_first`]
    /// or a dry run; otherwise `null`).
    pub expected_total: Option<u64>,
    /// Batches committed.
    pub batches: u64,
    /// Failed batch attempts (each retry that failed counts).
    pub errors: u64,
    /// Whether a batch failed past its retries and ended the run.
    pub gave_up: bool,
    /// The slowest batch, milliseconds.
    pub longest_batch_ms: u64,
    /// How the run went with the lock.
    pub lock: LockOutcome,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Whether the time budget ended the run with rows left.
    pub budget_exhausted: bool,
    /// Whether a shutdown ended the run early.
    pub interrupted: bool,
}

impl CleanupReport {
    /// The report of a run of `mode` on `table` (on `backend`) that starts
    /// now: nothing done yet, the lock taken at once until told otherwise.
    fn starting(mode: &CleanupMode, table: String, backend: &'static str, started_at_ms: i64, dry_run: bool) -> Self {
        CleanupReport {
            mode: mode.as_str(),
            max_age_seconds: match mode {
                CleanupMode::Force { max_age } => Some(max_age.as_secs()),
                _ => None,
            },
            table,
            backend,
            run_id: None,
            started_at_ms,
            finished_at_ms: started_at_ms,
            rows_removed: 0,
            rows_would_remove: None,
            expected_total: None,
            batches: 0,
            errors: 0,
            gave_up: false,
            longest_batch_ms: 0,
            lock: LockOutcome::Acquired,
            dry_run,
            budget_exhausted: false,
            interrupted: false,
        }
    }

    /// Whether the run ran to completion without a failed batch: not skipped,
    /// no errors. (A run cut by its time budget counts as ok.)
    pub fn is_clean(&self) -> bool {
        self.errors == 0 && !matches!(self.lock, LockOutcome::Skipped { .. })
    }
}

/// The session table and its recent cleanups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CleanupStats {
    /// The session table.
    pub table: String,
    /// `postgres`, `mysql` or `sqlite`.
    pub backend: &'static str,
    /// Epoch milliseconds.
    pub generated_at_ms: i64,
    /// Rows in the table.
    pub total: u64,
    /// Rows past their expiry.
    pub expired: u64,
    /// Bytes of the table with its indexes, when the backend tells.
    pub table_bytes: Option<u64>,
    /// The latest runs, newest first (empty when the runs table does not exist).
    pub last_runs: Vec<CleanupRun>,
}

/// A cleanup that could not run. A batch that fails is not one of these: it
/// is retried, counted in [`CleanupReport::errors`], and ends the run cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CleanupError {
    /// A [`CleanupConfig`] value is out of range.
    #[error("invalid cleanup setting {field} = {value}: expected {expected}")]
    InvalidConfig {
        /// The setting.
        field: &'static str,
        /// The rejected value.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// Force mode needs a creation or activity column.
    #[error(
        "force mode needs the creation or last-activity column of `{table}`, and its mapping names neither \
         (set created_at or last_seen_at)"
    )]
    NoAgeColumn {
        /// The session table.
        table: String,
    },
    /// Orphan mode needs the sessions' user column.
    #[error("orphan cleanup needs the user column of `{table}`, and its mapping names none (set user_id)")]
    NoUserColumn {
        /// The session table.
        table: String,
    },
    /// Orphan mode was asked for without saying where users live.
    #[error("orphan cleanup needs the users table and its key column (the orphans rule)")]
    NoOrphanRule,
    /// A table or column the run needs is missing or misnamed.
    #[error(transparent)]
    Table(#[from] TableError),
    /// The database refused something the run cannot go on without.
    #[error("cannot {action} for `{table}`: {message}")]
    Database {
        /// What was being done.
        action: &'static str,
        /// The session table.
        table: String,
        /// The driver's message, with literal values redacted.
        message: String,
    },
}

impl CleanupError {
    fn database(action: &'static str, table: &SessionTable, err: &sqlx::Error) -> CleanupError {
        CleanupError::Database {
            action,
            table: table.display_name().to_owned(),
            message: dbwarden_core::redact::redact_message(&err.to_string()),
        }
    }
}

/// Runs cleanups of one session table.
#[derive(Debug, Clone)]
pub struct Cleaner {
    db: SessionDatabase,
    table: SessionTable,
    config: CleanupConfig,
    monitor: Option<Monitor>,
    host: String,
}

/// The state of a run between batches.
#[derive(Debug, Default)]
struct Tally {
    removed: u64,
    batches: u64,
    errors: u64,
    longest_batch: Duration,
    gave_up: bool,
    budget_exhausted: bool,
    interrupted: bool,
}

fn now_ms() -> i64 {
    i64::try_from(SystemClock.now().as_millis()).unwrap_or(i64::MAX)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Cleaner {
    /// A cleaner of `table` (verified on `db`).
    pub fn new(db: SessionDatabase, table: SessionTable, config: CleanupConfig) -> Self {
        Cleaner { db, table, config, monitor: None, host: runs::host_name() }
    }

    /// Also reports every finished run, and the table's size after it, to `monitor`.
    pub fn with_monitor(mut self, monitor: Monitor) -> Self {
        self.monitor = Some(monitor);
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> &CleanupConfig {
        &self.config
    }

    /// The table this cleaner works on.
    pub fn table(&self) -> &SessionTable {
        &self.table
    }

    /// Runs one cleanup in `mode`, calling `progress` after each batch.
    pub async fn run_once(
        &self,
        mode: CleanupMode,
        progress: &(dyn Fn(CleanupProgress) + Send + Sync),
    ) -> Result<CleanupReport, CleanupError> {
        self.run_once_until(mode, progress, std::future::pending()).await
    }

    /// As [`run_once`](Self::run_once), but when `shutdown` completes the
    /// run ends after the batch in progress, records itself and returns
    /// (`interrupted` set).
    pub async fn run_once_until(
        &self,
        mode: CleanupMode,
        progress: &(dyn Fn(CleanupProgress) + Send + Sync),
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<CleanupReport, CleanupError> {
        let stop = AtomicBool::new(false);
        let run = self.run(mode, progress, &stop);
        tokio::pin!(run);
        tokio::pin!(shutdown);
        let mut stopping = false;
        loop {
            tokio::select! {
                report = &mut run => return report,
                () = &mut shutdown, if !stopping => {
                    stopping = true;
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    async fn run(
        &self,
        mode: CleanupMode,
        progress: &(dyn Fn(CleanupProgress) + Send + Sync),
        stop: &AtomicBool,
    ) -> Result<CleanupReport, CleanupError> {
        self.config.validate()?;
        if let CleanupMode::Force { max_age } = mode
            && max_age < Duration::from_secs(1)
        {
            return Err(CleanupError::InvalidConfig {
                field: "max_age",
                value: format!("{max_age:?}"),
                expected: "at least one second",
            });
        }
        let table = &self.table;
        let started_at_ms = now_ms();
        let plan = Plan::build(&self.db, table, &mode, self.config.orphans.as_ref(), started_at_ms).await?;

        let wait = match self.config.lock {
            LockPolicy::Skip => Duration::ZERO,
            LockPolicy::Wait(d) => d,
        };
        let lock_started = Instant::now();
        let lock = lock::acquire(&self.db, table, wait, stop).await.map_err(|err| CleanupError::Database {
            action: "take the cleanup lock",
            table: table.display_name().to_owned(),
            message: dbwarden_core::redact::redact_message(&err.to_string()),
        })?;
        let mut report = CleanupReport::starting(
            &mode,
            table.display_name().to_owned(),
            table.backend().as_str(),
            started_at_ms,
            self.config.dry_run,
        );
        let Some(lock) = lock else {
            let held_by = runs::running_host(&self.db, table).await.ok().flatten();
            tracing::info!(
                table = table.display_name(),
                held_by = held_by.as_deref().unwrap_or("unknown"),
                "another cleanup holds the lock; skipping"
            );
            report.lock = LockOutcome::Skipped { held_by };
            report.interrupted = stop.load(Ordering::Relaxed);
            report.finished_at_ms = now_ms();
            return Ok(report);
        };
        if lock.contended {
            report.lock = LockOutcome::Waited { ms: millis(lock_started.elapsed()) };
        }
        let mut lock = lock.lock;
        let result = self.run_locked(&plan, &mut lock, progress, stop, &mut report).await;
        lock.release().await;
        result?;
        self.report_to_monitor(&report).await;
        Ok(report)
    }

    /// The part of a run under the lock.
    async fn run_locked(
        &self,
        plan: &Plan,
        lock: &mut lock::RunnerLock,
        progress: &(dyn Fn(CleanupProgress) + Send + Sync),
        stop: &AtomicBool,
        report: &mut CleanupReport,
    ) -> Result<(), CleanupError> {
        let table = &self.table;
        let config = &self.config;
        let run_id = self.start_record(report).await;
        report.run_id = run_id;
        tracing::info!(
            table = table.display_name(),
            mode = report.mode,
            dry_run = config.dry_run,
            batch_size = config.batch_size,
            "session cleanup started"
        );

        if config.dry_run {
            let would = plan
                .count(&self.db)
                .await
                .map_err(|err| CleanupError::database("count the sessions to remove", table, &err));
            // The row ends either way; a failed count is its one error.
            let figures =
                runs::RunFigures { rows: *would.as_ref().unwrap_or(&0), batches: 0, errors: u64::from(would.is_err()) };
            if let Some(id) = run_id
                && let Err(err) = runs::update(&self.db, id, figures, Some(now_ms())).await
            {
                warn_unrecorded(table, &err);
            }
            let would = would?;
            report.rows_would_remove = Some(would);
            report.expected_total = Some(would);
            report.finished_at_ms = now_ms();
            tracing::info!(table = table.display_name(), rows_would_remove = would, "session cleanup dry run finished");
            return Ok(());
        }
        let counted = if config.count_first { Some(plan.count(&self.db).await) } else { None };
        report.expected_total = match counted {
            None => None,
            Some(Ok(n)) => Some(n),
            Some(Err(err)) => {
                tracing::warn!(
                    table = table.display_name(),
                    error = %dbwarden_core::redact::redact_message(&err.to_string()),
                    "could not count the sessions to remove; going on without a total"
                );
                None
            }
        };

        let tally = self.batches(plan, lock, progress, stop, report.expected_total, run_id).await;
        report.rows_removed = tally.removed;
        report.batches = tally.batches;
        report.errors = tally.errors;
        report.gave_up = tally.gave_up;
        report.longest_batch_ms = millis(tally.longest_batch);
        report.budget_exhausted = tally.budget_exhausted;
        report.interrupted = tally.interrupted;
        report.finished_at_ms = now_ms();
        if let Some(id) = run_id {
            let figures = runs::RunFigures { rows: tally.removed, batches: tally.batches, errors: tally.errors };
            if let Err(err) = runs::update(&self.db, id, figures, Some(report.finished_at_ms)).await {
                warn_unrecorded(table, &err);
            }
        }
        let level_is_warn = tally.gave_up || tally.errors > 0;
        if level_is_warn {
            tracing::warn!(
                table = table.display_name(),
                rows_removed = tally.removed,
                batches = tally.batches,
                errors = tally.errors,
                gave_up = tally.gave_up,
                "session cleanup finished with failed batches"
            );
        } else {
            tracing::info!(
                table = table.display_name(),
                rows_removed = tally.removed,
                batches = tally.batches,
                budget_exhausted = tally.budget_exhausted,
                interrupted = tally.interrupted,
                duration_ms = report.finished_at_ms.saturating_sub(report.started_at_ms),
                "session cleanup finished"
            );
        }
        Ok(())
    }

    /// Inserts the run's row; a run goes on without it when recording fails
    /// (removing expired sessions matters more than the record of it).
    async fn start_record(&self, report: &CleanupReport) -> Option<i64> {
        let table = &self.table;
        let ready = if self.config.dry_run {
            runs::exists(&self.db).await
        } else {
            runs::ensure(&self.db).await.map(|()| true)
        };
        match ready {
            Ok(true) => {}
            Ok(false) => return None,
            Err(err) => {
                warn_unrecorded(table, &err);
                return None;
            }
        }
        match runs::start(&self.db, table, report.started_at_ms, report.mode, self.config.dry_run, &self.host).await {
            Ok(id) => Some(id),
            Err(err) => {
                warn_unrecorded(table, &err);
                None
            }
        }
    }

    /// Deletes batch after batch until no target row is left, the budget is
    /// spent, a shutdown is asked for, or a batch fails past its retries.
    async fn batches(
        &self,
        plan: &Plan,
        lock: &mut lock::RunnerLock,
        progress: &(dyn Fn(CleanupProgress) + Send + Sync),
        stop: &AtomicBool,
        expected_total: Option<u64>,
        run_id: Option<i64>,
    ) -> Tally {
        let config = &self.config;
        let table = &self.table;
        let started = Instant::now();
        let mut tally = Tally::default();
        let mut empty_chunks = 0;
        let mut last_row_update = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                tally.interrupted = true;
                break;
            }
            // The first batch always runs, so every run makes progress.
            if tally.batches > 0 && config.time_budget.is_some_and(|budget| started.elapsed() >= budget) {
                tally.budget_exhausted = true;
                break;
            }
            let mut attempt = 0u32;
            let outcome = loop {
                let batch_started = Instant::now();
                match plan.batch(&self.db, lock.postgres_connection(), config.batch_size).await {
                    Ok(outcome) => {
                        tally.longest_batch = tally.longest_batch.max(batch_started.elapsed());
                        break Some(outcome);
                    }
                    Err(err) => {
                        tally.errors += 1;
                        attempt += 1;
                        let message = dbwarden_core::redact::redact_message(&err.to_string());
                        if attempt > config.max_batch_retries {
                            tracing::error!(
                                table = table.display_name(),
                                attempts = attempt,
                                error = %message,
                                "a cleanup batch kept failing; ending this run"
                            );
                            break None;
                        }
                        let backoff = config
                            .retry_backoff
                            .saturating_mul(2u32.saturating_pow(attempt - 1))
                            .min(MAX_RETRY_BACKOFF);
                        tracing::warn!(
                            table = table.display_name(),
                            attempt,
                            retry_in_ms = millis(backoff),
                            error = %message,
                            "a cleanup batch failed; retrying"
                        );
                        sleep_unless_stopped(backoff, stop).await;
                        if stop.load(Ordering::Relaxed) {
                            break None;
                        }
                    }
                }
            };
            let Some(outcome) = outcome else {
                if stop.load(Ordering::Relaxed) {
                    tally.interrupted = true;
                } else {
                    tally.gave_up = true;
                }
                break;
            };
            if outcome.deleted > 0 {
                tally.batches += 1;
                tally.removed += outcome.deleted;
                progress(CleanupProgress { removed_so_far: tally.removed, expected_total, batches: tally.batches });
            }
            if run_id.is_some() && last_row_update.elapsed() >= RUN_ROW_REFRESH {
                last_row_update = Instant::now();
                let figures = runs::RunFigures { rows: tally.removed, batches: tally.batches, errors: tally.errors };
                if let Some(id) = run_id
                    && let Err(err) = runs::update(&self.db, id, figures, None).await
                {
                    warn_unrecorded(table, &err);
                }
            }
            // A short chunk was the last one; a full chunk that deleted
            // nothing (every key refreshed meanwhile) may leave more behind.
            if outcome.picked < config.batch_size {
                break;
            }
            if outcome.deleted == 0 {
                empty_chunks += 1;
                if empty_chunks >= MAX_EMPTY_CHUNKS {
                    break;
                }
            } else {
                empty_chunks = 0;
            }
            sleep_unless_stopped(self.jittered_pause(), stop).await;
        }
        tally
    }

    fn jittered_pause(&self) -> Duration {
        let jitter = self.config.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 || self.config.pause.is_zero() {
            return self.config.pause;
        }
        let factor = 1.0 + rand::random_range(-jitter..=jitter);
        self.config.pause.mul_f64(factor.max(0.0))
    }

    /// Sends a finished run and the table's size after it to the monitor.
    async fn report_to_monitor(&self, report: &CleanupReport) {
        let Some(monitor) = &self.monitor else { return };
        if matches!(report.lock, LockOutcome::Skipped { .. }) {
            monitor.record_cleanup_elsewhere();
        } else if !report.dry_run {
            monitor.record_cleanup(CleanupRecord {
                rows_removed: report.rows_removed,
                duration: Duration::from_millis(
                    u64::try_from(report.finished_at_ms.saturating_sub(report.started_at_ms)).unwrap_or(0),
                ),
                batches: u32::try_from(report.batches).unwrap_or(u32::MAX),
                errors: u32::try_from(report.errors).unwrap_or(u32::MAX),
            });
        }
        match self.table_sample().await {
            Ok(sample) => monitor.record_session_table(sample),
            Err(err) => tracing::warn!(
                table = self.table.display_name(),
                error = %err,
                "could not measure the session table after cleanup"
            ),
        }
    }

    async fn table_sample(&self) -> Result<SessionTableSample, CleanupError> {
        let stats = self.counts().await?;
        Ok(SessionTableSample { total: stats.0, expired: stats.1, bytes: stats.2 })
    }

    /// Total rows, expired rows and bytes of the table.
    async fn counts(&self) -> Result<(u64, u64, Option<u64>), CleanupError> {
        let table = &self.table;
        let expired_plan = Plan::build(&self.db, table, &CleanupMode::Expired, None, now_ms()).await?;
        let expired = expired_plan
            .count(&self.db)
            .await
            .map_err(|err| CleanupError::database("count expired sessions", table, &err))?;
        let total_sql = format!("SELECT COUNT(*) FROM {}", table.sql_name());
        let total: i64 = crate::db::on_pool!(&self.db, pool => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(total_sql))
                .fetch_one(pool)
                .await
                .map_err(|err| CleanupError::database("count sessions", table, &err))?
        });
        let bytes = match crate::catalog::sizes(&self.db, table).await {
            Ok(sizes) => sizes.total_bytes.and_then(|b| u64::try_from(b).ok()),
            Err(err) => {
                tracing::debug!(
                    table = table.display_name(),
                    error = %dbwarden_core::redact::redact_message(&err.to_string()),
                    "table size unavailable"
                );
                None
            }
        };
        Ok((u64::try_from(total).unwrap_or(0), expired, bytes))
    }

    /// The table's total and expired rows, its size and its latest runs.
    pub async fn stats(&self) -> Result<CleanupStats, CleanupError> {
        let (total, expired, table_bytes) = self.counts().await?;
        let last_runs = runs::recent(&self.db, &self.table)
            .await
            .map_err(|err| CleanupError::database("read the cleanup runs", &self.table, &err))?;
        Ok(CleanupStats {
            table: self.table.display_name().to_owned(),
            backend: self.table.backend().as_str(),
            generated_at_ms: now_ms(),
            total,
            expired,
            table_bytes,
            last_runs,
        })
    }

    /// Runs an expired-session cleanup now and then every `interval` until
    /// `shutdown` completes; a run in progress then ends after its current
    /// batch. Tells `monitor` (or the one given to
    /// [`with_monitor`](Self::with_monitor)) the interval, so it alerts when
    /// cleanup stops happening, and reports every run to it. Never ends on a
    /// failed run: the failure is logged and the next interval tries again.
    pub async fn daemon(
        &self,
        interval: Duration,
        monitor: Option<Monitor>,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        let interval = interval.max(Duration::from_secs(1));
        let cleaner = match monitor {
            Some(monitor) => self.clone().with_monitor(monitor),
            None => self.clone(),
        };
        if let Some(monitor) = &cleaner.monitor {
            monitor.set_cleanup_interval(Some(interval));
        }
        tracing::info!(
            table = self.table.display_name(),
            interval_seconds = interval.as_secs(),
            "session cleanup daemon started"
        );
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let watcher = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
            // Keeps the sender alive until the loop below has seen the stop.
            std::future::pending::<()>().await;
        };
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let runs = async {
            let mut next = tokio::time::Instant::now();
            loop {
                if let Err(err) = cleaner.run_once_until(CleanupMode::Expired, &|_| {}, stopped(stop_rx.clone())).await
                {
                    tracing::error!(
                        table = self.table.display_name(),
                        error = %err,
                        "session cleanup failed; trying again at the next interval"
                    );
                }
                if *stop_rx.borrow() {
                    break;
                }
                next += interval;
                let now = tokio::time::Instant::now();
                if next < now {
                    // A run longer than the interval: the next one starts a
                    // full interval from now rather than back to back.
                    next = now + interval;
                }
                tokio::select! {
                    () = tokio::time::sleep_until(next) => {}
                    () = stopped(stop_rx.clone()) => break,
                }
            }
        };
        tokio::select! {
            () = runs => {}
            () = watcher => {}
        }
        tracing::info!(table = self.table.display_name(), "session cleanup daemon stopped");
    }
}

/// Sleeps for `duration`, waking early once `stop` is set.
async fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) {
    let end = Instant::now() + duration;
    loop {
        let now = Instant::now();
        if now >= end || stop.load(Ordering::Relaxed) {
            return;
        }
        tokio::time::sleep((end - now).min(STOP_CHECK_EVERY)).await;
    }
}

fn warn_unrecorded(table: &SessionTable, err: &sqlx::Error) {
    tracing::warn!(
        table = table.display_name(),
        error = %dbwarden_core::redact::redact_message(&err.to_string()),
        "could not record the cleanup run in dbwarden_cleanup_runs"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_refuses_values_out_of_range_by_name() {
        assert!(CleanupConfig::default().validate().is_ok());
        let zero = CleanupConfig { batch_size: 0, ..CleanupConfig::default() };
        let err = zero.validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("batch_size") && err.contains('0'), "{err}");
        let wide = CleanupConfig { jitter: 1.5, ..CleanupConfig::default() };
        let err = wide.validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("jitter") && err.contains("1.5"), "{err}");
    }

    #[test]
    fn skipped_or_failed_runs_are_not_clean() {
        let report = CleanupReport::starting(&CleanupMode::Expired, "t".into(), "sqlite", 0, false);
        assert!(report.is_clean());
        assert!(!CleanupReport { errors: 1, ..report.clone() }.is_clean());
        assert!(!CleanupReport { lock: LockOutcome::Skipped { held_by: None }, ..report }.is_clean());
    }
}
