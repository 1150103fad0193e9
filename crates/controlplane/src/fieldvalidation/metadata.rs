//! `metadata` as upstream decodes it into `ObjectMeta`. A value of the wrong type fails the
//! decoding with Go's error (`json: cannot unmarshal number into Go struct field
//! ObjectMeta.labels of type string`); a custom resource's `metadata` loses the fields
//! `ObjectMeta` does not have, as apiextensions' `GetObjectMetaWithOptions` drops them
//! (`unknown field "metadata.foo"`). Built-in kinds get the latter from their own schema.

use super::{parse, FieldProblem, FieldProblems};
use crate::schema::Definitions;
use serde_json::Value;

/// The definition every kind's `metadata` follows.
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Where a value sits for Go's decoding errors: the innermost struct and the JSON names of
/// the struct fields on the way (map keys and list indexes are not named).
#[derive(Clone, Copy)]
struct Context<'a> {
    structure: &'a str,
    fields: &'a [&'a str],
}

/// Go's error decoding `object`'s `metadata` into `ObjectMeta`, if any: as part of an
/// object of built-in kind `kind` (the whole object is decoded), or alone (`None`, as
/// custom resources' `metadata` is decoded).
pub(super) fn type_error(object: &Value, defs: &Definitions, kind: Option<&str>) -> Option<String> {
    let metadata = object.get("metadata")?;
    let schema = serde_json::json!({"$ref": format!("{}{OBJECT_META}", crate::schema::REF_PREFIX)});
    let context = match kind {
        Some(kind) => Context {
            structure: kind,
            fields: &["metadata"],
        },
        None => Context {
            structure: "",
            fields: &[],
        },
    };
    check(metadata, &schema, defs, "metadata", context)
}

/// A custom resource's `metadata` without the fields `ObjectMeta` does not have (nor
/// their nested unknown fields); each dropped one is added to `problems` as
/// `metadata.<path>`.
pub(super) fn prune_custom(object: &mut Value, defs: &Definitions, problems: &mut FieldProblems) {
    if let Some(metadata) = object.get_mut("metadata") {
        let unknown = prune(metadata, defs, "metadata");
        problems
            .0
            .extend(unknown.into_iter().map(FieldProblem::Unknown));
    }
}

/// An `ObjectMeta` at `path` (`metadata`, `spec.template.metadata`) without the fields
/// `ObjectMeta` does not have: the dropped paths (`<path>.foo`), sorted, as upstream
/// re-encodes the metadata (with sorted keys) before decoding it. Anything but an object
/// is left as it is.
pub(super) fn prune(metadata: &mut Value, defs: &Definitions, path: &str) -> Vec<String> {
    if !metadata.is_object() {
        return Vec::new();
    }
    let bytes = serde_json::to_vec(metadata).unwrap_or_default();
    let Ok((clean, found)) = parse(&bytes, defs, defs.get(OBJECT_META)) else {
        return Vec::new();
    };
    *metadata = clean;
    let mut unknown: Vec<String> = found
        .0
        .into_iter()
        .filter_map(|problem| match problem {
            FieldProblem::Unknown(field) => Some(format!("{path}.{field}")),
            FieldProblem::Duplicate(_) => None,
        })
        .collect();
    unknown.sort();
    unknown
}

/// The Go type a schema decodes into, as Go's errors name it.
fn go_type(schema: &Value, field: &str) -> String {
    if let Some(name) = Definitions::reference(schema) {
        return format!("v1.{}", name.rsplit('.').next().unwrap_or(name));
    }
    match (schema["type"].as_str(), schema["format"].as_str()) {
        (Some("string"), _) if field == "uid" => "types.UID".into(),
        (Some("string"), _) if field == "operation" => "v1.ManagedFieldsOperationType".into(),
        (Some("integer"), Some(format)) => format.into(),
        (Some("integer"), None) => "int".into(),
        (Some("boolean"), _) => "bool".into(),
        (Some("number"), _) => "float64".into(),
        (Some("array"), _) => format!("[]{}", go_type(&schema["items"], field)),
        (Some("object"), _) if schema["additionalProperties"].is_object() => format!(
            "map[string]{}",
            go_type(&schema["additionalProperties"], field)
        ),
        (Some(other), _) => other.into(),
        (None, _) => "interface {}".into(),
    }
}

/// How Go's errors name a JSON value that does not fit (`number 1.5` for a number an
/// integer field cannot take).
fn go_value(value: &Value, integer: bool) -> String {
    match value {
        Value::String(_) => "string".into(),
        Value::Bool(_) => "bool".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
        Value::Number(n) if integer => format!("number {n}"),
        Value::Number(_) => "number".into(),
        Value::Null => "null".into(),
    }
}

fn unmarshal_error(value: String, go_type: &str, context: Context<'_>) -> String {
    if context.fields.is_empty() {
        format!("json: cannot unmarshal {value} into Go value of type {go_type}")
    } else {
        format!(
            "json: cannot unmarshal {value} into Go struct field {}.{} of type {go_type}",
            context.structure,
            context.fields.join(".")
        )
    }
}

