//! `dbwarden cleanup` run as an operator would: a run killed with SIGKILL
//! halfway through a large PostgreSQL table shows as unfinished and the next
//! run removes every expired session and no live one; `--json` is one
//! parseable object; the exit codes for success, a held lock, bad usage, a
//! table without the mapped columns and an unreachable database.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dbwarden_sessions::{SchemaConfig, SessionDatabase, migrate};
use serde_json::Value;

mod support;
// The session suites' database helpers, shared rather than copied.
#[path = "../../dbwarden-sessions/tests/support/mod.rs"]
mod sessions;

use sessions::{exec, postgres_url, scalar};

fn dbwarden() -> Command {
    let mut cmd = support::dbwarden();
    cmd.env("RUST_LOG", "warn");
    cmd
}

fn run(args: &[&str]) -> Output {
    dbwarden().args(args).output().expect("run dbwarden")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}): {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), stderr(out))
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// `expired` sessions that expired an hour ago and `live` ones that expire
/// in a day, in dbwarden's table `table` (ids 1..).
async fn fill(db: &SessionDatabase, table: &str, expired: i64, live: i64) {
    let now = now_ms();
    let sql = match db {
        SessionDatabase::Postgres(_) => format!(
            "INSERT INTO {table} (id_hash, user_id, created_at, last_seen_at, expires_at, absolute_expires_at, \
             version, data) \
             SELECT sha256(int8send(i)), NULL, {now}, {now}, \
             CASE WHEN i <= {expired} THEN {now} - 3600000 ELSE {now} + 86400000 END, {now} + 172800000, 1, '\\x7b7d' \
             FROM generate_series(1, {}) AS i",
            expired + live
        ),
        _ => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {}) \
             INSERT INTO {table} (id_hash, user_id, created_at, last_seen_at, expires_at, absolute_expires_at, \
             version, data) \
             SELECT randomblob(32), NULL, {now}, {now}, \
             CASE WHEN i <= {expired} THEN {now} - 3600000 ELSE {now} + 86400000 END, {now} + 172800000, 1, X'7B7D' \
             FROM n",
            expired + live
        ),
    };
    exec(db, &sql).await;
}

async fn sqlite_with_sessions(dir: &Path, expired: i64, live: i64) -> (String, SessionDatabase) {
    let url = format!("sqlite://{}/sessions.db", dir.display());
    let db = SessionDatabase::connect(&url).await.expect("open sqlite");
    migrate(&db, &SchemaConfig::default()).await.expect("migrate");
    fill(&db, "dbwarden_sessions", expired, live).await;
    (url, db)
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_halfway_is_finished_by_the_next_one() {
    let url = postgres_url();
    let db = SessionDatabase::connect(&url).await.unwrap_or_else(|e| panic!("PostgreSQL is required: {e}"));
    let table = sessions::unique_name("killed");
    let schema = SchemaConfig::new(&table).expect("table name");
    migrate(&db, &schema).await.expect("migrate");
    fill(&db, &table, 20_000, 2_000).await;
    let mapping = format!("cleanup.mapping.table={table}");

    let mut child = dbwarden()
        .args(["cleanup", "--once", "--database-url", &url, "--set", &mapping])
        .args(["--set", "cleanup.batch_size=500", "--set", "cleanup.pause=0.2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dbwarden cleanup");
    let count_sql = format!("SELECT COUNT(*) FROM {table}");
    let started = Instant::now();
    loop {
        let left = scalar(&db, &count_sql).await;
        if left <= 22_000 - 1_000 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the cleanup never deleted a batch");
        assert!(child.try_wait().expect("child status").is_none(), "the cleanup ended before it could be killed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL the cleanup");
    child.wait().expect("reap the cleanup");

    let left = scalar(&db, &count_sql).await;
    assert!(left > 2_000 && left < 22_000, "killed halfway: {left} rows left");
    let unfinished = scalar(
        &db,
        &format!("SELECT COUNT(*) FROM dbwarden_cleanup_runs WHERE table_name = '{table}' AND finished_at IS NULL"),
    )
    .await;
    assert_eq!(unfinished, 1, "the killed run shows as unfinished");

    // The killed runner's lock died with its connection; wait for the
    // server to notice rather than skip.
    let out = dbwarden()
        .args(["cleanup", "--once", "--json", "--wait", "30", "--database-url", &url, "--set", &mapping])
        .output()
        .expect("run dbwarden cleanup again");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["rows_removed"].as_i64(), Some(left - 2_000));
    assert_eq!(report["errors"].as_i64(), Some(0));

    assert_eq!(scalar(&db, &count_sql).await, 2_000);
    let live = scalar(&db, &format!("SELECT COUNT(*) FROM {table} WHERE expires_at > {}", now_ms())).await;
    assert_eq!(live, 2_000, "no live session was removed");
    let finished = scalar(
        &db,
        &format!("SELECT COUNT(*) FROM dbwarden_cleanup_runs WHERE table_name = '{table}' AND finished_at IS NOT NULL"),
    )
    .await;
    assert_eq!(finished, 1);

    exec(&db, &format!("DROP TABLE {table}")).await;
    exec(&db, &format!("DELETE FROM dbwarden_cleanup_runs WHERE table_name = '{table}'")).await;
    exec(&db, &format!("DELETE FROM dbwarden_migrations WHERE subject = '{table}'")).await;
}

#[tokio::test]
async fn once_json_is_one_stable_object_and_stats_show_the_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, db) = sqlite_with_sessions(dir.path(), 250, 40).await;

    let dry = run(&["cleanup", "--once", "--dry-run", "--json", "--database-url", &url]);
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    let dry = json(&dry);
    assert_eq!(dry["dry_run"], Value::Bool(true));
    assert_eq!(dry["rows_would_remove"].as_i64(), Some(250));
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM dbwarden_sessions").await, 290);

    let out = run(&["cleanup", "--once", "--json", "--database-url", &url, "--set", "cleanup.batch_size=100"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    for field in [
        "mode",
        "max_age_seconds",
        "table",
        "backend",
        "run_id",
        "started_at_ms",
        "finished_at_ms",
        "rows_removed",
        "rows_would_remove",
        "expected_total",
        "batches",
        "errors",
        "gave_up",
        "longest_batch_ms",
        "lock",
        "dry_run",
        "budget_exhausted",
        "interrupted",
    ] {
        assert!(report.get(field).is_some(), "field {field} missing: {report}");
    }
    assert_eq!(report["mode"], "expired");
    assert_eq!(report["table"], "dbwarden_sessions");
    assert_eq!(report["backend"], "sqlite");
    assert_eq!(report["rows_removed"].as_i64(), Some(250));
    assert_eq!(report["batches"].as_i64(), Some(3));
    assert_eq!(report["lock"]["outcome"], "acquired");
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM dbwarden_sessions").await, 40);

    let stats = run(&["cleanup", "--stats", "--json", "--database-url", &url]);
    assert_eq!(stats.status.code(), Some(0), "{}", stderr(&stats));
    let stats = json(&stats);
    assert_eq!((stats["total"].as_i64(), stats["expired"].as_i64()), (Some(40), Some(0)));
    let runs = stats["last_runs"].as_array().expect("last_runs");
    assert_eq!(runs.len(), 2, "the dry run and the real one: {stats}");
    assert_eq!(runs[0]["rows_removed"].as_i64(), Some(250));
    assert_eq!(runs[0]["dry_run"], Value::Bool(false));
    assert!(runs[0]["finished_at_ms"].is_i64());

    let text = run(&["cleanup", "--stats", "--database-url", &url]);
    assert_eq!(text.status.code(), Some(0));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("expired") && text.contains("removed 250 in 3 batches"), "{text}");
}

#[tokio::test]
async fn force_mode_takes_hours() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, db) = sqlite_with_sessions(dir.path(), 0, 30).await;
    exec(&db, &format!("UPDATE dbwarden_sessions SET created_at = {} WHERE rowid <= 10", now_ms() - 5 * 3_600_000))
        .await;

    let out = run(&["cleanup", "--force", "--max-age", "4", "--json", "--database-url", &url]);

    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["mode"], "force");
    assert_eq!(report["max_age_seconds"].as_i64(), Some(4 * 3600));
    assert_eq!(report["rows_removed"].as_i64(), Some(10));
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM dbwarden_sessions").await, 20);
}

