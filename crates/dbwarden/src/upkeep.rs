//! The session-table upkeep `dbwarden serve` runs beside its monitoring:
//! the cleanup daemon on `cleanup.interval` (one runner at a time across
//! processes, every run reported to the monitor) and a snapshot of the
//! table's counts after each interval, which `dbwarden analytics --trends`
//! reads.
//!
//! The session table may not exist yet when the server starts (an
//! application creates it on first use); upkeep then says so once and looks
//! again every interval, instead of creating a table in a database it only
//! watches.

use std::time::Duration;

use dbwarden_core::Monitor;
use dbwarden_sessions::{Cleaner, SessionDatabase, SessionTable, TableError, analytics};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::settings::{CleanupSettings, redact_url};

/// The running upkeep; [`shutdown`](Self::shutdown) ends it after the
/// current batch.
#[derive(Debug)]
pub struct SessionUpkeep {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SessionUpkeep {
    /// Starts the upkeep of the session table in the database at `url`.
    pub fn spawn(url: String, settings: CleanupSettings, monitor: Monitor) -> SessionUpkeep {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(url, settings, monitor, stopped));
        SessionUpkeep { stop, task }
    }

    /// Stops the daemon (a run in progress ends after its current batch) and waits for it.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!(target: "dbwarden", error = %e, "the session upkeep task failed");
        }
    }
}

async fn wait_stopped(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Sleeps for `period` unless stopped first; says whether it was stopped.
async fn sleep_or_stop(period: Duration, stopped: &watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(period) => *stopped.borrow(),
        () = wait_stopped(stopped.clone()) => true,
    }
}

async fn run(url: String, settings: CleanupSettings, monitor: Monitor, stopped: watch::Receiver<bool>) {
    let interval = settings.interval;
    let shown = redact_url(&url);
    let db = loop {
        match SessionDatabase::connect_with(&url, 2).await {
            Ok(db) => break db,
            Err(e) => {
                tracing::warn!(target: "dbwarden", database = %shown, error = %e, "session upkeep cannot connect; trying again at the next interval")
            }
        }
        if sleep_or_stop(interval, &stopped).await {
            return;
        }
    };
    let mut said_missing = false;
    let table = loop {
        match SessionTable::verify(&db, settings.table_mapping(db.backend())).await {
            Ok(table) => break table,
            Err(TableError::MissingTable { table }) => {
                if !said_missing {
                    tracing::info!(target: "dbwarden", table = %table, preset = %settings.preset, "no session table yet; session cleanup starts once it exists");
                    said_missing = true;
                }
            }
            Err(e) => {
                tracing::warn!(target: "dbwarden", error = %e, "the session table does not fit its settings; session cleanup is not running")
            }
        }
        if sleep_or_stop(interval, &stopped).await {
            db.close().await;
            return;
        }
    };
    let cleaner = Cleaner::new(db.clone(), table.clone(), settings.cleanup_config());
    let snapshots = async {
        loop {
            match analytics::take_snapshot(&db, &table, monitor.now()).await {
                Ok(_) => {}
                Err(e) => tracing::warn!(target: "dbwarden", error = %e, "could not store a session-table snapshot"),
            }
            if sleep_or_stop(interval, &stopped).await {
                return;
            }
        }
    };
    tokio::join!(cleaner.daemon(interval, Some(monitor.clone()), wait_stopped(stopped.clone())), snapshots);
    db.close().await;
}
