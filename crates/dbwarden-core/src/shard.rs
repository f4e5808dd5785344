//! Sharding primitives for hot counters: cache-line padding, a per-thread
//! shard index and a sharded `u64` counter.
//!
//! dbwarden increments a handful of counters on every database query the
//! application makes. A single `AtomicU64` shared by every thread turns each
//! increment into a cache-line transfer between cores, which is slower than the
//! query bookkeeping itself once two or more threads record at the same time.
//! Instead each counter is split into a small power-of-two number of shards,
//! each on its own cache line; a thread always writes to "its" shard (chosen
//! once per thread, round-robin) with a relaxed atomic add, and readers sum
//! the shards. Writes stay uncontended in the common case and never take a
//! lock; reads are rare (scrapes, snapshots) and pay the summing cost.

use std::cell::Cell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Pads and aligns a value to 128 bytes so two shards never share a cache
/// line.
///
/// 128 rather than 64 bytes: on x86 the adjacent-line prefetcher pulls cache
/// lines in pairs, so two values 64 bytes apart still interfere.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[repr(align(128))]
pub struct CachePadded<T>(pub T);

impl<T> CachePadded<T> {
    /// Wraps `value` in its own 128-byte-aligned block.
    pub const fn new(value: T) -> Self {
        CachePadded(value)
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for CachePadded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for CachePadded<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// Smallest shard count [`default_shard_count`] returns.
const MIN_DEFAULT_SHARDS: usize = 2;
/// Largest shard count [`default_shard_count`] returns.
const MAX_DEFAULT_SHARDS: usize = 32;
/// Largest shard count accepted by [`normalize_shard_count`].
const MAX_SHARDS: usize = 1024;

/// Number of shards to use for a hot counter: twice the available
/// parallelism, rounded up to a power of two and clamped to `2..=32`.
///
/// Twice the core count keeps the chance that two running threads share a
/// shard low even though shards are assigned round-robin rather than per
/// core. The value is computed once per process and cached (the
/// underlying `available_parallelism` call can read files on Linux); if the
/// parallelism cannot be determined, 4 cores are assumed.
pub fn default_shard_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(4);
        cores
            .saturating_mul(2)
            .checked_next_power_of_two()
            .unwrap_or(MAX_DEFAULT_SHARDS)
            .clamp(MIN_DEFAULT_SHARDS, MAX_DEFAULT_SHARDS)
    })
}

/// Turns a requested shard count into a usable one: `0` means
/// [`default_shard_count`], anything else is rounded up to a power of two and
/// capped at 1024.
pub fn normalize_shard_count(requested: usize) -> usize {
    if requested == 0 {
        return default_shard_count();
    }
    requested.min(MAX_SHARDS).checked_next_power_of_two().unwrap_or(MAX_SHARDS)
}

/// Next per-thread id to hand out.
static NEXT_THREAD_ID: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's id, `usize::MAX` until first use.
    static THREAD_ID: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The calling thread's id for sharding: handed out round-robin on first use.
#[inline]
fn thread_id() -> usize {
    THREAD_ID
        .try_with(|id| {
            let current = id.get();
            if current != usize::MAX {
                current
            } else {
                let fresh = NEXT_THREAD_ID.fetch_add(1, Ordering::Relaxed) & (usize::MAX >> 1);
                id.set(fresh);
                fresh
            }
        })
        // Only during thread-local destruction at thread exit; any shard is
        // correct, just possibly contended.
        .unwrap_or(0)
}

/// The calling thread's shard index for a power-of-two `shard_count`.
///
/// Each thread gets an id the first time it asks (a global counter handed out
/// round-robin, so the first `shard_count` threads to record land on distinct
/// shards); the index is that id masked by `shard_count - 1`. After the first
/// call this costs one thread-local read. `shard_count` must be a power of two
/// (see [`normalize_shard_count`]); otherwise the result is still
/// `< shard_count` when `shard_count > 0` but shards are used unevenly, and it
/// is `0` when `shard_count == 0`.
#[inline]
pub fn shard_index(shard_count: usize) -> usize {
    let id = thread_id();
    if shard_count.is_power_of_two() {
        id & (shard_count - 1)
    } else if shard_count == 0 {
        0
    } else {
        id % shard_count
    }
}

