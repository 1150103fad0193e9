//! The `scale` subresource: a workload's replicas seen and written as an
//! `autoscaling/v1` `Scale`, as kube-apiserver serves it for deployments, replica sets,
//! stateful sets and replication controllers, and for custom resources through their
//! CRD's `specReplicasPath`, `statusReplicasPath` and `labelSelectorPath`.
//!
//! Server-side apply of a `Scale` runs in the `Scale`'s terms, as upstream's `ScaleHandler`
//! does it: the parent's managers of its replicas field become managers of the `Scale`'s
//! `spec.replicas`, the apply merges and checks conflicts there, and the outcome goes back
//! to the parent as an entry with `subresource: scale` owning the parent's replicas field.

use super::write::{respond, write_with_retries};
use super::Call;
use crate::http::{json, Body};
use crate::patch::fields::{Element, FieldSet};
use crate::patch::managed::{self, Manager};
use crate::patch::schema::Node;
use crate::registry::ResourceDef;
use crate::status::ApiError;
use http::{Response, StatusCode};
use serde_json::{json, Value};

/// The field a `Scale` carries its desired replicas in.
const SCALE_REPLICAS: [&str; 2] = ["spec", "replicas"];

/// The parent's field of the desired replicas, as a simple JSON path (`.spec.replicas`).
fn spec_replicas_path(def: &ResourceDef) -> &str {
    def.crd
        .as_ref()
        .and_then(|c| c.scale.as_ref())
        .map_or(".spec.replicas", |p| p.spec_replicas.as_str())
}

/// A simple JSON path as a managed-fields path (`f:spec`, `f:replicas`).
fn field_path<'a>(fields: impl IntoIterator<Item = &'a str>) -> Vec<Element> {
    fields.into_iter().map(|f| format!("f:{f}")).collect()
}

/// The parent's replicas field as a managed-fields path.
fn parent_replicas(def: &ResourceDef) -> Vec<Element> {
    field_path(spec_replicas_path(def).trim_start_matches('.').split('.'))
}

/// The `managedFields` entries of an object.
fn entries(object: &Value) -> &[Value] {
    object["metadata"]["managedFields"]
        .as_array()
        .map_or(&[], Vec::as_slice)
}

/// An entry's fields.
fn entry_fields(entry: &Value) -> FieldSet {
    FieldSet::from_v1(entry.get("fieldsV1").unwrap_or(&Value::Null))
}

/// Who an entry is, as upstream tells managers apart: name, operation, subresource, and
/// the API version of updates (appliers keep one entry across versions).
fn identity(entry: &Value) -> [&str; 4] {
    let text = |key: &str| entry.get(key).and_then(Value::as_str).unwrap_or_default();
    let version = match text("operation") {
        "Apply" => "",
        _ => text("apiVersion"),
    };
    [
        text("manager"),
        text("operation"),
        version,
        text("subresource"),
    ]
}

/// The parent's managed fields as its `Scale` sees them (upstream's
/// `ScaleHandler.ToSubresource`): the entries owning the parent's replicas field, owning
/// the `Scale`'s `spec.replicas` instead. Entries keep their identity, so that conflicts
/// name managers as the parent knows them.
fn scale_entries(def: &ResourceDef, parent: &Value) -> Vec<Value> {
    let replicas = parent_replicas(def);
    let api_version = def.api_version();
    entries(parent)
        .iter()
        .filter(|e| e["apiVersion"].as_str() == Some(&api_version))
        .filter(|e| entry_fields(e).contains(&replicas))
        .map(|e| {
            let mut entry = e.clone();
            entry["fieldsV1"] = FieldSet::from_paths([&field_path(SCALE_REPLICAS)]).to_v1();
            entry
        })
        .collect()
}

/// The parent's managed fields after a write to its `Scale` whose entries are
/// `scale_entries` (upstream's `ScaleHandler.ToParent`): a parent entry that lost the
/// replicas field in the `Scale` loses it here; a `Scale` manager new to it owns the
/// parent's replicas field in the parent's API version.
fn parent_entries(def: &ResourceDef, parent: &Value, scale_entries: &[Value]) -> Vec<Value> {
    let replicas = parent_replicas(def);
    let api_version = def.api_version();
    let mut from_scale: Vec<&Value> = scale_entries.iter().collect();
    let mut result = Vec::new();
    for entry in entries(parent) {
        let mut fields = entry_fields(entry);
        if entry["apiVersion"].as_str() != Some(&api_version) || !fields.contains(&replicas) {
            result.push(entry.clone());
        } else if let Some(at) = from_scale
            .iter()
            .position(|s| identity(s) == identity(entry))
        {
            from_scale.remove(at);
            result.push(entry.clone());
        } else {
            fields.subtract(&FieldSet::from_paths([&replicas]));
            if !fields.is_empty() {
                let mut kept = entry.clone();
                kept["fieldsV1"] = fields.to_v1();
                result.push(kept);
            }
        }
    }
    let scale_replicas = field_path(SCALE_REPLICAS);
    for entry in from_scale {
        if entry_fields(entry).contains(&scale_replicas) {
            let mut added = entry.clone();
            added["apiVersion"] = json!(api_version);
            added["fieldsV1"] = FieldSet::from_paths([&replicas]).to_v1();
            result.push(added);
        }
    }
    result
}

