//! Pruning: fields a structural schema does not specify are dropped, as upstream's
//! `pruning.PruneWithOptions` does, unless `x-kubernetes-preserve-unknown-fields` keeps
//! them; `apiVersion`, `kind` and `metadata` stay at the root and in embedded resources.
//! The dropped paths are returned for `fieldValidation` (`unknown field "spec.foo"`).

use serde_json::Value;

/// Prunes a custom resource in place; returns the dropped paths (`spec.foo`,
/// `spec.items[0].bar`).
pub fn prune(object: &mut Value, schema: &Value) -> Vec<String> {
    let mut pruned = Vec::new();
    node(object, schema, "", true, &mut pruned);
    pruned
}

/// Prunes a value that is not a whole object (a default), relative paths.
pub fn prune_value(value: &mut Value, schema: &Value) -> Vec<String> {
    let mut pruned = Vec::new();
    node(value, schema, "", false, &mut pruned);
    pruned
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn node(value: &mut Value, schema: &Value, path: &str, resource: bool, pruned: &mut Vec<String>) {
    let preserve = schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true);
    let embedded = resource || schema["x-kubernetes-embedded-resource"].as_bool() == Some(true);
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let child_path = join(path, &key);
                if embedded && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    if key == "metadata" && !resource {
                        if let Some(metadata) = map.get_mut(&key) {
                            let dropped = crate::fieldvalidation::prune_embedded_metadata(
                                metadata,
                                &child_path,
                            );
                            pruned.extend(dropped);
                        }
                        continue;
                    }
                    if let (Some(child), Some(child_schema)) =
                        (map.get_mut(&key), properties.and_then(|p| p.get(&key)))
                    {
                        if key != "metadata" {
                            node(child, child_schema, &child_path, false, pruned);
                        }
                    }
                    continue;
                }
                let child = map.get_mut(&key).expect("the key was just listed");
                if let Some(child_schema) = properties.and_then(|p| p.get(&key)) {
                    node(child, child_schema, &child_path, false, pruned);
                } else if let Some(child_schema) = additional.filter(|a| a.is_object()) {
                    node(child, child_schema, &child_path, false, pruned);
                } else if !(preserve || additional == Some(&Value::Bool(true))) {
                    map.remove(&key);
                    pruned.push(child_path);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items").filter(|i| i.is_object()) {
                for (i, item) in items.iter_mut().enumerate() {
                    node(item, item_schema, &format!("{path}[{i}]"), false, pruned);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_dropped_and_reported() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "replicas": {"type": "integer"},
                "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}},
            }},
        }});
        let mut object = json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "labels": {"a": "b"}},
            "spec": {
                "replicas": 1, "foo": true,
                "items": [{"name": "a", "bar": 1}],
                "labels": {"x": "y"},
                "free": {"anything": {"goes": 1}},
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "foo": 1}, "spec": {"x": 1}, "other": 2},
            },
            "status": {"ready": true},
        });
        let pruned = prune(&mut object, &schema);
        assert_eq!(
            pruned,
            vec![
                "spec.foo",
                "spec.items[0].bar",
                "spec.template.metadata.foo",
                "spec.template.other",
                "spec.template.spec.x",
                "status"
            ]
        );
        assert_eq!(object["metadata"]["labels"]["a"], "b");
        assert_eq!(object["spec"]["free"]["anything"]["goes"], 1);
        assert_eq!(object["spec"]["template"]["kind"], "Pod");
        assert_eq!(object["spec"]["template"]["metadata"], json!({"name": "p"}));
        assert!(object.get("status").is_none());
    }
}
