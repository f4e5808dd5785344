//! `dbwarden db analyze | create-indexes | optimize | integrity-check |
//! stats | migrate`: database maintenance of the session table, one
//! subcommand per operation, each as aligned text or one JSON object.
//!
//! Also the pieces the other session-table commands (`analytics`,
//! `maintain`) print and exit with, so the three read and behave alike:
//! exit 0 when all is well, 1 when a check finds problems, 2 for a usage or
//! configuration error (bad flag, unknown preset, a table without the
//! mapped columns), 3 when the database cannot be reached or a statement
//! fails.

use std::fmt::Display;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use dbwarden_core::{Clock, SystemClock, Timestamp};
use dbwarden_sessions::maintenance::{
    self, AnalyzeReport, DbStats, IndexReport, IntegrityReport, OptimizeReport, TableSizes,
};
use dbwarden_sessions::{DbError, Preset, SchemaConfig, SessionDatabase, TableError};
use serde::Serialize;

use super::client::outln;
use super::target::{Target, TargetArgs};

/// A check found problems.
pub(crate) const EXIT_PROBLEMS: u8 = 1;
/// Bad flags or settings.
pub(crate) const EXIT_USAGE: u8 = 2;
/// The database failed.
pub(crate) const EXIT_DATABASE: u8 = 3;

#[derive(Debug, Args)]
pub(crate) struct DbArgs {
    #[command(subcommand)]
    action: DbAction,
}

#[derive(Debug, Subcommand)]
enum DbAction {
    /// Rows, table and index sizes, indexes, dead tuples or reclaimable space.
    Analyze(Common),
    /// Create the recommended indexes (expiry column, user column) that are missing.
    CreateIndexes(Change),
    /// Reclaim dead space and refresh statistics (VACUUM / OPTIMIZE TABLE / SQLite VACUUM).
    Optimize(Change),
    /// The engine's integrity check and consistency counts of the session rows (exit 1 on problems).
    IntegrityCheck(Common),
    /// Counts, storage, missing indexes and the last cleanup run.
    Stats(Common),
    /// Create or update dbwarden's own session table and its companions.
    Migrate(Change),
}

/// Flags every `db` subcommand takes.
#[derive(Debug, Args)]
pub(crate) struct Common {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Flags of the subcommands that change something.
#[derive(Debug, Args)]
pub(crate) struct Change {
    #[command(flatten)]
    common: Common,
    /// Change nothing; list the statements that would run.
    #[arg(long)]
    dry_run: bool,
}

pub(crate) fn run(args: DbArgs) -> anyhow::Result<ExitCode> {
    let common = match &args.action {
        DbAction::Analyze(c) | DbAction::IntegrityCheck(c) | DbAction::Stats(c) => c,
        DbAction::CreateIndexes(c) | DbAction::Optimize(c) | DbAction::Migrate(c) => &c.common,
    };
    let settings = match common.target.settings() {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    super::init_logging();
    runtime()?.block_on(async {
        if let DbAction::Migrate(change) = &args.action {
            return Ok(migrate(&change.common, settings, change.dry_run).await);
        }
        let target = match open(&common.target, settings, false).await {
            Ok(t) => t,
            Err(code) => return Ok(code),
        };
        let json = common.json;
        let now = now();
        let code = match &args.action {
            DbAction::Analyze(_) => finish(maintenance::analyze(&target.db, &target.table).await, json, print_analyze),
            DbAction::CreateIndexes(c) => {
                finish(maintenance::create_indexes(&target.db, &target.table, c.dry_run).await, json, print_indexes)
            }
            DbAction::Optimize(c) => {
                let result = maintenance::optimize(&target.db, &target.table, c.dry_run).await;
                let ok = result.as_ref().is_ok_and(|r| r.ok);
                let code = finish(result, json, print_optimize);
                if ok { code } else { problems_or(code) }
            }
            DbAction::IntegrityCheck(_) => {
                let result = maintenance::integrity_check(&target.db, &target.table).await;
                let ok = result.as_ref().is_ok_and(|r| r.ok);
                let code = finish(result, json, print_integrity);
                if ok { code } else { problems_or(code) }
            }
            DbAction::Stats(_) => finish(maintenance::stats(&target.db, &target.table, now).await, json, print_stats),
            DbAction::Migrate(_) => ExitCode::SUCCESS,
        };
        target.db.close().await;
        Ok(code)
    })
}

/// A current-thread runtime for one command.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("could not start the async runtime")
}

/// The wall clock, as the reports take it.
pub(crate) fn now() -> Timestamp {
    SystemClock.now()
}

/// Opens the target; on failure prints the reason and gives the exit code
/// (2 for a table that does not match its description, 3 otherwise).
pub(crate) async fn open(
    target: &TargetArgs,
    settings: dbwarden::settings::Settings,
    migrate: bool,
) -> Result<Target, ExitCode> {
    target.open(settings, migrate).await.map_err(|e| {
        eprintln!("dbwarden: {e:#}");
        let bad_url = e.chain().any(|cause| {
            matches!(cause.downcast_ref::<DbError>(), Some(DbError::UnsupportedUrl { .. } | DbError::InvalidUrl { .. }))
        });
        if bad_url || e.downcast_ref::<TableError>().is_some() {
            ExitCode::from(EXIT_USAGE)
        } else {
            ExitCode::from(EXIT_DATABASE)
        }
    })
}

/// Connects to the settings' database; on failure prints the reason and
/// gives the exit code (2 for a URL dbwarden cannot use, 3 otherwise).
pub(crate) async fn connect(settings: &dbwarden::settings::Settings) -> Result<SessionDatabase, ExitCode> {
    SessionDatabase::connect(&settings.database_url).await.map_err(|e| {
        eprintln!("dbwarden: {e}");
        match e {
            DbError::UnsupportedUrl { .. } | DbError::InvalidUrl { .. } => ExitCode::from(EXIT_USAGE),
            _ => ExitCode::from(EXIT_DATABASE),
        }
    })
}

/// Prints a report (JSON or text) or the error; exit 0, or 3 on error.
pub(crate) fn finish<T: Serialize, E: Display>(result: Result<T, E>, json: bool, print: impl FnOnce(&T)) -> ExitCode {
    match result {
        Ok(report) => {
            if json {
                print_json(&report);
            } else {
                print(&report);
            }
            ExitCode::SUCCESS
        }
        Err(e) => database_failure(e),
    }
}

/// Keeps an error's exit code; turns success into "problems found".
pub(crate) fn problems_or(code: ExitCode) -> ExitCode {
    if code == ExitCode::SUCCESS { ExitCode::from(EXIT_PROBLEMS) } else { code }
}

/// Prints `e` once and gives exit code 3.
pub(crate) fn database_failure(e: impl Display) -> ExitCode {
    eprintln!("dbwarden: {e}");
    ExitCode::from(EXIT_DATABASE)
}

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => outln!("{text}"),
        Err(e) => eprintln!("dbwarden: could not encode the report as JSON: {e}"),
    }
}

