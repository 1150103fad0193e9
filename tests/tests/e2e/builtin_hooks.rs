//! The built-in hooks and actions, from outside: `networking` and `monitoring` installed
//! at start-up (and upgraded over user edits of their fields), NetworkPolicies kept in
//! namespaces a tenant creates later (also after a restart) and restored when deleted, the `monitoring` hook's
//! objects for a Prometheus operator and the metrics they use (object counts, store size,
//! quota amounts), and `exec` actions: refused unless the server allows them, run with
//! the tenant's kubeconfig, their output in an Event, a hung program killed at its timeout
//! and retried.

use crate::hooks::{api, condition, control_plane, hook, ready, until};
use crate::manager::{client_from, kubeconfig_of};
use crate::metrics::{metrics, sample};
use crate::support::{api_error, client};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kflex_e2e::KflexServer;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Polls `probe` until it returns `Some` (at most 30 s).
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn policy_names(tenant: &kube::Client, namespace: &str) -> Vec<String> {
    let policies: Api<NetworkPolicy> = Api::namespaced(tenant.clone(), namespace);
    let mut names: Vec<String> = policies
        .list(&ListParams::default())
        .await
        .unwrap()
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    names.sort();
    names
}

const STRICT: [&str; 3] = ["allow-dns", "allow-same-namespace", "default-deny"];

async fn create_namespace(tenant: &kube::Client, name: &str) {
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(tenant.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
}

async fn synced_message(host: &kube::Client, cp: &str) -> String {
    let status = until(host, cp, |s| condition(s, "Synced")["status"] == "False").await;
    condition(&status, "Synced")["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn networking_policies_cover_every_namespace_also_later_ones_and_after_a_restart() {
    let server = KflexServer::start();
    let host = client(&server).await;
    // Installed at start-up by kflex, under its own field manager.
    let hooks = api(&host, "PostCreateHook", "postcreatehooks");
    for name in ["networking", "monitoring"] {
        let builtin = hooks.get(name).await.unwrap();
        let managers: Vec<_> = builtin
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.manager)
            .collect();
        assert_eq!(managers, ["kflex"], "{name}");
    }

    control_plane(
        &host,
        "net",
        json!({"type": "k8s", "postCreateHooks": [{"hookName": "networking"}]}),
    )
    .await;
    let status = until(&host, "net", |s| s["postCreateHookCompleted"] == true).await;
    assert_eq!(status["postCreateHooks"], json!({"networking": true}));
    let tenant = crate::manager::tenant(&host, "net").await;
    for namespace in ["default", "kube-public", "kube-node-lease"] {
        assert_eq!(
            policy_names(&tenant, namespace).await,
            STRICT,
            "{namespace}"
        );
    }
    assert_eq!(
        policy_names(&tenant, "kube-system").await,
        [
            "allow-dns",
            "allow-dns-ingress",
            "allow-same-namespace",
            "default-deny"
        ]
    );
    let deny = Api::<NetworkPolicy>::namespaced(tenant.clone(), "default")
        .get("default-deny")
        .await
        .unwrap();
    let spec = deny.spec.unwrap();
    assert_eq!(spec.policy_types.unwrap(), ["Ingress", "Egress"]);
    assert!(spec.ingress.is_none() && spec.egress.is_none());

    // A namespace created later gets them too.
    create_namespace(&tenant, "later").await;
    eventually("policies in a new namespace", || async {
        (policy_names(&tenant, "later").await == STRICT).then_some(())
    })
    .await;

    // A deleted policy comes back.
    Api::<NetworkPolicy>::namespaced(tenant.clone(), "later")
        .delete("default-deny", &Default::default())
        .await
        .unwrap();
    eventually("a deleted policy restored", || async {
        (policy_names(&tenant, "later").await == STRICT).then_some(())
    })
    .await;

    // Switching to open replaces them everywhere, and new namespaces follow the new mode.
    let control_planes = api(&host, "ControlPlane", "controlplanes");
    control_planes
        .patch(
            "net",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"postCreateHooks": [
                {"hookName": "networking", "vars": {"NetworkMode": "open"}}]}})),
        )
        .await
        .unwrap();
    eventually("open mode in existing namespaces", || async {
        (policy_names(&tenant, "later").await == ["allow-all"]).then_some(())
    })
    .await;
    create_namespace(&tenant, "opened").await;
    eventually("open mode in a new namespace", || async {
        (policy_names(&tenant, "opened").await == ["allow-all"]).then_some(())
    })
    .await;

    // A user's edit of a built-in hook: a field kflex sets is restored at the next start,
    // a field it does not set survives.
    hooks
        .patch(
            "networking",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "net"}},
                                 "spec": {"defaultVars": [{"name": "NetworkMode", "value": "open"}]}})),
        )
        .await
        .unwrap();
    let kubeconfig = kubeconfig_of(&host, "net", "kubeconfig").await;
    let (stopped, dir) = server.terminate();
    assert!(stopped.success());
    let server = KflexServer::start_in(dir);
    let host = client(&server).await;
    let hooks = api(&host, "PostCreateHook", "postcreatehooks");
    let restored = hooks.get("networking").await.unwrap();
    assert_eq!(
        restored.data["spec"]["defaultVars"],
        json!([{"name": "NetworkMode", "value": "strict"}])
    );
    assert_eq!(restored.metadata.labels.unwrap()["team"], "net");

    // After the restart the keeper is back: a new namespace gets the policies.
    until(&host, "net", ready).await;
    let tenant = client_from(&kubeconfig, Some(format!("{}/clusters/net", server.url))).await;
    create_namespace(&tenant, "after-restart").await;
    eventually(
        "policies in a namespace created after a restart",
        || async { (policy_names(&tenant, "after-restart").await == ["allow-all"]).then_some(()) },
    )
    .await;
    // The switch to open stuck: the strict policies it deleted were not restored.
    assert_eq!(policy_names(&tenant, "later").await, ["allow-all"]);

    // Bad input: an unknown mode, and a control plane kflex does not serve itself.
    control_plane(
        &host,
        "closed",
        json!({"type": "k8s", "postCreateHooks": [
            {"hookName": "networking", "vars": {"NetworkMode": "closed"}}]}),
    )
    .await;
    let message = synced_message(&host, "closed").await;
    assert!(
        message.contains("NetworkMode must be strict or open, not \"closed\""),
        "{message}"
    );
    control_plane(
        &host,
        "hostnet",
        json!({"type": "host", "postCreateHooks": [{"hookName": "networking"}]}),
    )
    .await;
    let message = synced_message(&host, "hostnet").await;
    assert!(
        message.contains("networking: needs a control plane of type k8s"),
        "{message}"
    );
}

