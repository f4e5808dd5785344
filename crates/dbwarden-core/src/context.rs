//! Who a statement runs for: the HTTP request and the named operation in
//! progress on the current task.
//!
//! [`with_request`] and [`with_operation`] wrap a future so that, while it is
//! polled, every statement recorded into any [`crate::Monitor`] is also
//! counted against that request (database time, statement count, and a tally
//! per fingerprint from which N+1 patterns are found) and that operation.
//! Adapters read [`current_request`] to name the holder of a checkout.
//! [`RequestScope`] does what [`with_request`] does for a wrapper that keeps
//! its future in place instead of boxing it (the request-tracking layer).
//!
//! This is plain `std`: the wrapper installs the context in a thread-local for
//! the duration of each poll and restores the previous one afterwards, the way
//! a task-local works, so it needs no runtime and follows the future across
//! threads of a work-stealing executor. Work spawned onto another task does
//! not inherit the context; wrap it again if it should.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::fingerprint::Fingerprint;
use crate::monitor::cut_str;
use crate::route::RouteHandle;

/// Distinct fingerprints tallied per request; statements past this many
/// distinct fingerprints still count toward database time and statement
/// count, only not toward N+1 detection.
pub const MAX_TALLIED_FINGERPRINTS: usize = 64;

/// The longest request id or route kept; longer ones are cut.
const MAX_LABEL: usize = 256;

/// One fingerprint's executions within a request.
#[derive(Debug, Clone)]
pub struct StatementTally {
    /// The statement's fingerprint.
    pub fingerprint: Arc<Fingerprint>,
    /// How many times it ran.
    pub count: u32,
    /// Their total execution time.
    pub total: Duration,
}

/// Ids up to this long are kept inside the context rather than in an
/// allocation of their own (a generated, UUID-shaped id is 36 bytes).
const INLINE_ID: usize = 48;

/// A request id, inline when short.
enum IdText {
    Inline { len: u8, bytes: [u8; INLINE_ID] },
    Heap(Box<str>),
}

impl IdText {
    /// `id` cut to [`MAX_LABEL`] bytes at a character boundary.
    fn new(id: &str) -> IdText {
        let id = cut_str(id, MAX_LABEL);
        match u8::try_from(id.len()) {
            Ok(len) if id.len() <= INLINE_ID => {
                let mut bytes = [0; INLINE_ID];
                bytes[..id.len()].copy_from_slice(id.as_bytes());
                IdText::Inline { len, bytes }
            }
            _ => IdText::Heap(id.into()),
        }
    }

    /// Replaces the id with `id`, in place when both are short.
    fn set(&mut self, id: &str) {
        let id = cut_str(id, MAX_LABEL);
        if let IdText::Inline { len, bytes } = self
            && let (Some(place), Ok(new_len)) = (bytes.get_mut(..id.len()), u8::try_from(id.len()))
        {
            place.copy_from_slice(id.as_bytes());
            *len = new_len;
        } else {
            *self = IdText::new(id);
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // The bytes were copied from a `str` whole, so they are UTF-8.
            IdText::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or(""),
            IdText::Heap(id) => id,
        }
    }
}

/// What dbwarden knows about one HTTP request while it runs.
///
/// Created by the request-tracking layer, shared through [`with_request`],
/// read by [`crate::Monitor::finish_request`] at the end.
pub struct RequestContext {
    request_id: IdText,
    route: RouteHandle,
    db_nanos: AtomicU64,
    db_queries: AtomicU32,
    tallies: Mutex<Vec<StatementTally>>,
}

impl RequestContext {
    /// A context for the request `request_id`, matched to `route` (the route
    /// template such as `/users/{id}`, never the raw path). The monitor that
    /// finishes it looks the route up by name; [`RequestContext::with_route`]
    /// spares that lookup.
    pub fn new(request_id: impl Into<String>, method: &str, route: &str) -> Arc<RequestContext> {
        RequestContext::with_route(&request_id.into(), RouteHandle::unbound(method, route))
    }

    /// A context for the request `request_id` to the route `route`, resolved
    /// once with [`crate::Monitor::route`]. The id is cut to 256 bytes at a
    /// character boundary; a short one (up to 48 bytes) costs no allocation
    /// beyond the context itself.
    ///
    /// The context of a finished [`RequestScope`] that nothing else holds
    /// is kept by its thread and reused here, so that a request served
    /// through a scope costs no allocation of its own.
    pub fn with_route(request_id: &str, route: RouteHandle) -> Arc<RequestContext> {
        RequestContext::for_route(request_id, &route)
    }

