//! `dbwarden metrics --format json|prometheus|table`: a running server's
//! metrics, as its JSON (`/api/status`), its Prometheus text (`/metrics`) or
//! a two-column table of every figure. Exit 0 once printed.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::Value;

use super::client::{Client, ClientArgs, Failure, Verdict, finish, out, outln};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Every current metric as JSON.
    Json,
    /// The Prometheus text exposition, as scraped from /metrics.
    Prometheus,
    /// One `name  value` line per figure.
    Table,
}

#[derive(Debug, Args)]
pub(crate) struct MetricsArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

pub(crate) fn run(args: MetricsArgs) -> anyhow::Result<ExitCode> {
    Ok(finish(metrics(&args)))
}

fn metrics(args: &MetricsArgs) -> Result<Verdict, Failure> {
    let client = Client::new(&args.client)?;
    match args.format {
        Format::Json => outln!("{:#}", client.get_json("/api/status")?),
        Format::Prometheus => out!("{}", client.get_text("/metrics", "text/plain")?),
        Format::Table => {
            let body = client.get_json("/api/status")?;
            let mut rows = Vec::new();
            flatten("", &body, &mut rows);
            let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (key, value) in rows {
                outln!("{key:width$}  {value}");
            }
        }
    }
    Ok(Verdict::Healthy)
}

/// Every scalar leaf of `value` as `dotted.path  value`.
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    let join = |k: &str| if prefix.is_empty() { k.to_owned() } else { format!("{prefix}.{k}") };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&join(k), v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&join(&i.to_string()), v, out);
            }
        }
        Value::Null => out.push((prefix.to_owned(), "-".into())),
        Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_leaf_by_path() {
        let mut rows = Vec::new();
        flatten("", &serde_json::json!({"a": {"b": 1, "c": [true, null]}, "d": "x"}), &mut rows);
        let rows: Vec<String> = rows.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(rows, ["a.b=1", "a.c.0=true", "a.c.1=-", "d=x"]);
    }
}
