//! What the router serves from: the [`AppState`] (the monitor, the admin
//! settings, the optional hooks into the application) and the
//! [`AdminConfig`] with its secret [`AdminToken`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dbwarden_core::Monitor;
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::auth::LoginSessions;
use crate::cache::ReportCache;
use crate::events::EventHub;
use crate::ratelimit::RateLimiter;

/// The admin token: a secret whose `Debug` and `Display` never show it.
///
/// Only a keyed digest of it is kept: two SipHash-2-4 tags under four
/// 64-bit keys drawn from the CSPRNG when the token is wrapped. Comparison
/// is of those 128-bit tags, in constant time, so not even the length
/// leaks, and without the keys nobody can make a tag that matches. SipHash
/// rather than SHA-256 because every admin request checks the token, and a
/// keyed PRF of a few dozen bytes costs a fraction of a SHA-256 block where
/// the CPU has no SHA instructions.
#[derive(Clone)]
pub struct AdminToken {
    keys: [u64; 4],
    tag: [u64; 2],
}

/// Shortest admin token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// A configuration value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// The admin token is too short or has characters a header cannot carry.
    #[error("the admin token must be at least {MIN_TOKEN_LEN} visible ASCII characters (got {len} characters)")]
    WeakToken {
        /// Its length in characters.
        len: usize,
    },
    /// A setting is out of its range.
    #[error("{field} = {value} is out of range: expected {expected}")]
    OutOfRange {
        /// The setting.
        field: &'static str,
        /// The refused value.
        value: String,
        /// What it accepts.
        expected: &'static str,
    },
}

/// The token's 128-bit tag under `keys`: SipHash-2-4 twice, with two
/// independent key pairs. Its running time depends on the length of
/// `bytes` only, which the caller who sent them knows anyway.
#[allow(deprecated)] // `SipHasher` is SipHash-2-4 for good; only `DefaultHasher` may change algorithm.
fn tag(keys: &[u64; 4], bytes: &[u8]) -> [u64; 2] {
    use std::hash::{Hasher, SipHasher};
    let half = |k0, k1| {
        let mut hasher = SipHasher::new_with_keys(k0, k1);
        hasher.write(bytes);
        hasher.finish()
    };
    [half(keys[0], keys[1]), half(keys[2], keys[3])]
}

fn random_keys() -> [u64; 4] {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let mut keys = [0u64; 4];
    for (key, chunk) in keys.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        *key = u64::from_le_bytes(word);
    }
    keys
}

impl AdminToken {
    /// Wraps `token`; refuses one shorter than [`MIN_TOKEN_LEN`] or with
    /// characters other than visible ASCII.
    pub fn new(token: impl AsRef<str>) -> Result<Self, SettingsError> {
        let token = token.as_ref();
        if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SettingsError::WeakToken { len: token.chars().count() });
        }
        Ok(Self::keyed(token))
    }

    fn keyed(token: &str) -> Self {
        let keys = random_keys();
        AdminToken { tag: tag(&keys, token.as_bytes()), keys }
    }

    /// A fresh random token (256 bits from the thread's CSPRNG, hex) and its
    /// wrapper; the binary prints the string once when none is configured.
    pub fn generate() -> (String, AdminToken) {
        let text = random_hex::<32>();
        let token = Self::keyed(&text);
        (text, token)
    }

    /// Whether `candidate` is this token, in constant time.
    pub fn matches(&self, candidate: &str) -> bool {
        let [a, b] = tag(&self.keys, candidate.as_bytes());
        bool::from(a.ct_eq(&self.tag[0]) & b.ct_eq(&self.tag[1]))
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl fmt::Display for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `N` random bytes from the thread's CSPRNG, as lowercase hex.
pub(crate) fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Who sees the checks behind `/health` (Spring Boot Actuator's policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthDetails {
    /// Everyone gets the status only.
    Never,
    /// Callers with the admin token or a dashboard session get the checks;
    /// others the status only (the default).
    #[default]
    WhenAuthorized,
    /// Everyone gets the checks.
    Always,
}

/// Per-client token bucket for admin endpoints and `/login`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    /// Requests a client may make at once after being idle.
    pub burst: u32,
    /// Requests per second a client may sustain.
    pub per_second: f64,
    /// Clients remembered at once; past that, idle ones are forgotten first.
    pub max_clients: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig { burst: 60, per_second: 10.0, max_clients: 10_000 }
    }
}

