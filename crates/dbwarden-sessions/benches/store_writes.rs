//! Database writes of the session store for a day of seed 001's workload
//! (1000 users × 100 requests a day, 15-minute throttle) against saving the
//! session on every request, counted on a real PostgreSQL
//! (`pg_stat_user_tables`: rows inserted + updated) and by the store's own
//! counters. The day runs on a simulated clock; every load and save is a real
//! statement.
//!
//! Run: `cargo bench -p dbwarden-sessions --bench store_writes`
//! (PostgreSQL from DBWARDEN_TEST_POSTGRES_URL, default
//! postgres://postgres@127.0.0.1:5432/test).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dbwarden_core::{Clock, ManualClock, SystemClock, Timestamp};
use dbwarden_sessions::{SchemaConfig, SessionDatabase, SessionStoreExt, SqlSessionStore, StoreConfig, StoreStats};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;
use sqlx::{AssertSqlSafe, Row};
use time::OffsetDateTime;
use tower_sessions_core::SessionStore;
use tower_sessions_core::session::{Id, Record};

const USERS: usize = 1000;
const REQUESTS_PER_USER: usize = 100;
const WORKERS: usize = 8;
const DAY_MS: u64 = 24 * 3600 * 1000;
/// Sessions use `Expiry::OnInactivity(1 day)`: tower-sessions saves on every request.
const INACTIVITY: Duration = Duration::from_secs(24 * 3600);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One request of one user at `at` ms into the day.
#[derive(Debug, Clone, Copy)]
struct Request {
    at: u64,
    user: usize,
    /// The request changes session data (log-in, cart, flash message).
    modifies: bool,
}

/// How the 100 requests of a user's day are spread.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    /// One to three visits a day at random times; in a visit, page views
    /// every 40 s on average (exponential think time), each page view four
    /// requests (the page and three XHR calls) within half a second; 2 % of
    /// requests change the session.
    Visits,
    /// The 100 requests at uniformly random times over the whole day (the
    /// worst case for any time-based throttle: a mean gap of 14.4 minutes).
    Uniform,
}

fn workload(shape: Shape, seed: u64) -> Vec<Request> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut requests = Vec::with_capacity(USERS * REQUESTS_PER_USER);
    for user in 0..USERS {
        let mut times: Vec<u64> = Vec::with_capacity(REQUESTS_PER_USER);
        match shape {
            Shape::Uniform => {
                for _ in 0..REQUESTS_PER_USER {
                    times.push(rng.random_range(0..DAY_MS));
                }
            }
            Shape::Visits => {
                let visits: usize = rng.random_range(1..=3);
                let page_views = REQUESTS_PER_USER / 4;
                let mut starts: Vec<u64> = (0..visits).map(|_| rng.random_range(0..DAY_MS - 3_600_000)).collect();
                starts.sort_unstable();
                let mut next_free = 0;
                for (v, start) in starts.iter().enumerate() {
                    let views = page_views / visits + usize::from(v < page_views % visits);
                    let mut t = (*start).max(next_free);
                    for _ in 0..views {
                        for k in 0..4 {
                            times.push(t + k * 150);
                        }
                        let u: f64 = rng.random_range(f64::EPSILON..1.0);
                        t += (-u.ln() * 40_000.0) as u64 + 500;
                    }
                    next_free = t + 20 * 60_000;
                }
            }
        }
        times.sort_unstable();
        for (i, at) in times.into_iter().enumerate() {
            let modifies = i == 0 || rng.random_range(0..100) < 2;
            requests.push(Request { at, user, modifies });
        }
    }
    requests
}

/// Rows inserted + updated in `table`, from PostgreSQL's statistics.
async fn pg_writes(url: &str, table: &str) -> Result<i64, BoxError> {
    let db = SessionDatabase::connect_with(url, 1).await?;
    let SessionDatabase::Postgres(pool) = &db else { return Err("not postgres".into()) };
    // Statistics reach the shared view when a backend ends or goes idle;
    // the store's pool is closed before this runs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let row = sqlx::query(
        "SELECT COALESCE(n_tup_ins, 0) + COALESCE(n_tup_upd, 0) FROM pg_stat_user_tables WHERE relname = $1",
    )
    .bind(table)
    .fetch_one(pool)
    .await?;
    db.close().await;
    Ok(row.try_get(0)?)
}

