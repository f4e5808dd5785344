//! What analytics and maintenance read from a database besides the session
//! rows: indexes and sizes from each backend's catalog, and the small
//! dialect pieces (time columns as epoch milliseconds, integer division)
//! their SQL is built from.
//!
//! Every statement here returns `BIGINT`-typed integers and text cast to a
//! character type, so one row decoder serves PostgreSQL, MySQL / MariaDB and
//! SQLite alike.

use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};

use crate::db::{Backend, SessionDatabase, on_pool};
use crate::table::{SessionTable, TimeUnit, read_columns, time_param};

/// A value bound to a statement.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Int(i64),
    Text(String),
    OptText(Option<String>),
}

/// How to decode one result column.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Int,
    Text,
}

/// One decoded result cell.
#[derive(Debug, Clone)]
pub(crate) enum Cell {
    Int(Option<i64>),
    Text(Option<String>),
}

impl Cell {
    pub(crate) fn int(&self) -> Option<i64> {
        match self {
            Cell::Int(v) => *v,
            Cell::Text(_) => None,
        }
    }

    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Cell::Text(v) => v.clone(),
            Cell::Int(v) => v.map(|v| v.to_string()),
        }
    }
}

/// Runs `sql` with `binds` and decodes each row as `kinds`.
pub(crate) async fn fetch(
    db: &SessionDatabase,
    sql: &str,
    binds: &[Bind],
    kinds: &[Kind],
) -> Result<Vec<Vec<Cell>>, sqlx::Error> {
    on_pool!(db, pool => {
        let mut query = sqlx::query(AssertSqlSafe(sql.to_owned()));
        for bind in binds {
            query = match bind {
                Bind::Int(v) => query.bind(*v),
                Bind::Text(v) => query.bind(v.clone()),
                Bind::OptText(v) => query.bind(v.clone()),
            };
        }
        let rows = query.fetch_all(pool).await?;
        rows.iter()
            .map(|row| {
                kinds
                    .iter()
                    .enumerate()
                    .map(|(i, kind)| {
                        Ok(match kind {
                            Kind::Int => Cell::Int(row.try_get::<Option<i64>, _>(i)?),
                            Kind::Text => Cell::Text(row.try_get::<Option<String>, _>(i)?),
                        })
                    })
                    .collect::<Result<Vec<Cell>, sqlx::Error>>()
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
    })
}

/// Runs `sql` and returns the integers of its first row (empty when no row).
pub(crate) async fn fetch_ints(
    db: &SessionDatabase,
    sql: &str,
    binds: &[Bind],
    width: usize,
) -> Result<Vec<Option<i64>>, sqlx::Error> {
    let kinds = vec![Kind::Int; width];
    let rows = fetch(db, sql, binds, &kinds).await?;
    Ok(rows.into_iter().next().map(|row| row.iter().map(Cell::int).collect()).unwrap_or_default())
}

/// Runs a statement that may not run inside a transaction or as a prepared
/// statement (VACUUM, OPTIMIZE TABLE, PRAGMA …) through the simple protocol,
/// returning its rows as text (such results are read for their messages only).
pub(crate) async fn run_simple(db: &SessionDatabase, sql: &str) -> Result<Vec<Vec<Option<String>>>, sqlx::Error> {
    use sqlx::Executor;
    on_pool!(db, pool => {
        let mut conn = pool.acquire().await?;
        let rows = conn.fetch_all(AssertSqlSafe(sql.to_owned())).await?;
        Ok(rows
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        if let Ok(v) = row.try_get::<Option<String>, _>(i) {
                            v
                        } else if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
                            v.map(|v| v.to_string())
                        } else {
                            row.try_get::<Option<Vec<u8>>, _>(i)
                                .ok()
                                .flatten()
                                .map(|b| String::from_utf8_lossy(&b).into_owned())
                        }
                    })
                    .collect()
            })
            .collect())
    })
}

/// `expr` divided by `divisor`, rounded down to an integer, on `backend`.
pub(crate) fn int_div(backend: Backend, expr: &str, divisor: i64) -> String {
    match backend {
        Backend::MySql => format!("(({expr}) DIV {divisor})"),
        Backend::Postgres | Backend::Sqlite => format!("(({expr}) / {divisor})"),
    }
}

/// A time column of the session table with how it stores time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TimeColumn {
    pub(crate) name: String,
    pub(crate) unit: TimeUnit,
    data_type: String,
    backend: Backend,
    quoted: String,
}

impl TimeColumn {
    pub(crate) fn new(table: &SessionTable, name: &str, unit: TimeUnit, data_type: &str) -> TimeColumn {
        TimeColumn {
            name: name.to_owned(),
            unit,
            data_type: data_type.to_owned(),
            backend: table.backend(),
            quoted: table.col(name),
        }
    }

    /// The column, quoted.
    pub(crate) fn sql(&self) -> &str {
        &self.quoted
    }

