//! `dbwarden status`: the health verdict of a running server and its key
//! figures, from `GET /api/status`. Exit 0 when it passes with no alert
//! active, 1 otherwise.

use std::process::ExitCode;

use clap::Args;

use super::client::{Client, ClientArgs, Failure, Verdict, finish, num, outln, text, verdict_of};

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Print the server's JSON (`/api/status`) instead of the summary lines.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    Ok(finish(status(&args)))
}

fn status(args: &StatusArgs) -> Result<Verdict, Failure> {
    let client = Client::new(&args.client)?;
    let body = client.get_json("/api/status")?;
    let health = text(&body, "/health/status");
    let active = num(&body, "/alerts/active") as u64;
    if args.json {
        outln!("{body:#}");
    } else {
        outln!("status: {health}   monitor: {}", text(&body, "/monitor/name"));
        outln!(
            "sessions: {} active (peak {})   pool utilization: {:.0}%   queries: {} ({:.2}/s over 5 min)",
            num(&body, "/session_metrics/active_sessions"),
            num(&body, "/session_metrics/peak_active_sessions"),
            num(&body, "/pool_metrics/utilization") * 100.0,
            num(&body, "/query_metrics/total"),
            num(&body, "/rates/5m/queries_per_second"),
        );
        outln!(
            "error rate (5 min): {:.2}%   requests in flight: {}   active alerts: {active}",
            num(&body, "/rates/5m/error_rate") * 100.0,
            num(&body, "/request_metrics/in_flight"),
        );
        if let Some(issues) = body.pointer("/health/issues").and_then(|v| v.as_array()) {
            for issue in issues {
                outln!("  ! {}", issue.as_str().map_or_else(|| issue.to_string(), str::to_owned));
            }
        }
    }
    let verdict = verdict_of(health, active);
    if verdict == Verdict::Problem {
        eprintln!("dbwarden: the server reports {health} with {active} active alert(s)");
    }
    Ok(verdict)
}