/// Serves a server-side apply of a `Scale` (`applied`, already checked against its
/// schema) for `manager`: the parent's replicas change, and the manager owns them.
pub(super) async fn apply(
    call: &Call<'_>,
    mut applied: Value,
    manager: &str,
    force: bool,
) -> Result<Response<Body>, ApiError> {
    check_type(&applied)?;
    let precondition = super::apply::placed_precondition(call, &mut applied)?;
    let api_version = call.def.api_version();
    let manager = Manager {
        name: manager,
        api_version: &api_version,
        subresource: Some("scale"),
    };
    let node = Node::builtin_kind("autoscaling", "v1", "Scale");
    let written = write_with_retries(call, precondition, |current| {
        let mut live = to_scale(&call.def, current);
        live["metadata"]["managedFields"] = json!(scale_entries(&call.def, current));
        let scale = managed::apply(Some(&live), &applied, node, &manager, force, true)?;
        let mut updated = apply_scale(&call.def, current, &scale)?;
        let entries = parent_entries(&call.def, current, entries(&scale));
        if let Some(meta) = updated["metadata"].as_object_mut() {
            match entries.is_empty() {
                true => meta.remove("managedFields"),
                false => meta.insert("managedFields".into(), json!(entries)),
            };
        }
        Ok(updated)
    })
    .await?;
    Ok(json(StatusCode::OK, &respond(call, written)))
}

/// A `Scale` body must say it is an `autoscaling/v1` `Scale`.
fn check_type(scale: &Value) -> Result<(), ApiError> {
    if scale.get("kind").and_then(Value::as_str) != Some("Scale")
        || scale.get("apiVersion").and_then(Value::as_str) != Some("autoscaling/v1")
    {
        return Err(ApiError::bad_request(
            "the body of a scale request must be an autoscaling/v1 Scale",
        ));
    }
    Ok(())
}

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
    check_type(scale)?;
    let replicas = match &scale["spec"]["replicas"] {
        Value::Null => 0,
        value => value.as_i64().filter(|r| *r >= 0).ok_or_else(|| {
            ApiError::bad_request(format!(
                "spec.replicas must be a non-negative integer, not {value}"
            ))
        })?,
    };
    let mut updated = current.clone();
    set_at(&mut updated, spec_replicas_path(def), json!(replicas));
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

    fn entry(manager: &str, operation: &str, fields: Value, subresource: Option<&str>) -> Value {
        let mut entry = json!({
            "manager": manager, "operation": operation, "apiVersion": "apps/v1",
            "fieldsType": "FieldsV1", "fieldsV1": fields,
        });
        if let Some(sub) = subresource {
            entry["subresource"] = json!(sub);
        }
        entry
    }

    fn deployment(entries: Vec<Value>) -> Value {
        json!({"metadata": {"name": "web", "managedFields": entries}, "spec": {"replicas": 1}})
    }

    #[test]
    fn managers_of_replicas_move_between_parent_and_scale() {
        let registry = crate::registry::ResourceRegistry::builtin();
        let def = registry.lookup("apps", "v1", "deployments").unwrap();
        let both = json!({"f:spec": {"f:replicas": {}, "f:selector": {}}});
        let replicas = json!({"f:spec": {"f:replicas": {}}});
        let parent = deployment(vec![
            entry("apply", "Apply", both.clone(), None),
            entry("other", "Update", json!({"f:spec": {"f:paused": {}}}), None),
        ]);
        // Only the manager of the replicas is seen from the Scale, under its own identity.
        let seen = scale_entries(&def, &parent);
        assert_eq!(seen, [entry("apply", "Apply", replicas.clone(), None)]);

        // A forced apply to the Scale took the replicas: the parent's entry loses them,
        // and the Scale's manager owns the parent's replicas field, marked as the Scale's.
        let mut scaler = entry("scaler", "Apply", replicas.clone(), Some("scale"));
        scaler["apiVersion"] = json!("autoscaling/v1");
        let after = parent_entries(&def, &parent, &[scaler]);
        assert_eq!(
            after,
            [
                entry(
                    "apply",
                    "Apply",
                    json!({"f:spec": {"f:selector": {}}}),
                    None
                ),
                entry("other", "Update", json!({"f:spec": {"f:paused": {}}}), None),
                entry("scaler", "Apply", replicas.clone(), Some("scale")),
            ]
        );

        // Shared ownership keeps both entries as they were.
        let shared = entry("co", "Apply", replicas.clone(), Some("scale"));
        let after = parent_entries(&def, &parent, &[seen[0].clone(), shared.clone()]);
        assert_eq!(after[0], parent["metadata"]["managedFields"][0]);
        assert_eq!(after[2], shared);
    }

    #[test]
    fn custom_resources_map_their_spec_replicas_path() {
        let registry = crate::registry::ResourceRegistry::builtin();
        let mut def = (*registry.lookup("apps", "v1", "deployments").unwrap()).clone();
        def.crd = Some(std::sync::Arc::new(crate::crd::CustomResource {
            crd_name: "things.example.com".into(),
            open_api_v3_schema: json!({"type": "object"}),
            columns: Vec::new(),
            scale: Some(crate::crd::ScalePaths {
                spec_replicas: ".spec.size".into(),
                status_replicas: ".status.size".into(),
                label_selector: None,
            }),
            selectable_fields: Vec::new(),
            terminating: false,
            rules: crate::crd::rules::Rules::compile(&json!({"type": "object"})),
        }));
        let parent = deployment(vec![entry(
            "apply",
            "Update",
            json!({"f:spec": {"f:size": {}}}),
            None,
        )]);
        let seen = scale_entries(&def, &parent);
        assert_eq!(seen[0]["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
        let scaler = entry(
            "s",
            "Update",
            json!({"f:spec": {"f:replicas": {}}}),
            Some("scale"),
        );
        let after = parent_entries(&def, &parent, &[scaler]);
        assert_eq!(
            after,
            [entry(
                "s",
                "Update",
                json!({"f:spec": {"f:size": {}}}),
                Some("scale")
            )]
        );
    }
}
