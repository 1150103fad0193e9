//! The built-in controllers through the real binary and kube-rs: namespace deletion with
//! content, garbage collection (Background, Foreground, Orphan), the `default`
//! ServiceAccount and `kube-root-ca.crt` in every namespace, Service `kubernetes`, and
//! pending work resumed after a restart.

use crate::support::{api_error, check, client, kubectl, kubectls};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kflex_e2e::KflexServer;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
    PostParams, WatchEvent, WatchParams,
};
use kube::core::ObjectMeta;
use serde_json::{json, Value};
use std::future::Future;
use std::time::Duration;

/// Waits (at most 10 s) until `check` gives a value.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn gone<K>(api: &Api<K>, name: &str) -> bool
where
    K: kube::Resource + Clone + k8s_openapi::serde::de::DeserializeOwned + std::fmt::Debug,
{
    matches!(api.get(name).await, Err(kube::Error::Api(s)) if s.code == 404)
}

/// The identity of a process that stopped owing the garbage collector work.
const STOPPED: &str = "stopped_4b1d";

/// Writes the controllers' Lease as a process that stopped mid-way leaves it: held by it,
/// and naming it as owing garbage-collection work.
async fn owed_by_a_stopped_process(store: &kflex_storage_backends::sqlite::SqliteStore) {
    use kflex_controlplane::controllers::leader;
    use kflex_storage_backends::Store;
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": leader::NAME, "namespace": leader::NAMESPACE,
            "uid": "4b1d0000-0000-0000-0000-000000000002",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {leader::PENDING: json!({STOPPED: "2026-01-01T00:00:00Z"}).to_string()}},
        "spec": {"holderIdentity": STOPPED, "leaseDurationSeconds": 15,
            "renewTime": "2026-01-01T00:00:00.000000Z"},
    });
    let key = format!("/registry/leases/{}/{}", leader::NAMESPACE, leader::NAME);
    store
        .create(
            key.as_bytes(),
            serde_json::to_vec(&lease).unwrap().into(),
            None,
        )
        .await
        .unwrap();
}

async fn create_namespace(client: &kube::Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

fn configmap(name: &str, owners: Value, finalizers: &[&str]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "ownerReferences": owners, "finalizers": finalizers},
        "data": {"k": "v"},
    }))
    .unwrap()
}

fn owner_ref(owner: &ConfigMap, block: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "name": owner.metadata.name, "uid": owner.metadata.uid,
        "blockOwnerDeletion": block,
    })
}

async fn remove_finalizers(api: &Api<ConfigMap>, name: &str) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
}

fn widget_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_content_then_the_namespace() {
    let server = KflexServer::start();
    let client = client(&server).await;
    create_namespace(&client, "doomed").await;
    let ns = "doomed";
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    for i in 0..3 {
        create_configmap(&cms, &format!("cm-{i}"), json!([]), &[]).await;
    }
    create_configmap(&cms, "held", json!([]), &["example.com/hold"]).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "s"}, "stringData": {"password": "x"}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80}], "type": "NodePort"},
    }))
    .unwrap();
    let service = services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let spec = service.spec.unwrap();
    let ip = spec.cluster_ip.unwrap();
    let node_port = spec.ports.unwrap()[0].node_port.unwrap();

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &widget_crd())
        .await
        .unwrap();
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Gadget");
    let gadgets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "gadgets"),
    );
    let gadget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Gadget",
        "metadata": {"name": "g"}, "spec": {"size": 1},
    }))
    .unwrap();
    eventually("the custom resource is served", || async {
        gadgets
            .create(&PostParams::default(), &gadget)
            .await
            .ok()
            .map(|_| ())
    })
    .await;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete(ns, &DeleteParams::default())
        .await
        .unwrap();
    // Everything goes but the ConfigMap whose finalizer holds it, and the namespace says so.
    let conditions = eventually("the namespace reports what remains", || async {
        let namespace = namespaces.get(ns).await.ok()?;
        let status = namespace.status?;
        let conditions = status.conditions?;
        let remaining = conditions
            .iter()
            .find(|c| c.type_ == "NamespaceContentRemaining" && c.status == "True")?;
        (remaining.message.as_deref()
            == Some("Some resources are remaining: configmaps has 1 resource instances"))
        .then_some(conditions)
    })
    .await;
    let finalizers = conditions
        .iter()
        .find(|c| c.type_ == "NamespaceFinalizersRemaining")
        .unwrap();
    assert_eq!(finalizers.status, "True");
    assert_eq!(finalizers.reason.as_deref(), Some("SomeFinalizersRemain"));
    assert_eq!(
        finalizers.message.as_deref(),
        Some("Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances")
    );
    assert_eq!(
        namespaces
            .get(ns)
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref(),
        Some("Terminating")
    );
    assert!(gone(&secrets, "s").await && gone(&deployments, "web").await);
    assert!(gone(&services, "web").await && gone(&gadgets, "g").await);
    assert!(gone(&cms, "cm-0").await && !gone(&cms, "held").await);
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    assert!(gone(&accounts, "default").await);

    remove_finalizers(&cms, "held").await;
    eventually("the namespace is gone", || async {
        gone(&namespaces, ns).await.then_some(())
    })
    .await;

    // The deleted Service's address and node port are free again.
    let reuse: Service = serde_json::from_value(json!({
        "metadata": {"name": "reuse"},
        "spec": {"clusterIP": ip, "type": "NodePort", "ports": [{"port": 80, "nodePort": node_port}]},
    }))
    .unwrap();
    let default_services: Api<Service> = Api::namespaced(client.clone(), "default");
    default_services
        .create(&PostParams::default(), &reuse)
        .await
        .unwrap();

    // A namespace of that name can be made again, and is populated again.
    create_namespace(&client, ns).await;
    eventually("the new namespace's ServiceAccount", || async {
        accounts.get_opt("default").await.unwrap()
    })
    .await;
}

