//! The monitored pool: a sqlx [`Pool`] and the [`Monitor`] it records into.
//!
//! # What the acquire phases are, as far as sqlx lets us see them
//!
//! sqlx's `acquire()` waits for a permit (the pool's semaphore), then either
//! takes an idle connection (pinging it if `test_before_acquire`, then
//! running `before_acquire`) or opens a new one (connect, then
//! `after_connect`), all under one `acquire_timeout`. It reports no
//! timings, and no count of tasks waiting for a permit.
//!
//! - The **checkout wait** (`Monitor::open_checkout`) is the whole of
//!   `acquire()`, measured around it.
//! - The **connect time** (`Monitor::record_connection_opened`) comes from
//!   an `after_connect` hook this crate installs. When the connect happens
//!   inside a monitored `acquire()` (or the builder's `connect*`), it is the
//!   time from the start of that call to the end of the connect: sqlx does
//!   not say when the permit was granted, so the permit wait is included
//!   (it is normally nil when a new connection can be opened, since a
//!   free permit is what allows it). A connect sqlx makes on its own (the
//!   `min_connections` maintenance, or an acquire through the raw pool), or
//!   one made by an acquire that found idle connections when it started
//!   (only acquires that find none are traced, to keep the common path
//!   cheap), is counted without a time: the hook cannot know when it
//!   started, and a made-up zero would drag the create-time histogram down.
//! - The **permit wait alone** and the idle connection's **health check**
//!   cannot be separated: sqlx has no hook before the permit and none around
//!   the ping (`before_acquire` runs after it).
//! - The **pending-task count** is not kept by sqlx either, so the monitored
//!   pool counts it itself: every acquire made through it (`acquire*`,
//!   `begin*`, statements with `&pool` as the executor, recovery) is pending
//!   from just before sqlx's `acquire()` until it returns, is cancelled or
//!   fails. `PoolSample::pending` is that count; acquires made on the raw
//!   pool ([`MonitoredPool::inner`]) are not counted.
//! - **Connections closed** by the pool (idle timeout, max lifetime, a
//!   failed health check) are not reported one by one: sqlx has no close
//!   hook. With every open counted by dbwarden's hook, each
//!   [`MonitoredPool::sample`] infers the closes so far as opens less the
//!   connections open now and records the new ones; a pool wrapped with
//!   [`MonitoredPool::new`] (no hook) reports no closes.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dbwarden_core::shard::{self, CachePadded, default_shard_count, shard_slot};
use dbwarden_core::{ErrorClass, Holder, Monitor, PoolConfig, PoolSample, SessionKind};
use futures_core::future::BoxFuture;
use sqlx::pool::{PoolConnection, PoolConnectionMetadata, PoolOptions};
use sqlx::{Connection, Pool, Transaction};

use crate::checkout::{AcquireInfo, Checkout, StatementCheckout, current_holder};
use crate::classify::classify;
use crate::connection::MonitoredConnection;
use crate::database::MonitoredDatabase;
use crate::executor::Captured;
use crate::transaction::MonitoredTransaction;

thread_local! {
    /// When the monitored acquire being polled on this thread started; set
    /// only for the duration of that poll, so the `after_connect` hook (which
    /// sqlx runs inside it) can tell how long the connect took.
    static ACQUIRE_STARTED: Cell<Option<Instant>> = const { Cell::new(None) };
    /// What the hook found during that poll: the time from the start of the
    /// acquire to the end of a connect.
    static CONNECTED_AFTER: Cell<Option<Duration>> = const { Cell::new(None) };
}

/// Restores the thread's acquire start when a poll ends, even by panic.
struct AcquirePoll {
    previous: Option<Instant>,
}

impl AcquirePoll {
    fn enter(started: Instant) -> Self {
        AcquirePoll { previous: ACQUIRE_STARTED.replace(Some(started)) }
    }
}

impl Drop for AcquirePoll {
    fn drop(&mut self) {
        ACQUIRE_STARTED.set(self.previous);
    }
}

pin_project_lite::pin_project! {
    /// Polls an acquire, when `traced`, with its start visible to the
    /// `after_connect` hook, and resolves to its output with the connect
    /// time the hook saw, if any. Two thread-local writes per traced poll,
    /// none otherwise, no allocation: it sits on the path of every checkout.
    /// One wrapper for both cases, so the (large) acquire future is moved
    /// into the statement's future once, whichever case applies.
    struct TracedAcquire<F> {
        #[pin]
        acquire: F,
        started: Instant,
        traced: bool,
        connected: Option<Duration>,
    }
}

