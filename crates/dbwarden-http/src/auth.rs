//! Who may call admin endpoints: the bearer token, or a dashboard session
//! opened by `POST /login` and kept in an HttpOnly, SameSite=Strict cookie.
//!
//! Sessions live on the server only: the cookie holds 256 random bits, the
//! server keeps their SHA-256 with an expiry, in a bounded map.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Form, FromRequest, OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use pin_project_lite::pin_project;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tower::{Layer, Service};

use crate::error::{ApiError, parse_json_body};
use crate::state::{AppState, random_hex};

/// The dashboard session cookie's name.
pub const SESSION_COOKIE: &str = "dbwarden_session";

/// Dashboard sessions: hashed ids with their expiry, bounded.
#[derive(Debug)]
pub(crate) struct LoginSessions {
    sessions: Mutex<HashMap<[u8; 32], Instant>>,
    capacity: usize,
    ttl: Duration,
}

fn hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl LoginSessions {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        LoginSessions { sessions: Mutex::new(HashMap::new()), capacity, ttl }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Instant>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a session; returns its id (for the cookie).
    pub(crate) fn open(&self) -> String {
        let id = random_hex::<32>();
        let now = Instant::now();
        let mut sessions = self.lock();
        sessions.retain(|_, expires| *expires > now);
        while sessions.len() >= self.capacity {
            // The session closest to expiry is the oldest sign-in.
            let Some(oldest) = sessions.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k) else { break };
            sessions.remove(&oldest);
        }
        sessions.insert(hash(&id), now + self.ttl);
        id
    }

    pub(crate) fn is_valid(&self, id: &str) -> bool {
        let now = Instant::now();
        let key = hash(id);
        let mut sessions = self.lock();
        match sessions.get(&key) {
            Some(expires) if *expires > now => true,
            Some(_) => {
                sessions.remove(&key);
                false
            }
            None => false,
        }
    }

    pub(crate) fn close(&self, id: &str) -> bool {
        self.lock().remove(&hash(id)).is_some()
    }

    /// Sessions open now (expired ones not yet swept included).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    // Bytes, not a char search: this runs on every admin request. `to_str`
    // admits visible ASCII, spaces and tabs only, so ASCII trimming is all
    // the trimming there is (and takes the separating space off the token).
    let space = value.bytes().position(|b| b == b' ')?;
    let (scheme, token) = value.split_at(space);
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim_ascii())
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
}

