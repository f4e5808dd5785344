//! A connection checked out of a [`crate::MonitoredPool`].

use std::fmt;
use std::ops::{Deref, DerefMut};

use dbwarden_core::{CheckoutId, Monitor};
use sqlx::Database;
use sqlx::pool::PoolConnection;

use crate::checkout::{AcquireInfo, Checkout};

/// A pooled connection whose checkout is a dbwarden session.
///
/// It dereferences to the driver's connection, so code written for
/// `PoolConnection` keeps working (`&mut *conn` is still a
/// `&mut PgConnection`). Statements run through `&mut *conn` bypass dbwarden,
/// though: pass `&mut conn` as the executor to have them timed and
/// classified.
///
/// Dropping it returns the connection to the pool and records the check-in
/// (how long it was out), the end of the session and the release of the
/// tracked checkout. The session's cleanup time is recorded as zero: sqlx
/// returns the connection in a task it spawns, which the drop does not wait
/// for.
pub struct MonitoredConnection<DB: Database> {
    // Declared before `checkout`: the connection goes back to the pool
    // before the check-in is recorded.
    conn: PoolConnection<DB>,
    checkout: Checkout,
}

impl<DB: Database> MonitoredConnection<DB> {
    pub(crate) fn new(conn: PoolConnection<DB>, checkout: Checkout) -> Self {
        MonitoredConnection { conn, checkout }
    }

    /// How the connection was obtained: the wait, and whether (and after how
    /// long) a new connection was opened for it.
    pub fn acquire_info(&self) -> AcquireInfo {
        self.checkout.acquire_info()
    }

    /// The id of this checkout in [`Monitor::checkouts`], `None` when the
    /// registry was full.
    pub fn checkout_id(&self) -> Option<CheckoutId> {
        self.checkout.id()
    }

    /// The monitor this checkout records into.
    pub fn monitor(&self) -> &Monitor {
        self.checkout.monitor()
    }

    /// The driver connection and the checkout, for the executor.
    pub(crate) fn parts(&mut self) -> (&mut DB::Connection, &Checkout) {
        (&mut self.conn, &self.checkout)
    }
}

impl<DB: Database> Deref for MonitoredConnection<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        &self.conn
    }
}

impl<DB: Database> DerefMut for MonitoredConnection<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }
}

impl<DB: Database> AsMut<DB::Connection> for MonitoredConnection<DB> {
    fn as_mut(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }
}

impl<DB: Database> fmt::Debug for MonitoredConnection<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredConnection")
            .field("checkout", &self.checkout.id())
            .field("acquire", &self.checkout.acquire_info())
            .finish_non_exhaustive()
    }
}
