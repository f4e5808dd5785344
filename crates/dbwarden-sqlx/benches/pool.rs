//! Point queries through a `MonitoredPool` against the bare sqlx `Pool`:
//! SQLite in memory and PostgreSQL over loopback, both sides in one run.
//!
//! `RUST_LIB_BACKTRACE=0 taskset -c 0 cargo bench -p dbwarden-sqlx --bench pool`
//!
//! `RUST_LIB_BACKTRACE=0` is a leftover of when `RUST_BACKTRACE=1` made every
//! checkout capture a backtrace; that is now opt-in through
//! `DBWARDEN_CHECKOUT_BACKTRACE`, and the variable no longer matters. `taskset -c 0`
//! keeps sqlx's SQLite worker thread on the runtime's CPU; left to the
//! scheduler, a cross-CPU wake-up in the VM costs 10× the query and swings
//! between runs.
//!
//! Both sides use the same sqlx pool of one connection (the monitored side
//! wraps a clone of it with `MonitoredPool::new`), so they run on the same
//! connection, statement cache, SQLite worker thread or PostgreSQL backend;
//! with two pools, where each one's worker or backend happened to be
//! scheduled decided the ratio (0.04× to 16× between trials).
//!
//! First an interleaved measurement: blocks of `BLOCK` queries alternate
//! between the bare pool and the monitored one (which side goes first swaps
//! every round), each block timed with `Instant` and added to its side's
//! total, so drift (thermal, other load) falls on both sides alike. It prints
//! each side's queries per second and the ratio, per trial and overall.
//! Then criterion measures each side on its own (same process, one after
//! the other) for its confidence intervals.
//!
//! Profiling mode: with `DBWARDEN_BENCH_PROFILE=<backend>-<side>` (`sqlite` or
//! `postgres`, `bare` or `monitored`) the binary skips both measurements and
//! runs `DBWARDEN_BENCH_QUERIES` (default 10 000) queries of that one side
//! after the setup, for an instruction-counting or scheduling profiler
//! (`valgrind --tool=callgrind`, `perf stat`): the difference between two
//! query counts is the cost per query, free of the setup.
//!
//! PostgreSQL: `DBWARDEN_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); the benchmark works in its own
//! schema `dbw_bench_<pid>` and drops it at the end. Skipped when the server
//! cannot be reached.

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};

use criterion::Criterion;
use dbwarden_core::Monitor;
use dbwarden_sqlx::MonitoredPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Executor, PgPool, Postgres, Row, Sqlite, SqlitePool};
use tokio::runtime::Runtime;

const ROWS: i64 = 10_000;
/// Queries per block in the interleaved measurement.
const BLOCK: u64 = 200;
/// Trials of the interleaved measurement, and each side's time per trial.
const TRIALS: u32 = 5;
const TRIAL_TIME: Duration = Duration::from_secs(3);

const SQLITE_QUERY: &str = "SELECT id, name FROM items WHERE id = ?";
const PG_QUERY: &str = "SELECT id, name FROM items WHERE id = $1";

/// Ids visited in a stride over the whole table.
struct Ids(i64);

impl Ids {
    fn next(&mut self) -> i64 {
        self.0 = (self.0 + 7_919) % ROWS;
        self.0 + 1
    }
}

async fn sqlite_block<'e, E>(exec: E, ids: &mut Ids, n: u64)
where
    E: Executor<'e, Database = Sqlite> + Copy,
{
    for _ in 0..n {
        let id = ids.next();
        let row = sqlx::query(SQLITE_QUERY).bind(id).fetch_one(exec).await.expect("point query");
        let got: i64 = row.get(0);
        assert_eq!(got, id);
        black_box(row.get::<&str, _>(1));
    }
}

