//! Command-line definition and dispatch. Each command lives in its own
//! module under `cli/`; errors come back as `anyhow` chains and are printed
//! once, here, as `dbwarden: …`.

mod fingerprint;
mod serve;

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
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Fingerprint(args) => fingerprint::run(args),
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
