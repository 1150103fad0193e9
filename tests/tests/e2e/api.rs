//! The API server through the real binary: kube-rs's typed and watcher APIs, errors as
//! `metav1.Status`, and kubectl where it is installed.

use crate::support::{api_error, check, client, kubectl, kubectls};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kflex_e2e::KflexServer;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use std::collections::BTreeMap;
use std::time::Duration;

fn configmap(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.into());
    cm.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    cm.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    );
    cm
}

#[tokio::test]
async fn kube_rs_creates_reads_updates_and_deletes() {
    let server = KflexServer::start();
    let client = client(&server).await;

    let names = crate::support::namespace_names(&client).await;
    for expected in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = cms
        .create(
            &PostParams::default(),
            &configmap("demo", &[("app", "web")], &[("a", "1")]),
        )
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(
        meta.uid.is_some() && meta.creation_timestamp.is_some() && meta.resource_version.is_some()
    );
    assert_eq!(meta.namespace.as_deref(), Some("default"));

    let (code, reason) = api_error(
        cms.create(&PostParams::default(), &configmap("demo", &[], &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    let mut stale = created.clone();
    let patched = cms
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"b": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.data.as_ref().unwrap().get("b").map(String::as_str),
        Some("2")
    );
    stale.data = Some(BTreeMap::from([("a".to_string(), "lost".to_string())]));
    let (code, reason) = api_error(
        cms.replace("demo", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));

    cms.create(
        &PostParams::default(),
        &configmap("other", &[("app", "db")], &[]),
    )
    .await
    .unwrap();
    let web = cms
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(web.items.len(), 1);
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=other"))
        .await
        .unwrap();
    assert_eq!(by_name.items[0].metadata.name.as_deref(), Some("other"));

    cms.delete("demo", &DeleteParams::default()).await.unwrap();
    let (code, reason) = api_error(cms.get("demo").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (404, "NotFound"));

    let missing: Api<ConfigMap> = Api::namespaced(client.clone(), "no-such-namespace");
    let (code, _) = api_error(
        missing
            .create(&PostParams::default(), &configmap("x", &[], &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 404);
}

#[tokio::test]
async fn kube_rs_paginates_one_snapshot() {
    let server = KflexServer::start();
    let cms: Api<ConfigMap> = Api::namespaced(client(&server).await, "kube-public");
    // The root-CA publisher's ConfigMap is the namespace's 25th.
    for _ in 0..200 {
        if cms.get_opt("kube-root-ca.crt").await.unwrap().is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for i in 0..24 {
        cms.create(
            &PostParams::default(),
            &configmap(&format!("cm-{i:02}"), &[], &[]),
        )
        .await
        .unwrap();
    }
    let first = cms.list(&ListParams::default().limit(10)).await.unwrap();
    assert_eq!(first.items.len(), 10);
    assert_eq!(first.metadata.remaining_item_count, Some(15));
    let token = first.metadata.continue_.clone().expect("a continue token");
    cms.create(&PostParams::default(), &configmap("cm-new", &[], &[]))
        .await
        .unwrap();
    let second = cms
        .list(&ListParams::default().limit(100).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(
        second.items.len(),
        15,
        "the snapshot of the first page, without cm-new"
    );
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
}

#[tokio::test]
async fn kube_rs_watcher_follows_changes() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    // The root-CA publisher's ConfigMap may appear at any time: not this test's.
    let mine = watcher::Config::default().fields("metadata.name!=kube-root-ca.crt");
    let mut events = watcher(cms.clone(), mine).boxed();
    // The initial listing completes before anything is written.
    loop {
        if let watcher::Event::InitDone =
            tokio::time::timeout(Duration::from_secs(10), events.try_next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
        {
            break;
        }
    }
    cms.create(
        &PostParams::default(),
        &configmap("watched", &[], &[("v", "1")]),
    )
    .await
    .unwrap();
    cms.patch(
        "watched",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    cms.delete("watched", &DeleteParams::default())
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match event {
            watcher::Event::Apply(cm) => {
                seen.push(format!("apply {}", cm.data.unwrap_or_default()["v"]))
            }
            watcher::Event::Delete(cm) => {
                seen.push(format!("delete {}", cm.metadata.name.unwrap()))
            }
            _ => {}
        }
    }
    assert_eq!(seen, ["apply 1", "apply 2", "delete watched"]);
}

#[tokio::test]
async fn tenants_credentials_and_errors_are_enforced() {
    let server = KflexServer::start();
    // No client certificate: 401 with a Status body.
    let mut insecure = kube::Config::new(server.url.parse().unwrap());
    insecure.accept_invalid_certs = true;
    let anonymous = kube::Client::try_from(insecure).unwrap();
    let (code, reason) = api_error(
        Api::<Namespace>::all(anonymous)
            .list(&ListParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (401, "Unauthorized"));
    // An unknown tenant is not found.
    let client = client(&server).await;
    let request = http::Request::get("/clusters/nobody/api/v1/namespaces")
        .body(Vec::new())
        .unwrap();
    let (code, _) = api_error(
        client
            .request::<serde_json::Value>(request)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 404);
}

#[test]
fn kubectl_gets_applies_and_deletes() {
    let server = KflexServer::start();
    for binary in kubectls() {
        let kubectl = |args: &[&str]| kubectl(&binary, &server, args);
        let stdout = check(&binary, &kubectl(&["get", "namespaces"]));
        assert!(
            stdout.contains("kube-system"),
            "{}: {stdout}",
            binary.display()
        );

        let manifest = server.data_dir.path().join("cm.json");
        std::fs::write(
            &manifest,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"applied","namespace":"default"},"data":{"k":"v"}}"#,
        )
        .unwrap();
        check(
            &binary,
            &kubectl(&["apply", "-f", manifest.to_str().unwrap()]),
        );
        let value = check(
            &binary,
            &kubectl(&["get", "configmap", "applied", "-o", "jsonpath={.data.k}"]),
        );
        assert_eq!(value, "v", "{}", binary.display());
        check(
            &binary,
            &kubectl(&["label", "configmap", "applied", "tier=web"]),
        );
        let labelled = check(
            &binary,
            &kubectl(&["get", "configmaps", "-l", "tier=web", "-o", "name"]),
        );
        assert_eq!(labelled.trim(), "configmap/applied", "{}", binary.display());
        check(&binary, &kubectl(&["delete", "configmap", "applied"]));
        let out = kubectl(&["get", "configmap", "applied"]);
        crate::support::check_fails(&binary, &out, "not found");
    }
}

#[tokio::test]
async fn kube_rs_discovers_resources_and_drives_them_dynamically() {
    use kube::api::DynamicObject;
    use kube::core::GroupVersionKind;
    use kube::discovery::{verbs, Discovery};
    let server = KflexServer::start();
    let client = client(&server).await;
    let deployment = GroupVersionKind::gvk("apps", "v1", "Deployment");
    for discovery in [
        Discovery::new(client.clone())
            .run_aggregated()
            .await
            .unwrap(),
        Discovery::new(client.clone()).run().await.unwrap(),
    ] {
        let (resource, caps) = discovery
            .resolve_gvk(&deployment)
            .expect("deployments are discovered");
        assert_eq!(resource.plural, "deployments");
        assert!(caps.supports_operation(verbs::WATCH));
        assert!(caps
            .subresources
            .iter()
            .any(|(sub, _)| sub.plural == "deployments/scale" || sub.plural == "scale"));
    }
    let discovery = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    let (resource, _) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"))
        .unwrap();
    let dynamic: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let object: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dynamic"}, "data": {"x": "y"}
    }))
    .unwrap();
    dynamic
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    let fetched = dynamic.get("dynamic").await.unwrap();
    assert_eq!(fetched.data["data"]["x"], "y");

    // Aggregated discovery carries an ETag and answers 304 to a client whose copy is current.
    let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
    let first = client
        .send(
            http::Request::get("/apis")
                .header("accept", accept)
                .body(Vec::new().into())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(first.headers()["content-type"], accept);
    let etag = first.headers()["etag"].clone();
    let again = client
        .send(
            http::Request::get("/apis")
                .header("accept", accept)
                .header("if-none-match", etag)
                .body(Vec::new().into())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
}

#[test]
fn kubectl_discovers_resources() {
    let server = KflexServer::start();
    for binary in kubectls() {
        let stdout = check(&binary, &kubectl(&binary, &server, &["api-resources"]));
        for expected in [
            "deployments",
            "deploy",
            "configmaps",
            "customresourcedefinitions",
        ] {
            assert!(
                stdout.contains(expected),
                "{}: {expected} in {stdout}",
                binary.display()
            );
        }
        let version = check(
            &binary,
            &kubectl(&binary, &server, &["version", "-o", "json"]),
        );
        assert!(
            version.contains("\"minor\": \"33\""),
            "{}: {version}",
            binary.display()
        );
    }
}

#[tokio::test]
async fn kube_rs_reads_metadata_only_and_gets_406_for_what_it_cannot_have() {
    use kube::core::PartialObjectMeta;
    use kube::runtime::WatchStreamExt;
    let server = KflexServer::start();
    let client = client(&server).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(
        &PostParams::default(),
        &configmap("meta", &[("m", "1")], &[("big", "payload")]),
    )
    .await
    .unwrap();
    let list = cms.list_metadata(&ListParams::default()).await.unwrap();
    let item = list
        .items
        .iter()
        .find(|i| i.metadata.name.as_deref() == Some("meta"))
        .unwrap();
    assert_eq!(item.metadata.labels.as_ref().unwrap()["m"], "1");
    assert_eq!(
        cms.get_metadata("meta")
            .await
            .unwrap()
            .metadata
            .name
            .as_deref(),
        Some("meta")
    );

    let metadata: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(client.clone(), "default");
    let mine = watcher::Config::default().fields("metadata.name!=kube-root-ca.crt");
    let mut watched = watcher(metadata, mine).applied_objects().boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), watched.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("meta"));
    cms.create(&PostParams::default(), &configmap("later", &[], &[]))
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), watched.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.metadata.name.as_deref(), Some("later"));

    let request = http::Request::get("/api/v1/namespaces/default/configmaps/meta")
        .header("accept", "application/vnd.kubernetes.protobuf")
        .body(Vec::new())
        .unwrap();
    let (code, reason) = api_error(
        client
            .request::<serde_json::Value>(request)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (406, "NotAcceptable"));
}

