//! The `kflex` binary's command-line surface.

use std::process::Command;

#[test]
fn version_prints_the_crate_version() {
    let out = Command::new(kflex_e2e::kflex_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.trim(),
        format!("kflex {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_describes_kflex() {
    let out = Command::new(kflex_e2e::kflex_bin())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("Usage: kflex"), "{stdout}");
    assert!(stdout.contains("control planes"), "{stdout}");
}

#[test]
fn unknown_arguments_fail_with_usage() {
    let out = Command::new(kflex_e2e::kflex_bin())
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("unexpected argument"), "{stderr}");
}

#[tokio::test]
async fn serve_stops_cleanly_on_sigterm_and_resumes_with_its_data() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, PostParams};
    let server = kflex_e2e::KflexServer::start();
    let client = |server: &kflex_e2e::KflexServer| {
        let kubeconfig = kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap();
        async move {
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .unwrap();
            kube::Client::try_from(config).unwrap()
        }
    };
    let cms: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("survivor".into());
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();

    let (status, data_dir) = server.terminate();
    assert!(status.success(), "kflex exits 0 on SIGTERM, got {status}");

    let server = kflex_e2e::KflexServer::start_in(data_dir);
    let cms: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    let again = cms.get("survivor").await.unwrap();
    assert_eq!(again.metadata.uid, created.metadata.uid);
    assert_eq!(
        again.metadata.resource_version,
        created.metadata.resource_version
    );
}
