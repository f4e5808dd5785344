//! What a monitor reports: the JSON snapshot of every current metric (in the
//! seeds' grouping: `session_metrics`, `recovery_metrics`,
//! `performance_timing`, `pool_metrics`, …), focused reports for errors,
//! the pool and routes, and the human-readable performance summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::alert::Severity;
use crate::clock::Timestamp;
use crate::config::Thresholds;
use crate::counters::{Counter, Totals};
use crate::error_class::ErrorClass;
use crate::events::{ErrorEvent, QueryEvent};
use crate::histogram::{HistogramSnapshot, LatencySummary};
use crate::monitor::{CleanupRecord, Monitor, TimedPoolSample};
use crate::patterns::ErrorPattern;
use crate::queries::{QuerySort, QueryStat};
use crate::rates::WindowDelta;
use crate::signal::Window;

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 { 0.0 } else { num as f64 / den as f64 }
}

fn mean_ms(h: &HistogramSnapshot) -> f64 {
    h.mean().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Which monitor, and when.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorInfo {
    /// The monitor's name.
    pub name: String,
    /// When the snapshot was taken.
    pub generated_at: Timestamp,
    /// When the monitor started.
    pub started_at: Timestamp,
    /// Seconds since it started.
    pub uptime_seconds: f64,
    /// dbwarden's version.
    pub version: &'static str,
}

/// Database sessions (checkouts and transactions).
#[derive(Debug, Clone, Serialize)]
pub struct SessionMetrics {
    /// Sessions opened.
    pub sessions_created: u64,
    /// Sessions closed.
    pub sessions_closed: u64,
    /// Sessions open now.
    pub active_sessions: u64,
    /// Most sessions open at once.
    pub peak_active_sessions: u64,
    /// Commits.
    pub commits: u64,
    /// Rollbacks.
    pub rollbacks: u64,
    /// Session-level errors (not tied to a statement).
    pub session_errors: u64,
    /// Failed operations over all operations, since start or reset.
    pub error_rate: f64,
    /// Average time a session stayed open, ms.
    pub avg_session_duration_ms: f64,
    /// Distribution of session durations.
    pub session_duration: LatencySummary,
}

/// Recovery of units of work on fresh connections.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryMetrics {
    /// Attempts.
    pub recovery_attempts: u64,
    /// Attempts that succeeded.
    pub successful_recoveries: u64,
    /// Attempts that failed.
    pub failed_recoveries: u64,
    /// Attempts per session opened, 0–1.
    pub recovery_rate: f64,
    /// Successful attempts over attempts, 0–1 (1 when there were none).
    pub recovery_success_rate: f64,
    /// Per operation, busiest first.
    pub by_operation: Vec<OperationStat>,
}

/// Recovery figures of one operation.
#[derive(Debug, Clone, Serialize)]
pub struct OperationStat {
    /// The operation's name; `None` for the "other" bucket.
    pub operation: Option<String>,
    /// Attempts.
    pub attempts: u64,
    /// Failed attempts.
    pub failures: u64,
    /// Duration of attempts.
    pub duration: LatencySummary,
}

/// How long the session lifecycle takes, against the thresholds.
#[derive(Debug, Clone, Serialize)]
pub struct PerformanceTiming {
    /// Average time to open a session, ms.
    pub avg_session_creation_ms: f64,
    /// Average time to close (clean up) a session, ms.
    pub avg_session_cleanup_ms: f64,
    /// Average recovery time, ms.
    pub avg_recovery_time_ms: f64,
    /// Distribution of session creation times.
    pub session_creation: LatencySummary,
    /// Distribution of session cleanup times.
    pub session_cleanup: LatencySummary,
    /// Distribution of recovery times.
    pub recovery: LatencySummary,
    /// Session creations above the threshold.
    pub slow_session_creations: u64,
    /// Session cleanups above the threshold.
    pub slow_session_cleanups: u64,
    /// Recoveries above the threshold.
    pub slow_recoveries: u64,
}

