//! Validation of a CustomResourceDefinition, as apiextensions-apiserver's
//! `ValidateCustomResourceDefinition` reports it: names, group, scope, versions, the
//! structural schema, subresources and printer columns, with upstream's field paths and
//! wording.

use super::{forbidden, invalid, not_supported, required};
use crate::status::Cause;
use serde_json::{json, Value};

const DNS1035_MESSAGE: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', \
start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', \
regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is \
'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const PRINTER_COLUMN_TYPES: [&str; 5] = ["boolean", "date", "integer", "number", "string"];
const PRINTER_COLUMN_FORMATS: [&str; 8] = [
    "byte",
    "date",
    "date-time",
    "double",
    "float",
    "int32",
    "int64",
    "password",
];

/// Upstream's defaults for a v1 CRD: `singular` (the lowercase kind), `listKind`
/// (`<kind>List`) and conversion strategy `None`.
pub fn set_defaults(crd: &mut Value) {
    let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if !kind.is_empty() {
            if text(names.get("singular")).is_empty() {
                names.insert("singular".into(), json!(kind.to_lowercase()));
            }
            if text(names.get("listKind")).is_empty() {
                names.insert("listKind".into(), json!(format!("{kind}List")));
            }
        }
    }
    spec.entry("conversion")
        .or_insert_with(|| json!({"strategy": "None"}));
}

fn text(value: Option<&Value>) -> &str {
    value.and_then(Value::as_str).unwrap_or("")
}

/// RFC 1035 label: `[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
fn is_dns1035_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// Every problem of a CRD (`old` for an update), with upstream's field paths.
pub fn validate(crd: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = &crd["spec"];
    let group = text(spec.get("group"));
    let names = &spec["names"];
    let plural = text(names.get("plural"));
    let name = crate::object::meta_str(crd, "name").unwrap_or("");
    if name != format!("{plural}.{group}") {
        causes.push(invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        causes.push(required("spec.group", ""));
    } else if !is_dns1123_subdomain(group) {
        causes.push(invalid(
            "spec.group",
            &json!(group),
            DNS1123_SUBDOMAIN_MESSAGE,
        ));
    } else if !group.contains('.') {
        causes.push(invalid(
            "spec.group",
            &json!(group),
            "should be a domain with at least one dot",
        ));
    }
    match text(spec.get("scope")) {
        "" => causes.push(required("spec.scope", "")),
        "Cluster" | "Namespaced" => {}
        other => causes.push(not_supported(
            "spec.scope",
            &json!(other),
            &[json!("Cluster"), json!("Namespaced")],
        )),
    }
    validate_versions(spec, &mut causes);
    for field in ["plural", "singular", "kind", "listKind"] {
        if text(names.get(field)).is_empty() {
            causes.push(required(&format!("spec.names.{field}"), ""));
        }
    }
    validate_names(names, "spec.names", &mut causes);
    match text(spec["conversion"].get("strategy")) {
        "None" => {}
        "Webhook" => causes.push(forbidden(
            "spec.conversion.strategy",
            "conversion webhooks are not supported by this server",
        )),
        "" => causes.push(required("spec.conversion.strategy", "")),
        other => causes.push(not_supported(
            "spec.conversion.strategy",
            &json!(other),
            &[json!("None"), json!("Webhook")],
        )),
    }
    if let Some(old) = old {
        let established = old["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        let mut immutable = vec![
            ("spec.group", &spec["group"], &old["spec"]["group"]),
            (
                "spec.names.plural",
                &names["plural"],
                &old["spec"]["names"]["plural"],
            ),
        ];
        if established {
            immutable.push(("spec.scope", &spec["scope"], &old["spec"]["scope"]));
            immutable.push((
                "spec.names.kind",
                &names["kind"],
                &old["spec"]["names"]["kind"],
            ));
        }
        for (field, new, before) in immutable {
            if new != before {
                causes.push(invalid(field, new, "field is immutable"));
            }
        }
    }
    causes
}

fn validate_versions(spec: &Value, causes: &mut Vec<Cause>) {
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let mut seen = Vec::new();
    let mut storage = 0;
    let mut unique = true;
    for (i, version) in versions.iter().enumerate() {
        let path = format!("spec.versions[{i}]");
        let name = text(version.get("name"));
        if seen.contains(&name) {
            unique = false;
        }
        seen.push(name);
        if version["storage"].as_bool() == Some(true) {
            storage += 1;
        }
        if !is_dns1035_label(name) {
            causes.push(invalid(
                &format!("{path}.name"),
                &json!(name),
                DNS1035_MESSAGE,
            ));
        }
        let status_enabled = version["subresources"].get("status").is_some();
        match version["schema"].get("openAPIV3Schema") {
            None | Some(Value::Null) => causes.push(required(
                &format!("{path}.schema.openAPIV3Schema"),
                "schemas are required",
            )),
            Some(schema) => {
                let path = format!("{path}.schema.openAPIV3Schema");
                validate_root_schema(schema, &path, status_enabled, causes);
                super::rules::check(schema, &path, causes);
            }
        }
        validate_subresources(
            &version["subresources"],
            &format!("{path}.subresources"),
            causes,
        );
        for (c, column) in version["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            validate_column(
                column,
                &format!("{path}.additionalPrinterColumns[{c}]"),
                causes,
            );
        }
    }
    if !unique {
        causes.push(invalid(
            "spec.versions",
            &Value::Array(versions.clone()),
            "must contain unique version names",
        ));
    }
    if storage != 1 {
        causes.push(invalid(
            "spec.versions",
            &Value::Array(versions),
            "must have exactly one version marked as storage version",
        ));
    }
}

