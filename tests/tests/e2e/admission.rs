//! The built-in admission plugins through the real binary, with kube-rs and kubectl:
//! ResourceQuota (charged atomically: 16 concurrent creators never pass `hard`, and
//! `status.used` follows creates, deletes and finished pods), LimitRanger (defaults on the
//! stored Pod, min/max refusals), PodSecurity (enforce refuses, warn sends `Warning`
//! headers, bad labels are invalid, tightening warns about existing pods), ServiceAccount
//! (the account and its token volume), node placement (a control plane's dedicated
//! nodes plus upstream's namespace annotations), PodSecurity's pinned versions and a control
//! plane's `spec.podSecurity` defaults and exemptions, DefaultTolerationSeconds, Priority
//! (PriorityClasses, the system ones, the global default), and the ControlPlane settings a
//! `host` or `external` control plane refuses. Errors are checked for upstream's code,
//! reason and message.

use crate::support::{check, client, default_service_account, kubectl, kubectls, send};
use k8s_openapi::api::core::v1::{
    LimitRange, Namespace, PersistentVolumeClaim, Pod, ResourceQuota, Service, ServiceAccount,
};
use kflex_e2e::KflexServer;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

fn object<T: k8s_openapi::serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a valid object")
}

/// A `Warning` header as the server sends `message`.
fn warning(message: &str) -> String {
    format!("299 - \"{}\"", message.replace('"', "\\\""))
}

/// Creates a namespace with labels and annotations, and its `default` ServiceAccount
/// (unless a controller already made it).
async fn namespace(client: &kube::Client, name: &str, labels: Value, annotations: Value) {
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &object(
                json!({"metadata": {"name": name, "labels": labels, "annotations": annotations}}),
            ),
        )
        .await
        .unwrap();
    default_service_account(client, name).await;
}

/// A one-container pod (container `c`) with `resources`.
fn pod(name: &str, resources: Value) -> Pod {
    object(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "nginx", "resources": resources}]},
    }))
}

async fn used(quotas: &Api<ResourceQuota>, name: &str) -> Value {
    let quota = quotas.get(name).await.unwrap();
    serde_json::to_value(quota.status.unwrap().used.unwrap()).unwrap()
}

