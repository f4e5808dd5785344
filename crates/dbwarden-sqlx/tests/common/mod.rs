//! Checks shared by the per-backend tests. Each takes a fresh monitored
//! pool on its own schema / database / file and asserts what the monitor
//! saw.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dbwarden_core::{ErrorClass, Monitor, QuerySort, SessionKind, Signal, Window};
use dbwarden_sqlx::{MonitoredDatabase, MonitoredPool};
use futures_util::StreamExt;
use sqlx::{AssertSqlSafe, Executor, IntoArguments};

/// A name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("dbw_{prefix}_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

pub async fn exec<DB>(pool: &MonitoredPool<DB>, sql: &str) -> Result<u64, sqlx::Error>
where
    DB: MonitoredDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    sqlx::query::<DB>(AssertSqlSafe(sql.to_owned())).fetch_all(pool).await.map(|rows| rows.len() as u64)
}

pub async fn create_items<DB>(pool: &MonitoredPool<DB>)
where
    DB: MonitoredDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    exec(pool, "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL)").await.unwrap();
}

fn class_count(monitor: &Monitor, class: ErrorClass) -> u64 {
    monitor.snapshot().error_metrics.by_class.get(&class).copied().unwrap_or(0)
}

/// Statements through `&pool` are recorded under normalized fingerprints,
/// with rows, and each is a checkout and a session.
pub async fn queries_are_fingerprinted<DB>(pool: MonitoredPool<DB>)
where
    DB: MonitoredDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    create_items(&pool).await;
    exec(&pool, "INSERT INTO items (id, name) VALUES (1, 'alice')").await.unwrap();
    exec(&pool, "INSERT INTO items (id, name) VALUES (2, 'bob')").await.unwrap();
    let rows = exec(&pool, "SELECT id, name FROM items WHERE id > 0").await.unwrap();
    assert_eq!(rows, 2);
    // fetch_optional path.
    let one = sqlx::query::<DB>("SELECT id FROM items WHERE id = 1").fetch_optional(&pool).await.unwrap();
    assert!(one.is_some());

    let monitor = pool.monitor();
    let stats = monitor.top_queries(QuerySort::Calls, 50);
    let insert = stats.iter().find(|s| s.text.starts_with("INSERT INTO items")).expect("insert recorded");
    assert_eq!(insert.calls, 2, "{stats:#?}");
    assert!(!insert.text.contains("alice") && !insert.text.contains("bob"), "literal leaked: {}", insert.text);
    assert_eq!(insert.rows, 2);
    let select = stats.iter().find(|s| s.text.starts_with("SELECT id, name FROM items")).expect("select recorded");
    assert_eq!(select.calls, 1);
    assert_eq!(select.rows, 2);
    assert_eq!(select.latency.count, 1);

    let snap = monitor.snapshot();
    // CREATE + 2 INSERT + SELECT + fetch_optional = 5 checkouts and sessions.
    assert_eq!(snap.pool_metrics.checkouts, 5);
    assert_eq!(snap.pool_metrics.checkins, 5);
    assert_eq!(snap.session_metrics.sessions_created, 5);
    assert_eq!(snap.session_metrics.sessions_closed, 5);
    assert_eq!(monitor.active_sessions(), 0);
    assert!(monitor.checkouts().is_empty());
    // Each statement is one checkout: every histogram holds each once,
    // whichever executor path recorded it.
    let h = monitor.latency_histograms();
    for (name, count) in [
        ("query", h.query.count()),
        ("checkout wait", h.checkout_wait.count()),
        ("connection use", h.connection_use.count()),
        ("session creation", h.session_creation.count()),
        ("session duration", h.session_duration.count()),
    ] {
        assert_eq!(count, 5, "{name}");
    }
}

