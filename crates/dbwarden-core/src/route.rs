//! Per-route request statistics, reached through [`RouteHandle`]s resolved
//! once per (method, route template).
//!
//! Recording a request is on the path of every request an application
//! serves, so it must not look its route up: a lookup by text means hashing
//! two strings, a lock shared by every thread, and owned copies of the key.
//! Instead [`crate::Monitor::route`] resolves a (method, template) pair once
//! to a handle that points straight at the route's statistics (a sharded
//! histogram and a few atomic counters); the request-tracking layer keeps the
//! handles it has resolved, and recording through one costs no lock, no hash
//! and no allocation.
//!
//! The table is bounded: the first `top_routes` pairs get statistics of their
//! own, later ones are recorded into one shared "other" entry (their handles
//! still carry their names, for logs and N+1 findings). Entries are never
//! removed, so a handle stays valid for the monitor's life; a reset zeroes
//! them in place, and entries without requests are left out of reports, as
//! if they had never been created.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::histogram::{Histogram, HistogramConfig};
use crate::keyed::KeyedFigures;
use crate::monitor::{Monitor, RouteKey, cut_str, truncate};
use crate::shard::ShardSlot;

/// The longest method kept; longer ones are cut.
pub(crate) const MAX_METHOD_LEN: usize = 16;

/// The longest route template kept; longer ones are cut.
pub(crate) const MAX_ROUTE_LEN: usize = 256;

/// Latency and counters of one route.
#[derive(Debug)]
pub(crate) struct RouteStats {
    latency: Histogram,
    failures: AtomicU64,
    slow: AtomicU64,
    db_ns: AtomicU64,
    db_queries: AtomicU64,
}

impl RouteStats {
    fn new() -> Self {
        RouteStats {
            latency: Histogram::new(HistogramConfig::compact()),
            failures: AtomicU64::new(0),
            slow: AtomicU64::new(0),
            db_ns: AtomicU64::new(0),
            db_queries: AtomicU64::new(0),
        }
    }

    /// Records one request as the holder of `slot`. Counters that would
    /// only have zero added are left alone (an atomic add is a locked
    /// instruction even when it adds nothing), and the database time is
    /// converted only when there is some.
    #[inline]
    pub(crate) fn record(
        &self,
        slot: ShardSlot,
        duration_ns: u64,
        failed: bool,
        slow: bool,
        db_time: Duration,
        db_queries: u32,
    ) {
        self.latency.record_ns_at(slot, duration_ns);
        if failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        if slow {
            self.slow.fetch_add(1, Ordering::Relaxed);
        }
        if db_queries > 0 {
            self.db_ns.fetch_add(u64::try_from(db_time.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
            self.db_queries.fetch_add(u64::from(db_queries), Ordering::Relaxed);
        }
    }

    fn reset(&self) {
        self.latency.reset();
        for counter in [&self.failures, &self.slow, &self.db_ns, &self.db_queries] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    fn figures(&self, key: Option<RouteKey>) -> KeyedFigures<RouteKey> {
        KeyedFigures {
            key,
            latency: self.latency.snapshot(),
            failures: self.failures.load(Ordering::Relaxed),
            slow: self.slow.load(Ordering::Relaxed),
            extra_ns: self.db_ns.load(Ordering::Relaxed),
            extra_count: self.db_queries.load(Ordering::Relaxed),
        }
    }
}

/// A route (HTTP method and route template) resolved in one monitor's route
/// table by [`Monitor::route`]: requests recorded through it go straight to
/// the route's statistics. Cheap to clone (one reference count).
///
/// A handle made by [`RouteHandle::unbound`] (or implicitly by
/// [`crate::RequestContext::new`]) belongs to no monitor; a monitor that
/// finishes a request with such a handle, or with one of another monitor,
/// looks the route up by its names instead.
#[derive(Clone)]
pub struct RouteHandle {
    slot: Arc<RouteSlot>,
}

struct RouteSlot {
    /// The table the handle was resolved in; 0 for none.
    table: u64,
    method: Box<str>,
    route: Box<str>,
    stats: Option<Arc<RouteStats>>,
    /// Whether `stats` are the route's own rather than "other".
    named: bool,
}

impl RouteHandle {
    /// A handle for `method` and `route` that belongs to no monitor (cut to
    /// 16 and 256 bytes at a character boundary).
    pub fn unbound(method: &str, route: &str) -> RouteHandle {
        RouteHandle {
            slot: Arc::new(RouteSlot {
                table: 0,
                method: truncate(method, MAX_METHOD_LEN).into_boxed_str(),
                route: truncate(route, MAX_ROUTE_LEN).into_boxed_str(),
                stats: None,
                named: false,
            }),
        }
    }

    /// The HTTP method.
    pub fn method(&self) -> &str {
        &self.slot.method
    }

    /// The route template (e.g. `/users/{id}`).
    pub fn route(&self) -> &str {
        &self.slot.route
    }

    /// Whether requests recorded through this handle share the "other"
    /// entry because the route table was full when it was resolved.
    pub fn is_folded(&self) -> bool {
        self.slot.stats.is_some() && !self.slot.named
    }

    /// Whether both handles are the same resolution (one clone of the
    /// other), so that one can stand for the other without a clone.
    #[inline]
    pub(crate) fn is(&self, other: &RouteHandle) -> bool {
        Arc::ptr_eq(&self.slot, &other.slot)
    }

    /// The statistics to record into when the handle belongs to `table`.
    #[inline]
    pub(crate) fn stats_in(&self, table: &RouteTable) -> Option<&RouteStats> {
        if self.slot.table == table.id { self.slot.stats.as_deref() } else { None }
    }
}

impl fmt::Debug for RouteHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteHandle").field("method", &self.method()).field("route", &self.route()).finish()
    }
}

/// The resolved routes of one method, by template.
type RoutesOfMethod = HashMap<Box<str>, RouteHandle>;

/// Every route of one monitor: at most `capacity` with statistics of their
/// own, the rest in "other".
#[derive(Debug)]
pub(crate) struct RouteTable {
    /// Tells this table's handles from those of other monitors.
    id: u64,
    /// Resolved routes by method, then template: looked up without building
    /// an owned key.
    routes: Mutex<HashMap<Box<str>, RoutesOfMethod>>,
    /// Resolved routes, counted across methods, against `capacity`.
    len: AtomicU64,
    other: Arc<RouteStats>,
    capacity: usize,
}

impl fmt::Debug for RouteSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteSlot").field("method", &self.method).field("route", &self.route).finish()
    }
}

