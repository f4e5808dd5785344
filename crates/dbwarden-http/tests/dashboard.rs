//! The dashboard over HTTP: the page and its assets are served from the
//! binary with their content types, cache headers and a strict
//! Content-Security-Policy; a visitor without credentials gets the sign-in
//! form, a signed-in one the dashboard; everything works nested under a
//! prefix.

#![allow(missing_docs, clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use dbwarden_core::Monitor;
use dbwarden_http::dashboard::{CONTENT_SECURITY_POLICY, asset_names, asset_version};
use dbwarden_http::{AdminConfig, AdminToken, AppState, router};
use http::{HeaderMap, Request, StatusCode, header};
use tower::ServiceExt;

const TOKEN: &str = "dashboard-test-token-0123456789";

fn server() -> Router {
    let state = AppState::builder(Monitor::new(), AdminConfig::new(AdminToken::new(TOKEN).unwrap())).build().unwrap();
    router(state)
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 4 << 20).await.unwrap().to_vec();
    (status, headers, body)
}

async fn get(app: &Router, uri: &str) -> (StatusCode, HeaderMap, String) {
    let (status, headers, body) = send(app, Request::get(uri).body(Body::empty()).unwrap()).await;
    (status, headers, String::from_utf8(body).unwrap())
}

fn is_signin(page: &str) -> bool {
    page.contains(r#"<body data-view="signin">"#) && page.contains(r#"<div id="app" hidden>"#)
}

fn is_dashboard(page: &str) -> bool {
    page.contains(r#"<body data-view="dashboard">"#) && page.contains(r#"aria-labelledby="signin-title" hidden>"#)
}

#[tokio::test]
async fn a_visitor_without_credentials_gets_the_sign_in_form_with_strict_headers() {
    let app = server();
    let (status, headers, page) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
    assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self'") && !CONTENT_SECURITY_POLICY.contains("unsafe"));
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    assert!(is_signin(&page), "{page}");
    assert!(page.contains(r#"<form class="signin-card" method="post" action="login""#));
    assert!(page.contains(r#"name="token" type="password""#));
    // The page carries no data and no secret.
    assert!(!page.contains(TOKEN));

    // The API stays closed to the same visitor.
    let (status, _, _) = get(&app, "/api/status").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn signing_in_sets_a_cookie_that_opens_the_dashboard_and_the_api() {
    let app = server();
    // A wrong token is refused and sets no cookie.
    let (status, headers, _) = send(
        &app,
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"token":"not-the-token-at-all"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get(header::SET_COOKIE).is_none());

    // The form the page posts (no script needed) signs in and goes back to the page.
    let (status, headers, _) = send(
        &app,
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={TOKEN}")))
            .unwrap(),
    )
    .await;
    assert!(status.is_redirection(), "{status}");
    assert_eq!(headers[header::LOCATION], "/");
    let set_cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    let with_cookie =
        |uri: &str| Request::get(uri).header(header::COOKIE, cookie.as_str()).body(Body::empty()).unwrap();
    let (status, headers, body) = send(&app, with_cookie("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::VARY].to_str().unwrap().contains("Cookie"));
    assert!(is_dashboard(&String::from_utf8(body).unwrap()));
    let (status, _, body) = send(&app, with_cookie("/api/status")).await;
    assert_eq!(status, StatusCode::OK);
    let status_json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(status_json["monitor"]["name"].is_string());

    // The bearer token shows the dashboard too; a wrong one does not.
    let (_, _, body) = send(
        &app,
        Request::get("/").header(header::AUTHORIZATION, format!("Bearer {TOKEN}")).body(Body::empty()).unwrap(),
    )
    .await;
    assert!(is_dashboard(&String::from_utf8(body).unwrap()));
    let (_, _, body) = send(
        &app,
        Request::get("/").header(header::AUTHORIZATION, "Bearer wrong-token-wrong-token").body(Body::empty()).unwrap(),
    )
    .await;
    assert!(is_signin(&String::from_utf8(body).unwrap()));

    // After signing out, the same cookie shows the sign-in form again.
    let (status, _, _) =
        send(&app, Request::post("/logout").header(header::COOKIE, cookie.as_str()).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, body) = send(&app, with_cookie("/")).await;
    assert!(is_signin(&String::from_utf8(body).unwrap()));
}

/// Follows a redirect the way a browser does: `location` resolved against
/// the URL of the request that got it.
fn follow(from: &str, location: &http::HeaderValue) -> String {
    let base = reqwest::Url::parse(&format!("http://dbwarden.test{from}")).unwrap();
    let target = base.join(location.to_str().unwrap()).unwrap();
    match target.query() {
        Some(query) => format!("{}?{query}", target.path()),
        None => target.path().to_owned(),
    }
}

#[tokio::test]
async fn the_sign_in_form_leads_to_the_dashboard_at_the_root_and_nested() {
    for prefix in ["", "/admin/dbwarden", "/ops"] {
        let app = if prefix.is_empty() { server() } else { Router::new().nest(prefix, server()) };
        let login = format!("{prefix}/login");
        let (status, headers, _) = send(
            &app,
            Request::post(login.as_str())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("token={TOKEN}")))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{prefix}");
        let page = follow(&login, &headers[header::LOCATION]);
        let cookie = headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
        let (status, headers, body) = send(
            &app,
            Request::get(page.as_str()).header(header::COOKIE, cookie.as_str()).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{prefix}: the redirect to {page} must reach the page");
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let body = String::from_utf8(body).unwrap();
        assert!(is_dashboard(&body), "{prefix}: {body}");

        // Signing out with the page's form returns to the sign-in form.
        let logout = format!("{prefix}/logout");
        let (status, headers, _) = send(
            &app,
            Request::post(logout.as_str())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::COOKIE, cookie.as_str())
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{prefix}");
        let page = follow(&logout, &headers[header::LOCATION]);
        let (status, _, body) = send(
            &app,
            Request::get(page.as_str()).header(header::COOKIE, cookie.as_str()).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{prefix}: the redirect to {page} must reach the page");
        assert!(is_signin(&String::from_utf8(body).unwrap()), "{prefix}");
    }
}

#[tokio::test]
async fn assets_are_embedded_and_served_with_types_and_cache_headers() {
    let app = server();
    let embedded: [(&str, &[u8], &str); 3] = [
        ("app.js", include_bytes!("../assets/app.js"), "text/javascript; charset=utf-8"),
        ("app.css", include_bytes!("../assets/app.css"), "text/css; charset=utf-8"),
        ("favicon.svg", include_bytes!("../assets/favicon.svg"), "image/svg+xml"),
    ];
    assert_eq!(asset_names().collect::<Vec<_>>(), embedded.iter().map(|e| e.0).collect::<Vec<_>>());
    let version = asset_version();
    for (name, bytes, content_type) in embedded {
        // As the page asks for it: versioned, cached for good.
        let (status, headers, body) =
            send(&app, Request::get(format!("/assets/{name}?v={version}")).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(body, bytes, "{name} is served as built");
        assert_eq!(headers[header::CONTENT_TYPE], content_type, "{name}");
        assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let etag = headers[header::ETAG].clone();

        // Unversioned: cached briefly, revalidated by ETag.
        let (status, headers, _) =
            send(&app, Request::get(format!("/assets/{name}")).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=300, must-revalidate");
        let (status, _, body) = send(
            &app,
            Request::get(format!("/assets/{name}")).header(header::IF_NONE_MATCH, etag).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
    }
    let (status, _, _) = get(&app, "/assets/../Cargo.toml").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get(&app, "/assets/app.map").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Every `src`, `href` and `action` in the page.
fn urls(page: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\"", "action=\""] {
        let mut rest = page;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').unwrap();
            out.push(rest[..end].to_owned());
        }
    }
    out
}

#[tokio::test]
async fn the_page_uses_relative_urls_and_no_inline_script_or_style() {
    let app = server();
    let (_, _, page) = get(&app, "/").await;
    let urls = urls(&page);
    assert!(urls.len() >= 5, "{urls:?}");
    for url in &urls {
        let relative = !url.starts_with('/') && !url.contains("://") && !url.starts_with("//");
        assert!(relative || url.starts_with('#'), "absolute URL in the page: {url}");
    }
    assert!(page.contains(r#"<base href="./">"#));
    assert!(page.contains(&format!(r#"<script src="assets/app.js?v={}" defer></script>"#, asset_version())));
    assert_eq!(page.matches("<script").count(), 1, "one external script, nothing inline");
    assert!(!page.contains("<style") && !page.contains(" style=") && !page.contains(" onclick="));
    let script = String::from_utf8(include_bytes!("../assets/app.js").to_vec()).unwrap();
    for absolute in ["fetch('/", "EventSource('/", "\"/api", "'/api", "innerHTML", "eval("] {
        assert!(!script.contains(absolute), "the script uses {absolute}");
    }
}

#[tokio::test]
async fn nested_under_a_prefix_the_page_assets_and_sign_in_work() {
    let app = Router::new().nest("/admin/dbwarden", server());
    // axum answers a nested router's root without the trailing slash; the
    // page's base makes its relative URLs resolve under the prefix anyway.
    let (status, headers, page) = get(&app, "/admin/dbwarden").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
    assert!(is_signin(&page));
    assert!(page.contains(r#"<base href="./dbwarden/">"#), "{page}");
    let (_, _, page) = get(&app, "/").await;
    assert!(!page.contains("<base"), "nothing is mounted at the root of the outer app");
    let (status, headers, _) = get(&app, &format!("/admin/dbwarden/assets/app.css?v={}", asset_version())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/css; charset=utf-8");

    let (status, headers, _) = send(
        &app,
        Request::post("/admin/dbwarden/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={TOKEN}")))
            .unwrap(),
    )
    .await;
    assert!(status.is_redirection());
    let set_cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set_cookie.contains("Path=/admin/dbwarden"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap();
    let (_, _, body) =
        send(&app, Request::get("/admin/dbwarden").header(header::COOKIE, cookie).body(Body::empty()).unwrap()).await;
    assert!(is_dashboard(&String::from_utf8(body).unwrap()));
}
