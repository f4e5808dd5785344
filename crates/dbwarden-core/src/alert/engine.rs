//! The alert engine: evaluates rules into alert transitions and
//! notifications, and keeps silences, cooldowns and the bounded history.

use std::cmp::Reverse;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::rule::validate_set;
use super::{
    Acknowledgement, Alert, AlertError, AlertId, AlertRule, AlertState, Matcher, Notification, NotificationKind,
    Resolution, Severity, Silence, SilenceId,
};
use crate::clock::Timestamp;
use crate::signal::Signal;

/// Longer silences are forgotten rather than meant; 30 days is the cap.
const MAX_SILENCE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Evaluates [`AlertRule`]s into [`Alert`]s and [`Notification`]s; see the
/// [module docs](super) for the exact lifecycle.
///
/// It does no I/O and never reads the clock: every time is an argument. It
/// is not synchronised; its owner keeps it behind a mutex.
///
/// ```
/// use std::time::Duration;
/// use dbwarden_core::Timestamp;
/// use dbwarden_core::alert::{AlertEngine, AlertRule, AlertType, Level, NotificationKind, Severity};
/// use dbwarden_core::signal::Signal;
///
/// let rule = AlertRule {
///     name: "pool_exhaustion".into(),
///     alert_type: AlertType::PoolExhaustion,
///     signal: Signal::PoolUtilization,
///     levels: vec![Level { severity: Severity::High, fire_at: 0.9, clear_below: 0.8 }],
///     for_duration: Duration::ZERO,
///     keep_firing_for: Duration::ZERO,
///     repeat_interval: Duration::from_secs(4 * 3600),
///     cooldown: Duration::ZERO,
///     summary: "Pool is nearly exhausted".into(),
/// };
/// let mut engine = AlertEngine::new(vec![rule], 100)?;
/// let sent = engine.evaluate(Timestamp::from_millis(1_000), |_| Some(0.95));
/// assert_eq!(sent[0].kind, NotificationKind::Fired);
/// assert_eq!(sent[0].alert.message, "Pool is nearly exhausted: pool utilization is 95.0% (threshold 90.0%)");
/// # Ok::<(), dbwarden_core::alert::AlertError>(())
/// ```
#[derive(Debug)]
pub struct AlertEngine {
    rules: Vec<AlertRule>,
    ledger: Ledger,
}

/// Everything but the rules, so that evaluation can borrow a rule while
/// updating the rest.
#[derive(Debug)]
struct Ledger {
    /// Active alerts, keyed by rule name: a rule has at most one.
    active: BTreeMap<String, Tracked>,
    /// Recent automatic resolves, by rule name, that a new episode reopens.
    cooled: BTreeMap<String, Cooled>,
    /// Resolved alerts, newest first.
    history: VecDeque<Alert>,
    history_capacity: usize,
    silences: Vec<Silence>,
    /// Resolved notifications from `resolve` and `set_rules`, handed out by
    /// the next `evaluate`. Bounded by the number of rules: each comes from
    /// an active alert, and only `evaluate` creates those.
    outbox: Vec<Notification>,
    next_alert_id: u64,
    next_silence_id: u64,
    /// The latest time the engine was given, for `set_rules`, which takes none.
    latest: Timestamp,
}

/// An active alert and the bookkeeping behind its transitions.
#[derive(Debug, Clone)]
struct Tracked {
    alert: Alert,
    /// Index into the rule's levels of the current severity.
    level: usize,
    /// Since when the value has been below the lowest `clear_below`.
    clearing_since: Option<Timestamp>,
    /// The severity receivers were last told (Fired or Escalated), lowered by
    /// step-downs; `None` while they have never been told.
    told: Option<Severity>,
    /// Whether this pending alert carries the id of a recently resolved
    /// alert, which it reopens if it fires.
    reopening: bool,
}

/// A resolved alert its rule may reopen within the cooldown.
#[derive(Debug, Clone)]
struct Cooled {
    alert: Alert,
    told: Option<Severity>,
}

/// What an evaluation with data did to an active alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Stay,
    Discard,
    Fire,
    Resolve,
}

