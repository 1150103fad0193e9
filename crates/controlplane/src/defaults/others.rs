//! The smaller groups' defaults: RBAC role references and subjects, HorizontalPodAutoscaler
//! metrics and scaling behaviour, StorageClasses and CSIDrivers, PriorityClasses,
//! EndpointSlice ports, admission webhooks and ValidatingAdmissionPolicies.

use super::{child, each, existing, or_set, or_set_str};
use serde_json::{json, Map, Value};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const ADMISSION_GROUP: &str = "admissionregistration.k8s.io";

/// Applies the defaults of `group`'s `kind`.
pub(super) fn on_write(group: &str, kind: &str, object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    match (group, kind) {
        (RBAC_GROUP, "RoleBinding" | "ClusterRoleBinding") => binding(map),
        ("autoscaling", "HorizontalPodAutoscaler") => {
            if let Some(spec) = existing(map, "spec") {
                autoscaler(spec);
            }
        }
        ("storage.k8s.io", "StorageClass") => {
            or_set_str(map, "reclaimPolicy", "Delete");
            or_set_str(map, "volumeBindingMode", "Immediate");
        }
        ("storage.k8s.io", "CSIDriver") => {
            if let Some(spec) = existing(map, "spec") {
                or_set(spec, "attachRequired", json!(true));
                or_set(spec, "podInfoOnMount", json!(false));
                or_set(spec, "storageCapacity", json!(false));
                or_set(spec, "fsGroupPolicy", json!("ReadWriteOnceWithFSType"));
                or_set(spec, "requiresRepublish", json!(false));
                or_set(spec, "volumeLifecycleModes", json!(["Persistent"]));
                or_set(spec, "seLinuxMount", json!(false));
            }
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            or_set(map, "preemptionPolicy", json!("PreemptLowerPriority"));
        }
        (ADMISSION_GROUP, "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration") => {
            let mutating = kind.starts_with("Mutating");
            for webhook in each(map, "webhooks") {
                self::webhook(webhook, mutating);
            }
        }
        (ADMISSION_GROUP, "ValidatingAdmissionPolicy") => {
            if let Some(spec) = existing(map, "spec") {
                or_set(spec, "failurePolicy", json!("Fail"));
                if let Some(constraints) = existing(spec, "matchConstraints") {
                    match_resources(constraints);
                }
            }
        }
        (ADMISSION_GROUP, "ValidatingAdmissionPolicyBinding") => {
            if let Some(resources) =
                existing(map, "spec").and_then(|s| existing(s, "matchResources"))
            {
                match_resources(resources);
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            for port in each(map, "ports") {
                or_set(port, "name", json!(""));
                or_set(port, "protocol", json!("TCP"));
            }
        }
        _ => {}
    }
}

/// `SetDefaults_ValidatingWebhook`/`MutatingWebhook` with their rules' and service
/// references' defaults.
fn webhook(webhook: &mut Map<String, Value>, mutating: bool) {
    or_set(webhook, "failurePolicy", json!("Fail"));
    or_set(webhook, "matchPolicy", json!("Equivalent"));
    or_set(webhook, "namespaceSelector", json!({}));
    or_set(webhook, "objectSelector", json!({}));
    or_set(webhook, "timeoutSeconds", json!(10));
    if mutating {
        or_set(webhook, "reinvocationPolicy", json!("Never"));
    }
    for rule in each(webhook, "rules") {
        or_set(rule, "scope", json!("*"));
    }
    if let Some(service) = existing(webhook, "clientConfig").and_then(|c| existing(c, "service")) {
        or_set(service, "port", json!(443));
    }
}

/// `SetDefaults_MatchResources` and the scope of its rules.
fn match_resources(resources: &mut Map<String, Value>) {
    or_set(resources, "matchPolicy", json!("Equivalent"));
    or_set(resources, "namespaceSelector", json!({}));
    or_set(resources, "objectSelector", json!({}));
    for list in ["resourceRules", "excludeResourceRules"] {
        for rule in each(resources, list) {
            or_set(rule, "scope", json!("*"));
        }
    }
}

/// `SetDefaults_RoleBinding`/`ClusterRoleBinding` and `SetDefaults_Subject`: the RBAC
/// group for the role reference and for User and Group subjects.
fn binding(binding: &mut Map<String, Value>) {
    if let Some(role_ref) = existing(binding, "roleRef") {
        or_set_str(role_ref, "apiGroup", RBAC_GROUP);
    }
    for subject in each(binding, "subjects") {
        let group = match subject.get("kind").and_then(Value::as_str) {
            Some("ServiceAccount") => "",
            Some("User" | "Group") => RBAC_GROUP,
            _ => continue,
        };
        let entry = subject.entry("apiGroup").or_insert(Value::Null);
        if entry.is_null() || entry.as_str() == Some("") {
            *entry = json!(group);
        }
    }
}

/// `autoscaling/v2`'s `SetDefaults_HorizontalPodAutoscaler`: one replica at least, 80%
/// CPU utilization when no metric is given, and the scaling rules' defaults when a
/// behaviour is given.
fn autoscaler(spec: &mut Map<String, Value>) {
    or_set(spec, "minReplicas", json!(1));
    let no_metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if no_metrics {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
    let Some(behavior) = existing(spec, "behavior") else {
        return;
    };
    let up = json!([
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ]);
    let down = json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]);
    for (key, window, policies) in [("scaleUp", 0, up), ("scaleDown", 300, down)] {
        if let Some(rules) = child(behavior, key) {
            or_set(rules, "stabilizationWindowSeconds", json!(window));
            or_set(rules, "selectPolicy", json!("Max"));
            or_set(rules, "policies", policies);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::defaults::{on_write, test_support::def};
    use serde_json::json;

    #[test]
    fn webhook_and_policy_defaults() {
        let mut config = json!({"webhooks": [{"name": "w.example.com", "sideEffects": "None",
            "admissionReviewVersions": ["v1"], "clientConfig": {"service": {"namespace": "n", "name": "s"}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}]});
        on_write(
            &def(
                "admissionregistration.k8s.io",
                "v1",
                "mutatingwebhookconfigurations",
            ),
            &mut config,
        );
        assert_eq!(
            config["webhooks"][0],
            json!({"name": "w.example.com", "sideEffects": "None",
            "admissionReviewVersions": ["v1"], "clientConfig": {"service": {"namespace": "n", "name": "s", "port": 443}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "scope": "*"}],
            "failurePolicy": "Fail", "matchPolicy": "Equivalent", "namespaceSelector": {}, "objectSelector": {},
            "timeoutSeconds": 10, "reinvocationPolicy": "Never"})
        );
        let mut validating = json!({"webhooks": [{"name": "v"}]});
        on_write(
            &def(
                "admissionregistration.k8s.io",
                "v1",
                "validatingwebhookconfigurations",
            ),
            &mut validating,
        );
        assert!(validating["webhooks"][0]
            .get("reinvocationPolicy")
            .is_none());
        let mut policy =
            json!({"spec": {"matchConstraints": {"resourceRules": [{"operations": ["*"]}]}}});
        on_write(
            &def(
                "admissionregistration.k8s.io",
                "v1",
                "validatingadmissionpolicies",
            ),
            &mut policy,
        );
        assert_eq!(
            policy,
            json!({"spec": {"failurePolicy": "Fail", "matchConstraints": {
            "resourceRules": [{"operations": ["*"], "scope": "*"}], "matchPolicy": "Equivalent",
            "namespaceSelector": {}, "objectSelector": {}}}})
        );
    }

    #[test]
    fn rbac_groups_are_filled_in() {
        let mut rb = json!({"roleRef": {"kind": "Role", "name": "r"}, "subjects": [
            {"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "s", "namespace": "n"}]});
        on_write(
            &def("rbac.authorization.k8s.io", "v1", "rolebindings"),
            &mut rb,
        );
        assert_eq!(
            rb,
            json!({"roleRef": {"kind": "Role", "name": "r", "apiGroup": "rbac.authorization.k8s.io"}, "subjects": [
            {"kind": "User", "name": "u", "apiGroup": "rbac.authorization.k8s.io"},
            {"kind": "ServiceAccount", "name": "s", "namespace": "n", "apiGroup": ""}]})
        );
    }

    #[test]
    fn autoscaler_storage_class_and_priority_class_defaults() {
        let mut hpa =
            json!({"spec": {"maxReplicas": 5, "behavior": {"scaleDown": {"selectPolicy": "Min"}}}});
        on_write(
            &def("autoscaling", "v2", "horizontalpodautoscalers"),
            &mut hpa,
        );
        assert_eq!(hpa["spec"]["minReplicas"], 1);
        assert_eq!(
            hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        assert_eq!(
            hpa["spec"]["behavior"]["scaleDown"],
            json!({"selectPolicy": "Min",
            "stabilizationWindowSeconds": 300, "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]})
        );
        assert_eq!(
            hpa["spec"]["behavior"]["scaleUp"]["policies"][0],
            json!({"type": "Pods", "value": 4, "periodSeconds": 15})
        );
        let mut sc = json!({"provisioner": "p"});
        on_write(&def("storage.k8s.io", "v1", "storageclasses"), &mut sc);
        assert_eq!(
            sc,
            json!({"provisioner": "p", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"})
        );
        let mut pc = json!({"value": 5});
        on_write(&def("scheduling.k8s.io", "v1", "priorityclasses"), &mut pc);
        assert_eq!(pc["preemptionPolicy"], "PreemptLowerPriority");
    }
}