/// A sharded `u64` counter: [`add`](Self::add) writes the calling thread's
/// shard with a relaxed atomic add, [`sum`](Self::sum) adds up all shards.
///
/// Each shard wraps on overflow (after 2^64 increments, which does not
/// happen in practice); `sum` saturates at `u64::MAX`. A `sum` taken while
/// other threads add is not a point-in-time value, but every completed `add`
/// is visible to a later `sum` on the same thread and eventually to all
/// threads.
pub struct ShardedCounter {
    shards: Box<[CachePadded<AtomicU64>]>,
    mask: usize,
}

impl ShardedCounter {
    /// A zeroed counter with `shards` shards (see [`normalize_shard_count`]:
    /// `0` means [`default_shard_count`], others are rounded up to a power of
    /// two).
    pub fn new(shards: usize) -> Self {
        let count = normalize_shard_count(shards);
        let shards = (0..count).map(|_| CachePadded::new(AtomicU64::new(0))).collect::<Vec<_>>().into_boxed_slice();
        ShardedCounter { shards, mask: count - 1 }
    }

    /// Adds `n` on the calling thread's shard.
    #[inline]
    pub fn add(&self, n: u64) {
        let index = shard_index(self.mask + 1) & self.mask;
        if let Some(shard) = self.shards.get(index) {
            shard.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Adds one on the calling thread's shard.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// The sum over all shards (saturating at `u64::MAX`).
    pub fn sum(&self) -> u64 {
        self.shards.iter().fold(0u64, |acc, s| acc.saturating_add(s.load(Ordering::Relaxed)))
    }

    /// Sets every shard to zero. Adds that race with the reset may be kept
    /// or lost.
    pub fn reset(&self) {
        for shard in self.shards.iter() {
            shard.store(0, Ordering::Relaxed);
        }
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }
}

impl Default for ShardedCounter {
    /// A zeroed counter with [`default_shard_count`] shards.
    fn default() -> Self {
        ShardedCounter::new(0)
    }
}

impl fmt::Debug for ShardedCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardedCounter").field("sum", &self.sum()).field("shards", &self.shards.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn cache_padded_is_128_aligned() {
        assert_eq!(std::mem::align_of::<CachePadded<u8>>(), 128);
        assert_eq!(std::mem::size_of::<CachePadded<AtomicU64>>(), 128);
        let mut p = CachePadded::new(5u32);
        *p += 1;
        assert_eq!(*p, 6);
        assert_eq!(p.into_inner(), 6);
    }

    #[test]
    fn default_shard_count_is_power_of_two_in_range() {
        let n = default_shard_count();
        assert!(n.is_power_of_two());
        assert!((MIN_DEFAULT_SHARDS..=MAX_DEFAULT_SHARDS).contains(&n));
        assert_eq!(n, default_shard_count());
    }

    #[test]
    fn normalize_rounds_up() {
        assert_eq!(normalize_shard_count(0), default_shard_count());
        assert_eq!(normalize_shard_count(1), 1);
        assert_eq!(normalize_shard_count(3), 4);
        assert_eq!(normalize_shard_count(8), 8);
        assert_eq!(normalize_shard_count(usize::MAX), MAX_SHARDS);
    }

    #[test]
    fn shard_index_is_stable_and_in_range() {
        for count in [1usize, 2, 4, 8, 32] {
            let a = shard_index(count);
            assert!(a < count);
            assert_eq!(a, shard_index(count));
        }
        assert_eq!(shard_index(0), 0);
        assert!(shard_index(3) < 3);
    }

    #[test]
    fn threads_spread_round_robin() {
        let ids: Vec<usize> =
            (0..8).map(|_| std::thread::spawn(thread_id)).map(|h| h.join().expect("thread panicked")).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "each thread gets its own id");
    }

    #[test]
    fn counter_sums_across_threads() {
        let counter = Arc::new(ShardedCounter::new(4));
        assert_eq!(counter.shard_count(), 4);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let c = Arc::clone(&counter);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        c.inc();
                    }
                    c.add(5);
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread panicked");
        }
        assert_eq!(counter.sum(), 4 * 10_005);
        counter.reset();
        assert_eq!(counter.sum(), 0);
        assert!(format!("{counter:?}").contains("sum: 0"));
    }

    #[test]
    fn default_counter_uses_default_shards() {
        let c = ShardedCounter::default();
        assert_eq!(c.shard_count(), default_shard_count());
        c.add(3);
        assert_eq!(c.sum(), 3);
    }
}
