//! The [`Monitor`] handle: where applications and adapters record what
//! happens, and where every report is read from.
//!
//! A monitor is cheap to clone (an `Arc`) and safe to share between threads.
//! Recording is lock-free on the paths that run per query, per checkout and
//! per session, apart from the checkout registry's and the statement
//! buffer's per-shard locks, which only the recording thread normally
//! takes; anything that needs the clock, a lock or an allocation (errors,
//! slow queries, pool samples, alerts) happens on rarer paths or in
//! [`Monitor::tick`], which the owner calls every few seconds.
//!
//! A statement run on a checkout made for it alone
//! ([`Monitor::open_statement_checkout`], [`Monitor::close_statement_checkout`])
//! that succeeded in time is not folded into the histograms, counters and
//! per-fingerprint statistics at once: it is appended to the recording
//! thread's buffer (`queries::batch`), folded every few dozen statements,
//! and every reading (totals, histograms, per-fingerprint statistics, a
//! reset) folds all buffers first, so it sees everything recorded before.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;

use crate::alert::{Alert, AlertEngine, AlertError, AlertId, AlertRule, Matcher, Notification, Silence, SilenceId};
use crate::checkouts::{CheckoutInfo, Holder, Registry, SessionKind, TrackedCheckout};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::config::{MonitorConfig, Thresholds};
use crate::context;
use crate::counters::{COUNTERS, Counter, Counters, Totals, is_error_counter};
use crate::error::ConfigError;
use crate::error_class::ErrorClass;
use crate::events::{ErrorEvent, Event, EventSink, NPlusOneEvent, QueryEvent};
use crate::fingerprint::Fingerprint;
use crate::histogram::{Histogram, HistogramConfig, HistogramSnapshot};
use crate::inputs::{ResourceSample, SessionTableSample};
use crate::keyed::KeyedStats;
use crate::patterns::ErrorPatterns;
use crate::queries::{Execution, Pending, PreparedQuery, QueryStats, StatementBatch};
use crate::rates::{RateHistory, WindowDelta};
use crate::redact::redact_message;
use crate::ring::Ring;
use crate::route::{RouteStats, RouteTable};
use crate::rules::default_rules;
use crate::shard::{ShardSlot, default_shard_count, shard_slot};
use crate::signal::{Signal, TimedOperation, Window};
use crate::trend::{TrendPoint, TrendState};

/// How a query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// It succeeded.
    Success,
    /// It failed; the message is redacted before it is kept.
    Failure {
        /// The error's class.
        class: ErrorClass,
        /// The driver's message.
        message: &'a str,
    },
}

impl Outcome<'_> {
    fn class(&self) -> Option<ErrorClass> {
        match self {
            Outcome::Success => None,
            Outcome::Failure { class, .. } => Some(*class),
        }
    }
}

/// The state of a connection pool at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PoolSample {
    /// Open connections.
    pub size: u32,
    /// Open connections not checked out.
    pub idle: u32,
    /// Connections checked out.
    pub in_use: u32,
    /// Tasks waiting for a connection.
    pub pending: u32,
    /// The pool's maximum size.
    pub max: u32,
    /// The pool's minimum size.
    pub min: u32,
}

impl PoolSample {
    /// `in_use / max`, 0 for a pool without a maximum.
    pub fn utilization(&self) -> f64 {
        if self.max == 0 { 0.0 } else { f64::from(self.in_use) / f64::from(self.max) }
    }
}

/// A connection pool's configuration, shown beside its samples so that an
/// operator reading "exhausted" sees the limits that were hit.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct PoolConfig {
    /// The database system: `postgresql`, `mysql`, `sqlite`, …
    pub system: String,
    /// The most connections the pool opens.
    pub max_connections: u32,
    /// The connections it keeps open when idle.
    pub min_connections: u32,
    /// How long a checkout waits before giving up, seconds.
    pub acquire_timeout_seconds: f64,
    /// How long an idle connection is kept, seconds (`None`: forever).
    pub idle_timeout_seconds: Option<f64>,
    /// How long a connection lives at most, seconds (`None`: forever).
    pub max_lifetime_seconds: Option<f64>,
    /// Whether an idle connection is pinged before it is handed out.
    pub test_before_acquire: bool,
}

/// A pool sample with the time it was taken.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TimedPoolSample {
    /// When it was taken.
    pub at: Timestamp,
    /// The sample.
    #[serde(flatten)]
    pub sample: PoolSample,
    /// `in_use / max`.
    pub utilization: f64,
}

/// One finished HTTP request.
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord<'a> {
    /// The matched route template (e.g. `/users/{id}`), never the raw path.
    pub route: &'a str,
    /// The HTTP method.
    pub method: &'a str,
    /// The response status.
    pub status: u16,
    /// Time from receiving the request to the response.
    pub duration: Duration,
    /// The request's id, if it has one.
    pub request_id: Option<&'a str>,
    /// Time spent in database calls on its behalf.
    pub db_time: Duration,
    /// Database statements run on its behalf.
    pub db_queries: u32,
}

/// One run of a cleanup job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct CleanupRecord {
    /// Rows removed.
    pub rows_removed: u64,
    /// How long the run took.
    #[serde(with = "crate::config::duration_secs")]
    pub duration: Duration,
    /// Batches committed.
    pub batches: u32,
    /// Batches that failed.
    pub errors: u32,
}

/// What [`Monitor::reset`] clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetScope {
    /// Counters, histograms, query statistics and trends; errors stay.
    Metrics,
    /// Error counters, recent errors and error patterns.
    Errors,
    /// Everything above plus alert history. Active alerts, silences and
    /// live checkouts are kept: they describe the present, not the past.
    All,
}

#[derive(Debug)]
pub(crate) struct PoolState {
    pub(crate) latest: Option<TimedPoolSample>,
    pub(crate) samples: Ring<TimedPoolSample>,
    pub(crate) peak_utilization: f64,
    pub(crate) config: Option<PoolConfig>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) recent_queries: Ring<QueryEvent>,
    pub(crate) errors: Ring<ErrorEvent>,
    pub(crate) patterns: ErrorPatterns,
    pub(crate) pool: PoolState,
    pub(crate) rates: RateHistory,
    pub(crate) alerts: AlertEngine,
    pub(crate) trend: TrendState,
    pub(crate) last_cleanup: Option<(Timestamp, CleanupRecord)>,
    /// When another process was last seen cleaning (it held the cleanup lock).
    pub(crate) cleanup_seen_elsewhere: Option<Timestamp>,
    pub(crate) n_plus_one: Ring<NPlusOneEvent>,
    pub(crate) session_table: Option<(Timestamp, SessionTableSample)>,
    pub(crate) cleanup_interval: Option<Duration>,
    pub(crate) resources: Option<(Timestamp, ResourceSample)>,
    pub(crate) last_tick: Option<Timestamp>,
    pub(crate) last_summary_log: Option<Timestamp>,
}

