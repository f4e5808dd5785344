//! Rolling windows (1 min, 5 min, 15 min, 1 h) computed the way Prometheus
//! computes `rate()`: from periodic samples of cumulative counters.
//!
//! Recording only ever increments counters; it never reads the clock or
//! touches per-window state. Every `resolution` the monitor stores a copy of
//! its counters and of its query latency histogram; a window's figures are
//! the difference between now and the newest sample at least that old. Memory
//! is fixed by `1 h / resolution` samples.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::counters::Totals;
use crate::histogram::HistogramSnapshot;
use crate::ring::Ring;
use crate::signal::Window;

#[derive(Debug, Clone)]
struct Sample {
    at: Timestamp,
    totals: Totals,
    query_latency: HistogramSnapshot,
}

/// What happened during one window.
#[derive(Debug, Clone)]
pub(crate) struct WindowDelta {
    /// The counters' growth over the window.
    pub(crate) totals: Totals,
    /// Query latencies recorded in the window.
    pub(crate) query_latency: HistogramSnapshot,
    /// The time actually covered: shorter than the window while the monitor
    /// is younger than it.
    pub(crate) elapsed: Duration,
}

impl WindowDelta {
    /// `count` per second over the covered time (0 when no time passed).
    pub(crate) fn per_second(&self, count: u64) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { count as f64 / secs } else { 0.0 }
    }
}

/// Samples of cumulative counters, enough to cover the longest window.
#[derive(Debug)]
pub(crate) struct RateHistory {
    samples: Ring<Sample>,
    resolution: Duration,
}

impl RateHistory {
    pub(crate) fn new(resolution: Duration, start: Timestamp) -> Self {
        let longest = Window::OneHour.duration();
        let capacity = (longest.as_millis() / resolution.as_millis().max(1)) as usize + 2;
        let mut samples = Ring::new(capacity);
        samples.push(Sample { at: start, totals: Totals::default(), query_latency: HistogramSnapshot::default() });
        RateHistory { samples, resolution }
    }

    /// Stores a sample if at least `resolution` passed since the last one.
    /// Returns whether it did.
    pub(crate) fn maybe_sample(
        &mut self,
        now: Timestamp,
        totals: Totals,
        latency: impl FnOnce() -> HistogramSnapshot,
    ) -> bool {
        let due = self.samples.last().is_none_or(|last| now.since(last.at) >= self.resolution);
        if due {
            self.samples.push(Sample { at: now, totals, query_latency: latency() });
        }
        due
    }

    /// The window's figures, given the current counters and latency histogram.
    pub(crate) fn window(
        &self,
        window: Window,
        now: Timestamp,
        totals: &Totals,
        latency: &HistogramSnapshot,
    ) -> WindowDelta {
        let start = now.saturating_sub(window.duration());
        // The newest sample at or before the window's start; failing that,
        // the oldest we have (the monitor is younger than the window).
        let base = self.samples.iter().rev().find(|s| s.at <= start).or_else(|| self.samples.iter().next());
        match base {
            Some(base) => WindowDelta {
                totals: totals.since(&base.totals),
                query_latency: latency.saturating_sub(&base.query_latency),
                elapsed: now.since(base.at),
            },
            None => WindowDelta { totals: *totals, query_latency: latency.clone(), elapsed: Duration::ZERO },
        }
    }

    /// Forgets every sample and starts again from zero counters at `now`.
    pub(crate) fn restart(&mut self, now: Timestamp, totals: Totals, latency: HistogramSnapshot) {
        self.samples.clear();
        self.samples.push(Sample { at: now, totals, query_latency: latency });
    }
}
