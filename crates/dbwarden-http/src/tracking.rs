//! The request-tracking layer: a tower [`Layer`] for axum applications that
//! records every request into a [`Monitor`] — per-route latency, throughput,
//! error rate, requests in flight, slow and timed-out requests — and runs the
//! handler inside a [`RequestContext`] so that the database work done for the
//! request (statement count, database time, N+1 patterns, the holder of each
//! checkout) is attributed to it.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use dbwarden_core::Monitor;
//! use dbwarden_http::RequestTrackingLayer;
//!
//! let monitor = Monitor::new();
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "a user" }))
//!     .layer(RequestTrackingLayer::new(monitor));
//! ```
//!
//! Add it with [`Router::layer`](axum::Router::layer) (or `route_layer`):
//! the route template comes from axum's [`MatchedPath`], which the router
//! sets before it calls a route's service. Requests that match no route are
//! recorded under the single route [`UNMATCHED_ROUTE`], never under their raw
//! path, so a scanner probing random URLs cannot grow the route table.
//!
//! Every request gets an id: the incoming `x-request-id` header when it is a
//! well-formed id (at most [`MAX_REQUEST_ID_LEN`] visible ASCII characters
//! from a safe set), a fresh one otherwise. The id is echoed in the response
//! header, available to handlers as the [`RequestId`] extension, and named
//! as the holder of every monitored checkout the request makes.
//!
//! A request whose future is dropped before it answers (the client went
//! away, a timeout layer gave up) is recorded with status
//! [`CANCELLED_STATUS`] (499, as nginx logs it); one whose handler panics is
//! recorded as a 500. Either way it leaves the in-flight count.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::MatchedPath;
use dbwarden_core::Monitor;
use dbwarden_core::context::{RequestContext, WithContext, with_request};
use http::{HeaderName, HeaderValue, Request, Response};
use tower::{Layer, Service};

/// The route recorded for requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The status recorded for a request dropped before it answered.
pub const CANCELLED_STATUS: u16 = 499;

/// The status recorded for a request whose handler panicked.
pub const PANICKED_STATUS: u16 = 500;

/// The longest incoming request id accepted; longer ones are replaced.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The header a request id is read from and echoed in, by default.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// A request's id, inserted into the request's extensions by the layer so a
/// handler can log it or pass it on (`Extension<RequestId>`). It also gives
/// the request's [`RequestContext`]: the database time and statement count
/// so far.
#[derive(Clone)]
pub struct RequestId(Arc<RequestContext>);

impl RequestId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        self.0.request_id()
    }

    /// The request's context: route, method, database time and statements
    /// so far.
    pub fn context(&self) -> &Arc<RequestContext> {
        &self.0
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestId").field(&self.as_str()).finish()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for RequestId {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RequestId {}

/// Whether `id` is acceptable as a request id: 1 to [`MAX_REQUEST_ID_LEN`]
/// characters, each an ASCII letter, digit or one of `- _ . : / + = @`.
/// Anything else (spaces, quotes, control characters, non-ASCII) could
/// break a log line or a header, so it is replaced by a generated id.
pub fn is_valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'=' | b'@'))
}

/// A fresh request id shaped like a version-4 UUID
/// (`xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`).
///
/// Unique within the process (a counter goes into it, through a bijective
/// mix) and different from one process to the next (the mix is keyed with
/// random seeds); not meant as a secret. Cheap: no hashing of strings, no
/// formatting machinery, one allocation.
pub fn generate_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static SEEDS: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    let (a, b) = *SEEDS.get_or_init(|| {
        let keys = RandomState::new();
        let mut h = keys.build_hasher();
        h.write_u64(std::process::id().into());
        let first = h.finish();
        h.write_u64(first);
        (first, h.finish())
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let hi = (splitmix64(a.wrapping_add(n)) & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let lo = (splitmix64(b ^ n.rotate_left(29)) & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, nibble) in
        (0..32).map(|i| if i < 16 { (hi >> (60 - 4 * i)) & 0xf } else { (lo >> (60 - 4 * (i - 16))) & 0xf }).enumerate()
    {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push('-');
        }
        out.push(char::from(HEX[nibble as usize]));
    }
    out
}

/// The splitmix64 finalizer: a bijection on `u64` that scatters bits.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Tracks the requests of the services it wraps; see the [module
/// docs](self).
#[derive(Clone)]
pub struct RequestTrackingLayer {
    monitor: Monitor,
    header: HeaderName,
}

impl RequestTrackingLayer {
    /// A layer recording into `monitor`, reading and echoing request ids in
    /// `x-request-id`.
    pub fn new(monitor: Monitor) -> Self {
        RequestTrackingLayer { monitor, header: REQUEST_ID_HEADER }
    }

    /// Reads and echoes request ids in `header` instead of `x-request-id`
    /// (e.g. `x-correlation-id`).
    pub fn request_id_header(mut self, header: HeaderName) -> Self {
        self.header = header;
        self
    }

    /// The monitor requests are recorded into.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }
}

impl fmt::Debug for RequestTrackingLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestTrackingLayer")
            .field("monitor", &self.monitor.name())
            .field("header", &self.header)
            .finish()
    }
}

