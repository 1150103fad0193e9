//! Support for kflex's end-to-end tests: where the test services and the built binary are.
//!
//! `scripts/test` starts a PostgreSQL and an etcd of its own and exports their addresses;
//! tests read them here and fail with a clear message when they are missing, so a test
//! that needs a real service can never pass without one.

use std::path::PathBuf;

/// Environment variable holding the test PostgreSQL server's URL (set by `scripts/test`).
pub const POSTGRES_URL_ENV: &str = "KFLEX_TEST_POSTGRES_URL";
/// Environment variable holding the test etcd's client endpoints, comma separated.
pub const ETCD_ENDPOINTS_ENV: &str = "KFLEX_TEST_ETCD_ENDPOINTS";
/// Environment variable naming the `etcd` binary that tests may spawn themselves.
pub const ETCD_BIN_ENV: &str = "KFLEX_ETCD_BIN";

fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: run the tests through `scripts/test`, which starts \
             PostgreSQL and etcd and exports their addresses"
        ),
    }
}

/// URL of the PostgreSQL server started for this test run.
pub fn postgres_url() -> String {
    required_env(POSTGRES_URL_ENV)
}

/// Client endpoints of the etcd started for this test run.
pub fn etcd_endpoints() -> Vec<String> {
    required_env(ETCD_ENDPOINTS_ENV)
        .split(',')
        .map(str::to_owned)
        .collect()
}

/// Path of the `etcd` binary (`KFLEX_ETCD_BIN`, else `etcd` from PATH).
pub fn etcd_bin() -> PathBuf {
    std::env::var_os(ETCD_BIN_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("etcd"))
}

/// Path of the built `kflex` binary: `KFLEX_BIN`, else next to the test executable's
/// target directory (cargo and nextest build workspace binaries before running tests).
pub fn kflex_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("KFLEX_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join(format!("kflex{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} does not exist: build the workspace first (`cargo build`)",
        bin.display()
    );
    bin
}

/// A `kflex serve` process on a free loopback port with its own data directory; stopped
/// when dropped.
pub struct KflexServer {
    child: std::process::Child,
    /// The server's URL (`https://127.0.0.1:<port>`).
    pub url: String,
    /// The admin kubeconfig it wrote.
    pub kubeconfig: PathBuf,
    /// Its data directory.
    pub data_dir: tempfile::TempDir,
}

impl KflexServer {
    /// Starts `kflex serve` and waits until it serves (at most 30 s).
    pub fn start() -> Self {
        Self::start_in(tempfile::tempdir().expect("a data directory for the server"))
    }

    /// Starts `kflex serve` on an existing data directory (a restart).
    pub fn start_in(dir: tempfile::TempDir) -> Self {
        Self::start_with(dir, &[])
    }

    /// Starts `kflex serve` on `dir` with extra command-line arguments.
    pub fn start_with(dir: tempfile::TempDir, extra_args: &[&str]) -> Self {
        Self::spawn("serve", dir, extra_args, &[])
    }

    /// Starts `kflex up` on `dir`, with `$KUBECONFIG` set to `user_kubeconfig` (which it
    /// updates with the hosting context).
    pub fn up(dir: tempfile::TempDir, user_kubeconfig: &std::path::Path) -> Self {
        Self::spawn(
            "up",
            dir,
            &[],
            &[("KUBECONFIG", user_kubeconfig.as_os_str())],
        )
    }

    fn spawn(
        command: &str,
        dir: tempfile::TempDir,
        extra_args: &[&str],
        envs: &[(&str, &std::ffi::OsStr)],
    ) -> Self {
        use std::io::BufRead;
        let kubeconfig = dir.path().join("admin.kubeconfig");
        let mut child = std::process::Command::new(kflex_bin())
            .args([command, "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .args(extra_args)
            .envs(envs.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run kflex");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (ready, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(rest) = line.strip_prefix("kflex serving on ") {
                    let url = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = ready.send(url);
                }
            }
        });
        let url = match wait.recv_timeout(std::time::Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("kflex serve did not report it was serving within 30 s");
            }
        };
        KflexServer {
            child,
            url,
            kubeconfig,
            data_dir: dir,
        }
    }
}

impl KflexServer {
    /// Stops the server (SIGKILL), keeping its data directory for inspection.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the server to stop as an operator would (SIGTERM), waits at most 10 s, and
    /// returns its exit status and its data directory.
    pub fn terminate(mut self) -> (std::process::ExitStatus, tempfile::TempDir) {
        // SAFETY: kill(2) on the pid of a child this value owns and has not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let status = loop {
            match self.child.try_wait().expect("wait for kflex") {
                Some(status) => break status,
                None if std::time::Instant::now() > deadline => {
                    panic!("kflex did not stop within 10 s of SIGTERM")
                }
                None => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        };
        let dir = tempfile::tempdir().expect("placeholder directory");
        let data_dir = std::mem::replace(&mut self.data_dir, dir);
        (status, data_dir)
    }
}

impl Drop for KflexServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the benchmarks (`tests/benches/`) share.
pub mod bench {
    use std::time::Duration;

    /// This process's resident memory, in MiB.
    pub fn rss_mib() -> f64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// The `q` quantile of `sorted` latencies, in milliseconds.
    pub fn percentile(sorted: &[Duration], q: f64) -> f64 {
        let i = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
        sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
}
