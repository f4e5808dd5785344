//! Sharding primitives for hot counters: cache-line padding, and the calling
//! thread's [`ShardSlot`].
//!
//! dbwarden increments a handful of counters on every database query the
//! application makes. One `AtomicU64` shared by every thread turns each
//! increment into a cache-line transfer between cores; even uncontended, a
//! locked read-modify-write costs several nanoseconds, more than the rest of
//! the bookkeeping. So every hot structure is split into shards, each on its
//! own cache lines, and each live thread *owns* one shard: thread *g* (a
//! dense id claimed on first use and given back when the thread exits) is
//! the only writer of shard *g*, and writes it with a plain load and store.
//! Threads beyond the shard count share the last shard and write it with
//! atomic read-modify-writes. Readers sum the shards with relaxed loads.
//!
//! Because owners write with plain stores, nobody else may store into an
//! owned shard: structures reset themselves by remembering a baseline to
//! subtract, never by zeroing shards from another thread.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

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
const MIN_DEFAULT_SHARDS: usize = 4;
/// Largest shard count [`default_shard_count`] returns.
const MAX_DEFAULT_SHARDS: usize = 64;
/// Largest shard count accepted by [`normalize_shard_count`].
const MAX_SHARDS: usize = 1024;

/// Number of shards for a hot structure: twice the available parallelism
/// plus the shared overflow shard, clamped to `4..=64`.
///
/// Twice the core count leaves room for a runtime's worker threads and a
/// few others to each own a shard. The value is computed once per process
/// (`available_parallelism` can read files on Linux); if the parallelism
/// cannot be determined, 4 cores are assumed.
pub fn default_shard_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(4);
        cores.saturating_mul(2).saturating_add(1).clamp(MIN_DEFAULT_SHARDS, MAX_DEFAULT_SHARDS)
    })
}

/// Turns a requested shard count into a usable one: `0` means
/// [`default_shard_count`]; anything else is capped at 1024.
pub fn normalize_shard_count(requested: usize) -> usize {
    if requested == 0 { default_shard_count() } else { requested.min(MAX_SHARDS) }
}

/// Ids given back by exited threads, smallest first, so ids stay dense.
static FREE_IDS: Mutex<BinaryHeap<Reverse<usize>>> = Mutex::new(BinaryHeap::new());
/// The next id never handed out.
static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// `THREAD_ID` before the thread's first claim.
const UNCLAIMED: usize = usize::MAX - 1;
/// `THREAD_ID` once the thread gave its id back (it is exiting).
const RELEASED: usize = usize::MAX;

thread_local! {
    /// The calling thread's id. A `const` cell without a destructor, so
    /// reading it is a single thread-local load on the hot path.
    static THREAD_ID: Cell<usize> = const { Cell::new(UNCLAIMED) };
    /// Gives the id back when the thread exits.
    static ID_GUARD: IdGuard = const { IdGuard(Cell::new(RELEASED)) };
}

struct IdGuard(Cell<usize>);

impl Drop for IdGuard {
    fn drop(&mut self) {
        let id = self.0.get();
        if id != RELEASED {
            // From here on the thread writes only the shared shard, so the
            // id can go to a new thread.
            THREAD_ID.with(|cell| cell.set(RELEASED));
            FREE_IDS.lock().unwrap_or_else(|e| e.into_inner()).push(Reverse(id));
        }
    }
}

#[cold]
fn claim_id() -> usize {
    let reused = FREE_IDS.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let id = reused.map_or_else(|| NEXT_ID.fetch_add(1, Ordering::Relaxed), |Reverse(id)| id);
    if ID_GUARD.try_with(|guard| guard.0.set(id)).is_ok() {
        THREAD_ID.with(|cell| cell.set(id));
        id
    } else {
        // The thread is already exiting: it cannot give the id back later,
        // so it does not take one.
        FREE_IDS.lock().unwrap_or_else(|e| e.into_inner()).push(Reverse(id));
        THREAD_ID.with(|cell| cell.set(RELEASED));
        RELEASED
    }
}

/// Which shard the calling thread writes, and whether it owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSlot {
    /// The shard to write.
    pub index: usize,
    /// Whether the calling thread is that shard's only writer.
    pub exclusive: bool,
}

/// The calling thread's slot in a structure of `shard_count` shards: its own
/// shard when its id is below `shard_count - 1`, else the shared last shard.
/// One thread-local read after the first call.
#[inline]
pub fn shard_slot(shard_count: usize) -> ShardSlot {
    let mut id = THREAD_ID.with(Cell::get);
    if id == UNCLAIMED {
        id = claim_id();
    }
    if id < shard_count.saturating_sub(1) {
        ShardSlot { index: id, exclusive: true }
    } else {
        ShardSlot { index: shard_count.saturating_sub(1), exclusive: false }
    }
}

