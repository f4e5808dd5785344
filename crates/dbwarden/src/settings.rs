//! The settings of `dbwarden serve` and `dbwarden demo`: one typed
//! [`Settings`] merged from defaults, a TOML file, the environment and
//! command-line flags, in that order (later wins), keeping where every value
//! came from ([`Source`]) so `dbwarden config show` can say it.
//!
//! Every setting has a dotted key (`server.bind`, `thresholds.slow_query`),
//! which is its place in the TOML file (`[server]` table, `bind` key), an
//! environment variable (`DBWARDEN_BIND`) and, for the common ones, a flag.
//! The names the seeds' Python services used (`SESSION_CLEANUP_INTERVAL`,
//! `RESPONSIVENESS_MEMORY_WARNING_THRESHOLD`, …) are accepted as aliases of
//! the `DBWARDEN_` names, which win when both are set.
//!
//! Durations are seconds (fractions allowed), ratios are 0–1. A value that
//! does not parse or is out of range is refused with a one-line
//! [`SettingsError`] naming the key and where the value came from; an
//! unknown key in the file is refused by name (a typo must not silently
//! leave a default in force).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dbwarden_core::Thresholds;
use dbwarden_sessions::table::{check_column_name, check_table_name};
use dbwarden_sessions::{Backend, CleanupConfig, ExpiryRule, OrphanRule, Preset, TableMapping, TimeUnit};
use serde_json::{Map, Value};

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The TOML file given with `--config` (or `DBWARDEN_CONFIG`).
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
    /// A command-line flag, as typed (e.g. `--bind`).
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "file:{}", path.display()),
            Source::Env(name) => write!(f, "env:{name}"),
            Source::Flag(flag) => write!(f, "flag:{flag}"),
        }
    }
}

/// A refused setting or configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A value that does not parse or is out of range.
    #[error("{key} = {value:?} (from {origin}) is invalid: {problem}")]
    Invalid {
        /// The setting's key.
        key: String,
        /// The refused text (masked for secrets).
        value: String,
        /// Where it came from.
        origin: Source,
        /// What is wrong with it.
        problem: String,
    },
    /// A key the file has that no setting answers to.
    #[error("unknown setting `{key}` in {file}")]
    UnknownKey {
        /// The dotted key as written.
        key: String,
        /// The file.
        file: String,
    },
    /// A key given to `--set` that no setting answers to.
    #[error("unknown setting `{key}` given to {flag}")]
    UnknownFlagKey {
        /// The key.
        key: String,
        /// The flag.
        flag: String,
    },
    /// The file cannot be read or is not TOML.
    #[error("cannot use the configuration file {file}: {problem}")]
    File {
        /// The file.
        file: String,
        /// Why.
        problem: String,
    },
    /// Values that are each valid but do not fit together.
    #[error("{0}")]
    Inconsistent(String),
}

/// What a setting's text must be.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Addr,
    Name,
    Secret,
    Url,
    Bool,
    /// Seconds in `min..=max`; `zero_off` also allows 0 (meaning off).
    Seconds {
        min: f64,
        max: f64,
        zero_off: bool,
    },
    Ratio,
    Count {
        min: u64,
        max: u64,
    },
    Number {
        min: f64,
        max: f64,
    },
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// A table name, optionally qualified once (`schema.table`).
    Table,
    /// A column name.
    Column,
}

/// One setting: its key, environment names (primary first), kind, default
/// and a line of help.
#[derive(Debug, Clone)]
struct Spec {
    key: String,
    env: Vec<String>,
    kind: Kind,
    default: Option<String>,
    help: String,
}

fn spec(key: &str, env: &[&str], kind: Kind, default: Option<&str>, help: &str) -> Spec {
    Spec {
        key: key.to_owned(),
        env: env.iter().map(|s| (*s).to_owned()).collect(),
        kind,
        default: default.map(str::to_owned),
        help: help.to_owned(),
    }
}

const PRESETS: &[&str] = &["dbwarden", "django", "flask-session", "rails", "tower-sessions"];
const TIME_UNITS: &[&str] = &["epoch-millis", "epoch-seconds", "datetime"];

const SECS: Kind = Kind::Seconds { min: 0.05, max: 86_400.0, zero_off: false };

