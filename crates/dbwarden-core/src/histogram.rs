//! A lock-free, sharded, log-linear latency histogram.
//!
//! dbwarden records the duration of every database query an application
//! makes, so recording has to cost less than the query bookkeeping around it
//! and must not serialise the application's threads. [`Histogram::record`]
//! therefore does no allocation, takes no lock and reads no clock: it finds
//! the calling thread's shard (one thread-local read, see
//! [`crate::shard::shard_slot`]) and adds to the bucket and the sum — plain
//! loads and stores on a shard the thread owns, relaxed atomic adds on the
//! shared overflow shard — plus a load for each of max and min, which turn
//! into a store only when the value is a new extreme. Each shard lives in its own cache-line-padded block, so two
//! threads recording at the same time normally touch disjoint cache lines;
//! a mutex (or a single set of shared atomics) would instead bounce one cache
//! line between cores on every query. Readers pay instead: a
//! [`snapshot`](Histogram::snapshot) sums all shards into a plain
//! [`HistogramSnapshot`], which is what every query (quantiles, means,
//! Prometheus buckets, time windows) works on.
//!
//! # Why log-linear buckets
//!
//! Latencies span nine orders of magnitude (a cached lookup takes
//! microseconds, a runaway report minutes) and what matters is the *relative*
//! error: "p99 is 12.3 ms" must be right to a few percent whether it is
//! 12 µs or 12 s. The buckets follow HdrHistogram's layout: values below
//! 2^`bits` nanoseconds get a bucket each (exact); above that, each
//! power-of-two range `[2^e, 2^(e+1))` is split into 2^`bits` equal-width
//! buckets. A bucket's width is therefore at most 2^-`bits` of its lower
//! edge, the bucket index is a few shifts away from the value (no search, no
//! floating point), and memory is bounded by the largest value tracked and
//! independent of how many values are recorded.
//!
//! # The error bound
//!
//! With `bits` sub-bucket bits, [`HistogramSnapshot::relative_error`] is
//! `ε = 2^-(bits+1)`. For the nearest-rank q-quantile `x` (the value of rank
//! `max(1, ⌈q·n⌉)` among the `n` recorded values sorted ascending),
//! [`HistogramSnapshot::quantile`] returns `x̂` with `|x̂ − x| ≤ ε·x`
//! whenever `x` is at most [`HistogramConfig::max_value_ns`] (more
//! precisely, at most the upper edge of the top bucket); values below
//! 2^`bits` ns are returned exactly. The estimate is the midpoint of the
//! bucket holding `x`, clamped to the recorded `[min, max]`.
//!
//! # Memory
//!
//! A histogram has `shards × (buckets × 8 + 128)` bytes of counters, with
//! `buckets = 1249` for [`HistogramConfig::precise`] and `641` for
//! [`HistogramConfig::compact`] (both tracking up to 2^43 ns ≈ 2.4 h). See
//! those constructors for totals. Snapshots store only the range between the
//! lowest and the highest non-empty bucket, so an idle snapshot holds no
//! bucket storage at all.

use std::borrow::Cow;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::shard::{self, CachePadded, ShardSlot, default_shard_count, normalize_shard_count, shard_slot};

/// Fewest sub-bucket bits accepted (relative error 1/16).
const MIN_BITS: u8 = 3;
/// Most sub-bucket bits accepted (relative error 1/128).
const MAX_BITS: u8 = 6;
/// Largest `max_value_ns` accepted (keeps the per-shard sum far from
/// wrapping even for values at the top).
const MAX_TRACKABLE_NS: u64 = 1 << 62;
/// Default largest tracked value: 2^43 ns ≈ 2 h 26 min.
const DEFAULT_MAX_VALUE_NS: u64 = 1 << 43;

/// Shape of a [`Histogram`]: resolution, range and sharding.
///
/// Out-of-range fields are corrected by [`Histogram::new`] rather than
/// rejected: `sub_bucket_bits` is clamped to `3..=6`, `max_value_ns` to
/// `2^sub_bucket_bits..=2^62`, and `shards` is capped at 1024 (`0` meaning
/// [`default_shard_count`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramConfig {
    /// Number of sub-bucket bits, `3..=6`: each power-of-two range is split
    /// into 2^`sub_bucket_bits` buckets, for a relative error of
    /// 2^-(`sub_bucket_bits`+1).
    pub sub_bucket_bits: u8,
    /// Largest value, in nanoseconds, that is bucketed with full precision.
    /// Larger values are counted in the top bucket (their exact value still
    /// updates the maximum).
    pub max_value_ns: u64,
    /// Number of shards (`0` means [`default_shard_count`]): all but the last
    /// are owned by one thread each, the last is shared.
    pub shards: usize,
}

impl HistogramConfig {
    /// Global latency histograms: 5 sub-bucket bits (relative error
    /// ≤ 1/64 ≈ 1.6 %), values up to 2^43 ns (≈ 2.4 h), default shards.
    ///
    /// Memory: 1249 buckets, i.e. 9,992 bytes of buckets plus a 128-byte
    /// header per shard — 10,120 bytes per shard, about 40 KiB per
    /// histogram with 4 shards (a 2-core machine) and 316 KiB with 32
    /// shards (16 cores or more). See [`Histogram::memory_bytes`].
    pub fn precise() -> Self {
        HistogramConfig { sub_bucket_bits: 5, max_value_ns: DEFAULT_MAX_VALUE_NS, shards: default_shard_count() }
    }

    /// Per-fingerprint histograms: 4 sub-bucket bits (relative error
    /// ≤ 1/32 ≈ 3.2 %), values up to 2^43 ns (≈ 2.4 h), default shards.
    ///
    /// Memory: 641 buckets, i.e. 5,128 bytes of buckets plus a 128-byte
    /// header per shard — 5,256 bytes per shard, about 21 KiB per histogram
    /// with 4 shards (a 2-core machine) and 164 KiB with 32 shards (16 cores
    /// or more). See [`Histogram::memory_bytes`].
    pub fn compact() -> Self {
        HistogramConfig { sub_bucket_bits: 4, max_value_ns: DEFAULT_MAX_VALUE_NS, shards: default_shard_count() }
    }