/// The server's own settings: who may do what, and how much.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// The token admin endpoints require.
    pub token: AdminToken,
    /// Whether `/metrics` answers without a token (default false).
    pub metrics_public: bool,
    /// Who sees `/health`'s details.
    pub health_details: HealthDetails,
    /// The rate limit on admin endpoints; `None` turns it off.
    pub rate_limit: Option<RateLimitConfig>,
    /// How long `/health`, `/api/status` and `/metrics`' health figures are
    /// reused before being computed again (default 1 s; a monitor tick also
    /// renews them). Zero computes them for every request.
    pub report_cache: Duration,
    /// How long a dashboard sign-in lasts (default 12 h).
    pub session_ttl: Duration,
    /// Dashboard sessions kept at once (default 1000); past that the oldest
    /// sign-in is ended.
    pub max_sessions: usize,
    /// Whether the session cookie is marked `Secure` (set it when served
    /// over HTTPS; default false, as the default bind is loopback HTTP).
    pub secure_cookie: bool,
    /// How long the readiness probe may take before it counts as failed
    /// (default 2 s).
    pub probe_timeout: Duration,
    /// Server-sent-event streams open at once (default 64).
    pub max_event_streams: usize,
    /// Events buffered per stream before a slow client skips some
    /// (default 256).
    pub event_buffer: usize,
}

impl AdminConfig {
    /// The defaults, with `token`.
    pub fn new(token: AdminToken) -> Self {
        AdminConfig {
            token,
            metrics_public: false,
            health_details: HealthDetails::default(),
            rate_limit: Some(RateLimitConfig::default()),
            report_cache: Duration::from_secs(1),
            session_ttl: Duration::from_secs(12 * 3600),
            max_sessions: 1000,
            secure_cookie: false,
            probe_timeout: Duration::from_secs(2),
            max_event_streams: 64,
            event_buffer: 256,
        }
    }

    /// Checks every value; the error names the first one that is wrong.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let out = |field, value: String, expected| Err(SettingsError::OutOfRange { field, value, expected });
        if let Some(r) = &self.rate_limit {
            if r.burst == 0 {
                return out("rate_limit.burst", r.burst.to_string(), "at least 1");
            }
            if !(r.per_second.is_finite() && r.per_second > 0.0) {
                return out("rate_limit.per_second", r.per_second.to_string(), "a number above 0");
            }
            if r.max_clients == 0 || r.max_clients > 1_000_000 {
                return out("rate_limit.max_clients", r.max_clients.to_string(), "1 to 1000000");
            }
        }
        if self.session_ttl.is_zero() {
            return out("session_ttl", "0".into(), "a duration above zero");
        }
        if self.max_sessions == 0 || self.max_sessions > 100_000 {
            return out("max_sessions", self.max_sessions.to_string(), "1 to 100000");
        }
        if self.probe_timeout.is_zero() {
            return out("probe_timeout", "0".into(), "a duration above zero");
        }
        if self.max_event_streams == 0 || self.max_event_streams > 10_000 {
            return out("max_event_streams", self.max_event_streams.to_string(), "1 to 10000");
        }
        if self.event_buffer == 0 || self.event_buffer > 100_000 {
            return out("event_buffer", self.event_buffer.to_string(), "1 to 100000");
        }
        Ok(())
    }
}

/// Why the readiness probe failed; shown only in logs and to authorized
/// callers, never on the open `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProbeError(pub String);

/// Answers "is the database reachable?" for `/readyz` and `/health`.
///
/// The application implements it with its pool (e.g. `SELECT 1` through a
/// monitored sqlx pool), so this crate needs no database driver.
///
/// # Contract
/// `check` should finish quickly; the server gives it
/// [`AdminConfig::probe_timeout`] and counts a slower answer as a failure.
/// The error's message must not contain secrets (it is logged).
#[async_trait]
pub trait ReadinessProbe: Send + Sync + fmt::Debug + 'static {
    /// `Ok` when the database answers.
    async fn check(&self) -> Result<(), ProbeError>;
}

/// A refused runtime setting: which one and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct RuntimeConfigError {
    /// The setting, e.g. `cleanup_interval_seconds`.
    pub field: String,
    /// What is wrong with its value.
    pub problem: String,
}