/// The connection pool.
#[derive(Debug, Clone, Serialize)]
pub struct PoolMetrics {
    /// The latest sample, if any adapter reported one.
    pub current: Option<TimedPoolSample>,
    /// In use over max at the latest sample, 0–1.
    pub utilization: f64,
    /// Highest utilization sampled.
    pub peak_utilization: f64,
    /// Checkouts.
    pub checkouts: u64,
    /// Check-ins.
    pub checkins: u64,
    /// Checkouts per second over the last minute.
    pub checkout_rate_per_second: f64,
    /// Check-ins per second over the last minute.
    pub checkin_rate_per_second: f64,
    /// Checkouts that timed out.
    pub timeouts: u64,
    /// Connections opened.
    pub connections_opened: u64,
    /// Connections closed.
    pub connections_closed: u64,
    /// Time waiting for a connection.
    pub wait_time: LatencySummary,
    /// Time a connection stayed checked out.
    pub use_time: LatencySummary,
    /// Time to open a new connection.
    pub create_time: LatencySummary,
    /// Checkouts held past the leak threshold and not returned.
    pub suspected_leaks: u64,
    /// Checkouts out now.
    pub checked_out: usize,
    /// Checkouts counted but not individually tracked because the registry was full.
    pub untracked_checkouts: u64,
    /// The pool's configuration, as its adapter reported it.
    pub config: Option<crate::monitor::PoolConfig>,
}

/// Queries.
#[derive(Debug, Clone, Serialize)]
pub struct QueryMetrics {
    /// Statements run.
    pub total: u64,
    /// Statements that failed.
    pub failed: u64,
    /// Statements at or above the slow-query threshold.
    pub slow: u64,
    /// Rows returned or affected.
    pub rows: u64,
    /// Latency of all statements.
    pub latency: LatencySummary,
    /// Fingerprints tracked individually.
    pub fingerprints_tracked: usize,
    /// Fingerprints folded into "other" so far.
    pub fingerprints_evicted: u64,
    /// Distinct raw statement texts in the fingerprint cache.
    pub fingerprint_cache_entries: usize,
    /// The ten costliest fingerprints by total time.
    pub top: Vec<QueryStat>,
}

/// Figures of one rolling window.
#[derive(Debug, Clone, Serialize)]
pub struct WindowRates {
    /// Seconds actually covered (less than the window while the monitor is younger).
    pub covered_seconds: f64,
    /// Statements.
    pub queries: u64,
    /// Statements per second.
    pub queries_per_second: f64,
    /// Failed operations.
    pub errors: u64,
    /// Failed operations per second.
    pub errors_per_second: f64,
    /// Failed over attempted operations, 0–1.
    pub error_rate: f64,
    /// Sessions opened per second.
    pub sessions_per_second: f64,
    /// Recovery attempts over sessions opened, 0–1.
    pub recovery_rate: f64,
    /// Checkouts per second.
    pub checkouts_per_second: f64,
    /// Check-ins per second.
    pub checkins_per_second: f64,
    /// Requests per second.
    pub requests_per_second: f64,
    /// Query latency in the window.
    pub query_latency: LatencySummary,
}

impl WindowRates {
    pub(crate) fn from_delta(d: &WindowDelta) -> Self {
        let t = &d.totals;
        WindowRates {
            covered_seconds: d.elapsed.as_secs_f64(),
            queries: t.get(Counter::Queries),
            queries_per_second: d.per_second(t.get(Counter::Queries)),
            errors: t.errors(),
            errors_per_second: d.per_second(t.errors()),
            error_rate: ratio(t.errors(), t.operations()),
            sessions_per_second: d.per_second(t.get(Counter::SessionsCreated)),
            recovery_rate: ratio(t.get(Counter::RecoveryAttempts), t.get(Counter::SessionsCreated)),
            checkouts_per_second: d.per_second(t.get(Counter::Checkouts)),
            checkins_per_second: d.per_second(t.get(Counter::Checkins)),
            requests_per_second: d.per_second(t.get(Counter::Requests)),
            query_latency: d.query_latency.summary(),
        }
    }
}

/// Errors.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorMetrics {
    /// Failed operations since start or reset.
    pub total: u64,
    /// Errors by class.
    pub by_class: BTreeMap<ErrorClass, u64>,
}

/// HTTP requests.
#[derive(Debug, Clone, Serialize)]
pub struct RequestMetrics {
    /// Requests finished.
    pub total: u64,
    /// Requests answered with a 5xx status.
    pub errors: u64,
    /// Requests slower than the slow-request threshold.
    pub slow: u64,
    /// Requests slower than the request timeout.
    pub timed_out: u64,
    /// Requests in flight now.
    pub in_flight: u64,
    /// Most requests in flight at once.
    pub peak_in_flight: u64,
    /// Latency of all requests.
    pub latency: LatencySummary,
    /// N+1 patterns found.
    pub n_plus_one: u64,
}