/// A minimal CRD standing in for the Prometheus operator's kind `kind` (a test fixture:
/// any object accepted).
fn operator_crd(kind: &str, plural: &str) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{plural}.monitoring.coreos.com")},
        "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
                 "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object",
                                   "x-kubernetes-preserve-unknown-fields": true}}}]},
    }))
    .unwrap()
}

#[tokio::test]
async fn monitoring_hook_needs_the_operator_kinds_and_metrics_count_objects_and_quota() {
    let server = KflexServer::start();
    let host = client(&server).await;
    control_plane(
        &host,
        "mon",
        json!({"type": "k8s", "postCreateHooks": [{"hookName": "monitoring"}]}),
    )
    .await;
    let message = synced_message(&host, "mon").await;
    assert!(
        message.contains(
            "monitoring: the hosting API does not serve ServiceMonitor and PrometheusRule of monitoring.coreos.com/v1"
        ),
        "{message}"
    );
    let status = until(&host, "mon", |_| true).await;
    assert!(ready(&status), "the control plane serves anyway: {status}");

    // Once the operator's kinds exist, the retried hook writes its objects.
    let crds: Api<CustomResourceDefinition> = Api::all(host.clone());
    for (kind, plural) in [
        ("ServiceMonitor", "servicemonitors"),
        ("PrometheusRule", "prometheusrules"),
    ] {
        crds.create(&PostParams::default(), &operator_crd(kind, plural))
            .await
            .unwrap();
    }
    until(&host, "mon", |s| s["postCreateHookCompleted"] == true).await;
    let resource = |kind: &str, plural: &str| kube::core::ApiResource {
        group: "monitoring.coreos.com".into(),
        version: "v1".into(),
        api_version: "monitoring.coreos.com/v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let monitors: Api<DynamicObject> = Api::namespaced_with(
        host.clone(),
        "mon-system",
        &resource("ServiceMonitor", "servicemonitors"),
    );
    let monitor = monitors.get("mon-apiserver").await.unwrap();
    let endpoint = &monitor.data["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], "/clusters/mon/metrics");
    assert_eq!(endpoint["scheme"], "https");
    assert_eq!(
        monitor.data["spec"]["namespaceSelector"]["matchNames"],
        json!(["kflex"])
    );
    let rules: Api<DynamicObject> = Api::namespaced_with(
        host.clone(),
        "mon-system",
        &resource("PrometheusRule", "prometheusrules"),
    );
    let rule = rules.get("mon-quota").await.unwrap();
    let alerts: Vec<&Value> = rule.data["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    let thresholds: Vec<bool> = [">= 0.8 < 0.9", ">= 0.9 < 1", ">= 1"]
        .iter()
        .zip(&alerts)
        .map(|(threshold, alert)| {
            let expr = alert["expr"].as_str().unwrap();
            expr.ends_with(threshold) && expr.contains("control_plane=\"mon\"")
        })
        .collect();
    assert_eq!(thresholds, [true, true, true], "{alerts:?}");

    // The metrics the rules read: object counts per resource and quota amounts, per
    // control plane, at scrape time.
    let tenant = crate::manager::tenant(&host, "mon").await;
    let configmaps: Api<ConfigMap> = Api::namespaced(tenant.clone(), "default");
    let before = {
        let text = metrics(&tenant).await;
        sample(
            &text,
            "apiserver_storage_objects",
            &["resource=\"configmaps\"", "control_plane=\"mon\""],
        )
        .unwrap()
    };
    for name in ["a", "b"] {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(name.into());
        configmaps
            .create(&PostParams::default(), &cm)
            .await
            .unwrap();
    }
    let quotas: Api<ResourceQuota> = Api::namespaced(tenant.clone(), "default");
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "q"}, "spec": {"hard": {"configmaps": "10", "requests.memory": "1Gi"}}}))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    quotas
        .patch_status(
            "q",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"hard": {"configmaps": "10", "requests.memory": "1Gi"},
                                            "used": {"configmaps": "9", "requests.memory": "512Mi"}}})),
        )
        .await
        .unwrap();
    let text = metrics(&tenant).await;
    assert_eq!(
        sample(
            &text,
            "apiserver_storage_objects",
            &["resource=\"configmaps\"", "control_plane=\"mon\""]
        ),
        Some(before + 2.0)
    );
    assert!(
        text.contains("# TYPE apiserver_storage_objects gauge"),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "apiserver_storage_size_bytes",
            &["control_plane=\"mon\""]
        )
        .is_some_and(|bytes| bytes > 0.0),
        "{text}"
    );
    let quota_labels = [
        "namespace=\"default\"",
        "resourcequota=\"q\"",
        "control_plane=\"mon\"",
    ];
    for (resource, kind, value) in [
        ("configmaps", "used", 9.0),
        ("configmaps", "hard", 10.0),
        ("requests.memory", "used", 536870912.0),
    ] {
        let resource_label = format!("resource=\"{resource}\"");
        let type_label = format!("type=\"{kind}\"");
        let labels = [&quota_labels[..], &[&resource_label, &type_label]].concat();
        assert_eq!(
            sample(&text, "kflex_resourcequota", &labels),
            Some(value),
            "{text}"
        );
    }
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    // The hosting API shows the tenant's series too, the tenant only its own.
    let all = metrics(&host).await;
    assert!(all.contains("control_plane=\"mon\""));
    assert!(all.contains("control_plane=\"host\""));
    assert!(!text.contains("control_plane=\"host\""));
}

