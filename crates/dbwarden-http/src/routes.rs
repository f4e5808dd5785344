//! The route table: every route the router mounts, with who may call it and
//! what the OpenAPI document says about it. The router and the document are
//! both built from this one table, so neither can list a route the other
//! lacks.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{Method, Uri};
use axum::routing::{MethodFilter, MethodRouter, on, on_service};
use tower::Layer;

use crate::auth::GuardLayer;
use crate::error::{ApiError, MAX_BODY_BYTES};
use crate::state::AppState;
use crate::{api, auth, config, dashboard, events, health, metrics};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, unlimited (`/livez`, `/readyz`, `/openapi.json`).
    Open,
    /// Anyone; authorized callers see more (`/health`).
    OpenWithDetails,
    /// Anyone, rate limited (`/login`, `/logout`).
    OpenLimited,
    /// The admin token or a dashboard session, rate limited.
    Admin,
}

/// A query parameter, for the OpenAPI document.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Param {
    pub(crate) name: &'static str,
    pub(crate) schema: &'static str,
    pub(crate) description: &'static str,
}

/// One route as mounted.
#[derive(Debug, Clone, Copy)]
pub struct RouteInfo {
    /// The HTTP method.
    pub method: &'static str,
    /// The path, with `{id}` for path parameters (relative to where the
    /// router is nested).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    pub(crate) summary: &'static str,
    pub(crate) tag: &'static str,
    pub(crate) query: &'static [Param],
    /// The request body's schema name under `components/schemas`.
    pub(crate) body: Option<&'static str>,
    /// The success status and the media types its body may have.
    pub(crate) success: (u16, &'static [&'static str]),
    /// Error statuses besides 401 and 429 (added for admin routes).
    pub(crate) errors: &'static [u16],
}

const LIMIT: Param = Param {
    name: "limit",
    schema: r#"{"type":"integer","minimum":1,"maximum":500}"#,
    description: "How many entries to return",
};
const JSON: &str = "application/json";

const fn spec(
    method: &'static str,
    path: &'static str,
    access: Access,
    tag: &'static str,
    summary: &'static str,
) -> RouteInfo {
    RouteInfo { method, path, access, summary, tag, query: &[], body: None, success: (200, &[JSON]), errors: &[] }
}