async fn pg_block<'e, E>(exec: E, ids: &mut Ids, n: u64)
where
    E: Executor<'e, Database = Postgres> + Copy,
{
    for _ in 0..n {
        let id = ids.next();
        let row = sqlx::query(PG_QUERY).bind(id).fetch_one(exec).await.expect("point query");
        let got: i64 = row.get(0);
        assert_eq!(got, id);
        black_box(row.get::<&str, _>(1));
    }
}

/// Runs one side's block of `n` queries: `monitored` picks the side.
trait Sides {
    async fn block(&self, monitored: bool, ids: &mut Ids, n: u64);
}

struct SqliteSides {
    bare: SqlitePool,
    monitored: MonitoredPool<Sqlite>,
}

impl Sides for SqliteSides {
    async fn block(&self, monitored: bool, ids: &mut Ids, n: u64) {
        if monitored { sqlite_block(&self.monitored, ids, n).await } else { sqlite_block(&self.bare, ids, n).await }
    }
}

struct PgSides {
    bare: PgPool,
    monitored: MonitoredPool<Postgres>,
}

impl Sides for PgSides {
    async fn block(&self, monitored: bool, ids: &mut Ids, n: u64) {
        if monitored { pg_block(&self.monitored, ids, n).await } else { pg_block(&self.bare, ids, n).await }
    }
}

/// Alternating blocks until each side has run for `time`; returns each
/// side's (queries, elapsed).
async fn interleave(sides: &impl Sides, time: Duration) -> [(u64, Duration); 2] {
    let mut totals = [(0u64, Duration::ZERO); 2];
    let mut ids = [Ids(0), Ids(0)];
    let mut round = 0u64;
    while totals[0].1 < time || totals[1].1 < time {
        let order = if round.is_multiple_of(2) { [false, true] } else { [true, false] };
        for monitored in order {
            let side = usize::from(monitored);
            let started = Instant::now();
            sides.block(monitored, &mut ids[side], BLOCK).await;
            totals[side].1 += started.elapsed();
            totals[side].0 += BLOCK;
        }
        round += 1;
    }
    totals
}

fn qps((queries, elapsed): (u64, Duration)) -> f64 {
    queries as f64 / elapsed.as_secs_f64()
}

/// The interleaved measurement, printed.
fn report(rt: &Runtime, name: &str, sides: &impl Sides) {
    // Warm-up: statement caches, allocator, CPU frequency.
    rt.block_on(interleave(sides, Duration::from_secs(1)));
    let mut all = [(0u64, Duration::ZERO); 2];
    for trial in 1..=TRIALS {
        let [bare, monitored] = rt.block_on(interleave(sides, TRIAL_TIME));
        println!(
            "{name} trial {trial}: bare {:>9.0} q/s, monitored {:>9.0} q/s, ratio {:.4}",
            qps(bare),
            qps(monitored),
            qps(monitored) / qps(bare)
        );
        for (total, side) in all.iter_mut().zip([bare, monitored]) {
            total.0 += side.0;
            total.1 += side.1;
        }
    }
    let [bare, monitored] = all;
    println!(
        "{name} all: bare {:.0} q/s ({:.2} us/query), monitored {:.0} q/s ({:.2} us/query), ratio {:.4}",
        qps(bare),
        1e6 / qps(bare),
        qps(monitored),
        1e6 / qps(monitored),
        qps(monitored) / qps(bare)
    );
}

/// Criterion's own measurement of each side, one after the other.
fn criterion_group(c: &mut Criterion, rt: &Runtime, group: &str, sides: &impl Sides) {
    let mut g = c.benchmark_group(group);
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    for (name, monitored) in [("bare_pool", false), ("monitored_pool", true)] {
        let mut ids = Ids(0);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let started = Instant::now();
                    sides.block(monitored, &mut ids, iters).await;
                    started.elapsed()
                })
            });
        });
    }
    g.finish();
}

