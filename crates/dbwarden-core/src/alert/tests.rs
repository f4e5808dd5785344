//! Lifecycle tests on driven timelines: each table row is an evaluation at a
//! time with a value, and the state and notifications expected after it.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::*;
use crate::signal::{TimedOperation, Window};

use AlertState::{Firing, Pending};
use NotificationKind::{Escalated, Fired, Repeated, Resolved};

const RULE: &str = "high_error_rate";

fn t(secs: u64) -> Timestamp {
    Timestamp::from_millis(secs * 1000)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn level(severity: Severity, fire_at: f64, clear_below: f64) -> Level {
    Level { severity, fire_at, clear_below }
}

/// An error-rate rule firing at 10 % and clearing below 5 %, with every
/// timer off; tests switch on what they exercise.
fn rule() -> AlertRule {
    AlertRule {
        name: RULE.into(),
        alert_type: AlertType::HighErrorRate,
        signal: Signal::ErrorRate { window: Window::FiveMinutes },
        levels: vec![level(Severity::Medium, 0.10, 0.05)],
        for_duration: Duration::ZERO,
        keep_firing_for: Duration::ZERO,
        repeat_interval: Duration::ZERO,
        cooldown: Duration::ZERO,
        summary: "Error rate is high".into(),
    }
}

fn three_levels() -> AlertRule {
    AlertRule {
        levels: vec![
            level(Severity::Medium, 0.10, 0.05),
            level(Severity::High, 0.20, 0.15),
            level(Severity::Critical, 0.40, 0.30),
        ],
        ..rule()
    }
}

fn engine(rule: AlertRule) -> AlertEngine {
    AlertEngine::new(vec![rule], 10).unwrap()
}

/// One evaluation: at (seconds), value, the rule's active state after it
/// (`None`: no active alert), the notifications it returned.
type Row = (u64, Option<f64>, Option<AlertState>, &'static [NotificationKind]);

fn run(engine: &mut AlertEngine, rows: &[Row]) -> Vec<Notification> {
    let mut all = Vec::new();
    for &(at, value, state, kinds) in rows {
        let sent = engine.evaluate(t(at), |_| value);
        let got: Vec<NotificationKind> = sent.iter().map(|n| n.kind).collect();
        assert_eq!(got, kinds, "notifications at {at}s (value {value:?})");
        let active = engine.active();
        assert!(active.len() <= 1, "one alert per rule, got {active:?}");
        assert_eq!(active.first().map(|a| a.state), state, "state at {at}s (value {value:?})");
        all.extend(sent);
    }
    all
}

fn only_active(engine: &AlertEngine) -> Alert {
    let active = engine.active();
    assert_eq!(active.len(), 1, "{active:?}");
    active.into_iter().next().unwrap()
}

#[test]
fn pending_fires_after_for_duration_then_resolves() {
    let mut engine = engine(AlertRule { for_duration: secs(30), ..rule() });
    let sent = run(
        &mut engine,
        &[
            (0, Some(0.02), None, &[]),
            (10, Some(0.20), Some(Pending), &[]),
            (20, Some(0.15), Some(Pending), &[]),
            (39, Some(0.20), Some(Pending), &[]),
            (40, Some(0.20), Some(Firing), &[Fired]),
            (50, Some(0.12), Some(Firing), &[]),
            (60, Some(0.01), None, &[Resolved]),
        ],
    );
    let fired = &sent[0].alert;
    assert_eq!((fired.state, fired.pending_since, fired.fired_at), (Firing, t(10), Some(t(40))));
    assert_eq!(fired.notifications, 1);

    let history = engine.history();
    assert_eq!(history.len(), 1);
    let done = &history[0];
    assert_eq!(done.id, fired.id);
    assert_eq!(done.state, AlertState::Resolved);
    assert_eq!((done.fired_at, done.resolved_at), (Some(t(40)), Some(t(60))));
    assert_eq!(done.resolution, Some(Resolution::Auto));
    assert_eq!((done.notifications, done.last_notified_at), (2, Some(t(60))));
    assert_eq!(done.value, 0.01);
    assert_eq!(sent[1].alert, *done);
    assert_eq!(engine.get(done.id), Some(done.clone()));
}

#[test]
fn zero_for_duration_fires_at_the_first_evaluation() {
    let mut engine = engine(rule());
    let sent = run(&mut engine, &[(5, Some(0.10), Some(Firing), &[Fired])]);
    assert_eq!(sent[0].alert.pending_since, t(5));
    assert_eq!(sent[0].alert.fired_at, Some(t(5)));
}

#[test]
fn pending_alert_that_drops_below_fire_at_is_discarded() {
    let mut engine = engine(AlertRule { for_duration: secs(60), ..rule() });
    run(&mut engine, &[(0, Some(0.2), Some(Pending), &[])]);
    let first = only_active(&engine).id;
    // 0.07 is in the hysteresis band, but a pending alert has no band.
    run(&mut engine, &[(30, Some(0.07), None, &[]), (40, Some(0.2), Some(Pending), &[])]);
    let second = only_active(&engine);
    assert!(second.id > first);
    assert_eq!(second.pending_since, t(40));
    assert!(engine.history().is_empty());
    assert_eq!(engine.get(first), None);
    run(&mut engine, &[(99, Some(0.2), Some(Pending), &[]), (100, Some(0.2), Some(Firing), &[Fired])]);
}

#[test]
fn oscillating_around_fire_at_with_for_duration_never_fires() {
    let mut engine = engine(AlertRule { for_duration: secs(30), ..rule() });
    for step in 0..20u64 {
        let (value, state) = if step % 2 == 0 { (0.11, Some(Pending)) } else { (0.09, None) };
        run(&mut engine, &[(step * 10, Some(value), state, &[])]);
    }
    assert!(engine.history().is_empty());
}

#[test]
fn firing_alert_stays_firing_in_the_hysteresis_band() {
    let mut engine = engine(rule());
    run(
        &mut engine,
        &[
            (0, Some(0.20), Some(Firing), &[Fired]),
            (10, Some(0.07), Some(Firing), &[]),
            (20, Some(0.12), Some(Firing), &[]),
            (30, Some(0.05), Some(Firing), &[]),
            (40, Some(0.099), Some(Firing), &[]),
            (50, Some(0.10), Some(Firing), &[]),
            (60, Some(0.049), None, &[Resolved]),
        ],
    );
    assert_eq!(engine.history().len(), 1);
}

#[test]
fn keep_firing_for_delays_the_resolve_and_restarts_when_the_value_returns() {
    let mut engine = engine(AlertRule { keep_firing_for: secs(60), ..rule() });
    run(
        &mut engine,
        &[
            (0, Some(0.20), Some(Firing), &[Fired]),
            (10, Some(0.01), Some(Firing), &[]),
            (50, Some(0.01), Some(Firing), &[]),
            // Back in the band (not above fire_at): enough to reset the timer.
            (60, Some(0.06), Some(Firing), &[]),
            (70, Some(0.01), Some(Firing), &[]),
            (129, Some(0.01), Some(Firing), &[]),
            (130, Some(0.01), None, &[Resolved]),
        ],
    );
    assert_eq!(engine.history()[0].resolved_at, Some(t(130)));
}

#[test]
fn severity_escalates_and_steps_down_with_hysteresis() {
    let mut engine = engine(three_levels());
    use Severity::{Critical, High, Medium};
    // (at, value, severity after, threshold after, notifications)
    type SeverityRow = (u64, f64, Option<Severity>, f64, &'static [NotificationKind]);
    let rows: &[SeverityRow] = &[
        (0, 0.12, Some(Medium), 0.10, &[Fired]),
        (10, 0.25, Some(High), 0.20, &[Escalated]),
        (20, 0.50, Some(Critical), 0.40, &[Escalated]),
        (30, 0.35, Some(Critical), 0.40, &[]), // above Critical's clear_below
        (40, 0.25, Some(High), 0.20, &[]),     // below it: one step down, silently
        (50, 0.45, Some(Critical), 0.40, &[Escalated]), // climbing back is news
        (60, 0.12, Some(Medium), 0.10, &[]),   // two steps down at once
        (70, 0.07, Some(Medium), 0.10, &[]),
        (80, 0.22, Some(High), 0.20, &[Escalated]),
        (90, 0.16, Some(High), 0.20, &[]),
        (100, 0.01, None, 0.0, &[Resolved]),
    ];
    for &(at, value, severity, threshold, kinds) in rows {
        let sent = engine.evaluate(t(at), |_| Some(value));
        let got: Vec<_> = sent.iter().map(|n| n.kind).collect();
        assert_eq!(got, kinds, "at {at}s");
        let active = engine.active();
        assert_eq!(active.first().map(|a| a.severity), severity, "at {at}s");
        if let Some(alert) = active.first() {
            assert_eq!(alert.threshold, threshold, "at {at}s");
        }
        if let Some(n) = sent.first() {
            assert_eq!(n.alert.severity, severity.unwrap_or(Medium), "notified severity at {at}s");
        }
    }
    assert_eq!(engine.history()[0].severity, Medium);
}

#[test]
fn an_alert_can_start_at_its_highest_level() {
    let mut engine = engine(AlertRule { for_duration: secs(10), ..three_levels() });
    run(&mut engine, &[(0, Some(0.5), Some(Pending), &[])]);
    assert_eq!(only_active(&engine).severity, Severity::Critical);
    // While pending, severity follows the value without hysteresis.
    run(&mut engine, &[(5, Some(0.25), Some(Pending), &[])]);
    assert_eq!(only_active(&engine).severity, Severity::High);
    let sent = run(&mut engine, &[(10, Some(0.45), Some(Firing), &[Fired])]);
    assert_eq!(sent[0].alert.severity, Severity::Critical);
}

#[test]
fn repeat_interval_renotifies_a_firing_alert() {
    let mut engine = engine(AlertRule { repeat_interval: secs(60), ..three_levels() });
    run(
        &mut engine,
        &[
            (0, Some(0.12), Some(Firing), &[Fired]),
            (30, Some(0.12), Some(Firing), &[]),
            (60, Some(0.12), Some(Firing), &[Repeated]),
            (90, Some(0.25), Some(Firing), &[Escalated]),
            (149, Some(0.25), Some(Firing), &[]), // the escalation restarted the interval
            (150, Some(0.25), Some(Firing), &[Repeated]),
        ],
    );
    let alert = only_active(&engine);
    assert_eq!((alert.notifications, alert.last_notified_at), (4, Some(t(150))));
}

#[test]
fn zero_repeat_interval_never_repeats() {
    let mut engine = engine(rule());
    run(&mut engine, &[(0, Some(0.2), Some(Firing), &[Fired])]);
    for hour in 1..48 {
        run(&mut engine, &[(hour * 3600, Some(0.2), Some(Firing), &[])]);
    }
}

#[test]
fn acknowledge_stops_repeats_until_the_alert_resolves() {
    let mut engine = engine(AlertRule { repeat_interval: secs(60), ..three_levels() });
    run(&mut engine, &[(0, Some(0.12), Some(Firing), &[Fired])]);
    let id = only_active(&engine).id;
    let acked = engine.acknowledge(id, "alice", Some("looking".into()), t(10)).unwrap();
    let ack = Acknowledgement { by: "alice".into(), at: t(10), comment: Some("looking".into()) };
    assert_eq!(acked.acknowledged, Some(ack.clone()));
    run(
        &mut engine,
        &[
            (60, Some(0.12), Some(Firing), &[]),
            (120, Some(0.12), Some(Firing), &[]),
            // Escalation is news even for an acknowledged alert; the ack stays.
            (130, Some(0.25), Some(Firing), &[Escalated]),
            (190, Some(0.25), Some(Firing), &[]),
            (200, Some(0.01), None, &[Resolved]),
        ],
    );
    assert_eq!(engine.history()[0].acknowledged, Some(ack));
    // A new episode is a new, unacknowledged alert that repeats again.
    let sent =
        run(&mut engine, &[(300, Some(0.12), Some(Firing), &[Fired]), (360, Some(0.12), Some(Firing), &[Repeated])]);
    assert_ne!(sent[0].alert.id, id);
    assert_eq!(sent[0].alert.acknowledged, None);
}

#[test]
fn pending_alerts_can_be_acknowledged_and_blank_comments_are_dropped() {
    let mut engine = engine(AlertRule { for_duration: secs(30), ..rule() });
    run(&mut engine, &[(0, Some(0.2), Some(Pending), &[])]);
    let id = only_active(&engine).id;
    let acked = engine.acknowledge(id, "bob", Some("  ".into()), t(5)).unwrap();
    assert_eq!(acked.acknowledged.unwrap().comment, None);
    // The first notification is not a repeat: an ack does not stop it.
    run(&mut engine, &[(30, Some(0.2), Some(Firing), &[Fired])]);
}

#[test]
fn manual_resolve_never_hides_a_live_problem() {
    // A cooldown too, to show a manual resolve does not reopen.
    let mut engine = engine(AlertRule { for_duration: secs(30), cooldown: secs(3600), ..rule() });
    run(&mut engine, &[(0, Some(0.2), Some(Pending), &[]), (30, Some(0.2), Some(Firing), &[Fired])]);
    let first = only_active(&engine).id;

    let resolved = engine.resolve(first, "alice", t(40)).unwrap();
    assert_eq!(resolved.state, AlertState::Resolved);
    assert_eq!(resolved.resolution, Some(Resolution::Manual { by: "alice".into() }));
    assert_eq!(resolved.resolved_at, Some(t(40)));
    assert!(engine.active().is_empty());
    assert_eq!(engine.history(), vec![resolved.clone()]);

    // The held Resolved comes out first; the condition still holds, so a
    // new alert starts pending and fires after for_duration.
    let sent = run(
        &mut engine,
        &[
            (50, Some(0.2), Some(Pending), &[Resolved]),
            (79, Some(0.2), Some(Pending), &[]),
            (80, Some(0.2), Some(Firing), &[Fired]),
        ],
    );
    assert_eq!(sent[0].alert, resolved);
    assert!(sent[1].alert.id > first);
    assert_eq!(sent[1].alert.reopen_count, 0);
}

#[test]
fn manual_resolve_of_an_unannounced_alert_sends_nothing() {
    let mut engine = engine(AlertRule { for_duration: secs(30), ..rule() });
    run(&mut engine, &[(0, Some(0.2), Some(Pending), &[])]);
    let id = only_active(&engine).id;
    engine.resolve(id, "alice", t(10)).unwrap();
    assert_eq!(engine.history()[0].fired_at, None);
    run(&mut engine, &[(20, Some(0.01), None, &[])]);
}

#[test]
fn silence_mutes_notifications_until_it_expires() {
    let mut engine = engine(AlertRule { repeat_interval: secs(60), ..rule() });
    let silence = engine.silence(Matcher::Rule(RULE.into()), secs(120), "alice", "deploying", t(0)).unwrap();
    assert_eq!((silence.id, silence.starts_at, silence.ends_at), (SilenceId(1), t(0), t(120)));
    run(&mut engine, &[(10, Some(0.2), Some(Firing), &[]), (70, Some(0.2), Some(Firing), &[])]);
    let alert = only_active(&engine);
    assert_eq!((alert.silenced_by, alert.notifications), (Some(silence.id), 0));
    assert_eq!(engine.silences(t(119)), vec![silence]);
    assert!(engine.silences(t(120)).is_empty());

    // Ended: the alert is owed its Fired, then repeats as usual.
    run(&mut engine, &[(130, Some(0.2), Some(Firing), &[Fired]), (190, Some(0.2), Some(Firing), &[Repeated])]);
    assert_eq!(only_active(&engine).silenced_by, None);
    assert_eq!(engine.expire_silence(SilenceId(1), t(200)), Err(AlertError::NoSuchSilence(SilenceId(1))));
}

#[test]
fn an_alert_silenced_throughout_resolves_quietly() {
    let mut engine = engine(rule());
    engine.silence(Matcher::All, secs(600), "alice", "", t(0)).unwrap();
    run(&mut engine, &[(0, Some(0.2), Some(Firing), &[]), (60, Some(0.01), None, &[])]);
    let done = &engine.history()[0];
    assert_eq!((done.notifications, done.last_notified_at), (0, None));
    assert_eq!(done.silenced_by, Some(SilenceId(1)));
}

#[test]
fn a_silence_created_after_firing_mutes_the_resolve() {
    let mut engine = engine(rule());
    run(&mut engine, &[(0, Some(0.2), Some(Firing), &[Fired])]);
    let silence = engine.silence(Matcher::Type(AlertType::HighErrorRate), secs(600), "bob", "", t(5)).unwrap();
    // The silence applies at once, not only from the next evaluation.
    assert_eq!(only_active(&engine).silenced_by, Some(silence.id));
    run(&mut engine, &[(10, Some(0.01), None, &[])]);
}

#[test]
fn escalation_while_silenced_is_sent_when_the_silence_is_expired() {
    let mut engine = engine(three_levels());
    run(&mut engine, &[(0, Some(0.12), Some(Firing), &[Fired])]);
    let silence = engine.silence(Matcher::All, secs(3600), "alice", "", t(5)).unwrap();
    run(&mut engine, &[(10, Some(0.5), Some(Firing), &[])]);
    let expired = engine.expire_silence(silence.id, t(20)).unwrap();
    assert_eq!(expired.ends_at, t(20));
    assert!(engine.silences(t(20)).is_empty());
    assert_eq!(only_active(&engine).silenced_by, None);
    // No data at this evaluation, yet the owed Escalated still goes out.
    let sent = run(&mut engine, &[(30, None, Some(Firing), &[Escalated])]);
    assert_eq!(sent[0].alert.severity, Severity::Critical);
}

#[test]
fn silences_match_by_rule_type_or_all_and_the_latest_ending_wins() {
    let other = AlertRule {
        name: "slow_queries".into(),
        alert_type: AlertType::SlowQuery,
        signal: Signal::SlowQueries { window: Window::FiveMinutes },
        levels: vec![level(Severity::Low, 5.0, 5.0)],
        summary: "Slow queries".into(),
        ..rule()
    };
    let mut engine = AlertEngine::new(vec![rule(), other], 10).unwrap();
    let by_type = engine.silence(Matcher::Type(AlertType::SlowQuery), secs(60), "a", "", t(0)).unwrap();
    let all = engine.silence(Matcher::All, secs(30), "a", "", t(0)).unwrap();
    let sent = engine.evaluate(t(1), |signal| match signal {
        Signal::SlowQueries { .. } => Some(9.0),
        _ => Some(0.5),
    });
    assert!(sent.is_empty());
    let silenced: Vec<_> = engine.active().iter().map(|a| (a.rule.clone(), a.silenced_by)).collect();
    assert_eq!(silenced, vec![(RULE.to_owned(), Some(all.id)), ("slow_queries".to_owned(), Some(by_type.id))]);
    let sent = engine.evaluate(t(30), |signal| match signal {
        Signal::SlowQueries { .. } => Some(9.0),
        _ => Some(0.5),
    });
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].kind, sent[0].alert.rule.as_str()), (Fired, RULE));
}