/// A held connection is a session and a live checkout until dropped;
/// statements on `&mut conn` are recorded.
pub async fn checkout_is_a_session<DB>(pool: MonitoredPool<DB>)
where
    DB: MonitoredDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut dbwarden_sqlx::MonitoredConnection<DB>: Executor<'c, Database = DB>,
    for<'c> &'c mut dbwarden_sqlx::MonitoredTransaction<DB>: Executor<'c, Database = DB>,
{
    let monitor = pool.monitor().clone();
    let mut conn = pool.acquire().await.unwrap();
    let rows = sqlx::query::<DB>("SELECT 1").fetch_all(&mut conn).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(monitor.active_sessions(), 1);
    let live = monitor.checkouts();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].kind, SessionKind::Connection);
    assert_eq!(Some(live[0].id), conn.checkout_id());
    // Raw access still works (and is not recorded).
    sqlx::query::<DB>("SELECT 2").fetch_all(&mut *conn).await.unwrap();
    drop(conn);

    assert_eq!(monitor.active_sessions(), 0);
    assert!(monitor.checkouts().is_empty());
    let snap = monitor.snapshot();
    assert_eq!(snap.session_metrics.sessions_created, 1);
    assert_eq!(snap.session_metrics.sessions_closed, 1);
    assert_eq!(snap.pool_metrics.checkouts, 1);
    assert_eq!(snap.pool_metrics.checkins, 1);
    assert_eq!(snap.query_metrics.total, 1, "only `&mut conn` statements are recorded");
}

/// Commits, explicit rollbacks and transactions dropped open are counted.
pub async fn transactions_are_counted<DB>(pool: MonitoredPool<DB>)
where
    DB: MonitoredDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut dbwarden_sqlx::MonitoredConnection<DB>: Executor<'c, Database = DB>,
    for<'c> &'c mut dbwarden_sqlx::MonitoredTransaction<DB>: Executor<'c, Database = DB>,
{
    create_items(&pool).await;
    let monitor = pool.monitor().clone();

    let mut tx = pool.begin().await.unwrap();
    assert_eq!(monitor.checkouts()[0].kind, SessionKind::Transaction);
    sqlx::query::<DB>("INSERT INTO items (id, name) VALUES (1, 'kept')").execute(&mut tx).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    sqlx::query::<DB>("INSERT INTO items (id, name) VALUES (2, 'undone')").execute(&mut tx).await.unwrap();
    tx.rollback().await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    sqlx::query::<DB>("INSERT INTO items (id, name) VALUES (3, 'dropped')").execute(&mut tx).await.unwrap();
    drop(tx);

    let rows = exec(&pool, "SELECT id FROM items").await.unwrap();
    assert_eq!(rows, 1, "only the committed row remains");
    let snap = monitor.snapshot();
    assert_eq!(snap.session_metrics.commits, 1);
    assert_eq!(snap.session_metrics.rollbacks, 2);
    assert_eq!(monitor.active_sessions(), 0);
    let insert = monitor
        .top_queries(QuerySort::Calls, 50)
        .into_iter()
        .find(|s| s.text.starts_with("INSERT INTO items"))
        .expect("insert recorded");
    assert_eq!(insert.calls, 3);
}

/// A malformed statement is a syntax error; a duplicate key a constraint
/// violation.
pub async fn errors_are_classified<DB>(pool: MonitoredPool<DB>)
where
    DB: MonitoredDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    create_items(&pool).await;
    let monitor = pool.monitor().clone();

    let err = exec(&pool, "SELEC id FROM items").await.unwrap_err();
    assert_eq!(dbwarden_sqlx::classify(&err), ErrorClass::SyntaxError, "{err}");
    let err = exec(&pool, "SELECT id FROM no_such_table").await.unwrap_err();
    assert_eq!(dbwarden_sqlx::classify(&err), ErrorClass::SyntaxError, "{err}");
    assert_eq!(class_count(&monitor, ErrorClass::SyntaxError), 2);

    exec(&pool, "INSERT INTO items (id, name) VALUES (1, 'a')").await.unwrap();
    let err = exec(&pool, "INSERT INTO items (id, name) VALUES (1, 'b')").await.unwrap_err();
    assert_eq!(dbwarden_sqlx::classify(&err), ErrorClass::ConstraintViolation, "{err}");
    assert_eq!(class_count(&monitor, ErrorClass::ConstraintViolation), 1);

    let insert = monitor
        .top_queries(QuerySort::Calls, 50)
        .into_iter()
        .find(|s| s.text.starts_with("INSERT INTO items"))
        .expect("insert recorded");
    assert_eq!((insert.calls, insert.errors), (2, 1));
    assert_eq!(monitor.snapshot().query_metrics.failed, 3);
}

