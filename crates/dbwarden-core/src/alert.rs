//! Alerts: rules with severity levels and hysteresis, evaluated on a schedule
//! into pending, firing and resolved alerts, with acknowledgements, silences
//! and the notifications a notifier sends.
//!
//! The engine is pure: [`AlertEngine::evaluate`] is given the time and a way
//! to read each rule's [`Signal`], and returns the notifications to send. It
//! never reads the system clock, so every behaviour below can be driven on an
//! explicit timeline in tests. The owner (the monitor) keeps it behind a
//! mutex and calls `evaluate` every few seconds.
//!
//! # Lifecycle
//!
//! A rule has at most one active (Pending or Firing) alert at a time. At each
//! evaluation, with `v` the rule's current value and `L0` its lowest level:
//!
//! 1. **No data.** If the value is missing (`value_of` returned `None`, or
//!    NaN), the rule's alert keeps its state: nothing starts, fires,
//!    escalates, steps down, clears or resolves at that evaluation, and
//!    `value`, `severity` and `message` keep their last values. This is
//!    Grafana's NoData "keep last state". The `for_duration` and
//!    `keep_firing_for` timers measure time from when they started, so the
//!    next evaluation *with* data judges them. Notifications that do not
//!    depend on the value still go out (Repeated, and a Fired or Escalated
//!    owed since a silence ended).
//! 2. **Pending.** No active alert and `v >= L0.fire_at`: a new alert starts
//!    Pending, `pending_since = now`. While pending, its severity is the
//!    highest level whose `fire_at <= v` (no hysteresis yet).
//! 3. **Discarded.** Pending and `v < L0.fire_at`: the alert is dropped. It
//!    never fired, so it goes neither to history nor to any notifier; the
//!    next crossing starts a new pending alert with a new id.
//! 4. **Firing.** Pending, `v >= L0.fire_at`, and `now - pending_since >=
//!    for_duration`: the alert fires, `fired_at = now`. The value must have
//!    been at or above `L0.fire_at` at every evaluation with data since
//!    `pending_since` (rule 3 discards it otherwise), so a value oscillating
//!    around `fire_at` never fires while `for_duration` is longer than its
//!    swings. With `for_duration` zero, an alert fires at the evaluation
//!    that creates it.
//! 5. **Severity.** While Firing, if the highest level whose `fire_at <= v`
//!    is above the current level, the alert moves up to it. Otherwise it
//!    steps down, one level at a time, while `v` is below the current level's
//!    `clear_below`; it stays at a level as long as `v >= clear_below` of that
//!    level (hysteresis). `threshold` is the current level's `fire_at`.
//! 6. **Hysteresis band.** Firing and `L0.clear_below <= v < L0.fire_at`: the
//!    alert stays Firing at `L0` with no notification.
//! 7. **Clearing and Resolved.** Firing and `v < L0.clear_below`: a clearing
//!    timer starts (if not already running); the alert stays Firing. A value
//!    back at or above `L0.clear_below` stops and resets the timer. At an
//!    evaluation where `v < L0.clear_below` and the timer has run for at
//!    least `keep_firing_for`, the alert resolves: `state = Resolved`,
//!    `resolved_at = now`, [`Resolution::Auto`], moved to history. With
//!    `keep_firing_for` zero it resolves at the first evaluation below
//!    `clear_below`.
//! 8. **Cooldown.** If the rule's previous alert resolved *automatically*
//!    less than `cooldown` before a new episode starts pending, the new
//!    pending alert reuses that alert's id, and the resolved record stays in
//!    history until the alert fires. When it fires it is a *reopen*:
//!    `reopen_count + 1`, its record leaves history, and no Fired is sent
//!    (receivers already know this alert); Escalated is sent if its severity
//!    is above the one it resolved at. `notifications`, `last_notified_at`
//!    and `reopen_count` carry over; `pending_since` and `fired_at` describe
//!    the current episode; the acknowledgement does not carry over. If it is
//!    discarded while pending, the resolved record stays as it was.
//! 9. **Manual resolve.** [`AlertEngine::resolve`] moves an active alert to
//!    history with [`Resolution::Manual`] at once. It is not a cooldown
//!    resolve: if the condition still holds at the next evaluation, a *new*
//!    alert (new id) starts pending and fires after `for_duration`, so a
//!    manual resolve never hides a live problem for good. (History holds one
//!    record per id, so a pending reopen resolved by hand replaces the
//!    record it would have reopened.)
//! 10. **Rule removed.** [`AlertEngine::set_rules`] resolves the active
//!     alerts of rules that are no longer present ([`Resolution::Auto`]);
//!     alerts of rules that are kept, by name, keep their state.
//!
//! # Notifications
//!
//! After updating an alert's state, the engine decides at most one
//! notification for it; notifications come out in rule order. None is
//! produced while the alert is silenced (see below), and each one produced
//! adds 1 to `notifications` and sets `last_notified_at = now`.
//!
//! - **Fired**: the alert is Firing and receivers have never been told about
//!   it (first firing, or the first unsilenced evaluation after firing
//!   silenced).
//! - **Escalated**: the alert is Firing at a higher severity than receivers
//!   were last told. A step-down lowers what receivers are taken to know
//!   (it sends nothing), so climbing back up sends Escalated again.
//!   Escalated is sent even when the alert is acknowledged: it is news.
//! - **Repeated**: the alert is Firing, receivers were told, it is not
//!   acknowledged, `repeat_interval` is not zero, and `now -
//!   last_notified_at >= repeat_interval`. A zero `repeat_interval` means
//!   never repeat.
//! - **Resolved**: a Firing alert that receivers were told about resolves
//!   while not silenced; an alert never announced (silenced throughout, or
//!   still pending) resolves quietly. This covers manual resolves and rules
//!   removed by `set_rules` too: those Resolved notifications are held and
//!   returned by the next `evaluate`, ahead of that evaluation's own.
//!
//! # Silences
//!
//! A [`Silence`] mutes the alerts its [`Matcher`] matches from its creation
//! until `ends_at`. Muted alerts still change state and still appear in
//! [`AlertEngine::active`], with `silenced_by` naming the silence (the
//! matching silence that ends last), but produce no notifications. When the
//! silence ends (`ends_at <= now`, or [`AlertEngine::expire_silence`]), the
//! next evaluation sends what receivers are owed: Fired for a Firing alert
//! never announced, Escalated for one that climbed while muted. Expired
//! silences are dropped at the next evaluation.
//!
//! # Acknowledgement
//!
//! [`AlertEngine::acknowledge`] marks a Pending or Firing alert as being
//! handled, which stops Repeated notifications. The acknowledgement ends with
//! the alert: the resolved record in history keeps it, but a reopened or new
//! alert starts unacknowledged.
//!
//! # Time
//!
//! Every time comes from the `now` arguments. A clock stepping backwards
//! never yields a negative elapsed time ([`Timestamp::since`] saturates).
//! `set_rules` takes no time, so alerts it resolves are stamped with the
//! latest time the engine has been given.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::signal::Signal;