#[test]
fn cooldown_reopens_the_same_alert_without_a_new_fired() {
    let mut engine = engine(AlertRule { cooldown: secs(300), ..rule() });
    run(&mut engine, &[(0, Some(0.2), Some(Firing), &[Fired]), (10, Some(0.01), None, &[Resolved])]);
    let id = engine.history()[0].id;

    run(&mut engine, &[(60, Some(0.2), Some(Firing), &[])]);
    let reopened = only_active(&engine);
    assert_eq!((reopened.id, reopened.reopen_count), (id, 1));
    assert_eq!((reopened.pending_since, reopened.fired_at), (t(60), Some(t(60))));
    assert_eq!((reopened.resolved_at, reopened.resolution.clone()), (None, None));
    assert_eq!(reopened.notifications, 2); // Fired and Resolved, carried over
    assert!(engine.history().is_empty(), "the record left history when it reopened");

    run(&mut engine, &[(70, Some(0.01), None, &[Resolved])]);
    assert_eq!(engine.history()[0].reopen_count, 1);
    // 300 s after the last resolve (70 s) the cooldown is over: a new alert.
    run(&mut engine, &[(369, Some(0.01), None, &[])]);
    let sent = run(&mut engine, &[(370, Some(0.2), Some(Firing), &[Fired])]);
    assert!(sent[0].alert.id > id);
    assert_eq!(sent[0].alert.reopen_count, 0);
}

