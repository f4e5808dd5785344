//! What the monitor learns from outside the pool: finished requests with
//! their database work (and the N+1 patterns in it), named operations, the
//! session store's writes and table, and the host's resources.

use std::time::Duration;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::context::{OperationContext, RequestContext};
use crate::counters::Counter;
use crate::error_class::ErrorClass;
use crate::events::{Event, NPlusOneEvent};
use crate::histogram::LatencySummary;
use crate::monitor::{Monitor, RequestRecord, truncate};

/// What a session store did when asked to save a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionWrite {
    /// The session's data changed and was written.
    Full,
    /// Only its expiry and last-seen time were extended (no data written).
    Touch,
    /// Nothing was written: unchanged and within the throttle interval.
    Avoided,
}

/// The session table at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SessionTableSample {
    /// Rows in the table.
    pub total: u64,
    /// Rows past their expiry, waiting for cleanup.
    pub expired: u64,
    /// Bytes the table (with its indexes) takes, when the backend tells.
    pub bytes: Option<u64>,
}

/// The host's resources at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct ResourceSample {
    /// CPU in use over the last interval, 0–1 across all cores.
    pub cpu_usage: f64,
    /// Memory in use, bytes.
    pub memory_used: u64,
    /// Memory installed, bytes.
    pub memory_total: u64,
    /// The dbwarden process's resident memory, bytes.
    pub process_rss: u64,
    /// Disk space used on the database's file system, bytes, when known.
    pub disk_used: Option<u64>,
    /// Size of that file system, bytes, when known.
    pub disk_total: Option<u64>,
}

/// Figures of one named operation (see [`crate::context::with_operation`]).
#[derive(Debug, Clone, Serialize)]
pub struct NamedOperationStat {
    /// The operation's name; `None` for the "other" bucket.
    pub operation: Option<String>,
    /// Times it ran.
    pub calls: u64,
    /// Times it failed.
    pub failures: u64,
    /// Failures over calls.
    pub error_rate: f64,
    /// Its duration.
    pub duration: LatencySummary,
    /// Statements it ran, on average per call.
    pub avg_db_queries: f64,
    /// Database time, on average per call, ms.
    pub avg_db_time_ms: f64,
}

/// The session store's writes and its table.
#[derive(Debug, Clone, Serialize)]
pub struct SessionStoreMetrics {
    /// Sessions written in full (their data changed).
    pub writes: u64,
    /// Sessions whose expiry alone was extended.
    pub touches: u64,
    /// Saves that wrote nothing thanks to throttling.
    pub writes_avoided: u64,
    /// Writes avoided over all saves, 0–1.
    pub avoided_ratio: f64,
    /// The latest sample of the session table.
    pub table: Option<SessionTableSample>,
    /// When it was taken.
    pub table_sampled_at: Option<Timestamp>,
    /// The cleanup interval the monitor expects, seconds.
    pub cleanup_interval_seconds: Option<f64>,
}

/// The host's resources, as last sampled.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceMetrics {
    /// The latest sample.
    pub current: Option<ResourceSample>,
    /// When it was taken.
    pub sampled_at: Option<Timestamp>,
    /// Memory in use over memory installed, 0–1.
    pub memory_usage: Option<f64>,
    /// Disk used over disk size, 0–1.
    pub disk_usage: Option<f64>,
}

impl Monitor {
    /// A request finished with `status` after `duration`: records it with the
    /// database time and statement count gathered in `context`, then reports
    /// every fingerprint the request ran at least `n_plus_one_min_count`
    /// times for more than `n_plus_one_min_total` in all as an N+1 pattern.
    /// Pair with [`Monitor::request_started`].
    ///
    /// A context made with a [`crate::RouteHandle`] of this monitor records
    /// without any lookup; any other looks its route up by name.
    pub fn finish_request(&self, context: &RequestContext, status: u16, duration: Duration) {
        let db_queries = context.db_queries();
        let record = RequestRecord {
            route: context.route(),
            method: context.method(),
            status,
            duration,
            // Read only for the slow-request log.
            request_id: None,
            db_time: context.db_time(),
            db_queries,
        };
        let slow = match context.route_handle().stats_in(&self.inner.routes) {
            Some(route) => self.record_request_in(route, &record),
            None => self.record_request_in(&self.inner.routes.stats(record.method, record.route), &record),
        };
        if slow {
            self.log_slow_request(&RequestRecord { request_id: Some(context.request_id()), ..record });
        }
        if db_queries == 0 {
            // No statement, no tally: nothing can be an N+1 pattern.
            return;
        }
        self.report_n_plus_one(context);
    }

