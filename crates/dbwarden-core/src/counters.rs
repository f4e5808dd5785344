//! The monitor's event counters: one sharded block of atomics, so that a
//! thread recording a query touches only its own cache lines.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error_class::ErrorClass;
use crate::shard::{CachePadded, default_shard_count, shard_index};

/// Every counter the monitor keeps, by position in a [`Totals`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Counter {
    Queries,
    QueryErrors,
    SlowQueries,
    QueryRows,
    SessionsCreated,
    SessionsClosed,
    SessionErrors,
    Commits,
    Rollbacks,
    RecoveryAttempts,
    RecoverySuccesses,
    Checkouts,
    Checkins,
    PoolTimeouts,
    ConnectionsOpened,
    ConnectionsClosed,
    Requests,
    RequestErrors,
    SlowRequests,
    TimedOutRequests,
    SlowSessionCreations,
    SlowSessionCleanups,
    SlowRecoveries,
    CleanupRuns,
    CleanupRows,
    CleanupErrors,
    LeaksSuspected,
    /// First of [`ErrorClass::ALL`]`.len()` per-class error counters.
    ErrorsByClass,
}

/// The number of counters, including one per error class.
pub(crate) const COUNTERS: usize = Counter::ErrorsByClass as usize + ErrorClass::ALL.len();

/// A plain copy of every counter at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Totals(pub(crate) [u64; COUNTERS]);

impl Default for Totals {
    fn default() -> Self {
        Totals([0; COUNTERS])
    }
}

impl Totals {
    pub(crate) fn get(&self, c: Counter) -> u64 {
        self.0[c as usize]
    }

    pub(crate) fn errors_of(&self, class: ErrorClass) -> u64 {
        self.0[Counter::ErrorsByClass as usize + class.index()]
    }

    /// Each counter minus its value in `earlier`, never below zero (a reset
    /// between the two makes counters go back).
    pub(crate) fn since(&self, earlier: &Totals) -> Totals {
        let mut out = Totals::default();
        for (i, v) in out.0.iter_mut().enumerate() {
            *v = self.0[i].saturating_sub(earlier.0[i]);
        }
        out
    }

    /// Failed operations: failed queries and session errors not tied to a query.
    pub(crate) fn errors(&self) -> u64 {
        self.get(Counter::QueryErrors) + self.get(Counter::SessionErrors)
    }

    /// Attempted operations: queries run and sessions opened, plus checkouts
    /// that failed before a session existed.
    pub(crate) fn operations(&self) -> u64 {
        self.get(Counter::Queries) + self.get(Counter::SessionsCreated) + self.get(Counter::SessionErrors)
    }
}

type Block = CachePadded<[AtomicU64; COUNTERS]>;

/// All counters, sharded by thread.
#[derive(Debug)]
pub(crate) struct Counters {
    shards: Box<[Block]>,
}

impl Counters {
    pub(crate) fn new() -> Self {
        let shards =
            (0..default_shard_count()).map(|_| CachePadded(std::array::from_fn(|_| AtomicU64::new(0)))).collect();
        Counters { shards }
    }

    #[inline]
    fn block(&self) -> &[AtomicU64; COUNTERS] {
        &self.shards[shard_index(self.shards.len())].0
    }

    #[inline]
    pub(crate) fn add(&self, c: Counter, n: u64) {
        self.block()[c as usize].fetch_add(n, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn inc(&self, c: Counter) {
        self.add(c, 1);
    }

    pub(crate) fn inc_class(&self, class: ErrorClass) {
        self.block()[Counter::ErrorsByClass as usize + class.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn totals(&self) -> Totals {
        let mut out = Totals::default();
        for shard in self.shards.iter() {
            for (i, v) in shard.0.iter().enumerate() {
                out.0[i] = out.0[i].wrapping_add(v.load(Ordering::Relaxed));
            }
        }
        out
    }

    /// Zeroes the counters whose positions `which` selects.
    pub(crate) fn reset(&self, which: impl Fn(usize) -> bool) {
        for shard in self.shards.iter() {
            for (i, v) in shard.0.iter().enumerate() {
                if which(i) {
                    v.store(0, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Whether counter position `i` counts errors (reset by "reset errors").
pub(crate) fn is_error_counter(i: usize) -> bool {
    i >= Counter::ErrorsByClass as usize
        || i == Counter::QueryErrors as usize
        || i == Counter::SessionErrors as usize
        || i == Counter::RequestErrors as usize
        || i == Counter::CleanupErrors as usize
}
