//! Batched session cleanup against real PostgreSQL, MariaDB and SQLite, on
//! dbwarden's own table and on the tables Django, Flask-Session, Rails and
//! tower-sessions create (with their own DDL): only expired rows go, across
//! several batches; dry runs, force and orphan modes; a table without the
//! expiry column is refused by name; one runner at a time; every run
//! recorded in `dbwarden_cleanup_runs` and reported to the monitor.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dbwarden_core::{Clock, Monitor, SystemClock};
use dbwarden_sessions::{
    Backend, Cleaner, CleanupConfig, CleanupError, CleanupMode, CleanupProgress, CleanupReport, LockOutcome,
    LockPolicy, OrphanRule, Preset, SchemaConfig, SessionDatabase, SessionTable, TableError, TableMapping, migrate,
};
use sqlx::AssertSqlSafe;
use support::{exec, scalar};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

fn now_ms() -> i64 {
    SystemClock.now().as_millis() as i64
}

/// The session-table layouts the suite creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dbwarden,
    Django,
    FlaskSession,
    Rails,
    TowerSessions,
}

/// One session to insert, whatever the layout.
#[derive(Debug, Clone)]
struct Row {
    n: i64,
    expires_ms: i64,
    created_ms: i64,
    user: Option<String>,
}

/// A value of an INSERT: timestamps go through the backend's conversion
/// from epoch milliseconds (`tz`: the column is `timestamptz`).
#[derive(Debug, Clone)]
enum Val {
    Int(i64),
    Text(String),
    OptText(Option<String>),
    Bytes(Vec<u8>),
    Time { ms: i64, tz: bool },
}

/// A database with one session table only this test uses.
struct Fixture {
    db: SessionDatabase,
    backend: Backend,
    kind: Kind,
    /// The table as mapped: `schema.table` on the servers for foreign layouts.
    table: String,
    /// PostgreSQL schema / MariaDB database to drop at the end.
    namespace: Option<String>,
    schema: Option<SchemaConfig>,
    _dir: Option<tempfile::TempDir>,
}

async fn open(backend: Backend) -> (SessionDatabase, Option<tempfile::TempDir>) {
    match backend {
        Backend::Sqlite => {
            let (db, dir) = support::sqlite_db().await;
            (db, Some(dir))
        }
        _ => (support::server_db(backend).await, None),
    }
}

/// The real DDL of each framework's session table (see each project's
/// migration or model), on `backend`, for table `t`.
fn ddl(kind: Kind, backend: Backend, t: &str) -> Vec<String> {
    let idx = t.replace('.', "_");
    match (kind, backend) {
        (Kind::Dbwarden, _) => Vec::new(),
        // django/contrib/sessions/migrations/0001_initial.py
        (Kind::Django, Backend::Postgres) => vec![
            format!(
                "CREATE TABLE {t} (session_key varchar(40) NOT NULL PRIMARY KEY, session_data text NOT NULL, \
                 expire_date timestamp with time zone NOT NULL)"
            ),
            format!("CREATE INDEX {idx}_expire_date ON {t} (expire_date)"),
        ],
        (Kind::Django, Backend::MySql) => vec![format!(
            "CREATE TABLE {t} (session_key varchar(40) NOT NULL PRIMARY KEY, session_data longtext NOT NULL, \
                 expire_date datetime(6) NOT NULL, KEY {idx}_expire_date (expire_date))"
        )],
        (Kind::Django, Backend::Sqlite) => vec![
            format!(
                "CREATE TABLE \"{t}\" (\"session_key\" varchar(40) NOT NULL PRIMARY KEY, \
                 \"session_data\" text NOT NULL, \"expire_date\" datetime NOT NULL)"
            ),
            format!("CREATE INDEX \"{idx}_expire_date\" ON \"{t}\" (\"expire_date\")"),
        ],
        // flask_session/sqlalchemy: Session model (id, session_id, data, expiry)
        (Kind::FlaskSession, Backend::Postgres) => vec![format!(
            "CREATE TABLE {t} (id SERIAL NOT NULL PRIMARY KEY, session_id VARCHAR(255) UNIQUE, data BYTEA, \
             expiry TIMESTAMP WITHOUT TIME ZONE)"
        )],
        (Kind::FlaskSession, Backend::MySql) => vec![format!(
            "CREATE TABLE {t} (id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY, session_id VARCHAR(255) UNIQUE, \
             data BLOB, expiry DATETIME)"
        )],
        (Kind::FlaskSession, Backend::Sqlite) => vec![format!(
            "CREATE TABLE {t} (id INTEGER NOT NULL PRIMARY KEY, session_id VARCHAR(255) UNIQUE, data BLOB, \
             expiry DATETIME)"
        )],
        // activerecord-session_store: db/migrate/..._add_sessions_table.rb (Rails 7 types)
        (Kind::Rails, Backend::Postgres) => vec![
            format!(
                "CREATE TABLE {t} (id bigserial PRIMARY KEY, session_id character varying NOT NULL, data text, \
                 created_at timestamp(6) without time zone NOT NULL, updated_at timestamp(6) without time zone NOT NULL)"
            ),
            format!("CREATE UNIQUE INDEX index_{idx}_on_session_id ON {t} (session_id)"),
            format!("CREATE INDEX index_{idx}_on_updated_at ON {t} (updated_at)"),
        ],
        (Kind::Rails, Backend::MySql) => vec![format!(
            "CREATE TABLE {t} (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, session_id varchar(255) NOT NULL, \
             data text, created_at datetime(6) NOT NULL, updated_at datetime(6) NOT NULL, \
             UNIQUE KEY index_sessions_on_session_id (session_id), KEY index_sessions_on_updated_at (updated_at))"
        )],
        (Kind::Rails, Backend::Sqlite) => vec![
            format!(
                "CREATE TABLE \"{t}\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \
                 \"session_id\" varchar NOT NULL, \"data\" text, \"created_at\" datetime(6) NOT NULL, \
                 \"updated_at\" datetime(6) NOT NULL)"
            ),
            format!("CREATE UNIQUE INDEX \"index_{idx}_on_session_id\" ON \"{t}\" (\"session_id\")"),
            format!("CREATE INDEX \"index_{idx}_on_updated_at\" ON \"{t}\" (\"updated_at\")"),
        ],
        // tower-sessions-sqlx-store: migrate() of PostgresStore, MySqlStore, SqliteStore
        (Kind::TowerSessions, Backend::Postgres) => vec![format!(
            "CREATE TABLE {t} (id text PRIMARY KEY NOT NULL, data bytea NOT NULL, expiry_date timestamptz NOT NULL)"
        )],
        (Kind::TowerSessions, Backend::MySql) => vec![format!(
            "CREATE TABLE {t} (id char(22) PRIMARY KEY NOT NULL, data blob NOT NULL, expiry_date timestamp(6) NOT NULL)"
        )],
        (Kind::TowerSessions, Backend::Sqlite) => vec![format!(
            "CREATE TABLE IF NOT EXISTS {t} (id text PRIMARY KEY NOT NULL, data blob NOT NULL, expiry_date integer NOT NULL)"
        )],
    }
}

