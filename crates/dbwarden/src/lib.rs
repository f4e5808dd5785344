//! dbwarden watches how a web application uses its database and keeps it
//! healthy.
//!
//! This is the crate an application depends on. It re-exports the monitoring
//! engine ([`dbwarden_core`]) and adds what needs an async runtime: the
//! [`Driver`] that ticks a monitor and logs its periodic summary, the
//! [`history`] that keeps trend points in the database across restarts,
//! [`resources`] sampling, and the server's typed [`settings`].
//!
//! ```no_run
//! # async fn run() {
//! use std::time::Duration;
//!
//! let monitor = dbwarden::monitor();
//! let driver = dbwarden::Driver::spawn(monitor.clone(), dbwarden::DriverConfig::default());
//! // … the application records into `monitor` …
//! driver.shutdown().await;
//! # }
//! ```

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

mod driver;
pub mod history;
pub mod resources;
pub mod settings;
pub mod upkeep;

pub use dbwarden_core::*;
pub use driver::{Driver, DriverConfig};

/// The process-wide monitor (created with defaults on first use).
pub fn monitor() -> &'static Monitor {
    Monitor::global()
}
