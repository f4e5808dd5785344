//! Configuration of a monitor: the capacities that bound its memory and the
//! thresholds that decide what is slow, high or unhealthy.
//!
//! Both are plain structs with the seeds' defaults and a `validate` method;
//! a value that fails validation is refused whole, so a running monitor
//! never holds a half-applied configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Serde helpers that read and write a [`Duration`] as (fractional) seconds.
pub mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes the duration as seconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    /// Reads seconds, refusing negative, NaN and infinite values by name.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs)
            .map_err(|_| D::Error::custom(format!("{secs} is not a valid number of seconds")))
    }
}

/// Thresholds that decide what counts as slow, high or unhealthy.
///
/// Defaults are those of the Python systems dbwarden replaces. They can be
/// replaced while the monitor runs with [`crate::Monitor::set_thresholds`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Opening a session slower than this is slow (default 1.0 s).
    #[serde(with = "duration_secs")]
    pub slow_session_creation: Duration,
    /// Closing (cleaning up) a session slower than this is slow (default 0.5 s).
    #[serde(with = "duration_secs")]
    pub slow_cleanup: Duration,
    /// A recovery slower than this is slow (default 0.5 s).
    #[serde(with = "duration_secs")]
    pub slow_recovery: Duration,
    /// A query at or above this is slow (default 2.0 s).
    #[serde(with = "duration_secs")]
    pub slow_query: Duration,
    /// Error rate (0–1) that warns (default 0.01).
    pub error_rate_warning: f64,
    /// Error rate (0–1) that is critical (default 0.05).
    pub error_rate_critical: f64,
    /// Recovery rate (0–1) that warns (default 0.05).
    pub recovery_rate_warning: f64,
    /// Recovery rate (0–1) that is critical (default 0.10).
    pub recovery_rate_critical: f64,
    /// Pool utilization (0–1) that warns (default 0.80).
    pub pool_utilization_warning: f64,
    /// Pool utilization (0–1) that is critical (default 0.95).
    pub pool_utilization_critical: f64,
    /// More active sessions than this is excessive (default 50).
    pub max_active_sessions: u64,
    /// A checkout held longer than this is a suspected leak (default 30 s).
    #[serde(with = "duration_secs")]
    pub leak_detection: Duration,
    /// A transaction open longer than this has timed out (default 30 s).
    #[serde(with = "duration_secs")]
    pub transaction_timeout: Duration,
    /// A request slower than this is slow (default 5 s).
    #[serde(with = "duration_secs")]
    pub slow_request: Duration,
    /// A request slower than this has timed out (default 30 s).
    #[serde(with = "duration_secs")]
    pub request_timeout: Duration,
    /// The 5-minute p95 query latency over its 1-hour p95 that counts as a
    /// degradation (default 2.0).
    pub latency_degradation_ratio: f64,
    /// Requests in flight at once that warn (default 50: the request queue).
    pub request_queue_warning: u64,
    /// Requests in flight at once that are critical (default 100).
    pub request_queue_critical: u64,
    /// One fingerprint run at least this many times in one request, for more
    /// than `n_plus_one_min_total` in all, is an N+1 pattern (default 5).
    pub n_plus_one_min_count: u32,
    /// See `n_plus_one_min_count` (default 50 ms).
    #[serde(with = "duration_secs")]
    pub n_plus_one_min_total: Duration,
    /// A session table larger than this many bytes alerts (default 100 MB).
    pub session_table_bytes: u64,
    /// More expired sessions than this waiting for cleanup alerts (default 1000).
    pub expired_sessions: u64,
    /// More session-store writes than this per minute alerts (default 1000):
    /// the store is not throttling.
    pub session_writes_per_minute: u64,
    /// Host memory in use (0–1) that warns (default 0.80).
    pub memory_warning: f64,
    /// Host memory in use (0–1) that is critical (default 0.90).
    pub memory_critical: f64,
    /// Host CPU in use (0–1) that warns (default 0.80).
    pub cpu_warning: f64,
    /// Host CPU in use (0–1) that is critical (default 0.90).
    pub cpu_critical: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            slow_session_creation: Duration::from_secs(1),
            slow_cleanup: Duration::from_millis(500),
            slow_recovery: Duration::from_millis(500),
            slow_query: Duration::from_secs(2),
            error_rate_warning: 0.01,
            error_rate_critical: 0.05,
            recovery_rate_warning: 0.05,
            recovery_rate_critical: 0.10,
            pool_utilization_warning: 0.80,
            pool_utilization_critical: 0.95,
            max_active_sessions: 50,
            leak_detection: Duration::from_secs(30),
            transaction_timeout: Duration::from_secs(30),
            slow_request: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            latency_degradation_ratio: 2.0,
            request_queue_warning: 50,
            request_queue_critical: 100,
            n_plus_one_min_count: 5,
            n_plus_one_min_total: Duration::from_millis(50),
            session_table_bytes: 100 * 1000 * 1000,
            expired_sessions: 1000,
            session_writes_per_minute: 1000,
            memory_warning: 0.80,
            memory_critical: 0.90,
            cpu_warning: 0.80,
            cpu_critical: 0.90,
        }
    }
}

