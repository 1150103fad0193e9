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

/// Adds the control plane's and the namespace's node selector and tolerations to a new Pod.
pub(super) fn admit(
    attrs: &Attributes<'_>,
    placement: Option<&std::sync::Arc<NodePlacement>>,
    namespace: Option<&Value>,
    pod: &mut Value,
) -> Result<(), ApiError> {
    let annotation = |key: &str| {
        namespace
            .and_then(|ns| ns["metadata"]["annotations"].get(key))
            .and_then(Value::as_str)
    };
    if let Some(placement) = placement {
        select(attrs, pod, &placement.node_selector, "the control plane's")?;
        tolerate(pod, &placement.tolerations);
    }
    if let Some(text) = annotation(NODE_SELECTOR_ANNOTATION) {
        let selector = parse_labels(text).map_err(|e| attrs.forbidden(e))?;
        select(attrs, pod, &selector, "its namespace")?;
    }
    if let Some(text) = annotation(DEFAULT_TOLERATIONS_ANNOTATION) {
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

/// Adds each toleration the Pod does not already have (upstream's `MergeTolerations`).
fn tolerate(pod: &mut Value, extra: &[Value]) {
    if extra.is_empty() {
        return;
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let list = spec
        .entry("tolerations")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    let Some(list) = list.as_array_mut() else {
        return;
    };
    for toleration in extra {
        let toleration = normalized(toleration);
        if !list.iter().any(|t| normalized(t) == toleration) {
            list.push(toleration);
        }
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
        admit(
            &attrs,
            Some(&std::sync::Arc::new(placement)),
            Some(&namespace),
            pod,
        )
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
