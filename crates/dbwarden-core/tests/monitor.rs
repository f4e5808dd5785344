//! The monitor's derived metrics, windows, bounds and alert wiring, driven
//! by a manual clock.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use dbwarden_core::{
    AlertState, AlertType, CollectingSink, ErrorClass, Event, HealthStatus, Holder, ManualClock, Monitor,
    MonitorConfig, Outcome, PoolSample, QuerySort, RequestRecord, ResetScope, SessionKind, Severity, Signal,
    Thresholds, Timestamp, Window,
};

const START: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn monitor_with(config: MonitorConfig) -> (Monitor, ManualClock) {
    let clock = ManualClock::new(START);
    let monitor = Monitor::builder().config(config).clock(clock.clone()).build().unwrap();
    (monitor, clock)
}

fn monitor() -> (Monitor, ManualClock) {
    monitor_with(MonitorConfig::named("test"))
}

#[test]
fn session_metrics_are_derived_from_the_lifecycle() {
    let (m, _) = monitor();
    for creation in [10, 20, 30] {
        m.record_session_created(ms(creation));
    }
    m.record_commit();
    m.record_commit();
    m.record_rollback();
    m.record_session_closed(ms(100), ms(2));
    m.record_session_closed(ms(300), ms(4));
    m.record_session_created(ms(1500)); // slow creation

    let s = m.snapshot();
    let sm = &s.session_metrics;
    assert_eq!(sm.sessions_created, 4);
    assert_eq!(sm.sessions_closed, 2);
    assert_eq!(sm.active_sessions, 2);
    assert_eq!(sm.peak_active_sessions, 3);
    assert_eq!((sm.commits, sm.rollbacks), (2, 1));
    assert!((sm.avg_session_duration_ms - 200.0).abs() < 200.0 * 0.02, "{}", sm.avg_session_duration_ms);
    let pt = &s.performance_timing;
    assert!((pt.avg_session_creation_ms - 390.0).abs() < 390.0 * 0.02, "{}", pt.avg_session_creation_ms);
    assert!((pt.avg_session_cleanup_ms - 3.0).abs() < 0.1, "{}", pt.avg_session_cleanup_ms);
    assert_eq!(pt.slow_session_creations, 1);
    assert_eq!(pt.slow_session_cleanups, 0);
}

#[test]
fn error_and_recovery_rates_follow_their_definitions() {
    let (m, _) = monitor();
    for _ in 0..18 {
        m.record_query("SELECT 1", ms(1), 1, Outcome::Success);
    }
    m.record_query("SELECT 1", ms(1), 0, Outcome::Failure { class: ErrorClass::SyntaxError, message: "boom" });
    m.record_session_created(ms(1));
    m.record_session_error(ErrorClass::ConnectionFailure, "connection refused");
    m.record_recovery("load_user", ms(40), true);
    m.record_recovery("load_user", ms(60), false);

    let s = m.snapshot();
    // errors: 1 failed query + 1 session error; operations: 19 queries + 1 session + 1 failed session.
    assert!((s.session_metrics.error_rate - 2.0 / 21.0).abs() < 1e-9, "{}", s.session_metrics.error_rate);
    let r = &s.recovery_metrics;
    assert_eq!((r.recovery_attempts, r.successful_recoveries, r.failed_recoveries), (2, 1, 1));
    assert!((r.recovery_rate - 2.0).abs() < 1e-9, "two recoveries per one session opened");
    assert!((r.recovery_success_rate - 0.5).abs() < 1e-9);
    assert_eq!(r.by_operation[0].operation.as_deref(), Some("load_user"));
    assert_eq!(r.by_operation[0].attempts, 2);
    assert!((s.performance_timing.avg_recovery_time_ms - 50.0).abs() < 1.0);
    assert_eq!(s.error_metrics.by_class.get(&ErrorClass::SyntaxError), Some(&1));
    assert_eq!(s.error_metrics.by_class.get(&ErrorClass::ConnectionFailure), Some(&1));
}