fn preset(kind: Kind) -> Preset {
    match kind {
        Kind::Dbwarden => Preset::Dbwarden,
        Kind::Django => Preset::Django,
        Kind::FlaskSession => Preset::FlaskSession,
        Kind::Rails => Preset::Rails,
        Kind::TowerSessions => Preset::TowerSessions,
    }
}

impl Fixture {
    /// Creates the table: dbwarden's by migration under a unique name, a
    /// framework's by its DDL under its real name (in a unique PostgreSQL
    /// schema or MariaDB database; SQLite files are per test anyway).
    async fn new(kind: Kind, backend: Backend) -> Fixture {
        let (db, dir) = open(backend).await;
        if kind == Kind::Dbwarden {
            let schema = support::unique_schema();
            migrate(&db, &schema).await.expect("migrate");
            let table = schema.sessions_table().as_str().to_owned();
            return Fixture { db, backend, kind, table, namespace: None, schema: Some(schema), _dir: dir };
        }
        let real = preset(kind).mapping(backend).table;
        let bare = real.rsplit('.').next().unwrap_or(&real).to_owned();
        let (table, namespace) = match backend {
            Backend::Sqlite => (real.clone(), None),
            Backend::Postgres => {
                let ns = support::unique_name("cl");
                exec(&db, &format!("CREATE SCHEMA {ns}")).await;
                (format!("{ns}.{bare}"), Some(ns))
            }
            Backend::MySql => {
                let ns = support::unique_name("cl");
                exec(&db, &format!("CREATE DATABASE {ns}")).await;
                (format!("{ns}.{bare}"), Some(ns))
            }
        };
        for statement in ddl(kind, backend, &table) {
            exec(&db, &statement).await;
        }
        Fixture { db, backend, kind, table, namespace, schema: None, _dir: dir }
    }

    fn mapping(&self) -> TableMapping {
        TableMapping { table: self.table.clone(), ..preset(self.kind).mapping(self.backend) }
    }

    async fn session_table(&self) -> SessionTable {
        SessionTable::verify(&self.db, self.mapping()).await.expect("verify the session table")
    }

    async fn cleaner(&self, config: CleanupConfig) -> Cleaner {
        Cleaner::new(self.db.clone(), self.session_table().await, config)
    }

    /// A cleaner on a second pool of the same database: another process, as
    /// far as the locks can tell.
    async fn cleaner_elsewhere(&self, config: CleanupConfig) -> Cleaner {
        let other_db = match &self._dir {
            Some(dir) => {
                let url = format!("sqlite://{}/sessions.db", dir.path().display());
                SessionDatabase::connect(&url).await.expect("second sqlite pool")
            }
            None => support::server_db(self.backend).await,
        };
        Cleaner::new(other_db, self.session_table().await, config)
    }