impl RouteTable {
    pub(crate) fn new(capacity: usize) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        RouteTable {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            routes: Mutex::new(HashMap::new()),
            len: AtomicU64::new(0),
            other: Arc::new(RouteStats::new()),
            capacity,
        }
    }

    /// The handle of `method` and `route`, resolving it on first use.
    pub(crate) fn handle(&self, method: &str, route: &str) -> RouteHandle {
        let method = cut_str(method, MAX_METHOD_LEN);
        let route = cut_str(route, MAX_ROUTE_LEN);
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(handle) = routes.get(method).and_then(|by_route| by_route.get(route)) {
            return handle.clone();
        }
        let named = self.len.load(Ordering::Relaxed) < self.capacity as u64;
        let handle = RouteHandle {
            slot: Arc::new(RouteSlot {
                table: self.id,
                method: method.into(),
                route: route.into(),
                stats: Some(if named { Arc::new(RouteStats::new()) } else { self.other.clone() }),
                named,
            }),
        };
        if named {
            self.len.fetch_add(1, Ordering::Relaxed);
            routes.entry(method.into()).or_default().insert(route.into(), handle.clone());
        }
        handle
    }

    /// The statistics `method` and `route` are recorded into.
    pub(crate) fn stats(&self, method: &str, route: &str) -> Arc<RouteStats> {
        let method = cut_str(method, MAX_METHOD_LEN);
        let route = cut_str(route, MAX_ROUTE_LEN);
        {
            let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(stats) =
                routes.get(method).and_then(|by_route| by_route.get(route)).and_then(|h| h.slot.stats.clone())
            {
                return stats;
            }
            if self.len.load(Ordering::Relaxed) >= self.capacity as u64 {
                return self.other.clone();
            }
        }
        self.handle(method, route).slot.stats.clone().unwrap_or_else(|| self.other.clone())
    }

    /// Every route that has requests, "other" last with `key: None` when it
    /// holds anything.
    pub(crate) fn figures(&self) -> Vec<KeyedFigures<RouteKey>> {
        let handles: Vec<RouteHandle> = {
            let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
            routes.values().flat_map(|by_route| by_route.values().cloned()).collect()
        };
        let mut out: Vec<KeyedFigures<RouteKey>> = handles
            .iter()
            .filter_map(|h| {
                let stats = h.slot.stats.as_deref()?;
                let key = RouteKey { method: h.method().to_owned(), route: h.route().to_owned() };
                Some(stats.figures(Some(key)))
            })
            .filter(|f| f.latency.count() > 0)
            .collect();
        let other = self.other.figures(None);
        if other.latency.count() > 0 {
            out.push(other);
        }
        out
    }

    /// Zeroes every route's statistics; routes keep their entries, so
    /// handles already given out stay valid.
    pub(crate) fn clear(&self) {
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        for stats in routes.values().flat_map(|by_route| by_route.values()).filter_map(|h| h.slot.stats.as_deref()) {
            stats.reset();
        }
        self.other.reset();
    }
}

