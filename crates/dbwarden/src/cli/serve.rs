//! `dbwarden serve`: watches one database (SQLite, PostgreSQL or
//! MySQL/MariaDB). It opens a small monitored pool of its own, probes the
//! database on an interval (a statement through the pool, recorded exactly
//! as an application's would be: checkout, session, query, errors), samples
//! the pool and the host's resources, runs the monitor's ticks (rates, leak
//! scan, alerts), logs the periodic summary, keeps the trend history in the
//! database's `dbwarden_history` table (restored at start), runs the
//! session-table cleanup daemon and snapshots ([`SessionUpkeep`]), and serves the
//! dashboard, JSON API, health endpoints and `/metrics` (127.0.0.1:9750 by
//! default, admin endpoints behind a token) until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use dbwarden::history::{HistoryConfig, HistoryStore, HistoryTask};
use dbwarden::resources::ResourceTask;
use dbwarden::settings::{Settings, redact_url};
use dbwarden::upkeep::SessionUpkeep;
use dbwarden::{Driver, DriverConfig, Monitor, MonitorConfig};
use dbwarden_http::{
    AdminConfig, AdminToken, AppState, ProbeError, RateLimitConfig, ReadinessProbe, RuntimeConfig, RuntimeConfigError,
};
use dbwarden_sqlx::{MonitoredPool, Sampler, classify};
use serde_json::{Map, Value, json};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{MySql, Postgres, Sqlite};
use tracing::Instrument;

use super::config::SettingsArgs;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) settings: SettingsArgs,
    /// Stop after this many seconds (for scripted runs); runs until signalled otherwise.
    #[arg(long, value_parser = positive_seconds, value_name = "SECONDS")]
    pub(crate) run_for: Option<f64>,
}

/// The environment variable holding the admin token.
pub(crate) const ADMIN_TOKEN_ENV: &str = "DBWARDEN_ADMIN_TOKEN";

