//! Upstream's LimitRanger: a namespace's LimitRanges give new Pods' containers their
//! default requests and limits (noted in the `kubernetes.io/limit-ranger` annotation), and
//! bound containers, Pods and PersistentVolumeClaims by `min`, `max` and
//! `maxLimitRequestRatio`, with upstream's messages.

use super::quantity::Quantity;
use super::usage::resource_list;
use super::Attributes;
use crate::controlplane::ControlPlane;
use crate::status::ApiError;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The annotation naming what LimitRanger set on a Pod.
const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// Resource name → quantity (a `ResourceList`).
type Resources = BTreeMap<String, Quantity>;

/// Whether LimitRanger looks at this write: new Pods (upstream leaves Pod updates alone)
/// and PersistentVolumeClaims, never subresources.
pub(super) fn applies(attrs: &Attributes<'_>) -> bool {
    (attrs.is_core("pods") && attrs.old.is_none()) || attrs.is_core("persistentvolumeclaims")
}

/// The namespace's LimitRanges, in name order.
pub(super) async fn read(
    cp: &ControlPlane,
    attrs: &Attributes<'_>,
) -> Result<Vec<Value>, ApiError> {
    match attrs.namespace {
        Some(ns) => super::list_core(cp, "limitranges", ns).await,
        None => Ok(Vec::new()),
    }
}

/// The items of a LimitRange of one `type`.
fn items<'a>(limit_range: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    limit_range["spec"]["limits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |item| item["type"] == kind)
}

