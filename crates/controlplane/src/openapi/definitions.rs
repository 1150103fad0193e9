//! The schemas the OpenAPI documents publish: the built-in kinds' definitions as upstream
//! publishes them (each kind tagged with `x-kubernetes-group-version-kind`, `metadata` not
//! required, a `<Kind>List` for every listed kind, the patch and list extensions of
//! [`crate::patch::schema`] on their properties), and custom resources' definitions.

use crate::registry::{ResourceDef, ResourceRegistry};
use crate::schema::{self, Definitions, REF_PREFIX};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The definition of `autoscaling/v1` `Scale`, which the `scale` subresources read and write.
pub const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";
/// The body of a delete.
pub const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
/// What deletes and some errors answer.
pub const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
/// The body of a patch (any JSON).
pub const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

/// The published built-in definitions, built once per process on first use.
pub fn builtin() -> &'static Map<String, Value> {
    static PUBLISHED: OnceLock<Map<String, Value>> = OnceLock::new();
    PUBLISHED.get_or_init(|| publish(schema::builtin(), &ResourceRegistry::builtin()))
}

fn publish(defs: &Definitions, registry: &ResourceRegistry) -> Map<String, Value> {
    let mut published: Map<String, Value> =
        defs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for ((group, version, kind), name) in defs.kinds() {
        if let Some(definition) = published.get_mut(name) {
            fix_kind(definition, group, version, kind);
        }
    }
    let resources = super::group_versions(registry)
        .into_iter()
        .flat_map(|(group, version)| registry.resources(&group, &version));
    for def in resources.filter(|d| !d.custom) {
        if let Some(kind_name) = defs.name_of_kind(&def.group, &def.version, &def.kind) {
            published.insert(list_name(kind_name, &def), list_definition(kind_name, &def));
        }
    }
    for (definition, property, extensions) in crate::patch::schema::published_extensions() {
        if let Some(Value::Object(schema)) = published
            .get_mut(&definition)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(property))
        {
            schema.extend(extensions);
        }
    }
    published.insert(
        PATCH.into(),
        json!({
            "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
            "type": "object",
        }),
    );
    published
}

/// A kind's definition as upstream publishes it: tagged with its group-version-kind, and
/// with `metadata` optional (k8s-openapi's Rust types require it, the API does not).
fn fix_kind(definition: &mut Value, group: &str, version: &str, kind: &str) {
    if let Some(required) = definition.get_mut("required").and_then(Value::as_array_mut) {
        required.retain(|field| field != "metadata");
        if required.is_empty() {
            definition.as_object_mut().map(|d| d.remove("required"));
        }
    }
    definition["x-kubernetes-group-version-kind"] = gvk_list(group, version, kind);
}

/// The `x-kubernetes-group-version-kind` of a definition: a list of one.
fn gvk_list(group: &str, version: &str, kind: &str) -> Value {
    json!([{"group": group, "kind": kind, "version": version}])
}

/// The definition name of a resource's list kind, next to its kind's definition.
pub fn list_name(kind_name: &str, def: &ResourceDef) -> String {
    let prefix = kind_name.strip_suffix(&def.kind).unwrap_or(kind_name);
    format!("{prefix}{}", def.list_kind)
}

/// `<Kind>List`: k8s-openapi's list types are not JSON schemas, so they are written here as
/// upstream publishes them.
fn list_definition(kind_name: &str, def: &ResourceDef) -> Value {
    json!({
        "description": format!("{} is a list of {}.", def.list_kind, def.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of an object.",
                "type": "string",
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this object represents.",
                "type": "string",
            },
            "metadata": {
                "allOf": [{"$ref": format!("{REF_PREFIX}{LIST_META}")}],
                "default": {},
                "description": "Standard list metadata.",
            },
            "items": {
                "description": format!("List of {}.", def.plural),
                "type": "array",
                "items": {"allOf": [{"$ref": format!("{REF_PREFIX}{kind_name}")}], "default": {}},
            },
        },
        "x-kubernetes-group-version-kind": gvk_list(&def.group, &def.version, &def.list_kind),
    })
}

