//! The trend history: one point every `trend_interval` (5 minutes by
//! default), 288 points (24 hours) kept in memory, for the dashboard's
//! charts. A server may persist the points and hand them back after a
//! restart with [`crate::Monitor::restore_trend`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::counters::Counter;
use crate::monitor::TimedPoolSample;
use crate::rates::WindowDelta;
use crate::ring::Ring;

/// The state of things over one trend interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    /// The end of the interval.
    pub at: Timestamp,
    /// Queries per second.
    pub queries_per_second: f64,
    /// Failed operations over all operations, 0–1.
    pub error_rate: f64,
    /// Median query latency, milliseconds.
    pub query_p50_ms: f64,
    /// 95th percentile query latency, milliseconds.
    pub query_p95_ms: f64,
    /// 99th percentile query latency, milliseconds.
    pub query_p99_ms: f64,
    /// Slow queries in the interval.
    pub slow_queries: u64,
    /// Database sessions open at the end of the interval.
    pub active_sessions: u64,
    /// Average pool utilization over the interval's samples, 0–1.
    pub pool_utilization_avg: f64,
    /// Highest pool utilization sampled in the interval, 0–1.
    pub pool_utilization_max: f64,
    /// Most tasks seen waiting for a connection.
    pub pool_pending_max: u32,
    /// HTTP requests per second.
    pub requests_per_second: f64,
    /// HTTP requests in flight at the end of the interval.
    pub requests_in_flight: u64,
}

impl TrendPoint {
    pub(crate) fn from_window(at: Timestamp, w: &WindowDelta, active_sessions: u64, in_flight: u64) -> Self {
        let ms = |q: f64| w.query_latency.quantile(q).map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        let ops = w.totals.operations();
        TrendPoint {
            at,
            queries_per_second: w.per_second(w.totals.get(Counter::Queries)),
            error_rate: if ops == 0 { 0.0 } else { w.totals.errors() as f64 / ops as f64 },
            query_p50_ms: ms(0.5),
            query_p95_ms: ms(0.95),
            query_p99_ms: ms(0.99),
            slow_queries: w.totals.get(Counter::SlowQueries),
            active_sessions,
            pool_utilization_avg: 0.0,
            pool_utilization_max: 0.0,
            pool_pending_max: 0,
            requests_per_second: w.per_second(w.totals.get(Counter::Requests)),
            requests_in_flight: in_flight,
        }
    }
}

/// Accumulates pool samples between points and closes a point each interval.
#[derive(Debug)]
pub(crate) struct TrendState {
    points: Ring<TrendPoint>,
    interval: Duration,
    interval_started: Timestamp,
    pool_sum: f64,
    pool_count: u32,
    pool_max: f64,
    pending_max: u32,
}

impl TrendState {
    pub(crate) fn new(interval: Duration, capacity: usize, now: Timestamp) -> Self {
        TrendState {
            points: Ring::new(capacity),
            interval,
            interval_started: now,
            pool_sum: 0.0,
            pool_count: 0,
            pool_max: 0.0,
            pending_max: 0,
        }
    }

    pub(crate) fn observe_pool(&mut self, sample: &TimedPoolSample) {
        self.pool_sum += sample.utilization;
        self.pool_count += 1;
        self.pool_max = self.pool_max.max(sample.utilization);
        self.pending_max = self.pending_max.max(sample.sample.pending);
    }

    /// Closes the current interval with `point` if it has run its length.
    pub(crate) fn maybe_close(&mut self, now: Timestamp, mut point: TrendPoint) {
        if now.since(self.interval_started) < self.interval {
            return;
        }
        if self.pool_count > 0 {
            point.pool_utilization_avg = self.pool_sum / f64::from(self.pool_count);
        }
        point.pool_utilization_max = self.pool_max;
        point.pool_pending_max = self.pending_max;
        self.points.push(point);
        self.interval_started = now;
        self.pool_sum = 0.0;
        self.pool_count = 0;
        self.pool_max = 0.0;
        self.pending_max = 0;
    }

    pub(crate) fn points(&self) -> Vec<TrendPoint> {
        self.points.iter().cloned().collect()
    }

    pub(crate) fn restore(&mut self, mut restored: Vec<TrendPoint>) {
        restored.sort_by_key(|p| p.at);
        let current: Vec<TrendPoint> = self.points.iter().cloned().collect();
        self.points.clear();
        for p in restored.into_iter().chain(current) {
            if self.points.last().is_none_or(|last| p.at > last.at) {
                self.points.push(p);
            }
        }
    }

    pub(crate) fn clear(&mut self, now: Timestamp) {
        self.points.clear();
        self.interval_started = now;
        self.pool_sum = 0.0;
        self.pool_count = 0;
        self.pool_max = 0.0;
        self.pending_max = 0;
    }
}