/// The seeds' `RESPONSIVENESS_*` names of threshold fields.
const THRESHOLD_ALIASES: &[(&str, &str)] = &[
    ("memory_warning", "RESPONSIVENESS_MEMORY_WARNING_THRESHOLD"),
    ("memory_critical", "RESPONSIVENESS_MEMORY_CRITICAL_THRESHOLD"),
    ("cpu_warning", "RESPONSIVENESS_CPU_WARNING_THRESHOLD"),
    ("cpu_critical", "RESPONSIVENESS_CPU_CRITICAL_THRESHOLD"),
    ("pool_utilization_warning", "RESPONSIVENESS_DB_CONNECTION_WARNING_THRESHOLD"),
    ("pool_utilization_critical", "RESPONSIVENESS_DB_CONNECTION_CRITICAL_THRESHOLD"),
    ("slow_request", "RESPONSIVENESS_SLOW_REQUEST_THRESHOLD"),
    ("request_timeout", "RESPONSIVENESS_REQUEST_TIMEOUT_THRESHOLD"),
];

/// Every setting, in the order `config show` prints them.
fn specs() -> Vec<Spec> {
    let mut all = vec![
        spec(
            "server.bind",
            &["DBWARDEN_BIND"],
            Kind::Addr,
            Some("127.0.0.1:9750"),
            "address the dashboard and API listen on",
        ),
        spec(
            "server.admin_token",
            &["DBWARDEN_ADMIN_TOKEN"],
            Kind::Secret,
            None,
            "token admin endpoints require; generated and printed once at start when unset",
        ),
        spec(
            "server.metrics_public",
            &["DBWARDEN_METRICS_PUBLIC"],
            Kind::Bool,
            Some("false"),
            "serve /metrics without the token",
        ),
        spec(
            "server.rate_limit_per_second",
            &["DBWARDEN_RATE_LIMIT_PER_SECOND"],
            Kind::Number { min: 0.0, max: 100_000.0 },
            Some("10"),
            "admin requests per second a client may sustain; 0 turns the limit off",
        ),
        spec(
            "server.rate_limit_burst",
            &["DBWARDEN_RATE_LIMIT_BURST"],
            Kind::Count { min: 1, max: 100_000 },
            Some("60"),
            "admin requests a client may make at once",
        ),
        spec(
            "database.url",
            &["DBWARDEN_DATABASE_URL", "DATABASE_URL"],
            Kind::Url,
            Some("sqlite://dbwarden.db"),
            "database watched (sqlite://, postgres://, mysql://); the SQLite file is created on first start",
        ),
        spec(
            "database.max_connections",
            &["DBWARDEN_DATABASE_MAX_CONNECTIONS"],
            Kind::Count { min: 1, max: 100 },
            Some("2"),
            "connections dbwarden's own pool may open",
        ),
        spec(
            "monitor.name",
            &["DBWARDEN_NAME"],
            Kind::Name,
            Some("main"),
            "name of the watched pool in metrics and logs",
        ),
        spec(
            "monitor.probe_interval",
            &["DBWARDEN_PROBE_INTERVAL"],
            SECS,
            Some("5"),
            "seconds between database probes",
        ),
        spec(
            "monitor.tick_interval",
            &["DBWARDEN_TICK_INTERVAL"],
            SECS,
            Some("5"),
            "seconds between evaluations of rates and alerts",
        ),
        spec(
            "monitor.summary_interval",
            &["DBWARDEN_SUMMARY_INTERVAL"],
            Kind::Seconds { min: 1.0, max: 86_400.0, zero_off: true },
            Some("300"),
            "seconds between performance summaries in the log; 0 turns them off",
        ),
        spec(
            "resources.enabled",
            &["DBWARDEN_RESOURCES_ENABLED", "RESPONSIVENESS_MONITORING_ENABLED"],
            Kind::Bool,
            Some("true"),
            "sample host CPU, memory, process memory and disk",
        ),
        spec(
            "resources.interval",
            &["DBWARDEN_RESOURCES_INTERVAL", "RESPONSIVENESS_MONITORING_INTERVAL"],
            Kind::Seconds { min: 0.2, max: 86_400.0, zero_off: false },
            Some("30"),
            "seconds between resource samples",
        ),
        spec(
            "history.interval",
            &["DBWARDEN_HISTORY_INTERVAL"],
            Kind::Seconds { min: 0.2, max: 86_400.0, zero_off: false },
            Some("300"),
            "seconds between two trend points (kept in memory and stored in dbwarden_history)",
        ),
        spec(
            "history.retention_days",
            &["DBWARDEN_HISTORY_RETENTION_DAYS"],
            Kind::Count { min: 1, max: 3650 },
            Some("30"),
            "days of trend points kept in the database",
        ),
        spec(
            "cleanup.enabled",
            &["DBWARDEN_CLEANUP_ENABLED", "RESPONSIVENESS_CLEANUP_ENABLED"],
            Kind::Bool,
            Some("true"),
            "run the session-table cleanup on its interval",
        ),
        spec(
            "cleanup.interval",
            &["DBWARDEN_CLEANUP_INTERVAL", "SESSION_CLEANUP_INTERVAL", "RESPONSIVENESS_CLEANUP_INTERVAL"],
            Kind::Seconds { min: 1.0, max: 7.0 * 86_400.0, zero_off: false },
            Some("3600"),
            "seconds between two cleanup runs",
        ),
        spec(
            "cleanup.batch_size",
            &["DBWARDEN_CLEANUP_BATCH_SIZE", "SESSION_CLEANUP_BATCH_SIZE"],
            Kind::Count { min: 1, max: 100_000 },
            Some("100"),
            "expired sessions deleted per batch",
        ),
        spec(
            "cleanup.max_age",
            &["DBWARDEN_SESSION_MAX_AGE", "SESSION_MAX_AGE"],
            Kind::Seconds { min: 60.0, max: 3650.0 * 86_400.0, zero_off: false },
            Some("172800"),
            "seconds after which a session is old whatever its expiry (force mode)",
        ),
        spec(
            "cleanup.pause",
            &["DBWARDEN_CLEANUP_PAUSE"],
            Kind::Seconds { min: 0.001, max: 60.0, zero_off: true },
            Some("0.05"),
            "seconds to pause between two batches (with ±50 % jitter); 0 for none",
        ),
        spec(
            "cleanup.time_budget",
            &["DBWARDEN_CLEANUP_TIME_BUDGET"],
            Kind::Seconds { min: 1.0, max: 86_400.0, zero_off: true },
            Some("0"),
            "seconds one run may take before it stops and leaves the rest for the next; 0 for no limit",
        ),
        spec(
            "cleanup.preset",
            &["DBWARDEN_SESSION_PRESET"],
            Kind::Choice(PRESETS),
            Some("dbwarden"),
            "layout of the session table: dbwarden, django, flask-session, rails or tower-sessions",
        ),
        spec(
            "cleanup.mapping.table",
            &["DBWARDEN_SESSION_TABLE"],
            Kind::Table,
            None,
            "session table, overriding the preset's (schema.table allowed)",
        ),
        spec("cleanup.mapping.key", &[], Kind::Column, None, "unique key column the batches are cut by"),
        spec("cleanup.mapping.expiry_column", &[], Kind::Column, None, "column that says when a session expires"),
        spec(
            "cleanup.mapping.expiry_unit",
            &[],
            Kind::Choice(TIME_UNITS),
            None,
            "how the expiry column stores time: epoch-millis, epoch-seconds or datetime",
        ),
        spec(
            "cleanup.mapping.max_idle",
            &[],
            Kind::Seconds { min: 60.0, max: 3650.0 * 86_400.0, zero_off: false },
            None,
            "treat the expiry column as last activity: expired once older than this many seconds (Rails' trim age)",
        ),
        spec("cleanup.mapping.created_at", &[], Kind::Column, None, "column holding the creation time"),
        spec("cleanup.mapping.last_seen_at", &[], Kind::Column, None, "column holding the last activity"),
        spec("cleanup.mapping.user_id", &[], Kind::Column, None, "column holding the owning user"),
        spec("cleanup.mapping.data", &[], Kind::Column, None, "column holding the session data"),
        spec(
            "cleanup.orphans.user_table",
            &["DBWARDEN_CLEANUP_USER_TABLE"],
            Kind::Table,
            None,
            "user table whose rows sessions belong to (orphan cleanup)",
        ),
        spec(
            "cleanup.orphans.user_key",
            &["DBWARDEN_CLEANUP_USER_KEY"],
            Kind::Column,
            Some("id"),
            "key column of the user table",
        ),
    ];
    let defaults = match serde_json::to_value(Thresholds::default()) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    for (field, value) in defaults {
        let key = format!("thresholds.{field}");
        let mut env = vec![format!("DBWARDEN_THRESHOLD_{}", field.to_ascii_uppercase())];
        if let Some((_, alias)) = THRESHOLD_ALIASES.iter().find(|(f, _)| *f == field) {
            env.push((*alias).to_owned());
        }
        let kind = threshold_kind(&field, &value);
        all.push(Spec { key, env, kind, default: Some(number_text(&value)), help: format!("alert threshold {field}") });
    }
    all
}

