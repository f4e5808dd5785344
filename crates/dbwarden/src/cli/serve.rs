//! `dbwarden serve`: watches one database. It opens a small monitored pool
//! of its own, probes the database on an interval (a statement through the
//! pool, recorded exactly as an application's would be: checkout, session,
//! query, errors), samples the pool, runs the monitor's ticks (rates, leak
//! scan, alerts) and logs the periodic summary, and serves the dashboard,
//! JSON API, health endpoints and `/metrics` (on 127.0.0.1:9750 by default,
//! admin endpoints behind a token), until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use dbwarden::{Driver, DriverConfig, Monitor, MonitorConfig};
use dbwarden_http::{AdminConfig, AdminToken, AppState, ProbeError, ReadinessProbe};
use dbwarden_sqlx::{MonitoredPool, classify};
use sqlx::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tracing::Instrument;

/// The statement the probe runs: cheap, and touches the schema so a broken
/// database file fails here rather than in the application.
const PROBE_SQL: &str = "SELECT count(*) FROM sqlite_master";

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The database to watch.
    #[arg(long, env = "DBWARDEN_DATABASE_URL", default_value = "sqlite://dbwarden.db")]
    database_url: String,
    /// The monitor's name (the pool name in metrics and logs).
    #[arg(long, env = "DBWARDEN_NAME", default_value = "main")]
    name: String,
    /// Seconds between two probes of the database (and two pool samples).
    #[arg(long, env = "DBWARDEN_PROBE_INTERVAL", default_value_t = 5.0, value_parser = positive_seconds)]
    probe_interval: f64,
    /// Seconds between two evaluations of rates and alert rules.
    #[arg(long, env = "DBWARDEN_TICK_INTERVAL", default_value_t = 5.0, value_parser = positive_seconds)]
    tick_interval: f64,
    /// Seconds between two performance summaries in the log; 0 turns them off.
    #[arg(long, env = "DBWARDEN_SUMMARY_INTERVAL", default_value_t = 300.0, value_parser = non_negative_seconds)]
    summary_interval: f64,
    /// Stop after this many seconds (for scripted runs); runs until signalled otherwise.
    #[arg(long, value_parser = positive_seconds)]
    run_for: Option<f64>,
    /// Where the dashboard, API and health endpoints listen. Loopback by
    /// default: bind a public address only behind TLS and a firewall.
    #[arg(long, env = "DBWARDEN_BIND", default_value = "127.0.0.1:9750")]
    bind: SocketAddr,
    /// The admin token (at least 16 visible characters), from the
    /// environment only so it never shows in a process list. When unset, a
    /// fresh one is generated and printed once on stderr.
    #[arg(skip)]
    admin_token: Option<String>,
    /// Serve `/metrics` without the admin token (for a Prometheus scraper).
    #[arg(long, env = "DBWARDEN_METRICS_PUBLIC")]
    metrics_public: bool,
}

/// The environment variable holding the admin token.
const ADMIN_TOKEN_ENV: &str = "DBWARDEN_ADMIN_TOKEN";

/// `/readyz`: the watched database answers a statement through the pool.
#[derive(Debug)]
struct PoolProbe(MonitoredPool<Sqlite>);

#[async_trait::async_trait]
impl ReadinessProbe for PoolProbe {
    async fn check(&self) -> Result<(), ProbeError> {
        sqlx::query("SELECT 1")
            .fetch_one(self.0.inner())
            .await
            .map(drop)
            .map_err(|e| ProbeError(format!("{}: {}", classify(&e), dbwarden::redact::redact_message(&e.to_string()))))
    }
}

fn non_negative_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if v.is_finite() && (0.0..=86_400.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("`{s}` must be between 0 and 86400 seconds"))
    }
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    let v = non_negative_seconds(s)?;
    if v >= 0.05 { Ok(v) } else { Err(format!("`{s}` must be at least 0.05 seconds")) }
}

