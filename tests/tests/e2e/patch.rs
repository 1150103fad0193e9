//! Strategic merge patch through the real binary: kube-rs's `Patch::Strategic`, and
//! kubectl's client-side `apply`, `patch`, `set image`, `rollout restart` and `scale`.

use crate::support::{api_error, check, client, kubectl, kubectls};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kflex_e2e::KflexServer;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

fn deployment(name: &str, containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": containers},
            },
        },
    })
}

fn containers(d: &Deployment) -> Value {
    serde_json::to_value(
        &d.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers,
    )
    .unwrap()
}

#[tokio::test]
async fn kube_rs_strategic_patch_merges_lists_by_key() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let created = deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(deployment(
                "web",
                json!([
                    {"name": "app", "image": "app:1",
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                     "ports": [{"containerPort": 80}]},
                    {"name": "side", "image": "side:1"},
                ]),
            ))
            .unwrap(),
        )
        .await
        .unwrap();
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "app:2",
         "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
         "ports": [{"containerPort": 443}]},
        {"name": "side", "$patch": "delete"},
    ]}}}});
    let patched = deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    // Without `$setElementOrder`, upstream puts new items before the live ones that come
    // after no patched item: port 443 lands first, env C after the patched B. The pull
    // policy defaulted at creation stays; the new port gets its default protocol.
    assert_eq!(
        containers(&patched),
        json!([{"name": "app", "image": "app:2",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
                "ports": [{"containerPort": 443, "protocol": "TCP"}, {"containerPort": 80, "protocol": "TCP"}],
                "imagePullPolicy": "IfNotPresent", "resources": {},
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}])
    );
    assert_eq!(
        patched.metadata.generation,
        created.metadata.generation.map(|g| g + 1)
    );

    // A resourceVersion in the patch is a precondition.
    let stale = json!({"metadata": {"resourceVersion": created.metadata.resource_version}, "spec": {"replicas": 2}});
    let error = deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(&stale))
        .await
        .unwrap_err();
    assert_eq!(api_error(error), (409, "Conflict".into()));

    // Bad directives get upstream's statuses.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("cm".into());
    cm.data = Some([("a".to_owned(), "1".to_owned())].into());
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let bad = json!({"data": {"$patch": "sideways"}});
    let error = cms
        .patch("cm", &PatchParams::default(), &Patch::Strategic(&bad))
        .await
        .unwrap_err();
    match error {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 500);
            assert_eq!(
                status.message,
                "unknown patch type: sideways in map: map[$patch:sideways]"
            );
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    let bad = json!({"metadata": {"$deleteFromPrimitiveList": ["x"]}});
    let error = cms
        .patch("cm", &PatchParams::default(), &Patch::Strategic(&bad))
        .await
        .unwrap_err();
    assert_eq!(api_error(error), (400, "BadRequest".into()));
    let patched = cms
        .patch(
            "cm",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"a": null, "b": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.data.unwrap(),
        [("b".to_owned(), "2".to_owned())].into()
    );
}

/// The deployment's containers as `name=image[env names]` strings.
fn container_summary(binary: &std::path::Path, server: &KflexServer, name: &str) -> String {
    check(
        binary,
        &kubectl(
            binary,
            server,
            &[
                "get",
                "deployment",
                name,
                "-o",
                r#"jsonpath={range .spec.template.spec.containers[*]}{.name}={.image}[{range .env[*]}{.name},{end}] {end}"#,
            ],
        ),
    )
}

#[test]
fn kubectl_sends_strategic_patches() {
    let server = KflexServer::start();
    for binary in kubectls() {
        let version = crate::support::version_suffix(&binary);
        let name = format!("web{version}");
        let kubectl = |args: &[&str]| kubectl(&binary, &server, args);
        let manifest = server.data_dir.path().join(format!("{name}.json"));
        let write = |containers: Value| {
            std::fs::write(&manifest, deployment(&name, containers).to_string()).unwrap()
        };
        write(json!([
            {"name": "app", "image": "app:1",
             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "side", "image": "side:1"},
        ]));
        check(
            &binary,
            &kubectl(&["apply", "-f", manifest.to_str().unwrap()]),
        );
        assert_eq!(
            container_summary(&binary, &server, &name),
            "app=app:1[A,B,] side=side:1[] ",
            "{}",
            binary.display()
        );
        // The second apply sends a strategic merge patch computed from the last applied
        // configuration: the removed container and env var go, the image changes.
        write(json!([
            {"name": "app", "image": "app:2", "env": [{"name": "A", "value": "1"}]},
        ]));
        check(
            &binary,
            &kubectl(&["apply", "-f", manifest.to_str().unwrap()]),
        );
        assert_eq!(
            container_summary(&binary, &server, &name),
            "app=app:2[A,] ",
            "{}",
            binary.display()
        );

        check(
            &binary,
            &kubectl(&[
                "patch",
                "deployment",
                &name,
                "-p",
                r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"C","value":"3"}]}]}}}}"#,
            ]),
        );
        // `kubectl patch` sends no `$setElementOrder`: the new env var goes first.
        assert_eq!(
            container_summary(&binary, &server, &name),
            "app=app:2[C,A,] ",
            "{}",
            binary.display()
        );

        check(
            &binary,
            &kubectl(&["set", "image", &format!("deployment/{name}"), "app=app:3"]),
        );
        assert_eq!(
            container_summary(&binary, &server, &name),
            "app=app:3[C,A,] ",
            "{}",
            binary.display()
        );

        check(
            &binary,
            &kubectl(&["rollout", "restart", &format!("deployment/{name}")]),
        );
        let restarted = check(
            &binary,
            &kubectl(&[
                "get",
                "deployment",
                &name,
                "-o",
                r#"jsonpath={.spec.template.metadata.annotations.kubectl\.kubernetes\.io/restartedAt}"#,
            ]),
        );
        assert!(!restarted.is_empty(), "{}", binary.display());

        check(
            &binary,
            &kubectl(&["scale", "deployment", &name, "--replicas=3"]),
        );
        let replicas = check(
            &binary,
            &kubectl(&[
                "get",
                "deployment",
                &name,
                "-o",
                "jsonpath={.spec.replicas}",
            ]),
        );
        assert_eq!(replicas, "3", "{}", binary.display());
        assert_eq!(
            container_summary(&binary, &server, &name),
            "app=app:3[C,A,] ",
            "{}",
            binary.display()
        );
    }
}