#[test]
fn rolling_windows_forget_old_events() {
    let (m, clock) = monitor();
    for _ in 0..60 {
        m.record_query("SELECT 1", ms(1), 1, Outcome::Success);
    }
    // Ticks every 10 s, as the driver does.
    for _ in 0..12 {
        clock.advance(Duration::from_secs(10));
        m.tick();
    }
    for _ in 0..30 {
        m.record_query("SELECT 2", ms(1), 1, Outcome::Success);
    }
    for _ in 0..3 {
        clock.advance(Duration::from_secs(10));
        m.tick();
    }

    let s = m.snapshot();
    let one = &s.rates[&Window::OneMinute];
    assert_eq!(one.queries, 30, "only the last minute's queries");
    assert!((one.queries_per_second - 0.5).abs() < 1e-9, "{}", one.queries_per_second);
    let five = &s.rates[&Window::FiveMinutes];
    assert_eq!(five.queries, 90);
    assert!((five.covered_seconds - 150.0).abs() < 1e-9, "the monitor is only 150 s old");
}

#[test]
fn top_k_table_stays_bounded_and_keeps_totals_in_other() {
    let (m, _) = monitor_with(MonitorConfig { top_queries: 20, ..MonitorConfig::named("topk") });
    // 2000 one-off statements: the first 20 fill the table, the rest are
    // counted in `other` without evicting anything.
    for i in 0..2000 {
        let sql = format!("SELECT c FROM table_{i} WHERE id = {i}");
        m.record_query(&sql, ms(1), 1, Outcome::Success);
    }
    assert_eq!(m.snapshot().query_metrics.fingerprints_evicted, 0, "one-off statements evict nothing");
    // A statement that keeps coming back is admitted at its second miss and
    // keeps its own row from then on.
    for _ in 0..500 {
        m.record_query("SELECT * FROM hot WHERE id = 1", ms(5), 1, Outcome::Success);
    }
    let all = m.top_queries(QuerySort::Calls, usize::MAX);
    let tracked = all.iter().filter(|q| !q.other).count();
    assert!(tracked <= 20, "{tracked} fingerprints tracked");
    let total: u64 = all.iter().map(|q| q.calls).sum();
    assert_eq!(total, 2500, "calls outside the table are kept in `other`");
    let hot = all.iter().find(|q| q.text == "SELECT * FROM hot WHERE id = ?").expect("the hot statement has a row");
    assert_eq!(hot.calls, 499, "all but its first call");
    let other = all.iter().find(|q| q.other).expect("other");
    assert_eq!(other.calls, 2000 - 19 + 1);
    assert_eq!(m.snapshot().query_metrics.fingerprints_evicted, 1);
}

#[test]
fn statements_cycling_through_more_fingerprints_than_the_table_holds_do_not_churn_it() {
    let (m, _) = monitor_with(MonitorConfig { top_queries: 10, ..MonitorConfig::named("cycle") });
    for round in 0..20 {
        for i in 0..200 {
            m.record_query(&format!("SELECT * FROM t{i} WHERE r = {round}"), ms(1), 1, Outcome::Success);
        }
    }
    // 200 statements each seen every 200 misses: the 40-entry candidate
    // window forgets them before they come back, so none is admitted.
    assert_eq!(m.snapshot().query_metrics.fingerprints_evicted, 0);
    let total: u64 = m.top_queries(QuerySort::Calls, usize::MAX).iter().map(|q| q.calls).sum();
    assert_eq!(total, 4000);
}

#[test]
fn prepared_queries_keep_working_after_their_fingerprint_is_evicted() {
    let (m, _) = monitor_with(MonitorConfig { top_queries: 2, ..MonitorConfig::named("evict") });
    let prepared = m.prepare("SELECT * FROM a WHERE id = $1");
    for i in 0..50 {
        m.record_query(&format!("SELECT * FROM t{i}"), ms(1), 0, Outcome::Success);
    }
    m.record_prepared(&prepared, ms(3), 1, Outcome::Success);
    let total: u64 = m.top_queries(QuerySort::Calls, usize::MAX).iter().map(|q| q.calls).sum();
    assert_eq!(total, 51);
    assert_eq!(m.snapshot().query_metrics.total, 51);
}

