//! OpenAPI publication and field validation, as kube-rs (raw requests) and every kubectl
//! version see them: `/openapi/v3` and its group-version documents with hash caching,
//! `/openapi/v2` as JSON and protobuf, `fieldValidation` on writes, and kubectl's `apply`,
//! `create` and `explain` without `--validate=false`.

use crate::support::{api_error, check, client, kubectl, kubectls};
use http_body_util::BodyExt;
use kflex_e2e::KflexServer;
use serde_json::{json, Value};

/// A raw request's status, headers and body.
async fn send(
    client: &kube::Client,
    request: http::Request<Vec<u8>>,
) -> (u16, http::HeaderMap, bytes::Bytes) {
    let (parts, body) = request.into_parts();
    let response = client
        .send(http::Request::from_parts(parts, body.into()))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body)
}

fn get(path: &str) -> http::request::Builder {
    http::Request::get(path)
}

#[tokio::test]
async fn openapi_v3_documents_are_listed_by_hash_and_cached_for_good() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let root: Value = serde_json::from_str(
        &client
            .request_text(get("/openapi/v3").body(Vec::new()).unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(root["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .starts_with("/openapi/v3/api/v1?hash="));
    let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_owned();
    let hash = url.split_once("hash=").unwrap().1.to_owned();

    let (status, headers, body) = send(
        &client,
        get(&url)
            .header("accept", "application/json")
            .body(Vec::new())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "public, immutable");
    assert_eq!(headers["etag"], format!("\"{hash}\""));
    assert!(headers.contains_key("expires"));
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["openapi"], "3.0.0");
    let create = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["post"];
    assert_eq!(create["x-kubernetes-action"], "post");
    assert_eq!(
        create["x-kubernetes-group-version-kind"],
        json!({"group": "apps", "kind": "Deployment", "version": "v1"})
    );
    let params: Vec<&str> = create["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(params.contains(&"fieldValidation") && params.contains(&"dryRun"));
    let deployment = &doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        deployment["x-kubernetes-group-version-kind"][0]["kind"],
        "Deployment"
    );
    assert!(
        doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"]
            .is_object()
    );

    // The client's copy is current: 304 without a body.
    let (status, _, body) = send(
        &client,
        get(&url)
            .header("if-none-match", format!("\"{hash}\""))
            .body(Vec::new())
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.len()), (304, 0));
    // A stale hash is redirected to the current one.
    let (status, headers, _) = send(
        &client,
        get("/openapi/v3/apis/apps/v1?hash=stale")
            .body(Vec::new())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 301);
    assert_eq!(headers["location"], format!("v1?hash={hash}"));
    // Without a hash the document is served, but not as immutable.
    let (status, headers, _) =
        send(&client, get("/openapi/v3/api/v1").body(Vec::new()).unwrap()).await;
    assert_eq!(status, 200);
    assert!(!headers.contains_key("cache-control"));

    // Group-versions the control plane does not serve are not found, as a Status.
    for path in [
        "/openapi/v3/apis/example.com/v1",
        "/openapi/v3/apis/apps/v2",
        "/openapi/v4",
    ] {
        let (code, reason) = api_error(
            client
                .request::<Value>(get(path).body(Vec::new()).unwrap())
                .await
                .unwrap_err(),
        );
        assert_eq!((code, reason.as_str()), (404, "NotFound"), "{path}");
    }
}

#[tokio::test]
async fn openapi_v2_is_served_as_json_and_as_protobuf() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let (status, headers, body) = send(
        &client,
        get("/openapi/v2")
            .header("accept", "application/json")
            .body(Vec::new())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    let swagger: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(swagger["swagger"], "2.0");
    let patch = &swagger["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
    assert_eq!(patch["x-kubernetes-action"], "patch");
    assert!(patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
    assert_eq!(
        swagger["definitions"]["io.k8s.api.core.v1.Pod"]["properties"]["spec"]["$ref"],
        "#/definitions/io.k8s.api.core.v1.PodSpec"
    );

    let etag = headers["etag"].clone();
    let (status, _, _) = send(
        &client,
        get("/openapi/v2")
            .header("accept", "application/json")
            .header("if-none-match", etag)
            .body(Vec::new())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 304);

    let (status, headers, body) = send(
        &client,
        get("/openapi/v2")
            .header(
                "accept",
                "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
            )
            .body(Vec::new())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["content-type"],
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    );
    // Field 1 of gnostic's Document is `swagger`: "2.0".
    assert_eq!(&body[..5], b"\x0a\x032.0");
}

/// A ConfigMap manifest with an unknown field `bogus` and a duplicate `data`.
const BAD_CONFIGMAP: &str = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"NAME"},"bogus":1,"data":{"a":"1"},"data":{"a":"2"}}"#;

fn post_configmap(name: &str, query: &str) -> http::Request<Vec<u8>> {
    http::Request::post(format!("/api/v1/namespaces/default/configmaps{query}"))
        .header("content-type", "application/json")
        .body(BAD_CONFIGMAP.replace("NAME", name).into_bytes())
        .unwrap()
}

#[tokio::test]
async fn field_validation_fails_warns_or_ignores_as_asked() {
    let server = KflexServer::start();
    let client = client(&server).await;

    let (status, _, body) =
        send(&client, post_configmap("strict", "?fieldValidation=Strict")).await;
    assert_eq!(status, 400);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["reason"], "BadRequest");
    assert_eq!(
        error["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"bogus\", duplicate field \"data\""
    );

    // Warn is the default: one Warning header per problem; the unknown field is dropped and
    // the last duplicate counts.
    let (status, headers, body) = send(&client, post_configmap("warned", "")).await;
    assert_eq!(status, 201);
    let warnings: Vec<&str> = headers
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        warnings,
        [
            r#"299 - "unknown field \"bogus\"""#,
            r#"299 - "duplicate field \"data\"""#
        ]
    );
    let created: Value = serde_json::from_slice(&body).unwrap();
    assert!(created.get("bogus").is_none());
    assert_eq!(created["data"], json!({"a": "2"}));

    let (status, headers, _) = send(
        &client,
        post_configmap("ignored", "?fieldValidation=Ignore"),
    )
    .await;
    assert_eq!(status, 201);
    assert!(!headers.contains_key("warning"));

    let (status, _, body) = send(&client, post_configmap("loud", "?fieldValidation=Loud")).await;
    assert_eq!(status, 422);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["details"]["kind"], "CreateOptions");

    // Updates are checked like creates.
    let current: Value = client
        .request(
            get("/api/v1/namespaces/default/configmaps/warned")
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut replaced = current.clone();
    replaced["spec"] = json!({"nope": true});
    let (status, _, body) = send(
        &client,
        http::Request::put("/api/v1/namespaces/default/configmaps/warned?fieldValidation=Strict")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&replaced).unwrap())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));

    // Patches: the patched object is checked; Strict is a 422 on the field `patch`.
    let patch = |query: &str| {
        http::Request::patch(format!(
            "/api/v1/namespaces/default/configmaps/warned{query}"
        ))
        .header("content-type", "application/merge-patch+json")
        .body(br#"{"metadata":{"labels":{"a":"b"}},"extra":{"x":1}}"#.to_vec())
        .unwrap()
    };
    let (status, _, body) = send(&client, patch("?fieldValidation=Strict")).await;
    assert_eq!(status, 422);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["details"]["causes"][0]["field"], "patch");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .ends_with("strict decoding error: unknown field \"extra\""));
    let (status, headers, body) = send(&client, patch("")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["warning"], r#"299 - "unknown field \"extra\"""#);
    let patched: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(patched["metadata"]["labels"]["a"], "b");
    assert!(patched.get("extra").is_none());
}

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: NAME
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {app: NAME}
  template:
    metadata:
      labels: {app: NAME}
    spec:
      containers:
      - name: web
        image: nginx
