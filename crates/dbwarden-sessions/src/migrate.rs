//! Applies the schema's versioned migrations ([`crate::schema::MIGRATIONS`])
//! and records each in `dbwarden_migrations`, keyed by the session table it
//! was applied for, so several session tables can share one database.
//!
//! Two processes migrating at once are serialized: PostgreSQL by a
//! transaction-scoped advisory lock, MySQL by `GET_LOCK`, SQLite by an
//! exclusive transaction. The second one finds everything applied.

use std::time::Duration;

use sqlx::{AssertSqlSafe, Executor, Row};

use crate::db::{Backend, SessionDatabase, redact_url};
use crate::schema::{MIGRATIONS, MIGRATIONS_TABLE, Migration, SchemaConfig};
use crate::schema::{migration_statements, migrations_table_ddl};

/// Key of the PostgreSQL advisory lock held while migrating ("dbwmigr" in ASCII).
const PG_MIGRATION_LOCK_KEY: i64 = 0x0064_6277_6d69_6772;
/// Name of the MySQL named lock held while migrating.
const MYSQL_MIGRATION_LOCK: &str = "dbwarden_migrate";
/// How long a MySQL migration waits for another process's migration.
const MYSQL_LOCK_WAIT: Duration = Duration::from_secs(60);

/// A migration failed; nothing after the failing statement was applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// A statement failed.
    #[error("migration {version} ({name}) failed on {backend}: {message}")]
    Statement {
        /// The migration's version.
        version: i64,
        /// The migration's name.
        name: &'static str,
        /// The backend.
        backend: Backend,
        /// The driver's message.
        message: String,
    },
    /// Reading or writing the migrations table, or taking the lock, failed.
    #[error("cannot {action} on {backend}: {message}")]
    Bookkeeping {
        /// What was being done.
        action: &'static str,
        /// The backend.
        backend: Backend,
        /// The driver's message.
        message: String,
    },
    /// Another process held the migration lock for too long.
    #[error("timed out after {waited:?} waiting for another process's migration (lock {lock})")]
    LockTimeout {
        /// The lock's name.
        lock: &'static str,
        /// How long this process waited.
        waited: Duration,
    },
    /// The database records a migration this build does not know (a newer dbwarden migrated it).
    #[error(
        "the database has migration {version} for table {table}, newer than this dbwarden knows (latest {latest}); upgrade dbwarden"
    )]
    UnknownVersion {
        /// The unknown version.
        version: i64,
        /// The session table.
        table: String,
        /// The latest version this build knows.
        latest: i64,
    },
}

/// A migration recorded as applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Its version.
    pub version: i64,
    /// Its name.
    pub name: String,
    /// When it was applied, unix epoch milliseconds.
    pub applied_at: i64,
}

/// What [`migrate`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Migrations applied by this call, in order.
    pub applied: Vec<Migration>,
    /// Migrations that were already applied before this call.
    pub already_applied: usize,
}