/// With one connection held, a second checkout times out and is counted as
/// a pool timeout.
pub async fn pool_exhaustion_is_a_pool_timeout<DB>(pool: MonitoredPool<DB>)
where
    DB: MonitoredDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    assert_eq!(pool.inner().options().get_max_connections(), 1);
    let monitor = pool.monitor().clone();
    let held = pool.acquire().await.unwrap();
    let started = std::time::Instant::now();
    let err = pool.acquire().await.unwrap_err();
    assert!(matches!(err, sqlx::Error::PoolTimedOut), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(150));
    // Through the executor as well.
    let err = exec(&pool, "SELECT 1").await.unwrap_err();
    assert!(matches!(err, sqlx::Error::PoolTimedOut), "{err}");

    let sample = pool.sample();
    assert_eq!((sample.size, sample.in_use, sample.max), (1, 1, 1));
    monitor.tick();
    let timeouts = monitor.signal_value(&Signal::PoolTimeouts { window: Window::FiveMinutes }).unwrap();
    assert_eq!(timeouts, 2.0);
    let snap = monitor.snapshot();
    assert_eq!(snap.pool_metrics.timeouts, 2);
    assert_eq!(class_count(&monitor, ErrorClass::PoolTimeout), 2);
    assert_eq!(monitor.checkouts().len(), 1, "the held connection");
    drop(held);
    assert!(monitor.checkouts().is_empty());
    exec(&pool, "SELECT 1").await.unwrap();
}

/// A stream dropped before its end is recorded once, with the rows seen.
pub async fn dropped_stream_is_recorded<DB>(pool: MonitoredPool<DB>)
where
    DB: MonitoredDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    create_items(&pool).await;
    for id in 1..=5 {
        exec(&pool, &format!("INSERT INTO items (id, name) VALUES ({id}, 'n{id}')")).await.unwrap();
    }
    {
        let mut rows = sqlx::query::<DB>("SELECT id FROM items ORDER BY id").fetch(&pool);
        let first = rows.next().await.unwrap();
        assert!(first.is_ok());
    }
    let monitor = pool.monitor();
    let select = monitor
        .top_queries(QuerySort::Calls, 50)
        .into_iter()
        .find(|s| s.text.starts_with("SELECT id FROM items ORDER BY"))
        .expect("select recorded");
    assert_eq!(select.calls, 1);
    assert_eq!(select.errors, 0);
    assert!(select.rows >= 1);
    assert_eq!(monitor.active_sessions(), 0);
}

/// The sampler records pool samples until stopped.
pub async fn sampler_records_samples<DB>(pool: MonitoredPool<DB>)
where
    DB: MonitoredDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    exec(&pool, "SELECT 1").await.unwrap();
    let sampler = pool.spawn_sampler(Duration::from_millis(20)).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    sampler.stop();
    let current = pool.monitor().snapshot().pool_metrics.current.expect("a sample");
    assert!(current.sample.size >= 1);
    assert_eq!(current.sample.max, pool.inner().options().get_max_connections());
    // Connections opened through the builder's hook were counted.
    assert!(pool.monitor().snapshot().pool_metrics.connections_opened >= 1);
}

