//! The SQL of one cleanup: which rows a mode selects, and the per-backend
//! batch statement that deletes at most `n` of them in one short
//! transaction.
//!
//! - PostgreSQL: `DELETE … WHERE key IN (SELECT key … LIMIT n FOR UPDATE
//!   SKIP LOCKED)`: rows an application is updating right now are skipped,
//!   never waited for, and the statement is its own transaction.
//! - MySQL / MariaDB: a chunk of keys is read first, then deleted by key
//!   with the condition checked again, so a session refreshed in between
//!   survives; deleting by primary key locks only those rows.
//! - SQLite: `rowid` chunks (the key for `WITHOUT ROWID` tables).
//!
//! Every value (the cut-off, the chunk size, the keys) is a bind parameter;
//! identifiers come from a verified [`SessionTable`] or are validated here.

use sqlx::{AssertSqlSafe, Row};

use crate::catalog::Layout;
use crate::db::{Backend, SessionDatabase, on_pool};
use crate::table::{ExpiryRule, SessionTable, TableError, placeholder, quote_ident, read_columns, split_table};

use super::{CleanupError, CleanupMode, OrphanRule};

/// Alias of the session table inside batch statements.
const ALIAS: &str = "dbw_s";
/// Alias of the user table in the orphan condition.
const USER_ALIAS: &str = "dbw_u";

/// How MySQL keys travel from the chunk query to the delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    /// Binary keys (dbwarden's SHA-256 `id_hash`): read and bound as bytes.
    Bytes,
    /// Anything else, read as text and compared by MySQL's usual conversion.
    Text,
}

/// A key read by a MySQL chunk query.
#[derive(Debug, Clone)]
enum Key {
    Bytes(Vec<u8>),
    Text(String),
}

/// The statements of one run, built once before the lock is taken.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    backend: Backend,
    table_sql: String,
    key: String,
    /// The condition on the aliased table (columns unqualified or `dbw_s.`).
    condition: String,
    /// The same condition on the unaliased table (MySQL's re-check).
    condition_unaliased: String,
    /// Bind values of the condition, in placeholder order.
    binds: Vec<i64>,
    sqlite_rowid: bool,
    mysql_key: KeyKind,
}

/// What one batch did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchOutcome {
    /// Rows deleted.
    pub(crate) deleted: u64,
    /// Rows the batch picked (MySQL: the keys read; elsewhere the deleted rows).
    pub(crate) picked: u64,
}

fn db_error<'a>(action: &'static str, table: &'a SessionTable) -> impl Fn(sqlx::Error) -> CleanupError + 'a {
    move |err| CleanupError::database(action, table, &err)
}

