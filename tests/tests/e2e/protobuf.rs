//! kubectl 1.32+ sends protobuf request bodies for built-in kinds: every `kubectl create
//! <kind>` must create what kubectl 1.31, which sends JSON, creates for the same command.

use crate::support::{check, kubectl, kubectls};
use kflex_e2e::KflexServer;
use serde_json::Value;
use std::path::PathBuf;

/// `kubectl create` commands (`{}` is the object's name) and the resource to read back.
const COMMANDS: &[(&str, &[&str])] = &[
    (
        "configmap",
        &[
            "create",
            "configmap",
            "{}",
            "--from-literal=a=b",
            "--from-literal=empty=",
        ],
    ),
    (
        "secret",
        &[
            "create",
            "secret",
            "generic",
            "{}",
            "--from-literal=password=s3cret",
        ],
    ),
    (
        "deployment",
        &[
            "create",
            "deployment",
            "{}",
            "--image=nginx:1.27",
            "--replicas=3",
            "--port=80",
        ],
    ),
    ("namespace", &["create", "namespace", "{}"]),
    (
        "service",
        &["create", "service", "clusterip", "{}", "--tcp=80:8080"],
    ),
    (
        "job",
        &["create", "job", "{}", "--image=busybox", "--", "date"],
    ),
    (
        "cronjob",
        &[
            "create",
            "cronjob",
            "{}",
            "--image=busybox",
            "--schedule=*/5 * * * *",
        ],
    ),
    (
        "role",
        &["create", "role", "{}", "--verb=get", "--resource=pods"],
    ),
    (
        "rolebinding",
        &[
            "create",
            "rolebinding",
            "{}",
            "--role=viewer",
            "--user=alice",
        ],
    ),
    (
        "clusterrole",
        &[
            "create",
            "clusterrole",
            "{}",
            "--verb=list",
            "--resource=nodes",
        ],
    ),
    (
        "clusterrolebinding",
        &[
            "create",
            "clusterrolebinding",
            "{}",
            "--clusterrole=viewer",
            "--group=devs",
        ],
    ),
    ("serviceaccount", &["create", "serviceaccount", "{}"]),
    (
        "priorityclass",
        &[
            "create",
            "priorityclass",
            "{}",
            "--value=1000",
            "--description=important",
        ],
    ),
    (
        "resourcequota",
        &["create", "quota", "{}", "--hard=cpu=1,memory=1G,pods=2"],
    ),
    (
        "poddisruptionbudget",
        &[
            "create",
            "pdb",
            "{}",
            "--selector=app=web",
            "--min-available=1",
        ],
    ),
    (
        "ingress",
        &["create", "ingress", "{}", "--rule=example.com/api=api:8080"],
    ),
    (
        "service",
        &["create", "service", "nodeport", "{}", "--tcp=443:8443"],
    ),
    (
        "service",
        &[
            "create",
            "service",
            "externalname",
            "{}",
            "--external-name=example.com",
        ],
    ),
    (
        "secret",
        &[
            "create",
            "secret",
            "docker-registry",
            "{}",
            "--docker-server=registry.example.com",
            "--docker-username=u",
            "--docker-password=p",
        ],
    ),
    (
        "deployment",
        &[
            "create",
            "deployment",
            "{}",
            "--image=nginx",
            "--image=busybox",
        ],
    ),
    (
        "poddisruptionbudget",
        &[
            "create",
            "pdb",
            "{}",
            "--selector=app=db",
            "--max-unavailable=50%",
        ],
    ),
    (
        "clusterrole",
        &[
            "create",
            "clusterrole",
            "{}",
            "--aggregation-rule=rbac.example.com/aggregate=true",
        ],
    ),
    (
        "resourcequota",
        &[
            "create",
            "quota",
            "{}",
            "--hard=pods=5",
            "--scopes=BestEffort",
        ],
    ),
];

/// The kubectl of `minor`, if installed.
fn kubectl_of(all: &[PathBuf], minor: u32) -> Option<PathBuf> {
    let suffix = format!(".1.{minor}");
    all.iter()
        .find(|p| p.to_string_lossy().ends_with(&suffix))
        .cloned()
}

