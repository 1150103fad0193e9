//! `apps/v1` defaults: Deployments, ReplicaSets, StatefulSets and DaemonSets
//! (upstream's `pkg/apis/apps/v1/defaults.go`).

use super::{child, each, existing, or_set, or_set_str, pod_spec};
use serde_json::{json, Map, Value};

/// Applies the apps group's defaults for `kind`.
pub(super) fn on_write(kind: &str, object: &mut Value) {
    let Some(spec) = object.as_object_mut().and_then(|o| existing(o, "spec")) else {
        return;
    };
    match kind {
        "Deployment" => deployment(spec),
        "ReplicaSet" => {
            or_set(spec, "replicas", json!(1));
        }
        "StatefulSet" => stateful_set(spec),
        "DaemonSet" => daemon_set(spec),
        _ => return,
    }
    pod_spec::template_at(spec, "template");
}

/// The `maxUnavailable`/`maxSurge` of a rolling update that leaves them out.
fn rolling_update(strategy: &mut Map<String, Value>, unavailable: Value, surge: Value) {
    or_set_str(strategy, "type", "RollingUpdate");
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        if let Some(rolling) = child(strategy, "rollingUpdate") {
            or_set(rolling, "maxUnavailable", unavailable);
            or_set(rolling, "maxSurge", surge);
        }
    }
}

/// `SetDefaults_Deployment`: one replica, a 25%/25% rolling update, ten old ReplicaSets
/// kept, a ten-minute progress deadline.
fn deployment(spec: &mut Map<String, Value>) {
    or_set(spec, "replicas", json!(1));
    if let Some(strategy) = child(spec, "strategy") {
        rolling_update(strategy, json!("25%"), json!("25%"));
    }
    or_set(spec, "revisionHistoryLimit", json!(10));
    or_set(spec, "progressDeadlineSeconds", json!(600));
}

/// `SetDefaults_StatefulSet`: ordered pod management, a rolling update from partition 0,
/// one replica, ten revisions kept, claims retained, and the claim templates' defaults.
fn stateful_set(spec: &mut Map<String, Value>) {
    or_set_str(spec, "podManagementPolicy", "OrderedReady");
    if let Some(strategy) = child(spec, "updateStrategy") {
        or_set_str(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            if let Some(rolling) = child(strategy, "rollingUpdate") {
                or_set(rolling, "partition", json!(0));
            }
        }
    }
    if let Some(policy) = child(spec, "persistentVolumeClaimRetentionPolicy") {
        or_set_str(policy, "whenDeleted", "Retain");
        or_set_str(policy, "whenScaled", "Retain");
    }
    or_set(spec, "replicas", json!(1));
    or_set(spec, "revisionHistoryLimit", json!(10));
    for claim in each(spec, "volumeClaimTemplates") {
        super::core::claim(claim);
    }
}

/// `SetDefaults_DaemonSet`: a rolling update of one node at a time, ten revisions kept.
fn daemon_set(spec: &mut Map<String, Value>) {
    if let Some(strategy) = child(spec, "updateStrategy") {
        rolling_update(strategy, json!(1), json!(0));
    }
    or_set(spec, "revisionHistoryLimit", json!(10));
}

#[cfg(test)]
mod tests {
    use crate::defaults::{on_write, test_support::def};
    use serde_json::{json, Value};

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}})
    }

    fn defaulted_template() -> Value {
        json!({"metadata": {"labels": {"app": "a"}}, "spec": {
            "containers": [{"name": "c", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "resources": {}}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "securityContext": {}, "schedulerName": "default-scheduler",
        }})
    }

    #[test]
    fn deployment_defaults() {
        let mut d =
            json!({"spec": {"selector": {"matchLabels": {"app": "a"}}, "template": template()}});
        on_write(&def("apps", "v1", "deployments"), &mut d);
        assert_eq!(
            d,
            json!({"spec": {
                "selector": {"matchLabels": {"app": "a"}}, "template": defaulted_template(),
                "replicas": 1, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            }})
        );
        let mut recreate = json!({"spec": {"strategy": {"type": "Recreate"}, "replicas": 0}});
        on_write(&def("apps", "v1", "deployments"), &mut recreate);
        assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(recreate["spec"]["replicas"], 0);
    }

    #[test]
    fn stateful_set_and_daemon_set_defaults() {
        let mut s = json!({"spec": {"template": template(), "volumeClaimTemplates": [{"metadata": {"name": "d"}, "spec": {}}]}});
        on_write(&def("apps", "v1", "statefulsets"), &mut s);
        assert_eq!(s["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            s["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            s["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(
            s["spec"]["volumeClaimTemplates"][0],
            json!({"metadata": {"name": "d"}, "spec": {"volumeMode": "Filesystem"}, "status": {"phase": "Pending"}})
        );
        assert_eq!(s["spec"]["template"], defaulted_template());
        let mut ds = json!({"spec": {"template": template()}});
        on_write(&def("apps", "v1", "daemonsets"), &mut ds);
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
    }
}
