//! The request-tracking layer on a real axum application with a monitored
//! SQLite pool: routes recorded by template, request ids carried into the
//! database layer, N+1 patterns, slow requests, and requests that are
//! cancelled or panic.

#![allow(missing_docs, clippy::unwrap_used)]

mod tracking_app;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use dbwarden_core::{Monitor, MonitorConfig, ResetScope, RouteStat, Thresholds};
use dbwarden_http::tracking::{CANCELLED_STATUS, UNMATCHED_ROUTE, generate_request_id};
use dbwarden_http::{RequestId, RequestTrackingLayer};
use http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;
use tracking_app::{App, BOOKS_PER_AUTHOR};

fn tracked(app: &App) -> Router {
    app.routes().layer(RequestTrackingLayer::new(app.state.monitor.clone()))
}

async fn get(router: &Router, uri: &str, request_id: Option<&str>) -> (StatusCode, http::HeaderMap, Value) {
    let mut request = Request::get(uri);
    if let Some(id) = request_id {
        request = request.header("x-request-id", id);
    }
    let response = router.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

fn route<'a>(routes: &'a [RouteStat], method: &str, template: &str) -> Option<&'a RouteStat> {
    routes.iter().find(|r| r.method.as_deref() == Some(method) && r.route.as_deref() == Some(template))
}

