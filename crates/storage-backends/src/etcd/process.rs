//! One `etcd` process: its ports, command line and log file, waiting for it to serve, and
//! stopping it.

use super::config::EtcdConfig;
use super::store::EtcdStore;
use crate::error::{Result, StoreError};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The largest write etcd accepts: 3 MiB, kube-apiserver's own limit on a request body,
/// instead of etcd's default 1.5 MiB, so objects the other backends store fit here too.
const MAX_REQUEST_BYTES: u32 = 3 * 1024 * 1024;
/// How much of the end of etcd's log an error message quotes.
const LOG_TAIL_BYTES: u64 = 4096;
/// How long each health check may take while etcd starts.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an etcd left behind by an earlier kflex gets to stop before it is killed.
const LEFTOVER_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause between health checks while etcd starts.
const HEALTH_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Everything needed to (re)start the same etcd member.
#[derive(Clone, Debug)]
pub(crate) struct EtcdProcess {
    pub(crate) bin: PathBuf,
    pub(crate) name: String,
    /// etcd's `--data-dir`.
    pub(crate) data_dir: PathBuf,
    /// Where etcd's stdout and stderr go (appended to across restarts).
    pub(crate) log: PathBuf,
    pub(crate) client_port: u16,
    pub(crate) peer_port: u16,
    pub(crate) compaction_retention: u64,
}

/// Why a started etcd did not become healthy.
pub(crate) enum StartFailure {
    /// It exited; `address_in_use` when it could not bind its ports.
    Exited {
        error: StoreError,
        address_in_use: bool,
    },
    /// It kept running but never answered, or could not be started at all.
    Other(StoreError),
}

impl EtcdProcess {
    /// The URL clients connect to.
    pub(crate) fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// Where the running etcd's pid is kept, so that an etcd left behind by a kflex that
    /// was killed can be found and stopped before the same data directory is used again.
    fn pid_file(&self) -> PathBuf {
        self.log.with_file_name("etcd.pid")
    }