fn threshold_kind(field: &str, default: &Value) -> Kind {
    if default.is_u64() {
        Kind::Count { min: 1, max: u64::from(u32::MAX) * 1000 }
    } else if field.ends_with("_warning") || field.ends_with("_critical") {
        Kind::Ratio
    } else if field == "latency_degradation_ratio" {
        Kind::Number { min: 1.0, max: 1000.0 }
    } else {
        Kind::Seconds { min: 0.001, max: 86_400.0, zero_off: false }
    }
}

fn number_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A parsed value.
#[derive(Debug, Clone, PartialEq)]
enum Parsed {
    Text(String),
    Bool(bool),
    Number(f64),
    Count(u64),
    Addr(SocketAddr),
}

fn parse(kind: Kind, text: &str) -> Result<Parsed, String> {
    let text = text.trim();
    let number = |t: &str| -> Result<f64, String> {
        t.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| "expected a number".to_owned())
    };
    match kind {
        Kind::Addr => text.parse().map(Parsed::Addr).map_err(|_| "expected an address such as 127.0.0.1:9750".into()),
        Kind::Secret => Ok(Parsed::Text(text.to_owned())),
        Kind::Name => {
            if !text.is_empty()
                && text.len() <= 64
                && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                Ok(Parsed::Text(text.to_owned()))
            } else {
                Err("expected 1 to 64 characters from A-Z a-z 0-9 _ - .".into())
            }
        }
        Kind::Url => {
            if ["sqlite:", "postgres://", "postgresql://", "mysql://", "mariadb://"].iter().any(|p| text.starts_with(p))
            {
                Ok(Parsed::Text(text.to_owned()))
            } else {
                Err("expected a sqlite:, postgres:// or mysql:// URL".into())
            }
        }
        Kind::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Parsed::Bool(true)),
            "false" | "0" | "no" | "off" => Ok(Parsed::Bool(false)),
            _ => Err("expected true or false".into()),
        },
        Kind::Seconds { min, max, zero_off } => {
            let v = number(text).map_err(|_| "expected a number of seconds".to_owned())?;
            if (zero_off && v == 0.0) || (min..=max).contains(&v) {
                Ok(Parsed::Number(v))
            } else if zero_off {
                Err(format!("expected 0 (off) or {min} to {max} seconds"))
            } else {
                Err(format!("expected {min} to {max} seconds"))
            }
        }
        Kind::Ratio => {
            let v = number(text)?;
            if (0.0..=1.0).contains(&v) { Ok(Parsed::Number(v)) } else { Err("expected a ratio from 0 to 1".into()) }
        }
        Kind::Number { min, max } => {
            let v = number(text)?;
            if (min..=max).contains(&v) { Ok(Parsed::Number(v)) } else { Err(format!("expected {min} to {max}")) }
        }
        Kind::Choice(words) => match words.iter().find(|w| **w == text) {
            Some(w) => Ok(Parsed::Text((*w).to_owned())),
            None => Err(format!("expected one of {}", words.join(", "))),
        },
        Kind::Table => check_table_name(text).map(|()| Parsed::Text(text.to_owned())).map_err(|e| e.to_string()),
        Kind::Column => check_column_name(text).map(|()| Parsed::Text(text.to_owned())).map_err(|e| e.to_string()),
        Kind::Count { min, max } => {
            let v: u64 = text.parse().map_err(|_| "expected a whole number".to_owned())?;
            if (min..=max).contains(&v) { Ok(Parsed::Count(v)) } else { Err(format!("expected {min} to {max}")) }
        }
    }
}

