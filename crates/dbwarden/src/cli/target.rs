//! The arguments every session-table command shares (`cleanup`,
//! `analytics`, `db`, `maintain`): which database, which table layout, which
//! settings file; and opening them into a verified [`Target`].
//!
//! The flags go through [`Settings`] like `serve`'s, so `--database-url`
//! beats `DBWARDEN_DATABASE_URL` beats the file, and `config show` explains
//! the same values these commands use.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use dbwarden::settings::{FlagValue, Settings, redact_url};
use dbwarden_sessions::{Preset, SchemaConfig, SessionDatabase, SessionTable};

/// `--database-url`, `--preset`, `--config` and `--set`.
#[derive(Debug, Clone, Args)]
pub(crate) struct TargetArgs {
    /// The database holding the session table (sqlite://PATH, postgres://…,
    /// mysql://…); default: the embedded SQLite file ./dbwarden.db.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// The session table's layout: dbwarden, django, flask-session, rails or
    /// tower-sessions. `[cleanup.mapping]` in the settings file overrides
    /// single columns.
    #[arg(long, value_name = "NAME")]
    preset: Option<String>,
    /// A TOML settings file (the `[cleanup]` table and its `[cleanup.mapping]`).
    #[arg(long, env = "DBWARDEN_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Any setting by key, e.g. `--set cleanup.batch_size=500` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// A database and its verified session table.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) db: SessionDatabase,
    pub(crate) table: SessionTable,
    pub(crate) settings: Settings,
}

impl TargetArgs {
    /// The effective settings, or exit code 2 after a one-line reason on stderr.
    pub(crate) fn settings(&self) -> Result<Settings, ExitCode> {
        let mut flags = Vec::new();
        if let Some(url) = &self.database_url {
            flags.push(FlagValue::new("database.url", url, "--database-url"));
        }
        if let Some(preset) = &self.preset {
            flags.push(FlagValue::new("cleanup.preset", preset, "--preset"));
        }
        for pair in &self.set {
            let Some((key, value)) = pair.split_once('=') else {
                eprintln!("dbwarden: --set {pair:?} is not KEY=VALUE");
                return Err(ExitCode::from(2));
            };
            flags.push(FlagValue::new(key.trim(), value, "--set"));
        }
        Settings::from_process_env(self.config.as_deref(), &flags).map_err(|e| {
            eprintln!("dbwarden: {e}");
            ExitCode::from(2)
        })
    }

    /// Connects and verifies the session table. With `migrate`, dbwarden's
    /// own table is created or brought up to date first (the other presets'
    /// tables belong to their frameworks and are never altered).
    pub(crate) async fn open(&self, settings: Settings, migrate: bool) -> anyhow::Result<Target> {
        let url = &settings.database_url;
        let db = SessionDatabase::connect(url)
            .await
            .with_context(|| format!("could not open the session database {}", redact_url(url)))?;
        let mapping = settings.cleanup.table_mapping(db.backend());
        if migrate && settings.cleanup.preset == Preset::Dbwarden {
            let schema = SchemaConfig::new(&mapping.table)
                .with_context(|| format!("cleanup.mapping.table `{}` cannot be dbwarden's table", mapping.table))?;
            dbwarden_sessions::migrate(&db, &schema).await.context("could not migrate the session table")?;
        }
        let table = SessionTable::verify(&db, mapping).await?;
        Ok(Target { db, table, settings })
    }
}