#[tokio::test]
async fn foreground_deletion_waits_for_blocking_dependents() {
    let server = KflexServer::start();
    let client = client(&server).await;
    create_namespace(&client, "fg").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "fg");
    let owner = create_configmap(&cms, "owner", json!([]), &[]).await;
    create_configmap(
        &cms,
        "blocking",
        json!([owner_ref(&owner, true)]),
        &["example.com/hold"],
    )
    .await;
    create_configmap(&cms, "free", json!([owner_ref(&owner, false)]), &[]).await;
    let version = cms
        .get("owner")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = cms
        .watch(&WatchParams::default(), &version)
        .await
        .unwrap()
        .boxed();

    cms.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    // The owner stays, marked, while its blocking dependent exists.
    eventually("the non-blocking dependent is gone", || async {
        gone(&cms, "free").await.then_some(())
    })
    .await;
    let blocking = eventually("the blocking dependent is being deleted", || async {
        let blocking = cms.get("blocking").await.unwrap();
        blocking
            .metadata
            .deletion_timestamp
            .is_some()
            .then_some(blocking)
    })
    .await;
    assert!(blocking
        .metadata
        .finalizers
        .unwrap()
        .contains(&"example.com/hold".into()));
    let held = cms.get("owner").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(
        held.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_owned()])
    );

    remove_finalizers(&cms, "blocking").await;
    let mut deleted = Vec::new();
    while deleted.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .expect("a watch event within 10 s")
            .unwrap()
            .expect("the watch goes on");
        if let WatchEvent::Deleted(cm) = event {
            deleted.push(cm.metadata.name.unwrap());
        }
    }
    assert_eq!(deleted, ["free", "blocking", "owner"]);
}

