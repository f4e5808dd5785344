//! `dbwarden summary`: the human-readable performance summary of a running
//! server (`GET /api/summary`). Exit 0 when it passes with no alert active,
//! 1 otherwise.

use std::process::ExitCode;

use clap::Args;

use super::client::{Client, ClientArgs, Failure, Verdict, finish, num, out, outln, text, verdict_of};

#[derive(Debug, Args)]
pub(crate) struct SummaryArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Print the server's JSON instead of the text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: SummaryArgs) -> anyhow::Result<ExitCode> {
    Ok(finish(summary(&args)))
}

fn summary(args: &SummaryArgs) -> Result<Verdict, Failure> {
    let client = Client::new(&args.client)?;
    let body = client.get_json("/api/summary")?;
    // The summary has no alert count; the status does.
    let status = client.get_json("/api/status")?;
    let active = num(&status, "/alerts/active") as u64;
    if args.json {
        outln!("{body:#}");
    } else {
        out!("{}", text(&body, "/text"));
        if !text(&body, "/text").ends_with('\n') {
            outln!();
        }
    }
    let health = text(&body, "/status");
    let verdict = verdict_of(health, active);
    if verdict == Verdict::Problem {
        eprintln!("dbwarden: the server reports {health} with {active} active alert(s)");
    }
    Ok(verdict)
}
