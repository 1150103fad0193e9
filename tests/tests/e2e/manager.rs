//! The ControlPlane manager, from outside: ControlPlane objects submitted to the real
//! `kflex serve` become tenants that kube-rs and kubectl use with the kubeconfig from
//! `<cp>-system/admin-kubeconfig`; deletion leaves nothing behind; a restart resumes every
//! tenant; every backend works; bad input gets a clear answer.

use crate::support::{api_error, check, client, kubectl, kubectls, namespace_names};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kflex_e2e::KflexServer;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub(crate) fn control_planes(client: &kube::Client) -> Api<DynamicObject> {
    Api::all_with(
        client.clone(),
        &kflex_controlplane::manager::api::control_planes(),
    )
}

pub(crate) async fn submit(
    client: &kube::Client,
    name: &str,
    spec: Value,
) -> Result<DynamicObject, kube::Error> {
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1",
        "kind": "ControlPlane",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap();
    control_planes(client)
        .create(&PostParams::default(), &object)
        .await
}

pub(crate) fn condition<'a>(cp: &'a DynamicObject, kind: &str) -> Option<&'a Value> {
    cp.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// Waits until control plane `name` is Ready, or its `Synced` condition is False; returns
/// it and the time taken.
pub(crate) async fn settled(client: &kube::Client, name: &str) -> (DynamicObject, Duration) {
    let started = Instant::now();
    loop {
        let cp = control_planes(client)
            .get(name)
            .await
            .expect("get the control plane");
        let ready = condition(&cp, "Ready").is_some_and(|c| c["status"] == "True");
        let failed = condition(&cp, "Synced").is_some_and(|c| c["status"] == "False");
        if ready || failed {
            return (cp, started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "control plane {name} did not settle: {:?}",
            cp.data["status"]
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) async fn ready(client: &kube::Client, name: &str) -> Duration {
    let (cp, took) = settled(client, name).await;
    assert_eq!(
        condition(&cp, "Ready").map(|c| c["reason"].clone()),
        Some(json!("Available")),
        "{:?}",
        cp.data["status"]
    );
    let secret_ref = &cp.data["status"]["secretRef"];
    assert_eq!(secret_ref["namespace"], format!("{name}-system"));
    assert_eq!(secret_ref["name"], "admin-kubeconfig");
    assert_eq!(secret_ref["key"], "kubeconfig");
    assert_eq!(secret_ref["inClusterKey"], "kubeconfig-incluster");
    assert_eq!(cp.data["status"]["observedGeneration"], json!(1));
    took
}

/// The kubeconfig (key `key`) the manager wrote for control plane `name`.
pub(crate) async fn kubeconfig_of(host: &kube::Client, name: &str, key: &str) -> String {
    let secrets: Api<Secret> = Api::namespaced(host.clone(), &format!("{name}-system"));
    let secret = secrets
        .get("admin-kubeconfig")
        .await
        .expect("the kubeconfig Secret");
    let data = secret.data.expect("Secret data");
    String::from_utf8(data[key].0.clone()).expect("UTF-8 kubeconfig")
}

pub(crate) async fn client_from(kubeconfig: &str, server: Option<String>) -> kube::Client {
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig).expect("a kubeconfig");
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("a client configuration");
    if let Some(server) = server {
        config.cluster_url = server.parse().unwrap();
    }
    config.default_retry = false;
    kube::Client::try_from(config).expect("a client")
}

/// A client for control plane `name`, from its kubeconfig Secret.
pub(crate) async fn tenant(host: &kube::Client, name: &str) -> kube::Client {
    client_from(&kubeconfig_of(host, name, "kubeconfig").await, None).await
}

/// Creates ConfigMap `name` in `default` through `client`.
async fn create_configmap(client: &kube::Client, name: &str) -> Api<ConfigMap> {
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.into());
    configmaps
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    configmaps
}

/// Waits until ControlPlane `name` is deleted and checks its namespace went with it.
async fn gone(host: &kube::Client, name: &str) {
    deleted(host, name).await;
    let namespaces: Api<Namespace> = Api::all(host.clone());
    assert!(namespaces
        .get_opt(&format!("{name}-system"))
        .await
        .unwrap()
        .is_none());
}

/// Waits until ControlPlane `name` is deleted (its finalizer removed).
pub(crate) async fn deleted(host: &kube::Client, name: &str) {
    let started = Instant::now();
    while control_planes(host).get_opt(name).await.unwrap().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name} was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_control_plane_becomes_a_tenant_and_goes_away_without_a_trace() {
    let server = KflexServer::start();
    let host = client(&server).await;
    submit(&host, "t1", json!({"type": "k8s", "backend": "shared"}))
        .await
        .unwrap();
    submit(&host, "t2", json!({"type": "k8s"})).await.unwrap();
    ready(&host, "t1").await;
    ready(&host, "t2").await;
    let stored = control_planes(&host).get("t2").await.unwrap();
    assert_eq!(
        stored.data["spec"]["tokenExpirationSeconds"],
        json!(31536000),
        "defaults"
    );
    assert_eq!(
        stored.metadata.finalizers,
        Some(vec!["kflex.kubestellar.org/finalizer".to_owned()])
    );

    let t1 = tenant(&host, "t1").await;
    let names = namespace_names(&t1).await;
    assert!(names.contains(&"kube-system".to_owned()), "{names:?}");
    assert!(
        !names.contains(&"t1-system".to_owned()),
        "a tenant does not see the host"
    );
    create_configmap(&t1, "hello").await;
    let t2 = tenant(&host, "t2").await;
    let (code, _) = api_error(
        Api::<ConfigMap>::namespaced(t2.clone(), "default")
            .get("hello")
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 404, "t2 does not see t1's objects");

    // A tenant's credentials mean nothing to another tenant or to the hosting API.
    let t1_config = kubeconfig_of(&host, "t1", "kubeconfig").await;
    for other in [format!("{}/clusters/t2", server.url), server.url.clone()] {
        let foreign = client_from(&t1_config, Some(other.clone())).await;
        let error = Api::<Namespace>::all(foreign)
            .list(&Default::default())
            .await
            .unwrap_err();
        assert_eq!(api_error(error).0, 401, "t1's certificate at {other}");
    }
    assert!(kubeconfig_of(&host, "t1", "kubeconfig-incluster")
        .await
        .contains("/clusters/t1"));

    for binary in kubectls() {
        let out = kubectl(&binary, &server, &["get", "cp"]);
        let table = check(&binary, &out);
        assert!(
            table.contains("SYNCED") && table.contains("READY"),
            "{table}"
        );
        let row = table
            .lines()
            .find(|l| l.starts_with("t1 "))
            .expect("a row for t1");
        assert_eq!(
            row.split_whitespace().take(4).collect::<Vec<_>>(),
            ["t1", "True", "True", "k8s"]
        );
    }

    control_planes(&host)
        .delete("t1", &DeleteParams::default())
        .await
        .unwrap();
    gone(&host, "t1").await;
    let tenants = server.data_dir.path().join("tenants");
    let left: Vec<_> = std::fs::read_dir(&tenants)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("t1."))
        .collect();
    assert!(left.is_empty(), "t1's store files remain: {left:?}");
    assert_eq!(
        api_error(
            Api::<Namespace>::all(t1)
                .list(&Default::default())
                .await
                .unwrap_err()
        )
        .0,
        404,
        "t1 is no longer served"
    );
    Api::<ConfigMap>::namespaced(t2, "default")
        .list(&Default::default())
        .await
        .expect("t2 is untouched");
}

