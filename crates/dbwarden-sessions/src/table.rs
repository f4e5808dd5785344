//! Which session table the cleanup, analytics and maintenance tools work on,
//! and how to read its columns: dbwarden's own table, or a table another
//! framework created (Django, Flask-Session, Rails' activerecord session
//! store, tower-sessions' sqlx stores), named by a [`Preset`] or described
//! column by column with a [`TableMapping`].
//!
//! A mapping is only a claim about the table; [`SessionTable::verify`] checks
//! it against the database's catalog before anything runs, so a table without
//! the expected columns gives an error naming the missing column and nothing
//! is touched.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::db::{Backend, SessionDatabase, on_pool};
use crate::schema::{DEFAULT_SESSIONS_TABLE, columns};

/// The default trim age of Rails' activerecord session store
/// (`db:sessions:trim` removes sessions not updated for 30 days).
pub const RAILS_DEFAULT_TRIM_AGE: Duration = Duration::from_secs(30 * 86_400);

/// A known session-table layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// dbwarden's own `dbwarden_sessions` (epoch-millisecond columns).
    Dbwarden,
    /// Django's `django_session` (`session_key`, `expire_date`).
    Django,
    /// Flask-Session's SQLAlchemy table `sessions` (`id`, `session_id`, `expiry`).
    FlaskSession,
    /// Rails' activerecord session store `sessions` (`updated_at` plus a trim age).
    Rails,
    /// tower-sessions' sqlx stores (`tower_sessions.session` on PostgreSQL
    /// and MySQL, `tower_sessions` on SQLite; `expiry_date`).
    TowerSessions,
}

impl Preset {
    /// Every preset, in the order the CLI lists them.
    pub const ALL: [Preset; 5] =
        [Preset::Dbwarden, Preset::Django, Preset::FlaskSession, Preset::Rails, Preset::TowerSessions];

    /// The name the CLI and the config use.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Dbwarden => "dbwarden",
            Preset::Django => "django",
            Preset::FlaskSession => "flask-session",
            Preset::Rails => "rails",
            Preset::TowerSessions => "tower-sessions",
        }
    }

    /// The preset's mapping on `backend` (tower-sessions' table differs per backend).
    pub fn mapping(self, backend: Backend) -> TableMapping {
        let m = |table: &str, key: &str, expiry: ExpiryRule| TableMapping {
            table: table.to_owned(),
            key: key.to_owned(),
            expiry,
            created_at: None,
            last_seen_at: None,
            user_id: None,
            data: None,
        };
        match self {
            Preset::Dbwarden => TableMapping {
                created_at: Some(columns::CREATED_AT.to_owned()),
                last_seen_at: Some(columns::LAST_SEEN_AT.to_owned()),
                user_id: Some(columns::USER_ID.to_owned()),
                data: Some(columns::DATA.to_owned()),
                ..m(
                    DEFAULT_SESSIONS_TABLE,
                    columns::ID_HASH,
                    ExpiryRule::ExpiresAt { column: columns::EXPIRES_AT.to_owned(), unit: TimeUnit::EpochMillis },
                )
            },
            Preset::Django => TableMapping {
                data: Some("session_data".to_owned()),
                ..m(
                    "django_session",
                    "session_key",
                    ExpiryRule::ExpiresAt { column: "expire_date".to_owned(), unit: TimeUnit::DateTime },
                )
            },
            Preset::FlaskSession => TableMapping {
                data: Some("data".to_owned()),
                ..m("sessions", "id", ExpiryRule::ExpiresAt { column: "expiry".to_owned(), unit: TimeUnit::DateTime })
            },
            Preset::Rails => TableMapping {
                created_at: Some("created_at".to_owned()),
                last_seen_at: Some("updated_at".to_owned()),
                data: Some("data".to_owned()),
                ..m(
                    "sessions",
                    "id",
                    ExpiryRule::IdleFor {
                        column: "updated_at".to_owned(),
                        unit: TimeUnit::DateTime,
                        max_idle_seconds: RAILS_DEFAULT_TRIM_AGE.as_secs(),
                    },
                )
            },
            Preset::TowerSessions => {
                let (table, unit) = match backend {
                    Backend::Sqlite => ("tower_sessions", TimeUnit::EpochSeconds),
                    Backend::Postgres | Backend::MySql => ("tower_sessions.session", TimeUnit::DateTime),
                };
                TableMapping {
                    data: Some("data".to_owned()),
                    ..m(table, "id", ExpiryRule::ExpiresAt { column: "expiry_date".to_owned(), unit })
                }
            }
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Preset {
    type Err = TableError;

    fn from_str(s: &str) -> Result<Preset, TableError> {
        Preset::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| TableError::UnknownPreset { name: s.chars().take(80).collect() })
    }
}

/// How a timestamp column stores time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeUnit {
    /// An integer of unix epoch milliseconds.
    EpochMillis,
    /// An integer of unix epoch seconds.
    EpochSeconds,
    /// The database's date-time type (`timestamp [with time zone]`,
    /// `DATETIME` / `TIMESTAMP`, or SQLite text `YYYY-MM-DD HH:MM:SS[.f]`),
    /// read as UTC.
    DateTime,
}

