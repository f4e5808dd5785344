//! The SQL session store: PostgreSQL, MySQL / MariaDB and SQLite through
//! one [`SessionDatabase`].
//!
//! Write paths, cheapest first:
//! - an unmodified session within the throttle interval: nothing;
//! - an unmodified session past it: one conditional `UPDATE` of
//!   `last_seen_at` / `expires_at` that leaves `data` and `version` alone;
//! - a modified session: `UPDATE … WHERE id_hash = ? AND version = ?`; when
//!   another request wrote first, the row is locked (`SELECT … FOR UPDATE`,
//!   SQLite `BEGIN IMMEDIATE`), this request's changed and removed keys are
//!   re-applied to the newer data, and it is written in the same transaction.
//!
//! A save never inserts: a session deleted meanwhile (logout, rotation)
//! stays deleted. Only `create` inserts, with a fresh id.
//!
//! Statements on the request path run on a checked-out connection, not on
//! the pool as executor: sqlx wraps a pool-executed statement in a boxed
//! stream around its own checkout, which costs noticeably more client CPU
//! per statement.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use dbwarden_core::{Clock, Monitor, SessionWrite, SystemClock};
use serde_json::Value;
use sqlx::{Arguments, AssertSqlSafe, Row};
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, ExpiredDeletion, SessionStore};

use super::client::current_client;
use super::json;
use super::meta::{self, Changes, IdHash, LoadMeta, LoadState, RESERVED_KEY, WithoutMeta};
use super::stats::{Counters, bump};
use super::{
    CapPolicy, MAX_ID_ATTEMPTS, NEVER, SessionStoreExt, StoreConfig, StoreError, StoreStats, UnknownIdBucket,
    duration_ms, hash_session_id, new_session_id,
};
use crate::db::{Backend, SessionDatabase, on_pool};
use crate::migrate::{MigrationReport, migrate};

/// Rows `delete_expired` removes per statement (each its own short transaction).
const EXPIRED_BATCH: i64 = 1000;

/// A tower-sessions store on PostgreSQL, MySQL / MariaDB or SQLite.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use dbwarden_sessions::{SessionDatabase, SqlSessionStore, StoreConfig};
///
/// let db = SessionDatabase::connect("sqlite://./sessions.db").await?;
/// let store = SqlSessionStore::new(db, StoreConfig::default());
/// store.migrate().await?; // optional: the first use migrates too
/// // tower_sessions::SessionManagerLayer::new(store) …
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqlSessionStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: SessionDatabase,
    config: StoreConfig,
    sql: Statements,
    migrated: tokio::sync::OnceCell<()>,
    counters: Counters,
    clock: Arc<dyn Clock>,
}

impl SqlSessionStore {
    /// A store on `db` with `config`, the system clock and no monitor.
    pub fn new(db: SessionDatabase, config: StoreConfig) -> SqlSessionStore {
        SqlSessionStore::with_parts(db, config, None, Arc::new(SystemClock))
    }

    /// A store that also reports every write decision to `monitor`
    /// (`Monitor::record_session_write`), and reads time from `clock`.
    pub fn with_parts(
        db: SessionDatabase,
        config: StoreConfig,
        monitor: Option<Monitor>,
        clock: Arc<dyn Clock>,
    ) -> SqlSessionStore {
        let sql = Statements::new(db.backend(), config.schema.sessions_table().as_str());
        SqlSessionStore {
            inner: Arc::new(Inner {
                db,
                config,
                sql,
                migrated: tokio::sync::OnceCell::new(),
                counters: Counters::with_monitor(monitor),
                clock,
            }),
        }
    }

