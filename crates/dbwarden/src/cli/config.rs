//! The settings flags shared by `serve`, `demo` and `config show`, and
//! `dbwarden config show [--json]`: the effective settings and where each
//! value came from, secrets masked.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::client::outln;
use dbwarden::settings::{FlagValue, Settings};

/// Where settings come from on the command line. Values are checked by
/// [`Settings`], so an error names the flag.
#[derive(Debug, Clone, Args)]
pub(crate) struct SettingsArgs {
    /// A TOML settings file (`[server]`, `[database]`, `[monitor]`,
    /// `[resources]`, `[history]`, `[thresholds]`, `[cleanup]` tables).
    #[arg(long, env = "DBWARDEN_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The database to watch (sqlite://PATH, postgres://…, mysql://…).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Where the dashboard, API and health endpoints listen (loopback by default).
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// The monitor's name (the pool name in metrics and logs).
    #[arg(long)]
    name: Option<String>,
    /// Seconds between two probes of the database (and two pool samples).
    #[arg(long, value_name = "SECONDS")]
    probe_interval: Option<String>,
    /// Seconds between two evaluations of rates and alert rules.
    #[arg(long, value_name = "SECONDS")]
    tick_interval: Option<String>,
    /// Seconds between two performance summaries in the log; 0 turns them off.
    #[arg(long, value_name = "SECONDS")]
    summary_interval: Option<String>,
    /// Seconds between two trend points (stored in the database).
    #[arg(long, value_name = "SECONDS")]
    history_interval: Option<String>,
    /// Serve `/metrics` without the admin token (for a Prometheus scraper).
    #[arg(long)]
    metrics_public: bool,
    /// Any setting by key, e.g. `--set thresholds.slow_query=0.5` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl SettingsArgs {
    fn flags(&self) -> Result<Vec<FlagValue>, String> {
        let mut flags = Vec::new();
        let mut push = |key: &str, value: &Option<String>, flag: &str| {
            if let Some(v) = value {
                flags.push(FlagValue::new(key, v, flag));
            }
        };
        push("database.url", &self.database_url, "--database-url");
        push("server.bind", &self.bind, "--bind");
        push("monitor.name", &self.name, "--name");
        push("monitor.probe_interval", &self.probe_interval, "--probe-interval");
        push("monitor.tick_interval", &self.tick_interval, "--tick-interval");
        push("monitor.summary_interval", &self.summary_interval, "--summary-interval");
        push("history.interval", &self.history_interval, "--history-interval");
        if self.metrics_public {
            flags.push(FlagValue::new("server.metrics_public", "true", "--metrics-public"));
        }
        for pair in &self.set {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(format!("--set {pair:?} is not KEY=VALUE"));
            };
            flags.push(FlagValue::new(key.trim(), value, "--set"));
        }
        Ok(flags)
    }

    /// The effective settings, or the exit code 2 after a one-line reason
    /// on stderr.
    pub(crate) fn load(&self) -> Result<Settings, ExitCode> {
        self.load_with(&[])
    }

    /// As [`load`](Self::load), with `first` given before the command
    /// line's flags (so the user's own flags win over them).
    pub(crate) fn load_with(&self, first: &[FlagValue]) -> Result<Settings, ExitCode> {
        let result = self.flags().and_then(|flags| {
            let all: Vec<FlagValue> = first.iter().cloned().chain(flags).collect();
            Settings::from_process_env(self.config.as_deref(), &all).map_err(|e| e.to_string())
        });
        result.map_err(|reason| {
            eprintln!("dbwarden: {reason}");
            ExitCode::from(2)
        })
    }
}

/// `dbwarden config …`.
#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective settings and where each value came from
    /// (default, file:PATH, env:NAME, flag:--NAME); secrets are masked.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
struct ShowArgs {
    #[command(flatten)]
    settings: SettingsArgs,
    /// Print JSON: `{"settings": [{"key", "value", "source", "env", "help"}]}`.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let ConfigCommand::Show(show) = args.command;
    let settings = match show.settings.load() {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    if show.json {
        outln!("{}", serde_json::to_string_pretty(&serde_json::json!({ "settings": settings.effective() }))?);
        return Ok(ExitCode::SUCCESS);
    }
    let width = settings.effective().iter().map(|e| e.key.len()).max().unwrap_or(0);
    let value_width = settings.effective().iter().map(|e| e.value.len()).max().unwrap_or(0).min(40);
    for e in settings.effective() {
        outln!("{:width$}  {:value_width$}  {}", e.key, e.value, e.source);
    }
    Ok(ExitCode::SUCCESS)
}
