//! The Redis session store: one hash per session under
//! `{prefix}s:{hex sha-256 of the id}` that Redis expires by itself
//! (`PEXPIREAT`), and one set per user under `{prefix}u:{user id}` for the
//! per-user cap and "log out everywhere".
//!
//! Each data key is its own hash field (`d:{key}`, JSON), so a save writes
//! only the keys the request changed (`HSET`) or removed (`HDEL`): two
//! requests changing different keys merge by construction. Every write runs
//! as a Lua script that first checks the session still exists — the version
//! guard that keeps a late save from reviving a deleted session — and bumps
//! the version. The scripts touch keys they compute from the prefix, so the
//! store targets a single Redis node (not Redis Cluster).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use dbwarden_core::{Clock, Monitor, SessionWrite, SystemClock};
use redis::Script;
use redis::aio::ConnectionManager;
use serde_json::Value;
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, ExpiredDeletion, SessionStore};

use super::client::current_client;
use super::meta::{self, IdHash, LoadMeta, LoadState, RESERVED_KEY};
use super::stats::{Counters, bump};
use super::{
    CapPolicy, MAX_ID_ATTEMPTS, NEVER, SessionStoreExt, StoreConfig, StoreError, StoreStats, UnknownIdBucket,
    duration_ms, hash_session_id, new_session_id,
};

/// Settings of the Redis layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisStoreConfig {
    /// Prefix of every key the store writes. Default `dbwarden:`.
    pub key_prefix: String,
}

impl Default for RedisStoreConfig {
    fn default() -> Self {
        RedisStoreConfig { key_prefix: "dbwarden:".to_owned() }
    }
}

/// A tower-sessions store on Redis.
#[derive(Clone)]
pub struct RedisSessionStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    config: StoreConfig,
    prefix: String,
    counters: Counters,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessionStore")
            .field("prefix", &self.inner.prefix)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Creates a session unless its key exists. KEYS: session, user set ('' for
/// none). ARGV: member, expires, then field/value pairs.
static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
if KEYS[2] ~= '' then
  redis.call('SADD', KEYS[2], ARGV[1])
  if redis.call('PEXPIRETIME', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIREAT', KEYS[2], ARGV[2]) end
end
return 1
",
    )
});

/// Writes changed keys of an existing session. KEYS: session, user set ('' for
/// none). ARGV: member, now, expires, user ('' none), ip, ua, replace-all
/// ('1'/'0'), user-set prefix, set count, pairs…, then removed fields…
static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ARGV[7] == '1' then
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(f, 1, 2) == 'd:' then redis.call('HDEL', KEYS[1], f) end
  end
end
local previous = redis.call('HGET', KEYS[1], '_u')
if previous and previous ~= ARGV[4] then redis.call('SREM', ARGV[8] .. previous, ARGV[1]) end
local n = tonumber(ARGV[9])
local i = 10
for _ = 1, n do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]); i = i + 2 end
while i <= #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]); i = i + 1 end
local expires = ARGV[3]
local absolute = redis.call('HGET', KEYS[1], '_a')
if absolute and tonumber(absolute) < tonumber(expires) then expires = absolute end
redis.call('HSET', KEYS[1], '_l', ARGV[2], '_e', expires)
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], '_u', ARGV[4]) else redis.call('HDEL', KEYS[1], '_u') end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], '_ip', ARGV[5]) end
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], '_ua', ARGV[6]) end
local v = redis.call('HINCRBY', KEYS[1], '_v', 1)
redis.call('PEXPIREAT', KEYS[1], expires)
if KEYS[2] ~= '' then
  redis.call('SADD', KEYS[2], ARGV[1])
  if redis.call('PEXPIRETIME', KEYS[2]) < tonumber(expires) then redis.call('PEXPIREAT', KEYS[2], expires) end
end
return v
",
    )
});

/// Extends an unmodified session. KEYS: session, user set ('' none).
/// ARGV: now, expires, ip, ua.
static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local last = redis.call('HGET', KEYS[1], '_l')
if not last or tonumber(last) >= tonumber(ARGV[1]) then return 0 end
local expires = ARGV[2]
local absolute = redis.call('HGET', KEYS[1], '_a')
if absolute and tonumber(absolute) < tonumber(expires) then expires = absolute end
redis.call('HSET', KEYS[1], '_l', ARGV[1], '_e', expires)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], '_ip', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], '_ua', ARGV[4]) end
redis.call('PEXPIREAT', KEYS[1], expires)
if KEYS[2] ~= '' and redis.call('PEXPIRETIME', KEYS[2]) < tonumber(expires) then
  redis.call('PEXPIREAT', KEYS[2], expires)
