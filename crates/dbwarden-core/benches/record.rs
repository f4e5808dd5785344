//! Recording one query against prometheus-client's `Histogram::observe`,
//! on one thread and on two threads sharing one monitor, in the same run.
//!
//! `cargo bench -p dbwarden-core --bench record`

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use dbwarden_core::{Monitor, Outcome};
use prometheus_client::metrics::histogram::Histogram;

/// OpenTelemetry's recommended buckets for `db.client.operation.duration`.
const BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];
const SQL: &str = "SELECT id, name, email FROM users WHERE id = $1";

fn durations() -> impl Iterator<Item = Duration> {
    // A spread of realistic latencies so bucket selection is not constant.
    [120u64, 340, 800, 2_500, 9_000, 45_000].into_iter().cycle().map(Duration::from_micros)
}

/// Runs `op` `iters` times on each of `threads` threads, all released at once;
/// returns the wall time, so the figure is time per operation per thread.
fn on_threads(threads: usize, iters: u64, op: Arc<dyn Fn(Duration) + Send + Sync>) -> Duration {
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (barrier, op) = (barrier.clone(), op.clone());
            std::thread::spawn(move || {
                let mut d = durations();
                barrier.wait();
                for _ in 0..iters {
                    op(d.next().unwrap_or_default());
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().expect("bench thread");
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let monitor = Monitor::new();
    let prepared = monitor.prepare(SQL);
    let histogram = Histogram::new(BUCKETS);

    let mut one = c.benchmark_group("record_one_thread");
    one.bench_function("prometheus_client_observe", |b| {
        let mut d = durations();
        b.iter(|| histogram.observe(black_box(d.next().unwrap_or_default()).as_secs_f64()))
    });
    one.bench_function("dbwarden_record_prepared", |b| {
        let mut d = durations();
        b.iter(|| monitor.record_prepared(&prepared, black_box(d.next().unwrap_or_default()), 1, Outcome::Success))
    });
    one.bench_function("dbwarden_record_query_by_text", |b| {
        let mut d = durations();
        b.iter(|| monitor.record_query(black_box(SQL), black_box(d.next().unwrap_or_default()), 1, Outcome::Success))
    });
    one.finish();

    let mut two = c.benchmark_group("record_two_threads");
    let shared_histogram = Arc::new(Histogram::new(BUCKETS));
    let observe: Arc<dyn Fn(Duration) + Send + Sync> = {
        let h = shared_histogram.clone();
        Arc::new(move |d: Duration| h.observe(black_box(d).as_secs_f64()))
    };
    let record: Arc<dyn Fn(Duration) + Send + Sync> = {
        let (m, p) = (monitor.clone(), prepared.clone());
        Arc::new(move |d: Duration| m.record_prepared(&p, black_box(d), 1, Outcome::Success))
    };
    let by_text: Arc<dyn Fn(Duration) + Send + Sync> = {
        let m = monitor.clone();
        Arc::new(move |d: Duration| m.record_query(black_box(SQL), black_box(d), 1, Outcome::Success))
    };
    two.bench_function("prometheus_client_observe", |b| b.iter_custom(|iters| on_threads(2, iters, observe.clone())));
    two.bench_function("dbwarden_record_prepared", |b| b.iter_custom(|iters| on_threads(2, iters, record.clone())));
    two.bench_function("dbwarden_record_query_by_text", |b| {
        b.iter_custom(|iters| on_threads(2, iters, by_text.clone()))
    });
    two.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