/// Statistics of one route.
#[derive(Debug, Clone, Serialize)]
pub struct RouteStat {
    /// The HTTP method; `None` for the "other" bucket.
    pub method: Option<String>,
    /// The route template; `None` for the "other" bucket.
    pub route: Option<String>,
    /// Requests.
    pub requests: u64,
    /// 5xx responses.
    pub errors: u64,
    /// 5xx responses over requests.
    pub error_rate: f64,
    /// Requests over the slow-request threshold.
    pub slow: u64,
    /// Latency.
    pub latency: LatencySummary,
    /// Database statements run, on average per request.
    pub avg_db_queries: f64,
    /// Database time, on average per request, ms.
    pub avg_db_time_ms: f64,
}

/// Cleanup runs.
#[derive(Debug, Clone, Serialize)]
pub struct CleanupMetrics {
    /// Runs.
    pub runs: u64,
    /// Rows removed in all runs.
    pub rows_removed: u64,
    /// Failed batches in all runs.
    pub errors: u64,
    /// Run durations.
    pub duration: LatencySummary,
    /// When the last run finished.
    pub last_run_at: Option<Timestamp>,
    /// The last run.
    pub last_run: Option<CleanupRecord>,
}

/// Active alerts by severity.
#[derive(Debug, Clone, Serialize)]
pub struct AlertCounts {
    /// Pending or firing alerts.
    pub active: usize,
    /// Firing alerts.
    pub firing: usize,
    /// Active alerts per severity.
    pub by_severity: BTreeMap<Severity, usize>,
}

/// Every current metric, grouped as the seeds group them.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsSnapshot {
    /// Which monitor, and when.
    pub monitor: MonitorInfo,
    /// Database sessions.
    pub session_metrics: SessionMetrics,
    /// Recovery.
    pub recovery_metrics: RecoveryMetrics,
    /// Timing of the session lifecycle.
    pub performance_timing: PerformanceTiming,
    /// The pool.
    pub pool_metrics: PoolMetrics,
    /// Queries.
    pub query_metrics: QueryMetrics,
    /// Errors.
    pub error_metrics: ErrorMetrics,
    /// HTTP requests.
    pub request_metrics: RequestMetrics,
    /// Cleanup runs.
    pub cleanup_metrics: CleanupMetrics,
    /// Named operations, busiest first.
    pub operation_metrics: Vec<crate::inputs::NamedOperationStat>,
    /// The session store's writes and table.
    pub session_store_metrics: crate::inputs::SessionStoreMetrics,
    /// The host's resources.
    pub resource_metrics: crate::inputs::ResourceMetrics,
    /// Rolling windows: `1m`, `5m`, `15m`, `1h`.
    pub rates: BTreeMap<Window, WindowRates>,
    /// Active alerts.
    pub alerts: AlertCounts,
    /// The thresholds in force.
    pub thresholds: Thresholds,
}

/// Errors over one window.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorReport {
    /// The window.
    pub window: Window,
    /// Seconds actually covered.
    pub covered_seconds: f64,
    /// Failed operations in the window.
    pub errors: u64,
    /// Attempted operations in the window.
    pub operations: u64,
    /// Failed over attempted, 0–1.
    pub error_rate: f64,
    /// Errors by class in the window.
    pub by_class: BTreeMap<ErrorClass, u64>,
    /// Errors per class per second in the window.
    pub rate_per_second_by_class: BTreeMap<ErrorClass, f64>,
    /// Recurring patterns seen in the window, most frequent first.
    pub patterns: Vec<ErrorPattern>,
    /// The most recent errors in the window, newest first (at most 100).
    pub recent: Vec<ErrorEvent>,
}

/// The pool now and over time.
#[derive(Debug, Clone, Serialize)]
pub struct PoolReport {
    /// Current figures.
    #[serde(flatten)]
    pub metrics: PoolMetrics,
    /// Recent samples, oldest first.
    pub samples: Vec<TimedPoolSample>,
}

fn by_class(t: &Totals) -> BTreeMap<ErrorClass, u64> {
    ErrorClass::ALL.iter().map(|c| (*c, t.errors_of(*c))).filter(|(_, n)| *n > 0).collect()
}

