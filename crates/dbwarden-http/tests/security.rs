//! Who may call what: every admin route of the OpenAPI document refuses a
//! caller without the token, the document and the router list the same
//! routes, dashboard sign-in works through its cookie, and the rate limit
//! answers 429 with Retry-After.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use dbwarden_http::{Access, AdminToken, mounted_routes};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Every (method, path) of the document with whether it requires the admin
/// credentials (security present and without the empty "anonymous" entry).
fn documented(doc: &Value) -> Vec<(Method, String, bool)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let security = op["security"].as_array().expect("every operation states its security");
            let admin = !security.is_empty() && !security.iter().any(|s| s.as_object().is_some_and(|o| o.is_empty()));
            out.push((method.to_uppercase().parse().expect("method"), path.clone(), admin));
        }
    }
    out
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "1").replace("{name}", "app.js")
}

async fn openapi(app: &axum::Router) -> Value {
    let reply = send(app, request(Method::GET, "/openapi.json", None, None)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();
    assert_eq!(doc["openapi"], "3.1.0");
    doc
}

#[tokio::test]
async fn every_admin_route_of_the_document_refuses_a_caller_without_the_token() {
    for metrics_public in [false, true] {
        let (monitor, _) = manual_monitor();
        let (_, app) = app_with(&monitor, |a| a.metrics_public = metrics_public);
        let doc = openapi(&app).await;
        let routes = documented(&doc);
        let admin: Vec<_> = routes.iter().filter(|(_, _, admin)| *admin).collect();
        assert!(admin.len() >= 20, "expected the whole admin API, found {}", admin.len());
        assert_eq!(
            routes.iter().any(|(_, p, admin)| p == "/metrics" && *admin),
            !metrics_public,
            "/metrics security follows the configuration"
        );
        for (method, path, _) in admin {
            let path = concrete(path);
            let anonymous = send(&app, request(method.clone(), &path, None, None)).await;
            assert_error(&anonymous, StatusCode::UNAUTHORIZED, "unauthorized");
            assert!(anonymous.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")));
            let wrong = send(&app, request(method.clone(), &path, Some("not-the-token-0123456789"), None)).await;
            assert_error(&wrong, StatusCode::UNAUTHORIZED, "unauthorized");
            let mut stale = request(method.clone(), &path, None, None);
            stale.headers_mut().insert(header::COOKIE, "dbwarden_session=00ff".parse().unwrap());
            assert_error(&send(&app, stale).await, StatusCode::UNAUTHORIZED, "unauthorized");
        }
    }
}

#[tokio::test]
async fn the_router_serves_exactly_the_routes_of_the_document() {
    let (monitor, _) = manual_monitor();
    let (_, app) = app(&monitor);
    let doc = openapi(&app).await;
    let in_doc: BTreeSet<(String, String)> = documented(&doc).into_iter().map(|(m, p, _)| (m.to_string(), p)).collect();
    let mounted: BTreeSet<(String, String)> =
        mounted_routes(false).into_iter().map(|r| (r.method.to_owned(), r.path.to_owned())).collect();
    assert_eq!(in_doc, mounted, "the router and the document disagree");
    for r in mounted_routes(false) {
        let documented_admin = documented(&doc).iter().any(|(m, p, a)| m.as_str() == r.method && p == r.path && *a);
        assert_eq!(documented_admin, r.access == Access::Admin, "{} {} security", r.method, r.path);
    }
    // Each documented route is served: with the token, no request lands in
    // the router's fallbacks (unknown path or method).
    for (method, path) in &in_doc {
        let req = request(method.parse().unwrap(), &concrete(path), Some(TOKEN), None);
        let response = app.clone().oneshot(req).await.unwrap();
        let status = response.status();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        if status == StatusCode::NOT_FOUND {
            let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap();
            let detail = body["detail"].as_str().unwrap();
            assert!(!detail.starts_with("no endpoint"), "{method} {path} is documented but not served: {detail}");
        }
    }
    // Every operation has responses and every path parameter is described.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path}");
            for param in ["id", "name"] {
                if path.contains(&format!("{{{param}}}")) {
                    let params = op["parameters"].as_array().unwrap();
                    assert!(params.iter().any(|p| p["in"] == "path" && p["name"] == param), "{method} {path}");
                }
            }
        }
    }
}