    fn values(&self, row: &Row) -> (Vec<&'static str>, Vec<Val>) {
        let time = |ms: i64, tz: bool| Val::Time { ms, tz };
        match self.kind {
            Kind::Dbwarden => {
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&row.n.to_be_bytes());
                (
                    vec![
                        "id_hash",
                        "user_id",
                        "created_at",
                        "last_seen_at",
                        "expires_at",
                        "absolute_expires_at",
                        "version",
                        "data",
                    ],
                    vec![
                        Val::Bytes(id.to_vec()),
                        Val::OptText(row.user.clone()),
                        Val::Int(row.created_ms),
                        Val::Int(row.created_ms),
                        Val::Int(row.expires_ms),
                        Val::Int(row.expires_ms + DAY_MS),
                        Val::Int(1),
                        Val::Bytes(b"{}".to_vec()),
                    ],
                )
            }
            Kind::Django => (
                vec!["session_key", "session_data", "expire_date"],
                vec![Val::Text(format!("k{:039}", row.n)), Val::Text("e30=".into()), time(row.expires_ms, true)],
            ),
            Kind::FlaskSession => (
                vec!["session_id", "data", "expiry"],
                vec![Val::Text(format!("s{}", row.n)), Val::Bytes(b"\x80".to_vec()), time(row.expires_ms, false)],
            ),
            // Rails trims by idleness: a session "expiring" at t was last
            // updated 30 days before t.
            Kind::Rails => (
                vec!["session_id", "data", "created_at", "updated_at"],
                vec![
                    Val::Text(format!("s{}", row.n)),
                    Val::Text("x".into()),
                    time(row.created_ms, false),
                    time(row.expires_ms - 30 * DAY_MS, false),
                ],
            ),
            Kind::TowerSessions => (
                vec!["id", "data", "expiry_date"],
                vec![
                    Val::Text(format!("t{}", row.n)),
                    Val::Bytes(b"\x80".to_vec()),
                    if self.backend == Backend::Sqlite {
                        Val::Int(row.expires_ms / 1000)
                    } else {
                        time(row.expires_ms, true)
                    },
                ],
            ),
        }
    }

    /// Inserts rows, a few hundred per statement.
    async fn insert(&self, rows: &[Row]) {
        for chunk in rows.chunks(200) {
            let mut n = 0;
            let mut tuples = Vec::new();
            let mut binds = Vec::new();
            let mut columns = Vec::new();
            for row in chunk {
                let (cols, vals) = self.values(row);
                columns = cols;
                let mut parts = Vec::new();
                for val in vals {
                    n += 1;
                    let p = if self.backend == Backend::Postgres { format!("${n}") } else { "?".to_owned() };
                    parts.push(match (&val, self.backend) {
                        (Val::Time { tz: true, .. }, Backend::Postgres) => format!("to_timestamp({p}::float8 / 1000)"),
                        (Val::Time { tz: false, .. }, Backend::Postgres) => {
                            format!("(to_timestamp({p}::float8 / 1000) AT TIME ZONE 'UTC')")
                        }
                        (Val::Time { .. }, Backend::MySql) => format!("FROM_UNIXTIME({p} / 1000)"),
                        (Val::Time { .. }, Backend::Sqlite) => {
                            format!("strftime('%Y-%m-%d %H:%M:%f', {p} / 1000.0, 'unixepoch')")
                        }
                        _ => p,
                    });
                    binds.push(val);
                }
                tuples.push(format!("({})", parts.join(", ")));
            }
            let sql = format!("INSERT INTO {} ({}) VALUES {}", self.table, columns.join(", "), tuples.join(", "));
            macro_rules! run {
                ($pool:expr) => {{
                    let mut q = sqlx::query(AssertSqlSafe(sql.clone()));
                    for b in &binds {
                        q = match b {
                            Val::Int(v) | Val::Time { ms: v, .. } => q.bind(*v),
                            Val::Text(v) => q.bind(v.clone()),
                            Val::OptText(v) => q.bind(v.clone()),
                            Val::Bytes(v) => q.bind(v.clone()),
                        };
                    }
                    q.execute($pool).await.unwrap_or_else(|err| panic!("{sql}: {err}"));
                }};
            }
            match &self.db {
                SessionDatabase::Postgres(pool) => run!(pool),
                SessionDatabase::MySql(pool) => run!(pool),
                SessionDatabase::Sqlite(pool) => run!(pool),
            }
        }
    }

    /// `expired` sessions that expired an hour ago and `live` ones that
    /// expire in an hour, numbered from `first`.
    async fn insert_sessions(&self, first: i64, expired: usize, live: usize) {
        let now = now_ms();
        let rows: Vec<Row> = (0..expired + live)
            .map(|i| Row {
                n: first + i as i64,
                expires_ms: if i < expired { now - HOUR_MS } else { now + HOUR_MS },
                created_ms: now - 2 * HOUR_MS,
                user: None,
            })
            .collect();
        self.insert(&rows).await;
    }

    /// `rows` sessions numbered from 0, every fourth live and the others
    /// expired, so every page holds both kinds.
    async fn insert_every_fourth_live(&self, rows: i64) {
        let now = now_ms();
        let rows: Vec<Row> = (0..rows)
            .map(|n| Row {
                n,
                expires_ms: if n % 4 == 3 { now + HOUR_MS } else { now - HOUR_MS },
                created_ms: now - 2 * HOUR_MS,
                user: None,
            })
            .collect();
        self.insert(&rows).await;
    }

    async fn count(&self) -> i64 {
        scalar(&self.db, &format!("SELECT COUNT(*) FROM {}", self.table)).await
    }

    async fn drop(self) {
        match (&self.namespace, self.backend) {
            (Some(ns), Backend::Postgres) => exec(&self.db, &format!("DROP SCHEMA {ns} CASCADE")).await,
            (Some(ns), Backend::MySql) => exec(&self.db, &format!("DROP DATABASE {ns}")).await,
            _ => {}
        }
        if let Some(schema) = &self.schema {
            support::drop_table(&self.db, schema).await;
        }
        // Dry runs on foreign tables never create the runs table.
        let forget = format!("DELETE FROM dbwarden_cleanup_runs WHERE table_name = '{}'", self.table);
        let _ = match &self.db {
            SessionDatabase::Postgres(pool) => sqlx::query(AssertSqlSafe(forget)).execute(pool).await.map(|_| ()),
            SessionDatabase::MySql(pool) => sqlx::query(AssertSqlSafe(forget)).execute(pool).await.map(|_| ()),
            SessionDatabase::Sqlite(pool) => sqlx::query(AssertSqlSafe(forget)).execute(pool).await.map(|_| ()),
        };
    }
}

fn small_batches(batch_size: u64) -> CleanupConfig {
    CleanupConfig { batch_size, pause: Duration::from_millis(1), ..CleanupConfig::default() }
}

/// Fails when one batch of the run whose progress is `seen` removed more
/// than `batch_size` rows.
fn assert_no_batch_over(seen: &[CleanupProgress], batch_size: u64) {
    let mut before = 0;
    for p in seen {
        assert!(p.removed_so_far - before <= batch_size, "a batch removed more than {batch_size}: {seen:?}");
        before = p.removed_so_far;
    }
}

/// Collects the progress callbacks of a run.
fn recorder() -> (Arc<Mutex<Vec<CleanupProgress>>>, impl Fn(CleanupProgress) + Send + Sync) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    (seen, move |p| sink.lock().expect("progress lock").push(p))
}

/// The runs-table row of a run: (finished_at, rows_removed, batches, errors, dry_run).
async fn run_row(db: &SessionDatabase, id: i64) -> (Option<i64>, i64, i64, i64, i64) {
    let sql = format!(
        "SELECT finished_at, rows_removed, batches, errors, CAST(dry_run AS {}) FROM dbwarden_cleanup_runs WHERE id = {id}",
        if matches!(db, SessionDatabase::MySql(_)) { "SIGNED" } else { "INTEGER" }
    );
    macro_rules! get {
        ($pool:expr) => {{
            let row: (Option<i64>, i64, i64, i64, i64) = sqlx::query_as(AssertSqlSafe(sql.clone()))
                .fetch_one($pool)
                .await
                .unwrap_or_else(|err| panic!("{sql}: {err}"));
            row
        }};
    }
    match db {
        SessionDatabase::Postgres(pool) => {
            let row: (Option<i64>, i64, i64, i64, i32) =
                sqlx::query_as(AssertSqlSafe(sql.clone())).fetch_one(pool).await.expect("runs row");
            (row.0, row.1, row.2, row.3, i64::from(row.4))
        }
        SessionDatabase::MySql(pool) => get!(pool),
        SessionDatabase::Sqlite(pool) => get!(pool),
    }
}

// ---- the tests, one function per behaviour, run on every backend ----------

