//! The `scale` subresource: a workload's replicas seen and written as an
//! `autoscaling/v1` `Scale`, as kube-apiserver serves it for deployments, replica sets,
//! stateful sets and replication controllers, and for custom resources through their
//! CRD's `specReplicasPath`, `statusReplicasPath` and `labelSelectorPath`.

use crate::registry::ResourceDef;
use crate::status::ApiError;
use serde_json::{json, Value};

/// The value at a simple JSON path (`.spec.replicas`).
fn at<'a>(object: &'a Value, path: &str) -> &'a Value {
    path.trim_start_matches('.')
        .split('.')
        .fold(object, |value, field| &value[field])
}

/// Sets the value at a simple JSON path, creating the objects on the way.
fn set_at(object: &mut Value, path: &str, new: Value) {
    let mut value = object;
    for field in path.trim_start_matches('.').split('.') {
        if !value.is_object() {
            *value = json!({});
        }
        value = &mut value[field];
    }
    *value = new;
}

/// The `Scale` of a workload object.
pub(super) fn to_scale(def: &ResourceDef, object: &Value) -> Value {
    let paths = def.crd.as_ref().and_then(|c| c.scale.as_ref());
    let (spec_replicas, status_replicas, selector) = match paths {
        Some(paths) => (
            at(object, &paths.spec_replicas),
            at(object, &paths.status_replicas),
            paths
                .label_selector
                .as_deref()
                .map_or(Value::Null, |p| at(object, p).clone()),
        ),
        None => (
            &object["spec"]["replicas"],
            &object["status"]["replicas"],
            json!(selector_text(&object["spec"]["selector"])),
        ),
    };
    let meta = &object["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": spec_replicas.as_i64().unwrap_or(0)},
        "status": {
            "replicas": status_replicas.as_i64().unwrap_or(0),
            "selector": selector.as_str().unwrap_or(""),
        },
    })
}

/// The workload with the replicas a `Scale` asks for.
pub(super) fn apply_scale(
    def: &ResourceDef,
    current: &Value,
    scale: &Value,
) -> Result<Value, ApiError> {
    if scale.get("kind").and_then(Value::as_str) != Some("Scale")
        || scale.get("apiVersion").and_then(Value::as_str) != Some("autoscaling/v1")
    {
        return Err(ApiError::bad_request(
            "the body of a scale request must be an autoscaling/v1 Scale",
        ));
    }
    let replicas = match &scale["spec"]["replicas"] {
        Value::Null => 0,
        value => value.as_i64().filter(|r| *r >= 0).ok_or_else(|| {
            ApiError::bad_request(format!(
                "spec.replicas must be a non-negative integer, not {value}"
            ))
        })?,
    };
    let mut updated = current.clone();
    let path = def
        .crd
        .as_ref()
        .and_then(|c| c.scale.as_ref())
        .map_or(".spec.replicas", |p| p.spec_replicas.as_str());
    set_at(&mut updated, path, json!(replicas));
    Ok(updated)
}

/// A selector as `Scale.status.selector` renders it: `metav1.FormatLabelSelector` for a
/// label selector (`a=b,c in (x,y)`), `a=b` pairs for a replication controller's map.
pub(super) fn selector_text(selector: &Value) -> String {
    let Some(map) = selector.as_object() else {
        return String::new();
    };
    let pairs = |labels: &serde_json::Map<String, Value>| -> Vec<String> {
        labels
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect()
    };
    if !map.contains_key("matchLabels") && !map.contains_key("matchExpressions") {
        return pairs(map).join(",");
    }
    let mut parts = map
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(pairs)
        .unwrap_or_default();
    for expression in map
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = expression["key"].as_str().unwrap_or("");
        let values: Vec<&str> = expression["values"]
            .as_array()
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(match expression["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_owned(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other}"),
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_mirrors_replicas_and_selector() {
        let deployment = json!({
            "metadata": {"name": "web", "namespace": "ns", "resourceVersion": "7"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}},
            "status": {"replicas": 2},
        });
        let registry = crate::registry::ResourceRegistry::builtin();
        let def = registry.lookup("apps", "v1", "deployments").unwrap();
        let scale = to_scale(&def, &deployment);
        assert_eq!(scale["spec"]["replicas"], 3);
        assert_eq!(scale["status"]["selector"], "app=web,tier in (a,b)");
        let updated = apply_scale(
            &def,
            &deployment,
            &json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "spec": {"replicas": 5}}),
        )
        .unwrap();
        assert_eq!(updated["spec"]["replicas"], 5);
        assert!(apply_scale(
            &def,
            &deployment,
            &json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "spec": {"replicas": -1}})
        )
        .is_err());
        assert!(apply_scale(&def, &deployment, &json!({"kind": "Deployment"})).is_err());
        assert_eq!(selector_text(&json!({"app": "db"})), "app=db");
    }
}