/// Every route, in the order of the OpenAPI document.
pub(crate) fn table(metrics_public: bool) -> Vec<RouteInfo> {
    use Access::*;
    let metrics_access = if metrics_public { Open } else { Admin };
    vec![
        RouteInfo {
            success: (200, &["text/html"]),
            ..spec(
                "GET",
                "/",
                OpenWithDetails,
                "dashboard",
                "The dashboard page: the sign-in form, or the dashboard for a caller with a session or the token",
            )
        },
        RouteInfo {
            success: (200, &["text/javascript", "text/css", "image/svg+xml"]),
            errors: &[304, 404],
            ..spec(
                "GET",
                "/assets/{name}",
                Open,
                "dashboard",
                "A script, stylesheet or icon of the dashboard; cached for good when asked for with ?v=<version>",
            )
        },
        RouteInfo {
            errors: &[],
            ..spec("GET", "/livez", Open, "probes", "Liveness: the process answers; never touches the database")
        },
        RouteInfo {
            errors: &[503],
            ..spec(
                "GET",
                "/readyz",
                Open,
                "probes",
                "Readiness: the database answers and the pool is not exhausted (503 otherwise)",
            )
        },
        RouteInfo {
            success: (200, &["application/health+json"]),
            errors: &[503],
            ..spec(
                "GET",
                "/health",
                OpenWithDetails,
                "probes",
                "Health verdict in the IETF health-check format; checks only for authorized callers",
            )
        },
        RouteInfo {
            success: (200, &["text/plain"]),
            ..spec(
                "GET",
                "/metrics",
                metrics_access,
                "metrics",
                "Prometheus text, or OpenMetrics when Accept asks for application/openmetrics-text",
            )
        },
        spec("GET", "/openapi.json", Open, "meta", "This document"),
        RouteInfo {
            body: Some("LoginRequest"),
            errors: &[401, 415, 422],
            ..spec(
                "POST",
                "/login",
                OpenLimited,
                "auth",
                "Exchange the admin token for a dashboard session cookie (JSON or form)",
            )
        },
        spec("POST", "/logout", OpenLimited, "auth", "End the dashboard session and clear its cookie"),
        spec("GET", "/api/status", Admin, "reports", "Every current metric"),
        spec("GET", "/api/summary", Admin, "reports", "The human-readable performance summary and the health verdict"),
        spec("GET", "/api/performance", Admin, "reports", "The 0-100 performance score with recommendations"),
        RouteInfo {
            query: &[
                Param {
                    name: "sort",
                    schema: r#"{"type":"string","enum":["total_time","mean","p99","calls","errors"]}"#,
                    description: "Order, largest first",
                },
                LIMIT,
            ],
            errors: &[422],
            ..spec("GET", "/api/queries", Admin, "queries", "Top query fingerprints")
        },
        RouteInfo {
            query: &[LIMIT],
            errors: &[422],
            ..spec("GET", "/api/queries/slow", Admin, "queries", "The latest slow queries, newest first")
        },
        spec("GET", "/api/pool", Admin, "pool", "The pool now, its recent samples and its 24 h trend"),
        spec("GET", "/api/pool/checkouts", Admin, "pool", "Connections checked out now, oldest first"),
        RouteInfo {
            query: &[Param {
                name: "window",
                schema: r#"{"type":"string","enum":["1m","5m","15m","1h"],"default":"5m"}"#,
                description: "The rolling window",
            }],
            errors: &[422],
            ..spec(
                "GET",
                "/api/errors",
                Admin,
                "errors",
                "Errors over a window: rates by class, recurring patterns, recent errors",
            )
        },
        RouteInfo {
            query: &[LIMIT],
            errors: &[422],
            ..spec(
                "GET",
                "/api/requests",
                Admin,
                "requests",
                "Per-route request statistics and the latest N+1 findings",
            )
        },
        RouteInfo {
            query: &[Param {
                name: "min_severity",
                schema: r#"{"type":"string","enum":["low","medium","high","critical"]}"#,
                description: "Lowest severity to include",
            }],
            errors: &[422],
            ..spec("GET", "/api/alerts", Admin, "alerts", "Active (pending and firing) alerts, most severe first")
        },
        RouteInfo {
            query: &[LIMIT],
            errors: &[422],
            ..spec("GET", "/api/alerts/history", Admin, "alerts", "Resolved alerts, newest first")
        },
        RouteInfo {
            body: Some("AlertAction"),
            errors: &[404, 409, 415, 422],
            ..spec("POST", "/api/alerts/{id}/ack", Admin, "alerts", "Acknowledge an active alert (it stops repeating)")
        },
        RouteInfo {
            body: Some("AlertAction"),
            errors: &[404, 409, 415, 422],
            ..spec("POST", "/api/alerts/{id}/resolve", Admin, "alerts", "Resolve an active alert by hand")
        },
        spec("GET", "/api/silences", Admin, "alerts", "Silences in force"),
        RouteInfo {
            body: Some("SilenceRequest"),
            success: (201, &[JSON]),
            errors: &[415, 422],
            ..spec("POST", "/api/silences", Admin, "alerts", "Silence matching alerts for a while")
        },
        RouteInfo {
            errors: &[404, 409, 422],
            ..spec("DELETE", "/api/silences/{id}", Admin, "alerts", "End a silence now")
        },
        spec("GET", "/api/config", Admin, "config", "Thresholds, alert rules and the application's runtime settings"),
        RouteInfo {
            body: Some("ConfigUpdate"),
            errors: &[415, 422],
            ..spec(
                "PUT",
                "/api/config",
                Admin,
                "config",
                "Change thresholds, rules or runtime settings; validated whole, a refusal changes nothing",
            )
        },
        RouteInfo {
            body: Some("ResetRequest"),
            errors: &[415, 422],
            ..spec("POST", "/api/reset", Admin, "config", "Clear recorded metrics, errors or both")
        },
        spec(
            "GET",
            "/api/trend",
            Admin,
            "reports",
            "The in-memory trend history (24 h at 5-minute resolution by default)",
        ),
        RouteInfo {
            success: (200, &["text/event-stream"]),
            errors: &[503],
            ..spec("GET", "/api/events", Admin, "events", "The monitor's events as server-sent events")
        },
    ]
}

/// Mounts one route's handler behind the guard its access calls for.
#[derive(Debug, Clone, Copy)]
struct Mount<'a> {
    info: &'a RouteInfo,
    state: &'a AppState,
}