impl<F: std::future::Future> std::future::Future for TracedAcquire<F> {
    type Output = (F::Output, Option<Duration>);

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let this = self.project();
        if !*this.traced {
            return this.acquire.poll(cx).map(|output| (output, None));
        }
        let polled = {
            let _poll = AcquirePoll::enter(*this.started);
            this.acquire.poll(cx)
        };
        if let Some(after) = CONNECTED_AFTER.take() {
            *this.connected = Some(after);
        }
        polled.map(|output| (output, this.connected.take()))
    }
}

fn traced_acquire<F: std::future::Future>(started: Instant, acquire: F) -> TracedAcquire<F> {
    TracedAcquire { acquire, started, traced: true, connected: None }
}

/// A user's `after_connect` callback, chained after dbwarden's.
type AfterConnect<DB> = Arc<
    dyn for<'c> Fn(
            &'c mut <DB as sqlx::Database>::Connection,
            PoolConnectionMetadata,
        ) -> BoxFuture<'c, Result<(), sqlx::Error>>
        + Send
        + Sync,
>;

/// A sqlx pool whose checkouts, transactions and statements are recorded.
///
/// Cheap to clone (both halves are reference-counted). Use `&pool` as an
/// executor exactly like a sqlx pool: `sqlx::query("…").fetch_all(&pool)`.
pub struct MonitoredPool<DB: MonitoredDatabase> {
    /// Behind one reference count: a statement run with `&pool` clones the
    /// pool, as sqlx's own pool does.
    inner: Arc<PoolInner<DB>>,
}

/// The sqlx pool and what the monitored pool shares with its hooks.
struct PoolInner<DB: MonitoredDatabase> {
    pool: Pool<DB>,
    /// Also held by the `after_connect` hook, which the pool holds: kept
    /// apart from the pool so that the two do not hold each other.
    shared: Arc<Shared>,
}

/// The monitor, and what the monitored pool counts itself because sqlx
/// does not.
#[derive(Debug)]
struct Shared {
    monitor: Monitor,
    /// Acquires in progress through this pool (and its clones).
    pending: PendingCount,
    /// Connections the `after_connect` hook saw opened; `None` when the
    /// pool was built without dbwarden's hooks.
    opened: Option<AtomicU64>,
    /// Closes already recorded, inferred at each sample as opened − size.
    closed_recorded: AtomicU64,
}

impl Shared {
    fn new(monitor: Monitor, opened: Option<AtomicU64>) -> Self {
        Shared { monitor, pending: PendingCount::new(), opened, closed_recorded: AtomicU64::new(0) }
    }
}

/// Acquires in progress, counted without a read-modify-write that every
/// thread shares (every statement run with `&pool` starts and ends one):
/// each thread counts the acquires it starts and ends in its own shard,
/// with plain stores when it owns the shard (see [`dbwarden_core::shard`]),
/// and the count is the starts less the ends.
#[derive(Debug)]
struct PendingCount {
    /// Per shard: acquires started, acquires ended.
    shards: Box<[CachePadded<[AtomicU64; 2]>]>,
}

const STARTED: usize = 0;
const ENDED: usize = 1;

impl PendingCount {
    fn new() -> Self {
        let shards = (0..default_shard_count()).map(|_| CachePadded::new([AtomicU64::new(0), AtomicU64::new(0)]));
        PendingCount { shards: shards.collect() }
    }

    fn count(&self, which: usize) {
        let slot = shard_slot(self.shards.len());
        if let Some(cell) = self.shards.get(slot.index).and_then(|s| s.0.get(which)) {
            shard::add(cell, 1, slot);
        }
    }

    fn get(&self) -> u32 {
        let sum =
            |which: usize| self.shards.iter().fold(0u64, |sum, s| sum.wrapping_add(s.0[which].load(Ordering::Relaxed)));
        // The ends first: an acquire already counted as ended was counted as
        // started before, so the starts read next include it.
        let ended = sum(ENDED);
        let started = sum(STARTED);
        match started.checked_sub(ended) {
            Some(pending) => u32::try_from(pending).unwrap_or(u32::MAX),
            None => 0,
        }
    }
}