/// The first value of `value` that `schema`'s Go type cannot take, as Go's error.
fn check(
    value: &Value,
    schema: &Value,
    defs: &Definitions,
    field: &str,
    context: Context<'_>,
) -> Option<String> {
    if value.is_null() {
        return None;
    }
    let reference = Definitions::reference(schema).unwrap_or_default();
    // `Time` decodes itself from a string, and its error has no field context;
    // `FieldsV1` keeps any JSON.
    if reference.ends_with(".Time") || reference.ends_with(".MicroTime") {
        return (!value.is_string()).then(|| {
            format!(
                "json: cannot unmarshal {} into Go value of type string",
                go_value(value, false)
            )
        });
    }
    if reference.ends_with(".FieldsV1") {
        return None;
    }
    let resolved = defs.resolve(schema);
    let fits = match resolved["type"].as_str() {
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("boolean") => value.is_boolean(),
        Some("number") => value.is_number(),
        Some("array") => value.is_array(),
        Some("object") => value.is_object(),
        _ => true,
    };
    if !fits {
        let integer = resolved["type"] == "integer";
        return Some(unmarshal_error(
            go_value(value, integer),
            &go_type(schema, field),
            context,
        ));
    }
    match value {
        Value::Object(map) => {
            if let Some(properties) = resolved["properties"].as_object() {
                let structure = reference.rsplit('.').next().unwrap_or_default();
                for (key, child) in map {
                    if let Some(child_schema) = properties.get(key) {
                        let mut fields = context.fields.to_vec();
                        fields.push(key);
                        let inner = Context {
                            structure,
                            fields: &fields,
                        };
                        if let Some(error) = check(child, child_schema, defs, key, inner) {
                            return Some(error);
                        }
                    }
                }
            } else if resolved["additionalProperties"].is_object() {
                let values = &resolved["additionalProperties"];
                return map
                    .values()
                    .find_map(|child| check(child, values, defs, field, context));
            }
            None
        }
        Value::Array(items) => items
            .iter()
            .find_map(|item| check(item, &resolved["items"], defs, field, context)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error(metadata: Value, kind: Option<&str>) -> Option<String> {
        type_error(
            &json!({"metadata": metadata}),
            crate::schema::builtin(),
            kind,
        )
    }

    #[test]
    fn wrong_types_are_gos_decoding_errors() {
        assert_eq!(
            error(json!({"name": "a", "labels": {"a": "b"}}), None),
            None
        );
        assert_eq!(
            error(json!({"labels": {"a": 1}}), None).unwrap(),
            "json: cannot unmarshal number into Go struct field ObjectMeta.labels of type string"
        );
        assert_eq!(
            error(json!({"labels": "a=b"}), Some("ConfigMap")).unwrap(),
            "json: cannot unmarshal string into Go struct field ObjectMeta.metadata.labels of type map[string]string"
        );
        assert_eq!(
            error(json!("x"), None).unwrap(),
            "json: cannot unmarshal string into Go value of type v1.ObjectMeta"
        );
        assert_eq!(
            error(json!([]), Some("ConfigMap")).unwrap(),
            "json: cannot unmarshal array into Go struct field ConfigMap.metadata of type v1.ObjectMeta"
        );
        assert_eq!(
            error(json!({"generation": 1.5}), None).unwrap(),
            "json: cannot unmarshal number 1.5 into Go struct field ObjectMeta.generation of type int64"
        );
        assert_eq!(
            error(json!({"finalizers": [true]}), None).unwrap(),
            "json: cannot unmarshal bool into Go struct field ObjectMeta.finalizers of type string"
        );
        assert_eq!(
            error(json!({"ownerReferences": [{"uid": 5}]}), None).unwrap(),
            "json: cannot unmarshal number into Go struct field OwnerReference.ownerReferences.uid of type types.UID"
        );
        assert_eq!(
            error(json!({"creationTimestamp": 5}), None).unwrap(),
            "json: cannot unmarshal number into Go value of type string"
        );
        assert_eq!(
            error(json!({"creationTimestamp": null, "labels": null}), None),
            None
        );
    }

    #[test]
    fn unknown_metadata_fields_of_custom_resources_are_dropped_and_reported() {
        let mut object = json!({"metadata": {
            "name": "a", "foo": 1, "labels": {"x": "y"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "K", "name": "o", "uid": "u", "bar": 2}],
            "annotations": {"free": "form"},
        }});
        let mut problems = FieldProblems::default();
        prune_custom(&mut object, crate::schema::builtin(), &mut problems);
        assert_eq!(
            problems.0,
            [
                FieldProblem::Unknown("metadata.foo".into()),
                FieldProblem::Unknown("metadata.ownerReferences[0].bar".into()),
            ]
        );
        assert_eq!(
            object["metadata"],
            json!({"name": "a", "labels": {"x": "y"}, "annotations": {"free": "form"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "K", "name": "o", "uid": "u"}]})
        );
    }
}
