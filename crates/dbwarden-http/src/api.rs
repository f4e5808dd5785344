//! The JSON endpoints under `/api`: views of the monitor's reports, and the
//! actions on alerts, silences and recorded history.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use dbwarden_core::{AlertId, Matcher, QuerySort, ResetScope, Severity, SilenceId, Window};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::cache::CachedBody;
use crate::error::{ApiError, ApiJson, OptionalApiJson};
use crate::state::AppState;

/// Parses the query string into `T`, refusing unknown or malformed
/// parameters with 422.
pub(crate) fn query<T: DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|e| ApiError::invalid(format!("invalid query string: {}", e.body_text())))
}

fn bounded(name: &str, value: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    match value {
        None => Ok(default),
        Some(v) if (1..=max).contains(&v) => Ok(v),
        Some(v) => Err(ApiError::invalid(format!("{name} = {v} is out of range: expected 1 to {max}"))),
    }
}

/// Largest `limit` accepted by list endpoints.
pub(crate) const MAX_LIMIT: usize = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitQuery {
    limit: Option<usize>,
}

/// `GET /api/status`: every current metric.
pub(crate) async fn status(State(state): State<AppState>) -> Response {
    let cache = &state.inner.cache;
    let (code, body) = match cache.body(CachedBody::Status) {
        Some(kept) => kept,
        None => {
            let generation = cache.generation();
            let snapshot = cache.snapshot(&state.inner.monitor);
            let health = cache.health(&state.inner.monitor);
            let mut body = serde_json::to_value(&*snapshot).unwrap_or(Value::Null);
            body["health"] = json!({ "status": health.status, "issues": health.issues });
            let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
            cache.store_body(CachedBody::Status, generation, (StatusCode::OK, bytes.clone()));
            (StatusCode::OK, bytes)
        }
    };
    json_bytes(code, body)
}