async fn events_of(host: &kube::Client, cp: &str, reason: &str) -> Vec<Event> {
    let events: Api<Event> = Api::namespaced(host.clone(), "default");
    events
        .list(&ListParams::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| {
            e.involved_object.name.as_deref() == Some(cp)
                && e.involved_object.kind.as_deref() == Some("ControlPlane")
                && e.reason.as_deref() == Some(reason)
        })
        .collect()
}

#[tokio::test]
async fn exec_actions_run_only_when_allowed() {
    let server = KflexServer::start();
    let host = client(&server).await;
    hook(
        &host,
        "say",
        json!({"actions": [{"type": "exec", "command": ["echo", "hi"]}]}),
    )
    .await;
    control_plane(
        &host,
        "noexec",
        json!({"type": "k8s", "postCreateHooks": [{"hookName": "say"}]}),
    )
    .await;
    let message = synced_message(&host, "noexec").await;
    assert!(
        message.contains(
            "hook say: exec: exec actions are disabled on this server (start it with --allow-exec-hooks)"
        ),
        "{message}"
    );

    // The schema: a command only for exec, and exec needs one.
    let hooks = api(&host, "PostCreateHook", "postcreatehooks");
    for (name, action, expected) in [
        (
            "nocommand",
            json!({"type": "exec"}),
            "command is required for an exec action",
        ),
        (
            "stray",
            json!({"type": "networking", "command": ["x"]}),
            "command is required for an exec action",
        ),
        (
            "unknown",
            json!({"type": "teleport"}),
            "Unsupported value: \"teleport\"",
        ),
    ] {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1", "kind": "PostCreateHook",
            "metadata": {"name": name}, "spec": {"actions": [action]}}))
        .unwrap();
        let error = hooks
            .create(&PostParams::default(), &object)
            .await
            .unwrap_err();
        let message = error.to_string();
        assert_eq!(api_error(error), (422, "Invalid".to_owned()), "{message}");
        assert!(message.contains(expected), "{name}: {message}");
    }
}