/// `ValidateCustomResourceDefinitionNames`: DNS-1035 labels, lowercase kinds matching.
fn validate_names(names: &Value, path: &str, causes: &mut Vec<Cause>) {
    for field in ["plural", "singular"] {
        let value = text(names.get(field));
        if !value.is_empty() && !is_dns1035_label(value) {
            causes.push(invalid(
                &format!("{path}.{field}"),
                &json!(value),
                DNS1035_MESSAGE,
            ));
        }
    }
    for field in ["kind", "listKind"] {
        let value = text(names.get(field));
        if !value.is_empty() && !is_dns1035_label(&value.to_lowercase()) {
            causes.push(invalid(
                &format!("{path}.{field}"),
                &json!(value),
                &format!("may have mixed case, but should otherwise match: {DNS1035_MESSAGE}"),
            ));
        }
    }
    for list in ["shortNames", "categories"] {
        for (i, value) in names[list].as_array().into_iter().flatten().enumerate() {
            let value = value.as_str().unwrap_or("");
            if !is_dns1035_label(value) {
                causes.push(invalid(
                    &format!("{path}.{list}[{i}]"),
                    &json!(value),
                    DNS1035_MESSAGE,
                ));
            }
        }
    }
    let kind = text(names.get("kind"));
    if !kind.is_empty() && kind == text(names.get("listKind")) {
        causes.push(invalid(
            &format!("{path}.listKind"),
            &json!(kind),
            "kind and listKind may not be the same",
        ));
    }
}

