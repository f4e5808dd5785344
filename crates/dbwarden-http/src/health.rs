//! `/livez`, `/readyz` and `/health`.
//!
//! Liveness never touches the database (Kubernetes restarts a pod whose
//! liveness fails; a database outage must not do that). Readiness asks the
//! [`ReadinessProbe`](crate::ReadinessProbe) and looks at the pool. Health
//! is the monitor's verdict in the IETF health-check shape.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dbwarden_core::{HealthCheck, HealthReport, HealthStatus};
use serde_json::{Map, Value, json};

use crate::auth::is_authorized;
use crate::cache::CachedBody;
use crate::state::{AppState, HealthDetails};

/// `GET /livez`: the process answers.
pub(crate) async fn livez() -> Response {
    no_store(Json(json!({ "status": "pass" })).into_response())
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The probe's answer: `None` without a probe, else whether it passed and
/// the (logged, not shown openly) reason.
async fn probe(state: &AppState) -> Option<Result<(), String>> {
    let probe = state.inner.probe.as_ref()?;
    if let Some(cached) = state.inner.cache.probe() {
        return Some(cached);
    }
    let timeout = state.inner.admin.probe_timeout;
    let result = match tokio::time::timeout(timeout, probe.check()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.0),
        Err(_) => Err(format!("no answer within {:.1} s", timeout.as_secs_f64())),
    };
    state.inner.cache.store_probe(result.clone());
    Some(result)
}

/// Whether the latest pool sample shows every connection in use with tasks
/// waiting: new work would queue behind a full pool.
fn pool_exhausted(state: &AppState) -> Option<bool> {
    let pool = state.inner.cache.snapshot(&state.inner.monitor).pool_metrics.current?;
    let s = pool.sample;
    Some(s.max > 0 && s.in_use >= s.max && s.pending > 0)
}

/// `GET /readyz`: 200 when the database answers and the pool is not
/// exhausted, 503 otherwise.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let mut checks = Map::new();
    let mut ready = true;
    if let Some(result) = probe(&state).await {
        if let Err(reason) = &result {
            tracing::warn!(target: "dbwarden::http", reason = %reason, "readiness probe failed");
            ready = false;
        }
        checks.insert("database".into(), json!(if result.is_ok() { "pass" } else { "fail" }));
    }
    if let Some(exhausted) = pool_exhausted(&state) {
        ready &= !exhausted;
        checks.insert("pool".into(), json!(if exhausted { "fail" } else { "pass" }));
    }
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({ "status": if ready { "pass" } else { "fail" }, "checks": checks });
    no_store((status, Json(body)).into_response())
}

fn component_type(component: &str) -> &'static str {
    match component {
        "database" | "pool" => "datastore",
        _ => "component",
    }
}

fn check_json(check: &HealthCheck) -> Value {
    let mut v = json!({
        "componentId": check.component,
        "componentType": component_type(check.component),
        "observedValue": check.observed_value,
        "observedUnit": check.observed_unit,
        "status": check.status.as_str(),
        "time": check.time.to_rfc3339(),
    });
    if let Some(output) = &check.output {
        v["output"] = json!(output);
    }
    if let Some(threshold) = check.threshold.filter(|t| t.is_finite()) {
        v["threshold"] = json!(threshold);
    }
    v
}

/// The IETF document for `report`, with the probe's check added.
pub(crate) fn health_document(
    state: &AppState,
    report: &HealthReport,
    probe: Option<&Result<(), String>>,
    details: bool,
) -> (HealthStatus, Value) {
    let mut status = report.status;
    let mut issues = report.issues.clone();
    let probe_check = probe.map(|result| {
        let pass = result.is_ok();
        if !pass {
            status = HealthStatus::Fail;
            issues.insert(0, "the database does not answer".to_owned());
        }
        json!({
            "componentId": "database",
            "componentType": "datastore",
            "observedValue": pass,
            "status": if pass { "pass" } else { "fail" },
            "time": report.time.to_rfc3339(),
            "output": result.as_ref().err(),
        })
    });
    let mut doc = json!({
        "status": status.as_str(),
        "legacy_status": status.legacy(),
        "version": "1",
        "releaseId": env!("CARGO_PKG_VERSION"),
        "serviceId": state.inner.monitor.name(),
        "description": "dbwarden database health",
        "time": report.time.to_rfc3339(),
    });
    if details {
        let mut checks = Map::new();
        if let Some(c) = probe_check {
            checks.insert("database:reachable".into(), json!([c]));
        }
        for check in &report.checks {
            checks.insert(check.key(), json!([check_json(check)]));
        }
        doc["checks"] = Value::Object(checks);
        doc["issues"] = json!(issues);
        doc["metrics_summary"] = json!(report.metrics_summary);
    }
    (status, doc)
}

fn wants_details(state: &AppState, headers: &HeaderMap) -> bool {
    match state.inner.admin.health_details {
        HealthDetails::Never => false,
        HealthDetails::Always => true,
        HealthDetails::WhenAuthorized => is_authorized(state, headers),
    }
}

/// `GET /health`: 200 for pass and warn, 503 for fail.
pub(crate) async fn health(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    // The whole request rather than a `HeaderMap` extractor, which would
    // copy every header on each probe.
    let details = wants_details(&state, request.headers());
    let name = if details { CachedBody::HealthDetails } else { CachedBody::HealthStatus };
    let cache = &state.inner.cache;
    let (code, body) = match cache.body(name) {
        Some(kept) => kept,
        None => {
            let generation = cache.generation();
            let report = cache.health(&state.inner.monitor);
            let probe = probe(&state).await;
            if let Some(Err(reason)) = &probe {
                tracing::warn!(target: "dbwarden::http", reason = %reason, "health: the database does not answer");
            }
            let (status, doc) = health_document(&state, &report, probe.as_ref(), details);
            let code = if status == HealthStatus::Fail { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
            let bytes = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
            cache.store_body(name, generation, (code, bytes.clone()));
            (code, bytes)
        }
    };
    let mut response = (code, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/health+json"));
    no_store(response)
}