/// Counts one acquire as pending for as long as it lives, so a cancelled
/// acquire (its future dropped) stops counting too.
struct PendingGuard<'a>(&'a PendingCount);

impl<'a> PendingGuard<'a> {
    fn enter(count: &'a PendingCount) -> Self {
        count.count(STARTED);
        PendingGuard(count)
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.0.count(ENDED);
    }
}

impl<DB: MonitoredDatabase> MonitoredPool<DB> {
    /// Wraps an existing pool. Its hooks are left as they are, so connects
    /// are not recorded; build the pool with [`MonitoredPool::builder`] to
    /// have them.
    pub fn new(pool: Pool<DB>, monitor: Monitor) -> Self {
        MonitoredPool::with_shared(pool, Arc::new(Shared::new(monitor, None)))
    }

    fn with_shared(pool: Pool<DB>, shared: Arc<Shared>) -> Self {
        let options = pool.options();
        shared.monitor.record_pool_config(PoolConfig {
            system: DB::NAME.to_ascii_lowercase(),
            max_connections: options.get_max_connections(),
            min_connections: options.get_min_connections(),
            acquire_timeout_seconds: options.get_acquire_timeout().as_secs_f64(),
            idle_timeout_seconds: options.get_idle_timeout().map(|d| d.as_secs_f64()),
            max_lifetime_seconds: options.get_max_lifetime().map(|d| d.as_secs_f64()),
            test_before_acquire: options.get_test_before_acquire(),
        });
        MonitoredPool { inner: Arc::new(PoolInner { pool, shared }) }
    }

    /// A builder from sqlx pool options, which installs dbwarden's hooks.
    pub fn builder(options: PoolOptions<DB>, monitor: Monitor) -> MonitoredPoolOptions<DB> {
        let shared = Arc::new(Shared::new(monitor, Some(AtomicU64::new(0))));
        MonitoredPoolOptions { options, after_connect: None, shared }
    }

    /// The underlying sqlx pool (statements run on it are not recorded).
    pub fn inner(&self) -> &Pool<DB> {
        &self.inner.pool
    }

    /// The monitor everything is recorded into.
    pub fn monitor(&self) -> &Monitor {
        &self.inner.shared.monitor
    }

    /// Checks a connection out; its holder is the current tracing span.
    pub async fn acquire(&self) -> Result<MonitoredConnection<DB>, sqlx::Error> {
        self.acquire_as(current_holder()).await
    }

    /// Checks a connection out on behalf of `holder` (e.g. a request id and
    /// route), recording the wait, a new session and the tracked checkout.
    /// A timeout is recorded as a pool timeout, any other failure as a
    /// session error.
    pub async fn acquire_as(&self, holder: Holder) -> Result<MonitoredConnection<DB>, sqlx::Error> {
        let (conn, info, checked_out_at) = self.checkout().await?;
        let checkout = Checkout::start(
            self.inner.shared.monitor.clone(),
            SessionKind::Connection,
            holder,
            info,
            info.wait,
            checked_out_at,
        );
        Ok(MonitoredConnection::new(conn, checkout))
    }

    /// Checks a connection out and begins a transaction; its holder is the
    /// current tracing span.
    pub async fn begin(&self) -> Result<MonitoredTransaction<DB>, sqlx::Error> {
        self.begin_as(current_holder()).await
    }

    /// Checks a connection out and begins a transaction on behalf of
    /// `holder`. The transaction is the session; its creation time is the
    /// checkout wait plus the BEGIN.
    pub async fn begin_as(&self, holder: Holder) -> Result<MonitoredTransaction<DB>, sqlx::Error> {
        let (conn, info, checked_out_at) = self.checkout().await?;
        match Transaction::begin(conn, None).await {
            Ok(tx) => {
                // The transaction's creation is the wait plus the BEGIN.
                let creation = info.wait + checked_out_at.elapsed();
                let checkout = Checkout::start(
                    self.inner.shared.monitor.clone(),
                    SessionKind::Transaction,
                    holder,
                    info,
                    creation,
                    checked_out_at,
                );
                Ok(MonitoredTransaction::new(tx, checkout))
            }
            Err(error) => {
                // The connection was out for the BEGIN only.
                self.inner.shared.monitor.record_checkout(info.wait);
                self.inner.shared.monitor.record_checkin(checked_out_at.elapsed());
                self.inner.shared.monitor.record_session_error(classify(&error), &error.to_string());
                Err(error)
            }
        }
    }

