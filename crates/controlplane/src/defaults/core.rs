//! Core (`v1`) defaults: Pods and pod templates, ReplicationControllers, Services,
//! Secrets (and their write-only `stringData`), Namespaces, volumes and claims, Endpoints,
//! LimitRanges and Nodes.

use super::{child, each, existing, or_set, or_set_str, pod_spec};
use base64::Engine;
use serde_json::{json, Map, Value};

/// Applies the core group's defaults for `kind`.
pub(super) fn on_write(kind: &str, object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    match kind {
        "Pod" => pod_spec::pod(map),
        "PodTemplate" => pod_spec::template_at(map, "template"),
        "ReplicationController" => replication_controller(map),
        "Service" => service(map),
        "Secret" => {
            merge_string_data(object);
            if let Some(map) = object.as_object_mut() {
                or_set_str(map, "type", "Opaque");
            }
        }
        "Namespace" => namespace(map),
        "PersistentVolume" => {
            if let Some(spec) = existing(map, "spec") {
                or_set_str(spec, "persistentVolumeReclaimPolicy", "Retain");
                or_set(spec, "volumeMode", json!("Filesystem"));
            }
            if let Some(status) = child(map, "status") {
                or_set_str(status, "phase", "Pending");
            }
        }
        "PersistentVolumeClaim" => claim(map),
        "Endpoints" => {
            for subset in each(map, "subsets") {
                for port in each(subset, "ports") {
                    or_set_str(port, "protocol", "TCP");
                }
            }
        }
        "LimitRange" => {
            if let Some(spec) = existing(map, "spec") {
                for item in each(spec, "limits") {
                    limit_range_item(item);
                }
            }
        }
        "Node" => {
            if let Some(status) = existing(map, "status") {
                if let Some(capacity) = status.get("capacity").filter(|c| c.is_object()).cloned() {
                    or_set(status, "allocatable", capacity);
                }
            }
        }
        _ => {}
    }
}

/// A PersistentVolumeClaim (also a StatefulSet's claim template): `Filesystem` volume
/// mode and a `Pending` phase.
pub(super) fn claim(claim: &mut Map<String, Value>) {
    if let Some(spec) = existing(claim, "spec") {
        or_set(spec, "volumeMode", json!("Filesystem"));
    }
    if let Some(status) = child(claim, "status") {
        or_set_str(status, "phase", "Pending");
    }
}

/// `SetDefaults_ReplicationController`: the template's labels are the selector and the
/// object's labels when those are empty; one replica.
fn replication_controller(rc: &mut Map<String, Value>) {
    let labels = rc
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|l| l.is_object())
        .cloned();
    let empty = |v: Option<&Value>| v.and_then(Value::as_object).is_none_or(Map::is_empty);
    if let Some(labels) = labels {
        if let Some(spec) = existing(rc, "spec") {
            if empty(spec.get("selector")) {
                spec.insert("selector".into(), labels.clone());
            }
        }
        if let Some(meta) = child(rc, "metadata") {
            if empty(meta.get("labels")) {
                meta.insert("labels".into(), labels);
            }
        }
    }
    if let Some(spec) = existing(rc, "spec") {
        or_set(spec, "replicas", json!(1));
        pod_spec::template_at(spec, "template");
    }
}