EXTRA"#;

#[test]
fn kubectl_applies_creates_and_explains_with_openapi() {
    let server = KflexServer::start();
    for (i, binary) in kubectls().iter().enumerate() {
        let kubectl = |args: &[&str]| kubectl(binary, &server, args);
        let write = |file: &str, name: &str, extra: &str| {
            let path = server.data_dir.path().join(format!("{file}-{i}.yaml"));
            std::fs::write(
                &path,
                DEPLOYMENT.replace("NAME", name).replace("EXTRA", extra),
            )
            .unwrap();
            path.to_str().unwrap().to_owned()
        };
        let name = format!("web{i}");
        let good = write("good", &name, "");
        let out = check(binary, &kubectl(&["apply", "-f", &good]));
        assert!(out.contains("created"), "{}: {out}", binary.display());
        let replicas = check(
            binary,
            &kubectl(&[
                "get",
                "deployment",
                &name,
                "-o",
                "jsonpath={.spec.replicas}",
            ]),
        );
        assert_eq!(replicas, "2", "{}", binary.display());

        let bad = write("bad", &format!("bad{i}"), "        extra: field\n");
        let out = kubectl(&["apply", "-f", &bad]);
        crate::support::check_fails(
            binary,
            &out,
            "strict decoding error: unknown field \"spec.template.spec.containers[0].extra\"",
        );

        let created = write("created", &format!("created{i}"), "");
        check(binary, &kubectl(&["create", "-f", &created]));

        let out = check(binary, &kubectl(&["explain", "deployment.spec.replicas"]));
        assert!(
            out.contains("replicas <integer>"),
            "{}: {out}",
            binary.display()
        );
        let out = check(binary, &kubectl(&["explain", "pods.spec.containers"]));
        assert!(
            out.contains("containers <[]Container>"),
            "{}: {out}",
            binary.display()
        );
        assert!(out.contains("image"), "{}: {out}", binary.display());
    }
}