#[tokio::test]
async fn background_orphan_and_several_owners() {
    let server = KflexServer::start();
    let client = client(&server).await;
    create_namespace(&client, "gc").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "gc");
    let create = |name: &'static str, owners: Value| {
        let cms = cms.clone();
        async move { create_configmap(&cms, name, owners, &[]).await }
    };

    // Background: the owner goes at once, its dependents after it.
    let owner = create("bg-owner", json!([])).await;
    create("bg-dep", json!([owner_ref(&owner, false)])).await;
    let dep = cms.get("bg-dep").await.unwrap();
    create(
        "bg-grandchild",
        json!([{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "bg-dep", "uid": dep.metadata.uid,
        }]),
    )
    .await;
    cms.delete("bg-owner", &DeleteParams::background())
        .await
        .unwrap();
    assert!(gone(&cms, "bg-owner").await);
    eventually("background dependents are gone", || async {
        (gone(&cms, "bg-dep").await && gone(&cms, "bg-grandchild").await).then_some(())
    })
    .await;

    // Orphan: dependents stay, without their reference to the owner.
    let owner = create("or-owner", json!([])).await;
    create("or-dep", json!([owner_ref(&owner, true)])).await;
    cms.delete("or-owner", &DeleteParams::orphan())
        .await
        .unwrap();
    eventually("the orphaning owner is gone", || async {
        gone(&cms, "or-owner").await.then_some(())
    })
    .await;
    let orphan = cms.get("or-dep").await.unwrap();
    assert_eq!(orphan.metadata.owner_references, None);

    // Several owners: the dependent stays while one remains.
    let first = create("first", json!([])).await;
    let second = create("second", json!([])).await;
    create(
        "shared",
        json!([owner_ref(&first, false), owner_ref(&second, false)]),
    )
    .await;
    cms.delete("first", &DeleteParams::default()).await.unwrap();
    let shared = eventually("the reference to the gone owner is dropped", || async {
        let shared = cms.get("shared").await.unwrap();
        (shared.metadata.owner_references.as_ref()?.len() == 1).then_some(shared)
    })
    .await;
    assert_eq!(
        shared.metadata.owner_references.unwrap()[0].uid,
        second.metadata.uid.clone().unwrap()
    );
    cms.delete("second", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the last owner's dependent is gone", || async {
        gone(&cms, "shared").await.then_some(())
    })
    .await;

    // A cluster-scoped owner of a namespaced dependent, and a dangling reference.
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let role: ClusterRole =
        serde_json::from_value(json!({"metadata": {"name": "gc-owner"}})).unwrap();
    let role = roles.create(&PostParams::default(), &role).await.unwrap();
    create(
        "of-role",
        json!([{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "name": "gc-owner", "uid": role.metadata.uid}]),
    )
    .await;
    roles
        .delete("gc-owner", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the cluster-scoped owner's dependent is gone", || async {
        gone(&cms, "of-role").await.then_some(())
    })
    .await;

    // A dependent written with an owner that does not exist goes.
    create(
        "dangling",
        json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "nobody",
                "uid": "4b1d0000-0000-0000-0000-000000000000"}]),
    )
    .await;
    eventually("the dependent of a missing owner is gone", || async {
        gone(&cms, "dangling").await.then_some(())
    })
    .await;

    // Bad deletion options are refused with upstream's status.
    create("kept", json!([])).await;
    let request = http::Request::delete("/api/v1/namespaces/gc/configmaps/kept")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&json!({"propagationPolicy": "Sideways"})).unwrap())
        .unwrap();
    let (code, reason) = api_error(client.request::<Value>(request).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    let both = http::Request::delete("/api/v1/namespaces/gc/configmaps/kept")
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(&json!({"propagationPolicy": "Orphan", "orphanDependents": true}))
                .unwrap(),
        )
        .unwrap();
    let (code, reason) = api_error(client.request::<Value>(both).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(!gone(&cms, "kept").await);
}