    /// The configuration with every field brought into its accepted range.
    fn normalized(self) -> Self {
        let bits = self.sub_bucket_bits.clamp(MIN_BITS, MAX_BITS);
        HistogramConfig {
            sub_bucket_bits: bits,
            max_value_ns: self.max_value_ns.clamp(1 << bits, MAX_TRACKABLE_NS),
            shards: normalize_shard_count(self.shards),
        }
    }
}

// ---------------------------------------------------------------------------
// Bucket arithmetic. `bits` is always <= 63 here (configs use 3..=6, the
// `Default` snapshot uses 0).

/// The bucket holding `v`: `v` itself below 2^bits, otherwise
/// `(e - bits + 1) << bits | sub` where `e` is the index of the highest set
/// bit and `sub` the `bits` bits below it.
#[inline(always)]
fn bucket_index(v: u64, bits: u32) -> usize {
    // Or-ing in 2^bits makes values below 2^bits use shift 0 (exact buckets)
    // without a branch; above, shift = e - bits and v >> shift is in
    // [2^bits, 2^(bits+1)), i.e. 2^bits + sub.
    let shift = 63 - (v | (1u64 << bits)).leading_zeros() - bits;
    ((shift as usize) << bits) + (v >> shift) as usize
}

/// Largest bucket index any `u64` can map to.
fn max_bucket_index(bits: u32) -> usize {
    bucket_index(u64::MAX, bits)
}

/// Smallest value in bucket `index`.
fn bucket_lower(index: usize, bits: u32) -> u64 {
    let index = index.min(max_bucket_index(bits));
    let sub_count = 1usize << bits;
    if index < sub_count {
        index as u64
    } else {
        let shift = (index >> bits) - 1;
        let mantissa = ((index & (sub_count - 1)) | sub_count) as u64;
        mantissa << shift
    }
}

/// Largest value in bucket `index`.
fn bucket_upper(index: usize, bits: u32) -> u64 {
    let index = index.min(max_bucket_index(bits));
    let shift = (index >> bits).saturating_sub(1);
    bucket_lower(index, bits) + ((1u64 << shift) - 1)
}

/// Midpoint (rounded down) of bucket `index`.
fn bucket_midpoint(index: usize, bits: u32) -> u64 {
    let lower = bucket_lower(index, bits);
    lower + (bucket_upper(index, bits) - lower) / 2
}

/// Rank (1-based) of the nearest-rank q-quantile among `n >= 1` values:
/// `max(1, ⌈q·n⌉)`, capped at `n`; `q` is clamped to `[0, 1]`.
fn nearest_rank(q: f64, n: u64) -> u64 {
    let rank = (q.clamp(0.0, 1.0) * n as f64).ceil();
    if rank <= 1.0 {
        1
    } else if rank >= n as f64 {
        n
    } else {
        rank as u64
    }
}

/// A duration as nanoseconds, saturating at `u64::MAX` (≈ 584 years).
#[inline]
fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `ns` nanoseconds as a duration, saturating at [`Duration::MAX`].
fn duration_from_ns_u128(ns: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    match u64::try_from(ns / NANOS_PER_SEC) {
        Ok(secs) => Duration::new(secs, (ns % NANOS_PER_SEC) as u32),
        Err(_) => Duration::MAX,
    }
}

/// Nanoseconds as fractional milliseconds.
fn ns_to_ms(ns: u64) -> f64 {
    ns as f64 / 1_000_000.0
}

// ---------------------------------------------------------------------------
// The recording side.

/// One shard's counters. The scalars share the padded block; the buckets are
/// a separate allocation.
#[derive(Debug)]
struct Shard {
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
    min_ns: AtomicU64,
    buckets: Box<[AtomicU64]>,
}

