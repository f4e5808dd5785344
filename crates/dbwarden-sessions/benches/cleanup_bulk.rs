//! Cleanup of 1 000 000 expired sessions among 1 100 000 on a real
//! PostgreSQL: one plain `DELETE … WHERE expires_at < now` against
//! [`Cleaner::run_once`], each on a freshly filled, vacuumed and
//! checkpointed table of the same rows, while application tasks keep loading
//! live sessions through [`SqlSessionStore`]. For each it reports the total
//! time, the longest transaction (as the cleaner reports it and as
//! `pg_stat_activity` shows it, which also sees the cleaner's initial count)
//! and the load latencies during it against the same loads on the idle
//! table just before. Rounds repeat the pair; the verdicts use the median
//! ratios, since other work on the machine moves single timings a lot.
//!
//! The targets: cleanup time at most 1.5 × the plain DELETE, no transaction
//! longer than 1 s, load p99 during the cleanup at most 2 × the idle p99.
//!
//! Run: `cargo bench -p dbwarden-sessions --bench cleanup_bulk`
//! (PostgreSQL from DBWARDEN_TEST_POSTGRES_URL, default
//! postgres://postgres@127.0.0.1:5432/test; everything lives in a schema of
//! its own, dropped at the end). DBWARDEN_BENCH_CLEANUP_ROUNDS sets the
//! rounds (default 3); DBWARDEN_BENCH_CLEANUP_BATCH,
//! DBWARDEN_BENCH_CLEANUP_PAUSE_MS and DBWARDEN_BENCH_CLEANUP_JITTER change
//! the cleaner's settings.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dbwarden_sessions::{
    Cleaner, CleanupConfig, CleanupMode, CleanupReport, Preset, SchemaConfig, SessionDatabase, SessionTable,
    SqlSessionStore, StoreConfig,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row};
use tower_sessions_core::SessionStore;
use tower_sessions_core::session::Id;

/// Rows in the table before a cleanup.
const TOTAL_ROWS: i64 = 1_100_000;
/// Every `LIVE_EVERY`-th row is live: 100 000 live rows spread over the
/// whole table, as sessions of every age are in a real one.
const LIVE_EVERY: i64 = 11;
const LIVE_ROWS: i64 = TOTAL_ROWS / LIVE_EVERY;
const EXPIRED_ROWS: i64 = TOTAL_ROWS - LIVE_ROWS;
/// Application tasks loading live sessions.
const LOADERS: usize = 6;
/// Each loader starts one load per period: 1200 loads a second in all.
const LOAD_PERIOD: Duration = Duration::from_millis(5);
/// How long the loads run on the idle table for the reference latencies.
const IDLE_PERIOD: Duration = Duration::from_secs(10);
/// Loads run this long before an operation starts, so every connection is warm.
const WARM_UP: Duration = Duration::from_millis(500);
/// How often `pg_stat_activity` is read for the age of open transactions.
const ACTIVITY_POLL: Duration = Duration::from_millis(5);
const DAY_MS: i64 = 86_400_000;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The cleaner configuration under test; the defaults are the settings this
/// benchmark recommends, the environment overrides them to explore.
fn cleanup_config() -> Result<CleanupConfig, BoxError> {
    fn env<T: FromStr>(name: &str, default: T) -> Result<T, BoxError> {
        match std::env::var(name) {
            Ok(value) => value.parse().map_err(|_| format!("{name}={value} is not a valid value").into()),
            Err(_) => Ok(default),
        }
    }
    let config = CleanupConfig {
        // Short batches back to back: each statement holds a CPU for about
        // a millisecond, so the application's queries never wait long for
        // one, and the batches run on the lock's connection without a pause
        // to keep the total time within bounds.
        batch_size: env("DBWARDEN_BENCH_CLEANUP_BATCH", 2_000)?,
        pause: Duration::from_millis(env("DBWARDEN_BENCH_CLEANUP_PAUSE_MS", 0)?),
        jitter: env("DBWARDEN_BENCH_CLEANUP_JITTER", 0.5)?,
        ..CleanupConfig::default()
    };
    config.validate()?;
    Ok(config)
}

