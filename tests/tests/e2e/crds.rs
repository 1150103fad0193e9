//! CustomResourceDefinitions through the real binary: kube-rs's dynamic API and discovery,
//! and kubectl where it is installed, see a CRD served at once, its objects validated,
//! pruned and defaulted, its status and scale subresources, and its objects gone with it.

use crate::support::{api_error, check, client, kubectl, kubectls};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kflex_e2e::KflexServer;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::wait::{await_condition, conditions};
use kube::Discovery;
use serde_json::{json, Value};
use std::time::Duration;

/// A namespaced `Widget` CRD in `example.com`, served as v1 (storage) and v1beta1, with a
/// schema, defaults, printer columns and both subresources.
fn widget_crd() -> Value {
    let schema = json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["size"],
                "properties": {
                    "size": {"type": "string", "enum": ["S", "M", "L"]},
                    "replicas": {"type": "integer", "minimum": 0, "default": 1},
                    "color": {"type": "string", "default": "blue"},
                },
            },
            "status": {
                "type": "object",
                "properties": {
                    "replicas": {"type": "integer"},
                    "selector": {"type": "string"},
                },
            },
        },
    });
    let columns = json!([
        {"name": "Size", "type": "string", "jsonPath": ".spec.size"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "Color", "type": "string", "jsonPath": ".spec.color", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]);
    let subresources = json!({
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    });
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"], "categories": ["all"]},
            "versions": [
                {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": schema},
                 "subresources": subresources, "additionalPrinterColumns": columns,
                 "selectableFields": [{"jsonPath": ".spec.size"}]},
                {"name": "v1beta1", "served": true, "storage": false, "schema": {"openAPIV3Schema": schema}},
            ],
        },
    })
}

fn widgets(client: &kube::Client, version: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("example.com", version, "Widget");
    Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, "widgets"),
    )
}

fn widget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