#[test]
fn cooldown_reopen_waits_for_for_duration_and_keeps_the_record_while_pending() {
    let mut engine = engine(AlertRule { for_duration: secs(30), cooldown: secs(600), ..three_levels() });
    run(
        &mut engine,
        &[
            (0, Some(0.12), Some(Pending), &[]),
            (30, Some(0.12), Some(Firing), &[Fired]),
            (40, Some(0.01), None, &[Resolved]),
            (50, Some(0.12), Some(Pending), &[]),
        ],
    );
    let id = engine.history()[0].id;
    assert_eq!(only_active(&engine).id, id);
    assert_eq!(engine.history().len(), 1);
    assert_eq!(engine.get(id).unwrap().state, Pending, "get prefers the active alert");

    // Discarded while pending: the resolved record is untouched.
    run(&mut engine, &[(60, Some(0.01), None, &[])]);
    assert_eq!(engine.history()[0].resolved_at, Some(t(40)));
    assert_eq!(engine.history()[0].reopen_count, 0);

    // Reopening above the severity it resolved at is an escalation.
    let sent = run(&mut engine, &[(70, Some(0.25), Some(Pending), &[]), (100, Some(0.25), Some(Firing), &[Escalated])]);
    assert_eq!((sent[0].alert.id, sent[0].alert.reopen_count), (id, 1));
    assert!(engine.history().is_empty());
}

