//! The session table and its companions: table and column names (as
//! constants other modules and tools build their SQL from), the validated
//! table-name type and the DDL each migration runs on each backend.
//!
//! Every timestamp is a `BIGINT` of unix epoch **milliseconds** on every
//! backend, so comparisons and arithmetic read the same everywhere. The
//! session id is never stored: only its SHA-256 (`id_hash`, 32 bytes).

use std::fmt;

use crate::db::Backend;

/// The session table's name when none is configured.
pub const DEFAULT_SESSIONS_TABLE: &str = "dbwarden_sessions";
/// Where applied migrations are recorded: `(subject, version, name, applied_at)`.
pub const MIGRATIONS_TABLE: &str = "dbwarden_migrations";
/// One row per cleanup run.
pub const CLEANUP_RUNS_TABLE: &str = "dbwarden_cleanup_runs";
/// Periodic counts of a session table, for trends.
pub const SNAPSHOTS_TABLE: &str = "dbwarden_session_snapshots";

/// Longest accepted session-table name: index names append up to 16 bytes and
/// must stay within MySQL's 64-byte (PostgreSQL's 63-byte) identifier limit.
pub const MAX_TABLE_NAME_LEN: usize = 47;

/// Column names of the session table.
pub mod columns {
    /// `BYTEA` / `BINARY(32)` / `BLOB` primary key: SHA-256 of the session id.
    pub const ID_HASH: &str = "id_hash";
    /// Nullable text: the user the session belongs to (indexed).
    pub const USER_ID: &str = "user_id";
    /// `BIGINT` epoch ms: when the session was created.
    pub const CREATED_AT: &str = "created_at";
    /// `BIGINT` epoch ms: the last full write or activity touch.
    pub const LAST_SEEN_AT: &str = "last_seen_at";
    /// `BIGINT` epoch ms: when the session expires (indexed; cleanup deletes by it).
    pub const EXPIRES_AT: &str = "expires_at";
    /// `BIGINT` epoch ms: the hard end of the session, however active it is.
    pub const ABSOLUTE_EXPIRES_AT: &str = "absolute_expires_at";
    /// `BIGINT`: bumped by every data write; saves are guarded by it.
    pub const VERSION: &str = "version";
    /// Nullable 32 bytes: keyed SHA-256 of the client IP of the last write.
    pub const IP_HASH: &str = "ip_hash";
    /// Nullable 32 bytes: keyed SHA-256 of the user agent of the last write.
    pub const UA_HASH: &str = "ua_hash";
    /// Bytes: the session data as a JSON object.
    pub const DATA: &str = "data";
}

/// Column names of [`CLEANUP_RUNS_TABLE`].
pub mod cleanup_run_columns {
    /// Auto-increment primary key.
    pub const ID: &str = "id";
    /// `BIGINT` epoch ms.
    pub const STARTED_AT: &str = "started_at";
    /// Nullable `BIGINT` epoch ms (null while running or when the run died).
    pub const FINISHED_AT: &str = "finished_at";
    /// The table that was cleaned (text, up to 255 chars).
    pub const TABLE_NAME: &str = "table_name";
    /// Text up to 32 chars, e.g. `expired`, `force`, `orphans`.
    pub const MODE: &str = "mode";
    /// `BIGINT`.
    pub const ROWS_REMOVED: &str = "rows_removed";
    /// `BIGINT`.
    pub const BATCHES: &str = "batches";
    /// `BIGINT`: failed batches (retried or not).
    pub const ERRORS: &str = "errors";
    /// Boolean (`BOOLEAN` / `TINYINT(1)` / `INTEGER` 0-1).
    pub const DRY_RUN: &str = "dry_run";
    /// Text up to 255 chars: the host that ran it.
    pub const HOST: &str = "host";
}

