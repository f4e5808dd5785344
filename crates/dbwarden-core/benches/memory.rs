//! Memory under load: 10 million recorded queries over 100 000 distinct SQL
//! texts (7 000 distinct fingerprints, far more than the top-K table holds)
//! must stay under 64 MiB resident, and a second 10 million must add less
//! than 1 MiB. Exits non-zero when a bound is broken.
//!
//! `cargo bench -p dbwarden-core --bench memory` (Linux: reads /proc/self/status)

use std::time::{Duration, Instant};

use dbwarden_core::{ErrorClass, Monitor, Outcome};

const DISTINCT_TEXTS: usize = 100_000;
const ROUND: usize = 10_000_000;
const LIMIT_MIB: f64 = 64.0;
const GROWTH_LIMIT_MIB: f64 = 1.0;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` support
    }
    let texts: Vec<String> = (0..DISTINCT_TEXTS)
        .map(|i| format!("SELECT col_{} FROM table_{} WHERE id = {i} AND name = 'user-{i}'", i % 7, i % 1000))
        .collect();
    let monitor = Monitor::new();
    let baseline = rss_mib();
    let texts_mib = texts.iter().map(|t| t.capacity()).sum::<usize>() as f64 / (1024.0 * 1024.0);
    let mut rss = Vec::new();
    for round in 0..2 {
        let started = Instant::now();
        for i in 0..ROUND {
            let outcome = if i % 1000 == 0 {
                Outcome::Failure { class: ErrorClass::Other, message: "failed" }
            } else {
                Outcome::Success
            };
            let duration = Duration::from_micros(100 + (i % 5000) as u64);
            monitor.record_query(&texts[(i * 7919) % DISTINCT_TEXTS], duration, 1, outcome);
            if i % 1_000_000 == 0 {
                monitor.tick();
            }
        }
        monitor.tick();
        let now = rss_mib();
        println!(
            "round {}: {} queries in {:.1} s ({:.0} ns/query), RSS {:.1} MiB",
            round + 1,
            ROUND,
            started.elapsed().as_secs_f64(),
            started.elapsed().as_nanos() as f64 / ROUND as f64,
            now
        );
        rss.push(now);
    }
    let snapshot = monitor.snapshot();
    println!(
        "baseline RSS {baseline:.1} MiB (the benchmark's own {DISTINCT_TEXTS} texts: {texts_mib:.1} MiB); \
         fingerprints tracked {}, evicted to `other` {}; cache entries {}",
        snapshot.query_metrics.fingerprints_tracked,
        snapshot.query_metrics.fingerprints_evicted,
        snapshot.query_metrics.fingerprint_cache_entries
    );
    let total = snapshot.query_metrics.total;
    assert_eq!(total, 2 * ROUND as u64, "every query counted");
    let after_first = rss[0];
    let growth = rss[1] - rss[0];
    println!(
        "after 10 M: {after_first:.1} MiB (limit {LIMIT_MIB}); second 10 M added {growth:.2} MiB (limit {GROWTH_LIMIT_MIB})"
    );
    if after_first >= LIMIT_MIB || growth >= GROWTH_LIMIT_MIB {
        eprintln!("memory bound broken");
        std::process::exit(1);
    }
}
