//! Load-and-save throughput: dbwarden's `SqlSessionStore` against
//! tower-sessions-sqlx-store 0.15's `PostgresStore`, on the same PostgreSQL,
//! in one run, rounds interleaved (the order alternates every round).
//!
//! Run from this directory: `cargo run --release` (PostgreSQL URL from
//! DBWARDEN_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test).
//!
//! Each operation is one request's session work: load a session by id, then
//! save it — "modified" changes one key first (both stores must write),
//! "unmodified" does not (what tower-sessions does on every request with
//! `Expiry::OnInactivity`), "mixed" changes one request in 50 (seed 001's
//! workload). 1000 sessions of ~300 bytes, 16 concurrent
//! tasks on disjoint sessions, 16 pooled connections per store.
//!
//! For profiling one side under `perf`, `strace -c` or callgrind:
//! `COMPARE_ONLY=dbwarden` or `COMPARE_ONLY=tower-sessions` runs one store,
//! `COMPARE_MODE=modified`, `unmodified` or `mixed` one mode, and
//! `COMPARE_ROUNDS=n` sets the rounds (default 30). Ratios need both sides.
//! `./callgrind.sh <store> <mode>` turns that into instructions per
//! operation (whole process, and the store's `load` and `save` alone), which
//! unlike wall-clock figures do not depend on what else the machine runs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dbwarden_sessions::{SchemaConfig, SessionDatabase, SqlSessionStore, StoreConfig};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx08::postgres::PgPoolOptions as PgPoolOptions08;

const SESSIONS: usize = 1000;
const TASKS: usize = 16;
const OPS_PER_ROUND: usize = 2000;
const DEFAULT_ROUNDS: usize = 30;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `application_name` of each store's connections, to find their server processes.
const OURS_APP: &str = "dbwarden-compare-ours";
const THEIRS_APP: &str = "dbwarden-compare-theirs";

fn sample_data(i: usize) -> Vec<(String, serde_json::Value)> {
    vec![
        ("user_id".to_owned(), json!(format!("user-{i}"))),
        ("csrf".to_owned(), json!("c8b7a0f3e1d24a6b9f0e8d7c6b5a4f3e2d1c0b9a")),
        ("cart".to_owned(), json!([{"sku": "A-100", "qty": 2}, {"sku": "B-220", "qty": 1}])),
        ("prefs".to_owned(), json!({"theme": "dark", "lang": "en", "tz": "Europe/Berlin"})),
        ("flash".to_owned(), json!(null)),
        ("n".to_owned(), json!(0)),
    ]
}

fn in_one_day() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(1)
}

mod ours {
    use tower_sessions_core::SessionStore;
    use tower_sessions_core::session::{Id, Record};

    use super::*;

    pub async fn setup(url: &str, table: &str) -> Result<(SqlSessionStore, Vec<Id>), BoxError> {
        let options: sqlx::postgres::PgConnectOptions = url.parse()?;
        let pool =
            PgPoolOptions::new().max_connections(TASKS as u32).connect_with(options.application_name(OURS_APP)).await?;
        let schema = SchemaConfig::new(table)?;
        let store =
            SqlSessionStore::new(SessionDatabase::from_pg_pool(pool), StoreConfig::default().with_schema(schema));
        store.migrate().await?;
        let mut ids = Vec::with_capacity(SESSIONS);
        for i in 0..SESSIONS {
            let mut record = Record {
                id: Id(0),
                data: sample_data(i).into_iter().collect::<HashMap<_, _>>(),
                expiry_date: in_one_day(),
            };
            store.create(&mut record).await?;
            ids.push(record.id);
        }
        Ok((store, ids))
    }

    pub async fn op(store: &SqlSessionStore, id: &Id, modify: bool) -> Result<(), BoxError> {
        let mut record = store.load(id).await?.ok_or("session vanished")?;
        if modify {
            let n = record.data.get("n").and_then(|v| v.as_i64()).unwrap_or(0);
            record.data.insert("n".to_owned(), json!(n + 1));
        }
        record.expiry_date = in_one_day();
        store.save(&record).await?;
        Ok(())
    }
}

mod theirs {
    use tower_sessions_core014::SessionStore;
    use tower_sessions_core014::session::{Id, Record};
    use tower_sessions_sqlx_store::PostgresStore;

    use super::*;