#[tokio::test]
async fn kube_rs_uses_a_crd_and_its_objects() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());

    // An invalid CRD is refused with upstream's causes.
    let mut bad = widget_crd();
    bad["metadata"]["name"] = json!("widgets.other.com");
    bad["spec"]["versions"][1]["storage"] = json!(true);
    let error = crds
        .create(
            &PostParams::default(),
            &serde_json::from_value(bad).unwrap(),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = error else {
        panic!("expected a Status")
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status.message.contains("metadata.name: Invalid value: \"widgets.other.com\": must be spec.names.plural+\".\"+spec.group")
            && status.message.contains("spec.versions: Invalid value: ...: must have exactly one version marked as storage version"),
        "{}",
        status.message
    );

    // A valid one is established at once, with its finalizer and stored version.
    let created = crds
        .create(
            &PostParams::default(),
            &serde_json::from_value(widget_crd()).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        created.metadata.finalizers,
        Some(vec!["customresourcecleanup.apiextensions.k8s.io".to_owned()])
    );
    let established = tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(
            crds.clone(),
            "widgets.example.com",
            conditions::is_crd_established(),
        ),
    )
    .await
    .expect("established in time")
    .unwrap()
    .unwrap();
    let status = established.status.unwrap();
    assert_eq!(status.stored_versions, Some(vec!["v1".to_owned()]));
    assert_eq!(
        status.accepted_names.unwrap().short_names,
        Some(vec!["wd".to_owned()])
    );

    // Discovery shows both served versions, v1 preferred, with the subresources.
    let discovery = Discovery::new(client.clone())
        .filter(&["example.com"])
        .run()
        .await
        .unwrap();
    let group = discovery
        .get("example.com")
        .expect("the group is discovered");
    assert_eq!(group.preferred_version_or_latest(), "v1");
    assert_eq!(group.versions().collect::<Vec<_>>(), vec!["v1", "v1beta1"]);
    let (resource, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
        .expect("Widget resolves");
    assert_eq!(resource.plural, "widgets");
    let subresources: Vec<&str> = caps
        .subresources
        .iter()
        .map(|(r, _)| r.plural.as_str())
        .collect();
    assert!(
        subresources.contains(&"status") && subresources.contains(&"scale"),
        "{subresources:?}"
    );

    // Objects: unknown fields pruned, defaults applied, generation 1.
    let api = widgets(&client, "v1");
    let mut watch = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let small = api
        .create(
            &PostParams::default(),
            &widget("small", json!({"size": "S", "foo": "bar"})),
        )
        .await
        .unwrap();
    assert_eq!(
        small.data["spec"],
        json!({"size": "S", "replicas": 1, "color": "blue"})
    );
    assert_eq!(small.metadata.generation, Some(1));
    match watch.try_next().await.unwrap() {
        Some(WatchEvent::Added(object)) => {
            assert_eq!(object.metadata.name.as_deref(), Some("small"))
        }
        other => panic!("expected ADDED, got {other:?}"),
    }

    // Invalid objects: 422 with upstream's causes; Strict field validation: 400.
    let (code, reason) = api_error(
        api.create(
            &PostParams::default(),
            &widget("bad", json!({"size": "XL", "replicas": "three"})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    let error = api
        .create(
            &PostParams::default(),
            &widget("bad", json!({"replicas": "three"})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = error else {
        panic!("expected a Status")
    };
    assert!(
        status.message.contains("spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"")
            && status.message.contains("spec.size: Required value"),
        "{}",
        status.message
    );
    let strict = http::Request::post(
        "/apis/example.com/v1/namespaces/default/widgets?fieldValidation=Strict",
    )
    .header("content-type", "application/json")
    .body(serde_json::to_vec(&widget("strict", json!({"size": "M", "foo": 1}))).unwrap())
    .unwrap();
    let error = client.request::<Value>(strict).await.unwrap_err();
    let kube::Error::Api(status) = error else {
        panic!("expected a Status")
    };
    assert_eq!(status.code, 400);
    assert_eq!(
        status.message,
        "Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: unknown field \"spec.foo\""
    );

    // A spec change counts a generation; the main resource ignores status.
    let patched = api
        .patch(
            "small",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}, "status": {"replicas": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["spec"]["replicas"], 2);
    assert_eq!(patched.metadata.generation, Some(2));
    assert!(patched.data.get("status").is_none());

    // `/status` changes only status, and no generation.
    let with_status = api
        .patch_status(
            "small",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 7}, "status": {"replicas": 2, "selector": "app=small"}})),
        )
        .await
        .unwrap();
    assert_eq!(with_status.data["status"]["replicas"], 2);
    assert_eq!(with_status.data["spec"]["replicas"], 2);
    assert_eq!(with_status.metadata.generation, Some(2));
    let (code, _) = api_error(
        api.patch_status(
            "small",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": "two"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 422);

    // `/scale` reads and writes the CRD's paths.
    let scale = api.get_scale("small").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    let scale_status = scale.status.unwrap();
    assert_eq!(scale_status.replicas, 2);
    assert_eq!(scale_status.selector.as_deref(), Some("app=small"));
    api.patch_scale(
        "small",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 4}})),
    )
    .await
    .unwrap();
    assert_eq!(api.get("small").await.unwrap().data["spec"]["replicas"], 4);

    // Another served version reads the same objects under its own apiVersion.
    let beta = widgets(&client, "v1beta1").get("small").await.unwrap();
    assert_eq!(
        beta.types.unwrap().api_version,
        "example.com/v1beta1".to_owned()
    );
    let listed = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);

    // `selectableFields` are field selectors; other fields are refused.
    let by_size = |size: &str| ListParams::default().fields(&format!("spec.size={size}"));
    assert_eq!(api.list(&by_size("S")).await.unwrap().items.len(), 1);
    assert!(api.list(&by_size("M")).await.unwrap().items.is_empty());
    let (code, _) = api_error(
        api.list(&ListParams::default().fields("spec.color=blue"))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 400);

    // Deleting the CRD deletes its objects, and the resource leaves discovery.
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        api_error(crds.get("widgets.example.com").await.unwrap_err()).0,
        404
    );
    assert_eq!(api_error(api.get("small").await.unwrap_err()).0, 404);
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    assert!(discovery.get("example.com").is_none());

    // Re-created, the CRD starts empty: the old objects are gone from storage.
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(widget_crd()).unwrap(),
    )
    .await
    .unwrap();
    assert!(api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    api.create(
        &PostParams::default(),
        &widget("kept", json!({"size": "L"})),
    )
    .await
    .unwrap();

    // After a restart the CRD is served from the start, with its objects.
    let (_, dir) = server.terminate();
    let server = KflexServer::start_in(dir);
    let client = crate::support::client(&server).await;
    let kept = widgets(&client, "v1").get("kept").await.unwrap();
    assert_eq!(kept.data["spec"]["replicas"], 1);
}

#[tokio::test]
async fn a_deleted_crd_waits_for_the_finalizers_of_its_objects() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(widget_crd()).unwrap(),
    )
    .await
    .unwrap();
    let api = widgets(&client, "v1");
    let mut held = widget("held", json!({"size": "S"}));
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();
    api.create(
        &PostParams::default(),
        &widget("free", json!({"size": "S"})),
    )
    .await
    .unwrap();

    // The CRD stays, terminating, while an object's finalizer holds it; the other object
    // is gone and no new ones may be created.
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = crds.get("widgets.example.com").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    let condition = terminating
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Terminating")
        .expect("a Terminating condition");
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_deref()),
        ("True", Some("InstanceDeletionInProgress"))
    );
    assert_eq!(api_error(api.get("free").await.unwrap_err()).0, 404);
    assert!(api
        .get("held")
        .await
        .unwrap()
        .metadata
        .deletion_timestamp
        .is_some());
    let error = api
        .create(
            &PostParams::default(),
            &widget("late", json!({"size": "S"})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = error else {
        panic!("expected a Status")
    };
    assert_eq!(status.code, 405);
    assert_eq!(
        status.message,
        "create not allowed while custom resource definition is terminating"
    );

    // Releasing the last object lets the CRD go.
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(api_error(api.get("held").await.unwrap_err()).0, 404);
    assert_eq!(
        api_error(crds.get("widgets.example.com").await.unwrap_err()).0,
        404
    );
}

const CRD_YAML: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.org
spec:
  group: example.org
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget, shortNames: [gd]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: string}
              replicas: {type: integer, default: 3}
    additionalPrinterColumns:
    - {name: Size, type: string, jsonPath: .spec.size}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    - {name: Size-Again, type: string, jsonPath: .spec.size, priority: 1}