end
return 1
",
    )
});

/// Deletes a session and its user-index entry. KEYS: session. ARGV: user-set prefix, member.
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local user = redis.call('HGET', KEYS[1], '_u')
local removed = redis.call('DEL', KEYS[1])
if user then redis.call('SREM', ARGV[1] .. user, ARGV[2]) end
return removed
",
    )
});

/// Renames a live session to a new id. KEYS: old, new. ARGV: user-set prefix,
/// old member, new member. Returns -1 on collision, 0 when old is gone.
static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
local user = redis.call('HGET', KEYS[2], '_u')
if user then
  redis.call('SREM', ARGV[1] .. user, ARGV[2])
  redis.call('SADD', ARGV[1] .. user, ARGV[3])
end
return 1
",
    )
});

impl RedisSessionStore {
    /// Connects to `url` (`redis://host:port/db`).
    pub async fn connect(
        url: &str,
        config: StoreConfig,
        redis_config: RedisStoreConfig,
    ) -> Result<RedisSessionStore, StoreError> {
        let client = redis::Client::open(url).map_err(|err| StoreError::Redis(format!("invalid redis url: {err}")))?;
        let conn = ConnectionManager::new(client).await?;
        Ok(RedisSessionStore::with_parts(conn, config, redis_config, None, Arc::new(SystemClock)))
    }

    /// A store on an existing connection manager, reporting to `monitor`
    /// and reading time from `clock`.
    pub fn with_parts(
        conn: ConnectionManager,
        config: StoreConfig,
        redis_config: RedisStoreConfig,
        monitor: Option<Monitor>,
        clock: Arc<dyn Clock>,
    ) -> RedisSessionStore {
        RedisSessionStore {
            inner: Arc::new(Inner {
                conn,
                config,
                prefix: redis_config.key_prefix,
                counters: Counters::with_monitor(monitor),
                clock,
            }),
        }
    }

    /// Loads of unknown ids per minute, for the last two hours (oldest first).
    pub fn unknown_id_history(&self) -> Vec<UnknownIdBucket> {
        self.inner.counters.unknown_id_history()
    }

    fn now(&self) -> i64 {
        i64::try_from(self.inner.clock.now().as_millis()).unwrap_or(i64::MAX)
    }