impl Monitor {
    /// A JSON-ready snapshot of every current metric.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let now = self.now();
        let inner = &self.inner;
        let t = self.totals();
        let h = &inner.histograms;
        let query_latency = h.query.snapshot();
        let session_duration = h.session_duration.snapshot();
        let creation = h.session_creation.snapshot();
        let cleanup = h.session_cleanup.snapshot();
        let recovery = h.recovery.snapshot();
        let thresholds = (*self.thresholds()).clone();
        let suspected = inner.checkouts.suspected();
        let checked_out = inner.checkouts.list(now).len();
        let top = inner.queries.stats(QuerySort::TotalTime, 10);
        let operation_metrics = self.operations();
        let session_store_metrics = self.session_store_metrics();
        let resource_metrics = self.resource_metrics();
        let state = self.state();
        let windows: BTreeMap<Window, WindowRates> = Window::ALL
            .iter()
            .map(|w| (*w, WindowRates::from_delta(&self.window(&state, *w, now, &t, &query_latency))))
            .collect();
        let one_minute = &windows[&Window::OneMinute];
        let active = state.alerts.active();
        let mut by_severity = BTreeMap::new();
        for a in &active {
            *by_severity.entry(a.severity).or_insert(0) += 1;
        }
        let attempts = t.get(Counter::RecoveryAttempts);
        let successes = t.get(Counter::RecoverySuccesses);
        let mut by_operation: Vec<OperationStat> = inner
            .operations
            .figures()
            .into_iter()
            .map(|f| OperationStat {
                operation: f.key,
                attempts: f.latency.count(),
                failures: f.failures,
                duration: f.latency.summary(),
            })
            .collect();
        by_operation.sort_by_key(|o| std::cmp::Reverse(o.attempts));
        MetricsSnapshot {
            monitor: MonitorInfo {
                name: inner.config.name.clone(),
                generated_at: now,
                started_at: inner.started_at,
                uptime_seconds: now.since(inner.started_at).as_secs_f64(),
                version: env!("CARGO_PKG_VERSION"),
            },
            session_metrics: SessionMetrics {
                sessions_created: t.get(Counter::SessionsCreated),
                sessions_closed: t.get(Counter::SessionsClosed),
                active_sessions: self.active_sessions(),
                peak_active_sessions: inner.peak_sessions.load(Ordering::Relaxed).max(0) as u64,
                commits: t.get(Counter::Commits),
                rollbacks: t.get(Counter::Rollbacks),
                session_errors: t.get(Counter::SessionErrors),
                error_rate: ratio(t.errors(), t.operations()),
                avg_session_duration_ms: mean_ms(&session_duration),
                session_duration: session_duration.summary(),
            },
            recovery_metrics: RecoveryMetrics {
                recovery_attempts: attempts,
                successful_recoveries: successes,
                failed_recoveries: attempts.saturating_sub(successes),
                recovery_rate: ratio(attempts, t.get(Counter::SessionsCreated)),
                recovery_success_rate: if attempts == 0 { 1.0 } else { ratio(successes, attempts) },
                by_operation,
            },
            performance_timing: PerformanceTiming {
                avg_session_creation_ms: mean_ms(&creation),
                avg_session_cleanup_ms: mean_ms(&cleanup),
                avg_recovery_time_ms: mean_ms(&recovery),
                session_creation: creation.summary(),
                session_cleanup: cleanup.summary(),
                recovery: recovery.summary(),
                slow_session_creations: t.get(Counter::SlowSessionCreations),
                slow_session_cleanups: t.get(Counter::SlowSessionCleanups),
                slow_recoveries: t.get(Counter::SlowRecoveries),
            },
            pool_metrics: PoolMetrics {
                current: state.pool.latest,
                utilization: state.pool.latest.map_or(0.0, |s| s.utilization),
                peak_utilization: state.pool.peak_utilization,
                checkouts: t.get(Counter::Checkouts),
                checkins: t.get(Counter::Checkins),
                checkout_rate_per_second: one_minute.checkouts_per_second,
                checkin_rate_per_second: one_minute.checkins_per_second,
                timeouts: t.get(Counter::PoolTimeouts),
                connections_opened: t.get(Counter::ConnectionsOpened),
                connections_closed: t.get(Counter::ConnectionsClosed),
                wait_time: h.checkout_wait.snapshot().summary(),
                use_time: h.connection_use.snapshot().summary(),
                create_time: h.connection_create.snapshot().summary(),
                suspected_leaks: suspected,
                checked_out,
                untracked_checkouts: inner.checkouts.untracked(),
                config: state.pool.config.clone(),
            },
            query_metrics: QueryMetrics {
                total: t.get(Counter::Queries),
                failed: t.get(Counter::QueryErrors),
                slow: t.get(Counter::SlowQueries),
                rows: t.get(Counter::QueryRows),
                latency: query_latency.summary(),
                fingerprints_tracked: inner.queries.len(),
                fingerprints_evicted: inner.queries.evicted(),
                fingerprint_cache_entries: inner.queries.cache_len(),
                top,
            },
            error_metrics: ErrorMetrics { total: t.errors(), by_class: by_class(&t) },
            request_metrics: RequestMetrics {
                total: t.get(Counter::Requests),
                errors: t.get(Counter::RequestErrors),
                slow: t.get(Counter::SlowRequests),
                timed_out: t.get(Counter::TimedOutRequests),
                in_flight: inner.in_flight_requests.load(Ordering::Relaxed).max(0) as u64,
                peak_in_flight: inner.peak_in_flight.load(Ordering::Relaxed).max(0) as u64,
                latency: h.request.snapshot().summary(),
                n_plus_one: t.get(Counter::NPlusOne),
            },
            cleanup_metrics: CleanupMetrics {
                runs: t.get(Counter::CleanupRuns),
                rows_removed: t.get(Counter::CleanupRows),
                errors: t.get(Counter::CleanupErrors),
                duration: h.cleanup_run.snapshot().summary(),
                last_run_at: state.last_cleanup.map(|(at, _)| at),
                last_run: state.last_cleanup.map(|(_, run)| run),
            },
            operation_metrics,
            session_store_metrics,
            resource_metrics,
            rates: windows,
            alerts: AlertCounts {
                active: active.len(),
                firing: active.iter().filter(|a| a.state == crate::alert::AlertState::Firing).count(),
                by_severity,
            },
            thresholds,
        }
    }

    /// Fingerprint statistics, sorted and limited; includes the "other" bucket
    /// when it holds anything.
    pub fn top_queries(&self, sort: QuerySort, limit: usize) -> Vec<QueryStat> {
        self.inner.queries.stats(sort, limit)
    }

    /// The most recent slow queries, newest first.
    pub fn slow_queries(&self, limit: usize) -> Vec<QueryEvent> {
        self.state().recent_queries.iter().rev().filter(|q| q.slow).take(limit).cloned().collect()
    }

    /// The most recent notable (slow or failed) queries, newest first.
    pub fn recent_queries(&self, limit: usize) -> Vec<QueryEvent> {
        self.state().recent_queries.newest(limit)
    }

    /// Errors over `window`: rates by class, recurring patterns, recent errors.
    pub fn errors(&self, window: Window) -> ErrorReport {
        let now = self.now();
        let t = self.totals();
        let latency = self.inner.histograms.query.snapshot();
        let state = self.state();
        let d = self.window(&state, window, now, &t, &latency);
        let since = now.saturating_sub(window.duration());
        let classes = by_class(&d.totals);
        ErrorReport {
            window,
            covered_seconds: d.elapsed.as_secs_f64(),
            errors: d.totals.errors(),
            operations: d.totals.operations(),
            error_rate: ratio(d.totals.errors(), d.totals.operations()),
            rate_per_second_by_class: classes.iter().map(|(c, n)| (*c, d.per_second(*n))).collect(),
            by_class: classes,
            patterns: state.patterns.since(since),
            recent: state.errors.iter().rev().filter(|e| e.at >= since).take(100).cloned().collect(),
        }
    }

    /// The pool's current figures and its recent samples.
    pub fn pool(&self) -> PoolReport {
        let metrics = self.snapshot().pool_metrics;
        PoolReport { metrics, samples: self.state().pool.samples.iter().copied().collect() }
    }

    /// Per-route request statistics, busiest first.
    pub fn routes(&self) -> Vec<RouteStat> {
        let mut out: Vec<RouteStat> = self
            .inner
            .routes
            .figures()
            .into_iter()
            .map(|f| {
                let requests = f.latency.count();
                let per = |v: f64| if requests == 0 { 0.0 } else { v / requests as f64 };
                RouteStat {
                    method: f.key.as_ref().map(|k| k.method.clone()),
                    route: f.key.as_ref().map(|k| k.route.clone()),
                    requests,
                    errors: f.failures,
                    error_rate: ratio(f.failures, requests),
                    slow: f.slow,
                    latency: f.latency.summary(),
                    avg_db_queries: per(f.extra_count as f64),
                    avg_db_time_ms: per(f.extra_ns as f64 / 1e6),
                }
            })
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.requests));
        out
    }

    /// A human-readable performance summary, several lines long.
    pub fn summary_text(&self) -> String {
        let s = self.snapshot();
        let health = self.health();
        let five = &s.rates[&Window::FiveMinutes];
        let mut out = String::new();
        let sm = &s.session_metrics;
        let _ = writeln!(
            out,
            "dbwarden performance summary for `{}` (up {:.0} s): {}",
            s.monitor.name, s.monitor.uptime_seconds, health.status
        );
        let _ = writeln!(
            out,
            "  sessions: {} active (peak {}), {} opened, {} closed, {} commits, {} rollbacks, avg duration {:.1} ms",
            sm.active_sessions,
            sm.peak_active_sessions,
            sm.sessions_created,
            sm.sessions_closed,
            sm.commits,
            sm.rollbacks,
            sm.avg_session_duration_ms
        );
        let _ = writeln!(
            out,
            "  errors: {} total, error rate {:.2}% overall, {:.2}% over 5 min",
            s.error_metrics.total,
            sm.error_rate * 100.0,
            five.error_rate * 100.0
        );
        let rm = &s.recovery_metrics;
        let _ = writeln!(
            out,
            "  recovery: {} attempts, rate {:.2}%, success {:.1}%, avg {:.1} ms",
            rm.recovery_attempts,
            rm.recovery_rate * 100.0,
            rm.recovery_success_rate * 100.0,
            s.performance_timing.avg_recovery_time_ms
        );
        let pt = &s.performance_timing;
        let _ = writeln!(
            out,
            "  timing: session creation avg {:.1} ms ({} slow), cleanup avg {:.1} ms ({} slow)",
            pt.avg_session_creation_ms, pt.slow_session_creations, pt.avg_session_cleanup_ms, pt.slow_session_cleanups
        );
        let pm = &s.pool_metrics;
        match pm.current {
            Some(p) => {
                let _ = writeln!(
                    out,
                    "  pool: {}/{} in use ({:.0}%, peak {:.0}%), {} idle, {} waiting, {} timeouts, wait p99 {:.1} ms",
                    p.sample.in_use,
                    p.sample.max,
                    pm.utilization * 100.0,
                    pm.peak_utilization * 100.0,
                    p.sample.idle,
                    p.sample.pending,
                    pm.timeouts,
                    pm.wait_time.p99_ms
                );
            }
            None => {
                let _ = writeln!(out, "  pool: no samples yet");
            }
        }
        let q = &s.query_metrics;
        let _ = writeln!(
            out,
            "  queries: {} total ({:.1}/s over 5 min), {} failed, {} slow, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
            q.total, five.queries_per_second, q.failed, q.slow, q.latency.p50_ms, q.latency.p95_ms, q.latency.p99_ms
        );
        if let Some(top) = q.top.first() {
            let _ = writeln!(
                out,
                "  costliest query: {} ({} calls, {:.1} ms total)",
                top.text, top.calls, top.total_time_ms
            );
        }
        if s.request_metrics.total > 0 {
            let r = &s.request_metrics;
            let _ = writeln!(
                out,
                "  requests: {} total, {} in flight, {} errors, {} slow, p95 {:.1} ms",
                r.total, r.in_flight, r.errors, r.slow, r.latency.p95_ms
            );
        }
        let _ = writeln!(out, "  alerts: {} active ({} firing)", s.alerts.active, s.alerts.firing);
        for issue in &health.issues {
            let _ = writeln!(out, "  ! {issue}");
        }
        out
    }

    /// Logs the summary through `tracing` (target `dbwarden::summary`) if at
    /// least `interval` passed since the last time; returns whether it did.
    /// The facade's driver calls this on a timer.
    pub fn log_periodic_summary(&self, interval: std::time::Duration) -> bool {
        let now = self.now();
        {
            let mut state = self.state();
            if state.last_summary_log.is_some_and(|last| now.since(last) < interval) {
                return false;
            }
            state.last_summary_log = Some(now);
        }
        let s = self.snapshot();
        let five = &s.rates[&Window::FiveMinutes];
        tracing::info!(
            target: "dbwarden::summary",
            monitor = %s.monitor.name,
            active_sessions = s.session_metrics.active_sessions,
            peak_sessions = s.session_metrics.peak_active_sessions,
            queries = s.query_metrics.total,
            queries_per_second = five.queries_per_second,
            error_rate_5m = five.error_rate,
            recovery_rate = s.recovery_metrics.recovery_rate,
            pool_utilization = s.pool_metrics.utilization,
            query_p95_ms = s.query_metrics.latency.p95_ms,
            active_alerts = s.alerts.active,
            "performance summary"
        );
        true
    }
}
