//! What the request-tracking layer costs per request in CPU, without a
//! network: the same axum router called in-process (`tower::ServiceExt`),
//! bare and behind `RequestTrackingLayer`, on a `/hello/{id}` route that
//! does almost nothing. Complements `tracking_wrk`, whose loopback
//! throughput a busy machine disturbs more.
//!
//! Run: `cargo bench -p dbwarden-http --bench tracking_layer`.

#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use dbwarden_core::Monitor;
use dbwarden_http::RequestTrackingLayer;
use http::Request;
use tower::{Service, ServiceExt};

async fn hello(Path(id): Path<u32>) -> String {
    format!("hello {id}")
}

fn call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let monitor = Monitor::new();
    let bare = Router::new().route("/hello/{id}", get(hello));
    let tracked = bare.clone().layer(RequestTrackingLayer::new(monitor.clone()));
    let mut group = c.benchmark_group("tracking_layer");
    group.measurement_time(Duration::from_secs(5));
    for (name, router) in [("bare", bare), ("tracked", tracked)] {
        let mut service = router.into_service::<Body>();
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let request = Request::get("/hello/42").body(Body::empty()).unwrap();
                    let response = service.ready().await.unwrap().call(request).await.unwrap();
                    axum::body::to_bytes(response.into_body(), 1024).await.unwrap()
                })
            })
        });
    }
    group.finish();
    assert!(monitor.snapshot().request_metrics.total > 0, "the tracked side recorded nothing");
}

criterion_group!(benches, call);
criterion_main!(benches);
