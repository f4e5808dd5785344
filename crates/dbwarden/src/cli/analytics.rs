//! `dbwarden analytics --health-report | --trends DAYS | --security |
//! --overview`: the session table's analytics as aligned text or one JSON
//! object, optionally also written to a file with `--export`.
//!
//! Exit 1 when the health report or the security analysis finds problems
//! (warn or critical), otherwise as the other session-table commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args};
use dbwarden_sessions::analytics::{
    self, Finding, HealthOptions, HealthReport, HealthStatus, Overview, SecurityOptions, SecurityReport, Trends,
    Unavailable,
};
use serde::Serialize;

use super::db::{EXIT_PROBLEMS, bytes, database_failure, line, now, open, print_json, runtime, when};
use super::target::TargetArgs;
use crate::cli::client::outln;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("report").required(true).args(["health_report", "trends", "security", "overview"])))]
pub(crate) struct AnalyticsArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Findings with recommendations: missing expiry index, expired backlog,
    /// growth, size, cleanup runs (exit 1 on warn or critical).
    #[arg(long)]
    health_report: bool,
    /// Daily counts and growth from the snapshots of the last DAYS days.
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=3660))]
    trends: Option<u32>,
    /// Users with many live sessions or clients (exit 1 when any is found).
    #[arg(long)]
    security: bool,
    /// Counts, age and idle distributions, sessions per user, creations per hour and day.
    #[arg(long)]
    overview: bool,
    /// Users listed in the overview.
    #[arg(long, default_value_t = 10, value_name = "N")]
    top: usize,
    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    export: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: AnalyticsArgs) -> anyhow::Result<ExitCode> {
    let settings = match args.target.settings() {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    super::init_logging();
    runtime()?.block_on(async {
        let cleanup_interval = settings.cleanup.interval;
        let target = match open(&args.target, settings, false).await {
            Ok(t) => t,
            Err(code) => return Ok(code),
        };
        let (db, table, now) = (&target.db, &target.table, now());
        let code = if args.health_report {
            let options = HealthOptions { cleanup_interval, ..HealthOptions::default() };
            match analytics::health_report(db, table, &options, now).await {
                Ok(report) => emit(&args, &report, print_health, report.status != HealthStatus::Ok),
                Err(e) => database_failure(e),
            }
        } else if let Some(days) = args.trends {
            match analytics::trends(db, table, days, now).await {
                Ok(report) => emit(&args, &report, print_trends, false),
                Err(e) => database_failure(e),
            }
        } else if args.security {
            match analytics::security(db, table, &[], &SecurityOptions::default(), now).await {
                Ok(mut report) => {
                    // Unknown-id loads are counted by a running store, not kept in the database.
                    report.unavailable.push(Unavailable {
                        part: "unknown_id_bursts",
                        reason: "counted by the application's running session store (unknown_id_history()), \
                                 not kept in the database"
                            .to_owned(),
                    });
                    emit(&args, &report, print_security, report.status != HealthStatus::Ok)
                }
                Err(e) => database_failure(e),
            }
        } else {
            match analytics::overview(db, table, now, args.top).await {
                Ok(report) => emit(&args, &report, print_overview, false),
                Err(e) => database_failure(e),
            }
        };
        target.db.close().await;
        Ok(code)
    })
}

/// Prints and exports `report`; exit 1 when `problems`.
fn emit<T: Serialize>(args: &AnalyticsArgs, report: &T, print: fn(&T), problems: bool) -> ExitCode {
    if let Some(path) = &args.export {
        let written = serde_json::to_vec_pretty(report)
            .map_err(|e| e.to_string())
            .and_then(|json| std::fs::write(path, json).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("dbwarden: could not write the report to {}: {e}", path.display());
            return ExitCode::from(super::db::EXIT_USAGE);
        }
    }
    if args.json {
        print_json(report);
    } else {
        print(report);
    }
    if problems { ExitCode::from(EXIT_PROBLEMS) } else { ExitCode::SUCCESS }
}

pub(crate) fn print_findings(findings: &[Finding], unavailable: &[Unavailable]) {
    if findings.is_empty() {
        line("findings", "none");
    }
    for f in findings {
        let severity = match f.severity {
            analytics::Severity::Info => "info",
            analytics::Severity::Warn => "WARN",
            analytics::Severity::Critical => "CRITICAL",
        };
        line(&format!("[{severity}] {}", f.code), &f.message);
        line("", format!("-> {}", f.recommendation));
    }
    for missing in unavailable {
        line("not checked", format!("{}: {}", missing.part, missing.reason));
    }
}

pub(crate) fn print_health(r: &HealthReport) {
    line("table", format!("{} ({})", r.table, r.backend));
    line("status", r.status.as_str());
    line(
        "sessions",
        format!(
            "{} ({} live, {} expired, {:.1} %)",
            r.counts.total,
            r.counts.active,
            r.counts.expired,
            r.counts.expired_fraction * 100.0
        ),
    );
    line("size", bytes(r.table_bytes));
    line("last cleanup", when(r.last_cleanup_ms));
    print_findings(&r.findings, &r.unavailable);
}

fn print_trends(t: &Trends) {
    line("table", &t.table);
    line("window", format!("{} day(s)", t.days));
    outln!("{:<12}{:>12}{:>12}{:>12}{:>14}", "day", "total", "active", "expired", "size");
    for p in &t.points {
        outln!("{:<12}{:>12}{:>12}{:>12}{:>14}", p.day, p.total, p.active, p.expired, bytes(p.table_bytes));
    }
    match &t.growth {
        Some(g) => {
            line(
                "growth per day",
                format!(
                    "{:+.1} rows ({:+.1} live, {:+.1} expired)",
                    g.total_per_day, g.active_per_day, g.expired_per_day
                ),
            );
            if let Some(b) = g.bytes_per_day {
                line("size per day", format!("{:+.1} KiB", b / 1024.0));
            }
        }
        None => line("growth per day", "needs two days with a snapshot (dbwarden maintain --full takes one)"),
    }
}

fn print_security(r: &SecurityReport) {
    line("table", &r.table);
    line("status", r.status.as_str());
    if let Some(users) = &r.users_with_many_sessions {
        for u in users {
            line("many sessions", format!("{}: {} live", u.user_id, u.sessions));
        }
    }
    if let Some(users) = &r.users_with_many_clients {
        for u in users {
            line(
                "many clients",
                format!(
                    "{}: {} IPs, {} agents over {} sessions",
                    u.user_id, u.distinct_ips, u.distinct_agents, u.sessions
                ),
            );
        }
    }
    print_findings(&r.findings, &r.unavailable);
}

fn print_overview(o: &Overview) {
    line("table", format!("{} ({})", o.table, o.backend));
    line(
        "sessions",
        format!("{} ({} live, {} expired, {:.1} %)", o.total, o.active, o.expired, o.expired_fraction * 100.0),
    );
    let buckets = |label: &str, list: &Option<Vec<analytics::Bucket>>| {
        if let Some(list) = list {
            let text: Vec<String> = list.iter().map(|b| format!("{} {}", b.label, b.count)).collect();
            line(label, text.join("  "));
        }
    };
    buckets("age (live)", &o.age_distribution);
    buckets("idle (live)", &o.idle_distribution);
    if let Some(users) = &o.users {
        line(
            "users",
            format!("{} with sessions, {} anonymous sessions", users.users_with_sessions, users.anonymous_sessions),
        );
        for (i, u) in users.top.iter().enumerate() {
            line(if i == 0 { "top users" } else { "" }, format!("{} ({})", u.user_id, u.sessions));
        }
    }
    if let Some(hourly) = &o.created_per_hour {
        let recent: Vec<String> = hourly.iter().rev().take(12).rev().map(|p| p.count.to_string()).collect();
        let total: i64 = hourly.iter().map(|p| p.count).sum();
        line("created, 48 h", format!("{total} (last 12 h, oldest first: {})", recent.join(" ")));
    }
    if let Some(daily) = &o.created_per_day {
        let recent: Vec<String> = daily.iter().rev().take(7).rev().map(|p| p.count.to_string()).collect();
        let total: i64 = daily.iter().map(|p| p.count).sum();
        line("created, 30 d", format!("{total} (last 7 d, oldest first: {})", recent.join(" ")));
    }
    for missing in &o.unavailable {
        line("not available", format!("{}: {}", missing.part, missing.reason));
    }
}
