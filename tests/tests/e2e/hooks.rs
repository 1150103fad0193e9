//! PostCreateHooks, from outside: KubeFlex's hook scenarios against the real `kflex serve`
//! (variables and their precedence, a hook created after the control plane, a hook added
//! by patching, an edited hook re-applied, `waitForPostCreateHooks` with a Job), bad
//! templates (and objects the API refuses) reported on the ControlPlane and fixed by the
//! next retry, and what hooks applied removed with it.

use crate::support::client;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kflex_e2e::KflexServer;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub(crate) fn api(client: &kube::Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    let resource = kube::core::ApiResource {
        group: "tenancy.kflex.kubestellar.org".into(),
        version: "v1alpha1".into(),
        api_version: "tenancy.kflex.kubestellar.org/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    Api::all_with(client.clone(), &resource)
}

async fn create(client: &kube::Client, kind: &str, plural: &str, name: &str, spec: Value) {
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1",
        "kind": kind, "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap();
    api(client, kind, plural)
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
}

pub(crate) async fn hook(client: &kube::Client, name: &str, spec: Value) {
    create(client, "PostCreateHook", "postcreatehooks", name, spec).await;
}

pub(crate) async fn control_plane(client: &kube::Client, name: &str, spec: Value) {
    create(client, "ControlPlane", "controlplanes", name, spec).await;
}

/// Polls ControlPlane `name` until `done` holds for it (at most 30 s).
pub(crate) async fn until(
    client: &kube::Client,
    name: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let cp = api(client, "ControlPlane", "controlplanes")
            .get(name)
            .await
            .unwrap();
        let status = cp.data["status"].clone();
        if done(&status) {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) fn condition<'a>(status: &'a Value, kind: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

pub(crate) fn ready(status: &Value) -> bool {
    condition(status, "Ready")["status"] == "True"
}

/// A hook making ConfigMap `<HookName>-<ControlPlaneName>` with `MESSAGE`, and a
/// cluster-scoped ClusterRole.
fn hello() -> Value {
    json!({
        "defaultVars": [{"name": "MESSAGE", "value": "from defaults"}],
        "templates": [
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "{{.HookName}}-{{.ControlPlaneName}}"},
             "data": {"message": "{{ .MESSAGE }}", "namespace": "{{.Namespace}}"}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": "{{.ControlPlaneName}}-reader"},
             "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]},
        ],
    })
}

async fn message(client: &kube::Client, cp: &str) -> String {
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &format!("{cp}-system"));
    let cm = configmaps.get(&format!("hello-{cp}")).await.unwrap();
    cm.data.unwrap()["message"].clone()
}

#[tokio::test]
async fn hooks_apply_with_kubeflex_variables_and_go_with_the_control_plane() {
    let server = KflexServer::start();
    let host = client(&server).await;
    hook(&host, "hello", hello()).await;
    control_plane(
        &host,
        "defaults",
        json!({"type": "k8s", "postCreateHooks": [{"hookName": "hello"}]}),
    )
    .await;
    control_plane(
        &host,
        "global",
        json!({"type": "k8s", "globalVars": {"MESSAGE": "from globalVars"},
                                          "postCreateHooks": [{"hookName": "hello"}]}),
    )
    .await;
    control_plane(&host, "peruse", json!({"type": "k8s", "globalVars": {"MESSAGE": "from globalVars"},
                                          "postCreateHooks": [{"hookName": "hello", "vars": {"MESSAGE": "from vars"}}]})).await;
    control_plane(
        &host,
        "legacy",
        json!({"type": "k8s", "postCreateHook": "hello",
                                          "postCreateHookVars": {"MESSAGE": "legacy"}}),
    )
    .await;
    for (cp, expected) in [
        ("defaults", "from defaults"),
        ("global", "from globalVars"),
        ("peruse", "from vars"),
        ("legacy", "legacy"),
    ] {
        let status = until(&host, cp, |s| s["postCreateHookCompleted"] == true).await;
        assert!(ready(&status), "{status}");
        assert_eq!(status["postCreateHooks"], json!({"hello": true}));
        assert_eq!(message(&host, cp).await, expected, "{cp}");
    }
    let configmaps: Api<ConfigMap> = Api::namespaced(host.clone(), "defaults-system");
    let cm = configmaps.get("hello-defaults").await.unwrap();
    assert_eq!(cm.data.unwrap()["namespace"], "defaults-system");
    let managers: Vec<_> = cm
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"kubeflex".to_owned()), "{managers:?}");
    let roles: Api<ClusterRole> = Api::all(host.clone());
    let role = roles.get("defaults-reader").await.unwrap();
    assert_eq!(
        role.metadata.labels.unwrap()["kflex.kubestellar.org/controlplane"],
        "defaults"
    );

    // Editing the hook re-applies it to every control plane that uses it.
    let hooks = api(&host, "PostCreateHook", "postcreatehooks");
    let mut edited = hello();
    edited["defaultVars"][0]["value"] = json!("edited");
    hooks
        .patch(
            "hello",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": edited})),
        )
        .await
        .unwrap();
    let started = Instant::now();
    while message(&host, "defaults").await != "edited" {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the edit was not re-applied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        message(&host, "peruse").await,
        "from vars",
        "per-use vars still win"
    );

    // Deleting the control plane removes what its hooks applied, cluster-scoped included.
    api(&host, "ControlPlane", "controlplanes")
        .delete("defaults", &DeleteParams::default())
        .await
        .unwrap();
    crate::manager::deleted(&host, "defaults").await;
    assert!(roles.get_opt("defaults-reader").await.unwrap().is_none());
    assert!(configmaps
        .get_opt("hello-defaults")
        .await
        .unwrap()
        .is_none());
    assert!(
        roles.get_opt("global-reader").await.unwrap().is_some(),
        "others keep theirs"
    );
}

