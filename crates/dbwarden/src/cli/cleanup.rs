//! `dbwarden cleanup --once | --daemon | --force [--max-age HOURS] |
//! --orphans | --stats`: deletes expired (or too old, or orphaned) sessions
//! from the session table in small batches, one runner at a time, or shows
//! the table's figures and its latest runs.
//!
//! Exit status: 0 when the run completed without a failed batch; 1 when a
//! batch failed, the run was interrupted, or another runner held the lock
//! (so a cron job's mail says so); 2 for a usage or configuration error
//! (bad flag, unknown preset, a table without the mapped columns); 3 when
//! the database cannot be reached. `--json` prints one JSON object (the
//! fields are listed in the README, "Session cleanup").

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args};
use dbwarden_sessions::{
    Cleaner, CleanupConfig, CleanupError, CleanupMode, CleanupProgress, CleanupReport, CleanupStats, LockOutcome,
    LockPolicy,
};

use super::db::{EXIT_DATABASE, EXIT_PROBLEMS, EXIT_USAGE, bytes, line, open, print_json, runtime, when};
use super::target::TargetArgs;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("mode").required(true).args(["once", "daemon", "force", "orphans", "stats"])))]
pub(crate) struct CleanupArgs {
    /// Delete the expired sessions once, then exit.
    #[arg(long)]
    once: bool,
    /// Delete expired sessions now and then every `cleanup.interval` seconds
    /// until SIGTERM or Ctrl-C; a failed run is logged and retried at the next interval.
    #[arg(long)]
    daemon: bool,
    /// Delete sessions created longer ago than --max-age, whatever their expiry.
    #[arg(long)]
    force: bool,
    /// With --force: the age limit in hours (default: `cleanup.max_age`, 48 hours).
    #[arg(long, value_name = "HOURS", value_parser = parse_hours)]
    max_age: Option<Duration>,
    /// Delete sessions whose user no longer exists (`cleanup.orphans.user_table` and `user_key`).
    #[arg(long)]
    orphans: bool,
    /// Show total and expired sessions, the table's size and the latest runs.
    #[arg(long)]
    stats: bool,
    /// Count what would be deleted; delete nothing.
    #[arg(long, conflicts_with_all = ["daemon", "stats"])]
    dry_run: bool,
    /// Wait up to this many seconds for another runner's lock instead of skipping at once.
    #[arg(long, value_name = "SECONDS", conflicts_with = "stats")]
    wait: Option<u64>,
    /// Print one JSON object instead of text.
    #[arg(long, conflicts_with = "daemon")]
    json: bool,
    #[command(flatten)]
    target: TargetArgs,
}

fn parse_hours(value: &str) -> Result<Duration, String> {
    let hours: f64 = value.trim().parse().map_err(|_| format!("`{value}` is not a number of hours"))?;
    if !hours.is_finite() || hours <= 0.0 || hours > 87_600.0 {
        return Err(format!("{value} hours is out of range: expected more than 0 and at most 87600"));
    }
    Ok(Duration::from_secs_f64(hours * 3600.0))
}

