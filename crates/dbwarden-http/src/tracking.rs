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
//! header, available to handlers through the [`RequestId`] extractor, and
//! named as the holder of every monitored checkout the request makes.
//!
//! A request whose future is dropped before it answers (the client went
//! away, a timeout layer gave up) is recorded with status
//! [`CANCELLED_STATUS`] (499, as nginx logs it); one whose handler panics is
//! recorded as a 500. Either way it leaves the in-flight count.
//!
//! The layer sits on the path of every request, so it does the least it can:
//! each (method, route template) pair is resolved once to a
//! [`dbwarden_core::RouteHandle`], kept by the route's own service and in a
//! fixed lock-free table the layer's services share, and recorded through
//! without a lock, a hash of the route or an allocation; a generated id is a
//! slice of a per-thread block of ids; the request id reaches handlers from
//! the request scope that carries it to the database layer, not as a request
//! extension (a fourth extension makes axum's extension map reallocate); the
//! handler's future is polled in place, not boxed.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, MatchedPath, OptionalFromRequestParts};
use axum::response::IntoResponse;
use dbwarden_core::context::{RequestContext, RequestScope, current_request};
use dbwarden_core::{Monitor, RouteHandle};
use http::request::Parts;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use pin_project_lite::pin_project;
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

/// A request's id, for a handler to log or pass on: an extractor
/// (`async fn handler(id: RequestId)`, or `Option<RequestId>` where the
/// layer may be absent). It also gives the request's [`RequestContext`]:
/// the database time and statement count so far.
///
/// It is read from the request scope the layer makes current while the
/// route's service runs (the scope that names the request to the database
/// layer), so it is found by extractors run inside the layer, not by
/// `Extension<RequestId>`: the layer inserts no request extension.
#[derive(Clone)]
pub struct RequestId(Arc<RequestContext>);

impl RequestId {
    /// The id of the request being served on this task, if a tracked
    /// request (or [`dbwarden_core::context::with_request`]) made one
    /// current.
    pub fn current() -> Option<RequestId> {
        current_request().map(RequestId)
    }

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

impl<S: Sync> FromRequestParts<S> for RequestId {
    type Rejection = MissingRequestId;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        RequestId::current().ok_or(MissingRequestId)
    }
}

impl<S: Sync> OptionalFromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(RequestId::current())
    }
}

/// The rejection of the [`RequestId`] extractor on a route that the
/// request-tracking layer does not wrap: a server error, since it is the
/// application's wiring that is wrong, not the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no request id: the route is not wrapped by RequestTrackingLayer")]
pub struct MissingRequestId;

