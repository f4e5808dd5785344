//! The live parts: the server-sent event stream delivers what the monitor
//! records, a slow client skips instead of blocking it, and the router
//! works over a real TCP listener.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::*;
use dbwarden_core::{ErrorClass, Outcome};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// Guards the reads below against hanging forever if nothing arrives; the
/// tests assert what arrives, never how fast.
const PATIENCE: Duration = Duration::from_secs(10);

/// Reads the SSE body until `needle` has arrived; returns everything read.
async fn read_until<S>(stream: &mut S, needle: &str, seen: &mut String)
where
    S: futures_util::Stream<Item = Result<axum::body::Bytes, axum::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("{needle:?} did not arrive; got:\n{seen}"))
            .expect("stream ended")
            .expect("body error");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn event_stream_delivers_a_recorded_slow_query_and_the_tick() {
    let (monitor, _) = manual_monitor();
    let (_, app) = app(&monitor);
    let response = app.clone().oneshot(request(Method::GET, "/api/events", Some(TOKEN), None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut body = response.into_body().into_data_stream();
    let mut seen = String::new();
    read_until(&mut body, "event: ready", &mut seen).await;

    monitor.record_query(
        "SELECT * FROM orders WHERE customer_email = 'ann@example.com'",
        Duration::from_secs(3),
        1,
        Outcome::Success,
    );
    monitor.tick();
    read_until(&mut body, "event: tick", &mut seen).await;
    assert!(seen.contains("event: slow_query"), "{seen}");
    assert!(seen.contains("SELECT * FROM orders WHERE customer_email = ?"), "{seen}");
    assert!(!seen.contains("ann@example.com"), "a literal reached the stream");
}

#[tokio::test]
async fn a_slow_client_skips_events_and_the_monitor_never_waits() {
    let (monitor, _) = manual_monitor();
    let (_, app) = app_with(&monitor, |a| a.event_buffer = 4);
    let response = app.clone().oneshot(request(Method::GET, "/api/events", Some(TOKEN), None)).await.unwrap();
    let mut body = response.into_body().into_data_stream();
    let mut seen = String::new();
    read_until(&mut body, "event: ready", &mut seen).await;
    // Far more events than the buffer holds, with nobody reading.
    for i in 0..50 {
        monitor.record_query(
            &format!("DELETE FROM t{i} WHERE id = 1"),
            Duration::from_millis(1),
            0,
            Outcome::Failure { class: ErrorClass::ConstraintViolation, message: "violates foreign key" },
        );
    }
    monitor.tick();
    read_until(&mut body, "event: lagged", &mut seen).await;
    read_until(&mut body, "event: tick", &mut seen).await;
    assert!(seen.contains("\"skipped\":"), "{seen}");
}

#[tokio::test]
async fn event_streams_are_bounded() {
    let (monitor, _) = manual_monitor();
    let (_, app) = app_with(&monitor, |a| a.max_event_streams = 1);
    let first = app.clone().oneshot(request(Method::GET, "/api/events", Some(TOKEN), None)).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let second = send(&app, request(Method::GET, "/api/events", Some(TOKEN), None)).await;
    assert_error(&second, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    drop(first);
    let third = app.clone().oneshot(request(Method::GET, "/api/events", Some(TOKEN), None)).await.unwrap();
    assert_eq!(third.status(), StatusCode::OK, "a closed stream frees its slot");
}

async fn http(addr: SocketAddr, raw: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out)).await.expect("response").unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn the_router_serves_over_a_real_tcp_listener() {
    let (monitor, _) = manual_monitor();
    record_traffic(&monitor);
    let (state, _) = app(&monitor);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().nest("/admin/dbwarden", dbwarden_http::router(state));
    let server = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });

    let status = http(
        addr,
        &format!("GET /admin/dbwarden/api/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(status.contains("\"session_metrics\""), "{status}");

    let refused = http(addr, "GET /admin/dbwarden/api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(refused.contains("\"error\":\"unauthorized\""), "{refused}");

    let health = http(addr, "GET /admin/dbwarden/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(health.to_ascii_lowercase().contains("content-type: application/health+json"), "{health}");

    // The event stream over the socket: ready first, then what is recorded.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET /admin/dbwarden/api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut recorded = false;
    while !seen.contains("event: tick") {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await.expect("events").unwrap();
        assert!(n > 0, "stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        if !recorded && seen.contains("event: ready") {
            monitor.tick();
            recorded = true;
        }
    }
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    server.abort();
}

#[tokio::test]
async fn closing_the_event_streams_lets_a_graceful_shutdown_finish() {
    let (monitor, _) = manual_monitor();
    let (state, _) = app(&monitor);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let closer = state.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, dbwarden_http::router(state).into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
                closer.close_event_streams();
            })
            .await
            .unwrap();
    });
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(format!("GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("event: ready") {
        let n = tokio::time::timeout(PATIENCE, client.read(&mut buf)).await.expect("ready").unwrap();
        assert!(n > 0, "{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    stop.send(()).unwrap();
    tokio::time::timeout(PATIENCE, server).await.expect("the server stops while a client is still connected").unwrap();
    // The client sees the end of its stream.
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, client.read_to_end(&mut rest)).await.expect("stream ends").unwrap();
}

#[tokio::test]
async fn a_closed_hub_refuses_new_streams() {
    let (monitor, _) = manual_monitor();
    let (state, app) = app(&monitor);
    let response = app.clone().oneshot(request(Method::GET, "/api/events", Some(TOKEN), None)).await.unwrap();
    let mut body = response.into_body().into_data_stream();
    let mut seen = String::new();
    read_until(&mut body, "event: ready", &mut seen).await;
    state.close_event_streams();
    let end = tokio::time::timeout(PATIENCE, async {
        while let Some(chunk) = body.next().await {
            chunk.unwrap();
        }
    })
    .await;
    assert!(end.is_ok(), "the open stream ends");
    let refused = send(&app, request(Method::GET, "/api/events", Some(TOKEN), None)).await;
    assert_error(&refused, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}
