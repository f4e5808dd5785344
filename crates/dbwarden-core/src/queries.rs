//! Per-fingerprint query statistics, kept for at most `top_queries`
//! fingerprints; the rest are folded into one "other" bucket.
//!
//! The table follows pg_stat_statements: when a new fingerprint arrives and
//! the table is full, the 5 % that used the least database time lately are evicted and their figures merged
//! into "other", so totals are never lost and memory never grows with the
//! number of distinct statements. Usage (time spent since the previous round)
//! is added to a score that decays by half at each round
//! so that fingerprints that were busy long ago give way to today's.
//!
//! A full table admits a new fingerprint only when it comes back: its first
//! executions are counted in "other", and it takes a slot at its second miss
//! within a bounded window of candidates (the doorkeeper of TinyLFU). So a
//! stream of one-off statements, or a cycle through more statements than the
//! table holds, fills "other" without evicting anything, while a new busy
//! statement gets its own row at once.
//!
//! The hot path records into a slot's own sharded histogram and counters;
//! the table's lock is only taken to find a slot, and not at all through a
//! [`PreparedQuery`]. A pooled statement that succeeded in time is not even
//! recorded into its slot at once: it waits in a per-thread buffer
//! ([`batch`]) that every reading of the slots folds first.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::fingerprint::{Fingerprint, FingerprintCache, FingerprintId, StatementKind};
use crate::histogram::{Histogram, HistogramConfig, HistogramSnapshot, LatencySummary};
use crate::shard::{self, CachePadded, ShardSlot, default_shard_count, shard_slot};

mod batch;

pub(crate) use batch::{Pending, StatementBatch};

/// One execution's figures, as the recording paths pass them along.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Execution {
    /// The recording thread's shard slot.
    pub(crate) at: ShardSlot,
    pub(crate) duration: Duration,
    pub(crate) rows: u64,
    pub(crate) failed: bool,
    pub(crate) slow: bool,
}

#[derive(Debug, Default)]
struct SlotShard {
    errors: AtomicU64,
    rows: AtomicU64,
    slow: AtomicU64,
}

/// The statistics of one fingerprint.
#[derive(Debug)]
pub(crate) struct Slot {
    fingerprint: Arc<Fingerprint>,
    latency: Histogram,
    shards: Box<[CachePadded<SlotShard>]>,
    evicted: AtomicBool,
    first_seen: Timestamp,
    last_seen: AtomicU64,
    // Eviction bookkeeping, only touched under the table's write lock or by
    // the periodic `touch`: total time (ns) seen at the last round and at the
    // last touch, and the decayed score.
    time_at_round: AtomicU64,
    time_at_touch: AtomicU64,
    score_bits: AtomicU64,
    created_round: u64,
}

impl Slot {
    fn new(fingerprint: Arc<Fingerprint>, now: Timestamp, round: u64) -> Self {
        Slot {
            fingerprint,
            latency: Histogram::new(HistogramConfig::compact()),
            shards: (0..default_shard_count()).map(|_| CachePadded(SlotShard::default())).collect(),
            evicted: AtomicBool::new(false),
            first_seen: now,
            last_seen: AtomicU64::new(now.as_millis()),
            time_at_round: AtomicU64::new(0),
            time_at_touch: AtomicU64::new(0),
            score_bits: AtomicU64::new(0f64.to_bits()),
            created_round: round,
        }
    }

    #[inline]
    fn record(&self, e: Execution) {
        let Execution { at, duration, rows, failed, slow } = e;
        let slot = if shard::fits(at, self.shards.len()) { at } else { shard_slot(self.shards.len()) };
        self.latency.record_ns_at(slot, u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
        let Some(cells) = self.shards.get(slot.index) else {
            return;
        };
        if rows != 0 {
            shard::add(&cells.rows, rows, slot);
        }
        if failed {
            shard::add(&cells.errors, 1, slot);
        }
        if slow {
            shard::add(&cells.slow, 1, slot);
        }
    }

    fn figures(&self) -> Figures {
        let mut f = Figures { latency: self.latency.snapshot(), ..Figures::default() };
        for shard in self.shards.iter() {
            f.errors += shard.0.errors.load(Ordering::Relaxed);
            f.rows += shard.0.rows.load(Ordering::Relaxed);
            f.slow += shard.0.slow.load(Ordering::Relaxed);
        }
        f
    }
}

#[derive(Debug, Clone, Default)]
struct Figures {
    latency: HistogramSnapshot,
    errors: u64,
    rows: u64,
    slow: u64,
}

impl Figures {
    fn merge(&mut self, other: &Figures) {
        self.latency.merge(&other.latency);
        self.errors += other.errors;
        self.rows += other.rows;
        self.slow += other.slow;
    }
}

/// A statement whose fingerprint and statistics slot were looked up once, so
/// recording through it takes no lock and hashes nothing.
///
/// Obtained from [`crate::Monitor::prepare`]. If its fingerprint is later
/// evicted from the top-K table, recording through it still works: it finds
/// (or re-creates) the fingerprint's current slot on each call, at the cost
/// of a lookup.
#[derive(Debug, Clone)]
pub struct PreparedQuery {
    slot: Arc<Slot>,
}

impl PreparedQuery {
    /// The statement's fingerprint.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.slot.fingerprint
    }