async fn run_day(url: &str, shape: Shape, throttle: Option<Duration>) -> Result<(StoreStats, i64, Duration), BoxError> {
    let table = format!("bench_writes_{}_{}", std::process::id(), throttle.is_some() as u8);
    let schema = SchemaConfig::new(&table)?;
    let db = SessionDatabase::connect_with(url, WORKERS as u32).await?;
    let config = StoreConfig::default().with_schema(schema.clone()).with_throttle(throttle);
    SqlSessionStore::new(db.clone(), config.clone()).migrate().await?;
    let day_start = SystemClock.now();
    let requests = Arc::new(workload(shape, 1));
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let clock = ManualClock::new(day_start);
        let store = SqlSessionStore::with_parts(db.clone(), config.clone(), None, Arc::new(clock.clone()));
        let requests = requests.clone();
        workers.push(tokio::spawn(async move {
            let mut ids: HashMap<usize, Id> = HashMap::new();
            let mut mine: Vec<Request> = requests.iter().filter(|r| r.user % WORKERS == worker).copied().collect();
            mine.sort_by_key(|r| r.at);
            for request in mine {
                let now = day_start.saturating_add(Duration::from_millis(request.at));
                clock.set(now);
                let expiry = expiry_at(now.saturating_add(INACTIVITY));
                match ids.get(&request.user) {
                    None => {
                        let mut record = Record {
                            id: Id(0),
                            data: HashMap::from([
                                ("user_id".to_owned(), json!(format!("user-{}", request.user))),
                                ("csrf".to_owned(), json!("0123456789abcdef0123456789abcdef")),
                            ]),
                            expiry_date: expiry,
                        };
                        store.create(&mut record).await?;
                        ids.insert(request.user, record.id);
                    }
                    Some(id) => {
                        let mut record = store.load(id).await?.ok_or("session lost")?;
                        if request.modifies {
                            record.data.insert("cart".to_owned(), json!(request.at));
                        }
                        record.expiry_date = expiry;
                        store.save(&record).await?;
                    }
                }
            }
            Ok::<StoreStats, BoxError>(store.stats())
        }));
    }
    let mut total = StoreStats::default();
    for worker in workers {
        let s = worker.await??;
        total.created += s.created;
        total.full_writes += s.full_writes;
        total.touches += s.touches;
        total.writes_avoided += s.writes_avoided;
        total.merged_conflicts += s.merged_conflicts;
    }
    let elapsed = started.elapsed();
    db.close().await;
    let writes = pg_writes(url, &table).await?;
    let admin = SessionDatabase::connect_with(url, 1).await?;
    if let SessionDatabase::Postgres(pool) = &admin {
        sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}"))).execute(pool).await?;
        sqlx::query("DELETE FROM dbwarden_migrations WHERE subject = $1").bind(&table).execute(pool).await?;
    }
    admin.close().await;
    Ok((total, writes, elapsed))
}

fn expiry_at(t: Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.as_millis()) * 1_000_000)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let url = std::env::var("DBWARDEN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    println!("store_writes: {USERS} users x {REQUESTS_PER_USER} requests over one simulated day, PostgreSQL");
    println!(
        "| workload | store | requests | inserts+updates (pg_stat) | created | full writes | touches | avoided | writes / requests | wall time |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for shape in [Shape::Visits, Shape::Uniform] {
        let requests = (USERS * REQUESTS_PER_USER) as f64;
        let mut baseline = 0;
        for (label, throttle) in
            [("save on every request", None), ("throttled (15 min)", Some(Duration::from_secs(15 * 60)))]
        {
            let (stats, writes, elapsed) = run_day(&url, shape, throttle).await?;
            if throttle.is_none() {
                baseline = writes;
            }
            println!(
                "| {shape:?} | {label} | {requests} | {writes} | {} | {} | {} | {} | {:.2} % ({:.2} % of baseline) | {:.1} s |",
                stats.created,
                stats.full_writes,
                stats.touches,
                stats.writes_avoided,
                writes as f64 * 100.0 / requests,
                writes as f64 * 100.0 / baseline.max(1) as f64,
                elapsed.as_secs_f64()
            );
        }
    }
    Ok(())
}
