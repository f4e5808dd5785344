//! Latency statistics per key (an HTTP route, a recovery operation) for a
//! bounded number of keys: the first `capacity` keys get their own entry and
//! later ones share an "other" entry, so a route table cannot grow without
//! bound when an application mounts paths with ids in them.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::histogram::{Histogram, HistogramConfig, HistogramSnapshot};

/// Counters and a latency histogram for one key.
#[derive(Debug)]
pub(crate) struct KeyedEntry {
    pub(crate) latency: Histogram,
    pub(crate) failures: AtomicU64,
    pub(crate) slow: AtomicU64,
    /// Free for the owner's use: database time in nanoseconds for routes.
    pub(crate) extra_ns: AtomicU64,
    /// Free for the owner's use: database queries for routes.
    pub(crate) extra_count: AtomicU64,
}

impl KeyedEntry {
    fn new() -> Self {
        KeyedEntry {
            latency: Histogram::new(HistogramConfig::compact()),
            failures: AtomicU64::new(0),
            slow: AtomicU64::new(0),
            extra_ns: AtomicU64::new(0),
            extra_count: AtomicU64::new(0),
        }
    }

    /// Records one occurrence.
    pub(crate) fn record(&self, duration: Duration, failed: bool, slow: bool) {
        self.latency.record(duration);
        if failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        if slow {
            self.slow.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A plain copy of one entry.
#[derive(Debug, Clone)]
pub(crate) struct KeyedFigures<K> {
    pub(crate) key: Option<K>,
    pub(crate) latency: HistogramSnapshot,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
    pub(crate) extra_ns: u64,
    pub(crate) extra_count: u64,
}

/// Entries for at most `capacity` keys plus "other".
#[derive(Debug)]
pub(crate) struct KeyedStats<K> {
    entries: Mutex<HashMap<K, Arc<KeyedEntry>>>,
    other: Arc<KeyedEntry>,
    capacity: usize,
}

impl<K: Eq + Hash + Clone> KeyedStats<K> {
    pub(crate) fn new(capacity: usize) -> Self {
        KeyedStats { entries: Mutex::new(HashMap::new()), other: Arc::new(KeyedEntry::new()), capacity }
    }

    /// The entry for `key`, or "other" when the table is full.
    pub(crate) fn entry(&self, key: &K) -> Arc<KeyedEntry> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.get(key) {
            return entry.clone();
        }
        if entries.len() >= self.capacity {
            return self.other.clone();
        }
        let entry = Arc::new(KeyedEntry::new());
        entries.insert(key.clone(), entry.clone());
        entry
    }

    /// Every entry, "other" last with `key: None` when it holds anything.
    pub(crate) fn figures(&self) -> Vec<KeyedFigures<K>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = entries.iter().map(|(k, e)| figures_of(Some(k.clone()), e)).collect();
        let other = figures_of(None, &self.other);
        if other.latency.count() > 0 {
            out.push(other);
        }
        out
    }

    pub(crate) fn clear(&self) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.other.latency.reset();
        for c in [&self.other.failures, &self.other.slow, &self.other.extra_ns, &self.other.extra_count] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

fn figures_of<K>(key: Option<K>, e: &KeyedEntry) -> KeyedFigures<K> {
    KeyedFigures {
        key,
        latency: e.latency.snapshot(),
        failures: e.failures.load(Ordering::Relaxed),
        slow: e.slow.load(Ordering::Relaxed),
        extra_ns: e.extra_ns.load(Ordering::Relaxed),
        extra_count: e.extra_count.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_past_capacity_share_other() {
        let stats: KeyedStats<String> = KeyedStats::new(2);
        for key in ["a", "b", "c", "d", "a"] {
            stats.entry(&key.to_string()).record(Duration::from_millis(1), false, false);
        }
        let figures = stats.figures();
        assert_eq!(figures.len(), 3);
        let a = figures.iter().find(|f| f.key.as_deref() == Some("a"));
        assert_eq!(a.map(|f| f.latency.count()), Some(2));
        let other = figures.iter().find(|f| f.key.is_none());
        assert_eq!(other.map(|f| f.latency.count()), Some(2));
    }
}
