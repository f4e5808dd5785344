//! dbwarden's sqlx adapter: a monitored connection pool.
//!
//! [`MonitoredPool`] wraps a sqlx [`Pool`](sqlx::Pool) for PostgreSQL,
//! MySQL / MariaDB or SQLite and records into a [`dbwarden_core::Monitor`]:
//!
//! - every checkout ([`MonitoredPool::acquire`]) and every transaction
//!   ([`MonitoredPool::begin`]) as a session, with its wait, use time,
//!   commit or rollback, and its place in the live checkout registry (for
//!   leak detection, with the holder named);
//! - every statement run with the pool, a monitored connection or a
//!   monitored transaction as the executor: execution time, rows and
//!   outcome, the failure classified by [`classify`];
//! - pool timeouts, connection opens (see [`pool`](crate::MonitoredPool) for
//!   what sqlx lets us measure) and periodic pool samples
//!   ([`MonitoredPool::spawn_sampler`]), with the count of acquires waiting
//!   in the pool;
//! - units of work re-run on a fresh connection after a connection-level
//!   failure ([`MonitoredPool::recover`], [`RecoveryPolicy`]) as recovery
//!   attempts;
//! - named operations ([`OperationExt::operation`]): calls, duration,
//!   failures by class, and the statements each ran;
//! - the request a statement or a checkout belongs to, when the request runs
//!   inside [`dbwarden_core::context::with_request`] (the request-tracking
//!   layer does this): its database time and statement count, N+1 patterns,
//!   and the request id and route as the holder of its checkouts.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use dbwarden_core::Monitor;
//! use dbwarden_sqlx::MonitoredPool;
//! use sqlx::postgres::PgPoolOptions;
//!
//! let monitor = Monitor::new();
//! let pool = MonitoredPool::builder(PgPoolOptions::new().max_connections(10), monitor.clone())
//!     .connect("postgres://app@localhost/app")
//!     .await?;
//! let rows = sqlx::query("SELECT id FROM users WHERE active = $1").bind(true).fetch_all(&pool).await?;
//!
//! let mut tx = pool.begin().await?;
//! sqlx::query("UPDATE users SET seen = now() WHERE id = $1").bind(7_i64).execute(&mut tx).await?;
//! tx.commit().await?;
//! # let _ = rows; Ok(()) }
//! ```
//!
//! Statements run on `&mut *conn` or `&mut *tx` (the driver connection the
//! wrappers dereference to) still work, but are not recorded.

mod checkout;
mod classify;
mod connection;
mod database;
mod executor;
mod generator;
mod operation;
mod pool;
mod recovery;
mod transaction;

pub use checkout::{AcquireInfo, CHECKOUT_BACKTRACE_ENV, current_holder};
pub use classify::{classify, classify_database, classify_sqlite};
pub use connection::MonitoredConnection;
pub use database::MonitoredDatabase;
pub use operation::{ClassifyError, Operation, OperationExt};
pub use pool::{MonitoredPool, MonitoredPoolOptions, Sampler, SamplerError};
pub use recovery::{MAX_ATTEMPTS, RecoveryPolicy, RecoveryPolicyBuilder, RecoveryPolicyError};
pub use transaction::MonitoredTransaction;