#[test]
fn kubectl_prints_upstreams_columns() {
    let server = KflexServer::start();
    let manifest = server.data_dir.path().join("columns.json");
    std::fs::write(
        &manifest,
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"columns","namespace":"default"},"data":{"a":"1","b":"2"}}"#,
    )
    .unwrap();
    let more = server.data_dir.path().join("more-columns.json");
    std::fs::write(
        &more,
        r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"pi","namespace":"default"},
             "spec":{"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"pi","image":"perl:5.34"}]}}}},
            {"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"viewers","namespace":"default"},
             "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"view"},
             "subjects":[{"kind":"User","name":"ann","apiGroup":"rbac.authorization.k8s.io"}]}]}"#,
    )
    .unwrap();
    for binary in kubectls() {
        let namespaces = check(&binary, &kubectl(&binary, &server, &["get", "namespaces"]));
        let header: Vec<&str> = namespaces
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        assert_eq!(
            header,
            ["NAME", "STATUS", "AGE"],
            "{}: {namespaces}",
            binary.display()
        );
        assert!(
            namespaces
                .lines()
                .any(|l| l.starts_with("default") && l.contains("Active")),
            "{namespaces}"
        );

        check(
            &binary,
            &kubectl(
                &binary,
                &server,
                &["apply", "-f", manifest.to_str().unwrap()],
            ),
        );
        let configmaps = check(
            &binary,
            &kubectl(&binary, &server, &["get", "configmap", "columns"]),
        );
        let mut lines = configmaps
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>());
        assert_eq!(
            lines.next().unwrap_or_default(),
            ["NAME", "DATA", "AGE"],
            "{}: {configmaps}",
            binary.display()
        );
        assert_eq!(
            lines.next().unwrap_or_default()[..2],
            ["columns", "2"],
            "{}: {configmaps}",
            binary.display()
        );
        check(
            &binary,
            &kubectl(&binary, &server, &["apply", "-f", more.to_str().unwrap()]),
        );
        for (args, header, row) in [
            (
                &["get", "jobs", "-o", "wide"][..],
                &[
                    "NAME",
                    "STATUS",
                    "COMPLETIONS",
                    "DURATION",
                    "AGE",
                    "CONTAINERS",
                    "IMAGES",
                    "SELECTOR",
                ][..],
                &["pi", "Running", "0/1"][..],
            ),
            (
                &["get", "rolebindings"][..],
                &["NAME", "ROLE", "AGE"][..],
                &["viewers", "ClusterRole/view"][..],
            ),
        ] {
            let out = check(&binary, &kubectl(&binary, &server, args));
            let mut lines = out
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>());
            assert_eq!(
                lines.next().unwrap_or_default(),
                header,
                "{}: {out}",
                binary.display()
            );
            let first = lines.next().unwrap_or_default();
            assert_eq!(first[..row.len()], *row, "{}: {out}", binary.display());
        }
    }
}