    /// Records the pool's state now and returns it. `pending` is the number
    /// of acquires in progress through this monitored pool (or its clones);
    /// acquires on the raw [`MonitoredPool::inner`] pool are not counted,
    /// since sqlx does not expose how many tasks wait for a connection.
    pub fn sample(&self) -> PoolSample {
        let size = self.inner.pool.size();
        let idle = u32::try_from(self.inner.pool.num_idle()).unwrap_or(u32::MAX).min(size);
        let options = self.inner.pool.options();
        let sample = PoolSample {
            size,
            idle,
            in_use: size - idle,
            pending: self.pending(),
            max: options.get_max_connections(),
            min: options.get_min_connections(),
        };
        self.inner.shared.monitor.record_pool_sample(sample);
        self.record_inferred_closes(size);
        sample
    }

    /// Acquires in progress through this monitored pool (and its clones)
    /// right now: waiting for a permit, checking an idle connection or
    /// opening a new one.
    pub fn pending(&self) -> u32 {
        self.inner.shared.pending.get()
    }

    /// sqlx closes connections on its own (idle timeout, max lifetime, a
    /// failed ping, `close_on_drop`) without telling anyone; with every open
    /// counted by the hook, the closes so far are the opens less the
    /// connections open now. Recorded as they are first seen, so each close
    /// counts once; a connect in flight (counted in `size` before the hook
    /// sees it) only delays a close to the next sample.
    fn record_inferred_closes(&self, size: u32) {
        let Some(opened) = &self.inner.shared.opened else { return };
        let closed = opened.load(Ordering::Relaxed).saturating_sub(u64::from(size));
        let recorded = self.inner.shared.closed_recorded.fetch_max(closed, Ordering::Relaxed);
        if closed > recorded {
            self.inner.shared.monitor.record_connections_closed(closed - recorded);
        }
    }