/// When a row of the table counts as expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum ExpiryRule {
    /// Expired once `column` is in the past.
    ExpiresAt {
        /// The expiry column.
        column: String,
        /// How it stores time.
        unit: TimeUnit,
    },
    /// Expired once `column` (last activity) is older than `max_idle_seconds`.
    IdleFor {
        /// The activity column.
        column: String,
        /// How it stores time.
        unit: TimeUnit,
        /// The trim age.
        max_idle_seconds: u64,
    },
}

impl ExpiryRule {
    /// The column the rule reads.
    pub fn column(&self) -> &str {
        match self {
            ExpiryRule::ExpiresAt { column, .. } | ExpiryRule::IdleFor { column, .. } => column,
        }
    }

    /// How that column stores time.
    pub fn unit(&self) -> TimeUnit {
        match self {
            ExpiryRule::ExpiresAt { unit, .. } | ExpiryRule::IdleFor { unit, .. } => *unit,
        }
    }
}

/// A session table described column by column (a preset's, or one from the
/// config's `[cleanup.mapping]`). Only `table`, `key` and the expiry column
/// are required; the optional columns enable analytics that need them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableMapping {
    /// The table, optionally qualified by its schema (PostgreSQL) or
    /// database (MySQL): `sessions` or `tower_sessions.session`.
    pub table: String,
    /// A unique, indexed column the batches are cut by (the primary key).
    pub key: String,
    /// When a row is expired.
    pub expiry: ExpiryRule,
    /// When the session was created.
    #[serde(default)]
    pub created_at: Option<String>,
    /// The last activity.
    #[serde(default)]
    pub last_seen_at: Option<String>,
    /// The owning user (nullable).
    #[serde(default)]
    pub user_id: Option<String>,
    /// The session data.
    #[serde(default)]
    pub data: Option<String>,
}

/// A problem with a session-table description or the table itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// `--preset` named no known preset.
    #[error("unknown preset `{name}`: expected one of dbwarden, django, flask-session, rails, tower-sessions")]
    UnknownPreset {
        /// What was given (first 80 characters).
        name: String,
    },
    /// A table or column name is not a plain identifier.
    #[error(
        "`{name}` is not a usable {what} name: use ASCII letters, digits and `_`, starting with a letter or `_`{}",
        if *.what == "table" { " (optionally `schema.table`)" } else { "" }
    )]
    InvalidIdentifier {
        /// `table` or `column`.
        what: &'static str,
        /// The rejected name (first 80 characters).
        name: String,
    },
    /// The table does not exist.
    #[error("the session table `{table}` does not exist in this database")]
    MissingTable {
        /// The table as configured.
        table: String,
    },
    /// The table lacks a column the mapping names.
    #[error(
        "the session table `{table}` has no column `{column}` (the {role} column); \
         pick the right --preset or fix the column mapping"
    )]
    MissingColumn {
        /// The table as configured.
        table: String,
        /// The missing column.
        column: String,
        /// What the mapping uses it for (`key`, `expiry`, `created_at`, …).
        role: &'static str,
    },
    /// The expiry column's type does not match the mapping's time unit.
    #[error("column `{column}` of `{table}` is {found}, which cannot hold {expected}")]
    WrongColumnType {
        /// The table as configured.
        table: String,
        /// The column.
        column: String,
        /// The type the catalog reports.
        found: String,
        /// What the mapping expects.
        expected: &'static str,
    },
    /// Reading the catalog failed.
    #[error("could not read the columns of `{table}`: {source}")]
    Catalog {
        /// The table as configured.
        table: String,
        /// The database error.
        #[source]
        source: sqlx::Error,
    },
}

pub(crate) fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

/// Quotes a validated identifier for `backend`.
pub fn quote_ident(backend: Backend, name: &str) -> String {
    match backend {
        Backend::MySql => format!("`{name}`"),
        Backend::Postgres | Backend::Sqlite => format!("\"{name}\""),
    }
}

/// The `n`-th (1-based) bind placeholder on `backend`.
pub fn placeholder(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Postgres => format!("${n}"),
        Backend::MySql | Backend::Sqlite => "?".to_owned(),
    }
}