#[test]
fn resolving_a_pending_reopen_by_hand_ends_the_cooldown() {
    let mut engine = engine(AlertRule { for_duration: secs(30), cooldown: secs(600), ..rule() });
    run(
        &mut engine,
        &[
            (0, Some(0.2), Some(Pending), &[]),
            (30, Some(0.2), Some(Firing), &[Fired]),
            (40, Some(0.01), None, &[Resolved]),
            (50, Some(0.2), Some(Pending), &[]),
        ],
    );
    let id = only_active(&engine).id;
    engine.resolve(id, "alice", t(55)).unwrap();
    let history = engine.history();
    assert_eq!(history.len(), 1, "one record per id");
    assert_eq!(history[0].resolution, Some(Resolution::Manual { by: "alice".into() }));
    run(&mut engine, &[(60, Some(0.2), Some(Pending), &[])]);
    assert!(only_active(&engine).id > id);
}

#[test]
fn missing_data_keeps_the_state() {
    let mut engine = engine(AlertRule { for_duration: secs(30), repeat_interval: secs(60), ..rule() });
    run(
        &mut engine,
        &[
            (0, Some(0.2), Some(Pending), &[]),
            (10, None, Some(Pending), &[]),
            (40, None, Some(Pending), &[]), // for_duration is up, but no data: no transition
            (50, Some(f64::NAN), Some(Pending), &[]),
            (60, Some(0.2), Some(Firing), &[Fired]),
            (70, None, Some(Firing), &[]),
            (120, None, Some(Firing), &[Repeated]), // still firing as far as anyone knows
            (130, Some(0.01), None, &[Resolved]),
            (140, None, None, &[]),
        ],
    );
    assert_eq!(engine.history()[0].value, 0.01);

    // No data never starts anything either.
    let mut engine = self::engine(rule());
    run(&mut engine, &[(0, None, None, &[])]);
}

