//! Shared test setup: database URLs from the environment (local defaults),
//! unique table names and key prefixes per test, and connections that fail
//! loudly when a service is missing.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU32, Ordering};

use dbwarden_sessions::{Backend, SchemaConfig, SessionDatabase};

/// PostgreSQL URL for tests.
pub fn postgres_url() -> String {
    std::env::var("DBWARDEN_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// MariaDB / MySQL URL for tests.
pub fn mysql_url() -> String {
    std::env::var("DBWARDEN_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

/// Redis URL for tests.
pub fn redis_url() -> String {
    std::env::var("DBWARDEN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A name no other test (in this or another process) uses: `prefix_<pid>_<n>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A SQLite database in a fresh temporary file (kept alive by the returned guard).
pub async fn sqlite_db() -> (SessionDatabase, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/sessions.db", dir.path().display());
    let db = SessionDatabase::connect(&url).await.expect("open sqlite");
    (db, dir)
}

/// Connects to the shared server of `backend`; panics (fails the test) when it is unreachable.
pub async fn server_db(backend: Backend) -> SessionDatabase {
    let url = match backend {
        Backend::Postgres => postgres_url(),
        Backend::MySql => mysql_url(),
        Backend::Sqlite => unreachable!("use sqlite_db"),
    };
    SessionDatabase::connect_with(&url, 20)
        .await
        .unwrap_or_else(|err| panic!("{backend} is required for this test: {err}"))
}

/// A schema with a session table only this test uses.
pub fn unique_schema() -> SchemaConfig {
    SchemaConfig::new(&unique_name("s")).expect("valid table name")
}

/// Runs `sql` on `db`; panics (fails the test) naming the statement when it fails.
pub async fn exec(db: &SessionDatabase, sql: &str) {
    use sqlx::AssertSqlSafe;
    let sql = sql.to_owned();
    let result = match db {
        SessionDatabase::Postgres(pool) => sqlx::query(AssertSqlSafe(sql.clone())).execute(pool).await.map(|_| ()),
        SessionDatabase::MySql(pool) => sqlx::query(AssertSqlSafe(sql.clone())).execute(pool).await.map(|_| ()),
        SessionDatabase::Sqlite(pool) => sqlx::query(AssertSqlSafe(sql.clone())).execute(pool).await.map(|_| ()),
    };
    result.unwrap_or_else(|err| panic!("{sql}: {err}"));
}

/// The one integer `sql` selects on `db`; panics naming the statement when it fails.
pub async fn scalar(db: &SessionDatabase, sql: &str) -> i64 {
    use sqlx::AssertSqlSafe;
    let sql = sql.to_owned();
    let result: Result<i64, sqlx::Error> = match db {
        SessionDatabase::Postgres(pool) => sqlx::query_scalar(AssertSqlSafe(sql.clone())).fetch_one(pool).await,
        SessionDatabase::MySql(pool) => sqlx::query_scalar(AssertSqlSafe(sql.clone())).fetch_one(pool).await,
        SessionDatabase::Sqlite(pool) => sqlx::query_scalar(AssertSqlSafe(sql.clone())).fetch_one(pool).await,
    };
    result.unwrap_or_else(|err| panic!("{sql}: {err}"))
}

/// Drops the test's session table and its migration records.
pub async fn drop_table(db: &SessionDatabase, schema: &SchemaConfig) {
    use sqlx::AssertSqlSafe;
    let table = schema.sessions_table().as_str().to_owned();
    let drop = format!("DROP TABLE IF EXISTS {table}");
    let forget = format!("DELETE FROM dbwarden_migrations WHERE subject = '{table}'");
    match db {
        SessionDatabase::Postgres(pool) => {
            let _ = sqlx::query(AssertSqlSafe(drop)).execute(pool).await;
            let _ = sqlx::query(AssertSqlSafe(forget)).execute(pool).await;
        }
        SessionDatabase::MySql(pool) => {
            let _ = sqlx::query(AssertSqlSafe(drop)).execute(pool).await;
            let _ = sqlx::query(AssertSqlSafe(forget)).execute(pool).await;
        }
        SessionDatabase::Sqlite(pool) => {
            let _ = sqlx::query(AssertSqlSafe(drop)).execute(pool).await;
            let _ = sqlx::query(AssertSqlSafe(forget)).execute(pool).await;
        }
    }
}

/// Runs each named `async fn(Backend)` as a test on PostgreSQL, MariaDB and
/// SQLite, in modules named after the backend.
// Not every suite that includes this module runs per backend.
#[allow(unused_macros)]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(dbwarden_sessions::Backend::Postgres).await }) *
        }
        mod mariadb {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(dbwarden_sessions::Backend::MySql).await }) *
        }
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(dbwarden_sessions::Backend::Sqlite).await }) *
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_every_backend;