    pub(crate) fn fingerprint_arc(&self) -> &Arc<Fingerprint> {
        &self.slot.fingerprint
    }

    /// The statistics slot, to defer a recording into it.
    pub(crate) fn into_slot(self) -> Arc<Slot> {
        self.slot
    }

    /// Records into the slot looked up, even if it was evicted since: for
    /// a handle made for one execution, where looking the fingerprint up
    /// again would count a second miss towards its admission.
    pub(crate) fn record_in_slot(&self, e: Execution) {
        self.slot.record(e);
    }
}

/// The order of [`crate::Monitor::top_queries`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuerySort {
    /// Total time spent, largest first (the default: what costs the database most).
    #[default]
    TotalTime,
    /// Mean latency, largest first.
    Mean,
    /// 99th percentile latency, largest first.
    P99,
    /// Number of calls, most first.
    Calls,
    /// Number of failures, most first.
    Errors,
}

impl QuerySort {
    /// Parses `total_time`, `mean`, `p99`, `calls` or `errors`.
    pub fn parse(s: &str) -> Option<QuerySort> {
        match s {
            "total_time" | "total" => Some(QuerySort::TotalTime),
            "mean" => Some(QuerySort::Mean),
            "p99" => Some(QuerySort::P99),
            "calls" => Some(QuerySort::Calls),
            "errors" => Some(QuerySort::Errors),
            _ => None,
        }
    }
}

/// The statistics of one fingerprint, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryStat {
    /// The fingerprint's id; `0000000000000000` for the "other" bucket.
    pub fingerprint: FingerprintId,
    /// The normalized statement (no literal values).
    pub text: String,
    /// The statement kind.
    pub kind: StatementKind,
    /// The statement's main table.
    pub table: Option<String>,
    /// Executions.
    pub calls: u64,
    /// Failed executions.
    pub errors: u64,
    /// Executions at or above the slow-query threshold.
    pub slow: u64,
    /// Rows returned or affected.
    pub rows: u64,
    /// Total execution time in milliseconds.
    pub total_time_ms: f64,
    /// Latency distribution.
    pub latency: LatencySummary,
    /// When the fingerprint was first seen (for "other": when the monitor started).
    pub first_seen: Timestamp,
    /// When it last ran, to the monitor's sampling resolution.
    pub last_seen: Timestamp,
    /// Whether this row is the "other" bucket.
    pub other: bool,
}

impl QueryStat {
    fn sort_key(&self, sort: QuerySort) -> f64 {
        match sort {
            QuerySort::TotalTime => self.total_time_ms,
            QuerySort::Mean => self.latency.mean_ms,
            QuerySort::P99 => self.latency.p99_ms,
            QuerySort::Calls => self.calls as f64,
            QuerySort::Errors => self.errors as f64,
        }
    }
}

/// Misses a fingerprint needs, while the table is full, before it is admitted.
const ADMIT_AFTER: u8 = 2;
/// Candidates remembered per table slot; past that the window starts over.
const CANDIDATES_PER_SLOT: usize = 4;

#[derive(Debug)]
struct Table {
    slots: HashMap<FingerprintId, Arc<Slot>>,
    round: u64,
    /// Fingerprints that missed while the table was full, with their misses.
    candidates: HashMap<FingerprintId, u8>,
    /// Where executions of fingerprints not (yet) admitted are recorded. It
    /// is marked evicted so that prepared handles and thread-local caches
    /// never keep pointing at it: they look their fingerprint up again.
    unadmitted: Arc<Slot>,
}

impl Table {
    fn new(now: Timestamp) -> Self {
        let unadmitted = Slot::new(Arc::new(Fingerprint::other()), now, 0);
        unadmitted.evicted.store(true, Ordering::Relaxed);
        Table { slots: HashMap::new(), round: 0, candidates: HashMap::new(), unadmitted: Arc::new(unadmitted) }
    }
}