impl AlertEngine {
    /// An engine with `rules` and no alerts, keeping up to
    /// `history_capacity` resolved alerts (zero keeps none).
    ///
    /// # Errors
    /// The first invalid rule ([`AlertError::InvalidRule`]) or repeated name
    /// ([`AlertError::DuplicateRule`]).
    pub fn new(rules: Vec<AlertRule>, history_capacity: usize) -> Result<Self, AlertError> {
        validate_set(&rules)?;
        Ok(AlertEngine {
            rules,
            ledger: Ledger {
                active: BTreeMap::new(),
                cooled: BTreeMap::new(),
                history: VecDeque::new(),
                history_capacity,
                silences: Vec::new(),
                outbox: Vec::new(),
                next_alert_id: 1,
                next_silence_id: 1,
                latest: Timestamp::default(),
            },
        })
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[AlertRule] {
        &self.rules
    }

    /// Replaces the rules.
    ///
    /// All rules are validated first; on error nothing changes. Active alerts
    /// of rules no longer present resolve ([`Resolution::Auto`], stamped with
    /// the latest time the engine was given) into history, with a Resolved
    /// notification at the next `evaluate` if receivers were told of them.
    /// Alerts of rules kept by name keep their state and id; their severity
    /// maps onto the new rule's level of the same severity (or the nearest
    /// below), and the next evaluation applies the new thresholds.
    ///
    /// # Errors
    /// As [`AlertEngine::new`].
    pub fn set_rules(&mut self, rules: Vec<AlertRule>) -> Result<(), AlertError> {
        validate_set(&rules)?;
        let kept = |name: &str| rules.iter().any(|rule| rule.name == name);
        let removed: Vec<String> = self.ledger.active.keys().filter(|name| !kept(name)).cloned().collect();
        let now = self.ledger.latest;
        for name in removed {
            if let Some(tracked) = self.ledger.active.remove(&name) {
                self.ledger.close(tracked, Resolution::Auto, now, false);
            }
        }
        self.ledger.cooled.retain(|name, _| kept(name));
        for tracked in self.ledger.active.values_mut() {
            if let Some(rule) = rules.iter().find(|rule| rule.name == tracked.alert.rule) {
                tracked.adopt(rule);
            }
        }
        self.rules = rules;
        Ok(())
    }

    /// Evaluates every rule against `value_of(&rule.signal)` at `now` and
    /// returns the notifications to send, in rule order, preceded by any
    /// Resolved notifications held since the previous evaluation.
    ///
    /// `None` (or NaN) means no data: the rule's alert keeps its state and
    /// makes no transition (Grafana's NoData "keep last state"); see the
    /// [module docs](super).
    pub fn evaluate(&mut self, now: Timestamp, mut value_of: impl FnMut(&Signal) -> Option<f64>) -> Vec<Notification> {
        let ledger = &mut self.ledger;
        ledger.observe(now);
        ledger.silences.retain(|silence| silence.is_active(now));
        let rules = &self.rules;
        ledger.cooled.retain(|name, cooled| {
            let cooldown = rules.iter().find(|rule| rule.name == *name).map(|rule| rule.cooldown);
            cooldown.is_some_and(|cooldown| cooled.within(cooldown, now))
        });
        for rule in rules {
            let value = value_of(&rule.signal).filter(|value| !value.is_nan());
            ledger.evaluate_rule(rule, value, now);
        }
        std::mem::take(&mut ledger.outbox)
    }

    /// Marks an active alert as being handled by `by`, which stops its
    /// Repeated notifications until it resolves.
    ///
    /// # Errors
    /// [`AlertError::EmptyField`] for a blank `by`,
    /// [`AlertError::AlreadyAcknowledged`],
    /// [`AlertError::AlreadyResolved`] for an alert in history,
    /// [`AlertError::NoSuchAlert`].
    pub fn acknowledge(
        &mut self,
        id: AlertId,
        by: &str,
        comment: Option<String>,
        now: Timestamp,
    ) -> Result<Alert, AlertError> {
        self.ledger.observe(now);
        if by.trim().is_empty() {
            return Err(AlertError::EmptyField("by"));
        }
        let missing = self.ledger.missing(id);
        let tracked = self.ledger.active.values_mut().find(|tracked| tracked.alert.id == id).ok_or(missing)?;
        if let Some(ack) = &tracked.alert.acknowledged {
            return Err(AlertError::AlreadyAcknowledged { id, by: ack.by.clone() });
        }
        tracked.alert.acknowledged = Some(Acknowledgement {
            by: by.to_owned(),
            at: now,
            comment: comment.filter(|comment| !comment.trim().is_empty()),
        });
        Ok(tracked.alert.clone())
    }

    /// Resolves an active alert by hand: it moves to history with
    /// [`Resolution::Manual`], and a Resolved notification is held for the
    /// next `evaluate` if receivers were told of it. This is not a cooldown
    /// resolve: if the condition still holds, the next evaluation starts a
    /// new alert with a new id.
    ///
    /// # Errors
    /// [`AlertError::EmptyField`] for a blank `by`,
    /// [`AlertError::AlreadyResolved`], [`AlertError::NoSuchAlert`].
    pub fn resolve(&mut self, id: AlertId, by: &str, now: Timestamp) -> Result<Alert, AlertError> {
        self.ledger.observe(now);
        if by.trim().is_empty() {
            return Err(AlertError::EmptyField("by"));
        }
        let name = self.ledger.active.iter().find(|(_, tracked)| tracked.alert.id == id).map(|(name, _)| name.clone());
        let tracked = name.and_then(|name| self.ledger.active.remove(&name)).ok_or_else(|| self.ledger.missing(id))?;
        Ok(self.ledger.close(tracked, Resolution::Manual { by: by.to_owned() }, now, false))
    }

    /// Mutes the alerts `matcher` selects for `duration` from `now`.
    ///
    /// # Errors
    /// [`AlertError::InvalidSilenceDuration`] unless `0 < duration <= 30
    /// days`, [`AlertError::EmptyField`] for a blank `created_by`,
    /// [`AlertError::UnknownRule`] for a [`Matcher::Rule`] naming no rule
    /// (a typo would otherwise mute nothing, silently).
    pub fn silence(
        &mut self,
        matcher: Matcher,
        duration: Duration,
        created_by: &str,
        comment: &str,
        now: Timestamp,
    ) -> Result<Silence, AlertError> {
        self.ledger.observe(now);
        if duration.is_zero() || duration > MAX_SILENCE {
            return Err(AlertError::InvalidSilenceDuration(duration));
        }
        if created_by.trim().is_empty() {
            return Err(AlertError::EmptyField("created_by"));
        }
        if let Matcher::Rule(name) = &matcher
            && !self.rules.iter().any(|rule| rule.name == *name)
        {
            return Err(AlertError::UnknownRule(name.clone()));
        }
        let silence = Silence {
            id: SilenceId(self.ledger.next_silence_id),
            matcher,
            starts_at: now,
            ends_at: now.saturating_add(duration),
            created_by: created_by.to_owned(),
            comment: comment.to_owned(),
        };
        self.ledger.next_silence_id += 1;
        self.ledger.silences.push(silence.clone());
        self.ledger.refresh_silenced(now);
        Ok(silence)
    }

    /// Ends a silence now; what its alerts are owed goes out at the next
    /// `evaluate`.
    ///
    /// # Errors
    /// [`AlertError::SilenceExpired`] for one that already ended,
    /// [`AlertError::NoSuchSilence`] for an unknown id (or one dropped after
    /// it ended).
    pub fn expire_silence(&mut self, id: SilenceId, now: Timestamp) -> Result<Silence, AlertError> {
        self.ledger.observe(now);
        let silences = &mut self.ledger.silences;
        let index = silences.iter().position(|silence| silence.id == id).ok_or(AlertError::NoSuchSilence(id))?;
        if !silences[index].is_active(now) {
            return Err(AlertError::SilenceExpired(id));
        }
        let mut silence = silences.remove(index);
        silence.ends_at = now;
        self.ledger.refresh_silenced(now);
        Ok(silence)
    }

    /// The silences muting alerts at `now`, oldest first.
    pub fn silences(&self, now: Timestamp) -> Vec<Silence> {
        self.ledger.silences.iter().filter(|silence| silence.is_active(now)).cloned().collect()
    }

    /// Pending and Firing alerts, most severe first, then oldest first.
    pub fn active(&self) -> Vec<Alert> {
        let mut alerts: Vec<Alert> = self.ledger.active.values().map(|tracked| tracked.alert.clone()).collect();
        alerts.sort_by_key(|alert| (Reverse(alert.severity), alert.pending_since, alert.id));
        alerts
    }

    /// The alert with `id`, active or in history (the active one if both:
    /// an alert pending reopen shares its id with its resolved record).
    pub fn get(&self, id: AlertId) -> Option<Alert> {
        self.ledger.find_active(id).or_else(|| self.ledger.find_resolved(id)).cloned()
    }

    /// Resolved alerts, newest first; at most `history_capacity` of them.
    pub fn history(&self) -> Vec<Alert> {
        self.ledger.history.iter().cloned().collect()
    }

    /// Forgets every resolved alert. Cooldowns still apply: a rule that
    /// resolved recently still reopens its alert.
    pub fn clear_history(&mut self) {
        self.ledger.history.clear();
    }
}

impl Ledger {
    fn observe(&mut self, now: Timestamp) {
        self.latest = self.latest.max(now);
    }