    /// What [`RequestContext::with_route`] does, for a caller that keeps the
    /// handle: it is cloned only when the reused context was last made for
    /// another route.
    pub fn for_route(request_id: &str, route: &RouteHandle) -> Arc<RequestContext> {
        let spare = SPARE.try_with(|spare| spare.try_borrow_mut().ok().and_then(|mut spare| spare.pop()));
        if let Some(mut spare) = spare.ok().flatten()
            && let Some(context) = Arc::get_mut(&mut spare)
        {
            context.request_id.set(request_id);
            if !context.route.is(route) {
                context.route = route.clone();
            }
            *context.db_nanos.get_mut() = 0;
            *context.db_queries.get_mut() = 0;
            let tallies = context.tallies.get_mut().unwrap_or_else(|e| e.into_inner());
            if !tallies.is_empty() {
                tallies.clear();
            }
            return spare;
        }
        Arc::new(RequestContext {
            request_id: IdText::new(request_id),
            route: route.clone(),
            db_nanos: AtomicU64::new(0),
            db_queries: AtomicU32::new(0),
            tallies: Mutex::new(Vec::new()),
        })
    }

    /// The request's id.
    pub fn request_id(&self) -> &str {
        self.request_id.as_str()
    }

    /// The HTTP method.
    pub fn method(&self) -> &str {
        self.route.method()
    }

    /// The route template.
    pub fn route(&self) -> &str {
        self.route.route()
    }

    /// The route, as resolved (or named) when the context was made.
    pub fn route_handle(&self) -> &RouteHandle {
        &self.route
    }

    /// Time spent executing statements for this request so far.
    pub fn db_time(&self) -> Duration {
        Duration::from_nanos(self.db_nanos.load(Ordering::Relaxed))
    }

    /// Statements run for this request so far.
    pub fn db_queries(&self) -> u32 {
        self.db_queries.load(Ordering::Relaxed)
    }

    /// Each fingerprint run for this request, with its count and total time,
    /// in the order first seen.
    pub fn tallies(&self) -> Vec<StatementTally> {
        self.tallies.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The tallies of fingerprints run at least `min_count` times for more
    /// than `min_total` in all: the request's N+1 patterns. Nothing is
    /// copied (nor allocated) for a request that has none.
    pub(crate) fn tallies_over(&self, min_count: u32, min_total: Duration) -> Vec<StatementTally> {
        let tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        tallies.iter().filter(|t| t.count >= min_count && t.total > min_total).cloned().collect()
    }

    fn note(&self, fingerprint: &Arc<Fingerprint>, duration: Duration) {
        self.db_nanos.fetch_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.db_queries.fetch_add(1, Ordering::Relaxed);
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = tallies.iter_mut().find(|t| t.fingerprint.id() == fingerprint.id()) {
            t.count = t.count.saturating_add(1);
            t.total += duration;
        } else if tallies.len() < MAX_TALLIED_FINGERPRINTS {
            tallies.push(StatementTally { fingerprint: fingerprint.clone(), count: 1, total: duration });
        }
    }
}

impl fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestContext")
            .field("request_id", &self.request_id())
            .field("method", &self.method())
            .field("route", &self.route())
            .field("db_time", &self.db_time())
            .field("db_queries", &self.db_queries())
            .finish()
    }
}

/// A named unit of work in progress (see [`with_operation`]).
#[derive(Debug)]
pub struct OperationContext {
    name: String,
    db_nanos: AtomicU64,
    db_queries: AtomicU32,
    failed: AtomicU32,
}

impl OperationContext {
    /// A context for the operation `name` (cut to 128 bytes).
    pub fn new(name: impl Into<String>) -> Arc<OperationContext> {
        let mut name = name.into();
        cut(&mut name, 128);
        Arc::new(OperationContext {
            name,
            db_nanos: AtomicU64::new(0),
            db_queries: AtomicU32::new(0),
            failed: AtomicU32::new(0),
        })
    }

    /// The operation's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Time spent executing statements within the operation so far.
    pub fn db_time(&self) -> Duration {
        Duration::from_nanos(self.db_nanos.load(Ordering::Relaxed))
    }