    /// Starts a tokio task that calls [`MonitoredPool::sample`] every
    /// `interval` (the first sample is taken at once). The task stops when
    /// the returned [`Sampler`] is dropped or stopped.
    pub fn spawn_sampler(&self, interval: Duration) -> Result<Sampler, SamplerError> {
        if interval.is_zero() {
            return Err(SamplerError::ZeroInterval);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| SamplerError::NoRuntime)?;
        let pool = self.clone();
        let task = runtime.spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                pool.sample();
            }
        });
        Ok(Sampler { task })
    }

    /// One statement on a connection checked out for it alone, the way
    /// `&pool` runs statements as an executor: the checkout, the session and
    /// the statement are recorded as through [`MonitoredPool::acquire_as`],
    /// with the clock read once per boundary (the end of the acquire starts
    /// the statement; the statement's end is the check-in) and the checkout
    /// borrowing this pool's monitor.
    ///
    /// One `async fn` holding the acquire and the statement directly, not
    /// awaiting helper futures: each nested future would be moved (copied
    /// whole, sqlx's acquire included) into its parent's.
    ///
    /// The holder is read once the connection is out (a future's parameters
    /// stay in it for its whole life, and this one is copied whole into its
    /// box), i.e. in the context the statement is polled in, as for
    /// [`MonitoredPool::acquire`].
    pub(crate) async fn fetch_optional_checked_out<'q, E>(self, query: E) -> Result<Option<DB::Row>, sqlx::Error>
    where
        for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
        E: 'q + sqlx::Execute<'q, DB>,
    {
        let started = Instant::now();
        let (result, connect) = {
            let _pending = PendingGuard::enter(&self.inner.shared.pending);
            self.acquire_traced(started).await
        };
        let (mut conn, info, checked_out_at) = self.acquired(started, result, connect)?;
        let monitor = &self.inner.shared.monitor;
        let captured = Captured::<DB>::capture(query);
        // The checkout is booked before the statement is sent, not while the
        // database works: sending wakes the database's side (SQLite's worker
        // thread), and bookkeeping done after that competes with it for the
        // CPU; measured on one core, it cost a context switch per few queries.
        let mut checkout =
            StatementCheckout::start(monitor, current_holder(), captured.sql.as_str(), info.wait, checked_out_at);
        let result = sqlx::Executor::fetch_optional(&mut *conn, captured).await;
        drop(conn);
        // The statement started at the checkout and its end is the
        // check-in: the connection was out exactly as long as it ran, so
        // both are recorded in one call with one clock read.
        match &result {
            Ok(row) => {
                checkout.returned = u64::from(row.is_some());
                checkout.finish(None);
            }
            Err(error) => checkout.finish(Some(error)),
        }
        result
    }

    /// One monitored `acquire()` on the raw pool; also returns when it
    /// ended, which is when the checkout starts.
    pub(crate) async fn checkout(&self) -> Result<(PoolConnection<DB>, AcquireInfo, Instant), sqlx::Error> {
        let started = Instant::now();
        let (result, connect) = {
            let _pending = PendingGuard::enter(&self.inner.shared.pending);
            self.acquire_traced(started).await
        };
        self.acquired(started, result, connect)
    }

    /// sqlx's acquire, started at `started`, with the connect it makes
    /// timed when it may well make one.
    fn acquire_traced(
        &self,
        started: Instant,
    ) -> TracedAcquire<impl std::future::Future<Output = Result<PoolConnection<DB>, sqlx::Error>> + use<DB>> {
        // Tracing the connect costs two thread-local writes per poll: only
        // pay it when this acquire may well open a connection, i.e. when no
        // idle one is waiting and the pool has room for another. A pool at
        // its maximum with every connection out (the connection of the
        // previous statement is often not back yet when the next one starts:
        // sqlx returns it in a task of its own) can only hand out a returned
        // one. A connect that races past this check is still counted,
        // without a time (`record_connection_opened_untimed`).
        let traced =
            self.inner.pool.num_idle() == 0 && self.inner.pool.size() < self.inner.pool.options().get_max_connections();
        TracedAcquire { acquire: self.inner.pool.acquire(), started, traced, connected: None }
    }

    /// The end of a monitored acquire: the connection, how it was obtained
    /// and when (the checkout's start), or the failure, recorded.
    fn acquired(
        &self,
        started: Instant,
        result: Result<PoolConnection<DB>, sqlx::Error>,
        connect: Option<Duration>,
    ) -> Result<(PoolConnection<DB>, AcquireInfo, Instant), sqlx::Error> {
        let ended = Instant::now();
        let wait = ended.saturating_duration_since(started);
        match result {
            Ok(conn) => Ok((conn, AcquireInfo { wait, connect }, ended)),
            Err(error) => {
                match classify(&error) {
                    ErrorClass::PoolTimeout => self.inner.shared.monitor.record_pool_timeout(wait),
                    class => self.inner.shared.monitor.record_session_error(class, &error.to_string()),
                }
                Err(error)
            }
        }
    }
}

impl<DB: MonitoredDatabase> Clone for MonitoredPool<DB> {
    fn clone(&self) -> Self {
        MonitoredPool { inner: Arc::clone(&self.inner) }
    }
}

impl<DB: MonitoredDatabase> fmt::Debug for MonitoredPool<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredPool")
            .field("pool", &self.inner.pool)
            .field("monitor", &self.monitor().name())
            .finish()
    }
}

/// Builds a [`MonitoredPool`] from sqlx [`PoolOptions`], installing an
/// `after_connect` hook that records each new connection.
///
/// sqlx keeps one `after_connect` callback and does not let it be read back,
/// so a callback already set on the options given to
/// [`MonitoredPool::builder`] is replaced: set it with
/// [`MonitoredPoolOptions::after_connect`] instead, which runs it after
/// dbwarden's.
pub struct MonitoredPoolOptions<DB: MonitoredDatabase> {
    options: PoolOptions<DB>,
    after_connect: Option<AfterConnect<DB>>,
    shared: Arc<Shared>,
}

