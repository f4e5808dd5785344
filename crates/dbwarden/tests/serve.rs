//! `dbwarden serve` as a real process on SQLite, PostgreSQL and MariaDB
//! (each test its own database): probes, token, history across a restart,
//! and the monitoring commands' exit statuses against it.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::{dbwarden, http_get};

const TOKEN: &str = "test-token-0123456789abcdef";

/// A running `dbwarden serve`; stopped with SIGTERM when dropped.
struct Served {
    child: Child,
    addr: String,
    token: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    /// Starts serve with `args` (and `envs`), waits for its address and, when
    /// no token is configured, the printed one.
    fn start(dir: &std::path::Path, envs: &[(&str, &str)], args: &[&str]) -> Served {
        let mut cmd = dbwarden();
        cmd.current_dir(dir).args(["serve", "--bind", "127.0.0.1:0", "--probe-interval", "0.1"]);
        cmd.args(["--tick-interval", "0.2", "--summary-interval", "3600"]).args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.stderr(Stdio::piped()).spawn().expect("spawn dbwarden serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                sink.lock().expect("log").push(line);
            }
        });
        let configured = envs.iter().find(|(k, _)| *k == "DBWARDEN_ADMIN_TOKEN").map(|(_, v)| (*v).to_owned());
        let (mut token, mut addr) = (configured, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while token.is_none() || addr.is_none() {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("serve never printed its address: {:?}", log.lock().expect("log")));
            if let Some(rest) = line.split("the admin token for this run is ").nth(1) {
                token = Some(rest.trim().to_owned());
            }
            if let Some(rest) = line.split("dashboard and API on http://").nth(1) {
                addr = Some(rest.trim_end_matches('/').to_owned());
            }
        }
        Served { child, addr: addr.expect("addr"), token: token.expect("token"), log }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn get(&self, path: &str, auth: bool) -> (u16, String) {
        http_get(&self.addr, path, auth.then_some(self.token.as_str()))
    }

    fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path, true);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self.get("/readyz", false);
            if status == 200 {
                return;
            }
            assert!(Instant::now() < deadline, "never ready: {status} {body}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then the exit status and the whole log.
    fn stop(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let kill = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().expect("kill");
        assert!(kill.success());
        let status = self.child.wait().expect("wait");
        // The reader thread ends with the pipe.
        std::thread::sleep(Duration::from_millis(100));
        let log = self.log.lock().expect("log").clone();
        (status, log)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// `base` with its database replaced by `name`.
fn with_database(base: &str, name: &str) -> String {
    let (url, query) = base.split_once('?').map_or((base, None), |(u, q)| (u, Some(q)));
    let root = url.rsplit_once('/').map_or(url, |(r, _)| r);
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// A database of its own on a server (PostgreSQL or MariaDB), dropped at the end.
struct ScratchDatabase {
    admin_url: String,
    name: String,
    url: String,
    postgres: bool,
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

impl ScratchDatabase {
    fn postgres() -> Self {
        let base = std::env::var("DBWARDEN_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        Self::create(base, true)
    }

    fn mysql() -> Self {
        let base =
            std::env::var("DBWARDEN_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
        Self::create(base, false)
    }

    fn create(admin_url: String, postgres: bool) -> Self {
        let name = unique("dbw_serve");
        let sql = format!("CREATE DATABASE {name}");
        block_on(async {
            if postgres {
                let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await.expect("PostgreSQL");
                sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(&mut c).await.expect("create database");
            } else {
                let mut c = <sqlx::MySqlConnection as sqlx::Connection>::connect(&admin_url).await.expect("MariaDB");
                sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(&mut c).await.expect("create database");
            }
        });
        let url = with_database(&admin_url, &name);
        ScratchDatabase { admin_url, name, url, postgres }
    }

    fn history_rows(&self) -> i64 {
        block_on(async {
            let sql = "SELECT count(*) FROM dbwarden_history";
            if self.postgres {
                let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&self.url).await.expect("connect");
                sqlx::query_scalar::<_, i64>(sql).fetch_one(&mut c).await.expect("count")
            } else {
                let mut c = <sqlx::MySqlConnection as sqlx::Connection>::connect(&self.url).await.expect("connect");
                sqlx::query_scalar::<_, i64>(sql).fetch_one(&mut c).await.expect("count")
            }
        })
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let sql = if self.postgres {
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)
        } else {
            format!("DROP DATABASE IF EXISTS {}", self.name)
        };
        block_on(async {
            if self.postgres {
                if let Ok(mut c) = <sqlx::PgConnection as sqlx::Connection>::connect(&self.admin_url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(&mut c).await;
                }
            } else if let Ok(mut c) = <sqlx::MySqlConnection as sqlx::Connection>::connect(&self.admin_url).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(&mut c).await;
            }
        });
    }
}

/// The checks every backend must pass: probes, token, details, history rows.
fn serve_answers(url: &str) -> Served {
    let dir = tempfile::tempdir().expect("temp dir");
    let served = Served::start(dir.path(), &[], &["--database-url", url, "--history-interval", "0.3"]);
    assert_eq!(served.token.len(), 64, "a 256-bit generated token: {}", served.token);
    assert!(served.addr.starts_with("127.0.0.1:"), "{}", served.addr);
    let (status, body) = served.get("/livez", false);
    assert_eq!(status, 200, "{body}");
    served.wait_ready();
    let (status, body) = served.get("/api/status", false);
    assert_eq!(status, 401, "admin endpoints need the token: {body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status_json = served.json("/api/status");
        if status_json["query_metrics"]["total"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the probe never ran: {status_json}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = served.get("/health", true);
    assert!(status == 200 || status == 503, "{status} {body}");
    let health: Value = serde_json::from_str(&body).expect("health JSON");
    assert!(health["checks"].is_object(), "details for the authorized caller: {body}");
    let (_, open) = served.get("/health", false);
    assert!(!open.contains("\"checks\""), "no details without the token: {open}");
    served
}

fn stop_and_check_token_printed_once(served: Served) {
    let token = served.token.clone();
    let (status, log) = served.stop();
    assert!(status.success(), "exit {status:?}: {log:?}");
    assert!(log.iter().any(|l| l.contains("SIGTERM received: shutting down")), "{log:?}");
    assert_eq!(log.iter().filter(|l| l.contains(&token)).count(), 1, "the token is printed exactly once: {log:?}");
}

fn wait_for_trend(served: &Served, points: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let trend = served.json("/api/trend");
        let got = trend["points"].as_array().cloned().unwrap_or_default();
        if got.len() >= points {
            return got;
        }
        assert!(Instant::now() < deadline, "fewer than {points} trend points: {trend}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(unix)]
#[test]
fn serve_on_sqlite_answers_probes_and_guards_the_api() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("watched.db");
    let served = serve_answers(&format!("sqlite://{}", db.display()));
    assert!(db.exists(), "the SQLite file is created on first start");
    stop_and_check_token_printed_once(served);
}

#[test]
fn sigterm_ends_open_event_streams_instead_of_waiting_for_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("watched.db").display());
    let served = Served::start(dir.path(), &[("DBWARDEN_ADMIN_TOKEN", TOKEN)], &["--database-url", &url]);
    served.wait_ready();
    let mut stream = std::net::TcpStream::connect(&served.addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    write!(stream, "GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").expect("send");
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head).expect("the event stream answers");
    assert_eq!(&head, b"HTTP/1.1 200", "{}", String::from_utf8_lossy(&head));
    let reader = std::thread::spawn(move || {
        // Reads until the server ends the stream (EOF) or the read times out.
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).map(|_| rest.len())
    });
    let (status, log) = served.stop();
    assert!(status.success(), "exit {status:?}: {log:?}");
    assert!(!log.iter().any(|l| l.contains("did not finish")), "shutdown waited for the open event stream: {log:?}");
    let ended = reader.join().expect("reader thread");
    assert!(ended.is_ok(), "the stream was closed by the server, not left to time out: {ended:?}");
}

/// Opens the SQLite file at `url`; each statement runs on its own.
fn sqlite_exec(url: &str, statements: &[String]) -> Vec<i64> {
    block_on(async {
        let db = dbwarden_sessions::SessionDatabase::connect(url).await.expect("open sqlite");
        dbwarden_sessions::migrate(&db, &dbwarden_sessions::SchemaConfig::default()).await.expect("migrate");
        let dbwarden_sessions::SessionDatabase::Sqlite(pool) = &db else { panic!("not SQLite") };
        let mut out = Vec::new();
        for sql in statements {
            let sql = sqlx::AssertSqlSafe(sql.clone());
            if sql.0.starts_with("SELECT") {
                out.push(sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.expect("query"));
            } else {
                sqlx::query(sql).execute(pool).await.expect("statement");
            }
        }
        db.close().await;
        out
    })
}

#[test]
fn serve_runs_the_session_cleanup_on_its_interval_and_stores_snapshots() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    // 120 sessions that expired an hour ago, 7 that live a day more.
    let fill = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 127) \
         INSERT INTO dbwarden_sessions (id_hash, user_id, created_at, last_seen_at, expires_at, \
         absolute_expires_at, version, data) \
         SELECT randomblob(32), NULL, {now}, {now}, \
         CASE WHEN i <= 120 THEN {now} - 3600000 ELSE {now} + 86400000 END, {now} + 172800000, 1, X'7B7D' FROM n"
    );
    sqlite_exec(&url, &[fill]);
    let served = Served::start(
        dir.path(),
        &[("DBWARDEN_ADMIN_TOKEN", TOKEN)],
        &["--database-url", &url, "--set", "cleanup.interval=1", "--set", "cleanup.batch_size=25"],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let status = served.json("/api/status");
        if status["cleanup_metrics"]["rows_removed"].as_u64() == Some(120) {
            break status;
        }
        assert!(Instant::now() < deadline, "the cleanup daemon never removed the 120 expired sessions: {status}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status["cleanup_metrics"]["runs"].as_u64().unwrap_or(0) >= 1, "{status}");
    assert!(status["cleanup_metrics"]["last_run"]["batches"].as_u64().unwrap_or(0) >= 1, "{status}");
    let (exit, log) = served.stop();
    assert!(exit.success(), "{log:?}");
    let counts = sqlite_exec(
        &url,
        &[
            "SELECT count(*) FROM dbwarden_sessions".to_owned(),
            format!("SELECT count(*) FROM dbwarden_sessions WHERE expires_at < {now}"),
            "SELECT count(*) FROM dbwarden_session_snapshots WHERE table_name = 'dbwarden_sessions'".to_owned(),
            "SELECT count(*) FROM dbwarden_cleanup_runs WHERE finished_at IS NOT NULL".to_owned(),
        ],
    );
    assert_eq!(counts[0], 7, "live sessions are kept");
    assert_eq!(counts[1], 0, "no expired session is left");
    assert!(counts[2] >= 1, "snapshots are stored for the trends");
    assert!(counts[3] >= 1, "runs are recorded");
}

#[test]
fn serve_waits_for_a_session_table_that_does_not_exist_yet_without_creating_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("watched.db").display());
    let served = Served::start(
        dir.path(),
        &[("DBWARDEN_ADMIN_TOKEN", TOKEN)],
        &["--database-url", &url, "--set", "cleanup.interval=1"],
    );
    served.wait_ready();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !served.log.lock().expect("log").iter().any(|l| l.contains("no session table yet")) {
        assert!(Instant::now() < deadline, "upkeep never said the table is missing");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (exit, log) = served.stop();
    assert!(exit.success(), "{log:?}");
    assert_eq!(log.iter().filter(|l| l.contains("no session table yet")).count(), 1, "said once: {log:?}");
    let tables = block_on(async {
        let db = dbwarden_sessions::SessionDatabase::connect(&url).await.expect("open sqlite");
        let dbwarden_sessions::SessionDatabase::Sqlite(pool) = &db else { panic!("not SQLite") };
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = 'dbwarden_sessions'")
            .fetch_one(pool)
            .await
            .expect("query");
        n
    });
    assert_eq!(tables, 0, "serve does not create a session table in a database it watches");
}

#[cfg(unix)]
#[test]
fn serve_on_postgres_answers_probes_and_stores_history() {
    let scratch = ScratchDatabase::postgres();
    let served = serve_answers(&scratch.url);
    wait_for_trend(&served, 2);
    stop_and_check_token_printed_once(served);
    assert!(scratch.history_rows() >= 2, "trend points are stored in PostgreSQL");
}

#[cfg(unix)]
#[test]
fn serve_on_mariadb_answers_probes_and_stores_history() {
    let scratch = ScratchDatabase::mysql();
    let served = serve_answers(&scratch.url);
    wait_for_trend(&served, 2);
    stop_and_check_token_printed_once(served);
    assert!(scratch.history_rows() >= 2, "trend points are stored in MariaDB");
}

#[cfg(unix)]
#[test]
fn trend_history_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let envs = [("DBWARDEN_ADMIN_TOKEN", TOKEN)];
    let args = ["--history-interval", "0.3"];
    let first = Served::start(dir.path(), &envs, &args);
    let before = wait_for_trend(&first, 3);
    let (status, log) = first.stop();
    assert!(status.success(), "{log:?}");
    let stamps: Vec<u64> = before.iter().filter_map(|p| p["at"].as_u64()).collect();
    assert_eq!(stamps.len(), before.len(), "points carry their time: {before:?}");

    let second = Served::start(dir.path(), &envs, &args);
    let after = second.json("/api/trend");
    let restored: Vec<u64> =
        after["points"].as_array().into_iter().flatten().filter_map(|p| p["at"].as_u64()).collect();
    for at in &stamps {
        assert!(restored.contains(at), "point at {at} restored after the restart: {after}");
    }
    let (status, log) = second.stop();
    assert!(status.success(), "{log:?}");
}

