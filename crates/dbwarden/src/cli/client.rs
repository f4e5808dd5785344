//! The HTTP client behind the monitoring commands (`status`, `summary`,
//! `metrics`, `alerts`, `enable-periodic-logging`), which talk to a running
//! `dbwarden serve`, and their shared exit statuses:
//! 0 healthy, 1 warn/fail or alerts active, 2 usage error (including a
//! refused token), 3 server unreachable or not answering as a dbwarden
//! server. Every non-zero status comes with one line on stderr.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::Value;

/// How a monitoring command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Healthy, or the action was done.
    Healthy,
    /// The server reports warn/fail or active alerts.
    Problem,
    /// The command was used wrongly (bad flag, missing or refused token).
    Usage,
    /// The server could not be reached, or did not answer as dbwarden does.
    Unreachable,
}

impl Verdict {
    pub(crate) fn code(self) -> ExitCode {
        ExitCode::from(match self {
            Verdict::Healthy => 0,
            Verdict::Problem => 1,
            Verdict::Usage => 2,
            Verdict::Unreachable => 3,
        })
    }
}

/// A failure with its one-line reason.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) verdict: Verdict,
    pub(crate) reason: String,
}

impl Failure {
    pub(crate) fn usage(reason: impl Into<String>) -> Self {
        Failure { verdict: Verdict::Usage, reason: reason.into() }
    }
}

/// Where the server is and how to sign in.
#[derive(Debug, Clone, Args)]
pub(crate) struct ClientArgs {
    /// The dbwarden server's base URL (a prefix such as /admin/dbwarden included).
    #[arg(long, env = "DBWARDEN_URL", default_value = "http://127.0.0.1:9750", global = true)]
    url: String,
    /// The admin token (prefer the environment variable: a flag shows in the process list).
    #[arg(long, env = "DBWARDEN_ADMIN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Seconds to wait for the server before giving up.
    #[arg(long, default_value_t = 10.0, value_parser = super::serve::positive_seconds, global = true)]
    timeout: f64,
}

/// A connected client; requests run on a small current-thread runtime.
#[derive(Debug)]
pub(crate) struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    pub(crate) fn new(args: &ClientArgs) -> Result<Client, Failure> {
        let base = args.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Failure::usage(format!("--url {:?} is not an http:// URL", args.url)));
        }
        let token = args
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Failure::usage("no admin token: pass --token or set DBWARDEN_ADMIN_TOKEN"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(args.timeout))
            .build()
            .map_err(|e| Failure::usage(format!("cannot build an HTTP client: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure { verdict: Verdict::Unreachable, reason: format!("cannot start a runtime: {e}") })?;
        Ok(Client { base, token, http, runtime })
    }

    fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<(u16, String), Failure> {
        let request = request.bearer_auth(&self.token);
        self.runtime.block_on(async {
            let response = request.send().await.map_err(|e| Failure {
                verdict: Verdict::Unreachable,
                reason: format!("cannot reach the dbwarden server at {}: {}", self.base, short_error(&e)),
            })?;
            let status = response.status().as_u16();
            let body = response.text().await.map_err(|e| Failure {
                verdict: Verdict::Unreachable,
                reason: format!("{what}: the response was cut off: {}", short_error(&e)),
            })?;
            match status {
                200..=299 => Ok((status, body)),
                401 | 403 => Err(Failure::usage(format!("{what}: the server refused the admin token ({status})"))),
                400 | 404 | 422 => {
                    Err(Failure::usage(format!("{what}: the server refused the request ({status}): {}", detail(&body))))
                }
                _ => Err(Failure {
                    verdict: Verdict::Unreachable,
                    reason: format!("{what}: the server answered {status}: {}", detail(&body)),
                }),
            }
        })
    }

    /// GETs `path` (after the base URL) as text.
    pub(crate) fn get_text(&self, path: &str, accept: &str) -> Result<String, Failure> {
        let request = self.http.get(format!("{}{path}", self.base)).header("accept", accept);
        self.send(request, &format!("GET {path}")).map(|(_, body)| body)
    }

    /// GETs `path` as JSON.
    pub(crate) fn get_json(&self, path: &str) -> Result<Value, Failure> {
        let body = self.get_text(path, "application/json")?;
        parse_json(&body, path)
    }

    /// PUTs `body` to `path`; returns the JSON answer.
    pub(crate) fn put_json(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        let request = self.http.put(format!("{}{path}", self.base)).json(body);
        let (_, text) = self.send(request, &format!("PUT {path}"))?;
        parse_json(&text, path)
    }
}

fn parse_json(body: &str, path: &str) -> Result<Value, Failure> {
    serde_json::from_str(body).map_err(|e| Failure {
        verdict: Verdict::Unreachable,
        reason: format!("{path}: the answer is not JSON ({e}); is this a dbwarden server?"),
    })
}

/// The error with its causes: reqwest's outer message alone says little.
fn short_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(inner) = cause {
        let message = inner.to_string();
        if !parts.iter().any(|p| p.contains(&message)) {
            parts.push(message);
        }
        cause = inner.source();
    }
    parts.join(": ")
}

/// The `detail` or `error` of a JSON error body, else its first line.
fn detail(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let text = parsed
        .as_ref()
        .and_then(|v| v.get("detail").or_else(|| v.get("error")))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| body.lines().next().unwrap_or("").to_owned());
    text.chars().take(200).collect()
}

/// Runs a monitoring command: prints a failure's reason and maps it to its
/// exit status.
pub(crate) fn finish(result: Result<Verdict, Failure>) -> ExitCode {
    match result {
        Ok(v) => v.code(),
        Err(f) => {
            eprintln!("dbwarden: {}", f.reason);
            f.verdict.code()
        }
    }
}

/// The health verdict of an `/api/status` or `/api/summary` body and the
/// number of active alerts: healthy only for `pass` with no alert active.
pub(crate) fn verdict_of(status: &str, active_alerts: u64) -> Verdict {
    if status == "pass" && active_alerts == 0 { Verdict::Healthy } else { Verdict::Problem }
}

/// Reads a number at a JSON pointer, 0 when absent.
pub(crate) fn num(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer).and_then(Value::as_f64).unwrap_or(0.0)
}

/// Reads a string at a JSON pointer, "" when absent.
pub(crate) fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `println!` that never panics: a closed pipe (`dbwarden metrics | head`)
/// ends the output quietly instead of aborting the command.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!` that never panics (see [`outln`]).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

pub(crate) use {out, outln};
