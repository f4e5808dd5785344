//! dbwarden's HTTP surface: an axum [`Router`](axum::Router) with the JSON
//! API, health endpoints, Prometheus export and the live dashboard, and a
//! tower layer that tracks an application's requests.

pub mod tracking;
pub use tracking::{RequestId, RequestTrackingLayer};