/// The definition name of a custom resource's kind, as upstream names it: the group's
/// labels reversed, then version and kind (`com.example.v1.Widget`).
pub fn custom_kind_name(def: &ResourceDef) -> String {
    let reversed: Vec<&str> = def.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), def.version, def.kind)
}

/// A custom resource's definitions (kind and list): its CRD's `openAPIV3Schema`, or, without
/// one, an object that keeps every field. `apiVersion`, `kind` and `metadata` are added as
/// upstream adds them.
pub fn custom_definitions(def: &ResourceDef, schema: Option<Value>) -> Vec<(String, Value)> {
    let mut definition = match schema {
        Some(Value::Object(map)) => Value::Object(map),
        _ => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    };
    if definition.get("type").is_none() {
        definition["type"] = json!("object");
    }
    let properties = definition
        .as_object_mut()
        .map(|d| d.entry("properties").or_insert_with(|| json!({})));
    if let Some(Value::Object(properties)) = properties {
        properties.insert("apiVersion".into(), json!({"type": "string"}));
        properties.insert("kind".into(), json!({"type": "string"}));
        properties.insert(
            "metadata".into(),
            json!({"allOf": [{"$ref": format!("{REF_PREFIX}{OBJECT_META}")}]}),
        );
    }
    definition["x-kubernetes-group-version-kind"] = gvk_list(&def.group, &def.version, &def.kind);
    let name = custom_kind_name(def);
    let list = list_definition(&name, def);
    vec![(list_name(&name, def), list), (name, definition)]
}

/// `roots` and every definition they refer to, directly or not, taken from `custom` first,
/// then from the built-in definitions.
pub fn closure<'a>(
    roots: impl IntoIterator<Item = &'a str>,
    custom: &Map<String, Value>,
) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut pending: Vec<String> = roots.into_iter().map(str::to_owned).collect();
    while let Some(name) = pending.pop() {
        if out.contains_key(&name) {
            continue;
        }
        let Some(definition) = custom.get(&name).or_else(|| builtin().get(&name)) else {
            continue;
        };
        references(definition, &mut pending);
        out.insert(name, definition.clone());
    }
    out
}

/// Every definition name `value` refers to.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(REF_PREFIX))
            {
                found.push(name.to_owned());
            }
            map.values().for_each(|v| references(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_and_list_extensions_are_published_on_their_properties() {
        let defs = builtin();
        let containers = &defs["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        let ports = &defs["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"];
        assert_eq!(ports["x-kubernetes-patch-merge-key"], "port");
        assert_eq!(
            ports["x-kubernetes-list-map-keys"],
            json!(["port", "protocol"])
        );
    }

    #[test]
    fn kinds_are_tagged_and_metadata_is_optional() {
        let defs = builtin();
        let deployment = &defs["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        assert!(deployment.get("required").is_none());
        let list = &defs["io.k8s.api.core.v1.ConfigMapList"];
        assert_eq!(
            list["properties"]["items"]["items"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.ConfigMap"
        );
        assert_eq!(
            list["x-kubernetes-group-version-kind"][0]["kind"],
            "ConfigMapList"
        );
    }

    #[test]
    fn closure_follows_references() {
        let found = closure(["io.k8s.api.apps.v1.DeploymentList"], &Map::new());
        for name in [
            "io.k8s.api.apps.v1.Deployment",
            "io.k8s.api.core.v1.PodSpec",
            "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
            "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        ] {
            assert!(found.contains_key(name), "{name}");
        }
        assert!(!found.contains_key("io.k8s.api.core.v1.ConfigMap"));
    }

    #[test]
    fn custom_resources_get_upstream_names_and_open_schemas() {
        let mut def = crate::registry::ResourceRegistry::builtin()
            .lookup("", "v1", "configmaps")
            .map(|d| (*d).clone())
            .unwrap();
        def.group = "example.com".into();
        def.kind = "Widget".into();
        def.list_kind = "WidgetList".into();
        def.custom = true;
        let defs = custom_definitions(&def, None);
        let (name, widget) = &defs[1];
        assert_eq!(name, "com.example.v1.Widget");
        assert_eq!(widget["x-kubernetes-preserve-unknown-fields"], true);
        assert_eq!(defs[0].0, "com.example.v1.WidgetList");
    }
}