    /// Stops an etcd still running on this data directory from an earlier kflex process
    /// (one that died without stopping it): the pid file names it, and its command line
    /// must name this data directory, so an unrelated process that reused the pid is
    /// left alone.
    pub(crate) async fn stop_leftover(&self) {
        let Ok(text) = std::fs::read_to_string(self.pid_file()) else {
            return;
        };
        let Ok(pid) = text.trim().parse::<i32>() else {
            return;
        };
        let ours = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
            let data_dir = self.data_dir.as_os_str().as_encoded_bytes();
            cmdline.split(|b| *b == 0).any(|arg| arg == data_dir)
        });
        if !ours {
            return;
        }
        tracing::warn!(name = %self.name, pid, "stopping an etcd left running by an earlier kflex process");
        // SAFETY: kill(2) with a pid we checked runs etcd on our data directory.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + LEFTOVER_STOP_TIMEOUT;
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            tokio::time::sleep(HEALTH_CHECK_INTERVAL).await;
        }
        if Path::new(&format!("/proc/{pid}")).exists() {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            tokio::time::sleep(HEALTH_CHECK_INTERVAL).await;
        }
    }

    /// Starts the process; it is killed when the returned `Child` is dropped.
    pub(crate) fn spawn(&self) -> Result<Child> {
        let open_log = || -> std::io::Result<(File, File)> {
            let stdout = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)?;
            let stderr = stdout.try_clone()?;
            Ok((stdout, stderr))
        };
        let (stdout, stderr) = open_log().map_err(|error| {
            self.unavailable(
                format_args!("cannot open its log {}", self.log.display()),
                error,
            )
        })?;
        let mut command = Command::new(&self.bin);
        command
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen-client-urls")
            .arg(self.client_url())
            .arg("--advertise-client-urls")
            .arg(self.client_url())
            .arg("--listen-peer-urls")
            .arg(self.peer_url())
            .arg("--initial-advertise-peer-urls")
            .arg(self.peer_url())
            .arg("--initial-cluster")
            .arg(format!("{}={}", self.name, self.peer_url()))
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--auto-compaction-mode=revision")
            .arg(format!(
                "--auto-compaction-retention={}",
                self.compaction_retention
            ))
            .arg(format!("--max-request-bytes={MAX_REQUEST_BYTES}"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        // etcd refuses to start when an `ETCD_*` variable duplicates one of its flags.
        for (variable, _) in std::env::vars_os() {
            if variable.to_string_lossy().starts_with("ETCD_") {
                command.env_remove(variable);
            }
        }
        let child = command.spawn().map_err(|error| {
            self.unavailable(
                format_args!("cannot run the etcd binary {}", self.bin.display()),
                error,
            )
        })?;
        if let Some(pid) = child.id() {
            if let Err(error) = std::fs::write(self.pid_file(), pid.to_string()) {
                tracing::warn!(name = %self.name, %error, "cannot record etcd's pid");
            }
        }
        Ok(child)
    }

    /// Waits until the started `child` serves requests, for at most `timeout`.
    pub(crate) async fn wait_healthy(
        &self,
        child: &mut Child,
        timeout: Duration,
    ) -> Result<(), StartFailure> {
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Err(self.exited(status)),
                Ok(None) => {}
                Err(error) => {
                    return Err(StartFailure::Other(
                        self.unavailable("cannot check on it", error),
                    ))
                }
            }
            let config = EtcdConfig {
                connect_timeout: HEALTH_CHECK_TIMEOUT,
                ..EtcdConfig::new([self.client_url()])
            };
            if EtcdStore::connect(config).await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartFailure::Other(self.unavailable(
                    format_args!("not serving on {} after {timeout:?}", self.client_url()),
                    self.log_tail(),
                )));
            }
            tokio::time::sleep(HEALTH_CHECK_INTERVAL).await;
        }
    }

    fn exited(&self, status: ExitStatus) -> StartFailure {
        let tail = self.log_tail();
        StartFailure::Exited {
            address_in_use: tail.contains("address already in use"),
            error: self.unavailable(format_args!("exited while starting ({status})"), tail),
        }
    }

    /// An error about this etcd, quoting `detail`.
    pub(crate) fn unavailable(
        &self,
        what: impl std::fmt::Display,
        detail: impl std::fmt::Display,
    ) -> StoreError {
        StoreError::unavailable("etcd", format_args!("etcd {:?} {what}", self.name), detail)
    }

    /// The end of etcd's log, introduced by the log's path.
    fn log_tail(&self) -> String {
        match read_tail(&self.log) {
            Ok(tail) if tail.trim().is_empty() => {
                format!("its log {} is empty", self.log.display())
            }
            Ok(tail) => format!(
                "end of its log {}:\n{}",
                self.log.display(),
                tail.trim_end()
            ),
            Err(error) => format!("cannot read its log {}: {error}", self.log.display()),
        }
    }
}

/// The last `LOG_TAIL_BYTES` of a file, from the first full line in them.
fn read_tail(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let length = file.metadata()?.len();
    let start = length.saturating_sub(LOG_TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(match text.find('\n') {
        Some(newline) if start > 0 => text[newline + 1..].to_owned(),
        _ => text.into_owned(),
    })
}

/// Two free loopback ports (client, peer). They are free when this returns; another
/// process may take them before etcd binds them, which [`StartFailure::Exited`] reports.
pub(crate) fn free_ports() -> Result<(u16, u16)> {
    let bind = || {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|error| {
            StoreError::unavailable("etcd", "cannot find a free loopback port", error)
        })
    };
    // Both listeners are open at once, so the two ports differ.
    let (client, peer) = (bind()?, bind()?);
    let port = |listener: &TcpListener| {
        listener
            .local_addr()
            .map(|address| address.port())
            .map_err(|error| {
                StoreError::unavailable("etcd", "cannot find a free loopback port", error)
            })
    };
    Ok((port(&client)?, port(&peer)?))
}

/// Stops `child`: SIGTERM, then SIGKILL if it has not exited within `grace`.
pub(crate) async fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Some(pid) = child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()) {
        // SAFETY: `kill` has no memory effects. `pid` is our own child, not reaped yet
        // (`child.id()` is `None` once it has been waited for), so it names no other process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        if let Ok(status) = tokio::time::timeout(grace, child.wait()).await {
            return status.ok();
        }
        tracing::warn!(pid, ?grace, "etcd ignored SIGTERM; killing it");
    }
    // Already exited, or still running after the grace period.
    if let Err(error) = child.start_kill() {
        tracing::debug!(%error, "etcd had already exited");
    }
    child.wait().await.ok()
}
