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