mod engine;
mod rule;
#[cfg(test)]
mod tests;

pub use engine::AlertEngine;
pub use rule::{AlertRule, Level};

/// How urgent an alert is; ordered from [`Severity::Low`] to
/// [`Severity::Critical`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    /// Worth a look when convenient.
    Low,
    /// Needs attention soon.
    Medium,
    /// Needs attention now.
    High,
    /// The application is failing or about to.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 4] = [Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

    /// The name used in JSON and messages: `LOW`, `MEDIUM`, `HIGH`, `CRITICAL`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = AlertError;

    /// Parses a severity name in any letter case (`high`, `HIGH`, `High`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|sev| sev.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| AlertError::UnknownSeverity(s.to_owned()))
    }
}

/// What an alert is about; used to group, route and silence alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertType {
    /// Connections cannot be made or keep dropping.
    ConnectionFailure,
    /// The pool is (nearly) out of connections.
    PoolExhaustion,
    /// Queries are slow.
    SlowQuery,
    /// Too many operations fail.
    HighErrorRate,
    /// Transactions run past their time limit.
    TransactionTimeout,
    /// The database is breaking deadlocks.
    Deadlock,
    /// Queries got slower than their recent baseline.
    PerformanceDegradation,
    /// Too many sessions need recovery.
    HighRecoveryRate,
    /// More sessions are open than expected.
    ExcessiveActiveSessions,
    /// Connections are checked out and not returned.
    ConnectionLeak,
    /// Session creation, cleanup or recovery takes too long.
    SlowOperation,
    /// HTTP requests are slow or time out.
    SlowRequest,
    /// Too many HTTP requests are in flight at once.
    RequestQueue,
    /// The session table is large: cleanup may not be keeping up.
    SessionTableSize,
    /// Expired sessions accumulate.
    ExpiredSessions,
    /// The session store writes too often: throttling is off or broken.
    SessionWriteRate,
    /// Session cleanup has not run within twice its interval.
    CleanupNotRunning,
    /// The host is short of memory.
    HighMemory,
    /// The host's CPU is saturated.
    HighCpu,
}

