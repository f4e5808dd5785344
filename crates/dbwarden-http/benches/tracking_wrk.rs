//! The request-tracking layer's cost: the same small axum application served
//! twice by one process, on two loopback ports, once bare and once behind
//! `RequestTrackingLayer`, measured with wrk in one run with the sides
//! interleaved. Two routes: `/hello/{id}` answers a few bytes (the harshest
//! case: the layer's work against almost nothing), `/authors/{id}` runs one
//! point query on SQLite through a `MonitoredPool` (a small real handler).
//!
//! A third server wraps the routes in a layer that only passes requests
//! through, to tell what any tower layer costs from what tracking adds.
//!
//! Run: `cargo bench -p dbwarden-http --bench tracking_wrk` (needs `wrk`:
//! `apt-get install -y wrk`). Each wrk run is `wrk -t1 -c16 -d5s`
//! (`DBWARDEN_WRK_SECONDS` changes the duration, 5 s by default,
//! `DBWARDEN_WRK_ROUNDS` the number of interleaved rounds, 6 by default). The
//! server gets one runtime thread, wrk the other core: the process pins
//! itself (and so its runtime thread and SQLite's worker thread) to CPU 0
//! and runs wrk on CPU 1, with `taskset`. Unpinned, SQLite's worker wakes
//! up on whichever CPU is free, and the one-query figures move by ±20 %
//! from round to round; `DBWARDEN_WRK_PIN=0` turns pinning off.
//!
//! Besides throughput it reports the server's CPU time per request (from
//! `/proc/self/stat`), which a busy machine disturbs far less:
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

mod common;
use common::PassThroughLayer;

fn requests_per_second(wrk_output: &str) -> Option<f64> {
    wrk_output.lines().find_map(|l| l.strip_prefix("Requests/sec:")).and_then(|v| v.trim().parse().ok())
}

/// `N requests in …`.
fn requests(wrk_output: &str) -> Option<f64> {
    wrk_output.lines().find(|l| l.contains(" requests in "))?.split_whitespace().next()?.parse().ok()
}

/// Nanoseconds of CPU this process has used (`/proc/self/stat`: user and
/// system time of all its threads, those that already exited included, in
/// clock ticks of 10 ms): the server's cost, whatever else the machine is
/// doing.
fn cpu_ns() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0 };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ")".
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) * 10_000_000
}

/// Pins this process's main thread, and so every thread it starts later, to
/// CPU 0; whether it could.
fn pin_to_cpu0() -> bool {
    let pid = std::process::id().to_string();
    Command::new("taskset").args(["-p", "-c", "0", &pid]).output().is_ok_and(|out| out.status.success())
}

/// One wrk run: requests per second, and server CPU microseconds per request.
/// With `pinned`, wrk runs on CPU 1.
fn wrk(url: &str, seconds: u64, pinned: bool) -> (f64, f64) {
    let cpu_before = cpu_ns();
    let mut command = Command::new(if pinned { "taskset" } else { "wrk" });
    if pinned {
        command.args(["-c", "1", "wrk"]);
    }
    let out = command.args(["-t1", "-c16", &format!("-d{seconds}s"), url]).output().expect("run wrk");
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
    let only = std::env::var("DBWARDEN_WRK_ONLY").ok();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Before any thread starts, so that all inherit it.
    let pinned = env("DBWARDEN_WRK_PIN", 1) != 0 && cpus >= 2 && pin_to_cpu0();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (bare, passthrough, tracked, monitor) = runtime.block_on(async {
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
        let passthrough = serve(app(pool.clone()).layer(PassThroughLayer)).await;
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
        (bare, passthrough, tracked, monitor)
    });

    println!(
        "wrk -t1 -c16 -d{seconds}s, {rounds} interleaved rounds per side; server on one runtime thread{}",
        if pinned { ", pinned to CPU 0, wrk to CPU 1" } else { ", unpinned" }
    );
    for (name, path) in [("tiny handler", "/hello/42"), ("one SQLite query", "/authors/42")] {
        // Per side: throughput and CPU per request of every round.
        let sides = [("bare", bare), ("pass-through", passthrough), ("tracked", tracked)];
        let mut rps: [Vec<f64>; 3] = Default::default();
        let mut cpu: [Vec<f64>; 3] = Default::default();
        let (mut ratios, mut cpu_ratios) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Rotate which side goes first, so drift favours none; a round's
            // ratio compares runs made seconds apart.
            let mut order = [0, 1, 2];
            order.rotate_left(round as usize % 3);
            for i in order {
                let (side, addr) = sides[i];
                if only.as_deref().is_some_and(|o| o != side) {
                    continue;
                }
                let (r, c) = wrk(&format!("http://{addr}{path}"), seconds, pinned);
                println!("  {name:<17} {side:<12} round {round}: {r:>9.0} req/s, {c:>6.2} µs server CPU/request");
                rps[i].push(r);
                cpu[i].push(c);
            }
            if only.is_none() {
                let n = rps[0].len() - 1;
                ratios.push(rps[2][n] / rps[0][n]);
                cpu_ratios.push(cpu[0][n] / cpu[2][n]);
            }
        }
        if only.is_some() {
            continue;
        }
        let med = |v: &Vec<f64>| median(v.clone());
        println!(
            "{name}: req/s bare {:.0}, pass-through {:.0}, tracked {:.0} (medians); tracked/bare per round, median {:.3}x",
            med(&rps[0]),
            med(&rps[1]),
            med(&rps[2]),
            median(ratios)
        );
        println!(
            "{name}: server CPU µs/request bare {:.2}, pass-through {:.2}, tracked {:.2} (medians); bare/tracked per round, median {:.3}x",
            med(&cpu[0]),
            med(&cpu[1]),
            med(&cpu[2]),
            median(cpu_ratios)
        );
    }
    let routes = monitor.routes();
    let recorded: u64 = routes.iter().map(|r| r.requests).sum();
    println!("the tracked side recorded {recorded} requests on {} routes", routes.len());
}