/// A tenant's documents name URLs under its own prefix: kubectl reaches them through
/// `/clusters/<name>/` (v3 for 1.29+, v2 for 1.27/1.28).
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_explains_and_applies_on_a_tenant() {
    use kflex_controlplane::authn::{Authenticator, User};
    use kflex_controlplane::{ControlPlane, Router};
    use kflex_storage_backends::sqlite::{SqliteOptions, SqliteStore};
    use std::sync::Arc;

    let binaries = kubectls();
    let dir = tempfile::tempdir().unwrap();
    let plane = |name: &'static str| {
        let mut authn = Authenticator::default();
        authn.add_token(
            format!("token-of-{name}"),
            User {
                name: format!("{name}-admin"),
                uid: String::new(),
                groups: vec!["system:masters".into()],
                ..Default::default()
            },
        );
        let path = dir.path().join(format!("{name}.db"));
        async move {
            let store = SqliteStore::open(path, SqliteOptions::default())
                .await
                .unwrap();
            ControlPlane::start(name, Arc::new(store), authn)
                .await
                .unwrap()
        }
    };
    let router = Arc::new(Router::new(plane("host").await));
    router.add_tenant(plane("t").await);
    let served = crate::support::InProcess::serve(router).await;
    let (port, server_ca) = (served.port, &served.server_ca);
    let ca = serde_json::to_value(k8s_openapi::ByteString(
        server_ca.certificate.cert_pem.as_bytes().to_vec(),
    ))
    .unwrap();
    let kubeconfig = dir.path().join("tenant.kubeconfig");
    std::fs::write(
        &kubeconfig,
        serde_json::to_vec(&json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "t", "cluster": {
                "server": format!("https://127.0.0.1:{port}/clusters/t"),
                "certificate-authority-data": ca,
            }}],
            "users": [{"name": "t", "user": {"token": "token-of-t"}}],
            "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
            "current-context": "t",
        }))
        .unwrap(),
    )
    .unwrap();
    let manifest = dir.path().join("deployment.yaml");
    let checks = tokio::task::spawn_blocking(move || {
        for (i, binary) in binaries.iter().enumerate() {
            let run = |args: &[&str]| {
                std::process::Command::new(binary)
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .arg("--cache-dir")
                    .arg(kubeconfig.with_extension(format!("cache{i}")))
                    .args(args)
                    .output()
                    .unwrap()
            };
            let out = check(binary, &run(&["explain", "deployment.spec.replicas"]));
            assert!(
                out.contains("replicas <integer>"),
                "{}: {out}",
                binary.display()
            );
            std::fs::write(
                &manifest,
                DEPLOYMENT
                    .replace("NAME", &format!("tenant{i}"))
                    .replace("EXTRA", ""),
            )
            .unwrap();
            let out = run(&["apply", "-f", manifest.to_str().unwrap(), "-v=6"]);
            let log = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{}: {log}", binary.display());
            assert!(
                log.contains("fieldValidation=Strict"),
                "{}: {log}",
                binary.display()
            );
        }
    });
    let result = checks.await;
    served.stop().await;
    result.unwrap();
}