#[tokio::test]
async fn deleting_a_crd_collects_what_its_objects_owned() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &widget_crd())
        .await
        .unwrap();
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Gadget");
    let gadgets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, "gadgets"),
    );
    let gadget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "owner"},
    }))
    .unwrap();
    let owner = eventually("the custom resource is served", || async {
        gadgets.create(&PostParams::default(), &gadget).await.ok()
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let owned = configmap(
        "owned-by-gadget",
        json!([{"apiVersion": "example.com/v1", "kind": "Gadget", "name": "owner",
                "uid": owner.metadata.uid}]),
        &[],
    );
    cms.create(&PostParams::default(), &owned).await.unwrap();
    crds.delete("gadgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the CRD's objects' dependents are gone", || async {
        gone(&cms, "owned-by-gadget").await.then_some(())
    })
    .await;
}

/// The CA in the admin kubeconfig of `server`, as PEM.
fn kubeconfig_ca(server: &KflexServer) -> String {
    let kubeconfig = kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap();
    let data = kubeconfig.clusters[0]
        .cluster
        .as_ref()
        .unwrap()
        .certificate_authority_data
        .clone()
        .unwrap();
    let decoded: k8s_openapi::ByteString = serde_json::from_value(json!(data)).unwrap();
    String::from_utf8(decoded.0).unwrap()
}

#[tokio::test]
async fn every_namespace_has_its_service_account_and_root_ca() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let ca = kubeconfig_ca(&server);
    create_namespace(&client, "fresh").await;
    for ns in [
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "fresh",
    ] {
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        eventually("the default ServiceAccount", || async {
            accounts.get_opt("default").await.unwrap()
        })
        .await;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let published = eventually("the root CA ConfigMap", || async {
            cms.get_opt("kube-root-ca.crt").await.unwrap()
        })
        .await;
        assert_eq!(published.data.unwrap()["ca.crt"], ca, "in {ns}");
    }

    // Deleted or changed, they come back as they were.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "fresh");
    let first = accounts.get("default").await.unwrap();
    accounts
        .delete("default", &DeleteParams::default())
        .await
        .unwrap();
    eventually("a new default ServiceAccount", || async {
        let account = accounts.get_opt("default").await.unwrap()?;
        (account.metadata.uid != first.metadata.uid).then_some(())
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "fresh");
    cms.patch(
        "kube-root-ca.crt",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"ca.crt": "tampered"}})),
    )
    .await
    .unwrap();
    eventually("the published CA restored", || async {
        let cm = cms.get("kube-root-ca.crt").await.unwrap();
        (cm.data.unwrap()["ca.crt"] == ca).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_kubernetes_service_holds_the_first_service_address() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let service = eventually("Service kubernetes", || async {
        services.get_opt("kubernetes").await.unwrap()
    })
    .await;
    let spec = service.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.1"));
    let port = &spec.ports.unwrap()[0];
    let listening: i32 = server.url.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!((port.port, port.name.as_deref()), (443, Some("https")));
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(listening))
    );
    // Nobody else can take its address.
    let taker: Service = serde_json::from_value(json!({
        "metadata": {"name": "taker"},
        "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 80}]},
    }))
    .unwrap();
    let (code, _) = api_error(
        services
            .create(&PostParams::default(), &taker)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422);
    for binary in kubectls() {
        let out = check(
            &binary,
            &kubectl(&binary, &server, &["get", "svc", "kubernetes"]),
        );
        let row = out.lines().nth(1).unwrap_or_default().to_owned();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells[..5],
            ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"],
            "{}: {out}",
            binary.display()
        );
    }
}