#[tokio::test]
async fn the_dashboard_page_and_its_assets_are_documented_with_the_types_they_are_served_with() {
    let (monitor, _) = manual_monitor();
    let (_, app) = app(&monitor);
    let doc = openapi(&app).await;
    let media = |path: &str| -> Vec<String> {
        let content = doc["paths"][path]["get"]["responses"]["200"]["content"].as_object();
        content.unwrap_or_else(|| panic!("{path} is documented with a 200 body")).keys().cloned().collect()
    };
    assert_eq!(media("/"), ["text/html"]);
    assert_eq!(doc["paths"]["/"]["get"]["tags"][0], "dashboard");
    let page = send(&app, request(Method::GET, "/", None, None)).await;
    assert!(page.header("content-type").unwrap().starts_with("text/html"));

    let asset_types = media("/assets/{name}");
    let names = doc["paths"]["/assets/{name}"]["get"]["parameters"][0]["schema"]["enum"].as_array().unwrap().clone();
    assert_eq!(names.len(), dbwarden_http::dashboard::asset_names().count());
    for name in names {
        let name = name.as_str().unwrap();
        let reply = send(&app, request(Method::GET, &format!("/assets/{name}"), None, None)).await;
        assert_eq!(reply.status, StatusCode::OK, "{name}");
        let served = reply.header("content-type").unwrap();
        assert!(asset_types.iter().any(|t| served.starts_with(t.as_str())), "{name} is served as {served}");
    }
    let responses = doc["paths"]["/assets/{name}"]["get"]["responses"].as_object().unwrap();
    assert!(responses.contains_key("304") && responses.contains_key("404"), "{responses:?}");
}

#[tokio::test]
async fn metrics_is_open_only_when_configured() {
    let (monitor, _) = manual_monitor();
    let (_, closed) = app(&monitor);
    let reply = send(&closed, request(Method::GET, "/metrics", None, None)).await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
    let (_, open) = app_with(&monitor, |a| a.metrics_public = true);
    let reply = send(&open, request(Method::GET, "/metrics", None, None)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.text().contains("dbwarden_build_info"));
}

fn login_request(path: &str, body: Body, content_type: &str) -> Request<Body> {
    Request::builder().method(Method::POST).uri(path).header(header::CONTENT_TYPE, content_type).body(body).unwrap()
}

