//! The session-store suite, run against real PostgreSQL, MariaDB, SQLite and
//! Redis through one macro: concurrent merges, no resurrection after
//! logout, throttled writes, timeouts, per-user cap, log out everywhere,
//! id rotation, bad input, and a real axum app through tower-sessions.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use dbwarden_core::{Clock, ManualClock, Timestamp};
use dbwarden_sessions::store::{NEVER, hash_session_id};
use dbwarden_sessions::{
    Backend, CapPolicy, ClientHasher, ClientInfoLayer, RESERVED_KEY, RedisSessionStore, RedisStoreConfig, SchemaConfig,
    SessionDatabase, SessionStoreExt, SqlSessionStore, StoreConfig, UserCap,
};
use http::{Request, StatusCode, header};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Row};
use time::OffsetDateTime;
use tower::ServiceExt;
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use tower_sessions_core::SessionStore;
use tower_sessions_core::session::{Id, Record};

/// The raw form of a test's storage, for assertions the store API cannot make.
enum Raw {
    Sql { db: SessionDatabase, schema: SchemaConfig, _dir: Option<tempfile::TempDir> },
    Redis { conn: redis::aio::ConnectionManager, prefix: String },
}

struct Env<S> {
    store: S,
    clock: ManualClock,
    raw: Raw,
}

trait TestStore: SessionStore + SessionStoreExt + Clone {}
impl<T: SessionStore + SessionStoreExt + Clone> TestStore for T {}

fn start_clock() -> ManualClock {
    let now = dbwarden_core::SystemClock.now();
    ManualClock::new(now)
}

async fn sql_env(backend: Backend, config: StoreConfig) -> Env<SqlSessionStore> {
    let (db, dir) = match backend {
        Backend::Sqlite => {
            let (db, dir) = support::sqlite_db().await;
            (db, Some(dir))
        }
        _ => (support::server_db(backend).await, None),
    };
    let schema = support::unique_schema();
    let clock = start_clock();
    let store =
        SqlSessionStore::with_parts(db.clone(), config.with_schema(schema.clone()), None, Arc::new(clock.clone()));
    Env { store, clock, raw: Raw::Sql { db, schema, _dir: dir } }
}

async fn postgres(config: StoreConfig) -> Env<SqlSessionStore> {
    sql_env(Backend::Postgres, config).await
}
async fn mariadb(config: StoreConfig) -> Env<SqlSessionStore> {
    sql_env(Backend::MySql, config).await
}
async fn sqlite(config: StoreConfig) -> Env<SqlSessionStore> {
    sql_env(Backend::Sqlite, config).await
}
async fn redis_store(config: StoreConfig) -> Env<RedisSessionStore> {
    let client = redis::Client::open(support::redis_url()).expect("redis url");
    let conn = redis::aio::ConnectionManager::new(client)
        .await
        .unwrap_or_else(|err| panic!("redis is required for this test: {err}"));
    let prefix = format!("{}:", support::unique_name("dbwtest"));
    let clock = start_clock();
    let store = RedisSessionStore::with_parts(
        conn.clone(),
        config,
        RedisStoreConfig { key_prefix: prefix.clone() },
        None,
        Arc::new(clock.clone()),
    );
    Env { store, clock, raw: Raw::Redis { conn, prefix } }
}