impl Monitor {
    /// The handle of `route` (a route template such as `/users/{id}`, never
    /// a raw path) under `method`, resolved in this monitor's route table on
    /// first use. Keep it and pass it to
    /// [`crate::RequestContext::with_route`] for every request to the route:
    /// recording through a handle takes no lock and allocates nothing.
    ///
    /// The first `MonitorConfig::top_routes` distinct pairs get statistics
    /// of their own; later ones are recorded under "other" (the handle keeps
    /// their names). The method is cut to 16 bytes, the route to 256.
    pub fn route(&self, method: &str, route: &str) -> RouteHandle {
        self.inner.routes.handle(method, route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::shard_slot;

    fn record(stats: &RouteStats) {
        stats.record(shard_slot(crate::shard::default_shard_count()), 1_000_000, false, false, Duration::ZERO, 0);
    }

    #[test]
    fn handles_are_resolved_once_and_past_capacity_share_other() {
        let table = RouteTable::new(2);
        let a = table.handle("GET", "/a");
        assert!(Arc::ptr_eq(&a.slot, &table.handle("GET", "/a").slot), "a route resolves to one handle");
        let b = table.handle("POST", "/a");
        let c = table.handle("GET", "/c");
        assert!(!a.is_folded() && !b.is_folded() && c.is_folded());
        assert_eq!(c.route(), "/c", "a folded handle keeps its name");
        for h in [&a, &a, &b, &c] {
            record(h.stats_in(&table).expect("a handle of this table"));
        }
        record(&table.stats("GET", "/d"));
        let figures = table.figures();
        assert_eq!(figures.len(), 3);
        let count = |m: &str, r: &str| {
            figures
                .iter()
                .find(|f| f.key.as_ref().is_some_and(|k| k.method == m && k.route == r))
                .map(|f| f.latency.count())
        };
        assert_eq!(count("GET", "/a"), Some(2));
        assert_eq!(count("POST", "/a"), Some(1));
        assert_eq!(figures.iter().find(|f| f.key.is_none()).map(|f| f.latency.count()), Some(2));
    }

    #[test]
    fn a_handle_records_only_into_its_own_table() {
        let (one, two) = (RouteTable::new(4), RouteTable::new(4));
        let handle = one.handle("GET", "/a");
        assert!(handle.stats_in(&one).is_some());
        assert!(handle.stats_in(&two).is_none());
        assert!(RouteHandle::unbound("GET", "/a").stats_in(&one).is_none());
    }

    #[test]
    fn clearing_keeps_handles_valid_and_hides_empty_routes() {
        let table = RouteTable::new(4);
        let handle = table.handle("GET", "/a");
        record(handle.stats_in(&table).expect("a handle of this table"));
        table.clear();
        assert!(table.figures().is_empty());
        record(handle.stats_in(&table).expect("a handle of this table"));
        assert_eq!(table.figures().iter().map(|f| f.latency.count()).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn a_request_finishes_into_its_handle_or_by_name() {
        use crate::context::RequestContext;

        let monitor = Monitor::new();
        let other_monitor = Monitor::new();
        let finish = |context: &RequestContext| {
            monitor.request_started();
            monitor.finish_request(context, 200, Duration::from_millis(3));
        };
        finish(&RequestContext::with_route("a", monitor.route("GET", "/users/{id}")));
        finish(&RequestContext::with_route("b", other_monitor.route("GET", "/users/{id}")));
        finish(&RequestContext::new("c", "GET", "/users/{id}"));
        let routes = monitor.routes();
        assert_eq!(routes.len(), 1, "{routes:#?}");
        assert_eq!(routes[0].requests, 3);
        assert!(other_monitor.routes().is_empty(), "a handle records only into its own monitor");
        assert_eq!(monitor.snapshot().request_metrics.in_flight, 0);
    }

    #[test]
    fn long_names_are_cut_at_a_character_boundary() {
        let table = RouteTable::new(4);
        let long = "/ü".repeat(300);
        let handle = table.handle("GET", &long);
        assert!(handle.route().len() <= MAX_ROUTE_LEN);
        assert!(Arc::ptr_eq(&handle.slot, &table.handle("GET", &long).slot), "the cut name is the key");
        assert!(RouteHandle::unbound(&"M".repeat(40), &long).method().len() <= MAX_METHOD_LEN);
    }
}
