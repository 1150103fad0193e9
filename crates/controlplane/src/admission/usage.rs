//! What an object uses of a ResourceQuota (upstream's quota evaluators in
//! `pkg/quota/v1/evaluator/core`): pods' compute requests and limits, services' load
//! balancers and node ports, claims' storage per class, and an object count for any kind
//! (`count/<resource>.<group>`, plus the legacy `pods`, `services`, `configmaps`, ...).
//! Scopes (`Terminating`, `BestEffort`, `PriorityClass`, ...) select the pods a quota sees.

use super::quantity::Quantity;
use crate::registry::ResourceDef;
use serde_json::Value;
use std::collections::BTreeMap;

/// Resource name → quantity (a `ResourceList`).
pub type Usage = BTreeMap<String, Quantity>;

/// The claim resources counted per storage class: `<class>` + this + resource.
const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";
/// Kinds whose plural is also a legacy quota name for their count.
const LEGACY_COUNTS: [&str; 7] = [
    "pods",
    "services",
    "persistentvolumeclaims",
    "configmaps",
    "secrets",
    "replicationcontrollers",
    "resourcequotas",
];
/// The pod resources a quota on which obliges every container to state it.
const REQUIRED_PER_CONTAINER: [&str; 6] = [
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// `count/<plural>` for the core group, `count/<plural>.<group>` otherwise.
pub fn count_name(def: &ResourceDef) -> String {
    if def.group.is_empty() {
        format!("count/{}", def.plural)
    } else {
        format!("count/{}.{}", def.plural, def.group)
    }
}

fn is_core(def: &ResourceDef, plural: &str) -> bool {
    def.group.is_empty() && def.plural == plural
}

/// Whether a quota resource name is one this kind's usage is counted in.
pub fn tracks(def: &ResourceDef, name: &str) -> bool {
    if name == count_name(def)
        || (def.group.is_empty() && name == def.plural && LEGACY_COUNTS.contains(&name))
    {
        return true;
    }
    if is_core(def, "pods") {
        return matches!(
            name,
            "cpu"
                | "memory"
                | "ephemeral-storage"
                | "requests.cpu"
                | "requests.memory"
                | "requests.ephemeral-storage"
                | "limits.cpu"
                | "limits.memory"
                | "limits.ephemeral-storage"
        ) || name.starts_with("hugepages-")
            || name.starts_with("requests.");
    }
    if is_core(def, "services") {
        return matches!(name, "services.loadbalancers" | "services.nodeports");
    }
    if is_core(def, "persistentvolumeclaims") {
        return name == "requests.storage"
            || name
                .split_once(STORAGE_CLASS_SUFFIX)
                .is_some_and(|(_, r)| r == "requests.storage" || r == "persistentvolumeclaims");
    }
    false
}

/// What one object uses.
pub fn usage(def: &ResourceDef, object: &Value) -> Usage {
    let mut usage = Usage::new();
    usage.insert(count_name(def), Quantity::count(1));
    if is_core(def, "pods") {
        if !terminal(object) {
            pod_usage(&object["spec"], &mut usage);
        }
    } else if def.group.is_empty() && LEGACY_COUNTS.contains(&def.plural.as_str()) {
        usage.insert(def.plural.clone(), Quantity::count(1));
    }
    if is_core(def, "services") {
        let ports = object["spec"]["ports"].as_array().map_or(0, Vec::len) as i64;
        match object["spec"]["type"].as_str() {
            Some("NodePort") => {
                usage.insert("services.nodeports".into(), Quantity::count(ports));
            }
            Some("LoadBalancer") => {
                if object["spec"]["allocateLoadBalancerNodePorts"] != Value::Bool(false) {
                    usage.insert("services.nodeports".into(), Quantity::count(ports));
                }
                usage.insert("services.loadbalancers".into(), Quantity::count(1));
            }
            _ => {}
        }
    }
    if is_core(def, "persistentvolumeclaims") {
        claim_usage(object, &mut usage);
    }
    usage
}

/// A pod that finished: it still counts as an object (`count/pods`), but no longer as a
/// `pods` or compute user.
fn terminal(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

/// A `ResourceList` from JSON; entries that are not quantities are left out (validation of
/// the object reports them).
pub(super) fn resource_list(value: &Value) -> Usage {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, q)| Some((name.clone(), Quantity::from_json(q)?)))
        .collect()
}

/// A pod's requests or limits: the sum over its containers, at least any one init
/// container's, plus the pod's overhead.
fn pod_total(spec: &Value, field: &str) -> Usage {
    let of = |list: &str| -> Vec<Usage> {
        spec[list]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| resource_list(&c["resources"][field]))
            .collect()
    };
    let mut total = Usage::new();
    for container in of("containers") {
        add_into(&mut total, &container);
    }
    for container in of("initContainers") {
        for (name, quantity) in container {
            if total.get(&name).is_none_or(|t| quantity > *t) {
                total.insert(name, quantity);
            }
        }
    }
    add_into(&mut total, &resource_list(&spec["overhead"]));
    total
}

