//! Server-side apply through the real binary: kube-rs's `Patch::Apply` and kubectl's
//! `apply --server-side`, with managed fields and conflicts between field managers.

use crate::support::{check, client, kubectl, kubectls};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kflex_e2e::KflexServer;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{json, Value};

fn config(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

fn status(error: kube::Error) -> kube::core::Status {
    match error {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn kube_rs_applies_with_field_managers() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let apply = |manager: &str| PatchParams::apply(manager);

    // An apply to a missing object creates it, owned by the manager.
    let created = cms
        .patch(
            "cfg",
            &apply("mgr"),
            &Patch::Apply(config("cfg", json!({"a": "1", "b": "2"}))),
        )
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    let entries = created.metadata.managed_fields.clone().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].manager.as_deref(), Some("mgr"));
    assert_eq!(entries[0].operation.as_deref(), Some("Apply"));
    assert_eq!(entries[0].fields_type.as_deref(), Some("FieldsV1"));
    assert_eq!(
        entries[0].fields_v1.as_ref().unwrap().0,
        json!({"f:data": {"f:a": {}, "f:b": {}}})
    );

    // A change, then a field no longer applied goes away.
    let changed = cms
        .patch(
            "cfg",
            &apply("mgr"),
            &Patch::Apply(config("cfg", json!({"a": "1", "b": "3"}))),
        )
        .await
        .unwrap();
    assert_eq!(changed.data.unwrap()["b"], "3");
    let reduced = cms
        .patch(
            "cfg",
            &apply("mgr"),
            &Patch::Apply(config("cfg", json!({"a": "1"}))),
        )
        .await
        .unwrap();
    assert_eq!(
        reduced.data.unwrap(),
        [("a".to_owned(), "1".to_owned())].into()
    );

    // Another manager changing the field conflicts, unless it forces.
    let error = cms
        .patch(
            "cfg",
            &apply("other"),
            &Patch::Apply(config("cfg", json!({"a": "changed"}))),
        )
        .await
        .unwrap_err();
    let conflict = status(error);
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        conflict.message,
        "Apply failed with 1 conflict: conflict with \"mgr\": .data.a"
    );
    let cause = &conflict.details.unwrap().causes[0];
    assert_eq!(cause.reason, "FieldManagerConflict");
    assert_eq!(cause.field, ".data.a");
    assert_eq!(cause.message, "conflict with \"mgr\"");
    let forced = cms
        .patch(
            "cfg",
            &apply("other").force(),
            &Patch::Apply(config("cfg", json!({"a": "changed"}))),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["a"], "changed");

    // A non-apply write owns what it changes: an apply then conflicts with it.
    let edited = PatchParams {
        field_manager: Some("editor".into()),
        ..Default::default()
    };
    cms.patch(
        "cfg",
        &edited,
        &Patch::Merge(json!({"data": {"a": "edited"}})),
    )
    .await
    .unwrap();
    let error = cms
        .patch(
            "cfg",
            &apply("other"),
            &Patch::Apply(config("cfg", json!({"a": "mine"}))),
        )
        .await
        .unwrap_err();
    assert_eq!(
        status(error).message,
        "Apply failed with 1 conflict: conflict with \"editor\" using v1: .data.a"
    );

    // fieldManager is required (kube-rs checks it itself, so send the request by hand).
    let request = http::Request::patch("/api/v1/namespaces/default/configmaps/cfg")
        .header("content-type", "application/apply-patch+yaml")
        .body(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n".to_vec())
        .unwrap();
    let missing = status(client.request_text(request).await.unwrap_err());
    assert_eq!((missing.code, missing.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        missing.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );

    // `force` belongs to apply only.
    let request = http::Request::patch("/api/v1/namespaces/default/configmaps/cfg?force=true")
        .header("content-type", "application/merge-patch+json")
        .body(br#"{"data":{"a":"x"}}"#.to_vec())
        .unwrap();
    let forbidden = status(client.request_text(request).await.unwrap_err());
    assert_eq!(
        forbidden.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
    );

    // A resourceVersion in the applied object is a precondition.
    let mut stale = config("cfg", json!({"a": "1"}));
    stale["metadata"]["resourceVersion"] = json!(created.metadata.resource_version);
    let error = cms
        .patch("cfg", &apply("other").force(), &Patch::Apply(stale))
        .await
        .unwrap_err();
    assert_eq!(status(error).code, 409);

    // A dry run creates nothing.
    let dry = cms
        .patch(
            "dry",
            &apply("mgr").dry_run(),
            &Patch::Apply(config("dry", json!({"a": "1"}))),
        )
        .await
        .unwrap();
    assert_eq!(dry.data.unwrap()["a"], "1");
    assert!(cms.get_opt("dry").await.unwrap().is_none());

    // Lists merge by their keys: a container no longer applied is removed.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let deployment = |containers: Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": containers}}}})
    };
    deployments
        .patch(
            "web",
            &apply("mgr"),
            &Patch::Apply(deployment(json!([
                {"name": "app", "image": "app:1"}, {"name": "side", "image": "side:1"}]))),
        )
        .await
        .unwrap();
    let applied = deployments
        .patch(
            "web",
            &apply("mgr"),
            &Patch::Apply(deployment(json!([{"name": "app", "image": "app:2"}]))),
        )
        .await
        .unwrap();
    let containers = applied.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].image.as_deref(), Some("app:2"));
}

