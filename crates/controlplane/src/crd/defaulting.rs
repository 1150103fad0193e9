//! Defaulting: `default` values of a structural schema fill missing fields (and `null`
//! in fields that are not `nullable`), top-down so that defaults inside a defaulted
//! object apply too, as upstream's `structuraldefaulting.Default` does on writes and on
//! reads from storage.

use serde_json::Value;

/// Applies the schema's defaults to `value` in place.
pub fn apply(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (key, child_schema) in properties {
                    let Some(default) = child_schema.get("default") else {
                        continue;
                    };
                    let nullable = child_schema["nullable"].as_bool() == Some(true);
                    match map.get(key) {
                        None => {
                            map.insert(key.clone(), default.clone());
                        }
                        Some(Value::Null) if !nullable => {
                            map.insert(key.clone(), default.clone());
                        }
                        Some(_) => {}
                    }
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in map.iter_mut() {
                if let Some(child_schema) = properties.and_then(|p| p.get(key)).or(additional) {
                    apply(child, child_schema);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items").filter(|i| i.is_object()) {
                for item in items {
                    apply(item, item_schema);
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
    fn defaults_fill_missing_and_null_fields_top_down() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "default": {}, "properties": {
                "replicas": {"type": "integer", "default": 1},
                "mode": {"type": "string", "default": "fast"},
                "note": {"type": "string", "nullable": true, "default": "x"},
                "ports": {"type": "array", "items": {"type": "object", "properties": {
                    "protocol": {"type": "string", "default": "TCP"},
                }}},
            }},
        }});
        let mut object = json!({"metadata": {"name": "a"}});
        apply(&mut object, &schema);
        assert_eq!(
            object["spec"],
            json!({"replicas": 1, "mode": "fast", "note": "x"})
        );

        let mut object =
            json!({"spec": {"replicas": 3, "mode": null, "note": null, "ports": [{"port": 80}]}});
        apply(&mut object, &schema);
        assert_eq!(object["spec"]["replicas"], 3);
        assert_eq!(object["spec"]["mode"], "fast");
        assert_eq!(object["spec"]["note"], Value::Null);
        assert_eq!(object["spec"]["ports"][0]["protocol"], "TCP");
    }
}