/// A pool of one connection to a private in-memory database, kept for the
/// whole run.
async fn sqlite_pool() -> SqlitePool {
    let options = SqliteConnectOptions::from_str("sqlite::memory:").expect("sqlite url");
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .expect("sqlite pool");
    sqlx::query("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&pool)
        .await
        .expect("create table");
    sqlx::query(
        "INSERT INTO items (id, name) WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?) \
         SELECT x, 'item-' || x FROM n",
    )
    .bind(ROWS)
    .execute(&pool)
    .await
    .expect("fill table");
    pool
}

fn pg_url() -> String {
    std::env::var("DBWARDEN_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn pg_pool(schema: &str) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(&pg_url())?.options([("search_path", schema)]);
    PgPoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
        .connect_with(options)
        .await
}

async fn pg_setup(schema: &str) -> Result<PgSides, sqlx::Error> {
    let admin = PgPool::connect(&pg_url()).await?;
    admin.execute(AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))).await?;
    admin.execute(AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).await?;
    admin
        .execute(AssertSqlSafe(format!("CREATE TABLE {schema}.items (id BIGINT PRIMARY KEY, name TEXT NOT NULL)")))
        .await?;
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {schema}.items SELECT g, 'item-' || g FROM generate_series(1, $1::bigint) g"
    )))
    .bind(ROWS)
    .execute(&admin)
    .await?;
    admin.execute(AssertSqlSafe(format!("ANALYZE {schema}.items"))).await?;
    admin.close().await;
    let pool = pg_pool(schema).await?;
    Ok(PgSides { monitored: MonitoredPool::new(pool.clone(), Monitor::new()), bare: pool })
}

async fn pg_teardown(schema: &str) -> Result<(), sqlx::Error> {
    let admin = PgPool::connect(&pg_url()).await?;
    admin.execute(AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))).await?;
    admin.close().await;
    Ok(())
}

/// Runs one side only, for a profiler; see the module documentation.
fn profile(rt: &Runtime, which: &str) {
    let queries: u64 = std::env::var("DBWARDEN_BENCH_QUERIES").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let (backend, side) = which.split_once('-').expect("DBWARDEN_BENCH_PROFILE is <backend>-<side>");
    let monitored = match side {
        "bare" => false,
        "monitored" => true,
        other => panic!("unknown side {other}: bare or monitored"),
    };
    let mut ids = Ids(0);
    match backend {
        "sqlite" => {
            let sides = rt.block_on(async {
                let pool = sqlite_pool().await;
                SqliteSides { monitored: MonitoredPool::new(pool.clone(), Monitor::new()), bare: pool }
            });
            rt.block_on(sides.block(monitored, &mut ids, queries));
        }
        "postgres" => {
            let schema = format!("dbw_bench_{}", std::process::id());
            let sides = rt.block_on(pg_setup(&schema)).expect("postgres setup");
            rt.block_on(sides.block(monitored, &mut ids, queries));
            rt.block_on(sides.bare.close());
            rt.block_on(pg_teardown(&schema)).expect("drop schema");
        }
        other => panic!("unknown backend {other}: sqlite or postgres"),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    if let Ok(which) = std::env::var("DBWARDEN_BENCH_PROFILE") {
        profile(&rt, &which);
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();

    let sqlite = rt.block_on(async {
        let pool = sqlite_pool().await;
        SqliteSides { monitored: MonitoredPool::new(pool.clone(), Monitor::new()), bare: pool }
    });
    report(&rt, "sqlite_point_query", &sqlite);
    criterion_group(&mut criterion, &rt, "sqlite_point_query", &sqlite);

    let schema = format!("dbw_bench_{}", std::process::id());
    match rt.block_on(pg_setup(&schema)) {
        Ok(pg) => {
            report(&rt, "postgres_point_query", &pg);
            criterion_group(&mut criterion, &rt, "postgres_point_query", &pg);
            rt.block_on(async {
                pg.bare.close().await;
            });
        }
        Err(error) => println!("postgres_point_query skipped: {error}"),
    }
    if let Err(error) = rt.block_on(pg_teardown(&schema)) {
        println!("could not drop schema {schema}: {error}");
    }

    criterion.final_summary();
}
