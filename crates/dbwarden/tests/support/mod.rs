//! What the binary's integration tests share: the `dbwarden` command with a
//! clean environment, and a one-shot HTTP GET against a running server.

// Each test file is its own crate and uses only part of this module.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

/// The built binary, with no setting inherited from the environment that
/// runs the tests (`DBWARDEN_*`, the seeds' `RESPONSIVENESS_*` and
/// `SESSION_*` names, `DATABASE_URL`), info logs and no colour.
pub(crate) fn dbwarden() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dbwarden"));
    for (name, _) in std::env::vars() {
        if name.starts_with("DBWARDEN_") || name.starts_with("RESPONSIVENESS_") || name.starts_with("SESSION_") {
            cmd.env_remove(name);
        }
    }
    cmd.env_remove("DATABASE_URL").env("RUST_LOG", "info").env("NO_COLOR", "1");
    cmd
}

/// One HTTP/1.1 GET on `addr`, with the bearer token when given; the status
/// code and the body.
pub(crate) fn http_get(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to dbwarden");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}
