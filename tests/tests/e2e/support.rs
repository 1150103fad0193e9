//! What the end-to-end tests share: a kube-rs client for a running server, and the kubectl
//! binaries on this machine.

use kflex_e2e::KflexServer;
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Sends a raw request with a JSON `body`: status, `Warning` headers and the body as JSON.
pub async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: serde_json::Value,
) -> (u16, Vec<String>, serde_json::Value) {
    use http_body_util::BodyExt;
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(serde_json::to_vec(&body).unwrap().into())
        .unwrap();
    let response = client.send(request).await.unwrap();
    let status = response.status().as_u16();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, warnings, serde_json::from_slice(&body).unwrap())
}

/// A kube-rs client for `server`'s admin kubeconfig, with kube-rs's retries off.
pub async fn client(server: &KflexServer) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(&server.kubeconfig).expect("read the kubeconfig");
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("a client configuration");
    // The tests check the server's first answer; kube-rs would retry 429/503/504.
    config.default_retry = false;
    kube::Client::try_from(config).expect("a client")
}

/// The names of the namespaces `client` lists.
pub async fn namespace_names(client: &kube::Client) -> Vec<String> {
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .list(&Default::default())
        .await
        .expect("list namespaces")
        .items
        .into_iter()
        .filter_map(|ns| ns.metadata.name)
        .collect()
}

/// Creates `namespace`'s `default` ServiceAccount unless it exists (a controller may have
/// made it): ServiceAccount admission refuses Pods until it does, as upstream.
pub async fn default_service_account(client: &kube::Client, namespace: &str) {
    let account: k8s_openapi::api::core::v1::ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "default"}}))
            .expect("a ServiceAccount");
    let created = kube::Api::namespaced(client.clone(), namespace)
        .create(&Default::default(), &account)
        .await;
    if let Err(error) = created {
        assert_eq!(
            api_error(error).0,
            409,
            "creating the default ServiceAccount"
        );
    }
}

/// An API error's code and reason; panics on any other error.
pub fn api_error(error: kube::Error) -> (u16, String) {
    match error {
        kube::Error::Api(status) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Every kubectl version to test against: `kubectl.1.NN` binaries (on PATH, or in
/// `KFLEX_KUBECTL_DIR`, or where the Google Cloud SDK keeps them), else plain `kubectl`.
/// Empty (and says so) when there is none.
pub fn kubectls() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("KFLEX_KUBECTL_DIR")
        .into_iter()
        .map(Into::into)
        .collect();
    dirs.push("/usr/lib/google-cloud-sdk/bin".into());
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let mut found: Vec<PathBuf> = Vec::new();
    for minor in 27..=33 {
        let name = format!("kubectl.1.{minor}");
        if let Some(path) = dirs.iter().map(|d| d.join(&name)).find(|p| p.is_file()) {
            found.push(path);
        }
    }
    if found.is_empty() {
        if let Some(path) = dirs.iter().map(|d| d.join("kubectl")).find(|p| p.is_file()) {
            found.push(path);
        }
    }
    if found.is_empty() {
        eprintln!("no kubectl found: skipping the kubectl checks");
    }
    found
}

/// Runs `binary` against `server` with its own discovery cache.
pub fn kubectl(binary: &Path, server: &KflexServer, args: &[&str]) -> Output {
    let cache = server
        .data_dir
        .path()
        .join(format!("cache-{}", binary.display()).replace('/', "_"));
    Command::new(binary)
        .arg("--kubeconfig")
        .arg(&server.kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", binary.display()))
}

/// Panics unless the command failed with `expected` in its stderr.
pub fn check_fails(binary: &Path, out: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(expected),
        "{}: expected a failure saying {expected:?}, got: {stderr}",
        binary.display()
    );
}

/// The command's stdout; panics with its stderr when it failed.
pub fn check(binary: &Path, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}: {}",
        binary.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A router served in-process on a free loopback port, with a server certificate from a CA
/// of its own; stops when [`InProcess::stop`] is awaited. For tests that need tenants before
/// the manager creates them from ControlPlane objects.
pub struct InProcess {
    /// The port it listens on.
    pub port: u16,
    /// The CA of its server certificate.
    pub server_ca: kflex_controlplane::pki::CertificateAuthority,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<()>,
}

impl InProcess {
    /// Serves `router`.
    pub async fn serve(router: std::sync::Arc<kflex_controlplane::Router>) -> Self {
        use kflex_controlplane::{pki::CertificateAuthority, server};
        let server_ca = CertificateAuthority::generate("server-ca").unwrap();
        let server_cert = server_ca
            .server_certificate(&["localhost"], &["127.0.0.1".parse().unwrap()])
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server::serve(
            listener,
            server::tls_config(&server_cert).unwrap(),
            router,
            async {
                let _ = stopped.await;
            },
        ));
        InProcess {
            port,
            server_ca,
            stop,
            serving,
        }
    }

    /// Stops serving and waits until the server is done.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.serving.await;
    }
}

/// A short name for a kubectl binary's version (`-1-33` for `kubectl.1.33`), to keep the
/// objects of each version apart.
pub fn version_suffix(binary: &Path) -> String {
    binary
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .replace("kubectl", "")
        .replace('.', "-")
}