/// Durations the hot paths compare against, mirrored from the thresholds
/// into atomics so recording never takes the thresholds' lock.
#[derive(Debug, Default)]
struct HotThresholds {
    slow_query_ns: AtomicU64,
    slow_creation_ns: AtomicU64,
    slow_cleanup_ns: AtomicU64,
    slow_recovery_ns: AtomicU64,
    slow_request_ns: AtomicU64,
    request_timeout_ns: AtomicU64,
    n_plus_one_min_count: AtomicU32,
    n_plus_one_min_total_ns: AtomicU64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl HotThresholds {
    fn store(&self, t: &Thresholds) {
        self.slow_query_ns.store(nanos(t.slow_query), Ordering::Relaxed);
        self.slow_creation_ns.store(nanos(t.slow_session_creation), Ordering::Relaxed);
        self.slow_cleanup_ns.store(nanos(t.slow_cleanup), Ordering::Relaxed);
        self.slow_recovery_ns.store(nanos(t.slow_recovery), Ordering::Relaxed);
        self.slow_request_ns.store(nanos(t.slow_request), Ordering::Relaxed);
        self.request_timeout_ns.store(nanos(t.request_timeout), Ordering::Relaxed);
        self.n_plus_one_min_count.store(t.n_plus_one_min_count, Ordering::Relaxed);
        self.n_plus_one_min_total_ns.store(nanos(t.n_plus_one_min_total), Ordering::Relaxed);
    }

    #[inline]
    fn is_slow(threshold: &AtomicU64, d: Duration) -> bool {
        nanos(d) >= threshold.load(Ordering::Relaxed)
    }
}

/// A histogram some of whose values are recorded once for several
/// histograms: a plain checkout's session opens in exactly its wait, a
/// checkout's session lasts exactly its use, and a statement run on a
/// checkout made for it alone (a pool used as an executor) takes exactly
/// the checkout's use. [`Monitor::open_checkout`], [`Monitor::close_checkout`]
/// and [`Monitor::close_statement_checkout`] record each such value once,
/// into a part the histograms concerned share; every reader merges them.
/// Values recorded one at a time (`record_checkout`, `record_query`, …) go
/// to `own`.
///
/// The shared parts also receive the statements whose recording is
/// deferred ([`StatementBatch`]): a reading folds them in first.
#[derive(Debug)]
pub(crate) struct Composite {
    pub(crate) own: Histogram,
    shared: Box<[Arc<Histogram>]>,
    batch: Arc<StatementBatch>,
}

impl Composite {
    fn new(shared: &[&Arc<Histogram>], batch: &Arc<StatementBatch>) -> Self {
        Composite {
            own: Histogram::new(HistogramConfig::precise()),
            shared: shared.iter().map(|h| Arc::clone(h)).collect(),
            batch: Arc::clone(batch),
        }
    }

    #[inline]
    pub(crate) fn record(&self, d: Duration) {
        self.own.record(d);
    }

    /// Every part, merged.
    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        self.batch.flush();
        let mut snapshot = self.own.snapshot();
        for part in self.shared.iter() {
            snapshot.merge(&part.snapshot());
        }
        snapshot
    }
}

/// The histograms a monitor keeps.
#[derive(Debug)]
pub(crate) struct Histograms {
    pub(crate) query: Composite,
    pub(crate) session_duration: Composite,
    pub(crate) session_creation: Composite,
    pub(crate) session_cleanup: Histogram,
    pub(crate) recovery: Histogram,
    pub(crate) checkout_wait: Composite,
    pub(crate) connection_use: Composite,
    pub(crate) connection_create: Histogram,
    pub(crate) request: Histogram,
    pub(crate) cleanup_run: Histogram,
    /// Waits of plain checkouts, which are also their sessions' creation
    /// times (part of `checkout_wait` and `session_creation`).
    opened: Arc<Histogram>,
    /// Use times of checkouts, which are also their sessions' durations
    /// (part of `connection_use` and `session_duration`).
    closed: Arc<Histogram>,
    /// Durations of statements that were their checkout's only use (part of
    /// `query`, `connection_use` and `session_duration`).
    statement: Arc<Histogram>,
}

impl Histograms {
    /// `opened` and `statement` are the batch's: deferred statements are
    /// folded into them.
    fn new(batch: &Arc<StatementBatch>) -> Self {
        let h = || Histogram::new(HistogramConfig::precise());
        let opened = Arc::clone(&batch.opened);
        let closed = Arc::new(h());
        let statement = Arc::clone(&batch.statement);
        Histograms {
            query: Composite::new(&[&statement], batch),
            session_duration: Composite::new(&[&closed, &statement], batch),
            session_creation: Composite::new(&[&opened], batch),
            session_cleanup: h(),
            recovery: h(),
            checkout_wait: Composite::new(&[&opened], batch),
            connection_use: Composite::new(&[&closed, &statement], batch),
            connection_create: h(),
            request: h(),
            cleanup_run: h(),
            opened,
            closed,
            statement,
        }
    }

    fn all(&self) -> [&Histogram; 13] {
        [
            &self.query.own,
            &self.session_duration.own,
            &self.session_creation.own,
            &self.session_cleanup,
            &self.recovery,
            &self.checkout_wait.own,
            &self.connection_use.own,
            &self.connection_create,
            &self.request,
            &self.cleanup_run,
            &self.opened,
            &self.closed,
            &self.statement,
        ]
    }
}

/// The key of per-route request statistics.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RouteKey {
    pub(crate) method: String,
    pub(crate) route: String,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: MonitorConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) started_at: Timestamp,
    pub(crate) thresholds: RwLock<Arc<Thresholds>>,
    hot: HotThresholds,
    /// Shared with the statement batch, which folds into it.
    pub(crate) counters: Arc<Counters>,
    /// The shard count of every sharded structure, so one slot lookup serves all.
    shards: usize,
    pub(crate) active_sessions: AtomicI64,
    pub(crate) peak_sessions: AtomicI64,
    pub(crate) in_flight_requests: AtomicI64,
    pub(crate) peak_in_flight: AtomicI64,
    pub(crate) histograms: Histograms,
    pub(crate) queries: QueryStats,
    pub(crate) routes: RouteTable,
    pub(crate) operations: KeyedStats<String>,
    /// Named units of work (`with_operation`), apart from recovered ones.
    pub(crate) named_operations: KeyedStats<String>,
    pub(crate) state: Mutex<State>,
    pub(crate) checkouts: Registry,
    sinks: RwLock<Vec<Arc<dyn EventSink>>>,
}

/// The monitoring engine's handle. Clones share the same state.
///
/// ```
/// use std::time::Duration;
/// use dbwarden_core::{Monitor, Outcome};
///
/// let monitor = Monitor::new();
/// monitor.record_session_created(Duration::from_millis(3));
/// monitor.record_query("SELECT * FROM users WHERE id = 42", Duration::from_millis(2), 1, Outcome::Success);
/// monitor.record_commit();
/// monitor.record_session_closed(Duration::from_millis(9), Duration::from_micros(200));
///
/// let snapshot = monitor.snapshot();
/// assert_eq!(snapshot.session_metrics.sessions_created, 1);
/// assert_eq!(snapshot.query_metrics.total, 1);
/// // Only the normalized statement is ever reported.
/// assert_eq!(monitor.top_queries(Default::default(), 1)[0].text, "SELECT * FROM users WHERE id = ?");
/// ```
#[derive(Debug, Clone)]
pub struct Monitor {
    pub(crate) inner: Arc<Inner>,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor::new()
    }
}