#[tokio::test]
async fn kube_rs_scales_deployments_through_the_scale_subresource() {
    use k8s_openapi::api::apps::v1::Deployment;
    let server = KflexServer::start();
    let deployments: Api<Deployment> = Api::namespaced(client(&server).await, "default");
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
        }
    }))
    .unwrap();
    let created = deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let scale = deployments.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(
        scale.status.as_ref().unwrap().selector.as_deref(),
        Some("app=web")
    );

    let patched = deployments
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().replicas, Some(5));
    let after = deployments.get("web").await.unwrap();
    assert_eq!(after.spec.unwrap().replicas, Some(5));
    assert_eq!(
        after.metadata.generation,
        Some(2),
        "a scale write changes the spec"
    );

    let mut replace = deployments.get_scale("web").await.unwrap();
    replace.spec.as_mut().unwrap().replicas = Some(1);
    let replaced = deployments
        .replace_scale("web", &PostParams::default(), &replace)
        .await
        .unwrap();
    assert_eq!(replaced.spec.unwrap().replicas, Some(1));
    // A stale resourceVersion in the Scale is a conflict.
    let (code, reason) = api_error(
        deployments
            .replace_scale("web", &PostParams::default(), &replace)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
}

#[tokio::test]
async fn namespaces_terminate_until_finalized_and_bootstrap_ones_are_immortal() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some("doomed".into());
    let created = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    assert_eq!(
        created.spec.unwrap().finalizers,
        Some(vec!["kubernetes".to_string()])
    );

    // Content with a finalizer keeps the namespace Terminating.
    let held: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "held", "finalizers": ["example.com/hold"]}
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), "doomed")
        .create(&PostParams::default(), &held)
        .await
        .unwrap();
    namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = namespaces.get("doomed").await.unwrap();
    assert_eq!(
        terminating.status.as_ref().unwrap().phase.as_deref(),
        Some("Terminating")
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    let (code, _) = api_error(
        cms.create(&PostParams::default(), &configmap("late", &[], &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403, "no new content in a terminating namespace");

    let mut finalized = terminating.clone();
    finalized.spec.as_mut().unwrap().finalizers = Some(vec![]);
    // The namespace controller writes the status meanwhile: no precondition.
    finalized.metadata.resource_version = None;
    let request = http::Request::put("/api/v1/namespaces/doomed/finalize")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&finalized).unwrap())
        .unwrap();
    client.request::<Namespace>(request).await.unwrap();
    let (code, _) = api_error(namespaces.get("doomed").await.unwrap_err());
    assert_eq!(code, 404, "finalized and gone");

    let (code, reason) = api_error(
        namespaces
            .delete("kube-system", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
}

#[tokio::test]
async fn pod_subresources_answer_as_upstream_without_kubelets() {
    use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use kube::api::EvictParams;
    let server = KflexServer::start();
    let client = client(&server).await;
    crate::support::default_service_account(&client, "default").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = |name: &str| -> Pod {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "db"}},
            "spec": {"containers": [{"name": "c", "image": "postgres"}]}
        }))
        .unwrap()
    };
    pods.create(&PostParams::default(), &pod("p1"))
        .await
        .unwrap();

    // No node yet: the kubelet subresources fail at once with upstream's message.
    let (code, reason) = api_error(pods.logs("p1", &Default::default()).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));

    // Binding assigns a node, once.
    let binding = Binding {
        metadata: kube::api::ObjectMeta {
            name: Some("p1".into()),
            ..Default::default()
        },
        target: ObjectReference {
            kind: Some("Node".into()),
            name: Some("node-1".into()),
            ..Default::default()
        },
    };
    let bind = |binding: &Binding| {
        let request = http::Request::post("/api/v1/namespaces/default/pods/p1/binding")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(binding).unwrap())
            .unwrap();
        client.request::<serde_json::Value>(request)
    };
    let answer = bind(&binding).await.unwrap();
    assert_eq!(answer["status"], "Success");
    assert_eq!(
        pods.get("p1")
            .await
            .unwrap()
            .spec
            .unwrap()
            .node_name
            .as_deref(),
        Some("node-1")
    );
    let (code, _) = api_error(bind(&binding).await.unwrap_err());
    assert_eq!(code, 409, "already assigned");
    let (code, reason) = api_error(pods.logs("p1", &Default::default()).await.unwrap_err());
    assert_eq!(
        (code, reason.as_str()),
        (500, "InternalError"),
        "no kubelet to ask"
    );

    // Eviction of a running pod honours its disruption budget.
    let mut running = pods.get_status("p1").await.unwrap();
    running.status.get_or_insert_with(Default::default).phase = Some("Running".into());
    pods.replace_status("p1", &PostParams::default(), &running)
        .await
        .unwrap();
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let budget: PodDisruptionBudget = serde_json::from_value(serde_json::json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "db"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}
    }))
    .unwrap();
    budgets
        .create(&PostParams::default(), &budget)
        .await
        .unwrap();
    let (code, reason) = api_error(pods.evict("p1", &EvictParams::default()).await.unwrap_err());
    assert_eq!(
        (code, reason.as_str()),
        (429, "TooManyRequests"),
        "the budget has no disruption to spare"
    );
    let mut allowing = budgets.get_status("db").await.unwrap();
    allowing.status = serde_json::from_value(serde_json::json!({
        "disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2
    }))
    .unwrap();
    budgets
        .replace_status("db", &PostParams::default(), &allowing)
        .await
        .unwrap();
    pods.evict("p1", &EvictParams::default()).await.unwrap();
    assert!(pods.get_opt("p1").await.unwrap().is_none(), "evicted");
    assert_eq!(
        budgets
            .get_status("db")
            .await
            .unwrap()
            .status
            .unwrap()
            .disruptions_allowed,
        0,
        "used up"
    );

    // A pending pod is evicted without a budget check, as upstream.
    pods.create(&PostParams::default(), &pod("p2"))
        .await
        .unwrap();
    pods.evict("p2", &EvictParams::default()).await.unwrap();
    assert!(pods.get_opt("p2").await.unwrap().is_none());
}

