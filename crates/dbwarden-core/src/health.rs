//! The health verdict (pass / warn / fail with the checks behind it, in the
//! shape of the IETF health-check draft) and the 0–100 performance score with
//! concrete recommendations.
//!
//! Health answers "is something wrong now?" for load balancers and on-call
//! people; the score answers "how well is the database used?" for the people
//! who tune it, and each point lost comes with what to do about it.

use std::fmt;

use serde::Serialize;

use crate::alert::{AlertState, Severity};
use crate::clock::Timestamp;
use crate::monitor::Monitor;
use crate::queries::QuerySort;
use crate::signal::{Signal, Window};

/// A health status; the worst component wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Everything within thresholds.
    Pass,
    /// Something crossed a warning threshold.
    Warn,
    /// Something crossed a critical threshold.
    Fail,
}

impl HealthStatus {
    /// `pass`, `warn` or `fail`.
    pub const fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Pass => "pass",
            HealthStatus::Warn => "warn",
            HealthStatus::Fail => "fail",
        }
    }

    /// The seeds' wording: healthy, degraded, unhealthy.
    pub const fn legacy(self) -> &'static str {
        match self {
            HealthStatus::Pass => "healthy",
            HealthStatus::Warn => "degraded",
            HealthStatus::Fail => "unhealthy",
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One measurement behind the verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthCheck {
    /// The component, e.g. `pool`.
    pub component: &'static str,
    /// The measurement, e.g. `utilization`.
    pub measurement: &'static str,
    /// The value observed.
    pub observed_value: f64,
    /// Its unit: `ratio`, `count`, `ms`.
    pub observed_unit: &'static str,
    /// This check's status.
    pub status: HealthStatus,
    /// The threshold that decided a warn or fail.
    pub threshold: Option<f64>,
    /// When it was measured.
    pub time: Timestamp,
    /// Why it is not passing.
    pub output: Option<String>,
}

impl HealthCheck {
    /// The IETF key: `component:measurement`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.component, self.measurement)
    }
}

/// The four figures the seeds put in every health answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MetricsSummary {
    /// Sessions open now.
    pub active_sessions: u64,
    /// Error rate over the last 5 minutes, 0–1.
    pub error_rate: f64,
    /// Recovery rate over the last 5 minutes, 0–1.
    pub recovery_rate: f64,
    /// Pool utilization at the latest sample, 0–1.
    pub pool_utilization: f64,
}

/// The health verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The worst status among the checks.
    pub status: HealthStatus,
    /// When it was computed.
    pub time: Timestamp,
    /// One line per check that did not pass.
    pub issues: Vec<String>,
    /// Every check.
    pub checks: Vec<HealthCheck>,
    /// The headline figures.
    pub metrics_summary: MetricsSummary,
}

/// A recommendation attached to the performance score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// What area it concerns: `errors`, `latency`, `pool`, `recovery`, `queries`, `leaks`.
    pub area: &'static str,
    /// Points it cost.
    pub points: f64,
    /// What is wrong and what to do.
    pub message: String,
}

/// The 0–100 performance score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerformanceReport {
    /// 100 is perfect.
    pub score: f64,
    /// `excellent` (≥ 90), `good` (≥ 75), `fair` (≥ 50) or `poor`.
    pub grade: &'static str,
    /// Why points were lost, costliest first.
    pub recommendations: Vec<Recommendation>,
    /// The health verdict at the same moment.
    pub health: HealthStatus,
    /// When it was computed.
    pub time: Timestamp,
}

