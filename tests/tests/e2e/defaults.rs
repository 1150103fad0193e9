//! Upstream's defaulting and Service allocation through the real binary: minimal typed
//! objects sent with kube-rs come back with the fields kube-apiserver fills in (the expected
//! JSON is written from upstream's `SetDefaults_*` rules), Services get distinct cluster IPs
//! and node ports in upstream's default ranges, and kubectl shows them.

use crate::support::{api_error, check, client, kubectl, kubectls, version_suffix};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, Service};
use kflex_e2e::KflexServer;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::Ipv4Addr;

/// The pod template spec upstream stores for one `nginx:1.25` container on port 80
/// (`resources: {}` is how upstream serializes a container's empty requirements).
fn defaulted_pod_spec() -> Value {
    json!({
        "containers": [{
            "name": "web",
            "image": "nginx:1.25",
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "resources": {},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
        }],
        "dnsPolicy": "ClusterFirst",
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "terminationGracePeriodSeconds": 30,
    })
}

fn container() -> Value {
    json!({"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}]})
}

/// The `spec` of a typed object, as JSON.
fn spec_of<T: k8s_openapi::serde::Serialize>(object: &T) -> Value {
    let mut value = serde_json::to_value(object).unwrap();
    value["spec"].take()
}

/// Whether `ip` is in upstream's default service range `10.96.0.0/12`.
fn in_service_range(ip: &str) -> bool {
    let ip: Ipv4Addr = ip.parse().unwrap();
    u32::from(ip) >> 20 == u32::from(Ipv4Addr::new(10, 96, 0, 0)) >> 20
}

#[tokio::test]
async fn workloads_come_back_with_upstreams_defaults() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let pp = PostParams::default();

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container()]}},
        },
    }))
    .unwrap();
    deployments.create(&pp, &deployment).await.unwrap();
    let stored = deployments.get("web").await.unwrap();
    let pod_spec = defaulted_pod_spec();
    let mut expected = json!({
        "replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        "revisionHistoryLimit": 10,
        "progressDeadlineSeconds": 600,
    });
    assert_eq!(spec_of(&stored), expected);

    // Updates are defaulted too: a merge patch that drops the strategy gets it back.
    let patched = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"strategy": null, "revisionHistoryLimit": 3}})),
        )
        .await
        .unwrap();
    expected["revisionHistoryLimit"] = json!(3);
    assert_eq!(spec_of(&patched), expected);

    // ServiceAccount admission names the account, Priority gives priority 0 and
    // DefaultTolerationSeconds the lost-node tolerations; without a token volume the stored
    // spec is otherwise all defaults.
    crate::support::default_service_account(&client, "default").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"automountServiceAccountToken": false, "containers": [{"name": "web", "image": "nginx", "resources": {"limits": {"cpu": "1"}}}]},
    }))
    .unwrap();
    let stored = spec_of(&pods.create(&pp, &pod).await.unwrap());
    assert_eq!(
        stored,
        json!({
            "containers": [{
                "name": "web", "image": "nginx", "imagePullPolicy": "Always",
                "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            }],
            "automountServiceAccountToken": false,
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "serviceAccount": "default",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ],
        })
    );

    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let job = serde_json::from_value(json!({
        "metadata": {"name": "pi"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container()]}}},
    }))
    .unwrap();
    let stored = jobs.create(&pp, &job).await.unwrap();
    let uid = stored.metadata.uid.clone().unwrap();
    let mut pod_spec = defaulted_pod_spec();
    pod_spec["restartPolicy"] = json!("Never");
    assert_eq!(
        spec_of(&stored),
        json!({
            "backoffLimit": 6,
            "completionMode": "NonIndexed",
            "completions": 1,
            "parallelism": 1,
            "podReplacementPolicy": "TerminatingOrFailed",
            "suspend": false,
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
            "template": {
                "metadata": {"labels": {
                    "batch.kubernetes.io/controller-uid": uid,
                    "batch.kubernetes.io/job-name": "pi",
                    "controller-uid": uid,
                    "job-name": "pi",
                }},
                "spec": pod_spec,
            },
        })
    );

    let cron_jobs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let cron_job = serde_json::from_value(json!({
        "metadata": {"name": "tick"},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure", "containers": [container()]}}}}},
    }))
    .unwrap();
    let stored = spec_of(&cron_jobs.create(&pp, &cron_job).await.unwrap());
    assert_eq!(stored["concurrencyPolicy"], "Allow");
    assert_eq!(stored["suspend"], false);
    assert_eq!(stored["successfulJobsHistoryLimit"], 3);
    assert_eq!(stored["failedJobsHistoryLimit"], 1);
    let template = &stored["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(template["restartPolicy"], "OnFailure");
    assert_eq!(template["schedulerName"], "default-scheduler");
    assert_eq!(
        template["containers"][0]["terminationMessagePolicy"],
        "File"
    );
    assert!(stored["jobTemplate"]["spec"].get("backoffLimit").is_none());
}