fn cli(served: Option<&Served>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = dbwarden();
    if let Some(s) = served {
        cmd.env("DBWARDEN_URL", s.url()).env("DBWARDEN_ADMIN_TOKEN", &s.token);
    }
    let out = cmd.args(args).output().expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[cfg(unix)]
#[test]
fn monitoring_commands_exit_0_when_healthy_2_on_usage_errors_and_3_when_unreachable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let served =
        Served::start(dir.path(), &[("DBWARDEN_ADMIN_TOKEN", TOKEN), ("DBWARDEN_RESOURCES_ENABLED", "false")], &[]);
    served.wait_ready();
    // The verdict passes once the first probes have answered.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out, err) = cli(Some(&served), &["status"]);
        if code == 0 {
            assert!(out.contains("status: pass"), "{out}");
            assert!(err.is_empty(), "{err}");
            break;
        }
        assert_eq!(code, 1, "{out}{err}");
        assert!(Instant::now() < deadline, "never healthy: {out}{err}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, out, err) = cli(Some(&served), &["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    let json: Value = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(json["health"]["status"], "pass");
    let (code, out, err) = cli(Some(&served), &["summary"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("performance summary"), "{out}");
    let (code, out, err) = cli(Some(&served), &["metrics", "--format", "prometheus"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("# TYPE") && out.contains("dbwarden_"), "{out}");
    let (code, out, _) = cli(Some(&served), &["metrics", "--format", "table"]);
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l.starts_with("query_metrics.total ")), "{out}");
    let (code, out, _) = cli(Some(&served), &["metrics", "--format", "json"]);
    assert_eq!(code, 0);
    assert!(serde_json::from_str::<Value>(&out).is_ok(), "{out}");
    let (code, out, err) = cli(Some(&served), &["alerts", "--threshold", "5"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("no active alerts"), "{out}");

    let (code, out, err) = cli(Some(&served), &["enable-periodic-logging", "--interval", "120"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("every 120 s"), "{out}");
    let config = served.json("/api/config");
    assert_eq!(config["runtime"]["summary_interval_seconds"], 120.0, "{config}");

    // Usage errors: a refused token, a bad flag value.
    let (code, _, err) = cli(Some(&served), &["status", "--token", "wrong-token-wrong-token"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("refused the admin token") && err.lines().count() == 1, "{err}");
    let (code, _, err) = cli(Some(&served), &["enable-periodic-logging", "--interval", "-5"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = cli(None, &["status"]);
    assert_eq!(code, 2, "no token: {err}");

    let url = served.url();
    let (status, log) = served.stop();
    assert!(status.success(), "{log:?}");
    let (code, _, err) = cli(None, &["status", "--url", &url, "--token", TOKEN]);
    assert_eq!(code, 3, "{err}");
    assert!(err.starts_with("dbwarden: cannot reach the dbwarden server") && err.lines().count() == 1, "{err}");
}

#[cfg(unix)]
#[test]
fn monitoring_commands_exit_1_when_the_server_reports_problems() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Any host uses more than 1 % of its memory: the memory check fails and
    // its alert fires.
    let envs = [
        ("DBWARDEN_ADMIN_TOKEN", TOKEN),
        ("RESPONSIVENESS_MEMORY_WARNING_THRESHOLD", "0.001"),
        ("RESPONSIVENESS_MEMORY_CRITICAL_THRESHOLD", "0.002"),
        ("RESPONSIVENESS_MONITORING_INTERVAL", "0.2"),
    ];
    let served = Served::start(dir.path(), &envs, &[]);
    served.wait_ready();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out, err) = cli(Some(&served), &["status"]);
        if code == 1 {
            assert!(err.starts_with("dbwarden: the server reports") && err.lines().count() == 1, "{err}");
            assert!(!out.contains("status: pass"), "{out}");
            break;
        }
        assert_eq!(code, 0, "{out}{err}");
        assert!(Instant::now() < deadline, "the memory check never failed: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, out, err) = cli(Some(&served), &["alerts", "--json"]);
        let json: Value = serde_json::from_str(&out).expect("alerts JSON");
        if json["alerts"].as_array().is_some_and(|a| !a.is_empty()) {
            assert_eq!(code, 1, "{err}");
            break;
        }
        assert!(Instant::now() < deadline, "no alert fired: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, log) = served.stop();
    assert!(status.success(), "{log:?}");
}
