//! The bookkeeping shared by a monitored connection and a monitored
//! transaction: one checkout from the pool, tracked in the core's registry,
//! and the session it belongs to.

use std::time::{Duration, Instant};

use dbwarden_core::{Holder, Monitor, Outcome, PreparedQuery, SessionKind, TrackedCheckout};

use crate::classify::classify;

/// How a connection was obtained from the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcquireInfo {
    /// The whole wait in `acquire()`: the permit, then either an idle
    /// connection's health check or opening a new connection.
    pub wait: Duration,
    /// When the pool opened a new connection for this checkout: the time
    /// from the start of `acquire()` to the end of the connect (permit wait
    /// included; sqlx does not tell when the permit was granted).
    pub connect: Option<Duration>,
}

/// The environment variable that turns on a backtrace for every checkout
/// (`1`, `true`, `yes` or `on`). Read once per process.
pub const CHECKOUT_BACKTRACE_ENV: &str = "DBWARDEN_CHECKOUT_BACKTRACE";

/// Whether checkouts capture a backtrace. Deliberately not tied to
/// `RUST_BACKTRACE`: people set that for panic messages, and capturing and
/// formatting a backtrace costs far more than a query (about 200 µs here),
/// so it must be an explicit choice for leak hunting.
fn backtraces_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| {
        std::env::var(CHECKOUT_BACKTRACE_ENV)
            .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
    })
}

/// What the adapter knows of the holder of a checkout made now: the current
/// tracing span, and a backtrace when [`CHECKOUT_BACKTRACE_ENV`] is set.
///
/// The request being served (its id and route, when the request-tracking
/// layer runs it) is not copied in here: the monitor attaches the current
/// request to every checkout whose holder names none, and shows its id and
/// route wherever the checkout is listed or reported.
pub fn current_holder() -> Holder {
    // The dispatcher's current span rather than `Span::current()`: the
    // latter clones the span (a reference count in the subscriber) only for
    // us to read its name and drop it again. With every level off (no
    // subscriber, or one that wants nothing), no span can be current.
    let span = if tracing::level_filters::LevelFilter::current() == tracing::level_filters::LevelFilter::OFF {
        None
    } else {
        tracing::dispatcher::get_default(|dispatch| {
            dispatch.current_span().metadata().map(|m| format!("{}::{}", m.target(), m.name()))
        })
    };
    let backtrace = backtraces_enabled().then(|| std::backtrace::Backtrace::force_capture().to_string());
    Holder { span, backtrace, ..Holder::default() }
}

/// One live checkout of a connection or transaction handed to a caller.
/// Dropping it records the check-in, closes the session and releases the
/// registry entry.
#[derive(Debug)]
pub(crate) struct Checkout {
    monitor: Monitor,
    tracked: TrackedCheckout,
    checked_out_at: Instant,
    acquire: AcquireInfo,
    /// Time spent closing the session (COMMIT / ROLLBACK), when known.
    cleanup: Duration,
    /// A transaction neither committed nor rolled back yet.
    open_transaction: bool,
}

impl Checkout {
    /// Records the checkout, the session it opens (which took `creation`)
    /// and its tracking.
    pub(crate) fn start(
        monitor: Monitor,
        kind: SessionKind,
        holder: Holder,
        acquire: AcquireInfo,
        creation: Duration,
        checked_out_at: Instant,
    ) -> Self {
        let tracked = monitor.open_checkout(kind, holder, acquire.wait, creation);
        Checkout {
            monitor,
            tracked,
            checked_out_at,
            acquire,
            cleanup: Duration::ZERO,
            open_transaction: kind == SessionKind::Transaction,
        }
    }

    pub(crate) fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    pub(crate) fn acquire_info(&self) -> AcquireInfo {
        self.acquire
    }

    /// Notes activity for the checkout's idle time.
    pub(crate) fn touch(&self) {
        self.monitor().touch_checkout(&self.tracked);
    }

    /// The transaction ended (committed or rolled back) after `cleanup`.
    pub(crate) fn transaction_ended(&mut self, cleanup: Duration) {
        self.open_transaction = false;
        self.cleanup = cleanup;
    }

    /// The id of the registry entry, if tracked.
    pub(crate) fn id(&self) -> Option<dbwarden_core::CheckoutId> {
        self.tracked.id()
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let used = self.checked_out_at.elapsed();
        let monitor = &self.monitor;
        if self.open_transaction {
            // sqlx queues a ROLLBACK for a transaction dropped while open.
            monitor.record_rollback();
        }
        monitor.close_checkout(&self.tracked, used, self.cleanup);
    }
}

/// The checkout a statement run with `&pool` makes for itself alone: the
/// checkout, its session and the statement are recorded together when it
/// ends ([`StatementCheckout::finish`]), by one core call that, for a
/// statement that succeeds in time, only appends to a buffer. The
/// statement's fingerprint is looked up when it is sent, so its text need
/// not be kept.
///
/// Dropped unfinished (the statement's future was dropped), it records the
/// statement as a success with the rows seen so far, and the checkout.
pub(crate) struct StatementCheckout<'m> {
    monitor: &'m Monitor,
    tracked: TrackedCheckout,
    /// `None` once recorded.
    query: Option<PreparedQuery>,
    wait: Duration,
    checked_out_at: Instant,
    pub(crate) returned: u64,
    pub(crate) affected: u64,
}