impl Plan {
    /// Resolves `mode` on `table`: the condition, its binds (cut-off at
    /// `now_ms`) and how batches address rows.
    pub(crate) async fn build(
        db: &SessionDatabase,
        table: &SessionTable,
        mode: &CleanupMode,
        orphans: Option<&OrphanRule>,
        now_ms: i64,
    ) -> Result<Plan, CleanupError> {
        let backend = table.backend();
        let (condition, condition_unaliased, binds) = match mode {
            CleanupMode::Expired => {
                let condition = table.expired_condition(1);
                (condition.clone(), condition, vec![table.expiry_cutoff_ms(now_ms)])
            }
            CleanupMode::Force { max_age } => {
                let layout = Layout::read(db, table).await.map_err(db_error("read the table's columns", table))?;
                let column = match (layout.created, layout.last_seen, &table.mapping().expiry) {
                    (Some(created), _, _) => created,
                    (None, Some(last_seen), _) => last_seen,
                    (None, None, ExpiryRule::IdleFor { .. }) => layout.expiry,
                    (None, None, ExpiryRule::ExpiresAt { .. }) => {
                        return Err(CleanupError::NoAgeColumn { table: table.display_name().to_owned() });
                    }
                };
                let age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
                let condition = format!("{} < {}", column.sql(), column.param(1));
                (condition.clone(), condition, vec![now_ms.saturating_sub(age_ms)])
            }
            CleanupMode::Orphans => {
                let rule = orphans.ok_or(CleanupError::NoOrphanRule)?;
                let user_column = table
                    .mapping()
                    .user_id
                    .clone()
                    .ok_or_else(|| CleanupError::NoUserColumn { table: table.display_name().to_owned() })?;
                let (aliased, unaliased) = orphan_condition(db, table, &user_column, rule).await?;
                (aliased, unaliased, Vec::new())
            }
        };
        let sqlite_rowid = match backend {
            Backend::Sqlite => has_rowid(db, table).await.map_err(db_error("read the table's catalog", table))?,
            _ => false,
        };
        let mysql_key = match backend {
            Backend::MySql => {
                let columns = read_columns(db, table.schema(), table.name())
                    .await
                    .map_err(db_error("read the table's columns", table))?;
                let key_type = columns
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(&table.mapping().key))
                    .map(|c| c.data_type.clone())
                    .unwrap_or_default();
                if key_type.contains("binary") || key_type.contains("blob") { KeyKind::Bytes } else { KeyKind::Text }
            }
            _ => KeyKind::Text,
        };
        Ok(Plan {
            backend,
            table_sql: table.sql_name(),
            key: table.col(&table.mapping().key),
            condition,
            condition_unaliased,
            binds,
            sqlite_rowid,
            mysql_key,
        })
    }

    /// `SELECT COUNT(*)` of the rows the run targets.
    pub(crate) async fn count(&self, db: &SessionDatabase) -> Result<u64, sqlx::Error> {
        let sql = format!("SELECT COUNT(*) FROM {} AS {ALIAS} WHERE {}", self.table_sql, self.condition);
        let count: i64 = on_pool!(db, pool => {
            let mut query = sqlx::query_scalar(AssertSqlSafe(sql));
            for bind in &self.binds {
                query = query.bind(*bind);
            }
            query.fetch_one(pool).await?
        });
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Deletes at most `limit` target rows, each statement its own transaction.
    pub(crate) async fn batch(&self, db: &SessionDatabase, limit: u64) -> Result<BatchOutcome, sqlx::Error> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let limit_param = placeholder(self.backend, self.binds.len() + 1);
        let (table, key, condition) = (&self.table_sql, &self.key, &self.condition);
        match db {
            SessionDatabase::Postgres(pool) => {
                let sql = format!(
                    "DELETE FROM {table} WHERE {key} IN (SELECT {ALIAS}.{key} FROM {table} AS {ALIAS} \
                     WHERE {condition} LIMIT {limit_param} FOR UPDATE SKIP LOCKED)"
                );
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for bind in &self.binds {
                    query = query.bind(*bind);
                }
                let deleted = query.bind(limit).execute(pool).await?.rows_affected();
                Ok(BatchOutcome { deleted, picked: deleted })
            }
            SessionDatabase::Sqlite(pool) => {
                let address = if self.sqlite_rowid { "rowid".to_owned() } else { key.clone() };
                let sql = format!(
                    "DELETE FROM {table} WHERE {address} IN (SELECT {ALIAS}.{address} FROM {table} AS {ALIAS} \
                     WHERE {condition} LIMIT {limit_param})"
                );
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for bind in &self.binds {
                    query = query.bind(*bind);
                }
                let deleted = query.bind(limit).execute(pool).await?.rows_affected();
                Ok(BatchOutcome { deleted, picked: deleted })
            }
            SessionDatabase::MySql(pool) => {
                let selected = match self.mysql_key {
                    KeyKind::Bytes => format!("{ALIAS}.{key}"),
                    KeyKind::Text => format!("CAST({ALIAS}.{key} AS CHAR)"),
                };
                let chunk_sql = format!("SELECT {selected} FROM {table} AS {ALIAS} WHERE {condition} LIMIT ?");
                let mut query = sqlx::query(AssertSqlSafe(chunk_sql));
                for bind in &self.binds {
                    query = query.bind(*bind);
                }
                let rows = query.bind(limit).fetch_all(pool).await?;
                let keys = rows
                    .iter()
                    .map(|row| match self.mysql_key {
                        KeyKind::Bytes => row.try_get::<Vec<u8>, _>(0).map(Key::Bytes),
                        KeyKind::Text => row.try_get::<String, _>(0).map(Key::Text),
                    })
                    .collect::<Result<Vec<Key>, _>>()?;
                if keys.is_empty() {
                    return Ok(BatchOutcome { deleted: 0, picked: 0 });
                }
                let list = vec!["?"; keys.len()].join(", ");
                let delete_sql =
                    format!("DELETE FROM {table} WHERE {key} IN ({list}) AND {}", self.condition_unaliased);
                let mut query = sqlx::query(AssertSqlSafe(delete_sql));
                for key in &keys {
                    query = match key {
                        Key::Bytes(bytes) => query.bind(bytes.clone()),
                        Key::Text(text) => query.bind(text.clone()),
                    };
                }
                for bind in &self.binds {
                    query = query.bind(*bind);
                }
                let deleted = query.execute(pool).await?.rows_affected();
                Ok(BatchOutcome { deleted, picked: keys.len() as u64 })
            }
        }
    }
}