    fn member(hash: &[u8; 32]) -> String {
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn session_key(&self, hash: &[u8; 32]) -> String {
        format!("{}s:{}", self.inner.prefix, Self::member(hash))
    }

    fn user_prefix(&self) -> String {
        format!("{}u:", self.inner.prefix)
    }

    fn user_key(&self, user: Option<&str>) -> String {
        user.map_or_else(String::new, |u| format!("{}{u}", self.user_prefix()))
    }

    fn target_expiry(&self, record_expiry: OffsetDateTime, now: i64, absolute: i64) -> i64 {
        let mut expires = i64::try_from(record_expiry.unix_timestamp_nanos() / 1_000_000).unwrap_or(NEVER);
        if let Some(idle) = self.inner.config.idle_timeout {
            expires = expires.min(now.saturating_add(duration_ms(idle)));
        }
        expires.min(absolute)
    }

    fn check_size(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let size: usize = pairs.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>() + 2;
        let limit = self.inner.config.max_data_bytes;
        if size > limit {
            bump(&self.inner.counters.oversized_rejections);
            return Err(StoreError::DataTooLarge { size, limit });
        }
        Ok(())
    }

    fn encode_fields<'a>(
        &self,
        entries: impl Iterator<Item = (&'a String, &'a Value)>,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let pairs = entries
            .filter(|(k, _)| k.as_str() != RESERVED_KEY)
            .map(|(k, v)| {
                serde_json::to_vec(v)
                    .map(|bytes| (format!("d:{k}"), bytes))
                    .map_err(|err| StoreError::Encode(err.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(pairs)
    }

    async fn load_record(&self, id: &Id) -> Result<Option<Record>, StoreError> {
        let now = self.now();
        let hash = hash_session_id(id);
        let mut conn = self.inner.conn.clone();
        let fields: HashMap<String, Vec<u8>> =
            redis::cmd("HGETALL").arg(self.session_key(&hash)).query_async(&mut conn).await?;
        if fields.is_empty() {
            self.inner.counters.unknown_id(self.inner.clock.now());
            return Ok(None);
        }
        let int =
            |name: &str| -> Option<i64> { fields.get(name).and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()) };
        let (Some(version), Some(last_seen), Some(expires), Some(absolute)) =
            (int("_v"), int("_l"), int("_e"), int("_a"))
        else {
            bump(&self.inner.counters.undecodable_loads);
            tracing::warn!("redis session hash lacks its bookkeeping fields; starting a fresh session");
            return Ok(None);
        };
        let idle_lapsed =
            self.inner.config.idle_timeout.is_some_and(|idle| last_seen.saturating_add(duration_ms(idle)) <= now);
        if expires <= now || absolute <= now || idle_lapsed {
            bump(&self.inner.counters.expired_loads);
            return Ok(None);
        }
        let mut data = HashMap::new();
        for (field, value) in &fields {
            let Some(key) = field.strip_prefix("d:") else { continue };
            match serde_json::from_slice::<Value>(value) {
                Ok(value) => {
                    data.insert(key.to_owned(), value);
                }
                Err(err) => {
                    bump(&self.inner.counters.undecodable_loads);
                    tracing::warn!(
                        error = %err,
                        "redis session field does not decode as json; starting a fresh session and leaving the stored one to expire"
                    );
                    return Ok(None);
                }
            }
        }
        let user = fields.get("_u").and_then(|u| std::str::from_utf8(u).ok());
        meta::attach(
            &mut data,
            LoadState { v: version, w: last_seen, e: expires, a: absolute, u: user },
            IdHash { id: id.0, hash },
        );
        let expiry_date = OffsetDateTime::from_unix_timestamp_nanos(i128::from(expires) * 1_000_000)
            .unwrap_or_else(|_| OffsetDateTime::now_utc());
        Ok(Some(Record { id: *id, data, expiry_date }))
    }

    async fn create_record(&self, record: &mut Record) -> Result<(), StoreError> {
        let now = self.now();
        record.data.remove(RESERVED_KEY);
        let pairs = self.encode_fields(record.data.iter())?;
        self.check_size(&pairs)?;
        let user_id = meta::user_id_of(&record.data, self.inner.config.user_id_key.as_deref());
        if let Some(user) = &user_id {
            self.enforce_cap(user, None, now).await?;
        }
        let absolute = self.inner.config.absolute_timeout.map_or(NEVER, |d| now.saturating_add(duration_ms(d)));
        let expires = self.target_expiry(record.expiry_date, now, absolute);
        let client = current_client();
        let mut conn = self.inner.conn.clone();
        let mut attempts = 0;
        let hash = loop {
            attempts += 1;
            record.id = new_session_id();
            let hash = hash_session_id(&record.id);
            let mut invocation = CREATE.prepare_invoke();
            invocation
                .key(self.session_key(&hash))
                .key(self.user_key(user_id.as_deref()))
                .arg(Self::member(&hash))
                .arg(expires);
            let mut bookkeeping: Vec<(&str, Vec<u8>)> = vec![
                ("_v", b"1".to_vec()),
                ("_c", now.to_string().into_bytes()),
                ("_l", now.to_string().into_bytes()),
                ("_e", expires.to_string().into_bytes()),
                ("_a", absolute.to_string().into_bytes()),
            ];
            if let Some(user) = &user_id {
                bookkeeping.push(("_u", user.clone().into_bytes()));
            }
            if let Some(ip) = client.ip_hash {
                bookkeeping.push(("_ip", ip.to_vec()));
            }
            if let Some(ua) = client.ua_hash {
                bookkeeping.push(("_ua", ua.to_vec()));
            }
            for (field, value) in &bookkeeping {
                invocation.arg(*field).arg(value.as_slice());
            }
            for (field, value) in &pairs {
                invocation.arg(field.as_str()).arg(value.as_slice());
            }
            let created: i64 = invocation.invoke_async(&mut conn).await?;
            if created == 1 {
                break hash;
            }
            if attempts >= MAX_ID_ATTEMPTS {
                return Err(StoreError::IdExhausted { attempts });
            }
            tracing::warn!("session id collision; drawing another id");
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
        let now = self.now();
        let client = current_client();
        let user_id = meta::user_id_of(&record.data, self.inner.config.user_id_key.as_deref());
        let loaded = LoadMeta::of(&record.data);
        let hash = loaded.as_ref().and_then(|l| l.hash_of(record.id.0)).unwrap_or_else(|| hash_session_id(&record.id));
        let mut conn = self.inner.conn.clone();
        let (set_pairs, removed, replace_all, expires) = match &loaded {
            Some(loaded) => {
                let expires = self.target_expiry(record.expiry_date, now, loaded.state.a);
                let changes = meta::diff(&record.data, loaded);
                if changes.is_empty()
                    && let Some(throttle) = self.inner.config.throttle
                {
                    return self
                        .touch_or_avoid(&hash, &loaded.state, now, expires, duration_ms(throttle), &user_id)
                        .await;
                }
                // Size is checked on the whole data, not only the changed keys.
                self.check_size(&self.encode_fields(record.data.iter())?)?;
                let set = self.encode_fields(changes.set.iter().map(|(k, v)| (*k, *v)))?;
                let set = if changes.is_empty() {
                    // Throttling off: write every key, as saving on every request does.
                    self.encode_fields(record.data.iter())?
                } else {
                    set
                };
                (set, changes.removed, false, expires)
            }
            None => {
                let pairs = self.encode_fields(record.data.iter())?;
                self.check_size(&pairs)?;
                (pairs, Vec::new(), true, self.target_expiry(record.expiry_date, now, NEVER))
            }
        };
        if let Some(user) = &user_id
            && loaded.as_ref().and_then(|l| l.state.u) != Some(user.as_str())
        {
            self.enforce_cap(user, Some(&hash), now).await?;
        }
        let mut invocation = SAVE.prepare_invoke();
        invocation
            .key(self.session_key(&hash))
            .key(self.user_key(user_id.as_deref()))
            .arg(Self::member(&hash))
            .arg(now)
            .arg(expires)
            .arg(user_id.as_deref().unwrap_or(""))
            .arg(client.ip_hash.as_ref().map_or(&[][..], |h| &h[..]))
            .arg(client.ua_hash.as_ref().map_or(&[][..], |h| &h[..]))
            .arg(if replace_all { "1" } else { "0" })
            .arg(self.user_prefix())
            .arg(set_pairs.len());
        for (field, value) in &set_pairs {
            invocation.arg(field.as_str()).arg(value.as_slice());
        }
        for key in &removed {
            invocation.arg(format!("d:{key}"));
        }
        let version: i64 = invocation.invoke_async(&mut conn).await?;
        if version < 0 {
            bump(&self.inner.counters.saves_after_delete);
            return Ok(());
        }
        if let Some(loaded) = &loaded
            && version != loaded.state.v + 1
        {
            // Another request wrote in between; the per-key write merged them.
            bump(&self.inner.counters.merged_conflicts);
        }
        self.inner.counters.write(SessionWrite::Full);
        Ok(())
    }

    async fn touch_or_avoid(
        &self,
        hash: &[u8; 32],
        loaded: &LoadState<'_>,
        now: i64,
        expires: i64,
        throttle: i64,
        user_id: &Option<String>,
    ) -> Result<(), StoreError> {
        let elapsed = now - loaded.w;
        let mut interval = throttle.min((expires - now).max(0) / 2);
        if let Some(idle) = self.inner.config.idle_timeout {
            interval = interval.min(duration_ms(idle) / 2);
        }
        let due = elapsed > interval || expires < loaded.e || expires - loaded.e > elapsed + 1_000;
        if !due {
            self.inner.counters.write(SessionWrite::Avoided);
            return Ok(());
        }
        let client = current_client();
        let mut conn = self.inner.conn.clone();
        let touched: i64 = TOUCH
            .key(self.session_key(hash))
            .key(self.user_key(user_id.as_deref()))
            .arg(now)
            .arg(expires)
            .arg(client.ip_hash.as_ref().map_or(&[][..], |h| &h[..]))
            .arg(client.ua_hash.as_ref().map_or(&[][..], |h| &h[..]))
            .invoke_async(&mut conn)
            .await?;
        self.inner.counters.write(if touched == 1 { SessionWrite::Touch } else { SessionWrite::Avoided });
        Ok(())
    }

    /// The user's live sessions as (member, last seen), oldest first; prunes
    /// members whose session is gone.
    async fn live_sessions(&self, user: &str, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let mut conn = self.inner.conn.clone();
        let set_key = self.user_key(Some(user));
        let members: Vec<String> = redis::cmd("SMEMBERS").arg(&set_key).query_async(&mut conn).await?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for member in &members {
            pipe.cmd("HMGET").arg(format!("{}s:{member}", self.inner.prefix)).arg("_l").arg("_e");
        }
        let times: Vec<(Option<i64>, Option<i64>)> = pipe.query_async(&mut conn).await?;
        let mut live = Vec::new();
        let mut dead = Vec::new();
        for (member, (last, expires)) in members.into_iter().zip(times) {
            match (last, expires) {
                (Some(last), Some(expires)) if expires > now => live.push((member, last)),
                _ => dead.push(member),
            }
        }
        if !dead.is_empty() {
            let _: i64 = redis::cmd("SREM").arg(&set_key).arg(&dead).query_async(&mut conn).await?;
        }
        live.sort_by_key(|(_, last)| *last);
        Ok(live)
    }

    async fn enforce_cap(&self, user: &str, exclude: Option<&[u8; 32]>, now: i64) -> Result<(), StoreError> {
        let Some(cap) = self.inner.config.user_cap else {
            return Ok(());
        };
        let exclude = exclude.map(Self::member);
        let others: Vec<(String, i64)> =
            self.live_sessions(user, now).await?.into_iter().filter(|(m, _)| exclude.as_ref() != Some(m)).collect();
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
                for (member, _) in others.into_iter().take(evict) {
                    let removed = self.delete_member(&member).await?;
                    self.inner.counters.cap_evictions.fetch_add(removed, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(())
            }
        }
    }

    async fn delete_member(&self, member: &str) -> Result<u64, StoreError> {
        let mut conn = self.inner.conn.clone();
        let removed: i64 = DELETE
            .key(format!("{}s:{member}", self.inner.prefix))
            .arg(self.user_prefix())
            .arg(member)
            .invoke_async(&mut conn)
            .await?;
        Ok(u64::try_from(removed).unwrap_or(0))
    }

    /// Removes user-index entries whose sessions Redis has expired; returns how many.
    pub async fn prune_user_index(&self) -> Result<u64, StoreError> {
        let mut conn = self.inner.conn.clone();
        let pattern = format!("{}*", self.user_prefix());
        let mut cursor: u64 = 0;
        let mut pruned = 0;
        let now = self.now();
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(200)
                .query_async(&mut conn)
                .await?;
            for key in keys {
                if let Some(user) = key.strip_prefix(&self.user_prefix()) {
                    let before: i64 = redis::cmd("SCARD").arg(&key).query_async(&mut conn).await?;
                    let live = self.live_sessions(user, now).await?.len() as i64;
                    pruned += u64::try_from(before - live).unwrap_or(0);
                }
            }
            if next == 0 {
                return Ok(pruned);
            }
            cursor = next;
        }
    }
}

#[async_trait]
impl SessionStoreExt for RedisSessionStore {
    async fn rotate_id(&self, id: &Id) -> Result<Option<Id>, StoreError> {
        let old = hash_session_id(id);
        let mut conn = self.inner.conn.clone();
        for _ in 0..MAX_ID_ATTEMPTS {
            let new_id = new_session_id();
            let new = hash_session_id(&new_id);
            let outcome: i64 = ROTATE
                .key(self.session_key(&old))
                .key(self.session_key(&new))
                .arg(self.user_prefix())
                .arg(Self::member(&old))
                .arg(Self::member(&new))
                .invoke_async(&mut conn)
                .await?;
            match outcome {
                1 => {
                    bump(&self.inner.counters.rotations);
                    return Ok(Some(new_id));
                }
                0 => return Ok(None),
                _ => continue,
            }
        }
        Err(StoreError::IdExhausted { attempts: MAX_ID_ATTEMPTS })
    }

    async fn logout_user(&self, user_id: &str, keep: Option<&Id>) -> Result<u64, StoreError> {
        let mut conn = self.inner.conn.clone();
        let keep = keep.map(|id| Self::member(&hash_session_id(id)));
        let members: Vec<String> =
            redis::cmd("SMEMBERS").arg(self.user_key(Some(user_id))).query_async(&mut conn).await?;
        let mut removed = 0;
        for member in members.iter().filter(|m| keep.as_ref() != Some(*m)) {
            removed += self.delete_member(member).await?;
        }
        self.inner.counters.logged_out_everywhere.fetch_add(removed, std::sync::atomic::Ordering::Relaxed);
        Ok(removed)
    }

    async fn user_session_count(&self, user_id: &str) -> Result<u64, StoreError> {
        Ok(self.live_sessions(user_id, self.now()).await?.len() as u64)
    }

    fn stats(&self) -> StoreStats {
        self.inner.counters.snapshot()
    }
}

#[async_trait]
impl SessionStore for RedisSessionStore {
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
        let member = Self::member(&hash_session_id(session_id));
        self.delete_member(&member).await.map_err(session_store::Error::from)?;
        bump(&self.inner.counters.deletes);
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for RedisSessionStore {
    /// Redis expires sessions by itself; this prunes the per-user index of
    /// entries whose sessions are gone.
    async fn delete_expired(&self) -> session_store::Result<()> {
        self.prune_user_index().await?;
        Ok(())
    }
}
