//! Client IP and user-agent hashes for the session stores: a tower layer
//! (or [`with_client`] outside tower) puts keyed SHA-256 hashes of the
//! request's IP and `User-Agent` into a task-local, and the stores write them
//! with the session. The raw values are never stored.
//!
//! Put [`ClientInfoLayer`] *outside* tower-sessions' `SessionManagerLayer`
//! (in axum: `.layer(session_layer).layer(client_info_layer)`), so the
//! session is saved while the hashes are in scope.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::ConnectInfo;
use http::{HeaderName, Request};
use sha2::{Digest, Sha256};

tokio::task_local! {
    static CLIENT: ClientHashes;
}

/// Hashes of the current request's client, as the stores write them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientHashes {
    /// Keyed SHA-256 of the client IP.
    pub ip_hash: Option<[u8; 32]>,
    /// Keyed SHA-256 of the `User-Agent` header.
    pub ua_hash: Option<[u8; 32]>,
}

/// Runs `fut` with `hashes` as the current client (for code outside tower).
pub async fn with_client<F: Future>(hashes: ClientHashes, fut: F) -> F::Output {
    CLIENT.scope(hashes, fut).await
}

/// The current client's hashes (empty outside [`with_client`] / the layer).
pub fn current_client() -> ClientHashes {
    CLIENT.try_with(|c| *c).unwrap_or_default()
}

/// Hashes IPs and user agents with a secret key, so a leaked table cannot be
/// reversed by hashing all IPv4 addresses. Keep the key stable across
/// restarts and hosts, or analytics will see every client as new.
#[derive(Clone)]
pub struct ClientHasher {
    key: Arc<[u8]>,
}

impl fmt::Debug for ClientHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHasher").field("key", &"<redacted>").finish()
    }
}

impl ClientHasher {
    /// A hasher keyed by `key` (use at least 16 random bytes).
    pub fn new(key: impl AsRef<[u8]>) -> ClientHasher {
        ClientHasher { key: Arc::from(key.as_ref()) }
    }

    fn hash(&self, domain: &[u8], value: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update((self.key.len() as u64).to_le_bytes());
        hasher.update(&self.key);
        hasher.update(domain);
        hasher.update(value);
        hasher.finalize().into()
    }

    /// The hash of a client IP (IPv4-mapped IPv6 addresses hash as IPv4).
    pub fn hash_ip(&self, ip: IpAddr) -> [u8; 32] {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        self.hash(b"ip\0", ip.to_string().as_bytes())
    }

    /// The hash of a user agent string.
    pub fn hash_user_agent(&self, user_agent: &[u8]) -> [u8; 32] {
        self.hash(b"ua\0", user_agent)
    }
}

/// A tower layer that hashes each request's client IP (from axum's
/// `ConnectInfo<SocketAddr>`, or a trusted forwarding header) and user agent
/// for the session stores.
#[derive(Debug, Clone)]
pub struct ClientInfoLayer {
    hasher: ClientHasher,
    forwarded_header: Option<HeaderName>,
}

impl ClientInfoLayer {
    /// A layer hashing with `hasher`, taking the IP from the connection.
    pub fn new(hasher: ClientHasher) -> ClientInfoLayer {
        ClientInfoLayer { hasher, forwarded_header: None }
    }

    /// Takes the IP from the first address of `header` (e.g.
    /// `x-forwarded-for`) when present. Only for apps behind a proxy that sets it.
    pub fn trust_forwarded_header(mut self, header: HeaderName) -> ClientInfoLayer {
        self.forwarded_header = Some(header);
        self
    }
}

impl<S> tower::Layer<S> for ClientInfoLayer {
    type Service = ClientInfoService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientInfoService { inner, layer: self.clone() }
    }
}

/// The service of [`ClientInfoLayer`].
#[derive(Debug, Clone)]
pub struct ClientInfoService<S> {
    inner: S,
    layer: ClientInfoLayer,
}

impl<S, B> tower::Service<Request<B>> for ClientInfoService<S>
where
    S: tower::Service<Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let forwarded = self.layer.forwarded_header.as_ref().and_then(|name| {
            let value = request.headers().get(name)?.to_str().ok()?;
            value.split(',').next()?.trim().parse::<IpAddr>().ok()
        });
        let ip = forwarded.or_else(|| request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip()));
        let hashes = ClientHashes {
            ip_hash: ip.map(|ip| self.layer.hasher.hash_ip(ip)),
            ua_hash: request
                .headers()
                .get(http::header::USER_AGENT)
                .map(|ua| self.layer.hasher.hash_user_agent(ua.as_bytes())),
        };
        let future = self.inner.call(request);
        Box::pin(CLIENT.scope(hashes, future))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_keyed_and_normalize_mapped_ipv4() {
        let a = ClientHasher::new(b"key-a");
        let b = ClientHasher::new(b"key-b");
        let v4: IpAddr = "10.1.2.3".parse().expect("ip");
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().expect("ip");
        assert_eq!(a.hash_ip(v4), a.hash_ip(mapped));
        assert_ne!(a.hash_ip(v4), b.hash_ip(v4));
        assert_ne!(a.hash_ip(v4), a.hash_user_agent(b"10.1.2.3"));
    }

    #[tokio::test]
    async fn scope_sets_and_clears_the_current_client() {
        assert_eq!(current_client(), ClientHashes::default());
        let hashes = ClientHashes { ip_hash: Some([1; 32]), ua_hash: None };
        let seen = with_client(hashes, async { current_client() }).await;
        assert_eq!(seen, hashes);
    }
}