/// An SQL expression that converts bind parameter `n` (epoch milliseconds,
/// `BIGINT`) into a value comparable with a column of `unit` whose catalog
/// type is `data_type`, so comparisons keep using an index on the column.
pub(crate) fn time_param(backend: Backend, unit: TimeUnit, data_type: &str, n: usize) -> String {
    let p = placeholder(backend, n);
    match (unit, backend) {
        (TimeUnit::EpochMillis, _) => p,
        (TimeUnit::EpochSeconds, Backend::MySql) => format!("({p} DIV 1000)"),
        (TimeUnit::EpochSeconds, Backend::Postgres | Backend::Sqlite) => format!("({p} / 1000)"),
        (TimeUnit::DateTime, Backend::Postgres) => {
            if data_type.contains("without time zone") {
                format!("(to_timestamp({p}::float8 / 1000) AT TIME ZONE 'UTC')")
            } else {
                format!("to_timestamp({p}::float8 / 1000)")
            }
        }
        // sqlx opens MySQL sessions with time_zone '+00:00', so this is UTC.
        (TimeUnit::DateTime, Backend::MySql) => format!("FROM_UNIXTIME({p} / 1000)"),
        // Text timestamps compare as strings; datetime() gives the same layout.
        (TimeUnit::DateTime, Backend::Sqlite) => format!("datetime({p} / 1000, 'unixepoch')"),
    }
}

/// A column the catalog confirmed, with what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedColumn {
    /// The column's name.
    pub name: String,
    /// The type the catalog reports, lowercased (`bigint`, `timestamp with time zone`, `datetime`, …).
    pub data_type: String,
}

/// A session table whose mapping the database confirmed: every named column
/// exists, and the expiry column's type fits its unit. Build SQL from this,
/// never from an unverified [`TableMapping`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionTable {
    #[serde(skip)]
    backend: Backend,
    schema: Option<String>,
    name: String,
    mapping: TableMapping,
    expiry_type: String,
}

