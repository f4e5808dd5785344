//! `/metrics`: valid Prometheus text (checked by `promtool check metrics`),
//! OpenMetrics on request, OpenTelemetry names, bounded labels, no literal
//! values; and the shipped Grafana dashboard uses only names it exports.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use common::*;
use dbwarden_core::{
    CleanupRecord, ErrorClass, MonitorConfig, Outcome, ResourceSample, SessionTableSample, SessionWrite,
};
use serde_json::Value;

/// A monitor with something in every family.
fn busy_monitor() -> dbwarden_core::Monitor {
    let (monitor, clock) = manual_monitor();
    record_traffic(&monitor);
    monitor.record_recovery("load_user", Duration::from_millis(30), true);
    monitor.record_recovery("load_user", Duration::from_millis(90), false);
    monitor.record_pool_timeout(Duration::from_secs(30));
    monitor.record_cleanup(CleanupRecord {
        rows_removed: 120,
        duration: Duration::from_millis(800),
        batches: 3,
        errors: 0,
    });
    monitor.record_session_write(SessionWrite::Full);
    monitor.record_session_write(SessionWrite::Avoided);
    monitor.record_session_table(SessionTableSample { total: 5000, expired: 40, bytes: Some(1 << 20) });
    monitor.record_resources(ResourceSample {
        cpu_usage: 0.25,
        memory_used: 1 << 30,
        memory_total: 4 << 30,
        process_rss: 50 << 20,
        disk_used: None,
        disk_total: None,
    });
    let ctx = dbwarden_core::RequestContext::new("r1", "GET", "/users/{id}");
    monitor.request_started();
    monitor.finish_request(&ctx, 500, Duration::from_millis(40));
    clock.advance(Duration::from_secs(10));
    monitor.tick();
    monitor
}

async fn scrape(accept: Option<&str>) -> (String, String) {
    let monitor = busy_monitor();
    let (_, app) = app(&monitor);
    let mut req = request(Method::GET, "/metrics", Some(TOKEN), None);
    if let Some(accept) = accept {
        req.headers_mut().insert(header::ACCEPT, accept.parse().unwrap());
    }
    let reply = send(&app, req).await;
    assert_eq!(reply.status, StatusCode::OK);
    (reply.header("content-type").unwrap().to_owned(), reply.text())
}

fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is required (Debian package `prometheus`): install it, this test does not skip");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), report)
}

#[tokio::test]
async fn prometheus_text_passes_promtool() {
    let (content_type, text) = scrape(None).await;
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let (ok, report) = promtool(&text);
    assert!(ok, "promtool check metrics failed:\n{report}\n---\n{text}");
    assert!(report.trim().is_empty(), "promtool lint findings:\n{report}");
    // A broken exposition is caught, so the check above can fail.
    let (ok, _) = promtool("# TYPE broken counter\nbroken{le=\"x\" 1\n");
    assert!(!ok);
}

#[tokio::test]
async fn open_metrics_is_served_when_asked_for() {
    let (content_type, text) = scrape(Some("application/openmetrics-text;version=1.0.0")).await;
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    assert!(text.ends_with("# EOF\n"));
    assert!(text.contains("# TYPE dbwarden_db_client_connection_timeouts counter"));
    assert!(text.contains("# UNIT dbwarden_db_client_connection_wait_time_seconds seconds"));
}

