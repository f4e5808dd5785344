//! Events the monitor pushes to subscribers as they happen, and the
//! [`EventSink`] trait subscribers implement.
//!
//! Sinks are how the engine reaches the outside world without doing I/O
//! itself: the server forwards events to server-sent-event streams, a
//! notifier forwards alerts to e-mail or a webhook, tests collect them.

use std::fmt;
use std::sync::Mutex;

use serde::Serialize;

use crate::alert::Notification;
use crate::checkouts::CheckoutInfo;
use crate::clock::Timestamp;
use crate::error_class::ErrorClass;
use crate::fingerprint::{FingerprintId, StatementKind};

/// A query worth showing on its own: slow or failed. Carries the normalized
/// text only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryEvent {
    /// When it finished.
    pub at: Timestamp,
    /// Its fingerprint.
    pub fingerprint: FingerprintId,
    /// The normalized statement.
    pub text: String,
    /// The statement kind.
    pub kind: StatementKind,
    /// Its main table.
    pub table: Option<String>,
    /// Execution time in milliseconds.
    pub duration_ms: f64,
    /// Rows returned or affected.
    pub rows: u64,
    /// The error class when it failed.
    pub error: Option<ErrorClass>,
    /// Whether it reached the slow-query threshold.
    pub slow: bool,
}

/// A recorded error, with its message redacted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorEvent {
    /// When it happened.
    pub at: Timestamp,
    /// Its class.
    pub class: ErrorClass,
    /// The message with values redacted (see [`crate::redact`]).
    pub message: String,
    /// The fingerprint of the failing statement, when there was one.
    pub fingerprint: Option<FingerprintId>,
    /// The named operation, when there was one.
    pub operation: Option<String>,
}

/// A request that ran one fingerprint many times: the N+1 pattern (one
/// query for a list, then one per item).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NPlusOneEvent {
    /// When the request finished.
    pub at: Timestamp,
    /// The route template.
    pub route: String,
    /// The HTTP method.
    pub method: String,
    /// The request's id.
    pub request_id: String,
    /// The repeated statement's fingerprint.
    pub fingerprint: FingerprintId,
    /// The normalized statement.
    pub text: String,
    /// Its main table.
    pub table: Option<String>,
    /// How many times it ran in the request.
    pub count: u32,
    /// Their total execution time, ms.
    pub total_ms: f64,
}

/// Something that happened, pushed to every [`EventSink`].
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// An alert fired, escalated, repeated or resolved.
    Alert(Notification),
    /// A checkout has been held past the leak threshold.
    LeakSuspected(CheckoutInfo),
    /// A checkout reported as a leak came back.
    LeakReturned(CheckoutInfo),
    /// A transaction stayed open past the transaction timeout.
    TransactionTimeout(CheckoutInfo),
    /// A query reached the slow-query threshold.
    SlowQuery(QueryEvent),
    /// An error was recorded.
    Error(ErrorEvent),
    /// A request ran one statement many times (an N+1 pattern).
    NPlusOne(NPlusOneEvent),
    /// The periodic tick ran; carries the time, so live views can refresh.
    Tick {
        /// The tick's time.
        at: Timestamp,
    },
}

/// Receives events as they happen.
///
/// # Contract
/// `on_event` is called on the thread that caused the event (a recording
/// thread for slow queries and errors, the ticking thread for alerts and
/// leaks), possibly from several threads at once. It must be quick and must
/// not block: hand the event to a channel or a buffer. It must not call back
/// into the monitor's recording methods for the same event kind (that would
/// recurse). A panicking sink is a bug in the sink.
pub trait EventSink: Send + Sync + fmt::Debug {
    /// Handles one event.
    fn on_event(&self, event: &Event);
}

/// A sink that keeps every event in memory; for tests and examples.
#[derive(Debug, Default)]
pub struct CollectingSink {
    events: Mutex<Vec<Event>>,
}

impl CollectingSink {
    /// An empty sink.
    pub fn new() -> Self {
        CollectingSink::default()
    }

    /// Takes the events collected so far.
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl EventSink for CollectingSink {
    fn on_event(&self, event: &Event) {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).push(event.clone());
    }
}