impl IntoResponse for MissingRequestId {
    fn into_response(self) -> axum::response::Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

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

/// The length of a generated request id.
const GENERATED_ID_LEN: usize = 36;

/// Generated ids are formatted this many at a time, so that the text a
/// request's context copies and the header echoing it are slices of one
/// block, not allocations of their own.
const IDS_PER_BLOCK: usize = 64;

/// A fresh request id shaped like a version-4 UUID
/// (`xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`).
///
/// Unique within the process (a counter goes into it, through a bijective
/// mix) and different from one process to the next (the mix is keyed with
/// random seeds); not meant as a secret.
pub fn generate_request_id() -> String {
    with_generated_id(|id, _| id.to_owned())
}

/// A block of generated ids: the same text twice, as `str` (checked to be
/// UTF-8 once for the block) and as shared bytes (for header values), and
/// how many of its ids are handed out.
struct IdBlock {
    text: Box<str>,
    bytes: Bytes,
    used: usize,
}

impl IdBlock {
    /// The next id of the block, as text and as bytes; `None` once all are
    /// handed out.
    fn next(&mut self) -> Option<(&str, Bytes)> {
        let at = self.used * GENERATED_ID_LEN;
        let range = at..at + GENERATED_ID_LEN;
        let text = self.text.get(range.clone())?;
        if range.end > self.bytes.len() {
            return None;
        }
        self.used += 1;
        Some((text, self.bytes.slice(range)))
    }
}

/// Calls `f` with a fresh id (see [`generate_request_id`]) from this
/// thread's current block, as text and as the bytes of a header value; a
/// new block is formatted every [`IDS_PER_BLOCK`] ids. The text is lent,
/// not copied: `f` runs while the block is borrowed.
fn with_generated_id<R>(mut f: impl FnMut(&str, Bytes) -> R) -> R {
    thread_local! {
        static BLOCK: RefCell<Option<IdBlock>> = const { RefCell::new(None) };
    }
    let from_block = BLOCK.try_with(|cell| {
        let mut current = cell.try_borrow_mut().ok()?;
        let block = match &mut *current {
            Some(block) if block.used < IDS_PER_BLOCK => block,
            other => other.insert(id_block(IDS_PER_BLOCK)),
        };
        let (text, bytes) = block.next()?;
        Some(f(text, bytes))
    });
    if let Ok(Some(out)) = from_block {
        return out;
    }
    // Without the thread-local (a thread being torn down), one id alone.
    let mut block = id_block(1);
    let (text, bytes) = block.next().unwrap_or_default();
    f(text, bytes)
}

/// `count` fresh ids, one after the other.
fn id_block(count: usize) -> IdBlock {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static SEEDS: OnceLock<(u64, u64)> = OnceLock::new();
    let (a, b) = *SEEDS.get_or_init(|| {
        let keys = RandomState::new();
        let mut h = keys.build_hasher();
        h.write_u64(std::process::id().into());
        let first = h.finish();
        h.write_u64(first);
        (first, h.finish())
    });
    let first = NEXT.fetch_add(count as u64, Ordering::Relaxed);
    let mut out = Vec::with_capacity(count * GENERATED_ID_LEN);
    for n in (first..).take(count) {
        let hi = (splitmix64(a.wrapping_add(n)) & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
        let lo = (splitmix64(b ^ n.rotate_left(29)) & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        let mut id = [0; GENERATED_ID_LEN];
        write_uuid(&mut id, hi, lo);
        out.extend_from_slice(&id);
    }
    // Hex digits and dashes: always UTF-8, so never replaced.
    let text = String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    IdBlock { bytes: Bytes::copy_from_slice(text.as_bytes()), text: text.into_boxed_str(), used: 0 }
}

/// Writes `hi` then `lo` as 32 lowercase hex digits in the 8-4-4-4-12
/// layout, eight or four digits a store.
fn write_uuid(out: &mut [u8; GENERATED_ID_LEN], hi: u64, lo: u64) {
    let a = hex8((hi >> 32) as u32).to_be_bytes();
    let b = hex8(hi as u32).to_be_bytes();
    let c = hex8((lo >> 32) as u32).to_be_bytes();
    let d = hex8(lo as u32).to_be_bytes();
    out[..8].copy_from_slice(&a);
    out[8] = b'-';
    out[9..13].copy_from_slice(&b[..4]);
    out[13] = b'-';
    out[14..18].copy_from_slice(&b[4..]);
    out[18] = b'-';
    out[19..23].copy_from_slice(&c[..4]);
    out[23] = b'-';
    out[24..28].copy_from_slice(&c[4..]);
    out[28..].copy_from_slice(&d);
}

/// The eight hex digits of `v`, most significant in the highest byte: each
/// nibble spread into a byte of its own, then every byte turned into its
/// digit at once.
fn hex8(v: u32) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let x = u64::from(v);
    let x = (x | x << 16) & 0x0000_ffff_0000_ffff;
    let x = (x | x << 8) & 0x00ff_00ff_00ff_00ff;
    let x = (x | x << 4) & 0x0f0f_0f0f_0f0f_0f0f;
    // 1 in each byte holding 10 or more: those become letters.
    let letters = ((x + 6 * ONES) >> 4) & ONES;
    x + u64::from(b'0') * ONES + letters * u64::from(b'a' - b'0' - 10)
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
    shared: Arc<Shared>,
}

/// What every service made by one layer shares. axum clones a route's
/// service for every request, so this is one reference count to clone.
struct Shared {
    monitor: Monitor,
    header: HeaderName,
    routes: RouteCache,
}

impl Shared {
    fn new(monitor: Monitor, header: HeaderName) -> Arc<Shared> {
        Arc::new(Shared { monitor, header, routes: RouteCache::new() })
    }
}

impl RequestTrackingLayer {
    /// A layer recording into `monitor`, reading and echoing request ids in
    /// `x-request-id`.
    pub fn new(monitor: Monitor) -> Self {
        RequestTrackingLayer { shared: Shared::new(monitor, REQUEST_ID_HEADER) }
    }

    /// Reads and echoes request ids in `header` instead of `x-request-id`
    /// (e.g. `x-correlation-id`).
    pub fn request_id_header(self, header: HeaderName) -> Self {
        RequestTrackingLayer { shared: Shared::new(self.shared.monitor.clone(), header) }
    }

    /// The monitor requests are recorded into.
    pub fn monitor(&self) -> &Monitor {
        &self.shared.monitor
    }
}

impl fmt::Debug for RequestTrackingLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestTrackingLayer")
            .field("monitor", &self.shared.monitor.name())
            .field("header", &self.shared.header)
            .finish()
    }
}

