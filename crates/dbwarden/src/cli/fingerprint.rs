//! `dbwarden fingerprint`: shows what dbwarden keeps of a statement.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use dbwarden_core::Fingerprint;

#[derive(Debug, Args)]
pub(crate) struct FingerprintArgs {
    /// Statements to fingerprint; with none, one statement is read from standard input.
    statements: Vec<String>,
    /// Print JSON lines instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: FingerprintArgs) -> anyhow::Result<ExitCode> {
    let statements = if args.statements.is_empty() {
        let mut sql = String::new();
        std::io::stdin().read_to_string(&mut sql).context("could not read a statement from standard input")?;
        vec![sql]
    } else {
        args.statements
    };
    for sql in &statements {
        let fp = Fingerprint::of(sql);
        if args.json {
            println!("{}", serde_json::to_string(&fp).context("could not encode the fingerprint")?);
        } else {
            println!("{}  {:<11} {:<20} {}", fp.id(), fp.kind().as_str(), fp.table().unwrap_or("-"), fp.text());
        }
    }
    Ok(ExitCode::SUCCESS)
}