#[tokio::test]
async fn dashboard_sign_in_sets_a_strict_http_only_cookie_that_logout_ends() {
    let (monitor, _) = manual_monitor();
    let (_, api) = app(&monitor);
    let app = axum::Router::new().nest("/admin/dbwarden", api);

    let wrong = send(
        &app,
        login_request(
            "/admin/dbwarden/login",
            Body::from(json!({"token": "wrong-token-0123456789"}).to_string()),
            "application/json",
        ),
    )
    .await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(wrong.header("set-cookie").is_none());

    let ok = send(
        &app,
        login_request("/admin/dbwarden/login", Body::from(json!({"token": TOKEN}).to_string()), "application/json"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let cookie = ok.header("set-cookie").unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin/dbwarden", "Max-Age="] {
        assert!(cookie.contains(attribute), "{attribute} missing from {cookie}");
    }
    assert!(!cookie.contains(TOKEN), "the cookie must not carry the token");
    let pair = cookie.split(';').next().unwrap().to_owned();

    let with_cookie = |path: &str| {
        let mut r = request(Method::GET, path, None, None);
        r.headers_mut().insert(header::COOKIE, pair.parse().unwrap());
        r
    };
    assert_eq!(send(&app, with_cookie("/admin/dbwarden/api/status")).await.status, StatusCode::OK);
    let health = send(&app, with_cookie("/admin/dbwarden/health")).await.json();
    assert!(health["checks"].is_object(), "a signed-in caller sees the health details");

    let mut logout = login_request("/admin/dbwarden/logout", Body::empty(), "application/json");
    logout.headers_mut().insert(header::COOKIE, pair.parse().unwrap());
    let out = send(&app, logout).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.json()["signed_out"], true);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_error(
        &send(&app, with_cookie("/admin/dbwarden/api/status")).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    // A new session; a change sent with it from another origin is refused,
    // from the dashboard's own origin it goes through.
    let again = send(
        &app,
        login_request("/admin/dbwarden/login", Body::from(json!({"token": TOKEN}).to_string()), "application/json"),
    )
    .await;
    let pair = again.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    let change = |origin: &str| {
        let mut r = request(Method::POST, "/admin/dbwarden/api/reset", None, Some(&json!({"scope": "errors"})));
        r.headers_mut().insert(header::COOKIE, pair.parse().unwrap());
        r.headers_mut().insert(header::HOST, "127.0.0.1:9750".parse().unwrap());
        r.headers_mut().insert(header::ORIGIN, origin.parse().unwrap());
        r
    };
    assert_error(&send(&app, change("https://evil.example")).await, StatusCode::FORBIDDEN, "forbidden");
    assert_error(&send(&app, change("null")).await, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(send(&app, change("http://127.0.0.1:9750")).await.status, StatusCode::OK);

    // A form sign-in (the dashboard's page) is redirected to the dashboard.
    let form = send(
        &app,
        login_request(
            "/admin/dbwarden/login",
            Body::from(format!("token={TOKEN}")),
            "application/x-www-form-urlencoded",
        ),
    )
    .await;
    assert_eq!(form.status, StatusCode::SEE_OTHER);
    assert_eq!(form.header("location"), Some("/admin/dbwarden"), "the nested page, which has no trailing slash");
    assert!(form.header("set-cookie").is_some());
}

fn from(ip: [u8; 4], method: Method, path: &str, token: Option<&str>) -> Request<Body> {
    let mut r = request(method, path, token, None);
    r.extensions_mut().insert(ConnectInfo(SocketAddr::from((ip, 40000))));
    r
}

#[tokio::test]
async fn admin_routes_are_rate_limited_per_client_with_retry_after() {
    let (monitor, _) = manual_monitor();
    let (_, app) = app_with(&monitor, |a| {
        let limit = a.rate_limit.as_mut().unwrap();
        limit.burst = 3;
        limit.per_second = 0.01;
    });
    for _ in 0..3 {
        assert_eq!(
            send(&app, from([10, 0, 0, 1], Method::GET, "/api/status", Some(TOKEN))).await.status,
            StatusCode::OK
        );
    }
    let limited = send(&app, from([10, 0, 0, 1], Method::GET, "/api/status", Some(TOKEN))).await;
    assert_error(&limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
    // Sign-in attempts count against the same client …
    let login = send(&app, {
        let mut r = login_request(
            "/login",
            Body::from(json!({"token": "guess-0123456789abcdef"}).to_string()),
            "application/json",
        );
        r.extensions_mut().insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 40000))));
        r
    })
    .await;
    assert_error(&login, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // … another client is not affected, and the probes never are.
    assert_eq!(send(&app, from([10, 0, 0, 2], Method::GET, "/api/status", Some(TOKEN))).await.status, StatusCode::OK);
    for path in ["/livez", "/readyz", "/health", "/openapi.json"] {
        assert_ne!(
            send(&app, from([10, 0, 0, 1], Method::GET, path, None)).await.status,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}

#[test]
fn the_token_never_shows_and_weak_tokens_are_refused() {
    let token = AdminToken::new(TOKEN).unwrap();
    assert!(!format!("{token:?}").contains(TOKEN));
    assert!(!format!("{token}").contains(TOKEN));
    assert!(token.matches(TOKEN));
    assert!(!token.matches(&TOKEN[..TOKEN.len() - 1]));
    let err = AdminToken::new("short").unwrap_err().to_string();
    assert!(err.contains("at least 16"), "{err}");
    assert!(AdminToken::new("has a space in it, too long").is_err());
    let (text, generated) = AdminToken::generate();
    assert_eq!(text.len(), 64);
    assert!(generated.matches(&text));
    assert_ne!(AdminToken::generate().0, text);
}

/// The router mounts routes only from the table the document is built from:
/// no source file of the API mounts a path of its own.
#[test]
fn no_route_is_mounted_outside_the_route_table() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut mounts = Vec::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // The tracking layer is added to an application's router, not this one.
        if name.starts_with("tracking") || path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            for call in [".route(", ".route_service(", ".nest(", ".nest_service("] {
                if line.contains(call) && !line.trim_start().starts_with("//") {
                    mounts.push(format!("{name}:{}: {}", i + 1, line.trim()));
                }
            }
        }
    }
    let expected = ["routes = routes.route(info.path, h)"];
    for m in &mounts {
        assert!(expected.iter().any(|e| m.contains(e)), "a route is mounted outside the table: {m}");
    }
    assert_eq!(mounts.len(), expected.len(), "{mounts:#?}");
}

/// Every route that takes a body refuses one larger than the limit: the
/// limit is put on each such route, not on the whole router.
#[tokio::test]
async fn every_route_with_a_body_refuses_an_oversized_one() {
    let (monitor, _) = manual_monitor();
    let (_, app) = app(&monitor);
    let doc = openapi(&app).await;
    let huge = json!({ "token": "x".repeat(100_000) });
    let mut checked = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op.get("requestBody").is_none() {
                continue;
            }
            let method: Method = method.to_uppercase().parse().unwrap();
            let reply = send(&app, request(method.clone(), &concrete(path), Some(TOKEN), Some(&huge))).await;
            if path == "/login" {
                // The sign-in reads its body itself and calls any failure to read it invalid.
                assert_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
                assert!(reply.text().contains("length limit"), "{}", reply.text());
            } else {
                assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
            }
            checked.push(format!("{method} {path}"));
        }
    }
    assert!(checked.len() >= 6, "{checked:?}");
}