    /// Statements run within the operation so far.
    pub fn db_queries(&self) -> u32 {
        self.db_queries.load(Ordering::Relaxed)
    }

    /// Statements that failed within the operation so far.
    pub fn failed_queries(&self) -> u32 {
        self.failed.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Current {
    request: Option<Arc<RequestContext>>,
    operation: Option<Arc<OperationContext>>,
}

thread_local! {
    static CURRENT: RefCell<Current> = const { RefCell::new(Current { request: None, operation: None }) };
    /// Finished requests' contexts that nothing else held, for
    /// [`RequestContext::with_route`] to reuse.
    static SPARE: RefCell<Vec<Arc<RequestContext>>> = const { RefCell::new(Vec::new()) };
}

/// Spare contexts kept per thread: enough for the requests one thread
/// finishes between two it starts.
const MAX_SPARE: usize = 8;

/// The request being served on this task, if the tracking layer set one.
pub fn current_request() -> Option<Arc<RequestContext>> {
    CURRENT.try_with(|c| c.try_borrow().ok().and_then(|c| c.request.clone())).ok().flatten()
}

/// The named operation running on this task, if any.
pub fn current_operation() -> Option<Arc<OperationContext>> {
    CURRENT.try_with(|c| c.try_borrow().ok().and_then(|c| c.operation.clone())).ok().flatten()
}

/// Whether a request or an operation is current: the recording path asks
/// this first so statements outside any context cost one thread-local read.
#[inline]
pub(crate) fn is_active() -> bool {
    CURRENT.try_with(|c| c.try_borrow().is_ok_and(|c| c.request.is_some() || c.operation.is_some())).unwrap_or(false)
}

/// Counts a finished statement against the current request and operation.
pub(crate) fn note_statement(fingerprint: &Arc<Fingerprint>, duration: Duration, failed: bool) {
    let _ = CURRENT.try_with(|c| {
        let Ok(c) = c.try_borrow() else { return };
        if let Some(request) = &c.request {
            request.note(fingerprint, duration);
        }
        if let Some(op) = &c.operation {
            op.db_nanos.fetch_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
            op.db_queries.fetch_add(1, Ordering::Relaxed);
            if failed {
                op.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
}

/// The context a wrapper carries: while its future is not being polled,
/// the wrapper's own; while it is, the one it displaced.
enum Held {
    Request(Option<Arc<RequestContext>>),
    Operation(Option<Arc<OperationContext>>),
}

impl Held {
    /// Exchanges the held context with the thread's current one.
    fn swap(&mut self) {
        let _ = CURRENT.try_with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                match self {
                    Held::Request(r) => std::mem::swap(&mut c.request, r),
                    Held::Operation(o) => std::mem::swap(&mut c.operation, o),
                }
            }
        });
    }
}

/// Installs a context for one poll and puts the previous one back when
/// dropped, even if the poll panics.
struct Installed<'a>(&'a mut Held);

impl<'a> Installed<'a> {
    fn install(held: &'a mut Held) -> Self {
        held.swap();
        Installed(held)
    }
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        self.0.swap();
    }
}

/// A future that runs with a request or an operation installed as current;
/// see [`with_request`] and [`with_operation`].
#[must_use = "futures do nothing unless polled"]
pub struct WithContext<F> {
    held: Held,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let _installed = Installed::install(&mut this.held);
        this.future.as_mut().poll(cx)
    }
}

impl<F> fmt::Debug for WithContext<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithContext").finish_non_exhaustive()
    }
}

/// Runs `future` as part of the request `context`: statements it records
/// count toward the request, and checkouts it makes name the request.
pub fn with_request<F: Future>(context: Arc<RequestContext>, future: F) -> WithContext<F> {
    WithContext { held: Held::Request(Some(context)), future: Box::pin(future) }
}

/// Runs `future` as the named operation `context`: its statements count
/// toward the operation and its errors name it.
pub fn with_operation<F: Future>(context: Arc<OperationContext>, future: F) -> WithContext<F> {
    WithContext { held: Held::Operation(Some(context)), future: Box::pin(future) }
}