#[tokio::test]
async fn a_restart_resumes_pending_deletions() {
    use kflex_storage_backends::sqlite::{SqliteOptions, SqliteStore};
    use kflex_storage_backends::Store;
    let server = KflexServer::start();
    let client = client(&server).await;
    create_namespace(&client, "stale").await;
    create_namespace(&client, "kept").await;
    let stale: Api<ConfigMap> = Api::namespaced(client.clone(), "stale");
    create_configmap(&stale, "a", json!([]), &[]).await;
    let kept: Api<ConfigMap> = Api::namespaced(client.clone(), "kept");
    create_configmap(&kept, "waiting", json!([]), &[]).await;
    let (_, dir) = server.terminate();

    // While the server is down, the store is left as a process stopped mid-way leaves it:
    // a namespace marked for deletion, an owner marked for foreground deletion, a
    // dependent whose owner is gone, and the controllers' lease naming that process as
    // owing work.
    {
        let store = SqliteStore::open(dir.path().join("host.db"), SqliteOptions::default())
            .await
            .unwrap();
        let mark = |key: &'static str, change: fn(&mut Value)| {
            let store = &store;
            async move {
                let (kv, _) = store.get(key.as_bytes(), None).await.unwrap();
                let kv = kv.unwrap();
                let mut object: Value = serde_json::from_slice(&kv.value).unwrap();
                object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
                change(&mut object);
                let value = serde_json::to_vec(&object).unwrap();
                store
                    .update(key.as_bytes(), value.into(), kv.mod_revision, None)
                    .await
                    .unwrap();
            }
        };
        mark("/registry/namespaces/stale", |ns| {
            ns["status"]["phase"] = json!("Terminating")
        })
        .await;
        mark("/registry/configmaps/kept/waiting", |cm| {
            cm["metadata"]["finalizers"] = json!(["foregroundDeletion"])
        })
        .await;
        let dependent = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "orphaned", "namespace": "kept",
                "uid": "4b1d0000-0000-0000-0000-000000000001",
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "nobody",
                    "uid": "4b1d0000-0000-0000-0000-000000000000"}]},
        });
        let value = serde_json::to_vec(&dependent).unwrap();
        store
            .create(b"/registry/configmaps/kept/orphaned", value.into(), None)
            .await
            .unwrap();
        owed_by_a_stopped_process(&store).await;
        store.close().await;
    }

    let server = KflexServer::start_in(dir);
    let client = crate::support::client(&server).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    eventually("the Terminating namespace is finished", || async {
        gone(&namespaces, "stale").await.then_some(())
    })
    .await;
    let kept: Api<ConfigMap> = Api::namespaced(client.clone(), "kept");
    eventually("the pending deletions are done", || async {
        (gone(&kept, "orphaned").await && gone(&kept, "waiting").await).then_some(())
    })
    .await;
    assert!(!gone(&namespaces, "kept").await);
    // The scan covered what the stopped process owed: its entry is gone from the lease.
    use kflex_controlplane::controllers::leader;
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), leader::NAMESPACE);
    eventually("the stopped process's entry leaves the lease", || async {
        let lease = leases.get(leader::NAME).await.unwrap();
        let annotations = lease.metadata.annotations.unwrap_or_default();
        (!annotations
            .get(leader::PENDING)
            .is_some_and(|pending| pending.contains(STOPPED)))
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_tenant_runs_its_own_controllers() {
    let server = KflexServer::start();
    let host = client(&server).await;
    crate::manager::submit(&host, "ctl", json!({"type": "k8s"}))
        .await
        .unwrap();
    crate::manager::ready(&host, "ctl").await;
    let tenant = crate::manager::tenant(&host, "ctl").await;
    // The tenant's kubeconfig trusts the server's CA: the tenant publishes that one.
    let ca = kubeconfig_ca(&server);
    let cms: Api<ConfigMap> = Api::namespaced(tenant.clone(), "kube-system");
    let published = eventually("the tenant's root CA ConfigMap", || async {
        cms.get_opt("kube-root-ca.crt").await.unwrap()
    })
    .await;
    assert_eq!(published.data.unwrap()["ca.crt"], ca);
    let services: Api<Service> = Api::namespaced(tenant.clone(), "default");
    let service = eventually("the tenant's Service kubernetes", || async {
        services.get_opt("kubernetes").await.unwrap()
    })
    .await;
    assert_eq!(
        service.spec.unwrap().cluster_ip.as_deref(),
        Some("10.96.0.1")
    );
    create_namespace(&tenant, "scratch").await;
    let namespaces: Api<Namespace> = Api::all(tenant.clone());
    namespaces
        .delete("scratch", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the tenant's namespace is gone", || async {
        gone(&namespaces, "scratch").await.then_some(())
    })
    .await;
}

/// Sets the owner references of ConfigMap `name`.
/// Creates ConfigMap `name` with these owner references and finalizers.
async fn create_configmap(
    api: &Api<ConfigMap>,
    name: &str,
    owners: Value,
    finalizers: &[&str],
) -> ConfigMap {
    api.create(&PostParams::default(), &configmap(name, owners, finalizers))
        .await
        .unwrap()
}

async fn set_owners(api: &Api<ConfigMap>, name: &str, owners: Value) -> ConfigMap {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"ownerReferences": owners}})),
    )
    .await
    .unwrap()
}

/// The ConfigMaps `events` reports deleted, in order, until `count` were.
async fn deletions(
    events: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin),
    count: usize,
) -> Vec<String> {
    let mut deleted = Vec::new();
    while deleted.len() < count {
        let event = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .unwrap_or_else(|_| panic!("a watch event within 10 s; deleted so far: {deleted:?}"))
            .unwrap()
            .expect("the watch goes on");
        if let WatchEvent::Deleted(cm) = event {
            deleted.push(cm.metadata.name.unwrap());
        }
    }
    deleted
}