    /// Applies pending migrations now (otherwise the first operation does).
    pub async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        let report = migrate(&self.inner.db, &self.inner.config.schema).await?;
        let _ = self.inner.migrated.set(());
        Ok(report)
    }

    /// The database handle.
    pub fn database(&self) -> &SessionDatabase {
        &self.inner.db
    }

    /// The settings.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// Loads of unknown ids per minute, for the last two hours (oldest first).
    pub fn unknown_id_history(&self) -> Vec<UnknownIdBucket> {
        self.inner.counters.unknown_id_history()
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let inner = &self.inner;
        inner.migrated.get_or_try_init(|| async { migrate(&inner.db, &inner.config.schema).await.map(|_| ()) }).await?;
        Ok(())
    }

    fn now(&self) -> i64 {
        i64::try_from(self.inner.clock.now().as_millis()).unwrap_or(i64::MAX)
    }

    /// The expiry to store: the record's, capped by the idle and absolute timeouts.
    fn target_expiry(&self, record_expiry: OffsetDateTime, now: i64, absolute: i64) -> i64 {
        let mut expires = i64::try_from(record_expiry.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        if let Some(idle) = self.inner.config.idle_timeout {
            expires = expires.min(now.saturating_add(duration_ms(idle)));
        }
        expires.min(absolute)
    }

    /// Whether an unmodified session is due for an activity touch.
    fn touch_due(&self, now: i64, meta: &LoadState<'_>, new_expiry: i64, throttle: i64) -> bool {
        let elapsed = now - meta.w;
        let mut interval = throttle.min((new_expiry - now).max(0) / 2);
        if let Some(idle) = self.inner.config.idle_timeout {
            interval = interval.min(duration_ms(idle) / 2);
        }
        // Also write when the expiry moved other than by the passing of time:
        // shortened, or extended by more than the time since the last write.
        elapsed > interval || new_expiry < meta.e || new_expiry - meta.e > elapsed + 1_000
    }

    fn encode(&self, data: &HashMap<String, Value>) -> Result<Vec<u8>, StoreError> {
        // Sized for a typical session up front: growing from empty costs several copies.
        let mut bytes = Vec::with_capacity(512);
        serde_json::to_writer(&mut bytes, &WithoutMeta(data)).map_err(|err| StoreError::Encode(err.to_string()))?;
        self.check_size(bytes)
    }

    /// Encodes a loaded record's data from what the save found: unchanged
    /// keys as the text they were stored as, the rest encoded anew.
    fn encode_changes(&self, changes: &Changes<'_>) -> Result<Vec<u8>, StoreError> {
        let stored: usize = changes.kept_text.iter().map(|text| text.len() + 1).sum();
        let mut bytes = Vec::with_capacity(stored + 64 * (changes.set.len() + changes.kept.len()) + 2);
        changes.encode(&mut bytes).map_err(|err| StoreError::Encode(err.to_string()))?;
        self.check_size(bytes)
    }

    fn check_size(&self, bytes: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let limit = self.inner.config.max_data_bytes;
        if bytes.len() > limit {
            bump(&self.inner.counters.oversized_rejections);
            return Err(StoreError::DataTooLarge { size: bytes.len(), limit });
        }
        Ok(bytes)
    }

    fn user_id(&self, data: &HashMap<String, Value>) -> Option<String> {
        meta::user_id_of(data, self.inner.config.user_id_key.as_deref())
    }

    async fn load_record(&self, id: &Id) -> Result<Option<Record>, StoreError> {
        self.ready().await?;
        let now = self.now();
        let hash = hash_session_id(id);
        let sql = self.inner.sql.load.clone();
        on_pool!(&self.inner.db, pool => {
            let mut args = arguments_for(pool, 1, hash.len() + 8);
            args.add(&hash[..]).map_err(bind_error)?;
            let mut conn = pool.acquire().await?;
            let row = sqlx::query_with(AssertSqlSafe(sql), args).fetch_optional(&mut *conn).await?;
            // Back to the pool before the decoding: the row owns its bytes.
            drop(conn);
            match row {
                // Text and data are read in place from the row, not copied out first.
                Some(row) => Ok(self.loaded_record(
                    IdHash { id: id.0, hash },
                    now,
                    LoadState {
                        u: row.try_get(0)?,
                        w: row.try_get(1)?,
                        e: row.try_get(2)?,
                        a: row.try_get(3)?,
                        v: row.try_get(4)?,
                    },
                    row.try_get(5)?,
                )),
                None => {
                    self.inner.counters.unknown_id(self.inner.clock.now());
                    Ok(None)
                }
            }
        })
    }

    /// The record of a row a load read (`state` as stored), or `None` when
    /// it has expired or its data does not decode.
    fn loaded_record(&self, id: IdHash, now: i64, state: LoadState<'_>, stored: &[u8]) -> Option<Record> {
        let idle_lapsed =
            self.inner.config.idle_timeout.is_some_and(|idle| state.w.saturating_add(duration_ms(idle)) <= now);
        if state.e <= now || state.a <= now || idle_lapsed {
            bump(&self.inner.counters.expired_loads);
            return None;
        }
        let data = match meta::attach_stored(stored, state, id) {
            Ok(data) => data,
            Err(err) => {
                bump(&self.inner.counters.undecodable_loads);
                tracing::warn!(
                    id_hash_prefix = %hex_prefix(&id.hash),
                    error = %err,
                    "session data does not decode as a json object; starting a fresh session and leaving the stored row for cleanup"
                );
                return None;
            }
        };
        let expiry_date = OffsetDateTime::from_unix_timestamp_nanos(i128::from(state.e) * 1_000_000)
            .unwrap_or_else(|_| OffsetDateTime::now_utc());
        Some(Record { id: Id(id.id), data, expiry_date })
    }

    async fn create_record(&self, record: &mut Record) -> Result<(), StoreError> {
        self.ready().await?;
        let now = self.now();
        record.data.remove(RESERVED_KEY);
        let bytes = self.encode(&record.data)?;
        let user_id = self.user_id(&record.data);
        if let Some(user) = &user_id {
            self.enforce_cap(user, None, now).await?;
        }
        let absolute = self.inner.config.absolute_timeout.map_or(NEVER, |d| now.saturating_add(duration_ms(d)));
        let expires = self.target_expiry(record.expiry_date, now, absolute);
        let client = current_client();
        let mut attempts = 0;
        let hash = loop {
            attempts += 1;
            record.id = new_session_id();
            let hash = hash_session_id(&record.id);
            let sql = self.inner.sql.insert.clone();
            let inserted = on_pool!(&self.inner.db, pool => {
                let query = sqlx::query(AssertSqlSafe(sql))
                    .bind(&hash[..])
                    .bind(user_id.as_deref())
                    .bind(now)
                    .bind(now)
                    .bind(expires)
                    .bind(absolute)
                    .bind(client.ip_hash.as_ref().map(|h| &h[..]))
                    .bind(client.ua_hash.as_ref().map(|h| &h[..]))
                    .bind(&bytes[..]);
                match pool.acquire().await {
                    Ok(mut conn) => query.execute(&mut *conn).await.map(|_| ()),
                    Err(err) => Err(err),
                }
            });
            match inserted {
                Ok(()) => break hash,
                Err(sqlx::Error::Database(err)) if err.is_unique_violation() && attempts < MAX_ID_ATTEMPTS => {
                    tracing::warn!("session id collision; drawing another id");
                }
                Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
                    return Err(StoreError::IdExhausted { attempts });
                }
                Err(err) => return Err(err.into()),
            }
        };
        bump(&self.inner.counters.created);
        if let Some(monitor) = &self.inner.counters.monitor {
            monitor.record_session_write(SessionWrite::Full);
        }
        let state = LoadState { v: 1, w: now, e: expires, a: absolute, u: user_id.as_deref() };
        meta::attach(&mut record.data, state, IdHash { id: record.id.0, hash });
        Ok(())
    }

    async fn save_record(&self, record: &Record) -> Result<(), StoreError> {
        self.ready().await?;
        let now = self.now();
        let client = current_client();
        let Some(loaded) = LoadMeta::of(&record.data) else {
            let hash = hash_session_id(&record.id);
            // Not loaded through this store (e.g. cleared before loading):
            // overwrite the data if the session still exists, never insert.
            let bytes = self.encode(&record.data)?;
            let user_id = self.user_id(&record.data);
            let expires = self.target_expiry(record.expiry_date, now, NEVER);
            let rows = self
                .write_data(&self.inner.sql.update_any, &hash, &bytes, user_id.as_deref(), now, expires, None)
                .await?;
            self.count_full_or_gone(rows);
            return Ok(());
        };
        let hash = loaded.hash_of(record.id.0).unwrap_or_else(|| hash_session_id(&record.id));
        let expires = self.target_expiry(record.expiry_date, now, loaded.state.a);
        let changes = meta::diff(&record.data, &loaded);
        let loaded = loaded.state;
        if changes.is_empty()
            && let Some(throttle) = self.inner.config.throttle
        {
            if !self.touch_due(now, &loaded, expires, duration_ms(throttle)) {
                self.inner.counters.write(SessionWrite::Avoided);
                return Ok(());
            }
            let sql = self.inner.sql.touch.clone();
            let rows = on_pool!(&self.inner.db, pool => {
                sqlx::query(AssertSqlSafe(sql))
                    .bind(now)
                    .bind(expires)
                    .bind(client.ip_hash.as_ref().map(|h| &h[..]))
                    .bind(client.ua_hash.as_ref().map(|h| &h[..]))
                    .bind(&hash[..])
                    .bind(now)
                    .execute(&mut *pool.acquire().await?)
                    .await?
                    .rows_affected()
            });
            if rows == 1 {
                self.inner.counters.write(SessionWrite::Touch);
            } else {
                // Deleted meanwhile, or touched by a concurrent request: nothing to do.
                self.inner.counters.write(SessionWrite::Avoided);
            }
            return Ok(());
        }
        let bytes = self.encode_changes(&changes)?;
        let user_id = self.user_id(&record.data);
        if let Some(user) = &user_id
            && loaded.u != Some(user.as_str())
        {
            self.enforce_cap(user, Some(&hash), now).await?;
        }
        // The data is written now; the activity columns (indexed: moving them
        // costs index entries and PostgreSQL's HOT updates) only when a touch
        // would be due anyway.
        let activity_due = match self.inner.config.throttle {
            Some(throttle) => self.touch_due(now, &loaded, expires, duration_ms(throttle)),
            None => true,
        };
        let rows = if activity_due {
            self.write_data(
                &self.inner.sql.update_guarded,
                &hash,
                &bytes,
                user_id.as_deref(),
                now,
                expires,
                Some(loaded.v),
            )
            .await?
        } else if client.ip_hash.is_none() && client.ua_hash.is_none() {
            // Nothing to record about the client: the statement without the
            // two `COALESCE(?, …)` columns has two binds fewer to encode.
            let sql = self.inner.sql.update_data_guarded_no_client.clone();
            on_pool!(&self.inner.db, pool => {
                let mut args = arguments_for(pool, 4, bytes.len() + hash.len() + user_id.as_ref().map_or(0, String::len) + 40);
                args.add(&bytes[..]).map_err(bind_error)?;
                args.add(user_id.as_deref()).map_err(bind_error)?;
                args.add(&hash[..]).map_err(bind_error)?;
                args.add(loaded.v).map_err(bind_error)?;
                let mut conn = pool.acquire().await?;
                sqlx::query_with(AssertSqlSafe(sql), args).execute(&mut *conn).await?.rows_affected()
            })
        } else {
            let sql = self.inner.sql.update_data_guarded.clone();
            on_pool!(&self.inner.db, pool => {
                let mut conn = pool.acquire().await?;
                sqlx::query(AssertSqlSafe(sql))
                    .bind(&bytes[..])
                    .bind(user_id.as_deref())
                    .bind(client.ip_hash.as_ref().map(|h| &h[..]))
                    .bind(client.ua_hash.as_ref().map(|h| &h[..]))
                    .bind(&hash[..])
                    .bind(loaded.v)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected()
            })
        };
        if rows == 1 {
            self.inner.counters.write(SessionWrite::Full);
            return Ok(());
        }
        self.merge_and_write(&hash, &record.data, &changes, now, expires).await
    }

    /// Runs an `UPDATE … SET data` (guarded by `version` when given).
    #[allow(clippy::too_many_arguments)]
    async fn write_data(
        &self,
        sql: &Arc<str>,
        hash: &[u8; 32],
        bytes: &[u8],
        user_id: Option<&str>,
        now: i64,
        expires: i64,
        version: Option<i64>,
    ) -> Result<u64, StoreError> {
        let client = current_client();
        let sql = sql.clone();
        Ok(on_pool!(&self.inner.db, pool => {
            let mut query = sqlx::query(AssertSqlSafe(sql))
                .bind(bytes)
                .bind(user_id)
                .bind(now)
                .bind(expires)
                .bind(client.ip_hash.as_ref().map(|h| &h[..]))
                .bind(client.ua_hash.as_ref().map(|h| &h[..]))
                .bind(&hash[..]);
            if let Some(version) = version {
                query = query.bind(version);
            }
            query.execute(&mut *pool.acquire().await?).await?.rows_affected()
        }))
    }

    fn count_full_or_gone(&self, rows: u64) {
        if rows == 1 {
            self.inner.counters.write(SessionWrite::Full);
        } else {
            bump(&self.inner.counters.saves_after_delete);
        }
    }

    /// The version guard failed: lock the row, re-apply this request's
    /// changes to the newer data, write, commit. A row that is gone stays gone.
    async fn merge_and_write(
        &self,
        hash: &[u8; 32],
        data: &HashMap<String, Value>,
        changes: &Changes<'_>,
        now: i64,
        expires: i64,
    ) -> Result<(), StoreError> {
        let client = current_client();
        let (lock_sql, update_sql) = (self.inner.sql.lock_row.clone(), self.inner.sql.update_guarded.clone());
        let begin = self.inner.sql.begin_write;
        let outcome: Result<Option<()>, StoreError> = on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let row = sqlx::query(AssertSqlSafe(lock_sql)).bind(&hash[..]).fetch_optional(&mut *tx).await?;
            match row {
                None => {
                    tx.rollback().await?;
                    Ok(None)
                }
                Some(row) => {
                    let version: i64 = row.try_get(0)?;
                    let stored: Vec<u8> = row.try_get(1)?;
                    let merged = match decode_data(&stored) {
                        Ok(mut base) => {
                            changes.apply(&mut base);
                            base
                        }
                        // The newer data is unreadable: this request's full data replaces it.
                        Err(_) => data.clone(),
                    };
                    let bytes = self.encode(&merged)?;
                    let user_id = self.user_id(&merged);
                    sqlx::query(AssertSqlSafe(update_sql))
                        .bind(&bytes[..])
                        .bind(user_id.as_deref())
                        .bind(now)
                        .bind(expires)
                        .bind(client.ip_hash.as_ref().map(|h| &h[..]))
                        .bind(client.ua_hash.as_ref().map(|h| &h[..]))
                        .bind(&hash[..])
                        .bind(version)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(Some(()))
                }
            }
        });
        match outcome? {
            Some(()) => {
                bump(&self.inner.counters.merged_conflicts);
                self.inner.counters.write(SessionWrite::Full);
            }
            None => bump(&self.inner.counters.saves_after_delete),
        }
        Ok(())
    }

    /// Makes room for one more session of `user` (or refuses), per the cap.
    async fn enforce_cap(&self, user: &str, exclude: Option<&[u8; 32]>, now: i64) -> Result<(), StoreError> {
        let Some(cap) = self.inner.config.user_cap else {
            return Ok(());
        };
        let sql = self.inner.sql.user_live.clone();
        let live: Vec<Vec<u8>> = on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(AssertSqlSafe(sql)).bind(user).bind(now).fetch_all(pool).await?;
            rows.iter().map(|row| row.try_get::<Vec<u8>, _>(0)).collect::<Result<Vec<_>, _>>()?
        });
        let others: Vec<&Vec<u8>> = live.iter().filter(|h| exclude.is_none_or(|x| h.as_slice() != x)).collect();
        let max = cap.max_sessions as usize;
        if others.len() < max {
            return Ok(());
        }
        match cap.policy {
            CapPolicy::Refuse => {
                bump(&self.inner.counters.cap_refusals);
                Err(StoreError::UserCapReached {
                    user_id: user.to_owned(),
                    live: others.len() as u64,
                    cap: cap.max_sessions,
                })
            }
            CapPolicy::EvictOldest => {
                let evict = others.len() + 1 - max;
                for victim in others.into_iter().take(evict) {
                    let sql = self.inner.sql.delete.clone();
                    let rows = on_pool!(&self.inner.db, pool => {
                        sqlx::query(AssertSqlSafe(sql)).bind(&victim[..]).execute(pool).await?.rows_affected()
                    });
                    self.inner.counters.cap_evictions.fetch_add(rows, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(())
            }
        }
    }

    async fn delete_record(&self, id: &Id) -> Result<(), StoreError> {
        self.ready().await?;
        let hash = hash_session_id(id);
        let sql = self.inner.sql.delete.clone();
        on_pool!(&self.inner.db, pool => {
            sqlx::query(AssertSqlSafe(sql)).bind(&hash[..]).execute(&mut *pool.acquire().await?).await?;
        });
        bump(&self.inner.counters.deletes);
        Ok(())
    }

    /// Deletes expired sessions in batches of 1000, each its own statement;
    /// returns how many were removed. (`dbwarden cleanup` is the fuller tool.)
    pub async fn delete_expired_sessions(&self) -> Result<u64, StoreError> {
        self.ready().await?;
        let now = self.now();
        let mut total = 0;
        loop {
            let sql = self.inner.sql.delete_expired_batch.clone();
            let removed = on_pool!(&self.inner.db, pool => {
                sqlx::query(AssertSqlSafe(sql)).bind(now).execute(pool).await?.rows_affected()
            });
            total += removed;
            if removed < EXPIRED_BATCH as u64 {
                return Ok(total);
            }
        }
    }
}