/// Starts `creators` tasks that each try to create `each` pods at once; returns how many
/// were created and the messages of the refusals (all upstream's 403 Forbidden).
async fn create_concurrently(
    pods: &Api<Pod>,
    round: &str,
    creators: usize,
    each: usize,
) -> (usize, Vec<String>) {
    let tasks: Vec<_> = (0..creators)
        .map(|creator| {
            let pods = pods.clone();
            let round = round.to_owned();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for i in 0..each {
                    let name = format!("{round}-{creator}-{i}");
                    let created = pods
                        .create(
                            &PostParams::default(),
                            &pod(&name, json!({"requests": {"cpu": "100m"}})),
                        )
                        .await;
                    outcomes.push(created.map(|_| ()).map_err(|e| match e {
                        kube::Error::Api(status) => {
                            assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
                            status.message.replace(&name, "NAME")
                        }
                        other => panic!("{other:?}"),
                    }));
                }
                outcomes
            })
        })
        .collect();
    let mut created = 0;
    let mut refused = Vec::new();
    for task in tasks {
        for outcome in task.await.unwrap() {
            match outcome {
                Ok(()) => created += 1,
                Err(message) => refused.push(message),
            }
        }
    }
    (created, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_holds_under_sixteen_concurrent_creators() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let pp = PostParams::default();
    namespace(&client, "quota", json!({}), json!({})).await;
    let services: Api<Service> = Api::namespaced(client.clone(), "quota");
    for name in ["s1", "s2"] {
        services
            .create(
                &pp,
                &object(json!({"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}})),
            )
            .await
            .unwrap();
    }
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "quota");
    let hard = json!({"pods": "10", "requests.cpu": "2", "services": "3"});
    quotas
        .create(
            &pp,
            &object(json!({"metadata": {"name": "q"}, "spec": {"hard": hard}})),
        )
        .await
        .unwrap();
    // The status is counted as the quota is created: the services already there count.
    let status = serde_json::to_value(quotas.get("q").await.unwrap().status.unwrap()).unwrap();
    assert_eq!(status["hard"], hard);
    assert_eq!(
        status["used"],
        json!({"pods": "0", "requests.cpu": "0", "services": "2"})
    );

    services
        .create(
            &pp,
            &object(json!({"metadata": {"name": "s3"}, "spec": {"ports": [{"port": 80}]}})),
        )
        .await
        .unwrap();
    let refused = services
        .create(
            &pp,
            &object(json!({"metadata": {"name": "s4"}, "spec": {"ports": [{"port": 80}]}})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = refused else {
        panic!("an API error")
    };
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "services \"s4\" is forbidden: exceeded quota: q, requested: services=1, used: services=3, limited: services=3"
    );

    // A quota on cpu requests obliges every container to state one.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "quota");
    let refused = pods.create(&pp, &pod("bare", json!({}))).await.unwrap_err();
    let kube::Error::Api(status) = refused else {
        panic!("an API error")
    };
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        "pods \"bare\" is forbidden: failed quota: q: must specify requests.cpu for: c"
    );

    // 16 creators, 32 pods wanted, 10 allowed: exactly 10 are created.
    let (created, refusals) = create_concurrently(&pods, "a", 16, 2).await;
    assert_eq!(created, 10, "{refusals:?}");
    assert_eq!(refusals.len(), 22);
    for message in &refusals {
        assert_eq!(
            message,
            "pods \"NAME\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=10, limited: pods=10"
        );
    }
    assert_eq!(
        pods.list(&ListParams::default()).await.unwrap().items.len(),
        10
    );
    assert_eq!(
        used(&quotas, "q").await,
        json!({"pods": "10", "requests.cpu": "1", "services": "3"})
    );

    // Deletions give their usage back; the next round fills exactly the room they left.
    let names: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    for name in &names[..3] {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }
    assert_eq!(
        used(&quotas, "q").await,
        json!({"pods": "7", "requests.cpu": "700m", "services": "3"})
    );
    let (created, refusals) = create_concurrently(&pods, "b", 16, 1).await;
    assert_eq!((created, refusals.len()), (3, 13));
    assert_eq!(
        pods.list(&ListParams::default()).await.unwrap().items.len(),
        10
    );
    assert_eq!(
        used(&quotas, "q").await,
        json!({"pods": "10", "requests.cpu": "1", "services": "3"})
    );

    // A pod that finished no longer counts as a `pods` or compute user.
    let mut finished = pods.get_status(&names[3]).await.unwrap();
    finished.status.get_or_insert_with(Default::default).phase = Some("Succeeded".into());
    pods.replace_status(&names[3], &pp, &finished)
        .await
        .unwrap();
    assert_eq!(
        used(&quotas, "q").await,
        json!({"pods": "9", "requests.cpu": "900m", "services": "3"})
    );

    // Raising `hard` recounts from the namespace's objects.
    quotas
        .patch(
            "q",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hard": {"pods": "20"}}})),
        )
        .await
        .unwrap();
    let status = serde_json::to_value(quotas.get("q").await.unwrap().status.unwrap()).unwrap();
    assert_eq!(status["hard"]["pods"], json!("20"));
    assert_eq!(
        status["used"],
        json!({"pods": "9", "requests.cpu": "900m", "services": "3"})
    );

    // kubectl shows the usage against the limits.
    for binary in kubectls() {
        let out = check(
            &binary,
            &kubectl(&binary, &server, &["describe", "quota", "q", "-n", "quota"]),
        );
        assert!(
            out.lines().any(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                words == ["pods", "9", "20"]
            }),
            "{out}"
        );
    }
}

#[tokio::test]
async fn limit_ranges_default_and_bound_resources() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let pp = PostParams::default();
    namespace(&client, "limits", json!({}), json!({})).await;
    Api::<LimitRange>::namespaced(client.clone(), "limits")
        .create(
            &pp,
            &object(json!({"metadata": {"name": "lr"}, "spec": {"limits": [
                {"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
                 "defaultRequest": {"cpu": "100m", "memory": "128Mi"}, "max": {"cpu": "1"}},
                {"type": "PersistentVolumeClaim", "max": {"storage": "2Gi"}},
            ]}})),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "limits");
    let created = pods.create(&pp, &pod("bare", json!({}))).await.unwrap();
    let stored = serde_json::to_value(pods.get("bare").await.unwrap()).unwrap();
    assert_eq!(
        serde_json::to_value(&created).unwrap()["spec"],
        stored["spec"]
    );
    assert_eq!(
        stored["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}})
    );
    assert_eq!(
        stored["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        json!("LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c")
    );

    let refused = pods
        .create(&pp, &pod("big", json!({"limits": {"cpu": "2"}})))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = refused else {
        panic!("an API error")
    };
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
    );

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "limits");
    let claim = |name: &str, size: &str| -> PersistentVolumeClaim {
        object(json!({"metadata": {"name": name}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}))
    };
    claims.create(&pp, &claim("small", "1Gi")).await.unwrap();
    let refused = claims.create(&pp, &claim("huge", "5Gi")).await.unwrap_err();
    let kube::Error::Api(status) = refused else {
        panic!("an API error")
    };
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        "persistentvolumeclaims \"huge\" is forbidden: maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi"
    );
}

