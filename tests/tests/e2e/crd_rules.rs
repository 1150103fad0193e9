//! CRD validation rules (`x-kubernetes-validations`, CEL) through the real binary: a CRD
//! whose rule does not compile is refused, and custom resources that break a rule (on
//! create, update, patch, apply and `/status`) get upstream's 422 with the rule's message,
//! reason and field path, through kube-rs and kubectl.

use crate::support::{check, check_fails, client, kubectl, kubectls};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kflex_e2e::KflexServer;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{json, Value};
use std::time::Duration;

/// A namespaced `Pool` CRD whose schema carries rules: a cross-field rule with a
/// `messageExpression`, `fieldPath` and `reason`, a limit, an immutable field (a
/// transition rule), a rule on the items of a map list, and one on the status.
fn pool_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "pools.rules.example.com"},
        "spec": {
            "group": "rules.example.com",
            "scope": "Namespaced",
            "names": {"plural": "pools", "singular": "pool", "kind": "Pool"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "x-kubernetes-validations": [{
                                "rule": "self.minReplicas <= self.replicas",
                                "messageExpression": "'minReplicas ' + string(self.minReplicas) + ' is above replicas ' + string(self.replicas)",
                                "fieldPath": ".minReplicas",
                                "reason": "FieldValueForbidden",
                            }],
                            "properties": {
                                "replicas": {"type": "integer", "x-kubernetes-validations": [
                                    {"rule": "self <= 10", "message": "replicas must be at most 10"},
                                ]},
                                "minReplicas": {"type": "integer", "default": 0},
                                "class": {"type": "string", "x-kubernetes-validations": [
                                    {"rule": "self == oldSelf", "message": "class is immutable"},
                                ]},
                                "ports": {
                                    "type": "array",
                                    "x-kubernetes-list-type": "map",
                                    "x-kubernetes-list-map-keys": ["name"],
                                    "items": {
                                        "type": "object",
                                        "required": ["name"],
                                        "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                                        "x-kubernetes-validations": [{"rule": "self.port > 1024 && self.name.lowerAscii() == self.name"}],
                                    },
                                },
                            },
                        },
                        "status": {
                            "type": "object",
                            "properties": {"ready": {"type": "integer"}},
                            "x-kubernetes-validations": [{"rule": "self.ready >= 0", "message": "ready cannot be negative"}],
                        },
                    },
                }},
            }],
        },
    })
}

fn pools(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("rules.example.com", "v1", "Pool");
    Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, "pools"),
    )
}

