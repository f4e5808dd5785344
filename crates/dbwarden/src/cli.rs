//! Command-line definition and dispatch. Each command lives in its own
//! module under `cli/`; errors come back as `anyhow` chains and are printed
//! once, here, as `dbwarden: …`.

mod alerts;
mod analytics;
mod cleanup;
mod client;
mod config;
mod db;
mod demo;
mod fingerprint;
mod maintain;
mod metrics;
mod periodic_logging;
mod serve;
mod status;
mod summary;
mod target;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// dbwarden watches how web applications use their databases and keeps them healthy.
#[derive(Debug, Parser)]
#[command(name = "dbwarden", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Watch a database: probe it, keep its metrics and alerts, and log a
    /// periodic performance summary. Defaults to the embedded SQLite file
    /// ./dbwarden.db, created on first start.
    Serve(serve::ServeArgs),
    /// Print the normalized fingerprint of SQL statements (no literal values),
    /// with its id, kind and main table.
    Fingerprint(fingerprint::FingerprintArgs),
    /// Show the effective settings and where each came from.
    Config(config::ConfigArgs),
    /// A running server's health verdict and key figures (exit 1 on warn/fail or alerts).
    Status(status::StatusArgs),
    /// A running server's performance summary.
    Summary(summary::SummaryArgs),
    /// A running server's metrics as JSON, Prometheus text or a table.
    Metrics(metrics::MetricsArgs),
    /// A running server's active alerts and operations slower than a threshold.
    Alerts(alerts::AlertsArgs),
    /// Make a running server log its performance summary every N seconds.
    EnablePeriodicLogging(periodic_logging::PeriodicLoggingArgs),
    /// Run the server beside an instrumented example application with
    /// generated traffic, on an embedded SQLite file.
    Demo(demo::DemoArgs),
    /// Session-table analytics: health report, trends, security, overview
    /// (exit 1 when the health report or security analysis finds problems).
    Analytics(analytics::AnalyticsArgs),
    /// Session-table maintenance: analyze, create-indexes, optimize,
    /// integrity-check, stats, migrate.
    Db(db::DbArgs),
    /// The full session-table maintenance cycle, or its status at a glance.
    Maintain(maintain::MaintainArgs),
    /// Delete expired, too old or orphaned sessions in small batches, one
    /// runner at a time, once or as a daemon; or show the table's figures
    /// (exit 1 when a batch failed or another runner held the lock).
    Cleanup(cleanup::CleanupArgs),
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Fingerprint(args) => fingerprint::run(args),
        Command::Config(args) => config::run(args),
        Command::Status(args) => status::run(args),
        Command::Summary(args) => summary::run(args),
        Command::Metrics(args) => metrics::run(args),
        Command::Alerts(args) => alerts::run(args),
        Command::EnablePeriodicLogging(args) => periodic_logging::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Analytics(args) => analytics::run(args),
        Command::Db(args) => db::run(args),
        Command::Maintain(args) => maintain::run(args),
        Command::Cleanup(args) => cleanup::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dbwarden: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sends `tracing` output to stderr, filtered by `RUST_LOG` (default `info`).
pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