"#;

const CR_YAML: &str = r#"
apiVersion: example.org/v1
kind: Gadget
metadata: {name: gizmo, namespace: default}
spec: {size: large}
"#;

#[test]
fn kubectl_applies_a_crd_and_prints_its_columns() {
    let server = KflexServer::start();
    let dir = server.data_dir.path();
    let crd = dir.join("crd.yaml");
    let cr = dir.join("cr.yaml");
    std::fs::write(&crd, CRD_YAML).unwrap();
    std::fs::write(&cr, CR_YAML).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        CR_YAML.replace("{size: large}", "{size: large, bogus: 1}"),
    )
    .unwrap();
    let (crd, cr, bad) = (
        crd.to_str().unwrap(),
        cr.to_str().unwrap(),
        bad.to_str().unwrap(),
    );
    for binary in kubectls() {
        let run = |args: &[&str]| kubectl(&binary, &server, args);
        check(&binary, &run(&["apply", "-f", crd]));
        check(
            &binary,
            &run(&[
                "wait",
                "--for",
                "condition=established",
                "--timeout=10s",
                "crd/gadgets.example.org",
            ]),
        );
        // The schema is published: kubectl validates through the server and explains fields.
        crate::support::check_fails(&binary, &run(&["apply", "-f", bad]), "unknown field");
        check(&binary, &run(&["apply", "-f", cr]));
        let explained = check(&binary, &run(&["explain", "gadgets.spec"]));
        assert!(
            explained.contains("replicas"),
            "{}: {explained}",
            binary.display()
        );
        let table = check(&binary, &run(&["get", "gadgets"]));
        let lines: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[0],
            vec!["NAME", "SIZE", "REPLICAS", "AGE"],
            "{}: {table}",
            binary.display()
        );
        assert_eq!(&lines[1][..3], &["gizmo", "large", "3"], "{table}");
        let wide = check(&binary, &run(&["get", "gadgets", "-o", "wide"]));
        let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            vec!["NAME", "SIZE", "REPLICAS", "AGE", "SIZE-AGAIN"],
            "{wide}"
        );
        let short = check(&binary, &run(&["get", "gd", "-o", "name"]));
        assert_eq!(short.trim(), "gadget.example.org/gizmo");
        let resources = check(&binary, &run(&["api-resources", "--api-group=example.org"]));
        assert!(
            resources
                .lines()
                .any(|l| l.starts_with("gadgets") && l.contains("gd") && l.contains("Gadget")),
            "{resources}"
        );
        check(&binary, &run(&["delete", "crd", "gadgets.example.org"]));
        let gone = run(&["get", "gadgets"]);
        assert!(
            !gone.status.success(),
            "{}: get after delete",
            binary.display()
        );
    }
}

#[tokio::test]
async fn a_crd_is_served_only_by_its_own_control_plane() {
    use kflex_controlplane::authn::Authenticator;
    use kflex_controlplane::http::ApiRequest;
    use kflex_controlplane::request::Query;
    use kflex_controlplane::ControlPlane;
    use kflex_storage_backends::sqlite::{SqliteOptions, SqliteStore};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let start = |name: &'static str| {
        let path = dir.path().join(format!("{name}.db"));
        async move {
            let mut authn = Authenticator::default();
            authn.add_token(
                "token".to_owned(),
                kflex_controlplane::authn::User {
                    name: "admin".into(),
                    uid: String::new(),
                    groups: vec!["system:masters".into()],
                    ..Default::default()
                },
            );
            let store = SqliteStore::open(path, SqliteOptions::default())
                .await
                .unwrap();
            ControlPlane::start(name, Arc::new(store), authn)
                .await
                .unwrap()
        }
    };
    let a = start("a").await;
    let b = start("b").await;
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", "Bearer token".parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    let response = a
        .handle(ApiRequest {
            method: http::Method::POST,
            path: "/apis/apiextensions.k8s.io/v1/customresourcedefinitions".into(),
            query: Query::parse(None),
            headers,
            body: serde_json::to_vec(&widget_crd()).unwrap().into(),
            peer_certs: Arc::new(Vec::new()),
        })
        .await;
    assert_eq!(response.status(), http::StatusCode::CREATED);
    assert!(a
        .registry()
        .lookup("example.com", "v1", "widgets")
        .is_some());
    assert!(b
        .registry()
        .lookup("example.com", "v1", "widgets")
        .is_none());
}