#[test]
fn no_literal_reaches_any_report() {
    let (m, _) = monitor();
    let secret = "hunter2-credit-4111111111111111";
    m.record_query(
        &format!("SELECT * FROM users WHERE password = '{secret}' AND id = 4111111111111111"),
        Duration::from_secs(3),
        0,
        Outcome::Failure {
            class: ErrorClass::ConstraintViolation,
            message: &format!("Key (password)=({secret}) already exists, value '{secret}'"),
        },
    );
    m.tick();
    let reports = [
        serde_json::to_string(&m.snapshot()).unwrap(),
        serde_json::to_string(&m.errors(Window::OneHour)).unwrap(),
        serde_json::to_string(&m.slow_queries(10)).unwrap(),
        serde_json::to_string(&m.top_queries(QuerySort::TotalTime, 10)).unwrap(),
        serde_json::to_string(&m.alerts()).unwrap(),
        m.summary_text(),
    ];
    for report in reports {
        assert!(!report.contains("hunter2"), "{report}");
        assert!(!report.contains("4111111111111111"), "{report}");
    }
}

#[test]
fn slow_queries_are_counted_kept_and_pushed() {
    let (m, _) = monitor();
    let sink = Arc::new(CollectingSink::new());
    m.subscribe(sink.clone());
    m.record_query("SELECT pg_sleep(3)", Duration::from_secs(3), 1, Outcome::Success);
    m.record_query("SELECT 1", ms(1), 1, Outcome::Success);
    assert_eq!(m.snapshot().query_metrics.slow, 1);
    let slow = m.slow_queries(10);
    assert_eq!(slow.len(), 1);
    assert_eq!(slow[0].text, "SELECT pg_sleep(?)");
    assert!(sink.take().iter().any(|e| matches!(e, Event::SlowQuery(q) if q.duration_ms >= 3000.0)));
}

#[test]
fn thresholds_change_while_running_and_bad_ones_change_nothing() {
    let (m, _) = monitor();
    m.record_query("SELECT 1", ms(600), 1, Outcome::Success);
    assert_eq!(m.snapshot().query_metrics.slow, 0);
    let t = Thresholds { slow_query: ms(500), ..Thresholds::default() };
    m.set_thresholds(t).unwrap();
    m.record_query("SELECT 1", ms(600), 1, Outcome::Success);
    assert_eq!(m.snapshot().query_metrics.slow, 1);

    let before = (*m.thresholds()).clone();
    let rules_before = m.rules();
    let bad = Thresholds { pool_utilization_warning: 1.5, slow_query: ms(10), ..Thresholds::default() };
    assert!(m.set_thresholds(bad).unwrap_err().to_string().contains("pool_utilization_warning"));
    assert_eq!(*m.thresholds(), before);
    assert_eq!(m.rules(), rules_before);
}

#[test]
fn a_deadlock_fires_an_alert_that_resolves_when_the_window_empties() {
    let (m, clock) = monitor();
    let sink = Arc::new(CollectingSink::new());
    m.subscribe(sink.clone());
    m.tick();
    m.record_query(
        "UPDATE accounts SET balance = balance - 10 WHERE id = 7",
        ms(12),
        0,
        Outcome::Failure { class: ErrorClass::Deadlock, message: "deadlock detected" },
    );
    clock.advance(Duration::from_secs(10));
    m.tick();
    let alerts = m.alerts();
    let deadlock = alerts.iter().find(|a| a.alert_type == AlertType::Deadlock).expect("deadlock alert");
    assert_eq!(deadlock.state, AlertState::Firing);
    assert_eq!(deadlock.severity, Severity::High);
    for _ in 0..40 {
        clock.advance(Duration::from_secs(10));
        m.tick();
    }
    assert!(m.alerts().iter().all(|a| a.alert_type != AlertType::Deadlock), "resolved after the 5-minute window");
    assert!(m.alert_history().iter().any(|a| a.alert_type == AlertType::Deadlock && a.state == AlertState::Resolved));
    let events = sink.take();
    assert!(events.iter().any(|e| matches!(e, Event::Alert(n) if n.alert.alert_type == AlertType::Deadlock)));
}

