//! The database handle every part of dbwarden-sessions works through: one
//! sqlx pool for PostgreSQL, MySQL / MariaDB or SQLite, chosen from the URL.
//!
//! Redis is not a [`SessionDatabase`]; it has its own store
//! ([`crate::store::RedisSessionStore`]) because it has no tables to migrate,
//! clean or analyze.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

/// Default number of pooled connections [`SessionDatabase::connect`] opens at most.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// How long a SQLite connection waits for a lock held by another writer
/// before giving up with `database is locked`.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Which database engine a [`SessionDatabase`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
    /// SQLite (a file, or an in-memory database).
    Sqlite,
}

impl Backend {
    /// A short lowercase name: `postgres`, `mysql` or `sqlite`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
            Backend::Sqlite => "sqlite",
        }
    }

    /// The backend a database URL names by its scheme, if it names one.
    pub fn from_url(url: &str) -> Result<Backend, DbError> {
        let scheme = url.split(':').next().unwrap_or_default().to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            "mysql" | "mariadb" => Ok(Backend::MySql),
            "sqlite" => Ok(Backend::Sqlite),
            _ => Err(DbError::UnsupportedUrl { url: redact_url(url) }),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors opening a [`SessionDatabase`]. URLs in messages have their
/// password replaced by `***`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The URL's scheme is not postgres://, mysql:// (or mariadb://) or sqlite:.
    #[error("unsupported database url {url}: expected postgres://, mysql://, mariadb:// or sqlite:")]
    UnsupportedUrl {
        /// The URL, password redacted.
        url: String,
    },
    /// The URL could not be parsed into connection options.
    #[error("invalid database url {url}: {message}")]
    InvalidUrl {
        /// The URL, password redacted.
        url: String,
        /// What sqlx said about it (passwords redacted).
        message: String,
    },
    /// Connecting failed.
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// What sqlx said about it (passwords redacted).
        message: String,
    },
}

/// A pooled connection to the database that holds the session table.
///
/// Cheap to clone (the pools are reference counted).
#[derive(Debug, Clone)]
pub enum SessionDatabase {
    /// A PostgreSQL pool.
    Postgres(PgPool),
    /// A MySQL / MariaDB pool.
    MySql(MySqlPool),
    /// A SQLite pool.
    Sqlite(SqlitePool),
}