impl SessionTable {
    /// Checks `mapping` against the catalog of `db`. Nothing is written.
    pub async fn verify(db: &SessionDatabase, mapping: TableMapping) -> Result<SessionTable, TableError> {
        let backend = db.backend();
        let (schema, name) = split_table(&mapping.table)?;
        let mut wanted: Vec<(&'static str, String)> =
            vec![("key", mapping.key.clone()), ("expiry", mapping.expiry.column().to_owned())];
        let optional = [
            ("created_at", &mapping.created_at),
            ("last_seen_at", &mapping.last_seen_at),
            ("user_id", &mapping.user_id),
            ("data", &mapping.data),
        ];
        wanted.extend(optional.into_iter().filter_map(|(role, column)| Some((role, column.clone()?))));
        for (_, column) in &wanted {
            if !valid_identifier(column) {
                return Err(TableError::InvalidIdentifier { what: "column", name: column.chars().take(80).collect() });
            }
        }
        let catalog = read_columns(db, schema.as_deref(), &name)
            .await
            .map_err(|source| TableError::Catalog { table: mapping.table.clone(), source })?;
        if catalog.is_empty() {
            return Err(TableError::MissingTable { table: mapping.table.clone() });
        }
        let type_of =
            |column: &str| catalog.iter().find(|c| c.name.eq_ignore_ascii_case(column)).map(|c| c.data_type.clone());
        for (role, column) in &wanted {
            if type_of(column).is_none() {
                return Err(TableError::MissingColumn { table: mapping.table.clone(), column: column.clone(), role });
            }
        }
        let expiry_type = type_of(mapping.expiry.column()).unwrap_or_default();
        let integer = expiry_type.contains("int");
        let fits = match mapping.expiry.unit() {
            TimeUnit::EpochMillis | TimeUnit::EpochSeconds => integer || expiry_type == "numeric",
            TimeUnit::DateTime => !integer,
        };
        if !fits {
            return Err(TableError::WrongColumnType {
                table: mapping.table.clone(),
                column: mapping.expiry.column().to_owned(),
                found: expiry_type,
                expected: match mapping.expiry.unit() {
                    TimeUnit::EpochMillis => "epoch milliseconds (an integer)",
                    TimeUnit::EpochSeconds => "epoch seconds (an integer)",
                    TimeUnit::DateTime => "a date-time",
                },
            });
        }
        Ok(SessionTable { backend, schema, name, mapping, expiry_type })
    }

    /// The backend the table lives on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The mapping as verified.
    pub fn mapping(&self) -> &TableMapping {
        &self.mapping
    }

    /// The table as configured (`schema.table` or `table`), for messages and records.
    pub fn display_name(&self) -> &str {
        &self.mapping.table
    }

    /// The table's unqualified name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schema (PostgreSQL) or database (MySQL) qualifier, when given.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The quoted, possibly qualified table name to splice into SQL.
    pub fn sql_name(&self) -> String {
        let table = quote_ident(self.backend, &self.name);
        match &self.schema {
            Some(schema) => format!("{}.{table}", quote_ident(self.backend, schema)),
            None => table,
        }
    }

    /// A quoted column name.
    pub fn col(&self, column: &str) -> String {
        quote_ident(self.backend, column)
    }

    /// The condition "this row is expired" with the cut-off in bind
    /// parameter `n`; bind [`expiry_cutoff_ms`](Self::expiry_cutoff_ms).
    pub fn expired_condition(&self, n: usize) -> String {
        let column = self.col(self.mapping.expiry.column());
        let unit = self.mapping.expiry.unit();
        format!("{column} < {}", time_param(self.backend, unit, &self.expiry_type, n))
    }

    /// The bind value for [`expired_condition`](Self::expired_condition) at
    /// `now_ms`: the idle rule moves the cut-off back by its trim age.
    pub fn expiry_cutoff_ms(&self, now_ms: i64) -> i64 {
        match &self.mapping.expiry {
            ExpiryRule::ExpiresAt { .. } => now_ms,
            ExpiryRule::IdleFor { max_idle_seconds, .. } => {
                now_ms.saturating_sub(i64::try_from(*max_idle_seconds).unwrap_or(i64::MAX).saturating_mul(1000))
            }
        }
    }
}

/// Checks that `name` can name a table (`table` or `schema.table`, plain
/// identifiers); the error says what is wrong.
pub fn check_table_name(name: &str) -> Result<(), TableError> {
    split_table(name).map(drop)
}

/// Checks that `name` can name a column (a plain identifier).
pub fn check_column_name(name: &str) -> Result<(), TableError> {
    if valid_identifier(name) {
        Ok(())
    } else {
        Err(TableError::InvalidIdentifier { what: "column", name: name.chars().take(80).collect() })
    }
}

pub(crate) fn split_table(table: &str) -> Result<(Option<String>, String), TableError> {
    let invalid = || TableError::InvalidIdentifier { what: "table", name: table.chars().take(80).collect() };
    let mut parts = table.split('.');
    let (schema, name) = match (parts.next(), parts.next(), parts.next()) {
        (Some(name), None, None) => (None, name),
        (Some(schema), Some(name), None) => (Some(schema), name),
        _ => return Err(invalid()),
    };
    if !valid_identifier(name) || !schema.is_none_or(valid_identifier) {
        return Err(invalid());
    }
    Ok((schema.map(str::to_owned), name.to_owned()))
}

/// The columns of a table with their lowercased types; empty when it does not exist.
pub async fn read_columns(
    db: &SessionDatabase,
    schema: Option<&str>,
    table: &str,
) -> Result<Vec<VerifiedColumn>, sqlx::Error> {
    let sql = match db.backend() {
        Backend::Postgres => {
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = COALESCE($1, current_schema()) AND table_name = $2"
        }
        Backend::MySql => {
            "SELECT CAST(column_name AS CHAR), CAST(data_type AS CHAR) FROM information_schema.columns \
             WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?"
        }
        Backend::Sqlite => "SELECT name, type FROM pragma_table_info(?2, ?1)",
    };
    let schema = schema.map(str::to_owned);
    let schema = match (db.backend(), schema) {
        (Backend::Sqlite, None) => Some("main".to_owned()),
        (_, s) => s,
    };
    on_pool!(db, pool => {
        let rows = sqlx::query(sql).bind(schema).bind(table).fetch_all(pool).await?;
        rows.into_iter()
            .map(|row| {
                Ok(VerifiedColumn {
                    name: row.try_get::<String, _>(0)?,
                    data_type: row.try_get::<String, _>(1)?.to_ascii_lowercase(),
                })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_round_trip_by_name() {
        for preset in Preset::ALL {
            assert_eq!(preset.as_str().parse::<Preset>().ok(), Some(preset));
        }
        let err = "drupal".parse::<Preset>().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("drupal") && err.contains("django"), "{err}");
    }

    #[test]
    fn table_names_split_and_refuse_injection() {
        assert_eq!(split_table("tower_sessions.session").ok(), Some((Some("tower_sessions".into()), "session".into())));
        assert_eq!(split_table("sessions").ok(), Some((None, "sessions".into())));
        for bad in ["a.b.c", "x; DROP TABLE y", "", "1abc", "a.", "a\"b"] {
            assert!(split_table(bad).is_err(), "{bad}");
        }
    }
}