#[test]
fn kubectl_applies_server_side() {
    let server = KflexServer::start();
    for binary in kubectls() {
        let version = crate::support::version_suffix(&binary);
        let name = format!("ssa{version}");
        let kubectl = |args: &[&str]| kubectl(&binary, &server, args);
        let manifest = server.data_dir.path().join(format!("{name}.yaml"));
        let write = |data: &str| {
            std::fs::write(
                &manifest,
                format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n{data}"),
            )
            .unwrap()
        };
        let apply = |extra: &[&str]| {
            let mut args = vec!["apply", "--server-side", "-f", manifest.to_str().unwrap()];
            args.extend_from_slice(extra);
            kubectl(&args)
        };
        let data = || {
            check(
                &binary,
                &kubectl(&["get", "configmap", &name, "-o", "jsonpath={.data}"]),
            )
        };
        write("  a: \"1\"\n  b: \"2\"\n");
        check(&binary, &apply(&[]));
        assert_eq!(data(), r#"{"a":"1","b":"2"}"#, "{}", binary.display());
        write("  a: \"2\"\n");
        check(&binary, &apply(&[]));
        assert_eq!(data(), r#"{"a":"2"}"#, "{}", binary.display());

        check(
            &binary,
            &kubectl(&[
                "patch",
                "configmap",
                &name,
                "-p",
                r#"{"data":{"a":"patched"}}"#,
            ]),
        );
        write("  a: \"3\"\n");
        let out = apply(&[]);
        crate::support::check_fails(
            &binary,
            &out,
            "Apply failed with 1 conflict: conflict with \"kubectl-patch\" using v1: .data.a",
        );
        assert_eq!(data(), r#"{"a":"patched"}"#, "{}", binary.display());
        check(&binary, &apply(&["--force-conflicts"]));
        assert_eq!(data(), r#"{"a":"3"}"#, "{}", binary.display());
        let managers = check(
            &binary,
            &kubectl(&[
                "get",
                "configmap",
                &name,
                "--show-managed-fields",
                "-o",
                "jsonpath={range .metadata.managedFields[*]}{.manager}:{.operation} {end}",
            ]),
        );
        assert_eq!(managers, "kubectl:Apply ", "{}", binary.display());

        // Client-side apply, then server-side: kubectl moves the ownership over itself
        // (rewriting managedFields with a patch), so no conflict.
        let migrated = format!("{name}-migrated");
        std::fs::write(
            &manifest,
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {migrated}\n  namespace: default\ndata:\n  a: \"1\"\n"),
        )
        .unwrap();
        check(
            &binary,
            &kubectl(&["apply", "-f", manifest.to_str().unwrap()]),
        );
        std::fs::write(
            &manifest,
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {migrated}\n  namespace: default\ndata:\n  a: \"2\"\n"),
        )
        .unwrap();
        check(&binary, &apply(&[]));
        let value = check(
            &binary,
            &kubectl(&["get", "configmap", &migrated, "-o", "jsonpath={.data.a}"]),
        );
        assert_eq!(value, "2", "{}", binary.display());

        // `kubectl scale` owns the replicas it set: applying others conflicts.
        let deployment = server.data_dir.path().join(format!("{name}-deploy.yaml"));
        let write_deployment = |replicas: u32| {
            std::fs::write(
                &deployment,
                format!(
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: default\n\
                     spec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: {name}\n\
                     \x20 template:\n    metadata:\n      labels:\n        app: {name}\n\
                     \x20   spec:\n      containers:\n      - name: app\n        image: app:1\n"
                ),
            )
            .unwrap()
        };
        let apply_deployment = |extra: &[&str]| {
            let mut args = vec!["apply", "--server-side", "-f", deployment.to_str().unwrap()];
            args.extend_from_slice(extra);
            kubectl(&args)
        };
        let replicas = || {
            check(
                &binary,
                &kubectl(&[
                    "get",
                    "deployment",
                    &name,
                    "-o",
                    "jsonpath={.spec.replicas}",
                ]),
            )
        };
        write_deployment(1);
        check(&binary, &apply_deployment(&[]));
        check(
            &binary,
            &kubectl(&["scale", "deployment", &name, "--replicas=3"]),
        );
        write_deployment(2);
        let out = apply_deployment(&[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && stderr.contains("conflict")
                && stderr.contains(".spec.replicas"),
            "{}: {stderr}",
            binary.display()
        );
        assert_eq!(replicas(), "3", "{}", binary.display());
        check(&binary, &apply_deployment(&["--force-conflicts"]));
        assert_eq!(replicas(), "2", "{}", binary.display());
    }
}
