//! Validation of a custom resource against its version's structural schema, with the
//! field paths and messages upstream's OpenAPI validator reports (kube-openapi's
//! `validate` package through apiextensions' error conversion): types and formats,
//! `enum`, `required`, numeric and size limits, `pattern`, `nullable`, the
//! `x-kubernetes-*` extensions, and `allOf`/`anyOf`/`oneOf`/`not`.

use super::{cause, duplicate, invalid, not_supported, required};
use crate::status::Cause;
use serde_json::{json, Value};

/// Every problem of a custom resource: the fields its schema describes (not `metadata`,
/// `apiVersion` and `kind`, which the API machinery checks).
pub fn validate(object: &Value, schema: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(map) = object.as_object() else {
        return causes;
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    for (key, value) in map {
        if matches!(key.as_str(), "metadata" | "apiVersion" | "kind") {
            continue;
        }
        if let Some(child) = properties.and_then(|p| p.get(key)) {
            node(value, child, key, &mut causes);
        }
    }
    for name in schema["required"].as_array().into_iter().flatten() {
        if let Some(name) = name.as_str() {
            if !map.contains_key(name) {
                causes.push(required(name, ""));
            }
        }
    }
    causes
}

/// Every problem of `value` (at `path`, `""` for a whole value) against `schema`.
pub fn validate_value(value: &Value, schema: &Value, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    node(value, schema, path, &mut causes);
    causes
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// JSON integers, including `1.0`, as Go's decoder and kube-openapi accept them.
fn as_integer(value: &Value) -> Option<f64> {
    let n = value.as_f64()?;
    (value.is_i64() || value.is_u64() || n.fract() == 0.0).then_some(n)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) if as_integer(value).is_some() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(value: &Value, kind: &str) -> bool {
    match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "number" => value.is_number(),
        "integer" => as_integer(value).is_some(),
        _ => true,
    }
}

/// The name a path has in messages (`spec.replicas in body`).
fn body(path: &str) -> String {
    if path.is_empty() {
        "body".into()
    } else {
        format!("{path} in body")
    }
}

fn type_invalid(path: &str, expected: &str, actual: &str) -> Cause {
    cause(
        "FieldValueTypeInvalid",
        path,
        format!(
            "Invalid value: {}: {} must be of type {expected}: {}",
            json!(actual),
            body(path),
            json!(actual)
        ),
    )
}

fn node(value: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let kind = schema.get("type").and_then(Value::as_str).unwrap_or("");
    let int_or_string = schema["x-kubernetes-int-or-string"].as_bool() == Some(true);
    if value.is_null() {
        if schema["nullable"].as_bool() != Some(true) && (!kind.is_empty() || int_or_string) {
            let expected = if int_or_string {
                "integer,string"
            } else {
                kind
            };
            causes.push(type_invalid(path, expected, "null"));
        }
        return;
    }
    if int_or_string {
        if !(value.is_string() || as_integer(value).is_some()) {
            causes.push(type_invalid(path, "integer,string", type_name(value)));
            return;
        }
    } else if !kind.is_empty() && !has_type(value, kind) {
        causes.push(type_invalid(path, kind, type_name(value)));
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            causes.push(not_supported(path, value, options));
        }
    }
    match value {
        Value::Number(_) => numeric(value, schema, path, causes),
        Value::String(text) => string(text, value, schema, path, causes),
        Value::Array(items) => array(items, value, schema, path, causes),
        Value::Object(map) => object(map, schema, path, causes),
        _ => {}
    }
    for sub in schema["allOf"].as_array().into_iter().flatten() {
        node(value, sub, path, causes);
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        if !any
            .iter()
            .any(|s| validate_value(value, s, path).is_empty())
        {
            causes.push(invalid(
                path,
                value,
                &format!("{} must validate at least one schema (anyOf)", body(path)),
            ));
        }
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
        if one
            .iter()
            .filter(|s| validate_value(value, s, path).is_empty())
            .count()
            != 1
        {
            causes.push(invalid(
                path,
                value,
                &format!(
                    "{} must validate one and only one schema (oneOf)",
                    body(path)
                ),
            ));
        }
    }
    if let Some(not) = schema.get("not") {
        if validate_value(value, not, path).is_empty() {
            causes.push(invalid(
                path,
                value,
                &format!("{} must not validate the schema (not)", body(path)),
            ));
        }
    }
}