/// Adds `other` into `total`, name by name.
pub fn add_into(total: &mut Usage, other: &Usage) {
    for (name, quantity) in other {
        let sum = total.get(name).map_or(*quantity, |t| *t + *quantity);
        total.insert(name.clone(), sum);
    }
}

fn pod_usage(spec: &Value, usage: &mut Usage) {
    let requests = pod_total(spec, "requests");
    let limits = pod_total(spec, "limits");
    usage.insert("pods".into(), Quantity::count(1));
    for name in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(request) = requests.get(name) {
            usage.insert(name.into(), *request);
            usage.insert(format!("requests.{name}"), *request);
        }
        if let Some(limit) = limits.get(name) {
            usage.insert(format!("limits.{name}"), *limit);
        }
    }
    for (name, request) in &requests {
        if name.starts_with("hugepages-") {
            usage.insert(name.clone(), *request);
            usage.insert(format!("requests.{name}"), *request);
        } else if extended(name) {
            usage.insert(format!("requests.{name}"), *request);
        }
    }
}

/// An extended resource (`example.com/gpu`): named with a domain outside kubernetes.io.
fn extended(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

fn claim_usage(claim: &Value, usage: &mut Usage) {
    let class = claim["spec"]["storageClassName"]
        .as_str()
        .or_else(|| {
            claim["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"].as_str()
        })
        .filter(|c| !c.is_empty());
    if let Some(class) = class {
        usage.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
            Quantity::count(1),
        );
    }
    let requested = Quantity::from_json(&claim["spec"]["resources"]["requests"]["storage"]);
    let allocated = Quantity::from_json(&claim["status"]["allocatedResources"]["storage"]);
    let storage = match (requested, allocated) {
        (Some(r), Some(a)) => Some(r.max(a)),
        (r, a) => r.or(a),
    };
    if let Some(storage) = storage {
        usage.insert("requests.storage".into(), storage);
        if let Some(class) = class {
            usage.insert(
                format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"),
                storage,
            );
        }
    }
}

