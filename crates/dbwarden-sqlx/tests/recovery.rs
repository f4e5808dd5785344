//! The recovery API and the pending-acquire count, on SQLite (a temporary
//! database file per test). Connection-level failures are simulated by the
//! work returning an I/O error; `tests/faults.rs` kills a real PostgreSQL
//! backend instead.

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use dbwarden_core::ErrorClass;
use dbwarden_sqlx::{MonitoredConnection, MonitoredPool, RecoveryPolicy, RecoveryPolicyError};
use sqlx::Sqlite;

use common::{sqlite_db as db, sqlite_pool as pool};

fn io_error() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer"))
}

fn fast(attempts: u32) -> RecoveryPolicy {
    RecoveryPolicy::builder()
        .max_attempts(attempts)
        .initial_backoff(Duration::from_millis(1))
        .max_backoff(Duration::from_millis(5))
        .build()
        .unwrap()
}

#[test]
fn policy_defaults_and_validation() {
    let p = RecoveryPolicy::default();
    assert_eq!(p.max_attempts(), 3);
    assert_eq!(p.initial_backoff(), Duration::from_millis(50));
    assert_eq!(p.multiplier(), 2);
    assert_eq!(p.max_backoff(), Duration::from_secs(1));
    assert!(p.jitter());
    assert_eq!(RecoveryPolicy::builder().build().unwrap(), p);

    assert_eq!(p.backoff(0), Duration::ZERO);
    assert_eq!(p.backoff(1), Duration::from_millis(50));
    assert_eq!(p.backoff(2), Duration::from_millis(100));
    assert_eq!(p.backoff(5), Duration::from_millis(800));
    assert_eq!(p.backoff(6), Duration::from_secs(1), "capped");
    assert_eq!(p.backoff(200), Duration::from_secs(1), "no overflow");

    assert_eq!(RecoveryPolicy::builder().max_attempts(0).build(), Err(RecoveryPolicyError::Attempts(0)));
    assert_eq!(RecoveryPolicy::builder().max_attempts(101).build(), Err(RecoveryPolicyError::Attempts(101)));
    assert_eq!(RecoveryPolicy::builder().multiplier(0).build(), Err(RecoveryPolicyError::ZeroMultiplier));
    let err = RecoveryPolicy::builder().initial_backoff(Duration::from_secs(2)).build().unwrap_err();
    assert!(matches!(err, RecoveryPolicyError::BackoffCap { .. }), "{err}");
    let constant = RecoveryPolicy::builder().multiplier(1).build().unwrap();
    assert_eq!(constant.backoff(4), Duration::from_millis(50));
}

#[tokio::test]
async fn success_first_time_is_not_a_recovery() {
    let db = db();
    let pool = pool(&db, 2, Duration::from_secs(1)).await;
    let value: i64 = pool
        .recover("answer", &RecoveryPolicy::default(), |conn: &mut MonitoredConnection<Sqlite>| {
            Box::pin(async move { sqlx::query_scalar("SELECT 42").fetch_one(&mut *conn).await })
        })
        .await
        .unwrap();
    assert_eq!(value, 42);
    let snap = pool.monitor().snapshot();
    assert_eq!(snap.recovery_metrics.recovery_attempts, 0);
    assert_eq!(snap.query_metrics.total, 1, "the statement on the monitored connection is recorded");
    assert_eq!(pool.monitor().active_sessions(), 0);
}

#[tokio::test]
async fn connection_failure_is_recovered_on_a_fresh_connection() {
    let db = db();
    let pool = pool(&db, 1, Duration::from_secs(1)).await;
    let opened_before = pool.monitor().snapshot().pool_metrics.connections_opened;
    let runs = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&runs);
    let value: i64 = pool
        .recover("load_user", &fast(3), move |conn: &mut MonitoredConnection<Sqlite>| {
            let run = counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if run == 0 {
                    return Err(io_error());
                }
                // The connection was opened for this checkout: the broken
                // one was closed, not returned.
                assert!(conn.acquire_info().connect.is_some(), "{:?}", conn.acquire_info());
                sqlx::query_scalar("SELECT 7").fetch_one(&mut *conn).await
            })
        })
        .await
        .unwrap();
    assert_eq!(value, 7);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let snap = pool.monitor().snapshot();
    let rm = &snap.recovery_metrics;
    assert_eq!((rm.recovery_attempts, rm.successful_recoveries, rm.failed_recoveries), (1, 1, 0));
    assert_eq!(rm.recovery_success_rate, 1.0);
    assert_eq!(rm.by_operation.len(), 1);
    assert_eq!(rm.by_operation[0].operation.as_deref(), Some("load_user"));
    assert_eq!((rm.by_operation[0].attempts, rm.by_operation[0].failures), (1, 0));
    assert_eq!(snap.pool_metrics.connections_opened, opened_before + 1);
    assert_eq!(pool.monitor().active_sessions(), 0);
}