    pub async fn setup(url: &str, schema: &str) -> Result<(PostgresStore, Vec<Id>), BoxError> {
        let options: sqlx08::postgres::PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions08::new()
            .max_connections(TASKS as u32)
            .connect_with(options.application_name(THEIRS_APP))
            .await?;
        let store = PostgresStore::new(pool).with_schema_name(schema)?;
        store.migrate().await?;
        let mut ids = Vec::with_capacity(SESSIONS);
        for i in 0..SESSIONS {
            let mut record = Record {
                id: Id::default(),
                data: sample_data(i).into_iter().collect::<HashMap<_, _>>(),
                expiry_date: in_one_day(),
            };
            store.create(&mut record).await?;
            ids.push(record.id);
        }
        Ok((store, ids))
    }

    pub async fn op(store: &PostgresStore, id: &Id, modify: bool) -> Result<(), BoxError> {
        let mut record = store.load(id).await?.ok_or("session vanished")?;
        if modify {
            let n = record.data.get("n").and_then(|v| v.as_i64()).unwrap_or(0);
            record.data.insert("n".to_owned(), json!(n + 1));
        }
        record.expiry_date = in_one_day();
        store.save(&record).await?;
        Ok(())
    }
}

/// Which requests change the session.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Every request changes one key.
    Modified,
    /// No request changes the session.
    Unmodified,
    /// One request in 50 changes one key (seed 001's workload, as in the
    /// `store_writes` benchmark: 2 % of the requests change the session).
    Mixed,
}

impl Mode {
    fn modifies(self, request: usize) -> bool {
        match self {
            Mode::Modified => true,
            Mode::Unmodified => false,
            Mode::Mixed => request.is_multiple_of(50),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Mode::Modified => "load + modify + save",
            Mode::Unmodified => "load + save (unmodified)",
            Mode::Mixed => "load + save, 2 % modified",
        }
    }
}

