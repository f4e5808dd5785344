//! `/health` and `/api/status` throughput against a minimal axum handler
//! served by the same process on the same listener, measured with wrk in one
//! run, interleaved: ten rounds of one 3 s wrk run per endpoint; within a
//! round every endpoint is measured back to back, and the median round's
//! ratio counts. Run: `cargo bench -p dbwarden-http --bench wrk_endpoints`
//! (needs `wrk`: `apt-get install -y wrk`). Loopback only; each run is
//! `wrk -t1 -c16 -d3s --latency` (`DBWARDEN_WRK_SECONDS` and
//! `DBWARDEN_WRK_ROUNDS` change the duration and the number of rounds).

#![allow(missing_docs, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use axum::routing::get;
use dbwarden_http::{AdminConfig, AdminToken, AppState, router};

mod common;
use common::TOKEN;

fn requests_per_second(wrk_output: &str) -> Option<f64> {
    wrk_output.lines().find_map(|l| l.strip_prefix("Requests/sec:")).and_then(|v| v.trim().parse().ok())
}

fn wrk(url: &str, seconds: u64, auth: bool) -> (f64, String) {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", "-c16", &format!("-d{seconds}s"), "--latency"]);
    if auth {
        cmd.args(["-H", &format!("Authorization: Bearer {TOKEN}")]);
    }
    let out = cmd.arg(url).output().expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rps = requests_per_second(&text).unwrap_or(0.0);
    if text.contains("Non-2xx") {
        eprintln!("wrk saw errors on {url}:\n{text}");
    }
    (rps, text)
}

/// The length of an `/api/status` body.
async fn status_body_len(app: &axum::Router) -> usize {
    use tower::ServiceExt;
    let request = axum::http::Request::builder()
        .uri("/api/status")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    axum::body::to_bytes(response.into_body(), 1 << 24).await.unwrap().len()
}

fn main() {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("wrk_endpoints: wrk is not installed (apt-get install -y wrk); nothing measured");
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let seconds: u64 = std::env::var("DBWARDEN_WRK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let rounds: usize = std::env::var("DBWARDEN_WRK_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    // One server thread; wrk takes the other core.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let addr: SocketAddr = runtime.block_on(async {
        let monitor = common::populated_monitor();
        let mut admin = AdminConfig::new(AdminToken::new(TOKEN).unwrap());
        // The rate limit would measure itself, not the endpoints.
        admin.rate_limit = None;
        let state = AppState::builder(monitor.clone(), admin).build().unwrap();
        // The same minimal handler with a body as large as /api/status's,
        // to tell the cost of the endpoint from the cost of moving its bytes.
        let sized = axum::body::Bytes::from(vec![b'x'; status_body_len(&router(state.clone())).await]);
        let app = axum::Router::new()
            .route("/baseline", get(|| async { "ok" }))
            .route("/baseline/status-sized", get(move || std::future::ready(sized.clone())))
            .merge(router(state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
        });
        // The monitor ticks as under the binary's driver.
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                monitor.tick();
            }
        });
        addr
    });
    let base = format!("http://{addr}");
    let mut results: Vec<(&str, Vec<f64>)> =
        vec![("/baseline", vec![]), ("/health", vec![]), ("/api/status", vec![]), ("/baseline/status-sized", vec![])];
    for round in 0..rounds {
        for (path, rps) in results.iter_mut() {
            let (r, text) = wrk(&format!("{base}{path}"), seconds, *path == "/api/status");
            if round == 0 {
                eprintln!("--- {path}\n{text}");
            }
            rps.push(r);
        }
    }
    // Other work on a shared machine hits single runs; each round runs
    // every endpoint back to back, so the ratio within a round compares
    // like with like, and the median round counts.
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let baseline = results[0].1.clone();
    println!("| endpoint | requests/s, median of {rounds} runs | median ratio to `/baseline` in the same round |");
    println!("|---|---|---|");
    for (path, rps) in &results {
        let ratios: Vec<f64> = rps.iter().zip(&baseline).map(|(r, b)| r / b).collect();
        println!("| `{path}` | {:.0} | {:.2}x |", median(rps), median(&ratios));
    }
}
