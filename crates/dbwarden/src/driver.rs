//! The background task that keeps a monitor current: it calls
//! [`Monitor::tick`] on an interval (rates, leak scan, alerts) and logs the
//! periodic performance summary.

use std::time::Duration;

use dbwarden_core::Monitor;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the driver does what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverConfig {
    /// Between two ticks (default 5 s).
    pub tick_interval: Duration,
    /// Between two summary log lines; `None` turns periodic logging off
    /// (default 300 s, as the seeds).
    pub summary_interval: Option<Duration>,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig { tick_interval: Duration::from_secs(5), summary_interval: Some(Duration::from_secs(300)) }
    }
}

/// A running driver; dropping it does not stop it, [`Driver::shutdown`] does.
#[derive(Debug)]
pub struct Driver {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Driver {
    /// Starts ticking `monitor` on the current tokio runtime.
    pub fn spawn(monitor: Monitor, config: DriverConfig) -> Driver {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(config.tick_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {
                        monitor.tick();
                        if let Some(every) = config.summary_interval {
                            monitor.log_periodic_summary(every);
                        }
                    }
                    _ = stopped.changed() => break,
                }
            }
            // A last tick so that what happened since the previous one is
            // evaluated and logged before the process goes.
            monitor.tick();
            if config.summary_interval.is_some() {
                monitor.log_periodic_summary(Duration::ZERO);
            }
        });
        Driver { stop, task }
    }

    /// Stops the driver after one last tick and summary.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(target: "dbwarden", error = %e, "the monitor driver task failed");
        }
    }
}
