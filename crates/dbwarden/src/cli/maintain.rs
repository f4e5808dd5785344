//! `dbwarden maintain --full | --status`: the whole maintenance cycle in
//! one command, or the session table's health and statistics at a glance.
//!
//! `--full` runs, in order: migrations (dbwarden's own table only; other
//! frameworks' tables are never altered), the recommended indexes, one
//! cleanup run of expired sessions (batched, one runner at a time, with the
//! `cleanup.*` settings), optimize, the integrity check and a snapshot for
//! trends. With `--dry-run` nothing changes: migrations, indexes and
//! optimize list their statements, cleanup counts what it would delete, the
//! read-only integrity check runs, no snapshot is taken.
//! Exit 1 when a cleanup batch, the integrity check or an optimize statement
//! fails (`--full`) or the health report is not ok (`--status`).

use std::process::ExitCode;

use clap::{ArgGroup, Args};
use dbwarden_sessions::analytics::{self, HealthOptions, HealthReport, HealthStatus, Snapshot};
use dbwarden_sessions::maintenance::{self, DbStats, IndexReport, IntegrityReport, OptimizeReport};
use dbwarden_sessions::{Cleaner, CleanupConfig, CleanupMode, CleanupReport, Preset, SessionDatabase, SessionTable};
use serde::Serialize;

