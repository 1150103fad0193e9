//! The `scale` subresource through the real binary: server-side apply of a `Scale`
//! (kube-rs's `patch_scale` with `Patch::Apply`) and kubectl's `scale`, with the ownership
//! of the parent's replicas recorded on the parent (`subresource: scale`) and conflicts
//! between the managers of the parent and of its `Scale`.

use crate::support::{api_error, check, check_fails, client, kubectl, kubectls, version_suffix};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kflex_e2e::KflexServer;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{json, Value};
use std::time::Duration;

/// A workload of `kind` with one replica and a valid pod template.
fn workload(api_version: &str, kind: &str, replicas: i64) -> Value {
    let selector = match kind {
        "ReplicationController" => json!({"app": "nginx"}),
        _ => json!({"matchLabels": {"app": "nginx"}}),
    };
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "test"},
        "spec": {
            "replicas": replicas,
            "selector": selector,
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]},
            },
        },
    })
}

/// An applied `Scale` of `name` to `replicas`.
fn scale(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": name},
        "spec": {"replicas": replicas},
    })
}

/// The managers whose `managedFields` entries own `field` of `spec`, with their entries.
fn owners(object: &DynamicObject, field: &str) -> Vec<(String, Value)> {
    object
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|e| {
            e.fields_v1
                .as_ref()
                .is_some_and(|f| f.0["f:spec"].get(format!("f:{field}")).is_some())
        })
        .map(|e| {
            (
                e.manager.clone().unwrap_or_default(),
                serde_json::to_value(e).unwrap(),
            )
        })
        .collect()
}

fn owner_names(object: &DynamicObject, field: &str) -> Vec<String> {
    let mut names: Vec<String> = owners(object, field).into_iter().map(|(m, _)| m).collect();
    names.sort();
    names
}