fn numeric(value: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let n = value.as_f64().unwrap_or_default();
    let exclusive = |k: &str| schema[k].as_bool() == Some(true);
    if let Some(max) = schema["maximum"].as_f64() {
        if exclusive("exclusiveMaximum") && n >= max {
            causes.push(invalid(
                path,
                value,
                &format!("{} should be less than {}", body(path), schema["maximum"]),
            ));
        } else if n > max {
            causes.push(invalid(
                path,
                value,
                &format!(
                    "{} should be less than or equal to {}",
                    body(path),
                    schema["maximum"]
                ),
            ));
        }
    }
    if let Some(min) = schema["minimum"].as_f64() {
        if exclusive("exclusiveMinimum") && n <= min {
            causes.push(invalid(
                path,
                value,
                &format!(
                    "{} should be greater than {}",
                    body(path),
                    schema["minimum"]
                ),
            ));
        } else if n < min {
            causes.push(invalid(
                path,
                value,
                &format!(
                    "{} should be greater than or equal to {}",
                    body(path),
                    schema["minimum"]
                ),
            ));
        }
    }
    if let Some(factor) = schema["multipleOf"].as_f64().filter(|f| *f > 0.0) {
        if (n / factor).fract() != 0.0 {
            causes.push(invalid(
                path,
                value,
                &format!(
                    "{} should be a multiple of {}",
                    body(path),
                    schema["multipleOf"]
                ),
            ));
        }
    }
    let format = schema["format"].as_str().unwrap_or("");
    let out_of_range = match format {
        "int32" => n < i32::MIN as f64 || n > i32::MAX as f64,
        _ => false,
    };
    if out_of_range {
        causes.push(invalid(
            path,
            value,
            &format!(
                "{} must be of type {format}: {}",
                body(path),
                json!(value.to_string())
            ),
        ));
    }
}

/// Whether `text` has the string `format` (the formats kube-openapi checks that CRDs use).
fn has_format(text: &str, format: &str) -> bool {
    match format {
        "date-time" => text.parse::<jiff::Timestamp>().is_ok(),
        "date" => text.parse::<jiff::civil::Date>().is_ok() && text.len() == 10,
        "uuid" => uuid::Uuid::parse_str(text).is_ok() && text.len() == 36,
        "byte" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .is_ok()
        }
        _ => true,
    }
}

fn string(text: &str, value: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let length = text.chars().count() as u64;
    if let Some(max) = schema["maxLength"].as_u64() {
        if length > max {
            causes.push(cause(
                "FieldValueTooLong",
                path,
                format!("Too long: may not be more than {max} bytes"),
            ));
        }
    }
    if let Some(min) = schema["minLength"].as_u64() {
        if length < min {
            causes.push(invalid(
                path,
                value,
                &format!("{} should be at least {min} chars long", body(path)),
            ));
        }
    }
    if let Some(pattern) = schema["pattern"].as_str() {
        match regex::Regex::new(pattern) {
            Ok(re) if re.is_match(text) => {}
            _ => causes.push(invalid(
                path,
                value,
                &format!("{} should match '{pattern}'", body(path)),
            )),
        }
    }
    let format = schema["format"].as_str().unwrap_or("");
    if !has_format(text, format) {
        causes.push(invalid(
            path,
            value,
            &format!("{} must be of type {format}: {value}", body(path)),
        ));
    }
}

fn array(items: &[Value], value: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let count = items.len() as u64;
    if let Some(max) = schema["maxItems"].as_u64() {
        if count > max {
            causes.push(cause(
                "FieldValueTooMany",
                path,
                format!("Too many: {count}: must have at most {max} items"),
            ));
        }
    }
    if let Some(min) = schema["minItems"].as_u64() {
        if count < min {
            causes.push(invalid(
                path,
                value,
                &format!("{} should have at least {min} items", body(path)),
            ));
        }
    }
    let unique = schema["uniqueItems"].as_bool() == Some(true);
    if unique
        && items
            .iter()
            .enumerate()
            .any(|(i, a)| items[..i].contains(a))
    {
        causes.push(invalid(
            path,
            value,
            &format!("{} shouldn't contain duplicates", body(path)),
        ));
    }
    match schema["x-kubernetes-list-type"].as_str() {
        Some("set") => {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    causes.push(duplicate(&format!("{path}[{i}]"), item));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let key_of =
                |item: &Value| -> Vec<Value> { keys.iter().map(|k| item[*k].clone()).collect() };
            for (i, item) in items.iter().enumerate() {
                let key = key_of(item);
                if items[..i].iter().any(|other| key_of(other) == key) {
                    let fields: Vec<String> = keys
                        .iter()
                        .zip(&key)
                        .filter(|(_, v)| !v.is_null())
                        .map(|(k, v)| format!("{}:{v}", json!(k)))
                        .collect();
                    causes.push(cause(
                        "FieldValueDuplicate",
                        &format!("{path}[{i}]"),
                        format!(
                            "Duplicate value: map[string]interface {{}}{{{}}}",
                            fields.join(", ")
                        ),
                    ));
                }
            }
        }
        _ => {}
    }
    if let Some(item_schema) = schema.get("items").filter(|s| s.is_object()) {
        for (i, item) in items.iter().enumerate() {
            node(item, item_schema, &format!("{path}[{i}]"), causes);
        }
    }
}