/// Status of `value` against warn and fail levels (higher is worse).
fn grade(value: f64, warn: f64, fail: f64) -> (HealthStatus, Option<f64>) {
    if value >= fail {
        (HealthStatus::Fail, Some(fail))
    } else if value >= warn {
        (HealthStatus::Warn, Some(warn))
    } else {
        (HealthStatus::Pass, None)
    }
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

impl Monitor {
    /// The health verdict now.
    pub fn health(&self) -> HealthReport {
        let snapshot = self.snapshot();
        let t = &snapshot.thresholds;
        let now = snapshot.monitor.generated_at;
        let five = Window::FiveMinutes;
        let error_rate = self.signal_value(&Signal::ErrorRate { window: five }).unwrap_or(0.0);
        let recovery_rate = self.signal_value(&Signal::RecoveryRate { window: five }).unwrap_or(0.0);
        let pool = &snapshot.pool_metrics;
        let active = snapshot.session_metrics.active_sessions;
        let mut checks = Vec::new();
        let mut check = |component,
                         measurement,
                         value: f64,
                         unit,
                         (status, threshold): (HealthStatus, Option<f64>),
                         output: String| {
            checks.push(HealthCheck {
                component,
                measurement,
                observed_value: value,
                observed_unit: unit,
                status,
                threshold,
                time: now,
                output: (status != HealthStatus::Pass).then_some(output),
            });
        };
        check(
            "database",
            "error_rate",
            error_rate,
            "ratio",
            grade(error_rate, t.error_rate_warning, t.error_rate_critical),
            format!("error rate over 5 min is {}", pct(error_rate)),
        );
        check(
            "sessions",
            "recovery_rate",
            recovery_rate,
            "ratio",
            grade(recovery_rate, t.recovery_rate_warning, t.recovery_rate_critical),
            format!("recovery rate over 5 min is {}", pct(recovery_rate)),
        );
        check(
            "sessions",
            "active",
            active as f64,
            "count",
            grade(active as f64, t.max_active_sessions as f64, 2.0 * t.max_active_sessions as f64),
            format!("{active} database sessions are open (limit {})", t.max_active_sessions),
        );
        if pool.current.is_some() {
            check(
                "pool",
                "utilization",
                pool.utilization,
                "ratio",
                grade(pool.utilization, t.pool_utilization_warning, t.pool_utilization_critical),
                format!("pool utilization is {}", pct(pool.utilization)),
            );
        }
        let pool_timeouts = self.signal_value(&Signal::PoolTimeouts { window: five }).unwrap_or(0.0);
        check(
            "pool",
            "timeouts",
            pool_timeouts,
            "count",
            grade(pool_timeouts, 1.0, 10.0),
            format!("{pool_timeouts} checkouts timed out in the last 5 min"),
        );
        check(
            "pool",
            "suspected_leaks",
            pool.suspected_leaks as f64,
            "count",
            grade(pool.suspected_leaks as f64, 1.0, f64::INFINITY),
            format!("{} connections are held past the leak threshold", pool.suspected_leaks),
        );
        let requests = &snapshot.request_metrics;
        if requests.total > 0 || requests.in_flight > 0 {
            let in_flight = requests.in_flight as f64;
            check(
                "requests",
                "in_flight",
                in_flight,
                "count",
                grade(in_flight, t.request_queue_warning as f64, t.request_queue_critical as f64),
                format!("{} requests are in flight", requests.in_flight),
            );
            let slow = self.signal_value(&Signal::SlowRequests { window: five }).unwrap_or(0.0);
            check(
                "requests",
                "slow",
                slow,
                "count",
                grade(slow, 1.0, f64::INFINITY),
                format!("{slow} requests were slower than {:.1} s in the last 5 min", t.slow_request.as_secs_f64()),
            );
        }
        if let Some(table) = snapshot.session_store_metrics.table {
            check(
                "session_table",
                "expired",
                table.expired as f64,
                "count",
                grade(table.expired as f64, t.expired_sessions as f64, f64::INFINITY),
                format!("{} expired sessions wait for cleanup", table.expired),
            );
            if let Some(bytes) = table.bytes {
                check(
                    "session_table",
                    "size",
                    bytes as f64,
                    "bytes",
                    grade(bytes as f64, t.session_table_bytes as f64, f64::INFINITY),
                    format!("the session table takes {:.1} MB", bytes as f64 / 1e6),
                );
            }
        }
        if let Some(overdue) = self.signal_value(&Signal::CleanupOverdue) {
            check(
                "cleanup",
                "overdue",
                overdue,
                "ratio",
                grade(overdue, 2.0, f64::INFINITY),
                format!("session cleanup last ran {overdue:.1} intervals ago"),
            );
        }
        if let Some(memory) = snapshot.resource_metrics.memory_usage {
            check(
                "host",
                "memory",
                memory,
                "ratio",
                grade(memory, t.memory_warning, t.memory_critical),
                format!("host memory in use is {}", pct(memory)),
            );
        }
        if let Some(cpu) = snapshot.resource_metrics.current.map(|r| r.cpu_usage) {
            check(
                "host",
                "cpu",
                cpu,
                "ratio",
                // A busy CPU slows everything but breaks nothing: it warns
                // (its alert still escalates), it never fails the verdict.
                grade(cpu, t.cpu_warning, f64::INFINITY),
                format!("host CPU in use is {}", pct(cpu)),
            );
        }
        let critical =
            self.alerts().iter().filter(|a| a.state == AlertState::Firing && a.severity == Severity::Critical).count();
        check(
            "alerts",
            "critical_firing",
            critical as f64,
            "count",
            grade(critical as f64, f64::INFINITY, 1.0),
            format!("{critical} critical alerts are firing"),
        );
        let status = checks.iter().map(|c| c.status).max().unwrap_or(HealthStatus::Pass);
        let issues = checks.iter().filter_map(|c| c.output.clone()).collect();
        HealthReport {
            status,
            time: now,
            issues,
            checks,
            metrics_summary: MetricsSummary {
                active_sessions: active,
                error_rate,
                recovery_rate,
                pool_utilization: pool.utilization,
            },
        }
    }

    /// The 0–100 performance score with recommendations.
    pub fn performance(&self) -> PerformanceReport {
        let s = self.snapshot();
        let health = self.health();
        let t = &s.thresholds;
        let fifteen = &s.rates[&Window::FifteenMinutes];
        let mut recs: Vec<Recommendation> = Vec::new();
        let mut lose = |area, points: f64, message: String| {
            if points > 0.05 {
                recs.push(Recommendation { area, points: (points * 10.0).round() / 10.0, message });
            }
        };

        // Errors: up to 30 points, all of them at the critical rate.
        let er = health.metrics_summary.error_rate;
        if er > 0.0 {
            let mut classes: Vec<_> = s.error_metrics.by_class.iter().collect();
            classes.sort_by(|a, b| b.1.cmp(a.1));
            let top = classes.first().map(|(c, n)| format!(" (most are {c}: {n})")).unwrap_or_default();
            lose(
                "errors",
                30.0 * (er / t.error_rate_critical).min(1.0),
                format!(
                    "{} of database operations failed over the last 5 min{top}: see /api/errors for the recurring patterns",
                    pct(er)
                ),
            );
        }

        // Latency: up to 20 points as the 15-minute p95 approaches the slow-query threshold.
        let p95 = fifteen.query_latency.p95_ms;
        let slow_ms = t.slow_query.as_secs_f64() * 1000.0;
        if fifteen.query_latency.count > 0 && p95 > slow_ms * 0.25 {
            let costly = self.top_queries(QuerySort::P99, 1);
            let worst = costly
                .first()
                .filter(|q| !q.other)
                .map(|q| {
                    format!(
                        "; the slowest is `{}` (p99 {:.0} ms over {} calls){}",
                        q.text,
                        q.latency.p99_ms,
                        q.calls,
                        q.table.as_ref().map(|t| format!(": check the indexes on `{t}`")).unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            lose(
                "latency",
                20.0 * ((p95 - slow_ms * 0.25) / (slow_ms * 0.75)).clamp(0.0, 1.0),
                format!(
                    "query p95 over 15 min is {p95:.0} ms against a slow-query threshold of {slow_ms:.0} ms{worst}"
                ),
            );
        }

        // Slow queries: up to 15 points by their share of all queries.
        if fifteen.queries > 0 {
            let slow = self.signal_value(&Signal::SlowQueries { window: Window::FifteenMinutes }).unwrap_or(0.0);
            let share = slow / fifteen.queries as f64;
            if slow > 0.0 {
                lose(
                    "queries",
                    15.0 * (share * 20.0).min(1.0),
                    format!(
                        "{slow:.0} queries over the last 15 min took longer than {:.1} s: see /api/queries/slow",
                        t.slow_query.as_secs_f64()
                    ),
                );
            }
        }

        // Pool: up to 15 points above 70 % peak utilization, plus timeouts.
        let pool = &s.pool_metrics;
        if let Some(current) = pool.current {
            let u = pool.peak_utilization;
            if u > 0.7 {
                let held = self.checkouts();
                let longest = held
                    .first()
                    .map(|c| {
                        format!(
                            "; the longest checkout is {:.0} s old{}",
                            c.age_seconds,
                            c.holder.route.as_ref().map(|r| format!(", held by {r}")).unwrap_or_default()
                        )
                    })
                    .unwrap_or_default();
                lose(
                    "pool",
                    15.0 * ((u - 0.7) / 0.3).min(1.0),
                    format!(
                        "pool utilization peaked at {} of {} connections: raise the pool's max size or shorten checkouts{longest}",
                        pct(u),
                        current.sample.max
                    ),
                );
            }
        }
        if pool.timeouts > 0 {
            lose(
                "pool",
                5.0,
                format!(
                    "{} checkouts timed out waiting for a connection (wait p99 {:.0} ms): the pool is too small for the load or connections are held too long",
                    pool.timeouts, pool.wait_time.p99_ms
                ),
            );
        }

        // Recovery: up to 10 points.
        let rr = health.metrics_summary.recovery_rate;
        if rr > 0.0 {
            lose(
                "recovery",
                10.0 * (rr / t.recovery_rate_critical).min(1.0),
                format!(
                    "{} of sessions needed recovery on a fresh connection: check for connections dropped by the network, a proxy's idle timeout shorter than the pool's idle_timeout, or server restarts",
                    pct(rr)
                ),
            );
        }

        // Leaks: 10 points while any is suspected.
        if pool.suspected_leaks > 0 {
            let leaks: Vec<String> = self
                .checkouts()
                .into_iter()
                .filter(|c| c.leak_suspected)
                .take(3)
                .map(|c| c.holder.route.clone().unwrap_or_else(|| format!("checkout {}", c.id.0)))
                .collect();
            lose(
                "leaks",
                10.0,
                format!(
                    "{} connections are held past {:.0} s ({}): return them to the pool, or hold them in a narrower scope",
                    pool.suspected_leaks,
                    t.leak_detection.as_secs_f64(),
                    leaks.join(", ")
                ),
            );
        }

        let lost: f64 = recs.iter().map(|r| r.points).sum();
        recs.sort_by(|a, b| b.points.total_cmp(&a.points));
        let score = ((100.0 - lost).clamp(0.0, 100.0) * 10.0).round() / 10.0;
        PerformanceReport {
            score,
            grade: match score {
                s if s >= 90.0 => "excellent",
                s if s >= 75.0 => "good",
                s if s >= 50.0 => "fair",
                _ => "poor",
            },
            recommendations: recs,
            health: health.status,
            time: s.monitor.generated_at,
        }
    }
}
