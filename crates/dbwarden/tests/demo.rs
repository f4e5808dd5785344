//! `dbwarden demo` as a real process: the example application's generated
//! traffic shows up in the API (per-route figures, failures, N+1 findings)
//! within a bounded time, and the demo stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::{dbwarden, http_get};

const TOKEN: &str = "demo-token-0123456789abcdef";

#[cfg(unix)]
#[test]
fn demo_traffic_reaches_every_kind_of_route_and_the_n_plus_one_detector() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = dbwarden();
    let mut child = cmd
        .current_dir(dir.path())
        .env("DBWARDEN_ADMIN_TOKEN", TOKEN)
        .env("NO_COLOR", "1")
        .args(["demo", "--bind", "127.0.0.1:0", "--run-for", "300"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dbwarden demo");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines.next().expect("demo printed its address").expect("line");
        if let Some(rest) = line.split("dashboard and API on http://").nth(1) {
            break rest.trim_end_matches('/').to_owned();
        }
    };
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    assert!(dir.path().join("dbwarden-demo.db").exists(), "the demo's SQLite file is created");
    let (status, body) = http_get(&addr, "/demo/fast/1", Some(TOKEN));
    assert_eq!(status, 200, "{body}");

    let wanted = ["/demo/fast/{id}", "/demo/slow", "/demo/fail", "/demo/n-plus-one"];
    let deadline = Instant::now() + Duration::from_secs(60);
    let requests = loop {
        let (status, body) = http_get(&addr, "/api/requests", Some(TOKEN));
        assert_eq!(status, 200, "{body}");
        let json: Value = serde_json::from_str(&body).expect("JSON");
        let routes: Vec<String> = json["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["route"].as_str().map(str::to_owned))
            .collect();
        let all_seen = wanted.iter().all(|w| routes.iter().any(|r| r == w));
        if all_seen && json["n_plus_one"].as_array().is_some_and(|n| !n.is_empty()) {
            break json;
        }
        assert!(Instant::now() < deadline, "traffic did not reach every route within 60 s: {json}");
        std::thread::sleep(Duration::from_millis(250));
    };
    let route = |name: &str| {
        requests["routes"].as_array().into_iter().flatten().find(|r| r["route"] == name).cloned().expect("route")
    };
    assert!(route("/demo/fail")["errors"].as_u64().unwrap_or(0) >= 1, "{requests}");
    assert!(route("/demo/n-plus-one")["avg_db_queries"].as_f64().unwrap_or(0.0) > 5.0, "{requests}");
    let finding = &requests["n_plus_one"][0];
    assert_eq!(finding["route"], "/demo/n-plus-one", "{finding}");
    assert!(!finding.to_string().contains("item_id = 1"), "fingerprints only, no literal values: {finding}");

    let kill = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
    assert!(kill.success());
    let status = child.wait().expect("wait");
    let log = drain.join().expect("stderr");
    assert!(status.success(), "exit {status:?}: {log:?}");
    assert!(log.iter().any(|l| l.contains("SIGTERM received")), "{log:?}");
}