/// Upstream's `Constraints` for pods: when a quota limits cpu or memory, every container
/// must state the matching request or limit. The error lists what is missing.
pub fn constraints(def: &ResourceDef, hard: &[&str], object: &Value) -> Result<(), String> {
    if !is_core(def, "pods") {
        return Ok(());
    }
    let required: Vec<&str> = REQUIRED_PER_CONTAINER
        .into_iter()
        .filter(|r| hard.contains(r))
        .collect();
    if required.is_empty() {
        return Ok(());
    }
    let mut missing: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for list in ["containers", "initContainers"] {
        for container in object["spec"][list].as_array().into_iter().flatten() {
            let requests = resource_list(&container["resources"]["requests"]);
            let limits = resource_list(&container["resources"]["limits"]);
            let has = |name: &str| match name {
                "cpu" | "memory" => requests.contains_key(name),
                _ => match name.split_once('.') {
                    Some(("requests", r)) => requests.contains_key(r),
                    Some(("limits", r)) => limits.contains_key(r),
                    _ => true,
                },
            };
            for name in &required {
                if !has(name) {
                    let containers = missing.entry(name).or_default();
                    let container = container["name"].as_str().unwrap_or("").to_owned();
                    if !containers.contains(&container) {
                        containers.push(container);
                    }
                }
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = missing
        .into_iter()
        .map(|(name, mut containers)| {
            containers.sort();
            format!("{name} for: {}", containers.join(","))
        })
        .collect();
    Err(format!("must specify {}", parts.join("; ")))
}

/// Whether a quota's scopes (`spec.scopes`, `spec.scopeSelector`) select the object.
/// Scopes select pods only: a scoped quota sees no other kind.
pub fn scopes_match(quota: &Value, def: &ResourceDef, object: &Value) -> bool {
    let mut selectors: Vec<(String, String, Vec<String>)> = quota["spec"]["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s.to_owned(), "Exists".to_owned(), Vec::new()))
        .collect();
    for expression in quota["spec"]["scopeSelector"]["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let values = expression["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        selectors.push((
            expression["scopeName"].as_str().unwrap_or("").to_owned(),
            expression["operator"].as_str().unwrap_or("").to_owned(),
            values,
        ));
    }
    if selectors.is_empty() {
        return true;
    }
    if !is_core(def, "pods") {
        return false;
    }
    let spec = &object["spec"];
    selectors.iter().all(|(scope, operator, values)| {
        let in_scope = match scope.as_str() {
            "Terminating" => spec["activeDeadlineSeconds"]
                .as_i64()
                .is_some_and(|s| s >= 0),
            "NotTerminating" => spec["activeDeadlineSeconds"].as_i64().is_none_or(|s| s < 0),
            "BestEffort" => best_effort(spec),
            "NotBestEffort" => !best_effort(spec),
            "CrossNamespacePodAffinity" => cross_namespace_affinity(spec),
            "PriorityClass" => {
                let class = spec["priorityClassName"].as_str().unwrap_or("");
                return match operator.as_str() {
                    "In" => values.iter().any(|v| v == class),
                    "NotIn" => !values.iter().any(|v| v == class),
                    "Exists" => !class.is_empty(),
                    "DoesNotExist" => class.is_empty(),
                    _ => false,
                };
            }
            _ => false,
        };
        match operator.as_str() {
            "DoesNotExist" => !in_scope,
            _ => in_scope,
        }
    })
}

/// A pod none of whose containers states a request or limit.
fn best_effort(spec: &Value) -> bool {
    ["containers", "initContainers"].iter().all(|list| {
        spec[*list].as_array().into_iter().flatten().all(|c| {
            ["requests", "limits"]
                .iter()
                .all(|f| c["resources"][*f].as_object().is_none_or(|m| m.is_empty()))
        })
    })
}

/// A pod with an affinity term that reaches other namespaces.
fn cross_namespace_affinity(spec: &Value) -> bool {
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let affinity = &spec["affinity"][*kind];
        let required = affinity["requiredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten();
        let preferred = affinity["preferredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|w| &w["podAffinityTerm"]);
        required.chain(preferred).any(|term| {
            term["namespaces"].as_array().is_some_and(|n| !n.is_empty())
                || term.get("namespaceSelector").is_some_and(|s| !s.is_null())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ResourceRegistry;
    use serde_json::json;

    fn printed(usage: &Usage) -> BTreeMap<String, String> {
        usage
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect()
    }

    #[test]
    fn pods_use_their_requests_and_limits() {
        let registry = ResourceRegistry::builtin();
        let pods = registry.lookup("", "v1", "pods").unwrap();
        let pod = json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi", "example.com/gpu": "1"}, "limits": {"cpu": "500m"}}},
                {"name": "b", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
            ],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
        }});
        let usage = usage(&pods, &pod);
        assert_eq!(
            printed(&usage),
            [
                ("count/pods", "1"),
                ("cpu", "2"),
                ("limits.cpu", "500m"),
                ("memory", "128Mi"),
                ("pods", "1"),
                ("requests.cpu", "2"),
                ("requests.example.com/gpu", "1"),
                ("requests.memory", "128Mi"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
        );
        let done = json!({"spec": pod["spec"], "status": {"phase": "Succeeded"}});
        assert_eq!(printed(&super::usage(&pods, &done)).len(), 1);
        assert!(
            tracks(&pods, "requests.cpu")
                && tracks(&pods, "count/pods")
                && !tracks(&pods, "services")
        );
    }

    #[test]
    fn services_claims_and_other_kinds() {
        let registry = ResourceRegistry::builtin();
        let services = registry.lookup("", "v1", "services").unwrap();
        let lb = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(
            printed(&usage(&services, &lb)),
            [
                ("count/services", "1"),
                ("services", "1"),
                ("services.loadbalancers", "1"),
                ("services.nodeports", "2")
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
        );
        let claims = registry.lookup("", "v1", "persistentvolumeclaims").unwrap();
        let claim = json!({"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}}});
        let used = usage(&claims, &claim);
        assert_eq!(
            used["fast.storageclass.storage.k8s.io/requests.storage"].to_string(),
            "1Gi"
        );
        assert_eq!(used["requests.storage"].to_string(), "1Gi");
        let deployments = registry.lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(
            usage(&deployments, &json!({})).keys().collect::<Vec<_>>(),
            ["count/deployments.apps"]
        );
    }

    #[test]
    fn constraints_name_missing_resources_per_container() {
        let registry = ResourceRegistry::builtin();
        let pods = registry.lookup("", "v1", "pods").unwrap();
        let pod = json!({"spec": {"containers": [
            {"name": "nginx"},
            {"name": "side", "resources": {"requests": {"cpu": "1"}}},
        ]}});
        assert_eq!(
            constraints(&pods, &["cpu", "memory", "pods"], &pod).unwrap_err(),
            "must specify cpu for: nginx; memory for: nginx,side"
        );
        assert!(constraints(&pods, &["pods"], &pod).is_ok());
    }

    #[test]
    fn scopes_select_pods() {
        let registry = ResourceRegistry::builtin();
        let pods = registry.lookup("", "v1", "pods").unwrap();
        let best_effort = json!({"spec": {"containers": [{"name": "a"}]}});
        let burstable = json!({"spec": {"priorityClassName": "high", "containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}});
        let quota = json!({"spec": {"scopes": ["BestEffort"]}});
        assert!(scopes_match(&quota, &pods, &best_effort));
        assert!(!scopes_match(&quota, &pods, &burstable));
        let by_class = json!({"spec": {"scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}});
        assert!(scopes_match(&by_class, &pods, &burstable));
        assert!(!scopes_match(&by_class, &pods, &best_effort));
        let configmaps = registry.lookup("", "v1", "configmaps").unwrap();
        assert!(!scopes_match(&quota, &configmaps, &json!({})));
    }
}