fn pool(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "rules.example.com/v1",
        "kind": "Pool",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

/// The 422 of a refused write: its message and its causes as `reason field: message`.
fn invalid(error: kube::Error) -> (String, Vec<String>) {
    let kube::Error::Api(status) = error else {
        panic!("expected a Status, got {error:?}")
    };
    assert_eq!(
        (status.code, status.reason.as_str()),
        (422, "Invalid"),
        "{}",
        status.message
    );
    let causes = status
        .details
        .map(|d| d.causes)
        .unwrap_or_default()
        .into_iter()
        .map(|c| format!("{} {}: {}", c.reason, c.field, c.message))
        .collect();
    (status.message, causes)
}

/// Installs the `Pool` CRD by server-side apply, as large CRDs (Gateway API's) must be
/// installed, and waits until it is established.
async fn install(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(pool_crd()).unwrap();
    crds.patch(
        "pools.rules.example.com",
        &PatchParams::apply("rules-test"),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(
            crds,
            "pools.rules.example.com",
            conditions::is_crd_established(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
}

#[tokio::test]
async fn crd_rules_that_do_not_compile_refuse_the_crd() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut crd = pool_crd();
    let spec = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    spec["x-kubernetes-validations"] = json!([
        {"rule": "self.replicas >"},
        {"rule": "self.class.isURL()"},
    ]);
    let error = crds
        .create(
            &PostParams::default(),
            &serde_json::from_value(crd).unwrap(),
        )
        .await
        .unwrap_err();
    let (message, causes) = invalid(error);
    let rules = "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations";
    assert!(
        message.starts_with(&format!(
            "CustomResourceDefinition.apiextensions.k8s.io \"pools.rules.example.com\" is invalid: [{rules}[0].rule: Invalid value: ...: compilation failed: ERROR: <input>:1:16: Syntax error:"
        )),
        "{message}"
    );
    assert_eq!(causes.len(), 2, "{causes:?}");
    assert!(causes[0].starts_with(&format!("FieldValueInvalid {rules}[0].rule: Invalid value: ...: compilation failed: ERROR: <input>:1:16: Syntax error:")), "{causes:?}");
    assert_eq!(
        causes[1],
        format!("FieldValueInvalid {rules}[1].rule: Invalid value: ...: compilation failed: ERROR: <input>:1:17: function 'isURL' is not supported by this server")
    );
}

#[tokio::test]
async fn crd_rules_validate_custom_resource_writes() {
    let server = KflexServer::start();
    let client = client(&server).await;
    install(&client).await;
    let pools = pools(&client);
    let create = |object: DynamicObject| {
        let pools = pools.clone();
        async move { pools.create(&PostParams::default(), &object).await }
    };

    // Objects that keep the rules are stored (minReplicas defaulted before the rules run).
    let good = json!({"replicas": 3, "class": "gold", "ports": [{"name": "http", "port": 8080}]});
    create(pool("good", good.clone())).await.unwrap();

    // A scalar rule's message, with the schema type as the invalid value.
    let (message, causes) = invalid(
        create(pool("many", json!({"replicas": 11})))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        message,
        "Pool.rules.example.com \"many\" is invalid: spec.replicas: Invalid value: \"integer\": replicas must be at most 10"
    );
    assert_eq!(
        causes,
        vec!["FieldValueInvalid spec.replicas: Invalid value: \"integer\": replicas must be at most 10"]
    );

    // messageExpression, fieldPath and reason of an object's rule.
    let (message, causes) = invalid(
        create(pool("low", json!({"replicas": 3, "minReplicas": 5})))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        message,
        "Pool.rules.example.com \"low\" is invalid: spec.minReplicas: Forbidden: minReplicas 5 is above replicas 3"
    );
    assert_eq!(
        causes,
        vec!["FieldValueForbidden spec.minReplicas: Forbidden: minReplicas 5 is above replicas 3"]
    );

    // A rule on list items, with the default message; every failure is reported.
    let (message, causes) = invalid(
        create(pool(
            "ports",
            json!({"replicas": 12, "ports": [{"name": "http", "port": 8080}, {"name": "SSH", "port": 22}]}),
        ))
        .await
        .unwrap_err(),
    );
    let item = "spec.ports[1]: Invalid value: \"object\": failed rule: self.port > 1024 && self.name.lowerAscii() == self.name";
    let replicas = "spec.replicas: Invalid value: \"integer\": replicas must be at most 10";
    assert_eq!(
        message,
        format!("Pool.rules.example.com \"ports\" is invalid: [{item}, {replicas}]")
    );
    assert_eq!(
        causes,
        vec![
            format!("FieldValueInvalid {item}"),
            format!("FieldValueInvalid {replicas}"),
        ]
    );

    // The transition rule: class may not change on update or patch, and is not checked on
    // create.
    let mut changed = pools.get("good").await.unwrap();
    changed.data["spec"]["class"] = json!("silver");
    let (message, causes) = invalid(
        pools
            .replace("good", &PostParams::default(), &changed)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        message,
        "Pool.rules.example.com \"good\" is invalid: spec.class: Invalid value: \"string\": class is immutable"
    );
    assert_eq!(
        causes,
        vec!["FieldValueInvalid spec.class: Invalid value: \"string\": class is immutable"]
    );
    let patch = Patch::Merge(json!({"spec": {"class": "bronze"}}));
    let (message, _) = invalid(
        pools
            .patch("good", &PatchParams::default(), &patch)
            .await
            .unwrap_err(),
    );
    assert!(
        message.ends_with("spec.class: Invalid value: \"string\": class is immutable"),
        "{message}"
    );
    let patch = Patch::Merge(json!({"spec": {"replicas": 4}}));
    let patched = pools
        .patch("good", &PatchParams::default(), &patch)
        .await
        .unwrap();
    assert_eq!(patched.data["spec"]["replicas"], 4);

    // Server-side apply runs the rules too.
    let apply = PatchParams::apply("rules-test").force();
    let applied = pool("good", json!({"replicas": 20, "class": "gold"}));
    let (message, _) = invalid(
        pools
            .patch("good", &apply, &Patch::Apply(&applied))
            .await
            .unwrap_err(),
    );
    assert!(
        message.ends_with("spec.replicas: Invalid value: \"integer\": replicas must be at most 10"),
        "{message}"
    );

    // So does /status.
    let status = Patch::Merge(json!({"status": {"ready": -1}}));
    let (message, causes) = invalid(
        pools
            .patch_status("good", &PatchParams::default(), &status)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        message,
        "Pool.rules.example.com \"good\" is invalid: status: Invalid value: \"object\": ready cannot be negative"
    );
    assert_eq!(
        causes,
        vec!["FieldValueInvalid status: Invalid value: \"object\": ready cannot be negative"]
    );
    let status = Patch::Merge(json!({"status": {"ready": 2}}));
    let updated = pools
        .patch_status("good", &PatchParams::default(), &status)
        .await
        .unwrap();
    assert_eq!(updated.data["status"]["ready"], 2);
}

#[tokio::test]
async fn kubectl_shows_the_message_of_a_broken_crd_rule() {
    let server = KflexServer::start();
    install(&client(&server).await).await;
    let dir = server.data_dir.path();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: rules.example.com/v1\nkind: Pool\nmetadata: {name: big, namespace: default}\nspec: {replicas: 50}\n",
    )
    .unwrap();
    let good = dir.join("good.yaml");
    std::fs::write(
        &good,
        "apiVersion: rules.example.com/v1\nkind: Pool\nmetadata: {name: small, namespace: default}\nspec: {replicas: 5}\n",
    )
    .unwrap();
    let (bad, good) = (bad.to_str().unwrap(), good.to_str().unwrap());
    for binary in kubectls() {
        let run = |args: &[&str]| kubectl(&binary, &server, args);
        check_fails(
            &binary,
            &run(&["apply", "-f", bad]),
            "The Pool \"big\" is invalid: spec.replicas: Invalid value: \"integer\": replicas must be at most 10",
        );
        check(&binary, &run(&["apply", "-f", good]));
    }
}