async fn removes_only_expired_rows_in_batches(backend: Backend) {
    let fx = Fixture::new(Kind::Dbwarden, backend).await;
    fx.insert_sessions(0, 2_500, 300).await;
    let monitor = Monitor::new();
    let cleaner =
        fx.cleaner(CleanupConfig { count_first: true, ..small_batches(200) }).await.with_monitor(monitor.clone());
    let (seen, progress) = recorder();

    let report = cleaner.run_once(CleanupMode::Expired, &progress).await.expect("cleanup");

    assert_eq!(report.rows_removed, 2_500);
    assert_eq!(report.expected_total, Some(2_500));
    assert_eq!(report.batches, 13, "2500 rows in batches of 200");
    assert_eq!(report.errors, 0);
    assert_eq!(report.lock, LockOutcome::Acquired);
    assert!(!report.budget_exhausted && !report.dry_run && report.is_clean());
    assert_eq!(fx.count().await, 300, "every live session stays");
    let expired_left =
        scalar(&fx.db, &format!("SELECT COUNT(*) FROM {} WHERE expires_at < {}", fx.table, now_ms())).await;
    assert_eq!(expired_left, 0);

    let seen = seen.lock().expect("progress").clone();
    assert_eq!(seen.len(), 13);
    assert!(seen.windows(2).all(|w| w[0].removed_so_far < w[1].removed_so_far));
    assert_eq!(seen.last().map(|p| (p.removed_so_far, p.expected_total)), Some((2_500, Some(2_500))));

    let id = report.run_id.expect("the run is recorded");
    let (finished, rows, batches, errors, dry) = run_row(&fx.db, id).await;
    assert!(finished.is_some_and(|f| f >= report.started_at_ms));
    assert_eq!((rows, batches, errors, dry), (2_500, 13, 0, 0));

    let snapshot = monitor.snapshot();
    let last = snapshot.cleanup_metrics.last_run.expect("the monitor has the run");
    assert_eq!((last.rows_removed, last.batches, last.errors), (2_500, 13, 0));
    let sample = snapshot.session_store_metrics.table.expect("the monitor has the table sample");
    assert_eq!((sample.total, sample.expired), (300, 0));

    let stats = cleaner.stats().await.expect("stats");
    assert_eq!((stats.total, stats.expired), (300, 0));
    assert_eq!(stats.last_runs.first().map(|r| (r.id, r.rows_removed, r.mode.as_str())), Some((id, 2_500, "expired")));
    fx.drop().await;
}

async fn dry_run_changes_nothing(backend: Backend) {
    let fx = Fixture::new(Kind::Dbwarden, backend).await;
    fx.insert_sessions(0, 120, 30).await;
    let cleaner = fx.cleaner(CleanupConfig { dry_run: true, ..small_batches(50) }).await;

    let report = cleaner.run_once(CleanupMode::Expired, &|_| {}).await.expect("dry run");

    assert!(report.dry_run);
    assert_eq!(report.rows_would_remove, Some(120));
    assert_eq!((report.rows_removed, report.batches), (0, 0));
    assert_eq!(fx.count().await, 150, "a dry run deletes nothing");
    let id = report.run_id.expect("migrated databases record dry runs");
    let (finished, rows, _, _, dry) = run_row(&fx.db, id).await;
    assert!(finished.is_some());
    assert_eq!((rows, dry), (120, 1));
    fx.drop().await;
}

async fn force_mode_removes_old_sessions_whatever_their_expiry(backend: Backend) {
    let fx = Fixture::new(Kind::Dbwarden, backend).await;
    let now = now_ms();
    let row = |n: i64, created_days_ago: i64, expires_in_hours: i64| Row {
        n,
        created_ms: now - created_days_ago * DAY_MS,
        expires_ms: now + expires_in_hours * HOUR_MS,
        user: None,
    };
    // Old and still valid: go. Recent, valid or not: stay.
    let mut rows: Vec<Row> = (0..40).map(|n| row(n, 3, 5)).collect();
    rows.extend((40..50).map(|n| row(n, 0, 5)));
    rows.extend((50..55).map(|n| row(n, 0, -1)));
    fx.insert(&rows).await;
    let cleaner = fx.cleaner(small_batches(15)).await;

    let report = cleaner
        .run_once(CleanupMode::Force { max_age: Duration::from_secs(2 * 86_400) }, &|_| {})
        .await
        .expect("force");

    assert_eq!(report.rows_removed, 40);
    assert_eq!(report.mode, "force");
    assert_eq!(report.max_age_seconds, Some(2 * 86_400));
    assert_eq!(fx.count().await, 15);
    let old_left =
        scalar(&fx.db, &format!("SELECT COUNT(*) FROM {} WHERE created_at < {}", fx.table, now - DAY_MS)).await;
    assert_eq!(old_left, 0);
    fx.drop().await;
}

async fn orphans_are_sessions_of_users_that_no_longer_exist(backend: Backend) {
    let fx = Fixture::new(Kind::Dbwarden, backend).await;
    let users = support::unique_name("users");
    exec(&fx.db, &format!("CREATE TABLE {users} (id BIGINT NOT NULL PRIMARY KEY, name TEXT)")).await;
    exec(&fx.db, &format!("INSERT INTO {users} (id, name) VALUES (1, 'a'), (2, 'b')")).await;
    let now = now_ms();
    let row = |n: i64, user: Option<&str>| Row {
        n,
        created_ms: now,
        expires_ms: now + HOUR_MS,
        user: user.map(str::to_owned),
    };
    let mut rows: Vec<Row> = (0..10).map(|n| row(n, Some("1"))).collect();
    rows.extend((10..15).map(|n| row(n, Some("2"))));
    rows.extend((15..45).map(|n| row(n, Some("3"))));
    rows.extend((45..52).map(|n| row(n, None)));
    fx.insert(&rows).await;
    let rule = OrphanRule { user_table: users.clone(), user_key: "id".into() };
    let cleaner = fx.cleaner(CleanupConfig { orphans: Some(rule), ..small_batches(7) }).await;

    let report = cleaner.run_once(CleanupMode::Orphans, &|_| {}).await.expect("orphans");

    assert_eq!(report.rows_removed, 30, "the sessions of user 3, who does not exist");
    assert_eq!(fx.count().await, 22, "sessions of existing users and anonymous ones stay");

    let missing = CleanupConfig {
        orphans: Some(OrphanRule { user_table: users.clone(), user_key: "uid".into() }),
        ..small_batches(7)
    };
    let err = fx.cleaner(missing).await.run_once(CleanupMode::Orphans, &|_| {}).await.expect_err("no such column");
    assert!(matches!(&err, CleanupError::Table(TableError::MissingColumn { column, .. }) if column == "uid"), "{err}");
    let injected = CleanupConfig {
        orphans: Some(OrphanRule { user_table: "users; DROP TABLE x".into(), user_key: "id".into() }),
        ..small_batches(7)
    };
    let err = fx.cleaner(injected).await.run_once(CleanupMode::Orphans, &|_| {}).await.expect_err("bad name");
    assert!(err.to_string().contains("users; DROP TABLE x"), "{err}");
    let no_rule = fx.cleaner(small_batches(7)).await.run_once(CleanupMode::Orphans, &|_| {}).await.err();
    assert!(matches!(no_rule, Some(CleanupError::NoOrphanRule)));
    assert_eq!(fx.count().await, 22);
    exec(&fx.db, &format!("DROP TABLE {users}")).await;
    fx.drop().await;
}