/// What a request presents, read once: a bearer token wins over a cookie.
#[derive(Debug, Clone, Copy)]
enum Credentials<'a> {
    Bearer(&'a str),
    Session(&'a str),
    Nothing,
}

impl<'a> Credentials<'a> {
    fn of(headers: &'a HeaderMap) -> Self {
        if let Some(token) = bearer(headers) {
            Credentials::Bearer(token)
        } else if let Some(id) = session_cookie(headers) {
            Credentials::Session(id)
        } else {
            Credentials::Nothing
        }
    }

    fn are_valid(self, state: &AppState) -> bool {
        match self {
            Credentials::Bearer(token) => state.inner.admin.token.matches(token),
            Credentials::Session(id) => state.inner.sessions.is_valid(id),
            Credentials::Nothing => false,
        }
    }
}

/// Whether the request carries the admin token or a live dashboard session.
pub(crate) fn is_authorized(state: &AppState, headers: &HeaderMap) -> bool {
    Credentials::of(headers).are_valid(state)
}

/// Whether a request that changes something comes from another site: its
/// `Origin` names a host other than the one it was sent to. Browsers send
/// `Origin` on cross-site (and on same-site) POST, PUT and DELETE.
fn cross_site(request: &Request) -> bool {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let headers = request.headers();
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin_host = origin.split_once("://").map(|(_, rest)| rest.trim_end_matches('/'));
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    match (origin_host, host) {
        (Some(o), Some(h)) => !o.eq_ignore_ascii_case(h),
        _ => true,
    }
}

/// The admin guard's verdict: `None` lets the request through, otherwise
/// the refusal: 401 without valid credentials, 403 for a cookie-authenticated
/// change from another site (SameSite=Strict already keeps the cookie off
/// those, this is the second lock).
fn admin_refusal(state: &AppState, request: &Request) -> Option<Response> {
    let detail = match Credentials::of(request.headers()) {
        credentials @ Credentials::Bearer(_) if credentials.are_valid(state) => return None,
        credentials @ Credentials::Session(_) if credentials.are_valid(state) => {
            if !cross_site(request) {
                return None;
            }
            tracing::warn!(target: "dbwarden::http", path = %request.uri().path(), "cross-site request with the dashboard cookie refused");
            return Some(
                ApiError::Forbidden(
                    "a change made with the dashboard cookie must come from the dashboard's own origin".into(),
                )
                .into_response(),
            );
        }
        Credentials::Bearer(_) => "the bearer token is not valid",
        Credentials::Session(_) => "the dashboard session has expired or was closed; sign in again",
        Credentials::Nothing => "this endpoint needs `Authorization: Bearer <admin token>` or a dashboard session",
    };
    Some(ApiError::Unauthorized(detail.into()).into_response())
}

/// The guard in front of a route's handler: the rate limit (429) for
/// `/login` and `/logout`, the rate limit then the admin credentials for
/// admin routes. Written by hand rather than with `middleware::from_fn`,
/// which boxes a future and builds a `Next` for every request: this runs
/// on every admin request, so its cost is the routes' fixed cost.
#[derive(Debug, Clone)]
pub(crate) struct GuardLayer {
    state: AppState,
    admin: bool,
}

impl GuardLayer {
    /// The rate limit, then the admin credentials.
    pub(crate) fn admin(state: AppState) -> Self {
        GuardLayer { state, admin: true }
    }

    /// The rate limit only.
    pub(crate) fn rate_limited(state: AppState) -> Self {
        GuardLayer { state, admin: false }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard { inner, state: self.state.clone(), admin: self.admin }
    }
}

/// The service [`GuardLayer`] wraps a route in.
#[derive(Debug, Clone)]
pub(crate) struct Guard<S> {
    inner: S,
    state: AppState,
    admin: bool,
}

pin_project! {
    /// The inner service's future, or the guard's refusal. The refusal is
    /// boxed so that the common case's future, moved into a box by the
    /// router, stays as small as the inner one.
    #[project = GuardFutureProj]
    pub(crate) enum GuardFuture<F> {
        Passed { #[pin] future: F },
        Refused { response: Option<Box<Response>> },
    }
}

impl<F, E> Future for GuardFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GuardFutureProj::Passed { future } => future.poll(cx),
            GuardFutureProj::Refused { response } => {
                // Polled again after it finished, a future may answer anything;
                // an empty response beats a panic.
                Poll::Ready(Ok(response.take().map(|r| *r).unwrap_or_default()))
            }
        }
    }
}

impl<S> Service<Request> for Guard<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = GuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let refusal = match crate::ratelimit::check(&self.state, &request) {
            Err(refused) => Some(refused),
            Ok(()) if self.admin => admin_refusal(&self.state, &request).map(Box::new),
            Ok(()) => None,
        };
        match refusal {
            None => GuardFuture::Passed { future: self.inner.call(request) },
            Some(response) => GuardFuture::Refused { response: Some(response) },
        }
    }
}

/// The prefix the router is nested under, from the original and the
/// stripped URI (`/admin/dbwarden/login` and `/login` give `/admin/dbwarden`).
fn mount_prefix(original: &Uri, uri: &Uri) -> String {
    let full = original.path();
    let rest = uri.path();
    let prefix = full.strip_suffix(rest).unwrap_or("");
    prefix.trim_end_matches('/').to_owned()
}

/// The path the router answers its page at, for a mount prefix from
/// [`mount_prefix`]: `/` at the root, the prefix itself when nested (axum
/// answers a router nested at `/admin/dbwarden` at that path, not at
/// `/admin/dbwarden/`). Where the sign-in and sign-out forms return to, and
/// the session cookie's path.
fn mount_point(prefix: &str) -> String {
    if prefix.is_empty() { "/".to_owned() } else { prefix.to_owned() }
}