#[tokio::test]
async fn exec_actions_use_the_tenant_kubeconfig_report_events_and_time_out() {
    let kubectl = crate::support::kubectls()
        .into_iter()
        .last()
        .expect("a kubectl to run from the hook");
    let work = tempfile::tempdir().unwrap();
    let server = KflexServer::start_with(tempfile::tempdir().unwrap(), &["--allow-exec-hooks"]);
    let host = client(&server).await;
    // A real client inside the hook: kubectl with the tenant's kubeconfig.
    let script = format!(
        "echo run >> {dir}/runs-$KFLEX_CONTROL_PLANE && {kubectl} create configmap from-{{{{.HookName}}}} \
         --from-literal=cp={{{{.ControlPlaneName}}}} -n default && echo done on $KFLEX_CONTROL_PLANE",
        dir = work.path().display(),
        kubectl = kubectl.display(),
    );
    hook(
        &host,
        "seed",
        json!({"actions": [{"type": "exec", "command": ["sh", "-c", script], "timeoutSeconds": 30}]}),
    )
    .await;
    control_plane(
        &host,
        "ex",
        json!({"type": "k8s", "postCreateHooks": [{"hookName": "seed"}]}),
    )
    .await;
    let status = until(&host, "ex", |s| s["postCreateHookCompleted"] == true).await;
    assert_eq!(status["postCreateHooks"], json!({"seed": true}));
    let tenant = crate::manager::tenant(&host, "ex").await;
    let configmaps: Api<ConfigMap> = Api::namespaced(tenant, "default");
    let cm = configmaps.get("from-seed").await.unwrap();
    assert_eq!(cm.data.unwrap()["cp"], "ex");
    let executed = events_of(&host, "ex", "PostCreateHookExecuted").await;
    assert_eq!(executed.len(), 1);
    let event = &executed[0];
    assert_eq!(event.type_.as_deref(), Some("Normal"));
    let message = event.message.as_deref().unwrap();
    assert!(
        message.starts_with("hook seed: sh succeeded: configmap/from-seed created")
            && message.ends_with("done on ex"),
        "{message}"
    );
    let uid = api(&host, "ControlPlane", "controlplanes")
        .get("ex")
        .await
        .unwrap()
        .metadata
        .uid;
    assert_eq!(event.involved_object.uid, uid);
    // Applied once: later reconciles (a label change) do not run it again.
    api(&host, "ControlPlane", "controlplanes")
        .patch(
            "ex",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let runs = std::fs::read_to_string(work.path().join("runs-ex")).unwrap();
    assert_eq!(runs.lines().count(), 1, "{runs}");

    // A program that hangs the first time: killed at its timeout, reported, retried.
    let marker = work.path().join("tried");
    let hanging = format!(
        "if [ -e {marker} ]; then echo second try; else touch {marker}; sleep 60; fi",
        marker = marker.display()
    );
    hook(
        &host,
        "slow",
        json!({"actions": [{"type": "exec", "command": ["sh", "-c", hanging], "timeoutSeconds": 1}]}),
    )
    .await;
    control_plane(
        &host,
        "hang",
        json!({"type": "k8s", "postCreateHooks": [{"hookName": "slow"}]}),
    )
    .await;
    hook(
        &host,
        "forever",
        json!({"actions": [{"type": "exec", "command": ["sleep", "60"], "timeoutSeconds": 1}]}),
    )
    .await;
    control_plane(
        &host,
        "stuck",
        json!({"type": "k8s", "postCreateHooks": [{"hookName": "forever"}]}),
    )
    .await;
    let message = synced_message(&host, "stuck").await;
    assert_eq!(
        message,
        "errors processing hooks: hook forever: exec: sleep did not finish within 1s and was killed"
    );
    // The failure may show on the ControlPlane only briefly (the retry can follow at
    // once): its Event stays.
    let status = until(&host, "hang", |s| s["postCreateHookCompleted"] == true).await;
    let failed = events_of(&host, "hang", "PostCreateHookExecFailed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].type_.as_deref(), Some("Warning"));
    assert_eq!(
        failed[0].message.as_deref(),
        Some("hook slow: exec: sh did not finish within 1s and was killed")
    );
    assert_eq!(condition(&status, "Synced")["status"], "True", "{status}");
    let executed = events_of(&host, "hang", "PostCreateHookExecuted").await;
    assert!(
        executed[0]
            .message
            .as_deref()
            .unwrap()
            .ends_with("second try"),
        "{executed:?}"
    );
}
