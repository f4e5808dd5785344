//! Raw histogram snapshots for exporters (the Prometheus endpoint), which
//! need bucket counts at fixed bounds rather than the percentiles the JSON
//! reports carry.

use crate::histogram::HistogramSnapshot;
use crate::monitor::Monitor;
use crate::queries::QueryStat;
use crate::report::RouteStat;

/// Snapshots of every latency histogram a monitor keeps.
#[derive(Debug, Clone)]
pub struct LatencyHistograms {
    /// Execution time of every statement.
    pub query: HistogramSnapshot,
    /// How long database sessions stayed open.
    pub session_duration: HistogramSnapshot,
    /// Time to open a session.
    pub session_creation: HistogramSnapshot,
    /// Time to close (clean up) a session.
    pub session_cleanup: HistogramSnapshot,
    /// Recovery attempts.
    pub recovery: HistogramSnapshot,
    /// Time waiting for a pooled connection (timeouts included).
    pub checkout_wait: HistogramSnapshot,
    /// Time a connection stayed checked out.
    pub connection_use: HistogramSnapshot,
    /// Time to open a new connection.
    pub connection_create: HistogramSnapshot,
    /// HTTP request durations.
    pub request: HistogramSnapshot,
    /// Cleanup run durations.
    pub cleanup_run: HistogramSnapshot,
}

impl Monitor {
    /// Snapshots of every latency histogram.
    pub fn latency_histograms(&self) -> LatencyHistograms {
        let h = &self.inner.histograms;
        LatencyHistograms {
            query: h.query.snapshot(),
            session_duration: h.session_duration.snapshot(),
            session_creation: h.session_creation.snapshot(),
            session_cleanup: h.session_cleanup.snapshot(),
            recovery: h.recovery.snapshot(),
            checkout_wait: h.checkout_wait.snapshot(),
            connection_use: h.connection_use.snapshot(),
            connection_create: h.connection_create.snapshot(),
            request: h.request.snapshot(),
            cleanup_run: h.cleanup_run.snapshot(),
        }
    }

    /// Every fingerprint of the top-K table plus the "other" bucket (when it
    /// holds anything), each with its latency histogram; unsorted. Bounded
    /// by `MonitorConfig::top_queries` + 1 entries.
    pub fn query_histograms(&self) -> Vec<(QueryStat, HistogramSnapshot)> {
        self.inner.queries.stats_with_latency()
    }

    /// Per-route request statistics with each route's latency histogram,
    /// busiest first; bounded by `MonitorConfig::top_routes` + 1 entries.
    pub fn route_histograms(&self) -> Vec<(RouteStat, HistogramSnapshot)> {
        let mut out: Vec<(RouteStat, HistogramSnapshot)> = self
            .inner
            .routes
            .figures()
            .into_iter()
            .map(|f| {
                let requests = f.latency.count();
                let per = |v: f64| if requests == 0 { 0.0 } else { v / requests as f64 };
                let stat = RouteStat {
                    method: f.key.as_ref().map(|k| k.method.clone()),
                    route: f.key.as_ref().map(|k| k.route.clone()),
                    requests,
                    errors: f.failures,
                    error_rate: if requests == 0 { 0.0 } else { f.failures as f64 / requests as f64 },
                    slow: f.slow,
                    latency: f.latency.summary(),
                    avg_db_queries: per(f.extra_count as f64),
                    avg_db_time_ms: per(f.extra_ns as f64 / 1e6),
                };
                (stat, f.latency)
            })
            .collect();
        out.sort_by_key(|(r, _)| std::cmp::Reverse(r.requests));
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Monitor, Outcome};

    #[test]
    fn query_histograms_match_the_recorded_executions() {
        let monitor = Monitor::new();
        for ms in [1, 2, 30] {
            monitor.record_query("SELECT * FROM t WHERE id = 1", Duration::from_millis(ms), 1, Outcome::Success);
        }
        let all = monitor.query_histograms();
        assert_eq!(all.len(), 1);
        let (stat, latency) = &all[0];
        assert_eq!(stat.calls, 3);
        assert_eq!(latency.count(), 3);
        assert_eq!(latency.count_at_or_below(Duration::from_millis(10)), 2);
        assert_eq!(monitor.latency_histograms().query.count(), 3);
    }
}