fn status(error: kube::Error) -> kube::core::Status {
    match error {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Upstream's scale test sequence for every built-in kind with a scale subresource: the
/// replicas change hands between the parent's appliers, the `Scale`'s appliers and
/// updaters, with conflicts where another manager owns them.
#[tokio::test]
async fn scale_apply_owns_the_parents_replicas() {
    let server = KflexServer::start();
    let client = client(&server).await;
    for (group, version, kind, plural) in [
        ("apps", "v1", "Deployment", "deployments"),
        ("apps", "v1", "StatefulSet", "statefulsets"),
        ("apps", "v1", "ReplicaSet", "replicasets"),
        ("", "v1", "ReplicationController", "replicationcontrollers"),
    ] {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
        let api_version = resource.api_version.clone();
        let apply = |manager: &str| PatchParams::apply(manager);
        let forced = |manager: &str| PatchParams::apply(manager).force();
        let replicas = |object: &DynamicObject| object.data["spec"]["replicas"].as_i64();

        api.patch(
            "test",
            &apply("apply_test"),
            &Patch::Apply(workload(&api_version, kind, 1)),
        )
        .await
        .unwrap();
        let object = api.get("test").await.unwrap();
        assert_eq!(owner_names(&object, "replicas"), ["apply_test"], "{kind}");

        // A merge patch of the Scale: its manager owns the parent's replicas, marked as
        // a write to the subresource, in the parent's API version.
        let scaled = api
            .patch_scale(
                "test",
                &PatchParams {
                    field_manager: Some("scale_test".into()),
                    ..Default::default()
                },
                &Patch::Merge(json!({"spec": {"replicas": 5}})),
            )
            .await
            .unwrap();
        assert_eq!(scaled.spec.unwrap().replicas, Some(5));
        let object = api.get("test").await.unwrap();
        assert_eq!(replicas(&object), Some(5));
        let owned = owners(&object, "replicas");
        assert_eq!(owned.len(), 1, "{kind}: {owned:?}");
        assert_eq!(owned[0].0, "scale_test");
        assert_eq!(owned[0].1["subresource"], "scale");
        assert_eq!(owned[0].1["operation"], "Update");
        assert_eq!(owned[0].1["apiVersion"], api_version.as_str());

        // The parent's applier now conflicts with the Scale's updater.
        let error = status(
            api.patch(
                "test",
                &apply("apply_test"),
                &Patch::Apply(workload(&api_version, kind, 1)),
            )
            .await
            .unwrap_err(),
        );
        assert_eq!((error.code, error.reason.as_str()), (409, "Conflict"));
        assert_eq!(
            error.message,
            format!(
                "Apply failed with 1 conflict: conflict with \"scale_test\" with subresource \"scale\" using {api_version}: .spec.replicas"
            )
        );
        api.patch(
            "test",
            &forced("apply_test"),
            &Patch::Apply(workload(&api_version, kind, 1)),
        )
        .await
        .unwrap();
        let object = api.get("test").await.unwrap();
        assert_eq!(replicas(&object), Some(1));
        assert_eq!(owner_names(&object, "replicas"), ["apply_test"]);

        // An apply of the Scale conflicts with the parent's applier, unless forced.
        let error = status(
            api.patch_scale(
                "test",
                &apply("apply_scale"),
                &Patch::Apply(scale("test", 17)),
            )
            .await
            .unwrap_err(),
        );
        assert_eq!(error.code, 409, "{kind}: {error:?}");
        assert_eq!(
            error.message,
            "Apply failed with 1 conflict: conflict with \"apply_test\": .spec.replicas"
        );
        let applied = api
            .patch_scale(
                "test",
                &forced("apply_scale"),
                &Patch::Apply(scale("test", 17)),
            )
            .await
            .unwrap();
        assert_eq!(applied.spec.unwrap().replicas, Some(17));
        assert!(applied.metadata.managed_fields.is_none());
        let object = api.get("test").await.unwrap();
        assert_eq!(replicas(&object), Some(17));
        let owned = owners(&object, "replicas");
        assert_eq!(owned.len(), 1, "{kind}: {owned:?}");
        assert_eq!(owned[0].0, "apply_scale");
        assert_eq!(owned[0].1["operation"], "Apply");
        assert_eq!(owned[0].1["subresource"], "scale");
        assert_eq!(owned[0].1["apiVersion"], api_version.as_str());
        assert_eq!(
            owned[0].1["fieldsV1"],
            json!({"f:spec": {"f:replicas": {}}})
        );
        // The parent's applier keeps the rest of what it applied.
        assert!(object.metadata.managed_fields.iter().flatten().any(|e| {
            e.manager.as_deref() == Some("apply_test")
                && e.fields_v1.as_ref().unwrap().0["f:spec"]
                    .get("f:template")
                    .is_some()
        }));

        // A replace of the Scale takes the replicas; an apply of the same value shares
        // them; a change by another manager takes them again.
        let mut replaced: k8s_openapi::api::autoscaling::v1::Scale =
            serde_json::from_value(scale("test", 7)).unwrap();
        replaced.metadata.namespace = Some("default".into());
        api.replace_scale(
            "test",
            &PostParams {
                field_manager: Some("replace_test".into()),
                ..Default::default()
            },
            &replaced,
        )
        .await
        .unwrap();
        let object = api.get("test").await.unwrap();
        assert_eq!(replicas(&object), Some(7));
        assert_eq!(owner_names(&object, "replicas"), ["replace_test"]);
        api.patch_scale(
            "test",
            &apply("co_owning_test"),
            &Patch::Apply(scale("test", 7)),
        )
        .await
        .unwrap();
        let object = api.get("test").await.unwrap();
        assert_eq!(
            owner_names(&object, "replicas"),
            ["co_owning_test", "replace_test"]
        );
        api.patch_scale(
            "test",
            &PatchParams {
                field_manager: Some("scale_test".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
        let object = api.get("test").await.unwrap();
        assert_eq!(owner_names(&object, "replicas"), ["scale_test"]);
    }
}

#[tokio::test]
async fn scale_apply_checks_its_input() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let apply = PatchParams::apply("m");

    // No parent: 404, an apply to /scale creates nothing.
    let (code, reason) = api_error(
        deployments
            .patch_scale("missing", &apply, &Patch::Apply(scale("missing", 2)))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (404, "NotFound"));

    let mut web = workload("apps/v1", "Deployment", 1);
    web["metadata"]["name"] = json!("web");
    deployments
        .patch("web", &apply, &Patch::Apply(web))
        .await
        .unwrap();
    // The body must be a Scale named as the URL names it.
    let mut wrong_kind = scale("web", 2);
    wrong_kind["kind"] = json!("Deployment");
    let (code, _) = api_error(
        deployments
            .patch_scale("web", &apply, &Patch::Apply(wrong_kind))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 400);
    let (code, _) = api_error(
        deployments
            .patch_scale("web", &apply, &Patch::Apply(scale("other", 2)))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 400);
    // Unknown fields of a Scale are judged by fieldValidation, as for any body.
    let mut unknown = scale("web", 2);
    unknown["spec"]["paused"] = json!(true);
    let error = status(
        deployments
            .patch_scale(
                "web",
                &PatchParams::apply("m").validation_strict(),
                &Patch::Apply(unknown),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, 400);
    assert!(
        error.message.contains("unknown field \"spec.paused\""),
        "{}",
        error.message
    );
    // The parent's applier applying the Scale is another manager (its subresource
    // differs), as upstream tells them apart.
    let error = status(
        deployments
            .patch_scale("web", &apply, &Patch::Apply(scale("web", 3)))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        error.message,
        "Apply failed with 1 conflict: conflict with \"m\": .spec.replicas"
    );
    // A dry run stores nothing.
    let dry = deployments
        .patch_scale(
            "web",
            &PatchParams::apply("m").force().dry_run(),
            &Patch::Apply(scale("web", 3)),
        )
        .await
        .unwrap();
    assert_eq!(dry.spec.unwrap().replicas, Some(3));
    assert_eq!(
        deployments.get("web").await.unwrap().spec.unwrap().replicas,
        Some(1)
    );
}

/// A CRD whose scale subresource keeps the replicas in `.spec.size`, and whose
/// `spec.template` is an embedded resource.
fn gadget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "size": {"type": "integer"}, "color": {"type": "string"},
                        "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                            "x-kubernetes-preserve-unknown-fields": true}}},
                    "status": {"type": "object", "properties": {"size": {"type": "integer"}}},
                }}},
                "subresources": {"status": {}, "scale": {
                    "specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size"}},
            }],
        },
    })
}