/// Whether `slot` may be used on a structure of `shard_count` shards: an
/// exclusive slot must name an owned shard, a shared one the last shard.
#[inline]
pub fn fits(slot: ShardSlot, shard_count: usize) -> bool {
    if slot.exclusive { slot.index + 1 < shard_count } else { slot.index + 1 == shard_count }
}

/// Adds `n` to `cell` as the holder of `slot`: a plain load and store when
/// the slot is exclusive, an atomic add otherwise.
#[inline]
pub fn add(cell: &AtomicU64, n: u64, slot: ShardSlot) {
    if slot.exclusive {
        cell.store(cell.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    } else {
        cell.fetch_add(n, Ordering::Relaxed);
    }
}

/// Raises `cell` to `v` if `v` is larger, as the holder of `slot`.
#[inline]
pub fn raise(cell: &AtomicU64, v: u64, slot: ShardSlot) {
    if v > cell.load(Ordering::Relaxed) {
        if slot.exclusive {
            cell.store(v, Ordering::Relaxed);
        } else {
            cell.fetch_max(v, Ordering::Relaxed);
        }
    }
}

/// Lowers `cell` to `v` if `v` is smaller, as the holder of `slot`.
#[inline]
pub fn lower(cell: &AtomicU64, v: u64, slot: ShardSlot) {
    if v < cell.load(Ordering::Relaxed) {
        if slot.exclusive {
            cell.store(v, Ordering::Relaxed);
        } else {
            cell.fetch_min(v, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    #[test]
    fn cache_padded_is_128_byte_aligned() {
        assert_eq!(std::mem::align_of::<CachePadded<u8>>(), 128);
        let values = [CachePadded::new(1u64), CachePadded::new(2u64)];
        let a = &values[0] as *const _ as usize;
        let b = &values[1] as *const _ as usize;
        assert_eq!(b - a, 128);
    }

    #[test]
    fn default_shard_count_is_in_range() {
        let n = default_shard_count();
        assert!((MIN_DEFAULT_SHARDS..=MAX_DEFAULT_SHARDS).contains(&n));
        assert_eq!(normalize_shard_count(0), n);
        assert_eq!(normalize_shard_count(5000), MAX_SHARDS);
    }

    #[test]
    fn live_threads_own_distinct_shards() {
        let threads = 3;
        let barrier = Arc::new(Barrier::new(threads));
        let slots: Vec<ShardSlot> = (0..threads)
            .map(|_| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let slot = shard_slot(1024);
                    barrier.wait(); // all alive at once
                    slot
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        for (i, a) in slots.iter().enumerate() {
            assert!(a.exclusive);
            for b in &slots[i + 1..] {
                assert_ne!(a.index, b.index, "two live threads own one shard");
            }
        }
    }

    #[test]
    fn a_structure_too_small_for_the_thread_uses_the_shared_shard() {
        assert_eq!(shard_slot(1), ShardSlot { index: 0, exclusive: false });
        assert_eq!(shard_slot(0), ShardSlot { index: 0, exclusive: false });
    }

    #[test]
    fn exited_threads_give_their_id_back() {
        // 100 threads one after the other: without reuse each would take a
        // fresh id (a spread of at least 99); with reuse they cycle through
        // the few ids left free by whatever other tests run at the same time.
        let ids: Vec<usize> =
            (0..100).map(|_| std::thread::spawn(|| shard_slot(1 << 20).index).join().unwrap()).collect();
        let (min, max) = (ids.iter().min().unwrap(), ids.iter().max().unwrap());
        assert!(max - min < 50, "ids are not reused: {ids:?}");
    }

    #[test]
    fn shared_and_exclusive_adds_sum_exactly() {
        let cells: Arc<Vec<AtomicU64>> = Arc::new((0..4).map(|_| AtomicU64::new(0)).collect());
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let cells = cells.clone();
                std::thread::spawn(move || {
                    let slot = shard_slot(cells.len());
                    for _ in 0..10_000 {
                        add(&cells[slot.index], 1, slot);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let total: u64 = cells.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        assert_eq!(total, 80_000);
    }

    #[test]
    fn raise_and_lower_keep_extremes() {
        let max = AtomicU64::new(0);
        let min = AtomicU64::new(u64::MAX);
        for slot in [ShardSlot { index: 0, exclusive: true }, ShardSlot { index: 0, exclusive: false }] {
            for v in [5, 3, 9, 1] {
                raise(&max, v, slot);
                lower(&min, v, slot);
            }
        }
        assert_eq!((max.load(Ordering::Relaxed), min.load(Ordering::Relaxed)), (9, 1));
    }
}
