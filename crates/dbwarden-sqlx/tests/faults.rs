//! Faults injected into real databases, and what the monitor makes of them:
//! a leaked checkout (SQLite and PostgreSQL), statement timeouts
//! (PostgreSQL and MariaDB), and a PostgreSQL backend killed in the middle
//! of a unit of work, recovered by [`MonitoredPool::recover`].
//!
//! Servers: `DBWARDEN_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and `DBWARDEN_TEST_MYSQL_URL`
//! (default `mysql://root@127.0.0.1:3306/test`). Each test works in its own
//! schema / database, dropped at the end. A server that cannot be reached
//! fails the test.

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dbwarden_core::{
    AlertState, CollectingSink, ErrorClass, Event, EventSink, Holder, ManualClock, Monitor, QuerySort, Thresholds,
    Timestamp,
};
use dbwarden_sqlx::{MonitoredConnection, MonitoredDatabase, MonitoredPool, RecoveryPolicy};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Connection, PgConnection, Postgres};

use common::{MyDb, PgDb, pg_url};

/// A monitor on a manual clock with a 5 s leak threshold, its clock, and a
/// sink collecting its events.
fn leak_monitor() -> (Monitor, ManualClock, Arc<CollectingSink>) {
    let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
    let thresholds = Thresholds { leak_detection: Duration::from_secs(5), ..Thresholds::default() };
    let monitor = Monitor::builder().clock(clock.clone()).thresholds(thresholds).build().unwrap();
    let sink = Arc::new(CollectingSink::new());
    monitor.subscribe(Arc::clone(&sink) as Arc<dyn EventSink>);
    (monitor, clock, sink)
}

fn firing_leak_alerts(monitor: &Monitor) -> usize {
    monitor.alerts().iter().filter(|a| a.rule == "connection_leaks" && a.state == AlertState::Firing).count()
}

/// A held checkout past the leak threshold is reported (registry, event,
/// alert) with its holder; returning it is reported and the alert resolves.
async fn leak_detected_then_returned<DB: MonitoredDatabase>(
    pool: MonitoredPool<DB>,
    clock: ManualClock,
    sink: Arc<CollectingSink>,
) {
    let monitor = pool.monitor().clone();
    let holder =
        Holder { span: Some("faults::load_report".into()), route: Some("/reports/{id}".into()), ..Holder::default() };
    let conn = pool.acquire_as(holder).await.unwrap();
    let id = conn.checkout_id().expect("tracked");

    clock.advance(Duration::from_secs(2));
    monitor.tick();
    assert!(!monitor.checkouts()[0].leak_suspected, "not yet past the threshold");
    assert_eq!(firing_leak_alerts(&monitor), 0);

    clock.advance(Duration::from_secs(4));
    monitor.tick();
    let live = monitor.checkouts();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].id, id);
    assert!(live[0].leak_suspected);
    assert!(live[0].age_seconds >= 6.0, "{}", live[0].age_seconds);
    assert_eq!(live[0].holder.span.as_deref(), Some("faults::load_report"));
    assert_eq!(live[0].holder.route.as_deref(), Some("/reports/{id}"));
    let events = sink.take();
    let leak = events
        .iter()
        .find_map(|e| match e {
            Event::LeakSuspected(info) => Some(info),
            _ => None,
        })
        .expect("a LeakSuspected event");
    assert_eq!(leak.id, id);
    assert_eq!(leak.holder.span.as_deref(), Some("faults::load_report"));
    assert_eq!(firing_leak_alerts(&monitor), 1, "{:#?}", monitor.alerts());

    // Reported once only.
    clock.advance(Duration::from_secs(1));
    monitor.tick();
    assert!(!sink.take().iter().any(|e| matches!(e, Event::LeakSuspected(_))));

    drop(conn);
    let returned = sink
        .take()
        .into_iter()
        .find_map(|e| match e {
            Event::LeakReturned(info) => Some(info),
            _ => None,
        })
        .expect("a LeakReturned event");
    assert_eq!(returned.id, id);
    assert!(monitor.checkouts().is_empty());

    clock.advance(Duration::from_secs(1));
    monitor.tick();
    assert_eq!(firing_leak_alerts(&monitor), 0, "{:#?}", monitor.alerts());
    assert!(
        monitor.alert_history().iter().any(|a| a.rule == "connection_leaks" && a.state == AlertState::Resolved),
        "{:#?}",
        monitor.alert_history()
    );
}

#[tokio::test]
async fn sqlite_leak_detected_then_returned() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new().filename(dir.path().join("leak.db")).create_if_missing(true);
    let (monitor, clock, sink) = leak_monitor();
    let pool = MonitoredPool::builder(SqlitePoolOptions::new().max_connections(2), monitor)
        .connect_with(options)
        .await
        .unwrap();
    leak_detected_then_returned(pool, clock, sink).await;
}

#[tokio::test]
async fn postgres_leak_detected_then_returned() {
    let db = PgDb::new("leak").await;
    let (monitor, clock, sink) = leak_monitor();
    let pool = db.pool_with(2, Duration::from_secs(2), monitor).await;
    leak_detected_then_returned(pool.clone(), clock, sink).await;
    pool.inner().close().await;
    db.drop_schema().await;
}

fn class_count(monitor: &Monitor, class: ErrorClass) -> u64 {
    monitor.snapshot().error_metrics.by_class.get(&class).copied().unwrap_or(0)
}