#[tokio::test]
async fn exhausted_attempts_return_the_last_error() {
    let db = db();
    let pool = pool(&db, 2, Duration::from_secs(1)).await;
    let runs = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&runs);
    let policy = RecoveryPolicy::builder()
        .max_attempts(3)
        .initial_backoff(Duration::from_millis(20))
        .max_backoff(Duration::from_millis(30))
        .jitter(false)
        .build()
        .unwrap();
    let started = Instant::now();
    let err = pool
        .recover("always_broken", &policy, move |_conn: &mut MonitoredConnection<Sqlite>| {
            counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { Err::<(), _>(io_error()) })
        })
        .await
        .unwrap_err();
    assert!(matches!(err, sqlx::Error::Io(_)), "{err}");
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    // Backoffs 20 ms then 30 ms (40 capped).
    assert!(started.elapsed() >= Duration::from_millis(50), "{:?}", started.elapsed());
    let rm = pool.monitor().snapshot().recovery_metrics;
    assert_eq!((rm.recovery_attempts, rm.successful_recoveries, rm.failed_recoveries), (2, 0, 2));
    assert_eq!(rm.by_operation[0].operation.as_deref(), Some("always_broken"));
    assert_eq!(rm.by_operation[0].failures, 2);
}

#[tokio::test]
async fn other_errors_are_not_retried() {
    let db = db();
    let pool = pool(&db, 2, Duration::from_secs(1)).await;
    common::create_items(&pool).await;
    common::exec(&pool, "INSERT INTO items (id, name) VALUES (1, 'a')").await.unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&runs);
    let err = pool
        .recover("insert_dup", &fast(5), move |conn: &mut MonitoredConnection<Sqlite>| {
            counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                sqlx::query("INSERT INTO items (id, name) VALUES (1, 'b')").execute(&mut *conn).await.map(|_| ())
            })
        })
        .await
        .unwrap_err();
    assert_eq!(dbwarden_sqlx::classify(&err), ErrorClass::ConstraintViolation, "{err}");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let snap = pool.monitor().snapshot();
    assert_eq!(snap.recovery_metrics.recovery_attempts, 0);
    assert_eq!(snap.error_metrics.by_class.get(&ErrorClass::ConstraintViolation), Some(&1));
}

#[tokio::test]
async fn pool_timeout_is_not_retried() {
    let db = db();
    let pool = pool(&db, 1, Duration::from_millis(100)).await;
    let held = pool.acquire().await.unwrap();
    let err = pool
        .recover("starved", &fast(3), |_conn: &mut MonitoredConnection<Sqlite>| Box::pin(async move { Ok(()) }))
        .await
        .unwrap_err();
    assert!(matches!(err, sqlx::Error::PoolTimedOut), "{err}");
    assert_eq!(pool.monitor().snapshot().recovery_metrics.recovery_attempts, 0);
    drop(held);
}

async fn wait_for_pending(pool: &MonitoredPool<Sqlite>, expected: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool.pending() != expected {
        assert!(Instant::now() < deadline, "pending stayed {} (expected {expected})", pool.pending());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn waiting_acquires_are_pending() {
    let db = db();
    let pool = pool(&db, 1, Duration::from_secs(10)).await;
    assert_eq!(pool.sample().pending, 0);
    let held = pool.acquire().await.unwrap();
    assert_eq!(pool.sample().pending, 0, "a completed acquire is no longer pending");

    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.acquire().await.map(drop) }
    });
    wait_for_pending(&pool, 1).await;
    let sample = pool.sample();
    assert_eq!((sample.pending, sample.in_use, sample.max), (1, 1, 1));
    assert_eq!(pool.monitor().snapshot().pool_metrics.current.unwrap().sample.pending, 1);

    drop(held);
    waiter.await.unwrap().unwrap();
    assert_eq!(pool.sample().pending, 0);

    // A cancelled acquire stops counting.
    let held = pool.acquire().await.unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.acquire().await.map(drop) }
    });
    wait_for_pending(&pool, 1).await;
    waiter.abort();
    assert!(waiter.await.unwrap_err().is_cancelled());
    assert_eq!(pool.sample().pending, 0);
    drop(held);

    // Acquires on the raw pool are not counted.
    let held = pool.acquire().await.unwrap();
    let raw = tokio::spawn({
        let inner = pool.inner().clone();
        async move { inner.acquire().await.map(drop) }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(pool.sample().pending, 0);
    drop(held);
    raw.await.unwrap().unwrap();
}
