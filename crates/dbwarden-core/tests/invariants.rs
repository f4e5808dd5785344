//! Architecture invariants that a reviewer could miss: the core's dependency
//! list stays free of runtimes and I/O, and every source file says what it is
//! for.

use std::fs;
use std::path::Path;

#[test]
fn core_depends_on_no_runtime_or_io_crate() {
    let manifest =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).expect("read Cargo.toml");
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("a [dependencies] table")
        .split("\n[")
        .next()
        .unwrap_or_default();
    let names: Vec<&str> = deps
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split(['=', '.', ' ']).next())
        .collect();
    let allowed = ["serde", "serde_json", "thiserror", "tracing", "xxhash-rust"];
    for name in &names {
        assert!(allowed.contains(name), "dbwarden-core must not depend on `{name}`: see ARCHITECTURE.md");
    }
    for forbidden in ["tokio", "sqlx", "axum", "tower", "hyper", "reqwest", "async-std"] {
        assert!(!names.contains(&forbidden), "dbwarden-core depends on {forbidden}");
    }
}

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut missing = Vec::new();
    let mut stack = vec![crates];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&path).expect("read source");
                if !text.trim_start().starts_with("//!") {
                    missing.push(path.display().to_string());
                }
            }
        }
    }
    assert!(missing.is_empty(), "files without a `//!` module doc: {missing:#?}");
}