#[derive(Debug, Default)]
struct Other {
    figures: Figures,
    evicted_fingerprints: u64,
}

/// Entries in each thread's direct-mapped cache of raw text to slot.
const FAST_ENTRIES: usize = 128;
/// Longest raw text the thread-local cache keeps.
const FAST_MAX_TEXT: usize = 512;

/// One entry of the thread-local cache: the raw text and the slot it
/// resolved to in one table.
struct FastEntry {
    hash: u64,
    table: u64,
    raw: Box<str>,
    slot: Arc<Slot>,
}

thread_local! {
    /// Each thread's cache of raw text to slot, so that recording a statement
    /// by its text takes no lock: the shared fingerprint cache and the table
    /// are only consulted on a miss.
    static FAST: RefCell<Vec<Option<FastEntry>>> = const { RefCell::new(Vec::new()) };
}

/// Gives each table an id for the thread-local caches.
static NEXT_TABLE_ID: AtomicU64 = AtomicU64::new(1);

/// The top-K table with its fingerprint cache.
#[derive(Debug)]
pub(crate) struct QueryStats {
    id: u64,
    cache: FingerprintCache,
    table: RwLock<Table>,
    other: Mutex<Other>,
    capacity: usize,
    started: Timestamp,
    /// Statements recorded but not yet folded into their slots: every
    /// reading of the slots folds them first.
    batch: Arc<StatementBatch>,
}

/// How many slots one eviction round frees: 5 %, at least one.
fn eviction_batch(capacity: usize) -> usize {
    (capacity / 20).max(1)
}

impl QueryStats {
    pub(crate) fn new(capacity: usize, cache_capacity: usize, started: Timestamp, batch: Arc<StatementBatch>) -> Self {
        QueryStats {
            id: NEXT_TABLE_ID.fetch_add(1, Ordering::Relaxed),
            cache: FingerprintCache::new(cache_capacity),
            table: RwLock::new(Table::new(started)),
            other: Mutex::new(Other::default()),
            capacity: capacity.max(1),
            started,
            batch,
        }
    }

    /// The buffer of statements whose recording is deferred.
    #[inline]
    pub(crate) fn batch(&self) -> &StatementBatch {
        &self.batch
    }

    /// The slot that records the statement `sql`: from the thread-local
    /// cache when it is there (no lock), else looked up and cached.
    #[inline]
    pub(crate) fn slot_for(&self, sql: &str, now: impl FnOnce() -> Timestamp) -> Arc<Slot> {
        let hash = xxhash_rust::xxh3::xxh3_64(sql.as_bytes());
        if let Some(slot) = self.with_cached_slot(sql, hash, Arc::clone) {
            return slot;
        }
        self.slot_missed(sql, hash, now())
    }

    /// `use_slot` applied to the slot the thread-local cache holds for `sql`
    /// (whose xxh3 is `hash`), without a lock or a reference count; `None`
    /// when the cache has no live entry for it.
    #[inline]
    fn with_cached_slot<R>(&self, sql: &str, hash: u64, use_slot: impl FnOnce(&Arc<Slot>) -> R) -> Option<R> {
        if sql.len() > FAST_MAX_TEXT {
            return None;
        }
        FAST.try_with(|fast| {
            let fast = fast.borrow();
            let entry = fast.get(hash as usize % FAST_ENTRIES)?.as_ref()?;
            let valid = entry.hash == hash
                && entry.table == self.id
                && &*entry.raw == sql
                && !entry.slot.evicted.load(Ordering::Relaxed);
            valid.then(|| use_slot(&entry.slot))
        })
        .ok()
        .flatten()
    }

    /// [`QueryStats::slot_for`] past the thread-local cache: the shared
    /// fingerprint cache and the table, and the thread-local cache filled.
    #[cold]
    #[inline(never)]
    fn slot_missed(&self, sql: &str, hash: u64, now: Timestamp) -> Arc<Slot> {
        let slot = self.slot(self.cache.get(sql), now);
        self.remember(sql, hash, &slot);
        slot
    }

    /// Puts `slot` in the thread-local cache for `sql`, unless it counts in
    /// "other": a text counted there is not cached, so that its next
    /// execution reaches the table again to be admitted.
    fn remember(&self, sql: &str, hash: u64, slot: &Arc<Slot>) {
        if sql.len() <= FAST_MAX_TEXT && !slot.evicted.load(Ordering::Relaxed) {
            let _ = FAST.try_with(|fast| {
                if let Ok(mut fast) = fast.try_borrow_mut() {
                    if fast.is_empty() {
                        fast.resize_with(FAST_ENTRIES, || None);
                    }
                    fast[hash as usize % FAST_ENTRIES] =
                        Some(FastEntry { hash, table: self.id, raw: sql.into(), slot: slot.clone() });
                }
            });
        }
    }

