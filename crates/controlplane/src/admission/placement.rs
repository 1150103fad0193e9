//! Node placement of new Pods: upstream's PodNodeSelector (namespace annotation
//! `scheduler.alpha.kubernetes.io/node-selector`) and PodTolerationRestriction (namespace
//! annotation `scheduler.alpha.kubernetes.io/defaultTolerations`), plus a control plane's
//! own [`NodePlacement`], which pins every Pod of a tenant to its dedicated nodes.

use super::Attributes;
use crate::status::ApiError;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The namespace annotation whose labels every Pod of the namespace must select.
pub const NODE_SELECTOR_ANNOTATION: &str = "scheduler.alpha.kubernetes.io/node-selector";
/// The namespace annotation holding tolerations added to every Pod of the namespace.
pub const DEFAULT_TOLERATIONS_ANNOTATION: &str = "scheduler.alpha.kubernetes.io/defaultTolerations";

/// A control plane's dedicated-node setting: every Pod it admits gets this node selector
/// (a conflicting one is refused) and these tolerations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodePlacement {
    /// Node labels every Pod selects.
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations (`core/v1` `Toleration` objects) every Pod gets.
    pub tolerations: Vec<Value>,
}

impl NodePlacement {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.node_selector.is_empty() && self.tolerations.is_empty()
    }
}

/// PodNodeSelector: adds the control plane's and the namespace's node selector to a new Pod
/// (a conflicting one is refused).
pub(super) fn select_nodes(
    attrs: &Attributes<'_>,
    placement: Option<&std::sync::Arc<NodePlacement>>,
    namespace: Option<&Value>,
    pod: &mut Value,
) -> Result<(), ApiError> {
    if let Some(placement) = placement {
        select(attrs, pod, &placement.node_selector, "the control plane's")?;
    }
    if let Some(text) = annotation(namespace, NODE_SELECTOR_ANNOTATION) {
        let selector = parse_labels(text).map_err(|e| attrs.forbidden(e))?;
        select(attrs, pod, &selector, "its namespace")?;
    }
    Ok(())
}

/// PodTolerationRestriction: adds the control plane's and the namespace's default
/// tolerations to a new Pod.
pub(super) fn add_tolerations(
    attrs: &Attributes<'_>,
    placement: Option<&std::sync::Arc<NodePlacement>>,
    namespace: Option<&Value>,
    pod: &mut Value,
) -> Result<(), ApiError> {
    if let Some(placement) = placement {
        tolerate(pod, &placement.tolerations);
    }
    if let Some(text) = annotation(namespace, DEFAULT_TOLERATIONS_ANNOTATION) {
        let tolerations: Vec<Value> = serde_json::from_str(text).map_err(|e| {
            attrs.forbidden(format!(
                "invalid {DEFAULT_TOLERATIONS_ANNOTATION} annotation: {e}"
            ))
        })?;
        if !tolerations.iter().all(Value::is_object) {
            return Err(attrs.forbidden(format!(
                "invalid {DEFAULT_TOLERATIONS_ANNOTATION} annotation: tolerations must be objects"
            )));
        }
        tolerate(pod, &tolerations);
    }
    Ok(())
}

/// A namespace annotation's value.
fn annotation<'a>(namespace: Option<&'a Value>, key: &str) -> Option<&'a str> {
    namespace
        .and_then(|ns| ns["metadata"]["annotations"].get(key))
        .and_then(Value::as_str)
}

/// `k=v,k2=v2` (upstream's `labels.ConvertSelectorToLabelsMap`).
fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (key, value) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .ok_or_else(|| format!("invalid selector: {text:?}"))?;
        labels.insert(key.trim().to_owned(), value.trim().to_owned());
    }
    Ok(labels)
}