/// The root of a version's schema: an object, structural, and with the status
/// subresource only the keywords that survive extracting `properties.status`.
fn validate_root_schema(schema: &Value, path: &str, status_enabled: bool, causes: &mut Vec<Cause>) {
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {}
        None | Some("") => {
            if !preserves_unknown(schema) && !int_or_string(schema) {
                causes.push(required(
                    &format!("{path}.type"),
                    "must not be empty at the root",
                ));
            }
        }
        Some(other) => {
            let detail = if status_enabled {
                "only \"object\" is allowed as the type at the root of the schema if the status subresource is enabled"
            } else {
                "must be object at the root"
            };
            causes.push(invalid(&format!("{path}.type"), &json!(other), detail));
        }
    }
    let outside = |key: &str| !ROOT_KEYWORDS_WITH_STATUS.iter().any(|(k, _)| *k == key);
    if status_enabled
        && schema
            .as_object()
            .is_some_and(|m| m.keys().any(|k| outside(k)))
    {
        let names: Vec<&str> = ROOT_KEYWORDS_WITH_STATUS.iter().map(|(_, n)| *n).collect();
        causes.push(invalid(
            path,
            schema,
            &format!(
                "only [{}] fields are allowed at the root of the schema if the status subresource is enabled",
                names.join(" ")
            ),
        ));
    }
    if let Some(metadata) = schema["properties"].get("metadata") {
        let only_names = metadata.as_object().is_some_and(|m| {
            m.keys()
                .all(|k| matches!(k.as_str(), "type" | "properties" | "description"))
                && m.get("properties")
                    .and_then(Value::as_object)
                    .is_none_or(|p| p.keys().all(|k| k == "name" || k == "generateName"))
        });
        if !only_names {
            causes.push(forbidden(
                &format!("{path}.properties[metadata]"),
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
    validate_schema(schema, path, true, causes);
}

/// The keywords a root schema may have when the status subresource is on (the status
/// schema is `properties.status`, so nothing at the root may constrain it), with the field
/// names upstream's message lists.
const ROOT_KEYWORDS_WITH_STATUS: [(&str, &str); 22] = [
    ("description", "Description"),
    ("type", "Type"),
    ("format", "Format"),
    ("title", "Title"),
    ("maximum", "Maximum"),
    ("exclusiveMaximum", "ExclusiveMaximum"),
    ("minimum", "Minimum"),
    ("exclusiveMinimum", "ExclusiveMinimum"),
    ("maxLength", "MaxLength"),
    ("minLength", "MinLength"),
    ("pattern", "Pattern"),
    ("maxItems", "MaxItems"),
    ("minItems", "MinItems"),
    ("uniqueItems", "UniqueItems"),
    ("multipleOf", "MultipleOf"),
    ("required", "Required"),
    ("items", "Items"),
    ("properties", "Properties"),
    ("externalDocs", "ExternalDocs"),
    ("example", "Example"),
    (
        "x-kubernetes-preserve-unknown-fields",
        "XPreserveUnknownFields",
    ),
    ("x-kubernetes-validations", "XValidations"),
];

fn preserves_unknown(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true)
}

fn int_or_string(schema: &Value) -> bool {
    schema["x-kubernetes-int-or-string"].as_bool() == Some(true)
}

const UNSUPPORTED_KEYWORDS: [(&str, &str); 6] = [
    ("$ref", "$ref is not supported"),
    ("id", "id is not supported"),
    ("additionalItems", "additionalItems is not supported"),
    ("patternProperties", "patternProperties is not supported"),
    ("definitions", "definitions is not supported"),
    ("dependencies", "dependencies is not supported"),
];

/// One schema node and its children: the keywords kube allows, structural types, and
/// `properties` exclusive of `additionalProperties`.
fn validate_schema(schema: &Value, path: &str, root: bool, causes: &mut Vec<Cause>) {
    let Some(map) = schema.as_object() else {
        causes.push(invalid(path, schema, "must be a schema object"));
        return;
    };
    for (keyword, detail) in UNSUPPORTED_KEYWORDS {
        if map.contains_key(keyword) {
            causes.push(forbidden(&format!("{path}.{keyword}"), detail));
        }
    }
    let kind = text(map.get("type"));
    match kind {
        "" | "object" | "array" | "string" | "integer" | "number" | "boolean" => {}
        "null" => causes.push(forbidden(
            &format!("{path}.type"),
            "type cannot be set to null",
        )),
        other => causes.push(not_supported(
            &format!("{path}.type"),
            &json!(other),
            &["array", "boolean", "integer", "number", "object", "string"].map(|t| json!(t)),
        )),
    }
    if map.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
        causes.push(forbidden(
            &format!("{path}.uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    if let Some(pattern) = map.get("pattern").and_then(Value::as_str) {
        if let Err(error) = regex::Regex::new(pattern) {
            causes.push(invalid(
                &format!("{path}.pattern"),
                &json!(pattern),
                &format!("must be a valid regular expression, but isn't: {error}"),
            ));
        }
    }
    if map.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(false)) {
        causes.push(invalid(
            &format!("{path}.x-kubernetes-preserve-unknown-fields"),
            &json!(false),
            "must be true or undefined",
        ));
    }
    if int_or_string(schema) && !kind.is_empty() {
        causes.push(invalid(
            &format!("{path}.type"),
            &json!(kind),
            "must be empty if x-kubernetes-int-or-string is true",
        ));
    }
    let properties = map.get("properties").and_then(Value::as_object);
    if let Some(additional) = map.get("additionalProperties") {
        if properties.is_some_and(|p| !p.is_empty()) && additional != &json!(true) {
            causes.push(forbidden(
                &format!("{path}.additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if additional.is_object() {
            check_child_type(
                additional,
                &format!("{path}.additionalProperties"),
                "must not be empty for specified object fields",
                causes,
            );
            validate_schema(
                additional,
                &format!("{path}.additionalProperties"),
                false,
                causes,
            );
        }
    }
    if properties.is_some() && !matches!(kind, "object" | "") {
        causes.push(invalid(
            &format!("{path}.type"),
            &json!(kind),
            "must be object if properties are specified",
        ));
    }
    for (name, child) in properties.into_iter().flatten() {
        let child_path = format!("{path}.properties[{name}]");
        check_child_type(
            child,
            &child_path,
            "must not be empty for specified object fields",
            causes,
        );
        validate_schema(child, &child_path, false, causes);
    }
    match map.get("items") {
        Some(Value::Array(_)) => causes.push(forbidden(
            &format!("{path}.items"),
            "items must be a schema object and not an array",
        )),
        Some(items) => {
            let items_path = format!("{path}.items");
            check_child_type(
                items,
                &items_path,
                "must not be empty for specified array items",
                causes,
            );
            validate_schema(items, &items_path, false, causes);
        }
        None if kind == "array" => {
            causes.push(required(&format!("{path}.items"), "must be specified"))
        }
        None => {}
    }
    for (below, sub) in super::combined_schemas(map, path) {
        validate_value_validation(sub, &below, causes);
    }
    if !root {
        if let Some(default) = map.get("default") {
            let mut copy = default.clone();
            pruned_default(&mut copy, schema, &format!("{path}.default"), causes);
        }
    }
}

/// A child of an object or array must have a type, unless it is an int-or-string or
/// keeps unknown fields (structural schemas).
fn check_child_type(child: &Value, path: &str, detail: &str, causes: &mut Vec<Cause>) {
    if text(child.get("type")).is_empty() && !int_or_string(child) && !preserves_unknown(child) {
        causes.push(required(&format!("{path}.type"), detail));
    }
}

/// Under `allOf`/`anyOf`/`oneOf`/`not` only value validations are allowed: no types,
/// defaults or descriptions (structural schemas).
fn validate_value_validation(schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    for keyword in [
        "type",
        "default",
        "description",
        "nullable",
        "additionalProperties",
    ] {
        if schema.get(keyword).is_some() {
            causes.push(forbidden(
                &format!("{path}.{keyword}"),
                "must be empty to be structural",
            ));
        }
    }
}

/// A default must be valid for its schema and survive pruning.
fn pruned_default(default: &mut Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let pruned = super::pruning::prune_value(default, schema);
    if !pruned.is_empty() {
        causes.push(invalid(
            path,
            default,
            &format!("must not have unknown fields: {}", pruned.join(", ")),
        ));
        return;
    }
    for mut cause in super::schema::validate_value(default, schema, "") {
        cause.field = if cause.field.is_empty() {
            path.to_owned()
        } else {
            format!("{path}.{}", cause.field)
        };
        causes.push(cause);
    }
}

fn validate_subresources(subresources: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(scale) = subresources.get("scale").filter(|s| s.is_object()) else {
        return;
    };
    for (field, prefix, needed) in [
        ("specReplicasPath", ".spec.", true),
        ("statusReplicasPath", ".status.", true),
        ("labelSelectorPath", ".status.", false),
    ] {
        let value = text(scale.get(field));
        let field_path = format!("{path}.scale.{field}");
        if value.is_empty() {
            if needed {
                causes.push(required(&field_path, ""));
            }
        } else if !value.starts_with('.') {
            causes.push(invalid(
                &field_path,
                &json!(value),
                "must be a simple json path starting with .",
            ));
        } else if !value.starts_with(prefix) {
            let under = prefix.trim_end_matches('.');
            causes.push(invalid(
                &field_path,
                &json!(value),
                &format!("should be a json path under {under}"),
            ));
        }
    }
}

fn validate_column(column: &Value, path: &str, causes: &mut Vec<Cause>) {
    if text(column.get("name")).is_empty() {
        causes.push(required(&format!("{path}.name"), ""));
    }
    let types = PRINTER_COLUMN_TYPES.join(",");
    match text(column.get("type")) {
        "" => causes.push(required(
            &format!("{path}.type"),
            &format!("must be one of {types}"),
        )),
        t if !PRINTER_COLUMN_TYPES.contains(&t) => causes.push(invalid(
            &format!("{path}.type"),
            &json!(t),
            &format!("must be one of {types}"),
        )),
        _ => {}
    }
    let format = text(column.get("format"));
    if !format.is_empty() && !PRINTER_COLUMN_FORMATS.contains(&format) {
        causes.push(invalid(
            &format!("{path}.format"),
            &json!(format),
            &format!("must be one of {}", PRINTER_COLUMN_FORMATS.join(",")),
        ));
    }
    let json_path = text(column.get("jsonPath"));
    if json_path.is_empty() {
        causes.push(required(&format!("{path}.JSONPath"), ""));
    } else if let Err(detail) = super::columns::JsonPath::parse(json_path) {
        causes.push(invalid(
            &format!("{path}.JSONPath"),
            &json!(json_path),
            &detail,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {"replicas": {"type": "integer", "default": 1}}}
                    }}},
                    "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                    "additionalPrinterColumns": [{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}]
                }]
            }
        })
    }

    fn messages(crd: &Value) -> Vec<String> {
        validate(crd, None)
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn a_good_crd_is_valid_after_defaults() {
        let mut crd = sample();
        set_defaults(&mut crd);
        assert_eq!(crd["spec"]["names"]["singular"], "widget");
        assert_eq!(crd["spec"]["names"]["listKind"], "WidgetList");
        assert_eq!(messages(&crd), Vec::<String>::new());
    }

    #[test]
    fn names_group_scope_and_versions_are_checked() {
        let mut crd = sample();
        set_defaults(&mut crd);
        crd["metadata"]["name"] = json!("widgets.other.com");
        crd["spec"]["names"]["plural"] = json!("Widgets");
        crd["spec"]["scope"] = json!("Global");
        crd["spec"]["versions"][0]["storage"] = json!(false);
        let errors = messages(&crd);
        assert!(errors.contains(&"metadata.name: Invalid value: \"widgets.other.com\": must be spec.names.plural+\".\"+spec.group".to_owned()), "{errors:?}");
        assert!(
            errors.iter().any(|e| e
                .starts_with("spec.names.plural: Invalid value: \"Widgets\": a DNS-1035 label")),
            "{errors:?}"
        );
        assert!(errors.contains(&"spec.scope: Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespaced\"".to_owned()), "{errors:?}");
        assert!(errors.contains(&"spec.versions: Invalid value: ...: must have exactly one version marked as storage version".to_owned()), "{errors:?}");

        let mut crd = sample();
        set_defaults(&mut crd);
        crd["spec"]["group"] = json!("example");
        crd["metadata"]["name"] = json!("widgets.example");
        assert_eq!(
            messages(&crd),
            vec![
                "spec.group: Invalid value: \"example\": should be a domain with at least one dot"
            ]
        );
    }

    #[test]
    fn schemas_must_be_given_and_structural() {
        let mut crd = sample();
        set_defaults(&mut crd);
        crd["spec"]["versions"][0]["schema"] = json!({});
        assert_eq!(
            messages(&crd),
            vec!["spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"]
        );

        let mut crd = sample();
        set_defaults(&mut crd);
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] = json!({
            "properties": {"a": {"type": "string"}},
            "additionalProperties": {"type": "string"},
        });
        let errors = messages(&crd);
        assert!(errors.contains(&"spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields".to_owned()), "{errors:?}");
        assert!(errors.contains(&"spec.versions[0].schema.openAPIV3Schema.properties[spec].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive".to_owned()), "{errors:?}");
    }

    #[test]
    fn defaults_and_patterns_must_fit_the_schema() {
        let mut crd = sample();
        set_defaults(&mut crd);
        let spec =
            &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        spec["properties"]["replicas"]["default"] = json!("one");
        spec["properties"]["name"] = json!({"type": "string", "pattern": "("});
        spec["properties"]["config"] =
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "default": {"b": 1}});
        let errors = messages(&crd);
        let path = "spec.versions[0].schema.openAPIV3Schema.properties[spec]";
        assert!(errors.contains(&format!("{path}.properties[replicas].default: Invalid value: \"string\": body must be of type integer: \"string\"")), "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with(&format!("{path}.properties[name].pattern: Invalid value: \"(\": must be a valid regular expression"))), "{errors:?}");
        assert!(errors.contains(&format!("{path}.properties[config].default: Invalid value: ...: must not have unknown fields: b")), "{errors:?}");
    }

    #[test]
    fn subresources_and_columns_are_checked() {
        let mut crd = sample();
        set_defaults(&mut crd);
        crd["spec"]["versions"][0]["subresources"]["scale"]["specReplicasPath"] =
            json!(".status.replicas");
        crd["spec"]["versions"][0]["additionalPrinterColumns"][0]["type"] = json!("float");
        let errors = messages(&crd);
        assert!(errors.contains(&"spec.versions[0].subresources.scale.specReplicasPath: Invalid value: \".status.replicas\": should be a json path under .spec".to_owned()), "{errors:?}");
        assert!(errors.contains(&"spec.versions[0].additionalPrinterColumns[0].type: Invalid value: \"float\": must be one of boolean,date,integer,number,string".to_owned()), "{errors:?}");
    }

    #[test]
    fn versions_need_exactly_one_storage_version_and_unique_names() {
        let mut crd = sample();
        set_defaults(&mut crd);
        crd["spec"]["versions"] = json!([]);
        assert_eq!(
            messages(&crd),
            vec!["spec.versions: Invalid value: ...: must have exactly one version marked as storage version"]
        );
        let mut crd = sample();
        set_defaults(&mut crd);
        let version = crd["spec"]["versions"][0].clone();
        crd["spec"]["versions"] = json!([version.clone(), version]);
        assert_eq!(
            messages(&crd),
            vec![
                "spec.versions: Invalid value: ...: must contain unique version names",
                "spec.versions: Invalid value: ...: must have exactly one version marked as storage version",
            ]
        );
    }

    #[test]
    fn with_status_the_root_schema_keeps_to_its_keywords() {
        let mut crd = sample();
        set_defaults(&mut crd);
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["anyOf"] =
            json!([{"required": ["spec"]}]);
        let errors = messages(&crd);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("spec.versions[0].schema.openAPIV3Schema: Invalid value: ...: only [Description Type "), "{errors:?}");
        crd["spec"]["versions"][0]["subresources"] = json!({});
        assert_eq!(messages(&crd), Vec::<String>::new());
    }

    #[test]
    fn group_and_plural_are_immutable() {
        let mut old = sample();
        set_defaults(&mut old);
        let mut new = old.clone();
        new["spec"]["names"]["plural"] = json!("gadgets");
        new["metadata"]["name"] = json!("gadgets.example.com");
        let errors: Vec<String> = validate(&new, Some(&old))
            .into_iter()
            .map(|c| c.message)
            .collect();
        assert_eq!(
            errors,
            vec!["Invalid value: \"gadgets\": field is immutable"]
        );
    }
}
