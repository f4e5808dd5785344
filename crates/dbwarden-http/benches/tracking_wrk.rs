//! The request-tracking layer's cost: the same small axum application served
//! twice by one process, on two loopback ports, once bare and once behind
//! `RequestTrackingLayer`, measured with wrk in one run with the sides
//! interleaved. Two routes: `/hello/{id}` answers a few bytes (the harshest
//! case: the layer's work against almost nothing), `/authors/{id}` runs one
//! point query on SQLite through a `MonitoredPool` (a small real handler).
//!
//! Run: `cargo bench -p dbwarden-http --bench tracking_wrk` (needs `wrk`:
//! `apt-get install -y wrk`). Each wrk run is `wrk -t1 -c16 -d10s`
//! (`DBWARDEN_WRK_SECONDS` changes the duration, `DBWARDEN_WRK_ROUNDS` the
//! number of interleaved rounds, 3 by default). The server gets one runtime
//! thread, wrk the other core.

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

fn wrk(url: &str, seconds: u64) -> f64 {
    let out = Command::new("wrk").args(["-t1", "-c16", &format!("-d{seconds}s")]).arg(url).output().expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!text.contains("Non-2xx") && !text.contains("Socket errors"), "wrk saw errors on {url}:\n{text}");
    requests_per_second(&text).unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"))
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
    let seconds = env("DBWARDEN_WRK_SECONDS", 10);
    let rounds = env("DBWARDEN_WRK_ROUNDS", 3);

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
        let (mut without, mut with) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternate which side goes first, so drift favours neither.
            let order = if round.is_multiple_of(2) { [false, true] } else { [true, false] };
            for tracked_side in order {
                let addr = if tracked_side { tracked } else { bare };
                let rps = wrk(&format!("http://{addr}{path}"), seconds);
                println!(
                    "  {name:<17} {:<8} round {round}: {rps:>10.0} req/s",
                    if tracked_side { "tracked" } else { "bare" }
                );
                if tracked_side { with.push(rps) } else { without.push(rps) }
            }
        }
        let (b, t) = (median(without), median(with));
        println!("{name}: bare {b:.0} req/s, tracked {t:.0} req/s (medians): {:.3}x", t / b);
    }
    let routes = monitor.routes();
    let recorded: u64 = routes.iter().map(|r| r.requests).sum();
    println!("the tracked side recorded {recorded} requests on {} routes", routes.len());
}