impl<S> Layer<S> for RequestTrackingLayer {
    type Service = RequestTracking<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTracking {
            inner,
            service: Arc::new(ServiceShared { shared: self.shared.clone(), first: OnceLock::new() }),
        }
    }
}

/// What the clones of one service share: axum makes a service per route
/// and method, so the first (method, route template) pair it sees is nearly
/// always the only one, and is kept here to be found without a hash.
struct ServiceShared {
    shared: Arc<Shared>,
    first: OnceLock<FirstRoute>,
}

/// The first pair a service saw. The matched path is kept (a reference
/// count on axum's own string) so that while it lives its address names it:
/// a request to the same route carries the very same string.
struct FirstRoute {
    method: Method,
    matched: Option<MatchedPath>,
    handle: RouteHandle,
}

impl FirstRoute {
    fn is(&self, method: &Method, matched: Option<&MatchedPath>) -> bool {
        let same_path = match (&self.matched, matched) {
            (Some(mine), Some(theirs)) => {
                let (mine, theirs) = (mine.as_str(), theirs.as_str());
                std::ptr::eq(mine, theirs) || mine == theirs
            }
            (None, None) => true,
            _ => false,
        };
        same_path && self.method == *method
    }
}

impl ServiceShared {
    /// The handle of the request's route: the service's first pair, else
    /// from the layer's table; lent where it is kept, so that a request to
    /// a known route clones no handle.
    fn handle(&self, method: &Method, matched: Option<&MatchedPath>) -> Cow<'_, RouteHandle> {
        if let Some(first) = self.first.get()
            && first.is(method, matched)
        {
            return Cow::Borrowed(&first.handle);
        }
        let shared = &*self.shared;
        let path = matched.map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
        let handle = shared.routes.handle(&shared.monitor, method, path);
        // Set once; a racing request of another pair just loses.
        let _ =
            self.first.set(FirstRoute { method: method.clone(), matched: matched.cloned(), handle: handle.clone() });
        Cow::Owned(handle)
    }
}

/// Slots in a layer's cache of resolved routes: far more than the
/// (standard method, route template) pairs of most applications.
const ROUTE_CACHE_SLOTS: usize = 256;

/// Slots looked at for one pair before giving up on the cache.
const ROUTE_CACHE_PROBES: usize = 16;

/// The route handles a layer has resolved, by method and matched path: a
/// fixed open-addressed table whose slots are filled once and never change,
/// so a lookup is a few loads and a comparison of the path, with no lock.
/// Only the nine standard methods are cached (the pairs are then bounded by
/// the application's routes); a pair that finds no free slot, or an
/// extension method, is resolved in the monitor on every request, which is
/// correct, only slower.
struct RouteCache {
    slots: Box<[OnceLock<CachedRoute>]>,
}

struct CachedRoute {
    method: Method,
    path: Box<str>,
    handle: RouteHandle,
}

impl RouteCache {
    fn new() -> Self {
        RouteCache { slots: (0..ROUTE_CACHE_SLOTS).map(|_| OnceLock::new()).collect() }
    }