impl AlertType {
    /// Every alert type, in declaration order.
    pub const ALL: [AlertType; 19] = [
        AlertType::ConnectionFailure,
        AlertType::PoolExhaustion,
        AlertType::SlowQuery,
        AlertType::HighErrorRate,
        AlertType::TransactionTimeout,
        AlertType::Deadlock,
        AlertType::PerformanceDegradation,
        AlertType::HighRecoveryRate,
        AlertType::ExcessiveActiveSessions,
        AlertType::ConnectionLeak,
        AlertType::SlowOperation,
        AlertType::SlowRequest,
        AlertType::RequestQueue,
        AlertType::SessionTableSize,
        AlertType::ExpiredSessions,
        AlertType::SessionWriteRate,
        AlertType::CleanupNotRunning,
        AlertType::HighMemory,
        AlertType::HighCpu,
    ];

    /// The stable snake_case name, used in JSON, labels and URLs.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertType::ConnectionFailure => "connection_failure",
            AlertType::PoolExhaustion => "pool_exhaustion",
            AlertType::SlowQuery => "slow_query",
            AlertType::HighErrorRate => "high_error_rate",
            AlertType::TransactionTimeout => "transaction_timeout",
            AlertType::Deadlock => "deadlock",
            AlertType::PerformanceDegradation => "performance_degradation",
            AlertType::HighRecoveryRate => "high_recovery_rate",
            AlertType::ExcessiveActiveSessions => "excessive_active_sessions",
            AlertType::ConnectionLeak => "connection_leak",
            AlertType::SlowOperation => "slow_operation",
            AlertType::SlowRequest => "slow_request",
            AlertType::RequestQueue => "request_queue",
            AlertType::SessionTableSize => "session_table_size",
            AlertType::ExpiredSessions => "expired_sessions",
            AlertType::SessionWriteRate => "session_write_rate",
            AlertType::CleanupNotRunning => "cleanup_not_running",
            AlertType::HighMemory => "high_memory",
            AlertType::HighCpu => "high_cpu",
        }
    }
}

impl fmt::Display for AlertType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AlertType {
    type Err = AlertError;

    /// Parses the snake_case name, in any letter case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AlertType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| AlertError::UnknownAlertType(s.to_owned()))
    }
}

/// Identifies an alert for the engine's whole life; ids only increase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AlertId(pub u64);

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for AlertId {
    type Err = AlertError;

    /// Parses the decimal number an [`AlertId`] displays as.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(AlertId).map_err(|_| AlertError::InvalidAlertId(s.to_owned()))
    }
}

/// Identifies a silence for the engine's whole life; ids only increase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SilenceId(pub u64);

impl fmt::Display for SilenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for SilenceId {
    type Err = AlertError;

    /// Parses the decimal number a [`SilenceId`] displays as.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(SilenceId).map_err(|_| AlertError::InvalidSilenceId(s.to_owned()))
    }
}

/// Where an alert is in its lifecycle (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition holds but has not held for the rule's `for_duration` yet.
    Pending,
    /// The condition held long enough; receivers are (or will be) notified.
    Firing,
    /// Over: resolved automatically or by hand, and kept in history.
    Resolved,
}

impl AlertState {
    /// The snake_case name: `pending`, `firing`, `resolved`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Someone's statement that they are handling an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// Who acknowledged it.
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// What they said, if anything.
    pub comment: Option<String>,
}

/// How an alert came to be resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Resolution {
    /// The value cleared (or the rule was removed).
    Auto,
    /// Someone resolved it by hand.
    Manual {
        /// Who resolved it.
        by: String,
    },
}

/// One alert: a rule's condition holding over one episode (or, after a
/// cooldown reopen, several close together).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Unique for the engine's life.
    pub id: AlertId,
    /// The name of the rule that raised it.
    pub rule: String,
    /// The rule's alert type.
    pub alert_type: AlertType,
    /// The current severity (for a resolved alert, the one it ended at).
    pub severity: Severity,
    /// Pending, Firing or Resolved.
    pub state: AlertState,
    /// The signal the rule watches.
    pub signal: Signal,
    /// The value at the latest evaluation that had data.
    pub value: f64,
    /// The `fire_at` of the current severity's level.
    pub threshold: f64,
    /// The rule's summary with the signal, value and threshold, e.g.
    /// `Error rate is high: error rate over 5m is 12.5% (threshold 10.0%)`.
    pub message: String,
    /// When the current episode started pending.
    pub pending_since: Timestamp,
    /// When the current episode started firing.
    pub fired_at: Option<Timestamp>,
    /// When it resolved.
    pub resolved_at: Option<Timestamp>,
    /// When the latest notification about it was produced.
    pub last_notified_at: Option<Timestamp>,
    /// How many notifications about it were produced (all kinds).
    pub notifications: u32,
    /// How many times it reopened within its rule's cooldown.
    pub reopen_count: u32,
    /// Who is handling it; cleared when it resolves and reopens.
    pub acknowledged: Option<Acknowledgement>,
    /// The silence muting it, if any (as of the latest evaluation or silence change).
    pub silenced_by: Option<SilenceId>,
    /// How it was resolved; `None` while active.
    pub resolution: Option<Resolution>,
}

