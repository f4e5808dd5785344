//! The dashboard in a real headless Chromium, driven by Playwright
//! (`tests/browser/dashboard.mjs`): a real server on a loopback port serves
//! dbwarden's router nested in a small instrumented application while a
//! traffic task exercises it; the script signs in, sees every widget, sees
//! figures change without a reload, raises an alert through `PUT
//! /api/config`, acknowledges it with the button, and saves screenshots to
//! `artifacts/` at the workspace root.
//!
//! Needs Node.js, Chromium and the script's npm packages; it fails, saying
//! how to install them, when one is missing:
//!
//! ```text
//! apt-get install chromium chromium-driver nodejs npm
//! npm ci --prefix crates/dbwarden-http/tests/browser
//! ```

#![allow(missing_docs, clippy::unwrap_used)]

mod tracking_app;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dbwarden_core::{CleanupRecord, Monitor, ResourceSample, Thresholds};
use dbwarden_http::{AdminConfig, AdminToken, AppState, RequestTrackingLayer, router};
use tracking_app::App;

const TOKEN: &str = "browser-test-admin-token-7f3a9c";
/// The longest the browser script may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("DBWARDEN_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

const INSTALL: &str = "install them with:\n  apt-get update && apt-get install -y chromium chromium-driver nodejs npm\n  \
                       npm ci --prefix crates/dbwarden-http/tests/browser";

/// What is missing to run the browser, if anything.
fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => missing.push("Node.js (`node`) is not installed or not on PATH".to_owned()),
    }
    let chromium = chromium();
    if !chromium.is_file() {
        missing.push(format!("Chromium is not at {} (set DBWARDEN_CHROMIUM to use another path)", chromium.display()));
    }
    if !browser_dir().join("node_modules/playwright-core/package.json").is_file() {
        missing.push(format!("playwright-core is not installed in {}/node_modules", browser_dir().display()));
    }
    missing
}

/// The host's resources from /proc, as `dbwarden serve` would sample them.
fn sample_resources(previous: &mut Option<(u64, u64)>) -> Option<ResourceSample> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
    };
    let (total, available) = (field("MemTotal:")?, field("MemAvailable:")?);
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let busy_total = (cpu.iter().sum::<u64>(), cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0));
    let cpu_usage = match previous.replace(busy_total) {
        Some((t0, idle0)) if busy_total.0 > t0 => {
            let dt = (busy_total.0 - t0) as f64;
            1.0 - (busy_total.1.saturating_sub(idle0)) as f64 / dt
        }
        _ => 0.0,
    };
    let pages: u64 = std::fs::read_to_string("/proc/self/statm").ok()?.split_whitespace().nth(1)?.parse().ok()?;
    Some(ResourceSample {
        cpu_usage,
        memory_used: total - available,
        memory_total: total,
        process_rss: pages * 4096,
        disk_used: None,
        disk_total: None,
    })
}

/// Requests an application would see: fast, N+1, slow, failing, a held
/// connection now and then, and a path no route matches.
async fn traffic(base: String) {
    let client = reqwest::Client::new();
    let mut round: u64 = 0;
    loop {
        round += 1;
        let id = round % 3 + 1;
        let mut paths = vec![
            format!("/authors/{id}"),
            format!("/authors/{id}/books"),
            format!("/authors/{id}/books/joined"),
            format!("/orders/{id}"),
            format!("/api/items/{}", round % 20),
            "/slow?ms=40".to_owned(),
        ];
        if round.is_multiple_of(5) {
            paths.push("/fail".to_owned());
        }
        if round.is_multiple_of(10) {
            // Holds a connection for a while; the rest of the traffic goes on.
            tokio::spawn(client.get(format!("{base}/reports/{id}?ms=4000")).send());
        }
        if round.is_multiple_of(7) {
            paths.push(format!("/wp-admin/{round}"));
        }
        let requests = paths.into_iter().map(|p| {
            let client = client.clone();
            let url = format!("{base}{p}");
            async move {
                let _ = client.get(url).send().await;
            }
        });
        futures_util::future::join_all(requests).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Runs the script, killing it past [`SCRIPT_TIMEOUT`].
fn run_script(url: &str, artifacts: &Path) -> (bool, String) {
    let mut child = Command::new("node")
        .arg(browser_dir().join("dashboard.mjs"))
        .args([url, TOKEN])
        .arg(artifacts)
        .env("DBWARDEN_CHROMIUM", chromium())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    let started = Instant::now();
    let timed_out = loop {
        if child.try_wait().expect("wait for node").is_some() {
            break false;
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            break true;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().expect("collect node's output");
    let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    if timed_out {
        log.push_str(&format!("\nthe browser script was killed after {SCRIPT_TIMEOUT:?}"));
    }
    (out.status.success() && !timed_out, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_signs_in_updates_live_and_acknowledges_an_alert_in_chromium() {
    let missing = missing_prerequisites();
    assert!(missing.is_empty(), "the browser test cannot run:\n  - {}\n{INSTALL}", missing.join("\n  - "));

    // Local SQLite answers in microseconds: let the N+1 route's few
    // milliseconds count, as a slower database's would.
    let thresholds = Thresholds { n_plus_one_min_total: Duration::from_micros(1), ..Thresholds::default() };
    let monitor = Monitor::builder().thresholds(thresholds).build().unwrap();
    let app = App::new(monitor.clone(), 4).await;
    let sampler = app.state.pool.spawn_sampler(Duration::from_secs(1)).unwrap();
    monitor.set_cleanup_interval(Some(Duration::from_secs(3600)));
    monitor.record_cleanup(CleanupRecord {
        rows_removed: 1280,
        duration: Duration::from_millis(420),
        batches: 3,
        errors: 0,
    });

    let state = AppState::builder(monitor.clone(), AdminConfig::new(AdminToken::new(TOKEN).unwrap())).build().unwrap();
    let service = app
        .routes()
        .layer(RequestTrackingLayer::new(monitor.clone()))
        .nest("/dbwarden", router(state))
        .into_make_service_with_connect_info::<SocketAddr>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, service).await });

    let ticker = tokio::spawn({
        let monitor = monitor.clone();
        async move {
            let mut previous = None;
            let mut interval = tokio::time::interval(Duration::from_secs(1));
            loop {
                interval.tick().await;
                if let Some(sample) = sample_resources(&mut previous) {
                    monitor.record_resources(sample);
                }
                monitor.tick();
            }
        }
    });
    let load = tokio::spawn(traffic(format!("http://{addr}")));

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let artifacts = artifacts.canonicalize().unwrap();
    let url = format!("http://{addr}/dbwarden");
    let script_artifacts = artifacts.clone();
    let (ok, log) = tokio::task::spawn_blocking(move || run_script(&url, &script_artifacts)).await.unwrap();
    println!("{log}");

    load.abort();
    ticker.abort();
    server.abort();
    sampler.stop();
    assert!(ok, "the browser script failed:\n{log}");
    assert!(artifacts.join("dashboard.png").is_file(), "no screenshot saved");
    // What the button did reached the server.
    let acknowledged =
        monitor.alerts().into_iter().chain(monitor.alert_history()).filter(|a| a.acknowledged.is_some()).count();
    assert!(acknowledged >= 1, "no alert was acknowledged on the server");
}
