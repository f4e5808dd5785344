//! The OpenAPI 3.1 document served at `/openapi.json`, built from the route
//! table the router is built from.

use serde_json::{Map, Value, json};

use crate::routes::{Access, RouteInfo, table};

const JSON: &str = "application/json";

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        303 => "See Other (form sign-in)",
        304 => "Not Modified: the ETag matched If-None-Match",
        401 => "No valid admin token or dashboard session",
        403 => "A change with the dashboard cookie from another origin",
        404 => "No such alert, silence or asset",
        409 => "The alert or silence is no longer in a state that allows this",
        413 => "The body is too large",
        415 => "The body is not JSON",
        422 => "Malformed JSON, an unknown field or a value out of range",
        429 => "Rate limited; see Retry-After",
        503 => "Not ready, failing, or too many event streams",
        _ => "See the error body",
    }
}

fn schema(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| json!({}))
}

fn operation(r: &RouteInfo) -> Value {
    let mut op = Map::new();
    let id: String = format!("{} {}", r.method.to_lowercase(), r.path)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    op.insert("operationId".into(), json!(id.trim_matches('_')));
    op.insert("summary".into(), json!(r.summary));
    op.insert("tags".into(), json!([r.tag]));
    let admin = [json!({ "bearerAuth": [] }), json!({ "cookieAuth": [] })];
    let security = match r.access {
        Access::Open | Access::OpenLimited => json!([]),
        Access::OpenWithDetails => json!([{}, admin[0], admin[1]]),
        Access::Admin => json!(admin),
    };
    op.insert("security".into(), security);
    let mut params: Vec<Value> = r
        .query
        .iter()
        .map(|p| json!({ "name": p.name, "in": "query", "required": false, "description": p.description, "schema": schema(p.schema) }))
        .collect();
    if r.path.contains("{id}") {
        params.push(json!({ "name": "id", "in": "path", "required": true, "description": "The numeric id", "schema": { "type": "integer", "minimum": 0 } }));
    }
    if r.path.contains("{name}") {
        let names: Vec<&str> = crate::dashboard::asset_names().collect();
        params.push(json!({ "name": "name", "in": "path", "required": true, "description": "The asset's file name", "schema": { "type": "string", "enum": names } }));
    }
    if !params.is_empty() {
        op.insert("parameters".into(), json!(params));
    }
    if let Some(body) = r.body {
        let reference = json!({ "$ref": format!("#/components/schemas/{body}") });
        let mut content = Map::new();
        content.insert("application/json".into(), json!({ "schema": reference }));
        if body == "LoginRequest" {
            content.insert("application/x-www-form-urlencoded".into(), json!({ "schema": reference }));
        }
        // Acting on an alert may be done without a body.
        let required = body != "AlertAction";
        op.insert("requestBody".into(), json!({ "required": required, "content": content }));
    }
    let mut responses = Map::new();
    let (status, media_types) = r.success;
    let mut content = Map::new();
    for media in media_types {
        let schema = if media.ends_with("json") { json!({ "type": "object" }) } else { json!({ "type": "string" }) };
        content.insert((*media).into(), json!({ "schema": schema }));
    }
    responses.insert(status.to_string(), json!({ "description": reason(status), "content": content }));
    let media = media_types.first().copied().unwrap_or(JSON);
    let error = json!({ "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } });
    let mut errors: Vec<u16> = r.errors.to_vec();
    if matches!(r.access, Access::Admin) {
        errors.extend([401, 429]);
        if r.method != "GET" {
            errors.push(403);
        }
    }
    if matches!(r.access, Access::OpenLimited) {
        errors.push(429);
    }
    if r.path == "/login" {
        responses.insert("303".into(), json!({ "description": reason(303) }));
    }
    errors.sort_unstable();
    errors.dedup();
    for code in errors {
        if code == 304 {
            responses.insert(code.to_string(), json!({ "description": reason(code) }));
        } else if r.path == "/assets/{name}" {
            // The page's own files answer a plain-text miss, like a file server.
            responses.insert(
                code.to_string(),
                json!({ "description": reason(code), "content": { "text/plain": { "schema": { "type": "string" } } } }),
            );
        } else if r.path == "/health" || r.path == "/readyz" {
            // These answer 503 with their own document, not the error body.
            responses.insert(
                code.to_string(),
                json!({ "description": reason(code), "content": { media: { "schema": { "type": "object" } } } }),
            );
        } else {
            responses.insert(code.to_string(), json!({ "description": reason(code), "content": error }));
        }
    }
    op.insert("responses".into(), Value::Object(responses));
    Value::Object(op)
}

fn components() -> Value {
    json!({
        "securitySchemes": {
            "bearerAuth": { "type": "http", "scheme": "bearer", "description": "The admin token (DBWARDEN_ADMIN_TOKEN)" },
            "cookieAuth": { "type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE, "description": "A dashboard session from POST /login" }
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "detail"],
                "properties": { "error": { "type": "string" }, "detail": { "type": "string" } }
            },
            "LoginRequest": {
                "type": "object", "additionalProperties": false, "required": ["token"],
                "properties": { "token": { "type": "string" } }
            },
            "AlertAction": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "by": { "type": "string", "minLength": 1, "maxLength": 100, "default": "admin" },
                    "comment": { "type": "string", "maxLength": 500, "description": "Acknowledgements only" }
                }
            },
            "SilenceRequest": {
                "type": "object", "additionalProperties": false, "required": ["matcher", "duration_seconds"],
                "properties": {
                    "matcher": {
                        "oneOf": [
                            { "type": "object", "required": ["match"], "properties": { "match": { "const": "all" } } },
                            { "type": "object", "required": ["match", "value"], "properties": { "match": { "const": "rule" }, "value": { "type": "string" } } },
                            { "type": "object", "required": ["match", "value"], "properties": { "match": { "const": "type" }, "value": { "type": "string" } } }
                        ]
                    },
                    "duration_seconds": { "type": "number", "exclusiveMinimum": 0, "maximum": 2592000 },
                    "created_by": { "type": "string", "maxLength": 100 },
                    "comment": { "type": "string", "maxLength": 500 }
                }
            },
            "ResetRequest": {
                "type": "object", "additionalProperties": false, "required": ["scope"],
                "properties": { "scope": { "type": "string", "enum": ["metrics", "errors", "all"] } }
            },
            "ConfigUpdate": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "thresholds": { "type": "object", "description": "Threshold fields to change; the others keep their values" },
                    "rules": { "type": "array", "items": { "type": "object" }, "description": "The whole alert rule set" },
                    "runtime": { "type": "object", "description": "The application's settings to change" }
                }
            }
        }
    })
}

/// The document for a router whose `/metrics` is public or not.
pub(crate) fn document(metrics_public: bool) -> Value {
    let mut paths = Map::new();
    for r in table(metrics_public) {
        let entry = paths.entry(r.path.to_owned()).or_insert_with(|| json!({}));
        entry[r.method.to_lowercase()] = operation(&r);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "dbwarden",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Database monitoring: health, metrics, queries, pool, errors, requests and alerts. Paths are relative to where the router is mounted."
        },
        "paths": paths,
        "components": components(),
    })
}