impl<'m> StatementCheckout<'m> {
    /// Tracks the checkout (made at `checked_out_at` after waiting `wait`)
    /// for the statement `sql`, which is sent now.
    pub(crate) fn start(
        monitor: &'m Monitor,
        holder: Holder,
        sql: &str,
        wait: Duration,
        checked_out_at: Instant,
    ) -> Self {
        let tracked = monitor.open_statement_checkout(holder);
        let query = Some(monitor.prepare(sql));
        StatementCheckout { monitor, tracked, query, wait, checked_out_at, returned: 0, affected: 0 }
    }

    /// The statement ended now, successfully or with `error`, and the
    /// connection is back.
    pub(crate) fn finish(&mut self, error: Option<&sqlx::Error>) {
        let Some(query) = self.query.take() else { return };
        let duration = self.checked_out_at.elapsed();
        match error {
            None => self.monitor.close_statement_checkout(
                &self.tracked,
                self.wait,
                query,
                duration,
                self.rows(),
                Outcome::Success,
            ),
            Some(error) => self.failed(query, duration, error),
        }
    }

    #[cold]
    #[inline(never)]
    fn failed(&self, query: PreparedQuery, duration: Duration, error: &sqlx::Error) {
        let message = error.to_string();
        let outcome = Outcome::Failure { class: classify(error), message: &message };
        self.monitor.close_statement_checkout(&self.tracked, self.wait, query, duration, self.rows(), outcome);
    }

    fn rows(&self) -> u64 {
        crate::executor::statement_rows(self.returned, self.affected)
    }
}

impl Drop for StatementCheckout<'_> {
    fn drop(&mut self) {
        if let Some(query) = self.query.take() {
            let used = self.checked_out_at.elapsed();
            self.monitor.record_prepared(&query, used, self.rows(), Outcome::Success);
            self.monitor.close_unused_statement_checkout(&self.tracked, self.wait, used);
        }
    }
}

/// The accessors and the `Deref` to the driver connection that a monitored
/// connection and a monitored transaction share: `$ty<DB>` has a `checkout:
/// Checkout` field and the driver connection (or sqlx transaction) in
/// `$conn`.
///
/// `MonitoredConnection` also gets `close_on_drop`, which marks its pool
/// connection to be closed instead of returned (used by recovery after a
/// connection-level failure); a transaction's connection is not reachable
/// through sqlx's public API, so the transaction has no such method.
macro_rules! checked_out_wrapper {
    (MonitoredConnection, $conn:ident) => {
        $crate::checkout::checked_out_wrapper!(@common MonitoredConnection, $conn);

        impl<DB: sqlx::Database> MonitoredConnection<DB> {
            /// Closes the connection when this checkout is dropped instead
            /// of returning it to the pool (the pool may open a replacement).
            pub(crate) fn close_on_drop(&mut self) {
                self.$conn.close_on_drop();
            }
        }
    };
    ($ty:ident, $conn:ident) => {
        $crate::checkout::checked_out_wrapper!(@common $ty, $conn);
    };
    (@common $ty:ident, $conn:ident) => {
        impl<DB: sqlx::Database> $ty<DB> {
            /// How the connection was obtained: the wait, and whether (and
            /// after how long) a new connection was opened for it.
            pub fn acquire_info(&self) -> $crate::AcquireInfo {
                self.checkout.acquire_info()
            }

            /// The id of this checkout in `Monitor::checkouts`, `None` when
            /// the registry was full.
            pub fn checkout_id(&self) -> Option<dbwarden_core::CheckoutId> {
                self.checkout.id()
            }

            /// The monitor this checkout records into.
            pub fn monitor(&self) -> &dbwarden_core::Monitor {
                self.checkout.monitor()
            }

            /// The driver connection and the checkout, for the executor.
            pub(crate) fn parts(&mut self) -> (&mut DB::Connection, &$crate::checkout::Checkout) {
                (&mut self.$conn, &self.checkout)
            }
        }

        impl<DB: sqlx::Database> std::ops::Deref for $ty<DB> {
            type Target = DB::Connection;

            fn deref(&self) -> &DB::Connection {
                &self.$conn
            }
        }

        impl<DB: sqlx::Database> std::ops::DerefMut for $ty<DB> {
            fn deref_mut(&mut self) -> &mut DB::Connection {
                &mut self.$conn
            }
        }

        impl<DB: sqlx::Database> AsMut<DB::Connection> for $ty<DB> {
            fn as_mut(&mut self) -> &mut DB::Connection {
                &mut self.$conn
            }
        }

        impl<DB: sqlx::Database> std::fmt::Debug for $ty<DB> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("checkout", &self.checkout.id())
                    .field("acquire", &self.checkout.acquire_info())
                    .finish_non_exhaustive()
            }
        }
    };
}
pub(crate) use checked_out_wrapper;