impl Shard {
    fn new(bucket_count: usize) -> Self {
        Shard {
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
            min_ns: AtomicU64::new(u64::MAX),
            buckets: (0..bucket_count).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// A lock-free, sharded, log-linear histogram of durations.
///
/// Recording ([`record`](Self::record), [`record_ns`](Self::record_ns)) is
/// wait-free: a few relaxed atomic operations on the calling thread's shard.
/// Reading goes through [`snapshot`](Self::snapshot). The count is not kept
/// in a separate counter: it is the sum of the buckets, so a snapshot's count
/// always agrees with its buckets.
///
/// Values above [`HistogramConfig::max_value_ns`] are counted in the top
/// bucket; the exact value still updates the maximum, and it is added to the
/// sum capped at the top bucket's upper edge (so the sum of one shard cannot
/// realistically wrap: that takes 2^64 ns ≈ 584 years of recorded time on
/// one shard).
pub struct Histogram {
    shards: Box<[CachePadded<Shard>]>,
    /// Sub-bucket bits, as a shift amount.
    bits: u32,
    /// Index of the top bucket (the bucket array has `top_bucket + 1` slots).
    top_bucket: usize,
    /// Upper edge of the top bucket: the cap on a value's contribution to the
    /// sum.
    top_upper_ns: u64,
    config: HistogramConfig,
    /// What [`Histogram::reset`] subtracts: shard owners write with plain
    /// stores, so shards are never zeroed from another thread.
    baseline: Mutex<Option<HistogramSnapshot>>,
}

impl Histogram {
    /// An empty histogram shaped by `config` (corrected into range as
    /// described on [`HistogramConfig`]).
    pub fn new(config: HistogramConfig) -> Self {
        let config = config.normalized();
        let bits = u32::from(config.sub_bucket_bits);
        let top_bucket = bucket_index(config.max_value_ns, bits);
        let shards = (0..config.shards).map(|_| CachePadded::new(Shard::new(top_bucket + 1))).collect();
        Histogram {
            shards,
            bits,
            top_bucket,
            top_upper_ns: bucket_upper(top_bucket, bits),
            config,
            baseline: Mutex::new(None),
        }
    }

    /// Records one duration (converted to nanoseconds, saturating at
    /// `u64::MAX`).
    #[inline]
    pub fn record(&self, d: Duration) {
        self.record_ns(duration_ns(d));
    }

    /// Records one value in nanoseconds.
    #[inline]
    pub fn record_ns(&self, ns: u64) {
        self.record_ns_at(shard_slot(self.shards.len()), ns);
    }

    /// Records one value as the holder of `slot`, which must come from
    /// [`shard_slot`] with this histogram's [`shard_count`](Self::shard_count)
    /// (callers recording into several structures of the same shard count
    /// look their slot up once). A slot that does not fit falls back to a
    /// fresh lookup.
    // Always inlined: recording a request writes two histograms back to
    // back, and a call's prologue and epilogue cost as much as the bucket
    // arithmetic.
    #[inline(always)]
    pub fn record_ns_at(&self, slot: ShardSlot, ns: u64) {
        let slot = if shard::fits(slot, self.shards.len()) { slot } else { shard_slot(self.shards.len()) };
        let Some(shard) = self.shards.get(slot.index) else {
            return;
        };
        let index = bucket_index(ns, self.bits).min(self.top_bucket);
        if let Some(bucket) = shard.buckets.get(index) {
            shard::add(bucket, 1, slot);
        }
        shard::add(&shard.sum_ns, ns.min(self.top_upper_ns), slot);
        shard::raise(&shard.max_ns, ns, slot);
        shard::lower(&shard.min_ns, ns, slot);
    }

    /// A plain copy of the histogram, summed over shards.
    ///
    /// The copy is not atomic across shards or fields: taken while other
    /// threads record, it may miss or half-include records in flight (e.g.
    /// a value counted in its bucket whose sum has not been added yet). Each
    /// of count, sum and the buckets is eventually exact: once recording
    /// stops (or for every record that happened-before the call), the
    /// snapshot includes it fully. Min and max are always kept consistent
    /// with the lowest and highest non-empty buckets.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let raw = self.raw_snapshot();
        match &*self.baseline.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(baseline) => raw.saturating_sub(baseline),
            None => raw,
        }
    }

    fn raw_snapshot(&self) -> HistogramSnapshot {
        let mut counts = vec![0u64; self.top_bucket + 1];
        let mut sum_ns: u128 = 0;
        let mut max_ns = 0u64;
        let mut min_ns = u64::MAX;
        for shard in self.shards.iter() {
            for (total, bucket) in counts.iter_mut().zip(shard.buckets.iter()) {
                *total = total.saturating_add(bucket.load(Ordering::Relaxed));
            }
            sum_ns += u128::from(shard.sum_ns.load(Ordering::Relaxed));
            max_ns = max_ns.max(shard.max_ns.load(Ordering::Relaxed));
            min_ns = min_ns.min(shard.min_ns.load(Ordering::Relaxed));
        }
        let mut snapshot =
            HistogramSnapshot::from_parts(self.config.sub_bucket_bits, 0, counts, sum_ns, min_ns, max_ns);
        // A record in flight may have bumped its bucket before its min/max:
        // keep the extremes inside their buckets (a no-op when quiescent;
        // the top bucket also holds values above its upper edge).
        if let (Some(first), Some(last)) = (snapshot.first_index(), snapshot.last_index()) {
            let upper_or_overflow = |i: usize| {
                if i >= self.top_bucket { u64::MAX } else { bucket_upper(i, self.bits) }
            };
            snapshot.min_ns = snapshot.min_ns.max(bucket_lower(first, self.bits)).min(upper_or_overflow(first));
            snapshot.max_ns = snapshot.max_ns.max(bucket_lower(last, self.bits)).min(upper_or_overflow(last));
        }
        snapshot
    }

    /// Empties the histogram as far as readers can tell: later snapshots
    /// subtract what was recorded up to now. Min and max after a reset are
    /// estimated as for [`HistogramSnapshot::saturating_sub`]. Records racing
    /// with the reset may land on either side of it.
    pub fn reset(&self) {
        let raw = self.raw_snapshot();
        *self.baseline.lock().unwrap_or_else(|e| e.into_inner()) = Some(raw);
    }

    /// The sum of every value ever recorded, in nanoseconds, ignoring
    /// [`reset`](Self::reset): a cheap reading (one load per shard) for
    /// noticing activity, not for reporting.
    pub fn lifetime_sum_ns(&self) -> u128 {
        self.shards.iter().map(|s| u128::from(s.sum_ns.load(Ordering::Relaxed))).sum()
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Heap and inline memory used by this histogram, in bytes.
    pub fn memory_bytes(&self) -> usize {
        let per_shard =
            std::mem::size_of::<CachePadded<Shard>>() + (self.top_bucket + 1) * std::mem::size_of::<AtomicU64>();
        std::mem::size_of::<Self>() + self.shards.len() * per_shard
    }

    /// The configuration in effect (after range correction).
    pub fn config(&self) -> HistogramConfig {
        self.config
    }

    /// Number of buckets per shard.
    pub fn bucket_count(&self) -> usize {
        self.top_bucket + 1
    }

    /// Total count over all shards, without building a snapshot.
    fn count(&self) -> u64 {
        self.shards
            .iter()
            .flat_map(|s| s.buckets.iter())
            .fold(0u64, |acc, b| acc.saturating_add(b.load(Ordering::Relaxed)))
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("config", &self.config)
            .field("buckets_per_shard", &self.bucket_count())
            .field("count", &self.count())
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------
// The reading side.

/// A plain (non-atomic) copy of a [`Histogram`] that can be merged,
/// subtracted (for time windows) and queried.
///
/// Only the buckets from the lowest to the highest non-empty one are stored,
/// so an empty snapshot holds no bucket storage and equal contents compare
/// equal. The count always equals the sum of the stored buckets. The
/// `Default` snapshot is empty and has no resolution of its own: merging
/// into it adopts the other snapshot's resolution.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct HistogramSnapshot {
    count: u64,
    sum_ns: u128,
    /// Smallest value (0 when empty).
    min_ns: u64,
    /// Largest value (0 when empty).
    max_ns: u64,
    sub_bucket_bits: u8,
    /// Index of the bucket `buckets[0]` counts.
    first_bucket: usize,
    /// Counts from `first_bucket` on; trimmed so that the first and last
    /// entries are non-zero (empty when the count is zero).
    buckets: Vec<u64>,
}

impl HistogramSnapshot {
    /// An empty snapshot with the given resolution.
    fn empty(sub_bucket_bits: u8) -> Self {
        HistogramSnapshot { sub_bucket_bits, ..HistogramSnapshot::default() }
    }

    /// Builds a snapshot from bucket counts starting at index `first`,
    /// trimming empty buckets at both ends and deriving the count.
    fn from_parts(
        sub_bucket_bits: u8,
        first: usize,
        mut buckets: Vec<u64>,
        sum_ns: u128,
        min_ns: u64,
        max_ns: u64,
    ) -> Self {
        while buckets.last() == Some(&0) {
            buckets.pop();
        }
        let leading = buckets.iter().take_while(|&&c| c == 0).count();
        buckets.drain(..leading);
        let count = buckets.iter().fold(0u64, |acc, &c| acc.saturating_add(c));
        if count == 0 {
            return HistogramSnapshot::empty(sub_bucket_bits);
        }
        buckets.shrink_to_fit();
        HistogramSnapshot { count, sum_ns, min_ns, max_ns, sub_bucket_bits, first_bucket: first + leading, buckets }
    }

    fn bits(&self) -> u32 {
        u32::from(self.sub_bucket_bits)
    }

    /// Index of the lowest non-empty bucket.
    fn first_index(&self) -> Option<usize> {
        (!self.buckets.is_empty()).then_some(self.first_bucket)
    }

    /// Index of the highest non-empty bucket.
    fn last_index(&self) -> Option<usize> {
        (!self.buckets.is_empty()).then(|| self.first_bucket + self.buckets.len() - 1)
    }

    /// Count in bucket `index` (0 outside the stored range).
    fn bucket_count(&self, index: usize) -> u64 {
        index.checked_sub(self.first_bucket).and_then(|i| self.buckets.get(i)).copied().unwrap_or(0)
    }

    /// This snapshot at a coarser resolution (`bits` ≤ its own; a finer
    /// request returns it unchanged). Buckets nest exactly, so counts, sum,
    /// min and max are preserved.
    fn rebucketed(&self, bits: u8) -> Cow<'_, HistogramSnapshot> {
        if bits >= self.sub_bucket_bits {
            return Cow::Borrowed(self);
        }
        let (Some(first), Some(last)) = (self.first_index(), self.last_index()) else {
            return Cow::Owned(HistogramSnapshot::empty(bits));
        };
        let (old, new) = (self.bits(), u32::from(bits));
        let to_new = |i: usize| bucket_index(bucket_lower(i, old), new);
        let new_first = to_new(first);
        let mut counts = vec![0u64; to_new(last) - new_first + 1];
        for (offset, &c) in self.buckets.iter().enumerate() {
            if let Some(slot) = counts.get_mut(to_new(first + offset) - new_first) {
                *slot = slot.saturating_add(c);
            }
        }
        Cow::Owned(HistogramSnapshot::from_parts(bits, new_first, counts, self.sum_ns, self.min_ns, self.max_ns))
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether no value was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Sum of the recorded values (saturating at [`Duration::MAX`]). Values
    /// above the histogram's top bucket count as that bucket's upper edge.
    pub fn sum(&self) -> Duration {
        duration_from_ns_u128(self.sum_ns)
    }

    /// Largest recorded value (zero when empty). Exact for a snapshot of a
    /// histogram; an estimate for a [`saturating_sub`](Self::saturating_sub)
    /// window.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max_ns)
    }

    /// Smallest recorded value (zero when empty). Exact for a snapshot of a
    /// histogram; an estimate for a [`saturating_sub`](Self::saturating_sub)
    /// window.
    pub fn min(&self) -> Duration {
        Duration::from_nanos(self.min_ns)
    }

    /// Mean of the recorded values (rounded down to the nanosecond), `None`
    /// when empty.
    pub fn mean(&self) -> Option<Duration> {
        (self.count > 0).then(|| duration_from_ns_u128(self.sum_ns / u128::from(self.count)))
    }

    /// Number of sub-bucket bits of this snapshot's resolution (0 for the
    /// `Default` snapshot).
    pub fn sub_bucket_bits(&self) -> u8 {
        self.sub_bucket_bits
    }

    /// The q-quantile, `q` in `[0, 1]` (clamped; `None` for NaN or when
    /// empty).
    ///
    /// Definition: nearest rank, i.e. the value of rank `max(1, ⌈q·n⌉)`
    /// among the `n` values sorted ascending (`q = 0` is the minimum,
    /// `q = 1` the maximum). The result is the midpoint of the bucket
    /// holding that value, clamped to `[min, max]`; at `q = 1` (rank `n`)
    /// it is the maximum itself. Promise: for a true quantile `x` at most
    /// the histogram's `max_value_ns`, the result `x̂` satisfies
    /// `|x̂ − x| ≤ relative_error() · x`, and values below
    /// 2^`sub_bucket_bits` ns are exact. A true quantile above
    /// `max_value_ns` is only known to be in the top bucket, so the result
    /// then lies between that bucket's lower edge and the maximum.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        self.quantile_ns(q).map(Duration::from_nanos)
    }

    /// [`quantile`](Self::quantile) in nanoseconds.
    fn quantile_ns(&self, q: f64) -> Option<u64> {
        if self.count == 0 || q.is_nan() {
            return None;
        }
        let rank = nearest_rank(q, self.count);
        if rank == self.count {
            return Some(self.max_ns);
        }
        let mut seen = 0u64;
        for (offset, &c) in self.buckets.iter().enumerate() {
            seen = seen.saturating_add(c);
            if seen >= rank {
                let mid = bucket_midpoint(self.first_bucket + offset, self.bits());
                return Some(mid.max(self.min_ns).min(self.max_ns));
            }
        }
        Some(self.max_ns)
    }

    /// Adds `other`'s values to this snapshot.
    ///
    /// Never panics. Snapshots of different resolutions are merged at the
    /// coarser one (buckets nest exactly, so no count moves to a wrong
    /// bucket; the result's `relative_error` is the coarser one). An empty
    /// side contributes nothing, and an empty `self` becomes a copy of
    /// `other` (resolution included). Counts and sums saturate.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let bits = self.sub_bucket_bits.min(other.sub_bucket_bits);
        let a = self.rebucketed(bits);
        let b = other.rebucketed(bits);
        let (Some(a_first), Some(a_last), Some(b_first), Some(b_last)) =
            (a.first_index(), a.last_index(), b.first_index(), b.last_index())
        else {
            return;
        };
        let first = a_first.min(b_first);
        let last = a_last.max(b_last);
        let counts = (first..=last).map(|i| a.bucket_count(i).saturating_add(b.bucket_count(i))).collect();
        let merged = HistogramSnapshot::from_parts(
            bits,
            first,
            counts,
            a.sum_ns.saturating_add(b.sum_ns),
            a.min_ns.min(b.min_ns),
            a.max_ns.max(b.max_ns),
        );
        *self = merged;
    }