/// Gives a new Pod's containers each LimitRange's container defaults they lack.
pub(super) fn default_resources(attrs: &Attributes<'_>, limit_ranges: &[Value], pod: &mut Value) {
    if !attrs.is_core("pods") || deleting(pod) {
        return;
    }
    for limit_range in limit_ranges {
        let mut requests = Map::new();
        let mut limits = Map::new();
        for item in items(limit_range, "Container") {
            for (field, into) in [("defaultRequest", &mut requests), ("default", &mut limits)] {
                if let Some(defaults) = item[field].as_object() {
                    into.extend(defaults.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        if requests.is_empty() && limits.is_empty() {
            continue;
        }
        let mut notes = Vec::new();
        for (list, what) in [
            ("containers", "container"),
            ("initContainers", "init container"),
        ] {
            let Some(containers) = pod["spec"][list].as_array_mut() else {
                continue;
            };
            for container in containers.iter_mut().filter_map(Value::as_object_mut) {
                let name = container
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let resources = container.entry("resources").or_insert_with(|| json!({}));
                let set_limits = fill(resources, "limits", &limits);
                let set_requests = fill(resources, "requests", &requests);
                for (set, note) in [(set_requests, "request"), (set_limits, "limit")] {
                    if !set.is_empty() {
                        notes.push(format!("{} {note} for {what} {name}", set.join(", ")));
                    }
                }
            }
        }
        if !notes.is_empty() {
            let meta = crate::object::metadata_mut(pod);
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            if !annotations.is_object() {
                *annotations = json!({});
            }
            annotations[ANNOTATION] =
                json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
        }
    }
}

/// Sets the defaults `resources[field]` lacks; returns the names set, sorted.
fn fill(resources: &mut Value, field: &str, defaults: &Map<String, Value>) -> Vec<String> {
    if defaults.is_empty() {
        return Vec::new();
    }
    if !resources.is_object() {
        *resources = json!({});
    }
    if !resources[field].is_object() {
        resources[field] = json!({});
    }
    let mut set = Vec::new();
    if let Some(list) = resources[field].as_object_mut() {
        for (name, quantity) in defaults {
            if !list.contains_key(name) {
                list.insert(name.clone(), quantity.clone());
                set.push(name.clone());
            }
        }
    }
    set.sort();
    set
}

/// Whether the object is being deleted (upstream leaves those alone).
fn deleting(object: &Value) -> bool {
    crate::object::meta_str(object, "deletionTimestamp").is_some()
}

/// Checks `min`, `max` and `maxLimitRequestRatio` of every LimitRange item that applies.
pub(super) fn validate(
    attrs: &Attributes<'_>,
    limit_ranges: &[Value],
    object: &Value,
) -> Result<(), ApiError> {
    if limit_ranges.is_empty() || deleting(object) {
        return Ok(());
    }
    let mut errors = Vec::new();
    for limit_range in limit_ranges {
        if attrs.is_core("pods") {
            check_pod(limit_range, object, &mut errors);
        } else {
            for item in items(limit_range, "PersistentVolumeClaim") {
                let requests = resource_list(&object["spec"]["resources"]["requests"]);
                let kind = "PersistentVolumeClaim";
                for (name, min) in resource_list(&item["min"]) {
                    errors.extend(min_constraint(
                        kind,
                        &name,
                        min,
                        &requests,
                        &Resources::new(),
                    ));
                }
                for (name, max) in resource_list(&item["max"]) {
                    errors.extend(max_request_constraint(kind, &name, max, &requests));
                }
            }
        }
    }
    // Upstream's aggregate error: one message as it is, several in brackets, each once.
    let mut unique: Vec<String> = Vec::new();
    for error in errors {
        if !unique.contains(&error) {
            unique.push(error);
        }
    }
    match unique.as_slice() {
        [] => Ok(()),
        [one] => Err(attrs.forbidden(one)),
        many => Err(attrs.forbidden(format!("[{}]", many.join(", ")))),
    }
}

fn check_pod(limit_range: &Value, pod: &Value, errors: &mut Vec<String>) {
    let containers = |list: &str| -> Vec<(Resources, Resources)> {
        pod["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    resource_list(&c["resources"]["requests"]),
                    resource_list(&c["resources"]["limits"]),
                )
            })
            .collect()
    };
    let regular = containers("containers");
    let init = containers("initContainers");
    for item in limit_range["spec"]["limits"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match item["type"].as_str() {
            Some("Container") => {
                for (requests, limits) in regular.iter().chain(&init) {
                    item_constraints(item, "Container", requests, limits, errors);
                }
            }
            Some("Pod") => {
                let requests = pod_total(&regular, &init, |(requests, _)| requests);
                let limits = pod_total(&regular, &init, |(_, limits)| limits);
                item_constraints(item, "Pod", &requests, &limits, errors);
            }
            _ => {}
        }
    }
}

/// A Pod's requests or limits: the sum over its containers, or the largest of an init
/// container's when larger (init containers run one at a time).
fn pod_total(
    regular: &[(Resources, Resources)],
    init: &[(Resources, Resources)],
    pick: impl Fn(&(Resources, Resources)) -> &Resources,
) -> Resources {
    let mut total = Resources::new();
    for container in regular {
        for (name, quantity) in pick(container) {
            let sum = total.get(name).map_or(*quantity, |t| *t + *quantity);
            total.insert(name.clone(), sum);
        }
    }
    for container in init {
        for (name, quantity) in pick(container) {
            if total.get(name).is_none_or(|t| quantity > t) {
                total.insert(name.clone(), *quantity);
            }
        }
    }
    total
}

fn item_constraints(
    item: &Value,
    kind: &str,
    requests: &Resources,
    limits: &Resources,
    errors: &mut Vec<String>,
) {
    for (name, min) in resource_list(&item["min"]) {
        errors.extend(min_constraint(kind, &name, min, requests, limits));
    }
    for (name, max) in resource_list(&item["max"]) {
        errors.extend(max_constraint(kind, &name, max, requests, limits));
    }
    for (name, ratio) in resource_list(&item["maxLimitRequestRatio"]) {
        errors.extend(ratio_constraint(kind, &name, ratio, requests, limits));
    }
}

fn min_constraint(
    kind: &str,
    name: &str,
    min: Quantity,
    requests: &Resources,
    limits: &Resources,
) -> Option<String> {
    let Some(request) = requests.get(name) else {
        return Some(format!(
            "minimum {name} usage per {kind} is {min}.  No request is specified"
        ));
    };
    if *request < min {
        return Some(format!(
            "minimum {name} usage per {kind} is {min}, but request is {request}"
        ));
    }
    match limits.get(name) {
        Some(limit) if *limit < min => Some(format!(
            "minimum {name} usage per {kind} is {min}, but limit is {limit}"
        )),
        _ => None,
    }
}

fn max_constraint(
    kind: &str,
    name: &str,
    max: Quantity,
    requests: &Resources,
    limits: &Resources,
) -> Option<String> {
    let Some(limit) = limits.get(name) else {
        return Some(format!(
            "maximum {name} usage per {kind} is {max}.  No limit is specified"
        ));
    };
    if *limit > max {
        return Some(format!(
            "maximum {name} usage per {kind} is {max}, but limit is {limit}"
        ));
    }
    match requests.get(name) {
        Some(request) if *request > max => Some(format!(
            "maximum {name} usage per {kind} is {max}, but request is {request}"
        )),
        _ => None,
    }
}

fn max_request_constraint(
    kind: &str,
    name: &str,
    max: Quantity,
    requests: &Resources,
) -> Option<String> {
    match requests.get(name) {
        None => Some(format!(
            "maximum {name} usage per {kind} is {max}.  No request is specified"
        )),
        Some(request) if *request > max => Some(format!(
            "maximum {name} usage per {kind} is {max}, but request is {request}"
        )),
        Some(_) => None,
    }
}

fn ratio_constraint(
    kind: &str,
    name: &str,
    max: Quantity,
    requests: &Resources,
    limits: &Resources,
) -> Option<String> {
    let request = requests.get(name).filter(|q| !q.is_zero());
    let limit = limits.get(name).filter(|q| !q.is_zero());
    let Some(request) = request else {
        return Some(format!("{name} max limit to request ratio per {kind} is {max}, but no request is specified or request is 0"));
    };
    let Some(limit) = limit else {
        return Some(format!("{name} max limit to request ratio per {kind} is {max}, but no limit is specified or limit is 0"));
    };
    let ratio = limit.ratio(request)?;
    let allowed = max.ratio(&Quantity::count(1))?;
    (ratio > allowed).then(|| {
        format!("{name} max limit to request ratio per {kind} is {max}, but provided ratio is {ratio:.6}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ResourceRegistry;

    fn attrs<'a>(def: &'a crate::registry::ResourceDef) -> Attributes<'a> {
        Attributes {
            def,
            namespace: Some("ns"),
            name: "p",
            subresource: None,
            old: None,
            dry_run: false,
        }
    }

    #[test]
    fn defaults_and_annotates() {
        let registry = ResourceRegistry::builtin();
        let def = registry.lookup("", "v1", "pods").unwrap();
        let range = json!({"spec": {"limits": [{"type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"},
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]}});
        let mut pod = json!({"metadata": {}, "spec": {
            "containers": [{"name": "web", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}}],
            "initContainers": [{"name": "setup"}],
        }});
        default_resources(&attrs(&def), &[range], &mut pod);
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "1", "memory": "256Mi"}, "requests": {"cpu": "1", "memory": "128Mi"}})
        );
        assert_eq!(
            pod["spec"]["initContainers"][0]["resources"],
            json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}})
        );
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            json!("LimitRanger plugin set: memory request for container web; memory limit for container web; cpu, memory request for init container setup; cpu, memory limit for init container setup")
        );
    }

    #[test]
    fn enforces_min_max_and_ratio_with_upstreams_messages() {
        let registry = ResourceRegistry::builtin();
        let def = registry.lookup("", "v1", "pods").unwrap();
        let range = json!({"spec": {"limits": [
            {"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "10Mi"}, "maxLimitRequestRatio": {"cpu": "2"}},
            {"type": "Pod", "max": {"cpu": "1500m"}},
        ]}});
        let pod = |cpu_request: &str, cpu_limit: &str| {
            json!({"spec": {"containers": [
                {"name": "a", "resources": {"requests": {"cpu": cpu_request, "memory": "20Mi"}, "limits": {"cpu": cpu_limit}}},
                {"name": "b", "resources": {"requests": {"cpu": cpu_request, "memory": "20Mi"}, "limits": {"cpu": cpu_limit}}},
            ]}})
        };
        let ranges = [range];
        assert!(validate(&attrs(&def), &ranges, &pod("500m", "700m")).is_ok());
        let error = validate(&attrs(&def), &ranges, &pod("200m", "2")).unwrap_err();
        assert_eq!(error.code(), 403);
        assert_eq!(
            error.message(),
            "pods \"p\" is forbidden: [maximum cpu usage per Container is 1, but limit is 2, \
             cpu max limit to request ratio per Container is 2, but provided ratio is 10.000000, \
             maximum cpu usage per Pod is 1500m, but limit is 4]"
        );
        let bare = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(
            validate(&attrs(&def), &ranges, &bare).unwrap_err().message(),
            "pods \"p\" is forbidden: [minimum memory usage per Container is 10Mi.  No request is specified, \
             maximum cpu usage per Container is 1.  No limit is specified, \
             cpu max limit to request ratio per Container is 2, but no request is specified or request is 0, \
             maximum cpu usage per Pod is 1500m.  No limit is specified]"
        );
    }

    #[test]
    fn bounds_claims_by_their_request() {
        let registry = ResourceRegistry::builtin();
        let def = registry.lookup("", "v1", "persistentvolumeclaims").unwrap();
        let range = json!({"spec": {"limits": [{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "2Gi"}}]}});
        let claim = |size: &str| json!({"spec": {"resources": {"requests": {"storage": size}}}});
        let ranges = [range];
        assert!(validate(&attrs(&def), &ranges, &claim("1Gi")).is_ok());
        assert_eq!(
            validate(&attrs(&def), &ranges, &claim("5Gi")).unwrap_err().message(),
            "persistentvolumeclaims \"p\" is forbidden: maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi"
        );
        assert_eq!(
            validate(&attrs(&def), &ranges, &claim("500Mi")).unwrap_err().message(),
            "persistentvolumeclaims \"p\" is forbidden: minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"
        );
    }
}
