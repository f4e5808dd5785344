//! `GET` and `PUT /api/config`: the monitor's thresholds and alert rules,
//! and the application's own settings through the
//! [`RuntimeConfig`](crate::RuntimeConfig) hook.
//!
//! A `PUT` is validated whole before anything changes: thresholds, rules and
//! runtime settings are each checked, and only when all pass are they
//! applied, so a refused request leaves the running configuration exactly as
//! it was. Thresholds and runtime settings left out of the body keep their
//! values; `rules`, when given, replaces the whole rule set.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use dbwarden_core::{AlertEngine, AlertRule, Thresholds};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

fn document(state: &AppState) -> Value {
    let monitor = &state.inner.monitor;
    json!({
        "thresholds": *monitor.thresholds(),
        "rules": monitor.rules(),
        "runtime": state.inner.runtime.as_ref().map(|r| r.current()),
    })
}

/// `GET /api/config`.
pub(crate) async fn get_config(State(state): State<AppState>) -> Response {
    Json(document(&state)).into_response()
}

/// The body of `PUT /api/config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigUpdate {
    thresholds: Option<Map<String, Value>>,
    rules: Option<Vec<Value>>,
    runtime: Option<Map<String, Value>>,
}

/// Keys of `given` that `parsed` (its round trip through the typed value)
/// does not have: fields the type silently ignored.
fn unknown_keys(given: &Value, parsed: &Value, path: &str, out: &mut Vec<String>) {
    match (given, parsed) {
        (Value::Object(g), Value::Object(p)) => {
            for (key, value) in g {
                let here = format!("{path}.{key}");
                match p.get(key) {
                    Some(inner) => unknown_keys(value, inner, &here, out),
                    None => out.push(here),
                }
            }
        }
        (Value::Array(g), Value::Array(p)) => {
            for (i, (gv, pv)) in g.iter().zip(p).enumerate() {
                unknown_keys(gv, pv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn parse_thresholds(current: &Thresholds, update: Map<String, Value>) -> Result<Thresholds, ApiError> {
    let mut merged = match serde_json::to_value(current) {
        Ok(Value::Object(map)) => map,
        _ => return Err(ApiError::Internal("the current thresholds could not be read".into())),
    };
    merged.extend(update);
    let thresholds: Thresholds =
        serde_json::from_value(Value::Object(merged)).map_err(|e| ApiError::invalid(format!("thresholds: {e}")))?;
    thresholds.validate().map_err(|e| ApiError::invalid(format!("thresholds: {e}")))?;
    Ok(thresholds)
}

fn parse_rules(raw: Vec<Value>) -> Result<Vec<AlertRule>, ApiError> {
    let mut rules = Vec::with_capacity(raw.len());
    for (i, value) in raw.into_iter().enumerate() {
        let rule: AlertRule =
            serde_json::from_value(value.clone()).map_err(|e| ApiError::invalid(format!("rules[{i}]: {e}")))?;
        let mut unknown = Vec::new();
        unknown_keys(&value, &serde_json::to_value(&rule).unwrap_or(Value::Null), &format!("rules[{i}]"), &mut unknown);
        if let Some(first) = unknown.first() {
            return Err(ApiError::invalid(format!("unknown field {first}")));
        }
        rules.push(rule);
    }
    // Building a throwaway engine checks each rule and the set (duplicate names).
    AlertEngine::new(rules.clone(), 1).map_err(|e| ApiError::invalid(format!("rules: {e}")))?;
    Ok(rules)
}

/// `PUT /api/config`: validates everything, then applies it; answers with
/// the configuration now in force.
pub(crate) async fn put_config(
    State(state): State<AppState>,
    ApiJson(update): ApiJson<ConfigUpdate>,
) -> Result<Response, ApiError> {
    let _serialized = state.inner.config_lock.lock().await;
    let monitor = &state.inner.monitor;
    let thresholds = update.thresholds.map(|t| parse_thresholds(&monitor.thresholds(), t)).transpose()?;
    let rules = update.rules.map(parse_rules).transpose()?;
    let runtime = match (update.runtime, &state.inner.runtime) {
        (None, _) => None,
        (Some(_), None) => return Err(ApiError::invalid("runtime: this server has no runtime settings")),
        (Some(map), Some(hook)) => {
            hook.validate(&map).map_err(|e| ApiError::invalid(format!("runtime.{e}")))?;
            Some((map, hook.clone()))
        }
    };
    // Everything is valid: apply. The monitor re-validates, which cannot fail now.
    if let Some(t) = thresholds {
        monitor.set_thresholds(t).map_err(|e| ApiError::Internal(format!("thresholds: {e}")))?;
    }
    if let Some(r) = rules {
        monitor.set_rules(r).map_err(|e| ApiError::Internal(format!("rules: {e}")))?;
    }
    if let Some((map, hook)) = runtime {
        hook.apply(&map);
    }
    state.inner.cache.invalidate();
    tracing::info!(target: "dbwarden::http", "configuration changed through the API");
    Ok(Json(document(&state)).into_response())
}
