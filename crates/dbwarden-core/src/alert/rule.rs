//! Alert rules: what a rule watches, its severity levels and timers, and the
//! checks a rule set must pass before the engine takes it.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{AlertError, AlertType, Severity};
use crate::signal::Signal;

/// A rule has one level per severity it can reach.
const MAX_LEVELS: usize = 4;

/// One severity step of a rule.
///
/// The level fires when the value is at or above `fire_at`, and an alert at
/// this level steps down from it only when the value falls below
/// `clear_below`. The gap between the two is the hysteresis band that keeps
/// a value hovering at the threshold from flapping.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Level {
    /// The severity an alert has at this level.
    pub severity: Severity,
    /// The value at or above which this level fires.
    pub fire_at: f64,
    /// The value below which an alert leaves this level; at most `fire_at`.
    pub clear_below: f64,
}

/// A condition on one [`Signal`], with the levels and timers that turn it
/// into alerts (see the [module docs](super) for the lifecycle).
///
/// Durations serialize as a number of seconds.
///
/// Constraints, checked by [`AlertRule::validate`]:
/// - `name` is one or more of `a-z`, `0-9`, `_`, and unique in a rule set;
/// - `summary` is not blank;
/// - 1 to 4 `levels`, with strictly ascending `fire_at` and strictly
///   ascending severities;
/// - each `fire_at` and `clear_below` is a finite number above zero (a zero
///   threshold would fire forever or never clear), and `clear_below <=
///   fire_at`;
/// - `clear_below` never decreases from one level to the next, so a value
///   below the lowest level's `clear_below` is below every level's, and the
///   alert has stepped all the way down when it starts clearing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    /// Unique name, e.g. `high_error_rate`; `[a-z0-9_]+`.
    pub name: String,
    /// What kind of problem the rule detects.
    pub alert_type: AlertType,
    /// The value the rule looks at.
    pub signal: Signal,
    /// The severity levels, lowest first.
    pub levels: Vec<Level>,
    /// How long the value must stay at or above the lowest `fire_at` before
    /// the alert fires; zero fires at once.
    #[serde(with = "secs")]
    pub for_duration: Duration,
    /// How long a firing alert stays firing once the value is below the
    /// lowest `clear_below`, against flapping (Prometheus `keep_firing_for`).
    #[serde(with = "secs")]
    pub keep_firing_for: Duration,
    /// How often a firing, unacknowledged alert is notified again; zero
    /// never repeats.
    #[serde(with = "secs")]
    pub repeat_interval: Duration,
    /// Within this time after an automatic resolve, the rule's next alert
    /// reopens the resolved one instead of starting a new one.
    #[serde(with = "secs")]
    pub cooldown: Duration,
    /// Human text, e.g. `Error rate is high`.
    pub summary: String,
}

impl AlertRule {
    /// Checks the constraints listed on [`AlertRule`].
    ///
    /// # Errors
    /// [`AlertError::InvalidRule`] naming the rule and the first offending
    /// field.
    pub fn validate(&self) -> Result<(), AlertError> {
        let invalid =
            |field: String, problem: String| Err(AlertError::InvalidRule { rule: self.name.clone(), field, problem });
        if self.name.is_empty() || !self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return invalid("name".into(), "must be one or more of a-z, 0-9 and _".into());
        }
        if self.summary.trim().is_empty() {
            return invalid("summary".into(), "must not be empty".into());
        }
        if self.levels.is_empty() || self.levels.len() > MAX_LEVELS {
            return invalid(
                "levels".into(),
                format!("must have 1 to {MAX_LEVELS} entries, found {}", self.levels.len()),
            );
        }
        for (i, level) in self.levels.iter().enumerate() {
            for (name, value) in [("fire_at", level.fire_at), ("clear_below", level.clear_below)] {
                if !value.is_finite() || value <= 0.0 {
                    return invalid(
                        format!("levels[{i}].{name}"),
                        format!("must be a finite number above 0, found {value}"),
                    );
                }
            }
            if level.clear_below > level.fire_at {
                return invalid(
                    format!("levels[{i}].clear_below"),
                    format!("({}) is above fire_at ({})", level.clear_below, level.fire_at),
                );
            }
            let Some(prev) = i.checked_sub(1).and_then(|p| self.levels.get(p)) else {
                continue;
            };
            if level.severity <= prev.severity {
                return invalid(
                    format!("levels[{i}].severity"),
                    format!("({}) must be above levels[{}].severity ({})", level.severity, i - 1, prev.severity),
                );
            }
            if level.fire_at <= prev.fire_at {
                return invalid(
                    format!("levels[{i}].fire_at"),
                    format!("({}) must be above levels[{}].fire_at ({})", level.fire_at, i - 1, prev.fire_at),
                );
            }
            if level.clear_below < prev.clear_below {
                return invalid(
                    format!("levels[{i}].clear_below"),
                    format!("({}) is below levels[{}].clear_below ({})", level.clear_below, i - 1, prev.clear_below),
                );
            }
        }
        Ok(())
    }

    /// The index of the highest level whose `fire_at <= value`.
    pub(super) fn fire_level(&self, value: f64) -> Option<usize> {
        self.levels.iter().rposition(|level| value >= level.fire_at)
    }

    /// The alert message: summary, signal, value and threshold in the
    /// signal's unit.
    pub(super) fn message(&self, value: f64, threshold: f64) -> String {
        format!(
            "{}: {} is {} (threshold {})",
            self.summary,
            self.signal,
            format_value(&self.signal, value),
            format_value(&self.signal, threshold)
        )
    }
}

/// Ratios of a whole as percentages, counts as whole numbers, other ratios
/// (latency against its baseline) as a multiplier.
fn format_value(signal: &Signal, value: f64) -> String {
    if signal.is_ratio() {
        format!("{:.1}%", value * 100.0)
    } else if signal.unit() == "count" {
        format!("{value:.0}")
    } else {
        format!("{value:.2}x")
    }
}

/// Validates every rule and the uniqueness of their names.
pub(super) fn validate_set(rules: &[AlertRule]) -> Result<(), AlertError> {
    let mut names = HashSet::with_capacity(rules.len());
    for rule in rules {
        rule.validate()?;
        if !names.insert(rule.name.as_str()) {
            return Err(AlertError::DuplicateRule(rule.name.clone()));
        }
    }
    Ok(())
}

/// `Duration` as a number of seconds: whole seconds as an integer, others as
/// a float.
mod secs {
    use std::time::Duration;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        if d.subsec_nanos() == 0 { s.serialize_u64(d.as_secs()) } else { s.serialize_f64(d.as_secs_f64()) }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs)
            .map_err(|_| D::Error::custom(format!("invalid duration {secs}: expected a number of seconds >= 0")))
    }
}