/// A watch of `api` from now on.
async fn watch_from_now(
    api: &Api<ConfigMap>,
) -> impl futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin {
    let version = api
        .list_metadata(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    api.watch(&WatchParams::default(), &version)
        .await
        .unwrap()
        .boxed()
}

#[tokio::test]
async fn foreground_deletion_is_not_blocked_by_ownership_cycles() {
    let server = KflexServer::start();
    let client = client(&server).await;
    create_namespace(&client, "cycles").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "cycles");
    let create = |name: &'static str, finalizers: &'static [&'static str]| {
        let cms = cms.clone();
        async move { create_configmap(&cms, name, json!([]), finalizers).await }
    };

    // Upstream's conformance case: c1 is owned by c3, c2 by c1, c3 by c2, every reference
    // blocking; deleting c1 in the foreground deletes all three.
    let c1 = create("c1", &[]).await;
    let c2 = create("c2", &[]).await;
    let c3 = create("c3", &[]).await;
    set_owners(&cms, "c1", json!([owner_ref(&c3, true)])).await;
    set_owners(&cms, "c2", json!([owner_ref(&c1, true)])).await;
    set_owners(&cms, "c3", json!([owner_ref(&c2, true)])).await;
    let mut events = watch_from_now(&cms).await;
    cms.delete("c1", &DeleteParams::foreground()).await.unwrap();
    // c3, whose owner waits and whose dependent c1 waits too, stops blocking its owner
    // and is deleted in the foreground: c2 can go, then c1, then c3.
    assert_eq!(deletions(&mut events, 3).await, ["c2", "c1", "c3"]);

    // Two objects that own each other, both deleted in the foreground at once.
    let a = create("a", &[]).await;
    let b = create("b", &[]).await;
    set_owners(&cms, "a", json!([owner_ref(&b, true)])).await;
    set_owners(&cms, "b", json!([owner_ref(&a, true)])).await;
    let mut events = watch_from_now(&cms).await;
    let foreground = DeleteParams::foreground();
    let (first, second) =
        futures::join!(cms.delete("a", &foreground), cms.delete("b", &foreground));
    first.unwrap();
    second.unwrap();
    let mut deleted = deletions(&mut events, 2).await;
    deleted.sort();
    assert_eq!(deleted, ["a", "b"]);

    // A blocked chain: the owner's dependent is itself deleting its dependents in the
    // foreground, and its own dependent is held by a finalizer. Everything waits for it.
    let top = create("top", &[]).await;
    let middle = create_configmap(&cms, "middle", json!([owner_ref(&top, true)]), &[]).await;
    create_configmap(
        &cms,
        "bottom",
        json!([owner_ref(&middle, true)]),
        &["example.com/hold"],
    )
    .await;
    let mut events = watch_from_now(&cms).await;
    cms.delete("middle", &DeleteParams::foreground())
        .await
        .unwrap();
    cms.delete("top", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually("the held dependent is being deleted", || async {
        let bottom = cms.get("bottom").await.unwrap();
        bottom.metadata.deletion_timestamp.map(|_| ())
    })
    .await;
    for name in ["top", "middle"] {
        let waiting = cms.get(name).await.unwrap();
        assert_eq!(
            waiting.metadata.finalizers,
            Some(vec!["foregroundDeletion".to_owned()]),
            "{name}"
        );
    }
    remove_finalizers(&cms, "bottom").await;
    assert_eq!(deletions(&mut events, 3).await, ["bottom", "middle", "top"]);

    // A dependent that stops blocking its owner lets the owner go first.
    let owner = create("unblocked-owner", &[]).await;
    create_configmap(
        &cms,
        "unblocking",
        json!([owner_ref(&owner, true)]),
        &["example.com/hold"],
    )
    .await;
    cms.delete("unblocked-owner", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually("the blocking dependent is being deleted", || async {
        let held = cms.get("unblocking").await.unwrap();
        held.metadata.deletion_timestamp.map(|_| ())
    })
    .await;
    assert!(!gone(&cms, "unblocked-owner").await);
    set_owners(&cms, "unblocking", json!([owner_ref(&owner, false)])).await;
    eventually("the owner no longer blocked is gone", || async {
        gone(&cms, "unblocked-owner").await.then_some(())
    })
    .await;
    assert!(!gone(&cms, "unblocking").await);

    // So does one that drops its reference to the owner.
    let owner = create("dropped-owner", &[]).await;
    create_configmap(
        &cms,
        "dropping",
        json!([owner_ref(&owner, true)]),
        &["example.com/hold"],
    )
    .await;
    cms.delete("dropped-owner", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually("the blocking dependent is being deleted", || async {
        let held = cms.get("dropping").await.unwrap();
        held.metadata.deletion_timestamp.map(|_| ())
    })
    .await;
    assert!(!gone(&cms, "dropped-owner").await);
    set_owners(&cms, "dropping", Value::Null).await;
    eventually("the owner no longer referred to is gone", || async {
        gone(&cms, "dropped-owner").await.then_some(())
    })
    .await;
}

#[tokio::test]
async fn owner_references_resolve_by_uid_namespace_and_scope() {
    let server = KflexServer::start();
    let client = client(&server).await;
    create_namespace(&client, "here").await;
    create_namespace(&client, "there").await;
    let here: Api<ConfigMap> = Api::namespaced(client.clone(), "here");
    let there: Api<ConfigMap> = Api::namespaced(client.clone(), "there");
    let plain = |name: &str| configmap(name, json!([]), &[]);

    // An owner recreated under the same name is another object: a reference to the old
    // uid is dangling, one to the new uid is not.
    let old = here
        .create(&PostParams::default(), &plain("owner"))
        .await
        .unwrap();
    here.delete("owner", &DeleteParams::default())
        .await
        .unwrap();
    let new = here
        .create(&PostParams::default(), &plain("owner"))
        .await
        .unwrap();
    assert_ne!(old.metadata.uid, new.metadata.uid);
    create_configmap(&here, "of-new", json!([owner_ref(&new, false)]), &[]).await;
    create_configmap(&here, "of-old", json!([owner_ref(&old, false)]), &[]).await;
    eventually("the dependent of the old owner is gone", || async {
        gone(&here, "of-old").await.then_some(())
    })
    .await;

    // Owner references are resolved in the dependent's namespace: an owner of that name
    // and uid in another namespace does not count.
    create_configmap(&there, "across", json!([owner_ref(&new, false)]), &[]).await;
    eventually(
        "the dependent of an owner in another namespace is gone",
        || async { gone(&there, "across").await.then_some(()) },
    )
    .await;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "there");
    let event = eventually("the OwnerRefInvalidNamespace event", || async {
        let list = events.list(&Default::default()).await.unwrap();
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("OwnerRefInvalidNamespace"))
    })
    .await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.involved_object.name.as_deref(), Some("across"));
    assert_eq!(event.involved_object.kind.as_deref(), Some("ConfigMap"));
    assert_eq!(
        event.message.as_deref(),
        Some(
            format!(
                "ownerRef [v1/ConfigMap, namespace: there, name: owner, uid: {}] does not exist in namespace \"there\"",
                new.metadata.uid.as_deref().unwrap()
            )
            .as_str()
        )
    );

    // A cluster-scoped dependent cannot have a namespaced owner: the reference cannot be
    // resolved and the dependent is never collected, whatever its other references say.
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let dangling = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "name": "nobody", "uid": "4b1d0000-0000-0000-0000-000000000000"});
    for (name, owners) in [
        ("of-configmap", json!([owner_ref(&new, false)])),
        (
            "of-configmap-and-nobody",
            json!([owner_ref(&new, false), dangling]),
        ),
        ("of-nobody", json!([dangling])),
    ] {
        let role: ClusterRole =
            serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": owners}}))
                .unwrap();
        roles.create(&PostParams::default(), &role).await.unwrap();
    }
    // The last one is collected after the GC looked at the first two.
    eventually("the cluster-scoped dependent of nobody is gone", || async {
        gone(&roles, "of-nobody").await.then_some(())
    })
    .await;
    assert!(!gone(&roles, "of-configmap").await);
    assert!(!gone(&roles, "of-configmap-and-nobody").await);
    let defaults: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(client.clone(), "default");
    let event = eventually("the cluster-scoped dependent's event", || async {
        let list = defaults.list(&Default::default()).await.unwrap();
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("OwnerRefInvalidNamespace")
                && e.involved_object.name.as_deref() == Some("of-configmap")
        })
    })
    .await;
    assert_eq!(event.involved_object.kind.as_deref(), Some("ClusterRole"));
}

