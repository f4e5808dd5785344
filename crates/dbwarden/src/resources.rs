//! Host resource sampling: CPU, memory, this process's resident memory and
//! the disk holding the database file, read with `sysinfo` and recorded into
//! a monitor ([`Monitor::record_resources`]) on an interval, where they feed
//! the HighCpu / HighMemory alerts, `/health` and the dashboard.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dbwarden_core::{Monitor, ResourceSample};
use sysinfo::{Disks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Reads one [`ResourceSample`] at a time. CPU usage is measured between two
/// calls, so the first sample reads 0 until a second one is taken.
#[derive(Debug)]
pub struct ResourceSampler {
    system: System,
    pid: Option<Pid>,
    disk_path: Option<PathBuf>,
}

impl ResourceSampler {
    /// A sampler; `disk_path` is a file or directory whose file system's
    /// usage is reported (the database file for SQLite), none for a server
    /// database on another host.
    ///
    /// Fails where the platform gives no access to its figures.
    pub fn new(disk_path: Option<PathBuf>) -> Result<Self, sysinfo::Error> {
        let mut system = System::new()?;
        system.refresh_cpu_usage();
        Ok(ResourceSampler { system, pid: sysinfo::get_current_pid().ok(), disk_path })
    }

    /// Takes a sample now.
    pub fn sample(&mut self) -> ResourceSample {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        let process_rss = match self.pid {
            Some(pid) => {
                self.system.refresh_processes_specifics(
                    ProcessesToUpdate::Some(&[pid]),
                    true,
                    ProcessRefreshKind::nothing().with_memory(),
                );
                self.system.process(pid).map_or(0, |p| p.memory())
            }
            None => 0,
        };
        let (disk_used, disk_total) = match self.disk_path.as_deref().and_then(disk_usage) {
            Some((used, total)) => (Some(used), Some(total)),
            None => (None, None),
        };
        ResourceSample {
            cpu_usage: (f64::from(self.system.global_cpu_usage()) / 100.0).clamp(0.0, 1.0),
            memory_used: self.system.used_memory(),
            memory_total: self.system.total_memory(),
            process_rss,
            disk_used,
            disk_total,
        }
    }
}

/// Used and total bytes of the file system holding `path` (the mount point
/// that is the longest prefix of its canonical form).
fn disk_usage(path: &Path) -> Option<(u64, u64)> {
    // The file may not exist yet (first start); its directory does.
    let canonical = path.canonicalize().or_else(|_| path.parent().unwrap_or(Path::new(".")).canonicalize()).ok()?;
    let disks = Disks::new_with_refreshed_list().ok()?;
    let disk = disks
        .iter()
        .filter(|d| canonical.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())?;
    let total = disk.total_space();
    Some((total.saturating_sub(disk.available_space()), total))
}

/// A background task recording resource samples into a monitor.
#[derive(Debug)]
pub struct ResourceTask {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ResourceTask {
    /// Samples every `interval` on the current tokio runtime (the blocking
    /// reads of /proc run off the async workers).
    pub fn spawn(monitor: Monitor, interval: Duration, disk_path: Option<PathBuf>) -> ResourceTask {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut sampler = match ResourceSampler::new(disk_path) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(target: "dbwarden", error = %e, "host resources cannot be read here; not sampled");
                    None
                }
            };
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stopped.changed() => break,
                }
                let Some(mut s) = sampler.take() else { break };
                match tokio::task::spawn_blocking(move || {
                    let sample = s.sample();
                    (s, sample)
                })
                .await
                {
                    Ok((s, sample)) => {
                        monitor.record_resources(sample);
                        sampler = Some(s);
                    }
                    Err(e) => {
                        tracing::warn!(target: "dbwarden", error = %e, "resource sampling failed; stopped");
                        break;
                    }
                }
            }
        });
        ResourceTask { stop, task }
    }

    /// Stops sampling.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_reads_this_host() {
        let dir = tempfile::tempdir().unwrap();
        let mut sampler = ResourceSampler::new(Some(dir.path().join("db.sqlite"))).unwrap();
        let s = sampler.sample();
        assert!(s.memory_total > 0 && s.memory_used <= s.memory_total, "{s:?}");
        assert!(s.process_rss > 0, "{s:?}");
        assert!((0.0..=1.0).contains(&s.cpu_usage));
        let (used, total) = (s.disk_used.unwrap(), s.disk_total.unwrap());
        assert!(total > 0 && used <= total, "{s:?}");
    }
}
