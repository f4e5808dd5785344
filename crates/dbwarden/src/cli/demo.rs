//! `dbwarden demo`: the server on an embedded SQLite file
//! (`./dbwarden-demo.db` by default) beside an instrumented example axum
//! application under `/demo/` (a `MonitoredPool` and the
//! `RequestTrackingLayer`), and a traffic generator that calls it: fast,
//! slow, failing and N+1 requests, and now and then a connection held past
//! the leak threshold. Every dashboard widget has something to show within
//! a minute. Stops on Ctrl-C, SIGTERM or `--run-for`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use clap::Args;
use dbwarden::settings::FlagValue;
use dbwarden_http::RequestTrackingLayer;
use dbwarden_sqlx::MonitoredPool;
use sqlx::{Row, Sqlite};

use super::config::SettingsArgs;
use super::serve::{Server, Signals, WatchedPool, positive_seconds, server_runtime};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    #[command(flatten)]
    settings: SettingsArgs,
    /// The demo's SQLite file (created, and its demo tables filled, on start).
    #[arg(long, default_value = "dbwarden-demo.db", value_name = "PATH")]
    database_file: PathBuf,
    /// Stop after this many seconds; runs until Ctrl-C otherwise.
    #[arg(long, value_parser = positive_seconds, value_name = "SECONDS")]
    run_for: Option<f64>,
    /// Do not generate traffic (call /demo/… yourself).
    #[arg(long)]
    no_traffic: bool,
}

/// Items the N+1 page lists (one query each).
const N_PLUS_ONE_ITEMS: i64 = 12;
/// Rows of `demo_events`, unindexed on `item_id`, so each per-item query
/// scans and the N+1 page's queries add up past the 50 ms the detector needs.
const EVENT_ROWS: i64 = 150_000;
/// How long the leaking page keeps its connection (past the demo's 5 s
/// leak threshold, then returned).
const LEAK_HOLD: Duration = Duration::from_secs(8);

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    // The demo's own defaults, given before the user's flags so theirs win.
    let url = format!("sqlite://{}", args.database_file.display());
    let demo_flags = [
        FlagValue::new("database.url", &url, "--database-file"),
        FlagValue::new("database.max_connections", "8", "demo"),
        FlagValue::new("thresholds.slow_query", "0.05", "demo"),
        FlagValue::new("thresholds.slow_request", "0.5", "demo"),
        FlagValue::new("thresholds.leak_detection", "5", "demo"),
        FlagValue::new("resources.interval", "5", "demo"),
    ];
    let settings = match args.settings.load_with(&demo_flags) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    super::init_logging();
    let runtime = server_runtime()?;
    let no_traffic = args.no_traffic;
    runtime.block_on(async move {
        let signals = Signals::listen();
        let server = Server::prepare(settings).await?;
        let WatchedPool::Sqlite(pool) = server.pool.clone() else {
            anyhow::bail!("the demo runs on SQLite only");
        };
        seed(&pool).await.context("could not fill the demo tables")?;
        let app = demo_app(pool, server.monitor.clone());
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
        let traffic = tokio::spawn(async move {
            if let Ok(addr) = bound_rx.await {
                eprintln!(
                    "dbwarden demo: the example application answers on http://{addr}/demo/; \
                     open http://{addr}/ and sign in with the admin token"
                );
                if !no_traffic {
                    generate_traffic(addr).await;
                }
            }
        });
        let result = server
            .run(signals, Some(app), args.run_for, move |addr| {
                let _ = bound_tx.send(addr);
            })
            .await;
        traffic.abort();
        result
    })
}

/// Creates and fills the demo tables (once; a restart reuses them).
async fn seed(pool: &MonitoredPool<Sqlite>) -> Result<(), sqlx::Error> {
    let db = pool.inner();
    sqlx::query("CREATE TABLE IF NOT EXISTS demo_items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .execute(db)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS demo_events (id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL, payload TEXT NOT NULL)",
    )
    .execute(db)
    .await?;
    let items: i64 = sqlx::query_scalar("SELECT count(*) FROM demo_items").fetch_one(db).await?;
    if items == 0 {
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) \
             INSERT INTO demo_items (id, name) SELECT i, 'item ' || i FROM n",
        )
        .execute(db)
        .await?;
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) \
             INSERT INTO demo_events (item_id, payload) SELECT (i % 100) + 1, hex(randomblob(16)) FROM n",
        )
        .bind(EVENT_ROWS)
        .execute(db)
        .await?;
    }
    Ok(())
}

#[derive(Clone)]
struct Demo {
    pool: MonitoredPool<Sqlite>,
}

type Reply = Result<String, (StatusCode, String)>;

