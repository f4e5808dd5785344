//! `dbwarden config show`: settings merged from defaults < file < env <
//! flags, with the seeds' names accepted, provenance printed, secrets
//! masked, unknown keys and bad values refused with exit 2.

use std::process::Command;

use serde_json::Value;

mod support;
use support::dbwarden;

fn show(cmd: &mut Command, extra: &[&str]) -> Value {
    let out = cmd.args(["config", "show", "--json"]).args(extra).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn entry<'a>(settings: &'a Value, key: &str) -> &'a Value {
    settings["settings"].as_array().into_iter().flatten().find(|e| e["key"] == key).unwrap_or_else(|| panic!("{key}"))
}

#[test]
fn file_env_and_flags_layer_in_order_and_each_value_names_its_source() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("dbwarden.toml");
    std::fs::write(
        &file,
        "[server]\nbind = \"127.0.0.1:1111\"\nmetrics_public = true\n[monitor]\nname = \"filed\"\n\
         [cleanup]\ninterval = 120\nbatch_size = 50\n[thresholds]\nslow_query = 0.75\n",
    )
    .expect("write");
    let file_source = format!("file:{}", file.display());
    let s = show(
        dbwarden()
            .env("DBWARDEN_CONFIG", &file)
            .env("DBWARDEN_BIND", "127.0.0.1:2222")
            .env("DBWARDEN_NAME", "from-env")
            .env("SESSION_CLEANUP_BATCH_SIZE", "25")
            .env("SESSION_MAX_AGE", "3600")
            .env("RESPONSIVENESS_CPU_WARNING_THRESHOLD", "0.6")
            .env("DBWARDEN_ADMIN_TOKEN", "a-very-secret-token-value")
            .env("DBWARDEN_DATABASE_URL", "postgres://app:pa55word@db:5432/app"),
        &["--bind", "127.0.0.1:3333"],
    );
    let check = |key: &str, value: &str, source: &str| {
        let e = entry(&s, key);
        assert_eq!(e["value"], value, "{key}: {e}");
        assert_eq!(e["source"], source, "{key}: {e}");
    };
    check("server.bind", "127.0.0.1:3333", "flag:--bind");
    check("monitor.name", "from-env", "env:DBWARDEN_NAME");
    check("server.metrics_public", "true", &file_source);
    check("cleanup.interval", "120", &file_source);
    check("cleanup.batch_size", "25", "env:SESSION_CLEANUP_BATCH_SIZE");
    check("cleanup.max_age", "3600", "env:SESSION_MAX_AGE");
    check("thresholds.slow_query", "0.75", &file_source);
    check("thresholds.cpu_warning", "0.6", "env:RESPONSIVENESS_CPU_WARNING_THRESHOLD");
    check("history.retention_days", "30", "default");
    check("server.admin_token", "********", "env:DBWARDEN_ADMIN_TOKEN");
    check("database.url", "postgres://app:***@db:5432/app", "env:DBWARDEN_DATABASE_URL");
    let text = s.to_string();
    assert!(!text.contains("a-very-secret-token-value") && !text.contains("pa55word"), "{text}");

    // The plain listing says the same.
    let out = dbwarden().args(["config", "show", "--name", "flagged"]).output().expect("run");
    let listing = String::from_utf8_lossy(&out.stdout);
    let line = listing.lines().find(|l| l.starts_with("monitor.name ")).expect("monitor.name line");
    assert!(line.contains("flagged") && line.ends_with("flag:--name"), "{line}");
}

#[test]
fn the_dbwarden_name_wins_over_a_seed_alias() {
    let s = show(dbwarden().env("SESSION_CLEANUP_INTERVAL", "60").env("DBWARDEN_CLEANUP_INTERVAL", "90"), &[]);
    assert_eq!(entry(&s, "cleanup.interval")["value"], "90");
    let s = show(dbwarden().env("RESPONSIVENESS_CLEANUP_INTERVAL", "300"), &[]);
    assert_eq!(entry(&s, "cleanup.interval")["source"], "env:RESPONSIVENESS_CLEANUP_INTERVAL");
}

#[test]
fn unknown_keys_and_bad_values_exit_2_with_one_line_naming_key_and_source() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("typo.toml");
    std::fs::write(&file, "[monitor]\nprobe_intreval = 3\n").expect("write");
    let config = file.display().to_string();
    // (environment, arguments, what the one-line refusal must name)
    type Case<'a> = (&'a [(&'a str, &'a str)], Vec<&'a str>, &'a [&'a str]);
    let cases: Vec<Case> = vec![
        (&[], vec!["--config", &config], &["monitor.probe_intreval"]),
        (&[("SESSION_CLEANUP_INTERVAL", "hourly")], vec![], &["cleanup.interval", "env:SESSION_CLEANUP_INTERVAL"]),
        (&[], vec!["--bind", "localhost"], &["server.bind", "flag:--bind"]),
        (&[], vec!["--set", "thresholds.memory_warning=0.95"], &["thresholds.memory_warning", "flag:--set"]),
        (&[], vec!["--set", "server.colour=blue"], &["server.colour"]),
    ];
    for (envs, args, needles) in cases {
        let mut cmd = dbwarden();
        cmd.envs(envs.iter().copied()).args(["config", "show"]).args(args);
        let out = cmd.output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        for needle in needles {
            assert!(err.contains(needle), "{needle} in {err}");
        }
        assert!(out.stdout.is_empty(), "nothing printed on refusal");
    }
}
