//! Several kflex processes serving one tenant store on the shared PostgreSQL: the
//! controllers' Lease lets one run the tenant's controllers at a time, hands the lease over
//! when the holder is done, and lets another take over the work of one that stopped; a CRD
//! written through one process is served (and stops being served) by the others.

use crate::manager::{ready, submit, tenant};
use crate::support::client;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kflex_controlplane::controllers::leader;
use kflex_e2e::KflexServer;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use std::time::Duration;

/// Two `kflex serve` processes on the test PostgreSQL, each with a ControlPlane `name`
/// on the shared backend (so both serve the same store), and a client of each.
async fn replicas(name: &str) -> ([KflexServer; 2], [kube::Client; 2]) {
    let postgres = kflex_e2e::postgres_url();
    let start = || {
        KflexServer::start_with(
            tempfile::tempdir().unwrap(),
            &["--postgres-url", &postgres, "--spare-stores", "0"],
        )
    };
    let servers = [start(), start()];
    let mut tenants = Vec::new();
    for server in &servers {
        let host = client(server).await;
        submit(&host, name, json!({"type": "k8s", "backend": "shared"}))
            .await
            .unwrap();
        ready(&host, name).await;
        tenants.push(tenant(&host, name).await);
    }
    let b = tenants.pop().expect("two tenants");
    let a = tenants.pop().expect("two tenants");
    (servers, [a, b])
}

/// A control plane name of this test alone: the test database is shared by every test, and
/// each test runs in a process of its own.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id())
}