/// Column names of [`SNAPSHOTS_TABLE`].
pub mod snapshot_columns {
    /// Auto-increment primary key.
    pub const ID: &str = "id";
    /// `BIGINT` epoch ms.
    pub const TAKEN_AT: &str = "taken_at";
    /// The session table counted (text, up to 255 chars).
    pub const TABLE_NAME: &str = "table_name";
    /// `BIGINT`: all rows.
    pub const TOTAL: &str = "total";
    /// `BIGINT`: rows not yet expired.
    pub const ACTIVE: &str = "active";
    /// `BIGINT`: rows past their expiry.
    pub const EXPIRED: &str = "expired";
    /// Nullable `BIGINT`: table size on disk, where the backend tells.
    pub const TABLE_BYTES: &str = "table_bytes";
}

/// A table name that is safe to splice into SQL: ASCII letters, digits and
/// `_`, starting with a letter or `_`, at most [`MAX_TABLE_NAME_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName(String);

impl TableName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<TableName, SchemaError> {
        let mut chars = name.chars();
        let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !starts_well || !rest_ok || name.len() > MAX_TABLE_NAME_LEN {
            return Err(SchemaError::InvalidTableName { name: name.chars().take(80).collect() });
        }
        Ok(TableName(name.to_owned()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A bad schema setting.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaError {
    /// The table name is not a plain SQL identifier.
    #[error(
        "invalid table name {name:?}: use ASCII letters, digits and '_', starting with a letter or '_', at most 47 characters"
    )]
    InvalidTableName {
        /// The rejected name (first 80 characters).
        name: String,
    },
}

/// Which session table the store, the migrations and the tools work on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaConfig {
    sessions_table: TableName,
}

impl SchemaConfig {
    /// A schema whose session table is `table` (validated).
    pub fn new(table: &str) -> Result<SchemaConfig, SchemaError> {
        Ok(SchemaConfig { sessions_table: TableName::new(table)? })
    }

    /// The session table.
    pub fn sessions_table(&self) -> &TableName {
        &self.sessions_table
    }

    /// Name of the index on `expires_at`.
    pub fn expires_index(&self) -> String {
        format!("{}_expires_at_idx", self.sessions_table)
    }

    /// Name of the index on `user_id`.
    pub fn user_index(&self) -> String {
        format!("{}_user_id_idx", self.sessions_table)
    }
}

impl Default for SchemaConfig {
    fn default() -> Self {
        SchemaConfig { sessions_table: TableName(DEFAULT_SESSIONS_TABLE.to_owned()) }
    }
}

/// One step of the schema's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Strictly increasing from 1.
    pub version: i64,
    /// Short snake_case description.
    pub name: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "create_sessions_table" },
    Migration { version: 2, name: "create_cleanup_runs_table" },
    Migration { version: 3, name: "create_session_snapshots_table" },
];

/// DDL that creates [`MIGRATIONS_TABLE`] if it is missing.
pub(crate) fn migrations_table_ddl(backend: Backend) -> String {
    let text = match backend {
        Backend::MySql => "VARCHAR(255)",
        Backend::Postgres | Backend::Sqlite => "TEXT",
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (\
         subject {text} NOT NULL, version BIGINT NOT NULL, name {text} NOT NULL, \
         applied_at BIGINT NOT NULL, PRIMARY KEY (subject, version))"
    )
}