/// A response with an already serialized JSON body, built directly: through
/// a tuple's `IntoResponse`, the body first gets an `application/octet-stream`
/// content type that the header part then replaces, which a cached
/// `/api/status` paid on every request.
pub(crate) fn json_bytes(code: StatusCode, body: Bytes) -> Response {
    let mut response = Response::new(axum::body::Body::from(body));
    *response.status_mut() = code;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `GET /api/summary`: the human summary and the verdict.
pub(crate) async fn summary(State(state): State<AppState>) -> Response {
    let monitor = &state.inner.monitor;
    let health = state.inner.cache.health(monitor);
    let text = monitor.summary_text();
    Json(json!({
        "status": health.status,
        "legacy_status": health.status.legacy(),
        "generated_at": monitor.now(),
        "issues": health.issues,
        "metrics_summary": health.metrics_summary,
        "lines": text.lines().collect::<Vec<_>>(),
        "text": text,
    }))
    .into_response()
}

/// `GET /api/performance`: the 0–100 score with recommendations.
pub(crate) async fn performance(State(state): State<AppState>) -> Response {
    Json(state.inner.monitor.performance()).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueriesQuery {
    sort: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/queries?sort=total_time|mean|p99|calls|errors&limit=N`.
pub(crate) async fn queries(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let q: QueriesQuery = query(&uri)?;
    let sort = match q.sort.as_deref() {
        None => QuerySort::TotalTime,
        Some(s) => QuerySort::parse(s).ok_or_else(|| {
            ApiError::invalid(format!("sort = {s} is not one of total_time, mean, p99, calls, errors"))
        })?,
    };
    let limit = bounded("limit", q.limit, 20, MAX_LIMIT)?;
    let queries = state.inner.monitor.top_queries(sort, limit);
    Ok(Json(json!({ "sort": sort, "limit": limit, "queries": queries })).into_response())
}

/// `GET /api/queries/slow?limit=N`: the latest slow queries.
pub(crate) async fn slow_queries(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let q: LimitQuery = query(&uri)?;
    let limit = bounded("limit", q.limit, 50, MAX_LIMIT)?;
    let monitor = &state.inner.monitor;
    Ok(Json(json!({
        "threshold_ms": monitor.thresholds().slow_query.as_secs_f64() * 1000.0,
        "queries": monitor.slow_queries(limit),
    }))
    .into_response())
}

/// `GET /api/pool`: the pool now, its recent samples, and its share of the
/// 24 h trend (utilization and waiting tasks per trend interval).
pub(crate) async fn pool(State(state): State<AppState>) -> Response {
    let monitor = &state.inner.monitor;
    let mut body = serde_json::to_value(monitor.pool()).unwrap_or(Value::Null);
    let trend: Vec<Value> = monitor
        .trend()
        .into_iter()
        .map(|p| {
            json!({
                "at": p.at,
                "utilization_avg": p.pool_utilization_avg,
                "utilization_max": p.pool_utilization_max,
                "pending_max": p.pool_pending_max,
            })
        })
        .collect();
    body["trend"] = json!(trend);
    Json(body).into_response()
}

/// `GET /api/pool/checkouts`: connections checked out now, oldest first.
pub(crate) async fn checkouts(State(state): State<AppState>) -> Response {
    let monitor = &state.inner.monitor;
    let checkouts = monitor.checkouts();
    Json(json!({
        "count": checkouts.len(),
        "leak_threshold_seconds": monitor.thresholds().leak_detection.as_secs_f64(),
        "checkouts": checkouts,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowQuery {
    window: Option<String>,
}

/// `GET /api/errors?window=1m|5m|15m|1h`.
pub(crate) async fn errors(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let q: WindowQuery = query(&uri)?;
    let window = match q.window.as_deref() {
        None => Window::FiveMinutes,
        Some(w) => {
            Window::parse(w).ok_or_else(|| ApiError::invalid(format!("window = {w} is not one of 1m, 5m, 15m, 1h")))?
        }
    };
    Ok(Json(state.inner.monitor.errors(window)).into_response())
}

/// `GET /api/requests?limit=N`: per-route statistics and the latest N+1 findings.
pub(crate) async fn requests(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let q: LimitQuery = query(&uri)?;
    let limit = bounded("limit", q.limit, 50, MAX_LIMIT)?;
    let monitor = &state.inner.monitor;
    let snapshot = state.inner.cache.snapshot(monitor);
    Ok(Json(json!({
        "totals": snapshot.request_metrics,
        "routes": monitor.routes(),
        "n_plus_one": monitor.n_plus_one(limit),
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsQuery {
    min_severity: Option<String>,
}

/// `GET /api/alerts?min_severity=low|medium|high|critical`: active alerts.
pub(crate) async fn alerts(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let q: AlertsQuery = query(&uri)?;
    let min = match q.min_severity.as_deref() {
        None => Severity::Low,
        Some(s) => s.parse::<Severity>().map_err(|e| ApiError::invalid(format!("min_severity: {e}")))?,
    };
    let alerts: Vec<_> = state.inner.monitor.alerts().into_iter().filter(|a| a.severity >= min).collect();
    Ok(Json(json!({ "min_severity": min, "count": alerts.len(), "alerts": alerts })).into_response())
}

/// `GET /api/alerts/history?limit=N`: resolved alerts, newest first.
pub(crate) async fn alert_history(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let q: LimitQuery = query(&uri)?;
    let limit = bounded("limit", q.limit, 100, MAX_LIMIT)?;
    let mut alerts = state.inner.monitor.alert_history();
    alerts.truncate(limit);
    Ok(Json(json!({ "alerts": alerts })).into_response())
}

fn alert_id(raw: &str) -> Result<AlertId, ApiError> {
    raw.parse::<AlertId>().map_err(|e| ApiError::invalid(e.to_string()))
}

/// Who did it, and an optional comment; the token names no person, so the
/// caller may say who they are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionBody {
    by: Option<String>,
    comment: Option<String>,
}

const MAX_TEXT: usize = 500;

fn actor(by: Option<String>) -> Result<String, ApiError> {
    let by = by.unwrap_or_else(|| "admin".to_owned());
    let by = by.trim();
    if by.is_empty() || by.len() > 100 {
        return Err(ApiError::invalid("by must be 1 to 100 characters"));
    }
    Ok(by.to_owned())
}

fn comment(text: Option<String>) -> Result<Option<String>, ApiError> {
    match text {
        Some(c) if c.len() > MAX_TEXT => Err(ApiError::invalid(format!("comment is longer than {MAX_TEXT} bytes"))),
        other => Ok(other),
    }
}

/// `POST /api/alerts/{id}/ack`.
pub(crate) async fn acknowledge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalApiJson(body): OptionalApiJson<ActionBody>,
) -> Result<Response, ApiError> {
    let id = alert_id(&id)?;
    let body = body.unwrap_or_default();
    let alert = state.inner.monitor.acknowledge_alert(id, &actor(body.by)?, comment(body.comment)?)?;
    state.inner.cache.invalidate();
    Ok(Json(alert).into_response())
}

/// `POST /api/alerts/{id}/resolve`.
pub(crate) async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalApiJson(body): OptionalApiJson<ActionBody>,
) -> Result<Response, ApiError> {
    let id = alert_id(&id)?;
    let body = body.unwrap_or_default();
    if body.comment.is_some() {
        return Err(ApiError::invalid("resolve takes no comment; acknowledge the alert to leave one"));
    }
    let alert = state.inner.monitor.resolve_alert(id, &actor(body.by)?)?;
    state.inner.cache.invalidate();
    Ok(Json(alert).into_response())
}

/// The body of `POST /api/silences`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SilenceBody {
    matcher: Matcher,
    duration_seconds: f64,
    created_by: Option<String>,
    #[serde(default)]
    comment: String,
}

/// `GET /api/silences`: silences in force.
pub(crate) async fn silences(State(state): State<AppState>) -> Response {
    Json(json!({ "silences": state.inner.monitor.silences() })).into_response()
}

/// `POST /api/silences`: 201 with the silence.
pub(crate) async fn create_silence(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SilenceBody>,
) -> Result<Response, ApiError> {
    let duration = Duration::try_from_secs_f64(body.duration_seconds).map_err(|_| {
        ApiError::invalid(format!("duration_seconds = {} is not a valid number of seconds", body.duration_seconds))
    })?;
    if body.comment.len() > MAX_TEXT {
        return Err(ApiError::invalid(format!("comment is longer than {MAX_TEXT} bytes")));
    }
    let silence = state.inner.monitor.silence(body.matcher, duration, &actor(body.created_by)?, &body.comment)?;
    state.inner.cache.invalidate();
    Ok((StatusCode::CREATED, Json(silence)).into_response())
}

/// `DELETE /api/silences/{id}`: ends a silence now.
pub(crate) async fn expire_silence(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = id.parse::<SilenceId>().map_err(|e| ApiError::invalid(e.to_string()))?;
    let silence = state.inner.monitor.expire_silence(id)?;
    state.inner.cache.invalidate();
    Ok(Json(silence).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetBody {
    scope: ResetScope,
}

/// `POST /api/reset` with `{"scope": "metrics" | "errors" | "all"}`.
pub(crate) async fn reset(State(state): State<AppState>, ApiJson(body): ApiJson<ResetBody>) -> Response {
    state.inner.monitor.reset(body.scope);
    state.inner.cache.invalidate();
    tracing::info!(target: "dbwarden::http", scope = ?body.scope, "recorded history reset through the API");
    Json(json!({ "reset": body.scope })).into_response()
}

/// `GET /api/trend`: the in-memory trend history, oldest first.
pub(crate) async fn trend(State(state): State<AppState>) -> Response {
    let monitor = &state.inner.monitor;
    Json(json!({
        "interval_seconds": monitor.config().trend_interval.as_secs_f64(),
        "capacity": monitor.config().trend_points,
        "points": monitor.trend(),
    }))
    .into_response()
}

/// `GET /openapi.json`.
pub(crate) async fn openapi(State(state): State<AppState>) -> Response {
    Json(state.inner.openapi.clone()).into_response()
}