#[test]
fn missing_data_neither_resets_nor_judges_the_clearing_timer() {
    let mut engine = engine(AlertRule { keep_firing_for: secs(60), ..rule() });
    run(
        &mut engine,
        &[
            (0, Some(0.2), Some(Firing), &[Fired]),
            (10, Some(0.01), Some(Firing), &[]),
            (80, None, Some(Firing), &[]),
            (90, Some(0.01), None, &[Resolved]),
        ],
    );
}

#[test]
fn invalid_rule_sets_change_nothing() {
    let mut engine = engine(rule());
    run(&mut engine, &[(0, Some(0.2), Some(Firing), &[Fired])]);
    let before = (engine.rules().to_vec(), engine.active());

    let bad = AlertRule { levels: vec![level(Severity::High, 0.5, 0.9)], ..rule() };
    let err = engine.set_rules(vec![bad]).unwrap_err();
    assert_eq!(err.to_string(), "rule `high_error_rate`: levels[0].clear_below (0.9) is above fire_at (0.5)");
    let err = engine
        .set_rules(vec![AlertRule { name: "x".into(), ..rule() }, AlertRule { name: "x".into(), ..rule() }])
        .unwrap_err();
    assert_eq!(err.to_string(), "rule `x` is defined more than once");
    assert_eq!((engine.rules().to_vec(), engine.active()), before);
    run(&mut engine, &[(10, Some(0.2), Some(Firing), &[])]);
}

#[test]
fn set_rules_resolves_alerts_of_removed_rules_and_keeps_the_others() {
    let other = AlertRule {
        name: "pool_exhaustion".into(),
        alert_type: AlertType::PoolExhaustion,
        signal: Signal::PoolUtilization,
        levels: vec![level(Severity::High, 0.9, 0.8), level(Severity::Critical, 0.95, 0.9)],
        summary: "Pool is nearly exhausted".into(),
        ..rule()
    };
    let mut engine = AlertEngine::new(vec![rule(), other.clone()], 10).unwrap();
    let sent = engine.evaluate(t(0), |signal| match signal {
        Signal::PoolUtilization => Some(0.97),
        _ => Some(0.2),
    });
    assert_eq!(sent.len(), 2);
    let error_alert = engine.active().into_iter().find(|a| a.rule == RULE).unwrap();
    let pool_alert = engine.active().into_iter().find(|a| a.rule == "pool_exhaustion").unwrap();
    engine.acknowledge(pool_alert.id, "alice", None, t(20)).unwrap();

    // Keep the pool rule with only a High level: its Critical alert maps
    // onto High and keeps its id and acknowledgement.
    let narrowed = AlertRule { levels: vec![level(Severity::High, 0.9, 0.8)], ..other };
    engine.set_rules(vec![narrowed.clone()]).unwrap();
    assert_eq!(engine.rules(), [narrowed]);
    let history = engine.history();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, error_alert.id);
    assert_eq!(history[0].resolution, Some(Resolution::Auto));
    assert_eq!(history[0].resolved_at, Some(t(20)), "the latest time the engine was given");
    let kept = only_active(&engine);
    assert_eq!((kept.id, kept.state, kept.severity), (pool_alert.id, Firing, Severity::High));
    assert!(kept.acknowledged.is_some());

    let sent = engine.evaluate(t(30), |_| Some(0.97));
    let kinds: Vec<_> = sent.iter().map(|n| (n.kind, n.alert.id)).collect();
    assert_eq!(kinds, vec![(Resolved, error_alert.id)]);
}

