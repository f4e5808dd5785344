//! The backends dbwarden can monitor, and the little each one must tell us
//! that sqlx's generic `Database` trait does not (rows affected).

use sqlx::Database;

mod sealed {
    pub trait Sealed {}
    impl Sealed for sqlx::Postgres {}
    impl Sealed for sqlx::MySql {}
    impl Sealed for sqlx::Sqlite {}
}

/// A sqlx database a [`crate::MonitoredPool`] can wrap: PostgreSQL, MySQL /
/// MariaDB or SQLite. Sealed: the set follows what the tests cover.
pub trait MonitoredDatabase: Database + sealed::Sealed {
    /// Rows the statement affected, as the driver reports them.
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

impl MonitoredDatabase for sqlx::Postgres {
    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

impl MonitoredDatabase for sqlx::MySql {
    fn rows_affected(result: &sqlx::mysql::MySqlQueryResult) -> u64 {
        result.rows_affected()
    }
}

impl MonitoredDatabase for sqlx::Sqlite {
    fn rows_affected(result: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}
