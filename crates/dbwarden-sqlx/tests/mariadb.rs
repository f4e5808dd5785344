//! The monitored pool against a real MariaDB / MySQL server
//! (`DBWARDEN_TEST_MYSQL_URL`, default `mysql://root@127.0.0.1:3306/test`).
//! Each test works in its own database, dropped at the end. A server that
//! cannot be reached fails the test.

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::str::FromStr;
use std::time::Duration;

use dbwarden_core::Monitor;
use dbwarden_sqlx::MonitoredPool;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, Connection, MySql, MySqlConnection};

fn url() -> String {
    std::env::var("DBWARDEN_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

struct Db {
    schema: String,
}

impl Db {
    async fn new(test: &str) -> Db {
        let schema = common::unique(test);
        let mut admin = MySqlConnection::connect(&url()).await.expect("MariaDB must be reachable");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {schema}"))).execute(&mut admin).await.unwrap();
        Db { schema }
    }

    async fn pool(&self, max: u32) -> MonitoredPool<MySql> {
        let options = MySqlConnectOptions::from_str(&url()).unwrap().database(&self.schema);
        MonitoredPool::builder(
            MySqlPoolOptions::new().max_connections(max).acquire_timeout(Duration::from_millis(200)),
            Monitor::new(),
        )
        .connect_with(options)
        .await
        .unwrap()
    }

    async fn drop_schema(self) {
        let mut admin = MySqlConnection::connect(&url()).await.unwrap();
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE {}", self.schema))).execute(&mut admin).await.unwrap();
    }
}

#[tokio::test]
async fn queries_are_fingerprinted() {
    let db = Db::new("fp").await;
    common::queries_are_fingerprinted(db.pool(4).await).await;
    db.drop_schema().await;
}

#[tokio::test]
async fn checkout_is_a_session() {
    let db = Db::new("session").await;
    common::checkout_is_a_session(db.pool(4).await).await;
    db.drop_schema().await;
}

#[tokio::test]
async fn transactions_are_counted() {
    let db = Db::new("tx").await;
    common::transactions_are_counted(db.pool(4).await).await;
    db.drop_schema().await;
}

#[tokio::test]
async fn errors_are_classified() {
    let db = Db::new("err").await;
    common::errors_are_classified(db.pool(4).await).await;
    db.drop_schema().await;
}

#[tokio::test]
async fn pool_exhaustion_is_a_pool_timeout() {
    let db = Db::new("exhaust").await;
    common::pool_exhaustion_is_a_pool_timeout(db.pool(1).await).await;
    db.drop_schema().await;
}

#[tokio::test]
async fn dropped_stream_is_recorded() {
    let db = Db::new("stream").await;
    common::dropped_stream_is_recorded(db.pool(4).await).await;
    db.drop_schema().await;
}

#[tokio::test]
async fn sampler_records_samples() {
    let db = Db::new("sampler").await;
    common::sampler_records_samples(db.pool(4).await).await;
    db.drop_schema().await;
}
