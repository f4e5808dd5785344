//! The session-table commands run as an operator would, on SQLite files:
//! `db stats --json` is one parseable object, `maintain --status` exits 1
//! on an expired backlog, and `maintain --full --dry-run` changes nothing.

use std::path::Path;
use std::process::Output;

use dbwarden_sessions::SessionDatabase;
use serde_json::Value;
use sqlx::{AssertSqlSafe, Row};

mod support;

fn dbwarden(url: &str, args: &[&str]) -> Output {
    support::dbwarden().env("RUST_LOG", "warn").args(args).args(["--database-url", url]).output().expect("run dbwarden")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}): {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), stderr(out))
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn url_in(dir: &Path) -> String {
    format!("sqlite://{}/sessions.db", dir.display())
}

async fn sqlite(url: &str) -> sqlx::SqlitePool {
    match SessionDatabase::connect(url).await.expect("open") {
        SessionDatabase::Sqlite(pool) => pool,
        other => panic!("expected sqlite, got {:?}", other.backend()),
    }
}

async fn exec(pool: &sqlx::SqlitePool, sql: &str) {
    sqlx::query(AssertSqlSafe(sql.to_owned())).execute(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn count(pool: &sqlx::SqlitePool, sql: &str) -> i64 {
    sqlx::query(AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.expect("count").get(0)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// Inserts `n` dbwarden sessions expiring `offset_ms` from now.
async fn insert_sessions(pool: &sqlx::SqlitePool, first: i64, n: i64, offset_ms: i64) {
    let now = now_ms();
    for i in first..first + n {
        sqlx::query(
            "INSERT INTO dbwarden_sessions (id_hash, user_id, created_at, last_seen_at, expires_at, \
             absolute_expires_at, version, data) VALUES (?, 'u', ?, ?, ?, ?, 1, X'7B7D')",
        )
        .bind(i.to_be_bytes().to_vec())
        .bind(now - 86_400_000)
        .bind(now - 3_600_000)
        .bind(now + offset_ms)
        .bind(now + 86_400_000)
        .execute(pool)
        .await
        .expect("insert session");
    }
}

#[tokio::test]
async fn db_stats_json_parses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = url_in(dir.path());
    let migrated = dbwarden(&url, &["db", "migrate", "--json"]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    assert_eq!(json(&migrated)["applied"].as_array().map(Vec::len), Some(3));
    let pool = sqlite(&url).await;
    insert_sessions(&pool, 0, 3, 3_600_000).await;
    insert_sessions(&pool, 10, 2, -60_000).await;

    let out = dbwarden(&url, &["db", "stats", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stats = json(&out);
    assert_eq!(stats["table"], "dbwarden_sessions");
    assert_eq!(stats["backend"], "sqlite");
    assert_eq!(stats["counts"]["total"], 5);
    assert_eq!(stats["counts"]["active"], 3);
    assert_eq!(stats["counts"]["expired"], 2);
    assert_eq!(stats["missing_indexes"], serde_json::json!([]));
    assert!(stats["storage"]["indexes"].as_array().is_some_and(|i| i.len() == 3), "{stats}");
    assert!(stats["last_cleanup"].is_null());
}

#[tokio::test]
async fn maintain_status_exits_1_on_an_expired_backlog() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = url_in(dir.path());
    assert!(dbwarden(&url, &["db", "migrate"]).status.success());
    let pool = sqlite(&url).await;
    insert_sessions(&pool, 0, 20, 3_600_000).await;
    let now = now_ms();
    exec(
        &pool,
        &format!(
            "INSERT INTO dbwarden_cleanup_runs (started_at, finished_at, table_name, mode, rows_removed, batches, \
             errors, dry_run, host) VALUES ({}, {now}, 'dbwarden_sessions', 'expired', 0, 0, 0, 0, 'test')",
            now - 1000
        ),
    )
    .await;

    let healthy = dbwarden(&url, &["maintain", "--status", "--json"]);
    assert_eq!(healthy.status.code(), Some(0), "{}\n{}", String::from_utf8_lossy(&healthy.stdout), stderr(&healthy));
    assert_eq!(json(&healthy)["health"]["status"], "ok");

    insert_sessions(&pool, 1000, 1200, -60_000).await;
    let out = dbwarden(&url, &["maintain", "--status", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["health"]["counts"]["expired"], 1200);
    let codes: Vec<&str> =
        report["health"]["findings"].as_array().expect("findings").iter().filter_map(|f| f["code"].as_str()).collect();
    assert_eq!(codes, ["expired_backlog"]);
    assert_eq!(report["stats"]["counts"]["total"], 1220);

    // The text form says the same.
    let text = dbwarden(&url, &["maintain", "--status"]);
    assert_eq!(text.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&text.stdout).contains("expired_backlog"));
}

#[tokio::test]
async fn maintain_full_dry_run_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = url_in(dir.path());
    let pool = sqlite(&url).await;
    exec(
        &pool,
        "CREATE TABLE django_session (session_key VARCHAR(40) NOT NULL PRIMARY KEY, session_data TEXT NOT NULL, \
         expire_date DATETIME NOT NULL)",
    )
    .await;
    for (i, when) in ["-1 day", "-2 hours", "+1 day"].iter().enumerate() {
        exec(&pool, &format!("INSERT INTO django_session VALUES ('k{i}', 'e30=', datetime('now', '{when}'))")).await;
    }
    let objects = "SELECT COUNT(*) FROM sqlite_master";
    let indexes = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'django_session'";
    let (rows_before, objects_before, indexes_before) = (
        count(&pool, "SELECT COUNT(*) FROM django_session").await,
        count(&pool, objects).await,
        count(&pool, indexes).await,
    );

    let out = dbwarden(&url, &["maintain", "--full", "--dry-run", "--json", "--preset", "django"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["dry_run"], true);
    let planned = &report["create_indexes"]["created"];
    assert_eq!(planned[0]["column"], "expire_date", "{report}");
    assert!(planned[0]["statements"][0].as_str().is_some_and(|s| s.starts_with("CREATE INDEX")));
    assert_eq!(report["cleanup"]["rows_would_remove"], 2, "{report}");
    assert_eq!(report["cleanup"]["rows_removed"], 0);
    assert!(report["optimize"]["outcomes"].as_array().is_some_and(Vec::is_empty));
    assert_eq!(report["integrity"]["ok"], true);
    assert!(report["snapshot"].is_null());

    assert_eq!(count(&pool, "SELECT COUNT(*) FROM django_session").await, rows_before);
    assert_eq!(count(&pool, objects).await, objects_before, "a dry run created a table or index");
    assert_eq!(count(&pool, indexes).await, indexes_before);

    // The real run creates the index, deletes the two expired sessions and records what is left.
    let real = dbwarden(&url, &["maintain", "--full", "--json", "--preset", "django"]);
    assert_eq!(real.status.code(), Some(0), "{}", stderr(&real));
    assert_eq!(count(&pool, indexes).await, indexes_before + 1);
    let real = json(&real);
    assert_eq!(real["cleanup"]["rows_removed"], 2, "{real}");
    assert_eq!(real["snapshot"]["total"], 1);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM django_session").await, 1);
}

#[test]
fn an_unknown_preset_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dbwarden(&url_in(dir.path()), &["db", "stats", "--preset", "drupal"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("drupal"));
    let missing = dbwarden(&url_in(dir.path()), &["analytics", "--overview", "--preset", "django"]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("django_session"), "{}", stderr(&missing));
}

#[test]
fn analytics_exports_what_it_prints_and_reads_the_snapshots() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = url_in(dir.path());
    let full = dbwarden(&url, &["maintain", "--full", "--json"]);
    assert_eq!(full.status.code(), Some(0), "{}", stderr(&full));
    let migrated = json(&full);
    assert_eq!(migrated["migrate"]["applied"].as_array().map(Vec::len), Some(3), "{migrated}");
    assert_eq!(migrated["snapshot"]["total"], 0);

    let export = dir.path().join("overview.json");
    let export_arg = export.to_str().expect("utf-8 path");
    let out = dbwarden(&url, &["analytics", "--overview", "--json", "--export", export_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let exported: Value = serde_json::from_slice(&std::fs::read(&export).expect("export written")).expect("json");
    assert_eq!(exported, json(&out));
    assert_eq!(exported["created_per_hour"].as_array().map(Vec::len), Some(48));

    let trends = dbwarden(&url, &["analytics", "--trends", "3", "--json"]);
    assert_eq!(trends.status.code(), Some(0), "{}", stderr(&trends));
    assert_eq!(json(&trends)["points"].as_array().map(Vec::len), Some(1));

    // The full cycle ran a cleanup and created every index: nothing to report.
    let health = dbwarden(&url, &["analytics", "--health-report", "--json"]);
    assert_eq!(health.status.code(), Some(0), "{}", stderr(&health));
    let health = json(&health);
    assert_eq!(health["status"], "ok", "{health}");
    assert!(health["last_cleanup_ms"].is_i64());
}

#[test]
fn a_database_url_dbwarden_cannot_use_is_a_usage_error() {
    let out = dbwarden("redis://127.0.0.1:6379", &["maintain", "--status"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = dbwarden("oracle://db/x", &["db", "stats"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