    /// The column as `BIGINT` epoch milliseconds.
    pub(crate) fn epoch_ms(&self) -> String {
        let c = &self.quoted;
        match (self.unit, self.backend) {
            (TimeUnit::EpochMillis, _) => c.clone(),
            (TimeUnit::EpochSeconds, _) => format!("({c} * 1000)"),
            (TimeUnit::DateTime, Backend::Postgres) => format!("CAST(EXTRACT(EPOCH FROM {c}) * 1000 AS BIGINT)"),
            (TimeUnit::DateTime, Backend::MySql) => format!("CAST(UNIX_TIMESTAMP({c}) * 1000 AS SIGNED)"),
            (TimeUnit::DateTime, Backend::Sqlite) => format!("(CAST(strftime('%s', {c}) AS INTEGER) * 1000)"),
        }
    }

    /// Bind parameter `n` (epoch milliseconds) as a value comparable with the
    /// column, so comparisons keep using an index on it.
    pub(crate) fn param(&self, n: usize) -> String {
        time_param(self.backend, self.unit, &self.data_type, n)
    }
}

/// The columns of the session table analytics and maintenance use, resolved
/// against the catalog once.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) expiry: TimeColumn,
    pub(crate) created: Option<TimeColumn>,
    pub(crate) last_seen: Option<TimeColumn>,
    pub(crate) absolute_expiry: Option<TimeColumn>,
    pub(crate) user: Option<(String, String)>,
    pub(crate) data: Option<String>,
    pub(crate) ip_hash: Option<String>,
    pub(crate) ua_hash: Option<String>,
}

impl Layout {
    pub(crate) async fn read(db: &SessionDatabase, table: &SessionTable) -> Result<Layout, sqlx::Error> {
        let catalog = read_columns(db, table.schema(), table.name()).await?;
        let type_of =
            |column: &str| catalog.iter().find(|c| c.name.eq_ignore_ascii_case(column)).map(|c| c.data_type.clone());
        let mapping = table.mapping();
        let expiry_unit = mapping.expiry.unit();
        let time_column = |column: &str| {
            let data_type = type_of(column)?;
            let integer = data_type.contains("int") || data_type == "numeric";
            // An integer column counts time like the expiry column when that
            // one is an integer too; dbwarden's own columns are all epoch ms.
            let unit = match (integer, expiry_unit) {
                (false, _) => TimeUnit::DateTime,
                (true, TimeUnit::EpochSeconds) => TimeUnit::EpochSeconds,
                (true, _) => TimeUnit::EpochMillis,
            };
            Some(TimeColumn::new(table, column, unit, &data_type))
        };
        let expiry_column = mapping.expiry.column();
        let expiry = TimeColumn::new(table, expiry_column, expiry_unit, &type_of(expiry_column).unwrap_or_default());
        let is_dbwarden_layout = type_of(crate::schema::columns::ABSOLUTE_EXPIRES_AT).is_some()
            && expiry_column == crate::schema::columns::EXPIRES_AT;
        let present = |column: &str| type_of(column).map(|_| column.to_owned());
        Ok(Layout {
            created: mapping.created_at.as_deref().and_then(time_column),
            last_seen: mapping.last_seen_at.as_deref().and_then(time_column),
            absolute_expiry: if is_dbwarden_layout {
                time_column(crate::schema::columns::ABSOLUTE_EXPIRES_AT)
            } else {
                None
            },
            user: mapping.user_id.as_deref().and_then(|c| Some((c.to_owned(), type_of(c)?))),
            data: mapping.data.as_deref().and_then(present),
            ip_hash: if is_dbwarden_layout { present(crate::schema::columns::IP_HASH) } else { None },
            ua_hash: if is_dbwarden_layout { present(crate::schema::columns::UA_HASH) } else { None },
            expiry,
        })
    }
}

/// One index of the session table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexInfo {
    /// The index's name.
    pub name: String,
    /// Its columns, in order (expression parts are left out).
    pub columns: Vec<String>,
    /// Whether it enforces uniqueness (primary keys included).
    pub unique: bool,
    /// PostgreSQL only: `false` for an index a failed concurrent build left
    /// behind, which queries do not use.
    pub valid: bool,
}