/// Creates the `Gadget` CRD, waits until it is served, and returns its objects' API in
/// `default`.
pub(crate) async fn gadgets(client: &kube::Client) -> Api<DynamicObject> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(gadget_crd()).unwrap(),
    )
    .await
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(
            crds.clone(),
            "gadgets.example.com",
            conditions::is_crd_established(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Gadget");
    Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, "gadgets"),
    )
}

#[tokio::test]
async fn scale_apply_of_a_custom_resource_owns_its_spec_replicas_path() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let api = gadgets(&client).await;
    let gadget = json!({"apiVersion": "example.com/v1", "kind": "Gadget",
        "metadata": {"name": "g"}, "spec": {"size": 2, "color": "red"}});
    api.patch("g", &PatchParams::apply("owner"), &Patch::Apply(gadget))
        .await
        .unwrap();

    let error = status(
        api.patch_scale(
            "g",
            &PatchParams::apply("scaler"),
            &Patch::Apply(scale("g", 3)),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        error.message,
        "Apply failed with 1 conflict: conflict with \"owner\": .spec.replicas"
    );
    let applied = api
        .patch_scale(
            "g",
            &PatchParams::apply("scaler").force(),
            &Patch::Apply(scale("g", 3)),
        )
        .await
        .unwrap();
    assert_eq!(applied.spec.unwrap().replicas, Some(3));
    let object = api.get("g").await.unwrap();
    assert_eq!(object.data["spec"], json!({"size": 3, "color": "red"}));
    let owned = owners(&object, "size");
    assert_eq!(owned.len(), 1, "{owned:?}");
    assert_eq!(owned[0].0, "scaler");
    assert_eq!(owned[0].1["subresource"], "scale");
    assert_eq!(owned[0].1["apiVersion"], "example.com/v1");
    assert_eq!(owned[0].1["fieldsV1"], json!({"f:spec": {"f:size": {}}}));
    assert_eq!(owner_names(&object, "color"), ["owner"]);
}

/// `kubectl scale` records its ownership as a write to the subresource, and a later
/// `kubectl apply --server-side` of other replicas conflicts with it.
#[tokio::test]
async fn kubectl_scale_conflicts_with_server_side_apply() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let deployments: Api<Deployment> = Api::namespaced(client, "default");
    for binary in kubectls() {
        let name = format!("web{}", version_suffix(&binary));
        let mut manifest = workload("apps/v1", "Deployment", 1);
        manifest["metadata"]["name"] = json!(name);
        let file = server.data_dir.path().join(format!("{name}.json"));
        std::fs::write(&file, manifest.to_string()).unwrap();
        let file = file.to_string_lossy().into_owned();
        check(
            &binary,
            &kubectl(&binary, &server, &["apply", "--server-side", "-f", &file]),
        );
        check(
            &binary,
            &kubectl(
                &binary,
                &server,
                &["scale", "deployment", &name, "--replicas=3"],
            ),
        );
        let object = deployments.get(&name).await.unwrap();
        assert_eq!(object.spec.as_ref().unwrap().replicas, Some(3));
        let entries = object.metadata.managed_fields.unwrap();
        let scaler = entries
            .iter()
            .find(|e| e.subresource.as_deref() == Some("scale"))
            .unwrap_or_else(|| panic!("{}: no scale entry in {entries:?}", binary.display()));
        assert!(
            scaler
                .manager
                .as_deref()
                .unwrap_or("")
                .starts_with("kubectl"),
            "{scaler:?}"
        );
        assert_eq!(
            scaler.fields_v1.as_ref().unwrap().0,
            json!({"f:spec": {"f:replicas": {}}})
        );
        check_fails(
            &binary,
            &kubectl(&binary, &server, &["apply", "--server-side", "-f", &file]),
            "with subresource \"scale\"",
        );
    }
}
