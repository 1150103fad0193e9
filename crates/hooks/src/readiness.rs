//! Whether an applied object is ready, by KubeFlex's rules for `waitForPostCreateHooks`:
//! Deployments and StatefulSets have every replica ready, a Job has succeeded, a DaemonSet
//! runs everywhere it should, a CRD is Established, a Pod runs or has succeeded; anything
//! else is ready once it exists.

use serde_json::Value;

/// Whether `object` (as stored) is ready.
pub fn is_ready(object: &Value) -> bool {
    let status = &object["status"];
    let kind = object["kind"].as_str().unwrap_or_default();
    let group = object["apiVersion"]
        .as_str()
        .and_then(|v| v.split_once('/'))
        .map_or("", |(group, _)| group);
    match (group, kind) {
        ("apps", "Deployment" | "StatefulSet") => {
            let wanted = object["spec"]["replicas"].as_i64().unwrap_or(1);
            status["readyReplicas"].as_i64().unwrap_or(0) == wanted
        }
        ("batch", "Job") => status["succeeded"].as_i64().unwrap_or(0) > 0,
        ("apps", "DaemonSet") => {
            status["numberReady"].as_i64() == status["desiredNumberScheduled"].as_i64()
                && status["desiredNumberScheduled"].is_i64()
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            status["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Established" && c["status"] == "True")
            })
        }
        ("", "Pod") => matches!(status["phase"].as_str(), Some("Running" | "Succeeded")),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubeflex_readiness_rules() {
        let job = |succeeded| json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"succeeded": succeeded}});
        assert!(!is_ready(&job(0)));
        assert!(is_ready(&job(1)));
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {}, "status": {"readyReplicas": 1}});
        assert!(is_ready(&deployment));
        assert!(!is_ready(
            &json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 2}, "status": {"readyReplicas": 1}})
        ));
        assert!(!is_ready(
            &json!({"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Pending"}})
        ));
        assert!(is_ready(&json!({"apiVersion": "v1", "kind": "ConfigMap"})));
    }
}