fn failed(e: sqlx::Error) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("database error: {}", dbwarden::redact::redact_message(&e.to_string())))
}

/// The example application: what an instrumented app looks like.
fn demo_app(pool: MonitoredPool<Sqlite>, monitor: dbwarden::Monitor) -> Router {
    Router::new()
        .route("/demo/", get(index))
        .route("/demo/fast/{id}", get(fast))
        .route("/demo/slow", get(slow))
        .route("/demo/fail", get(fail))
        .route("/demo/n-plus-one", get(n_plus_one))
        .route("/demo/leak", get(leak))
        .with_state(Demo { pool })
        .layer(RequestTrackingLayer::new(monitor))
}

async fn index() -> &'static str {
    "dbwarden demo application: /demo/fast/{id}, /demo/slow, /demo/fail, /demo/n-plus-one, /demo/leak\n"
}

/// One indexed lookup.
async fn fast(State(demo): State<Demo>, Path(id): Path<i64>) -> Reply {
    let row = sqlx::query("SELECT name FROM demo_items WHERE id = ?")
        .bind(id)
        .fetch_optional(&demo.pool)
        .await
        .map_err(failed)?;
    match row {
        Some(row) => Ok(row.try_get::<String, _>("name").map_err(failed)?),
        None => Err((StatusCode::NOT_FOUND, format!("no item {id}"))),
    }
}

/// A query that scans and sorts the whole events table (slow), then some
/// work outside the database (a slow request).
async fn slow(State(demo): State<Demo>) -> Reply {
    let top: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT e.item_id FROM demo_events e JOIN demo_events f ON f.id = e.id + 1 \
         ORDER BY e.payload, f.payload)",
    )
    .fetch_one(&demo.pool)
    .await
    .map_err(failed)?;
    tokio::time::sleep(Duration::from_millis(600)).await;
    Ok(format!("{top} rows sorted\n"))
}

/// A statement on a table that does not exist: a classified error.
async fn fail(State(demo): State<Demo>) -> Reply {
    sqlx::query("SELECT * FROM demo_missing_table WHERE id = ?").bind(1).fetch_all(&demo.pool).await.map_err(failed)?;
    Ok("unreachable\n".into())
}

/// The N+1 pattern: a list, then one query per item.
async fn n_plus_one(State(demo): State<Demo>) -> Reply {
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM demo_items ORDER BY id LIMIT ?")
        .bind(N_PLUS_ONE_ITEMS)
        .fetch_all(&demo.pool)
        .await
        .map_err(failed)?;
    let mut total = 0i64;
    for id in ids {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM demo_events WHERE item_id = ?")
            .bind(id)
            .fetch_one(&demo.pool)
            .await
            .map_err(failed)?;
        total += count;
    }
    Ok(format!("{total} events over {N_PLUS_ONE_ITEMS} items\n"))
}

/// Checks out a connection and keeps it past the leak threshold in the
/// background (a task that forgot to return it), then returns it.
async fn leak(State(demo): State<Demo>) -> Reply {
    let mut conn = demo.pool.acquire().await.map_err(failed)?;
    sqlx::query("SELECT 1").execute(&mut *conn).await.map_err(failed)?;
    tokio::spawn(async move {
        tokio::time::sleep(LEAK_HOLD).await;
        drop(conn);
    });
    Ok(format!("a connection is held for {} s\n", LEAK_HOLD.as_secs()))
}

/// Calls the demo application at bounded rates: a fast request every
/// 100 ms, a slow one every 2 s, a failing one every 3 s, an N+1 page every
/// 4 s and a leak every 30 s (the first after 3 s).
async fn generate_traffic(addr: SocketAddr) {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(30)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(target: "dbwarden", error = %e, "no traffic generator");
            return;
        }
    };
    let base = format!("http://{addr}/demo");
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut i: u64 = 0;
    loop {
        ticks.tick().await;
        i += 1;
        let mut paths = vec![format!("/fast/{}", i % 120 + 1)];
        if i.is_multiple_of(20) {
            paths.push("/slow".into());
        }
        if i % 30 == 5 {
            paths.push("/fail".into());
        }
        if i % 40 == 10 {
            paths.push("/n-plus-one".into());
        }
        if i % 300 == 30 {
            paths.push("/leak".into());
        }
        for path in paths {
            let request = client.get(format!("{base}{path}"));
            // Spawned so a slow page does not hold back the others; the
            // rates above bound how many run at once.
            tokio::spawn(async move {
                if let Err(e) = request.send().await {
                    tracing::debug!(target: "dbwarden", error = %e, "demo request failed");
                }
            });
        }
    }
}
