//! Counters every session store keeps, forwarded to a dbwarden `Monitor`
//! when one is attached, and a bounded per-minute history of loads for
//! unknown ids (what id guessing looks like).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use dbwarden_core::{Monitor, SessionWrite, Timestamp};
use serde::Serialize;

/// Minutes of unknown-id load history kept.
pub(crate) const UNKNOWN_ID_MINUTES: usize = 120;

/// A snapshot of a store's counters since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Sessions created (one insert each).
    pub created: u64,
    /// Full writes of changed (or, with throttling off, any) sessions.
    pub full_writes: u64,
    /// Activity touches: expiry and last-seen extended, no data written.
    pub touches: u64,
    /// Saves of unmodified sessions that wrote nothing (within the throttle).
    pub writes_avoided: u64,
    /// Saves whose version guard failed and whose changes were merged into newer data.
    pub merged_conflicts: u64,
    /// Saves dropped because the session had been deleted meanwhile (logout, rotation).
    pub saves_after_delete: u64,
    /// Deletes (logouts).
    pub deletes: u64,
    /// Loads of ids that are not in the store at all.
    pub unknown_id_loads: u64,
    /// Loads of sessions past their expiry, idle or absolute timeout.
    pub expired_loads: u64,
    /// Loads of sessions whose stored data does not decode (a fresh session is started; the row stays).
    pub undecodable_loads: u64,
    /// Saves refused because the data was over the size limit.
    pub oversized_rejections: u64,
    /// Sessions evicted by the per-user cap.
    pub cap_evictions: u64,
    /// New sessions refused by the per-user cap.
    pub cap_refusals: u64,
    /// Sessions removed by "log out everywhere".
    pub logged_out_everywhere: u64,
    /// Session ids rotated.
    pub rotations: u64,
}

/// Loads of unknown ids in one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UnknownIdBucket {
    /// Start of the minute.
    pub minute: Timestamp,
    /// Loads of unknown ids in it.
    pub count: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) created: AtomicU64,
    pub(crate) full_writes: AtomicU64,
    pub(crate) touches: AtomicU64,
    pub(crate) writes_avoided: AtomicU64,
    pub(crate) merged_conflicts: AtomicU64,
    pub(crate) saves_after_delete: AtomicU64,
    pub(crate) deletes: AtomicU64,
    pub(crate) unknown_id_loads: AtomicU64,
    pub(crate) expired_loads: AtomicU64,
    pub(crate) undecodable_loads: AtomicU64,
    pub(crate) oversized_rejections: AtomicU64,
    pub(crate) cap_evictions: AtomicU64,
    pub(crate) cap_refusals: AtomicU64,
    pub(crate) logged_out_everywhere: AtomicU64,
    pub(crate) rotations: AtomicU64,
    unknown_by_minute: Mutex<VecDeque<UnknownIdBucket>>,
    pub(crate) monitor: Option<Monitor>,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn with_monitor(monitor: Option<Monitor>) -> Counters {
        Counters { monitor, ..Counters::default() }
    }

    /// Counts one write decision and tells the monitor.
    pub(crate) fn write(&self, kind: SessionWrite) {
        bump(match kind {
            SessionWrite::Full => &self.full_writes,
            SessionWrite::Touch => &self.touches,
            SessionWrite::Avoided => &self.writes_avoided,
        });
        if let Some(monitor) = &self.monitor {
            monitor.record_session_write(kind);
        }
    }

    /// Counts a load of an id the store does not have, in its minute.
    pub(crate) fn unknown_id(&self, now: Timestamp) {
        bump(&self.unknown_id_loads);
        let minute = Timestamp::from_millis(now.as_millis() / 60_000 * 60_000);
        let mut buckets = self.unknown_by_minute.lock().unwrap_or_else(|p| p.into_inner());
        match buckets.back_mut() {
            Some(last) if last.minute == minute => last.count += 1,
            _ => {
                if buckets.len() == UNKNOWN_ID_MINUTES {
                    buckets.pop_front();
                }
                buckets.push_back(UnknownIdBucket { minute, count: 1 });
            }
        }
    }

    pub(crate) fn unknown_id_history(&self) -> Vec<UnknownIdBucket> {
        let buckets = self.unknown_by_minute.lock().unwrap_or_else(|p| p.into_inner());
        buckets.iter().copied().collect()
    }

    pub(crate) fn snapshot(&self) -> StoreStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StoreStats {
            created: get(&self.created),
            full_writes: get(&self.full_writes),
            touches: get(&self.touches),
            writes_avoided: get(&self.writes_avoided),
            merged_conflicts: get(&self.merged_conflicts),
            saves_after_delete: get(&self.saves_after_delete),
            deletes: get(&self.deletes),
            unknown_id_loads: get(&self.unknown_id_loads),
            expired_loads: get(&self.expired_loads),
            undecodable_loads: get(&self.undecodable_loads),
            oversized_rejections: get(&self.oversized_rejections),
            cap_evictions: get(&self.cap_evictions),
            cap_refusals: get(&self.cap_refusals),
            logged_out_everywhere: get(&self.logged_out_everywhere),
            rotations: get(&self.rotations),
        }
    }
}
