//! Deferred recording of the commonest pooled statement: one that ran on a
//! checkout made for it alone (a pool used as an executor), succeeded and
//! was not slow.
//!
//! Recording such a statement directly touches some forty small functions
//! (three histograms, the fingerprint's slot, five counters); between two
//! queries the database driver's own code evicts them from the L1
//! instruction cache, so each statement fetched them all again. Here the
//! statement path only appends a compact [`Pending`] entry (the fingerprint's
//! slot, the checkout wait, the duration, the rows) to its thread's buffer;
//! the buffer is folded into the histograms, the slot and the counters in
//! one pass when it fills, so that code runs once per [`CAPACITY`]
//! statements.
//!
//! Every reader folds every buffer first ([`StatementBatch::flush`]: the
//! monitor's totals, the histograms that include these statements, the
//! per-fingerprint statistics, a reset), so a statement recorded before a
//! read, on any thread, is part of it. Failed and slow statements, and any
//! checkout that is not one statement's alone, never wait here: they are
//! recorded at once, with their events.
//!
//! A buffer has a fixed capacity and never grows. Buffers are per shard
//! (see [`crate::shard`]), each behind its own lock: the recording thread
//! takes its shard's lock, uncontended unless a reader is folding it at that
//! moment. A fold writes the histograms and counters as the *folding*
//! thread (its own shard, or the shared one), never into another thread's
//! owned shard.

use std::sync::{Arc, Mutex, MutexGuard};

use super::{Execution, Slot};
use crate::counters::{Counter, Counters};
use crate::histogram::{Histogram, HistogramConfig};
use crate::shard::{self, CachePadded, ShardSlot, default_shard_count, shard_slot};

/// Statements a buffer holds before it is folded.
pub(crate) const CAPACITY: usize = 64;

/// One statement waiting to be folded.
#[derive(Debug)]
pub(crate) struct Pending {
    /// The fingerprint's statistics slot.
    pub(crate) slot: Arc<Slot>,
    /// The checkout's wait, which is also its session's creation time.
    pub(crate) wait_ns: u64,
    /// The statement's duration, which is also the checkout's use and its
    /// session's duration.
    pub(crate) duration_ns: u64,
    pub(crate) rows: u64,
}

/// The buffers and where they are folded to.
#[derive(Debug)]
pub(crate) struct StatementBatch {
    buffers: Box<[CachePadded<Mutex<Vec<Pending>>>]>,
    counters: Arc<Counters>,
    /// Checkout waits that are also their sessions' creation times.
    pub(crate) opened: Arc<Histogram>,
    /// Durations of statements that were their checkout's only use.
    pub(crate) statement: Arc<Histogram>,
}

impl StatementBatch {
    pub(crate) fn new(counters: Arc<Counters>) -> Self {
        let buffers =
            (0..default_shard_count()).map(|_| CachePadded::new(Mutex::new(Vec::with_capacity(CAPACITY)))).collect();
        StatementBatch {
            buffers,
            counters,
            opened: Arc::new(Histogram::new(HistogramConfig::precise())),
            statement: Arc::new(Histogram::new(HistogramConfig::precise())),
        }
    }

