//! What the request-tracking layer costs per request in CPU, without a
//! network: the same axum router called in-process (`tower::ServiceExt`),
//! bare, behind a layer that only passes requests through (what axum's
//! wrapping of every route costs any layer) and behind
//! `RequestTrackingLayer`, on a `/hello/{id}` route that does almost
//! nothing. Complements `tracking_wrk`, whose loopback
//! throughput a busy machine disturbs more.
//!
//! Run: `cargo bench -p dbwarden-http --bench tracking_layer`.
//!
//! With `DBWARDEN_TRACKING_ITERATIONS=N` set it only sends N requests to one
//! side (`DBWARDEN_TRACKING_SIDE=bare`, `passthrough` or `tracked`, tracked by
//! default) and
//! exits, for counting instructions under `valgrind --tool=callgrind`
//! (repeatable whatever else the machine is doing): the difference between
//! two counts divided by the difference in N is the cost of one request.

#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use criterion::{Criterion, criterion_group};
use dbwarden_core::Monitor;
use dbwarden_http::RequestTrackingLayer;
use http::Request;
use tower::{Service, ServiceExt};

mod common;
use common::PassThroughLayer;

async fn hello(Path(id): Path<u32>) -> String {
    format!("hello {id}")
}

/// The bare, pass-through and tracked routers, each turned into routes once
/// (`with_state`) as `axum::serve` does, rather than per request.
fn routers(monitor: &Monitor) -> [(&'static str, Router); 3] {
    let bare = Router::new().route("/hello/{id}", get(hello));
    let passthrough = bare.clone().layer(PassThroughLayer);
    let tracked = bare.clone().layer(RequestTrackingLayer::new(monitor.clone()));
    [("bare", bare.with_state(())), ("passthrough", passthrough.with_state(())), ("tracked", tracked.with_state(()))]
}

async fn one_request(service: &mut axum::routing::RouterIntoService<Body>) -> axum::body::Bytes {
    let request = Request::get("/hello/42").body(Body::empty()).unwrap();
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    axum::body::to_bytes(response.into_body(), 1024).await.unwrap()
}

fn call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let monitor = Monitor::new();
    let mut group = c.benchmark_group("tracking_layer");
    group.measurement_time(Duration::from_secs(5));
    for (name, router) in routers(&monitor) {
        let mut service = router.into_service::<Body>();
        group.bench_function(name, |b| b.iter(|| rt.block_on(one_request(&mut service))));
    }
    group.finish();
    assert!(monitor.snapshot().request_metrics.total > 0, "the tracked side recorded nothing");
}

criterion_group!(benches, call);

fn main() {
    if let Some(n) = std::env::var("DBWARDEN_TRACKING_ITERATIONS").ok().and_then(|v| v.parse::<usize>().ok()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let monitor = Monitor::new();
        let side = std::env::var("DBWARDEN_TRACKING_SIDE").unwrap_or_else(|_| "tracked".to_owned());
        let router = routers(&monitor).into_iter().find(|(name, _)| *name == side).map(|(_, r)| r);
        let mut service =
            router.expect("DBWARDEN_TRACKING_SIDE is bare, passthrough or tracked").into_service::<Body>();
        let bytes: usize = rt.block_on(async {
            let mut bytes = 0;
            for _ in 0..n {
                bytes += one_request(&mut service).await.len();
            }
            bytes
        });
        println!("sent {n} requests, {bytes} bytes answered, {} recorded", monitor.snapshot().request_metrics.total);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
