//! dbwarden's web-session store and the maintenance around it: a
//! tower-sessions store with throttled activity writes and version-guarded
//! saves, batched cleanup with one runner at a time, analytics and database
//! maintenance, for SQLite, PostgreSQL, MySQL / MariaDB and Redis.

pub mod analytics;
mod catalog;
pub mod cleanup;
pub mod db;
pub mod maintenance;
pub mod migrate;
pub mod schema;
pub mod store;
pub mod table;

pub use cleanup::{
    Cleaner, CleanupConfig, CleanupError, CleanupMode, CleanupProgress, CleanupReport, CleanupRun, CleanupStats,
    LockOutcome, LockPolicy, OrphanRule,
};
pub use db::{Backend, DbError, SessionDatabase};
pub use migrate::{MigrateError, MigrationReport, applied_migrations, migrate, pending_migrations};
pub use schema::{SchemaConfig, SchemaError, TableName};
pub use store::{
    CapPolicy, ClientHasher, ClientHashes, ClientInfoLayer, RESERVED_KEY, RedisSessionStore, RedisStoreConfig,
    SessionStoreExt, SqlSessionStore, StoreConfig, StoreError, StoreStats, UserCap, rotate_session_id,
};
pub use table::{ExpiryRule, Preset, SessionTable, TableError, TableMapping, TimeUnit};
