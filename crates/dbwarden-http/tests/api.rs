//! Every endpoint answers with the right status and body shape, bad input is
//! refused with a JSON error, and a refused configuration change changes
//! nothing.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use common::*;
use dbwarden_core::{ErrorClass, Outcome};
use dbwarden_http::{AppState, ProbeError, ReadinessProbe, RuntimeConfig, RuntimeConfigError, router};
use serde_json::{Map, Value, json};

#[tokio::test]
async fn probes_answer_without_a_token() {
    let (monitor, _) = manual_monitor();
    let (_, app) = app(&monitor);
    let live = send(&app, request(Method::GET, "/livez", None, None)).await;
    assert_eq!(live.status, StatusCode::OK);
    assert_eq!(live.json()["status"], "pass");
    let ready = send(&app, request(Method::GET, "/readyz", None, None)).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["status"], "pass");
}

#[derive(Debug, Clone)]
struct SwitchProbe(Arc<Mutex<bool>>);

#[async_trait]
impl ReadinessProbe for SwitchProbe {
    async fn check(&self) -> Result<(), ProbeError> {
        if *self.0.lock().unwrap() { Ok(()) } else { Err(ProbeError("connection refused".into())) }
    }
}

#[tokio::test]
async fn readyz_follows_the_probe_and_the_pool() {
    let (monitor, _) = manual_monitor();
    let up = Arc::new(Mutex::new(true));
    let state = AppState::builder(monitor.clone(), admin()).readiness_probe(SwitchProbe(up.clone())).build().unwrap();
    let app = router(state);
    assert_eq!(send(&app, request(Method::GET, "/readyz", None, None)).await.status, StatusCode::OK);

    *up.lock().unwrap() = false;
    let down = send(&app, request(Method::GET, "/readyz", None, None)).await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.json()["checks"]["database"], "fail");
    assert!(!down.text().contains("connection refused"), "the open probe must not show the reason");
    // /health fails too, and an authorized caller sees why.
    let health = get(&app, "/health").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.json()["checks"]["database:reachable"][0]["output"], "connection refused");

    *up.lock().unwrap() = true;
    monitor.record_pool_sample(dbwarden_core::PoolSample { size: 5, idle: 0, in_use: 5, pending: 3, max: 5, min: 0 });
    let exhausted = send(&app, request(Method::GET, "/readyz", None, None)).await;
    assert_eq!(exhausted.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(exhausted.json()["checks"]["pool"], "fail");
}

#[tokio::test]
async fn health_has_the_ietf_shape_and_details_only_for_authorized_callers() {
    let (monitor, _) = manual_monitor();
    record_traffic(&monitor);
    let (_, app) = app(&monitor);

    let open = send(&app, request(Method::GET, "/health", None, None)).await;
    assert_eq!(open.status, StatusCode::OK);
    assert_eq!(open.header("content-type"), Some("application/health+json"));
    let body = open.json();
    assert!(["pass", "warn"].contains(&body["status"].as_str().unwrap()), "{body}");
    assert!(body.get("checks").is_none() && body.get("metrics_summary").is_none(), "details leaked: {body}");

    let full = get(&app, "/health").await.json();
    let checks = full["checks"].as_object().expect("checks");
    let pool = &checks["pool:utilization"][0];
    assert_eq!(pool["componentId"], "pool");
    assert_eq!(pool["observedUnit"], "ratio");
    assert!((pool["observedValue"].as_f64().unwrap() - 0.4).abs() < 1e-9);
    for key in checks.keys() {
        assert_eq!(key.split(':').count(), 2, "checks are keyed component:measurement, got {key}");
    }
    for field in ["active_sessions", "error_rate", "recovery_rate", "pool_utilization"] {
        assert!(full["metrics_summary"][field].is_number(), "metrics_summary.{field} missing: {full}");
    }
    assert!(full["issues"].is_array());
}