impl SessionDatabase {
    /// Connects to `url` with at most [`DEFAULT_MAX_CONNECTIONS`] connections.
    ///
    /// SQLite URLs create the file when it does not exist (`mode=rwc`), use WAL
    /// journaling for files and wait up to [`SQLITE_BUSY_TIMEOUT`] for locks.
    pub async fn connect(url: &str) -> Result<SessionDatabase, DbError> {
        Self::connect_with(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// Connects to `url` with at most `max_connections` pooled connections.
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<SessionDatabase, DbError> {
        let max_connections = max_connections.max(1);
        let connect_error = |err: sqlx::Error| DbError::Connect {
            url: redact_url(url),
            message: redact_message(&err.to_string(), url),
        };
        match Backend::from_url(url)? {
            Backend::Postgres => PgPoolOptions::new()
                .max_connections(max_connections)
                .connect(url)
                .await
                .map(SessionDatabase::Postgres)
                .map_err(connect_error),
            Backend::MySql => {
                // sqlx only knows the mysql:// scheme; MariaDB speaks the same protocol.
                let url = match url.strip_prefix("mariadb:") {
                    Some(rest) => format!("mysql:{rest}"),
                    None => url.to_owned(),
                };
                MySqlPoolOptions::new()
                    .max_connections(max_connections)
                    .connect(&url)
                    .await
                    .map(SessionDatabase::MySql)
                    .map_err(connect_error)
            }
            Backend::Sqlite => {
                let mut options = SqliteConnectOptions::from_str(url)
                    .map_err(|err| DbError::InvalidUrl {
                        url: redact_url(url),
                        message: redact_message(&err.to_string(), url),
                    })?
                    .create_if_missing(true)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT);
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                let mut pool = SqlitePoolOptions::new().max_connections(max_connections);
                if in_memory {
                    // An in-memory database lives as long as one connection to it:
                    // keep one open for the pool's whole life.
                    pool = pool.min_connections(1).idle_timeout(None).max_lifetime(None);
                } else {
                    // WAL lets session loads go on while a writer (cleanup) works.
                    options = options.journal_mode(SqliteJournalMode::Wal);
                }
                pool.connect_with(options).await.map(SessionDatabase::Sqlite).map_err(connect_error)
            }
        }
    }

    /// Wraps an existing PostgreSQL pool.
    pub fn from_pg_pool(pool: PgPool) -> SessionDatabase {
        SessionDatabase::Postgres(pool)
    }

    /// Wraps an existing MySQL / MariaDB pool.
    pub fn from_mysql_pool(pool: MySqlPool) -> SessionDatabase {
        SessionDatabase::MySql(pool)
    }

    /// Wraps an existing SQLite pool.
    pub fn from_sqlite_pool(pool: SqlitePool) -> SessionDatabase {
        SessionDatabase::Sqlite(pool)
    }

    /// Which engine this handle talks to.
    pub fn backend(&self) -> Backend {
        match self {
            SessionDatabase::Postgres(_) => Backend::Postgres,
            SessionDatabase::MySql(_) => Backend::MySql,
            SessionDatabase::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Closes every pooled connection and waits for them to be returned.
    pub async fn close(&self) {
        match self {
            SessionDatabase::Postgres(pool) => pool.close().await,
            SessionDatabase::MySql(pool) => pool.close().await,
            SessionDatabase::Sqlite(pool) => pool.close().await,
        }
    }
}

impl From<PgPool> for SessionDatabase {
    fn from(pool: PgPool) -> Self {
        SessionDatabase::Postgres(pool)
    }
}

impl From<MySqlPool> for SessionDatabase {
    fn from(pool: MySqlPool) -> Self {
        SessionDatabase::MySql(pool)
    }
}

impl From<SqlitePool> for SessionDatabase {
    fn from(pool: SqlitePool) -> Self {
        SessionDatabase::Sqlite(pool)
    }
}

/// Runs `$body` with `$pool` bound to the concrete sqlx pool of a
/// [`SessionDatabase`]; the body is compiled once per backend, so it may use
/// anything all three pools support (binds of `i64`, `String`, `Vec<u8>`,
/// `Option<_>`, `bool`; `try_get` of the same).
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::SessionDatabase::Postgres($pool) => $body,
            $crate::db::SessionDatabase::MySql($pool) => $body,
            $crate::db::SessionDatabase::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Replaces the password of a database URL with `***`, both in the user-info
/// part (`postgres://user:secret@host`) and in a `password=` query parameter.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..].find(['/', '?', '#']).map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let at = rest_start + at;
            if let Some(colon) = out[rest_start..at].find(':') {
                out.replace_range(rest_start + colon + 1..at, "***");
            }
        }
    }
    if let Some(query_start) = out.find('?') {
        let (head, query) = out.split_at(query_start + 1);
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{head}{}", redacted.join("&"));
    }
    out
}

/// Removes the password of `url` from a driver message that may quote it.
fn redact_message(message: &str, url: &str) -> String {
    match password_of(url) {
        Some(password) if !password.is_empty() => message.replace(password, "***"),
        _ => message.to_owned(),
    }
}

fn password_of(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    userinfo.split_once(':').map(|(_, password)| password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_userinfo_and_query() {
        assert_eq!(redact_url("postgres://app:s3cret@db:5432/x"), "postgres://app:***@db:5432/x");
        assert_eq!(redact_url("mysql://root@127.0.0.1/test"), "mysql://root@127.0.0.1/test");
        assert_eq!(
            redact_url("postgres://db/x?user=a&password=hunter2&sslmode=disable"),
            "postgres://db/x?user=a&password=***&sslmode=disable"
        );
        assert_eq!(redact_url("sqlite://./dbwarden.db?mode=rwc"), "sqlite://./dbwarden.db?mode=rwc");
        assert_eq!(redact_message("failed for app:s3cret", "postgres://app:s3cret@h/x"), "failed for app:***");
    }

    #[test]
    fn backend_follows_the_scheme() {
        assert_eq!(Backend::from_url("postgresql://h/x").ok(), Some(Backend::Postgres));
        assert_eq!(Backend::from_url("mariadb://h/x").ok(), Some(Backend::MySql));
        assert_eq!(Backend::from_url("sqlite::memory:").ok(), Some(Backend::Sqlite));
        let err = Backend::from_url("oracle://u:pw@h/x").map(|_| ()).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("unsupported database url oracle://u:***@h/x: expected postgres://, mysql://, mariadb:// or sqlite:")
        );
    }
}
