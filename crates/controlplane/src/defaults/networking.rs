//! `networking.k8s.io/v1` defaults: NetworkPolicy policy types and port protocols,
//! IngressClass parameter scopes.

use super::{each, existing, or_set, or_set_str};
use serde_json::{json, Map, Value};

/// Applies the networking group's defaults for `kind`.
pub(super) fn on_write(kind: &str, object: &mut Value) {
    let Some(spec) = object.as_object_mut().and_then(|o| existing(o, "spec")) else {
        return;
    };
    match kind {
        "NetworkPolicy" => network_policy(spec),
        "IngressClass" => {
            if let Some(parameters) = existing(spec, "parameters") {
                or_set(parameters, "scope", json!("Cluster"));
            }
        }
        _ => {}
    }
}

/// `SetDefaults_NetworkPolicy`: `Ingress` always, `Egress` when egress rules exist; TCP
/// ports.
fn network_policy(spec: &mut Map<String, Value>) {
    for direction in ["ingress", "egress"] {
        for rule in each(spec, direction) {
            for port in each(rule, "ports") {
                or_set_str(port, "protocol", "TCP");
            }
        }
    }
    let empty = spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if empty {
        let egress = spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty());
        let types = if egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
        spec.insert("policyTypes".into(), types);
    }
}

#[cfg(test)]
mod tests {
    use crate::defaults::{on_write, test_support::def};
    use serde_json::json;

    #[test]
    fn network_policy_defaults() {
        let mut np = json!({"spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}});
        on_write(&def("networking.k8s.io", "v1", "networkpolicies"), &mut np);
        assert_eq!(
            np,
            json!({"spec": {"podSelector": {}, "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"port": 80, "protocol": "TCP"}]}]}})
        );
        let mut np = json!({"spec": {"podSelector": {}, "egress": [{}]}});
        on_write(&def("networking.k8s.io", "v1", "networkpolicies"), &mut np);
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    }
}