#[tokio::test]
async fn health_answers_503_when_failing() {
    let (monitor, _) = manual_monitor();
    for _ in 0..30 {
        monitor.record_query(
            "SELECT 1 FROM t",
            Duration::from_millis(1),
            0,
            Outcome::Failure { class: ErrorClass::ConnectionFailure, message: "connection reset" },
        );
    }
    monitor.tick();
    let (_, app) = app(&monitor);
    let reply = send(&app, request(Method::GET, "/health", None, None)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.text());
    assert_eq!(reply.json()["status"], "fail");
}

#[tokio::test]
async fn report_endpoints_answer_with_their_shape() {
    let (monitor, clock) = manual_monitor();
    record_traffic(&monitor);
    clock.advance(Duration::from_secs(10));
    monitor.tick();
    let (_, app) = app(&monitor);

    let status = get(&app, "/api/status").await;
    assert_eq!(status.status, StatusCode::OK);
    let s = status.json();
    for group in ["session_metrics", "recovery_metrics", "performance_timing", "pool_metrics", "query_metrics"] {
        assert!(s[group].is_object(), "{group} missing");
    }
    assert_eq!(s["query_metrics"]["total"], 21);
    assert!(s["health"]["status"].is_string());

    let summary = get(&app, "/api/summary").await.json();
    assert!(summary["text"].as_str().unwrap().contains("dbwarden performance summary"));
    assert!(summary["lines"].as_array().unwrap().len() > 3);

    let perf = get(&app, "/api/performance").await.json();
    let score = perf["score"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&score));
    assert!(perf["recommendations"].is_array());

    let queries = get(&app, "/api/queries?sort=calls&limit=5").await.json();
    assert_eq!(queries["sort"], "calls");
    let rows = queries["queries"].as_array().unwrap();
    assert_eq!(rows[0]["text"], "SELECT name FROM users WHERE id = ?");
    assert_eq!(rows[0]["calls"], 20);
    assert!(!status.text().contains("id = 7") && !queries.to_string().contains("= 7"), "a literal leaked");

    let slow = get(&app, "/api/queries/slow").await.json();
    assert_eq!(slow["queries"].as_array().unwrap().len(), 1);
    assert_eq!(slow["queries"][0]["text"], "UPDATE accounts SET balance = balance - ? WHERE id = ?");

    let pool = get(&app, "/api/pool").await.json();
    assert_eq!(pool["current"]["in_use"], 4);
    assert_eq!(pool["samples"].as_array().unwrap().len(), 1);
    assert!(pool["trend"].is_array());

    let held = monitor.track_checkout(dbwarden_core::SessionKind::Connection, Default::default());
    let checkouts = get(&app, "/api/pool/checkouts").await.json();
    assert_eq!(checkouts["count"], 1);
    monitor.release_checkout(&held);

    let errors = get(&app, "/api/errors?window=15m").await.json();
    assert_eq!(errors["window"], "15m");
    assert_eq!(errors["by_class"]["deadlock"], 1);
    assert_eq!(errors["patterns"][0]["class"], "deadlock");

    let alerts = get(&app, "/api/alerts").await.json();
    assert_eq!(alerts["alerts"][0]["rule"], "deadlocks");
    let high = get(&app, "/api/alerts?min_severity=critical").await.json();
    assert_eq!(high["count"], 0);

    let trend = get(&app, "/api/trend").await.json();
    assert_eq!(trend["interval_seconds"], 300.0);
    assert!(trend["points"].is_array());

    let history = get(&app, "/api/alerts/history").await.json();
    assert!(history["alerts"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn requests_report_routes_and_n_plus_one() {
    let (monitor, _) = manual_monitor();
    let ctx = dbwarden_core::RequestContext::new("req-1", "GET", "/users");
    monitor.request_started();
    let m = monitor.clone();
    dbwarden_core::context::with_request(ctx.clone(), async move {
        for i in 0..6 {
            m.record_query(
                &format!("SELECT * FROM posts WHERE user_id = {i}"),
                Duration::from_millis(20),
                1,
                Outcome::Success,
            );
        }
    })
    .await;
    monitor.finish_request(&ctx, 200, Duration::from_millis(150));
    let (_, app) = app(&monitor);
    let body = get(&app, "/api/requests").await.json();
    assert_eq!(body["routes"][0]["route"], "/users");
    assert_eq!(body["routes"][0]["requests"], 1);
    assert_eq!(body["n_plus_one"][0]["count"], 6);
    assert_eq!(body["n_plus_one"][0]["text"], "SELECT * FROM posts WHERE user_id = ?");
    assert_eq!(body["totals"]["total"], 1);
}

#[tokio::test]
async fn alerts_are_acknowledged_resolved_and_silenced() {
    let (monitor, _) = manual_monitor();
    record_traffic(&monitor);
    monitor.tick();
    let (_, app) = app(&monitor);
    let id = get(&app, "/api/alerts").await.json()["alerts"][0]["id"].as_u64().unwrap();

    let ack =
        with_json(&app, Method::POST, &format!("/api/alerts/{id}/ack"), &json!({"by": "ops", "comment": "looking"}))
            .await;
    assert_eq!(ack.status, StatusCode::OK, "{}", ack.text());
    assert_eq!(ack.json()["acknowledged"]["by"], "ops");
    let again = with_json(&app, Method::POST, &format!("/api/alerts/{id}/ack"), &json!({})).await;
    assert_error(&again, StatusCode::CONFLICT, "conflict");

    // Resolving takes no body at all.
    let resolved = send(&app, request(Method::POST, &format!("/api/alerts/{id}/resolve"), Some(TOKEN), None)).await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.text());
    assert_eq!(resolved.json()["state"], "resolved");
    assert_eq!(get(&app, "/api/alerts/history").await.json()["alerts"][0]["id"], id);
    let gone = send(&app, request(Method::POST, &format!("/api/alerts/{id}/resolve"), Some(TOKEN), None)).await;
    assert_error(&gone, StatusCode::CONFLICT, "conflict");
    let missing = send(&app, request(Method::POST, "/api/alerts/999999/ack", Some(TOKEN), None)).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
    let bad = send(&app, request(Method::POST, "/api/alerts/abc/ack", Some(TOKEN), None)).await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");

    let silence = with_json(
        &app,
        Method::POST,
        "/api/silences",
        &json!({"matcher": {"match": "rule", "value": "deadlocks"}, "duration_seconds": 600, "comment": "deploy"}),
    )
    .await;
    assert_eq!(silence.status, StatusCode::CREATED, "{}", silence.text());
    let sid = silence.json()["id"].as_u64().unwrap();
    assert_eq!(get(&app, "/api/silences").await.json()["silences"][0]["id"], sid);
    let ended = send(&app, request(Method::DELETE, &format!("/api/silences/{sid}"), Some(TOKEN), None)).await;
    assert_eq!(ended.status, StatusCode::OK);
    assert!(get(&app, "/api/silences").await.json()["silences"].as_array().unwrap().is_empty());
    let twice = send(&app, request(Method::DELETE, &format!("/api/silences/{sid}"), Some(TOKEN), None)).await;
    assert!(matches!(twice.status, StatusCode::NOT_FOUND | StatusCode::CONFLICT), "{}", twice.text());

    for bad in [
        json!({"matcher": {"match": "rule", "value": "no_such_rule"}, "duration_seconds": 60}),
        json!({"matcher": {"match": "all"}, "duration_seconds": -5}),
        json!({"matcher": {"match": "all"}, "duration_seconds": 60, "colour": "red"}),
    ] {
        let reply = with_json(&app, Method::POST, "/api/silences", &bad).await;
        assert_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    }
}

#[tokio::test]
async fn reset_clears_the_chosen_scope() {
    let (monitor, _) = manual_monitor();
    record_traffic(&monitor);
    let (_, app) = app(&monitor);
    let reply = with_json(&app, Method::POST, "/api/reset", &json!({"scope": "errors"})).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["reset"], "errors");
    let status = get(&app, "/api/status").await.json();
    assert_eq!(status["error_metrics"]["total"], 0);
    assert_eq!(status["query_metrics"]["total"], 21, "metrics stay on an errors reset");
    with_json(&app, Method::POST, "/api/reset", &json!({"scope": "all"})).await;
    assert_eq!(get(&app, "/api/status").await.json()["query_metrics"]["total"], 0);
    let bad = with_json(&app, Method::POST, "/api/reset", &json!({"scope": "everything"})).await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
}