/// Work done inside a request is attributed to it: its checkouts name the
/// request id and route, its statements add to its database time and count,
/// and a statement repeated per item is reported as N+1 with the route.
/// Named operations count their calls, failures and statements, and their
/// errors name them.
pub async fn requests_and_operations_are_attributed<DB>(pool: MonitoredPool<DB>)
where
    DB: MonitoredDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    use dbwarden_core::context::{RequestContext, with_request};
    use dbwarden_sqlx::OperationExt;

    create_items(&pool).await;
    exec(&pool, "INSERT INTO items (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e'), (6, 'f')")
        .await
        .unwrap();
    let monitor = pool.monitor().clone();
    // Local statements are fast: let any total count as N+1 time.
    let mut thresholds = (*monitor.thresholds()).clone();
    thresholds.n_plus_one_min_total = Duration::from_nanos(1);
    monitor.set_thresholds(thresholds).unwrap();

    let ctx = RequestContext::new("req-7", "GET", "/items/{id}/related");
    monitor.request_started();
    let holder = with_request(ctx.clone(), async {
        let conn = pool.acquire().await.unwrap();
        let holder = monitor.checkouts().into_iter().find(|c| Some(c.id) == conn.checkout_id()).unwrap().holder;
        drop(conn);
        exec(&pool, "SELECT id FROM items WHERE id > 0").await.unwrap();
        for id in 1..=6 {
            exec(&pool, &format!("SELECT name FROM items WHERE id = {id}")).await.unwrap();
        }
        holder
    })
    .await;
    monitor.finish_request(&ctx, 200, Duration::from_millis(20));
    assert_eq!(holder.request_id.as_deref(), Some("req-7"));
    assert_eq!(holder.route.as_deref(), Some("/items/{id}/related"));
    assert_eq!(ctx.db_queries(), 7);
    assert!(ctx.db_time() > Duration::ZERO);
    let found = monitor.n_plus_one(10);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].count, 6);
    assert_eq!(found[0].route, "/items/{id}/related");
    assert_eq!(found[0].table.as_deref(), Some("items"));
    assert!(!found[0].text.contains('6'), "literal leaked: {}", found[0].text);
    let route = monitor.routes().into_iter().find(|r| r.route.as_deref() == Some("/items/{id}/related")).unwrap();
    assert!((route.avg_db_queries - 7.0).abs() < 1e-9);
    // Outside the request nothing is attributed.
    exec(&pool, "SELECT id FROM items WHERE id = 1").await.unwrap();
    assert_eq!(ctx.db_queries(), 7);

    for _ in 0..2 {
        async { exec(&pool, "SELECT name FROM items WHERE id = 2").await }
            .operation(&monitor, "load_item")
            .await
            .unwrap();
    }
    let err = async {
        exec(&pool, "SELECT id FROM items WHERE id = 1").await?;
        exec(&pool, "INSERT INTO items (id, name) VALUES (1, 'dup')").await
    }
    .operation(&monitor, "rename_item")
    .await
    .unwrap_err();
    assert_eq!(dbwarden_sqlx::classify(&err), ErrorClass::ConstraintViolation);
    let ops = monitor.operations();
    let load = ops.iter().find(|o| o.operation.as_deref() == Some("load_item")).unwrap();
    assert_eq!((load.calls, load.failures), (2, 0));
    assert!((load.avg_db_queries - 1.0).abs() < 1e-9);
    let rename = ops.iter().find(|o| o.operation.as_deref() == Some("rename_item")).unwrap();
    assert_eq!((rename.calls, rename.failures), (1, 1));
    assert!((rename.avg_db_queries - 2.0).abs() < 1e-9);
    let errors = monitor.errors(Window::FiveMinutes);
    let named = errors.recent.iter().find(|e| e.class == ErrorClass::ConstraintViolation).unwrap();
    assert_eq!(named.operation.as_deref(), Some("rename_item"));
}

/// Errors through the pool are counted per class in every window, with a
/// per-second rate, and the same class on the same statement is grouped
/// into one recurring pattern.
pub async fn error_rates_per_class_and_patterns<DB>(pool: MonitoredPool<DB>)
where
    DB: MonitoredDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    create_items(&pool).await;
    exec(&pool, "INSERT INTO items (id, name) VALUES (1, 'a')").await.unwrap();
    for name in ["x", "y", "z"] {
        exec(&pool, &format!("INSERT INTO items (id, name) VALUES (1, '{name}')")).await.unwrap_err();
    }
    for _ in 0..2 {
        exec(&pool, "SELECT nope FROM items").await.unwrap_err();
    }
    for i in 0..10 {
        exec(&pool, &format!("SELECT name FROM items WHERE id = {i}")).await.unwrap();
    }
    let monitor = pool.monitor();
    monitor.tick();
    for window in [Window::FiveMinutes, Window::FifteenMinutes, Window::OneHour] {
        let report = monitor.errors(window);
        assert_eq!(report.by_class.get(&ErrorClass::ConstraintViolation), Some(&3), "{window}: {report:?}");
        assert_eq!(report.by_class.get(&ErrorClass::SyntaxError), Some(&2), "{window}");
        assert_eq!(report.errors, 5, "{window}");
        assert!(report.operations >= 16, "{window}: {}", report.operations);
        assert!(report.error_rate > 0.0 && report.error_rate < 1.0);
        assert!(report.rate_per_second_by_class[&ErrorClass::ConstraintViolation] > 0.0);
        let dup = report.patterns.iter().find(|p| p.class == ErrorClass::ConstraintViolation).unwrap();
        assert_eq!(dup.count, 3, "the three duplicate inserts share one pattern");
        let query = dup.query.as_deref().unwrap();
        assert!(query.starts_with("INSERT INTO items") && !query.contains('x'), "{query}");
        assert!(report.recent.iter().all(|e| !e.message.contains("'x'")), "messages are redacted");
    }
}

/// The shared checks as `#[tokio::test]`s for a server backend whose test
/// file defines `Db` with `async fn new(test: &str) -> Db`,
/// `async fn pool(&self, max: u32)` and `async fn drop_schema(self)`.
#[macro_export]
macro_rules! server_backend_tests {
    ($($name:ident($max:expr)),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let db = Db::new(stringify!($name)).await;
                common::$name(db.pool($max).await).await;
                db.drop_schema().await;
            }
        )*
    };
}

