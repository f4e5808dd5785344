//! dbwarden's monitoring engine.
//!
//! `dbwarden-core` turns what a web application does with its database —
//! sessions opened and closed, queries run, pool states, checkouts, errors,
//! recoveries, requests, cleanup runs — into metrics, rolling rates, a health
//! verdict, a performance score and alerts. It does no I/O and needs no async
//! runtime: adapters (`dbwarden-sqlx`, `dbwarden-http`, `dbwarden-sessions`)
//! feed it, and the `dbwarden` crate drives its periodic [`Monitor::tick`].
//!
//! # Recording
//!
//! ```
//! use std::time::Duration;
//! use dbwarden_core::{ErrorClass, Monitor, Outcome, PoolSample};
//!
//! let monitor = Monitor::new();
//!
//! // A statement through a prepared handle: no hashing, no lock.
//! let by_id = monitor.prepare("SELECT name FROM users WHERE id = $1");
//! monitor.record_prepared(&by_id, Duration::from_micros(350), 1, Outcome::Success);
//!
//! // Or by text: normalized once per distinct text, then cached.
//! monitor.record_query(
//!     "UPDATE accounts SET balance = balance - 10 WHERE id = 7",
//!     Duration::from_millis(4),
//!     0,
//!     Outcome::Failure { class: ErrorClass::Deadlock, message: "deadlock detected" },
//! );
//!
//! monitor.record_pool_sample(PoolSample { size: 10, idle: 2, in_use: 8, pending: 0, max: 10, min: 0 });
//! monitor.tick();
//!
//! let health = monitor.health();
//! println!("{} — {:?}", health.status, health.issues);
//! ```
//!
//! # Invariants
//!
//! - **No literal value leaves the engine.** Statements are kept and reported
//!   only as [`Fingerprint`]s; error messages are [`redact`]ed.
//! - **Bounded memory.** Every collection has a capacity in
//!   [`MonitorConfig`]; per-fingerprint statistics are a top-K table with an
//!   "other" bucket.
//! - **Time comes from a [`Clock`].** Tests drive a [`ManualClock`].
//! - **The hot path is lock-free.** Recording a query, a checkout or a session
//!   is a handful of relaxed atomic adds on the calling thread's shard.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

pub mod alert;
mod checkouts;
pub mod clock;
pub mod config;
pub mod context;
mod counters;
mod error;
pub mod error_class;
mod events;
mod export;
pub mod fingerprint;
mod health;
pub mod histogram;
mod inputs;
mod keyed;
mod monitor;
mod patterns;
mod queries;
mod rates;
pub mod redact;
mod report;
pub mod ring;
pub mod route;
mod rules;
pub mod shard;
pub mod signal;
mod trend;

pub use alert::{
    Acknowledgement, Alert, AlertEngine, AlertError, AlertId, AlertRule, AlertState, AlertType, Level, Matcher,
    Notification, NotificationKind, Resolution, Severity, Silence, SilenceId,
};
pub use checkouts::{CheckoutId, CheckoutInfo, Holder, SessionKind, TrackedCheckout};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use config::{MonitorConfig, Thresholds};
pub use context::{OperationContext, RequestContext};
pub use error::ConfigError;
pub use error_class::ErrorClass;
pub use events::{CollectingSink, ErrorEvent, Event, EventSink, NPlusOneEvent, QueryEvent};
pub use export::LatencyHistograms;
pub use fingerprint::{Fingerprint, FingerprintCache, FingerprintId, StatementKind};
pub use health::{HealthCheck, HealthReport, HealthStatus, MetricsSummary, PerformanceReport, Recommendation};
pub use histogram::{Histogram, HistogramConfig, HistogramSnapshot, LatencySummary};
pub use inputs::{
    NamedOperationStat, ResourceMetrics, ResourceSample, SessionStoreMetrics, SessionTableSample, SessionWrite,
};
pub use monitor::{
    CleanupRecord, MIN_OPERATIONS_FOR_RATE, MIN_QUERIES_FOR_DEGRADATION, Monitor, MonitorBuilder, Outcome, PoolConfig,
    PoolSample, RequestRecord, ResetScope, TimedPoolSample,
};
pub use patterns::ErrorPattern;
pub use queries::{PreparedQuery, QuerySort, QueryStat};
pub use report::{
    AlertCounts, CleanupMetrics, ErrorMetrics, ErrorReport, MetricsSnapshot, MonitorInfo, OperationStat,
    PerformanceTiming, PoolMetrics, PoolReport, QueryMetrics, RecoveryMetrics, RequestMetrics, RouteStat,
    SessionMetrics, WindowRates,
};
pub use route::RouteHandle;
pub use rules::default_rules;
pub use signal::{Signal, TimedOperation, Window};
pub use trend::TrendPoint;
