//! `dbwarden enable-periodic-logging --interval SECONDS`: sets how often a
//! running server logs its performance summary (0 turns it off), through
//! `PUT /api/config` (`runtime.summary_interval_seconds`).

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::client::{Client, ClientArgs, Failure, Verdict, finish, num, outln};
use super::serve::SUMMARY_INTERVAL_KEY;

#[derive(Debug, Args)]
pub(crate) struct PeriodicLoggingArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Seconds between two summaries in the server's log (1 to 86400; 0 turns them off).
    #[arg(long, value_parser = interval, value_name = "SECONDS")]
    interval: f64,
}

fn interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v == 0.0 || (1.0..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` must be 0 (off) or 1 to 86400 seconds")),
    }
}

pub(crate) fn run(args: PeriodicLoggingArgs) -> anyhow::Result<ExitCode> {
    Ok(finish(enable(&args)))
}

fn enable(args: &PeriodicLoggingArgs) -> Result<Verdict, Failure> {
    let client = Client::new(&args.client)?;
    let answer = client.put_json("/api/config", &json!({ "runtime": { SUMMARY_INTERVAL_KEY: args.interval } }))?;
    let now = num(&answer, &format!("/runtime/{SUMMARY_INTERVAL_KEY}"));
    if now == 0.0 {
        outln!("periodic summary logging is off");
    } else {
        outln!("the server logs its performance summary every {now} s");
    }
    Ok(Verdict::Healthy)
}