#[test]
fn pool_exhaustion_alerts_after_its_for_duration_and_health_fails() {
    let (m, clock) = monitor();
    m.record_pool_sample(PoolSample { size: 10, idle: 0, in_use: 10, pending: 4, max: 10, min: 0 });
    m.tick();
    assert!(m.alerts().iter().all(|a| a.state != AlertState::Firing || a.alert_type != AlertType::PoolExhaustion));
    clock.advance(Duration::from_secs(31));
    m.record_pool_sample(PoolSample { size: 10, idle: 0, in_use: 10, pending: 4, max: 10, min: 0 });
    m.tick();
    let alert = m.alerts().into_iter().find(|a| a.rule == "pool_near_exhaustion").expect("pool alert");
    assert_eq!(alert.state, AlertState::Firing);
    assert_eq!(alert.severity, Severity::High);
    let health = m.health();
    assert_eq!(health.status, HealthStatus::Fail);
    assert_eq!(health.metrics_summary.pool_utilization, 1.0);
    let check = health.checks.iter().find(|c| c.key() == "pool:utilization").unwrap();
    assert_eq!(check.status, HealthStatus::Fail);
    assert!(health.issues.iter().any(|i| i.contains("pool utilization is 100.0%")), "{:?}", health.issues);
    let perf = m.performance();
    assert!(perf.score < 100.0);
    assert!(perf.recommendations.iter().any(|r| r.area == "pool"), "{:?}", perf.recommendations);
}

#[test]
fn combined_checkout_calls_count_each_figure_once_in_every_histogram() {
    let (m, _) = monitor();
    // A statement's own checkout opens its session in its wait and lasts
    // the statement; a transaction's session also took the BEGIN.
    let plain = m.open_statement_checkout(Holder::default());
    let tx = m.open_checkout(SessionKind::Transaction, Holder::default(), ms(3), ms(5));
    assert_eq!(m.active_sessions(), 2);
    let live = m.checkouts();
    assert_eq!(live.len(), 2);
    assert_ne!(live[0].id, live[1].id);
    assert_eq!(Some(live[1].id), tx.id());
    let query = m.prepare("SELECT * FROM users WHERE id = 7");
    m.close_statement_checkout(&plain, ms(2), query, ms(4), 1, Outcome::Success);
    m.close_checkout(&tx, ms(20), ms(1));
    assert_eq!(m.active_sessions(), 0);
    assert!(m.checkouts().is_empty());

    let h = m.latency_histograms();
    assert_eq!((h.checkout_wait.count(), h.checkout_wait.sum()), (2, ms(5)));
    assert_eq!((h.session_creation.count(), h.session_creation.sum()), (2, ms(7)));
    assert_eq!((h.connection_use.count(), h.connection_use.sum()), (2, ms(24)));
    assert_eq!((h.session_duration.count(), h.session_duration.sum()), (2, ms(24)));
    assert_eq!((h.session_cleanup.count(), h.session_cleanup.sum()), (1, ms(1)));
    assert_eq!((h.query.count(), h.query.sum()), (1, ms(4)));
    let snap = m.snapshot();
    assert_eq!((snap.pool_metrics.checkouts, snap.pool_metrics.checkins), (2, 2));
    assert_eq!((snap.session_metrics.sessions_created, snap.session_metrics.sessions_closed), (2, 2));
    assert_eq!(snap.session_metrics.peak_active_sessions, 2);
    assert_eq!(snap.query_metrics.total, 1);
    let top = m.top_queries(QuerySort::Calls, 5);
    assert_eq!((top[0].text.as_str(), top[0].calls, top[0].rows), ("SELECT * FROM users WHERE id = ?", 1, 1));

    // A value recorded once for several histograms is reset with them.
    m.reset(ResetScope::Metrics);
    let h = m.latency_histograms();
    for (name, count) in [
        ("checkout_wait", h.checkout_wait.count()),
        ("session_creation", h.session_creation.count()),
        ("connection_use", h.connection_use.count()),
        ("session_duration", h.session_duration.count()),
        ("query", h.query.count()),
    ] {
        assert_eq!(count, 0, "{name}");
    }
}

#[test]
fn a_released_slot_is_reused_without_mixing_up_checkouts() {
    let (m, _) = monitor();
    let first = m.open_checkout(SessionKind::Connection, Holder::default(), ms(1), ms(1));
    m.close_checkout(&first, ms(1), Duration::ZERO);
    let holder = Holder { route: Some("/reports".into()), ..Holder::default() };
    let second = m.open_checkout(SessionKind::Connection, holder, ms(1), ms(1));
    assert_ne!(first.id(), second.id());
    // The first checkout's stale handle neither touches nor releases the second.
    m.touch_checkout(&first);
    m.release_checkout(&first);
    let live = m.checkouts();
    assert_eq!(live.len(), 1);
    assert_eq!(Some(live[0].id), second.id());
    assert_eq!(live[0].holder.route.as_deref(), Some("/reports"));
    m.close_checkout(&second, ms(1), Duration::ZERO);
    assert!(m.checkouts().is_empty());
}