/// One effective setting, for `config show`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EffectiveSetting {
    /// The dotted key.
    pub key: String,
    /// The value as text, secrets masked.
    pub value: String,
    /// Where it came from (`default`, `file:PATH`, `env:NAME`, `flag:--NAME`).
    pub source: String,
    /// Environment variables it is read from, primary first.
    pub env: Vec<String>,
    /// What it does.
    pub help: String,
}

/// Cleanup of the session table.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanupSettings {
    /// Whether the server runs the cleanup daemon.
    pub enabled: bool,
    /// Between two runs.
    pub interval: Duration,
    /// Rows deleted per batch.
    pub batch_size: u64,
    /// Age past which force mode removes a session.
    pub max_age: Duration,
    /// Pause between two batches.
    pub pause: Duration,
    /// How long one run may take; `None` for no limit.
    pub time_budget: Option<Duration>,
    /// The session table's layout.
    pub preset: Preset,
    /// Column-mapping overrides laid over the preset's mapping.
    pub mapping: MappingOverrides,
    /// The user table and its key, for orphan cleanup.
    pub orphans: Option<(String, String)>,
}

/// The `cleanup.mapping.*` settings: each one set replaces that part of
/// the preset's mapping.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MappingOverrides {
    /// The table.
    pub table: Option<String>,
    /// The key column.
    pub key: Option<String>,
    /// The expiry (or, with `max_idle`, last-activity) column.
    pub expiry_column: Option<String>,
    /// How that column stores time.
    pub expiry_unit: Option<TimeUnit>,
    /// Turns the expiry rule into "idle for longer than this".
    pub max_idle: Option<Duration>,
    /// The creation-time column.
    pub created_at: Option<String>,
    /// The last-activity column.
    pub last_seen_at: Option<String>,
    /// The user column.
    pub user_id: Option<String>,
    /// The data column.
    pub data: Option<String>,
}