fn ratio(field: &'static str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange { field, value: value.to_string(), expected: "a ratio from 0 to 1" })
    }
}

fn positive(field: &'static str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        Err(ConfigError::OutOfRange { field, value: "0".into(), expected: "a duration above zero" })
    } else {
        Ok(())
    }
}

fn ordered(low: &'static str, lv: f64, high: &'static str, hv: f64) -> Result<(), ConfigError> {
    if lv <= hv { Ok(()) } else { Err(ConfigError::Inconsistent(format!("{low} ({lv}) is above {high} ({hv})"))) }
}

impl Thresholds {
    /// Checks every value; the error names the first field that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("slow_session_creation", self.slow_session_creation)?;
        positive("slow_cleanup", self.slow_cleanup)?;
        positive("slow_recovery", self.slow_recovery)?;
        positive("slow_query", self.slow_query)?;
        positive("leak_detection", self.leak_detection)?;
        positive("transaction_timeout", self.transaction_timeout)?;
        positive("slow_request", self.slow_request)?;
        positive("request_timeout", self.request_timeout)?;
        ratio("error_rate_warning", self.error_rate_warning)?;
        ratio("error_rate_critical", self.error_rate_critical)?;
        ratio("recovery_rate_warning", self.recovery_rate_warning)?;
        ratio("recovery_rate_critical", self.recovery_rate_critical)?;
        ratio("pool_utilization_warning", self.pool_utilization_warning)?;
        ratio("pool_utilization_critical", self.pool_utilization_critical)?;
        ordered("error_rate_warning", self.error_rate_warning, "error_rate_critical", self.error_rate_critical)?;
        ordered(
            "recovery_rate_warning",
            self.recovery_rate_warning,
            "recovery_rate_critical",
            self.recovery_rate_critical,
        )?;
        ordered(
            "pool_utilization_warning",
            self.pool_utilization_warning,
            "pool_utilization_critical",
            self.pool_utilization_critical,
        )?;
        ordered(
            "slow_request",
            self.slow_request.as_secs_f64(),
            "request_timeout",
            self.request_timeout.as_secs_f64(),
        )?;
        ratio("memory_warning", self.memory_warning)?;
        ratio("memory_critical", self.memory_critical)?;
        ratio("cpu_warning", self.cpu_warning)?;
        ratio("cpu_critical", self.cpu_critical)?;
        ordered("memory_warning", self.memory_warning, "memory_critical", self.memory_critical)?;
        ordered("cpu_warning", self.cpu_warning, "cpu_critical", self.cpu_critical)?;
        positive("n_plus_one_min_total", self.n_plus_one_min_total)?;
        for (field, value) in [
            ("request_queue_warning", self.request_queue_warning),
            ("request_queue_critical", self.request_queue_critical),
            ("n_plus_one_min_count", u64::from(self.n_plus_one_min_count)),
            ("session_table_bytes", self.session_table_bytes),
            ("expired_sessions", self.expired_sessions),
            ("session_writes_per_minute", self.session_writes_per_minute),
        ] {
            if value == 0 {
                return Err(ConfigError::OutOfRange { field, value: "0".into(), expected: "at least 1" });
            }
        }
        ordered(
            "request_queue_warning",
            self.request_queue_warning as f64,
            "request_queue_critical",
            self.request_queue_critical as f64,
        )?;
        if self.max_active_sessions == 0 {
            return Err(ConfigError::OutOfRange {
                field: "max_active_sessions",
                value: "0".into(),
                expected: "at least 1",
            });
        }
        if !(self.latency_degradation_ratio.is_finite() && self.latency_degradation_ratio > 1.0) {
            return Err(ConfigError::OutOfRange {
                field: "latency_degradation_ratio",
                value: self.latency_degradation_ratio.to_string(),
                expected: "a number above 1",
            });
        }
        Ok(())
    }
}