/// The object as read back, without what the server sets per object, with its name
/// (which also appears in labels and selectors) replaced by `NAME`, and without `null`
/// fields: Go reads `null` and absence as the same value (`"rules": null` is how Go writes
/// a nil slice of a field without `omitempty`; protobuf has no way to say it).
fn comparable(object: &str, name: &str) -> Value {
    fn drop_nulls(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.retain(|_, v| !v.is_null());
                map.values_mut().for_each(drop_nulls);
            }
            Value::Array(items) => items.iter_mut().for_each(drop_nulls),
            _ => {}
        }
    }
    let mut object: Value = serde_json::from_str(&object.replace(name, "NAME")).unwrap();
    let meta = object["metadata"].as_object_mut().unwrap();
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
    ] {
        meta.remove(field);
    }
    drop_nulls(&mut object);
    // What the server allocates (cluster IPs, node ports) or derives from the uid (a Job's
    // controller-uid labels) differs from object to object.
    for path in [
        "/spec/selector/matchLabels",
        "/spec/template/metadata/labels",
    ] {
        if let Some(labels) = object.pointer_mut(path).and_then(Value::as_object_mut) {
            labels.retain(|key, _| !key.ends_with("controller-uid"));
        }
    }
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
        for port in spec
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(port) = port.as_object_mut() {
                port.remove("nodePort");
            }
        }
    }
    object
}

