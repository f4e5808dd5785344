//! tower-sessions stores: [`SqlSessionStore`] (PostgreSQL, MySQL / MariaDB,
//! SQLite) and [`RedisSessionStore`], with throttled activity writes,
//! version-guarded saves that merge concurrent changes, server-side idle and
//! absolute timeouts, an optional per-user cap and "log out everywhere".
//!
//! # How a save knows what changed: the reserved key
//!
//! tower-sessions hands the store the whole record on every save and, with
//! `Expiry::OnInactivity`, saves on every request. To tell a changed session
//! from an unchanged one without keeping state per session, `load` adds one
//! entry under [`RESERVED_KEY`] (`"__dbwarden"`) to the record's data: the
//! loaded version, the last write time, the stored expiry and a short hash of
//! every key's value. `save` removes it again and compares: no key changed or
//! removed means the session is unmodified, so at most its expiry is extended
//! (a "touch") — and only when the throttle interval has passed. The entry is
//! never stored; applications must not use the key `__dbwarden` themselves.
//! The SQL store's entry also keeps the stored JSON text, so a save writes
//! the keys it did not change as they were stored instead of encoding them
//! again, and both stores keep the id's hash so a save does not recompute it.
//!
//! # Architecture invariant
//!
//! Session ids are never stored raw: every backend keys sessions by the
//! SHA-256 of the id, so a copy of the table or of Redis does not hand out
//! live sessions. Client IPs and user agents are stored only as keyed hashes
//! (see [`ClientInfoLayer`]).

mod client;
mod config;
mod json;
mod meta;
mod redis;
mod sql;
mod stats;

use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tower_sessions_core::session::Id;

pub use self::client::{ClientHasher, ClientHashes, ClientInfoLayer, ClientInfoService, current_client, with_client};
pub use self::config::{CapPolicy, StoreConfig, UserCap};
pub use self::meta::RESERVED_KEY;
pub use self::redis::{RedisSessionStore, RedisStoreConfig};
pub use self::sql::SqlSessionStore;
pub use self::stats::{StoreStats, UnknownIdBucket};

/// Errors of the session stores, converted into tower-sessions'
/// `session_store::Error` at the trait boundary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The encoded session data is larger than [`StoreConfig::max_data_bytes`].
    #[error("session data is {size} bytes, over the limit of {limit} bytes; nothing was written")]
    DataTooLarge {
        /// Encoded size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The session data could not be encoded as JSON.
    #[error("cannot encode session data as json: {0}")]
    Encode(String),
    /// The user already has the maximum number of sessions and the policy is to refuse.
    #[error("user {user_id:?} already has {live} live sessions (cap {cap}); new session refused")]
    UserCapReached {
        /// The user.
        user_id: String,
        /// Their live sessions.
        live: u64,
        /// The cap.
        cap: u32,
    },
    /// A fresh id collided with existing ones too many times (a broken random source).
    #[error("could not find an unused session id after {attempts} attempts")]
    IdExhausted {
        /// Attempts made.
        attempts: u32,
    },
    /// Migrating the schema failed.
    #[error(transparent)]
    Migrate(#[from] crate::migrate::MigrateError),
    /// The database failed.
    #[error("session database error: {0}")]
    Database(String),
    /// Redis failed.
    #[error("session redis error: {0}")]
    Redis(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        StoreError::Database(crate::db::redact_url(&err.to_string()))
    }
}

impl From<::redis::RedisError> for StoreError {
    fn from(err: ::redis::RedisError) -> Self {
        StoreError::Redis(err.to_string())
    }
}

impl From<StoreError> for tower_sessions_core::session_store::Error {
    fn from(err: StoreError) -> Self {
        use tower_sessions_core::session_store::Error;
        match err {
            StoreError::DataTooLarge { .. } | StoreError::Encode(_) => Error::Encode(err.to_string()),
            _ => Error::Backend(err.to_string()),
        }
    }
}

/// What dbwarden's stores offer beyond tower-sessions' `SessionStore`.
#[async_trait]
pub trait SessionStoreExt: Send + Sync {
    /// Gives the session `id` a fresh id (for privilege changes such as
    /// log-in), keeping its data. Returns the new id, or `None` when `id` is
    /// not a live session. Inside a request prefer [`rotate_session_id`],
    /// which also updates the cookie.
    async fn rotate_id(&self, id: &Id) -> Result<Option<Id>, StoreError>;

    /// Deletes every session of `user_id` ("log out everywhere"), except
    /// `keep` when given (the current session). Returns how many were removed.
    async fn logout_user(&self, user_id: &str, keep: Option<&Id>) -> Result<u64, StoreError>;

    /// How many live (not expired) sessions `user_id` has.
    async fn user_session_count(&self, user_id: &str) -> Result<u64, StoreError>;

    /// The store's counters (writes made, touches, writes avoided, unknown-id loads …).
    fn stats(&self) -> StoreStats;
}

/// Rotates the id of the session of the current request (call after log-in
/// or any privilege change): the old id stops working at once and the
/// response carries the new cookie. A thin wrapper over
/// `Session::cycle_id`, which deletes the old record and creates the new one
/// through the store (so a late save to the old id is dropped, not revived).
pub async fn rotate_session_id(
    session: &tower_sessions_core::Session,
) -> Result<(), tower_sessions_core::session::Error> {
    session.cycle_id().await
}

/// The SHA-256 of a session id: the only form in which ids are stored.
pub fn hash_session_id(id: &Id) -> [u8; 32] {
    Sha256::digest(id.0.to_le_bytes()).into()
}

/// A fresh session id: 128 bits from the thread-local CSPRNG (ChaCha, seeded
/// and periodically reseeded from the operating system).
pub fn new_session_id() -> Id {
    use rand::RngExt;
    Id(rand::rng().random::<i128>())
}

/// The absolute expiry of sessions without an absolute timeout:
/// 9999-12-31T23:59:59.999Z in epoch milliseconds.
pub const NEVER: i64 = 253_402_300_799_999;

/// How many times `create` draws a new id after a collision before giving up.
pub(crate) const MAX_ID_ATTEMPTS: u32 = 8;

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