/// Brings the schema of `schema`'s session table (and the shared cleanup-run
/// and snapshot tables) up to date. Idempotent; safe to call from several
/// processes at once.
pub async fn migrate(db: &SessionDatabase, schema: &SchemaConfig) -> Result<MigrationReport, MigrateError> {
    let subject = schema.sessions_table().as_str().to_owned();
    let backend = db.backend();
    let now = dbwarden_core::Clock::now(&dbwarden_core::SystemClock).as_millis() as i64;
    let bookkeeping = |action: &'static str| {
        move |err: sqlx::Error| MigrateError::Bookkeeping { action, backend, message: redact_url(&err.to_string()) }
    };
    match db {
        SessionDatabase::Postgres(pool) => {
            let mut tx = pool.begin().await.map_err(bookkeeping("begin a transaction"))?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(PG_MIGRATION_LOCK_KEY)
                .execute(&mut *tx)
                .await
                .map_err(bookkeeping("take the migration lock"))?;
            tx.execute(AssertSqlSafe(migrations_table_ddl(backend)))
                .await
                .map_err(bookkeeping("create the migrations table"))?;
            let done = applied_versions_pg(&mut tx, &subject).await?;
            let report = pending(&done, &subject)?;
            for m in &report.applied {
                for statement in migration_statements(m.version, backend, schema) {
                    tx.execute(AssertSqlSafe(statement)).await.map_err(|err| statement_error(m, backend, err))?;
                }
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO {MIGRATIONS_TABLE} (subject, version, name, applied_at) VALUES ($1, $2, $3, $4)"
                )))
                .bind(&subject)
                .bind(m.version)
                .bind(m.name)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(bookkeeping("record a migration"))?;
            }
            tx.commit().await.map_err(bookkeeping("commit the migrations"))?;
            Ok(report)
        }
        SessionDatabase::MySql(pool) => {
            let mut conn = pool.acquire().await.map_err(bookkeeping("get a connection"))?;
            let locked: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
                .bind(MYSQL_MIGRATION_LOCK)
                .bind(MYSQL_LOCK_WAIT.as_secs() as i64)
                .fetch_one(&mut *conn)
                .await
                .map_err(bookkeeping("take the migration lock"))?;
            if locked != Some(1) {
                return Err(MigrateError::LockTimeout { lock: MYSQL_MIGRATION_LOCK, waited: MYSQL_LOCK_WAIT });
            }
            let result = async {
                conn.execute(AssertSqlSafe(migrations_table_ddl(backend)))
                    .await
                    .map_err(bookkeeping("create the migrations table"))?;
                let rows =
                    sqlx::query(AssertSqlSafe(format!("SELECT version FROM {MIGRATIONS_TABLE} WHERE subject = ?")))
                        .bind(&subject)
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(bookkeeping("read the migrations table"))?;
                let done: Vec<i64> = rows.iter().filter_map(|r| r.try_get(0).ok()).collect();
                let report = pending(&done, &subject)?;
                for m in &report.applied {
                    // MySQL commits DDL implicitly; each statement is idempotent
                    // so a migration cut off halfway is simply run again.
                    for statement in migration_statements(m.version, backend, schema) {
                        conn.execute(AssertSqlSafe(statement)).await.map_err(|err| statement_error(m, backend, err))?;
                    }
                    sqlx::query(AssertSqlSafe(format!(
                        "INSERT INTO {MIGRATIONS_TABLE} (subject, version, name, applied_at) VALUES (?, ?, ?, ?)"
                    )))
                    .bind(&subject)
                    .bind(m.version)
                    .bind(m.name)
                    .bind(now)
                    .execute(&mut *conn)
                    .await
                    .map_err(bookkeeping("record a migration"))?;
                }
                Ok(report)
            }
            .await;
            let released = sqlx::query("SELECT RELEASE_LOCK(?)").bind(MYSQL_MIGRATION_LOCK).execute(&mut *conn).await;
            if released.is_err() {
                // A connection that may still hold the named lock must not go
                // back to the pool.
                conn.detach();
            }
            result
        }
        SessionDatabase::Sqlite(pool) => {
            let mut tx =
                pool.begin_with("BEGIN EXCLUSIVE").await.map_err(bookkeeping("begin an exclusive transaction"))?;
            tx.execute(AssertSqlSafe(migrations_table_ddl(backend)))
                .await
                .map_err(bookkeeping("create the migrations table"))?;
            let rows = sqlx::query(AssertSqlSafe(format!("SELECT version FROM {MIGRATIONS_TABLE} WHERE subject = ?")))
                .bind(&subject)
                .fetch_all(&mut *tx)
                .await
                .map_err(bookkeeping("read the migrations table"))?;
            let done: Vec<i64> = rows.iter().filter_map(|r| r.try_get(0).ok()).collect();
            let report = pending(&done, &subject)?;
            for m in &report.applied {
                for statement in migration_statements(m.version, backend, schema) {
                    tx.execute(AssertSqlSafe(statement)).await.map_err(|err| statement_error(m, backend, err))?;
                }
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO {MIGRATIONS_TABLE} (subject, version, name, applied_at) VALUES (?, ?, ?, ?)"
                )))
                .bind(&subject)
                .bind(m.version)
                .bind(m.name)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(bookkeeping("record a migration"))?;
            }
            tx.commit().await.map_err(bookkeeping("commit the migrations"))?;
            Ok(report)
        }
    }
}

