//! The live list of checked-out connections and open transactions, and the
//! scan that turns a long hold into a "leak suspected" or "transaction
//! timeout" event.
//!
//! Modeled on HikariCP's leak detection, with what it lacks: the holder is
//! named by request id and route as well as by stack, the list is queryable
//! while the connection is still out, and a leak that comes back is reported
//! as returned with how long it was held.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::clock::Timestamp;

/// What was checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// A pooled connection.
    Connection,
    /// A connection inside an open transaction.
    Transaction,
}

/// Who holds a checkout, as far as the adapter could tell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// The id of the HTTP request that checked it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The route of that request (a template such as `/users/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The tracing span it was checked out in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<String>,
    /// A backtrace of the checkout, when backtraces are enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backtrace: Option<String>,
}

/// Identifies one checkout for the life of the monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct CheckoutId(pub u64);

#[derive(Debug)]
struct Entry {
    id: CheckoutId,
    kind: SessionKind,
    holder: Holder,
    checked_out_at: Timestamp,
    last_active: AtomicU64,
    leak_reported: AtomicBool,
    timeout_reported: AtomicBool,
}

/// A live checkout, as returned by [`crate::Monitor::track_checkout`]; hand it
/// back to [`crate::Monitor::release_checkout`] when the connection returns.
#[derive(Debug, Clone)]
pub struct TrackedCheckout {
    entry: Option<Arc<Entry>>,
}

impl TrackedCheckout {
    /// The checkout's id, `None` when the registry was full and the checkout
    /// is counted but not individually tracked.
    pub fn id(&self) -> Option<CheckoutId> {
        self.entry.as_ref().map(|e| e.id)
    }
}

/// A checkout as shown to operators.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckoutInfo {
    /// Its id.
    pub id: CheckoutId,
    /// Connection or transaction.
    pub kind: SessionKind,
    /// Who holds it.
    pub holder: Holder,
    /// When it was checked out.
    pub checked_out_at: Timestamp,
    /// How long it has been (or was) out, in seconds.
    pub age_seconds: f64,
    /// How long since it last ran a statement, in seconds.
    pub idle_seconds: f64,
    /// Whether it has been reported as a suspected leak.
    pub leak_suspected: bool,
}

impl Entry {
    fn info(&self, now: Timestamp) -> CheckoutInfo {
        CheckoutInfo {
            id: self.id,
            kind: self.kind,
            holder: self.holder.clone(),
            checked_out_at: self.checked_out_at,
            age_seconds: now.since(self.checked_out_at).as_secs_f64(),
            idle_seconds: now.since(Timestamp::from_millis(self.last_active.load(Ordering::Relaxed))).as_secs_f64(),
            leak_suspected: self.leak_reported.load(Ordering::Relaxed),
        }
    }
}

/// What a scan found.
#[derive(Debug, Default)]
pub(crate) struct ScanFindings {
    pub(crate) new_leaks: Vec<CheckoutInfo>,
    pub(crate) new_timeouts: Vec<CheckoutInfo>,
    pub(crate) suspected: u64,
}

/// The registry of live checkouts.
#[derive(Debug)]
pub(crate) struct Registry {
    entries: Mutex<HashMap<CheckoutId, Arc<Entry>>>,
    next_id: AtomicU64,
    capacity: usize,
    untracked: AtomicU64,
}

impl Registry {
    pub(crate) fn new(capacity: usize) -> Self {
        Registry {
            entries: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            capacity,
            untracked: AtomicU64::new(0),
        }
    }

    pub(crate) fn track(&self, kind: SessionKind, holder: Holder, now: Timestamp) -> TrackedCheckout {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity {
            self.untracked.fetch_add(1, Ordering::Relaxed);
            return TrackedCheckout { entry: None };
        }
        let id = CheckoutId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let entry = Arc::new(Entry {
            id,
            kind,
            holder,
            checked_out_at: now,
            last_active: AtomicU64::new(now.as_millis()),
            leak_reported: AtomicBool::new(false),
            timeout_reported: AtomicBool::new(false),
        });
        entries.insert(id, entry.clone());
        TrackedCheckout { entry: Some(entry) }
    }

    /// Notes activity on the checkout (for its idle time).
    pub(crate) fn touch(&self, checkout: &TrackedCheckout, now: Timestamp) {
        if let Some(entry) = &checkout.entry {
            entry.last_active.store(now.as_millis(), Ordering::Relaxed);
        }
    }

    /// Removes the checkout; returns its final state when it had been
    /// reported as a leak (so the caller can report it returned).
    /// `now` is read only in that case: a check-in that was never reported
    /// costs no clock read.
    pub(crate) fn release(&self, checkout: &TrackedCheckout, now: impl FnOnce() -> Timestamp) -> Option<CheckoutInfo> {
        let entry = checkout.entry.as_ref()?;
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).remove(&entry.id);
        entry.leak_reported.load(Ordering::Relaxed).then(|| entry.info(now()))
    }

    /// Flags checkouts held past `leak_after` and transactions open past
    /// `timeout_after`, each once.
    pub(crate) fn scan(&self, now: Timestamp, leak_after: Duration, timeout_after: Duration) -> ScanFindings {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut findings = ScanFindings::default();
        for entry in entries.values() {
            let age = now.since(entry.checked_out_at);
            if age >= leak_after {
                if !entry.leak_reported.swap(true, Ordering::Relaxed) {
                    findings.new_leaks.push(entry.info(now));
                }
                findings.suspected += 1;
            }
            if entry.kind == SessionKind::Transaction
                && age >= timeout_after
                && !entry.timeout_reported.swap(true, Ordering::Relaxed)
            {
                findings.new_timeouts.push(entry.info(now));
            }
        }
        findings
    }

    /// Every live checkout, oldest first.
    pub(crate) fn list(&self, now: Timestamp) -> Vec<CheckoutInfo> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = entries.values().map(|e| e.info(now)).collect();
        out.sort_by_key(|c| (c.checked_out_at, c.id));
        out
    }

    pub(crate) fn suspected(&self) -> u64 {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.values().filter(|e| e.leak_reported.load(Ordering::Relaxed)).count() as u64
    }

    pub(crate) fn untracked(&self) -> u64 {
        self.untracked.load(Ordering::Relaxed)
    }
}