#[test]
fn leaked_checkouts_are_reported_then_returned() {
    let (m, clock) = monitor();
    let sink = Arc::new(CollectingSink::new());
    m.subscribe(sink.clone());
    let holder = Holder { request_id: Some("req-42".into()), route: Some("GET /reports".into()), ..Holder::default() };
    let checkout = m.track_checkout(SessionKind::Connection, holder);
    clock.advance(Duration::from_secs(29));
    m.tick();
    assert_eq!(m.signal_value(&Signal::SuspectedLeaks), Some(0.0));
    clock.advance(Duration::from_secs(2));
    m.tick();
    let live = m.checkouts();
    assert_eq!(live.len(), 1);
    assert!(live[0].leak_suspected);
    assert_eq!(live[0].holder.route.as_deref(), Some("GET /reports"));
    assert!(m.alerts().iter().any(|a| a.alert_type == AlertType::ConnectionLeak && a.state == AlertState::Firing));
    let events = sink.take();
    assert!(
        events.iter().any(|e| matches!(e, Event::LeakSuspected(c) if c.holder.request_id.as_deref() == Some("req-42")))
    );

    m.release_checkout(&checkout);
    let events = sink.take();
    assert!(events.iter().any(|e| matches!(e, Event::LeakReturned(c) if c.age_seconds >= 31.0)));
    assert!(m.checkouts().is_empty());
    m.tick();
    assert_eq!(m.signal_value(&Signal::SuspectedLeaks), Some(0.0));
}

#[test]
fn transactions_open_past_the_timeout_are_counted_once() {
    let (m, clock) = monitor();
    let tx = m.track_checkout(SessionKind::Transaction, Holder::default());
    clock.advance(Duration::from_secs(31));
    m.tick();
    m.tick();
    assert_eq!(m.snapshot().error_metrics.by_class.get(&ErrorClass::TransactionTimeout), Some(&1));
    assert!(m.alerts().iter().any(|a| a.alert_type == AlertType::TransactionTimeout));
    m.release_checkout(&tx);
}

#[test]
fn requests_are_tracked_per_route() {
    let (m, _) = monitor();
    for (status, duration) in [(200, 10), (200, 30), (500, 20), (200, 6000)] {
        m.request_started();
        m.record_request(&RequestRecord {
            route: "/users/{id}",
            method: "GET",
            status,
            duration: ms(duration),
            request_id: Some("r"),
            db_time: ms(4),
            db_queries: 2,
        });
    }
    let routes = m.routes();
    assert_eq!(routes.len(), 1);
    let r = &routes[0];
    assert_eq!((r.requests, r.errors, r.slow), (4, 1, 1));
    assert!((r.avg_db_queries - 2.0).abs() < 1e-9);
    assert!((r.avg_db_time_ms - 4.0).abs() < 1e-6);
    let s = m.snapshot();
    assert_eq!(s.request_metrics.in_flight, 0);
    assert_eq!(s.request_metrics.peak_in_flight, 1);
}

#[test]
fn reset_scopes_clear_what_they_say() {
    let (m, _) = monitor();
    m.record_query("SELECT 1", ms(1), 1, Outcome::Success);
    m.record_session_error(ErrorClass::ConnectionFailure, "refused");
    m.reset(ResetScope::Errors);
    let s = m.snapshot();
    assert_eq!(s.query_metrics.total, 1);
    assert_eq!(s.error_metrics.total, 0);
    assert!(m.errors(Window::OneHour).recent.is_empty());
    m.reset(ResetScope::Metrics);
    let s = m.snapshot();
    assert_eq!(s.query_metrics.total, 0);
    assert!(m.top_queries(QuerySort::Calls, 10).is_empty());
}

