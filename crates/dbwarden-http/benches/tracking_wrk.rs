//! The request-tracking layer's cost: the same small axum application served
//! twice by one process, on two loopback ports, once bare and once behind
//! `RequestTrackingLayer`, measured with wrk in one run with the sides
//! interleaved. Two routes: `/hello/{id}` answers a few bytes (the harshest
//! case: the layer's work against almost nothing), `/authors/{id}` runs one
//! point query on SQLite through a `MonitoredPool` (a small real handler).
//!
//! Run: `cargo bench -p dbwarden-http --bench tracking_wrk` (needs `wrk`:
//! `apt-get install -y wrk`). Each wrk run is `wrk -t1 -c16 -d5s`
//! (`DBWARDEN_WRK_SECONDS` changes the duration, 5 s by default,
//! `DBWARDEN_WRK_ROUNDS` the number of interleaved rounds, 6 by default). The
//! server gets one runtime thread, wrk the other core.
//!
//! Besides throughput it reports the server's CPU time per request (from
//! `/proc/self/task/*/schedstat`), which a busy machine disturbs far less:
//! with one server thread saturated, the throughput ratio is the inverse of
//! the CPU ratio.

#![allow(missing_docs, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use dbwarden_core::Monitor;
use dbwarden_http::RequestTrackingLayer;
use dbwarden_sqlx::MonitoredPool;
use sqlx::{Row, Sqlite};

fn requests_per_second(wrk_output: &str) -> Option<f64> {
    wrk_output.lines().find_map(|l| l.strip_prefix("Requests/sec:")).and_then(|v| v.trim().parse().ok())
}

/// `N requests in …`.
fn requests(wrk_output: &str) -> Option<f64> {
    wrk_output.lines().find(|l| l.contains(" requests in "))?.split_whitespace().next()?.parse().ok()
}

/// Nanoseconds this process's threads have spent on a CPU
/// (`/proc/self/task/*/schedstat`): the server's cost, whatever else the
/// machine is doing.
fn cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// One wrk run: requests per second, and server CPU microseconds per request.
fn wrk(url: &str, seconds: u64) -> (f64, f64) {
    let cpu_before = cpu_ns();
    let out = Command::new("wrk").args(["-t1", "-c16", &format!("-d{seconds}s")]).arg(url).output().expect("run wrk");
    let cpu = cpu_ns().saturating_sub(cpu_before) as f64;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!text.contains("Non-2xx") && !text.contains("Socket errors"), "wrk saw errors on {url}:\n{text}");
    let rps = requests_per_second(&text).unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"));
    let n = requests(&text).unwrap_or(1.0).max(1.0);
    (rps, cpu / n / 1000.0)
}

async fn hello(Path(id): Path<u32>) -> String {
    format!("hello {id}")
}

async fn author(State(pool): State<MonitoredPool<Sqlite>>, Path(id): Path<i64>) -> String {
    let row = sqlx::query("SELECT name FROM authors WHERE id = ?").bind(id).fetch_one(&pool).await.unwrap();
    row.get::<String, _>(0)
}

fn app(pool: MonitoredPool<Sqlite>) -> Router {
    Router::new().route("/hello/{id}", get(hello)).route("/authors/{id}", get(author)).with_state(pool)
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("tracking_wrk: wrk is not installed (apt-get install -y wrk); nothing measured");
        std::process::exit(1);
    }
    let env = |name: &str, default: u64| std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    let seconds = env("DBWARDEN_WRK_SECONDS", 5);
    let rounds = env("DBWARDEN_WRK_ROUNDS", 6);

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (bare, tracked, monitor) = runtime.block_on(async {
        let monitor = Monitor::new();
        let options =
            sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("bench.db")).create_if_missing(true);
        let pool = MonitoredPool::builder(sqlx::sqlite::SqlitePoolOptions::new().max_connections(4), monitor.clone())
            .connect_with(options)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").execute(&pool).await.unwrap();
        for id in 1..=100_i64 {
            sqlx::query("INSERT INTO authors (id, name) VALUES (?, ?)")
                .bind(id)
                .bind(format!("author {id}"))
                .execute(&pool)
                .await
                .unwrap();
        }
        let bare = serve(app(pool.clone())).await;
        let tracked = serve(app(pool).layer(RequestTrackingLayer::new(monitor.clone()))).await;
        // The monitor ticks as under the binary's driver.
        let ticking = monitor.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                ticking.tick();
            }
        });
        (bare, tracked, monitor)
    });

    println!("wrk -t1 -c16 -d{seconds}s, {rounds} interleaved rounds per side; server on one runtime thread");
    for (name, path) in [("tiny handler", "/hello/42"), ("one SQLite query", "/authors/42")] {
        let (mut ratios, mut cpu_ratios) = (Vec::new(), Vec::new());
        let (mut bare_rps, mut tracked_rps, mut bare_cpu, mut tracked_cpu) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternate which side goes first, so drift favours neither; a
            // round's ratio compares two runs made seconds apart.
            let order = if round.is_multiple_of(2) { [false, true] } else { [true, false] };
            let mut pair = [(0.0, 0.0); 2];
            for tracked_side in order {
                let addr = if tracked_side { tracked } else { bare };
                let (rps, cpu_us) = wrk(&format!("http://{addr}{path}"), seconds);
                println!(
                    "  {name:<17} {:<8} round {round}: {rps:>9.0} req/s, {cpu_us:>6.2} µs server CPU/request",
                    if tracked_side { "tracked" } else { "bare" }
                );
                pair[usize::from(tracked_side)] = (rps, cpu_us);
            }
            let ([b, t], [bc, tc]) = ([pair[0].0, pair[1].0], [pair[0].1, pair[1].1]);
            ratios.push(t / b);
            cpu_ratios.push(bc / tc);
            bare_rps.push(b);
            tracked_rps.push(t);
            bare_cpu.push(bc);
            tracked_cpu.push(tc);
        }
        println!(
            "{name}: throughput bare {:.0} / tracked {:.0} req/s (medians), median per-round ratio {:.3}x; \
             server CPU bare {:.2} / tracked {:.2} µs per request, median per-round ratio {:.3}x",
            median(bare_rps),
            median(tracked_rps),
            median(ratios),
            median(bare_cpu),
            median(tracked_cpu),
            median(cpu_ratios),
        );
    }
    let routes = monitor.routes();
    let recorded: u64 = routes.iter().map(|r| r.requests).sum();
    println!("the tracked side recorded {recorded} requests on {} routes", routes.len());
}