/// The indexes of `table`, read from the backend's catalog, by name.
pub(crate) async fn indexes(db: &SessionDatabase, table: &SessionTable) -> Result<Vec<IndexInfo>, sqlx::Error> {
    let (sql, binds) = match db.backend() {
        Backend::Postgres => (
            "SELECT ic.relname::text, a.attname::text, k.ord::bigint, \
             CASE WHEN i.indisunique THEN 1 ELSE 0 END::bigint, CASE WHEN i.indisvalid THEN 1 ELSE 0 END::bigint \
             FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_class ic ON ic.oid = i.indexrelid \
             CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
             WHERE n.nspname = COALESCE($1, current_schema()) AND c.relname = $2 \
             ORDER BY 1, 3",
            vec![Bind::OptText(table.schema().map(str::to_owned)), Bind::Text(table.name().to_owned())],
        ),
        Backend::MySql => (
            "SELECT CAST(index_name AS CHAR), CAST(column_name AS CHAR), CAST(seq_in_index AS SIGNED), \
             CAST(1 - non_unique AS SIGNED), CAST(1 AS SIGNED) \
             FROM information_schema.statistics \
             WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? \
             ORDER BY 1, 3",
            vec![Bind::OptText(table.schema().map(str::to_owned)), Bind::Text(table.name().to_owned())],
        ),
        Backend::Sqlite => (
            "SELECT il.name, ii.name, ii.seqno, il.\"unique\", 1 \
             FROM pragma_index_list(?1, ?2) AS il, pragma_index_info(il.name, ?2) AS ii \
             ORDER BY 1, 3",
            vec![Bind::Text(table.name().to_owned()), Bind::Text(table.schema().unwrap_or("main").to_owned())],
        ),
    };
    let rows = fetch(db, sql, &binds, &[Kind::Text, Kind::Text, Kind::Int, Kind::Int, Kind::Int]).await?;
    let mut out: Vec<IndexInfo> = Vec::new();
    for row in rows {
        let (Some(name), Some(column)) = (row[0].text(), row[1].text()) else { continue };
        let unique = row[3].int() == Some(1);
        let valid = row[4].int() != Some(0);
        match out.last_mut() {
            Some(last) if last.name == name => last.columns.push(column),
            _ => out.push(IndexInfo { name, columns: vec![column], unique, valid }),
        }
    }
    Ok(out)
}

/// Whether a valid index of `indexes` starts with `column` (so range scans on it can use it).
pub(crate) fn has_leading_index(indexes: &[IndexInfo], column: &str) -> bool {
    indexes.iter().any(|i| i.valid && i.columns.first().is_some_and(|c| c.eq_ignore_ascii_case(column)))
}

/// Sizes of the session table on disk, where the backend tells.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TableSizes {
    /// The table's own pages (with TOAST on PostgreSQL).
    pub table_bytes: Option<i64>,
    /// All its indexes.
    pub index_bytes: Option<i64>,
    /// Both.
    pub total_bytes: Option<i64>,
}

/// Reads the table's and its indexes' sizes. SQLite needs the `dbstat`
/// table; without it the sizes are unknown (`None`), not an error.
pub(crate) async fn sizes(db: &SessionDatabase, table: &SessionTable) -> Result<TableSizes, sqlx::Error> {
    let row = match db.backend() {
        Backend::Postgres => {
            fetch_ints(
                db,
                "SELECT pg_table_size(to_regclass($1))::bigint, pg_indexes_size(to_regclass($1))::bigint",
                &[Bind::Text(table.sql_name())],
                2,
            )
            .await?
        }
        Backend::MySql => {
            fetch_ints(
                db,
                "SELECT CAST(data_length AS SIGNED), CAST(index_length AS SIGNED) FROM information_schema.tables \
                 WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?",
                &[Bind::OptText(table.schema().map(str::to_owned)), Bind::Text(table.name().to_owned())],
                2,
            )
            .await?
        }
        Backend::Sqlite => {
            let schema = table.schema().unwrap_or("main").to_owned();
            let sql = "SELECT CAST(SUM(CASE WHEN d.name = ?1 THEN d.pgsize ELSE 0 END) AS INTEGER), \
                       CAST(SUM(CASE WHEN d.name <> ?1 THEN d.pgsize ELSE 0 END) AS INTEGER) \
                       FROM dbstat(?2) AS d \
                       WHERE d.name = ?1 OR d.name IN (SELECT name FROM pragma_index_list(?1, ?2))";
            match fetch_ints(db, sql, &[Bind::Text(table.name().to_owned()), Bind::Text(schema)], 2).await {
                Ok(row) => row,
                Err(sqlx::Error::Database(err)) if err.message().contains("dbstat") => Vec::new(),
                Err(err) => return Err(err),
            }
        }
    };
    let table_bytes = row.first().copied().flatten();
    let index_bytes = row.get(1).copied().flatten();
    let total_bytes = match (table_bytes, index_bytes) {
        (Some(t), Some(i)) => Some(t + i),
        (t, i) => t.or(i),
    };
    Ok(TableSizes { table_bytes, index_bytes, total_bytes })
}

/// Whether `table` (unqualified, in the current schema / database) exists.
pub(crate) async fn table_exists(db: &SessionDatabase, name: &str) -> Result<bool, sqlx::Error> {
    Ok(!read_columns(db, None, name).await?.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_index_needs_the_first_column_and_a_valid_index() {
        let idx = |name: &str, columns: &[&str], valid: bool| IndexInfo {
            name: name.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            unique: false,
            valid,
        };
        let list = vec![idx("a", &["user_id", "expires_at"], true), idx("b", &["expire_date"], false)];
        assert!(!has_leading_index(&list, "expires_at"));
        assert!(has_leading_index(&list, "USER_ID"));
        assert!(!has_leading_index(&list, "expire_date"));
    }

    #[test]
    fn integer_division_uses_div_on_mysql() {
        assert_eq!(int_div(Backend::MySql, "x", 10), "((x) DIV 10)");
        assert_eq!(int_div(Backend::Sqlite, "x", 10), "((x) / 10)");
    }
}
