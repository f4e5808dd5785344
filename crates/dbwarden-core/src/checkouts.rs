//! The live list of checked-out connections and open transactions, and the
//! scan that turns a long hold into a "leak suspected" or "transaction
//! timeout" event.
//!
//! Modeled on HikariCP's leak detection, with what it lacks: the holder is
//! named by request id and route as well as by stack, the list is queryable
//! while the connection is still out, and a leak that comes back is reported
//! as returned with how long it was held.
//!
//! A checkout made while a request is current (see [`crate::context`]) is
//! held by that request unless its [`Holder`] names another: the entry keeps
//! a reference to the request's context and reads its id and route only when
//! someone looks, so naming the request costs a checkout no copy of either.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::context::{RequestContext, current_request};
use crate::shard::{self, ShardSlot, default_shard_count, shard_slot};

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

/// One checkout, kept inline in its registry shard and reused in place:
/// tracking a checkout allocates nothing once the shard's slab has grown to
/// the number of connections out at once. A free slot has the id
/// [`VACANT`].
#[derive(Debug)]
struct Entry {
    id: CheckoutId,
    kind: SessionKind,
    holder: Holder,
    /// The request being served when the checkout was made, when `holder`
    /// names none; its id and route complete the holder when it is shown.
    request: Option<Arc<RequestContext>>,
    checked_out_at: Timestamp,
    last_active: Timestamp,
    leak_reported: bool,
    timeout_reported: bool,
}

/// A live checkout, as returned by [`crate::Monitor::track_checkout`] or
/// [`crate::Monitor::open_checkout`]; hand it back to
/// [`crate::Monitor::release_checkout`] or [`crate::Monitor::close_checkout`]
/// when the connection returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackedCheckout {
    /// `None` when the registry was full.
    id: Option<CheckoutId>,
    /// Where the entry sits in the registry: its shard and slot.
    shard: u32,
    slot: u32,
}