#[cfg(unix)]
#[tokio::test]
async fn a_held_lock_skips_the_run_with_exit_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, db) = sqlite_with_sessions(dir.path(), 5, 0).await;
    let lock_path = dir.path().join("sessions.db-dbwarden-cleanup.lock");
    let lock =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).expect("lock file");
    lock.lock().expect("hold the cleanup lock");

    let out = run(&["cleanup", "--once", "--json", "--database-url", &url]);

    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["lock"]["outcome"], "skipped");
    assert_eq!(report["rows_removed"].as_i64(), Some(0));
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM dbwarden_sessions").await, 5);
    let text = run(&["cleanup", "--once", "--database-url", &url]);
    assert_eq!(text.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&text.stdout).contains("another cleanup holds the lock"));

    lock.unlock().expect("release");
    let out = run(&["cleanup", "--once", "--json", "--database-url", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["rows_removed"].as_i64(), Some(5));
}

#[tokio::test]
async fn usage_and_configuration_errors_exit_2_and_an_unreachable_database_3() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, db) = sqlite_with_sessions(dir.path(), 3, 3).await;
    exec(&db, "CREATE TABLE foreign_sessions (id INTEGER PRIMARY KEY, payload TEXT)").await;

    let no_mode = run(&["cleanup", "--database-url", &url]);
    assert_eq!(no_mode.status.code(), Some(2));
    let two_modes = run(&["cleanup", "--once", "--stats", "--database-url", &url]);
    assert_eq!(two_modes.status.code(), Some(2));
    let max_age_alone = run(&["cleanup", "--once", "--max-age", "3", "--database-url", &url]);
    assert_eq!(max_age_alone.status.code(), Some(2));
    let bad_hours = run(&["cleanup", "--force", "--max-age", "soon", "--database-url", &url]);
    assert_eq!(bad_hours.status.code(), Some(2));
    assert!(stderr(&bad_hours).contains("soon"), "{}", stderr(&bad_hours));
    let bad_preset = run(&["cleanup", "--once", "--preset", "drupal", "--database-url", &url]);
    assert_eq!(bad_preset.status.code(), Some(2));
    assert!(stderr(&bad_preset).contains("drupal"), "{}", stderr(&bad_preset));

    let missing = run(&[
        "cleanup",
        "--once",
        "--database-url",
        &url,
        "--set",
        "cleanup.mapping.table=foreign_sessions",
        "--set",
        "cleanup.mapping.key=id",
    ]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("expires_at"), "the missing column is named: {}", stderr(&missing));

    let no_rule = run(&["cleanup", "--orphans", "--database-url", &url]);
    assert_eq!(no_rule.status.code(), Some(2), "{}", stderr(&no_rule));
    assert!(stderr(&no_rule).contains("orphan"), "{}", stderr(&no_rule));
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM dbwarden_sessions").await, 6, "nothing ran");

    let unreachable = run(&["cleanup", "--stats", "--database-url", "postgres://dbw:s3cret@127.0.0.1:9/none"]);
    assert_eq!(unreachable.status.code(), Some(3));
    assert!(!stderr(&unreachable).contains("s3cret"), "{}", stderr(&unreachable));
}