impl CleanupSettings {
    /// How a cleanup run works under these settings (skipping when another
    /// runner holds the lock; callers change `lock` and `dry_run` as their
    /// command line says).
    pub fn cleanup_config(&self) -> CleanupConfig {
        CleanupConfig {
            batch_size: self.batch_size,
            pause: self.pause,
            time_budget: self.time_budget,
            orphans: self.orphans.clone().map(|(user_table, user_key)| OrphanRule { user_table, user_key }),
            ..CleanupConfig::default()
        }
    }

    /// The session table's mapping on `backend`: the preset's, with every
    /// `cleanup.mapping.*` setting laid over it.
    pub fn table_mapping(&self, backend: Backend) -> TableMapping {
        let o = &self.mapping;
        let mut mapping = self.preset.mapping(backend);
        let set = |slot: &mut Option<String>, value: &Option<String>| {
            if value.is_some() {
                slot.clone_from(value);
            }
        };
        if let Some(table) = &o.table {
            mapping.table.clone_from(table);
        }
        if let Some(key) = &o.key {
            mapping.key.clone_from(key);
        }
        set(&mut mapping.created_at, &o.created_at);
        set(&mut mapping.last_seen_at, &o.last_seen_at);
        set(&mut mapping.user_id, &o.user_id);
        set(&mut mapping.data, &o.data);
        let column = o.expiry_column.clone().unwrap_or_else(|| mapping.expiry.column().to_owned());
        let unit = o.expiry_unit.unwrap_or_else(|| mapping.expiry.unit());
        let idle = o.max_idle.map(|d| d.as_secs()).or(match &mapping.expiry {
            ExpiryRule::IdleFor { max_idle_seconds, .. } => Some(*max_idle_seconds),
            ExpiryRule::ExpiresAt { .. } => None,
        });
        mapping.expiry = match idle {
            Some(max_idle_seconds) => ExpiryRule::IdleFor { column, unit, max_idle_seconds },
            None => ExpiryRule::ExpiresAt { column, unit },
        };
        mapping
    }
}

/// Every setting of the server, typed, with the provenance of each value.
#[derive(Clone)]
pub struct Settings {
    /// Where the dashboard and API listen.
    pub bind: SocketAddr,
    /// The admin token; `None` means generate one at start.
    pub admin_token: Option<String>,
    /// Whether `/metrics` answers without the token.
    pub metrics_public: bool,
    /// Admin requests per second a client may sustain; `None`: no limit.
    pub rate_limit_per_second: Option<f64>,
    /// Admin requests a client may make at once.
    pub rate_limit_burst: u32,
    /// The watched database.
    pub database_url: String,
    /// Connections of dbwarden's own pool.
    pub max_connections: u32,
    /// The monitor's name.
    pub name: String,
    /// Between two database probes.
    pub probe_interval: Duration,
    /// Between two monitor ticks.
    pub tick_interval: Duration,
    /// Between two periodic summaries in the log; `None`: off.
    pub summary_interval: Option<Duration>,
    /// Between two resource samples; `None`: resource sampling off.
    pub resource_interval: Option<Duration>,
    /// Between two trend points.
    pub history_interval: Duration,
    /// Days of trend points kept in the database.
    pub history_retention_days: u32,
    /// Alert thresholds.
    pub thresholds: Thresholds,
    /// Session-table cleanup.
    pub cleanup: CleanupSettings,
    effective: Vec<EffectiveSetting>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("bind", &self.bind)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<redacted>"))
            .field("database_url", &redact_url(&self.database_url))
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A value given on the command line: the key, its text, and the flag as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagValue {
    /// The dotted key.
    pub key: String,
    /// The value as text.
    pub value: String,
    /// The flag (`--bind`, `--set`).
    pub flag: String,
}

impl FlagValue {
    /// A flag's value for `key`.
    pub fn new(key: &str, value: impl ToString, flag: &str) -> Self {
        FlagValue { key: key.to_owned(), value: value.to_string(), flag: flag.to_owned() }
    }
}

/// Replaces a database URL's password with `***` (in the user info and in a
/// `password=` parameter).
pub use dbwarden_sessions::db::redact_url;

fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(inner) => flatten(&key, inner, out),
            other => out.push((key, other.clone())),
        }
    }
}