/// The session id of row `g`: its little-endian bytes are `g` as big-endian
/// `int8` followed by eight zero bytes, which PostgreSQL computes as
/// `int8send(g) || '\x0000000000000000'`, so the fill can store the SHA-256 the
/// store looks up.
fn session_id(g: i64) -> Id {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&g.to_be_bytes());
    Id(i128::from_le_bytes(bytes))
}

/// A pool whose connections work in `schema` and name themselves `app` in
/// `pg_stat_activity`.
async fn pool(url: &str, schema: &str, app: &str, size: u32) -> Result<PgPool, BoxError> {
    let options = PgConnectOptions::from_str(url)?.options([("search_path", schema)]).application_name(app);
    Ok(PgPoolOptions::new().max_connections(size).min_connections(size).connect_with(options).await?)
}

/// Creates `table` by dbwarden's migrations and fills it with one statement:
/// `TOTAL_ROWS` sessions of about 280 bytes, every `LIVE_EVERY`-th one
/// expiring tomorrow, the others expired at some time in the last 30 days.
/// Then vacuums, analyzes and checkpoints, so both sides start from the same
/// physical state: all-visible pages, statistics, no dirty buffers.
async fn fill(db: &SessionDatabase, pg: &PgPool, table: &str, now_ms: i64) -> Result<Duration, BoxError> {
    let started = Instant::now();
    SqlSessionStore::new(db.clone(), StoreConfig::default().with_schema(SchemaConfig::new(table)?)).migrate().await?;
    let insert = format!(
        "INSERT INTO {table} (id_hash, user_id, created_at, last_seen_at, expires_at, absolute_expires_at, \
         version, ip_hash, ua_hash, data) \
         SELECT sha256(int8send(g) || '\\x0000000000000000'::bytea), 'user-' || (g % 50000), \
                $1 - 40 * $2 + g, $1 - 3600000, \
                CASE WHEN g % {LIVE_EVERY} = 0 THEN $1 + $2 + g % 3600000 \
                     ELSE $1 - 1 - (g * 7919) % (30 * $2) END, \
                253402300799999, 1 + g % 5, sha256(int8send(g % 20000)), sha256(int8send(g % 300)), \
                convert_to(format('{{\"user_id\":\"user-%s\",\"csrf\":\"%s\",\"cart\":%s,\"theme\":\"dark\"}}', \
                                  g % 50000, md5(g::text), g % 97), 'UTF8') \
         FROM generate_series(1::bigint, {TOTAL_ROWS}::bigint) AS g"
    );
    sqlx::query(AssertSqlSafe(insert)).bind(now_ms).bind(DAY_MS).execute(pg).await?;
    sqlx::raw_sql(AssertSqlSafe(format!("VACUUM ANALYZE {table}"))).execute(pg).await?;
    sqlx::raw_sql("CHECKPOINT").execute(pg).await?;
    Ok(started.elapsed())
}

/// Rows, expired rows (by `now_ms`) and the average row size of `table`.
async fn census(pg: &PgPool, table: &str, now_ms: i64) -> Result<(i64, i64, f64), BoxError> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE expires_at < $1), \
                COALESCE(AVG(pg_column_size(t.*)), 0)::float8 FROM {table} AS t"
    )))
    .bind(now_ms)
    .fetch_one(pg)
    .await?;
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
}

/// Latencies of the loads that started within a window.
#[derive(Debug, Default)]
struct Loads {
    /// Microseconds, sorted.
    micros: Vec<u64>,
    /// Loads of a live id that found no session (must stay 0).
    missing: u64,
    window: Duration,
}