fn cookie(state: &AppState, value: &str, path: &str, max_age: u64) -> Option<HeaderValue> {
    let secure = if state.inner.admin.secure_cookie { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .ok()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    token: String,
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
}

/// `POST /login`: exchanges the admin token (JSON `{"token": …}` or a form
/// field `token`) for a session cookie.
pub(crate) async fn login(
    State(state): State<AppState>,
    OriginalUri(original): OriginalUri,
    request: Request,
) -> Result<Response, ApiError> {
    let prefix = mount_prefix(&original, request.uri());
    let headers = request.headers().clone();
    let form = is_form(&headers);
    let token = if form {
        let Form(body) = Form::<LoginBody>::from_request(request, &state)
            .await
            .map_err(|e| ApiError::invalid(format!("invalid login form: {}", e.body_text())))?;
        body.token
    } else {
        let bytes = axum::body::Bytes::from_request(request, &state)
            .await
            .map_err(|e| ApiError::invalid(format!("could not read the request body: {}", e.body_text())))?;
        parse_json_body::<LoginBody>(&headers, &bytes)?
            .ok_or_else(|| ApiError::invalid("a body {\"token\": …} is required"))?
            .token
    };
    if !state.inner.admin.token.matches(&token) {
        tracing::warn!(target: "dbwarden::http", "dashboard sign-in with a wrong token");
        return Err(ApiError::Unauthorized("the token is not valid".into()));
    }
    let id = state.inner.sessions.open();
    let path = mount_point(&prefix);
    let ttl = state.inner.admin.session_ttl.as_secs().max(1);
    let set_cookie = cookie(&state, &id, &path, ttl).ok_or_else(|| ApiError::Internal("cookie".into()))?;
    let mut response = if form {
        Redirect::to(&path).into_response()
    } else {
        (StatusCode::OK, Json(serde_json::json!({ "signed_in": true, "expires_in_seconds": ttl }))).into_response()
    };
    response.headers_mut().insert(header::SET_COOKIE, set_cookie);
    Ok(response)
}

/// `POST /logout`: ends the dashboard session and clears the cookie.
pub(crate) async fn logout(
    State(state): State<AppState>,
    OriginalUri(original): OriginalUri,
    request: Request,
) -> Result<Response, ApiError> {
    let prefix = mount_prefix(&original, request.uri());
    let closed = session_cookie(request.headers()).is_some_and(|id| state.inner.sessions.close(id));
    let path = mount_point(&prefix);
    let mut response = if is_form(request.headers()) {
        Redirect::to(&path).into_response()
    } else {
        Json(serde_json::json!({ "signed_out": closed })).into_response()
    };
    if let Some(clear) = cookie(&state, "", &path, 0) {
        response.headers_mut().insert(header::SET_COOKIE, clear);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_bounded_and_expire() {
        let sessions = LoginSessions::new(2, Duration::from_secs(60));
        let a = sessions.open();
        let b = sessions.open();
        let c = sessions.open();
        assert_eq!(sessions.len(), 2);
        assert!(!sessions.is_valid(&a), "the oldest sign-in makes room");
        assert!(sessions.is_valid(&b) && sessions.is_valid(&c));
        assert!(sessions.close(&b));
        assert!(!sessions.is_valid(&b));
        let short = LoginSessions::new(2, Duration::from_millis(1));
        let d = short.open();
        std::thread::sleep(Duration::from_millis(5));
        assert!(!short.is_valid(&d));
    }

    #[test]
    fn prefix_is_what_nesting_stripped() {
        let original: Uri = "/admin/dbwarden/login".parse().expect("uri");
        let stripped: Uri = "/login".parse().expect("uri");
        assert_eq!(mount_prefix(&original, &stripped), "/admin/dbwarden");
        assert_eq!(mount_prefix(&stripped, &stripped), "");
    }

    #[test]
    fn cookie_and_bearer_are_read() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=b; dbwarden_session=xyz; c=d"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer  tok"));
        assert_eq!(session_cookie(&headers), Some("xyz"));
        assert_eq!(bearer(&headers), Some("tok"));
        for (value, token) in [
            ("Bearer tok \t", Some("tok")),
            ("BEARER\t tok", None),
            ("Basic dG9rOnRvaw==", None),
            ("Bearer", None),
            ("Bearer ", Some("")),
        ] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(bearer(&headers), token, "{value:?}");
        }
        headers.insert(header::AUTHORIZATION, HeaderValue::from_bytes(b"Bearer t\xc3\xa9").expect("value"));
        assert_eq!(bearer(&headers), None, "not visible ASCII");
    }
}