fn toml_text(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Settings {
    /// Merges defaults < `file` < environment (read through `env`) <
    /// `flags`. Every value is checked; the first bad one is refused by key
    /// and source.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        flags: &[FlagValue],
    ) -> Result<Settings, SettingsError> {
        let specs = specs();
        let mut values: BTreeMap<String, (Parsed, Source, String)> = BTreeMap::new();
        let mut set = |spec: &Spec, text: &str, source: Source| -> Result<(), SettingsError> {
            let parsed = parse(spec.kind, text).map_err(|problem| SettingsError::Invalid {
                key: spec.key.clone(),
                value: match spec.kind {
                    Kind::Secret => "***".into(),
                    Kind::Url => redact_url(text),
                    _ => text.to_owned(),
                },
                origin: source.clone(),
                problem,
            })?;
            values.insert(spec.key.clone(), (parsed, source, text.to_owned()));
            Ok(())
        };
        for spec in &specs {
            if let Some(default) = &spec.default {
                set(spec, default, Source::Default)?;
            }
        }
        if let Some(path) = file {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| SettingsError::File { file: shown.clone(), problem: e.to_string() })?;
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| SettingsError::File {
                file: shown.clone(),
                problem: e.message().to_owned(),
            })?;
            let mut flat = Vec::new();
            flatten("", &table, &mut flat);
            for (key, value) in flat {
                let Some(spec) = specs.iter().find(|s| s.key == key) else {
                    return Err(SettingsError::UnknownKey { key, file: shown });
                };
                let source = Source::File(path.to_path_buf());
                let Some(text) = toml_text(&value) else {
                    return Err(SettingsError::Invalid {
                        key,
                        value: value.to_string(),
                        origin: source,
                        problem: "expected a string, number or boolean".into(),
                    });
                };
                set(spec, &text, source)?;
            }
        }
        for spec in &specs {
            // The first name set wins: DBWARDEN_ names before the seeds' aliases.
            if let Some((name, text)) = spec.env.iter().find_map(|name| env(name).map(|v| (name, v))) {
                set(spec, &text, Source::Env(name.clone()))?;
            }
        }
        for flag in flags {
            let Some(spec) = specs.iter().find(|s| s.key == flag.key) else {
                return Err(SettingsError::UnknownFlagKey { key: flag.key.clone(), flag: flag.flag.clone() });
            };
            set(spec, &flag.value, Source::Flag(flag.flag.clone()))?;
        }
        Self::build(&specs, values)
    }

    /// Loads with the process environment.
    pub fn from_process_env(file: Option<&Path>, flags: &[FlagValue]) -> Result<Settings, SettingsError> {
        Self::load(file, |name| std::env::var(name).ok().filter(|v| !v.is_empty()), flags)
    }

    fn build(specs: &[Spec], values: BTreeMap<String, (Parsed, Source, String)>) -> Result<Settings, SettingsError> {
        let get = |key: &str| values.get(key).map(|(p, _, _)| p.clone());
        let num = |key: &str| match get(key) {
            Some(Parsed::Number(v)) => v,
            Some(Parsed::Count(v)) => v as f64,
            _ => 0.0,
        };
        let count = |key: &str| match get(key) {
            Some(Parsed::Count(v)) => v,
            _ => 0,
        };
        let flag = |key: &str| matches!(get(key), Some(Parsed::Bool(true)));
        let text = |key: &str| match get(key) {
            Some(Parsed::Text(t)) => Some(t),
            _ => None,
        };
        let secs = |key: &str| Duration::from_secs_f64(num(key));
        let bind = match get("server.bind") {
            Some(Parsed::Addr(a)) => a,
            _ => SocketAddr::from(([127, 0, 0, 1], 9750)),
        };
        // Thresholds: start from the defaults, lay every thresholds.* value on
        // top, and let the core type check the whole (order of warning and
        // critical levels included).
        let mut map = match serde_json::to_value(Thresholds::default()) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        for (key, (parsed, _, _)) in &values {
            if let Some(field) = key.strip_prefix("thresholds.") {
                let v = match parsed {
                    Parsed::Count(c) => Value::from(*c),
                    Parsed::Number(n) => Value::from(*n),
                    _ => continue,
                };
                map.insert(field.to_owned(), v);
            }
        }
        let thresholds: Thresholds = serde_json::from_value(Value::Object(map))
            .map_err(|e| SettingsError::Inconsistent(format!("thresholds: {e}")))?;
        if let Err(e) = thresholds.validate() {
            let message = e.to_string();
            // Name where the offending value came from.
            let blamed = values
                .iter()
                .filter(|(k, (_, s, _))| k.starts_with("thresholds.") && *s != Source::Default)
                .find(|(k, _)| k.strip_prefix("thresholds.").is_some_and(|f| message.contains(f)));
            return Err(match blamed {
                Some((key, (_, source, raw))) => SettingsError::Invalid {
                    key: key.clone(),
                    value: raw.clone(),
                    origin: source.clone(),
                    problem: message,
                },
                None => SettingsError::Inconsistent(format!("thresholds: {message}")),
            });
        }
        let per_second = num("server.rate_limit_per_second");
        let summary = num("monitor.summary_interval");
        let effective = specs
            .iter()
            .map(|spec| {
                let (value, source) = match values.get(&spec.key) {
                    Some((parsed, source, raw)) => (shown_value(spec.kind, parsed, raw), source.to_string()),
                    None => (
                        if spec.kind == Kind::Secret {
                            "(unset: generated at start)".to_owned()
                        } else {
                            "(unset)".to_owned()
                        },
                        Source::Default.to_string(),
                    ),
                };
                EffectiveSetting {
                    key: spec.key.clone(),
                    value,
                    source,
                    env: spec.env.clone(),
                    help: spec.help.clone(),
                }
            })
            .collect();
        Ok(Settings {
            bind,
            admin_token: text("server.admin_token").filter(|t| !t.is_empty()),
            metrics_public: flag("server.metrics_public"),
            rate_limit_per_second: (per_second > 0.0).then_some(per_second),
            rate_limit_burst: u32::try_from(count("server.rate_limit_burst")).unwrap_or(u32::MAX),
            database_url: text("database.url").unwrap_or_else(|| "sqlite://dbwarden.db".into()),
            max_connections: u32::try_from(count("database.max_connections")).unwrap_or(2),
            name: text("monitor.name").unwrap_or_else(|| "main".into()),
            probe_interval: secs("monitor.probe_interval"),
            tick_interval: secs("monitor.tick_interval"),
            summary_interval: (summary > 0.0).then(|| Duration::from_secs_f64(summary)),
            resource_interval: flag("resources.enabled").then(|| secs("resources.interval")),
            history_interval: secs("history.interval"),
            history_retention_days: u32::try_from(count("history.retention_days")).unwrap_or(30),
            thresholds,
            cleanup: CleanupSettings {
                enabled: flag("cleanup.enabled"),
                interval: secs("cleanup.interval"),
                batch_size: count("cleanup.batch_size"),
                max_age: secs("cleanup.max_age"),
                pause: secs("cleanup.pause"),
                time_budget: (num("cleanup.time_budget") > 0.0).then(|| secs("cleanup.time_budget")),
                preset: text("cleanup.preset").and_then(|p| p.parse().ok()).unwrap_or(Preset::Dbwarden),
                mapping: MappingOverrides {
                    table: text("cleanup.mapping.table"),
                    key: text("cleanup.mapping.key"),
                    expiry_column: text("cleanup.mapping.expiry_column"),
                    expiry_unit: text("cleanup.mapping.expiry_unit").and_then(|u| match u.as_str() {
                        "epoch-millis" => Some(TimeUnit::EpochMillis),
                        "epoch-seconds" => Some(TimeUnit::EpochSeconds),
                        "datetime" => Some(TimeUnit::DateTime),
                        _ => None,
                    }),
                    max_idle: values.contains_key("cleanup.mapping.max_idle").then(|| secs("cleanup.mapping.max_idle")),
                    created_at: text("cleanup.mapping.created_at"),
                    last_seen_at: text("cleanup.mapping.last_seen_at"),
                    user_id: text("cleanup.mapping.user_id"),
                    data: text("cleanup.mapping.data"),
                },
                orphans: text("cleanup.orphans.user_table")
                    .map(|t| (t, text("cleanup.orphans.user_key").unwrap_or_else(|| "id".into()))),
            },
            effective,
        })
    }

    /// Every setting with its effective value (secrets masked) and source,
    /// in a stable order.
    pub fn effective(&self) -> &[EffectiveSetting] {
        &self.effective
    }

    /// Where `key`'s value came from.
    pub fn source_of(&self, key: &str) -> Option<&str> {
        self.effective.iter().find(|e| e.key == key).map(|e| e.source.as_str())
    }
}