#[tokio::test]
async fn services_get_cluster_ips_and_node_ports() {
    let server = KflexServer::start();
    let client = client(&server).await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    let service = |name: &str, spec: Value| -> Service {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
    };

    let created = services
        .create(
            &pp,
            &service(
                "web",
                json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}),
            ),
        )
        .await
        .unwrap();
    let mut spec = spec_of(&created);
    let ip = spec["clusterIP"].as_str().unwrap().to_owned();
    assert!(in_service_range(&ip), "{ip}");
    spec.as_object_mut().unwrap().remove("clusterIP");
    assert_eq!(
        spec,
        json!({
            "clusterIPs": [ip],
            "internalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
            "selector": {"app": "web"},
            "sessionAffinity": "None",
            "type": "ClusterIP",
        })
    );

    // A taken IP is refused; a freed one can be asked for.
    let err = services
        .create(
            &pp,
            &service("copy", json!({"clusterIP": ip, "ports": [{"port": 80}]})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected an API error")
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        status.message,
        format!("Service \"copy\" is invalid: spec.clusterIPs: Invalid value: [\"{ip}\"]: failed to allocate IP {ip}: provided IP is already allocated")
    );
    let err = services
        .create(
            &pp,
            &service(
                "far",
                json!({"clusterIP": "10.200.0.1", "ports": [{"port": 80}]}),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (422, "Invalid".into()));
    // The cluster IP may not change.
    let err = services
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]}}),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (422, "Invalid".into()));
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let again = services
        .create(
            &pp,
            &service("copy", json!({"clusterIP": ip, "ports": [{"port": 80}]})),
        )
        .await
        .unwrap();
    assert_eq!(again.spec.unwrap().cluster_ip.as_deref(), Some(ip.as_str()));

    // Headless and ExternalName Services get no IP.
    let headless = services
        .create(
            &pp,
            &service(
                "headless",
                json!({"clusterIP": "None", "selector": {"a": "b"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(spec_of(&headless)["clusterIPs"], json!(["None"]));
    let external = services
        .create(
            &pp,
            &service(
                "external",
                json!({"type": "ExternalName", "externalName": "example.com"}),
            ),
        )
        .await
        .unwrap();
    assert!(spec_of(&external).get("clusterIP").is_none());

    // Node ports: in range, requested ones honoured once.
    let node_port = services
        .create(&pp, &service("np", json!({"type": "NodePort", "ports": [{"port": 80}, {"name": "b", "port": 81, "nodePort": 30081}]})))
        .await
        .unwrap();
    let spec = spec_of(&node_port);
    let first = spec["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&first), "{first}");
    assert_eq!(spec["ports"][1]["nodePort"], 30081);
    assert_eq!(spec["externalTrafficPolicy"], "Cluster");
    let err = services
        .create(
            &pp,
            &service(
                "np2",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30081}]}),
            ),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected an API error")
    };
    assert_eq!(
        status.message,
        "Service \"np2\" is invalid: spec.ports[0].nodePort: Invalid value: 30081: provided port is already allocated"
    );

    // Turning the Service into a ClusterIP one gives its node ports back.
    let plain = services
        .patch(
            "np",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
        )
        .await
        .unwrap();
    let spec = spec_of(&plain);
    assert!(spec["ports"][1].get("nodePort").is_none(), "{spec}");
    assert!(spec.get("externalTrafficPolicy").is_none(), "{spec}");
    services
        .create(
            &pp,
            &service(
                "np2",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30081}]}),
            ),
        )
        .await
        .unwrap();

    // Concurrent creates never share an IP.
    let creates = (0..16).map(|i| {
        let services = services.clone();
        let svc = service(&format!("many-{i}"), json!({"ports": [{"port": 80}]}));
        async move { services.create(&PostParams::default(), &svc).await.unwrap() }
    });
    let created = futures::future::join_all(creates).await;
    let ips: HashSet<String> = created
        .into_iter()
        .map(|s| s.spec.unwrap().cluster_ip.unwrap())
        .collect();
    assert_eq!(ips.len(), 16);
}

#[tokio::test]
async fn kubectl_shows_cluster_ips_and_node_ports() {
    let server = KflexServer::start();
    for binary in kubectls() {
        let name = format!("web{}", version_suffix(&binary));
        check(
            &binary,
            &kubectl(
                &binary,
                &server,
                &[
                    "create",
                    "deployment",
                    &name,
                    "--image=nginx:1.25",
                    "--port=80",
                ],
            ),
        );
        let out = check(
            &binary,
            &kubectl(&binary, &server, &["get", "deployment", &name, "-o", "jsonpath={.spec.strategy.type} {.spec.template.spec.containers[0].imagePullPolicy}"]),
        );
        assert_eq!(out, "RollingUpdate IfNotPresent");
        check(
            &binary,
            &kubectl(
                &binary,
                &server,
                &["expose", "deployment", &name, "--port=80"],
            ),
        );
        let out = check(
            &binary,
            &kubectl(&binary, &server, &["get", "svc", &name, "--no-headers"]),
        );
        let columns: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(columns[1], "ClusterIP", "{out}");
        assert!(in_service_range(columns[2]), "{out}");
        let np = format!("np{}", version_suffix(&binary));
        check(
            &binary,
            &kubectl(
                &binary,
                &server,
                &["create", "service", "nodeport", &np, "--tcp=80:8080"],
            ),
        );
        let out = check(
            &binary,
            &kubectl(
                &binary,
                &server,
                &[
                    "get",
                    "svc",
                    &np,
                    "-o",
                    "jsonpath={.spec.ports[0].nodePort}",
                ],
            ),
        );
        let port: u32 = out.parse().unwrap();
        assert!((30000..=32767).contains(&port), "{out}");
    }
}
