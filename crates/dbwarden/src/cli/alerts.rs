//! `dbwarden alerts [--threshold SECONDS]`: a running server's active
//! alerts and the operations slower than the threshold (query fingerprints
//! and routes by p95, session creation, cleanup and recovery by their
//! average). Exit 0 when there is none of either, 1 otherwise.

use std::process::ExitCode;

use clap::Args;
use serde_json::{Value, json};

use super::client::{Client, ClientArgs, Failure, Verdict, finish, num, outln, text};

#[derive(Debug, Args)]
pub(crate) struct AlertsArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Report operations slower than this many seconds (default: the server's
    /// slow-query threshold).
    #[arg(long, value_parser = super::serve::positive_seconds, value_name = "SECONDS")]
    threshold: Option<f64>,
    /// Print JSON: `{"alerts": [...], "slow_operations": [...], "threshold_seconds": N}`.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: AlertsArgs) -> anyhow::Result<ExitCode> {
    Ok(finish(alerts(&args)))
}

fn alerts(args: &AlertsArgs) -> Result<Verdict, Failure> {
    let client = Client::new(&args.client)?;
    let alerts = client.get_json("/api/alerts")?;
    let status = client.get_json("/api/status")?;
    let threshold = args.threshold.unwrap_or_else(|| num(&status, "/thresholds/slow_query"));
    let limit_ms = threshold * 1000.0;
    let mut slow = Vec::new();
    let queries = client.get_json("/api/queries?sort=p99&limit=100")?;
    for q in queries.get("queries").and_then(Value::as_array).into_iter().flatten() {
        let p95 = num(q, "/latency/p95_ms");
        if p95 > limit_ms {
            slow.push(json!({"kind": "query", "name": text(q, "/text"), "p95_ms": p95, "calls": num(q, "/calls")}));
        }
    }
    let requests = client.get_json("/api/requests")?;
    for r in requests.get("routes").and_then(Value::as_array).into_iter().flatten() {
        let p95 = num(r, "/latency/p95_ms");
        if p95 > limit_ms {
            let name =
                format!("{} {}", text(r, "/method"), r.get("route").and_then(Value::as_str).unwrap_or("(other)"));
            slow.push(json!({"kind": "route", "name": name, "p95_ms": p95, "calls": num(r, "/requests")}));
        }
    }
    for (name, pointer) in [
        ("session creation", "/performance_timing/avg_session_creation_ms"),
        ("session cleanup", "/performance_timing/avg_session_cleanup_ms"),
        ("recovery", "/performance_timing/avg_recovery_time_ms"),
    ] {
        let avg = num(&status, pointer);
        if avg > limit_ms {
            slow.push(json!({"kind": "session", "name": name, "avg_ms": avg}));
        }
    }
    let active: Vec<Value> = alerts.get("alerts").and_then(Value::as_array).cloned().unwrap_or_default();
    if args.json {
        outln!("{:#}", json!({"threshold_seconds": threshold, "alerts": active, "slow_operations": slow}));
    } else {
        if active.is_empty() {
            outln!("no active alerts");
        }
        for a in &active {
            outln!(
                "[{}] {} {} ({}): {}",
                text(a, "/severity"),
                text(a, "/state"),
                text(a, "/alert_type"),
                num(a, "/id"),
                text(a, "/message")
            );
        }
        if slow.is_empty() {
            outln!("no operation slower than {threshold} s");
        }
        for s in &slow {
            let ms = s.get("p95_ms").or_else(|| s.get("avg_ms")).and_then(Value::as_f64).unwrap_or(0.0);
            let label = if s.get("p95_ms").is_some() { "p95" } else { "avg" };
            outln!("slow {}: {} ({label} {ms:.1} ms)", text(s, "/kind"), text(s, "/name"));
        }
    }
    if active.is_empty() && slow.is_empty() {
        Ok(Verdict::Healthy)
    } else {
        eprintln!("dbwarden: {} active alert(s), {} operation(s) slower than {threshold} s", active.len(), slow.len());
        Ok(Verdict::Problem)
    }
}