impl<DB: MonitoredDatabase> MonitoredPoolOptions<DB> {
    /// Runs `callback` on every new connection, after dbwarden has noted
    /// the connect (same contract as [`PoolOptions::after_connect`]). A
    /// connection is counted as opened only if the callback succeeds.
    pub fn after_connect<F>(mut self, callback: F) -> Self
    where
        for<'c> F: Fn(&'c mut DB::Connection, PoolConnectionMetadata) -> BoxFuture<'c, Result<(), sqlx::Error>>
            + Send
            + Sync
            + 'static,
    {
        self.after_connect = Some(Arc::new(callback));
        self
    }

    /// The sqlx options with dbwarden's hooks installed, for callers that
    /// build the pool themselves; wrap the result with [`MonitoredPool::new`].
    pub fn into_pool_options(self) -> PoolOptions<DB> {
        self.into_parts().0
    }

    fn into_parts(self) -> (PoolOptions<DB>, Arc<Shared>) {
        let user = self.after_connect;
        let shared = Arc::clone(&self.shared);
        let options = self.options.after_connect(move |conn, meta| {
            let user = user.clone();
            let shared = Arc::clone(&shared);
            Box::pin(async move {
                // Read at the first poll, which runs inside the acquire's.
                let connect = ACQUIRE_STARTED.get().map(|started| started.elapsed());
                if let Some(user) = user {
                    user(conn, meta).await?;
                }
                if let Some(after) = connect {
                    // Any later poll of this hook is inside the acquire's poll too.
                    CONNECTED_AFTER.set(Some(after));
                }
                if let Some(opened) = &shared.opened {
                    opened.fetch_add(1, Ordering::Relaxed);
                }
                match connect {
                    Some(after) => shared.monitor.record_connection_opened(after),
                    None => shared.monitor.record_connection_opened_untimed(),
                }
                Ok(())
            })
        });
        (options, self.shared)
    }

    /// Opens the pool on `url` (sqlx opens the first connection now, and
    /// its connect time is recorded).
    pub async fn connect(self, url: &str) -> Result<MonitoredPool<DB>, sqlx::Error> {
        let (options, shared) = self.into_parts();
        let (pool, _) = traced_acquire(Instant::now(), options.connect(url)).await;
        Ok(MonitoredPool::with_shared(pool?, shared))
    }

    /// Opens the pool with driver connect options.
    pub async fn connect_with(
        self,
        connect_options: <DB::Connection as Connection>::Options,
    ) -> Result<MonitoredPool<DB>, sqlx::Error> {
        let (options, shared) = self.into_parts();
        let (pool, _) = traced_acquire(Instant::now(), options.connect_with(connect_options)).await;
        Ok(MonitoredPool::with_shared(pool?, shared))
    }

    /// Creates the pool without connecting; connections open on first use.
    pub fn connect_lazy(self, url: &str) -> Result<MonitoredPool<DB>, sqlx::Error> {
        let (options, shared) = self.into_parts();
        Ok(MonitoredPool::with_shared(options.connect_lazy(url)?, shared))
    }

    /// Creates the pool from driver connect options without connecting.
    pub fn connect_lazy_with(self, connect_options: <DB::Connection as Connection>::Options) -> MonitoredPool<DB> {
        let (options, shared) = self.into_parts();
        MonitoredPool::with_shared(options.connect_lazy_with(connect_options), shared)
    }
}

impl<DB: MonitoredDatabase> fmt::Debug for MonitoredPoolOptions<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredPoolOptions")
            .field("options", &self.options)
            .field("monitor", &self.shared.monitor.name())
            .field("after_connect", &self.after_connect.is_some())
            .finish()
    }
}

/// Why a sampler could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SamplerError {
    /// `spawn_sampler` was called outside a tokio runtime.
    #[error("no tokio runtime to run the pool sampler on")]
    NoRuntime,
    /// The interval was zero.
    #[error("pool sampling interval must be greater than zero")]
    ZeroInterval,
}

/// The periodic pool sampler; stops when dropped.
#[derive(Debug)]
pub struct Sampler {
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    /// Stops sampling.
    pub fn stop(self) {
        // Dropping aborts the task.
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_acquires_ended_on_another_thread_stop_counting() {
        let count = PendingCount::new();
        let guards: Vec<_> = (0..3).map(|_| PendingGuard::enter(&count)).collect();
        assert_eq!(count.get(), 3);
        // A task can move between threads while it waits: its acquire ends
        // on another thread's shard than the one it started on.
        std::thread::scope(|scope| {
            scope.spawn(|| drop(guards));
        });
        assert_eq!(count.get(), 0);
        let started_elsewhere = std::thread::scope(|scope| scope.spawn(|| PendingGuard::enter(&count)).join());
        assert_eq!(count.get(), 1);
        drop(started_elsewhere);
        assert_eq!(count.get(), 0);
    }
}