/// A request made current around each poll of a future that its owner
/// polls itself: what [`with_request`] does, for a wrapper that keeps the
/// future inline (pinned in place) rather than boxed.
///
/// A scope dropped while nothing else holds its context leaves the context
/// to its thread, for the next [`RequestContext::with_route`] to reuse.
///
/// ```
/// use std::sync::Arc;
/// use dbwarden_core::context::{RequestScope, current_request};
/// use dbwarden_core::RequestContext;
///
/// let mut scope = RequestScope::new(RequestContext::new("req-7", "GET", "/users/{id}"));
/// {
///     let _entered = scope.enter();
///     // Poll the request's future here.
///     assert_eq!(current_request().map(|c| c.request_id().to_owned()).as_deref(), Some("req-7"));
/// }
/// assert!(current_request().is_none());
/// assert_eq!(scope.context().request_id(), "req-7");
/// ```
pub struct RequestScope {
    context: Arc<RequestContext>,
    /// A second reference to `context`, made once, that entering moves into
    /// the thread's current slot and leaving moves back (so a poll clones
    /// and drops no `Arc`); while the scope is entered it holds what was
    /// current before.
    parked: Option<Arc<RequestContext>>,
}

impl RequestScope {
    /// A scope for `context`, not yet entered.
    pub fn new(context: Arc<RequestContext>) -> RequestScope {
        RequestScope { parked: Some(context.clone()), context }
    }

    /// Makes the request current until the returned guard is dropped, which
    /// puts back whatever was current before (also when a poll panics).
    pub fn enter(&mut self) -> EnteredScope<'_> {
        let swapped = swap_current_request(&mut self.parked);
        EnteredScope { scope: self, swapped }
    }

    /// The scope's request.
    pub fn context(&self) -> &Arc<RequestContext> {
        &self.context
    }
}

/// Exchanges `request` with the thread's current request; whether it could.
#[inline]
fn swap_current_request(request: &mut Option<Arc<RequestContext>>) -> bool {
    CURRENT
        .try_with(|c| match c.try_borrow_mut() {
            Ok(mut c) => {
                std::mem::swap(&mut c.request, request);
                true
            }
            Err(_) => false,
        })
        .unwrap_or(false)
}

impl Drop for RequestScope {
    fn drop(&mut self) {
        // Only this scope holds the context (its two references; a weak
        // reference could only have been made from a strong one, so none
        // exists either): the parked one can be reused once the field goes,
        // which leaves it the only one.
        let Some(parked) = self.parked.take_if(|parked| Arc::ptr_eq(parked, &self.context)) else { return };
        if Arc::strong_count(&parked) == 2 && Arc::weak_count(&parked) == 0 {
            let _ = SPARE.try_with(|spare| {
                if let Ok(mut spare) = spare.try_borrow_mut()
                    && spare.len() < MAX_SPARE
                {
                    spare.push(parked);
                }
            });
        }
    }
}

impl fmt::Debug for RequestScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestScope").field("context", &self.context).finish()
    }
}

/// A [`RequestScope`] entered: its request is current until this is dropped.
#[must_use = "the request is current only while this guard lives"]
pub struct EnteredScope<'a> {
    /// The scope, whose parked slot holds what was current before while
    /// this guard lives. Entering borrows it mutably, so it cannot be
    /// entered twice at once.
    scope: &'a mut RequestScope,
    /// Whether entering reached the thread's current slot.
    swapped: bool,
}

impl Drop for EnteredScope<'_> {
    fn drop(&mut self) {
        if self.swapped {
            swap_current_request(&mut self.scope.parked);
        }
    }
}

impl fmt::Debug for EnteredScope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnteredScope").finish_non_exhaustive()
    }
}