/// One aligned `label  value` line.
pub(crate) fn line(label: &str, value: impl Display) {
    outln!("{label:<21} {value}");
}

/// A byte count in binary units, or `unknown`.
pub(crate) fn bytes(value: Option<i64>) -> String {
    let Some(b) = value else { return "unknown".to_owned() };
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut size = b as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < units.len() {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{b} B") } else { format!("{size:.1} {}", units[unit]) }
}

/// An epoch-millisecond time as RFC 3339, or `never`.
pub(crate) fn when(ms: Option<i64>) -> String {
    match ms.and_then(|ms| u64::try_from(ms).ok()) {
        Some(ms) => Timestamp::from_millis(ms).to_rfc3339(),
        None => "never".to_owned(),
    }
}

fn print_sizes(sizes: &TableSizes) {
    line("table size", bytes(sizes.table_bytes));
    line("index size", bytes(sizes.index_bytes));
    line("total size", bytes(sizes.total_bytes));
}

pub(crate) fn print_analyze(r: &AnalyzeReport) {
    line("table", format!("{} ({})", r.table, r.backend));
    line("rows", r.rows);
    print_sizes(&r.sizes);
    if let Some(dead) = r.dead_tuples {
        let share = r.dead_fraction.map(|f| format!(" ({:.1} %)", f * 100.0)).unwrap_or_default();
        line("dead tuples", format!("{dead}{share}"));
        line("last vacuum", when(r.last_vacuum_ms));
        line("last analyze", when(r.last_analyze_ms));
    }
    if r.reclaimable_bytes.is_some() {
        line("reclaimable", bytes(r.reclaimable_bytes));
    }
    for (i, index) in r.indexes.iter().enumerate() {
        let flags = match (index.unique, index.valid) {
            (_, false) => " [invalid]",
            (true, true) => " [unique]",
            (false, true) => "",
        };
        line(if i == 0 { "indexes" } else { "" }, format!("{} ({}){flags}", index.name, index.columns.join(", ")));
    }
    for note in &r.notes {
        line("note", note);
    }
}

pub(crate) fn print_indexes(r: &IndexReport) {
    line("table", &r.table);
    let verb = if r.dry_run { "would create" } else { "created" };
    for index in &r.created {
        line(verb, format!("{} on {} ({})", index.index, index.column, index.purpose));
        for statement in &index.statements {
            line("", statement);
        }
    }
    for index in &r.already_present {
        line("already present", format!("{} serves {}", index.index, index.column));
    }
    if r.created.is_empty() {
        line("result", "every recommended index is present");
    }
}

pub(crate) fn print_optimize(r: &OptimizeReport) {
    line("table", format!("{} ({})", r.table, r.backend));
    if r.dry_run {
        for statement in &r.statements {
            line("would run", statement);
        }
        return;
    }
    for outcome in &r.outcomes {
        let status = if outcome.ok { "ok" } else { "FAILED" };
        line(status, format!("{} ({} ms)", outcome.statement, outcome.duration_ms));
        for message in &outcome.messages {
            line("", message);
        }
    }
    line("size before", bytes(r.bytes_before));
    line("size after", bytes(r.bytes_after));
}

pub(crate) fn print_integrity(r: &IntegrityReport) {
    line("table", format!("{} ({})", r.table, r.backend));
    if let Some(engine) = &r.engine_check {
        line(if engine.ok { "engine check ok" } else { "engine check FAILED" }, &engine.statement);
        if !engine.ok {
            for message in &engine.messages {
                line("", message);
            }
        }
    }
    for check in &r.consistency {
        line(check.code, format!("{} ({})", check.count, check.description));
    }
    for missing in &r.unavailable {
        line("not checked", format!("{}: {}", missing.part, missing.reason));
    }
    line("result", if r.ok { "ok".to_owned() } else { format!("{} inconsistent row(s)", r.inconsistent_rows) });
}

pub(crate) fn print_stats(s: &DbStats) {
    line("table", format!("{} ({})", s.table, s.backend));
    line("sessions", format!("{} ({} live, {} expired)", s.counts.total, s.counts.active, s.counts.expired));
    line("expired share", format!("{:.1} %", s.counts.expired_fraction * 100.0));
    print_sizes(&s.storage.sizes);
    if let Some(dead) = s.storage.dead_tuples {
        line("dead tuples", dead);
    }
    if s.storage.reclaimable_bytes.is_some() {
        line("reclaimable", bytes(s.storage.reclaimable_bytes));
    }
    line("indexes", s.storage.indexes.len());
    line(
        "missing indexes",
        if s.missing_indexes.is_empty() { "none".to_owned() } else { s.missing_indexes.join(", ") },
    );
    match &s.last_cleanup {
        Some(run) => line(
            "last cleanup",
            format!(
                "{} ({}, {} removed, {} errors)",
                when(Some(run.finished_at_ms)),
                run.mode,
                run.rows_removed,
                run.errors
            ),
        ),
        None => line("last cleanup", "never"),
    }
}

/// What `db migrate` did or would do.
#[derive(Debug, Serialize)]
pub(crate) struct MigrateOutcome {
    pub(crate) table: String,
    pub(crate) dry_run: bool,
    /// Migrations applied (or pending, in a dry run): `version name`.
    pub(crate) applied: Vec<String>,
    pub(crate) already_applied: usize,
}

/// Migrates dbwarden's table named by the settings (or lists what is pending).
pub(crate) async fn migrate_table(
    db: &SessionDatabase,
    settings: &dbwarden::settings::Settings,
    dry_run: bool,
) -> Result<MigrateOutcome, anyhow::Error> {
    let table = settings.cleanup.table_mapping(db.backend()).table;
    let schema = SchemaConfig::new(&table)?;
    let name = |m: &dbwarden_sessions::schema::Migration| format!("{} {}", m.version, m.name);
    if dry_run {
        let pending = dbwarden_sessions::pending_migrations(db, &schema).await?;
        let total = dbwarden_sessions::schema::MIGRATIONS.len();
        return Ok(MigrateOutcome {
            table,
            dry_run,
            already_applied: total - pending.len(),
            applied: pending.iter().map(name).collect(),
        });
    }
    let report = dbwarden_sessions::migrate(db, &schema).await?;
    Ok(MigrateOutcome {
        table,
        dry_run,
        already_applied: report.already_applied,
        applied: report.applied.iter().map(name).collect(),
    })
}

pub(crate) fn print_migrate(m: &MigrateOutcome) {
    line("table", &m.table);
    let verb = if m.dry_run { "would apply" } else { "applied" };
    for migration in &m.applied {
        line(verb, migration);
    }
    line("already applied", m.already_applied);
}

async fn migrate(common: &Common, settings: dbwarden::settings::Settings, dry_run: bool) -> ExitCode {
    if settings.cleanup.preset != Preset::Dbwarden {
        eprintln!(
            "dbwarden: `db migrate` manages dbwarden's own session table; the {} table belongs to its framework",
            settings.cleanup.preset
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let db = match connect(&settings).await {
        Ok(db) => db,
        Err(code) => return code,
    };
    let code =
        finish(migrate_table(&db, &settings, dry_run).await.map_err(|e| format!("{e:#}")), common.json, print_migrate);
    db.close().await;
    code
}
