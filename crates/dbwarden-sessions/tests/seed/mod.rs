//! Seeding for the analytics and maintenance suites: a dbwarden session
//! table or a Django-layout table (without its expiry index) under a name
//! only the calling test uses, rows with chosen times, and raw statements.

#![allow(dead_code, unreachable_pub)]

use dbwarden_sessions::{Backend, Preset, SchemaConfig, SessionDatabase, SessionTable, TableMapping, migrate};
use sqlx::AssertSqlSafe;

#[path = "../support/mod.rs"]
pub mod support;

pub const HOUR: i64 = 3_600_000;
pub const MINUTE: i64 = 60_000;
pub const DAY: i64 = 24 * HOUR;
/// 2025-06-16 00:00 UTC, a day boundary.
pub const DAY_START: i64 = 1_750_032_000_000;
/// 12:30 UTC that day: half past an hour, so hour and day buckets are unambiguous.
pub const NOW: i64 = DAY_START + 12 * HOUR + 30 * MINUTE;

pub fn now() -> dbwarden_core::Timestamp {
    dbwarden_core::Timestamp::from_millis(NOW as u64)
}

/// A bind value for [`exec`].
#[derive(Debug, Clone)]
pub enum V {
    I(i64),
    S(Option<String>),
    B(Option<Vec<u8>>),
}

/// Runs `sql` written with `?` markers (rewritten to `$n` on PostgreSQL).
pub async fn exec(db: &SessionDatabase, sql: &str, binds: &[V]) -> u64 {
    let sql = if db.backend() == Backend::Postgres {
        let mut out = String::new();
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(c);
            }
        }
        out
    } else {
        sql.to_owned()
    };
    macro_rules! run {
        ($pool:expr) => {{
            let mut q = sqlx::query(AssertSqlSafe(sql.clone()));
            for b in binds {
                q = match b {
                    V::I(v) => q.bind(*v),
                    V::S(v) => q.bind(v.clone()),
                    V::B(v) => q.bind(v.clone()),
                };
            }
            q.execute($pool).await.unwrap_or_else(|e| panic!("{sql}: {e}")).rows_affected()
        }};
    }
    match db {
        SessionDatabase::Postgres(pool) => run!(pool),
        SessionDatabase::MySql(pool) => run!(pool),
        SessionDatabase::Sqlite(pool) => run!(pool),
    }
}

/// A database of `backend` (the tempdir guard keeps a SQLite file alive).
pub async fn database(backend: Backend) -> (SessionDatabase, Option<tempfile::TempDir>) {
    match backend {
        Backend::Sqlite => {
            let (db, dir) = support::sqlite_db().await;
            (db, Some(dir))
        }
        _ => (support::server_db(backend).await, None),
    }
}

/// A migrated dbwarden session table only this test uses.
pub struct DbwardenTable {
    pub db: SessionDatabase,
    pub schema: SchemaConfig,
    pub table: SessionTable,
    pub _dir: Option<tempfile::TempDir>,
}

impl DbwardenTable {
    pub async fn new(backend: Backend) -> DbwardenTable {
        let (db, dir) = database(backend).await;
        let schema = support::unique_schema();
        migrate(&db, &schema).await.expect("migrate");
        let mut mapping = Preset::Dbwarden.mapping(backend);
        mapping.table = schema.sessions_table().as_str().to_owned();
        let table = SessionTable::verify(&db, mapping).await.expect("verify");
        DbwardenTable { db, schema, table, _dir: dir }
    }

    pub fn name(&self) -> String {
        self.schema.sessions_table().as_str().to_owned()
    }

    /// Inserts one session; `n` makes the id hash (and, unless overridden, the client hashes) unique.
    pub async fn insert(&self, row: Session) {
        let sql = format!(
            "INSERT INTO {} (id_hash, user_id, created_at, last_seen_at, expires_at, absolute_expires_at, \
             version, ip_hash, ua_hash, data) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
            self.name()
        );
        let mut id = vec![0u8; 32];
        id[..8].copy_from_slice(&row.n.to_be_bytes());
        let hash = |v: u64| {
            let mut h = vec![0xAAu8; 32];
            h[..8].copy_from_slice(&v.to_be_bytes());
            Some(h)
        };
        exec(
            &self.db,
            &sql,
            &[
                V::B(Some(id)),
                V::S(row.user.map(str::to_owned)),
                V::I(row.created),
                V::I(row.seen),
                V::I(row.expires),
                V::I(row.absolute.unwrap_or(row.expires + DAY)),
                V::B(hash(row.ip.unwrap_or(row.n))),
                V::B(hash(row.ua.unwrap_or(row.n))),
                V::B(Some(row.data.unwrap_or(b"{}").to_vec())),
            ],
        )
        .await;
    }

    pub async fn drop(self) {
        support::drop_table(&self.db, &self.schema).await;
    }
}

/// One seeded session of a dbwarden table; times are epoch ms.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    pub n: u64,
    pub user: Option<&'static str>,
    pub created: i64,
    pub seen: i64,
    pub expires: i64,
    pub absolute: Option<i64>,
    pub ip: Option<u64>,
    pub ua: Option<u64>,
    pub data: Option<&'static [u8]>,
}