#[tokio::test]
async fn routes_are_recorded_by_template_never_by_raw_path() {
    let app = App::new(Monitor::new(), 4).await;
    let router = tracked(&app);
    for id in 1..=3 {
        let (status, _, body) = get(&router, &format!("/authors/{id}"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["route"], "/authors/{id}");
    }
    let (status, _, _) = get(&router, "/authors/99", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, body) = get(&router, "/api/items/4", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["route"], "/api/items/{item_id}");
    // Unmatched paths, many distinct ones, share one bounded bucket.
    for n in 0..40 {
        let (status, _, _) = get(&router, &format!("/probe/{n}/wp-login.php"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    let monitor = &app.state.monitor;
    let routes = monitor.routes();
    let authors = route(&routes, "GET", "/authors/{id}").expect("the template is recorded");
    assert_eq!(authors.requests, 4);
    assert_eq!(authors.errors, 0, "a 404 is not a server error");
    assert!((authors.avg_db_queries - 1.0).abs() < 1e-9, "one statement per request: {}", authors.avg_db_queries);
    assert_eq!(route(&routes, "GET", "/api/items/{item_id}").map(|r| r.requests), Some(1));
    let unmatched = route(&routes, "GET", UNMATCHED_ROUTE).expect("unmatched bucket");
    assert_eq!(unmatched.requests, 40);
    for r in &routes {
        let name = r.route.as_deref().unwrap_or("");
        assert!(!name.contains("/authors/1") && !name.contains("probe"), "raw path recorded: {name}");
    }
    assert_eq!(routes.iter().filter(|r| r.route.is_some()).count(), 3, "{routes:#?}");
    let requests = monitor.snapshot().request_metrics;
    assert_eq!(requests.total, 45);
    assert_eq!(requests.in_flight, 0);
}

#[tokio::test]
async fn request_ids_reach_the_database_layer_and_the_checkout_holders() {
    let app = App::new(Monitor::new(), 4).await;
    let addr = tracking_app::serve(tracked(&app)).await;
    let client = reqwest::Client::new();

    // A well-formed incoming id is kept, echoed, and names the holder.
    let response =
        client.get(format!("http://{addr}/orders/2")).header("x-request-id", "order-check.42").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "order-check.42");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["request_id"], "order-check.42");
    assert_eq!(body["db_queries"], 2, "both statements on the held connection count: {body}");
    assert!(body["db_time_ns"].as_u64().unwrap() > 0, "{body}");
    assert_eq!(body["holders"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["holders"][0]["request_id"], "order-check.42");
    assert_eq!(body["holders"][0]["route"], "/orders/{id}");

    // A malformed or oversized id is replaced by a generated one.
    for bad in ["has spaces", "x".repeat(129).as_str(), "quote\"id"] {
        let response = client.get(format!("http://{addr}/orders/1")).header("x-request-id", bad).send().await.unwrap();
        let echoed = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(echoed, bad);
        assert_eq!(echoed.len(), 36, "a generated UUID-shaped id: {echoed}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["request_id"], echoed.as_str());
        assert_eq!(body["holders"][0]["request_id"], echoed.as_str());
    }

    // Without a header, every request gets its own id.
    let a = client.get(format!("http://{addr}/authors/1")).send().await.unwrap();
    let b = client.get(format!("http://{addr}/authors/1")).send().await.unwrap();
    assert_ne!(a.headers()["x-request-id"], b.headers()["x-request-id"]);

    let routes = app.state.monitor.routes();
    let orders = route(&routes, "GET", "/orders/{id}").unwrap();
    assert_eq!(orders.requests, 4);
    assert!((orders.avg_db_queries - 2.0).abs() < 1e-9, "{}", orders.avg_db_queries);
    assert!(orders.avg_db_time_ms > 0.0);
    assert!(app.state.monitor.checkouts().is_empty(), "every checkout came back");
}

#[tokio::test]
async fn the_request_id_is_available_to_handlers() {
    let router = Router::new()
        .route("/whoami", axum::routing::get(|id: RequestId| async move { id.to_string() }))
        .route("/maybe", axum::routing::get(|id: Option<RequestId>| async move { format!("{}", id.is_some()) }))
        .layer(RequestTrackingLayer::new(Monitor::new()));
    let response = router
        .clone()
        .oneshot(Request::get("/whoami").header("x-request-id", "abc-123").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
    assert_eq!(&bytes[..], b"abc-123");
    let response = router.clone().oneshot(Request::get("/maybe").body(Body::empty()).unwrap()).await.unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
    assert_eq!(&bytes[..], b"true");

    // Without the layer there is no id: a server error, or `None`.
    let untracked = Router::new()
        .route("/whoami", axum::routing::get(|id: RequestId| async move { id.to_string() }))
        .route("/maybe", axum::routing::get(|id: Option<RequestId>| async move { format!("{}", id.is_some()) }));
    let response = untracked.clone().oneshot(Request::get("/whoami").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let response = untracked.oneshot(Request::get("/maybe").body(Body::empty()).unwrap()).await.unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
    assert_eq!(&bytes[..], b"false");

    // A custom header name is read and echoed instead.
    let monitor = Monitor::new();
    let router = Router::new()
        .route("/", axum::routing::get(|| async { "ok" }))
        .layer(RequestTrackingLayer::new(monitor).request_id_header(http::HeaderName::from_static("x-correlation-id")));
    let id = generate_request_id();
    let response = router
        .oneshot(Request::get("/").header("x-correlation-id", id.as_str()).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.headers()["x-correlation-id"], id.as_str());
    assert!(response.headers().get("x-request-id").is_none());
}

fn thresholds(f: impl FnOnce(&mut Thresholds)) -> Monitor {
    let mut t = Thresholds::default();
    f(&mut t);
    Monitor::builder().thresholds(t).build().expect("valid thresholds")
}

#[tokio::test]
async fn an_n_plus_one_route_is_reported_with_its_route() {
    // SQLite on a local file answers in microseconds; the total-time floor
    // is lowered so the count decides, as it would for a slower database.
    let monitor = thresholds(|t| t.n_plus_one_min_total = Duration::from_nanos(1));
    let app = App::new(monitor.clone(), 4).await;
    let router = tracked(&app);

    let (status, _, body) = get(&router, "/authors/2/books/joined", Some("joined-1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["db_queries"], 1);
    assert!(monitor.n_plus_one(10).is_empty(), "one statement per request is no N+1");

    let (status, _, body) = get(&router, "/authors/2/books", Some("n-plus-one-1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["db_queries"], BOOKS_PER_AUTHOR + 1);

    let findings = monitor.n_plus_one(10);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let finding = &findings[0];
    assert_eq!(finding.route, "/authors/{id}/books");
    assert_eq!(finding.method, "GET");
    assert_eq!(finding.request_id, "n-plus-one-1");
    assert_eq!(finding.count, BOOKS_PER_AUTHOR as u32);
    assert_eq!(finding.text, "SELECT title FROM books WHERE id = ?");
    assert_eq!(finding.table.as_deref(), Some("books"));
    assert_eq!(monitor.snapshot().request_metrics.n_plus_one, 1);
}

#[tokio::test]
async fn a_statement_repeated_fewer_times_than_the_minimum_is_no_n_plus_one() {
    let monitor = thresholds(|t| {
        t.n_plus_one_min_total = Duration::from_nanos(1);
        t.n_plus_one_min_count = BOOKS_PER_AUTHOR as u32 + 1;
    });
    let app = App::new(monitor.clone(), 4).await;
    let router = tracked(&app);
    get(&router, "/authors/1/books", None).await;
    assert!(monitor.n_plus_one(10).is_empty(), "{} runs are below the minimum", BOOKS_PER_AUTHOR);

    let mut t = (*monitor.thresholds()).clone();
    t.n_plus_one_min_count = BOOKS_PER_AUTHOR as u32;
    monitor.set_thresholds(t).unwrap();
    get(&router, "/authors/3/books", None).await;
    let findings = monitor.n_plus_one(10);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].count, BOOKS_PER_AUTHOR as u32);
}

#[tokio::test]
async fn slow_and_timed_out_requests_are_counted() {
    let monitor = thresholds(|t| {
        t.slow_request = Duration::from_millis(150);
        t.request_timeout = Duration::from_millis(400);
    });
    let app = App::new(monitor.clone(), 4).await;
    let router = tracked(&app);
    get(&router, "/slow?ms=200", None).await;
    get(&router, "/slow?ms=250", None).await;
    get(&router, "/slow?ms=500", None).await;

    let routes = monitor.routes();
    let slow = route(&routes, "GET", "/slow").unwrap();
    assert_eq!(slow.requests, 3);
    assert_eq!(slow.slow, 3);
    let requests = monitor.snapshot().request_metrics;
    assert_eq!(requests.slow, 3);
    assert_eq!(requests.timed_out, 1);
    assert!(requests.latency.p99_ms >= 500.0);
}

#[tokio::test]
async fn server_errors_count_toward_the_route_error_rate() {
    let app = App::new(Monitor::new(), 4).await;
    let router = tracked(&app);
    for _ in 0..3 {
        let (status, _, _) = get(&router, "/fail", None).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    get(&router, "/authors/1", None).await;
    let routes = app.state.monitor.routes();
    let fail = route(&routes, "GET", "/fail").unwrap();
    assert_eq!((fail.requests, fail.errors), (3, 3));
    assert!((fail.error_rate - 1.0).abs() < 1e-9);
    let snapshot = app.state.monitor.snapshot();
    assert_eq!(snapshot.request_metrics.errors, 3);
    assert_eq!(snapshot.error_metrics.total, 3, "the failing statements are database errors too");
}

#[tokio::test]
async fn a_cancelled_request_leaves_the_in_flight_count() {
    let app = App::new(Monitor::new(), 4).await;
    let router = tracked(&app);
    let monitor = app.state.monitor.clone();

    let started = app.state.hanging.notified();
    let request = Request::get("/hang/7").header("x-request-id", "gives-up").body(Body::empty()).unwrap();
    let task = tokio::spawn(router.clone().oneshot(request));
    started.await;
    assert_eq!(monitor.snapshot().request_metrics.in_flight, 1);
    // The handler holds no checkout, but its statement was counted.
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());

    let requests = monitor.snapshot().request_metrics;
    assert_eq!(requests.in_flight, 0);
    assert_eq!(requests.peak_in_flight, 1);
    assert_eq!(requests.total, 1);
    assert_eq!(requests.errors, 0, "{CANCELLED_STATUS} is the client's doing, not a server error");
    let routes = monitor.routes();
    let hang = route(&routes, "GET", "/hang/{id}").unwrap();
    assert_eq!(hang.requests, 1);
    assert!((hang.avg_db_queries - 1.0).abs() < 1e-9);
}

#[tokio::test]
async fn a_client_that_disconnects_from_a_real_server_is_recorded_as_cancelled() {
    use tokio::io::AsyncWriteExt;

    let app = App::new(Monitor::new(), 4).await;
    let monitor = app.state.monitor.clone();
    let addr = tracking_app::serve(tracked(&app)).await;
    for round in 1..=3_u64 {
        let started = app.state.hanging.notified();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(format!("GET /hang/{round} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).await.unwrap();
        started.await;
        assert_eq!(monitor.snapshot().request_metrics.in_flight, 1);
        drop(stream);
        // hyper notices the closed connection and drops the request's future.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while monitor.snapshot().request_metrics.in_flight != 0 {
            assert!(tokio::time::Instant::now() < deadline, "the dropped request stayed in flight");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(monitor.snapshot().request_metrics.total, round);
    }
}

#[tokio::test]
async fn a_panicking_handler_is_a_server_error_and_leaves_the_in_flight_count() {
    let app = App::new(Monitor::new(), 4).await;
    let router = tracked(&app);
    let task = tokio::spawn(router.oneshot(Request::get("/panic").body(Body::empty()).unwrap()));
    assert!(task.await.unwrap_err().is_panic());
    let monitor = &app.state.monitor;
    let requests = monitor.snapshot().request_metrics;
    assert_eq!((requests.in_flight, requests.total, requests.errors), (0, 1, 1));
    let routes = monitor.routes();
    assert_eq!(route(&routes, "GET", "/panic").map(|r| r.errors), Some(1));
}

#[tokio::test]
async fn routes_past_the_cap_share_other_and_a_reset_keeps_recording() {
    let config = MonitorConfig { top_routes: 2, ..MonitorConfig::default() };
    let monitor = Monitor::builder().config(config).build().unwrap();
    let router = Router::new()
        .route("/a", axum::routing::get(|| async { "a" }))
        .route("/b", axum::routing::get(|| async { "b" }).post(|| async { "b" }))
        .route("/c", axum::routing::get(|| async { "c" }))
        .layer(RequestTrackingLayer::new(monitor.clone()));
    let send = |method: http::Method, uri: &'static str| {
        let router = router.clone();
        async move {
            let response =
                router.oneshot(Request::builder().method(method).uri(uri).body(Body::empty()).unwrap()).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
    };
    for _ in 0..2 {
        send(http::Method::GET, "/a").await;
        send(http::Method::GET, "/b").await;
        send(http::Method::POST, "/b").await;
        send(http::Method::GET, "/c").await;
    }
    let routes = monitor.routes();
    assert_eq!(routes.len(), 3, "two routes of their own and other: {routes:#?}");
    assert_eq!(route(&routes, "GET", "/a").map(|r| r.requests), Some(2));
    assert_eq!(route(&routes, "GET", "/b").map(|r| r.requests), Some(2));
    let other = routes.iter().find(|r| r.route.is_none()).expect("the other bucket");
    assert_eq!(other.requests, 4, "POST /b and GET /c are past the cap");

    // The layer keeps the handles it resolved; after a reset they still
    // record, and only routes with requests since are reported.
    monitor.reset(ResetScope::Metrics);
    assert!(monitor.routes().is_empty());
    send(http::Method::GET, "/a").await;
    send(http::Method::GET, "/c").await;
    let routes = monitor.routes();
    assert_eq!(route(&routes, "GET", "/a").map(|r| r.requests), Some(1));
    assert_eq!(routes.iter().find(|r| r.route.is_none()).map(|r| r.requests), Some(1));
    assert_eq!(routes.len(), 2, "{routes:#?}");
    assert_eq!(monitor.snapshot().request_metrics.total, 2);
}
