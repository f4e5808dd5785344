//! The monitor's event counters: one sharded block of atomics, so that a
//! thread recording a query touches only its own cache lines.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error_class::ErrorClass;
use crate::shard::{self, CachePadded, ShardSlot, default_shard_count, shard_slot};
use std::sync::Mutex;

/// Every counter the monitor keeps, by position in a [`Totals`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Counter {
    /// Filled in from the query histogram's count by `Monitor::totals`, never
    /// incremented: the histogram already counts every query.
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
    NPlusOne,
    SessionWrites,
    SessionTouches,
    SessionWritesAvoided,
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
    /// What [`Counters::reset`] subtracts (owners write their shards with
    /// plain stores, so shards are never zeroed from another thread).
    baseline: Mutex<Totals>,
}

impl Counters {
    pub(crate) fn new() -> Self {
        let shards =
            (0..default_shard_count()).map(|_| CachePadded(std::array::from_fn(|_| AtomicU64::new(0)))).collect();
        Counters { shards, baseline: Mutex::new(Totals::default()) }
    }

    #[inline]
    pub(crate) fn add(&self, c: Counter, n: u64) {
        self.add_at(shard_slot(self.shards.len()), c as usize, n);
    }

    /// Adds as the holder of `slot` (from [`shard_slot`] with this shard count).
    #[inline]
    pub(crate) fn add_in(&self, slot: ShardSlot, c: Counter, n: u64) {
        self.add_at(slot, c as usize, n);
    }

    #[inline]
    fn add_at(&self, slot: ShardSlot, position: usize, n: u64) {
        let slot = if shard::fits(slot, self.shards.len()) { slot } else { shard_slot(self.shards.len()) };
        if let Some(cell) = self.shards.get(slot.index).and_then(|b| b.0.get(position)) {
            shard::add(cell, n, slot);
        }
    }

    #[inline]
    pub(crate) fn inc(&self, c: Counter) {
        self.add(c, 1);
    }

    pub(crate) fn inc_class(&self, class: ErrorClass) {
        self.add_at(shard_slot(self.shards.len()), Counter::ErrorsByClass as usize + class.index(), 1);
    }

    fn raw(&self) -> Totals {
        let mut out = Totals::default();
        for shard in self.shards.iter() {
            for (i, v) in shard.0.iter().enumerate() {
                out.0[i] = out.0[i].wrapping_add(v.load(Ordering::Relaxed));
            }
        }
        out
    }

    pub(crate) fn totals(&self) -> Totals {
        self.raw().since(&self.baseline.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Zeroes, as readers see them, the counters whose positions `which` selects.
    pub(crate) fn reset(&self, which: impl Fn(usize) -> bool) {
        let raw = self.raw();
        let mut baseline = self.baseline.lock().unwrap_or_else(|e| e.into_inner());
        for (i, b) in baseline.0.iter_mut().enumerate() {
            if which(i) {
                *b = raw.0[i];
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