/// Settings the application owns (e.g. the cleanup interval) that
/// `PUT /api/config` may change beside the monitor's thresholds.
///
/// # Contract
/// - [`current`](Self::current) returns a JSON object of every setting.
/// - [`validate`](Self::validate) gets a JSON object holding a subset of
///   those keys; it refuses unknown keys and bad values without changing
///   anything.
/// - [`apply`](Self::apply) is only called with an update `validate`
///   accepted, after every other part of the request was validated too, and
///   must then succeed (so a refused request changes nothing anywhere).
pub trait RuntimeConfig: Send + Sync + fmt::Debug + 'static {
    /// Every setting now, as a JSON object.
    fn current(&self) -> Value;
    /// Checks `update` without applying it.
    fn validate(&self, update: &serde_json::Map<String, Value>) -> Result<(), RuntimeConfigError>;
    /// Applies an update `validate` accepted.
    fn apply(&self, update: &serde_json::Map<String, Value>);
}

/// Everything the router needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) monitor: Monitor,
    pub(crate) admin: AdminConfig,
    pub(crate) probe: Option<Arc<dyn ReadinessProbe>>,
    pub(crate) runtime: Option<Arc<dyn RuntimeConfig>>,
    pub(crate) sessions: LoginSessions,
    pub(crate) limiter: Option<RateLimiter>,
    pub(crate) cache: ReportCache,
    pub(crate) events: EventHub,
    /// Serializes `PUT /api/config` so two updates never interleave.
    pub(crate) config_lock: tokio::sync::Mutex<()>,
    pub(crate) openapi: Value,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.events.detach(&self.monitor);
    }
}

impl AppState {
    /// A builder for the state of `monitor`, guarded by `admin`.
    pub fn builder(monitor: Monitor, admin: AdminConfig) -> AppStateBuilder {
        AppStateBuilder { monitor, admin, probe: None, runtime: None }
    }

    /// The monitor served.
    pub fn monitor(&self) -> &Monitor {
        &self.inner.monitor
    }

    /// The admin settings.
    pub fn admin(&self) -> &AdminConfig {
        &self.inner.admin
    }

    /// Ends every open `/api/events` stream and refuses new ones. Call it
    /// when shutdown starts: a graceful shutdown waits for open
    /// connections, and an event stream never ends on its own.
    pub fn close_event_streams(&self) {
        self.inner.events.close();
    }

    /// The OpenAPI document of the router built from this state.
    pub fn openapi(&self) -> &Value {
        &self.inner.openapi
    }
}

/// Builds an [`AppState`].
#[derive(Debug)]
pub struct AppStateBuilder {
    monitor: Monitor,
    admin: AdminConfig,
    probe: Option<Arc<dyn ReadinessProbe>>,
    runtime: Option<Arc<dyn RuntimeConfig>>,
}

impl AppStateBuilder {
    /// Sets the readiness probe (`/readyz` answers 503 when it fails).
    pub fn readiness_probe(mut self, probe: impl ReadinessProbe) -> Self {
        self.probe = Some(Arc::new(probe));
        self
    }

    /// Sets the hook through which `PUT /api/config` changes the
    /// application's own settings.
    pub fn runtime_config(mut self, runtime: impl RuntimeConfig) -> Self {
        self.runtime = Some(Arc::new(runtime));
        self
    }

    /// Validates the settings and builds the state. Subscribes an event
    /// sink to the monitor for `/api/events`; it is removed when the last
    /// clone of the state is dropped.
    pub fn build(self) -> Result<AppState, SettingsError> {
        self.admin.validate()?;
        let admin = self.admin;
        let events = EventHub::attach(&self.monitor, admin.event_buffer, admin.max_event_streams);
        let openapi = crate::openapi::document(admin.metrics_public);
        Ok(AppState {
            inner: Arc::new(Inner {
                sessions: LoginSessions::new(admin.max_sessions, admin.session_ttl),
                limiter: admin.rate_limit.map(RateLimiter::new),
                cache: ReportCache::new(admin.report_cache, events.generation()),
                events,
                monitor: self.monitor,
                probe: self.probe,
                runtime: self.runtime,
                config_lock: tokio::sync::Mutex::new(()),
                openapi,
                admin,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_itself_only() {
        let text = "a-token-of-sufficient-length-42";
        let token = AdminToken::new(text).expect("token");
        assert!(token.matches(text));
        assert!(!token.matches(&text[..text.len() - 1]), "a prefix");
        assert!(!token.matches(&format!("{text}x")), "a longer string");
        assert!(!token.matches(""));
        let again = AdminToken::new(text).expect("token");
        assert_ne!(token.keys, again.keys, "each wrapper draws its own keys");
        assert!(again.matches(text) && token.clone().matches(text));
        let (printed, generated) = AdminToken::generate();
        assert!(generated.matches(&printed) && !generated.matches(text));
        assert!(!format!("{token:?} {token}").contains(text));
    }
}