impl<S> Layer<S> for RequestTrackingLayer {
    type Service = RequestTracking<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTracking { inner, monitor: self.monitor.clone(), header: self.header.clone() }
    }
}

/// The service made by [`RequestTrackingLayer`].
#[derive(Clone)]
pub struct RequestTracking<S> {
    inner: S,
    monitor: Monitor,
    header: HeaderName,
}

impl<S> fmt::Debug for RequestTracking<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestTracking")
            .field("monitor", &self.monitor.name())
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequestTracking<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let started = Instant::now();
        let incoming =
            request.headers().get(&self.header).filter(|v| v.to_str().is_ok_and(is_valid_request_id)).cloned();
        let (id, header_value) = match incoming {
            // Echo the very header value (a cheap clone of shared bytes).
            Some(value) => (value.to_str().map(str::to_owned).unwrap_or_default(), Some(value)),
            None => {
                let id = generate_request_id();
                // Hex digits and dashes: always a valid header value.
                let value = HeaderValue::from_str(&id).ok();
                (id, value)
            }
        };
        let route = request.extensions().get::<MatchedPath>().map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
        let context = RequestContext::new(id, request.method().as_str(), route);
        request.extensions_mut().insert(RequestId(context.clone()));

        self.monitor.request_started();
        let guard = InFlight { monitor: self.monitor.clone(), context: context.clone(), started, finished: false };
        // `poll_ready` readied this very `inner`, and the returned future
        // does not borrow it, so no clone of the service is needed.
        let future = with_request(context, self.inner.call(request));
        ResponseFuture { future, guard, header: self.header.clone(), header_value }
    }
}

/// Records the end of one request exactly once: when it answers, or, if it
/// never does, when its future is dropped.
struct InFlight {
    monitor: Monitor,
    context: Arc<RequestContext>,
    started: Instant,
    finished: bool,
}

impl InFlight {
    fn finish(&mut self, status: u16) {
        if !self.finished {
            self.finished = true;
            let duration: Duration = self.started.elapsed();
            self.monitor.finish_request(&self.context, status, duration);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.finished {
            let status = if std::thread::panicking() { PANICKED_STATUS } else { CANCELLED_STATUS };
            if status == CANCELLED_STATUS {
                tracing::debug!(
                    target: "dbwarden",
                    request_id = self.context.request_id(),
                    route = self.context.route(),
                    "request cancelled before it answered"
                );
            }
            self.finish(status);
        }
    }
}

/// The future of a tracked request.
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<F> {
    future: WithContext<F>,
    guard: InFlight,
    header: HeaderName,
    header_value: Option<HeaderValue>,
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").field("request", &self.guard.context).finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match Pin::new(&mut this.future).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(mut response)) => {
                this.guard.finish(response.status().as_u16());
                if let Some(value) = this.header_value.take() {
                    response.headers_mut().insert(this.header.clone(), value);
                }
                Poll::Ready(Ok(response))
            }
            Poll::Ready(Err(error)) => {
                // The service failed without a response; whatever the
                // server makes of it, the client sees no success.
                this.guard.finish(500);
                Poll::Ready(Err(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_validated() {
        assert!(is_valid_request_id("abc-123_DEF.4:5/6+7=8@9"));
        assert!(is_valid_request_id(&"a".repeat(MAX_REQUEST_ID_LEN)));
        assert!(!is_valid_request_id(""));
        assert!(!is_valid_request_id(&"a".repeat(MAX_REQUEST_ID_LEN + 1)));
        assert!(!is_valid_request_id("has space"));
        assert!(!is_valid_request_id("quote\"d"));
        assert!(!is_valid_request_id("new\nline"));
        assert!(!is_valid_request_id("ünïcode"));
    }

    #[test]
    fn generated_ids_are_uuid_shaped_valid_and_distinct() {
        let ids: Vec<String> = (0..1000).map(|_| generate_request_id()).collect();
        for id in &ids {
            assert!(is_valid_request_id(id), "{id}");
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{id}");
            assert!(parts[2].starts_with('4'), "{id}");
            assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'), "{id}");
        }
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }
}
