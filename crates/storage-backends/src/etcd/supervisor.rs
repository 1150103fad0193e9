//! `EtcdSupervisor`: runs a dedicated `etcd` for one store and restarts it when it dies.

use super::config::EtcdConfig;
use super::process::{free_ports, terminate, EtcdProcess, StartFailure};
use super::store::EtcdStore;
use crate::error::{Result, StoreError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::Child;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long etcd may take to serve after it is started.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How many sets of ports to try when another process takes the free ports first.
const PORT_ATTEMPTS: usize = 3;
/// How long etcd may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Restart backoff: the first pause, doubling up to the longest, and back to the first once
/// etcd has stayed up this long.
const FIRST_RESTART_DELAY: Duration = Duration::from_millis(100);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(10);
const STABLE_UPTIME: Duration = Duration::from_secs(30);

/// How to run a store's dedicated etcd.
#[derive(Clone, Debug)]
pub struct EtcdSupervisorConfig {
    /// The `etcd` binary: a path, or a name looked up in `PATH`.
    pub etcd_bin: PathBuf,
    /// A directory owned by this etcd: etcd keeps its data in `data/` and its output in
    /// `etcd.log` inside it. Created if missing; reused (with its data) if it exists.
    pub data_dir: PathBuf,
    /// The etcd member name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// etcd compacts its history to this many revisions before the current one, every
    /// 5 minutes (`--auto-compaction-mode=revision`); 0 turns auto-compaction off.
    pub auto_compaction_retention_revisions: u64,
}

impl EtcdSupervisorConfig {
    /// A configuration running `etcd` from `PATH` and keeping 1000 revisions of history.
    pub fn new(data_dir: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        EtcdSupervisorConfig {
            etcd_bin: PathBuf::from("etcd"),
            data_dir: data_dir.into(),
            name: name.into(),
            auto_compaction_retention_revisions: 1000,
        }
    }

    fn validate(&self) -> Result<()> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if self.name.is_empty() || !self.name.chars().all(valid_char) {
            return Err(StoreError::InvalidInput(format!(
                "etcd member name {:?}: use letters, digits, '-', '_' and '.'",
                self.name
            )));
        }
        if self.etcd_bin.as_os_str().is_empty() {
            return Err(StoreError::InvalidInput(
                "etcd binary path is empty".to_owned(),
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(StoreError::InvalidInput(
                "etcd data directory path is empty".to_owned(),
            ));
        }
        Ok(())
    }
}

/// A running dedicated etcd on loopback ports, restarted (same ports, same data) whenever it
/// dies, with exponential backoff. While etcd runs, supervising it costs nothing but a task
/// waiting for the process to exit.
///
/// Dropping the supervisor stops etcd (SIGTERM, then SIGKILL); [`stop`](Self::stop) does the
/// same and waits for it.
pub struct EtcdSupervisor {
    name: String,
    data_dir: PathBuf,
    client_url: String,
    pid: Arc<AtomicU32>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl EtcdSupervisor {
    /// Starts etcd and waits until it serves clients.
    ///
    /// Fails with `InvalidInput` for a bad configuration and with `Unavailable` when the
    /// binary cannot be run, or etcd exits or does not serve within 30 s (quoting the end of
    /// its log).
    pub async fn start(config: EtcdSupervisorConfig) -> Result<EtcdSupervisor> {
        config.validate()?;
        tokio::fs::create_dir_all(&config.data_dir)
            .await
            .map_err(|error| {
                StoreError::unavailable(
                    "etcd",
                    format_args!("cannot create data directory {}", config.data_dir.display()),
                    error,
                )
            })?;
        let mut attempt = 1;
        let (process, child) = loop {
            let (client_port, peer_port) = free_ports()?;
            let process = EtcdProcess {
                bin: config.etcd_bin.clone(),
                name: config.name.clone(),
                data_dir: config.data_dir.join("data"),
                log: config.data_dir.join("etcd.log"),
                client_port,
                peer_port,
                compaction_retention: config.auto_compaction_retention_revisions,
            };
            if attempt == 1 {
                process.stop_leftover().await;
            }
            let mut child = process.spawn()?;
            match process.wait_healthy(&mut child, STARTUP_TIMEOUT).await {
                Ok(()) => break (process, child),
                Err(StartFailure::Exited {
                    address_in_use: true,
                    ..
                }) if attempt < PORT_ATTEMPTS => {
                    tracing::info!(name = %config.name, client_port, peer_port, "etcd's ports were taken; retrying with others");
                    attempt += 1;
                }
                Err(StartFailure::Exited { error, .. } | StartFailure::Other(error)) => {
                    terminate(&mut child, STOP_GRACE).await;
                    return Err(error);
                }
            }
        };
        let pid = Arc::new(AtomicU32::new(child.id().unwrap_or(0)));
        tracing::info!(name = %config.name, pid = child.id(), url = %process.client_url(), "etcd started");
        let (stop, stopped) = oneshot::channel();
        let client_url = process.client_url();
        let task = tokio::spawn(supervise(process, child, pid.clone(), stopped));
        Ok(EtcdSupervisor {
            name: config.name,
            data_dir: config.data_dir,
            client_url,
            pid,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The client URLs of the etcd (one loopback URL; it stays the same across restarts).
    pub fn endpoints(&self) -> Vec<String> {
        vec![self.client_url.clone()]
    }

    /// The process id of the running etcd, or `None` while it is being restarted.
    pub fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::SeqCst)).filter(|pid| *pid != 0)
    }

    /// A store on this etcd, using its whole key space.
    pub async fn store(&self) -> Result<EtcdStore> {
        EtcdStore::connect(EtcdConfig::new(self.endpoints())).await
    }

    /// Stops restarting etcd, then stops it: SIGTERM, and SIGKILL after 10 s.
    pub async fn stop(mut self) -> Result<()> {
        self.shutdown().await
    }

    /// Stops etcd and deletes its data directory, data and log included.
    pub async fn destroy(mut self) -> Result<()> {
        self.shutdown().await?;
        tokio::fs::remove_dir_all(&self.data_dir)
            .await
            .map_err(|error| {
                StoreError::unavailable(
                    "etcd",
                    format_args!("cannot remove data directory {}", self.data_dir.display()),
                    error,
                )
            })
    }

    async fn shutdown(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            // The task may have ended already: then there is nothing to stop.
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(|error| {
                StoreError::unavailable(
                    "etcd",
                    format_args!("stopping etcd {:?}", self.name),
                    error,
                )
            }),
            None => Ok(()),
        }
    }
}

impl Drop for EtcdSupervisor {
    /// Tells the supervising task to stop etcd. If the runtime shuts down before it has,
    /// dropping the task's child process handle kills etcd.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl std::fmt::Debug for EtcdSupervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdSupervisor")
            .field("name", &self.name)
            .field("data_dir", &self.data_dir)
            .field("client_url", &self.client_url)
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

/// Waits for etcd to exit and restarts it, until told to stop (or the supervisor is gone).
async fn supervise(
    process: EtcdProcess,
    mut child: Child,
    pid: Arc<AtomicU32>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut delay = FIRST_RESTART_DELAY;
    let mut started = Instant::now();
    loop {
        let status = tokio::select! {
            _ = &mut stop => {
                let status = terminate(&mut child, STOP_GRACE).await;
                pid.store(0, Ordering::SeqCst);
                tracing::info!(name = %process.name, ?status, "etcd stopped");
                return;
            }
            status = child.wait() => status,
        };
        let old_pid = pid.swap(0, Ordering::SeqCst);
        if started.elapsed() >= STABLE_UPTIME {
            delay = FIRST_RESTART_DELAY;
        }
        match &status {
            Ok(status) => {
                tracing::warn!(name = %process.name, pid = old_pid, %status, ?delay, "etcd exited; restarting it")
            }
            Err(error) => {
                tracing::warn!(name = %process.name, pid = old_pid, %error, ?delay, "lost track of etcd; killing and restarting it");
                if let Err(error) = child.start_kill() {
                    tracing::debug!(name = %process.name, %error, "etcd had already exited");
                }
            }
        }
        child = loop {
            tokio::select! {
                _ = &mut stop => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(MAX_RESTART_DELAY);
            match process.spawn() {
                Ok(child) => break child,
                Err(error) => {
                    tracing::error!(name = %process.name, %error, ?delay, "cannot restart etcd; retrying")
                }
            }
        };
        started = Instant::now();
        pid.store(child.id().unwrap_or(0), Ordering::SeqCst);
        tracing::info!(name = %process.name, pid = child.id(), "etcd restarted");
    }
}