/// Capacities and intervals of a monitor: everything that bounds its memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// A name for what is watched (the pool name in metric labels), e.g. `main`.
    pub name: String,
    /// Recent notable queries kept (slow or failed), default 1000.
    pub query_ring: usize,
    /// Recent errors kept, default 1000.
    pub error_ring: usize,
    /// Resolved alerts kept, default 500.
    pub alert_history: usize,
    /// Recent pool samples kept, default 288.
    pub pool_samples: usize,
    /// Fingerprints with their own statistics; the rest share "other". Default 500.
    pub top_queries: usize,
    /// Raw SQL texts whose fingerprint is cached, default 4096.
    pub fingerprint_cache: usize,
    /// Routes with their own request statistics, default 200.
    pub top_routes: usize,
    /// Recovery operations with their own statistics, default 100.
    pub top_operations: usize,
    /// Distinct error patterns (class and fingerprint) kept, default 200.
    pub error_patterns: usize,
    /// Checkouts tracked at once for leak detection, default 10 000; more are
    /// counted but not individually tracked.
    pub tracked_checkouts: usize,
    /// How often rates are sampled for the rolling windows, default 10 s.
    #[serde(with = "duration_secs")]
    pub rate_resolution: Duration,
    /// Spacing of the in-memory trend history, default 5 minutes.
    #[serde(with = "duration_secs")]
    pub trend_interval: Duration,
    /// Trend points kept, default 288 (24 h at 5 minutes).
    pub trend_points: usize,
    /// Recent N+1 findings kept, default 200.
    pub n_plus_one_ring: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            name: "default".into(),
            query_ring: 1000,
            error_ring: 1000,
            alert_history: 500,
            pool_samples: 288,
            top_queries: 500,
            fingerprint_cache: 4096,
            top_routes: 200,
            top_operations: 100,
            error_patterns: 200,
            tracked_checkouts: 10_000,
            rate_resolution: Duration::from_secs(10),
            trend_interval: Duration::from_secs(300),
            trend_points: 288,
            n_plus_one_ring: 200,
        }
    }
}

impl MonitorConfig {
    /// A default configuration with the given name.
    pub fn named(name: impl Into<String>) -> Self {
        MonitorConfig { name: name.into(), ..MonitorConfig::default() }
    }