fn object(
    map: &serde_json::Map<String, Value>,
    schema: &Value,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    let count = map.len() as u64;
    if let Some(max) = schema["maxProperties"].as_u64() {
        if count > max {
            causes.push(cause(
                "FieldValueTooMany",
                path,
                format!("Too many: {count}: must have at most {max} items"),
            ));
        }
    }
    if let Some(min) = schema["minProperties"].as_u64() {
        if count < min {
            causes.push(invalid(
                path,
                &Value::Object(map.clone()),
                &format!("{} should have at least {min} properties", body(path)),
            ));
        }
    }
    if schema["x-kubernetes-embedded-resource"].as_bool() == Some(true) {
        for field in ["apiVersion", "kind"] {
            if map
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                causes.push(required(&join(path, field), "must not be empty"));
            }
        }
    }
    for name in schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(name) {
            causes.push(required(&join(path, name), ""));
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (key, child) in map {
        if let Some(child_schema) = properties.and_then(|p| p.get(key)).or(additional) {
            node(child, child_schema, &join(path, key), causes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "required": ["spec"], "properties": {
            "spec": {"type": "object", "required": ["size"], "properties": {
                "replicas": {"type": "integer", "minimum": 0, "maximum": 10},
                "size": {"type": "string", "enum": ["S", "M"]},
                "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
                "port": {"x-kubernetes-int-or-string": true},
                "when": {"type": "string", "format": "date-time"},
                "note": {"type": "string", "nullable": true},
                "tags": {"type": "array", "maxItems": 3, "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
                "ratio": {"type": "number", "exclusiveMinimum": true, "minimum": 0},
            }},
        }})
    }

    fn errors(object: Value) -> Vec<String> {
        validate(&object, &schema())
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn a_valid_object_passes() {
        let object = json!({"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "a"}, "spec": {
            "replicas": 3, "size": "S", "name": "abc", "port": "http", "when": "2024-01-02T03:04:05Z",
            "note": null, "tags": ["a", "b"], "ports": [{"name": "a"}, {"name": "b"}],
            "template": {"apiVersion": "v1", "kind": "Pod"}, "ratio": 0.5,
        }});
        assert_eq!(errors(object), Vec::<String>::new());
    }

    #[test]
    fn each_keyword_reports_as_upstream() {
        let object = json!({"spec": {
            "replicas": "three", "name": "ABCDEFG", "port": true, "when": "yesterday",
            "tags": ["a", "a", "b", "c"], "ports": [{"name": "a"}, {"name": "a"}],
            "template": {"kind": "Pod"}, "ratio": 0,
        }});
        let errors = errors(object);
        let expected = [
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
            "spec.size: Required value",
            "spec.name: Too long: may not be more than 5 bytes",
            "spec.name: Invalid value: \"ABCDEFG\": spec.name in body should match '^[a-z]+$'",
            "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"",
            "spec.when: Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\"",
            "spec.tags: Too many: 4: must have at most 3 items",
            "spec.tags[1]: Duplicate value: \"a\"",
            "spec.ports[1]: Duplicate value: map[string]interface {}{\"name\":\"a\"}",
            "spec.template.apiVersion: Required value: must not be empty",
            "spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0",
        ];
        for e in expected {
            assert!(
                errors.contains(&e.to_owned()),
                "missing {e}\nin {errors:#?}"
            );
        }
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    }

    #[test]
    fn limits_enums_and_nulls() {
        let errors = errors(json!({"spec": {"size": "XL", "replicas": 11, "name": "a"}}));
        assert!(
            errors.contains(
                &"spec.size: Unsupported value: \"XL\": supported values: \"S\", \"M\"".to_owned()
            ),
            "{errors:?}"
        );
        assert!(errors.contains(&"spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10".to_owned()), "{errors:?}");
        assert!(errors.contains(&"spec.name: Invalid value: \"a\": spec.name in body should be at least 2 chars long".to_owned()), "{errors:?}");
        let errors = validate(&json!({}), &schema());
        assert_eq!(errors[0].message, "Required value");
        assert_eq!(errors[0].field, "spec");
        let errors = validate_value(&json!(null), &json!({"type": "string"}), "spec.x");
        assert_eq!(
            errors[0].message,
            "Invalid value: \"null\": spec.x in body must be of type string: \"null\""
        );
    }
}
