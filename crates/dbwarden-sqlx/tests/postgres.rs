//! The monitored pool against a real PostgreSQL server
//! (`DBWARDEN_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`).
//! Each test works in its own schema, dropped at the end. A server that
//! cannot be reached fails the test.

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use dbwarden_core::ErrorClass;

use common::PgDb as Db;

server_backend_tests!(
    queries_are_fingerprinted(4),
    checkout_is_a_session(4),
    transactions_are_counted(4),
    errors_are_classified(4),
    pool_exhaustion_is_a_pool_timeout(1),
    dropped_stream_is_recorded(4),
    sampler_records_samples(4),
    requests_and_operations_are_attributed(4),
    error_rates_per_class_and_patterns(4),
);

/// Two transactions locking two rows in opposite orders: PostgreSQL aborts
/// one with SQLSTATE 40P01, classified and counted as a deadlock.
#[tokio::test]
async fn deadlock_is_classified() {
    let db = Db::new("deadlock").await;
    let pool = db.pool(4).await;
    common::create_items(&pool).await;
    common::exec(&pool, "INSERT INTO items (id, name) VALUES (1, 'a'), (2, 'b')").await.unwrap();

    let mut a = pool.begin().await.unwrap();
    let mut b = pool.begin().await.unwrap();
    sqlx::query("UPDATE items SET name = 'a1' WHERE id = 1").execute(&mut a).await.unwrap();
    sqlx::query("UPDATE items SET name = 'b2' WHERE id = 2").execute(&mut b).await.unwrap();
    let (ra, rb) = tokio::join!(
        sqlx::query("UPDATE items SET name = 'a2' WHERE id = 2").execute(&mut a),
        sqlx::query("UPDATE items SET name = 'b1' WHERE id = 1").execute(&mut b),
    );
    let err = match (ra, rb) {
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => e,
        other => panic!("expected exactly one deadlock victim, got {other:?}"),
    };
    assert_eq!(dbwarden_sqlx::classify(&err), ErrorClass::Deadlock, "{err}");
    drop(a);
    drop(b);
    let by_class = pool.monitor().snapshot().error_metrics.by_class;
    assert_eq!(by_class.get(&ErrorClass::Deadlock), Some(&1));
    db.drop_schema().await;
}