#[tokio::test]
async fn pod_security_enforces_warns_and_checks_labels() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let labels = json!({
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    });
    namespace(&client, "psa", labels, json!({})).await;
    let post =
        |path: &'static str, body: Value| send(&client, "POST", path, "application/json", body);
    const PODS: &str = "/api/v1/namespaces/psa/pods";
    let restricted_violations = "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
        unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
        runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
        seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")";

    // Baseline is met: created, with the restricted level's warning.
    let (code, warnings, _) = post(
        PODS,
        json!({"metadata": {"name": "plain"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(
        warnings,
        [warning(&format!(
            "would violate PodSecurity \"restricted:latest\": {restricted_violations}"
        ))]
    );

    // Baseline is not met: refused.
    let (code, _, status) = post(
        PODS,
        json!({"metadata": {"name": "host"}, "spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "nginx"}]}}),
    )
    .await;
    assert_eq!((code, status["reason"].as_str()), (403, Some("Forbidden")));
    assert_eq!(
        status["message"],
        "pods \"host\" is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)"
    );

    // A hardened pod passes silently.
    let (code, warnings, _) = post(
        PODS,
        json!({"metadata": {"name": "hardened"}, "spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "nginx", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}}),
    )
    .await;
    assert_eq!((code, warnings), (201, Vec::<String>::new()));

    // Workloads are only warned about (their pods meet `enforce` when created).
    let (code, warnings, _) = post(
        "/apis/apps/v1/namespaces/psa/deployments",
        json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "c", "image": "nginx", "securityContext": {"privileged": true}}]}}}}),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(warnings.len(), 1);
    let expected = warning(
        "would violate PodSecurity \"restricted:latest\": privileged (container \"c\" must not set securityContext.privileged=true), allowPrivilegeEscalation != false",
    );
    assert!(
        warnings[0].starts_with(expected.trim_end_matches('"')),
        "{warnings:?}"
    );

    // Invalid labels are refused on namespace writes.
    let (code, _, status) = post(
        "/api/v1/namespaces",
        json!({"metadata": {"name": "bad", "labels": {"pod-security.kubernetes.io/enforce": "strict"}}}),
    )
    .await;
    assert_eq!((code, status["reason"].as_str()), (422, Some("Invalid")));
    assert_eq!(
        status["message"],
        "Namespace \"bad\" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted"
    );
    assert_eq!(
        status["details"]["causes"][0]["field"],
        "metadata.labels[pod-security.kubernetes.io/enforce]"
    );

    // Tightening `enforce` warns about the pods already there.
    let (code, warnings, _) = send(
        &client,
        "PATCH",
        "/api/v1/namespaces/psa",
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        warnings,
        [
            warning("existing pods in namespace \"psa\" violate the new PodSecurity enforce level \"restricted:latest\""),
            warning("plain: allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile"),
        ]
    );
    let (code, _, status) = post(
        PODS,
        json!({"metadata": {"name": "plain2"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}),
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(
        status["message"],
        format!("pods \"plain2\" is forbidden: violates PodSecurity \"restricted:latest\": {restricted_violations}")
    );

    // kubectl prints the warnings and the refusals.
    namespace(
        &client,
        "psa-kubectl",
        json!({"pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/enforce": "baseline"}),
        json!({}),
    )
    .await;
    for (i, binary) in kubectls().iter().enumerate() {
        let name = format!("run{i}");
        let out = kubectl(
            binary,
            &server,
            &["run", &name, "--image=nginx", "-n", "psa-kubectl"],
        );
        check(binary, &out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"{name}\" must set")),
            "{stderr}"
        );
        let out = kubectl(
            binary,
            &server,
            &[
                "run",
                &format!("host{i}"),
                "--image=nginx",
                "-n",
                "psa-kubectl",
                r#"--overrides={"apiVersion": "v1", "spec": {"hostPID": true}}"#,
            ],
        );
        crate::support::check_fails(
            binary,
            &out,
            &format!("pods \"host{i}\" is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostPID=true)"),
        );
    }
}

#[tokio::test]
async fn service_accounts_are_given_to_pods() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let pp = PostParams::default();
    namespace(&client, "sa", json!({}), json!({})).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "sa");

    let created = pods.create(&pp, &pod("p", json!({}))).await.unwrap();
    let spec = serde_json::to_value(created.spec.unwrap()).unwrap();
    assert_eq!(spec["serviceAccountName"], "default");
    let volume = spec["volumes"][0].clone();
    let volume_name = volume["name"].as_str().unwrap();
    assert!(volume_name.starts_with("kube-api-access-"), "{volume}");
    assert_eq!(
        volume["projected"]["sources"][0],
        json!({"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}})
    );
    assert_eq!(
        spec["containers"][0]["volumeMounts"],
        json!([{"name": volume_name, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}])
    );

    // An account that opts out of the token gets none; its pull secrets are the pod's.
    Api::<ServiceAccount>::namespaced(client.clone(), "sa")
        .create(
            &pp,
            &object(
                json!({"metadata": {"name": "quiet"}, "automountServiceAccountToken": false,
                "imagePullSecrets": [{"name": "registry"}]}),
            ),
        )
        .await
        .unwrap();
    let mut quiet = pod("q", json!({}));
    // (named by the deprecated `serviceAccount`, which stands for `serviceAccountName`)
    quiet.spec.as_mut().unwrap().service_account = Some("quiet".into());
    let spec = serde_json::to_value(pods.create(&pp, &quiet).await.unwrap().spec.unwrap()).unwrap();
    assert_eq!(spec["serviceAccountName"], "quiet");
    assert_eq!(spec.get("volumes"), None);
    assert_eq!(spec["imagePullSecrets"], json!([{"name": "registry"}]));

    // A missing account refuses the pod, as upstream.
    let mut lost = pod("lost", json!({}));
    lost.spec.as_mut().unwrap().service_account_name = Some("robot".into());
    let refused = pods.create(&pp, &lost).await.unwrap_err();
    let kube::Error::Api(status) = refused else {
        panic!("an API error")
    };
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "pods \"lost\" is forbidden: error looking up service account sa/robot: serviceaccount \"robot\" not found"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_are_placed_on_dedicated_nodes() {
    use kflex_controlplane::admission::NodePlacement;
    use kflex_controlplane::authn::{Authenticator, User};
    use kflex_controlplane::{ControlPlane, Router};
    use kflex_storage_backends::sqlite::{SqliteOptions, SqliteStore};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let mut authn = Authenticator::default();
    authn.add_token(
        "token-of-host".to_owned(),
        User {
            name: "host-admin".into(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        },
    );
    let store = SqliteStore::open(dir.path().join("host.db"), SqliteOptions::default())
        .await
        .unwrap();
    let plane = ControlPlane::start("host", Arc::new(store), authn)
        .await
        .unwrap();
    plane.set_node_placement(Some(NodePlacement {
        node_selector: [("kflex.io/tenant".to_owned(), "t1".to_owned())].into(),
        tolerations: vec![json!({"key": "kflex.io/dedicated", "operator": "Equal", "value": "t1", "effect": "NoSchedule"})],
    }));
    let served = crate::support::InProcess::serve(Arc::new(Router::new(plane))).await;
    let mut config = kube::Config::new(
        format!("https://127.0.0.1:{}", served.port)
            .parse()
            .unwrap(),
    );
    config.root_cert = Some(vec![served.server_ca.certificate.cert_der.to_vec()]);
    config.auth_info.token = Some("token-of-host".to_owned().into());
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();

    namespace(
        &client,
        "placed",
        json!({}),
        json!({
            "scheduler.alpha.kubernetes.io/node-selector": "zone=a",
            "scheduler.alpha.kubernetes.io/defaultTolerations": r#"[{"operator": "Exists", "effect": "NoExecute"}]"#,
        }),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "placed");
    let created = pods
        .create(&PostParams::default(), &pod("p", json!({})))
        .await
        .unwrap();
    let spec = serde_json::to_value(created.spec.unwrap()).unwrap();
    assert_eq!(
        spec["nodeSelector"],
        json!({"kflex.io/tenant": "t1", "zone": "a"})
    );
    assert_eq!(
        spec["tolerations"],
        json!([
            {"key": "kflex.io/dedicated", "operator": "Equal", "value": "t1", "effect": "NoSchedule"},
            {"operator": "Exists", "effect": "NoExecute"},
        ])
    );

    for (selector, whose) in [
        ("zone", "its namespace"),
        ("kflex.io/tenant", "the control plane's"),
    ] {
        let mut elsewhere = pod("elsewhere", json!({}));
        elsewhere.spec.as_mut().unwrap().node_selector =
            Some([(selector.to_owned(), "other".to_owned())].into());
        let refused = pods
            .create(&PostParams::default(), &elsewhere)
            .await
            .unwrap_err();
        let kube::Error::Api(status) = refused else {
            panic!("an API error")
        };
        assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
        assert_eq!(
            status.message,
            format!("pods \"elsewhere\" is forbidden: pod node label selector conflicts with {whose} node label selector")
        );
    }
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn control_plane_node_placement_follows_its_spec() {
    use crate::manager::{control_planes, settled, submit, tenant};
    let server = KflexServer::start();
    let host = client(&server).await;
    let name = "placed-cp";
    let toleration =
        json!({"key": "dedicated", "operator": "Equal", "value": name, "effect": "NoSchedule"});
    let bad = submit(
        &host,
        "placed-bad",
        json!({"type": "k8s", "nodePlacement": {"tolerations": [{"operator": "Maybe"}]}}),
    )
    .await
    .unwrap_err();
    let kube::Error::Api(bad) = bad else {
        panic!("an API error")
    };
    assert_eq!((bad.code, bad.reason.as_str()), (422, "Invalid"), "{bad:?}");
    assert!(
        bad.message
            .contains("nodePlacement.tolerations[0].operator"),
        "{}",
        bad.message
    );

    submit(
        &host,
        name,
        json!({"type": "k8s", "nodePlacement": {
            "nodeSelector": {"pool": name},
            "tolerations": [toleration.clone()],
        }}),
    )
    .await
    .unwrap();
    settled(&host, name).await;
    let tenant = tenant(&host, name).await;
    default_service_account(&tenant, "default").await;
    let pods: Api<Pod> = Api::namespaced(tenant.clone(), "default");
    let placed = pods
        .create(&PostParams::default(), &pod("placed", json!({})))
        .await
        .unwrap();
    let spec = serde_json::to_value(placed.spec.unwrap()).unwrap();
    assert_eq!(spec["nodeSelector"], json!({"pool": name}));
    // DefaultTolerationSeconds runs first, PodTolerationRestriction merges the placement's.
    assert_eq!(
        spec["tolerations"],
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            toleration,
        ])
    );

    // Taken off the spec: Pods created after the next reconcile are free again.
    control_planes(&host)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"nodePlacement": null}})),
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    for i in 0.. {
        let free = pods
            .create(
                &PostParams::default(),
                &pod(&format!("free-{i}"), json!({})),
            )
            .await
            .unwrap();
        if free.spec.unwrap().node_selector.is_none() {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the placement stayed after it left the spec"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A refused write's `metav1.Status`: (code, reason, message).
fn refusal(error: kube::Error) -> (u16, String, String) {
    match error {
        kube::Error::Api(status) => (status.code, status.reason, status.message),
        other => panic!("not an API error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_security_pins_versions_and_follows_the_control_plane_settings() {
    use crate::manager::{kubeconfig_of, settled, submit, tenant};
    let server = KflexServer::start();
    let host = client(&server).await;

    // Bad settings are refused by the hosting API, naming the field.
    for (spec, field) in [
        (
            json!({"type": "k8s", "podSecurity": {"defaults": {"enforce": "strict"}}}),
            "spec.podSecurity.defaults.enforce: Unsupported value: \"strict\"",
        ),
        (
            json!({"type": "k8s", "podSecurity": {"defaults": {"warn-version": "1.24"}}}),
            "spec.podSecurity.defaults.warn-version: Invalid value: \"1.24\"",
        ),
        (
            json!({"type": "k8s", "podSecurity": {"exemptions": {"namespaces": ["a", "a"]}}}),
            "spec.podSecurity.exemptions.namespaces[1]: Duplicate value: \"a\"",
        ),
    ] {
        let (code, reason, message) = refusal(submit(&host, "psa-bad", spec).await.unwrap_err());
        assert_eq!((code, reason.as_str()), (422, "Invalid"), "{message}");
        assert!(message.contains(field), "{message}");
    }

    let name = "psa-cp";
    submit(
        &host,
        name,
        json!({"type": "k8s", "podSecurity": {
            "defaults": {"enforce": "baseline", "warn": "restricted", "warn-version": "v1.22"},
            "exemptions": {"usernames": ["ci-bot"], "namespaces": ["free"], "runtimeClasses": ["kata"]},
        }}),
    )
    .await
    .unwrap();
    settled(&host, name).await;
    let tenant = tenant(&host, name).await;
    let post = |client: &kube::Client, path: String, body: Value| {
        let client = client.clone();
        async move { send(&client, "POST", &path, "application/json", body).await }
    };
    let host_pod = |name: &str| json!({"metadata": {"name": name}, "spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "nginx"}]}});

    // A namespace without labels gets the control plane's defaults: baseline enforced,
    // restricted as of v1.22 warned about (no runAsUser check before v1.23).
    namespace(&tenant, "plain", json!({}), json!({})).await;
    let (code, _, status) = post(
        &tenant,
        "/api/v1/namespaces/plain/pods".into(),
        host_pod("h"),
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(
        status["message"],
        "pods \"h\" is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)"
    );
    let as_root = json!({"metadata": {"name": "root"}, "spec": {
        "securityContext": {"runAsNonRoot": true, "runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "image": "nginx", "securityContext": {
            "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}});
    let (code, warnings, _) = post(
        &tenant,
        "/api/v1/namespaces/plain/pods".into(),
        as_root.clone(),
    )
    .await;
    assert_eq!((code, warnings), (201, Vec::<String>::new()));

    // Labels pin another version: restricted from v1.23 refuses runAsUser=0.
    namespace(
        &tenant,
        "pinned",
        json!({"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "v1.23"}),
        json!({}),
    )
    .await;
    let (code, _, status) = post(
        &tenant,
        "/api/v1/namespaces/pinned/pods".into(),
        as_root.clone(),
    )
    .await;
    assert_eq!((code, status["reason"].as_str()), (403, Some("Forbidden")));
    assert_eq!(
        status["message"],
        "pods \"root\" is forbidden: violates PodSecurity \"restricted:v1.23\": runAsUser=0 (pod must not set runAsUser=0)"
    );
    let (code, _, _) = send(
        &tenant,
        "PATCH",
        "/api/v1/namespaces/pinned",
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce-version": "v1.22"}}}),
    )
    .await;
    assert_eq!(code, 200);
    let (code, warnings, _) = post(&tenant, "/api/v1/namespaces/pinned/pods".into(), as_root).await;
    assert_eq!((code, warnings), (201, Vec::<String>::new()));

    // An exempt namespace: labelling it warns that the policy is ignored; nothing is checked.
    let (code, warnings, _) = post(
        &tenant,
        "/api/v1/namespaces".into(),
        json!({"metadata": {"name": "free", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(
        warnings,
        [warning("namespace \"free\" is exempt from Pod Security, and the policy (enforce=restricted:latest) will be ignored")]
    );
    default_service_account(&tenant, "free").await;
    let (code, warnings, _) = post(
        &tenant,
        "/api/v1/namespaces/free/pods".into(),
        host_pod("h"),
    )
    .await;
    assert_eq!((code, warnings), (201, Vec::<String>::new()));

    // An exempt runtime class.
    let mut kata = host_pod("kata");
    kata["spec"]["runtimeClassName"] = json!("kata");
    let (code, warnings, _) = post(&tenant, "/api/v1/namespaces/plain/pods".into(), kata).await;
    assert_eq!((code, warnings), (201, Vec::<String>::new()));

    // An exempt user (here by impersonation).
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(&kubeconfig_of(&host, name, "kubeconfig").await)
            .unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.auth_info.impersonate = Some("ci-bot".into());
    config.auth_info.impersonate_groups = Some(vec!["system:masters".into()]);
    config.default_retry = false;
    let ci = kube::Client::try_from(config).unwrap();
    let (code, warnings, _) = post(
        &ci,
        "/api/v1/namespaces/plain/pods".into(),
        host_pod("by-ci"),
    )
    .await;
    assert_eq!((code, warnings), (201, Vec::<String>::new()));

    // kubectl, with the tenant's kubeconfig, shows the refusal of the default policy.
    let kubeconfig = server.data_dir.path().join("psa-cp.kubeconfig");
    std::fs::write(&kubeconfig, kubeconfig_of(&host, name, "kubeconfig").await).unwrap();
    for (i, binary) in kubectls().iter().enumerate() {
        let out = std::process::Command::new(binary)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(server.data_dir.path().join(format!("psa-cache-{i}")))
            .args([
                "run",
                &format!("host{i}"),
                "--image=nginx",
                "-n",
                "plain",
                r#"--overrides={"apiVersion": "v1", "spec": {"hostPID": true}}"#,
            ])
            .output()
            .unwrap();
        crate::support::check_fails(
            binary,
            &out,
            &format!("pods \"host{i}\" is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostPID=true)"),
        );
    }
}

#[tokio::test]
async fn settings_of_k8s_control_planes_are_refused_on_host_and_external_ones() {
    use crate::manager::submit;
    let server = KflexServer::start();
    let host = client(&server).await;
    for kind in ["host", "external"] {
        for (field, value) in [
            ("authentication", json!({"anonymous": {"enabled": true}})),
            ("tenancyPolicy", json!({"enabled": true})),
            ("nodePlacement", json!({"nodeSelector": {"pool": "a"}})),
            ("podSecurity", json!({"defaults": {"enforce": "baseline"}})),
        ] {
            let mut spec = json!({"type": kind, "bootstrapSecretRef": {"namespace": "x", "name": "y", "inClusterKey": "kubeconfig"}});
            spec[field] = value;
            let (code, reason, message) = refusal(submit(&host, "wrong", spec).await.unwrap_err());
            assert_eq!((code, reason.as_str()), (422, "Invalid"), "{message}");
            assert!(
                message.contains(&format!(
                    "spec.{field}: Forbidden: applies to type k8s only"
                )),
                "{message}"
            );
        }
    }
}

#[tokio::test]
async fn pods_get_priorities_and_default_tolerations() {
    use k8s_openapi::api::scheduling::v1::PriorityClass;
    let server = KflexServer::start();
    let client = client(&server).await;
    let pp = PostParams::default();
    namespace(&client, "prio", json!({}), json!({})).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "prio");
    let classes: Api<PriorityClass> = Api::all(client.clone());

    // The system classes exist from the start.
    let node_critical = classes.get("system-node-critical").await.unwrap();
    assert_eq!(node_critical.value, 2_000_001_000);
    assert_eq!(
        classes.get("system-cluster-critical").await.unwrap().value,
        2_000_000_000
    );

    // A pod without a class: priority 0, and the lost-node tolerations of 300s.
    let plain = pods.create(&pp, &pod("plain", json!({}))).await.unwrap();
    let spec = serde_json::to_value(plain.spec.unwrap()).unwrap();
    assert_eq!(spec["priority"], 0);
    assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
    assert_eq!(
        spec["tolerations"],
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        ])
    );
    // An update keeps them.
    let patched = pods
        .patch(
            "plain",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    let spec = serde_json::to_value(patched.spec.unwrap()).unwrap();
    assert_eq!(
        (
            spec["priority"].clone(),
            spec["tolerations"].as_array().unwrap().len()
        ),
        (json!(0), 2)
    );

    // A system class, and a pod's own toleration of a taint.
    let mut critical = pod("critical", json!({}));
    let mut spec = serde_json::to_value(critical.spec.take().unwrap()).unwrap();
    spec["priorityClassName"] = json!("system-node-critical");
    spec["tolerations"] = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}]);
    critical.spec = Some(object(spec));
    let created = pods.create(&pp, &critical).await.unwrap();
    let spec = serde_json::to_value(created.spec.unwrap()).unwrap();
    assert_eq!(spec["priority"], 2_000_001_000);
    assert_eq!(
        spec["tolerations"],
        json!([
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30},
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        ])
    );

    // An unknown class is refused, as is a priority the class does not give.
    let with_spec = |name: &str, extra: Value| -> Pod {
        let mut spec = json!({"containers": [{"name": "c", "image": "nginx"}]});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        object(json!({"metadata": {"name": name}, "spec": spec}))
    };
    let (code, reason, message) = refusal(
        pods.create(
            &pp,
            &with_spec("lost", json!({"priorityClassName": "nope"})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        message,
        "pods \"lost\" is forbidden: no PriorityClass with name nope was found"
    );
    let (code, _, message) = refusal(
        pods.create(&pp, &with_spec("mine", json!({"priority": 7})))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "pods \"mine\" is forbidden: the integer value of priority (7) must not be provided in pod spec; priority admission controller computed 0 from the given PriorityClass name"
    );

    // A global default class gives its priority and policy to pods without a class; a
    // second default is refused.
    let class = |name: &str, value: i32| -> PriorityClass {
        object(
            json!({"metadata": {"name": name}, "value": value, "globalDefault": true, "preemptionPolicy": "Never"}),
        )
    };
    classes.create(&pp, &class("batch", 1000)).await.unwrap();
    let (code, reason, message) =
        refusal(classes.create(&pp, &class("other", 5)).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        message,
        "priorityclasses.scheduling.k8s.io \"other\" is forbidden: PriorityClass batch is already marked as default. Only one default can exist"
    );
    // The system names and values are reserved; a value cannot change.
    let system: PriorityClass =
        object(json!({"metadata": {"name": "system-mine"}, "value": 2_000_000_000}));
    let (code, reason, message) = refusal(classes.create(&pp, &system).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert_eq!(
        message,
        "PriorityClass.scheduling.k8s.io \"system-mine\" is invalid: metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"
    );
    let (code, _, message) = refusal(
        classes
            .patch(
                "batch",
                &PatchParams::default(),
                &Patch::Merge(json!({"value": 2})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert_eq!(
        message,
        "PriorityClass.scheduling.k8s.io \"batch\" is invalid: value: Forbidden: may not be changed in an update."
    );
    let defaulted = pods
        .create(&pp, &pod("defaulted", json!({})))
        .await
        .unwrap();
    let spec = serde_json::to_value(defaulted.spec.unwrap()).unwrap();
    assert_eq!(
        (
            spec["priorityClassName"].clone(),
            spec["priority"].clone(),
            spec["preemptionPolicy"].clone()
        ),
        (json!("batch"), json!(1000), json!("Never"))
    );
    let (code, _, message) = refusal(
        pods.create(
            &pp,
            &with_spec(
                "preempting",
                json!({"preemptionPolicy": "PreemptLowerPriority"}),
            ),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "pods \"preempting\" is forbidden: the string value of PreemptionPolicy (PreemptLowerPriority) must not be provided in pod spec; priority admission controller computed Never from the given PriorityClass name"
    );

    // kubectl lists the classes and shows the refusal.
    for (i, binary) in kubectls().iter().enumerate() {
        let out = kubectl(binary, &server, &["get", "priorityclasses", "-o", "name"]);
        let listed = check(binary, &out);
        assert!(
            listed.contains("priorityclass.scheduling.k8s.io/system-node-critical"),
            "{listed}"
        );
        let out = kubectl(
            binary,
            &server,
            &[
                "run",
                &format!("lost{i}"),
                "--image=nginx",
                "-n",
                "prio",
                r#"--overrides={"apiVersion": "v1", "spec": {"priorityClassName": "nope"}}"#,
            ],
        );
        crate::support::check_fails(
            binary,
            &out,
            &format!("pods \"lost{i}\" is forbidden: no PriorityClass with name nope was found"),
        );
    }
}