pub(crate) fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.05..=31_536_000.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` must be a number of seconds from 0.05 to 31536000")),
    }
}

/// The watched database's monitored pool, whichever the backend.
#[derive(Debug, Clone)]
pub(crate) enum WatchedPool {
    Sqlite(MonitoredPool<Sqlite>),
    Postgres(MonitoredPool<Postgres>),
    MySql(MonitoredPool<MySql>),
}

macro_rules! each_pool {
    ($self:expr, $pool:ident => $body:expr) => {
        match $self {
            WatchedPool::Sqlite($pool) => $body,
            WatchedPool::Postgres($pool) => $body,
            WatchedPool::MySql($pool) => $body,
        }
    };
}

impl WatchedPool {
    /// Opens the pool for `url` (the SQLite file is created when missing).
    /// Every message names the URL with its password replaced.
    pub(crate) async fn open(url: &str, max_connections: u32, monitor: Monitor) -> anyhow::Result<WatchedPool> {
        let shown = redact_url(url);
        let timeout = Duration::from_secs(5);
        let opened = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| anyhow::anyhow!("`{shown}` is not a valid SQLite URL: {}", redact(&e)))?
                .create_if_missing(true);
            MonitoredPool::builder(
                SqlitePoolOptions::new().max_connections(max_connections).acquire_timeout(timeout),
                monitor,
            )
            .connect_with(options)
            .await
            .map(WatchedPool::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| anyhow::anyhow!("`{shown}` is not a valid PostgreSQL URL: {}", redact(&e)))?;
            MonitoredPool::builder(
                PgPoolOptions::new().max_connections(max_connections).acquire_timeout(timeout),
                monitor,
            )
            .connect_with(options)
            .await
            .map(WatchedPool::Postgres)
        } else if let Some(rest) = url.strip_prefix("mysql://").or_else(|| url.strip_prefix("mariadb://")) {
            let options = MySqlConnectOptions::from_str(&format!("mysql://{rest}"))
                .map_err(|e| anyhow::anyhow!("`{shown}` is not a valid MySQL URL: {}", redact(&e)))?;
            MonitoredPool::builder(
                MySqlPoolOptions::new().max_connections(max_connections).acquire_timeout(timeout),
                monitor,
            )
            .connect_with(options)
            .await
            .map(WatchedPool::MySql)
        } else {
            anyhow::bail!("`{shown}` is not a sqlite:, postgres:// or mysql:// URL");
        };
        opened.map_err(|e| anyhow::anyhow!("could not open the database `{shown}`: {}", redact(&e)))
    }

    /// The statement the probe runs: cheap, and on SQLite it reads the
    /// schema so a broken file fails here rather than in the application.
    fn probe_sql(&self) -> &'static str {
        match self {
            WatchedPool::Sqlite(_) => "SELECT count(*) FROM sqlite_master",
            _ => "SELECT 1",
        }
    }

    /// One statement through the monitored pool; the pool records the
    /// checkout, the session and the query, and classifies a failure.
    async fn probe(&self) {
        let sql = self.probe_sql();
        let result = each_pool!(self, pool => sqlx::query(sql).fetch_all(pool).await.map(drop));
        if let Err(e) = result {
            tracing::warn!(target: "dbwarden", class = %classify(&e), error = %redact(&e), "the database probe failed");
        }
    }

    fn spawn_sampler(&self, interval: Duration) -> anyhow::Result<Sampler> {
        each_pool!(self, pool => pool.spawn_sampler(interval)).context("could not start the pool sampler")
    }

    fn history(&self) -> HistoryStore {
        match self {
            WatchedPool::Sqlite(p) => HistoryStore::Sqlite(p.inner().clone()),
            WatchedPool::Postgres(p) => HistoryStore::Postgres(p.inner().clone()),
            WatchedPool::MySql(p) => HistoryStore::MySql(p.inner().clone()),
        }
    }

    /// The file whose file system's usage is reported (SQLite only).
    fn disk_path(&self) -> Option<PathBuf> {
        match self {
            WatchedPool::Sqlite(p) => Some(p.inner().connect_options().get_filename().to_path_buf()),
            _ => None,
        }
    }

    async fn close(&self) {
        each_pool!(self, pool => pool.inner().close().await)
    }
}

fn redact(e: &dyn std::fmt::Display) -> String {
    dbwarden::redact::redact_message(&e.to_string())
}

/// `/readyz`: the watched database answers `SELECT 1` (a bare checkout, so
/// probes by a load balancer do not show up as the application's queries).
#[async_trait::async_trait]
impl ReadinessProbe for WatchedPool {
    async fn check(&self) -> Result<(), ProbeError> {
        each_pool!(self, pool => sqlx::query("SELECT 1").fetch_one(pool.inner()).await.map(drop))
            .map_err(|e| ProbeError(format!("{}: {}", classify(&e), redact(&e))))
    }
}

/// The server's own settings that `PUT /api/config` may change under
/// `runtime`: `summary_interval_seconds` (0 turns the periodic summary off).
#[derive(Debug, Clone)]
pub(crate) struct ServeRuntime {
    summary_interval: Arc<Mutex<Option<Duration>>>,
}

/// The runtime key `dbwarden enable-periodic-logging` sets.
pub(crate) const SUMMARY_INTERVAL_KEY: &str = "summary_interval_seconds";

impl ServeRuntime {
    fn summary_interval(&self) -> Option<Duration> {
        *self.summary_interval.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RuntimeConfig for ServeRuntime {
    fn current(&self) -> Value {
        json!({ SUMMARY_INTERVAL_KEY: self.summary_interval().map_or(0.0, |d| d.as_secs_f64()) })
    }

    fn validate(&self, update: &Map<String, Value>) -> Result<(), RuntimeConfigError> {
        for (key, value) in update {
            if key != SUMMARY_INTERVAL_KEY {
                return Err(RuntimeConfigError { field: key.clone(), problem: "unknown setting".into() });
            }
            match value.as_f64() {
                Some(v) if v == 0.0 || (1.0..=86_400.0).contains(&v) => {}
                _ => {
                    return Err(RuntimeConfigError {
                        field: key.clone(),
                        problem: format!("{value} is not 0 (off) or 1 to 86400 seconds"),
                    });
                }
            }
        }
        Ok(())
    }

    fn apply(&self, update: &Map<String, Value>) {
        if let Some(v) = update.get(SUMMARY_INTERVAL_KEY).and_then(Value::as_f64) {
            let interval = (v > 0.0).then(|| Duration::from_secs_f64(v));
            *self.summary_interval.lock().unwrap_or_else(PoisonError::into_inner) = interval;
            tracing::info!(target: "dbwarden", seconds = v, "periodic summary interval changed");
        }
    }
}

/// The runtime `serve` and `demo` run on: two workers, so the HTTP server
/// stays responsive while a probe or a cleanup batch waits on the database.
pub(crate) fn server_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("could not start the async runtime")
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = match args.settings.load() {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    super::init_logging();
    let runtime = server_runtime()?;
    runtime.block_on(async {
        let signals = Signals::listen();
        let server = Server::prepare(settings).await?;
        server.run(signals, None, args.run_for, |_| {}).await
    })
}

/// A server that has opened its database and restored its history, not yet
/// listening.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) settings: Settings,
    pub(crate) monitor: Monitor,
    pub(crate) pool: WatchedPool,
}

impl Server {
    pub(crate) async fn prepare(settings: Settings) -> anyhow::Result<Server> {
        let config =
            MonitorConfig { trend_interval: settings.history_interval, ..MonitorConfig::named(settings.name.clone()) };
        let monitor = Monitor::builder()
            .config(config)
            .thresholds(settings.thresholds.clone())
            .build()
            .with_context(|| format!("invalid monitor settings (monitor.name `{}`)", settings.name))?;
        let pool = WatchedPool::open(&settings.database_url, settings.max_connections, monitor.clone()).await?;
        let window =
            settings.history_interval.saturating_mul(u32::try_from(monitor.config().trend_points).unwrap_or(288));
        match pool.history().restore_into(&monitor, window).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(target: "dbwarden", points = n, "trend history restored from the database"),
            Err(e) => tracing::warn!(target: "dbwarden", error = %e, "trend history not restored"),
        }
        Ok(Server { settings, monitor, pool })
    }

    /// Serves until a signal or `run_for`; `extra` routes (the demo's
    /// application) are merged beside dbwarden's; `on_bound` learns the
    /// address once listening.
    pub(crate) async fn run(
        self,
        mut signals: Signals,
        extra: Option<axum::Router>,
        run_for: Option<f64>,
        on_bound: impl FnOnce(SocketAddr),
    ) -> anyhow::Result<ExitCode> {
        let Server { settings, monitor, pool } = self;
        let sampler = pool.spawn_sampler(settings.probe_interval)?;
        tracing::info!(
            target: "dbwarden",
            database = %redact_url(&settings.database_url),
            monitor = %settings.name,
            "dbwarden is watching the database"
        );
        // The driver ticks; the summary is logged here, on an interval the
        // API can change.
        let driver = Driver::spawn(
            monitor.clone(),
            DriverConfig { tick_interval: settings.tick_interval, summary_interval: None },
        );
        let resources =
            settings.resource_interval.map(|every| ResourceTask::spawn(monitor.clone(), every, pool.disk_path()));
        let upkeep = settings
            .cleanup
            .enabled
            .then(|| SessionUpkeep::spawn(settings.database_url.clone(), settings.cleanup.clone(), monitor.clone()));
        let retention = Duration::from_secs(u64::from(settings.history_retention_days) * 86_400);
        let history = HistoryTask::spawn(
            monitor.clone(),
            pool.history(),
            HistoryConfig { interval: settings.history_interval, retention },
        );
        let token = match &settings.admin_token {
            Some(text) => AdminToken::new(text)
                .with_context(|| format!("server.admin_token (from {}) is not usable", source(&settings)))?,
            None => {
                let (text, token) = AdminToken::generate();
                // Printed, never logged: logs are kept and shipped, stderr at start is seen once.
                eprintln!("dbwarden: no {ADMIN_TOKEN_ENV} set; the admin token for this run is {text}");
                token
            }
        };
        let mut admin = AdminConfig::new(token);
        admin.metrics_public = settings.metrics_public;
        admin.rate_limit = settings.rate_limit_per_second.map(|per_second| RateLimitConfig {
            burst: settings.rate_limit_burst,
            per_second,
            ..RateLimitConfig::default()
        });
        let runtime_config = ServeRuntime { summary_interval: Arc::new(Mutex::new(settings.summary_interval)) };
        let state = AppState::builder(monitor.clone(), admin)
            .readiness_probe(pool.clone())
            .runtime_config(runtime_config.clone())
            .build()
            .context("invalid server settings")?;
        let listener = tokio::net::TcpListener::bind(settings.bind)
            .await
            .with_context(|| format!("could not listen on {}", settings.bind))?;
        let bound = listener.local_addr().context("could not read the listening address")?;
        eprintln!("dbwarden: dashboard and API on http://{bound}/");
        let mut app = dbwarden_http::router(state.clone());
        if let Some(extra) = extra {
            app = app.merge(extra);
        }
        let (stop_server, server_stopped) = tokio::sync::watch::channel(false);
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move {
            let mut stopped = server_stopped;
            axum::serve(listener, service)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
        });
        on_bound(bound);
        let mut probes = tokio::time::interval(settings.probe_interval);
        probes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut summaries = tokio::time::interval(settings.tick_interval);
        summaries.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let deadline = run_for.map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s));
        let stop = signals.wait(deadline);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = probes.tick() => pool.probe().instrument(tracing::info_span!("dbwarden_probe")).await,
                _ = summaries.tick() => {
                    if let Some(every) = runtime_config.summary_interval() {
                        monitor.log_periodic_summary(every);
                    }
                }
                reason = &mut stop => {
                    tracing::info!(target: "dbwarden", "{reason}: shutting down");
                    break;
                }
            }
        }
        // Event streams never end on their own; a graceful shutdown would
        // wait for them until the drain timeout.
        state.close_event_streams();
        let _ = stop_server.send(true);
        match tokio::time::timeout(Duration::from_secs(10), server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(target: "dbwarden", error = %e, "the HTTP server stopped with an error"),
            Ok(Err(e)) => tracing::warn!(target: "dbwarden", error = %e, "the HTTP server task failed"),
            Err(_) => tracing::warn!(target: "dbwarden", "open connections did not finish within 10 s; closing"),
        }
        sampler.stop();
        if let Some(u) = upkeep {
            u.shutdown().await;
        }
        if let Some(r) = resources {
            r.shutdown().await;
        }
        driver.shutdown().await;
        if runtime_config.summary_interval().is_some() {
            monitor.log_periodic_summary(Duration::ZERO);
        }
        history.shutdown().await;
        pool.close().await;
        Ok(ExitCode::SUCCESS)
    }
}

fn source(settings: &Settings) -> String {
    settings.source_of("server.admin_token").unwrap_or("default").to_owned()
}

/// SIGTERM and SIGINT, listened for from the moment this is made (a
/// signal that arrives while the server starts is not lost).
#[derive(Debug)]
pub(crate) struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Registers the handlers; must run inside the runtime.
    pub(crate) fn listen() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let term = signal(SignalKind::terminate())
                .inspect_err(|e| tracing::warn!(target: "dbwarden", error = %e, "cannot listen for SIGTERM"))
                .ok();
            let interrupt = signal(SignalKind::interrupt())
                .inspect_err(|e| tracing::warn!(target: "dbwarden", error = %e, "cannot listen for Ctrl-C"))
                .ok();
            Signals { term, interrupt }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// Waits for a signal or the deadline; says which.
    pub(crate) async fn wait(&mut self, deadline: Option<tokio::time::Instant>) -> &'static str {
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = next(&mut self.term) => "SIGTERM received",
                _ = next(&mut self.interrupt) => "interrupted",
                _ = timer => "--run-for elapsed",
            }
        }
        #[cfg(not(unix))]
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => "interrupted",
                _ = timer => "--run-for elapsed",
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_appear_in_redacted_urls() {
        let cases = [
            ("postgres://app:s3cret@db:5432/app", "postgres://app:***@db:5432/app"),
            ("mysql://root@127.0.0.1/test", "mysql://root@127.0.0.1/test"),
            ("sqlite://dbwarden.db", "sqlite://dbwarden.db"),
            ("postgres://u:p@ss:w@rd@h/db", "postgres://u:***@h/db"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected);
        }
    }

    #[test]
    fn the_runtime_hook_refuses_unknown_keys_and_bad_intervals() {
        let hook = ServeRuntime { summary_interval: Arc::new(Mutex::new(None)) };
        let map = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert!(hook.validate(&map(json!({ "nope": 1 }))).is_err());
        assert!(hook.validate(&map(json!({ SUMMARY_INTERVAL_KEY: -1 }))).is_err());
        assert!(hook.validate(&map(json!({ SUMMARY_INTERVAL_KEY: "x" }))).is_err());
        let ok = map(json!({ SUMMARY_INTERVAL_KEY: 60 }));
        assert!(hook.validate(&ok).is_ok());
        hook.apply(&ok);
        assert_eq!(hook.summary_interval(), Some(Duration::from_secs(60)));
        assert_eq!(hook.current()[SUMMARY_INTERVAL_KEY], 60.0);
    }
}
