//! Reports reused between requests, so `/health` and `/api/status` stay cheap
//! under load: each is computed at most once per monitor tick and per
//! [`AdminConfig::report_cache`](crate::AdminConfig::report_cache).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;
use dbwarden_core::{HealthReport, MetricsSnapshot, Monitor};

#[derive(Debug)]
struct Entry<T> {
    value: Arc<T>,
    at: Instant,
    generation: u64,
}

#[derive(Debug)]
struct Slot<T>(Mutex<Option<Entry<T>>>);

impl<T> Slot<T> {
    fn get_or(&self, ttl: Duration, generation: u64, compute: impl FnOnce() -> T) -> Arc<T> {
        // Holding the lock while computing makes concurrent callers wait for
        // one computation instead of each doing their own.
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = slot.as_ref()
            && entry.generation == generation
            && entry.at.elapsed() < ttl
        {
            return entry.value.clone();
        }
        let value = Arc::new(compute());
        *slot = Some(Entry { value: value.clone(), at: Instant::now(), generation });
        value
    }

    fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// A serialized response body kept between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CachedBody {
    /// `/api/status`.
    Status,
    /// `/health` with its checks.
    HealthDetails,
    /// `/health`, the status only.
    HealthStatus,
}

/// A body with when and at which generation it was made.
#[derive(Debug)]
struct KeptBody {
    at: Instant,
    generation: u64,
    code: StatusCode,
    body: Bytes,
}

/// The slot of one [`CachedBody`]: a read lock and a reference-count
/// increment per hit. Every request of a busy endpoint comes through here,
/// so no hashing, and no writer between ticks.
#[derive(Debug, Default)]
struct BodySlot(RwLock<Option<KeptBody>>);

impl BodySlot {
    fn get(&self, ttl: Duration, generation: u64) -> Option<(StatusCode, Bytes)> {
        let slot = self.0.read().unwrap_or_else(|e| e.into_inner());
        let kept = slot.as_ref()?;
        (kept.generation == generation && kept.at.elapsed() < ttl).then(|| (kept.code, kept.body.clone()))
    }

    fn set(&self, value: Option<KeptBody>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = value;
    }
}

/// The cached health verdict and snapshot.
#[derive(Debug)]
pub(crate) struct ReportCache {
    ttl: Duration,
    /// Bumped at every monitor tick (by the event hub) and every change made
    /// through the API.
    generation: Arc<AtomicU64>,
    health: Slot<HealthReport>,
    snapshot: Slot<MetricsSnapshot>,
    probe: Mutex<Option<(Instant, Result<(), String>)>>,
    /// Serialized response bodies, one slot per [`CachedBody`], so a busy
    /// endpoint serializes once per tick rather than once per request.
    bodies: [BodySlot; 3],
}

impl ReportCache {
    pub(crate) fn new(ttl: Duration, generation: Arc<AtomicU64>) -> Self {
        ReportCache {
            ttl,
            generation,
            health: Slot(Mutex::new(None)),
            snapshot: Slot(Mutex::new(None)),
            probe: Mutex::new(None),
            bodies: Default::default(),
        }
    }

    pub(crate) fn health(&self, monitor: &Monitor) -> Arc<HealthReport> {
        let generation = self.generation.load(Ordering::Acquire);
        self.health.get_or(self.ttl, generation, || monitor.health())
    }

    pub(crate) fn snapshot(&self, monitor: &Monitor) -> Arc<MetricsSnapshot> {
        let generation = self.generation.load(Ordering::Acquire);
        self.snapshot.get_or(self.ttl, generation, || monitor.snapshot())
    }

    /// The readiness probe's answer if one younger than the cache's lifetime is kept.
    pub(crate) fn probe(&self) -> Option<Result<(), String>> {
        let slot = self.probe.lock().unwrap_or_else(|e| e.into_inner());
        slot.as_ref().filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, r)| r.clone())
    }

    pub(crate) fn store_probe(&self, result: Result<(), String>) {
        *self.probe.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), result));
    }

    fn slot(&self, body: CachedBody) -> &BodySlot {
        &self.bodies[body as usize]
    }

    /// The body kept for `body`, if still fresh.
    pub(crate) fn body(&self, body: CachedBody) -> Option<(StatusCode, Bytes)> {
        self.slot(body).get(self.ttl, self.generation.load(Ordering::Acquire))
    }

    /// Keeps `value` for `body` (computed at `generation`, read before computing).
    pub(crate) fn store_body(&self, body: CachedBody, generation: u64, value: (StatusCode, Bytes)) {
        if self.ttl.is_zero() {
            return;
        }
        let (code, value) = value;
        self.slot(body).set(Some(KeptBody { at: Instant::now(), generation, code, body: value }));
    }

    /// The current generation, to pass to [`store_body`](Self::store_body).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Forgets everything (after a change made through the API).
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.health.clear();
        self.snapshot.clear();
        for slot in &self.bodies {
            slot.set(None);
        }
    }
}