    fn find_active(&self, id: AlertId) -> Option<&Alert> {
        self.active.values().map(|tracked| &tracked.alert).find(|alert| alert.id == id)
    }

    fn find_resolved(&self, id: AlertId) -> Option<&Alert> {
        self.history.iter().find(|alert| alert.id == id)
    }

    /// The error for an id that is not active.
    fn missing(&self, id: AlertId) -> AlertError {
        match self.find_resolved(id) {
            Some(_) => AlertError::AlreadyResolved(id),
            None => AlertError::NoSuchAlert(id),
        }
    }

    fn refresh_silenced(&mut self, now: Timestamp) {
        for tracked in self.active.values_mut() {
            tracked.alert.silenced_by = silence_for(&self.silences, &tracked.alert, now);
        }
    }

    fn evaluate_rule(&mut self, rule: &AlertRule, value: Option<f64>, now: Timestamp) {
        let fire = value.and_then(|value| rule.fire_level(value));
        if let (false, Some(value), Some(level)) = (self.active.contains_key(&rule.name), value, fire) {
            let tracked = self.start_pending(rule, level, value, now);
            self.active.insert(rule.name.clone(), tracked);
        }
        let Some(tracked) = self.active.get_mut(&rule.name) else {
            return;
        };
        // Before the transition: a resolve must know whether it is muted.
        tracked.alert.silenced_by = silence_for(&self.silences, &tracked.alert, now);
        let step = match value {
            Some(value) => tracked.advance(rule, value, fire, now),
            None => Step::Stay,
        };
        match step {
            Step::Stay => {}
            Step::Discard => {
                self.active.remove(&rule.name);
                return;
            }
            Step::Resolve => {
                if let Some(tracked) = self.active.remove(&rule.name) {
                    self.close(tracked, Resolution::Auto, now, !rule.cooldown.is_zero());
                }
                return;
            }
            Step::Fire if tracked.reopening => {
                tracked.reopening = false;
                tracked.alert.reopen_count += 1;
                let id = tracked.alert.id;
                self.history.retain(|alert| alert.id != id);
                self.cooled.remove(&rule.name);
            }
            Step::Fire => {}
        }
        if let Some(notification) = tracked.notify(rule, now) {
            self.outbox.push(notification);
        }
    }

