//! Re-running a unit of work on a fresh connection after a connection-level
//! failure, and recording each re-run as a recovery.
//!
//! [`MonitoredPool::recover`](crate::MonitoredPool::recover) checks a connection out, runs the work on it
//! and, when the work (or the checkout) fails with an error [`classify`]
//! calls connection-level ([`ErrorClass::ConnectionFailure`](dbwarden_core::ErrorClass::ConnectionFailure): I/O, TLS,
//! protocol errors, a server that closed the connection…), closes that
//! connection instead of returning it to the pool, waits a backoff, checks
//! out a fresh connection and runs the work again, up to the
//! [`RecoveryPolicy`]'s attempts. Each re-run is a recovery attempt, recorded
//! with [`Monitor::record_recovery`](dbwarden_core::Monitor::record_recovery)
//! under the operation's name, with the time of that attempt (its checkout
//! and its work; the backoff before it is not included) and whether it
//! succeeded. The monitor's `recovery_metrics` (attempts, successes, the
//! recovery and success rates, per operation) are built from these.
//!
//! # Why only connection-level failures are retried
//!
//! A connection-level failure says nothing about the work itself: the
//! connection was lost (a restarted server, a killed backend, a network
//! blip), and the same work on a healthy connection can well succeed.
//! Every other failure is about the work or the data: re-running after a
//! constraint violation or a syntax error just fails again, and after a
//! deadlock, a serialization failure or a lock timeout, whether and how to
//! retry is the caller's transaction logic to decide (the whole transaction
//! must be replayed, possibly with fresh reads). Those errors are returned
//! at once, without retry. So is a pool timeout (the pool is saturated, and
//! retrying would only add load) and a closed pool.
//!
//! The work must therefore be safe to run more than once: a connection lost
//! after a COMMIT was sent but before its answer arrived may have committed.
//! Wrap writes in a transaction begun inside the work, or make them
//! idempotent.

use std::time::{Duration, Instant};

use futures_core::future::BoxFuture;

use crate::classify::classify;
use crate::connection::MonitoredConnection;
use crate::database::MonitoredDatabase;
use crate::pool::MonitoredPool;

/// The most attempts a policy may allow.
pub const MAX_ATTEMPTS: u32 = 100;

/// How [`MonitoredPool::recover`] retries: how many attempts in all, and
/// how long to wait before each re-run.
///
/// The wait before re-run `n` (1 for the first re-run) is
/// `min(initial_backoff × multiplierⁿ⁻¹, max_backoff)`, plus, when jitter is
/// on, up to a quarter of that again (derived from the clock's nanoseconds,
/// so that many tasks losing their connections at once do not all come back
/// at the same instant).
///
/// The default ([`RecoveryPolicy::default`]): 3 attempts (the first run and
/// up to 2 recoveries), 50 ms initial backoff doubling each time, capped at
/// 1 s, with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    multiplier: u32,
    max_backoff: Duration,
    jitter: bool,
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        RecoveryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(50),
            multiplier: 2,
            max_backoff: Duration::from_secs(1),
            jitter: true,
        }
    }
}

impl RecoveryPolicy {
    /// A builder starting from the defaults.
    pub fn builder() -> RecoveryPolicyBuilder {
        RecoveryPolicyBuilder { policy: RecoveryPolicy::default() }
    }

    /// Attempts in all, the first run included (1: no recovery).
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait before the first re-run.
    pub fn initial_backoff(&self) -> Duration {
        self.initial_backoff
    }

    /// The factor the wait grows by at each re-run.
    pub fn multiplier(&self) -> u32 {
        self.multiplier
    }

    /// The longest wait (before jitter).
    pub fn max_backoff(&self) -> Duration {
        self.max_backoff
    }

    /// Whether up to a quarter of the wait is added at random.
    pub fn jitter(&self) -> bool {
        self.jitter
    }

    /// The wait before re-run `recovery` (1 for the first), without jitter.
    /// `recovery` 0 (the first run) waits nothing.
    pub fn backoff(&self, recovery: u32) -> Duration {
        if recovery == 0 {
            return Duration::ZERO;
        }
        let factor = self.multiplier.checked_pow(recovery - 1).unwrap_or(u32::MAX);
        self.initial_backoff.checked_mul(factor).unwrap_or(self.max_backoff).min(self.max_backoff)
    }

    /// The wait before re-run `recovery`, jitter included when enabled.
    fn delay(&self, recovery: u32) -> Duration {
        let base = self.backoff(recovery);
        if !self.jitter || base.is_zero() {
            return base;
        }
        let quarter = base / 4;
        let nanos = u64::try_from(quarter.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return base;
        }
        base + Duration::from_nanos(noise(recovery) % (nanos + 1))
    }
}

/// Whether a fresh connection may succeed where this error failed: a
/// connection-level failure, except a closed pool (which gives no fresh
/// connection).
fn is_recoverable(error: &sqlx::Error) -> bool {
    !matches!(error, sqlx::Error::PoolClosed) && classify(error).is_connection_level()
}