/// Runs OPS_PER_ROUND operations over TASKS tasks; returns operations per second.
async fn round<S, I, F, Fut>(store: &S, ids: &Arc<Vec<I>>, mode: Mode, op: F) -> Result<f64, BoxError>
where
    S: Clone + Send + Sync + 'static,
    I: Send + Sync + 'static,
    F: Fn(S, Arc<Vec<I>>, usize, bool) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = Result<(), BoxError>> + Send,
{
    let started = Instant::now();
    let per_task = OPS_PER_ROUND / TASKS;
    let mut handles = Vec::with_capacity(TASKS);
    for task in 0..TASKS {
        let store = store.clone();
        let ids = ids.clone();
        handles.push(tokio::spawn(async move {
            for k in 0..per_task {
                // Task t owns sessions t, t + TASKS, …: no two tasks share a session.
                let index = (task + (k * TASKS)) % ids.len();
                op(store.clone(), ids.clone(), index, mode.modifies(k * TASKS + task)).await?;
            }
            Ok::<(), BoxError>(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    Ok((per_task * TASKS) as f64 / started.elapsed().as_secs_f64())
}

/// This process's user + system CPU time, from /proc (clock ticks of 10 ms).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// User + system CPU time of the server processes serving `application`'s
/// connections (PostgreSQL on this machine), from /proc.
async fn server_cpu(admin: &sqlx::PgPool, application: &str) -> Result<Duration, BoxError> {
    let pids: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
        .bind(application)
        .fetch_all(admin)
        .await?;
    let mut ticks = 0;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        ticks += (11..=12).filter_map(|i| fields.get(i).and_then(|v| v.parse::<u64>().ok())).sum::<u64>();
    }
    Ok(Duration::from_millis(ticks * 10))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) { (values[mid - 1] + values[mid]) / 2.0 } else { values[mid] }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let url = std::env::var("DBWARDEN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let only = std::env::var("COMPARE_ONLY").ok();
    let run_ours_side = only.as_deref().is_none_or(|o| o == "dbwarden");
    let run_theirs_side = only.as_deref().is_none_or(|o| o == "tower-sessions");
    if !run_ours_side && !run_theirs_side {
        return Err("COMPARE_ONLY must be dbwarden or tower-sessions".into());
    }
    let modes: Vec<Mode> = match std::env::var("COMPARE_MODE").ok().as_deref() {
        None => vec![Mode::Modified, Mode::Unmodified, Mode::Mixed],
        Some("modified") => vec![Mode::Modified],
        Some("unmodified") => vec![Mode::Unmodified],
        Some("mixed") => vec![Mode::Mixed],
        Some(_) => return Err("COMPARE_MODE must be modified, unmodified or mixed".into()),
    };
    let rounds: usize = match std::env::var("COMPARE_ROUNDS") {
        Ok(value) => value.parse().ok().filter(|&n| n > 0).ok_or("COMPARE_ROUNDS must be a whole number above 0")?,
        Err(_) => DEFAULT_ROUNDS,
    };
    let suffix = std::process::id();
    let our_table = format!("bench_dbw_sessions_{suffix}");
    let their_schema = format!("bench_tss_{suffix}");
    let (our_store, our_ids) = ours::setup(&url, &our_table).await?;
    let (their_store, their_ids) = theirs::setup(&url, &their_schema).await?;
    let (our_ids, their_ids) = (Arc::new(our_ids), Arc::new(their_ids));
    let admin = PgPoolOptions::new().max_connections(1).connect(&url).await?;

    println!(
        "session-store-compare: {SESSIONS} sessions, {TASKS} tasks, {OPS_PER_ROUND} ops x {rounds} rounds per side and mode"
    );
    for mode in modes {
        let (mut ours_ops, mut theirs_ops) = (Vec::new(), Vec::new());
        let (mut ours_cpu, mut theirs_cpu) = (Duration::ZERO, Duration::ZERO);
        let (mut ours_server, mut theirs_server) = (Duration::ZERO, Duration::ZERO);
        let run_ours =
            || round(&our_store, &our_ids, mode, |s, ids, i, m| async move { ours::op(&s, &ids[i], m).await });
        let run_theirs =
            || round(&their_store, &their_ids, mode, |s, ids, i, m| async move { theirs::op(&s, &ids[i], m).await });
        // One warm-up round each, not counted.
        if run_ours_side {
            run_ours().await?;
        }
        if run_theirs_side {
            run_theirs().await?;
        }
        for r in 0..rounds {
            for side in if r % 2 == 0 { [0, 1] } else { [1, 0] } {
                let cpu = process_cpu();
                if side == 0 && run_ours_side {
                    let server = server_cpu(&admin, OURS_APP).await?;
                    ours_ops.push(run_ours().await?);
                    ours_cpu += process_cpu() - cpu;
                    ours_server += server_cpu(&admin, OURS_APP).await?.saturating_sub(server);
                } else if side == 1 && run_theirs_side {
                    let server = server_cpu(&admin, THEIRS_APP).await?;
                    theirs_ops.push(run_theirs().await?);
                    theirs_cpu += process_cpu() - cpu;
                    theirs_server += server_cpu(&admin, THEIRS_APP).await?.saturating_sub(server);
                }
            }
        }
        let ops = (OPS_PER_ROUND * rounds) as f64;
        let cpu_per_op = |cpu: Duration| cpu.as_secs_f64() * 1e6 / ops;
        println!("{}:", mode.describe());
        if run_theirs_side {
            println!(
                "  tower-sessions-sqlx-store PostgresStore  median {:>8.0} ops/s  client cpu {:.1} us/op  rounds {:?}",
                median(&mut theirs_ops.clone()),
                cpu_per_op(theirs_cpu),
                theirs_ops.iter().map(|v| v.round() as i64).collect::<Vec<_>>()
            );
        }
        if run_ours_side {
            println!(
                "  dbwarden SqlSessionStore                 median {:>8.0} ops/s  client cpu {:.1} us/op  rounds {:?}",
                median(&mut ours_ops.clone()),
                cpu_per_op(ours_cpu),
                ours_ops.iter().map(|v| v.round() as i64).collect::<Vec<_>>()
            );
        }
        if run_ours_side && run_theirs_side {
            let (o, t) = (median(&mut ours_ops.clone()), median(&mut theirs_ops.clone()));
            let mut paired: Vec<f64> = ours_ops.iter().zip(&theirs_ops).map(|(o, t)| o / t).collect();
            println!(
                "  ratio dbwarden / tower-sessions-sqlx-store: {:.2}x of the medians, {:.2}x median of the {rounds} paired rounds",
                o / t,
                median(&mut paired)
            );
            println!(
                "  client cpu per op: tower-sessions-sqlx-store {:.1} us, dbwarden {:.1} us",
                cpu_per_op(theirs_cpu),
                cpu_per_op(ours_cpu)
            );
            println!(
                "  server cpu per op: tower-sessions-sqlx-store {:.1} us, dbwarden {:.1} us",
                cpu_per_op(theirs_server),
                cpu_per_op(ours_server)
            );
        }
    }
    let stats = dbwarden_sessions::SessionStoreExt::stats(&our_store);
    println!("dbwarden store counters: {stats:?}");

    // Clean up both sides.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (schema, table) in [("public", our_table.as_str()), (their_schema.as_str(), "session")] {
        let row: (i64, i64) = sqlx::query_as(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2",
        )
        .bind(schema)
        .bind(table)
        .fetch_one(&admin)
        .await
        .unwrap_or((0, 0));
        println!("{schema}.{table}: updates {} of which HOT {}", row.0, row.1);
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {our_table}"))).execute(&admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM dbwarden_migrations WHERE subject = '{our_table}'")))
        .execute(&admin)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {their_schema} CASCADE"))).execute(&admin).await?;
    Ok(())
}
