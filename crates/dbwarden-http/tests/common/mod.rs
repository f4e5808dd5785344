//! Helpers shared by the HTTP tests: a monitor on a manual clock, a router
//! guarded by a known token, and one-shot requests that read JSON back.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use dbwarden_core::{ErrorClass, ManualClock, Monitor, Outcome, Timestamp};
use dbwarden_http::{AdminConfig, AdminToken, AppState, router};
use serde_json::Value;
use tower::ServiceExt;

pub const TOKEN: &str = "test-admin-token-0123456789abcdef";

/// A monitor whose clock only moves when the test says so.
pub fn manual_monitor() -> (Monitor, ManualClock) {
    let clock = ManualClock::new(Timestamp::from_millis(1_790_000_000_000));
    let monitor = Monitor::builder().clock(clock.clone()).build().expect("monitor");
    (monitor, clock)
}

/// Admin settings for tests: no report cache (so every request sees what
/// was just recorded) and a rate limit too generous to get in the way.
pub fn admin() -> AdminConfig {
    let mut admin = AdminConfig::new(AdminToken::new(TOKEN).expect("token"));
    admin.report_cache = Duration::ZERO;
    if let Some(limit) = admin.rate_limit.as_mut() {
        limit.burst = 100_000;
        limit.per_second = 100_000.0;
    }
    admin
}

pub fn app(monitor: &Monitor) -> (AppState, Router) {
    app_with(monitor, |_| {})
}

pub fn app_with(monitor: &Monitor, tweak: impl FnOnce(&mut AdminConfig)) -> (AppState, Router) {
    let mut config = admin();
    tweak(&mut config);
    let state = AppState::builder(monitor.clone(), config).build().expect("state");
    (state.clone(), router(state))
}

/// A response, its body read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024).await.expect("body").to_vec();
    Reply { status, headers, body }
}

pub fn request(method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    match body {
        Some(json) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json.to_string()))
            .expect("request"),
        None => builder.body(Body::empty()).expect("request"),
    }
}

/// GET with the admin token.
pub async fn get(router: &Router, path: &str) -> Reply {
    send(router, request(Method::GET, path, Some(TOKEN), None)).await
}

/// A request with the admin token and a JSON body.
pub async fn with_json(router: &Router, method: Method, path: &str, body: &Value) -> Reply {
    send(router, request(method, path, Some(TOKEN), Some(body))).await
}

/// Records a little of everything, so reports have content.
pub fn record_traffic(monitor: &Monitor) {
    for i in 0..20u64 {
        monitor.record_session_created(Duration::from_millis(2));
        monitor.record_query(
            &format!("SELECT name FROM users WHERE id = {i}"),
            Duration::from_millis(3 + i),
            1,
            Outcome::Success,
        );
        monitor.record_session_closed(Duration::from_millis(10), Duration::from_micros(300));
    }
    monitor.record_query(
        "UPDATE accounts SET balance = balance - 10 WHERE id = 7",
        Duration::from_secs(3),
        0,
        Outcome::Failure { class: ErrorClass::Deadlock, message: "deadlock detected" },
    );
    monitor.record_pool_sample(dbwarden_core::PoolSample { size: 10, idle: 6, in_use: 4, pending: 0, max: 10, min: 2 });
    monitor.record_checkout(Duration::from_micros(800));
    monitor.record_checkin(Duration::from_millis(12));
    monitor.record_connection_opened(Duration::from_millis(4));
}

/// Asserts `body` is the JSON error shape with `code`.
pub fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.text());
    let body = reply.json();
    assert_eq!(body["error"], code, "body: {body}");
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "detail missing: {body}");
}