    /// Checks every value; the error names the first field that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty()
            || self.name.len() > 64
            || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(ConfigError::OutOfRange {
                field: "name",
                value: self.name.clone(),
                expected: "1 to 64 characters from A-Z a-z 0-9 _ - .",
            });
        }
        let capacities = [
            ("query_ring", self.query_ring, 1_000_000),
            ("error_ring", self.error_ring, 1_000_000),
            ("alert_history", self.alert_history, 100_000),
            ("pool_samples", self.pool_samples, 100_000),
            ("top_queries", self.top_queries, 20_000),
            ("fingerprint_cache", self.fingerprint_cache, 1_000_000),
            ("top_routes", self.top_routes, 10_000),
            ("top_operations", self.top_operations, 10_000),
            ("error_patterns", self.error_patterns, 10_000),
            ("tracked_checkouts", self.tracked_checkouts, 1_000_000),
            ("trend_points", self.trend_points, 100_000),
            ("n_plus_one_ring", self.n_plus_one_ring, 100_000),
        ];
        for (field, value, max) in capacities {
            if value == 0 || value > max {
                return Err(ConfigError::OutOfRange {
                    field,
                    value: value.to_string(),
                    expected: "a capacity from 1 to its documented maximum",
                });
            }
        }
        if self.rate_resolution < Duration::from_secs(1) || self.rate_resolution > Duration::from_secs(60) {
            return Err(ConfigError::OutOfRange {
                field: "rate_resolution",
                value: format!("{:?}", self.rate_resolution),
                expected: "1 to 60 seconds",
            });
        }
        positive("trend_interval", self.trend_interval)?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_seeds() {
        let t = Thresholds::default();
        t.validate().unwrap();
        assert_eq!(t.slow_session_creation, Duration::from_secs(1));
        assert_eq!(t.slow_cleanup, Duration::from_millis(500));
        assert_eq!(t.slow_recovery, Duration::from_millis(500));
        assert_eq!((t.error_rate_warning, t.error_rate_critical), (0.01, 0.05));
        assert_eq!((t.recovery_rate_warning, t.recovery_rate_critical), (0.05, 0.10));
        assert_eq!(t.pool_utilization_warning, 0.8);
        assert_eq!(t.max_active_sessions, 50);
        assert_eq!(t.slow_query, Duration::from_secs(2));
        MonitorConfig::default().validate().unwrap();
    }

    #[test]
    fn bad_thresholds_are_refused_by_name() {
        type Mutation = fn(&mut Thresholds);
        let cases: Vec<(Mutation, &str)> = vec![
            (|t| t.error_rate_warning = -0.1, "error_rate_warning"),
            (|t| t.pool_utilization_warning = 1.5, "pool_utilization_warning"),
            (|t| t.error_rate_critical = f64::NAN, "error_rate_critical"),
            (|t| t.slow_query = Duration::ZERO, "slow_query"),
            (|t| t.error_rate_warning = 0.5, "error_rate_warning (0.5) is above error_rate_critical"),
            (|t| t.max_active_sessions = 0, "max_active_sessions"),
            (|t| t.latency_degradation_ratio = 0.5, "latency_degradation_ratio"),
        ];
        for (mutate, needle) in cases {
            let mut t = Thresholds::default();
            mutate(&mut t);
            let err = t.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should name {needle:?}");
        }
    }

    #[test]
    fn thresholds_read_seconds_and_refuse_negative_durations_and_unknown_fields() {
        let t: Thresholds = serde_json::from_str(r#"{"slow_query": 0.25}"#).unwrap();
        assert_eq!(t.slow_query, Duration::from_millis(250));
        assert!(serde_json::from_str::<Thresholds>(r#"{"slow_query": -1}"#).is_err());
        let err = serde_json::from_str::<Thresholds>(r#"{"slow_qurey": 1}"#).unwrap_err();
        assert!(err.to_string().contains("slow_qurey"), "{err}");
    }

    #[test]
    fn bad_monitor_config_is_refused_by_name() {
        let config = MonitorConfig { top_queries: 0, ..MonitorConfig::default() };
        assert!(config.validate().unwrap_err().to_string().contains("top_queries"));
        let config = MonitorConfig::named("bad name!");
        assert!(config.validate().unwrap_err().to_string().contains("name"));
    }
}
