//! What several HTTP benchmarks set up alike: the admin token, a monitor
//! with some recorded work, and a layer that only passes requests through.

// Each benchmark uses the part it needs.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use dbwarden_core::{Monitor, Outcome, PoolSample};

/// The admin token the benchmarks configure and present.
pub const TOKEN: &str = "bench-admin-token-0123456789abcdef";

/// A monitor with 200 statements over 40 tables and a pool sample recorded,
/// so the admin reports have something to say.
pub fn populated_monitor() -> Monitor {
    let monitor = Monitor::new();
    for i in 0..200u64 {
        monitor.record_query(
            &format!("SELECT * FROM t{} WHERE id = {i}", i % 40),
            Duration::from_micros(300 + i),
            1,
            Outcome::Success,
        );
    }
    monitor.record_pool_sample(PoolSample { size: 10, idle: 7, in_use: 3, pending: 0, max: 10, min: 1 });
    monitor
}

/// A layer that only passes requests through: what wrapping every route in
/// any tower layer costs, for comparison.
#[derive(Clone)]
pub struct PassThroughLayer;

impl<S> tower::Layer<S> for PassThroughLayer {
    type Service = PassThrough<S>;
    fn layer(&self, inner: S) -> PassThrough<S> {
        PassThrough(inner)
    }
}

/// The service of [`PassThroughLayer`].
#[derive(Clone)]
pub struct PassThrough<S>(S);

impl<S: tower::Service<R>, R> tower::Service<R> for PassThrough<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }
    fn call(&mut self, request: R) -> S::Future {
        self.0.call(request)
    }
}
