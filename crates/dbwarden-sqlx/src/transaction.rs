//! A transaction begun on a [`crate::MonitoredPool`].

use std::time::Instant;

use sqlx::{Database, Transaction};

use crate::checkout::Checkout;
use crate::classify::classify;

/// A transaction on a pooled connection; the transaction is the dbwarden
/// session.
///
/// It dereferences to the driver's connection like sqlx's [`Transaction`]
/// (`&mut *tx` is a `&mut PgConnection`); pass `&mut tx` as the executor to
/// have statements timed and classified.
///
/// [`MonitoredTransaction::commit`] and [`MonitoredTransaction::rollback`]
/// record the commit or rollback, and the session's cleanup time is the time
/// the COMMIT or ROLLBACK took. A transaction dropped while open is counted
/// as a rollback (sqlx queues one) with no cleanup time.
pub struct MonitoredTransaction<DB: Database> {
    // Declared before `checkout`: the connection goes back to the pool
    // before the check-in is recorded.
    tx: Transaction<'static, DB>,
    checkout: Checkout,
}

impl<DB: Database> MonitoredTransaction<DB> {
    pub(crate) fn new(tx: Transaction<'static, DB>, checkout: Checkout) -> Self {
        MonitoredTransaction { tx, checkout }
    }

    /// Commits, recording the commit (or, when COMMIT fails, the error and a
    /// rollback: the server discards the transaction).
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        let MonitoredTransaction { tx, mut checkout } = self;
        let started = Instant::now();
        let result = tx.commit().await;
        checkout.transaction_ended(started.elapsed());
        match &result {
            Ok(()) => checkout.monitor().record_commit(),
            Err(error) => {
                checkout.monitor().record_session_error(classify(error), &error.to_string());
                checkout.monitor().record_rollback();
            }
        }
        result
    }

    /// Rolls back, recording the rollback.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        let MonitoredTransaction { tx, mut checkout } = self;
        let started = Instant::now();
        let result = tx.rollback().await;
        checkout.transaction_ended(started.elapsed());
        checkout.monitor().record_rollback();
        if let Err(error) = &result {
            checkout.monitor().record_session_error(classify(error), &error.to_string());
        }
        result
    }
}

crate::checkout::checked_out_wrapper!(MonitoredTransaction, tx);