#[tokio::test]
async fn bad_input_gets_a_json_error_with_the_right_status() {
    let (monitor, _) = manual_monitor();
    let (_, app) = app(&monitor);
    let cases: Vec<(&str, StatusCode, &str)> = vec![
        ("/api/queries?limit=0", StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ("/api/queries?limit=100000", StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ("/api/queries?limit=ten", StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ("/api/queries?sort=colour", StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ("/api/queries?unknown=1", StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ("/api/errors?window=2h", StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ("/api/alerts?min_severity=urgent", StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ("/api/nothing-here", StatusCode::NOT_FOUND, "not_found"),
        ("/no/such/path", StatusCode::NOT_FOUND, "not_found"),
    ];
    for (path, status, code) in cases {
        let reply = get(&app, path).await;
        assert_error(&reply, status, code);
    }
    let wrong_method = send(&app, request(Method::DELETE, "/api/status", Some(TOKEN), None)).await;
    assert_error(&wrong_method, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");

    let malformed = send(
        &app,
        axum::http::Request::builder()
            .method(Method::PUT)
            .uri("/api/config")
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from("{\"thresholds\": {"))
            .unwrap(),
    )
    .await;
    assert_error(&malformed, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    let not_json = send(
        &app,
        axum::http::Request::builder()
            .method(Method::POST)
            .uri("/api/reset")
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "text/plain")
            .body(axum::body::Body::from("scope=all"))
            .unwrap(),
    )
    .await;
    assert_error(&not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let huge = json!({"scope": "x".repeat(100_000)});
    let too_big = with_json(&app, Method::POST, "/api/reset", &huge).await;
    assert_error(&too_big, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

/// The application's own settings, as the binary would expose them.
#[derive(Debug, Clone)]
struct CleanupSettings {
    interval_seconds: Arc<Mutex<u64>>,
}

impl RuntimeConfig for CleanupSettings {
    fn current(&self) -> Value {
        json!({ "cleanup_interval_seconds": *self.interval_seconds.lock().unwrap() })
    }

    fn validate(&self, update: &Map<String, Value>) -> Result<(), RuntimeConfigError> {
        for (key, value) in update {
            if key != "cleanup_interval_seconds" {
                return Err(RuntimeConfigError { field: key.clone(), problem: "unknown setting".into() });
            }
            if !value.as_u64().is_some_and(|v| (60..=86_400).contains(&v)) {
                return Err(RuntimeConfigError { field: key.clone(), problem: format!("{value} is not 60 to 86400") });
            }
        }
        Ok(())
    }

    fn apply(&self, update: &Map<String, Value>) {
        if let Some(v) = update.get("cleanup_interval_seconds").and_then(Value::as_u64) {
            *self.interval_seconds.lock().unwrap() = v;
        }
    }
}

#[tokio::test]
async fn config_changes_apply_whole_or_not_at_all() {
    let (monitor, _) = manual_monitor();
    let settings = CleanupSettings { interval_seconds: Arc::new(Mutex::new(300)) };
    let state = AppState::builder(monitor.clone(), admin()).runtime_config(settings.clone()).build().unwrap();
    let app = router(state);
    let before = get(&app, "/api/config").await.json();
    assert_eq!(before["thresholds"]["slow_query"], 2.0);
    assert_eq!(before["runtime"]["cleanup_interval_seconds"], 300);
    assert!(before["rules"].as_array().unwrap().len() > 5);

    let refused: Vec<Value> = vec![
        json!({"thresholds": {"slow_query": 0.5, "error_rate_warning": -0.1}}),
        json!({"thresholds": {"slow_query": 0.5, "pool_utilization_warning": 1.5}}),
        json!({"thresholds": {"slow_query": -1}}),
        json!({"thresholds": {"slow_qurey": 1}}),
        json!({"thresholds": {"slow_query": 0.5}, "runtime": {"cleanup_interval_seconds": 5}}),
        json!({"thresholds": {"slow_query": 0.5}, "runtime": {"cleanup_every": 600}}),
        json!({"thresholds": {"slow_query": 0.5}, "rules": [{"name": "Bad Name"}]}),
        json!({"thresholds": {"slow_query": 0.5}, "colour": "blue"}),
    ];
    for body in refused {
        let reply = with_json(&app, Method::PUT, "/api/config", &body).await;
        assert_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
        assert_eq!(get(&app, "/api/config").await.json(), before, "refused {body} changed the config");
        assert_eq!(*settings.interval_seconds.lock().unwrap(), 300);
    }

    // A rule set with an unknown field inside a rule is refused too.
    let mut rules = before["rules"].clone();
    rules[0]["severity_colour"] = json!("red");
    let reply = with_json(&app, Method::PUT, "/api/config", &json!({"rules": rules})).await;
    assert_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert!(reply.json()["detail"].as_str().unwrap().contains("severity_colour"));

    let ok = with_json(
        &app,
        Method::PUT,
        "/api/config",
        &json!({"thresholds": {"slow_query": 0.5}, "runtime": {"cleanup_interval_seconds": 600}}),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.json()["thresholds"]["slow_query"], 0.5);
    assert_eq!(ok.json()["thresholds"]["error_rate_warning"], 0.01, "fields left out keep their values");
    assert_eq!(monitor.thresholds().slow_query, Duration::from_millis(500));
    assert_eq!(*settings.interval_seconds.lock().unwrap(), 600);

    // Without a runtime hook, runtime settings are refused by name.
    let (_, plain) = common::app(&monitor);
    let reply = with_json(&plain, Method::PUT, "/api/config", &json!({"runtime": {"x": 1}})).await;
    assert_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
}

#[tokio::test]
async fn nested_under_a_prefix_the_routes_and_errors_keep_working() {
    let (monitor, _) = manual_monitor();
    let (_, api) = app(&monitor);
    let app = axum::Router::new().nest("/admin/dbwarden", api);
    assert_eq!(get(&app, "/admin/dbwarden/api/status").await.status, StatusCode::OK);
    let missing = get(&app, "/admin/dbwarden/api/missing").await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn reports_are_reused_until_the_next_tick_or_change() {
    let (monitor, _) = manual_monitor();
    let (_, app) = app_with(&monitor, |a| a.report_cache = Duration::from_secs(3600));
    let total = |body: Value| body["query_metrics"]["total"].as_u64().unwrap();
    assert_eq!(total(get(&app, "/api/status").await.json()), 0);
    monitor.record_query("SELECT 1", Duration::from_millis(1), 1, Outcome::Success);
    assert_eq!(total(get(&app, "/api/status").await.json()), 0, "kept until the tick");
    let before = get(&app, "/health").await.json();
    monitor.tick();
    assert_eq!(total(get(&app, "/api/status").await.json()), 1, "a tick renews it");
    // A change made through the API renews it at once.
    monitor.record_query("SELECT 2", Duration::from_millis(1), 1, Outcome::Success);
    with_json(&app, Method::POST, "/api/reset", &json!({"scope": "errors"})).await;
    assert_eq!(total(get(&app, "/api/status").await.json()), 2);
    assert_eq!(get(&app, "/health").await.json()["status"], before["status"]);
}

#[tokio::test]
async fn pool_and_trend_carry_the_24_hour_history() {
    let (monitor, clock) = manual_monitor();
    monitor.tick();
    monitor.record_pool_sample(dbwarden_core::PoolSample { size: 10, idle: 2, in_use: 8, pending: 1, max: 10, min: 0 });
    clock.advance(Duration::from_secs(301));
    monitor.tick();
    let (_, app) = app(&monitor);
    let pool = get(&app, "/api/pool").await.json();
    let point = &pool["trend"][0];
    assert_eq!(point["utilization_max"], 0.8, "{pool}");
    assert_eq!(point["pending_max"], 1);
    let trend = get(&app, "/api/trend").await.json();
    assert_eq!(trend["points"].as_array().unwrap().len(), pool["trend"].as_array().unwrap().len());
    assert_eq!(trend["points"][0]["pool_utilization_max"], 0.8);
}
