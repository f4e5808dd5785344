//! PostgreSQL restarted while 32 tasks run queries through a `MonitoredPool`:
//! no panic, the failures are classified as connection failures, work
//! resumes after the restart, and the connection-failure alert fires and
//! then resolves by itself.
//!
//! The test creates its own throwaway cluster (initdb and pg_ctl on a free
//! port, removed afterwards), so the shared server other tests use is never
//! restarted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dbwarden_core::{AlertState, AlertType, ErrorClass, ManualClock, Monitor, Resolution, Timestamp};
use dbwarden_sqlx::MonitoredPool;
use sqlx::Postgres;
use sqlx::postgres::PgPoolOptions;

const BIN: &str = "/usr/lib/postgresql/15/bin";

/// A PostgreSQL cluster of the test's own, stopped and deleted on drop.
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// Runs a PostgreSQL binary, as the `postgres` user when we are root (initdb
/// and the server refuse to run as root).
fn pg(program: &str, args: &[&str]) -> Output {
    let path = format!("{BIN}/{program}");
    let mut cmd = if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &path]);
        c
    } else {
        Command::new(&path)
    };
    let out = cmd.args(args).output().unwrap_or_else(|e| panic!("cannot run {path}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::Builder::new().prefix("dbwarden-pg-").tempdir_in("/tmp").unwrap();
        if running_as_root() {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap();
            assert!(status.success(), "chown of the cluster directory failed");
        }
        let data = dir.path().join("data");
        let data = data.to_str().unwrap();
        pg("initdb", &["-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
        let cluster = Cluster { dir, port: free_port() };
        cluster.start_server();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn server_options(&self) -> String {
        format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.path().display())
    }

    fn start_server(&self) {
        let (data, log) = (self.data(), self.dir.path().join("server.log"));
        pg(
            "pg_ctl",
            &[
                "start",
                "-D",
                data.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "-o",
                &self.server_options(),
                "-l",
                log.to_str().unwrap(),
            ],
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let path = format!("{BIN}/pg_ctl");
        let mut cmd = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &path]);
            c
        } else {
            Command::new(&path)
        };
        let _ = cmd.args(["stop", "-m", "immediate", "-D"]).arg(&data).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_under_load_is_classified_recovered_and_alerted() {
    let cluster = Cluster::start();
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let monitor = Monitor::builder().clock(clock.clone()).build().unwrap();
    let pool: MonitoredPool<Postgres> = MonitoredPool::builder(
        PgPoolOptions::new().max_connections(8).acquire_timeout(Duration::from_secs(2)),
        monitor.clone(),
    )
    .connect(&cluster.url())
    .await
    .expect("connect to the throwaway cluster");
    monitor.tick();

    let stop = Arc::new(AtomicBool::new(false));
    let succeeded = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (pool, stop, succeeded, failed) = (pool.clone(), stop.clone(), succeeded.clone(), failed.clone());
            tokio::spawn(async move {
                let mut n = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let r = sqlx::query("SELECT $1::bigint + $2::bigint, pg_sleep(0.02)")
                        .bind(n)
                        .bind(i64::from(i))
                        .fetch_one(&pool)
                        .await;
                    match r {
                        Ok(_) => succeeded.fetch_add(1, Ordering::Relaxed),
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();

    // Let work flow, then restart the server under it.
    wait_until("queries flow before the restart", || succeeded.load(Ordering::Relaxed) > 200).await;
    let restart = {
        let (data, options, log) = (cluster.data(), cluster.server_options(), cluster.dir.path().join("server.log"));
        tokio::task::spawn_blocking(move || {
            let data = data.to_str().unwrap();
            pg("pg_ctl", &["stop", "-D", data, "-w", "-m", "fast"]);
            std::thread::sleep(Duration::from_millis(500));
            pg("pg_ctl", &["start", "-D", data, "-w", "-o", &options, "-l", log.to_str().unwrap()]);
        })
    };
    restart.await.expect("restart the cluster");
    let failed_during = failed.load(Ordering::Relaxed);
    assert!(failed_during > 0, "queries failed while the server was down");

    // Work resumes.
    let before = succeeded.load(Ordering::Relaxed);
    wait_until("queries succeed again after the restart", || succeeded.load(Ordering::Relaxed) > before + 200).await;

    clock.advance(Duration::from_secs(10));
    monitor.tick();
    let snapshot = monitor.snapshot();
    let connection_failures = snapshot.error_metrics.by_class.get(&ErrorClass::ConnectionFailure).copied().unwrap_or(0);
    assert!(connection_failures > 0, "failures classified as connection failures: {:?}", snapshot.error_metrics);
    let unexpected: u64 = snapshot
        .error_metrics
        .by_class
        .iter()
        .filter(|(class, _)| !matches!(class, ErrorClass::ConnectionFailure | ErrorClass::PoolTimeout))
        .map(|(_, n)| *n)
        .sum();
    assert_eq!(unexpected, 0, "only connection-level failures: {:?}", snapshot.error_metrics);
    eprintln!(
        "failed during the restart: {failed_during}; succeeded: {}; connection failures recorded: {connection_failures}",
        succeeded.load(Ordering::Relaxed)
    );
    let alert = monitor.alerts().into_iter().find(|a| a.alert_type == AlertType::ConnectionFailure).expect("alert");
    assert_eq!(alert.state, AlertState::Firing);

    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("no task panicked");
    }

    // A minute and more without a failure: the alert resolves by itself.
    for _ in 0..8 {
        clock.advance(Duration::from_secs(10));
        monitor.tick();
    }
    assert!(monitor.alerts().iter().all(|a| a.alert_type != AlertType::ConnectionFailure));
    let resolved = monitor.alert_history().into_iter().find(|a| a.id == alert.id).expect("the alert is in the history");
    assert_eq!(resolved.resolution, Some(Resolution::Auto));
    pool.inner().close().await;
}

async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < Duration::from_secs(60), "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
