//! The monitored pool against SQLite (a temporary database file per test).

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use dbwarden_sqlx::MonitoredPool;
use sqlx::Sqlite;

use common::{SqliteDb as Db, sqlite_db as db};

async fn pool(db: &Db, max: u32) -> MonitoredPool<Sqlite> {
    common::sqlite_pool(db, max, Duration::from_millis(200)).await
}

#[tokio::test]
async fn queries_are_fingerprinted() {
    let db = db();
    common::queries_are_fingerprinted(pool(&db, 4).await).await;
}

#[tokio::test]
async fn checkout_is_a_session() {
    let db = db();
    common::checkout_is_a_session(pool(&db, 4).await).await;
}

#[tokio::test]
async fn transactions_are_counted() {
    let db = db();
    common::transactions_are_counted(pool(&db, 4).await).await;
}

#[tokio::test]
async fn errors_are_classified() {
    let db = db();
    common::errors_are_classified(pool(&db, 4).await).await;
}

#[tokio::test]
async fn pool_exhaustion_is_a_pool_timeout() {
    let db = db();
    common::pool_exhaustion_is_a_pool_timeout(pool(&db, 1).await).await;
}

#[tokio::test]
async fn dropped_stream_is_recorded() {
    let db = db();
    common::dropped_stream_is_recorded(pool(&db, 4).await).await;
}

#[tokio::test]
async fn sampler_records_samples() {
    let db = db();
    common::sampler_records_samples(pool(&db, 4).await).await;
}

#[tokio::test]
async fn requests_and_operations_are_attributed() {
    let db = db();
    common::requests_and_operations_are_attributed(pool(&db, 4).await).await;
}

#[tokio::test]
async fn error_rates_per_class_and_patterns() {
    let db = db();
    common::error_rates_per_class_and_patterns(pool(&db, 4).await).await;
}

/// A checkout that had to open a connection says so, with the connect
/// time within its wait; one that reused an idle connection does not.
#[tokio::test]
async fn new_connections_are_attributed_to_the_checkout_that_opened_them() {
    let db = db();
    let pool = MonitoredPool::builder(
        // One connection, so the second checkout must reuse the first's.
        sqlx::sqlite::SqlitePoolOptions::new().max_connections(1),
        dbwarden_core::Monitor::new(),
    )
    .connect_lazy_with(db.options.clone());
    let first = pool.acquire().await.unwrap();
    let info = first.acquire_info();
    let connect = info.connect.expect("the first checkout opened a connection");
    assert!(connect > Duration::ZERO && connect <= info.wait, "{info:?}");
    drop(first);
    let again = pool.acquire().await.unwrap();
    assert_eq!(again.acquire_info().connect, None, "an idle connection was reused");
    drop(again);
    let snap = pool.monitor().snapshot();
    assert_eq!(snap.pool_metrics.connections_opened, 1);
    assert_eq!(snap.pool_metrics.create_time.count, 1);
}

/// The pool's configuration is reported, and connections sqlx closes on
/// its own (here past their max lifetime) are counted at the next sample.
#[tokio::test]
async fn configuration_is_reported_and_closes_are_inferred() {
    let db = db();
    let pool = MonitoredPool::builder(
        sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .max_lifetime(Duration::from_millis(100))
            .acquire_timeout(Duration::from_secs(3)),
        dbwarden_core::Monitor::new(),
    )
    .connect_with(db.options.clone())
    .await
    .unwrap();
    let config = pool.monitor().snapshot().pool_metrics.config.expect("configuration recorded");
    assert_eq!(config.system, "sqlite");
    assert_eq!((config.max_connections, config.acquire_timeout_seconds), (1, 3.0));
    assert_eq!(config.max_lifetime_seconds, Some(0.1));

    pool.sample();
    assert_eq!(pool.monitor().snapshot().pool_metrics.connections_closed, 0);
    // Past its lifetime, the connection is closed and a new one opened.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(150)).await;
        sqlx::query("SELECT 1").fetch_one(&pool).await.unwrap();
        pool.sample();
        let metrics = pool.monitor().snapshot().pool_metrics;
        if metrics.connections_opened >= 2 {
            assert!(metrics.connections_closed >= 1, "{metrics:?}");
            assert_eq!(metrics.connections_closed, metrics.connections_opened - u64::from(pool.inner().size()));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the expired connection was never replaced");
    }
    // Sampling again does not count the same close twice.
    let before = pool.monitor().snapshot().pool_metrics.connections_closed;
    pool.sample();
    assert_eq!(pool.monitor().snapshot().pool_metrics.connections_closed, before);
}