impl Session {
    /// A live session created `age` ago and seen `idle` ago, expiring in an hour.
    pub fn live(n: u64, user: Option<&'static str>, age: i64, idle: i64) -> Session {
        Session {
            n,
            user,
            created: NOW - age,
            seen: NOW - idle,
            expires: NOW + HOUR,
            absolute: None,
            ip: None,
            ua: None,
            data: None,
        }
    }

    /// A session created `age` ago that expired `ago` ago.
    pub fn expired(n: u64, user: Option<&'static str>, age: i64, ago: i64) -> Session {
        Session { expires: NOW - ago, seen: NOW - ago - HOUR, ..Session::live(n, user, age, 0) }
    }
}

/// A Django-layout session table (no index on `expire_date`) only this test uses.
pub struct DjangoTable {
    pub db: SessionDatabase,
    pub name: String,
    pub table: SessionTable,
    pub _dir: Option<tempfile::TempDir>,
}

impl DjangoTable {
    pub async fn new(backend: Backend) -> DjangoTable {
        let (db, dir) = database(backend).await;
        let name = support::unique_name("django_session");
        let expire_type = match backend {
            Backend::Postgres => "TIMESTAMP WITH TIME ZONE",
            Backend::MySql => "DATETIME(6)",
            Backend::Sqlite => "DATETIME",
        };
        exec(
            &db,
            &format!(
                "CREATE TABLE {name} (session_key VARCHAR(40) NOT NULL PRIMARY KEY, session_data TEXT NOT NULL, \
                 expire_date {expire_type} NOT NULL)"
            ),
            &[],
        )
        .await;
        let mapping = TableMapping { table: name.clone(), ..Preset::Django.mapping(backend) };
        let table = SessionTable::verify(&db, mapping).await.expect("verify django table");
        DjangoTable { db, name, table, _dir: dir }
    }

    /// Inserts a session expiring at `expires` (epoch ms).
    pub async fn insert(&self, key: &str, expires: i64) {
        let at = match self.db.backend() {
            Backend::Postgres => "to_timestamp(?::float8 / 1000)",
            Backend::MySql => "FROM_UNIXTIME(? / 1000)",
            Backend::Sqlite => "datetime(? / 1000, 'unixepoch')",
        };
        let sql = format!("INSERT INTO {} (session_key, session_data, expire_date) VALUES (?, ?, {at})", self.name);
        exec(&self.db, &sql, &[V::S(Some(key.to_owned())), V::S(Some("e30=".to_owned())), V::I(expires)]).await;
    }

    pub async fn drop(self) {
        exec(&self.db, &format!("DROP TABLE IF EXISTS {}", self.name), &[]).await;
    }
}

/// A Rails-layout session table (activerecord-session_store: `created_at`,
/// `updated_at`, expiry by idle time) only this test uses.
pub struct RailsTable {
    pub db: SessionDatabase,
    pub name: String,
    pub table: SessionTable,
    pub _dir: Option<tempfile::TempDir>,
}

impl RailsTable {
    pub async fn new(backend: Backend) -> RailsTable {
        let (db, dir) = database(backend).await;
        let name = support::unique_name("rails_sessions");
        let (id, time) = match backend {
            Backend::Postgres => ("BIGSERIAL PRIMARY KEY", "TIMESTAMP(6) WITHOUT TIME ZONE"),
            Backend::MySql => ("BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY", "DATETIME(6)"),
            Backend::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "DATETIME"),
        };
        exec(
            &db,
            &format!(
                "CREATE TABLE {name} (id {id}, session_id VARCHAR(255) NOT NULL, data TEXT, \
                 created_at {time} NOT NULL, updated_at {time} NOT NULL)"
            ),
            &[],
        )
        .await;
        let mapping = TableMapping { table: name.clone(), ..Preset::Rails.mapping(backend) };
        let table = SessionTable::verify(&db, mapping).await.expect("verify rails table");
        RailsTable { db, name, table, _dir: dir }
    }

    /// Inserts a session created and last updated at the given epoch ms.
    pub async fn insert(&self, key: &str, created: i64, updated: i64, data: &str) {
        // Rails writes UTC wall-clock times with microseconds.
        let at = match self.db.backend() {
            Backend::Postgres => "(to_timestamp(?::float8 / 1000) AT TIME ZONE 'UTC')",
            Backend::MySql => "FROM_UNIXTIME(? / 1000)",
            Backend::Sqlite => "strftime('%Y-%m-%d %H:%M:%f', ? / 1000.0, 'unixepoch')",
        };
        let sql =
            format!("INSERT INTO {} (session_id, data, created_at, updated_at) VALUES (?, ?, {at}, {at})", self.name);
        exec(&self.db, &sql, &[V::S(Some(key.to_owned())), V::S(Some(data.to_owned())), V::I(created), V::I(updated)])
            .await;
    }

    pub async fn drop(self) {
        exec(&self.db, &format!("DROP TABLE IF EXISTS {}", self.name), &[]).await;
    }
}
