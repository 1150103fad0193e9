//! The platform engineer's workflow with the `kflex` CLI, from the built binary: `kflex up`
//! records the hosting context in the user's kubeconfig (two files in `$KUBECONFIG`, one
//! with entries kflex knows nothing about), `kflex create` makes a tenant and switches to
//! it, kube-rs and kubectl use it, `kflex ctx` goes back and forth (loading a missing
//! context from the server), `kflex list` shows it Ready, `kflex ctx rename/delete` edit
//! the kubeconfig, `kflex delete` removes the tenant and its context.

use crate::support::{check, kubectls};
use kflex_e2e::KflexServer;
use std::path::Path;
use std::process::{Command, Output};

fn kflex(kubeconfig: &str, args: &[&str]) -> Output {
    Command::new(kflex_e2e::kflex_bin())
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run kflex")
}

fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kflex failed: {stdout}\n{stderr}");
    stdout
}

fn current_context(kubeconfig: &str) -> String {
    ok(kflex(kubeconfig, &["ctx", "get"])).trim().to_owned()
}

const OTHER: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: elsewhere\n  cluster: {server: \"https://192.0.2.1:6443\", x-unknown: kept}\nusers:\n- name: someone\n  user: {token: secret}\ncontexts:\n- name: elsewhere\n  context: {cluster: elsewhere, user: someone}\n";

async fn namespaces_through(kubeconfig: &Path, context: &str) -> Vec<String> {
    let config = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let options = kube::config::KubeConfigOptions {
        context: Some(context.to_owned()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(config, &options)
        .await
        .unwrap();
    crate::support::namespace_names(&kube::Client::try_from(config).unwrap()).await
}

#[tokio::test]
async fn up_create_ctx_list_rename_delete() {
    let home = tempfile::tempdir().unwrap();
    let (first, second) = (home.path().join("config"), home.path().join("other"));
    std::fs::write(&second, OTHER).unwrap();
    let kubeconfig = std::env::join_paths([&first, &second]).unwrap();
    let _server = KflexServer::up(tempfile::tempdir().unwrap(), Path::new(&kubeconfig));
    let kubeconfig = kubeconfig.to_str().unwrap().to_owned();
    assert_eq!(
        current_context(&kubeconfig),
        "kflex",
        "kflex up makes its context current"
    );

    let out = ok(kflex(&kubeconfig, &["create", "t1"]));
    assert!(out.contains("Control plane t1 is ready"), "{out}");
    assert_eq!(current_context(&kubeconfig), "t1");
    // Each file is still a kubeconfig kube-rs reads; the merged view reaches the tenant.
    let merged = first.clone();
    assert!(namespaces_through(&merged, "t1")
        .await
        .contains(&"kube-system".to_owned()));
    for binary in kubectls() {
        let out = Command::new(&binary)
            .args(["get", "ns", "default", "-o", "name"])
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap();
        assert_eq!(check(&binary, &out).trim(), "namespace/default");
    }

    ok(kflex(&kubeconfig, &["ctx"]));
    assert_eq!(current_context(&kubeconfig), "kflex");
    let list = ok(kflex(&kubeconfig, &["list"]));
    let row = list
        .lines()
        .find(|l| l.starts_with("t1 "))
        .expect("t1 is listed");
    assert_eq!(
        row.split_whitespace().take(4).collect::<Vec<_>>(),
        ["t1", "True", "True", "k8s"]
    );

    // A context deleted from the kubeconfig is loaded again from the server.
    ok(kflex(&kubeconfig, &["ctx", "delete", "t1"]));
    assert!(!ok(kflex(&kubeconfig, &["ctx", "list"])).contains("t1"));
    ok(kflex(&kubeconfig, &["ctx", "t1"]));
    assert_eq!(current_context(&kubeconfig), "t1");
    let contexts = ok(kflex(&kubeconfig, &["ctx", "list"]));
    assert!(
        contexts.contains("*t1") && contexts.contains("yes"),
        "{contexts}"
    );

    ok(kflex(&kubeconfig, &["ctx", "rename", "t1", "tenant-one"]));
    assert_eq!(current_context(&kubeconfig), "tenant-one");
    assert!(namespaces_through(&first, "tenant-one")
        .await
        .contains(&"default".to_owned()));

    // An unmanaged context is deleted only with --force.
    let refused = kflex(&kubeconfig, &["ctx", "delete", "elsewhere"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));

    let out = ok(kflex(&kubeconfig, &["delete", "t1"]));
    assert!(!out.contains("error"), "{out}");
    assert_eq!(
        current_context(&kubeconfig),
        "kflex",
        "back to the hosting context"
    );
    let contexts = ok(kflex(&kubeconfig, &["ctx", "list"]));
    assert!(
        !contexts.contains("tenant-one"),
        "the renamed context went with t1: {contexts}"
    );
    assert!(ok(kflex(&kubeconfig, &["list"])).contains("No control planes found."));

    // The other file kept what kflex does not know and was not rewritten.
    assert_eq!(std::fs::read_to_string(&second).unwrap(), OTHER);
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("config");
    let _server = KflexServer::up(tempfile::tempdir().unwrap(), &path);
    let kubeconfig = path.to_str().unwrap().to_owned();

    let out = kflex(&kubeconfig, &["create", "vc", "--type", "vcluster"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Unsupported value: \"vcluster\""),
        "{stderr}"
    );

    let out = kflex(&kubeconfig, &["create", "x", "--set", "novalue"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be in the form 'key=value'"));

    let out = kflex(&kubeconfig, &["ctx", "missing"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("control plane missing not found"));

    // Without a recorded hosting context, and a current context that is not kflex's.
    let lost = home.path().join("lost");
    std::fs::write(
        &lost,
        OTHER.replace("contexts:", "current-context: elsewhere\ncontexts:"),
    )
    .unwrap();
    let out = kflex(lost.to_str().unwrap(), &["list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hosting cluster context is not known"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A broken kubeconfig is reported and left as it was.
    let broken = home.path().join("broken");
    std::fs::write(&broken, "clusters: [unclosed\n").unwrap();
    let out = kflex(broken.to_str().unwrap(), &["ctx"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        std::fs::read_to_string(&broken).unwrap(),
        "clusters: [unclosed\n"
    );
}

#[tokio::test]
async fn adopt_an_existing_cluster_as_an_external_control_plane() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("config");
    let _server = KflexServer::up(tempfile::tempdir().unwrap(), &path);
    let kubeconfig = path.to_str().unwrap().to_owned();
    // The cluster to adopt: a kflex tenant, reached through its own context.
    ok(kflex(&kubeconfig, &["create", "real"]));
    ok(kflex(&kubeconfig, &["ctx"]));
    let out = ok(kflex(
        &kubeconfig,
        &["adopt", "ext", "--adopted-context", "real", "-x", "3600"],
    ));
    assert!(out.contains("Control plane ext is ready"), "{out}");

    // The adopted context authenticates with the minted ServiceAccount token.
    let config = kube::config::Kubeconfig::read_from(&path).unwrap();
    let options = kube::config::KubeConfigOptions {
        context: Some("ext".into()),
        ..Default::default()
    };
    let ext = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(config, &options)
            .await
            .unwrap(),
    )
    .unwrap();
    let review: k8s_openapi::api::authentication::v1::SelfSubjectReview = ext
        .request(
            http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
                .header("content-type", "application/json")
                .body(
                    br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#
                        .to_vec(),
                )
                .unwrap(),
        )
        .await
        .unwrap();
    let user = review.status.unwrap().user_info.unwrap();
    assert_eq!(
        user.username.as_deref(),
        Some("system:serviceaccount:kube-system:kubeflex")
    );
    assert!(crate::support::namespace_names(&ext)
        .await
        .contains(&"kube-system".to_owned()));
    let list = ok(kflex(&kubeconfig, &["list"]));
    assert!(
        list.lines().any(|l| l
            .split_whitespace()
            .take(4)
            .eq(["ext", "True", "True", "external"])),
        "{list}"
    );

    // Deleting the external control plane removes what kflex made in the adopted cluster.
    ok(kflex(&kubeconfig, &["delete", "ext"]));
    let config = kube::config::Kubeconfig::read_from(&path).unwrap();
    let options = kube::config::KubeConfigOptions {
        context: Some("real".into()),
        ..Default::default()
    };
    let real = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(config, &options)
            .await
            .unwrap(),
    )
    .unwrap();
    let accounts: kube::Api<ServiceAccount> = kube::Api::namespaced(real, "kube-system");
    assert!(accounts.get_opt("kubeflex").await.unwrap().is_none());

    let out = kflex(&kubeconfig, &["adopt", "bad", "--adopted-context", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("context nope not found"));
    let out = kflex(
        &kubeconfig,
        &[
            "adopt",
            "bad",
            "--adopted-context",
            "real",
            "-u",
            "not a url",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid server endpoint"));
}