async fn framework_tables_are_verified_and_cleaned(backend: Backend) {
    for kind in [Kind::Django, Kind::FlaskSession, Kind::Rails, Kind::TowerSessions] {
        let fx = Fixture::new(kind, backend).await;
        fx.insert_sessions(0, 230, 40).await;
        let cleaner = fx.cleaner(small_batches(50)).await;

        let report = cleaner.run_once(CleanupMode::Expired, &|_| {}).await.expect("cleanup");

        assert_eq!(report.rows_removed, 230, "{kind:?}");
        assert_eq!(report.batches, 5, "{kind:?}");
        assert_eq!(fx.count().await, 40, "{kind:?}: live sessions stay");
        assert!(report.run_id.is_some(), "{kind:?}: the runs table is created on first use");
        let again = cleaner.run_once(CleanupMode::Expired, &|_| {}).await.expect("second cleanup");
        assert_eq!(again.rows_removed, 0, "{kind:?}");
        fx.drop().await;
    }
}

async fn force_needs_an_age_column(backend: Backend) {
    let fx = Fixture::new(Kind::Django, backend).await;
    fx.insert_sessions(0, 3, 3).await;
    let cleaner = fx.cleaner(small_batches(50)).await;
    let err = cleaner
        .run_once(CleanupMode::Force { max_age: Duration::from_secs(3600) }, &|_| {})
        .await
        .expect_err("django tables have no creation column");
    assert!(matches!(err, CleanupError::NoAgeColumn { .. }), "{err}");
    assert!(err.to_string().contains("django_session"), "{err}");
    assert_eq!(fx.count().await, 6);
    fx.drop().await;
}

async fn a_table_without_the_expiry_column_is_refused_by_name(backend: Backend) {
    let (db, _dir) = open(backend).await;
    let table = support::unique_name("foreign");
    exec(&db, &format!("CREATE TABLE {table} (id BIGINT NOT NULL PRIMARY KEY, payload TEXT, created BIGINT)")).await;
    exec(&db, &format!("INSERT INTO {table} (id, payload, created) VALUES (1, 'a', 0), (2, 'b', 0)")).await;
    let mapping = TableMapping { table: table.clone(), key: "id".into(), ..Preset::Dbwarden.mapping(backend) };

    let err = SessionTable::verify(&db, mapping).await.expect_err("no expires_at column");

    assert!(
        matches!(&err, TableError::MissingColumn { column, role, .. } if column == "expires_at" && *role == "expiry"),
        "{err}"
    );
    assert!(err.to_string().contains("expires_at"), "{err}");
    assert_eq!(scalar(&db, &format!("SELECT COUNT(*) FROM {table}")).await, 2);
    exec(&db, &format!("DROP TABLE {table}")).await;
}

async fn one_runner_at_a_time(backend: Backend) {
    let fx = Fixture::new(Kind::Dbwarden, backend).await;
    fx.insert_sessions(0, 300, 10).await;
    let first = fx.cleaner(small_batches(100)).await;
    let second = fx.cleaner_elsewhere(small_batches(100)).await;

    // The first runner holds the lock from its first batch until the second
    // has tried and returned.
    let (first_run, done_tx) = start_holding_the_lock(first).await;
    let skipped = second.run_once(CleanupMode::Expired, &|_| {}).await.expect("second runner");
    done_tx.send(()).expect("release the first runner");
    let acquired = first_run.await.expect("join").expect("first runner");

    assert_eq!(acquired.lock, LockOutcome::Acquired);
    assert!(matches!(skipped.lock, LockOutcome::Skipped { .. }), "{:?}", skipped.lock);
    if let LockOutcome::Skipped { held_by } = &skipped.lock {
        assert!(held_by.as_deref().is_some_and(|h| !h.is_empty()), "the holder's host is named");
    }
    assert!(!skipped.is_clean());
    assert_eq!((skipped.rows_removed, skipped.run_id), (0, None));
    assert_eq!(acquired.rows_removed, 300);
    assert_eq!(fx.count().await, 10);

    // The lock was released: the next run gets it.
    let next = second.run_once(CleanupMode::Expired, &|_| {}).await.expect("next run");
    assert_eq!(next.lock, LockOutcome::Acquired);
    fx.drop().await;
}

async fn a_waiting_runner_gives_up_when_the_lock_stays_held(backend: Backend) {
    let fx = Fixture::new(Kind::Dbwarden, backend).await;
    fx.insert_sessions(0, 30, 0).await;
    let first = fx.cleaner(small_batches(10)).await;
    let waiting = CleanupConfig { lock: LockPolicy::Wait(Duration::from_millis(1500)), ..small_batches(10) };
    let second = fx.cleaner_elsewhere(waiting).await;
    let (first_run, done) = start_holding_the_lock(first).await;

    let gave_up = second.run_once(CleanupMode::Expired, &|_| {}).await.expect("second runner");
    done.send(()).expect("release the first runner");
    let acquired = first_run.await.expect("join").expect("first runner");

    assert!(matches!(gave_up.lock, LockOutcome::Skipped { .. }), "{:?}", gave_up.lock);
    assert_eq!(gave_up.rows_removed, 0);
    assert_eq!(acquired.rows_removed, 30);
    fx.drop().await;
}

async fn a_waiting_runner_takes_the_lock_once_it_is_released(backend: Backend) {
    let fx = Fixture::new(Kind::Dbwarden, backend).await;
    fx.insert_sessions(0, 30, 3).await;
    let first = fx.cleaner(small_batches(10)).await;
    let waiting = CleanupConfig { lock: LockPolicy::Wait(Duration::from_secs(20)), ..small_batches(10) };
    let second = fx.cleaner_elsewhere(waiting).await;
    let (first_run, done) = start_holding_the_lock(first).await;

    let second_run = tokio::spawn(async move { second.run_once(CleanupMode::Expired, &|_| {}).await });
    let held = Duration::from_millis(400);
    tokio::time::sleep(held).await;
    assert!(!second_run.is_finished(), "the second runner waits while the lock is held");
    done.send(()).expect("release the first runner");
    let acquired = first_run.await.expect("join").expect("first runner");
    let waited = second_run.await.expect("join").expect("second runner");

    assert_eq!(acquired.lock, LockOutcome::Acquired);
    assert_eq!(acquired.rows_removed, 30);
    match waited.lock {
        LockOutcome::Waited { ms } => assert!(ms >= held.as_millis() as u64, "waited {ms} ms, held {held:?}"),
        other => panic!("the second runner should have waited for the lock, got {other:?}"),
    }
    assert!(waited.is_clean(), "{waited:?}");
    assert_eq!(waited.rows_removed, 0, "the first runner left nothing expired");
    assert!(waited.run_id.is_some(), "a run that got the lock is recorded");
    assert_eq!(fx.count().await, 3);
    fx.drop().await;
}