    /// The handle of `path` (a route template) under `method` in `monitor`.
    fn handle(&self, monitor: &Monitor, method: &Method, path: &str) -> RouteHandle {
        let start = slot_hash(method.as_str(), path);
        for probe in 0..ROUTE_CACHE_PROBES {
            let Some(slot) = self.slots.get((start + probe) % ROUTE_CACHE_SLOTS) else { break };
            match slot.get() {
                Some(cached) if cached.method == method && &*cached.path == path => return cached.handle.clone(),
                Some(_) => {}
                None => {
                    let handle = monitor.route(method.as_str(), path);
                    if is_standard(method) {
                        // Another thread may have filled the slot meanwhile;
                        // then this pair is cached at a later lookup.
                        let _ =
                            slot.set(CachedRoute { method: method.clone(), path: path.into(), handle: handle.clone() });
                    }
                    return handle;
                }
            }
        }
        monitor.route(method.as_str(), path)
    }
}

/// Whether `method` is one of the nine methods of RFC 9110 and 5789.
fn is_standard(method: &Method) -> bool {
    [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
        Method::CONNECT,
        Method::TRACE,
    ]
    .contains(method)
}

/// Where the probe for a (method, path) pair starts: a multiplicative hash
/// of the path eight bytes at a time, seeded with the method's length and
/// first letter (which tell the standard methods apart but for PUT and
/// POST's lengths, enough for a start).
fn slot_hash(method: &str, path: &str) -> usize {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let seed = (method.len() as u64) << 8 | u64::from(method.as_bytes().first().copied().unwrap_or(0));
    let mut h = (seed ^ (path.len() as u64) << 16).wrapping_mul(K);
    let mut chunks = path.as_bytes().chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    let mut word = [0; 8];
    for (w, b) in word.iter_mut().zip(chunks.remainder()) {
        *w = *b;
    }
    h = (h.rotate_left(23) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    (h >> 32) as usize % ROUTE_CACHE_SLOTS
}

/// The service made by [`RequestTrackingLayer`].
#[derive(Clone)]
pub struct RequestTracking<S> {
    inner: S,
    service: Arc<ServiceShared>,
}

impl<S> fmt::Debug for RequestTracking<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestTracking")
            .field("monitor", &self.service.shared.monitor.name())
            .field("header", &self.service.shared.header)
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

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let started = Instant::now();
        let shared = &self.service.shared;
        let route = self.service.handle(request.method(), request.extensions().get::<MatchedPath>());
        let incoming = request
            .headers()
            .get(&shared.header)
            .and_then(|value| value.to_str().ok().filter(|id| is_valid_request_id(id)).map(|id| (id, value)));
        let (context, header_value) = match incoming {
            // Echo the very header value (a cheap clone of shared bytes).
            Some((id, value)) => (RequestContext::for_route(id, &route), Some(value.clone())),
            // Hex digits and dashes: a valid header value.
            None => with_generated_id(|id, bytes| {
                (RequestContext::for_route(id, &route), HeaderValue::from_maybe_shared(bytes).ok())
            }),
        };

        shared.monitor.request_started();
        let guard = InFlight { shared: shared.clone(), scope: RequestScope::new(context), started, finished: false };
        // `poll_ready` readied this very `inner`, and the returned future
        // does not borrow it, so no clone of the service is needed.
        ResponseFuture { future: self.inner.call(request), guard, header_value }
    }
}

/// Records the end of one request exactly once: when it answers, or, if it
/// never does, when its future is dropped.
struct InFlight {
    shared: Arc<Shared>,
    scope: RequestScope,
    started: Instant,
    finished: bool,
}