#[test]
fn kubectl_logs_and_exec_fail_fast_for_unscheduled_pods() {
    let server = KflexServer::start();
    let manifest = server.data_dir.path().join("pod.json");
    std::fs::write(
        &manifest,
        r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"default","namespace":"default"}},
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"lonely","namespace":"default"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}]}"#,
    )
    .unwrap();
    for binary in kubectls() {
        check(
            &binary,
            &kubectl(
                &binary,
                &server,
                &["apply", "-f", manifest.to_str().unwrap()],
            ),
        );
        for args in [
            &["logs", "lonely"][..],
            &["exec", "lonely", "--", "true"][..],
        ] {
            let started = std::time::Instant::now();
            let out = kubectl(&binary, &server, args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{}: {args:?}", binary.display());
            assert!(
                stderr.contains("does not have a host assigned"),
                "{}: {args:?}: {stderr}",
                binary.display()
            );
            assert!(started.elapsed() < Duration::from_secs(20), "never hangs");
        }
    }
}

#[tokio::test]
async fn kube_rs_streaming_lists_end_initial_events_with_a_bookmark() {
    let server = KflexServer::start();
    let cms: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    for name in ["s1", "s2"] {
        cms.create(&PostParams::default(), &configmap(name, &[], &[]))
            .await
            .unwrap();
    }
    // streaming_lists() waits for the `k8s.io/initial-events-end` bookmark before InitDone.
    let mine = watcher::Config::default().fields("metadata.name!=kube-root-ca.crt");
    let mut events = watcher(cms.clone(), mine.streaming_lists()).boxed();
    let mut initial = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::InitApply(cm) => initial.push(cm.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    initial.sort();
    assert_eq!(initial, ["s1", "s2"]);
    cms.create(&PostParams::default(), &configmap("s3", &[], &[]))
        .await
        .unwrap();
    loop {
        if let watcher::Event::Apply(cm) =
            tokio::time::timeout(Duration::from_secs(10), events.try_next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
        {
            assert_eq!(cm.metadata.name.as_deref(), Some("s3"));
            break;
        }
    }
}

#[tokio::test]
async fn events_are_stored_with_the_event_time_to_live() {
    use k8s_openapi::api::core::v1::Event;
    let mut server = KflexServer::start();
    let events: Api<Event> = Api::namespaced(client(&server).await, "default");
    let event: Event = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "e1"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Tested", "message": "kept for an hour", "type": "Normal"
    }))
    .unwrap();
    events.create(&PostParams::default(), &event).await.unwrap();
    let by_reason = events
        .list(&ListParams::default().fields("reason=Tested"))
        .await
        .unwrap();
    assert_eq!(by_reason.items.len(), 1);
    // The hosting API's own store holds the event with a one-hour time-to-live.
    server.stop();
    use kflex_storage_backends::Store;
    let store = kflex_storage_backends::sqlite::SqliteStore::open(
        server.data_dir.path().join("host.db"),
        Default::default(),
    )
    .await
    .unwrap();
    let (kv, _) = store
        .get(b"/registry/events/default/e1", None)
        .await
        .unwrap();
    assert_eq!(
        kv.expect("the event is stored").ttl,
        Some(Duration::from_secs(3600))
    );
}