#[test]
fn history_is_a_bounded_ring_newest_first() {
    let mut engine = AlertEngine::new(vec![rule()], 3).unwrap();
    let mut ids = Vec::new();
    for episode in 0..5u64 {
        let start = episode * 100;
        let sent =
            run(&mut engine, &[(start, Some(0.2), Some(Firing), &[Fired]), (start + 10, Some(0.0), None, &[Resolved])]);
        ids.push(sent[0].alert.id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    let kept: Vec<_> = engine.history().iter().map(|a| a.id).collect();
    assert_eq!(kept, vec![ids[4], ids[3], ids[2]]);
    assert_eq!(engine.get(ids[0]), None);
    engine.clear_history();
    assert!(engine.history().is_empty());

    let mut engine = AlertEngine::new(vec![rule()], 0).unwrap();
    run(&mut engine, &[(0, Some(0.2), Some(Firing), &[Fired]), (10, Some(0.0), None, &[Resolved])]);
    assert!(engine.history().is_empty());
}

#[test]
fn active_lists_most_severe_first_then_oldest() {
    let mk = |name: &str, signal: Signal, severity: Severity| AlertRule {
        name: name.into(),
        signal,
        levels: vec![level(severity, 1.0, 1.0)],
        ..rule()
    };
    let rules = vec![
        mk("a_low", Signal::ActiveSessions, Severity::Low),
        mk("b_high_late", Signal::PendingRequests, Severity::High),
        mk("c_high_early", Signal::SuspectedLeaks, Severity::High),
    ];
    let mut engine = AlertEngine::new(rules, 10).unwrap();
    engine.evaluate(t(0), |s| (*s == Signal::SuspectedLeaks).then_some(2.0));
    engine.evaluate(t(10), |_| Some(2.0));
    let order: Vec<_> = engine.active().iter().map(|a| a.rule.clone()).collect();
    assert_eq!(order, ["c_high_early", "b_high_late", "a_low"]);
}

#[test]
fn messages_show_ratios_as_percentages_and_counts_as_integers() {
    let cases = [
        (rule(), 0.1234, "Error rate is high: error rate over 5m is 12.3% (threshold 10.0%)"),
        (
            AlertRule {
                signal: Signal::SlowOperations { operation: TimedOperation::Cleanup, window: Window::OneHour },
                levels: vec![level(Severity::Low, 3.0, 2.0)],
                summary: "Cleanup is slow".into(),
                ..rule()
            },
            7.0,
            "Cleanup is slow: slow cleanup operations over 1h is 7 (threshold 3)",
        ),
        (
            AlertRule {
                signal: Signal::LatencyDegradation,
                levels: vec![level(Severity::Medium, 1.5, 1.2)],
                summary: "Queries got slower".into(),
                ..rule()
            },
            2.4,
            "Queries got slower: p95 query latency against its 1 h baseline is 2.40x (threshold 1.50x)",
        ),
    ];
    for (rule, value, expected) in cases {
        let mut engine = engine(rule);
        let sent = engine.evaluate(t(0), |_| Some(value));
        assert_eq!(sent[0].alert.message, expected);
    }
}

#[test]
fn a_clock_stepping_back_never_fires_early() {
    let mut engine = engine(AlertRule { for_duration: secs(30), ..rule() });
    run(
        &mut engine,
        &[
            (100, Some(0.2), Some(Pending), &[]),
            (50, Some(0.2), Some(Pending), &[]),
            (130, Some(0.2), Some(Firing), &[Fired]),
        ],
    );
}

#[test]
fn action_errors_name_what_is_wrong() {
    let mut engine = engine(rule());
    run(&mut engine, &[(0, Some(0.2), Some(Firing), &[Fired])]);
    let id = only_active(&engine).id;
    engine.acknowledge(id, "alice", None, t(1)).unwrap();
    run(&mut engine, &[(2, Some(0.0), None, &[Resolved])]);
    let expired = engine.silence(Matcher::All, secs(9), "alice", "", t(2)).unwrap();

    let cases: Vec<(AlertError, &str)> = vec![
        (engine.acknowledge(AlertId(42), "bob", None, t(3)).unwrap_err(), "no alert with id 42"),
        (engine.acknowledge(id, "bob", None, t(3)).unwrap_err(), "alert 1 is already resolved"),
        (engine.acknowledge(id, " ", None, t(3)).unwrap_err(), "by must not be empty"),
        (engine.resolve(AlertId(42), "bob", t(3)).unwrap_err(), "no alert with id 42"),
        (engine.resolve(id, "bob", t(3)).unwrap_err(), "alert 1 is already resolved"),
        (engine.resolve(id, "", t(3)).unwrap_err(), "by must not be empty"),
        (
            engine.silence(Matcher::All, Duration::ZERO, "bob", "", t(3)).unwrap_err(),
            "silence duration 0s is out of range (more than 0, at most 30 days)",
        ),
        (
            engine.silence(Matcher::All, secs(31 * 86_400), "bob", "", t(3)).unwrap_err(),
            "silence duration 2678400s is out of range (more than 0, at most 30 days)",
        ),
        (engine.silence(Matcher::All, secs(60), "", "", t(3)).unwrap_err(), "created_by must not be empty"),
        (engine.silence(Matcher::Rule("nope".into()), secs(60), "bob", "", t(3)).unwrap_err(), "no rule named `nope`"),
        (engine.expire_silence(SilenceId(9), t(3)).unwrap_err(), "no silence with id 9"),
        (engine.expire_silence(expired.id, t(11)).unwrap_err(), "silence 1 has already expired"),
        (
            "urgent".parse::<Severity>().unwrap_err(),
            "unknown severity `urgent` (expected low, medium, high or critical)",
        ),
        ("nope".parse::<AlertType>().unwrap_err(), "unknown alert type `nope`"),
        ("x1".parse::<AlertId>().unwrap_err(), "invalid alert id `x1` (expected a number)"),
        ("-1".parse::<SilenceId>().unwrap_err(), "invalid silence id `-1` (expected a number)"),
        (AlertEngine::new(vec![rule(), rule()], 1).unwrap_err(), "rule `high_error_rate` is defined more than once"),
    ];
    for (err, expected) in cases {
        assert_eq!(err.to_string(), expected);
    }

    // Acknowledging twice names who was first.
    let mut engine = self::engine(rule());
    run(&mut engine, &[(0, Some(0.2), Some(Firing), &[Fired])]);
    engine.acknowledge(AlertId(1), "alice", None, t(1)).unwrap();
    let err = engine.acknowledge(AlertId(1), "bob", None, t(2)).unwrap_err();
    assert_eq!(err.to_string(), "alert 1 is already acknowledged by alice");
}

#[test]
fn validate_refuses_each_broken_constraint() {
    type Breaker = fn(&mut AlertRule);
    let cases: &[(Breaker, &str)] = &[
        (|r| r.name = String::new(), "rule ``: name must be one or more of a-z, 0-9 and _"),
        (|r| r.name = "High-Errors".into(), "rule `High-Errors`: name must be one or more of a-z, 0-9 and _"),
        (|r| r.summary = "  ".into(), "rule `r`: summary must not be empty"),
        (|r| r.levels.clear(), "rule `r`: levels must have 1 to 4 entries, found 0"),
        (
            |r| {
                let top = level(Severity::Critical, 0.9, 0.9);
                r.levels = vec![top; 5];
            },
            "rule `r`: levels must have 1 to 4 entries, found 5",
        ),
        (|r| r.levels[0].fire_at = f64::NAN, "rule `r`: levels[0].fire_at must be a finite number above 0, found NaN"),
        (
            |r| r.levels[0].fire_at = f64::INFINITY,
            "rule `r`: levels[0].fire_at must be a finite number above 0, found inf",
        ),
        (|r| r.levels[0].fire_at = -0.1, "rule `r`: levels[0].fire_at must be a finite number above 0, found -0.1"),
        (|r| r.levels[0].clear_below = 0.0, "rule `r`: levels[0].clear_below must be a finite number above 0, found 0"),
        (|r| r.levels[0].clear_below = 0.2, "rule `r`: levels[0].clear_below (0.2) is above fire_at (0.1)"),
        (
            |r| r.levels.push(level(Severity::Low, 0.5, 0.4)),
            "rule `r`: levels[1].severity (LOW) must be above levels[0].severity (MEDIUM)",
        ),
        (
            |r| r.levels.push(level(Severity::High, 0.1, 0.1)),
            "rule `r`: levels[1].fire_at (0.1) must be above levels[0].fire_at (0.1)",
        ),
        (
            |r| r.levels.push(level(Severity::High, 0.5, 0.04)),
            "rule `r`: levels[1].clear_below (0.04) is below levels[0].clear_below (0.05)",
        ),
    ];
    for (breaker, expected) in cases {
        let mut rule = AlertRule { name: "r".into(), ..rule() };
        rule.validate().unwrap();
        breaker(&mut rule);
        let err = rule.validate().unwrap_err();
        assert_eq!(err.to_string(), *expected);
        assert!(AlertEngine::new(vec![rule], 1).is_err());
    }
    three_levels().validate().unwrap();
}

#[test]
fn names_parse_and_display_round_trip() {
    for severity in Severity::ALL {
        assert_eq!(severity.to_string().parse::<Severity>().unwrap(), severity);
        assert_eq!(severity.as_str().to_lowercase().parse::<Severity>().unwrap(), severity);
    }
    assert!(Severity::Low < Severity::Medium && Severity::High < Severity::Critical);
    for alert_type in AlertType::ALL {
        assert_eq!(alert_type.to_string().parse::<AlertType>().unwrap(), alert_type);
        let json = serde_json::to_string(&alert_type).unwrap();
        assert_eq!(json, format!("\"{}\"", alert_type.as_str()));
    }
    assert_eq!("SLOW_QUERY".parse::<AlertType>().unwrap(), AlertType::SlowQuery);
    assert_eq!("42".parse::<AlertId>().unwrap(), AlertId(42));
    assert_eq!(AlertId(42).to_string(), "42");
    assert_eq!(SilenceId(7).to_string().parse::<SilenceId>().unwrap(), SilenceId(7));
    assert_eq!(AlertState::Firing.to_string(), "firing");
    assert_eq!(NotificationKind::Escalated.to_string(), "escalated");
}

#[test]
fn json_shapes() {
    let mut engine = engine(AlertRule { for_duration: secs(30), ..rule() });
    run(&mut engine, &[(0, Some(0.2), Some(Pending), &[]), (30, Some(0.2), Some(Firing), &[Fired])]);
    let alert = engine.resolve(AlertId(1), "alice", t(40)).unwrap();
    let json = serde_json::to_value(&alert).unwrap();
    assert_eq!(json["id"], 1);
    assert_eq!(json["severity"], "MEDIUM");
    assert_eq!(json["state"], "resolved");
    assert_eq!(json["alert_type"], "high_error_rate");
    assert_eq!(json["signal"], serde_json::json!({ "signal": "error_rate", "window": "5m" }));
    assert_eq!(json["resolution"], serde_json::json!({ "type": "manual", "by": "alice" }));
    assert_eq!(json["fired_at"], 30_000);
    let back: Alert = serde_json::from_value(json).unwrap();
    assert_eq!(back, alert);

    let rule = AlertRule { keep_firing_for: Duration::from_millis(1500), ..rule() };
    let json = serde_json::to_value(&rule).unwrap();
    assert_eq!(json["for_duration"], 0);
    assert_eq!(json["keep_firing_for"], 1.5);
    assert_eq!(json["levels"][0]["severity"], "MEDIUM");
    assert_eq!(serde_json::from_value::<AlertRule>(json).unwrap(), rule);
    let mut bad = serde_json::to_value(&rule).unwrap();
    bad["cooldown"] = serde_json::json!(-1);
    let err = serde_json::from_value::<AlertRule>(bad).unwrap_err();
    assert!(err.to_string().contains("invalid duration -1"), "{err}");

    let matchers = [
        (Matcher::All, serde_json::json!({ "match": "all" })),
        (Matcher::Rule(RULE.into()), serde_json::json!({ "match": "rule", "value": RULE })),
        (Matcher::Type(AlertType::Deadlock), serde_json::json!({ "match": "type", "value": "deadlock" })),
    ];
    for (matcher, expected) in matchers {
        assert_eq!(serde_json::to_value(&matcher).unwrap(), expected);
        assert_eq!(serde_json::from_value::<Matcher>(expected).unwrap(), matcher);
    }
}

/// A long pseudo-random walk through values, data gaps, silences, acks and
/// manual resolves, checking what must hold whatever happens.
#[test]
fn random_walk_keeps_the_notification_story_consistent() {
    use std::collections::HashMap;

    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let rule = AlertRule {
        for_duration: secs(20),
        keep_firing_for: secs(20),
        repeat_interval: secs(60),
        cooldown: secs(120),
        ..three_levels()
    };
    let mut engine = AlertEngine::new(vec![rule], 5).unwrap();
    // Per alert id: whether receivers currently believe it is firing.
    let mut firing: HashMap<AlertId, bool> = HashMap::new();
    let mut last_new_id = AlertId(0);
    let mut seen: HashMap<NotificationKind, usize> = HashMap::new();
    let mut reopened = 0;
    for step in 0..5_000u64 {
        let now = t(step * 10);
        match next(40) {
            0 => {
                let _ = engine.silence(Matcher::All, secs(10 * (1 + next(30))), "walk", "", now);
            }
            1 => {
                if let Some(alert) = engine.active().first() {
                    engine.acknowledge(alert.id, "walk", None, now).ok();
                }
            }
            2 => {
                if let Some(alert) = engine.active().first() {
                    engine.resolve(alert.id, "walk", now).unwrap();
                }
            }
            _ => {}
        }
        let value = match next(10) {
            0 => None,
            _ => Some(next(50) as f64 / 100.0),
        };
        for n in engine.evaluate(now, |_| value) {
            let id = n.alert.id;
            *seen.entry(n.kind).or_default() += 1;
            let believed = firing.get(&id).copied();
            match n.kind {
                Fired => {
                    assert_eq!(believed, None, "step {step}: Fired twice for {id}");
                    assert_eq!(n.alert.state, Firing);
                    assert!(id > last_new_id, "step {step}: new alerts get new, larger ids");
                    last_new_id = id;
                    firing.insert(id, true);
                }
                Escalated | Repeated => {
                    assert!(believed.is_some(), "step {step}: {:?} before Fired for {id}", n.kind);
                    assert_eq!(n.alert.state, Firing);
                    firing.insert(id, true);
                }
                Resolved => {
                    assert!(believed.is_some(), "step {step}: Resolved before Fired for {id}");
                    assert_eq!(n.alert.state, AlertState::Resolved);
                    firing.insert(id, false);
                }
            }
            if n.kind == Repeated {
                assert_eq!(n.alert.acknowledged, None, "step {step}: repeated an acknowledged alert");
                assert_eq!(n.alert.silenced_by, None);
            }
        }
        let active = engine.active();
        assert!(active.len() <= 1);
        reopened = reopened.max(active.first().map_or(0, |a| a.reopen_count));
        for alert in &active {
            assert!(matches!(alert.state, Pending | Firing));
            assert_eq!(alert.resolved_at, None);
            let levels = &engine.rules()[0].levels;
            let level = levels.iter().find(|l| l.severity == alert.severity).unwrap();
            assert_eq!(alert.threshold, level.fire_at);
        }
        assert!(engine.history().len() <= 5);
        assert!(engine.history().iter().all(|a| a.state == AlertState::Resolved && a.resolution.is_some()));
    }
    // The walk must have gone everywhere worth checking.
    assert!(firing.len() > 10, "fired {} alerts", firing.len());
    assert!([Fired, Escalated, Repeated, Resolved].iter().all(|k| seen.get(k) > Some(&5)), "{seen:?}");
    assert!(reopened > 0, "no cooldown reopen happened");
}