impl InFlight {
    fn finish(&mut self, status: u16) {
        if !self.finished {
            self.finished = true;
            self.shared.monitor.finish_request(self.scope.context(), status, self.started.elapsed());
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.finished {
            let status = if std::thread::panicking() { PANICKED_STATUS } else { CANCELLED_STATUS };
            if status == CANCELLED_STATUS {
                let context = self.scope.context();
                tracing::debug!(
                    target: "dbwarden",
                    request_id = context.request_id(),
                    route = context.route(),
                    "request cancelled before it answered"
                );
            }
            self.finish(status);
        }
    }
}

pin_project! {
    /// The future of a tracked request: the inner service's future, kept in
    /// place (not boxed), with the request made current around each poll.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        // Declared first so that it is dropped before the request is
        // recorded as cancelled, as a wrapped future would be.
        #[pin]
        future: F,
        guard: InFlight,
        header_value: Option<HeaderValue>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").field("request", self.guard.scope.context()).finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut poll = {
            let _entered = this.guard.scope.enter();
            this.future.poll(cx)
        };
        // The response is changed where it lies, not moved out and back.
        match &mut poll {
            Poll::Pending => {}
            Poll::Ready(Ok(response)) => {
                this.guard.finish(response.status().as_u16());
                if let Some(value) = this.header_value.take() {
                    response.headers_mut().insert(&this.guard.shared.header, value);
                }
            }
            // The service failed without a response; whatever the server
            // makes of it, the client sees no success.
            Poll::Ready(Err(_)) => this.guard.finish(500),
        }
        poll
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
    fn hex_digits_are_those_of_the_formatter() {
        let values = [0, 1, 0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210, u64::MAX, 0xa0b1_c2d3_e4f5_0617];
        for (hi, lo) in values.iter().flat_map(|hi| values.iter().map(move |lo| (*hi, *lo))) {
            let digits = format!("{hi:016x}{lo:016x}");
            let expected = format!(
                "{}-{}-{}-{}-{}",
                &digits[..8],
                &digits[8..12],
                &digits[12..16],
                &digits[16..20],
                &digits[20..]
            );
            let mut text = [0; GENERATED_ID_LEN];
            write_uuid(&mut text, hi, lo);
            assert_eq!(std::str::from_utf8(&text).unwrap_or_default(), expected);
        }
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

    #[tokio::test]
    async fn a_service_serving_several_pairs_records_each_under_its_own() {
        use tower::ServiceExt;

        let monitor = Monitor::new();
        // One service answers every method of the route, and the fallback
        // every unmatched path: neither may stick to the first pair it saw.
        let router = axum::Router::new()
            .route("/any/{id}", axum::routing::any(|| async { "ok" }))
            .fallback(|| async { (StatusCode::NOT_FOUND, "none") })
            .layer(RequestTrackingLayer::new(monitor.clone()));
        for (method, uri) in
            [(Method::GET, "/any/1"), (Method::POST, "/any/2"), (Method::GET, "/any/3"), (Method::PUT, "/nowhere")]
        {
            let request = Request::builder().method(method).uri(uri).body(axum::body::Body::empty());
            let response = router.clone().oneshot(request.expect("a valid request")).await;
            assert!(response.is_ok());
        }
        let mut seen: Vec<(String, String, u64)> = monitor
            .routes()
            .into_iter()
            .map(|r| (r.method.unwrap_or_default(), r.route.unwrap_or_default(), r.requests))
            .collect();
        seen.sort();
        let expected = [("GET", "/any/{id}", 2), ("POST", "/any/{id}", 1), ("PUT", UNMATCHED_ROUTE, 1)];
        assert_eq!(seen, expected.map(|(m, r, n)| (m.to_owned(), r.to_owned(), n)));
    }

    #[test]
    fn the_route_cache_resolves_each_pair_once_and_tells_pairs_apart() {
        let monitor = Monitor::new();
        let cache = RouteCache::new();
        let get_a = cache.handle(&monitor, &Method::GET, "/a/{id}");
        assert_eq!((get_a.method(), get_a.route()), ("GET", "/a/{id}"));
        let again = cache.handle(&monitor, &Method::GET, "/a/{id}");
        assert_eq!((again.method(), again.route()), ("GET", "/a/{id}"));
        let post_a = cache.handle(&monitor, &Method::POST, "/a/{id}");
        assert_eq!((post_a.method(), post_a.route()), ("POST", "/a/{id}"));
        let custom = Method::from_bytes(b"PURGE").expect("a valid extension method");
        assert_eq!(cache.handle(&monitor, &custom, "/a/{id}").method(), "PURGE");
        // Far more pairs than slots: every one still resolves to itself.
        for i in 0..(2 * ROUTE_CACHE_SLOTS) {
            let path = format!("/route/{i}");
            let handle = cache.handle(&monitor, &Method::GET, &path);
            assert_eq!(handle.route(), path);
            assert_eq!(cache.handle(&monitor, &Method::GET, &path).route(), path);
        }
        assert!(cache.slots.iter().all(|s| s.get().is_some()), "a full cache");
        assert_eq!(cache.handle(&monitor, &Method::GET, "/a/{id}").route(), "/a/{id}");
    }
}
