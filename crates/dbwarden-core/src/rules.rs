//! The default alert rules, derived from the thresholds.
//!
//! Event-like alerts (a deadlock, a connection failure, a leak) are threshold
//! rules too: they watch a count over a rolling window, so they fire at the
//! first occurrence and resolve by themselves once the window holds none.

use std::time::Duration;

use crate::alert::{AlertRule, AlertType, Level, Severity};
use crate::config::Thresholds;
use crate::error_class::ErrorClass;
use crate::signal::{Signal, TimedOperation, Window};

const MINUTE: Duration = Duration::from_secs(60);

fn rule(name: &str, alert_type: AlertType, signal: Signal, levels: Vec<Level>, summary: &str) -> AlertRule {
    AlertRule {
        name: name.to_owned(),
        alert_type,
        signal,
        levels,
        for_duration: Duration::ZERO,
        keep_firing_for: Duration::ZERO,
        repeat_interval: 4 * 60 * MINUTE,
        cooldown: 10 * MINUTE,
        summary: summary.to_owned(),
    }
}

/// A level that clears below `clear_fraction` of where it fires.
fn level(severity: Severity, fire_at: f64, clear_fraction: f64) -> Level {
    Level { severity, fire_at, clear_below: fire_at * clear_fraction }
}

/// A level for counts: fires at `fire_at`, clears when the count drops below it.
fn count_level(severity: Severity, fire_at: f64) -> Level {
    Level { severity, fire_at, clear_below: fire_at }
}

