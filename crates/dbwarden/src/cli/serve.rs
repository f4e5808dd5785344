//! `dbwarden serve`: watches one database. It opens a small pool of its own,
//! probes the database on an interval (a checkout and a statement, timed and
//! recorded like any application's), samples the pool, runs the monitor's
//! ticks (rates, leak scan, alerts) and logs the periodic summary, until
//! SIGTERM or Ctrl-C.

use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use dbwarden::{Driver, DriverConfig, ErrorClass, Holder, Monitor, MonitorConfig, Outcome, PoolSample, SessionKind};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Executor, SqlitePool};

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
    /// Seconds between two probes of the database.
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

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    super::init_logging();
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
    let pool = open_pool(&args.database_url).await?;
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
    let mut probes = tokio::time::interval(Duration::from_secs_f64(args.probe_interval));
    probes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = args.run_for.map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s));
    let stop = shutdown_signal(deadline);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = probes.tick() => {
                probe(&monitor, &pool).await;
                sample_pool(&monitor, &pool);
            }
            reason = &mut stop => {
                tracing::info!(target: "dbwarden", "{reason}: shutting down");
                break;
            }
        }
    }
    driver.shutdown().await;
    pool.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn open_pool(url: &str) -> anyhow::Result<SqlitePool> {
    if !url.starts_with("sqlite:") {
        anyhow::bail!(
            "`{}` is not a SQLite URL: this build of `dbwarden serve` watches SQLite databases (sqlite://PATH)",
            redact_url(url)
        );
    }
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("`{}` is not a valid SQLite URL", redact_url(url)))?
        .create_if_missing(true);
    SqlitePoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .with_context(|| format!("could not open the database `{}`", redact_url(url)))
}

/// One checkout and one statement, recorded exactly as an application's would be.
async fn probe(monitor: &Monitor, pool: &SqlitePool) {
    let started = Instant::now();
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => {
            let waited = started.elapsed();
            match classify(&e) {
                ErrorClass::PoolTimeout => monitor.record_pool_timeout(waited),
                class => monitor.record_session_error(class, &e.to_string()),
            }
            return;
        }
    };
    let wait = started.elapsed();
    monitor.record_checkout(wait);
    monitor.record_session_created(wait);
    let checkout = monitor
        .track_checkout(SessionKind::Connection, Holder { span: Some("dbwarden probe".into()), ..Holder::default() });
    let query_started = Instant::now();
    let result = conn.fetch_all(PROBE_SQL).await;
    let took = query_started.elapsed();
    match &result {
        Ok(rows) => monitor.record_query(PROBE_SQL, took, rows.len() as u64, Outcome::Success),
        Err(e) => {
            let message = e.to_string();
            monitor.record_query(PROBE_SQL, took, 0, Outcome::Failure { class: classify(e), message: &message })
        }
    }
    monitor.touch_checkout(&checkout);
    let closing = Instant::now();
    drop(conn);
    monitor.release_checkout(&checkout);
    monitor.record_checkin(started.elapsed() - wait);
    monitor.record_session_closed(started.elapsed(), closing.elapsed());
}

fn sample_pool(monitor: &Monitor, pool: &SqlitePool) {
    let size = pool.size();
    let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX).min(size);
    let options = pool.options();
    monitor.record_pool_sample(PoolSample {
        size,
        idle,
        in_use: size - idle,
        pending: 0,
        max: options.get_max_connections(),
        min: options.get_min_connections(),
    });
}

/// The class of a sqlx error, as far as a probe needs it.
fn classify(e: &sqlx::Error) -> ErrorClass {
    match e {
        sqlx::Error::PoolTimedOut => ErrorClass::PoolTimeout,
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            ErrorClass::ConnectionFailure
        }
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // SQLITE_BUSY and SQLITE_LOCKED: another connection holds the lock.
            Some("5") | Some("6") => ErrorClass::LockTimeout,
            Some(code) if code.len() == 5 => ErrorClass::from_sqlstate(code),
            _ => ErrorClass::Other,
        },
        _ => ErrorClass::Other,
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