impl<S: TestStore> Env<S> {
    fn expiry_in(&self, d: Duration) -> OffsetDateTime {
        let ms = self.clock.now().saturating_add(d).as_millis();
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).expect("time")
    }

    async fn create(&self, data: &[(&str, Value)]) -> Id {
        let mut record = Record {
            id: Id(0),
            data: data.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            expiry_date: self.expiry_in(Duration::from_secs(3600)),
        };
        self.store.create(&mut record).await.expect("create");
        assert_ne!(record.id, Id(0));
        record.id
    }

    async fn load(&self, id: &Id) -> Option<Record> {
        self.store.load(id).await.expect("load")
    }

    /// One "request": load, apply `change`, save with a fresh one-hour inactivity expiry.
    async fn request(&self, id: &Id, change: impl FnOnce(&mut HashMap<String, Value>)) -> bool {
        let Some(mut record) = self.load(id).await else { return false };
        change(&mut record.data);
        record.expiry_date = self.expiry_in(Duration::from_secs(3600));
        self.store.save(&record).await.expect("save");
        true
    }

    fn data_of(record: &Record) -> HashMap<String, Value> {
        let mut data = record.data.clone();
        data.remove(RESERVED_KEY);
        data
    }

    /// The stored bytes of a session (SQL `data`; Redis: every field and value).
    async fn raw_bytes(&self, id: &Id) -> Option<Vec<u8>> {
        let hash = hash_session_id(id);
        match &self.raw {
            Raw::Sql { db, schema, .. } => {
                let table = schema.sessions_table();
                let ph = if db.backend() == Backend::Postgres { "$1" } else { "?" };
                let sql = format!("SELECT data FROM {table} WHERE id_hash = {ph}");
                match db {
                    SessionDatabase::Postgres(p) => sqlx::query(AssertSqlSafe(sql))
                        .bind(&hash[..])
                        .fetch_optional(p)
                        .await
                        .expect("raw")
                        .map(|r| r.get(0)),
                    SessionDatabase::MySql(p) => sqlx::query(AssertSqlSafe(sql))
                        .bind(&hash[..])
                        .fetch_optional(p)
                        .await
                        .expect("raw")
                        .map(|r| r.get(0)),
                    SessionDatabase::Sqlite(p) => sqlx::query(AssertSqlSafe(sql))
                        .bind(&hash[..])
                        .fetch_optional(p)
                        .await
                        .expect("raw")
                        .map(|r| r.get(0)),
                }
            }
            Raw::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let key = format!("{prefix}s:{}", hex(&hash));
                let fields: Vec<Vec<u8>> = redis::cmd("HGETALL").arg(key).query_async(&mut conn).await.expect("raw");
                (!fields.is_empty()).then(|| fields.concat())
            }
        }
    }

    /// Overwrites a session's stored data with bytes that are not JSON.
    async fn corrupt(&self, id: &Id) {
        let hash = hash_session_id(id);
        match &self.raw {
            Raw::Sql { db, schema, .. } => {
                let table = schema.sessions_table();
                let (a, b) = if db.backend() == Backend::Postgres { ("$1", "$2") } else { ("?", "?") };
                let sql = format!("UPDATE {table} SET data = {a} WHERE id_hash = {b}");
                let garbage = b"\xff\xfe not json".to_vec();
                let rows = match db {
                    SessionDatabase::Postgres(p) => sqlx::query(AssertSqlSafe(sql))
                        .bind(garbage)
                        .bind(&hash[..])
                        .execute(p)
                        .await
                        .expect("corrupt")
                        .rows_affected(),
                    SessionDatabase::MySql(p) => sqlx::query(AssertSqlSafe(sql))
                        .bind(garbage)
                        .bind(&hash[..])
                        .execute(p)
                        .await
                        .expect("corrupt")
                        .rows_affected(),
                    SessionDatabase::Sqlite(p) => sqlx::query(AssertSqlSafe(sql))
                        .bind(garbage)
                        .bind(&hash[..])
                        .execute(p)
                        .await
                        .expect("corrupt")
                        .rows_affected(),
                };
                assert_eq!(rows, 1);
            }
            Raw::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let key = format!("{prefix}s:{}", hex(&hash));
                let _: i64 = redis::cmd("HSET")
                    .arg(key)
                    .arg("d:cart")
                    .arg(&b"{not json"[..])
                    .query_async(&mut conn)
                    .await
                    .expect("corrupt");
            }
        }
    }

    /// The stored client IP hash of a session.
    async fn raw_ip_hash(&self, id: &Id) -> Option<Vec<u8>> {
        let hash = hash_session_id(id);
        match &self.raw {
            Raw::Sql { db, schema, .. } => {
                let table = schema.sessions_table();
                let ph = if db.backend() == Backend::Postgres { "$1" } else { "?" };
                let sql = format!("SELECT ip_hash FROM {table} WHERE id_hash = {ph}");
                match db {
                    SessionDatabase::Postgres(p) => {
                        sqlx::query(AssertSqlSafe(sql)).bind(&hash[..]).fetch_one(p).await.expect("raw").get(0)
                    }
                    SessionDatabase::MySql(p) => {
                        sqlx::query(AssertSqlSafe(sql)).bind(&hash[..]).fetch_one(p).await.expect("raw").get(0)
                    }
                    SessionDatabase::Sqlite(p) => {
                        sqlx::query(AssertSqlSafe(sql)).bind(&hash[..]).fetch_one(p).await.expect("raw").get(0)
                    }
                }
            }
            Raw::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let key = format!("{prefix}s:{}", hex(&hash));
                redis::cmd("HGET").arg(key).arg("_ip").query_async(&mut conn).await.expect("raw")
            }
        }
    }

    async fn finish(self) {
        match self.raw {
            Raw::Sql { db, schema, .. } => support::drop_table(&db, &schema).await,
            Raw::Redis { mut conn, prefix } => {
                let keys: Vec<String> =
                    redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.expect("keys");
                if !keys.is_empty() {
                    let _: i64 = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.expect("del");
                }
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------- scenarios

async fn concurrent_distinct_keys<S: TestStore>(env: &Env<S>) {
    let id = env.create(&[("base", json!(0))]).await;
    let env_store = env.store.clone();
    let clock = env.clock.clone();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = env_store.clone();
            let clock = clock.clone();
            tokio::spawn(async move {
                let mut record = store.load(&id).await.expect("load").expect("live session");
                record.data.insert(format!("k{i}"), json!(i));
                let ms = clock.now().saturating_add(Duration::from_secs(3600)).as_millis();
                record.expiry_date =
                    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).expect("time");
                store.save(&record).await.expect("save");
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let data = Env::<S>::data_of(&env.load(&id).await.expect("session survives"));
    assert_eq!(data.len(), 201, "a change was lost");
    for i in 0..200 {
        assert_eq!(data.get(&format!("k{i}")), Some(&json!(i)), "key k{i} lost");
    }
    assert_eq!(data.get("base"), Some(&json!(0)));
    let stats = env.store.stats();
    assert_eq!(stats.full_writes, 200);
    assert_eq!(stats.saves_after_delete, 0);

    // Concurrent removals of distinct keys merge too.
    let removals: Vec<_> = (0..20)
        .map(|i| {
            let store = env_store.clone();
            tokio::spawn(async move {
                let mut record = store.load(&id).await.expect("load").expect("live");
                record.data.remove(&format!("k{i}"));
                store.save(&record).await.expect("save");
            })
        })
        .collect();
    for task in removals {
        task.await.expect("task");
    }
    let data = Env::<S>::data_of(&env.load(&id).await.expect("live"));
    assert_eq!(data.len(), 181);
    assert!(!data.contains_key("k0") && data.contains_key("k20"));
}

async fn logout_during_slow_request<S: TestStore>(env: &Env<S>) {
    let id = env.create(&[("cart", json!(["apple"]))]).await;
    let mut slow = env.load(&id).await.expect("loaded by the slow request");
    // Meanwhile another request logs out.
    env.store.delete(&id).await.expect("logout");
    // The slow request finishes and saves a change…
    slow.data.insert("cart".into(), json!(["apple", "pear"]));
    env.store.save(&slow).await.expect("late save");
    assert!(env.load(&id).await.is_none(), "late save resurrected a deleted session");
    assert!(env.raw_bytes(&id).await.is_none());
    // …or an unmodified save (an activity touch) later: still gone.
    env.clock.advance(Duration::from_secs(3600 * 2));
    let untouched = {
        let mut r = slow.clone();
        r.data.insert("cart".into(), json!(["apple"]));
        r
    };
    env.store.save(&untouched).await.expect("late touch");
    assert!(env.raw_bytes(&id).await.is_none());
    assert!(env.store.stats().saves_after_delete >= 1);
}

async fn throttled_writes<S: TestStore>(env: &Env<S>) {
    let id = env.create(&[("n", json!(1))]).await;
    let created_raw = env.raw_bytes(&id).await.expect("stored");
    assert!(!String::from_utf8_lossy(&created_raw).contains(RESERVED_KEY), "reserved key stored");

    // Unmodified within 15 minutes: nothing written.
    for _ in 0..3 {
        env.clock.advance(Duration::from_secs(4 * 60));
        assert!(env.request(&id, |_| {}).await);
    }
    let stats = env.store.stats();
    assert_eq!((stats.created, stats.full_writes, stats.touches, stats.writes_avoided), (1, 0, 0, 3));

    // 16 minutes after the last write: one touch, data untouched.
    env.clock.advance(Duration::from_secs(4 * 60));
    assert!(env.request(&id, |_| {}).await);
    let stats = env.store.stats();
    assert_eq!((stats.full_writes, stats.touches, stats.writes_avoided), (0, 1, 3));
    let loaded = env.load(&id).await.expect("live");
    let meta = loaded.data.get(RESERVED_KEY).expect("meta");
    assert_eq!(meta["w"], json!(env.clock.now().as_millis()), "touch moved last_seen_at");
    assert_eq!(meta["v"], json!(1), "a touch does not bump the version");
    assert_eq!(Env::<S>::data_of(&loaded), HashMap::from([("n".to_owned(), json!(1))]));

    // A change is always written, at once.
    assert!(
        env.request(&id, |d| {
            d.insert("n".into(), json!(2));
        })
        .await
    );
    let stats = env.store.stats();
    assert_eq!((stats.full_writes, stats.touches), (1, 1));
    assert_eq!(Env::<S>::data_of(&env.load(&id).await.expect("live"))["n"], json!(2));
    // Setting a key to the value it already has is not a change.
    assert!(
        env.request(&id, |d| {
            d.insert("n".into(), json!(2));
        })
        .await
    );
    assert_eq!(env.store.stats().full_writes, 1);
}

async fn throttle_switched_off<S: TestStore>(env: &Env<S>) {
    let id = env.create(&[("n", json!(1))]).await;
    for _ in 0..5 {
        env.clock.advance(Duration::from_secs(1));
        assert!(env.request(&id, |_| {}).await);
    }
    let stats = env.store.stats();
    assert_eq!((stats.full_writes, stats.touches, stats.writes_avoided), (5, 0, 0));
    assert_eq!(Env::<S>::data_of(&env.load(&id).await.expect("live"))["n"], json!(1));
}

async fn idle_timeout<S: TestStore>(env: &Env<S>) {
    // Idle 30 minutes: active every 10 minutes keeps it alive…
    let id = env.create(&[("u", json!(1))]).await;
    for _ in 0..6 {
        env.clock.advance(Duration::from_secs(10 * 60));
        assert!(env.request(&id, |_| {}).await, "active session lapsed");
    }
    // …31 idle minutes end it on the server, whatever the cookie says.
    env.clock.advance(Duration::from_secs(31 * 60));
    assert!(env.load(&id).await.is_none());
    assert_eq!(env.store.stats().expired_loads, 1);
}

async fn absolute_timeout<S: TestStore>(env: &Env<S>) {
    let id = env.create(&[("u", json!(1))]).await;
    for _ in 0..5 {
        env.clock.advance(Duration::from_secs(10 * 60));
        assert!(
            env.request(&id, |d| {
                d.insert("t".into(), json!(1));
            })
            .await
        );
    }
    env.clock.advance(Duration::from_secs(11 * 60));
    assert!(env.load(&id).await.is_none(), "absolute timeout not enforced");
}

async fn record_expiry<S: TestStore>(env: &Env<S>) {
    let mut record = Record {
        id: Id(0),
        data: HashMap::from([("a".to_owned(), json!(1))]),
        expiry_date: env.expiry_in(Duration::from_secs(300)),
    };
    env.store.create(&mut record).await.expect("create");
    env.clock.advance(Duration::from_secs(299));
    assert!(env.load(&record.id).await.is_some());
    env.clock.advance(Duration::from_secs(2));
    assert!(env.load(&record.id).await.is_none());
}

async fn user_cap_evicts_oldest<S: TestStore>(env: &Env<S>) {
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(env.create(&[("user_id", json!("alice"))]).await);
        env.clock.advance(Duration::from_secs(1));
    }
    assert!(env.load(&ids[0]).await.is_none(), "oldest not evicted");
    assert!(env.load(&ids[1]).await.is_some() && env.load(&ids[2]).await.is_some());
    assert_eq!(env.store.user_session_count("alice").await.expect("count"), 2);
    // Logging in an anonymous session counts against the cap as well.
    let anon = env.create(&[("cart", json!(1))]).await;
    env.clock.advance(Duration::from_secs(1));
    assert!(
        env.request(&anon, |d| {
            d.insert("user_id".into(), json!("alice"));
        })
        .await
    );
    assert!(env.load(&ids[1]).await.is_none());
    assert_eq!(env.store.user_session_count("alice").await.expect("count"), 2);
    assert_eq!(env.store.stats().cap_evictions, 2);
}

async fn user_cap_refuses<S: TestStore>(env: &Env<S>) {
    env.create(&[("user_id", json!(7))]).await;
    env.create(&[("user_id", json!(7))]).await;
    let mut third = Record {
        id: Id(0),
        data: HashMap::from([("user_id".to_owned(), json!(7))]),
        expiry_date: env.expiry_in(Duration::from_secs(3600)),
    };
    let err = env.store.create(&mut third).await.expect_err("third session refused");
    assert!(err.to_string().contains("cap 2"), "{err}");
    assert_eq!(env.store.user_session_count("7").await.expect("count"), 2);
    assert_eq!(env.store.stats().cap_refusals, 1);
}

async fn logout_everywhere<S: TestStore>(env: &Env<S>) {
    let a1 = env.create(&[("user_id", json!("a"))]).await;
    let a2 = env.create(&[("user_id", json!("a"))]).await;
    let a3 = env.create(&[("user_id", json!("a"))]).await;
    let b1 = env.create(&[("user_id", json!("b"))]).await;
    assert_eq!(env.store.logout_user("a", Some(&a1)).await.expect("logout"), 2);
    assert!(env.load(&a1).await.is_some());
    assert!(env.load(&a2).await.is_none() && env.load(&a3).await.is_none());
    assert!(env.load(&b1).await.is_some());
    assert_eq!(env.store.logout_user("a", None).await.expect("logout"), 1);
    assert!(env.load(&a1).await.is_none());
    assert_eq!(env.store.user_session_count("b").await.expect("count"), 1);
}

async fn rotate_id<S: TestStore>(env: &Env<S>) {
    let old = env.create(&[("role", json!("user")), ("user_id", json!("r"))]).await;
    let stale = env.load(&old).await.expect("live");
    let new = env.store.rotate_id(&old).await.expect("rotate").expect("rotated");
    assert_ne!(new, old);
    assert!(env.load(&old).await.is_none(), "old id still works");
    let data = Env::<S>::data_of(&env.load(&new).await.expect("new id works"));
    assert_eq!(data["role"], json!("user"));
    // A late save through the old id does not bring it back.
    let mut late = stale;
    late.data.insert("role".into(), json!("admin"));
    env.store.save(&late).await.expect("late save");
    assert!(env.load(&old).await.is_none());
    assert_eq!(Env::<S>::data_of(&env.load(&new).await.expect("live"))["role"], json!("user"));
    assert_eq!(env.store.user_session_count("r").await.expect("count"), 1);
    assert_eq!(env.store.rotate_id(&Id(12345)).await.expect("rotate unknown"), None);
}

async fn bad_input<S: TestStore>(env: &Env<S>) {
    // Oversized data: refused with a clear error, nothing written.
    let big = "x".repeat(2048);
    let mut record = Record {
        id: Id(0),
        data: HashMap::from([("blob".to_owned(), json!(big))]),
        expiry_date: env.expiry_in(Duration::from_secs(3600)),
    };
    let err = env.store.create(&mut record).await.expect_err("oversized refused");
    assert!(err.to_string().contains("over the limit of 1024 bytes"), "{err}");
    assert!(env.raw_bytes(&record.id).await.is_none());

    // An oversized save of an existing session keeps the old data.
    let id = env.create(&[("cart", json!([1, 2]))]).await;
    let mut loaded = env.load(&id).await.expect("live");
    loaded.data.insert("blob".into(), json!("y".repeat(2048)));
    let err = env.store.save(&loaded).await.expect_err("oversized save refused");
    assert!(err.to_string().contains("over the limit"), "{err}");
    assert_eq!(Env::<S>::data_of(&env.load(&id).await.expect("live"))["cart"], json!([1, 2]));

    // Data that does not decode: a fresh session instead, the stored row left alone.
    env.corrupt(&id).await;
    let before = env.raw_bytes(&id).await.expect("row");
    assert!(env.load(&id).await.is_none());
    assert_eq!(env.raw_bytes(&id).await.expect("row kept"), before);
    assert_eq!(env.store.stats().undecodable_loads, 1);

    // Unknown ids are counted (id guessing shows up there).
    for guess in 0..3 {
        assert!(env.load(&Id(guess)).await.is_none());
    }
    assert_eq!(env.store.stats().unknown_id_loads, 3);

    // The raw id is never stored; its hash is the key.
    let raw = env.raw_bytes(&id).await.expect("row");
    assert!(!String::from_utf8_lossy(&raw).contains(&id.to_string()));
}

/// An axum app behind tower-sessions' SessionManagerLayer and the client-info layer.
async fn through_axum<S: TestStore>(env: &Env<S>) {
    async fn incr(session: Session) -> String {
        let n: i64 = session.get("n").await.expect("get").unwrap_or(0) + 1;
        session.insert("n", n).await.expect("insert");
        n.to_string()
    }
    let hasher = ClientHasher::new(b"test-key-0123456789");
    let app = Router::new()
        .route("/incr", get(incr))
        .layer(
            SessionManagerLayer::new(env.store.clone())
                .with_secure(false)
                .with_expiry(Expiry::OnInactivity(time::Duration::hours(1))),
        )
        .layer(ClientInfoLayer::new(hasher.clone()));
    let peer: SocketAddr = "203.0.113.9:5000".parse().expect("addr");
    let call = |cookie: Option<String>| {
        let app = app.clone();
        async move {
            let mut request = Request::get("/incr").header(header::USER_AGENT, "test-agent/1.0");
            if let Some(cookie) = cookie {
                request = request.header(header::COOKIE, cookie);
            }
            let mut request = request.body(Body::empty()).expect("request");
            request.extensions_mut().insert(ConnectInfo(peer));
            let response = app.oneshot(request).await.expect("infallible");
            let status = response.status();
            let set_cookie = response
                .headers()
                .get(header::SET_COOKIE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(str::to_owned);
            let body = axum::body::to_bytes(response.into_body(), 1024).await.expect("body");
            (status, set_cookie, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let (status, cookie, body) = call(None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "1"));
    let cookie = cookie.expect("session cookie set");
    let (_, _, body) = call(Some(cookie.clone())).await;
    assert_eq!(body, "2");
    let id: Id = cookie.trim_start_matches("id=").parse().expect("cookie holds an id");
    assert_eq!(
        env.raw_ip_hash(&id).await.expect("ip hash stored"),
        hasher.hash_ip("203.0.113.9".parse().expect("ip")).to_vec()
    );

    // Tampered and oversized cookies: a fresh session, no error, the real one untouched.
    for bad in ["id=not-a-session-id!!".to_owned(), format!("id={}", "A".repeat(8192)), "id=".to_owned()] {
        let (status, new_cookie, body) = call(Some(bad)).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "1"));
        assert!(new_cookie.is_some_and(|c| c != cookie));
    }
    let (_, _, body) = call(Some(cookie)).await;
    assert_eq!(body, "3");
}

// ---------------------------------------------------------------- the suite

fn small() -> StoreConfig {
    StoreConfig::default().with_max_data_bytes(1024)
}

macro_rules! store_suite {
    ($name:ident, $make:ident) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn two_hundred_concurrent_requests_lose_nothing() {
                let env = $make(StoreConfig::default()).await;
                concurrent_distinct_keys(&env).await;
                env.finish().await;
            }

            #[tokio::test]
            async fn logout_during_a_slow_request_is_not_undone() {
                let env = $make(StoreConfig::default()).await;
                logout_during_slow_request(&env).await;
                env.finish().await;
            }

            #[tokio::test]
            async fn unmodified_sessions_are_touched_at_most_every_throttle_interval() {
                let env = $make(StoreConfig::default()).await;
                throttled_writes(&env).await;
                env.finish().await;
            }

            #[tokio::test]
            async fn throttle_off_writes_every_save() {
                let env = $make(StoreConfig::default().with_throttle(None)).await;
                throttle_switched_off(&env).await;
                env.finish().await;
            }

            #[tokio::test]
            async fn idle_timeout_is_enforced_on_the_server() {
                let config = StoreConfig::default().with_idle_timeout(Some(Duration::from_secs(30 * 60)));
                let env = $make(config).await;
                idle_timeout(&env).await;
                env.finish().await;
            }

            #[tokio::test]
            async fn absolute_timeout_ends_active_sessions() {
                let config = StoreConfig::default().with_absolute_timeout(Some(Duration::from_secs(3600)));
                let env = $make(config).await;
                absolute_timeout(&env).await;
                env.finish().await;
            }

            #[tokio::test]
            async fn the_records_expiry_is_enforced() {
                let env = $make(StoreConfig::default()).await;
                record_expiry(&env).await;
                env.finish().await;
            }

            #[tokio::test]
            async fn per_user_cap_evicts_the_oldest() {
                let cap = UserCap { max_sessions: 2, policy: CapPolicy::EvictOldest };
                let env = $make(StoreConfig::default().with_user_cap(Some(cap))).await;
                user_cap_evicts_oldest(&env).await;
                env.finish().await;
            }

            #[tokio::test]
            async fn per_user_cap_refuses() {
                let cap = UserCap { max_sessions: 2, policy: CapPolicy::Refuse };
                let env = $make(StoreConfig::default().with_user_cap(Some(cap))).await;
                user_cap_refuses(&env).await;
                env.finish().await;
            }

            #[tokio::test]
            async fn log_out_everywhere() {
                let env = $make(StoreConfig::default()).await;
                logout_everywhere(&env).await;
                env.finish().await;
            }

            #[tokio::test]
            async fn rotating_the_id_keeps_data_and_kills_the_old_id() {
                let env = $make(StoreConfig::default()).await;
                rotate_id(&env).await;
                env.finish().await;
            }

            #[tokio::test]
            async fn bad_input_gets_clear_errors_and_loses_nothing() {
                let env = $make(small()).await;
                bad_input(&env).await;
                env.finish().await;
            }

            #[tokio::test]
            async fn an_axum_app_through_session_manager_layer() {
                let env = $make(StoreConfig::default()).await;
                through_axum(&env).await;
                env.finish().await;
            }
        }
    };
}

store_suite!(postgres_store, postgres);
store_suite!(mariadb_store, mariadb);
store_suite!(sqlite_store, sqlite);
store_suite!(redis_store_suite, redis_store);

#[test]
fn never_is_year_9999() {
    assert_eq!(Timestamp::from_millis(NEVER as u64).to_rfc3339(), "9999-12-31T23:59:59.999Z");
}