/// Empty statement arguments for `pool`'s database with room for `values`
/// values of `bytes` encoded bytes, so binding them never grows a buffer.
fn arguments_for<DB: sqlx::Database>(_pool: &sqlx::Pool<DB>, values: usize, bytes: usize) -> DB::Arguments {
    let mut args = DB::Arguments::default();
    args.reserve(values, bytes);
    args
}

fn bind_error(err: sqlx::error::BoxDynError) -> StoreError {
    StoreError::Database(format!("cannot encode a statement argument: {err}"))
}

/// Decodes stored session data (a JSON object) into a map (a name given
/// twice keeps its last value).
fn decode_data(bytes: &[u8]) -> Result<HashMap<String, Value>, json::JsonError> {
    let mut data = HashMap::with_capacity(14);
    json::for_each_member(bytes, |member| {
        data.insert(member.name, member.value);
    })?;
    Ok(data)
}

fn hex_prefix(hash: &[u8; 32]) -> String {
    hash[..4].iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl SessionStoreExt for SqlSessionStore {
    async fn rotate_id(&self, id: &Id) -> Result<Option<Id>, StoreError> {
        self.ready().await?;
        let now = self.now();
        let old = hash_session_id(id);
        for _ in 0..MAX_ID_ATTEMPTS {
            let new_id = new_session_id();
            let new = hash_session_id(&new_id);
            let sql = self.inner.sql.rotate.clone();
            let result = on_pool!(&self.inner.db, pool => {
                sqlx::query(AssertSqlSafe(sql)).bind(&new[..]).bind(&old[..]).bind(now).execute(pool).await.map(|done| done.rows_affected())
            });
            match result {
                Ok(1) => {
                    bump(&self.inner.counters.rotations);
                    return Ok(Some(new_id));
                }
                Ok(_) => return Ok(None),
                Err(sqlx::Error::Database(err)) if err.is_unique_violation() => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(StoreError::IdExhausted { attempts: MAX_ID_ATTEMPTS })
    }

    async fn logout_user(&self, user_id: &str, keep: Option<&Id>) -> Result<u64, StoreError> {
        self.ready().await?;
        let removed = match keep {
            Some(keep) => {
                let keep = hash_session_id(keep);
                let sql = self.inner.sql.delete_user_except.clone();
                on_pool!(&self.inner.db, pool => {
                    sqlx::query(AssertSqlSafe(sql)).bind(user_id).bind(&keep[..]).execute(pool).await?.rows_affected()
                })
            }
            None => {
                let sql = self.inner.sql.delete_user.clone();
                on_pool!(&self.inner.db, pool => {
                    sqlx::query(AssertSqlSafe(sql)).bind(user_id).execute(pool).await?.rows_affected()
                })
            }
        };
        self.inner.counters.logged_out_everywhere.fetch_add(removed, std::sync::atomic::Ordering::Relaxed);
        Ok(removed)
    }

    async fn user_session_count(&self, user_id: &str) -> Result<u64, StoreError> {
        self.ready().await?;
        let now = self.now();
        let sql = self.inner.sql.count_user.clone();
        let count: i64 = on_pool!(&self.inner.db, pool => {
            sqlx::query_scalar(AssertSqlSafe(sql)).bind(user_id).bind(now).fetch_one(pool).await?
        });
        Ok(u64::try_from(count).unwrap_or(0))
    }

    fn stats(&self) -> StoreStats {
        self.inner.counters.snapshot()
    }
}

#[async_trait]
impl SessionStore for SqlSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        Ok(self.create_record(record).await?)
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        Ok(self.save_record(record).await?)
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        Ok(self.load_record(session_id).await?)
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        Ok(self.delete_record(session_id).await?)
    }
}

#[async_trait]
impl ExpiredDeletion for SqlSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        self.delete_expired_sessions().await?;
        Ok(())
    }
}