    /// Reports every fingerprint `context` ran often and long enough as an
    /// N+1 pattern.
    fn report_n_plus_one(&self, context: &RequestContext) {
        let (min_count, min_total) = self.n_plus_one_thresholds();
        let findings: Vec<NPlusOneEvent> = context
            .tallies_over(min_count, min_total)
            .into_iter()
            .map(|t| NPlusOneEvent {
                at: self.now(),
                route: context.route().to_owned(),
                method: context.method().to_owned(),
                request_id: context.request_id().to_owned(),
                fingerprint: t.fingerprint.id(),
                text: t.fingerprint.text().to_owned(),
                table: t.fingerprint.table().map(str::to_owned),
                count: t.count,
                total_ms: t.total.as_secs_f64() * 1000.0,
            })
            .collect();
        for finding in findings {
            self.inner.counters.inc(Counter::NPlusOne);
            tracing::warn!(
                target: "dbwarden",
                route = %finding.route,
                method = %finding.method,
                request_id = %finding.request_id,
                fingerprint = %finding.fingerprint,
                query = %finding.text,
                count = finding.count,
                total_ms = finding.total_ms,
                "N+1 query pattern"
            );
            self.state().n_plus_one.push(finding.clone());
            self.emit(Event::NPlusOne(finding));
        }
    }

    /// The latest N+1 findings, newest first.
    pub fn n_plus_one(&self, limit: usize) -> Vec<NPlusOneEvent> {
        let state = self.state();
        let mut out: Vec<NPlusOneEvent> = state.n_plus_one.iter().cloned().collect();
        out.reverse();
        out.truncate(limit);
        out
    }

    /// A named operation finished after `duration`; `failure` is the class
    /// of the error that ended it, if one did. The operation's statements
    /// were already counted through its context.
    pub fn record_operation(&self, operation: &OperationContext, duration: Duration, failure: Option<ErrorClass>) {
        let entry = self.inner.named_operations.entry(&truncate(operation.name(), 128));
        entry.record(duration, failure.is_some(), false);
        entry.extra_ns.fetch_add(
            u64::try_from(operation.db_time().as_nanos()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        entry.extra_count.fetch_add(u64::from(operation.db_queries()), std::sync::atomic::Ordering::Relaxed);
    }

    /// Named operations, busiest first.
    pub fn operations(&self) -> Vec<NamedOperationStat> {
        let mut out: Vec<NamedOperationStat> = self
            .inner
            .named_operations
            .figures()
            .into_iter()
            .map(|f| {
                let calls = f.latency.count();
                let per = |v: f64| if calls == 0 { 0.0 } else { v / calls as f64 };
                NamedOperationStat {
                    operation: f.key,
                    calls,
                    failures: f.failures,
                    error_rate: per(f.failures as f64),
                    duration: f.latency.summary(),
                    avg_db_queries: per(f.extra_count as f64),
                    avg_db_time_ms: per(f.extra_ns as f64 / 1e6),
                }
            })
            .collect();
        out.sort_by_key(|o| std::cmp::Reverse(o.calls));
        out
    }

    /// A session store saved (or declined to save) a session.
    #[inline]
    pub fn record_session_write(&self, write: SessionWrite) {
        self.inner.counters.inc(match write {
            SessionWrite::Full => Counter::SessionWrites,
            SessionWrite::Touch => Counter::SessionTouches,
            SessionWrite::Avoided => Counter::SessionWritesAvoided,
        });
    }

    /// The session table's size now (taken by cleanup or analytics).
    pub fn record_session_table(&self, sample: SessionTableSample) {
        let now = self.now();
        self.state().session_table = Some((now, sample));
    }

    /// How often session cleanup is meant to run, so that a cleanup that has
    /// not run within twice that alerts. `None` stops expecting it.
    pub fn set_cleanup_interval(&self, interval: Option<Duration>) {
        self.state().cleanup_interval = interval.filter(|d| !d.is_zero());
    }

    /// The host's resources now.
    pub fn record_resources(&self, sample: ResourceSample) {
        let now = self.now();
        let sample = ResourceSample { cpu_usage: sample.cpu_usage.clamp(0.0, 1.0), ..sample };
        self.state().resources = Some((now, sample));
    }

    pub(crate) fn session_store_metrics(&self) -> SessionStoreMetrics {
        let t = self.totals();
        let (writes, touches, avoided) =
            (t.get(Counter::SessionWrites), t.get(Counter::SessionTouches), t.get(Counter::SessionWritesAvoided));
        let saves = writes + touches + avoided;
        let state = self.state();
        SessionStoreMetrics {
            writes,
            touches,
            writes_avoided: avoided,
            avoided_ratio: if saves == 0 { 0.0 } else { avoided as f64 / saves as f64 },
            table: state.session_table.map(|(_, s)| s),
            table_sampled_at: state.session_table.map(|(at, _)| at),
            cleanup_interval_seconds: state.cleanup_interval.map(|d| d.as_secs_f64()),
        }
    }

    pub(crate) fn resource_metrics(&self) -> ResourceMetrics {
        let state = self.state();
        let current = state.resources.map(|(_, r)| r);
        ResourceMetrics {
            current,
            sampled_at: state.resources.map(|(at, _)| at),
            memory_usage: current.filter(|r| r.memory_total > 0).map(|r| r.memory_used as f64 / r.memory_total as f64),
            disk_usage: current.and_then(|r| match (r.disk_used, r.disk_total) {
                (Some(u), Some(t)) if t > 0 => Some(u as f64 / t as f64),
                _ => None,
            }),
        }
    }
}