impl TrackedCheckout {
    /// The checkout's id, `None` when the registry was full and the checkout
    /// is counted but not individually tracked.
    pub fn id(&self) -> Option<CheckoutId> {
        self.id
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

/// The id of a free slot (ids start at 1).
const VACANT: CheckoutId = CheckoutId(0);

impl Holder {
    /// Whether any part of the holder is known (then it owns heap text).
    fn is_known(&self) -> bool {
        self.request_id.is_some() || self.route.is_some() || self.span.is_some() || self.backtrace.is_some()
    }
}

impl Entry {
    fn is_live(&self) -> bool {
        self.id != VACANT
    }

    /// The holder, completed with the request the checkout was made for.
    fn holder(&self) -> Holder {
        let mut holder = self.holder.clone();
        if let Some(request) = &self.request {
            holder.request_id = Some(request.request_id().to_owned());
            holder.route = Some(request.route().to_owned());
        }
        holder
    }

    fn info(&self, now: Timestamp) -> CheckoutInfo {
        CheckoutInfo {
            id: self.id,
            kind: self.kind,
            holder: self.holder(),
            checked_out_at: self.checked_out_at,
            age_seconds: now.since(self.checked_out_at).as_secs_f64(),
            idle_seconds: now.since(self.last_active).as_secs_f64(),
            leak_suspected: self.leak_reported,
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

/// One shard of the registry: a slab of entries with a free list, so a
/// checkout and its check-in are an index write each, with no hashing and
/// no allocation.
#[derive(Debug, Default)]
struct Slab {
    slots: Vec<Entry>,
    free: Vec<u32>,
    /// Ids this shard has handed out; shard `s` of `n` hands out
    /// `s + 1, s + 1 + n, s + 1 + 2n, …`, so ids are unique per registry
    /// without a shared counter.
    issued: u64,
}

/// The registry of live checkouts, sharded by the recording thread so that
/// threads checking connections out at once take different locks.
#[derive(Debug)]
pub(crate) struct Registry {
    shards: Box<[Mutex<Slab>]>,
    capacity: usize,
    len: AtomicUsize,
    untracked: AtomicU64,
}

impl Registry {
    pub(crate) fn new(capacity: usize) -> Self {
        let shards = (0..default_shard_count()).map(|_| Mutex::new(Slab::default())).collect();
        Registry { shards, capacity, len: AtomicUsize::new(0), untracked: AtomicU64::new(0) }
    }

    #[inline]
    fn shard(&self, index: usize) -> std::sync::MutexGuard<'_, Slab> {
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn track(&self, kind: SessionKind, holder: Holder, now: Timestamp) -> TrackedCheckout {
        self.track_at(shard_slot(self.shards.len()), kind, holder, now)
    }

    /// [`Registry::track`] as the holder of `at` (a slot for this registry's
    /// shard count; any other falls back to a fresh lookup).
    pub(crate) fn track_at(&self, at: ShardSlot, kind: SessionKind, holder: Holder, now: Timestamp) -> TrackedCheckout {
        if self.len.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.len.fetch_sub(1, Ordering::Relaxed);
            self.untracked.fetch_add(1, Ordering::Relaxed);
            return TrackedCheckout { id: None, shard: 0, slot: 0 };
        }
        let request = if holder.request_id.is_none() && holder.route.is_none() { current_request() } else { None };
        let shards = self.shards.len();
        let shard = if shard::fits(at, shards) { at.index } else { shard_slot(shards).index };
        let mut slab = self.shard(shard);
        let id = CheckoutId(slab.issued * shards as u64 + shard as u64 + 1);
        slab.issued += 1;
        let reused = slab.free.pop().and_then(|free| Some((free, slab.slots.get_mut(free as usize)?)));
        let slot = match reused {
            Some((free, entry)) => {
                // Field by field: the slot's memory is written in place.
                entry.id = id;
                entry.kind = kind;
                entry.holder = holder;
                entry.request = request;
                entry.checked_out_at = now;
                entry.last_active = now;
                entry.leak_reported = false;
                entry.timeout_reported = false;
                free
            }
            None => {
                slab.slots.push(Entry {
                    id,
                    kind,
                    holder,
                    request,
                    checked_out_at: now,
                    last_active: now,
                    leak_reported: false,
                    timeout_reported: false,
                });
                u32::try_from(slab.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        TrackedCheckout { id: Some(id), shard: u32::try_from(shard).unwrap_or(0), slot }
    }

    /// Notes activity on the checkout (for its idle time).
    pub(crate) fn touch(&self, checkout: &TrackedCheckout, now: Timestamp) {
        let Some(id) = checkout.id else { return };
        let mut slab = self.shard(checkout.shard as usize);
        if let Some(entry) = slab.slots.get_mut(checkout.slot as usize)
            && entry.id == id
        {
            entry.last_active = now;
        }
    }

    /// Removes the checkout; returns its final state when it had been
    /// reported as a leak (so the caller can report it returned).
    /// `now` is read only in that case: a check-in that was never reported
    /// costs no clock read. Boxed, so the common answer is one word.
    pub(crate) fn release(
        &self,
        checkout: &TrackedCheckout,
        now: impl FnOnce() -> Timestamp,
    ) -> Option<Box<CheckoutInfo>> {
        let id = checkout.id?;
        let (holder, request, returned) = {
            let mut slab = self.shard(checkout.shard as usize);
            // Only the entry this checkout put there is taken out.
            let entry = slab.slots.get_mut(checkout.slot as usize).filter(|e| e.id == id)?;
            let returned = if entry.leak_reported { Some(Box::new(entry.info(now()))) } else { None };
            entry.id = VACANT;
            let holder = entry.holder.is_known().then(|| std::mem::take(&mut entry.holder));
            let request = entry.request.take();
            slab.free.push(checkout.slot);
            self.len.fetch_sub(1, Ordering::Relaxed);
            (holder, request, returned)
        };
        // The holder's strings, and the request's context if this was its
        // last reference, are freed here, outside the shard's lock.
        drop((holder, request));
        returned
    }

    /// Flags checkouts held past `leak_after` and transactions open past
    /// `timeout_after`, each once.
    pub(crate) fn scan(&self, now: Timestamp, leak_after: Duration, timeout_after: Duration) -> ScanFindings {
        let mut findings = ScanFindings::default();
        for index in 0..self.shards.len() {
            let mut slab = self.shard(index);
            for entry in slab.slots.iter_mut().filter(|e| e.is_live()) {
                let age = now.since(entry.checked_out_at);
                if age >= leak_after {
                    if !entry.leak_reported {
                        entry.leak_reported = true;
                        findings.new_leaks.push(entry.info(now));
                    }
                    findings.suspected += 1;
                }
                if entry.kind == SessionKind::Transaction && age >= timeout_after && !entry.timeout_reported {
                    entry.timeout_reported = true;
                    findings.new_timeouts.push(entry.info(now));
                }
            }
        }
        findings
    }

    /// Every live checkout, oldest first.
    pub(crate) fn list(&self, now: Timestamp) -> Vec<CheckoutInfo> {
        let mut out = Vec::with_capacity(self.len.load(Ordering::Relaxed));
        for index in 0..self.shards.len() {
            out.extend(self.shard(index).slots.iter().filter(|e| e.is_live()).map(|e| e.info(now)));
        }
        out.sort_by_key(|c| (c.checked_out_at, c.id));
        out
    }

    pub(crate) fn suspected(&self) -> u64 {
        (0..self.shards.len())
            .map(|index| self.shard(index).slots.iter().filter(|e| e.is_live() && e.leak_reported).count() as u64)
            .sum()
    }

    pub(crate) fn untracked(&self) -> u64 {
        self.untracked.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_millis(1_000)
    }

    #[test]
    fn a_checkout_made_while_a_request_is_current_is_held_by_it_unless_its_holder_names_another() {
        use crate::context::RequestScope;

        let registry = Registry::new(8);
        let route = crate::RouteHandle::unbound("GET", "/items/{id}");
        let mut scope = RequestScope::new(RequestContext::for_route("req-9", &route));
        let (in_request, named) = {
            let _entered = scope.enter();
            let named = Holder { request_id: Some("job-3".to_owned()), ..Holder::default() };
            (
                registry.track(SessionKind::Connection, Holder::default(), now()),
                registry.track(SessionKind::Transaction, named, now()),
            )
        };
        let outside = registry.track(SessionKind::Connection, Holder::default(), now());
        let holder_of = |checkout: &TrackedCheckout| {
            let live = registry.list(now());
            let info = live.into_iter().find(|c| Some(c.id) == checkout.id()).expect("a listed checkout");
            (info.holder.request_id, info.holder.route)
        };
        assert_eq!(holder_of(&in_request), (Some("req-9".to_owned()), Some("/items/{id}".to_owned())));
        assert_eq!(holder_of(&named), (Some("job-3".to_owned()), None));
        assert_eq!(holder_of(&outside), (None, None));
        // The entry keeps the request's context while the checkout is out,
        // and lets go of it at check-in, so the scope can reuse it.
        assert_eq!(Arc::strong_count(scope.context()), 3);
        assert!(registry.release(&in_request, now).is_none());
        assert_eq!(Arc::strong_count(scope.context()), 2);
    }

    #[test]
    fn released_slots_are_reused_and_the_capacity_holds() {
        let registry = Registry::new(3);
        let a = registry.track(SessionKind::Connection, Holder::default(), now());
        let b = registry.track(SessionKind::Transaction, Holder::default(), now());
        let c = registry.track(SessionKind::Connection, Holder::default(), now());
        let over = registry.track(SessionKind::Connection, Holder::default(), now());
        assert!(over.id().is_none());
        assert_eq!(registry.untracked(), 1);
        assert_eq!(registry.list(now()).len(), 3);

        assert!(registry.release(&b, now).is_none());
        // Releasing twice, or a checkout that was never tracked, changes nothing.
        assert!(registry.release(&b, now).is_none());
        assert!(registry.release(&over, now).is_none());
        let d = registry.track(SessionKind::Connection, Holder::default(), now());
        assert_eq!(d.slot, b.slot, "the freed slot is reused");
        // b's stale handle must not take d out.
        assert!(registry.release(&b, now).is_none());
        let ids: Vec<_> = registry.list(now()).into_iter().map(|c| c.id).collect();
        assert_eq!(ids, [a.id(), c.id(), d.id()].into_iter().flatten().collect::<Vec<_>>());
        for t in [&a, &c, &d] {
            registry.release(t, now);
        }
        assert!(registry.list(now()).is_empty());
        assert_eq!(registry.len.load(Ordering::Relaxed), 0);
    }
}