#[tokio::test]
async fn tenants_and_their_data_come_back_after_a_restart() {
    let server = KflexServer::start();
    let host = client(&server).await;
    submit(&host, "keep", json!({"type": "k8s"})).await.unwrap();
    submit(&host, "admin", json!({"type": "host"}))
        .await
        .unwrap();
    ready(&host, "keep").await;
    ready(&host, "admin").await;
    create_configmap(&tenant(&host, "keep").await, "survivor").await;
    let kubeconfig = kubeconfig_of(&host, "keep", "kubeconfig").await;

    let (status, dir) = server.terminate();
    assert!(status.success(), "kflex stops cleanly on SIGTERM: {status}");
    let server = KflexServer::start_in(dir);
    let host = client(&server).await;
    ready(&host, "keep").await;
    // The same credentials (the tenant's CA survived), a new port.
    let url = format!("{}/clusters/keep", server.url);
    let configmaps: Api<ConfigMap> =
        Api::namespaced(client_from(&kubeconfig, Some(url)).await, "default");
    configmaps
        .get("survivor")
        .await
        .expect("the tenant's data survived the restart");

    // A host control plane's kubeconfig reaches the hosting API as a cluster-admin user.
    let admin = client_from(
        &kubeconfig_of(&host, "admin", "kubeconfig").await,
        Some(server.url.clone()),
    )
    .await;
    control_planes(&admin)
        .list(&Default::default())
        .await
        .unwrap();
    control_planes(&host)
        .delete("admin", &DeleteParams::default())
        .await
        .unwrap();
    gone(&host, "admin").await;
    let error = control_planes(&admin)
        .list(&Default::default())
        .await
        .unwrap_err();
    assert_eq!(
        api_error(error).0,
        403,
        "the host control plane's binding is removed"
    );
}