#[tokio::test]
async fn orphaning_one_of_two_owners_keeps_the_dependent() {
    let server = KflexServer::start();
    let client = client(&server).await;
    create_namespace(&client, "orphans").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "orphans");
    let first = create_configmap(&cms, "first", json!([]), &[]).await;
    let second = create_configmap(&cms, "second", json!([]), &[]).await;
    create_configmap(
        &cms,
        "shared",
        json!([owner_ref(&first, true), owner_ref(&second, false)]),
        &[],
    )
    .await;
    let mut events = watch_from_now(&cms).await;
    cms.delete("first", &DeleteParams::orphan()).await.unwrap();
    // The dependent loses its reference to the orphaning owner first, then the owner
    // loses its `orphan` finalizer and goes.
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .expect("a watch event within 10 s")
            .unwrap()
            .expect("the watch goes on");
        match event {
            WatchEvent::Modified(cm) if cm.metadata.name.as_deref() == Some("shared") => {
                let uids: Vec<String> = cm
                    .metadata
                    .owner_references
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| r.uid)
                    .collect();
                assert_eq!(uids, [second.metadata.uid.clone().unwrap()]);
                seen.push("shared orphaned");
            }
            WatchEvent::Modified(cm) => {
                let finalizers = cm.metadata.finalizers.unwrap_or_default();
                assert_eq!(cm.metadata.name.as_deref(), Some("first"));
                seen.push(if finalizers.is_empty() {
                    "first finalized"
                } else {
                    "first marked"
                });
            }
            WatchEvent::Deleted(cm) => {
                assert_eq!(cm.metadata.name.as_deref(), Some("first"));
                seen.push("first deleted");
                break;
            }
            _ => {}
        }
    }
    assert_eq!(seen, ["first marked", "shared orphaned", "first deleted"]);
    let shared = cms.get("shared").await.unwrap();
    assert!(shared.metadata.deletion_timestamp.is_none());
    // The remaining owner still collects it.
    cms.delete("second", &DeleteParams::background())
        .await
        .unwrap();
    eventually("the dependent of the last owner is gone", || async {
        gone(&cms, "shared").await.then_some(())
    })
    .await;
}

