//! Criterion benchmark of `/metrics` rendering with 1000 fingerprints
//! recorded. Run: `cargo bench -p dbwarden-http --bench metrics_render`.
//!
//! With `DBWARDEN_RENDER_ITERATIONS=N` set it only renders N times and
//! exits, for counting instructions under `valgrind --tool=callgrind`
//! (repeatable whatever else the machine is doing): the difference between
//! two counts divided by the difference in N is the cost of one render.

#![allow(missing_docs)]

use std::time::Duration;

use criterion::{Criterion, criterion_group};
use dbwarden_core::{Monitor, MonitorConfig, Outcome, PoolSample};
use dbwarden_http::{MetricsFormat, render_metrics};

/// A monitor whose top-K table holds 1000 fingerprints, each run a few
/// times with different durations, plus a pool, routes and errors.
fn monitor_with_1000_fingerprints() -> Monitor {
    let config = MonitorConfig { top_queries: 1000, ..MonitorConfig::default() };
    let monitor = Monitor::builder().config(config).build().expect("monitor");
    for i in 0..1000u64 {
        let sql = format!("SELECT a, b FROM table_{} WHERE col_{} = 42", i % 97, i);
        for j in 0..5u64 {
            monitor.record_query(&sql, Duration::from_micros(200 + 997 * ((i + j) % 50)), 1, Outcome::Success);
        }
    }
    monitor.record_pool_sample(PoolSample { size: 10, idle: 4, in_use: 6, pending: 0, max: 10, min: 1 });
    for route in 0..50 {
        let ctx = dbwarden_core::RequestContext::new("r", "GET", &format!("/things/{route}/{{id}}"));
        monitor.request_started();
        monitor.finish_request(&ctx, 200, Duration::from_millis(12));
    }
    monitor.tick();
    monitor
}

fn bench(c: &mut Criterion) {
    let monitor = monitor_with_1000_fingerprints();
    let health = std::sync::Arc::new(monitor.health());
    let exported = render_metrics(&monitor, Some(health.clone()), MetricsFormat::Prometheus)
        .lines()
        .filter(|l| l.starts_with("dbwarden_db_client_operation_duration_seconds_count{"))
        .count();
    assert_eq!(exported, 1000, "every fingerprint is exported");
    let mut group = c.benchmark_group("metrics_render_1000_fingerprints");
    group.bench_function("prometheus_text", |b| {
        b.iter(|| render_metrics(&monitor, Some(health.clone()), MetricsFormat::Prometheus))
    });
    group.bench_function("openmetrics_text", |b| {
        b.iter(|| render_metrics(&monitor, Some(health.clone()), MetricsFormat::OpenMetrics))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(10));
    targets = bench
}

fn main() {
    if let Some(n) = std::env::var("DBWARDEN_RENDER_ITERATIONS").ok().and_then(|v| v.parse::<usize>().ok()) {
        let monitor = monitor_with_1000_fingerprints();
        let health = std::sync::Arc::new(monitor.health());
        let mut bytes = 0;
        for _ in 0..n {
            bytes += render_metrics(&monitor, Some(health.clone()), MetricsFormat::Prometheus).len();
        }
        println!("rendered {n} times, {} bytes each", bytes / n.max(1));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
