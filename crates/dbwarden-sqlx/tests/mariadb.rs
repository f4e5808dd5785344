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

server_backend_tests!(
    queries_are_fingerprinted(4),
    checkout_is_a_session(4),
    transactions_are_counted(4),
    errors_are_classified(4),
    pool_exhaustion_is_a_pool_timeout(1),
    dropped_stream_is_recorded(4),
    sampler_records_samples(4),
);