fn shown_value(kind: Kind, parsed: &Parsed, raw: &str) -> String {
    match (kind, parsed) {
        (Kind::Secret, Parsed::Text(t)) if t.is_empty() => "(unset)".into(),
        (Kind::Secret, _) => "********".into(),
        (Kind::Url, _) => redact_url(raw.trim()),
        (_, Parsed::Text(t)) => t.clone(),
        (_, Parsed::Bool(b)) => b.to_string(),
        (_, Parsed::Number(n)) => n.to_string(),
        (_, Parsed::Count(c)) => c.to_string(),
        (_, Parsed::Addr(a)) => a.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = Settings::load(None, env_of(&[]), &[]).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:9750");
        assert_eq!(s.database_url, "sqlite://dbwarden.db");
        assert_eq!(s.cleanup.interval, Duration::from_secs(3600));
        assert_eq!(s.cleanup.batch_size, 100);
        assert_eq!(s.history_interval, Duration::from_secs(300));
        assert_eq!(s.thresholds, Thresholds::default());
        assert!(s.effective().iter().all(|e| e.source == "default"));
    }

    #[test]
    fn file_then_env_then_flag_win_and_each_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dbwarden.toml");
        std::fs::write(
            &path,
            "[server]\nbind = \"127.0.0.1:1000\"\n[monitor]\nname = \"fromfile\"\n[thresholds]\nslow_query = 0.5\n",
        )
        .unwrap();
        let env = env_of(&[("DBWARDEN_BIND", "127.0.0.1:2000"), ("RESPONSIVENESS_MEMORY_WARNING_THRESHOLD", "0.7")]);
        let flags = [FlagValue::new("server.bind", "127.0.0.1:3000", "--bind")];
        let s = Settings::load(Some(&path), env, &flags).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:3000");
        assert_eq!(s.source_of("server.bind"), Some("flag:--bind"));
        assert_eq!(s.name, "fromfile");
        assert_eq!(s.source_of("monitor.name"), Some(format!("file:{}", path.display()).as_str()));
        assert_eq!(s.thresholds.slow_query, Duration::from_millis(500));
        assert_eq!(s.thresholds.memory_warning, 0.7);
        assert_eq!(s.source_of("thresholds.memory_warning"), Some("env:RESPONSIVENESS_MEMORY_WARNING_THRESHOLD"));
    }

    #[test]
    fn a_preset_gives_the_table_layout_and_mapping_settings_override_single_columns() {
        let s = Settings::load(None, env_of(&[]), &[]).unwrap();
        assert_eq!(s.cleanup.table_mapping(Backend::Postgres), Preset::Dbwarden.mapping(Backend::Postgres));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rails.toml");
        std::fs::write(
            &path,
            "[cleanup]\npreset = \"rails\"\n[cleanup.mapping]\ntable = \"app.web_sessions\"\nmax_idle = 86400\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path), env_of(&[]), &[]).unwrap();
        let mapping = s.cleanup.table_mapping(Backend::MySql);
        assert_eq!(mapping.table, "app.web_sessions");
        assert_eq!(mapping.key, "id");
        assert_eq!(
            mapping.expiry,
            ExpiryRule::IdleFor { column: "updated_at".into(), unit: TimeUnit::DateTime, max_idle_seconds: 86_400 }
        );
        let flags = [FlagValue::new("cleanup.preset", "drupal", "--preset")];
        let err = Settings::load(None, env_of(&[]), &flags).unwrap_err().to_string();
        assert!(err.contains("cleanup.preset") && err.contains("--preset") && err.contains("django"), "{err}");
        let flags = [FlagValue::new("database.url", "oracle://app:hunter2@db/x", "--database-url")];
        let err = Settings::load(None, env_of(&[]), &flags).unwrap_err().to_string();
        assert!(err.contains("database.url") && !err.contains("hunter2"), "a refused URL keeps its password: {err}");
        let flags = [FlagValue::new("cleanup.mapping.table", "s; DROP TABLE x", "--set")];
        let err = Settings::load(None, env_of(&[]), &flags).unwrap_err().to_string();
        assert!(err.contains("cleanup.mapping.table") && err.contains("is not a usable table name"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name_and_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[server]\nbnd = \"x\"\n").unwrap();
        let err = Settings::load(Some(&path), env_of(&[]), &[]).unwrap_err().to_string();
        assert!(err.contains("server.bnd"), "{err}");
        let err = Settings::load(None, env_of(&[("SESSION_CLEANUP_INTERVAL", "soon")]), &[]).unwrap_err().to_string();
        assert!(err.contains("cleanup.interval") && err.contains("env:SESSION_CLEANUP_INTERVAL"), "{err}");
        let err = Settings::load(None, env_of(&[("DBWARDEN_THRESHOLD_CPU_WARNING", "0.95")]), &[]).unwrap_err();
        assert!(err.to_string().contains("thresholds.cpu_warning"), "{err}");
    }

    #[test]
    fn secrets_are_masked() {
        let s = Settings::load(
            None,
            env_of(&[
                ("DBWARDEN_ADMIN_TOKEN", "0123456789abcdef0123"),
                ("DBWARDEN_DATABASE_URL", "postgres://u:pw@h/db"),
            ]),
            &[],
        )
        .unwrap();
        let shown = serde_json::to_string(s.effective()).unwrap();
        assert!(!shown.contains("0123456789abcdef0123") && !shown.contains(":pw@"), "{shown}");
        assert!(!format!("{s:?}").contains("0123456789abcdef"));
    }
}