    /// The values recorded after `earlier` and up to `self`, for windows:
    /// "the last 5 minutes" is `now.saturating_sub(&five_minutes_ago)`.
    ///
    /// Bucket counts and the sum are subtracted (saturating at zero, so a
    /// histogram reset in between yields at most `self`'s contents; an empty
    /// `earlier` yields a copy of `self`). Different resolutions are
    /// compared at the coarser one.
    ///
    /// The window's min and max cannot be derived exactly. The max is the
    /// upper edge of the highest non-empty window bucket, or `self`'s max
    /// when that bucket is also `self`'s highest; the min is the larger of
    /// the lower edge of the lowest non-empty window bucket and `self`'s
    /// min. Either way it lies in the same bucket as the true extreme, so it
    /// is off by less than one bucket width (relative error < 2^-bits, twice
    /// [`relative_error`](Self::relative_error)); quantiles of the window
    /// keep the documented bound except `q = 1`, which returns this
    /// estimated max.
    pub fn saturating_sub(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        if self.count == 0 {
            return HistogramSnapshot::empty(self.sub_bucket_bits);
        }
        if earlier.count == 0 {
            return self.clone();
        }
        let bits = self.sub_bucket_bits.min(earlier.sub_bucket_bits);
        let a = self.rebucketed(bits);
        let b = earlier.rebucketed(bits);
        let counts = a
            .buckets
            .iter()
            .enumerate()
            .map(|(offset, &c)| c.saturating_sub(b.bucket_count(a.first_bucket + offset)))
            .collect();
        let mut delta =
            HistogramSnapshot::from_parts(bits, a.first_bucket, counts, a.sum_ns.saturating_sub(b.sum_ns), 0, 0);
        let bits = u32::from(bits);
        if let (Some(first), Some(last)) = (delta.first_index(), delta.last_index()) {
            delta.min_ns = bucket_lower(first, bits).max(a.min_ns);
            delta.max_ns = if Some(last) == a.last_index() { a.max_ns } else { bucket_upper(last, bits) };
        }
        delta
    }

