//! Migrations on real PostgreSQL, MariaDB and SQLite: the tables appear with
//! the documented columns, re-running applies nothing, concurrent runs agree.

mod support;

use dbwarden_sessions::schema::MIGRATIONS;
use dbwarden_sessions::{Backend, SessionDatabase, applied_migrations, migrate, pending_migrations};
use sqlx::AssertSqlSafe;

async fn check_migrations(db: SessionDatabase) {
    let schema = support::unique_schema();
    assert_eq!(pending_migrations(&db, &schema).await.expect("pending").len(), MIGRATIONS.len());

    // Four processes' worth of concurrent migrations: exactly one applies each step.
    let runs = futures_util::future::join_all((0..4).map(|_| migrate(&db, &schema))).await;
    let mut applied_total = 0;
    for run in runs {
        applied_total += run.expect("concurrent migrate").applied.len();
    }
    assert_eq!(applied_total, MIGRATIONS.len());

    let again = migrate(&db, &schema).await.expect("second migrate");
    assert!(again.applied.is_empty());
    assert_eq!(again.already_applied, MIGRATIONS.len());
    let recorded = applied_migrations(&db, &schema).await.expect("applied");
    let versions: Vec<i64> = recorded.iter().map(|m| m.version).collect();
    assert_eq!(versions, MIGRATIONS.iter().map(|m| m.version).collect::<Vec<_>>());

    // The documented columns exist and take the documented types.
    let table = schema.sessions_table().as_str().to_owned();
    let insert = match db.backend() {
        Backend::Postgres => format!(
            "INSERT INTO {table} (id_hash, user_id, created_at, last_seen_at, expires_at, absolute_expires_at, version, ip_hash, ua_hash, data) VALUES ($1, $2, $3, $3, $3, $3, 1, $1, $1, $4)"
        ),
        _ => format!(
            "INSERT INTO {table} (id_hash, user_id, created_at, last_seen_at, expires_at, absolute_expires_at, version, ip_hash, ua_hash, data) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?)"
        ),
    };
    let hash = vec![7u8; 32];
    let inserted = dbwarden_sessions_on_pool(&db, insert, hash).await;
    assert_eq!(inserted, 1);
    support::drop_table(&db, &schema).await;
}

async fn dbwarden_sessions_on_pool(db: &SessionDatabase, sql: String, hash: Vec<u8>) -> u64 {
    let now: i64 = 1_700_000_000_000;
    match db {
        SessionDatabase::Postgres(pool) => sqlx::query(AssertSqlSafe(sql))
            .bind(hash)
            .bind("u1")
            .bind(now)
            .bind(b"{}".to_vec())
            .execute(pool)
            .await
            .expect("insert")
            .rows_affected(),
        SessionDatabase::MySql(pool) => sqlx::query(AssertSqlSafe(sql))
            .bind(hash.clone())
            .bind("u1")
            .bind(now)
            .bind(now)
            .bind(now)
            .bind(now)
            .bind(hash.clone())
            .bind(hash)
            .bind(b"{}".to_vec())
            .execute(pool)
            .await
            .expect("insert")
            .rows_affected(),
        SessionDatabase::Sqlite(pool) => sqlx::query(AssertSqlSafe(sql))
            .bind(hash.clone())
            .bind("u1")
            .bind(now)
            .bind(now)
            .bind(now)
            .bind(now)
            .bind(hash.clone())
            .bind(hash)
            .bind(b"{}".to_vec())
            .execute(pool)
            .await
            .expect("insert")
            .rows_affected(),
    }
}

#[tokio::test]
async fn migrates_postgres() {
    check_migrations(support::server_db(Backend::Postgres).await).await;
}

#[tokio::test]
async fn migrates_mariadb() {
    check_migrations(support::server_db(Backend::MySql).await).await;
}

#[tokio::test]
async fn migrates_sqlite() {
    let (db, _dir) = support::sqlite_db().await;
    check_migrations(db).await;
}