    /// The fingerprint of `sql`, normalized once per distinct text.
    pub(crate) fn fingerprint(&self, sql: &str) -> Arc<Fingerprint> {
        self.cache.get(sql)
    }

    pub(crate) fn prepare(&self, sql: &str, now: impl FnOnce() -> Timestamp) -> PreparedQuery {
        PreparedQuery { slot: self.slot_for(sql, now) }
    }

    /// Records one execution of the statement `sql`; returns its fingerprint
    /// when it is notable (failed or slow) or `wanted` (a request or an
    /// operation tallies it), `None` otherwise so the common path clones
    /// nothing.
    #[inline]
    pub(crate) fn record_text(
        &self,
        sql: &str,
        e: Execution,
        wanted: bool,
        now: impl FnOnce() -> Timestamp,
    ) -> Option<Arc<Fingerprint>> {
        let notable = e.failed || e.slow || wanted;
        let hash = xxhash_rust::xxh3::xxh3_64(sql.as_bytes());
        let hit = self.with_cached_slot(sql, hash, |slot| {
            slot.record(e);
            notable.then(|| slot.fingerprint.clone())
        });
        if let Some(fingerprint) = hit {
            return fingerprint;
        }
        let fingerprint = self.cache.get(sql);
        let slot = self.slot(fingerprint.clone(), now());
        slot.record(e);
        self.remember(sql, hash, &slot);
        notable.then_some(fingerprint)
    }

    /// Records one execution of `fingerprint`.
    #[inline]
    pub(crate) fn record(&self, fingerprint: &Arc<Fingerprint>, e: Execution, now: impl FnOnce() -> Timestamp) {
        {
            let table = self.table.read().unwrap_or_else(|e| e.into_inner());
            if let Some(slot) = table.slots.get(&fingerprint.id()) {
                slot.record(e);
                return;
            }
        }
        self.slot(fingerprint.clone(), now()).record(e);
    }

    #[inline]
    pub(crate) fn record_prepared(&self, query: &PreparedQuery, e: Execution, now: impl FnOnce() -> Timestamp) {
        if !query.slot.evicted.load(Ordering::Relaxed) {
            query.slot.record(e);
        } else {
            self.record(&query.slot.fingerprint, e, now);
        }
    }

    /// The slot for `fingerprint`, created (evicting the least used when
    /// full) if there is none.
    fn slot(&self, fingerprint: Arc<Fingerprint>, now: Timestamp) -> Arc<Slot> {
        let id = fingerprint.id();
        if let Some(slot) = self.table.read().unwrap_or_else(|e| e.into_inner()).slots.get(&id) {
            return slot.clone();
        }
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = table.slots.get(&id) {
            return slot.clone();
        }
        if table.slots.len() >= self.capacity {
            let misses = table.candidates.entry(id).or_insert(0);
            *misses = misses.saturating_add(1);
            if *misses < ADMIT_AFTER {
                if table.candidates.len() > CANDIDATES_PER_SLOT * self.capacity {
                    table.candidates.clear();
                }
                return table.unadmitted.clone();
            }
            table.candidates.remove(&id);
            self.evict(&mut table);
        }
        let slot = Arc::new(Slot::new(fingerprint, now, table.round));
        table.slots.insert(id, slot.clone());
        slot
    }

    fn evict(&self, table: &mut Table) {
        // Deferred statements of the slots about to go must be in their
        // figures before those are merged into "other".
        self.batch.flush();
        let round = table.round;
        let mut scored: Vec<(f64, FingerprintId)> = table
            .slots
            .iter()
            .map(|(id, slot)| {
                // Usage is time spent, not calls: it needs one load per shard
                // (a full snapshot per slot made eviction rounds slow) and it
                // ranks the way the default "top by total time" view does.
                let time = lifetime_time(slot);
                let recent = time.saturating_sub(slot.time_at_round.swap(time, Ordering::Relaxed));
                let score = f64::from_bits(slot.score_bits.load(Ordering::Relaxed)) * 0.5 + recent as f64;
                slot.score_bits.store(score.to_bits(), Ordering::Relaxed);
                // Slots created since the last round have had no chance to be used yet.
                let protected = slot.created_round == round && table.slots.len() > eviction_batch(self.capacity);
                (if protected { f64::INFINITY } else { score }, *id)
            })
            .collect();
        scored.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut other = self.other.lock().unwrap_or_else(|e| e.into_inner());
        for (_, id) in scored.into_iter().take(eviction_batch(self.capacity)) {
            if let Some(slot) = table.slots.remove(&id) {
                slot.evicted.store(true, Ordering::Relaxed);
                other.figures.merge(&slot.figures());
                other.evicted_fingerprints += 1;
            }
        }
        table.round += 1;
    }

