//! A per-client token bucket for admin endpoints and `/login`.
//!
//! Clients are told apart by their IP address when the server was started
//! with `into_make_service_with_connect_info::<SocketAddr>()`; without it
//! every client shares one bucket (still a limit, only a coarser one).
//! Forwarded-for headers are not trusted: anyone can write them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::{AppState, RateLimitConfig};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    /// Refills the bucket for the time since it was last used, then takes a
    /// token; `Err(seconds)` to wait when there is none.
    fn take(&mut self, now: Instant, burst: f64, per_second: f64) -> Result<(), u64> {
        let refill = now.saturating_duration_since(self.updated).as_secs_f64() * per_second;
        self.tokens = (self.tokens + refill).min(burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / per_second;
            Err((wait.ceil() as u64).max(1))
        }
    }
}

/// Buckets per client, at most `max_clients` of them.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    config: RateLimitConfig,
    buckets: Mutex<HashMap<Option<IpAddr>, Bucket>>,
}

impl RateLimiter {
    pub(crate) fn new(config: RateLimitConfig) -> Self {
        RateLimiter { config, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `client`; `Err(seconds)` to wait when there is none.
    pub(crate) fn acquire(&self, client: Option<IpAddr>, now: Instant) -> Result<(), u64> {
        let RateLimitConfig { burst, per_second, max_clients } = self.config;
        let burst = f64::from(burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        // A known client, the common case, costs one hash of its address.
        if let Some(bucket) = buckets.get_mut(&client) {
            return bucket.take(now, burst, per_second);
        }
        if buckets.len() >= max_clients {
            // Forget clients whose bucket has refilled: they lose nothing.
            buckets.retain(|_, b| b.tokens + now.duration_since(b.updated).as_secs_f64() * per_second < burst);
            if buckets.len() >= max_clients
                && let Some(stalest) = buckets.iter().min_by_key(|(_, b)| b.updated).map(|(k, _)| *k)
            {
                buckets.remove(&stalest);
            }
        }
        buckets.entry(client).or_insert(Bucket { tokens: burst, updated: now }).take(now, burst, per_second)
    }

    #[cfg(test)]
    fn clients(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The rate limit's verdict on `request`: the 429 response when refused
/// (boxed: the refusal is the rare path, the `Ok` the common one).
pub(crate) fn check(state: &AppState, request: &Request) -> Result<(), Box<Response>> {
    if let Some(limiter) = &state.inner.limiter {
        let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        if let Err(retry_after) = limiter.acquire(client, Instant::now()) {
            return Err(Box::new(ApiError::RateLimited { retry_after }.into_response()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bucket_refills_and_clients_are_bounded() {
        let limiter = RateLimiter::new(RateLimitConfig { burst: 2, per_second: 1.0, max_clients: 2 });
        let t0 = Instant::now();
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        assert!(limiter.acquire(a, t0).is_ok());
        assert!(limiter.acquire(a, t0).is_ok());
        assert_eq!(limiter.acquire(a, t0), Err(1));
        assert!(limiter.acquire(a, t0 + Duration::from_millis(1100)).is_ok());
        for last in 2..20u8 {
            let _ = limiter.acquire(Some(IpAddr::from([10, 0, 0, last])), t0);
        }
        assert!(limiter.clients() <= 2);
    }
}