pub(crate) fn run(args: CleanupArgs) -> anyhow::Result<ExitCode> {
    if args.max_age.is_some() && !args.force {
        eprintln!("dbwarden: --max-age only applies to --force");
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let settings = match args.target.settings() {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    super::init_logging();
    runtime()?.block_on(async {
        let target = match open(&args.target, settings, false).await {
            Ok(t) => t,
            Err(code) => return Ok(code),
        };
        let s = &target.settings.cleanup;
        // A one-off run on a terminal shows a progress bar, which needs the
        // total counted first.
        let shows_progress = !args.daemon && !args.stats && !args.json && std::io::stderr().is_terminal();
        let config = CleanupConfig {
            lock: match args.wait {
                Some(seconds) => LockPolicy::Wait(Duration::from_secs(seconds)),
                None => LockPolicy::Skip,
            },
            dry_run: args.dry_run,
            count_first: shows_progress,
            ..s.cleanup_config()
        };
        let interval = s.interval;
        let max_age = args.max_age.unwrap_or(s.max_age);
        let cleaner = Cleaner::new(target.db.clone(), target.table, config);
        let code = if args.stats {
            match cleaner.stats().await {
                Ok(stats) => {
                    if args.json {
                        print_json(&stats);
                    } else {
                        print_stats(&stats);
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => failure(&e),
            }
        } else if args.daemon {
            cleaner.daemon(interval, None, shutdown_signal()).await;
            ExitCode::SUCCESS
        } else {
            let mode = if args.force {
                CleanupMode::Force { max_age }
            } else if args.orphans {
                CleanupMode::Orphans
            } else {
                CleanupMode::Expired
            };
            run_once(&cleaner, mode, args.json, shows_progress).await
        };
        target.db.close().await;
        Ok(code)
    })
}

async fn run_once(cleaner: &Cleaner, mode: CleanupMode, json: bool, shows_progress: bool) -> ExitCode {
    let bar = if shows_progress {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} sessions ({percent} %), eta {eta}")
        {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let progress = |p: CleanupProgress| {
        if let Some(total) = p.expected_total {
            bar.set_length(total.max(p.removed_so_far));
        }
        bar.set_position(p.removed_so_far);
    };
    let result = cleaner.run_once_until(mode, &progress, shutdown_signal()).await;
    bar.finish_and_clear();
    match result {
        Ok(report) => {
            if json {
                print_json(&report);
            } else {
                print_report(&report);
            }
            if report.is_clean() && !report.interrupted { ExitCode::SUCCESS } else { ExitCode::from(EXIT_PROBLEMS) }
        }
        Err(e) => failure(&e),
    }
}

/// Exit 2 for what the user can fix in flags or settings, 3 for the database.
fn failure(e: &CleanupError) -> ExitCode {
    eprintln!("dbwarden: {e}");
    match e {
        CleanupError::Database { .. } => ExitCode::from(EXIT_DATABASE),
        _ => ExitCode::from(EXIT_USAGE),
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn print_report(r: &CleanupReport) {
    let mode = match r.max_age_seconds {
        Some(secs) => format!("{} (older than {:.1} hours)", r.mode, secs as f64 / 3600.0),
        None => r.mode.to_owned(),
    };
    line("table", format!("{} ({})", r.table, r.backend));
    line("mode", mode);
    match &r.lock {
        LockOutcome::Skipped { held_by } => {
            line(
                "result",
                format!(
                    "skipped: another cleanup holds the lock{}",
                    held_by.as_ref().map(|h| format!(" (on {h})")).unwrap_or_default()
                ),
            );
            return;
        }
        LockOutcome::Waited { ms } => line("lock", format!("taken after waiting {ms} ms")),
        LockOutcome::Acquired => {}
    }
    match r.rows_would_remove {
        Some(n) => line("would remove", format!("{n} sessions (dry run: nothing deleted)")),
        None => line("removed", format!("{} sessions in {} batches", r.rows_removed, r.batches)),
    }
    if r.batches > 0 {
        line("slowest batch", format!("{} ms", r.longest_batch_ms));
    }
    line("took", format!("{} ms", r.finished_at_ms.saturating_sub(r.started_at_ms)));
    if r.errors > 0 {
        line("failed batches", format!("{}{}", r.errors, if r.gave_up { " (gave up)" } else { " (retried)" }));
    }
    if r.budget_exhausted {
        line("note", "the time budget ran out; the rest is left for the next run");
    }
    if r.interrupted {
        line("note", "interrupted; the rest is left for the next run");
    }
}

fn print_stats(s: &CleanupStats) {
    line("table", format!("{} ({})", s.table, s.backend));
    line("sessions", s.total);
    line("expired", s.expired);
    line("size", bytes(s.table_bytes.and_then(|b| i64::try_from(b).ok())));
    if s.last_runs.is_empty() {
        line("last runs", "none recorded");
    }
    for (i, run) in s.last_runs.iter().enumerate() {
        let state = match run.finished_at_ms {
            Some(_) if run.dry_run => format!("dry run, would remove {}", run.rows_removed),
            Some(_) => format!("removed {} in {} batches, {} errors", run.rows_removed, run.batches, run.errors),
            None => format!("unfinished (running or killed), {} removed so far", run.rows_removed),
        };
        line(
            if i == 0 { "last runs" } else { "" },
            format!("{}  {:<7} {state}  on {}", when(Some(run.started_at_ms)), run.mode, run.host),
        );
    }
}