async fn a_shutdown_ends_the_run_after_the_batch_in_progress(backend: Backend) {
    let fx = Fixture::new(Kind::Dbwarden, backend).await;
    fx.insert_sessions(0, 50, 5).await;
    let config = CleanupConfig { pause: Duration::from_millis(300), jitter: 0.0, ..small_batches(10) };
    let cleaner = fx.cleaner(config).await;
    let first_batch = Arc::new(tokio::sync::Notify::new());
    let notify = first_batch.clone();
    let progress = move |_: CleanupProgress| notify.notify_one();
    let shutdown = async move { first_batch.notified().await };

    let report = cleaner.run_once_until(CleanupMode::Expired, &progress, shutdown).await.expect("cleanup");

    assert!(report.interrupted);
    assert_eq!((report.rows_removed, report.batches), (10, 1));
    assert_eq!(fx.count().await, 45);
    let (finished, rows, _, _, _) = run_row(&fx.db, report.run_id.expect("recorded")).await;
    assert!(finished.is_some(), "an interrupted run still records its end");
    assert_eq!(rows, 10);
    fx.drop().await;
}

async fn a_failing_batch_is_retried_then_the_run_ends_cleanly(backend: Backend) {
    let fx = Fixture::new(Kind::Dbwarden, backend).await;
    fx.insert_sessions(0, 10, 0).await;
    let config = CleanupConfig { max_batch_retries: 2, retry_backoff: Duration::from_millis(1), ..small_batches(5) };
    let cleaner = fx.cleaner(config).await;
    exec(&fx.db, &format!("DROP TABLE {}", fx.table)).await;

    let report = cleaner.run_once(CleanupMode::Expired, &|_| {}).await.expect("the run itself ends cleanly");

    assert_eq!(report.errors, 3, "the first try and two retries");
    assert!(report.gave_up && !report.is_clean());
    assert_eq!((report.rows_removed, report.batches), (0, 0));
    let (finished, _, _, errors, _) = run_row(&fx.db, report.run_id.expect("recorded")).await;
    assert!(finished.is_some());
    assert_eq!(errors, 3);
    fx.drop().await;
}

async fn the_time_budget_stops_between_batches(backend: Backend) {
    let fx = Fixture::new(Kind::Dbwarden, backend).await;
    fx.insert_sessions(0, 100, 0).await;
    let config = CleanupConfig {
        time_budget: Some(Duration::from_millis(1)),
        pause: Duration::from_millis(20),
        jitter: 0.0,
        ..small_batches(10)
    };
    let report = fx.cleaner(config).await.run_once(CleanupMode::Expired, &|_| {}).await.expect("cleanup");

    assert!(report.budget_exhausted);
    assert_eq!((report.rows_removed, report.batches), (10, 1), "one batch, then the budget is spent");
    assert_eq!(fx.count().await, 90);
    fx.drop().await;
}

support::on_every_backend!(
    removes_only_expired_rows_in_batches,
    dry_run_changes_nothing,
    force_mode_removes_old_sessions_whatever_their_expiry,
    orphans_are_sessions_of_users_that_no_longer_exist,
    framework_tables_are_verified_and_cleaned,
    force_needs_an_age_column,
    a_table_without_the_expiry_column_is_refused_by_name,
    one_runner_at_a_time,
    a_waiting_runner_gives_up_when_the_lock_stays_held,
    a_waiting_runner_takes_the_lock_once_it_is_released,
    a_shutdown_ends_the_run_after_the_batch_in_progress,
    a_failing_batch_is_retried_then_the_run_ends_cleanly,
    the_time_budget_stops_between_batches,
);