    /// Number of recorded values `<= bound`, e.g. to export cumulative
    /// Prometheus buckets at fixed bounds (1 ms, 5 ms, …).
    ///
    /// Exact when `bound` is below the minimum or at least the maximum, and
    /// whenever `bound` is the upper edge of a bucket. Otherwise the one
    /// bucket straddling `bound` is counted only if its upper edge is
    /// `<= bound` — i.e. not at all — so the result may undercount by the
    /// values in that bucket that are `<= bound`: it is the exact count at
    /// some `bound'` with `bound · (1 − 2^-bits) < bound' ≤ bound`. The
    /// result never exceeds the true count and is monotone in `bound`.
    ///
    /// Values above the histogram's `max_value_ns` share the top bucket, so
    /// when the maximum is such a value the whole top bucket is counted only
    /// once `bound >= max`.
    pub fn count_at_or_below(&self, bound: Duration) -> u64 {
        let bound = duration_ns(bound);
        if self.count == 0 || bound < self.min_ns {
            return 0;
        }
        if bound >= self.max_ns {
            return self.count;
        }
        // The highest bucket holds the max (> bound) and, for the top
        // bucket, possibly values above its upper edge: never count it here.
        let mut total = 0u64;
        for (offset, &c) in self.buckets.iter().enumerate().take(self.buckets.len().saturating_sub(1)) {
            if bucket_upper(self.first_bucket + offset, self.bits()) > bound {
                break;
            }
            total = total.saturating_add(c);
        }
        total
    }

    /// The relative error bound of [`quantile`](Self::quantile):
    /// `2^-(sub_bucket_bits + 1)` (1/64 for [`HistogramConfig::precise`],
    /// 1/32 for [`HistogramConfig::compact`]).
    pub fn relative_error(&self) -> f64 {
        0.5f64.powi(i32::from(self.sub_bucket_bits) + 1)
    }

    /// Count, mean, p50/p95/p99 and max in milliseconds (all zero when
    /// empty).
    pub fn summary(&self) -> LatencySummary {
        let ms = |q: f64| self.quantile_ns(q).map_or(0.0, ns_to_ms);
        LatencySummary {
            count: self.count,
            mean_ms: self.mean().map_or(0.0, |d| d.as_secs_f64() * 1_000.0),
            p50_ms: ms(0.5),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
            max_ms: ns_to_ms(self.max_ns),
        }
    }
}