    /// Marks the fingerprints that ran since the last call as seen at `now`.
    pub(crate) fn touch(&self, now: Timestamp) {
        self.batch.flush();
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        for slot in table.slots.values() {
            let time = lifetime_time(slot);
            if slot.time_at_touch.swap(time, Ordering::Relaxed) != time {
                slot.last_seen.store(now.as_millis(), Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.table.read().unwrap_or_else(|e| e.into_inner()).slots.len()
    }

    /// Every tracked fingerprint plus "other" (when it holds anything), sorted.
    pub(crate) fn stats(&self, sort: QuerySort, limit: usize) -> Vec<QueryStat> {
        self.batch.flush();
        let mut out: Vec<QueryStat> = {
            let table = self.table.read().unwrap_or_else(|e| e.into_inner());
            table
                .slots
                .values()
                .map(|slot| {
                    stat_of(
                        &slot.fingerprint,
                        &slot.figures(),
                        slot.first_seen,
                        Timestamp::from_millis(slot.last_seen.load(Ordering::Relaxed)),
                        false,
                    )
                })
                .collect()
        };
        let mut other = self.other.lock().unwrap_or_else(|e| e.into_inner()).figures.clone();
        other.merge(&self.table.read().unwrap_or_else(|e| e.into_inner()).unadmitted.figures());
        if other.latency.count() > 0 {
            out.push(stat_of(&Fingerprint::other(), &other, self.started, self.started, true));
        }
        out.sort_by(|a, b| b.sort_key(sort).total_cmp(&a.sort_key(sort)).then(a.fingerprint.cmp(&b.fingerprint)));
        out.truncate(limit);
        out
    }

    /// Every tracked fingerprint plus "other" (when it holds anything), each
    /// with its latency histogram, in no particular order.
    pub(crate) fn stats_with_latency(&self) -> Vec<(QueryStat, HistogramSnapshot)> {
        self.batch.flush();
        let mut out: Vec<(QueryStat, HistogramSnapshot)> = {
            let table = self.table.read().unwrap_or_else(|e| e.into_inner());
            table
                .slots
                .values()
                .map(|slot| {
                    let f = slot.figures();
                    let last_seen = Timestamp::from_millis(slot.last_seen.load(Ordering::Relaxed));
                    (stat_of(&slot.fingerprint, &f, slot.first_seen, last_seen, false), f.latency)
                })
                .collect()
        };
        let mut other = self.other.lock().unwrap_or_else(|e| e.into_inner()).figures.clone();
        other.merge(&self.table.read().unwrap_or_else(|e| e.into_inner()).unadmitted.figures());
        if other.latency.count() > 0 {
            out.push((stat_of(&Fingerprint::other(), &other, self.started, self.started, true), other.latency));
        }
        out
    }

    /// How many fingerprints were folded into "other" so far.
    pub(crate) fn evicted(&self) -> u64 {
        self.other.lock().unwrap_or_else(|e| e.into_inner()).evicted_fingerprints
    }

    pub(crate) fn cache_len(&self) -> usize {
        self.cache.len()
    }

    pub(crate) fn clear(&self) {
        self.batch.flush();
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        for slot in table.slots.values() {
            slot.evicted.store(true, Ordering::Relaxed);
        }
        table.slots.clear();
        table.candidates.clear();
        table.unadmitted = Table::new(self.started).unadmitted;
        *self.other.lock().unwrap_or_else(|e| e.into_inner()) = Other::default();
    }
}

/// A slot's lifetime total time in nanoseconds, saturated to `u64`.
fn lifetime_time(slot: &Slot) -> u64 {
    u64::try_from(slot.latency.lifetime_sum_ns()).unwrap_or(u64::MAX)
}

fn stat_of(fp: &Fingerprint, f: &Figures, first_seen: Timestamp, last_seen: Timestamp, other: bool) -> QueryStat {
    QueryStat {
        fingerprint: fp.id(),
        text: fp.text().to_owned(),
        kind: fp.kind(),
        table: fp.table().map(str::to_owned),
        calls: f.latency.count(),
        errors: f.errors,
        slow: f.slow,
        rows: f.rows,
        total_time_ms: f.latency.sum().as_secs_f64() * 1000.0,
        latency: f.latency.summary(),
        first_seen,
        last_seen,
        other,
    }
}