/// A temporary SQLite database file, removed on drop.
pub struct SqliteDb {
    _dir: tempfile::TempDir,
    pub options: sqlx::sqlite::SqliteConnectOptions,
}

/// A fresh SQLite database in a temporary directory.
pub fn sqlite_db() -> SqliteDb {
    let dir = tempfile::tempdir().unwrap();
    let options =
        sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("test.db")).create_if_missing(true);
    SqliteDb { _dir: dir, options }
}

/// A monitored pool of at most `max` connections on `db`, with its own monitor.
pub async fn sqlite_pool(db: &SqliteDb, max: u32, acquire_timeout: Duration) -> MonitoredPool<sqlx::Sqlite> {
    MonitoredPool::builder(
        sqlx::sqlite::SqlitePoolOptions::new().max_connections(max).acquire_timeout(acquire_timeout),
        dbwarden_core::Monitor::new(),
    )
    .connect_with(db.options.clone())
    .await
    .unwrap()
}

/// The PostgreSQL server the tests use.
pub fn pg_url() -> String {
    std::env::var("DBWARDEN_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The MariaDB / MySQL server the tests use.
pub fn mysql_url() -> String {
    std::env::var("DBWARDEN_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// A PostgreSQL schema of the test's own; an unreachable server fails the test.
pub struct PgDb {
    schema: String,
}

impl PgDb {
    pub async fn new(test: &str) -> PgDb {
        use sqlx::Connection;
        let schema = unique(test);
        let mut admin = sqlx::PgConnection::connect(&pg_url()).await.expect("PostgreSQL must be reachable");
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut admin).await.unwrap();
        PgDb { schema }
    }

    /// A pool of at most `max` connections, 200 ms acquire timeout, its own monitor.
    pub async fn pool(&self, max: u32) -> MonitoredPool<sqlx::Postgres> {
        self.pool_with(max, Duration::from_millis(200), dbwarden_core::Monitor::new()).await
    }

    pub async fn pool_with(
        &self,
        max: u32,
        acquire_timeout: Duration,
        monitor: dbwarden_core::Monitor,
    ) -> MonitoredPool<sqlx::Postgres> {
        use std::str::FromStr;
        let options = sqlx::postgres::PgConnectOptions::from_str(&pg_url())
            .unwrap()
            .options([("search_path", self.schema.as_str())]);
        MonitoredPool::builder(
            sqlx::postgres::PgPoolOptions::new().max_connections(max).acquire_timeout(acquire_timeout),
            monitor,
        )
        .connect_with(options)
        .await
        .unwrap()
    }

    pub async fn drop_schema(self) {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
        sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", self.schema))).execute(&mut admin).await.unwrap();
    }
}

/// A MariaDB / MySQL database of the test's own; an unreachable server fails the test.
pub struct MyDb {
    schema: String,
}

impl MyDb {
    pub async fn new(test: &str) -> MyDb {
        use sqlx::Connection;
        let schema = unique(test);
        let mut admin = sqlx::MySqlConnection::connect(&mysql_url()).await.expect("MariaDB must be reachable");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {schema}"))).execute(&mut admin).await.unwrap();
        MyDb { schema }
    }

    /// A pool of at most `max` connections, 200 ms acquire timeout, its own monitor.
    pub async fn pool(&self, max: u32) -> MonitoredPool<sqlx::MySql> {
        self.pool_with(max, Duration::from_millis(200), dbwarden_core::Monitor::new()).await
    }

    pub async fn pool_with(
        &self,
        max: u32,
        acquire_timeout: Duration,
        monitor: dbwarden_core::Monitor,
    ) -> MonitoredPool<sqlx::MySql> {
        use std::str::FromStr;
        let options = sqlx::mysql::MySqlConnectOptions::from_str(&mysql_url()).unwrap().database(&self.schema);
        MonitoredPool::builder(
            sqlx::mysql::MySqlPoolOptions::new().max_connections(max).acquire_timeout(acquire_timeout),
            monitor,
        )
        .connect_with(options)
        .await
        .unwrap()
    }

    pub async fn drop_schema(self) {
        use sqlx::Connection;
        let mut admin = sqlx::MySqlConnection::connect(&mysql_url()).await.unwrap();
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE {}", self.schema))).execute(&mut admin).await.unwrap();
    }
}