/// `statement_timeout` cancels the statement with SQLSTATE 57014.
#[tokio::test]
async fn postgres_statement_timeout_is_classified() {
    let db = PgDb::new("stmt_timeout").await;
    let pool = db.pool_with(2, Duration::from_secs(2), Monitor::new()).await;
    let monitor = pool.monitor().clone();
    {
        let mut conn = pool.acquire().await.unwrap();
        sqlx::query("SET statement_timeout = '100ms'").execute(&mut conn).await.unwrap();
        let err = sqlx::query("SELECT pg_sleep(1)").execute(&mut conn).await.unwrap_err();
        let code = err.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("57014"), "{err}");
        assert_eq!(dbwarden_sqlx::classify(&err), ErrorClass::StatementTimeout, "{err}");
        // The connection is still usable.
        sqlx::query("SELECT 1").execute(&mut conn).await.unwrap();
    }
    assert_eq!(class_count(&monitor, ErrorClass::StatementTimeout), 1);
    let sleep = monitor
        .top_queries(QuerySort::Calls, 50)
        .into_iter()
        .find(|s| s.text.starts_with("SELECT pg_sleep"))
        .expect("recorded");
    assert_eq!((sleep.calls, sleep.errors), (1, 1));
    pool.inner().close().await;
    db.drop_schema().await;
}

/// MariaDB's `max_statement_time` interrupts the statement with error 1969
/// (ER_STATEMENT_TIMEOUT). On MariaDB 10.11, an interrupted `SLEEP()` does
/// error out this way (it does not return 1 as `KILL QUERY` makes it do).
#[tokio::test]
async fn mariadb_statement_timeout_is_classified() {
    let db = MyDb::new("stmt_timeout").await;
    let pool = db.pool_with(2, Duration::from_secs(2), Monitor::new()).await;
    let monitor = pool.monitor().clone();
    {
        let mut conn = pool.acquire().await.unwrap();
        sqlx::query("SET SESSION max_statement_time = 0.1").execute(&mut conn).await.unwrap();
        let err = sqlx::query("SELECT SLEEP(1)").fetch_all(&mut conn).await.unwrap_err();
        let number = err
            .as_database_error()
            .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
            .map(|e| e.number());
        assert_eq!(number, Some(1969), "{err}");
        assert_eq!(dbwarden_sqlx::classify(&err), ErrorClass::StatementTimeout, "{err}");
        sqlx::query("SELECT 1").fetch_all(&mut conn).await.unwrap();
    }
    assert_eq!(class_count(&monitor, ErrorClass::StatementTimeout), 1);
    pool.inner().close().await;
    db.drop_schema().await;
}

/// The backend of the connection a unit of work runs on is terminated
/// (`pg_terminate_backend`) in the middle of the work: the next statement
/// fails with a connection-level error, the recovery closes that
/// connection, re-runs the work on a fresh one, and counts the recovery.
#[tokio::test]
async fn postgres_terminated_backend_is_recovered() {
    let db = PgDb::new("terminate").await;
    let pool = db.pool_with(2, Duration::from_secs(2), Monitor::new()).await;
    let monitor = pool.monitor().clone();
    common::create_items(&pool).await;
    common::exec(&pool, "INSERT INTO items (id, name) VALUES (1, 'alice')").await.unwrap();

    let runs = Arc::new(AtomicU32::new(0));
    let killed = Arc::new(std::sync::Mutex::new(None::<i32>));
    let policy = RecoveryPolicy::builder().initial_backoff(Duration::from_millis(10)).build().unwrap();
    let (counter, victim) = (Arc::clone(&runs), Arc::clone(&killed));
    let name: String = pool
        .recover("load_user", &policy, move |conn: &mut MonitoredConnection<Postgres>| {
            let run = counter.fetch_add(1, Ordering::SeqCst);
            let victim = Arc::clone(&victim);
            Box::pin(async move {
                let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn).await?;
                if run == 0 {
                    let mut admin = PgConnection::connect(&pg_url()).await?;
                    // Waits (up to 5 s) until the backend is gone.
                    let done: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
                        .bind(pid)
                        .fetch_one(&mut admin)
                        .await?;
                    assert!(done);
                    *victim.lock().unwrap() = Some(pid);
                } else {
                    assert_ne!(Some(pid), *victim.lock().unwrap(), "re-run on a fresh connection");
                }
                sqlx::query_scalar("SELECT name FROM items WHERE id = 1").fetch_one(&mut *conn).await
            })
        })
        .await
        .unwrap();
    assert_eq!(name, "alice");
    assert_eq!(runs.load(Ordering::SeqCst), 2);

    let snap = monitor.snapshot();
    let rm = &snap.recovery_metrics;
    assert_eq!((rm.recovery_attempts, rm.successful_recoveries, rm.failed_recoveries), (1, 1, 0));
    assert_eq!(rm.recovery_success_rate, 1.0);
    let op = rm.by_operation.iter().find(|o| o.operation.as_deref() == Some("load_user")).expect("by operation");
    assert_eq!((op.attempts, op.failures), (1, 0));
    assert_eq!(
        snap.error_metrics.by_class.get(&ErrorClass::ConnectionFailure),
        Some(&1),
        "{:?}",
        snap.error_metrics.by_class
    );
    assert_eq!(monitor.active_sessions(), 0);

    // The pool still works, and the killed connection is not in it.
    let pids: Vec<i32> = {
        let mut conns = Vec::new();
        for _ in 0..2 {
            conns.push(pool.acquire().await.unwrap());
        }
        let mut pids = Vec::new();
        for conn in &mut conns {
            pids.push(sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn).await.unwrap());
        }
        pids
    };
    let victim = killed.lock().unwrap().expect("the first run killed its backend");
    assert!(!pids.contains(&victim), "{pids:?} {victim}");
    pool.inner().close().await;
    db.drop_schema().await;
}