/// Creates namespace `name` holding `count` ConfigMaps.
async fn namespace_with(client: &kube::Client, name: &str, count: usize) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap();
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), name);
    futures::stream::iter(0..count)
        .map(|i| {
            let configmaps = configmaps.clone();
            async move {
                let cm = serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}")}}))
                    .unwrap();
                configmaps.create(&PostParams::default(), &cm).await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
}

async fn gone(client: &kube::Client, namespace: &str) -> bool {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    matches!(namespaces.get(namespace).await, Err(kube::Error::Api(s)) if s.code == 404)
}

/// Waits (at most `limit`) until `namespace` is gone.
async fn until_gone(client: &kube::Client, namespace: &str, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while !gone(client, namespace).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "namespace {namespace} still exists after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn leases(client: &kube::Client) -> Api<Lease> {
    Api::namespaced(client.clone(), leader::NAMESPACE)
}

fn holder(lease: &Lease) -> String {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default()
}

/// The lease once its holder released it (at most 10 s after its work is visibly done).
async fn released(client: &kube::Client) -> Lease {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let lease = leases(client).get(leader::NAME).await.unwrap();
        if holder(&lease).is_empty() {
            return lease;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease is still held: {lease:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pending(lease: &Lease) -> Option<String> {
    lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(leader::PENDING).cloned())
}

#[tokio::test]
async fn replicas_sharing_a_store_run_its_controllers_one_at_a_time() {
    let name = unique("ha");
    let (_servers, [a, b]) = replicas(&name).await;
    namespace_with(&a, "work-a", 300).await;
    namespace_with(&b, "work-b", 300).await;

    // The lease's history from here on is replayed by a watch at the end.
    let list = leases(&a).list(&ListParams::default()).await.unwrap();
    let version = list.metadata.resource_version.unwrap();
    let (on_a, on_b) = (
        Api::<Namespace>::all(a.clone()),
        Api::<Namespace>::all(b.clone()),
    );
    let params = DeleteParams::default();
    let (deleted_a, deleted_b) = tokio::join!(
        on_a.delete("work-a", &params),
        on_b.delete("work-b", &params),
    );
    deleted_a.unwrap();
    deleted_b.unwrap();
    // Each namespace is finished by the replica that marked it, seen from the other one.
    until_gone(&b, "work-a", Duration::from_secs(30)).await;
    until_gone(&a, "work-b", Duration::from_secs(30)).await;
    let lease = released(&a).await;
    assert_eq!(pending(&lease), None, "nobody owes work: {lease:?}");
    let transitions = lease.spec.unwrap().lease_transitions.unwrap_or(0);

    // Every version of the lease meanwhile, replayed from the store's history.
    let seen = leases(&b)
        .watch(&WatchParams::default(), &version)
        .await
        .unwrap()
        .take_until(tokio::time::sleep(Duration::from_secs(2)))
        .filter_map(|event| async move {
            match event {
                Ok(WatchEvent::Added(lease)) | Ok(WatchEvent::Modified(lease)) => Some(lease),
                _ => None,
            }
        })
        .collect::<Vec<_>>()
        .await;
    let holders: Vec<String> = seen.iter().map(holder).collect();
    let leaders: std::collections::BTreeSet<&String> =
        holders.iter().filter(|h| !h.is_empty()).collect();
    assert_eq!(leaders.len(), 2, "both replicas led in turn: {holders:?}");
    // One holder at a time: the lease goes from one replica to the other only through a
    // release, never while held.
    for pair in holders.windows(2) {
        assert!(
            pair[0] == pair[1] || pair[0].is_empty() || pair[1].is_empty(),
            "the lease went from {} to {} without a release: {holders:?}",
            pair[0],
            pair[1]
        );
    }
    assert!(transitions >= 1, "{transitions} transitions: {holders:?}");
}

#[tokio::test]
async fn a_replica_takes_over_the_work_of_one_that_stopped() {
    let name = unique("takeover");
    let ([mut first, _second], [a, b]) = replicas(&name).await;
    namespace_with(&a, "big", 1000).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(b.clone(), "default");
    configmaps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "trigger"}})).unwrap(),
        )
        .await
        .unwrap();

    // The first replica starts deleting the namespace's content, and is killed meanwhile.
    Api::<Namespace>::all(a.clone())
        .delete("big", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let lease = leases(&b).get_opt(leader::NAME).await.unwrap();
        if lease.as_ref().is_some_and(|l| !holder(l).is_empty()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nobody took the lease"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.stop();
    let stopped = leases(&b).get(leader::NAME).await.unwrap();
    let dead = holder(&stopped);
    assert!(!dead.is_empty());
    assert!(
        !gone(&b, "big").await,
        "the namespace must still be Terminating when its replica stops"
    );

    // The other replica's next write that needs the controllers waits for the lease to
    // run out (15 s), takes it over, and finds the unfinished namespace.
    configmaps
        .delete("trigger", &DeleteParams::default())
        .await
        .unwrap();
    until_gone(&b, "big", Duration::from_secs(45)).await;
    let lease = released(&b).await;
    assert!(
        !pending(&lease).is_some_and(|p| p.contains(&dead)),
        "the stopped replica's entry was covered by the scan: {lease:?}"
    );
    assert!(
        lease.spec.unwrap().lease_transitions.unwrap_or(0)
            > stopped.spec.unwrap().lease_transitions.unwrap_or(0)
    );
}

#[tokio::test]
async fn a_crd_written_through_one_replica_is_served_by_the_other() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let name = unique("crds");
    let (_servers, [a, b]) = replicas(&name).await;
    // B has served discovery before the CRD exists.
    assert!(b.list_api_group_resources("example.com/v1").await.is_err());
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer", "maximum": 10}}}}}}}]},
    });
    let crds: Api<CustomResourceDefinition> = Api::all(a.clone());
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(crd).unwrap(),
    )
    .await
    .unwrap();

    // The other replica lists it in discovery and serves its objects, with its schema.
    let resources = b.list_api_group_resources("example.com/v1").await.unwrap();
    assert!(resources.resources.iter().any(|r| r.name == "gadgets"));
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Gadget"),
        "gadgets",
    );
    let gadgets: Api<DynamicObject> = Api::namespaced_with(b.clone(), "default", &resource);
    let gadget = |size: i64| {
        serde_json::from_value::<DynamicObject>(json!({
            "apiVersion": "example.com/v1", "kind": "Gadget",
            "metadata": {"name": format!("g{size}")}, "spec": {"size": size},
        }))
        .unwrap()
    };
    gadgets
        .create(&PostParams::default(), &gadget(3))
        .await
        .unwrap();
    match gadgets.create(&PostParams::default(), &gadget(30)).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 422, "{status:?}"),
        other => panic!("the CRD's schema applies on the other replica too: {other:?}"),
    }

    // Deleted through the first replica (with its objects), it is gone from the other.
    crds.delete("gadgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while crds.get_opt("gadgets.example.com").await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the CRD stays");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    match gadgets.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404, "{status:?}"),
        other => panic!("a removed CRD is no longer served: {other:?}"),
    }
    assert!(b.list_api_group_resources("example.com/v1").await.is_err());
}
