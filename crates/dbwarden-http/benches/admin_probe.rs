//! The in-process cost of one admin request, for callgrind: sends
//! `DBWARDEN_PROBE_REQUESTS` (default 1000) one-shot requests to
//! `DBWARDEN_PROBE_PATH` (default `/api/status`) through the router, on a
//! current-thread runtime, with the admin token. The difference of two runs'
//! instruction counts over the difference of their request counts is the
//! cost of one request, free of start-up:
//!
//! ```text
//! cargo bench -p dbwarden-http --bench admin_probe --no-run
//! for n in 1000 3000; do DBWARDEN_PROBE_REQUESTS=$n valgrind --tool=callgrind \
//!     --callgrind-out-file=/tmp/probe.$n target/release/deps/admin_probe-* ; done
//! ```
//!
//! `/baseline/status-sized` is a static handler with a body as large as
//! `/api/status`'s, the floor of what axum and the body cost.
//! `DBWARDEN_PROBE_RATE_LIMIT=1` turns the rate limit on (with room for
//! every request); it is off by default, as in `wrk_endpoints`. The report
//! cache lasts an hour so every measured request hits it, as nearly every
//! request does in production.

#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::Request;
use axum::routing::get;
use dbwarden_http::{AdminConfig, AdminToken, AppState, RateLimitConfig, router};
use tower::ServiceExt;

mod common;
use common::TOKEN;

fn request(path: &str) -> Request<Body> {
    Request::builder().uri(path).header("authorization", format!("Bearer {TOKEN}")).body(Body::empty()).unwrap()
}

async fn body_len(app: &axum::Router, path: &str) -> usize {
    let response = app.clone().oneshot(request(path)).await.unwrap();
    assert!(response.status().is_success(), "{path} answered {}", response.status());
    axum::body::to_bytes(response.into_body(), 1 << 24).await.unwrap().len()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let requests: usize = std::env::var("DBWARDEN_PROBE_REQUESTS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let path = std::env::var("DBWARDEN_PROBE_PATH").unwrap_or_else(|_| "/api/status".to_owned());
    let rate_limit = std::env::var("DBWARDEN_PROBE_RATE_LIMIT").is_ok_and(|v| v == "1");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let monitor = common::populated_monitor();
        let mut admin = AdminConfig::new(AdminToken::new(TOKEN).unwrap());
        admin.rate_limit = rate_limit.then_some(RateLimitConfig { burst: u32::MAX, per_second: 1e9, max_clients: 10 });
        admin.report_cache = Duration::from_secs(3600);
        let state = AppState::builder(monitor, admin).build().unwrap();
        let sized = Bytes::from(vec![b'x'; body_len(&router(state.clone()), "/api/status").await]);
        let app = axum::Router::new()
            .route("/baseline/status-sized", get(move || std::future::ready(sized.clone())))
            .merge(router(state));
        let len = body_len(&app, &path).await;
        let mut total = 0;
        for _ in 0..requests {
            let response = app.clone().oneshot(request(&path)).await.unwrap();
            total += axum::body::to_bytes(response.into_body(), 1 << 24).await.unwrap().len();
        }
        assert_eq!(total, len * requests, "every answer has the same body");
        println!("{requests} requests to {path}, {len} bytes each");
    });
}