impl Loads {
    fn quantile(&self, q: f64) -> f64 {
        if self.micros.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * self.micros.len() as f64).ceil() as usize).clamp(1, self.micros.len());
        self.micros[rank - 1] as f64 / 1000.0
    }

    fn per_second(&self) -> f64 {
        self.micros.len() as f64 / self.window.as_secs_f64().max(f64::EPSILON)
    }
}

/// Each load's start and duration.
type Samples = Vec<(Instant, Duration)>;

/// Application tasks loading random live sessions until stopped, each
/// load's start and duration kept.
struct LoadRun {
    stop: Arc<AtomicBool>,
    missing: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Result<Samples, BoxError>>>,
}

impl LoadRun {
    fn start(store: &SqlSessionStore) -> LoadRun {
        let stop = Arc::new(AtomicBool::new(false));
        let missing = Arc::new(AtomicU64::new(0));
        let tasks = (0..LOADERS)
            .map(|n| {
                let (store, stop, missing) = (store.clone(), stop.clone(), missing.clone());
                tokio::spawn(async move {
                    let mut rng = StdRng::seed_from_u64(n as u64);
                    let mut samples = Vec::with_capacity(64 * 1024);
                    let mut ticks = tokio::time::interval(LOAD_PERIOD);
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    while !stop.load(Ordering::Relaxed) {
                        ticks.tick().await;
                        let id = session_id(LIVE_EVERY * rng.random_range(1..=LIVE_ROWS));
                        let started = Instant::now();
                        let record = store.load(&id).await?;
                        samples.push((started, started.elapsed()));
                        if record.is_none() {
                            missing.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(samples)
                })
            })
            .collect();
        LoadRun { stop, missing, tasks }
    }

    /// Stops the tasks and keeps the loads that started in `from..to`.
    async fn finish(self, from: Instant, to: Instant) -> Result<Loads, BoxError> {
        self.stop.store(true, Ordering::Relaxed);
        let mut micros = Vec::new();
        for task in self.tasks {
            for (started, took) in task.await?? {
                if started >= from && started < to {
                    micros.push(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
                }
            }
        }
        micros.sort_unstable();
        Ok(Loads { micros, missing: self.missing.load(Ordering::Relaxed), window: to - from })
    }
}

/// Polls `pg_stat_activity` for the oldest open transaction of the
/// connections named `app`, until stopped; returns the longest age seen.
fn watch_transactions(
    pg: PgPool,
    app: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Result<Duration, BoxError>> {
    tokio::spawn(async move {
        let mut longest = 0f64;
        let mut ticks = tokio::time::interval(ACTIVITY_POLL);
        while !stop.load(Ordering::Relaxed) {
            ticks.tick().await;
            let age: f64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(EXTRACT(EPOCH FROM clock_timestamp() - xact_start)), 0)::float8 \
                 FROM pg_stat_activity WHERE application_name = $1 AND xact_start IS NOT NULL",
            )
            .bind(app)
            .fetch_one(&pg)
            .await?;
            longest = longest.max(age);
        }
        Ok(Duration::from_secs_f64(longest))
    })
}

/// The loads on the idle table, for `IDLE_PERIOD`, with `pg_stat_activity`
/// polled as during an operation: the reference differs from the
/// measurement by the operation alone.
async fn idle_loads(store: &SqlSessionStore, admin: &PgPool) -> Result<Loads, BoxError> {
    let loads = LoadRun::start(store);
    tokio::time::sleep(WARM_UP).await;
    let stop_watching = Arc::new(AtomicBool::new(false));
    let watcher = watch_transactions(admin.clone(), "cleanbench-idle", stop_watching.clone());
    let from = Instant::now();
    tokio::time::sleep(IDLE_PERIOD).await;
    let to = Instant::now();
    stop_watching.store(true, Ordering::Relaxed);
    let idle = loads.finish(from, to).await?;
    watcher.await??;
    Ok(idle)
}

/// What one side measured.
struct Side {
    fill: Duration,
    avg_row_bytes: f64,
    idle: Loads,
    during: Loads,
    total: Duration,
    removed: u64,
    left: i64,
    expired_left: i64,
    observed_longest_txn: Duration,
    report: Option<CleanupReport>,
}

/// A freshly filled table with its idle load latencies measured, ready for
/// one cleanup.
struct Prepared {
    admin: PgPool,
    table: &'static str,
    now_ms: i64,
    fill: Duration,
    avg_row_bytes: f64,
    app_pool: PgPool,
    store: SqlSessionStore,
    idle: Loads,
}

impl Prepared {
    async fn new(url: &str, schema: &str, admin: &PgPool, table: &'static str) -> Result<Prepared, BoxError> {
        let now_ms = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis())?;
        let admin_db = SessionDatabase::from_pg_pool(admin.clone());
        let fill_took = fill(&admin_db, admin, table, now_ms).await?;
        let (total, expired, avg_row_bytes) = census(admin, table, now_ms).await?;
        if total != TOTAL_ROWS || expired != EXPIRED_ROWS {
            return Err(format!("{table} filled with {total} rows, {expired} expired").into());
        }
        let app_pool = pool(url, schema, "cleanbench-app", LOADERS as u32).await?;
        let store = SqlSessionStore::new(
            SessionDatabase::from_pg_pool(app_pool.clone()),
            StoreConfig::default().with_schema(SchemaConfig::new(table)?),
        );
        store.migrate().await?;
        let idle = idle_loads(&store, admin).await?;
        Ok(Prepared { admin: admin.clone(), table, now_ms, fill: fill_took, avg_row_bytes, app_pool, store, idle })
    }

    /// Runs `operation` with the loads going and `pg_stat_activity` watched
    /// for connections named `app`; the operation returns the rows it removed.
    async fn run<Fut>(self, app: &'static str, operation: Fut) -> Result<Side, BoxError>
    where
        Fut: std::future::Future<Output = Result<(u64, Option<CleanupReport>), BoxError>>,
    {
        let loads = LoadRun::start(&self.store);
        tokio::time::sleep(WARM_UP).await;
        let stop_watching = Arc::new(AtomicBool::new(false));
        let watcher = watch_transactions(self.admin.clone(), app, stop_watching.clone());
        let from = Instant::now();
        let (removed, report) = operation.await?;
        let to = Instant::now();
        stop_watching.store(true, Ordering::Relaxed);
        let during = loads.finish(from, to).await?;
        let observed_longest_txn = watcher.await??;
        self.app_pool.close().await;
        let (left, expired_left, _) = census(&self.admin, self.table, self.now_ms).await?;
        Ok(Side {
            fill: self.fill,
            avg_row_bytes: self.avg_row_bytes,
            idle: self.idle,
            during,
            total: to - from,
            removed,
            left,
            expired_left,
            observed_longest_txn,
            report,
        })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One round: the plain DELETE and the cleaner, each on a fresh fill.
struct Round {
    plain: Side,
    batched: Side,
    /// From the cleaner's start to the end of its first batch (setup, count, batch).
    first_batch: Duration,
    /// Mean time from one batch's end to the next's (pause plus batch).
    batch_interval: Duration,
}

impl Round {
    fn report(&self) -> Result<&CleanupReport, BoxError> {
        self.batched.report.as_ref().ok_or_else(|| "the cleaner gave no report".into())
    }

    fn time_ratio(&self) -> f64 {
        self.batched.total.as_secs_f64() / self.plain.total.as_secs_f64()
    }

    fn p99_ratio(&self) -> f64 {
        self.batched.during.quantile(0.99) / self.batched.idle.quantile(0.99)
    }

    /// The longer of the cleaner's own figure and what `pg_stat_activity` showed.
    fn longest_transaction(&self) -> Result<Duration, BoxError> {
        Ok(Duration::from_millis(self.report()?.longest_batch_ms).max(self.batched.observed_longest_txn))
    }
}

async fn round(url: &str, schema: &str, admin: &PgPool, config: &CleanupConfig) -> Result<Round, BoxError> {
    let prepared = Prepared::new(url, schema, admin, "sessions_plain").await?;
    let delete_pool = pool(url, schema, "cleanbench-delete", 1).await?;
    let cutoff = prepared.now_ms;
    let plain = prepared
        .run("cleanbench-delete", async {
            let removed = sqlx::query("DELETE FROM sessions_plain WHERE expires_at < $1")
                .bind(cutoff)
                .execute(&delete_pool)
                .await?
                .rows_affected();
            Ok((removed, None))
        })
        .await?;
    delete_pool.close().await;
    sqlx::raw_sql("DROP TABLE sessions_plain").execute(admin).await?;

    let prepared = Prepared::new(url, schema, admin, "sessions_batched").await?;
    let db = SessionDatabase::from_pg_pool(pool(url, schema, "cleanbench-cleaner", 3).await?);
    let mut mapping = Preset::Dbwarden.mapping(db.backend());
    mapping.table = format!("{schema}.sessions_batched");
    let cleaner = Cleaner::new(db.clone(), SessionTable::verify(&db, mapping).await?, config.clone());
    let batch_ends = std::sync::Mutex::new(Vec::new());
    let started = Instant::now();
    let batched = prepared
        .run("cleanbench-cleaner", async {
            let on_batch = |_| {
                if let Ok(mut ends) = batch_ends.lock() {
                    ends.push(Instant::now());
                }
            };
            let report = cleaner.run_once(CleanupMode::Expired, &on_batch).await?;
            Ok((report.rows_removed, Some(report)))
        })
        .await?;
    db.close().await;
    sqlx::raw_sql("DROP TABLE sessions_batched").execute(admin).await?;
    // Deleting the runs' rows keeps the next round's runs table as small as this one's.
    sqlx::raw_sql("DELETE FROM dbwarden_cleanup_runs").execute(admin).await?;
    sqlx::raw_sql("DELETE FROM dbwarden_migrations").execute(admin).await?;

    let ends = batch_ends.into_inner().map_err(|_| "batch times poisoned")?;
    let cleaner_start = started + WARM_UP;
    let first_batch = ends.first().map_or(Duration::ZERO, |first| first.saturating_duration_since(cleaner_start));
    let batch_interval = match (ends.first(), ends.last()) {
        (Some(first), Some(last)) if ends.len() > 1 => (*last - *first) / u32::try_from(ends.len() - 1)?,
        _ => Duration::ZERO,
    };
    let round = Round { plain, batched, first_batch, batch_interval };
    for (label, side) in [("plain DELETE", &round.plain), ("Cleaner", &round.batched)] {
        if side.removed != EXPIRED_ROWS as u64 || side.left != LIVE_ROWS || side.expired_left != 0 {
            return Err(format!(
                "{label} removed {} rows and left {} ({} expired); expected {EXPIRED_ROWS} removed, {LIVE_ROWS} left",
                side.removed, side.left, side.expired_left
            )
            .into());
        }
        if side.idle.missing + side.during.missing > 0 {
            return Err(format!("{label}: loads of live sessions found none").into());
        }
    }
    let report = round.report()?;
    if !report.is_clean() {
        return Err(format!("the cleanup was not clean: {report:?}").into());
    }
    Ok(round)
}

fn print_round(n: usize, round: &Round) -> Result<(), BoxError> {
    let (plain, batched) = (&round.plain, &round.batched);
    let report = round.report()?;
    for (label, side, longest, batches) in [
        ("plain DELETE", plain, ms(plain.total), 1),
        ("Cleaner", batched, report.longest_batch_ms as f64, report.batches),
    ] {
        println!(
            "| {n} | {label} | {} | {} | {:.2} s | {:.2}× | {longest:.0} ms | {:.0} ms | {batches} | {:.2} / {:.2} ms | {:.2} / {:.2} / {:.2} ms | {:.2}× | {:.0}/s |",
            side.removed,
            side.left,
            side.total.as_secs_f64(),
            side.total.as_secs_f64() / plain.total.as_secs_f64(),
            ms(side.observed_longest_txn),
            side.idle.quantile(0.5),
            side.idle.quantile(0.99),
            side.during.quantile(0.5),
            side.during.quantile(0.99),
            side.during.quantile(0.999),
            side.during.quantile(0.99) / side.idle.quantile(0.99),
            side.during.per_second(),
        );
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let url = std::env::var("DBWARDEN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let config = cleanup_config()?;
    let rounds: usize = match std::env::var("DBWARDEN_BENCH_CLEANUP_ROUNDS") {
        Ok(value) => value.parse().map_err(|_| format!("DBWARDEN_BENCH_CLEANUP_ROUNDS={value} is not a count"))?,
        Err(_) => 3,
    };
    let schema = format!("cleanbench_{}", std::process::id());
    let bootstrap = PgPoolOptions::new().max_connections(1).connect(&url).await?;
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&bootstrap).await?;
    let result = run(&url, &schema, &config, rounds.max(1)).await;
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&bootstrap).await?;
    bootstrap.close().await;
    result
}

async fn run(url: &str, schema: &str, config: &CleanupConfig, rounds: usize) -> Result<(), BoxError> {
    let admin = pool(url, schema, "cleanbench-admin", 2).await?;
    println!(
        "cleanup_bulk: {TOTAL_ROWS} sessions, {EXPIRED_ROWS} expired, PostgreSQL; {LOADERS} loaders, one load each \
         per {} ms; Cleaner batch_size {}, pause {} ms ± {:.0} %; {rounds} rounds",
        LOAD_PERIOD.as_millis(),
        config.batch_size,
        config.pause.as_millis(),
        config.jitter * 100.0
    );
    println!();
    println!(
        "| round | cleanup | rows removed | rows left | total | vs plain DELETE | longest transaction (reported) | \
         longest transaction (pg_stat_activity) | batches | idle load p50 / p99 | load p50 / p99 / p99.9 during | p99 vs idle | loads during |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut done = Vec::with_capacity(rounds);
    for n in 1..=rounds {
        let round = round(url, schema, &admin, config).await?;
        print_round(n, &round)?;
        done.push(round);
    }
    admin.close().await;

    println!();
    for (n, round) in done.iter().enumerate() {
        println!(
            "round {}: fills {:.1} s and {:.1} s, average row {:.0} bytes; Cleaner's first batch done after {:.0} ms, \
             then one batch every {:.1} ms (pause included)",
            n + 1,
            plain_fill(round),
            round.batched.fill.as_secs_f64(),
            round.plain.avg_row_bytes,
            ms(round.first_batch),
            ms(round.batch_interval)
        );
    }
    let time_ratio = median(done.iter().map(Round::time_ratio).collect());
    let p99_ratio = median(done.iter().map(Round::p99_ratio).collect());
    let mut longest = Duration::ZERO;
    for round in &done {
        longest = longest.max(round.longest_transaction()?);
    }
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!();
    println!("target total ≤ 1.5× plain DELETE: median {time_ratio:.2}× — {}", verdict(time_ratio <= 1.5));
    println!(
        "target no transaction > 1 s: longest {:.0} ms over all rounds — {}",
        ms(longest),
        verdict(longest <= Duration::from_secs(1))
    );
    println!("target load p99 ≤ 2× idle p99: median {p99_ratio:.2}× — {}", verdict(p99_ratio <= 2.0));
    Ok(())
}

fn plain_fill(round: &Round) -> f64 {
    round.plain.fill.as_secs_f64()
}