/// Every statement the store runs, built once for its backend and table.
#[derive(Debug)]
struct Statements {
    load: Arc<str>,
    insert: Arc<str>,
    update_guarded: Arc<str>,
    update_data_guarded: Arc<str>,
    update_data_guarded_no_client: Arc<str>,
    update_any: Arc<str>,
    lock_row: Arc<str>,
    begin_write: &'static str,
    touch: Arc<str>,
    delete: Arc<str>,
    delete_expired_batch: Arc<str>,
    user_live: Arc<str>,
    count_user: Arc<str>,
    delete_user: Arc<str>,
    delete_user_except: Arc<str>,
    rotate: Arc<str>,
}

impl Statements {
    fn new(backend: Backend, table: &str) -> Statements {
        let least = if backend == Backend::Sqlite { "MIN" } else { "LEAST" };
        let sql = |text: String| -> Arc<str> {
            match backend {
                Backend::Postgres => Arc::from(numbered_placeholders(&text)),
                Backend::MySql | Backend::Sqlite => Arc::from(text),
            }
        };
        let set_data = format!(
            "UPDATE {table} SET data = ?, user_id = ?, version = version + 1, last_seen_at = ?, \
             expires_at = {least}(?, absolute_expires_at), ip_hash = COALESCE(?, ip_hash), \
             ua_hash = COALESCE(?, ua_hash) WHERE id_hash = ?"
        );
        let lock_suffix = if backend == Backend::Sqlite { "" } else { " FOR UPDATE" };
        let delete_expired_batch = match backend {
            Backend::Postgres => format!(
                "DELETE FROM {table} WHERE id_hash IN (SELECT id_hash FROM {table} \
                 WHERE expires_at <= ? LIMIT {EXPIRED_BATCH} FOR UPDATE SKIP LOCKED)"
            ),
            Backend::MySql => {
                format!("DELETE FROM {table} WHERE expires_at <= ? ORDER BY expires_at LIMIT {EXPIRED_BATCH}")
            }
            Backend::Sqlite => format!(
                "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} \
                 WHERE expires_at <= ? LIMIT {EXPIRED_BATCH})"
            ),
        };
        Statements {
            load: sql(format!(
                "SELECT user_id, last_seen_at, expires_at, absolute_expires_at, version, data \
                 FROM {table} WHERE id_hash = ?"
            )),
            insert: sql(format!(
                "INSERT INTO {table} (id_hash, user_id, created_at, last_seen_at, expires_at, \
                 absolute_expires_at, version, ip_hash, ua_hash, data) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?)"
            )),
            update_guarded: sql(format!("{set_data} AND version = ?")),
            update_data_guarded: sql(format!(
                "UPDATE {table} SET data = ?, user_id = ?, version = version + 1, \
                 ip_hash = COALESCE(?, ip_hash), ua_hash = COALESCE(?, ua_hash) \
                 WHERE id_hash = ? AND version = ?"
            )),
            update_data_guarded_no_client: sql(format!(
                "UPDATE {table} SET data = ?, user_id = ?, version = version + 1 WHERE id_hash = ? AND version = ?"
            )),
            update_any: sql(set_data),
            lock_row: sql(format!("SELECT version, data FROM {table} WHERE id_hash = ?{lock_suffix}")),
            begin_write: if backend == Backend::Sqlite { "BEGIN IMMEDIATE" } else { "BEGIN" },
            touch: sql(format!(
                "UPDATE {table} SET last_seen_at = ?, expires_at = {least}(?, absolute_expires_at), \
                 ip_hash = COALESCE(?, ip_hash), ua_hash = COALESCE(?, ua_hash) \
                 WHERE id_hash = ? AND last_seen_at < ?"
            )),
            delete: sql(format!("DELETE FROM {table} WHERE id_hash = ?")),
            delete_expired_batch: sql(delete_expired_batch),
            user_live: sql(format!(
                "SELECT id_hash FROM {table} WHERE user_id = ? AND expires_at > ? \
                 ORDER BY last_seen_at ASC, created_at ASC"
            )),
            count_user: sql(format!("SELECT COUNT(*) FROM {table} WHERE user_id = ? AND expires_at > ?")),
            delete_user: sql(format!("DELETE FROM {table} WHERE user_id = ?")),
            delete_user_except: sql(format!("DELETE FROM {table} WHERE user_id = ? AND id_hash <> ?")),
            rotate: sql(format!("UPDATE {table} SET id_hash = ? WHERE id_hash = ? AND expires_at > ?")),
        }
    }
}

/// Rewrites `?` placeholders as PostgreSQL's `$1`, `$2`, ….
fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(numbered_placeholders("a = ? AND b = ?"), "a = $1 AND b = $2");
        let statements = Statements::new(Backend::Postgres, "t");
        assert!(statements.update_guarded.ends_with("WHERE id_hash = $7 AND version = $8"));
        let statements = Statements::new(Backend::Sqlite, "t");
        assert!(statements.touch.contains("MIN(?, absolute_expires_at)"));
    }
}