/// Builds a [`Monitor`] with a configuration, thresholds, rules or a clock
/// other than the defaults.
#[derive(Debug, Default)]
pub struct MonitorBuilder {
    config: MonitorConfig,
    thresholds: Thresholds,
    rules: Option<Vec<AlertRule>>,
    clock: Option<Arc<dyn Clock>>,
}

impl MonitorBuilder {
    /// Sets the capacities and intervals.
    pub fn config(mut self, config: MonitorConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the thresholds.
    pub fn thresholds(mut self, thresholds: Thresholds) -> Self {
        self.thresholds = thresholds;
        self
    }

    /// Replaces the default alert rules.
    pub fn rules(mut self, rules: Vec<AlertRule>) -> Self {
        self.rules = Some(rules);
        self
    }

    /// Sets the clock (a [`crate::ManualClock`] in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Validates everything and builds the monitor.
    pub fn build(self) -> Result<Monitor, ConfigError> {
        self.config.validate()?;
        self.thresholds.validate()?;
        let rules = self.rules.unwrap_or_else(|| default_rules(&self.thresholds));
        let alerts =
            AlertEngine::new(rules, self.config.alert_history).map_err(|e| ConfigError::Rules(e.to_string()))?;
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let now = clock.now();
        let config = self.config;
        let hot = HotThresholds::default();
        hot.store(&self.thresholds);
        let counters = Arc::new(Counters::new());
        let batch = Arc::new(StatementBatch::new(Arc::clone(&counters)));
        let state = State {
            recent_queries: Ring::new(config.query_ring),
            errors: Ring::new(config.error_ring),
            patterns: ErrorPatterns::new(config.error_patterns),
            pool: PoolState {
                latest: None,
                samples: Ring::new(config.pool_samples),
                peak_utilization: 0.0,
                config: None,
            },
            rates: RateHistory::new(config.rate_resolution, now),
            alerts,
            trend: TrendState::new(config.trend_interval, config.trend_points, now),
            last_cleanup: None,
            cleanup_seen_elsewhere: None,
            n_plus_one: Ring::new(config.n_plus_one_ring),
            session_table: None,
            cleanup_interval: None,
            resources: None,
            last_tick: None,
            last_summary_log: None,
        };
        Ok(Monitor {
            inner: Arc::new(Inner {
                queries: QueryStats::new(config.top_queries, config.fingerprint_cache, now, Arc::clone(&batch)),
                routes: RouteTable::new(config.top_routes),
                operations: KeyedStats::new(config.top_operations),
                named_operations: KeyedStats::new(config.top_operations),
                checkouts: Registry::new(config.tracked_checkouts),
                config,
                clock,
                started_at: now,
                thresholds: RwLock::new(Arc::new(self.thresholds)),
                hot,
                counters,
                shards: default_shard_count(),
                active_sessions: AtomicI64::new(0),
                peak_sessions: AtomicI64::new(0),
                in_flight_requests: AtomicI64::new(0),
                peak_in_flight: AtomicI64::new(0),
                histograms: Histograms::new(&batch),
                state: Mutex::new(state),
                sinks: RwLock::new(Vec::new()),
            }),
        })
    }
}

static GLOBAL: OnceLock<Monitor> = OnceLock::new();

impl Monitor {
    /// A monitor with the default configuration, thresholds and rules, on the
    /// system clock.
    pub fn new() -> Monitor {
        match Monitor::builder().build() {
            Ok(monitor) => monitor,
            // The defaults are validated by unit tests; failing here would be
            // a bug in dbwarden, not in the caller's input.
            Err(e) => panic!("dbwarden's default configuration is invalid: {e}"),
        }
    }

    /// A builder for a monitor with other settings.
    pub fn builder() -> MonitorBuilder {
        MonitorBuilder::default()
    }

    /// The process-wide monitor, created with defaults on first use.
    pub fn global() -> &'static Monitor {
        GLOBAL.get_or_init(Monitor::new)
    }

    /// Installs `monitor` as the process-wide one. Fails (returning it) when
    /// [`Monitor::global`] was already used or installed.
    pub fn install_global(monitor: Monitor) -> Result<(), Monitor> {
        GLOBAL.set(monitor)
    }

    /// The monitor's name.
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// The monitor's configuration.
    pub fn config(&self) -> &MonitorConfig {
        &self.inner.config
    }