#[tokio::test]
async fn objects_that_own_each_other_all_deleted_in_the_foreground_go() {
    use kflex_storage_backends::sqlite::{SqliteOptions, SqliteStore};
    use kflex_storage_backends::Store;
    let server = KflexServer::start();
    let client = client(&server).await;
    create_namespace(&client, "stuck").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "stuck");
    let mut made = Vec::new();
    for name in ["x", "y", "z"] {
        made.push(create_configmap(&cms, name, json!([]), &[]).await);
    }
    // x is owned by z, y by x, z by y: every reference blocks.
    set_owners(&cms, "x", json!([owner_ref(&made[2], true)])).await;
    set_owners(&cms, "y", json!([owner_ref(&made[0], true)])).await;
    set_owners(&cms, "z", json!([owner_ref(&made[1], true)])).await;
    let (_, dir) = server.terminate();

    // All three marked for foreground deletion before any garbage collector saw one of
    // them: the state upstream's collector can never leave.
    {
        let store = SqliteStore::open(dir.path().join("host.db"), SqliteOptions::default())
            .await
            .unwrap();
        for name in ["x", "y", "z"] {
            let key = format!("/registry/configmaps/stuck/{name}");
            let (kv, _) = store.get(key.as_bytes(), None).await.unwrap();
            let kv = kv.unwrap();
            let mut object: Value = serde_json::from_slice(&kv.value).unwrap();
            object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            object["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
            let value = serde_json::to_vec(&object).unwrap();
            store
                .update(key.as_bytes(), value.into(), kv.mod_revision, None)
                .await
                .unwrap();
        }
        owed_by_a_stopped_process(&store).await;
        store.close().await;
    }

    let server = KflexServer::start_in(dir);
    let client = crate::support::client(&server).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "stuck");
    eventually("the cycle is gone", || async {
        let left = cms.list(&Default::default()).await.unwrap().items;
        left.iter()
            .all(|cm| !["x", "y", "z"].contains(&cm.metadata.name.as_deref().unwrap_or("")))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_second_deletion_changes_the_propagation_policy() {
    let server = KflexServer::start();
    let client = client(&server).await;
    create_namespace(&client, "switch").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "switch");
    let owner = create_configmap(&cms, "owner", json!([]), &[]).await;
    create_configmap(
        &cms,
        "held",
        json!([owner_ref(&owner, true)]),
        &["example.com/hold"],
    )
    .await;
    cms.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually("the blocking dependent is being deleted", || async {
        let held = cms.get("held").await.unwrap();
        held.metadata.deletion_timestamp.map(|_| ())
    })
    .await;
    // Deleted again with Orphan, the owner trades `foregroundDeletion` for `orphan`: its
    // dependent loses its reference, and the owner goes without waiting for it.
    let marked = cms.delete("owner", &DeleteParams::orphan()).await.unwrap();
    let finalizers = marked
        .left()
        .expect("the owner, still there")
        .metadata
        .finalizers
        .unwrap_or_default();
    assert_eq!(finalizers, ["orphan"]);
    eventually("the owner is gone", || async {
        gone(&cms, "owner").await.then_some(())
    })
    .await;
    let held = cms.get("held").await.unwrap();
    assert_eq!(held.metadata.owner_references, None);
    remove_finalizers(&cms, "held").await;
}