    /// A new pending alert at `level`, or the rule's recently resolved alert
    /// back as pending when within its cooldown.
    fn start_pending(&mut self, rule: &AlertRule, level: usize, value: f64, now: Timestamp) -> Tracked {
        let recent = self.cooled.get(&rule.name).filter(|cooled| cooled.within(rule.cooldown, now));
        let (alert, told, reopening) = match recent {
            Some(cooled) => {
                let alert = Alert {
                    state: AlertState::Pending,
                    pending_since: now,
                    fired_at: None,
                    resolved_at: None,
                    resolution: None,
                    acknowledged: None,
                    silenced_by: None,
                    ..cooled.alert.clone()
                };
                (alert, cooled.told, true)
            }
            None => {
                let id = AlertId(self.next_alert_id);
                self.next_alert_id += 1;
                let alert = Alert {
                    id,
                    rule: rule.name.clone(),
                    alert_type: rule.alert_type,
                    // Severity, threshold and message are set by `refresh` below.
                    severity: Severity::Low,
                    state: AlertState::Pending,
                    signal: rule.signal,
                    value,
                    threshold: 0.0,
                    message: String::new(),
                    pending_since: now,
                    fired_at: None,
                    resolved_at: None,
                    last_notified_at: None,
                    notifications: 0,
                    reopen_count: 0,
                    acknowledged: None,
                    silenced_by: None,
                    resolution: None,
                };
                (alert, None, false)
            }
        };
        let mut tracked = Tracked { alert, level, clearing_since: None, told, reopening };
        // A reopened alert takes the rule as it is now, which may have changed.
        tracked.alert.alert_type = rule.alert_type;
        tracked.alert.signal = rule.signal;
        tracked.alert.value = value;
        tracked.refresh(rule);
        tracked
    }