pub(crate) fn run(mut args: ServeArgs) -> anyhow::Result<ExitCode> {
    super::init_logging();
    args.admin_token = std::env::var(ADMIN_TOKEN_ENV).ok().filter(|t| !t.is_empty());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let monitor = Monitor::builder()
        .config(MonitorConfig::named(args.name.clone()))
        .build()
        .with_context(|| format!("invalid --name `{}`", args.name))?;
    let pool = open_pool(&args.database_url, monitor.clone()).await?;
    let probe_interval = Duration::from_secs_f64(args.probe_interval);
    let sampler = pool.spawn_sampler(probe_interval).context("could not start the pool sampler")?;
    tracing::info!(
        target: "dbwarden",
        database = %redact_url(&args.database_url),
        monitor = %args.name,
        "dbwarden is watching the database"
    );
    let driver = Driver::spawn(
        monitor.clone(),
        DriverConfig {
            tick_interval: Duration::from_secs_f64(args.tick_interval),
            summary_interval: (args.summary_interval > 0.0).then(|| Duration::from_secs_f64(args.summary_interval)),
        },
    );
    let token = match &args.admin_token {
        Some(text) => AdminToken::new(text).with_context(|| format!("{ADMIN_TOKEN_ENV} is not usable"))?,
        None => {
            let (text, token) = AdminToken::generate();
            // Printed, never logged: logs are kept and shipped, stderr at start is seen once.
            eprintln!("dbwarden: no {ADMIN_TOKEN_ENV} set; the admin token for this run is {text}");
            token
        }
    };
    let mut admin = AdminConfig::new(token);
    admin.metrics_public = args.metrics_public;
    let state = AppState::builder(monitor.clone(), admin)
        .readiness_probe(PoolProbe(pool.clone()))
        .build()
        .context("invalid server settings")?;
    let listener =
        tokio::net::TcpListener::bind(args.bind).await.with_context(|| format!("could not listen on {}", args.bind))?;
    let bound = listener.local_addr().context("could not read the listening address")?;
    eprintln!("dbwarden: dashboard and API on http://{bound}/");
    let (stop_server, server_stopped) = tokio::sync::watch::channel(false);
    let app = dbwarden_http::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move {
        let mut stopped = server_stopped;
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
    });
    let mut probes = tokio::time::interval(probe_interval);
    probes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = args.run_for.map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s));
    let stop = shutdown_signal(deadline);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = probes.tick() => probe(&pool).instrument(tracing::info_span!("dbwarden_probe")).await,
            reason = &mut stop => {
                tracing::info!(target: "dbwarden", "{reason}: shutting down");
                break;
            }
        }
    }
    let _ = stop_server.send(true);
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(target: "dbwarden", error = %e, "the HTTP server stopped with an error"),
        Ok(Err(e)) => tracing::warn!(target: "dbwarden", error = %e, "the HTTP server task failed"),
        Err(_) => tracing::warn!(target: "dbwarden", "open connections did not finish within 10 s; closing"),
    }
    sampler.stop();
    driver.shutdown().await;
    pool.inner().close().await;
    Ok(ExitCode::SUCCESS)
}

async fn open_pool(url: &str, monitor: Monitor) -> anyhow::Result<MonitoredPool<Sqlite>> {
    if !url.starts_with("sqlite:") {
        anyhow::bail!(
            "`{}` is not a SQLite URL: this build of `dbwarden serve` watches SQLite databases (sqlite://PATH)",
            redact_url(url)
        );
    }
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("`{}` is not a valid SQLite URL", redact_url(url)))?
        .create_if_missing(true);
    MonitoredPool::builder(SqlitePoolOptions::new().max_connections(2).acquire_timeout(Duration::from_secs(5)), monitor)
        .connect_with(options)
        .await
        .with_context(|| format!("could not open the database `{}`", redact_url(url)))
}

/// One statement through the monitored pool; the pool records the checkout,
/// the session and the query, and classifies a failure.
async fn probe(pool: &MonitoredPool<Sqlite>) {
    if let Err(e) = sqlx::query(PROBE_SQL).fetch_all(pool).await {
        tracing::warn!(
            target: "dbwarden",
            class = %classify(&e),
            error = %dbwarden::redact::redact_message(&e.to_string()),
            "the database probe failed"
        );
    }
}

/// The URL with any password replaced, for messages and logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

async fn shutdown_signal(deadline: Option<tokio::time::Instant>) -> &'static str {
    let timer = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(e) => {
                tracing::warn!(target: "dbwarden", error = %e, "cannot listen for SIGTERM; stop with Ctrl-C");
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return "interrupted",
                    _ = timer => return "--run-for elapsed",
                }
            }
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM received",
            _ = tokio::signal::ctrl_c() => "interrupted",
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
}