/// `SetDefaults_Service` (the cluster IP, its families and node ports are allocated
/// elsewhere: [`crate::services`]).
fn service(service: &mut Map<String, Value>) {
    let Some(spec) = existing(service, "spec") else {
        return;
    };
    or_set_str(spec, "sessionAffinity", "None");
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"))
                .filter(|t| !t.is_null());
            if timeout.is_none() {
                spec.insert(
                    "sessionAffinityConfig".into(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
        _ => {}
    }
    or_set_str(spec, "type", "ClusterIP");
    for port in each(spec, "ports") {
        or_set_str(port, "protocol", "TCP");
        let target = port.get("targetPort");
        let unset = target.is_none_or(|t| t.is_null() || t == &json!(0) || t == &json!(""));
        if unset {
            if let Some(number) = port.get("port").cloned() {
                port.insert("targetPort".into(), number);
            }
        }
    }
    let kind = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|ips| !ips.is_empty());
    let externally_accessible =
        kind == "LoadBalancer" || kind == "NodePort" || (kind == "ClusterIP" && external_ips);
    if externally_accessible {
        or_set_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(kind.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") {
        or_set(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if kind == "LoadBalancer" {
        or_set(spec, "allocateLoadBalancerNodePorts", json!(true));
        if let Some(ingress) = existing(service, "status").and_then(|s| existing(s, "loadBalancer"))
        {
            for entry in each(ingress, "ingress") {
                if entry
                    .get("ip")
                    .and_then(Value::as_str)
                    .is_some_and(|ip| !ip.is_empty())
                {
                    or_set(entry, "ipMode", json!("VIP"));
                }
            }
        }
    }
}

/// `SetDefaults_Namespace`: the `kubernetes.io/metadata.name` label; an `Active` phase.
fn namespace(ns: &mut Map<String, Value>) {
    let name = ns
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    if let Some(name) = name {
        if let Some(labels) = child(ns, "metadata").and_then(|m| child(m, "labels")) {
            labels.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
    }
    if let Some(status) = child(ns, "status") {
        or_set_str(status, "phase", "Active");
    }
}

/// `SetDefaults_LimitRangeItem`: a container limit's default is its max, its default
/// request its default, else its min.
fn limit_range_item(item: &mut Map<String, Value>) {
    if item.get("type").and_then(Value::as_str) != Some("Container") {
        return;
    }
    let resources = |item: &Map<String, Value>, key: &str| {
        item.get(key)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let max = resources(item, "max");
    let min = resources(item, "min");
    let mut default = resources(item, "default");
    for (k, v) in max {
        default.entry(k).or_insert(v);
    }
    let mut request = resources(item, "defaultRequest");
    for (k, v) in default.iter().chain(min.iter()) {
        request.entry(k.clone()).or_insert(v.clone());
    }
    item.insert("default".into(), Value::Object(default));
    item.insert("defaultRequest".into(), Value::Object(request));
}

/// A Secret's `stringData` is write-only: each entry replaces the `data` entry of the same
/// key, base64-encoded, and `stringData` itself is never stored (upstream's v1 conversion).
fn merge_string_data(secret: &mut Value) {
    let Some(map) = secret.as_object_mut() else {
        return;
    };
    let Some(Value::Object(strings)) = map.remove("stringData") else {
        return;
    };
    if strings.is_empty() {
        return;
    }
    let data = map
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Value::Object(data) = data {
        for (key, value) in strings {
            let text = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            data.insert(
                key,
                Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::defaults::{on_write, test_support::def};
    use crate::registry::ResourceDef;

    fn secrets() -> ResourceDef {
        def("", "v1", "secrets")
    }

    #[test]
    fn string_data_becomes_base64_data_and_wins() {
        let mut secret = json!({
            "kind": "Secret",
            "data": {"a": "b2xk", "keep": "eA=="},
            "stringData": {"a": "new", "b": "two"},
        });
        on_write(&secrets(), &mut secret);
        assert_eq!(
            secret,
            json!({"kind": "Secret", "type": "Opaque", "data": {"a": "bmV3", "keep": "eA==", "b": "dHdv"}})
        );
    }

    #[test]
    fn other_kinds_and_secrets_without_string_data_are_untouched() {
        let mut secret =
            json!({"kind": "Secret", "type": "kubernetes.io/tls", "data": {"a": "eA=="}});
        let before = secret.clone();
        on_write(&secrets(), &mut secret);
        assert_eq!(secret, before);
        let configmaps = crate::registry::ResourceRegistry::builtin()
            .lookup("", "v1", "configmaps")
            .unwrap();
        let mut cm = json!({"kind": "ConfigMap", "stringData": {"a": "x"}});
        on_write(&configmaps, &mut cm);
        assert!(cm.get("stringData").is_some());
    }
}

#[cfg(test)]
mod kind_tests {
    use crate::defaults::{on_write, test_support::def};
    use serde_json::json;

    #[test]
    fn service_defaults() {
        let mut svc = json!({"metadata": {"name": "s"}, "spec": {"selector": {"app": "a"}, "ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}});
        on_write(&def("", "v1", "services"), &mut svc);
        assert_eq!(
            svc["spec"],
            json!({"selector": {"app": "a"},
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}],
            "type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"})
        );
        let mut np = json!({"spec": {"type": "NodePort", "sessionAffinity": "ClientIP", "ports": [{"port": 80, "targetPort": 0}]}});
        on_write(&def("", "v1", "services"), &mut np);
        assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(
            np["spec"]["sessionAffinityConfig"],
            json!({"clientIP": {"timeoutSeconds": 10800}})
        );
        assert_eq!(np["spec"]["ports"][0]["targetPort"], 80);
        let mut ext = json!({"spec": {"type": "ExternalName", "externalName": "x.example"}});
        on_write(&def("", "v1", "services"), &mut ext);
        assert!(ext["spec"].get("internalTrafficPolicy").is_none());
    }

    #[test]
    fn replication_controller_namespace_and_claim_defaults() {
        let mut rc = json!({"metadata": {"name": "r"}, "spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}}});
        on_write(&def("", "v1", "replicationcontrollers"), &mut rc);
        assert_eq!(rc["spec"]["selector"], json!({"a": "b"}));
        assert_eq!(rc["metadata"]["labels"], json!({"a": "b"}));
        assert_eq!(rc["spec"]["replicas"], 1);
        assert_eq!(rc["spec"]["template"]["spec"]["restartPolicy"], "Always");
        let mut ns = json!({"metadata": {"name": "team"}});
        on_write(&def("", "v1", "namespaces"), &mut ns);
        assert_eq!(
            ns,
            json!({"metadata": {"name": "team", "labels": {"kubernetes.io/metadata.name": "team"}}, "status": {"phase": "Active"}})
        );
        let mut pvc = json!({"spec": {"accessModes": ["ReadWriteOnce"]}});
        on_write(&def("", "v1", "persistentvolumeclaims"), &mut pvc);
        assert_eq!(
            pvc,
            json!({"spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem"}, "status": {"phase": "Pending"}})
        );
    }
}
