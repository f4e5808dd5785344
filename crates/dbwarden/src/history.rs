//! Trend history that survives a restart: the monitor's trend points
//! ([`Monitor::trend`], one per trend interval, 5 minutes by default) are
//! stored in the watched database's `dbwarden_history` table (created if
//! missing, on SQLite, PostgreSQL and MySQL/MariaDB), pruned past the
//! retention, and handed back to a new monitor at start with
//! [`Monitor::restore_trend`].
//!
//! A row is `(monitor, at_ms, point)`: the monitor's name, the point's end
//! in Unix milliseconds, and the point as JSON. Points hold only figures
//! (rates, latencies, utilization), never SQL text.

use std::time::Duration;

use dbwarden_core::{Monitor, Timestamp, TrendPoint};
use sqlx::{MySql, Pool, Postgres, Sqlite};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The table's name.
pub const HISTORY_TABLE: &str = "dbwarden_history";

/// A history operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// The database refused or could not be reached (message redacted).
    #[error("trend history in {table}: {0}", table = HISTORY_TABLE)]
    Database(String),
    /// The monitor name cannot be a key.
    #[error("monitor name `{0}` is too long for the history table (64 characters at most)")]
    Name(String),
}

fn db_error(e: sqlx::Error) -> HistoryError {
    HistoryError::Database(dbwarden_core::redact::redact_message(&e.to_string()))
}

/// Where trend points are kept: a plain (unmonitored) pool on the watched
/// database, so dbwarden's own bookkeeping does not show up as the
/// application's queries.
#[derive(Debug, Clone)]
pub enum HistoryStore {
    /// SQLite.
    Sqlite(Pool<Sqlite>),
    /// PostgreSQL.
    Postgres(Pool<Postgres>),
    /// MySQL or MariaDB.
    MySql(Pool<MySql>),
}

const CREATE_SQL: &str = "CREATE TABLE IF NOT EXISTS dbwarden_history (\
    monitor VARCHAR(64) NOT NULL, at_ms BIGINT NOT NULL, point TEXT NOT NULL, \
    PRIMARY KEY (monitor, at_ms))";

macro_rules! on_each {
    ($self:expr, $pool:ident => $body:expr) => {
        match $self {
            HistoryStore::Sqlite($pool) => $body,
            HistoryStore::Postgres($pool) => $body,
            HistoryStore::MySql($pool) => $body,
        }
    };
}

fn millis(at: Timestamp) -> i64 {
    i64::try_from(at.as_millis()).unwrap_or(i64::MAX)
}

impl HistoryStore {
    /// Creates the table when it is missing.
    pub async fn ensure_table(&self) -> Result<(), HistoryError> {
        on_each!(self, pool => sqlx::query(CREATE_SQL).execute(pool).await.map(drop).map_err(db_error))
    }

    fn insert_sql(&self) -> &'static str {
        match self {
            HistoryStore::Sqlite(_) => {
                "INSERT OR IGNORE INTO dbwarden_history (monitor, at_ms, point) VALUES (?, ?, ?)"
            }
            HistoryStore::Postgres(_) => {
                "INSERT INTO dbwarden_history (monitor, at_ms, point) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
            }
            HistoryStore::MySql(_) => "INSERT IGNORE INTO dbwarden_history (monitor, at_ms, point) VALUES (?, ?, ?)",
        }
    }

    fn placeholders(&self, sql: &'static str, pg: &'static str) -> &'static str {
        if matches!(self, HistoryStore::Postgres(_)) { pg } else { sql }
    }

    /// Stores `points` of `monitor` (already stored ones are left as they
    /// are); returns how many rows were written.
    pub async fn store(&self, monitor: &str, points: &[TrendPoint]) -> Result<u64, HistoryError> {
        if monitor.len() > 64 {
            return Err(HistoryError::Name(monitor.to_owned()));
        }
        let sql = self.insert_sql();
        let mut written = 0;
        for point in points {
            let json = serde_json::to_string(point).map_err(|e| HistoryError::Database(e.to_string()))?;
            let at = millis(point.at);
            written += on_each!(self, pool => sqlx::query(sql)
                .bind(monitor)
                .bind(at)
                .bind(&json)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
                .map_err(db_error)?);
        }
        Ok(written)
    }

    /// The latest `limit` points of `monitor` at or after `since`, oldest
    /// first. Rows that no longer decode are skipped (and counted in the log).
    pub async fn load(&self, monitor: &str, since: Timestamp, limit: usize) -> Result<Vec<TrendPoint>, HistoryError> {
        let sql = self.placeholders(
            "SELECT point FROM dbwarden_history WHERE monitor = ? AND at_ms >= ? ORDER BY at_ms DESC LIMIT ?",
            "SELECT point FROM dbwarden_history WHERE monitor = $1 AND at_ms >= $2 ORDER BY at_ms DESC LIMIT $3",
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<String> = on_each!(self, pool => sqlx::query_scalar(sql)
            .bind(monitor)
            .bind(millis(since))
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(db_error)?);
        let mut points = Vec::with_capacity(rows.len());
        let mut unreadable = 0usize;
        for row in rows.iter().rev() {
            match serde_json::from_str::<TrendPoint>(row) {
                Ok(p) => points.push(p),
                Err(_) => unreadable += 1,
            }
        }
        if unreadable > 0 {
            tracing::warn!(target: "dbwarden", unreadable, "some stored trend points could not be read and were skipped");
        }
        Ok(points)
    }

    /// Deletes `monitor`'s points older than `before`; returns how many.
    pub async fn prune(&self, monitor: &str, before: Timestamp) -> Result<u64, HistoryError> {
        let sql = self.placeholders(
            "DELETE FROM dbwarden_history WHERE monitor = ? AND at_ms < ?",
            "DELETE FROM dbwarden_history WHERE monitor = $1 AND at_ms < $2",
        );
        on_each!(self, pool => sqlx::query(sql)
            .bind(monitor)
            .bind(millis(before))
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(db_error))
    }

    /// Creates the table if needed, then restores into `monitor` its points
    /// stored within the last `window`; returns how many were restored.
    pub async fn restore_into(&self, monitor: &Monitor, window: Duration) -> Result<usize, HistoryError> {
        self.ensure_table().await?;
        let since = monitor.now().saturating_sub(window);
        let points = self.load(monitor.name(), since, monitor.config().trend_points).await?;
        let count = points.len();
        if count > 0 {
            monitor.restore_trend(points);
        }
        Ok(count)
    }
}