/// Whether a SQLite table has a rowid (it does unless declared `WITHOUT ROWID`).
async fn has_rowid(db: &SessionDatabase, table: &SessionTable) -> Result<bool, sqlx::Error> {
    let SessionDatabase::Sqlite(pool) = db else { return Ok(false) };
    let without_rowid: Option<i64> =
        sqlx::query_scalar("SELECT wr FROM pragma_table_list WHERE schema = ?1 AND name = ?2")
            .bind(table.schema().unwrap_or("main"))
            .bind(table.name())
            .fetch_optional(pool)
            .await?;
    Ok(without_rowid != Some(1))
}

/// What kind of value a column holds, to decide whether a comparison needs a cast.
fn type_family(data_type: &str) -> &'static str {
    if data_type.contains("int") || data_type == "numeric" || data_type == "decimal" {
        "integer"
    } else if data_type.contains("char") || data_type.contains("text") || data_type.contains("clob") {
        "text"
    } else if data_type == "uuid" {
        "uuid"
    } else {
        "other"
    }
}

/// "The session names a user and that user does not exist", for the
/// aliased table and for the table by its full name. A user id compared
/// with a key of another type family (text against an integer id) is
/// compared as text on both sides, since not every text is a number.
async fn orphan_condition(
    db: &SessionDatabase,
    table: &SessionTable,
    user_column: &str,
    rule: &OrphanRule,
) -> Result<(String, String), CleanupError> {
    let backend = table.backend();
    let (schema, name) = split_table(&rule.user_table)?;
    if !crate::table::valid_identifier(&rule.user_key) {
        return Err(
            TableError::InvalidIdentifier { what: "column", name: rule.user_key.chars().take(80).collect() }.into()
        );
    }
    let user_columns = read_columns(db, schema.as_deref(), &name)
        .await
        .map_err(|source| TableError::Catalog { table: rule.user_table.clone(), source })?;
    if user_columns.is_empty() {
        return Err(TableError::MissingTable { table: rule.user_table.clone() }.into());
    }
    let key_type = user_columns
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(&rule.user_key))
        .map(|c| c.data_type.clone())
        .ok_or_else(|| TableError::MissingColumn {
            table: rule.user_table.clone(),
            column: rule.user_key.clone(),
            role: "user key",
        })?;
    let session_columns = read_columns(db, table.schema(), table.name())
        .await
        .map_err(|source| TableError::Catalog { table: table.display_name().to_owned(), source })?;
    let user_type =
        session_columns.iter().find(|c| c.name.eq_ignore_ascii_case(user_column)).map(|c| c.data_type.clone());
    let user_type = user_type.unwrap_or_default();
    let users_sql = match &schema {
        Some(schema) => format!("{}.{}", quote_ident(backend, schema), quote_ident(backend, &name)),
        None => quote_ident(backend, &name),
    };
    let as_text = |expr: String| match backend {
        Backend::MySql => format!("CAST({expr} AS CHAR)"),
        Backend::Postgres | Backend::Sqlite => format!("CAST({expr} AS TEXT)"),
    };
    let same_family = type_family(&key_type) == type_family(&user_type);
    let build = |qualifier: &str| {
        let session_user = format!("{qualifier}.{}", table.col(user_column));
        let user_key = format!("{USER_ALIAS}.{}", quote_ident(backend, &rule.user_key));
        let comparison = if same_family {
            format!("{user_key} = {session_user}")
        } else {
            format!("{} = {}", as_text(user_key), as_text(session_user.clone()))
        };
        format!(
            "{session_user} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {users_sql} AS {USER_ALIAS} WHERE {comparison})"
        )
    };
    Ok((build(ALIAS), build(&table.sql_name())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_families_group_what_compares_without_a_cast() {
        assert_eq!(type_family("bigint"), type_family("integer"));
        assert_eq!(type_family("character varying"), type_family("text"));
        assert_ne!(type_family("text"), type_family("bigint"));
        assert_ne!(type_family("uuid"), type_family("text"));
    }
}
