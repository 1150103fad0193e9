//! A custom resource's `metadata` through the real binary, as upstream decodes it into
//! `ObjectMeta`: unknown fields dropped and judged by `fieldValidation` (`unknown field
//! "metadata.foo"`), values of the wrong type refused with Go's decoding error, on creates,
//! updates and patches; and the same type errors for built-in kinds.

use crate::scale::gadgets;
use crate::support::{client, send};
use kflex_e2e::KflexServer;
use kube::api::{Patch, PatchParams};
use serde_json::{json, Value};

const GADGETS: &str = "/apis/example.com/v1/namespaces/default/gadgets";

fn gadget(name: &str, metadata: Value) -> Value {
    let mut metadata = metadata;
    metadata["name"] = json!(name);
    json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": metadata,
        "spec": {"size": 1}})
}

fn warning(path: &str) -> String {
    format!("299 - \"unknown field \\\"{path}\\\"\"")
}

#[tokio::test]
async fn custom_resource_metadata_is_pruned_to_object_meta() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let api = gadgets(&client).await;
    let post = |query: &str| format!("{GADGETS}{query}");
    // An owner that exists: the garbage collector deletes dependents of missing owners.
    let owner =
        kube::Api::<k8s_openapi::api::core::v1::ConfigMap>::default_namespaced(client.clone())
            .create(
                &Default::default(),
                &serde_json::from_value(json!({"metadata": {"name": "o"}})).unwrap(),
            )
            .await
            .unwrap();
    let extra = json!({
        "foo": 1,
        "labels": {"x": "y"},
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o",
            "uid": owner.metadata.uid, "bar": true}],
    });

    // Warn (the default): created without the unknown fields, one warning each, the
    // schema's own pruning after them.
    let mut body = gadget("warned", extra.clone());
    body["spec"]["bogus"] = json!(1);
    let (status, warnings, created) =
        send(&client, "POST", &post(""), "application/json", body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        warnings,
        [
            warning("metadata.foo"),
            warning("metadata.ownerReferences[0].bar"),
            warning("spec.bogus"),
        ]
    );
    assert!(created["metadata"].get("foo").is_none(), "{created}");
    assert_eq!(created["metadata"]["labels"], json!({"x": "y"}));
    assert_eq!(created["metadata"]["ownerReferences"][0]["name"], "o");
    assert!(created["metadata"]["ownerReferences"][0]
        .get("bar")
        .is_none());
    let stored = api.get("warned").await.unwrap();
    assert_eq!(stored.metadata.owner_references.unwrap().len(), 1);

    // The metadata of an embedded resource is pruned the same way.
    let mut body = gadget("embedding", json!({}));
    body["spec"]["template"] = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "inner", "foo": 1}, "data": {"a": "b"}});
    let (status, warnings, created) =
        send(&client, "POST", &post(""), "application/json", body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(warnings, [warning("spec.template.metadata.foo")]);
    assert_eq!(
        created["spec"]["template"],
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "inner"},
            "data": {"a": "b"}})
    );

    // Strict: upstream's decoding error; Ignore: dropped silently.
    let (status, _, error) = send(
        &client,
        "POST",
        &post("?fieldValidation=Strict"),
        "application/json",
        gadget("strict", extra.clone()),
    )
    .await;
    assert_eq!(
        (status, error["reason"].as_str()),
        (400, Some("BadRequest"))
    );
    assert_eq!(
        error["message"],
        "Gadget in version \"v1\" cannot be handled as a Gadget: strict decoding error: \
         unknown field \"metadata.foo\", unknown field \"metadata.ownerReferences[0].bar\""
    );
    let mut body = gadget("strict", json!({}));
    body["spec"]["bogus"] = json!(1);
    let (status, _, error) = send(
        &client,
        "POST",
        &post("?fieldValidation=Strict"),
        "application/json",
        body,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        error["message"],
        "Gadget in version \"v1\" cannot be handled as a Gadget: strict decoding error: unknown field \"spec.bogus\""
    );
    let (status, warnings, created) = send(
        &client,
        "POST",
        &post("?fieldValidation=Ignore"),
        "application/json",
        gadget("ignored", extra.clone()),
    )
    .await;
    assert_eq!((status, warnings.len()), (201, 0));
    assert!(created["metadata"].get("foo").is_none());

    // Values of the wrong type fail whatever the directive.
    for (metadata, message) in [
        (
            json!({"labels": {"x": 1}}),
            "json: cannot unmarshal number into Go struct field ObjectMeta.labels of type string",
        ),
        (
            json!({"annotations": "a=b"}),
            "json: cannot unmarshal string into Go struct field ObjectMeta.annotations of type map[string]string",
        ),
        (
            json!({"finalizers": "example.com/f"}),
            "json: cannot unmarshal string into Go struct field ObjectMeta.finalizers of type []string",
        ),
    ] {
        let (status, _, error) = send(
            &client,
            "POST",
            &post("?fieldValidation=Ignore"),
            "application/json",
            gadget("typed", metadata),
        )
        .await;
        assert_eq!(status, 400, "{error}");
        assert_eq!(
            error["message"],
            format!("Gadget in version \"v1\" cannot be handled as a Gadget: {message}")
        );
    }

    // Updates are decoded as creates are.
    let mut current = serde_json::to_value(api.get("warned").await.unwrap()).unwrap();
    current["metadata"]["foo"] = json!("x");
    let (status, _, error) = send(
        &client,
        "PUT",
        &format!("{GADGETS}/warned?fieldValidation=Strict"),
        "application/json",
        current.clone(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        error["message"],
        "Gadget in version \"v1\" cannot be handled as a Gadget: strict decoding error: unknown field \"metadata.foo\""
    );

    // Patches: the patched object is decoded; Strict and type errors are 422s on `patch`.
    let (status, warnings, patched) = send(
        &client,
        "PATCH",
        &format!("{GADGETS}/warned"),
        "application/merge-patch+json",
        json!({"metadata": {"foo": 2, "labels": {"z": "w"}}}),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(warnings, [warning("metadata.foo")]);
    assert_eq!(patched["metadata"]["labels"], json!({"x": "y", "z": "w"}));
    assert!(patched["metadata"].get("foo").is_none());
    for (patch, message) in [
        (
            json!({"metadata": {"foo": 2}}),
            "strict decoding error: unknown field \"metadata.foo\"",
        ),
        (
            json!({"spec": {"bogus": 2}}),
            "strict decoding error: unknown field \"spec.bogus\"",
        ),
        (
            json!({"metadata": {"labels": {"z": false}}}),
            "json: cannot unmarshal bool into Go struct field ObjectMeta.labels of type string",
        ),
    ] {
        let (status, _, error) = send(
            &client,
            "PATCH",
            &format!("{GADGETS}/warned?fieldValidation=Strict"),
            "application/merge-patch+json",
            patch,
        )
        .await;
        assert_eq!((status, error["reason"].as_str()), (422, Some("Invalid")));
        assert_eq!(error["details"]["causes"][0]["field"], "patch");
        assert!(
            error["message"].as_str().unwrap().ends_with(message),
            "{error}"
        );
    }

    // kube-rs's dynamic API sees the same.
    let patched = api
        .patch(
            "warned",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"extra": {"deep": 1}, "annotations": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.annotations.unwrap()["a"], "b");
    let error = api
        .patch(
            "warned",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"a": 1}}})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = error else {
        panic!("expected an API error, got {error:?}")
    };
    assert_eq!(status.code, 422);
}

#[tokio::test]
async fn built_in_metadata_of_the_wrong_type_is_refused() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let (status, _, error) = send(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"a": 1}}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        error["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string"
    );
    let (status, _, error) = send(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": "c"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        error["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal string into Go struct field ConfigMap.metadata of type v1.ObjectMeta"
    );
}