/// The rules a monitor starts with, for the given thresholds.
pub fn default_rules(t: &Thresholds) -> Vec<AlertRule> {
    let five = Window::FiveMinutes;
    let mut rules = vec![
        AlertRule {
            for_duration: MINUTE,
            keep_firing_for: 2 * MINUTE,
            ..rule(
                "high_error_rate",
                AlertType::HighErrorRate,
                Signal::ErrorRate { window: five },
                vec![
                    level(Severity::Medium, t.error_rate_warning, 0.8),
                    level(Severity::Critical, t.error_rate_critical, 0.8),
                ],
                "Database error rate is high",
            )
        },
        AlertRule {
            for_duration: MINUTE,
            keep_firing_for: 2 * MINUTE,
            ..rule(
                "high_recovery_rate",
                AlertType::HighRecoveryRate,
                Signal::RecoveryRate { window: five },
                vec![
                    level(Severity::Medium, t.recovery_rate_warning, 0.8),
                    level(Severity::High, t.recovery_rate_critical, 0.8),
                ],
                "Many units of work needed recovery on a fresh connection",
            )
        },
        AlertRule {
            for_duration: Duration::from_secs(30),
            keep_firing_for: MINUTE,
            ..rule(
                "pool_near_exhaustion",
                AlertType::PoolExhaustion,
                Signal::PoolUtilization,
                vec![
                    level(Severity::Medium, t.pool_utilization_warning, 0.9),
                    level(Severity::High, t.pool_utilization_critical, 0.9),
                ],
                "Connection pool is nearly exhausted",
            )
        },
        rule(
            "pool_checkout_timeouts",
            AlertType::PoolExhaustion,
            Signal::PoolTimeouts { window: five },
            vec![count_level(Severity::High, 1.0), count_level(Severity::Critical, 10.0)],
            "Checkouts timed out waiting for a connection",
        ),
        AlertRule {
            for_duration: MINUTE,
            ..rule(
                "excessive_active_sessions",
                AlertType::ExcessiveActiveSessions,
                Signal::ActiveSessions,
                vec![
                    level(Severity::Medium, t.max_active_sessions as f64, 0.9),
                    level(Severity::High, 2.0 * t.max_active_sessions as f64, 0.9),
                ],
                "Too many database sessions are open",
            )
        },
        rule(
            "slow_queries",
            AlertType::SlowQuery,
            Signal::SlowQueries { window: five },
            vec![count_level(Severity::Low, 1.0), count_level(Severity::Medium, 10.0)],
            "Queries ran past the slow-query threshold",
        ),
        rule(
            "connection_failures",
            AlertType::ConnectionFailure,
            Signal::Errors { class: ErrorClass::ConnectionFailure, window: Window::OneMinute },
            vec![count_level(Severity::High, 1.0), count_level(Severity::Critical, 10.0)],
            "Connections to the database are failing",
        ),
        rule(
            "deadlocks",
            AlertType::Deadlock,
            Signal::Errors { class: ErrorClass::Deadlock, window: five },
            vec![count_level(Severity::High, 1.0)],
            "Transactions deadlocked",
        ),
        rule(
            "transaction_timeouts",
            AlertType::TransactionTimeout,
            Signal::Errors { class: ErrorClass::TransactionTimeout, window: five },
            vec![count_level(Severity::High, 1.0)],
            "Transactions stayed open past the transaction timeout",
        ),
        rule(
            "connection_leaks",
            AlertType::ConnectionLeak,
            Signal::SuspectedLeaks,
            vec![count_level(Severity::High, 1.0)],
            "Connections are held past the leak-detection threshold",
        ),
        AlertRule {
            for_duration: 5 * MINUTE,
            keep_firing_for: 5 * MINUTE,
            ..rule(
                "performance_degradation",
                AlertType::PerformanceDegradation,
                Signal::LatencyDegradation,
                vec![level(Severity::Medium, t.latency_degradation_ratio, 0.8)],
                "Queries are slower than their one-hour baseline",
            )
        },
        AlertRule {
            for_duration: MINUTE,
            ..rule(
                "request_queue",
                AlertType::RequestQueue,
                Signal::InFlightRequests,
                vec![
                    level(Severity::Medium, t.request_queue_warning as f64, 0.8),
                    level(Severity::High, t.request_queue_critical as f64, 0.8),
                ],
                "Many requests are in flight at once",
            )
        },
        rule(
            "slow_requests",
            AlertType::SlowRequest,
            Signal::SlowRequests { window: five },
            vec![count_level(Severity::Low, 1.0), count_level(Severity::Medium, 10.0)],
            "Requests ran past the slow-request threshold",
        ),
        rule(
            "session_table_size",
            AlertType::SessionTableSize,
            Signal::SessionTableBytes,
            vec![level(Severity::High, t.session_table_bytes as f64, 0.9)],
            "The session table is large; check that cleanup runs",
        ),
        rule(
            "expired_sessions",
            AlertType::ExpiredSessions,
            Signal::ExpiredSessions,
            vec![level(Severity::Medium, t.expired_sessions as f64, 0.5)],
            "Expired sessions are accumulating",
        ),
        AlertRule {
            keep_firing_for: 2 * MINUTE,
            ..rule(
                "session_write_rate",
                AlertType::SessionWriteRate,
                Signal::SessionWrites { window: Window::OneMinute },
                vec![level(Severity::Medium, t.session_writes_per_minute as f64, 0.8)],
                "The session store writes on (nearly) every request",
            )
        },
        rule(
            "cleanup_not_running",
            AlertType::CleanupNotRunning,
            Signal::CleanupOverdue,
            vec![level(Severity::High, 2.0, 0.5)],
            "Session cleanup has not run within twice its interval",
        ),
        AlertRule {
            for_duration: MINUTE,
            ..rule(
                "high_memory",
                AlertType::HighMemory,
                Signal::MemoryUsage,
                vec![
                    level(Severity::Medium, t.memory_warning, 0.95),
                    level(Severity::Critical, t.memory_critical, 0.95),
                ],
                "The host is running out of memory",
            )
        },
        AlertRule {
            for_duration: 2 * MINUTE,
            ..rule(
                "high_cpu",
                AlertType::HighCpu,
                Signal::CpuUsage,
                vec![level(Severity::Medium, t.cpu_warning, 0.9), level(Severity::High, t.cpu_critical, 0.9)],
                "The host's CPU is saturated",
            )
        },
    ];
    for (name, operation, summary) in [
        ("slow_session_creation", TimedOperation::SessionCreation, "Opening database sessions is slow"),
        ("slow_session_cleanup", TimedOperation::Cleanup, "Closing database sessions is slow"),
        ("slow_recovery", TimedOperation::Recovery, "Recovery operations are slow"),
    ] {
        rules.push(rule(
            name,
            AlertType::SlowOperation,
            Signal::SlowOperations { operation, window: five },
            vec![count_level(Severity::Low, 1.0), count_level(Severity::Medium, 10.0)],
            summary,
        ));
    }
    rules
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_are_valid_and_cover_every_alert_type() {
        let rules = default_rules(&Thresholds::default());
        for rule in &rules {
            rule.validate().unwrap();
        }
        for required in AlertType::ALL {
            assert!(rules.iter().any(|r| r.alert_type == required), "no rule for {required:?}");
        }
    }
}