/// The migrations recorded for `schema`'s session table, oldest first
/// (empty when the migrations table does not exist yet).
pub async fn applied_migrations(
    db: &SessionDatabase,
    schema: &SchemaConfig,
) -> Result<Vec<AppliedMigration>, MigrateError> {
    let backend = db.backend();
    let subject = schema.sessions_table().as_str();
    let placeholder = if backend == Backend::Postgres { "$1" } else { "?" };
    let sql = format!(
        "SELECT version, name, applied_at FROM {MIGRATIONS_TABLE} WHERE subject = {placeholder} ORDER BY version"
    );
    let bookkeeping = |err: sqlx::Error| MigrateError::Bookkeeping {
        action: "read the migrations table",
        backend,
        message: err.to_string(),
    };
    let exists_sql = match backend {
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'dbwarden_migrations'"
        }
        Backend::MySql => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'dbwarden_migrations'"
        }
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'dbwarden_migrations'",
    };
    let exists: i64 = crate::db::on_pool!(db, pool => {
        sqlx::query_scalar(exists_sql).fetch_one(pool).await.map_err(bookkeeping)?
    });
    if exists == 0 {
        return Ok(Vec::new());
    }
    crate::db::on_pool!(db, pool => {
        let rows = sqlx::query(AssertSqlSafe(sql)).bind(subject).fetch_all(pool).await.map_err(bookkeeping)?;
        rows.iter()
            .map(|row| {
                Ok(AppliedMigration {
                    version: row.try_get(0).map_err(bookkeeping)?,
                    name: row.try_get(1).map_err(bookkeeping)?,
                    applied_at: row.try_get(2).map_err(bookkeeping)?,
                })
            })
            .collect()
    })
}

/// Migrations of this build not yet applied to `schema`'s table, in order
/// (what [`migrate`] would apply; for `--dry-run`).
pub async fn pending_migrations(db: &SessionDatabase, schema: &SchemaConfig) -> Result<Vec<Migration>, MigrateError> {
    let done: Vec<i64> = applied_migrations(db, schema).await?.into_iter().map(|m| m.version).collect();
    Ok(pending(&done, schema.sessions_table().as_str())?.applied)
}

async fn applied_versions_pg(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    subject: &str,
) -> Result<Vec<i64>, MigrateError> {
    let rows = sqlx::query(AssertSqlSafe(format!("SELECT version FROM {MIGRATIONS_TABLE} WHERE subject = $1")))
        .bind(subject)
        .fetch_all(&mut **tx)
        .await
        .map_err(|err| MigrateError::Bookkeeping {
            action: "read the migrations table",
            backend: Backend::Postgres,
            message: err.to_string(),
        })?;
    Ok(rows.iter().filter_map(|r| r.try_get(0).ok()).collect())
}

fn pending(done: &[i64], subject: &str) -> Result<MigrationReport, MigrateError> {
    let latest = MIGRATIONS.last().map_or(0, |m| m.version);
    if let Some(&unknown) = done.iter().find(|&&v| v > latest) {
        return Err(MigrateError::UnknownVersion { version: unknown, table: subject.to_owned(), latest });
    }
    let applied: Vec<Migration> = MIGRATIONS.iter().filter(|m| !done.contains(&m.version)).copied().collect();
    Ok(MigrationReport { already_applied: MIGRATIONS.len() - applied.len(), applied })
}

fn statement_error(m: &Migration, backend: Backend, err: sqlx::Error) -> MigrateError {
    MigrateError::Statement { version: m.version, name: m.name, backend, message: err.to_string() }
}
