//! A connection checked out of a [`crate::MonitoredPool`].

use sqlx::Database;
use sqlx::pool::PoolConnection;

use crate::checkout::Checkout;

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
}

crate::checkout::checked_out_wrapper!(MonitoredConnection, conn);