#[tokio::test]
async fn late_added_and_waited_for_hooks() {
    let server = KflexServer::start();
    let host = client(&server).await;
    // A hook that does not exist yet: a clear condition, then Ready once it appears.
    control_plane(
        &host,
        "early",
        json!({"type": "k8s", "postCreateHooks": [{"hookName": "late"}]}),
    )
    .await;
    let status = until(&host, "early", |s| {
        condition(s, "Synced")["status"] == "False"
    })
    .await;
    let message = condition(&status, "Synced")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("PostCreateHook late not found"),
        "{message}"
    );
    hook(
        &host,
        "late",
        json!({"templates": [{"apiVersion": "v1", "kind": "ConfigMap",
                                              "metadata": {"name": "late"}, "data": {}}]}),
    )
    .await;
    let status = until(&host, "early", |s| s["postCreateHookCompleted"] == true).await;
    assert!(
        ready(&status) && condition(&status, "Synced")["status"] == "True",
        "{status}"
    );

    // A hook added to an existing control plane by patching it.
    let control_planes = api(&host, "ControlPlane", "controlplanes");
    control_plane(&host, "patched", json!({"type": "k8s"})).await;
    until(&host, "patched", ready).await;
    control_planes
        .patch(
            "patched",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"postCreateHooks": [{"hookName": "late"}]}})),
        )
        .await
        .unwrap();
    until(&host, "patched", |s| s["postCreateHooks"]["late"] == true).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(host.clone(), "patched-system");
    configmaps.get("late").await.unwrap();

    // waitForPostCreateHooks: Ready waits for the hook's Job to succeed.
    hook(
        &host,
        "job",
        json!({"templates": [{"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "setup"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "setup", "image": "busybox"}]}}}}]}),
    )
    .await;
    control_plane(
        &host,
        "waits",
        json!({"type": "k8s", "waitForPostCreateHooks": true,
                                         "postCreateHooks": [{"hookName": "job"}]}),
    )
    .await;
    let status = until(&host, "waits", |s| {
        condition(s, "Ready")["reason"] == "WaitingForPostCreateHooks"
    })
    .await;
    assert_eq!(status["postCreateHooks"], json!({"job": false}));
    // No kubelet runs it here: report its success as the Job controller would.
    let jobs: Api<Job> = Api::namespaced(host.clone(), "waits-system");
    jobs.patch_status(
        "setup",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"succeeded": 1}})),
    )
    .await
    .unwrap();
    let status = until(&host, "waits", ready).await;
    assert_eq!(status["postCreateHookCompleted"], true);

    // waitForPostCreateHooks without hooks is Ready (KubeFlex never was).
    control_plane(
        &host,
        "nohooks",
        json!({"type": "k8s", "waitForPostCreateHooks": true}),
    )
    .await;
    until(&host, "nohooks", ready).await;
}