/// Starts `first` and returns once it holds the run's lock: it stays inside
/// its first progress callback until the returned sender fires, so a second
/// runner can be tried meanwhile.
async fn start_holding_the_lock(
    first: Cleaner,
) -> (tokio::task::JoinHandle<Result<CleanupReport, CleanupError>>, std::sync::mpsc::Sender<()>) {
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let done_rx = Mutex::new(done_rx);
    let (holding_tx, holding_rx) = tokio::sync::oneshot::channel::<()>();
    let holding_tx = Mutex::new(Some(holding_tx));
    let progress = move |_: CleanupProgress| {
        if let Some(tx) = holding_tx.lock().expect("lock").take() {
            let _ = tx.send(());
            // block_in_place hands this worker's queued tasks to another
            // thread, so the pools' own tasks keep running meanwhile.
            tokio::task::block_in_place(|| {
                let _ = done_rx.lock().expect("lock").recv_timeout(Duration::from_secs(60));
            });
        }
    };
    let first_run = tokio::spawn(async move { first.run_once(CleanupMode::Expired, &progress).await });
    holding_rx.await.expect("the first runner started");
    (first_run, done_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_sqlite_runners_exclude_each_other_in_process() {
    let db = SessionDatabase::connect("sqlite::memory:").await.expect("in-memory sqlite");
    migrate(&db, &SchemaConfig::default()).await.expect("migrate");
    let table = SessionTable::verify(&db, Preset::Dbwarden.mapping(Backend::Sqlite)).await.expect("verify");
    let fx = Fixture {
        db: db.clone(),
        backend: Backend::Sqlite,
        kind: Kind::Dbwarden,
        table: table.display_name().to_owned(),
        namespace: None,
        schema: None,
        _dir: None,
    };
    fx.insert_sessions(0, 25, 0).await;
    let first = Cleaner::new(db.clone(), table.clone(), small_batches(10));
    let second = Cleaner::new(db.clone(), table, small_batches(10));
    let (first_run, done) = start_holding_the_lock(first).await;

    let skipped = second.run_once(CleanupMode::Expired, &|_| {}).await.expect("second runner");
    done.send(()).expect("release the first runner");
    let acquired = first_run.await.expect("join").expect("first runner");

    assert_eq!(acquired.lock, LockOutcome::Acquired);
    assert!(matches!(skipped.lock, LockOutcome::Skipped { .. }), "{:?}", skipped.lock);
    assert_eq!(acquired.rows_removed, 25);
    let next = second.run_once(CleanupMode::Expired, &|_| {}).await.expect("next run");
    assert_eq!(next.lock, LockOutcome::Acquired, "the lock is released at the end of a run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_outlives_failed_runs_and_stops_on_shutdown() {
    let fx = Fixture::new(Kind::Dbwarden, Backend::Sqlite).await;
    fx.insert_sessions(0, 20, 5).await;
    let cleaner = fx.cleaner(CleanupConfig { max_batch_retries: 0, ..small_batches(10) }).await;
    let monitor = Monitor::new();
    // Every run fails: the table is gone.
    exec(&fx.db, &format!("DROP TABLE {}", fx.table)).await;
    let watched = monitor.clone();
    let two_runs = async move {
        while watched.snapshot().cleanup_metrics.runs < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // Spawned, as an application would: the daemon's future is Send.
    let daemon_monitor = monitor.clone();
    tokio::spawn(async move { cleaner.daemon(Duration::from_secs(1), Some(daemon_monitor), two_runs).await })
        .await
        .expect("the daemon returns after shutdown");

    let metrics = monitor.snapshot().cleanup_metrics;
    assert!(metrics.runs >= 2, "the daemon ran again after a failed run");
    assert!(metrics.errors >= 2);
    assert_eq!(monitor.snapshot().session_store_metrics.cleanup_interval_seconds, Some(1.0));
}

#[tokio::test]
async fn sqlite_without_rowid_tables_are_cleaned_by_key() {
    let (db, _dir) = open(Backend::Sqlite).await;
    exec(&db, "CREATE TABLE app_sessions (sid TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID").await;
    let now = now_ms();
    exec(
        &db,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 130) \
             INSERT INTO app_sessions (sid, expires_at) \
             SELECT 's' || i, CASE WHEN i <= 100 THEN {} ELSE {} END FROM n",
            now - HOUR_MS,
            now + HOUR_MS
        ),
    )
    .await;
    let mapping = TableMapping {
        table: "app_sessions".into(),
        key: "sid".into(),
        expiry: dbwarden_sessions::ExpiryRule::ExpiresAt {
            column: "expires_at".into(),
            unit: dbwarden_sessions::TimeUnit::EpochMillis,
        },
        created_at: None,
        last_seen_at: None,
        user_id: None,
        data: None,
    };
    let table = SessionTable::verify(&db, mapping).await.expect("verify");
    let cleaner = Cleaner::new(db.clone(), table, small_batches(30));

    let report = cleaner.run_once(CleanupMode::Expired, &|_| {}).await.expect("cleanup");

    assert_eq!((report.rows_removed, report.batches), (100, 4));
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM app_sessions").await, 30);
}

#[tokio::test]
async fn a_dry_run_on_a_foreign_database_creates_nothing() {
    let fx = Fixture::new(Kind::Django, Backend::Sqlite).await;
    fx.insert_sessions(0, 12, 3).await;
    let cleaner = fx.cleaner(CleanupConfig { dry_run: true, ..small_batches(5) }).await;

    let report = cleaner.run_once(CleanupMode::Expired, &|_| {}).await.expect("dry run");

    assert_eq!(report.rows_would_remove, Some(12));
    assert_eq!(report.run_id, None, "no runs table to record in");
    let runs_tables = scalar(&fx.db, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'dbwarden_cleanup_runs'").await;
    assert_eq!(runs_tables, 0, "a dry run creates no table");
    assert_eq!(fx.count().await, 15);
    let stats = cleaner.stats().await.expect("stats");
    assert_eq!((stats.total, stats.expired, stats.last_runs.len()), (15, 12, 0));
}

/// Batches of 1000 rows or more on PostgreSQL sweep the table's pages by
/// row-address ranges; a range that would delete more than a batch is cut
/// down, and live rows spread between the expired ones survive.
#[tokio::test]
async fn large_postgres_batches_sweep_page_ranges_without_exceeding_the_batch() {
    for kind in [Kind::Dbwarden, Kind::Django] {
        let fx = Fixture::new(kind, Backend::Postgres).await;
        fx.insert_every_fourth_live(12_000).await;
        let cleaner = fx.cleaner(small_batches(2_000)).await;
        let (seen, progress) = recorder();

        let report = cleaner.run_once(CleanupMode::Expired, &progress).await.expect("cleanup");

        assert_eq!(report.rows_removed, 9_000, "{kind:?}");
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(fx.count().await, 3_000, "{kind:?}: every live session stays");
        let seen = seen.lock().expect("progress").clone();
        assert_no_batch_over(&seen, 2_000);
        assert!(seen.len() >= 5, "{kind:?}: 9000 rows take at least five batches of 2000: {seen:?}");
        fx.drop().await;
    }
}

/// A PostgreSQL sweep does not wait for a row an application holds locked:
/// it deletes every other expired row, leaves the locked one, and a later
/// run removes it once it is free. Both sweeps are covered: page ranges
/// (batches of 2000) and the n-th-target statement (batches of 100).
#[tokio::test]
async fn postgres_sweeps_skip_rows_an_application_holds_locked() {
    for batch_size in [2_000, 100] {
        let fx = Fixture::new(Kind::Dbwarden, Backend::Postgres).await;
        fx.insert_every_fourth_live(6_000).await;
        let SessionDatabase::Postgres(pool) = &fx.db else { unreachable!("a PostgreSQL fixture") };
        // An application's open transaction holds two expired sessions locked,
        // one early in the table and one in the middle.
        let mut app = pool.begin().await.expect("application transaction");
        for n in [10_i64, 3_000] {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&n.to_be_bytes());
            let locked =
                sqlx::query(AssertSqlSafe(format!("SELECT 1 FROM {} WHERE id_hash = $1 FOR UPDATE", fx.table)))
                    .bind(id.to_vec())
                    .fetch_optional(&mut *app)
                    .await
                    .expect("lock a session");
            assert!(locked.is_some(), "session {n} exists");
        }
        let cleaner = fx.cleaner(small_batches(batch_size)).await;

        let report = tokio::time::timeout(Duration::from_secs(30), cleaner.run_once(CleanupMode::Expired, &|_| {}))
            .await
            .unwrap_or_else(|_| panic!("batch {batch_size}: the cleanup waited for the application's locks"))
            .expect("cleanup");

        assert_eq!(report.rows_removed, 4_500 - 2, "batch {batch_size}: every free expired row goes");
        assert_eq!(fx.count().await, 1_500 + 2, "batch {batch_size}: the live rows and the two locked ones stay");
        app.commit().await.expect("the application commits");
        let report = cleaner.run_once(CleanupMode::Expired, &|_| {}).await.expect("second cleanup");
        assert_eq!(report.rows_removed, 2, "batch {batch_size}: the rows freed meanwhile go next time");
        assert_eq!(fx.count().await, 1_500, "batch {batch_size}");
        fx.drop().await;
    }
}

/// Without `count_first` a run reads no total: progress and the report say
/// none, and every expired row still goes.
#[tokio::test]
async fn a_run_counts_its_targets_first_only_when_asked() {
    let fx = Fixture::new(Kind::Dbwarden, Backend::Postgres).await;
    fx.insert_sessions(0, 500, 50).await;
    let cleaner = fx.cleaner(small_batches(200)).await;
    let (seen, progress) = recorder();

    let report = cleaner.run_once(CleanupMode::Expired, &progress).await.expect("cleanup");

    assert_eq!((report.rows_removed, report.expected_total), (500, None));
    let seen = seen.lock().expect("progress").clone();
    assert!(seen.iter().all(|p| p.expected_total.is_none()), "{seen:?}");
    assert_eq!(seen.last().map(|p| p.removed_so_far), Some(500));
    assert_eq!(fx.count().await, 50);
    fx.drop().await;
}

/// Rows that reach pages added after a PostgreSQL run started (an expired
/// session rewritten by an update that does not fit its page, one inserted
/// already expired) are past the sweep's end; the run's last statement
/// finds them there.
#[tokio::test]
async fn postgres_runs_remove_expired_rows_that_moved_past_the_swept_pages() {
    let fx = Fixture::new(Kind::Dbwarden, Backend::Postgres).await;
    fx.insert_every_fourth_live(6_000).await;
    let SessionDatabase::Postgres(pool) = &fx.db else { unreachable!("a PostgreSQL fixture") };
    // Rows of ~8 KB stored in place, uncompressed, fit only on an empty
    // page. Every page the sweep reads holds rows (a swept one keeps a
    // quarter of them), so each large row goes to a new page, past the
    // sweep's end, however full inserts happened to leave the pages.
    exec(&fx.db, &format!("ALTER TABLE {} ALTER COLUMN data SET STORAGE PLAIN", fx.table)).await;
    let big_data = "(SELECT convert_to(string_agg(md5(i::text), ''), 'UTF8') FROM generate_series(1, 249) AS i)";
    let pages_at_start = scalar(&fx.db, &format!("SELECT pg_relation_size('{}') / 8192", fx.table)).await;
    let pages_with_rows = format!("SELECT COUNT(DISTINCT (ctid::text::point)[0]) FROM {}", fx.table);
    assert_eq!(scalar(&fx.db, &pages_with_rows).await, pages_at_start, "every page holds rows");
    let smallest_row = scalar(&fx.db, &format!("SELECT MIN(pg_column_size(s.*))::bigint FROM {} AS s", fx.table)).await;
    let cleaner = fx.cleaner(CleanupConfig { pause: Duration::from_millis(200), ..small_batches(1_000) }).await;
    let first_batch = tokio::sync::Notify::new();
    let progress = |_: CleanupProgress| first_batch.notify_one();
    let id = |n: i64| {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&n.to_be_bytes());
        id.to_vec()
    };
    let of_session = |expr: &str, n: i64| {
        let hex: String = id(n).iter().map(|b| format!("{b:02x}")).collect();
        format!("SELECT {expr} FROM {} AS s WHERE id_hash = '\\x{hex}'", fx.table)
    };
    let page_of = |n: i64| of_session("(ctid::text::point)[0]::bigint", n);

    let writer = async {
        first_batch.notified().await;
        // Sessions 5997 and 5998 are expired, near the table's end, where
        // the sweep is not yet after its first batch.
        let rewrite = format!("UPDATE {} SET data = {big_data}, version = version + 1 WHERE id_hash = $1", fx.table);
        sqlx::query(AssertSqlSafe(rewrite)).bind(id(5_998)).execute(pool).await.expect("rewrite an expired session");
        let copy = format!(
            "INSERT INTO {0} (id_hash, created_at, last_seen_at, expires_at, absolute_expires_at, version, data) \
             SELECT $1, created_at, last_seen_at, expires_at, absolute_expires_at, 1, {big_data} FROM {0} \
             WHERE id_hash = $2",
            fx.table
        );
        let inserted = sqlx::query(AssertSqlSafe(copy))
            .bind(id(100_000))
            .bind(id(5_997))
            .execute(pool)
            .await
            .expect("insert an expired session");
        assert_eq!(inserted.rows_affected(), 1);
        let size = of_session("pg_column_size(s.*)::bigint", 100_000);
        (scalar(&fx.db, &page_of(5_998)).await, scalar(&fx.db, &page_of(100_000)).await, scalar(&fx.db, &size).await)
    };
    let (report, (rewritten_on, inserted_on, large_row)) =
        tokio::join!(cleaner.run_once(CleanupMode::Expired, &progress), writer);
    let report = report.expect("cleanup");

    // A page has 8 168 bytes for rows and their 4-byte line pointers.
    assert!(large_row + smallest_row + 8 > 8_168, "a {large_row}-byte row fits beside a {smallest_row}-byte one");
    assert!(rewritten_on >= pages_at_start, "the rewritten session is on page {rewritten_on} of {pages_at_start}");
    assert!(inserted_on >= pages_at_start, "the inserted session is on page {inserted_on} of {pages_at_start}");
    assert_eq!(report.rows_removed, 4_500 + 1, "the expired rows, the rewritten one and the inserted one");
    let expired_left =
        scalar(&fx.db, &format!("SELECT COUNT(*) FROM {} WHERE expires_at < {}", fx.table, now_ms())).await;
    assert_eq!(expired_left, 0);
    assert_eq!(fx.count().await, 1_500, "every live session stays");
    fx.drop().await;
}

/// A PostgreSQL sweep that crosses live pages first grows its ranges; the
/// first dense range then holds far more than a batch, undoes itself and is
/// cut down, so no batch exceeds its size and every expired row goes.
#[tokio::test]
async fn postgres_ranges_that_outgrow_the_batch_are_cut_down() {
    let fx = Fixture::new(Kind::Dbwarden, Backend::Postgres).await;
    let now = now_ms();
    let rows: Vec<Row> = (0..16_000)
        .map(|n| Row {
            n,
            expires_ms: if n < 6_000 { now + HOUR_MS } else { now - HOUR_MS },
            created_ms: now - 2 * HOUR_MS,
            user: None,
        })
        .collect();
    fx.insert(&rows).await;
    exec(&fx.db, &format!("ANALYZE {}", fx.table)).await;
    let cleaner = fx.cleaner(small_batches(1_000)).await;
    let (seen, progress) = recorder();

    let report = cleaner.run_once(CleanupMode::Expired, &progress).await.expect("cleanup");

    assert_eq!(report.rows_removed, 10_000);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(fx.count().await, 6_000, "every live session stays");
    assert_no_batch_over(&seen.lock().expect("progress"), 1_000);
    fx.drop().await;
}
