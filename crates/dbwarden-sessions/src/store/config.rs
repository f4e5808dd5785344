//! Settings shared by the SQL and Redis session stores.

use std::time::Duration;

use crate::schema::SchemaConfig;

/// What to do when a user who already has [`UserCap::max_sessions`] live
/// sessions gets another one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapPolicy {
    /// Delete the user's least recently seen sessions to make room.
    EvictOldest,
    /// Refuse the new session: the save fails with
    /// [`StoreError::UserCapReached`](crate::store::StoreError::UserCapReached).
    Refuse,
}

/// A cap on concurrent sessions per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserCap {
    /// Live sessions allowed per user (at least 1).
    pub max_sessions: u32,
    /// What happens beyond the cap.
    pub policy: CapPolicy,
}

/// Settings of a session store. Build with [`StoreConfig::default`] and the
/// `with_*` methods.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Which table holds the sessions (SQL stores only).
    pub schema: SchemaConfig,
    /// Minimum time between activity writes ("touches") of an unmodified
    /// session; `None` switches throttling off, so every save writes the
    /// session in full (the behaviour of saving on every request).
    /// Default 15 minutes. The effective interval is never more than half
    /// the session's remaining lifetime or half the idle timeout, so an
    /// active session never lapses between touches.
    pub throttle: Option<Duration>,
    /// Server-side idle timeout: a session not written or touched for this
    /// long is treated as gone, whatever its cookie says. Default `None`
    /// (the record's own expiry, e.g. `Expiry::OnInactivity`, rules).
    pub idle_timeout: Option<Duration>,
    /// Server-side absolute timeout from creation, however active the
    /// session is. Default 30 days.
    pub absolute_timeout: Option<Duration>,
    /// Largest accepted encoded session data; bigger saves fail and write
    /// nothing. Default 256 KiB.
    pub max_data_bytes: usize,
    /// Data key whose value (a string or number) names the session's user,
    /// for the user index, the per-user cap and "log out everywhere".
    /// Default `"user_id"`.
    pub user_id_key: Option<String>,
    /// Optional cap on live sessions per user.
    pub user_cap: Option<UserCap>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            schema: SchemaConfig::default(),
            throttle: Some(Duration::from_secs(15 * 60)),
            idle_timeout: None,
            absolute_timeout: Some(Duration::from_secs(30 * 24 * 3600)),
            max_data_bytes: 256 * 1024,
            user_id_key: Some("user_id".to_owned()),
            user_cap: None,
        }
    }
}

impl StoreConfig {
    /// Uses the session table of `schema`.
    pub fn with_schema(mut self, schema: SchemaConfig) -> Self {
        self.schema = schema;
        self
    }

    /// Sets the throttle interval (`None`: write on every save).
    pub fn with_throttle(mut self, throttle: Option<Duration>) -> Self {
        self.throttle = throttle;
        self
    }

    /// Sets the server-side idle timeout.
    pub fn with_idle_timeout(mut self, idle: Option<Duration>) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// Sets the server-side absolute timeout.
    pub fn with_absolute_timeout(mut self, absolute: Option<Duration>) -> Self {
        self.absolute_timeout = absolute;
        self
    }

    /// Sets the largest accepted encoded data size.
    pub fn with_max_data_bytes(mut self, max: usize) -> Self {
        self.max_data_bytes = max;
        self
    }

    /// Sets the data key naming the user (`None`: sessions have no user).
    pub fn with_user_id_key(mut self, key: Option<&str>) -> Self {
        self.user_id_key = key.map(str::to_owned);
        self
    }

    /// Caps live sessions per user.
    pub fn with_user_cap(mut self, cap: Option<UserCap>) -> Self {
        self.user_cap = cap.map(|c| UserCap { max_sessions: c.max_sessions.max(1), ..c });
        self
    }
}
