//! The `exec` action: runs a local program with the control plane's kubeconfig in
//! `KUBECONFIG`, only when the server allows it (`kflex serve --allow-exec-hooks`), killed
//! (with everything it started) when it outlives its timeout. What it printed goes into an
//! Event on the ControlPlane; a failure or timeout fails the hook, so the manager retries it.

use crate::event::{self, EventType, Involved};
use crate::HookError;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The timeout of an action that names none.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 60;
/// The Secret (in the control plane's namespace) and key holding its kubeconfig: KubeFlex's
/// names, which every control-plane type writes.
const KUBECONFIG_SECRET: &str = "admin-kubeconfig";
const KUBECONFIG_KEY: &str = "kubeconfig";
/// How much of each output stream is kept; the rest is read and dropped so the program
/// never blocks on a full pipe.
const OUTPUT_KEPT: u64 = 16 * 1024;

/// One `exec` action, its strings already rendered with the hook's variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exec {
    /// The program and its arguments.
    pub command: Vec<String>,
    pub timeout: Duration,
}

/// Runs `action` for control plane `involved` (namespace `namespace` on the hosting API)
/// and records the outcome in an Event. `allowed` is the server's flag.
pub async fn run(
    host: &kube::Client,
    involved: Involved<'_>,
    namespace: &str,
    hook: &str,
    action: &Exec,
    allowed: bool,
) -> Result<(), HookError> {
    if !allowed {
        return Err(HookError::Exec(
            "exec actions are disabled on this server (start it with --allow-exec-hooks)".into(),
        ));
    }
    let secrets: Api<Secret> = Api::namespaced(host.clone(), namespace);
    let kubeconfig = secrets
        .get_opt(KUBECONFIG_SECRET)
        .await?
        .and_then(|s| s.data?.remove(KUBECONFIG_KEY))
        .ok_or_else(|| {
            HookError::Exec(format!(
                "no kubeconfig in Secret {namespace}/{KUBECONFIG_SECRET} yet"
            ))
        })?;
    let mut file = tempfile::NamedTempFile::new()
        .and_then(|mut f| f.write_all(&kubeconfig.0).map(|()| f))
        .map_err(|e| HookError::Exec(format!("writing the kubeconfig: {e}")))?;
    file.flush()
        .map_err(|e| HookError::Exec(format!("writing the kubeconfig: {e}")))?;
    let result = execute(action, file.path(), involved.name).await;
    let program = action.command.first().map_or("", String::as_str);
    let (kind, reason, message) = match &result {
        Ok(output) => (
            EventType::Normal,
            "PostCreateHookExecuted",
            format!("hook {hook}: {program} succeeded: {output}"),
        ),
        Err(error) => (
            EventType::Warning,
            "PostCreateHookExecFailed",
            format!("hook {hook}: {error}"),
        ),
    };
    if let Err(error) = event::record(host, involved, kind, reason, &message).await {
        tracing::warn!(%error, hook, "exec hook event not recorded");
    }
    result.map(|_| ())
}

/// Runs the program with `KUBECONFIG` set; returns its output, or why it failed.
async fn execute(
    action: &Exec,
    kubeconfig: &std::path::Path,
    cp: &str,
) -> Result<String, HookError> {
    let (program, args) = action
        .command
        .split_first()
        .ok_or_else(|| HookError::Exec("the command is empty".into()))?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("KFLEX_CONTROL_PLANE", cp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills what it started too.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| HookError::Exec(format!("starting {program}: {e}")))?;
    let group = child.id();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let finished = async {
        let (out, err, status) = tokio::join!(kept(stdout), kept(stderr), child.wait());
        (out, err, status)
    };
    let (out, err, status) = match tokio::time::timeout(action.timeout, finished).await {
        Ok(done) => done,
        Err(_) => {
            if let Some(group) = group.and_then(|g| i32::try_from(g).ok()) {
                // SAFETY: killpg only sends a signal; the group is the child's own.
                unsafe { libc::killpg(group, libc::SIGKILL) };
            }
            let _ = child.kill().await;
            return Err(HookError::Exec(format!(
                "{program} did not finish within {}s and was killed",
                action.timeout.as_secs()
            )));
        }
    };
    let status = status.map_err(|e| HookError::Exec(format!("waiting for {program}: {e}")))?;
    let output = format!("{out}{err}").trim().to_owned();
    if status.success() {
        Ok(output)
    } else {
        Err(HookError::Exec(format!(
            "{program} failed ({status}): {output}"
        )))
    }
}

/// The first [`OUTPUT_KEPT`] bytes of a stream, as text; the rest is drained.
async fn kept(stream: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut stream) = stream else {
        return String::new();
    };
    let mut kept = Vec::new();
    let _ = (&mut stream).take(OUTPUT_KEPT).read_to_end(&mut kept).await;
    let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
    String::from_utf8_lossy(&kept).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: u64) -> Exec {
        Exec {
            command: vec!["sh".into(), "-c".into(), script.into()],
            timeout: Duration::from_secs(timeout),
        }
    }

    #[tokio::test]
    async fn output_and_kubeconfig_reach_the_caller() {
        let out = execute(
            &sh("echo $KUBECONFIG $KFLEX_CONTROL_PLANE; echo oops >&2", 5),
            std::path::Path::new("/k"),
            "cp1",
        )
        .await
        .unwrap();
        assert_eq!(out, "/k cp1\noops");
        let error = execute(
            &sh("echo bad; exit 3", 5),
            std::path::Path::new("/k"),
            "cp1",
        )
        .await
        .unwrap_err();
        assert!(error.to_string().contains("exit status: 3"), "{error}");
        assert!(error.to_string().contains("bad"), "{error}");
        let error = execute(
            &Exec {
                command: vec!["/nonexistent/program".into()],
                timeout: Duration::from_secs(1),
            },
            std::path::Path::new("/k"),
            "cp1",
        )
        .await
        .unwrap_err();
        assert!(error.to_string().contains("starting /nonexistent/program"));
    }

    #[tokio::test]
    async fn a_program_that_hangs_is_killed_with_its_children() {
        let started = std::time::Instant::now();
        // The background sleep keeps the output pipe open: only killing the group ends it.
        let error = execute(
            &sh("sleep 30 & sleep 30", 1),
            std::path::Path::new("/k"),
            "c",
        )
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            error.to_string(),
            "exec: sh did not finish within 1s and was killed"
        );
    }
}
