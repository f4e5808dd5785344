//! The `dbwarden` command: wiring only; the libraries do the work.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