/// How the history task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Between two writes (the monitor's trend interval).
    pub interval: Duration,
    /// Points older than this are deleted.
    pub retention: Duration,
}

/// A background task writing a monitor's new trend points to a
/// [`HistoryStore`] on an interval, and once more on shutdown.
#[derive(Debug)]
pub struct HistoryTask {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl HistoryTask {
    /// Starts the task on the current tokio runtime. Points already in the
    /// monitor (e.g. just restored) count as stored.
    pub fn spawn(monitor: Monitor, store: HistoryStore, config: HistoryConfig) -> HistoryTask {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut last = monitor.trend().last().map(|p| p.at);
            let mut ticks = tokio::time::interval(config.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            let mut pruned_at: Option<tokio::time::Instant> = None;
            loop {
                let stopping = tokio::select! {
                    _ = ticks.tick() => false,
                    _ = stopped.changed() => true,
                };
                if stopping {
                    // The last tick of the monitor may have closed a point.
                    monitor.tick();
                }
                last = flush(&monitor, &store, last).await;
                let prune_due = pruned_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(3600));
                if prune_due && !stopping {
                    let before = monitor.now().saturating_sub(config.retention);
                    match store.prune(monitor.name(), before).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(target: "dbwarden", removed = n, "old trend points pruned"),
                        Err(e) => tracing::warn!(target: "dbwarden", error = %e, "could not prune trend history"),
                    }
                    pruned_at = Some(tokio::time::Instant::now());
                }
                if stopping {
                    break;
                }
            }
        });
        HistoryTask { stop, task }
    }

    /// Writes the points not yet stored and stops.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(target: "dbwarden", error = %e, "the history task failed");
        }
    }
}

/// Stores the points newer than `last`; returns the newest stored.
async fn flush(monitor: &Monitor, store: &HistoryStore, last: Option<Timestamp>) -> Option<Timestamp> {
    let fresh: Vec<TrendPoint> = monitor.trend().into_iter().filter(|p| last.is_none_or(|l| p.at > l)).collect();
    let Some(newest) = fresh.last().map(|p| p.at) else { return last };
    match store.store(monitor.name(), &fresh).await {
        Ok(_) => Some(newest),
        Err(e) => {
            tracing::warn!(target: "dbwarden", error = %e, "could not store trend points; will retry");
            last
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn point(at: u64, qps: f64) -> TrendPoint {
        TrendPoint {
            at: Timestamp::from_millis(at),
            queries_per_second: qps,
            error_rate: 0.0,
            query_p50_ms: 1.0,
            query_p95_ms: 2.0,
            query_p99_ms: 3.0,
            slow_queries: 0,
            active_sessions: 1,
            pool_utilization_avg: 0.1,
            pool_utilization_max: 0.2,
            pool_pending_max: 0,
            requests_per_second: 0.0,
            requests_in_flight: 0,
        }
    }

    #[tokio::test]
    async fn points_are_stored_once_loaded_in_order_per_monitor_and_pruned() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await.unwrap();
        let store = HistoryStore::Sqlite(pool);
        store.ensure_table().await.unwrap();
        store.ensure_table().await.unwrap();
        let points = [point(1_000, 1.0), point(2_000, 2.0), point(3_000, 3.0)];
        assert_eq!(store.store("main", &points).await.unwrap(), 3);
        assert_eq!(store.store("main", &points[1..]).await.unwrap(), 0, "already stored points are left alone");
        store.store("other", &[point(2_500, 9.0)]).await.unwrap();
        let loaded = store.load("main", Timestamp::from_millis(0), 100).await.unwrap();
        assert_eq!(loaded, points.to_vec());
        let latest = store.load("main", Timestamp::from_millis(0), 2).await.unwrap();
        assert_eq!(latest, points[1..].to_vec(), "the latest points, oldest first");
        assert_eq!(store.prune("main", Timestamp::from_millis(2_500)).await.unwrap(), 2);
        assert_eq!(store.load("main", Timestamp::from_millis(0), 100).await.unwrap(), points[2..].to_vec());
        assert_eq!(store.load("other", Timestamp::from_millis(0), 100).await.unwrap().len(), 1);
    }
}
