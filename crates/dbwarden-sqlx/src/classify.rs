//! Turning a [`sqlx::Error`] into the [`ErrorClass`] dbwarden counts it under.
//!
//! The mapping of codes to classes lives in the core
//! ([`ErrorClass::from_sqlstate`], [`ErrorClass::from_mysql_code`]); this
//! module only extracts the right code from each driver's error:
//!
//! - PostgreSQL: the SQLSTATE.
//! - MySQL / MariaDB: the server's error number (more precise than the
//!   SQLSTATE, which MySQL uses as a coarse category); the SQLSTATE when the
//!   number is unknown to the core.
//! - SQLite: the extended result code, reduced to its primary code.

use dbwarden_core::ErrorClass;
use sqlx::error::DatabaseError;

/// SQLite primary result codes used below (see `sqlite3.h`).
const SQLITE_ERROR: i64 = 1;
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_IOERR: i64 = 10;
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_CANTOPEN: i64 = 14;
const SQLITE_CONSTRAINT: i64 = 19;
const SQLITE_NOTADB: i64 = 26;

/// The class of a sqlx error.
///
/// Pool timeouts are [`ErrorClass::PoolTimeout`]; I/O, TLS, protocol
/// errors, a closed pool and a crashed SQLite worker are
/// [`ErrorClass::ConnectionFailure`]; database errors are classified by
/// their code; everything else (decoding, missing rows, bad arguments) is
/// [`ErrorClass::Other`].
pub fn classify(error: &sqlx::Error) -> ErrorClass {
    match error {
        sqlx::Error::PoolTimedOut => ErrorClass::PoolTimeout,
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => ErrorClass::ConnectionFailure,
        sqlx::Error::Database(db) => classify_database(db.as_ref()),
        _ => ErrorClass::Other,
    }
}

/// The class of an error returned by the database server.
pub fn classify_database(db: &dyn DatabaseError) -> ErrorClass {
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return match ErrorClass::from_mysql_code(u32::from(my.number())) {
            ErrorClass::Other => my.code().map_or(ErrorClass::Other, ErrorClass::from_sqlstate),
            class => class,
        };
    }
    if let Some(lite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
        let code = DatabaseError::code(lite).and_then(|c| c.parse::<i64>().ok()).unwrap_or(0);
        return classify_sqlite(code, DatabaseError::message(lite));
    }
    db.code().map_or(ErrorClass::Other, |code| ErrorClass::from_sqlstate(&code))
}

/// The class of a SQLite (extended) result code and message.
pub fn classify_sqlite(code: i64, message: &str) -> ErrorClass {
    match code & 0xff {
        SQLITE_BUSY | SQLITE_LOCKED => ErrorClass::LockTimeout,
        SQLITE_CONSTRAINT => ErrorClass::ConstraintViolation,
        SQLITE_IOERR | SQLITE_CORRUPT | SQLITE_CANTOPEN | SQLITE_NOTADB => ErrorClass::ConnectionFailure,
        SQLITE_ERROR if message.contains("syntax error") || message.contains("no such") => ErrorClass::SyntaxError,
        _ => ErrorClass::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_database_errors() {
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), ErrorClass::PoolTimeout);
        assert_eq!(classify(&sqlx::Error::PoolClosed), ErrorClass::ConnectionFailure);
        assert_eq!(classify(&sqlx::Error::WorkerCrashed), ErrorClass::ConnectionFailure);
        assert_eq!(classify(&sqlx::Error::Protocol("bad".into())), ErrorClass::ConnectionFailure);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(classify(&sqlx::Error::Io(io)), ErrorClass::ConnectionFailure);
        assert_eq!(classify(&sqlx::Error::RowNotFound), ErrorClass::Other);
    }

    #[test]
    fn sqlite_codes() {
        let cases = [
            (5, "database is locked", ErrorClass::LockTimeout),
            (517, "database is locked", ErrorClass::LockTimeout),
            (6, "database table is locked", ErrorClass::LockTimeout),
            (2067, "UNIQUE constraint failed: t.id", ErrorClass::ConstraintViolation),
            (1555, "UNIQUE constraint failed: t.id", ErrorClass::ConstraintViolation),
            (1299, "NOT NULL constraint failed: t.x", ErrorClass::ConstraintViolation),
            (1, "near \"SELEC\": syntax error", ErrorClass::SyntaxError),
            (1, "no such table: nope", ErrorClass::SyntaxError),
            (1, "something else", ErrorClass::Other),
            (10, "disk I/O error", ErrorClass::ConnectionFailure),
            (0, "", ErrorClass::Other),
        ];
        for (code, message, class) in cases {
            assert_eq!(classify_sqlite(code, message), class, "{code} {message}");
        }
    }
}
