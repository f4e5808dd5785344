//! The one error type every endpoint answers with: a status code and a JSON
//! body `{"error": <code>, "detail": <what is wrong>}`, and the extractors
//! that turn malformed input into it instead of axum's plain-text rejections.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dbwarden_core::AlertError;
use serde::de::DeserializeOwned;

/// What went wrong with a request; each variant maps to one status code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No credentials, or wrong ones (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but the request is refused: a cross-site request
    /// carrying the dashboard cookie (403).
    #[error("{0}")]
    Forbidden(String),
    /// Nothing at this path, or no such alert or silence (404).
    #[error("{0}")]
    NotFound(String),
    /// The path exists but not with this method (405).
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The path asked for.
        path: String,
    },
    /// The request conflicts with the current state, e.g. acknowledging a
    /// resolved alert (409).
    #[error("{0}")]
    Conflict(String),
    /// The body is too large (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body is not JSON (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Malformed JSON, an unknown field, a value out of range (422).
    #[error("{0}")]
    Invalid(String),
    /// Too many requests from this client; retry after that many seconds (429).
    #[error("too many requests: retry after {retry_after} s")]
    RateLimited {
        /// Seconds until a request would be accepted.
        retry_after: u64,
    },
    /// A dependency is down or a limit on streams is reached (503).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure (500); the detail is safe to show.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The status code this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The short machine-readable code in the body's `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Invalid(_) => "invalid_request",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        ApiError::Invalid(detail.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code(), "detail": self.to_string() });
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"dbwarden\""));
            }
            ApiError::RateLimited { retry_after } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

impl From<AlertError> for ApiError {
    fn from(e: AlertError) -> Self {
        match e {
            AlertError::NoSuchAlert(_) | AlertError::NoSuchSilence(_) => ApiError::NotFound(e.to_string()),
            AlertError::AlreadyResolved(_) | AlertError::AlreadyAcknowledged { .. } | AlertError::SilenceExpired(_) => {
                ApiError::Conflict(e.to_string())
            }
            other => ApiError::Invalid(other.to_string()),
        }
    }
}

/// The largest request body the API reads.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Whether `headers` declare a JSON body (`application/json` or `…+json`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Parses a JSON body into `T`; an empty body yields `None`.
pub(crate) fn parse_json_body<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType(
            "the request body must be JSON (Content-Type: application/json)".into(),
        ));
    }
    serde_json::from_slice(body).map(Some).map_err(|e| ApiError::Invalid(format!("invalid JSON body: {e}")))
}

/// A JSON body, required; malformed JSON, unknown fields and wrong types are
/// refused with 422 and a detail naming the problem (axum's own `Json`
/// answers 400 or 415 in plain text).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state).await.map_err(|e| body_error(&e.body_text()))?;
        match parse_json_body(&headers, &body)? {
            Some(value) => Ok(ApiJson(value)),
            None => Err(ApiError::Invalid("a JSON body is required".into())),
        }
    }
}

/// A JSON body that may be left out (an empty body means the defaults).
#[derive(Debug)]
pub struct OptionalApiJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state).await.map_err(|e| body_error(&e.body_text()))?;
        parse_json_body(&headers, &body).map(OptionalApiJson)
    }
}

fn body_error(text: &str) -> ApiError {
    if text.contains("length limit") || text.contains("too large") {
        ApiError::PayloadTooLarge(format!("the request body is larger than {MAX_BODY_BYTES} bytes"))
    } else {
        ApiError::Invalid(format!("could not read the request body: {text}"))
    }
}
