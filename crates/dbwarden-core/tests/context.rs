//! Requests and named operations as contexts: database work attributed to
//! the request that caused it, N+1 patterns found per request, operations
//! counted, and the session-store and resource inputs feeding their alerts.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use dbwarden_core::context::{OperationContext, RequestContext, with_operation, with_request};
use dbwarden_core::{
    AlertType, CollectingSink, ErrorClass, Event, ManualClock, Monitor, MonitorConfig, Outcome, ResourceSample,
    SessionTableSample, SessionWrite, Timestamp,
};

const START: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn monitor() -> (Monitor, ManualClock) {
    let clock = ManualClock::new(START);
    let monitor = Monitor::builder().config(MonitorConfig::named("ctx")).clock(clock.clone()).build().unwrap();
    (monitor, clock)
}

fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn firing(m: &Monitor, t: AlertType) -> bool {
    m.alerts().iter().any(|a| a.alert_type == t)
}

#[test]
fn a_request_gets_its_database_time_and_an_n_plus_one_is_reported_with_its_route() {
    let (m, _) = monitor();
    let sink = std::sync::Arc::new(CollectingSink::new());
    m.subscribe(sink.clone());
    let ctx = RequestContext::new("req-42", "GET", "/orders/{id}");
    m.request_started();
    block_on(with_request(ctx.clone(), async {
        m.record_query("SELECT * FROM orders WHERE id = 42", Duration::from_millis(3), 1, Outcome::Success);
        for item in 0..12 {
            let sql = format!("SELECT * FROM order_items WHERE order_id = 42 AND position = {item}");
            m.record_query(&sql, Duration::from_millis(6), 1, Outcome::Success);
        }
    }));
    // Outside the request: not counted toward it.
    m.record_query("SELECT 1", Duration::from_millis(1), 1, Outcome::Success);
    m.finish_request(&ctx, 200, Duration::from_millis(120));

    assert_eq!(ctx.db_queries(), 13);
    assert_eq!(ctx.db_time(), Duration::from_millis(75));
    let found = m.n_plus_one(10);
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!((f.route.as_str(), f.method.as_str(), f.request_id.as_str()), ("/orders/{id}", "GET", "req-42"));
    assert_eq!(f.count, 12);
    assert_eq!(f.text, "SELECT * FROM order_items WHERE order_id = ? AND position = ?");
    assert_eq!(f.table.as_deref(), Some("order_items"));
    assert!((f.total_ms - 72.0).abs() < 0.01);
    let route = m.routes().into_iter().find(|r| r.route.as_deref() == Some("/orders/{id}")).unwrap();
    assert_eq!(route.requests, 1);
    assert!((route.avg_db_queries - 13.0).abs() < 1e-9);
    assert_eq!(m.snapshot().request_metrics.n_plus_one, 1);
    assert_eq!(m.snapshot().request_metrics.in_flight, 0);
    assert!(sink.take().iter().any(|e| matches!(e, Event::NPlusOne(n) if n.count == 12)));
}

#[test]
fn repeated_statements_below_either_threshold_are_not_n_plus_one() {
    let (m, _) = monitor();
    // Many but fast: 20 × 1 ms = 20 ms, under 50 ms.
    let fast = RequestContext::new("a", "GET", "/fast");
    block_on(with_request(fast.clone(), async {
        for i in 0..20 {
            m.record_query(&format!("SELECT * FROM t WHERE id = {i}"), Duration::from_millis(1), 1, Outcome::Success);
        }
    }));
    m.finish_request(&fast, 200, Duration::from_millis(30));
    // Slow but few: 4 × 40 ms.
    let few = RequestContext::new("b", "GET", "/few");
    block_on(with_request(few.clone(), async {
        for i in 0..4 {
            m.record_query(&format!("SELECT * FROM t WHERE id = {i}"), Duration::from_millis(40), 1, Outcome::Success);
        }
    }));
    m.finish_request(&few, 200, Duration::from_millis(170));
    assert!(m.n_plus_one(10).is_empty());
}

#[test]
fn prepared_statements_count_toward_the_request_too() {
    let (m, _) = monitor();
    let q = m.prepare("SELECT name FROM users WHERE id = $1");
    let ctx = RequestContext::new("p", "GET", "/users");
    block_on(with_request(ctx.clone(), async {
        for _ in 0..6 {
            m.record_prepared(&q, Duration::from_millis(10), 1, Outcome::Success);
        }
    }));
    m.finish_request(&ctx, 200, Duration::from_millis(70));
    assert_eq!(ctx.db_queries(), 6);
    assert_eq!(m.n_plus_one(1)[0].text, "SELECT name FROM users WHERE id = ?");
}

