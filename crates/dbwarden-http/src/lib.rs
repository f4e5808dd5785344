//! dbwarden's HTTP surface: an axum [`Router`](axum::Router) with the JSON
//! API, health endpoints, Prometheus export and the live dashboard, and a
//! tower layer that tracks an application's requests.
//!
//! # Serving the API
//!
//! Build an [`AppState`] from the [`Monitor`](dbwarden_core::Monitor) and an
//! [`AdminConfig`], then [`router`] gives an axum `Router` to serve on its
//! own or to nest under any prefix of an application:
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use dbwarden_core::Monitor;
//! use dbwarden_http::{AdminConfig, AdminToken, AppState, router};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let monitor = Monitor::new();
//! let token = AdminToken::new(std::env::var("DBWARDEN_ADMIN_TOKEN")?)?;
//! let state = AppState::builder(monitor, AdminConfig::new(token)).build()?;
//!
//! // Nested in an application …
//! let app = axum::Router::new().nest("/admin/dbwarden", router(state.clone()));
//! # let _ = app;
//!
//! // … or served on its own. Connect info lets the rate limit tell clients apart.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9750").await?;
//! axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Admin endpoints need `Authorization: Bearer <token>` or the cookie that
//! `POST /login` sets; `/livez`, `/readyz`, `/health` (status only) and
//! `/openapi.json` are open, `/metrics` when [`AdminConfig::metrics_public`]
//! says so. Every error is JSON `{"error": …, "detail": …}`. The full list
//! of routes is [`mounted_routes`] and the document at `/openapi.json`.
//!
//! # Hooks into the application
//!
//! - [`ReadinessProbe`]: "is the database reachable?", implemented with the
//!   application's pool, for `/readyz` and `/health`.
//! - [`RuntimeConfig`]: settings the application owns (e.g. the cleanup
//!   interval) that `PUT /api/config` may change with the thresholds.
//!
//! ```
//! use dbwarden_core::Monitor;
//! use dbwarden_http::{AdminConfig, AdminToken, AppState, ProbeError, ReadinessProbe};
//!
//! #[derive(Debug)]
//! struct AlwaysUp;
//!
//! #[async_trait::async_trait]
//! impl ReadinessProbe for AlwaysUp {
//!     async fn check(&self) -> Result<(), ProbeError> {
//!         Ok(())
//!     }
//! }
//!
//! let (_printed_once, token) = AdminToken::generate();
//! let state = AppState::builder(Monitor::new(), AdminConfig::new(token))
//!     .readiness_probe(AlwaysUp)
//!     .build()
//!     .expect("valid settings");
//! let _router = dbwarden_http::router(state);
//! ```
//!
//! # Invariants
//!
//! This crate knows no database driver (no sqlx) and reads the monitor only
//! through its public API. It never shows raw SQL (only fingerprints) nor
//! secrets: the admin token is kept as a digest, session ids are kept hashed.

mod api;
mod auth;
mod cache;
mod config;
mod error;
mod events;
mod health;
mod metrics;
mod openapi;
mod ratelimit;
mod routes;
mod state;

pub use auth::SESSION_COOKIE;
pub use error::{ApiError, ApiJson, OptionalApiJson};
pub use metrics::{DURATION_BUCKETS, MetricsFormat, render_metrics};
pub use routes::{Access, RouteInfo, mounted_routes, router};
pub use state::{
    AdminConfig, AdminToken, AppState, AppStateBuilder, HealthDetails, MIN_TOKEN_LEN, ProbeError, RateLimitConfig,
    ReadinessProbe, RuntimeConfig, RuntimeConfigError, SettingsError,
};

pub mod dashboard;
pub mod tracking;
pub use tracking::{RequestId, RequestTrackingLayer};