#[test]
fn snapshot_keeps_the_seeds_grouping() {
    let (m, _) = monitor();
    let json = serde_json::to_value(m.snapshot()).unwrap();
    for group in [
        "session_metrics",
        "recovery_metrics",
        "performance_timing",
        "pool_metrics",
        "query_metrics",
        "error_metrics",
        "request_metrics",
        "cleanup_metrics",
        "rates",
        "alerts",
        "thresholds",
    ] {
        assert!(json.get(group).is_some(), "missing {group}");
    }
    assert!(json["rates"].get("5m").is_some());
    assert_eq!(json["session_metrics"]["active_sessions"], 0);
}

#[test]
fn healthy_monitor_passes_with_full_score() {
    let (m, _) = monitor();
    for _ in 0..100 {
        m.record_query("SELECT 1", ms(2), 1, Outcome::Success);
    }
    m.record_pool_sample(PoolSample { size: 5, idle: 4, in_use: 1, pending: 0, max: 10, min: 0 });
    m.tick();
    let health = m.health();
    assert_eq!(health.status, HealthStatus::Pass, "{:?}", health.issues);
    assert!(health.issues.is_empty());
    let perf = m.performance();
    assert_eq!(perf.score, 100.0, "{:?}", perf.recommendations);
    assert_eq!(perf.grade, "excellent");
    assert!(m.summary_text().contains("pass"));
}

#[test]
fn error_rate_alert_escalates_with_the_rate() {
    let (m, clock) = monitor();
    m.tick();
    for _ in 0..97 {
        m.record_query("SELECT 1", ms(1), 1, Outcome::Success);
    }
    for _ in 0..3 {
        m.record_query("SELECT 1", ms(1), 0, Outcome::Failure { class: ErrorClass::Other, message: "x" });
    }
    for _ in 0..7 {
        clock.advance(Duration::from_secs(10));
        m.tick();
    }
    let alert = m.alerts().into_iter().find(|a| a.alert_type == AlertType::HighErrorRate).expect("error-rate alert");
    assert_eq!((alert.state, alert.severity), (AlertState::Firing, Severity::Medium));
    for _ in 0..10 {
        m.record_query("SELECT 1", ms(1), 0, Outcome::Failure { class: ErrorClass::Other, message: "x" });
    }
    clock.advance(Duration::from_secs(10));
    m.tick();
    let alert = m.alerts().into_iter().find(|a| a.alert_type == AlertType::HighErrorRate).unwrap();
    assert_eq!(alert.severity, Severity::Critical);
}

#[test]
fn a_few_errors_in_little_traffic_are_not_a_rate() {
    let (m, _) = monitor();
    m.record_query("SELECT 1", ms(1), 0, Outcome::Failure { class: ErrorClass::Other, message: "x" });
    assert_eq!(m.signal_value(&Signal::ErrorRate { window: Window::FiveMinutes }), Some(0.0));
}

#[test]
fn trend_points_close_every_interval_and_are_bounded() {
    let (m, clock) = monitor_with(MonitorConfig { trend_points: 3, ..MonitorConfig::named("trend") });
    for _ in 0..5 {
        m.record_query("SELECT 1", ms(1), 1, Outcome::Success);
        m.record_pool_sample(PoolSample { size: 4, idle: 2, in_use: 2, pending: 0, max: 4, min: 0 });
        clock.advance(Duration::from_secs(300));
        m.tick();
    }
    let trend = m.trend();
    assert_eq!(trend.len(), 3);
    assert!(trend.windows(2).all(|w| w[0].at < w[1].at));
    assert!((trend[2].pool_utilization_avg - 0.5).abs() < 1e-9);
}

#[test]
fn monitors_recording_the_same_text_keep_their_own_figures() {
    let (a, _) = monitor();
    let (b, _) = monitor();
    for i in 0..30 {
        let target = if i % 3 == 0 { &b } else { &a };
        target.record_query("SELECT * FROM shared WHERE id = 1", ms(1), 1, Outcome::Success);
    }
    assert_eq!(a.top_queries(QuerySort::Calls, 10)[0].calls, 20);
    assert_eq!(b.top_queries(QuerySort::Calls, 10)[0].calls, 10);
    a.reset(ResetScope::Metrics);
    a.record_query("SELECT * FROM shared WHERE id = 1", ms(1), 1, Outcome::Success);
    assert_eq!(a.top_queries(QuerySort::Calls, 10)[0].calls, 1, "a reset table is not fed through stale cache entries");
    assert_eq!(b.top_queries(QuerySort::Calls, 10)[0].calls, 10);
}