    #[inline]
    fn lock(&self, index: usize) -> Option<MutexGuard<'_, Vec<Pending>>> {
        Some(self.buffers.get(index)?.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Appends one statement as the holder of `at`; folds the buffer first
    /// when it is full.
    #[inline]
    pub(crate) fn push(&self, at: ShardSlot, pending: Pending) {
        let at = if shard::fits(at, self.buffers.len()) { at } else { shard_slot(self.buffers.len()) };
        let Some(mut buffer) = self.lock(at.index) else { return };
        if buffer.len() >= CAPACITY {
            self.fold(at, &mut buffer);
        }
        buffer.push(pending);
    }

    /// Folds every buffer, as the calling thread.
    pub(crate) fn flush(&self) {
        let at = shard_slot(self.buffers.len());
        for index in 0..self.buffers.len() {
            if let Some(mut buffer) = self.lock(index)
                && !buffer.is_empty()
            {
                self.fold(at, &mut buffer);
            }
        }
    }

    /// Records the buffered statements as the holder of `at` and empties
    /// the buffer (keeping its allocation).
    #[cold]
    #[inline(never)]
    fn fold(&self, at: ShardSlot, buffer: &mut Vec<Pending>) {
        let count = buffer.len() as u64;
        let mut rows = 0u64;
        for Pending { slot, wait_ns, duration_ns, rows: r } in buffer.drain(..) {
            self.opened.record_ns_at(at, wait_ns);
            self.statement.record_ns_at(at, duration_ns);
            let duration = std::time::Duration::from_nanos(duration_ns);
            slot.record(Execution { at, duration, rows: r, failed: false, slow: false });
            rows = rows.wrapping_add(r);
        }
        let c = &self.counters;
        for counter in [Counter::Checkouts, Counter::SessionsCreated, Counter::Checkins, Counter::SessionsClosed] {
            c.add_in(at, counter, count);
        }
        if rows != 0 {
            c.add_in(at, Counter::QueryRows, rows);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::CAPACITY;
    use crate::{Holder, Monitor, Outcome, ResetScope};

    /// One pooled statement's checkout and statement, as the sqlx adapter
    /// records them.
    fn statement(monitor: &Monitor, sql: &str, wait_us: u64, ran_us: u64) {
        let checkout = monitor.open_statement_checkout(Holder::default());
        let query = monitor.prepare(sql);
        monitor.close_statement_checkout(
            &checkout,
            Duration::from_micros(wait_us),
            query,
            Duration::from_micros(ran_us),
            1,
            Outcome::Success,
        );
    }

    fn buffered(monitor: &Monitor) -> usize {
        let batch = monitor.inner.queries.batch();
        batch.buffers.iter().map(|b| b.lock().unwrap().len()).sum()
    }

    #[test]
    fn a_full_buffer_folds_instead_of_growing() {
        let monitor = Monitor::new();
        for _ in 0..CAPACITY * 3 + 5 {
            statement(&monitor, "SELECT * FROM t WHERE id = 1", 10, 100);
            assert!(buffered(&monitor) <= CAPACITY);
        }
        for buffer in monitor.inner.queries.batch().buffers.iter() {
            assert!(buffer.lock().unwrap().capacity() <= CAPACITY);
        }
        assert_eq!(monitor.snapshot().query_metrics.total, (CAPACITY * 3 + 5) as u64);
        assert_eq!(buffered(&monitor), 0, "a reading folds everything");
    }

    #[test]
    fn readers_on_another_thread_see_every_statement_at_once() {
        let monitor = Monitor::new();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    for i in 0..3 {
                        statement(&monitor, "SELECT name FROM users WHERE id = 7", 20, 300 + i);
                    }
                })
                .join()
                .unwrap();
        });
        // Nothing folded yet: the recording thread's buffer holds all three.
        assert_eq!(buffered(&monitor), 3);
        let top = monitor.top_queries(Default::default(), 5);
        assert_eq!(top.len(), 1);
        assert_eq!((top[0].calls, top[0].rows), (3, 3));
        assert_eq!(top[0].text, "SELECT name FROM users WHERE id = ?");
        let snap = monitor.snapshot();
        assert_eq!(snap.pool_metrics.checkouts, 3);
        assert_eq!(snap.pool_metrics.checkins, 3);
        assert_eq!(snap.session_metrics.sessions_created, 3);
        assert_eq!(snap.session_metrics.sessions_closed, 3);
        assert_eq!(snap.query_metrics.total, 3);
        assert_eq!(monitor.active_sessions(), 0);
        let h = monitor.latency_histograms();
        for count in
            [h.query, h.checkout_wait, h.connection_use, h.session_creation, h.session_duration].map(|h| h.count())
        {
            assert_eq!(count, 3);
        }
    }

    #[test]
    fn the_live_checkout_is_listed_until_its_statement_ends() {
        let monitor = Monitor::new();
        let checkout = monitor.open_statement_checkout(Holder::default());
        assert_eq!(monitor.checkouts().len(), 1);
        assert_eq!(monitor.active_sessions(), 1);
        let query = monitor.prepare("SELECT 1");
        monitor.close_statement_checkout(
            &checkout,
            Duration::ZERO,
            query,
            Duration::from_micros(5),
            1,
            Outcome::Success,
        );
        assert!(monitor.checkouts().is_empty());
        assert_eq!(monitor.active_sessions(), 0);
    }

    #[test]
    fn failed_and_slow_statements_are_recorded_at_once() {
        let monitor = Monitor::new();
        let checkout = monitor.open_statement_checkout(Holder::default());
        let query = monitor.prepare("UPDATE t SET a = 1 WHERE id = 2");
        let outcome = Outcome::Failure { class: crate::ErrorClass::Deadlock, message: "deadlock detected" };
        monitor.close_statement_checkout(&checkout, Duration::ZERO, query, Duration::from_millis(1), 0, outcome);
        let checkout = monitor.open_statement_checkout(Holder::default());
        let query = monitor.prepare("SELECT pg_sleep(5)");
        monitor.close_statement_checkout(&checkout, Duration::ZERO, query, Duration::from_secs(5), 1, Outcome::Success);
        assert_eq!(buffered(&monitor), 0);
        let state = monitor.state();
        assert_eq!(state.recent_queries.len(), 2);
        assert_eq!(state.errors.len(), 1);
    }

    #[test]
    fn a_reset_clears_what_was_buffered_before_it() {
        let monitor = Monitor::new();
        statement(&monitor, "SELECT 1", 1, 1);
        assert_eq!(buffered(&monitor), 1);
        monitor.reset(ResetScope::Metrics);
        statement(&monitor, "SELECT 2", 1, 1);
        let snap = monitor.snapshot();
        assert_eq!(snap.query_metrics.total, 1);
        assert_eq!(snap.pool_metrics.checkouts, 1);
        let top = monitor.top_queries(Default::default(), 5);
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].text, "SELECT ?");
    }
}
