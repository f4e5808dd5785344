//! Classes of database errors, and how SQLSTATE codes and MySQL error numbers
//! map onto them.
//!
//! The mapping is pure data so that every adapter (sqlx, a log shipper, a
//! foreign monitor) classifies the same way; adapters only extract the code.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of failure a database error is, as far as operating the
/// application is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorClass {
    /// The connection could not be made or was lost (network, server restart,
    /// `pg_terminate_backend`, authentication at connect time).
    ConnectionFailure,
    /// No connection could be checked out of the pool in time.
    PoolTimeout,
    /// The server broke a deadlock by aborting this transaction.
    Deadlock,
    /// A serializable transaction could not be committed; retrying is safe.
    SerializationFailure,
    /// The statement ran past its time limit and was cancelled.
    StatementTimeout,
    /// A lock could not be acquired in time.
    LockTimeout,
    /// A unique, foreign-key, not-null or check constraint was violated.
    ConstraintViolation,
    /// The statement is malformed or refers to something that does not exist.
    SyntaxError,
    /// A transaction was held open longer than allowed.
    TransactionTimeout,
    /// Anything else.
    Other,
}

impl ErrorClass {
    /// Every class, in a stable order (used to lay out per-class counters).
    pub const ALL: [ErrorClass; 10] = [
        ErrorClass::ConnectionFailure,
        ErrorClass::PoolTimeout,
        ErrorClass::Deadlock,
        ErrorClass::SerializationFailure,
        ErrorClass::StatementTimeout,
        ErrorClass::LockTimeout,
        ErrorClass::ConstraintViolation,
        ErrorClass::SyntaxError,
        ErrorClass::TransactionTimeout,
        ErrorClass::Other,
    ];

    /// The stable snake_case name, used in labels and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorClass::ConnectionFailure => "connection_failure",
            ErrorClass::PoolTimeout => "pool_timeout",
            ErrorClass::Deadlock => "deadlock",
            ErrorClass::SerializationFailure => "serialization_failure",
            ErrorClass::StatementTimeout => "statement_timeout",
            ErrorClass::LockTimeout => "lock_timeout",
            ErrorClass::ConstraintViolation => "constraint_violation",
            ErrorClass::SyntaxError => "syntax_error",
            ErrorClass::TransactionTimeout => "transaction_timeout",
            ErrorClass::Other => "other",
        }
    }

    /// Position in [`ErrorClass::ALL`].
    pub const fn index(self) -> usize {
        match self {
            ErrorClass::ConnectionFailure => 0,
            ErrorClass::PoolTimeout => 1,
            ErrorClass::Deadlock => 2,
            ErrorClass::SerializationFailure => 3,
            ErrorClass::StatementTimeout => 4,
            ErrorClass::LockTimeout => 5,
            ErrorClass::ConstraintViolation => 6,
            ErrorClass::SyntaxError => 7,
            ErrorClass::TransactionTimeout => 8,
            ErrorClass::Other => 9,
        }
    }

    /// Whether re-running the unit of work on a fresh connection can succeed
    /// (the basis of recovery).
    pub const fn is_connection_level(self) -> bool {
        matches!(self, ErrorClass::ConnectionFailure)
    }

    /// Whether re-running the same transaction may succeed.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::ConnectionFailure
                | ErrorClass::Deadlock
                | ErrorClass::SerializationFailure
                | ErrorClass::LockTimeout
                | ErrorClass::PoolTimeout
        )
    }

    /// Classifies a five-character SQLSTATE (PostgreSQL, and the SQL standard
    /// codes MySQL and SQLite drivers also report).
    pub fn from_sqlstate(code: &str) -> ErrorClass {
        match code {
            "40P01" => ErrorClass::Deadlock,
            "40001" => ErrorClass::SerializationFailure,
            "57014" => ErrorClass::StatementTimeout,
            "55P03" => ErrorClass::LockTimeout,
            "25P03" => ErrorClass::TransactionTimeout,
            // admin_shutdown, crash_shutdown, cannot_connect_now
            "57P01" | "57P02" | "57P03" => ErrorClass::ConnectionFailure,
            _ => match code.get(..2) {
                Some("08") => ErrorClass::ConnectionFailure,
                Some("23") => ErrorClass::ConstraintViolation,
                Some("42") => ErrorClass::SyntaxError,
                Some("28") => ErrorClass::ConnectionFailure,
                _ => ErrorClass::Other,
            },
        }
    }

    /// Classifies a MySQL / MariaDB server or client error number.
    pub fn from_mysql_code(code: u32) -> ErrorClass {
        match code {
            1213 => ErrorClass::Deadlock,
            1205 => ErrorClass::LockTimeout,
            // ER_QUERY_TIMEOUT (MySQL), ER_STATEMENT_TIMEOUT (MariaDB max_statement_time), ER_QUERY_INTERRUPTED
            3024 | 1969 | 1317 => ErrorClass::StatementTimeout,
            // unique, foreign key, not null, check
            1062 | 1451 | 1452 | 1048 | 3819 | 4025 | 1216 | 1217 | 1557 | 1586 => ErrorClass::ConstraintViolation,
            // syntax, unknown column / table / database, wrong value count
            1064 | 1054 | 1146 | 1049 | 1136 | 1149 => ErrorClass::SyntaxError,
            // server gone away, lost connection, too many connections, access denied, killed
            2002 | 2003 | 2006 | 2013 | 2055 | 1040 | 1045 | 1053 | 1077 | 1927 => ErrorClass::ConnectionFailure,
            _ => ErrorClass::Other,
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_classes() {
        let cases = [
            ("40P01", ErrorClass::Deadlock),
            ("40001", ErrorClass::SerializationFailure),
            ("57014", ErrorClass::StatementTimeout),
            ("55P03", ErrorClass::LockTimeout),
            ("08006", ErrorClass::ConnectionFailure),
            ("57P01", ErrorClass::ConnectionFailure),
            ("23505", ErrorClass::ConstraintViolation),
            ("42601", ErrorClass::SyntaxError),
            ("XX000", ErrorClass::Other),
            ("", ErrorClass::Other),
            ("é", ErrorClass::Other),
        ];
        for (code, class) in cases {
            assert_eq!(ErrorClass::from_sqlstate(code), class, "{code}");
        }
    }

    #[test]
    fn mysql_codes_map_to_classes() {
        let cases = [
            (1213, ErrorClass::Deadlock),
            (1205, ErrorClass::LockTimeout),
            (3024, ErrorClass::StatementTimeout),
            (1969, ErrorClass::StatementTimeout),
            (1062, ErrorClass::ConstraintViolation),
            (1064, ErrorClass::SyntaxError),
            (2013, ErrorClass::ConnectionFailure),
            (9999, ErrorClass::Other),
        ];
        for (code, class) in cases {
            assert_eq!(ErrorClass::from_mysql_code(code), class, "{code}");
        }
    }

    #[test]
    fn index_matches_position_in_all() {
        for (i, class) in ErrorClass::ALL.iter().enumerate() {
            assert_eq!(class.index(), i);
        }
    }
}