/// The statements of migration `version` for `schema` on `backend`, in order.
/// Every statement is idempotent (`IF NOT EXISTS`), so a half-applied
/// migration on MySQL (whose DDL is not transactional) can be re-run.
pub(crate) fn migration_statements(version: i64, backend: Backend, schema: &SchemaConfig) -> Vec<String> {
    let table = schema.sessions_table();
    let (bytes32, blob, text, short_text, autoinc, boolean) = match backend {
        Backend::Postgres => ("BYTEA", "BYTEA", "TEXT", "TEXT", "BIGSERIAL PRIMARY KEY", "BOOLEAN"),
        Backend::MySql => (
            "BINARY(32)",
            "LONGBLOB",
            "VARCHAR(255)",
            "VARCHAR(32)",
            "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY",
            "BOOLEAN",
        ),
        Backend::Sqlite => ("BLOB", "BLOB", "TEXT", "TEXT", "INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER"),
    };
    // MySQL has no CREATE INDEX IF NOT EXISTS (MariaDB has): declare its
    // indexes inside CREATE TABLE IF NOT EXISTS instead.
    let inline_index = |defs: &[(String, &str)]| -> String {
        match backend {
            Backend::MySql => defs.iter().map(|(name, cols)| format!(", INDEX {name} ({cols})")).collect(),
            _ => String::new(),
        }
    };
    let separate_index = |defs: &[(String, &str)], on: &str| -> Vec<String> {
        match backend {
            Backend::MySql => Vec::new(),
            _ => {
                defs.iter().map(|(name, cols)| format!("CREATE INDEX IF NOT EXISTS {name} ON {on} ({cols})")).collect()
            }
        }
    };
    match version {
        1 => {
            let indexes = [(schema.expires_index(), columns::EXPIRES_AT), (schema.user_index(), columns::USER_ID)];
            let mut statements = vec![format!(
                "CREATE TABLE IF NOT EXISTS {table} (\
                 id_hash {bytes32} NOT NULL PRIMARY KEY, \
                 user_id {text} NULL, \
                 created_at BIGINT NOT NULL, \
                 last_seen_at BIGINT NOT NULL, \
                 expires_at BIGINT NOT NULL, \
                 absolute_expires_at BIGINT NOT NULL, \
                 version BIGINT NOT NULL, \
                 ip_hash {bytes32} NULL, \
                 ua_hash {bytes32} NULL, \
                 data {blob} NOT NULL{})",
                inline_index(&indexes)
            )];
            statements.extend(separate_index(&indexes, table.as_str()));
            statements
        }
        2 => {
            let indexes = [(format!("{CLEANUP_RUNS_TABLE}_started_idx"), "started_at")];
            let mut statements = vec![format!(
                "CREATE TABLE IF NOT EXISTS {CLEANUP_RUNS_TABLE} (\
                 id {autoinc}, \
                 started_at BIGINT NOT NULL, \
                 finished_at BIGINT NULL, \
                 table_name {text} NOT NULL, \
                 mode {short_text} NOT NULL, \
                 rows_removed BIGINT NOT NULL DEFAULT 0, \
                 batches BIGINT NOT NULL DEFAULT 0, \
                 errors BIGINT NOT NULL DEFAULT 0, \
                 dry_run {boolean} NOT NULL DEFAULT FALSE, \
                 host {text} NOT NULL{})",
                inline_index(&indexes)
            )];
            statements.extend(separate_index(&indexes, CLEANUP_RUNS_TABLE));
            statements
        }
        3 => {
            let indexes = [(format!("{SNAPSHOTS_TABLE}_taken_idx"), "table_name, taken_at")];
            let mut statements = vec![format!(
                "CREATE TABLE IF NOT EXISTS {SNAPSHOTS_TABLE} (\
                 id {autoinc}, \
                 taken_at BIGINT NOT NULL, \
                 table_name {text} NOT NULL, \
                 total BIGINT NOT NULL, \
                 active BIGINT NOT NULL, \
                 expired BIGINT NOT NULL, \
                 table_bytes BIGINT NULL{})",
                inline_index(&indexes)
            )];
            statements.extend(separate_index(&indexes, SNAPSHOTS_TABLE));
            statements
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        assert!(TableName::new("dbwarden_sessions").is_ok());
        assert!(TableName::new("_s1").is_ok());
        for bad in ["", "1abc", "a-b", "a;drop table x", "a.b", "naïve", &"x".repeat(48)] {
            assert!(TableName::new(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(SchemaConfig::default().sessions_table().as_str(), DEFAULT_SESSIONS_TABLE);
    }

    #[test]
    fn migration_versions_increase_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1);
            for backend in [Backend::Postgres, Backend::MySql, Backend::Sqlite] {
                assert!(!migration_statements(m.version, backend, &SchemaConfig::default()).is_empty());
            }
        }
    }
}
