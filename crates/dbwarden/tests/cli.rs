//! The `dbwarden` binary, run as an operator would: `serve` on the embedded
//! SQLite default, its HTTP endpoints and admin token, its shutdown on
//! SIGTERM, its refusals, and `fingerprint`.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::http_get;

/// The binary with a clean environment, listening on a free port.
fn dbwarden() -> Command {
    let mut cmd = support::dbwarden();
    cmd.env("DBWARDEN_BIND", "127.0.0.1:0");
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn serve_watches_the_default_sqlite_database_and_logs_summaries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dbwarden()
        .current_dir(dir.path())
        .args(["serve", "--run-for", "2.5", "--probe-interval", "0.1", "--tick-interval", "0.2"])
        .args(["--summary-interval", "1"])
        .output()
        .expect("run dbwarden serve");
    let log = stderr(&out);
    assert!(out.status.success(), "exit {:?}: {log}", out.status);
    assert!(dir.path().join("dbwarden.db").exists(), "the embedded database is created on first start");
    assert!(log.contains("dbwarden is watching the database"), "{log}");
    assert!(log.contains("--run-for elapsed: shutting down"), "{log}");
    let summaries: Vec<&str> = log.lines().filter(|l| l.contains("performance summary")).collect();
    assert!(summaries.len() >= 2, "a summary each second and one at shutdown: {log}");
    let last = summaries.last().copied().unwrap_or_default();
    let queries: u64 =
        last.split_whitespace().find_map(|f| f.strip_prefix("queries=")).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!(queries >= 10, "the probe ran statements every 0.1 s: {last}");
    assert!(last.contains("active_sessions=0"), "{last}");
}

#[cfg(unix)]
#[test]
fn serve_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("watched.db");
    let mut child = dbwarden()
        .args(["serve", "--probe-interval", "0.1", "--summary-interval", "3600"])
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dbwarden serve");
    let started = Instant::now();
    while !db.exists() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let kill = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
    assert!(kill.success());
    let status = child.wait().expect("wait");
    let mut log = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut log).expect("read stderr");
    assert!(status.success(), "exit {status:?}: {log}");
    assert!(log.contains("SIGTERM received: shutting down"), "{log}");
    assert!(log.contains("performance summary"), "a last summary on the way out: {log}");
}

#[test]
fn serve_refuses_what_it_cannot_watch_with_a_clear_message() {
    let out = dbwarden()
        .args(["serve", "--database-url", "postgres://app:topsecret@db.invalid/app", "--run-for", "1"])
        .output()
        .expect("run");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("dbwarden: could not open the database `postgres://app:***@db.invalid/app`"), "{err}");
    assert!(!err.contains("topsecret"), "the password never reaches output: {err}");

    let out = dbwarden().args(["serve", "--probe-interval=-3"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    let err = stderr(&out);
    assert!(err.contains("monitor.probe_interval") && err.contains("flag:--probe-interval"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");

    let out = dbwarden().args(["serve", "--database-url", "oracle://x/y", "--run-for", "1"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("database.url"), "{}", stderr(&out));
}

#[test]
fn help_lists_commands_that_each_exist() {
    let out = dbwarden().arg("--help").output().expect("run");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap_or_default()
        .split("Options:")
        .next()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for expected in ["serve", "config", "status", "summary", "metrics", "alerts", "enable-periodic-logging", "demo"] {
        assert!(commands.contains(&expected), "{expected} missing from {help}");
    }
    for command in commands.iter().filter(|c| **c != "help") {
        let out = dbwarden().args([command, "--help"]).output().expect("run");
        assert!(out.status.success(), "{command} --help: {}", stderr(&out));
    }
}

#[test]
fn fingerprint_prints_the_normalized_statement_only() {
    let out = dbwarden()
        .args(["fingerprint", "select * from users where email = 'bob@example.com' and id in (1, 2, 3)"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("SELECT * FROM users WHERE email = ? AND id IN (?)"), "{text}");
    assert!(text.contains("select"), "{text}");
    assert!(!text.contains("bob@example.com"), "{text}");

    let mut child =
        dbwarden().args(["fingerprint", "--json"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("spawn");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"DELETE FROM sessions\nWHERE expires_at < 1700000000")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["text"], "DELETE FROM sessions WHERE expires_at < ?");
    assert_eq!(json["kind"], "delete");
    assert_eq!(json["table"], "sessions");
}

#[cfg(unix)]
#[test]
fn serve_answers_health_and_guards_the_api_with_a_token_printed_once() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = dbwarden()
        .current_dir(dir.path())
        .args(["serve", "--probe-interval", "0.1", "--tick-interval", "0.2", "--summary-interval", "3600"])
        .args(["--run-for", "60"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dbwarden serve");
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let (mut token, mut addr) = (None, None);
    let mut seen = Vec::new();
    while token.is_none() || addr.is_none() {
        let line = lines.next().expect("serve printed its token and address before exiting").expect("read line");
        if let Some(rest) = line.split("the admin token for this run is ").nth(1) {
            token = Some(rest.trim().to_owned());
        }
        if let Some(rest) = line.split("dashboard and API on http://").nth(1) {
            addr = Some(rest.trim_end_matches('/').to_owned());
        }
        seen.push(line);
    }
    let (token, addr) = (token.expect("token"), addr.expect("address"));
    assert!(token.len() >= 32, "a strong generated token: {token}");
    assert!(addr.starts_with("127.0.0.1:"), "loopback by default: {addr}");

    let (status, body) = http_get(&addr, "/livez", None);
    assert_eq!(status, 200, "{body}");
    // Readiness follows the first probes.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = http_get(&addr, "/readyz", None);
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {status} {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = http_get(&addr, "/api/status", None);
    assert_eq!(status, 401, "admin endpoints need the token: {body}");
    let (status, body) = http_get(&addr, "/api/status", Some(&token));
    assert_eq!(status, 200, "{body}");
    let status_json: serde_json::Value = serde_json::from_str(&body).expect("JSON status");
    assert!(status_json.to_string().contains("pool_metrics"), "{body}");
    let (status, body) = http_get(&addr, "/health", Some(&token));
    assert!(status == 200 || status == 503, "{status} {body}");
    assert!(body.contains("\"checks\""), "details for the authorized caller: {body}");

    let kill = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
    assert!(kill.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("wait");
    assert!(status.success(), "exit {status:?}: {rest:?}");
    let all = seen.iter().chain(rest.iter()).filter(|l| l.contains(&token)).count();
    assert_eq!(all, 1, "the token is printed exactly once and never logged");
}