#[tokio::test]
async fn bad_control_planes_get_clear_answers_and_leave_nothing() {
    let server = KflexServer::start();
    let host = client(&server).await;
    let error = submit(&host, "vc", json!({"type": "vcluster"}))
        .await
        .unwrap_err();
    match error {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422);
            assert!(
                status
                    .message
                    .contains("spec.type: Unsupported value: \"vcluster\""),
                "{}",
                status.message
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let error = submit(&host, "notype", json!({})).await.unwrap_err();
    assert_eq!(api_error(error).0, 422);
    let error = submit(&host, "db", json!({"type": "k8s", "backend": "mysql"}))
        .await
        .unwrap_err();
    assert_eq!(api_error(error).0, 422);

    submit(
        &host,
        "nosecret",
        json!({"type": "k8s", "backend": "external"}),
    )
    .await
    .unwrap();
    let (cp, _) = settled(&host, "nosecret").await;
    let synced = condition(&cp, "Synced").unwrap();
    assert_eq!(synced["reason"], "ReconcileError");
    assert!(
        synced["message"]
            .as_str()
            .unwrap()
            .contains("spec.backendSecretRef is required for backend external"),
        "{synced}"
    );
    assert_eq!(condition(&cp, "Ready").unwrap()["status"], "False");

    submit(
        &host,
        "baddsn",
        json!({"type": "k8s", "backend": "external",
               "backendSecretRef": {"namespace": "default", "name": "missing"}}),
    )
    .await
    .unwrap();
    let (cp, _) = settled(&host, "baddsn").await;
    let message = condition(&cp, "Synced").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("missing"), "{message}");

    // A name that cannot name a namespace, and a namespace that is someone else's.
    submit(&host, "a.b", json!({"type": "k8s"})).await.unwrap();
    let (cp, _) = settled(&host, "a.b").await;
    let message = condition(&cp, "Synced").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("a.b-system"), "{message}");
    let namespaces: Api<Namespace> = Api::all(host.clone());
    let theirs: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "taken-system"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(host.clone(), "taken-system");
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "admin-kubeconfig"}, "stringData": {"keep": "me"}}),
    )
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    submit(&host, "taken", json!({"type": "k8s"}))
        .await
        .unwrap();
    let (cp, _) = settled(&host, "taken").await;
    let message = condition(&cp, "Synced").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("does not belong to control plane taken"),
        "{message}"
    );
    control_planes(&host)
        .delete("taken", &DeleteParams::default())
        .await
        .unwrap();
    let started = Instant::now();
    while control_planes(&host)
        .get_opt("taken")
        .await
        .unwrap()
        .is_some()
    {
        assert!(started.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        namespaces.get_opt("taken-system").await.unwrap().is_some(),
        "not kflex's to delete"
    );
    secrets
        .get("admin-kubeconfig")
        .await
        .expect("someone else's Secret is kept");

    for name in ["nosecret", "baddsn", "a.b"] {
        control_planes(&host)
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
        gone(&host, name).await;
    }
}

#[tokio::test]
async fn every_backend_serves_a_tenant_and_deletion_removes_only_what_kflex_made() {
    let postgres = kflex_e2e::postgres_url();
    let dir = tempfile::tempdir().unwrap();
    let server = KflexServer::start_with(
        dir,
        &[
            "--postgres-url",
            &postgres,
            "--etcd-bin",
            &kflex_e2e::etcd_bin().to_string_lossy(),
        ],
    );
    let host = client(&server).await;

    // External: a schema of the user's in the test database, named by a Secret.
    let schema = format!("kflex_e2e_external_{}", std::process::id());
    let secrets: Api<Secret> = Api::namespaced(host.clone(), "default");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "ext-db"},
        "stringData": {"endpoint": postgres, "schema": schema},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    submit(&host, "pg", json!({"type": "k8s", "backend": "shared"}))
        .await
        .unwrap();
    submit(
        &host,
        "etcd",
        json!({"type": "k8s", "backend": "dedicated"}),
    )
    .await
    .unwrap();
    submit(
        &host,
        "ext",
        json!({"type": "k8s", "backend": "external",
               "backendSecretRef": {"namespace": "default", "name": "ext-db"}}),
    )
    .await
    .unwrap();
    for name in ["pg", "etcd", "ext"] {
        ready(&host, name).await;
        let configmaps = create_configmap(&tenant(&host, name).await, &format!("on-{name}")).await;
        configmaps.get(&format!("on-{name}")).await.unwrap();
    }
    let etcd_dir = server.data_dir.path().join("etcd").join("etcd");
    assert!(
        etcd_dir.exists(),
        "the dedicated etcd keeps its data under the data directory"
    );
    let pool = sqlx::PgPool::connect(&postgres).await.unwrap();
    let shared_stores = || async {
        let (count,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM kflex_catalog.stores WHERE name = 'pg'")
                .fetch_one(&pool)
                .await
                .unwrap();
        count
    };
    assert_eq!(
        shared_stores().await,
        1,
        "the shared backend made a store for pg"
    );

    for name in ["pg", "etcd", "ext"] {
        control_planes(&host)
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
        gone(&host, name).await;
    }
    assert!(!etcd_dir.exists(), "the dedicated etcd's data is removed");
    assert_eq!(shared_stores().await, 0, "pg's store is dropped");
    let (external,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1")
            .bind(&schema)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(external, 1, "the user's external schema is never dropped");
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}