fn cut(s: &mut String, max: usize) {
    let len = cut_str(s, max).len();
    s.truncate(len);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = Box::pin(future);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    /// Yields once, so the wrapper is polled twice and must reinstall.
    struct YieldOnce(bool);

    impl Future for YieldOnce {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                Poll::Ready(())
            } else {
                self.0 = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    #[test]
    fn the_request_is_current_only_inside_the_wrapper_and_across_polls() {
        let ctx = RequestContext::new("req-1", "GET", "/users/{id}");
        assert!(current_request().is_none());
        let seen = block_on(with_request(ctx.clone(), async {
            let first = current_request().map(|c| c.request_id().to_owned());
            YieldOnce(false).await;
            let second = current_request().map(|c| c.request_id().to_owned());
            (first, second)
        }));
        assert_eq!(seen, (Some("req-1".to_owned()), Some("req-1".to_owned())));
        assert!(current_request().is_none());
        assert!(!is_active());
    }

    #[test]
    fn nested_contexts_restore_the_outer_one() {
        let outer = RequestContext::new("outer", "GET", "/a");
        let inner = RequestContext::new("inner", "GET", "/b");
        let ids = block_on(with_request(outer, async {
            let nested = with_request(inner, async { current_request().map(|c| c.request_id().to_owned()) }).await;
            let after = current_request().map(|c| c.request_id().to_owned());
            let op = with_operation(OperationContext::new("load_user"), async {
                (current_operation().map(|o| o.name().to_owned()), current_request().map(|c| c.route().to_owned()))
            })
            .await;
            (nested, after, op)
        }));
        assert_eq!(ids.0.as_deref(), Some("inner"));
        assert_eq!(ids.1.as_deref(), Some("outer"));
        assert_eq!(ids.2, (Some("load_user".to_owned()), Some("/a".to_owned())));
        assert!(current_operation().is_none());
    }

    #[test]
    fn statements_are_tallied_per_fingerprint_with_a_bound() {
        let ctx = RequestContext::new("r", "GET", "/x");
        let cache = crate::fingerprint::FingerprintCache::new(128);
        block_on(with_request(ctx.clone(), async {
            for i in 0..7 {
                let fp = cache.get(&format!("SELECT * FROM items WHERE id = {i}"));
                note_statement(&fp, Duration::from_millis(10), false);
            }
            for i in 0..100 {
                let fp = cache.get(&format!("SELECT * FROM t{i}"));
                note_statement(&fp, Duration::from_millis(1), false);
            }
        }));
        assert_eq!(ctx.db_queries(), 107);
        assert_eq!(ctx.db_time(), Duration::from_millis(170));
        let tallies = ctx.tallies();
        assert_eq!(tallies.len(), MAX_TALLIED_FINGERPRINTS);
        assert_eq!(tallies[0].count, 7);
        assert_eq!(tallies[0].fingerprint.text(), "SELECT * FROM items WHERE id = ?");
    }

    #[test]
    fn a_finished_scopes_context_is_reused_only_when_nothing_else_holds_it() {
        let cache = crate::fingerprint::FingerprintCache::new(8);
        let first = RequestContext::with_route("one", RouteHandle::unbound("GET", "/a"));
        let place = Arc::as_ptr(&first);
        {
            let mut scope = RequestScope::new(first);
            let _entered = scope.enter();
            note_statement(&cache.get("SELECT 1"), Duration::from_millis(5), false);
        }
        let second = RequestContext::with_route("two", RouteHandle::unbound("POST", "/b"));
        assert_eq!(Arc::as_ptr(&second), place, "the allocation is reused");
        assert_eq!((second.request_id(), second.method(), second.route()), ("two", "POST", "/b"));
        assert_eq!((second.db_queries(), second.db_time()), (0, Duration::ZERO));
        assert!(second.tallies().is_empty(), "nothing of the first request is left");

        // A context someone still holds is left to them.
        let kept = second.clone();
        drop(RequestScope::new(second));
        let third = RequestContext::with_route("three", RouteHandle::unbound("GET", "/c"));
        assert!(!Arc::ptr_eq(&third, &kept));
        assert_eq!((kept.request_id(), third.request_id()), ("two", "three"));
    }

    #[test]
    fn a_reused_id_is_replaced_whole_whatever_the_lengths() {
        let mut id = IdText::new("first-id");
        id.set("2nd");
        assert_eq!(id.as_str(), "2nd");
        let long = "x".repeat(INLINE_ID + 20);
        id.set(&long);
        assert_eq!(id.as_str(), long);
        id.set("short-again");
        assert_eq!(id.as_str(), "short-again");
        id.set(&"é".repeat(200));
        assert!(id.as_str().len() <= MAX_LABEL && id.as_str().chars().all(|c| c == 'é'));
    }

    #[test]
    fn long_labels_are_cut_at_a_character_boundary() {
        let ctx = RequestContext::new("é".repeat(300), "GET", &"/ü".repeat(300));
        assert!(ctx.request_id().len() <= MAX_LABEL);
        assert!(ctx.route().len() <= MAX_LABEL);
    }
}