/// Merges `selector` into the Pod's `nodeSelector`; a key the Pod sets to another value is
/// a conflict, refused as upstream's PodNodeSelector does.
fn select(
    attrs: &Attributes<'_>,
    pod: &mut Value,
    selector: &BTreeMap<String, String>,
    whose: &str,
) -> Result<(), ApiError> {
    if selector.is_empty() {
        return Ok(());
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let existing = spec
        .entry("nodeSelector")
        .or_insert_with(|| Value::Object(Map::new()));
    if !existing.is_object() {
        *existing = Value::Object(Map::new());
    }
    let Some(existing) = existing.as_object_mut() else {
        return Ok(());
    };
    for (key, value) in selector {
        match existing.get(key).and_then(Value::as_str) {
            Some(set) if set != value => {
                return Err(attrs.forbidden(format!(
                    "pod node label selector conflicts with {whose} node label selector"
                )))
            }
            Some(_) => {}
            None => {
                existing.insert(key.clone(), json!(value));
            }
        }
    }
    Ok(())
}

/// Merges `extra` into the Pod's tolerations as upstream's `MergeTolerations` does: a
/// toleration another one covers (a superset of it) is dropped, and of equal ones the
/// first is kept.
fn tolerate(pod: &mut Value, extra: &[Value]) {
    if extra.is_empty() {
        return;
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let all: Vec<Value> = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(extra)
        .map(normalized)
        .collect();
    let mut merged: Vec<Value> = Vec::new();
    for (i, toleration) in all.iter().enumerate() {
        let covered = merged.iter().any(|kept| is_superset(kept, toleration))
            || all[i + 1..]
                .iter()
                .any(|later| later != toleration && is_superset(later, toleration));
        if !covered {
            merged.push(toleration.clone());
        }
    }
    spec.insert("tolerations".into(), Value::Array(merged));
}

/// Whether toleration `wide` tolerates everything `narrow` does (upstream's `isSuperset`):
/// the same key, or an empty key with `Exists`; the same effect, or none; for `NoExecute`,
/// no shorter toleration time; and a value that matches.
fn is_superset(wide: &Value, narrow: &Value) -> bool {
    if wide == narrow {
        return true;
    }
    let text = |t: &Value, field: &str| t[field].as_str().unwrap_or("").to_owned();
    let (operator, key, effect) = (
        text(wide, "operator"),
        text(wide, "key"),
        text(wide, "effect"),
    );
    if text(narrow, "key") != key && !(key.is_empty() && operator == "Exists") {
        return false;
    }
    if text(narrow, "effect") != effect && !effect.is_empty() {
        return false;
    }
    if effect == "NoExecute" {
        if let Some(limit) = wide["tolerationSeconds"].as_i64() {
            match narrow["tolerationSeconds"].as_i64() {
                Some(seconds) if seconds <= limit => {}
                _ => return false,
            }
        }
    }
    match operator.as_str() {
        "Equal" | "" => {
            text(narrow, "operator") == "Equal" && text(narrow, "value") == text(wide, "value")
        }
        "Exists" => true,
        _ => false,
    }
}

/// A toleration with upstream's defaults made explicit (operator `Equal`), so that
/// equal tolerations compare equal.
fn normalized(toleration: &Value) -> Value {
    let mut toleration = toleration.clone();
    if let Some(map) = toleration.as_object_mut() {
        map.retain(|_, v| !v.is_null() && v != "");
        map.entry("operator").or_insert_with(|| json!("Equal"));
    }
    toleration
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ResourceRegistry;

    fn run(placement: NodePlacement, namespace: Value, pod: &mut Value) -> Result<(), ApiError> {
        let registry = ResourceRegistry::builtin();
        let def = registry.lookup("", "v1", "pods").unwrap();
        let attrs = Attributes {
            def: &def,
            namespace: Some("ns"),
            name: "p",
            subresource: None,
            old: None,
            dry_run: false,
        };
        let placement = std::sync::Arc::new(placement);
        select_nodes(&attrs, Some(&placement), Some(&namespace), pod)?;
        add_tolerations(&attrs, Some(&placement), Some(&namespace), pod)
    }

    #[test]
    fn merges_selectors_and_tolerations() {
        let placement = NodePlacement {
            node_selector: [("pool".to_owned(), "tenant-a".to_owned())].into(),
            tolerations: vec![
                json!({"key": "dedicated", "operator": "Equal", "value": "a", "effect": "NoSchedule"}),
            ],
        };
        let namespace = json!({"metadata": {"annotations": {
            NODE_SELECTOR_ANNOTATION: "zone=z1, disk=ssd",
            DEFAULT_TOLERATIONS_ANNOTATION: r#"[{"key": "dedicated", "value": "a", "effect": "NoSchedule"}, {"operator": "Exists", "effect": "NoExecute"}]"#,
        }}});
        let mut pod = json!({"spec": {"nodeSelector": {"disk": "ssd"}, "containers": []}});
        run(placement, namespace, &mut pod).unwrap();
        assert_eq!(
            pod["spec"]["nodeSelector"],
            json!({"disk": "ssd", "pool": "tenant-a", "zone": "z1"})
        );
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": "dedicated", "operator": "Equal", "value": "a", "effect": "NoSchedule"},
                {"operator": "Exists", "effect": "NoExecute"},
            ])
        );
    }

    #[test]
    fn wider_tolerations_absorb_narrower_ones() {
        let mut pod = json!({"spec": {"tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "a", "operator": "Equal", "value": "1", "effect": "NoSchedule"},
        ]}});
        tolerate(
            &mut pod,
            &[
                json!({"operator": "Exists", "effect": "NoExecute"}),
                json!({"key": "a", "value": "1", "effect": "NoSchedule"}),
                json!({"key": "b", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}),
            ],
        );
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": "a", "operator": "Equal", "value": "1", "effect": "NoSchedule"},
                {"operator": "Exists", "effect": "NoExecute"},
            ])
        );
        let short = json!({"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60});
        let long = json!({"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 600});
        assert!(is_superset(&long, &short));
        assert!(!is_superset(&short, &long));
    }

    #[test]
    fn refuses_conflicting_selectors() {
        let namespace = json!({"metadata": {"annotations": {NODE_SELECTOR_ANNOTATION: "zone=z1"}}});
        let mut pod = json!({"spec": {"nodeSelector": {"zone": "z2"}}});
        let error = run(NodePlacement::default(), namespace, &mut pod).unwrap_err();
        assert_eq!(error.code(), 403);
        assert_eq!(
            error.message(),
            "pods \"p\" is forbidden: pod node label selector conflicts with its namespace node label selector"
        );
        let placement = NodePlacement {
            node_selector: [("pool".to_owned(), "a".to_owned())].into(),
            tolerations: Vec::new(),
        };
        let mut pod = json!({"spec": {"nodeSelector": {"pool": "b"}}});
        assert_eq!(run(placement, json!({}), &mut pod).unwrap_err().code(), 403);
        let bad =
            json!({"metadata": {"annotations": {DEFAULT_TOLERATIONS_ANNOTATION: "not json"}}});
        let mut pod = json!({"spec": {}});
        assert_eq!(
            run(NodePlacement::default(), bad, &mut pod)
                .unwrap_err()
                .code(),
            403
        );
    }
}