/// A pseudo-random number from the clock's nanoseconds (splitmix64), good
/// enough to spread retries without a random-number crate.
fn noise(salt: u32) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mut z = (u64::from(nanos) << 32 | u64::from(salt)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Builds a validated [`RecoveryPolicy`]; unset values keep the defaults.
#[derive(Debug, Clone, Copy)]
pub struct RecoveryPolicyBuilder {
    policy: RecoveryPolicy,
}

impl RecoveryPolicyBuilder {
    /// Attempts in all, the first run included: 1 to [`MAX_ATTEMPTS`].
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.policy.max_attempts = attempts;
        self
    }

    /// The wait before the first re-run (zero: re-run at once).
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.policy.initial_backoff = backoff;
        self
    }

    /// The factor the wait grows by at each re-run: 1 (constant) or more.
    pub fn multiplier(mut self, multiplier: u32) -> Self {
        self.policy.multiplier = multiplier;
        self
    }

    /// The longest wait before jitter; at least the initial backoff.
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.policy.max_backoff = backoff;
        self
    }

    /// Whether to add up to a quarter of the wait at random.
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.policy.jitter = jitter;
        self
    }

    /// The policy, if its values are consistent.
    pub fn build(self) -> Result<RecoveryPolicy, RecoveryPolicyError> {
        let p = self.policy;
        if p.max_attempts == 0 || p.max_attempts > MAX_ATTEMPTS {
            return Err(RecoveryPolicyError::Attempts(p.max_attempts));
        }
        if p.multiplier == 0 {
            return Err(RecoveryPolicyError::ZeroMultiplier);
        }
        if p.max_backoff < p.initial_backoff {
            return Err(RecoveryPolicyError::BackoffCap { initial: p.initial_backoff, max: p.max_backoff });
        }
        Ok(p)
    }
}

/// Why a [`RecoveryPolicy`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryPolicyError {
    /// The attempts were 0 or above [`MAX_ATTEMPTS`].
    #[error("recovery attempts must be between 1 and {MAX_ATTEMPTS}, got {0}")]
    Attempts(u32),
    /// The backoff multiplier was 0.
    #[error("recovery backoff multiplier must be at least 1")]
    ZeroMultiplier,
    /// The cap was below the initial backoff.
    #[error("recovery max backoff ({max:?}) is below the initial backoff ({initial:?})")]
    BackoffCap {
        /// The initial backoff given.
        initial: Duration,
        /// The cap given.
        max: Duration,
    },
}

impl<DB: MonitoredDatabase> MonitoredPool<DB> {
    /// Runs `work` on a connection checked out for it, re-running it on a
    /// fresh connection after a connection-level failure, as `policy` allows.
    ///
    /// `operation` names the unit of work in the recovery metrics (e.g.
    /// `"load_user"`). The first run is not a recovery; each re-run is
    /// recorded with [`Monitor::record_recovery`](dbwarden_core::Monitor::record_recovery).
    /// The connection that failed is closed, not returned to the pool. A
    /// failure that is not connection-level (see [`classify`]) is returned
    /// at once; when the attempts are exhausted, the last error is returned.
    /// Statements the work runs with `&mut *conn` (the monitored connection)
    /// as the executor are recorded like any other.
    ///
    /// ```no_run
    /// # async fn demo(pool: dbwarden_sqlx::MonitoredPool<sqlx::Postgres>) -> Result<(), sqlx::Error> {
    /// use dbwarden_sqlx::{MonitoredConnection, RecoveryPolicy};
    ///
    /// let id = 7_i64;
    /// let name: String = pool
    ///     .recover("load_user", &RecoveryPolicy::default(), |conn: &mut MonitoredConnection<sqlx::Postgres>| {
    ///         Box::pin(async move {
    ///             sqlx::query_scalar("SELECT name FROM users WHERE id = $1").bind(id).fetch_one(&mut *conn).await
    ///         })
    ///     })
    ///     .await?;
    /// # let _ = name; Ok(()) }
    /// ```
    pub async fn recover<T, F>(&self, operation: &str, policy: &RecoveryPolicy, mut work: F) -> Result<T, sqlx::Error>
    where
        F: for<'c> FnMut(&'c mut MonitoredConnection<DB>) -> BoxFuture<'c, Result<T, sqlx::Error>>,
    {
        let mut attempt: u32 = 0;
        loop {
            if attempt > 0 {
                tokio::time::sleep(policy.delay(attempt)).await;
            }
            let started = Instant::now();
            let result = match self.acquire().await {
                Ok(mut conn) => {
                    let result = work(&mut conn).await;
                    if let Err(error) = &result
                        && classify(error).is_connection_level()
                    {
                        conn.close_on_drop();
                    }
                    result
                }
                Err(error) => Err(error),
            };
            if attempt > 0 {
                self.monitor().record_recovery(operation, started.elapsed(), result.is_ok());
            }
            match result {
                Ok(value) => return Ok(value),
                Err(error) => {
                    attempt += 1;
                    if !is_recoverable(&error) || attempt >= policy.max_attempts {
                        return Err(error);
                    }
                    tracing::debug!(
                        target: "dbwarden",
                        operation,
                        attempt,
                        "connection-level failure; re-running on a fresh connection"
                    );
                }
            }
        }
    }
}