impl Mount<'_> {
    /// The method router of `handler`. A guarded handler is wrapped as a
    /// service, not given a route layer: a route layer puts the guard
    /// between two boxed routes, and the inner one's clone and boxed future
    /// cost about as much per request as the guard itself.
    fn to<H, T>(self, handler: H) -> Option<MethodRouter<AppState>>
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = match self.info.method {
            "GET" => MethodFilter::GET,
            "POST" => MethodFilter::POST,
            "PUT" => MethodFilter::PUT,
            "DELETE" => MethodFilter::DELETE,
            _ => return None,
        };
        // Only a handler of a request with a body reads one; the limit costs
        // every request it wraps an insert into the request's extensions.
        let limit = (filter != MethodFilter::GET).then(|| DefaultBodyLimit::max(MAX_BODY_BYTES));
        let guard = match self.info.access {
            Access::Open | Access::OpenWithDetails => {
                let route = on(filter, handler);
                return Some(match limit {
                    Some(limit) => route.layer(limit),
                    None => route,
                });
            }
            Access::OpenLimited => GuardLayer::rate_limited(self.state.clone()),
            Access::Admin => GuardLayer::admin(self.state.clone()),
        };
        let service = handler.with_state(self.state.clone());
        Some(match limit {
            Some(limit) => on_service(filter, guard.layer(limit.layer(service))),
            None => on_service(filter, guard.layer(service)),
        })
    }
}

/// The handler of a route in the table, mounted behind its guard.
fn handler(info: &RouteInfo, state: &AppState) -> Option<MethodRouter<AppState>> {
    let m = Mount { info, state };
    match (info.method, info.path) {
        ("GET", "/") => m.to(dashboard::index),
        ("GET", "/assets/{name}") => m.to(dashboard::asset),
        ("GET", "/livez") => m.to(health::livez),
        ("GET", "/readyz") => m.to(health::readyz),
        ("GET", "/health") => m.to(health::health),
        ("GET", "/metrics") => m.to(metrics::metrics),
        ("GET", "/openapi.json") => m.to(api::openapi),
        ("POST", "/login") => m.to(auth::login),
        ("POST", "/logout") => m.to(auth::logout),
        ("GET", "/api/status") => m.to(api::status),
        ("GET", "/api/summary") => m.to(api::summary),
        ("GET", "/api/performance") => m.to(api::performance),
        ("GET", "/api/queries") => m.to(api::queries),
        ("GET", "/api/queries/slow") => m.to(api::slow_queries),
        ("GET", "/api/pool") => m.to(api::pool),
        ("GET", "/api/pool/checkouts") => m.to(api::checkouts),
        ("GET", "/api/errors") => m.to(api::errors),
        ("GET", "/api/requests") => m.to(api::requests),
        ("GET", "/api/alerts") => m.to(api::alerts),
        ("GET", "/api/alerts/history") => m.to(api::alert_history),
        ("POST", "/api/alerts/{id}/ack") => m.to(api::acknowledge),
        ("POST", "/api/alerts/{id}/resolve") => m.to(api::resolve),
        ("GET", "/api/silences") => m.to(api::silences),
        ("POST", "/api/silences") => m.to(api::create_silence),
        ("DELETE", "/api/silences/{id}") => m.to(api::expire_silence),
        ("GET", "/api/config") => m.to(config::get_config),
        ("PUT", "/api/config") => m.to(config::put_config),
        ("POST", "/api/reset") => m.to(api::reset),
        ("GET", "/api/trend") => m.to(api::trend),
        ("GET", "/api/events") => m.to(events::stream),
        // A route in the table without a handler here is caught by the tests
        // that serve every route of the document.
        _ => None,
    }
}

/// Every route the router built from `state` mounts.
pub fn mounted_routes(metrics_public: bool) -> Vec<RouteInfo> {
    table(metrics_public)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no endpoint at {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed { method: method.to_string(), path: uri.path().to_owned() }
}

/// The axum router of dbwarden's HTTP surface, ready to be served on its
/// own or nested under a prefix (`.nest("/admin/dbwarden", router(state))`).
pub fn router(state: AppState) -> Router {
    let mut routes = Router::new();
    for info in table(state.inner.admin.metrics_public) {
        let Some(h) = handler(&info, &state) else {
            tracing::error!(target: "dbwarden::http", method = info.method, path = info.path, "route without a handler");
            continue;
        };
        routes = routes.route(info.path, h);
    }
    routes.fallback(not_found).method_not_allowed_fallback(method_not_allowed).with_state(state)
}