use super::analytics::print_health;
use super::db::{
    EXIT_PROBLEMS, EXIT_USAGE, MigrateOutcome, connect, database_failure, line, migrate_table, now, print_indexes,
    print_integrity, print_json, print_migrate, print_optimize, print_stats, runtime,
};
use super::target::TargetArgs;
use crate::cli::client::outln;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("mode").required(true).args(["full", "status"])))]
pub(crate) struct MaintainArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Migrate (dbwarden's table), create indexes, clean up expired sessions, optimize, check integrity,
    /// take a snapshot.
    #[arg(long)]
    full: bool,
    /// The health report and the table's statistics.
    #[arg(long)]
    status: bool,
    /// Change nothing; list what would run.
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// A step `--full` did not run, and why.
#[derive(Debug, Serialize)]
struct Skipped {
    step: &'static str,
    reason: String,
}

/// What `maintain --full` did.
#[derive(Debug, Serialize)]
struct FullReport {
    table: String,
    backend: &'static str,
    dry_run: bool,
    /// Whether cleanup, optimize and the integrity check found nothing wrong.
    ok: bool,
    migrate: Option<MigrateOutcome>,
    create_indexes: Option<IndexReport>,
    cleanup: Option<CleanupReport>,
    optimize: Option<OptimizeReport>,
    integrity: Option<IntegrityReport>,
    snapshot: Option<Snapshot>,
    skipped: Vec<Skipped>,
}

/// What `maintain --status` shows.
#[derive(Debug, Serialize)]
struct StatusReport {
    health: HealthReport,
    stats: DbStats,
}

pub(crate) fn run(args: MaintainArgs) -> anyhow::Result<ExitCode> {
    let settings = match args.target.settings() {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    super::init_logging();
    runtime()?.block_on(async {
        let db = match connect(&settings).await {
            Ok(db) => db,
            Err(code) => return Ok(code),
        };
        let code = if args.full { full(&args, &db, &settings).await } else { status(&args, &db, &settings).await };
        db.close().await;
        Ok(code)
    })
}

async fn verify(db: &SessionDatabase, settings: &dbwarden::settings::Settings) -> Result<SessionTable, ExitCode> {
    SessionTable::verify(db, settings.cleanup.table_mapping(db.backend())).await.map_err(|e| {
        eprintln!("dbwarden: {e}");
        ExitCode::from(EXIT_USAGE)
    })
}

async fn status(args: &MaintainArgs, db: &SessionDatabase, settings: &dbwarden::settings::Settings) -> ExitCode {
    let table = match verify(db, settings).await {
        Ok(t) => t,
        Err(code) => return code,
    };
    let now = now();
    let options = HealthOptions { cleanup_interval: settings.cleanup.interval, ..HealthOptions::default() };
    let health = match analytics::health_report(db, &table, &options, now).await {
        Ok(h) => h,
        Err(e) => return database_failure(e),
    };
    let stats = match maintenance::stats(db, &table, now).await {
        Ok(s) => s,
        Err(e) => return database_failure(e),
    };
    let problems = health.status != HealthStatus::Ok;
    let report = StatusReport { health, stats };
    if args.json {
        print_json(&report);
    } else {
        print_health(&report.health);
        outln!();
        print_stats(&report.stats);
    }
    if problems { ExitCode::from(EXIT_PROBLEMS) } else { ExitCode::SUCCESS }
}

async fn full(args: &MaintainArgs, db: &SessionDatabase, settings: &dbwarden::settings::Settings) -> ExitCode {
    let dry_run = args.dry_run;
    let mut migrate = None;
    let mut skipped = Vec::new();
    if settings.cleanup.preset == Preset::Dbwarden {
        match migrate_table(db, settings, dry_run).await {
            Ok(outcome) => migrate = Some(outcome),
            Err(e) => return database_failure(format!("{e:#}")),
        }
    } else {
        skipped.push(Skipped {
            step: "migrate",
            reason: format!("the {} table belongs to its framework", settings.cleanup.preset),
        });
    }
    let table = match verify(db, settings).await {
        Ok(t) => t,
        // A dry run on a database dbwarden has not migrated yet: the table
        // the remaining steps need only exists after the migrations.
        Err(_) if dry_run && migrate.as_ref().is_some_and(|m| !m.applied.is_empty()) => {
            let report = FullReport {
                table: settings.cleanup.table_mapping(db.backend()).table,
                backend: db.backend().as_str(),
                dry_run,
                ok: true,
                migrate,
                create_indexes: None,
                cleanup: None,
                optimize: None,
                integrity: None,
                snapshot: None,
                skipped: vec![Skipped {
                    step: "create_indexes, cleanup, optimize, integrity, snapshot",
                    reason: "the session table does not exist until the migrations run".to_owned(),
                }],
            };
            print_full(args, &report);
            return ExitCode::SUCCESS;
        }
        Err(code) => return code,
    };
    let create_indexes = match maintenance::create_indexes(db, &table, dry_run).await {
        Ok(r) => r,
        Err(e) => return database_failure(e),
    };
    let config = CleanupConfig { dry_run, ..settings.cleanup.cleanup_config() };
    let cleaner = Cleaner::new(db.clone(), table.clone(), config);
    let cleanup = match cleaner.run_once(CleanupMode::Expired, &|_| {}).await {
        Ok(r) => r,
        Err(e) => return database_failure(e),
    };
    let optimize = match maintenance::optimize(db, &table, dry_run).await {
        Ok(r) => r,
        Err(e) => return database_failure(e),
    };
    let integrity = match maintenance::integrity_check(db, &table).await {
        Ok(r) => r,
        Err(e) => return database_failure(e),
    };
    let snapshot = if dry_run {
        skipped.push(Skipped { step: "snapshot", reason: "a dry run records nothing".to_owned() });
        None
    } else {
        match analytics::take_snapshot(db, &table, now()).await {
            Ok(s) => Some(s),
            Err(e) => return database_failure(e),
        }
    };
    let ok = cleanup.errors == 0 && optimize.ok && integrity.ok;
    let report = FullReport {
        table: table.display_name().to_owned(),
        backend: table.backend().as_str(),
        dry_run,
        ok,
        migrate,
        create_indexes: Some(create_indexes),
        cleanup: Some(cleanup),
        optimize: Some(optimize),
        integrity: Some(integrity),
        snapshot,
        skipped,
    };
    print_full(args, &report);
    if ok { ExitCode::SUCCESS } else { ExitCode::from(EXIT_PROBLEMS) }
}

fn print_full(args: &MaintainArgs, report: &FullReport) {
    if args.json {
        print_json(report);
        return;
    }
    let section = |title: &str| outln!("== {title}");
    if let Some(m) = &report.migrate {
        section("migrate");
        print_migrate(m);
    }
    if let Some(r) = &report.create_indexes {
        section("create indexes");
        print_indexes(r);
    }
    if let Some(r) = &report.cleanup {
        section("cleanup");
        match r.rows_would_remove {
            Some(n) if r.dry_run => line("would remove", format!("{n} expired session(s)")),
            _ => line("removed", format!("{} expired session(s) in {} batch(es)", r.rows_removed, r.batches)),
        }
        if r.errors > 0 {
            line("failed batches", r.errors);
        }
        if let dbwarden_sessions::LockOutcome::Skipped { held_by } = &r.lock {
            line(
                "skipped",
                format!("another runner holds the lock ({})", held_by.as_deref().unwrap_or("host unknown")),
            );
        }
    }
    if let Some(r) = &report.optimize {
        section("optimize");
        print_optimize(r);
    }
    if let Some(r) = &report.integrity {
        section("integrity check");
        print_integrity(r);
    }
    if let Some(s) = &report.snapshot {
        section("snapshot");
        line("recorded", format!("{} rows ({} live, {} expired)", s.total, s.active, s.expired));
    }
    for s in &report.skipped {
        line(&format!("skipped {}", s.step), &s.reason);
    }
    line("result", if report.ok { "ok" } else { "problems found" });
}