    /// The monitor's clock.
    pub fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    /// The current time by the monitor's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// When the monitor was created.
    pub fn started_at(&self) -> Timestamp {
        self.inner.started_at
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a sink that receives every event from now on.
    pub fn subscribe(&self, sink: Arc<dyn EventSink>) {
        self.inner.sinks.write().unwrap_or_else(|e| e.into_inner()).push(sink);
    }

    /// Removes a sink registered with [`Monitor::subscribe`] (compared by pointer).
    pub fn unsubscribe(&self, sink: &Arc<dyn EventSink>) {
        self.inner.sinks.write().unwrap_or_else(|e| e.into_inner()).retain(|s| !Arc::ptr_eq(s, sink));
    }

    pub(crate) fn emit(&self, event: Event) {
        let sinks = self.inner.sinks.read().unwrap_or_else(|e| e.into_inner());
        for sink in sinks.iter() {
            sink.on_event(&event);
        }
    }

    // ---- thresholds -------------------------------------------------------

    /// The thresholds in force.
    pub fn thresholds(&self) -> Arc<Thresholds> {
        self.inner.thresholds.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The N+1 thresholds in force (count, total time), read without the
    /// thresholds' lock: they are asked for by every request that ran a
    /// statement.
    #[inline]
    pub(crate) fn n_plus_one_thresholds(&self) -> (u32, Duration) {
        let hot = &self.inner.hot;
        (
            hot.n_plus_one_min_count.load(Ordering::Relaxed),
            Duration::from_nanos(hot.n_plus_one_min_total_ns.load(Ordering::Relaxed)),
        )
    }

    /// Replaces the thresholds and re-derives the default alert rules from
    /// them. Invalid thresholds are refused and nothing changes.
    ///
    /// A monitor built with custom rules keeps its rules; only the
    /// thresholds used for health and slow-operation counting change.
    pub fn set_thresholds(&self, thresholds: Thresholds) -> Result<(), ConfigError> {
        thresholds.validate()?;
        let mut state = self.state();
        let current = self.thresholds();
        if state.alerts.rules() == default_rules(&current).as_slice() {
            state.alerts.set_rules(default_rules(&thresholds)).map_err(|e| ConfigError::Rules(e.to_string()))?;
        }
        self.inner.hot.store(&thresholds);
        *self.inner.thresholds.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(thresholds);
        Ok(())
    }

    /// The alert rules in force.
    pub fn rules(&self) -> Vec<AlertRule> {
        self.state().alerts.rules().to_vec()
    }

    /// Replaces the alert rules; invalid rules are refused and nothing changes.
    pub fn set_rules(&self, rules: Vec<AlertRule>) -> Result<(), AlertError> {
        self.state().alerts.set_rules(rules)
    }

    // ---- database sessions ------------------------------------------------

    /// A database session (a checkout or a transaction) was opened; it took
    /// `creation_time` to open.
    #[inline]
    pub fn record_session_created(&self, creation_time: Duration) {
        let c = &self.inner.counters;
        c.inc(Counter::SessionsCreated);
        self.session_opened();
        self.inner.histograms.session_creation.record(creation_time);
        if HotThresholds::is_slow(&self.inner.hot.slow_creation_ns, creation_time) {
            c.inc(Counter::SlowSessionCreations);
        }
    }

    /// A database session closed after being open for `duration`; closing it
    /// (the session's cleanup) took `cleanup_time`.
    #[inline]
    pub fn record_session_closed(&self, duration: Duration, cleanup_time: Duration) {
        let c = &self.inner.counters;
        c.inc(Counter::SessionsClosed);
        self.inner.active_sessions.fetch_sub(1, Ordering::Relaxed);
        self.inner.histograms.session_duration.record(duration);
        // A plain checkout has nothing to clean up; its zero would only drag
        // the average cleanup time (of transactions ending) toward nothing.
        if !cleanup_time.is_zero() {
            self.inner.histograms.session_cleanup.record(cleanup_time);
        }
        if HotThresholds::is_slow(&self.inner.hot.slow_cleanup_ns, cleanup_time) {
            c.inc(Counter::SlowSessionCleanups);
        }
    }

    /// A transaction committed.
    #[inline]
    pub fn record_commit(&self) {
        self.inner.counters.inc(Counter::Commits);
    }

    /// A transaction rolled back.
    #[inline]
    pub fn record_rollback(&self) {
        self.inner.counters.inc(Counter::Rollbacks);
    }

    /// A session-level error not tied to a statement (a failed connect, a
    /// checkout timeout, a broken connection). The message is redacted.
    pub fn record_session_error(&self, class: ErrorClass, message: &str) {
        self.inner.counters.inc(Counter::SessionErrors);
        self.record_error(class, message, None, None);
    }

    pub(crate) fn record_error(
        &self,
        class: ErrorClass,
        message: &str,
        fingerprint: Option<&Fingerprint>,
        operation: Option<&str>,
    ) {
        self.inner.counters.inc_class(class);
        let event = ErrorEvent {
            at: self.now(),
            class,
            message: redact_message(message),
            fingerprint: fingerprint.map(Fingerprint::id),
            operation: operation.map(|o| truncate(o, 128)),
        };
        {
            let mut state = self.state();
            state.patterns.record(&event, fingerprint);
            state.errors.push(event.clone());
        }
        tracing::debug!(target: "dbwarden", class = %class, message = %event.message, "database error");
        self.emit(Event::Error(event));
    }

    /// A unit of work was re-run on a fresh connection after a
    /// connection-level failure (the counterpart of re-attaching a detached
    /// ORM instance). `operation` names what was recovered.
    pub fn record_recovery(&self, operation: &str, duration: Duration, success: bool) {
        let c = &self.inner.counters;
        c.inc(Counter::RecoveryAttempts);
        if success {
            c.inc(Counter::RecoverySuccesses);
        }
        self.inner.histograms.recovery.record(duration);
        let slow = HotThresholds::is_slow(&self.inner.hot.slow_recovery_ns, duration);
        if slow {
            c.inc(Counter::SlowRecoveries);
        }
        self.inner.operations.entry(&truncate(operation, 128)).record(duration, !success, slow);
    }

    // ---- queries ----------------------------------------------------------

    /// The fingerprint of `sql` (normalized once per distinct text).
    pub fn fingerprint(&self, sql: &str) -> Arc<Fingerprint> {
        self.inner.queries.fingerprint(sql)
    }

    /// Looks `sql`'s fingerprint and statistics slot up once, for
    /// [`Monitor::record_prepared`].
    #[inline]
    pub fn prepare(&self, sql: &str) -> PreparedQuery {
        self.inner.queries.prepare(sql, || self.now())
    }

    /// A statement ran for `duration` (execution only, not the pool wait) and
    /// returned or affected `rows` rows.
    #[inline]
    pub fn record_query(&self, sql: &str, duration: Duration, rows: u64, outcome: Outcome<'_>) {
        let at = shard_slot(self.inner.shards);
        let slow = self.count_query(at, &self.inner.histograms.query.own, duration, rows, &outcome);
        let failed = outcome.class().is_some();
        let e = Execution { at, duration, rows, failed, slow };
        let in_context = context::is_active();
        if let Some(fingerprint) = self.inner.queries.record_text(sql, e, in_context, || self.now()) {
            if in_context {
                context::note_statement(&fingerprint, duration, failed);
            }
            if failed || slow {
                self.notable_query(&fingerprint, duration, rows, outcome, slow);
            }
        }
    }

    /// Like [`Monitor::record_query`] for a statement prepared with
    /// [`Monitor::prepare`]: no hashing, no lookup, no lock.
    #[inline]
    pub fn record_prepared(&self, query: &PreparedQuery, duration: Duration, rows: u64, outcome: Outcome<'_>) {
        let at = shard_slot(self.inner.shards);
        let slow = self.count_query(at, &self.inner.histograms.query.own, duration, rows, &outcome);
        let failed = outcome.class().is_some();
        self.inner.queries.record_prepared(query, Execution { at, duration, rows, failed, slow }, || self.now());
        if context::is_active() {
            context::note_statement(query.fingerprint_arc(), duration, failed);
        }
        if slow || failed {
            self.notable_query(query.fingerprint(), duration, rows, outcome, slow);
        }
    }

    #[inline]
    fn count_query(
        &self,
        at: ShardSlot,
        latency: &Histogram,
        duration: Duration,
        rows: u64,
        outcome: &Outcome<'_>,
    ) -> bool {
        let c = &self.inner.counters;
        if rows != 0 {
            c.add_in(at, Counter::QueryRows, rows);
        }
        latency.record_ns_at(at, nanos(duration));
        if outcome.class().is_some() {
            c.add_in(at, Counter::QueryErrors, 1);
        }
        let slow = HotThresholds::is_slow(&self.inner.hot.slow_query_ns, duration);
        if slow {
            c.add_in(at, Counter::SlowQueries, 1);
        }
        slow
    }

    #[cold]
    fn notable_query(
        &self,
        fingerprint: &Fingerprint,
        duration: Duration,
        rows: u64,
        outcome: Outcome<'_>,
        slow: bool,
    ) {
        let event = QueryEvent {
            at: self.now(),
            fingerprint: fingerprint.id(),
            text: fingerprint.text().to_owned(),
            kind: fingerprint.kind(),
            table: fingerprint.table().map(str::to_owned),
            duration_ms: duration.as_secs_f64() * 1000.0,
            rows,
            error: outcome.class(),
            slow,
        };
        self.state().recent_queries.push(event.clone());
        if let Outcome::Failure { class, message } = outcome {
            let operation = context::current_operation();
            self.record_error(class, message, Some(fingerprint), operation.as_ref().map(|o| o.name()));
        }
        if slow {
            tracing::warn!(target: "dbwarden", fingerprint = %event.fingerprint, query = %event.text, duration_ms = event.duration_ms, "slow query");
            self.emit(Event::SlowQuery(event));
        }
    }

    // ---- pool -------------------------------------------------------------

    /// The pool's state now. Adapters call this every few seconds.
    pub fn record_pool_sample(&self, sample: PoolSample) {
        let at = self.now();
        let timed = TimedPoolSample { at, sample, utilization: sample.utilization() };
        let mut state = self.state();
        state.pool.latest = Some(timed);
        state.pool.samples.push(timed);
        if timed.utilization > state.pool.peak_utilization {
            state.pool.peak_utilization = timed.utilization;
        }
        state.trend.observe_pool(&timed);
    }

    /// The pool's configuration (adapters report it once, and again if it changes).
    pub fn record_pool_config(&self, config: PoolConfig) {
        self.state().pool.config = Some(config);
    }

    /// Connections the pool closed on its own (idle timeout, max lifetime, a
    /// failed health check), as inferred by an adapter that cannot see them
    /// one by one.
    pub fn record_connections_closed(&self, count: u64) {
        self.inner.counters.add(Counter::ConnectionsClosed, count);
    }

    /// A connection was checked out after waiting `wait` for it.
    #[inline]
    pub fn record_checkout(&self, wait: Duration) {
        self.inner.counters.inc(Counter::Checkouts);
        self.inner.histograms.checkout_wait.record(wait);
    }

    /// A connection went back to the pool after being used for `used`.
    #[inline]
    pub fn record_checkin(&self, used: Duration) {
        self.inner.counters.inc(Counter::Checkins);
        self.inner.histograms.connection_use.record(used);
    }

    /// A checkout gave up after waiting `waited` (the pool was exhausted).
    pub fn record_pool_timeout(&self, waited: Duration) {
        self.inner.counters.inc(Counter::PoolTimeouts);
        self.inner.histograms.checkout_wait.record(waited);
        self.record_session_error(
            ErrorClass::PoolTimeout,
            &format!("timed out after {:.3} s waiting for a connection", waited.as_secs_f64()),
        );
    }

    /// The pool opened a new connection, which took `create_time`.
    pub fn record_connection_opened(&self, create_time: Duration) {
        self.inner.counters.inc(Counter::ConnectionsOpened);
        self.inner.histograms.connection_create.record(create_time);
    }

    /// The pool opened a new connection whose connect time is not known
    /// (a connect the pool made on its own): counted, not timed.
    pub fn record_connection_opened_untimed(&self) {
        self.inner.counters.inc(Counter::ConnectionsOpened);
    }

    /// The pool closed a connection.
    pub fn record_connection_closed(&self) {
        self.inner.counters.inc(Counter::ConnectionsClosed);
    }

    /// A connection was checked out after waiting `wait`, opening a session
    /// that took `creation` to open (the wait itself for a plain checkout;
    /// the wait plus the BEGIN for a transaction), held by `holder`.
    ///
    /// The same as [`Monitor::record_checkout`], [`Monitor::record_session_created`]
    /// and [`Monitor::track_checkout`] in one call, with one shard lookup
    /// and one clock read: this is on the path of every pooled statement.
    /// Pair it with [`Monitor::close_checkout`].
    #[inline]
    pub fn open_checkout(
        &self,
        kind: SessionKind,
        holder: Holder,
        wait: Duration,
        creation: Duration,
    ) -> TrackedCheckout {
        let inner = &*self.inner;
        let at = shard_slot(inner.shards);
        self.checkout_counted(at, wait, creation);
        self.session_opened();
        inner.checkouts.track_at(at, kind, holder, self.now())
    }

    /// A checkout from [`Monitor::open_checkout`] ended: the connection was
    /// out for `used`, and closing its session (COMMIT / ROLLBACK) took
    /// `cleanup` (zero for a plain checkout). The same as
    /// [`Monitor::record_checkin`], [`Monitor::release_checkout`] and
    /// [`Monitor::record_session_closed`] with `used` as the session's
    /// duration.
    #[inline]
    pub fn close_checkout(&self, checkout: &TrackedCheckout, used: Duration, cleanup: Duration) {
        let inner = &*self.inner;
        let at = shard_slot(inner.shards);
        inner.histograms.closed.record_ns_at(at, nanos(used));
        if !cleanup.is_zero() {
            inner.histograms.session_cleanup.record_ns_at(at, nanos(cleanup));
        }
        self.checkout_closed(at, checkout, cleanup);
    }

    /// A connection was checked out for one statement alone (a pool used
    /// directly as an executor), held by `holder`: it is tracked (the live
    /// checkout list, leak detection) and counted as an active session at
    /// once, while the checkout, its wait and its session are recorded with
    /// the statement, when it ends, by [`Monitor::close_statement_checkout`]
    /// (or [`Monitor::close_unused_statement_checkout`] if the statement
    /// did not run to its end).
    ///
    /// This is what keeps the code run per pooled statement small: a
    /// statement that succeeds in time is only appended to a per-thread
    /// buffer, folded into the histograms, counters and per-fingerprint
    /// statistics every few dozen statements and before anything is read.
    #[inline]
    pub fn open_statement_checkout(&self, holder: Holder) -> TrackedCheckout {
        let at = shard_slot(self.inner.shards);
        self.session_opened();
        self.inner.checkouts.track_at(at, SessionKind::Connection, holder, self.now())
    }

    /// The statement that a checkout from [`Monitor::open_statement_checkout`]
    /// was made for ended, and the checkout with it: the connection waited
    /// `wait` to be checked out (its session's creation time) and the
    /// statement (`query`, from [`Monitor::prepare`]) ran for `duration`
    /// (the checkout's use and its session's duration), returning or
    /// affecting `rows` rows. Everything is counted as by
    /// [`Monitor::open_checkout`], [`Monitor::record_query`] and
    /// [`Monitor::close_checkout`] with the statement's duration as the use
    /// time, each figure once; a failed or slow statement (or a slow
    /// checkout) is recorded at once,
    /// with its events, any other is folded in later (see there).
    #[inline]
    pub fn close_statement_checkout(
        &self,
        checkout: &TrackedCheckout,
        wait: Duration,
        query: PreparedQuery,
        duration: Duration,
        rows: u64,
        outcome: Outcome<'_>,
    ) {
        let inner = &*self.inner;
        let at = shard_slot(inner.shards);
        inner.active_sessions.fetch_sub(1, Ordering::Relaxed);
        self.release_checkout(checkout);
        let hot = &inner.hot;
        if outcome.class().is_some()
            || HotThresholds::is_slow(&hot.slow_query_ns, duration)
            || HotThresholds::is_slow(&hot.slow_creation_ns, wait)
            || HotThresholds::is_slow(&hot.slow_cleanup_ns, Duration::ZERO)
        {
            self.statement_checkout_now(at, wait, &query, duration, rows, outcome);
            return;
        }
        if context::is_active() {
            context::note_statement(query.fingerprint_arc(), duration, false);
        }
        // Recorded into the slot even if it was evicted meanwhile, as the
        // direct path races the same way; a statement not admitted to the
        // table has the "other" bucket's slot, which is where it belongs.
        let slot = query.into_slot();
        inner.queries.batch().push(at, Pending { slot, wait_ns: nanos(wait), duration_ns: nanos(duration), rows });
    }

    /// [`Monitor::close_statement_checkout`] recorded at once (the release
    /// and the active session's end are done).
    #[cold]
    #[inline(never)]
    fn statement_checkout_now(
        &self,
        at: ShardSlot,
        wait: Duration,
        query: &PreparedQuery,
        duration: Duration,
        rows: u64,
        outcome: Outcome<'_>,
    ) {
        self.checkout_counted(at, wait, wait);
        let slow = self.count_query(at, &self.inner.histograms.statement, duration, rows, &outcome);
        let failed = outcome.class().is_some();
        query.record_in_slot(Execution { at, duration, rows, failed, slow });
        if context::is_active() {
            context::note_statement(query.fingerprint_arc(), duration, failed);
        }
        if slow || failed {
            self.notable_query(query.fingerprint(), duration, rows, outcome, slow);
        }
        self.checkin_counted(at, Duration::ZERO);
    }

    /// A checkout from [`Monitor::open_statement_checkout`] ended before its
    /// statement did (its future was dropped): the connection waited `wait`
    /// and was out for `used`. Recorded at once; the statement, if it
    /// started, is recorded on its own ([`Monitor::record_query`]).
    pub fn close_unused_statement_checkout(&self, checkout: &TrackedCheckout, wait: Duration, used: Duration) {
        let inner = &*self.inner;
        let at = shard_slot(inner.shards);
        inner.active_sessions.fetch_sub(1, Ordering::Relaxed);
        self.release_checkout(checkout);
        self.checkout_counted(at, wait, wait);
        inner.histograms.closed.record_ns_at(at, nanos(used));
        self.checkin_counted(at, Duration::ZERO);
    }

    /// The counts of a check-out that waited `wait` and whose session took
    /// `creation` to open (the same as `wait` for a plain checkout).
    #[inline]
    fn checkout_counted(&self, at: ShardSlot, wait: Duration, creation: Duration) {
        let inner = &*self.inner;
        let c = &inner.counters;
        c.add_in(at, Counter::Checkouts, 1);
        c.add_in(at, Counter::SessionsCreated, 1);
        let h = &inner.histograms;
        if creation == wait {
            h.opened.record_ns_at(at, nanos(wait));
        } else {
            h.checkout_wait.own.record_ns_at(at, nanos(wait));
            h.session_creation.own.record_ns_at(at, nanos(creation));
        }
        if HotThresholds::is_slow(&inner.hot.slow_creation_ns, creation) {
            c.add_in(at, Counter::SlowSessionCreations, 1);
        }
    }

    /// The counts of a check-in and of its session's end, whose closing
    /// took `cleanup`.
    #[inline]
    fn checkin_counted(&self, at: ShardSlot, cleanup: Duration) {
        let inner = &*self.inner;
        let c = &inner.counters;
        c.add_in(at, Counter::Checkins, 1);
        c.add_in(at, Counter::SessionsClosed, 1);
        if HotThresholds::is_slow(&inner.hot.slow_cleanup_ns, cleanup) {
            c.add_in(at, Counter::SlowSessionCleanups, 1);
        }
    }

    /// The counts of a check-in and of its session's end, and the release.
    #[inline]
    fn checkout_closed(&self, at: ShardSlot, checkout: &TrackedCheckout, cleanup: Duration) {
        self.checkin_counted(at, cleanup);
        self.inner.active_sessions.fetch_sub(1, Ordering::Relaxed);
        self.release_checkout(checkout);
    }

    /// Counts one more active session and raises the peak.
    #[inline]
    fn session_opened(&self) {
        let active = self.inner.active_sessions.fetch_add(1, Ordering::Relaxed) + 1;
        if active > self.inner.peak_sessions.load(Ordering::Relaxed) {
            self.inner.peak_sessions.fetch_max(active, Ordering::Relaxed);
        }
    }

    /// Starts tracking a checkout for leak detection and the live checkout list.
    pub fn track_checkout(&self, kind: SessionKind, holder: Holder) -> TrackedCheckout {
        self.inner.checkouts.track(kind, holder, self.now())
    }

    /// Notes that a tracked checkout ran a statement (for its idle time).
    pub fn touch_checkout(&self, checkout: &TrackedCheckout) {
        self.inner.checkouts.touch(checkout, self.now());
    }

    /// Stops tracking a checkout. If it had been reported as a leak, a
    /// "returned" event follows.
    #[inline]
    pub fn release_checkout(&self, checkout: &TrackedCheckout) {
        if let Some(info) = self.inner.checkouts.release(checkout, || self.now()) {
            self.leak_returned(*info);
        }
    }

    #[cold]
    fn leak_returned(&self, info: CheckoutInfo) {
        tracing::info!(
            target: "dbwarden",
            checkout = info.id.0,
            held_seconds = info.age_seconds,
            route = info.holder.route.as_deref().unwrap_or("-"),
            "previously reported leaked connection was returned"
        );
        self.emit(Event::LeakReturned(info));
    }

    /// The checkouts out now, oldest first.
    pub fn checkouts(&self) -> Vec<CheckoutInfo> {
        self.inner.checkouts.list(self.now())
    }

    // ---- requests and cleanup --------------------------------------------

    /// An HTTP request started (for the in-flight count); pair with
    /// [`Monitor::record_request`].
    #[inline]
    pub fn request_started(&self) {
        let now = self.inner.in_flight_requests.fetch_add(1, Ordering::Relaxed) + 1;
        if now > self.inner.peak_in_flight.load(Ordering::Relaxed) {
            self.inner.peak_in_flight.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// An HTTP request finished. Looks its route up by name; the
    /// request-tracking layer records through a [`crate::RouteHandle`]
    /// instead, which needs no lookup.
    pub fn record_request(&self, request: &RequestRecord<'_>) {
        let route = self.inner.routes.stats(request.method, request.route);
        if self.record_request_in(&route, request) {
            self.log_slow_request(request);
        }
    }

    /// Records a finished request into `route`, its route's statistics;
    /// whether it was slow. The caller logs a slow one (with
    /// [`Monitor::log_slow_request`]), so that the request id is only read
    /// then.
    pub(crate) fn record_request_in(&self, route: &RouteStats, request: &RequestRecord<'_>) -> bool {
        let inner = &*self.inner;
        let c = &inner.counters;
        let at = shard_slot(inner.shards);
        inner.in_flight_requests.fetch_sub(1, Ordering::Relaxed);
        c.add_in(at, Counter::Requests, 1);
        let failed = request.status >= 500;
        if failed {
            c.add_in(at, Counter::RequestErrors, 1);
        }
        let duration_ns = nanos(request.duration);
        let slow = duration_ns >= inner.hot.slow_request_ns.load(Ordering::Relaxed);
        if slow {
            c.add_in(at, Counter::SlowRequests, 1);
        }
        if duration_ns >= inner.hot.request_timeout_ns.load(Ordering::Relaxed) {
            c.add_in(at, Counter::TimedOutRequests, 1);
        }
        inner.histograms.request.record_ns_at(at, duration_ns);
        route.record(at, duration_ns, failed, slow, request.db_time, request.db_queries);
        slow
    }

    #[cold]
    pub(crate) fn log_slow_request(&self, request: &RequestRecord<'_>) {
        tracing::warn!(
            target: "dbwarden",
            method = request.method,
            route = request.route,
            status = request.status,
            request_id = request.request_id.unwrap_or("-"),
            duration_ms = request.duration.as_secs_f64() * 1000.0,
            "slow request"
        );
    }

    /// This process's cleanup found another process's run holding the
    /// cleanup lock: cleanup is happening, only not here. Keeps "cleanup not
    /// running" quiet on every host but the one that does the work, without
    /// counting the other host's run as this one's.
    pub fn record_cleanup_elsewhere(&self) {
        let now = self.now();
        self.state().cleanup_seen_elsewhere = Some(now);
    }

    /// A cleanup run finished.
    pub fn record_cleanup(&self, run: CleanupRecord) {
        let c = &self.inner.counters;
        c.inc(Counter::CleanupRuns);
        c.add(Counter::CleanupRows, run.rows_removed);
        c.add(Counter::CleanupErrors, u64::from(run.errors));
        self.inner.histograms.cleanup_run.record(run.duration);
        let now = self.now();
        self.state().last_cleanup = Some((now, run));
    }

    // ---- the periodic tick -------------------------------------------------

    /// Samples rates, scans for leaks and timed-out transactions, evaluates
    /// the alert rules and pushes the resulting events. The owner calls this
    /// every few seconds (the facade's driver does it on a timer); calling it
    /// more often is harmless.
    pub fn tick(&self) -> Vec<Notification> {
        let now = self.now();
        let thresholds = self.thresholds();
        let findings = self.inner.checkouts.scan(now, thresholds.leak_detection, thresholds.transaction_timeout);
        for leak in &findings.new_leaks {
            self.inner.counters.inc(Counter::LeaksSuspected);
            tracing::warn!(
                target: "dbwarden",
                checkout = leak.id.0,
                held_seconds = leak.age_seconds,
                request_id = leak.holder.request_id.as_deref().unwrap_or("-"),
                route = leak.holder.route.as_deref().unwrap_or("-"),
                span = leak.holder.span.as_deref().unwrap_or("-"),
                backtrace = leak.holder.backtrace.as_deref().unwrap_or("-"),
                "connection leak suspected"
            );
        }
        for timeout in &findings.new_timeouts {
            self.inner.counters.inc_class(ErrorClass::TransactionTimeout);
            tracing::warn!(
                target: "dbwarden",
                checkout = timeout.id.0,
                open_seconds = timeout.age_seconds,
                route = timeout.holder.route.as_deref().unwrap_or("-"),
                "transaction open past the transaction timeout"
            );
        }
        self.inner.queries.touch(now);
        let totals = self.totals();
        let latency = self.inner.histograms.query.snapshot();
        let notifications = {
            let mut state = self.state();
            state.rates.maybe_sample(now, totals, || latency.clone());
            let point = self.trend_point(&state, now, &totals, &latency);
            state.trend.maybe_close(now, point);
            let values = SignalValues {
                monitor: self,
                state: &state,
                now,
                totals,
                latency: &latency,
                suspected: findings.suspected,
            };
            let computed: Vec<(Signal, Option<f64>)> =
                state.alerts.rules().iter().map(|r| (r.signal, values.value(&r.signal))).collect();
            state.last_tick = Some(now);
            state.alerts.evaluate(now, |signal| computed.iter().find(|(s, _)| s == signal).and_then(|(_, v)| *v))
        };
        for leak in findings.new_leaks {
            self.emit(Event::LeakSuspected(leak));
        }
        for timeout in findings.new_timeouts {
            self.emit(Event::TransactionTimeout(timeout));
        }
        for n in &notifications {
            let a = &n.alert;
            match a.severity {
                crate::alert::Severity::Critical | crate::alert::Severity::High => {
                    tracing::warn!(target: "dbwarden", alert = a.id.0, rule = %a.rule, severity = %a.severity, kind = ?n.kind, "{}", a.message)
                }
                _ => {
                    tracing::info!(target: "dbwarden", alert = a.id.0, rule = %a.rule, severity = %a.severity, kind = ?n.kind, "{}", a.message)
                }
            }
            self.emit(Event::Alert(n.clone()));
        }
        self.emit(Event::Tick { at: now });
        notifications
    }

    /// The current value of `signal`, as the alert rules see it.
    pub fn signal_value(&self, signal: &Signal) -> Option<f64> {
        let now = self.now();
        let totals = self.totals();
        let latency = self.inner.histograms.query.snapshot();
        let suspected = self.inner.checkouts.suspected();
        let state = self.state();
        SignalValues { monitor: self, state: &state, now, totals, latency: &latency, suspected }.value(signal)
    }

    pub(crate) fn window(
        &self,
        state: &State,
        window: Window,
        now: Timestamp,
        totals: &Totals,
        latency: &HistogramSnapshot,
    ) -> WindowDelta {
        state.rates.window(window, now, totals, latency)
    }

    fn trend_point(&self, state: &State, now: Timestamp, totals: &Totals, latency: &HistogramSnapshot) -> TrendPoint {
        let w = self.window(state, Window::FiveMinutes, now, totals, latency);
        TrendPoint::from_window(
            now,
            &w,
            self.active_sessions(),
            self.inner.in_flight_requests.load(Ordering::Relaxed).max(0) as u64,
        )
    }

    /// Every counter now. Queries are not counted separately on the hot path:
    /// their number is the global query histogram's count.
    pub(crate) fn totals(&self) -> Totals {
        // Deferred statements count too, and the counters are read first.
        self.inner.queries.batch().flush();
        let mut totals = self.inner.counters.totals();
        totals.0[Counter::Queries as usize] = self.inner.histograms.query.snapshot().count();
        totals
    }

    /// Database sessions open now.
    pub fn active_sessions(&self) -> u64 {
        self.inner.active_sessions.load(Ordering::Relaxed).max(0) as u64
    }

    // ---- alerts -------------------------------------------------------------

    /// Pending and firing alerts, most severe first.
    pub fn alerts(&self) -> Vec<Alert> {
        self.state().alerts.active()
    }

    /// Resolved alerts, newest first.
    pub fn alert_history(&self) -> Vec<Alert> {
        self.state().alerts.history()
    }

    /// Acknowledges an active alert: it stops repeating until it resolves.
    pub fn acknowledge_alert(&self, id: AlertId, by: &str, comment: Option<String>) -> Result<Alert, AlertError> {
        let now = self.now();
        self.state().alerts.acknowledge(id, by, comment, now)
    }

    /// Resolves an active alert by hand.
    pub fn resolve_alert(&self, id: AlertId, by: &str) -> Result<Alert, AlertError> {
        let now = self.now();
        self.state().alerts.resolve(id, by, now)
    }

    /// Silences alerts matching `matcher` for `duration`.
    pub fn silence(
        &self,
        matcher: Matcher,
        duration: Duration,
        created_by: &str,
        comment: &str,
    ) -> Result<Silence, AlertError> {
        let now = self.now();
        self.state().alerts.silence(matcher, duration, created_by, comment, now)
    }

    /// Ends a silence now.
    pub fn expire_silence(&self, id: SilenceId) -> Result<Silence, AlertError> {
        let now = self.now();
        self.state().alerts.expire_silence(id, now)
    }

    /// The silences in force.
    pub fn silences(&self) -> Vec<Silence> {
        let now = self.now();
        self.state().alerts.silences(now)
    }

    // ---- reset --------------------------------------------------------------

    /// Clears recorded history; see [`ResetScope`] for what each scope keeps.
    pub fn reset(&self, scope: ResetScope) {
        let now = self.now();
        let inner = &self.inner;
        // What was recorded before the reset is cleared with the rest.
        inner.queries.batch().flush();
        let metrics = matches!(scope, ResetScope::Metrics | ResetScope::All);
        let errors = matches!(scope, ResetScope::Errors | ResetScope::All);
        inner.counters.reset(|i| (metrics && !is_error_counter(i)) || (errors && is_error_counter(i)));
        if metrics {
            for h in inner.histograms.all() {
                h.reset();
            }
            inner.queries.clear();
            inner.routes.clear();
            inner.operations.clear();
            inner.named_operations.clear();
            inner.peak_sessions.store(inner.active_sessions.load(Ordering::Relaxed).max(0), Ordering::Relaxed);
            inner.peak_in_flight.store(inner.in_flight_requests.load(Ordering::Relaxed).max(0), Ordering::Relaxed);
        }
        let totals = self.totals();
        let latency = inner.histograms.query.snapshot();
        let mut state = self.state();
        if metrics {
            state.recent_queries.clear();
            state.pool.samples.clear();
            state.pool.peak_utilization = state.pool.latest.map_or(0.0, |s| s.utilization);
            state.trend.clear(now);
            state.last_cleanup = None;
            state.cleanup_seen_elsewhere = None;
            state.n_plus_one.clear();
        }
        if errors {
            state.errors.clear();
            state.patterns.clear();
        }
        if scope == ResetScope::All {
            state.alerts.clear_history();
        }
        state.rates.restart(now, totals, latency);
        debug_assert_eq!(totals.0.len(), COUNTERS);
    }

    // ---- trend --------------------------------------------------------------

    /// The in-memory trend history, oldest first.
    pub fn trend(&self) -> Vec<TrendPoint> {
        self.state().trend.points()
    }

    /// Seeds the trend history (e.g. from points a server stored before a
    /// restart); points older than the configured span are dropped.
    pub fn restore_trend(&self, points: Vec<TrendPoint>) {
        self.state().trend.restore(points);
    }
}

/// Computes signal values against one consistent reading of the state.
pub(crate) struct SignalValues<'a> {
    pub(crate) monitor: &'a Monitor,
    pub(crate) state: &'a State,
    pub(crate) now: Timestamp,
    pub(crate) totals: Totals,
    pub(crate) latency: &'a HistogramSnapshot,
    pub(crate) suspected: u64,
}

/// Below this many operations in a window, rates are reported as zero: one
/// failure in three calls is noise, not a 33 % error rate. Count-based rules
/// (connection failures, deadlocks) still see every single error.
pub const MIN_OPERATIONS_FOR_RATE: u64 = 10;

/// Queries needed in the 5-minute window before latency degradation is judged.
pub const MIN_QUERIES_FOR_DEGRADATION: u64 = 50;

impl SignalValues<'_> {
    fn delta(&self, window: Window) -> WindowDelta {
        self.monitor.window(self.state, window, self.now, &self.totals, self.latency)
    }

    pub(crate) fn value(&self, signal: &Signal) -> Option<f64> {
        Some(match *signal {
            Signal::ErrorRate { window } => {
                let d = self.delta(window);
                let ops = d.totals.operations();
                if ops < MIN_OPERATIONS_FOR_RATE { 0.0 } else { d.totals.errors() as f64 / ops as f64 }
            }
            Signal::RecoveryRate { window } => {
                let d = self.delta(window);
                let sessions = d.totals.get(Counter::SessionsCreated);
                if sessions < MIN_OPERATIONS_FOR_RATE {
                    0.0
                } else {
                    d.totals.get(Counter::RecoveryAttempts) as f64 / sessions as f64
                }
            }
            Signal::PoolUtilization => self.state.pool.latest?.utilization,
            Signal::PendingRequests => f64::from(self.state.pool.latest?.sample.pending),
            Signal::PoolTimeouts { window } => self.delta(window).totals.get(Counter::PoolTimeouts) as f64,
            Signal::ActiveSessions => self.monitor.active_sessions() as f64,
            Signal::SlowQueries { window } => self.delta(window).totals.get(Counter::SlowQueries) as f64,
            Signal::Errors { class, window } => self.delta(window).totals.errors_of(class) as f64,
            Signal::SuspectedLeaks => self.suspected as f64,
            Signal::SlowOperations { operation, window } => {
                let t = self.delta(window).totals;
                t.get(match operation {
                    TimedOperation::SessionCreation => Counter::SlowSessionCreations,
                    TimedOperation::Cleanup => Counter::SlowSessionCleanups,
                    TimedOperation::Recovery => Counter::SlowRecoveries,
                }) as f64
            }
            Signal::InFlightRequests => self.monitor.inner.in_flight_requests.load(Ordering::Relaxed).max(0) as f64,
            Signal::SlowRequests { window } => self.delta(window).totals.get(Counter::SlowRequests) as f64,
            Signal::SessionTableBytes => self.state.session_table?.1.bytes? as f64,
            Signal::ExpiredSessions => self.state.session_table?.1.expired as f64,
            Signal::SessionWrites { window } => {
                let t = self.delta(window).totals;
                (t.get(Counter::SessionWrites) + t.get(Counter::SessionTouches)) as f64
            }
            Signal::CleanupOverdue => {
                let interval = self.state.cleanup_interval?;
                let here = self.state.last_cleanup.map(|(at, _)| at);
                let since = here.max(self.state.cleanup_seen_elsewhere).unwrap_or(self.monitor.inner.started_at);
                self.now.since(since).as_secs_f64() / interval.as_secs_f64()
            }
            Signal::MemoryUsage => {
                let r = self.state.resources?.1;
                if r.memory_total == 0 {
                    return None;
                }
                r.memory_used as f64 / r.memory_total as f64
            }
            Signal::CpuUsage => self.state.resources?.1.cpu_usage,
            Signal::LatencyDegradation => {
                let recent = self.delta(Window::FiveMinutes).query_latency;
                let baseline = self.delta(Window::OneHour).query_latency;
                if recent.count() < MIN_QUERIES_FOR_DEGRADATION || baseline.count() < 2 * MIN_QUERIES_FOR_DEGRADATION {
                    return None;
                }
                let (r, b) = (recent.quantile(0.95)?, baseline.quantile(0.95)?);
                if b.is_zero() {
                    return None;
                }
                r.as_secs_f64() / b.as_secs_f64()
            }
        })
    }
}

/// `s` cut to at most `max` bytes at a character boundary, borrowed.
pub(crate) fn cut_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` cut to at most `max` bytes at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    cut_str(s, max).to_owned()
}