#[test]
fn kubectl_protobuf_bodies_create_what_json_bodies_create() {
    let all = kubectls();
    let Some(json_kubectl) = kubectl_of(&all, 31) else {
        eprintln!("kubectl 1.31 is not installed: skipping");
        return;
    };
    let protobuf_kubectls: Vec<(u32, PathBuf)> = [32, 33]
        .into_iter()
        .filter_map(|minor| Some((minor, kubectl_of(&all, minor)?)))
        .collect();
    if protobuf_kubectls.is_empty() {
        eprintln!("neither kubectl 1.32 nor 1.33 is installed: skipping");
        return;
    }
    let server = KflexServer::start();
    let create_and_read = |binary: &PathBuf, resource: &str, args: &[&str], name: &str| {
        let args: Vec<String> = args.iter().map(|a| a.replace("{}", name)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        check(binary, &kubectl(binary, &server, &args));
        let out = kubectl(binary, &server, &["get", resource, name, "-o", "json"]);
        comparable(&check(binary, &out), name)
    };
    let mut differences = Vec::new();
    for (i, (resource, args)) in COMMANDS.iter().enumerate() {
        let name = format!("{resource}-{i}-json");
        let expected = create_and_read(&json_kubectl, resource, args, &name);
        for (minor, binary) in &protobuf_kubectls {
            let name = format!("{resource}-{i}-pb{minor}");
            let created = create_and_read(binary, resource, args, &name);
            if created != expected {
                differences.push(format!(
                    "kubectl 1.{minor} create {resource} (protobuf):\n  {created}\nkubectl 1.31 (JSON):\n  {expected}"
                ));
            }
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// A length-delimited protobuf field (all the envelope needs).
fn field(tag: u8, bytes: &[u8]) -> Vec<u8> {
    assert!(bytes.len() < 128, "short fields only");
    let mut out = vec![tag << 3 | 2, bytes.len() as u8];
    out.extend(bytes);
    out
}

/// `k8s\0` and a `runtime.Unknown` of `kind` whose object is `raw`.
fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let type_meta = [field(1, api_version.as_bytes()), field(2, kind.as_bytes())].concat();
    [b"k8s\0".to_vec(), field(1, &type_meta), field(2, raw)].concat()
}

/// Sends a protobuf body; the answer's code and text (the Status message for errors).
async fn send_protobuf(
    client: &kube::Client,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, String) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/vnd.kubernetes.protobuf")
        .header("accept", "application/json")
        .body(body)
        .unwrap();
    match client.request_text(request).await {
        Ok(text) => (200, text),
        Err(kube::Error::Api(status)) => (status.code, status.message.clone()),
        Err(other) => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bad_protobuf_bodies_get_upstreams_400s() {
    let server = KflexServer::start();
    let client = crate::support::client(&server).await;
    let path = "/api/v1/namespaces/default/configmaps";
    let (code, message) = send_protobuf(&client, "POST", path, b"not protobuf".to_vec()).await;
    assert_eq!(code, 400);
    assert!(
        message.starts_with(
            "the object provided is unrecognized (must be of type ConfigMap): provided data \
             does not appear to be a protobuf message"
        ),
        "{message}"
    );
    // ObjectMeta{name: "x"} as a ConfigMap, then cut short.
    let config_map = field(1, &field(1, b"x"));
    let (code, message) = send_protobuf(
        &client,
        "POST",
        path,
        envelope("v1", "ConfigMap", &config_map[..3]),
    )
    .await;
    assert_eq!(
        (code, message.as_str()),
        (
            400,
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: unexpected EOF"
        )
    );
    let (code, message) =
        send_protobuf(&client, "POST", path, envelope("v1", "Secret", &config_map)).await;
    assert_eq!(
        (code, message.as_str()),
        (
            400,
            "the kind in the data (Secret) does not match the expected kind (ConfigMap)"
        )
    );
    let (code, message) = send_protobuf(
        &client,
        "POST",
        path,
        envelope("v1", "ConfigMap", &config_map),
    )
    .await;
    assert_eq!(code, 200, "{message}");
    let created: Value = serde_json::from_str(&message).unwrap();
    assert_eq!(created["metadata"]["name"], "x");
}

#[tokio::test]
async fn protobuf_bodies_update_and_evict() {
    let server = KflexServer::start();
    let client = crate::support::client(&server).await;
    let path = "/api/v1/namespaces/default/configmaps";
    let meta = field(1, &field(1, b"settings"));
    let created = send_protobuf(&client, "POST", path, envelope("v1", "ConfigMap", &meta)).await;
    assert_eq!(created.0, 200, "{}", created.1);
    // data: {a: c}, a map entry {1: key, 2: value}.
    let updated = [meta, field(2, &[field(1, b"a"), field(2, b"c")].concat())].concat();
    let (code, text) = send_protobuf(
        &client,
        "PUT",
        &format!("{path}/settings"),
        envelope("v1", "ConfigMap", &updated),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    let configmaps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), "default");
    let read = configmaps.get("settings").await.unwrap();
    assert_eq!(
        read.data,
        Some(std::collections::BTreeMap::from([("a".into(), "c".into())]))
    );

    crate::support::default_service_account(&client, "default").await;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), "default");
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "evicted"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    pods.create(&kube::api::PostParams::default(), &pod)
        .await
        .unwrap();
    let eviction = envelope("policy/v1", "Eviction", &field(1, &field(1, b"evicted")));
    let (code, text) = send_protobuf(
        &client,
        "POST",
        "/api/v1/namespaces/default/pods/evicted/eviction",
        eviction,
    )
    .await;
    assert_eq!(code, 200, "{text}");
    assert!(pods.get_opt("evicted").await.unwrap().is_none());
}

#[tokio::test]
async fn protobuf_bodies_scale_and_delete() {
    let server = KflexServer::start();
    let client = crate::support::client(&server).await;
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(client.clone(), "default");
    let deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}
            }
        }
    }))
    .unwrap();
    deployments
        .create(&kube::api::PostParams::default(), &deployment)
        .await
        .unwrap();
    // Scale{metadata: {name: web}, spec: {replicas: 5}}, as client-go's UpdateScale sends it.
    let scale = [field(1, &field(1, b"web")), field(2, &[0x08, 5])].concat();
    let (code, text) = send_protobuf(
        &client,
        "PUT",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
        envelope("autoscaling/v1", "Scale", &scale),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    let read = deployments.get("web").await.unwrap();
    assert_eq!(read.spec.unwrap().replicas, Some(5));

    // DeleteOptions{dryRun: ["All"]} deletes nothing; without it the object goes.
    let path = "/apis/apps/v1/namespaces/default/deployments/web";
    let dry_run = envelope("apps/v1", "DeleteOptions", &field(5, b"All"));
    let (code, text) = send_protobuf(&client, "DELETE", path, dry_run).await;
    assert_eq!(code, 200, "{text}");
    assert!(deployments.get_opt("web").await.unwrap().is_some());
    let (code, text) = send_protobuf(
        &client,
        "DELETE",
        path,
        envelope("apps/v1", "DeleteOptions", &[]),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    assert!(deployments.get_opt("web").await.unwrap().is_none());
}