/// Which alerts a [`Silence`] mutes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "match", content = "value", rename_all = "snake_case")]
pub enum Matcher {
    /// Every alert.
    All,
    /// The alerts of the rule with this name.
    Rule(String),
    /// The alerts of this type, whatever the rule.
    Type(AlertType),
}

impl Matcher {
    /// Whether `alert` is one this matcher selects.
    pub fn matches(&self, alert: &Alert) -> bool {
        match self {
            Matcher::All => true,
            Matcher::Rule(name) => alert.rule == *name,
            Matcher::Type(alert_type) => alert.alert_type == *alert_type,
        }
    }
}

/// A period during which matching alerts produce no notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Unique for the engine's life.
    pub id: SilenceId,
    /// The alerts it mutes.
    pub matcher: Matcher,
    /// When it was created.
    pub starts_at: Timestamp,
    /// When it stops muting.
    pub ends_at: Timestamp,
    /// Who created it.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

impl Silence {
    /// Whether it mutes alerts at `now`.
    ///
    /// Only `ends_at` counts: a silence starts when created, and a clock that
    /// stepped back past `starts_at` should not unmute what someone muted.
    pub fn is_active(&self, now: Timestamp) -> bool {
        now < self.ends_at
    }
}

/// Why a [`Notification`] was produced (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// The alert started firing.
    Fired,
    /// The alert moved to a higher severity.
    Escalated,
    /// The alert is still firing and nobody acknowledged it.
    Repeated,
    /// The alert resolved.
    Resolved,
}

impl NotificationKind {
    /// The snake_case name: `fired`, `escalated`, `repeated`, `resolved`.
    pub const fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Fired => "fired",
            NotificationKind::Escalated => "escalated",
            NotificationKind::Repeated => "repeated",
            NotificationKind::Resolved => "resolved",
        }
    }
}

impl fmt::Display for NotificationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something receivers should be told, with the alert as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Why.
    pub kind: NotificationKind,
    /// The alert after the change that produced this notification.
    pub alert: Alert,
}

/// What can go wrong configuring the engine or acting on alerts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AlertError {
    /// A rule breaks one of the constraints on [`AlertRule`].
    #[error("rule `{rule}`: {field} {problem}")]
    InvalidRule {
        /// The rule's name.
        rule: String,
        /// The offending field, e.g. `levels[1].clear_below`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Two rules in one set share a name.
    #[error("rule `{0}` is defined more than once")]
    DuplicateRule(String),
    /// A silence names a rule the engine does not have.
    #[error("no rule named `{0}`")]
    UnknownRule(String),
    /// No active or historical alert has this id.
    #[error("no alert with id {0}")]
    NoSuchAlert(AlertId),
    /// The alert is in history; only active alerts can be acted on.
    #[error("alert {0} is already resolved")]
    AlreadyResolved(AlertId),
    /// The alert already carries an acknowledgement.
    #[error("alert {id} is already acknowledged by {by}")]
    AlreadyAcknowledged {
        /// The alert.
        id: AlertId,
        /// Who acknowledged it first.
        by: String,
    },
    /// No current silence has this id.
    #[error("no silence with id {0}")]
    NoSuchSilence(SilenceId),
    /// The silence has already ended.
    #[error("silence {0} has already expired")]
    SilenceExpired(SilenceId),
    /// A silence must last more than zero and at most 30 days.
    #[error("silence duration {}s is out of range (more than 0, at most 30 days)", .0.as_secs_f64())]
    InvalidSilenceDuration(Duration),
    /// A required text argument (who did it) is empty.
    #[error("{0} must not be empty")]
    EmptyField(&'static str),
    /// Not one of `low`, `medium`, `high`, `critical`.
    #[error("unknown severity `{0}` (expected low, medium, high or critical)")]
    UnknownSeverity(String),
    /// Not one of the [`AlertType`] names.
    #[error("unknown alert type `{0}`")]
    UnknownAlertType(String),
    /// Not a decimal alert id.
    #[error("invalid alert id `{0}` (expected a number)")]
    InvalidAlertId(String),
    /// Not a decimal silence id.
    #[error("invalid silence id `{0}` (expected a number)")]
    InvalidSilenceId(String),
}