    /// Moves an active alert to history as resolved, holding a Resolved
    /// notification if receivers were told it fired, and remembering it for
    /// the cooldown when `remember`.
    fn close(&mut self, tracked: Tracked, resolution: Resolution, now: Timestamp, remember: bool) -> Alert {
        let Tracked { mut alert, told, .. } = tracked;
        let announced = alert.state == AlertState::Firing && told.is_some();
        alert.state = AlertState::Resolved;
        alert.resolved_at = Some(now);
        alert.resolution = Some(resolution);
        if announced && alert.silenced_by.is_none() {
            alert.notifications += 1;
            alert.last_notified_at = Some(now);
            self.outbox.push(Notification { kind: NotificationKind::Resolved, alert: alert.clone() });
        }
        if remember {
            self.cooled.insert(alert.rule.clone(), Cooled { alert: alert.clone(), told });
        } else {
            // Also forgets an older automatic resolve, which must not be
            // reopened past this one.
            self.cooled.remove(&alert.rule);
        }
        if self.history_capacity > 0 {
            // One record per id: a pending reopen resolved by hand replaces
            // the record it would have reopened.
            self.history.retain(|old| old.id != alert.id);
            self.history.push_front(alert.clone());
            self.history.truncate(self.history_capacity);
        }
        alert
    }
}

impl Tracked {
    /// Applies one value to the alert's state (lifecycle rules 3 to 7).
    fn advance(&mut self, rule: &AlertRule, value: f64, fire: Option<usize>, now: Timestamp) -> Step {
        self.alert.value = value;
        let step = match self.alert.state {
            AlertState::Pending => match fire {
                None => return Step::Discard,
                Some(level) => {
                    self.level = level;
                    if now.since(self.alert.pending_since) >= rule.for_duration {
                        self.alert.state = AlertState::Firing;
                        self.alert.fired_at = Some(now);
                        Step::Fire
                    } else {
                        Step::Stay
                    }
                }
            },
            AlertState::Firing => {
                match fire {
                    Some(level) if level > self.level => self.level = level,
                    _ => {
                        while self.level > 0 && rule.levels.get(self.level).is_some_and(|l| value < l.clear_below) {
                            self.level -= 1;
                        }
                    }
                }
                if rule.levels.first().is_some_and(|lowest| value < lowest.clear_below) {
                    let since = *self.clearing_since.get_or_insert(now);
                    if now.since(since) >= rule.keep_firing_for { Step::Resolve } else { Step::Stay }
                } else {
                    self.clearing_since = None;
                    Step::Stay
                }
            }
            AlertState::Resolved => Step::Stay,
        };
        self.refresh(rule);
        step
    }

    /// Brings severity, threshold and message in line with the current level
    /// and value.
    fn refresh(&mut self, rule: &AlertRule) {
        if let Some(level) = rule.levels.get(self.level) {
            self.alert.severity = level.severity;
            self.alert.threshold = level.fire_at;
        }
        self.alert.message = rule.message(self.alert.value, self.alert.threshold);
        // A step-down is not announced, so receivers are taken to know the
        // lower severity and a climb back up is news again.
        if let Some(told) = self.told {
            self.told = Some(told.min(self.alert.severity));
        }
    }

    /// Takes a (possibly changed) rule of the same name: the level of the
    /// same severity, or the nearest below.
    fn adopt(&mut self, rule: &AlertRule) {
        let severity = self.alert.severity;
        self.level = rule.levels.iter().rposition(|level| level.severity <= severity).unwrap_or(0);
        self.alert.alert_type = rule.alert_type;
        self.alert.signal = rule.signal;
        self.refresh(rule);
    }

    /// The notification this alert is owed at `now`, if any.
    fn notify(&mut self, rule: &AlertRule, now: Timestamp) -> Option<Notification> {
        if self.alert.state != AlertState::Firing || self.alert.silenced_by.is_some() {
            return None;
        }
        let kind = match self.told {
            None => NotificationKind::Fired,
            Some(told) if self.alert.severity > told => NotificationKind::Escalated,
            Some(_) => {
                let due = !rule.repeat_interval.is_zero()
                    && self.alert.acknowledged.is_none()
                    && self.alert.last_notified_at.is_none_or(|at| now.since(at) >= rule.repeat_interval);
                if !due {
                    return None;
                }
                NotificationKind::Repeated
            }
        };
        if kind != NotificationKind::Repeated {
            self.told = Some(self.alert.severity);
        }
        self.alert.notifications += 1;
        self.alert.last_notified_at = Some(now);
        Some(Notification { kind, alert: self.alert.clone() })
    }
}

impl Cooled {
    fn within(&self, cooldown: Duration, now: Timestamp) -> bool {
        self.alert.resolved_at.is_some_and(|at| now.since(at) < cooldown)
    }
}

/// The active silence muting `alert`: of those matching, the one that ends
/// last (it says how long the alert stays muted), lowest id on ties.
fn silence_for(silences: &[Silence], alert: &Alert, now: Timestamp) -> Option<SilenceId> {
    silences
        .iter()
        .filter(|silence| silence.is_active(now) && silence.matcher.matches(alert))
        .max_by_key(|silence| (silence.ends_at, Reverse(silence.id)))
        .map(|silence| silence.id)
}