#[tokio::test]
async fn names_follow_the_opentelemetry_conventions_and_values_match_the_monitor() {
    let (_, text) = scrape(None).await;
    for line in [
        "dbwarden_db_client_connections_usage{db_client_connection_pool_name=\"default\",state=\"used\"} 4",
        "dbwarden_db_client_connections_usage{db_client_connection_pool_name=\"default\",state=\"idle\"} 6",
        "dbwarden_db_client_connection_max{db_client_connection_pool_name=\"default\"} 10",
        "dbwarden_db_client_connection_timeouts_total{db_client_connection_pool_name=\"default\"} 1",
        "dbwarden_errors_total{db_client_connection_pool_name=\"default\",error_type=\"deadlock\"} 1",
        "dbwarden_recoveries_total{db_client_connection_pool_name=\"default\",outcome=\"failure\"} 1",
        "dbwarden_cleanup_runs_total 1",
        "dbwarden_session_store_writes_total{kind=\"avoided\"} 1",
        "dbwarden_http_server_request_errors_total{http_request_method=\"GET\",http_route=\"/users/{id}\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?}");
    }
    for family in [
        "dbwarden_db_client_connection_create_time_seconds",
        "dbwarden_db_client_connection_wait_time_seconds",
        "dbwarden_db_client_connection_use_time_seconds",
        "dbwarden_db_client_operation_duration_seconds",
        "dbwarden_http_server_request_duration_seconds",
    ] {
        assert!(text.contains(&format!("# TYPE {family} histogram")), "{family} is not a histogram");
        assert!(text.contains(&format!("{family}_bucket{{")), "{family} has no buckets");
    }
    assert!(!text.contains(" summary"), "no summaries");
    // The 20 executions of one statement, 3-22 ms: 0 under 1 ms, 2 (3, 4 ms) under 5 ms, 7 under 10 ms, all under 50 ms.
    let fp = dbwarden_core::Fingerprint::of("SELECT name FROM users WHERE id = 1").id().to_string();
    let labels = format!(
        "db_client_connection_pool_name=\"default\",db_query_fingerprint=\"{fp}\",db_operation_name=\"SELECT\",db_collection_name=\"users\",db_query_summary=\"SELECT users\""
    );
    for (le, count) in [("0.001", 0), ("0.005", 2), ("0.01", 7), ("0.05", 20), ("+Inf", 20)] {
        let line = format!("dbwarden_db_client_operation_duration_seconds_bucket{{le=\"{le}\",{labels}}} {count}");
        assert!(text.contains(&line), "missing {line}");
    }
    assert!(!text.contains("id = 7") && !text.contains("balance - 10"), "a literal reached a label");
}

#[tokio::test]
async fn fingerprint_labels_are_bounded_by_the_top_k_table() {
    let config = MonitorConfig { top_queries: 20, ..MonitorConfig::default() };
    let monitor = dbwarden_core::Monitor::builder().config(config).build().unwrap();
    for i in 0..300 {
        for _ in 0..2 {
            monitor.record_query(
                &format!("SELECT * FROM table_{i} WHERE id = 1"),
                Duration::from_millis(1),
                1,
                Outcome::Success,
            );
        }
    }
    monitor.record_query(
        "SELECT broken",
        Duration::from_millis(1),
        0,
        Outcome::Failure { class: ErrorClass::SyntaxError, message: "x" },
    );
    let text = dbwarden_http::render_metrics(&monitor, None, dbwarden_http::MetricsFormat::Prometheus);
    let fingerprints: BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("dbwarden_db_client_operation_duration_seconds_count{"))
        .filter_map(|l| l.split("db_query_fingerprint=\"").nth(1)?.split('"').next())
        .collect();
    assert!(fingerprints.len() <= 21, "{} fingerprint series", fingerprints.len());
    assert!(fingerprints.contains("other"));
    let (ok, report) = promtool(&text);
    assert!(ok, "{report}");
}

/// Metric names an expression refers to: identifiers followed by `{`, `[`
/// or `)` that start with `dbwarden_`.
fn names_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("dbwarden_") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        out.insert(expr[start..end].to_owned());
        i = end;
    }
    out
}

fn exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "expr" {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_owned());
                    }
                } else {
                    exprs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_grafana_dashboard_uses_only_exported_names() {
    let (_, text) = scrape(None).await;
    let exported: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/grafana/dbwarden.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("docs/grafana/dbwarden.json")).unwrap();
    let mut all = Vec::new();
    exprs(&dashboard, &mut all);
    assert!(all.len() >= 10, "the dashboard has {} queries", all.len());
    let mut used = BTreeSet::new();
    for expr in &all {
        let names = names_in(expr);
        assert!(!names.is_empty(), "{expr} uses no dbwarden metric");
        for name in names {
            assert!(exported.contains(name.as_str()), "{expr} uses {name}, which /metrics does not export");
            used.insert(name);
        }
    }
    assert!(used.len() >= 10, "the dashboard covers only {used:?}");
}