#[test]
fn named_operations_are_counted_and_name_their_errors() {
    let (m, _) = monitor();
    for fail in [false, false, true] {
        let op = OperationContext::new("transfer_funds");
        block_on(with_operation(op.clone(), async {
            m.record_query("UPDATE accounts SET balance = balance - 5 WHERE id = 1", Duration::from_millis(2), 1, {
                if fail {
                    Outcome::Failure { class: ErrorClass::Deadlock, message: "deadlock detected" }
                } else {
                    Outcome::Success
                }
            });
        }));
        m.record_operation(&op, Duration::from_millis(4), fail.then_some(ErrorClass::Deadlock));
    }
    let ops = m.operations();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].operation.as_deref(), Some("transfer_funds"));
    assert_eq!((ops[0].calls, ops[0].failures), (3, 1));
    assert!((ops[0].avg_db_queries - 1.0).abs() < 1e-9);
    let errors = m.errors(dbwarden_core::Window::FiveMinutes);
    assert_eq!(errors.recent[0].operation.as_deref(), Some("transfer_funds"));
    assert_eq!(m.snapshot().operation_metrics[0].calls, 3);
}

#[test]
fn session_store_inputs_raise_the_seed_alerts_and_clear_them() {
    let (m, clock) = monitor();
    m.record_session_table(SessionTableSample { total: 5_000, expired: 4_000, bytes: Some(250_000_000) });
    for _ in 0..1_500 {
        m.record_session_write(SessionWrite::Full);
    }
    m.record_session_write(SessionWrite::Avoided);
    m.tick();
    assert!(firing(&m, AlertType::SessionTableSize));
    assert!(firing(&m, AlertType::ExpiredSessions));
    assert!(firing(&m, AlertType::SessionWriteRate));
    let store = m.snapshot().session_store_metrics;
    assert_eq!((store.writes, store.writes_avoided), (1_500, 1));

    m.record_session_table(SessionTableSample { total: 1_000, expired: 0, bytes: Some(1_000_000) });
    for _ in 0..30 {
        clock.advance(Duration::from_secs(10));
        m.tick();
    }
    assert!(!firing(&m, AlertType::SessionTableSize));
    assert!(!firing(&m, AlertType::ExpiredSessions));
    assert!(!firing(&m, AlertType::SessionWriteRate));
}

#[test]
fn cleanup_not_run_within_twice_its_interval_alerts_until_it_runs() {
    let (m, clock) = monitor();
    m.tick();
    assert!(!firing(&m, AlertType::CleanupNotRunning), "no interval set: nothing expected");
    m.set_cleanup_interval(Some(Duration::from_secs(600)));
    clock.advance(Duration::from_secs(1_100));
    m.tick();
    assert!(!firing(&m, AlertType::CleanupNotRunning));
    clock.advance(Duration::from_secs(200));
    m.tick();
    assert!(firing(&m, AlertType::CleanupNotRunning));
    m.record_cleanup(dbwarden_core::CleanupRecord { rows_removed: 3, batches: 1, ..Default::default() });
    clock.advance(Duration::from_secs(10));
    m.tick();
    assert!(!firing(&m, AlertType::CleanupNotRunning));

    // Another host holds the cleanup lock at every run: quiet while it does,
    // and this host's counters do not take its runs.
    clock.advance(Duration::from_secs(1_300));
    m.tick();
    assert!(firing(&m, AlertType::CleanupNotRunning));
    m.record_cleanup_elsewhere();
    clock.advance(Duration::from_secs(10));
    m.tick();
    assert!(!firing(&m, AlertType::CleanupNotRunning));
    assert_eq!(m.snapshot().cleanup_metrics.runs, 1);
}

#[test]
fn resources_past_their_thresholds_alert_after_their_for_duration() {
    let (m, clock) = monitor();
    let hot = ResourceSample {
        cpu_usage: 0.97,
        memory_used: 95,
        memory_total: 100,
        process_rss: 10,
        disk_used: Some(1),
        disk_total: Some(4),
    };
    m.record_resources(hot);
    m.tick();
    assert!(
        !firing(&m, AlertType::HighMemory) || m.alerts().iter().all(|a| a.state != dbwarden_core::AlertState::Firing)
    );
    clock.advance(Duration::from_secs(180));
    m.record_resources(hot);
    m.tick();
    let mem = m.alerts().into_iter().find(|a| a.alert_type == AlertType::HighMemory).unwrap();
    assert_eq!(mem.state, dbwarden_core::AlertState::Firing);
    assert_eq!(mem.severity, dbwarden_core::Severity::Critical);
    assert!(firing(&m, AlertType::HighCpu));
    let r = m.snapshot().resource_metrics;
    assert_eq!(r.disk_usage, Some(0.25));
    assert_eq!(r.memory_usage, Some(0.95));
}

#[test]
fn a_saturated_cpu_warns_in_the_health_verdict_and_low_memory_fails_it() {
    let (m, _) = monitor();
    let busy = ResourceSample { cpu_usage: 1.0, memory_used: 10, memory_total: 100, ..ResourceSample::default() };
    m.record_resources(busy);
    let health = m.health();
    let cpu = health.checks.iter().find(|c| c.key() == "host:cpu").unwrap();
    assert_eq!(cpu.status, dbwarden_core::HealthStatus::Warn);
    assert_eq!(health.status, dbwarden_core::HealthStatus::Warn);
    m.record_resources(ResourceSample { memory_used: 95, ..busy });
    assert_eq!(m.health().status, dbwarden_core::HealthStatus::Fail);
}