/// JSON-friendly latency summary; durations in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of recorded values.
    pub count: u64,
    /// Mean, in milliseconds.
    pub mean_ms: f64,
    /// Median (nearest rank), in milliseconds.
    pub p50_ms: f64,
    /// 95th percentile (nearest rank), in milliseconds.
    pub p95_ms: f64,
    /// 99th percentile (nearest rank), in milliseconds.
    pub p99_ms: f64,
    /// Maximum, in milliseconds.
    pub max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn config(bits: u8, shards: usize) -> HistogramConfig {
        HistogramConfig { sub_bucket_bits: bits, max_value_ns: DEFAULT_MAX_VALUE_NS, shards }
    }

    fn hist_of(bits: u8, values: &[u64]) -> Histogram {
        let h = Histogram::new(config(bits, 1));
        for &v in values {
            h.record_ns(v);
        }
        h
    }

    /// A deterministic spread of test values.
    fn sample_values() -> Vec<u64> {
        let mut values: Vec<u64> = (0..5_000).collect();
        for e in 0..64 {
            let p = 1u64 << e;
            values.extend([p - 1, p, p + 1, p | (p >> 1), p.wrapping_mul(3) / 2]);
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x >> (x % 64));
        }
        values.push(u64::MAX);
        values
    }

    #[test]
    fn bucket_index_and_bounds_round_trip() {
        for bits in 0..=8u32 {
            for &v in &sample_values() {
                let i = bucket_index(v, bits);
                let (lo, hi) = (bucket_lower(i, bits), bucket_upper(i, bits));
                assert!(lo <= v && v <= hi, "bits {bits} v {v} i {i} [{lo}, {hi}]");
                assert_eq!(bucket_index(lo, bits), i);
                assert_eq!(bucket_index(hi, bits), i);
                if hi < u64::MAX {
                    assert_eq!(bucket_index(hi + 1, bits), i + 1, "contiguous");
                }
                if v < (1 << bits) {
                    assert_eq!((lo, hi), (v, v), "exact below 2^bits");
                } else {
                    // width <= lower * 2^-bits
                    assert!(u128::from(hi - lo + 1) << bits <= u128::from(lo));
                }
            }
            assert_eq!(max_bucket_index(bits), bucket_index(u64::MAX, bits));
            assert_eq!(bucket_upper(max_bucket_index(bits), bits), u64::MAX);
        }
    }

    #[test]
    fn bucket_counts_and_memory_of_presets() {
        let precise = Histogram::new(HistogramConfig::precise());
        let compact = Histogram::new(HistogramConfig::compact());
        assert_eq!(precise.bucket_count(), 1249);
        assert_eq!(compact.bucket_count(), 641);
        let shards = default_shard_count();
        let size = std::mem::size_of::<Histogram>();
        assert_eq!(precise.memory_bytes(), size + shards * (128 + 1249 * 8));
        assert_eq!(compact.memory_bytes(), size + shards * (128 + 641 * 8));
        println!("shards {shards}: precise {} B, compact {} B", precise.memory_bytes(), compact.memory_bytes());
    }

    #[test]
    fn config_is_normalized() {
        let h = Histogram::new(HistogramConfig { sub_bucket_bits: 200, max_value_ns: 0, shards: 3 });
        assert_eq!(h.config(), HistogramConfig { sub_bucket_bits: 6, max_value_ns: 64, shards: 3 });
        h.record_ns(1_000_000);
        let s = h.snapshot();
        assert_eq!(s.count(), 1);
        assert_eq!(s.max(), Duration::from_millis(1));
        let h = Histogram::new(config(0, 0));
        assert_eq!(h.config().sub_bucket_bits, 3);
        assert_eq!(h.config().shards, default_shard_count());
    }

    #[test]
    fn record_and_snapshot() {
        let h = Histogram::new(HistogramConfig::precise());
        assert!(h.snapshot().is_empty());
        assert_eq!(h.snapshot(), HistogramSnapshot::empty(5));
        h.record(Duration::from_micros(150));
        h.record(Duration::from_millis(3));
        h.record_ns(7);
        let s = h.snapshot();
        assert_eq!(s.count(), 3);
        assert_eq!(s.sum(), Duration::from_nanos(150_000 + 3_000_000 + 7));
        assert_eq!(s.max(), Duration::from_millis(3));
        assert_eq!(s.min(), Duration::from_nanos(7));
        assert_eq!(s.mean(), Some(Duration::from_nanos(3_150_007 / 3)));
        assert_eq!(s.sub_bucket_bits(), 5);
        assert!((s.relative_error() - 1.0 / 64.0).abs() < 1e-15);
        assert_eq!(s.buckets.iter().sum::<u64>(), 3);
        assert!(format!("{h:?}").contains("count: 3"));
    }

    #[test]
    fn values_above_max_go_to_top_bucket_but_keep_max() {
        let h = Histogram::new(HistogramConfig::compact());
        h.record(Duration::MAX);
        h.record_ns(u64::MAX);
        h.record(Duration::from_secs(86_400));
        h.record_ns(1_000);
        let s = h.snapshot();
        assert_eq!(s.count(), 4);
        assert_eq!(s.max(), Duration::from_nanos(u64::MAX));
        assert_eq!(s.last_index(), Some(h.top_bucket));
        assert_eq!(s.bucket_count(h.top_bucket), 3);
        assert_eq!(s.quantile(1.0), Some(Duration::from_nanos(u64::MAX)));
        assert_eq!(
            s.sum(),
            Duration::from_nanos(3 * h.top_upper_ns + 1_000),
            "overflow values count as the top edge in the sum"
        );
        // The top bucket is never counted below the max.
        assert_eq!(s.count_at_or_below(Duration::from_secs(1 << 20)), 1);
        assert_eq!(s.count_at_or_below(Duration::MAX), 4);
    }

    #[test]
    fn quantiles_of_known_data() {
        let h = Histogram::new(HistogramConfig::precise());
        for us in 1..=1_000u64 {
            h.record(Duration::from_micros(us));
        }
        let s = h.snapshot();
        let eps = s.relative_error();
        for (q, exact_us) in [(0.0, 1.0), (0.5, 500.0), (0.9, 900.0), (0.99, 990.0), (0.999, 999.0)] {
            let got = s.quantile(q).expect("non-empty").as_secs_f64() * 1e6;
            assert!((got - exact_us).abs() <= eps * exact_us, "q {q}: got {got} µs, exact {exact_us} µs");
        }
        assert_eq!(s.quantile(1.0), Some(Duration::from_millis(1)));
        assert_eq!(s.quantile(0.0), Some(Duration::from_micros(1)));
        assert_eq!(s.quantile(-3.0), s.quantile(0.0));
        assert_eq!(s.quantile(7.0), s.quantile(1.0));
        assert_eq!(s.quantile(f64::NAN), None);
        assert_eq!(HistogramSnapshot::default().quantile(0.5), None);

        let small = hist_of(3, &[0, 1, 2, 3, 4, 5, 6, 7]).snapshot();
        for (rank, q) in [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0].into_iter().enumerate() {
            assert_eq!(small.quantile(q), Some(Duration::from_nanos(rank as u64)));
        }
    }

    #[test]
    fn nearest_rank_definition() {
        assert_eq!(nearest_rank(0.0, 10), 1);
        assert_eq!(nearest_rank(0.1, 10), 1);
        assert_eq!(nearest_rank(0.11, 10), 2);
        assert_eq!(nearest_rank(0.5, 10), 5);
        assert_eq!(nearest_rank(0.95, 20), 19);
        assert_eq!(nearest_rank(1.0, 10), 10);
        assert_eq!(nearest_rank(0.999, 1), 1);
    }

    #[test]
    fn summary_in_ms() {
        assert_eq!(HistogramSnapshot::default().summary(), LatencySummary::default());
        let s = hist_of(5, &[1_000_000, 2_000_000, 3_000_000, 4_000_000]).snapshot();
        let sum = s.summary();
        assert_eq!(sum.count, 4);
        assert!((sum.mean_ms - 2.5).abs() < 1e-9);
        assert!((sum.p50_ms - 2.0).abs() <= 2.0 / 64.0);
        assert!((sum.p95_ms - 4.0).abs() <= 4.0 / 64.0);
        assert!((sum.max_ms - 4.0).abs() < 1e-12);
        assert!((sum.p99_ms - 4.0).abs() < 1e-12);
    }

    #[test]
    fn merge_snapshots() {
        let a = hist_of(5, &[10, 1_000, 50_000]).snapshot();
        let b = hist_of(5, &[5, 2_000_000]).snapshot();
        let mut m = a.clone();
        m.merge(&b);
        assert_eq!(m, hist_of(5, &[10, 1_000, 50_000, 5, 2_000_000]).snapshot());
        assert_eq!(m.count(), 5);
        assert_eq!(m.min(), Duration::from_nanos(5));
        assert_eq!(m.max(), Duration::from_millis(2));

        let mut e = HistogramSnapshot::default();
        e.merge(&a);
        assert_eq!(e, a);
        let mut a2 = a.clone();
        a2.merge(&HistogramSnapshot::default());
        assert_eq!(a2, a);
    }

    #[test]
    fn merge_different_resolutions_uses_coarser() {
        let values: Vec<u64> = (1..=500).map(|i| i * 12_345).collect();
        let fine = hist_of(6, &values[..250]).snapshot();
        let coarse = hist_of(3, &values[250..]).snapshot();
        let mut m = fine.clone();
        m.merge(&coarse);
        assert_eq!(m, hist_of(3, &values).snapshot());
        let mut m2 = coarse.clone();
        m2.merge(&fine);
        assert_eq!(m2, m);
        assert_eq!(m.relative_error(), 1.0 / 16.0);
    }

    #[test]
    fn saturating_sub_windows() {
        let h = Histogram::new(HistogramConfig::precise());
        for us in [100u64, 200, 300] {
            h.record(Duration::from_micros(us));
        }
        let earlier = h.snapshot();
        for ms in [5u64, 7] {
            h.record(Duration::from_millis(ms));
        }
        h.record(Duration::from_micros(150));
        let now = h.snapshot();
        let w = now.saturating_sub(&earlier);
        assert_eq!(w.count(), 3);
        assert_eq!(w.sum(), Duration::from_micros(12_150));
        // The top bucket of the window is `now`'s top bucket: exact max.
        assert_eq!(w.max(), Duration::from_millis(7));
        // The lowest window bucket (150 µs) is not now's lowest: lower edge.
        let bits = 5;
        let lo = bucket_lower(bucket_index(150_000, bits), bits);
        assert_eq!(w.min(), Duration::from_nanos(lo));
        assert!(lo <= 150_000 && (150_000 - lo) << bits <= lo);

        assert!(now.saturating_sub(&now).is_empty());
        assert_eq!(now.saturating_sub(&HistogramSnapshot::default()), now);
        assert!(earlier.saturating_sub(&now).is_empty());
        assert!(HistogramSnapshot::default().saturating_sub(&now).is_empty());

        // Window whose highest bucket is not `now`'s highest: upper edge.
        let h = hist_of(4, &[1_000_000_000]);
        let before = h.snapshot();
        h.record_ns(1_000);
        let w = h.snapshot().saturating_sub(&before);
        assert_eq!(w.count(), 1);
        assert_eq!(w.max_ns, bucket_upper(bucket_index(1_000, 4), 4));
        // ... and the min is `now`'s min, which is larger than that lower edge.
        assert_eq!(w.min_ns, 1_000);
    }

    #[test]
    fn count_at_or_below_bounds() {
        let values = [500_000u64, 900_000, 1_000_000, 1_000_001, 3_000_000, 5_000_000, 20_000_000];
        let s = hist_of(5, &values).snapshot();
        assert_eq!(s.count_at_or_below(Duration::ZERO), 0);
        assert_eq!(s.count_at_or_below(Duration::from_micros(499)), 0);
        assert_eq!(s.count_at_or_below(Duration::from_millis(20)), 7);
        assert_eq!(s.count_at_or_below(Duration::MAX), 7);
        let eps = 1.0 / 32.0;
        for bound_ns in [600_000u64, 999_999, 1_000_000, 1_000_001, 2_000_000, 5_000_000, 10_000_000] {
            let got = s.count_at_or_below(Duration::from_nanos(bound_ns));
            let exact = values.iter().filter(|&&v| v <= bound_ns).count() as u64;
            let lower = (bound_ns as f64 * (1.0 - eps)) as u64;
            let loose = values.iter().filter(|&&v| v <= lower).count() as u64;
            assert!(loose <= got && got <= exact, "bound {bound_ns}: {got}");
        }
        // A bucket's upper edge is exact.
        let i = bucket_index(1_000_000, 5);
        let edge = bucket_upper(i, 5);
        let exact = values.iter().filter(|&&v| v <= edge).count() as u64;
        assert_eq!(s.count_at_or_below(Duration::from_nanos(edge)), exact);
        assert_eq!(HistogramSnapshot::default().count_at_or_below(Duration::MAX), 0);
    }

    #[test]
    fn concurrent_recording_sums_exactly() {
        let h = Arc::new(Histogram::new(HistogramConfig::compact()));
        let per_thread = 25_000u64;
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let h = Arc::clone(&h);
                std::thread::spawn(move || {
                    for i in 0..per_thread {
                        h.record_ns(1 + t * 1_000_000 + i * 37);
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("thread panicked");
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 4 * per_thread);
        let expected: u128 =
            (0..4u128).flat_map(|t| (0..u128::from(per_thread)).map(move |i| 1 + t * 1_000_000 + i * 37)).sum();
        assert_eq!(s.sum_ns, expected);
        assert_eq!(s.min(), Duration::from_nanos(1));
        assert_eq!(s.max_ns, 1 + 3 * 1_000_000 + (per_thread - 1) * 37);
    }

    #[test]
    fn reset_clears_everything() {
        let h = Histogram::new(HistogramConfig::precise());
        h.record(Duration::from_millis(1));
        h.record(Duration::from_secs(1));
        h.reset();
        let s = h.snapshot();
        assert!(s.is_empty());
        assert_eq!(s, HistogramSnapshot::empty(5));
        h.record(Duration::from_micros(2));
        let s = h.snapshot();
        assert_eq!(s.count(), 1);
        assert_eq!(s.sum(), Duration::from_micros(2));
        // After a reset, extremes are estimated within their bucket.
        let within = |d: Duration| (d.as_nanos() as f64 - 2000.0).abs() <= 2000.0 * s.relative_error() * 2.0;
        assert!(within(s.min()) && within(s.max()), "{:?} {:?}", s.min(), s.max());
    }

    #[test]
    fn histogram_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Histogram>();
        assert_send_sync::<HistogramSnapshot>();
    }

    #[test]
    fn latency_summary_serializes() {
        fn assert_serde<T: Serialize + for<'de> Deserialize<'de>>() {}
        assert_serde::<LatencySummary>();
    }

    const HOUR_NS: u64 = 3_600_000_000_000;

    /// Durations of mixed magnitude (log-uniform 1 µs .. 1 h), small exact
    /// values and edge values.
    fn duration_ns_strategy() -> impl Strategy<Value = u64> {
        prop_oneof![
            8 => (10u32..=41, any::<u64>())
                .prop_map(|(e, r)| ((1u64 << e) | (r & ((1u64 << e) - 1))).clamp(1_000, HOUR_NS)),
            1 => 0u64..200,
            1 => prop_oneof![
                Just(0u64),
                Just(1u64),
                Just(DEFAULT_MAX_VALUE_NS),
                Just(u64::MAX),
            ],
        ]
    }

    proptest! {
        #[test]
        fn quantiles_within_relative_error(
            bits in 3u8..=6,
            mut values in prop::collection::vec(duration_ns_strategy(), 1..400),
        ) {
            let h = hist_of(bits, &values);
            let s = h.snapshot();
            values.sort_unstable();
            let n = values.len() as u64;
            prop_assert_eq!(s.count(), n);
            prop_assert_eq!(s.min_ns, values[0]);
            prop_assert_eq!(s.max_ns, values[values.len() - 1]);
            let eps_shift = u32::from(bits) + 1;
            for q in [0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
                let rank = nearest_rank(q, n);
                let exact = values[(rank - 1) as usize];
                let got = s.quantile_ns(q).expect("non-empty");
                if exact <= h.top_upper_ns {
                    // |got - exact| <= exact * 2^-(bits+1)
                    let err = u128::from(got.abs_diff(exact));
                    prop_assert!(
                        err << eps_shift <= u128::from(exact),
                        "bits {} q {} exact {} got {}", bits, q, exact, got
                    );
                    if exact < (1u64 << bits) {
                        prop_assert_eq!(got, exact);
                    }
                } else {
                    prop_assert!(got >= bucket_lower(h.top_bucket, h.bits) && got <= s.max_ns);
                }
                if rank == n {
                    prop_assert_eq!(got, s.max_ns);
                }
            }
        }

        #[test]
        fn merge_equals_recording_the_union(
            bits in 3u8..=6,
            a in prop::collection::vec(duration_ns_strategy(), 0..200),
            b in prop::collection::vec(duration_ns_strategy(), 0..200),
        ) {
            let mut merged = hist_of(bits, &a).snapshot();
            merged.merge(&hist_of(bits, &b).snapshot());
            let both: Vec<u64> = a.iter().chain(b.iter()).copied().collect();
            prop_assert_eq!(&merged, &hist_of(bits, &both).snapshot());
        }

        #[test]
        fn window_counts_match_recent_records(
            a in prop::collection::vec(duration_ns_strategy(), 0..100),
            b in prop::collection::vec(duration_ns_strategy(), 1..100),
        ) {
            let h = hist_of(4, &a);
            let earlier = h.snapshot();
            for &v in &b {
                h.record_ns(v);
            }
            let w = h.snapshot().saturating_sub(&earlier);
            let only_b = hist_of(4, &b).snapshot();
            prop_assert_eq!(&w.buckets, &only_b.buckets);
            prop_assert_eq!(w.count(), only_b.count());
            prop_assert_eq!(w.sum_ns, only_b.sum_ns);
            prop_assert!(w.min_ns <= only_b.min_ns && w.max_ns >= only_b.max_ns);
        }

        #[test]
        fn count_at_or_below_is_close(
            values in prop::collection::vec(duration_ns_strategy(), 1..200),
            bound in duration_ns_strategy(),
        ) {
            let s = hist_of(5, &values).snapshot();
            let got = s.count_at_or_below(Duration::from_nanos(bound));
            let exact = values.iter().filter(|&&v| v <= bound).count() as u64;
            let lower = bound - (bound >> 5);
            // Values in the top bucket are only counted once `bound` reaches
            // the max (the bucket may hold values above its upper edge).
            let top_lower = bucket_lower(bucket_index(DEFAULT_MAX_VALUE_NS, 5), 5);
            let loose = values.iter().filter(|&&v| v < lower && v < top_lower).count() as u64;
            prop_assert!(loose <= got && got <= exact, "bound {} got {} exact {}", bound, got, exact);
        }
    }
}