#[tokio::test]
async fn bad_hooks_are_reported_on_the_control_plane() {
    let server = KflexServer::start();
    let host = client(&server).await;
    hook(
        &host,
        "undefined",
        json!({"templates": [{"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "x"}, "data": {"a": "{{.Nope}}"}}]}),
    )
    .await;
    hook(
        &host,
        "elsewhere",
        json!({"templates": [{"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": "kube-system"}}]}),
    )
    .await;
    hook(
        &host,
        "action",
        json!({"templates": [{"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "{{range .X}}"}}]}),
    )
    .await;
    hook(
        &host,
        "unknown",
        json!({"templates": [{"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"}}]}),
    )
    .await;
    for (name, expected) in [
        ("undefined", "variable Nope is not defined"),
        ("elsewhere", "may not use namespace kube-system"),
        ("action", "unsupported action {{range .X}}"),
        ("unknown", "does not serve Widget"),
    ] {
        control_plane(
            &host,
            &format!("cp-{name}"),
            json!({"type": "k8s", "postCreateHooks": [{"hookName": name}]}),
        )
        .await;
        let status = until(&host, &format!("cp-{name}"), |s| {
            condition(s, "Synced")["status"] == "False"
        })
        .await;
        let message = condition(&status, "Synced")["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            message.contains("errors processing hooks") && message.contains(expected),
            "{message}"
        );
        assert!(ready(&status), "the control plane itself serves: {status}");
    }
    let configmaps: Api<ConfigMap> = Api::namespaced(host.clone(), "kube-system");
    assert!(
        configmaps.get_opt("x").await.unwrap().is_none(),
        "nothing written elsewhere"
    );

    // A template the API refuses, after one it accepts: the hook fails with the API's
    // reason; once fixed, the next retry applies both over what the first try left.
    hook(
        &host,
        "invalid",
        json!({"templates": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_A_Name"}},
        ]}),
    )
    .await;
    control_plane(
        &host,
        "cp-invalid",
        json!({"type": "k8s", "postCreateHooks": [{"hookName": "invalid"}]}),
    )
    .await;
    let status = until(&host, "cp-invalid", |s| {
        condition(s, "Synced")["status"] == "False"
    })
    .await;
    let message = condition(&status, "Synced")["message"].as_str().unwrap();
    assert!(
        message.contains(
            "hook invalid: ConfigMap \"Not_A_Name\" is invalid: metadata.name: Invalid value"
        ),
        "{message}"
    );
    assert_eq!(status["postCreateHooks"], json!({"invalid": false}));
    api(&host, "PostCreateHook", "postcreatehooks")
        .patch(
            "invalid",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"templates": [
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first"}},
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "second"}},
            ]}})),
        )
        .await
        .unwrap();
    until(&host, "cp-invalid", |s| {
        s["postCreateHookCompleted"] == true
    })
    .await;
    let configmaps: Api<ConfigMap> = Api::namespaced(host.clone(), "cp-invalid-system");
    for name in ["first", "second"] {
        assert!(configmaps.get_opt(name).await.unwrap().is_some(), "{name}");
    }
}

#[tokio::test]
async fn a_hook_may_target_the_new_control_plane_itself() {
    let server = KflexServer::start();
    let host = client(&server).await;
    hook(&host, "inside", json!({"target": "controlplane", "templates": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-{{.ControlPlaneName}}"}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "welcome", "namespace": "team-{{.ControlPlaneName}}"},
         "data": {"hook": "{{.HookName}}"}},
    ]})).await;
    control_plane(
        &host,
        "t",
        json!({"type": "k8s", "postCreateHooks": [{"hookName": "inside"}]}),
    )
    .await;
    until(&host, "t", |s| s["postCreateHookCompleted"] == true).await;
    let tenant = crate::manager::tenant(&host, "t").await;
    let configmaps: Api<ConfigMap> = Api::namespaced(tenant, "team-t");
    let cm = configmaps.get("welcome").await.unwrap();
    assert_eq!(cm.data.unwrap()["hook"], "inside");
    let on_host: Api<ConfigMap> = Api::namespaced(host.clone(), "t-system");
    assert!(
        on_host.get_opt("welcome").await.unwrap().is_none(),
        "nothing on the hosting API"
    );

    // A host control plane has no tenant of its own to target.
    control_plane(
        &host,
        "h",
        json!({"type": "host", "postCreateHooks": [{"hookName": "inside"}]}),
    )
    .await;
    let status = until(&host, "h", |s| condition(s, "Synced")["status"] == "False").await;
    let message = condition(&status, "Synced")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("target controlplane needs a control plane of type k8s"),
        "{message}"
    );
}
