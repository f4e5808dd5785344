//! The values alert rules and health checks look at, and the rolling windows
//! they are measured over.
//!
//! A [`Signal`] names a derived value (an error rate over five minutes, the
//! pool's utilization now); the monitor knows how to compute each one, and
//! the alert engine only ever sees the number.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error_class::ErrorClass;

/// A rolling window over which counts and rates are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Window {
    /// The last minute.
    #[serde(rename = "1m")]
    OneMinute,
    /// The last five minutes.
    #[serde(rename = "5m")]
    FiveMinutes,
    /// The last fifteen minutes.
    #[serde(rename = "15m")]
    FifteenMinutes,
    /// The last hour.
    #[serde(rename = "1h")]
    OneHour,
}

impl Window {
    /// Every window, shortest first.
    pub const ALL: [Window; 4] = [Window::OneMinute, Window::FiveMinutes, Window::FifteenMinutes, Window::OneHour];

    /// The window's length.
    pub const fn duration(self) -> Duration {
        match self {
            Window::OneMinute => Duration::from_secs(60),
            Window::FiveMinutes => Duration::from_secs(300),
            Window::FifteenMinutes => Duration::from_secs(900),
            Window::OneHour => Duration::from_secs(3600),
        }
    }

    /// The short name used in URLs and JSON: `1m`, `5m`, `15m`, `1h`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Window::OneMinute => "1m",
            Window::FiveMinutes => "5m",
            Window::FifteenMinutes => "15m",
            Window::OneHour => "1h",
        }
    }

    /// Parses `1m`, `5m`, `15m` or `1h`.
    pub fn parse(s: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.as_str() == s)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operation whose duration has its own "slow" threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimedOperation {
    /// Opening a database session (checkout or transaction begin).
    SessionCreation,
    /// A cleanup run.
    Cleanup,
    /// A recovery attempt.
    Recovery,
}

impl TimedOperation {
    /// The stable snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TimedOperation::SessionCreation => "session_creation",
            TimedOperation::Cleanup => "cleanup",
            TimedOperation::Recovery => "recovery",
        }
    }
}

/// A value derived from recorded events, which a rule compares to thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "signal", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Signal {
    /// Failed operations (failed queries and session errors) per operation
    /// (queries and sessions opened) over the window, 0.0–1.0.
    ErrorRate {
        /// The window.
        window: Window,
    },
    /// Recovery attempts per session opened over the window, 0.0–1.0.
    RecoveryRate {
        /// The window.
        window: Window,
    },
    /// Connections in use divided by the pool's maximum, at the latest sample.
    PoolUtilization,
    /// Tasks waiting for a connection, at the latest sample.
    PendingRequests,
    /// Checkouts that timed out over the window.
    PoolTimeouts {
        /// The window.
        window: Window,
    },
    /// Database sessions open now.
    ActiveSessions,
    /// Queries at or above the slow-query threshold over the window.
    SlowQueries {
        /// The window.
        window: Window,
    },
    /// Errors of one class over the window.
    Errors {
        /// The class counted.
        class: ErrorClass,
        /// The window.
        window: Window,
    },
    /// Checkouts held past the leak threshold and not yet returned.
    SuspectedLeaks,
    /// Operations of a kind that took longer than their threshold, over the window.
    SlowOperations {
        /// The operation.
        operation: TimedOperation,
        /// The window.
        window: Window,
    },
    /// The 5-minute p95 query latency divided by the 1-hour p95: above 1 means
    /// queries got slower than their recent baseline.
    LatencyDegradation,
    /// HTTP requests in flight now (the request queue).
    InFlightRequests,
    /// Requests slower than the slow-request threshold over the window.
    SlowRequests {
        /// The window.
        window: Window,
    },
    /// Bytes the session table takes, at its latest sample.
    SessionTableBytes,
    /// Expired sessions waiting for cleanup, at the latest sample.
    ExpiredSessions,
    /// Writes the session store made (full writes and expiry touches) over the window.
    SessionWrites {
        /// The window.
        window: Window,
    },
    /// Time since the last cleanup run (or since start, when none ran)
    /// divided by the cleanup interval; no value until an interval is set.
    CleanupOverdue,
    /// Host memory in use, 0–1, at the latest resource sample.
    MemoryUsage,
    /// Host CPU in use, 0–1, at the latest resource sample.
    CpuUsage,
}

impl Signal {
    /// The unit the value is expressed in, for messages and health checks.
    pub const fn unit(&self) -> &'static str {
        match self {
            Signal::ErrorRate { .. } | Signal::RecoveryRate { .. } | Signal::PoolUtilization => "ratio",
            Signal::LatencyDegradation | Signal::CleanupOverdue => "ratio",
            Signal::MemoryUsage | Signal::CpuUsage => "ratio",
            Signal::SessionTableBytes => "bytes",
            Signal::InFlightRequests
            | Signal::SlowRequests { .. }
            | Signal::ExpiredSessions
            | Signal::SessionWrites { .. } => "count",
            Signal::PendingRequests | Signal::ActiveSessions | Signal::SuspectedLeaks => "count",
            Signal::PoolTimeouts { .. }
            | Signal::SlowQueries { .. }
            | Signal::Errors { .. }
            | Signal::SlowOperations { .. } => "count",
        }
    }

    /// Whether the value is a fraction best shown as a percentage.
    pub const fn is_ratio(&self) -> bool {
        matches!(
            self,
            Signal::ErrorRate { .. }
                | Signal::RecoveryRate { .. }
                | Signal::PoolUtilization
                | Signal::MemoryUsage
                | Signal::CpuUsage
        )
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signal::ErrorRate { window } => write!(f, "error rate over {window}"),
            Signal::RecoveryRate { window } => write!(f, "recovery rate over {window}"),
            Signal::PoolUtilization => f.write_str("pool utilization"),
            Signal::PendingRequests => f.write_str("tasks waiting for a connection"),
            Signal::PoolTimeouts { window } => write!(f, "pool checkout timeouts over {window}"),
            Signal::ActiveSessions => f.write_str("active database sessions"),
            Signal::SlowQueries { window } => write!(f, "slow queries over {window}"),
            Signal::Errors { class, window } => write!(f, "{class} errors over {window}"),
            Signal::SuspectedLeaks => f.write_str("suspected connection leaks"),
            Signal::SlowOperations { operation, window } => {
                write!(f, "slow {} operations over {window}", operation.as_str())
            }
            Signal::LatencyDegradation => f.write_str("p95 query latency against its 1 h baseline"),
            Signal::InFlightRequests => f.write_str("requests in flight"),
            Signal::SlowRequests { window } => write!(f, "slow requests over {window}"),
            Signal::SessionTableBytes => f.write_str("session table size"),
            Signal::ExpiredSessions => f.write_str("expired sessions awaiting cleanup"),
            Signal::SessionWrites { window } => write!(f, "session-store writes over {window}"),
            Signal::CleanupOverdue => f.write_str("time since the last cleanup run over its interval"),
            Signal::MemoryUsage => f.write_str("host memory in use"),
            Signal::CpuUsage => f.write_str("host CPU in use"),
        }
    }
}
