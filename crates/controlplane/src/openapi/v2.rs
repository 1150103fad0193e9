//! OpenAPI v2 (Swagger 2.0): one document of every group-version, as `/openapi/v2` serves it
//! to kubectl 1.27/1.28 (which fetch it as protobuf, see [`super::protobuf`]) and to clients
//! that read JSON. It is rewritten from the v3 group-version documents, so both versions
//! always describe the same API.

use super::v3::{self, INFO_VERSION};
use super::{CustomSchemas, Published};
use crate::registry::ResourceRegistry;
use crate::schema::REF_PREFIX;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Where v2 `$ref`s point.
const V2_REF_PREFIX: &str = "#/definitions/";

/// The v2 document of a control plane, JSON and protobuf. Built once per process for the
/// built-in resources and shared; rebuilt per request when custom resources are served.
pub fn document(registry: &ResourceRegistry, custom: CustomSchemas<'_>) -> Arc<Published> {
    static BUILT_IN: OnceLock<Mutex<HashMap<String, Arc<Published>>>> = OnceLock::new();
    let resources: Vec<_> = super::group_versions(registry)
        .into_iter()
        .flat_map(|(g, v)| registry.resources(&g, &v))
        .collect();
    let build = || {
        let swagger = swagger(registry, custom);
        Arc::new(Published::with_protobuf(&swagger))
    };
    if resources.iter().any(|r| r.custom) {
        return build();
    }
    let key = super::fingerprint(&resources);
    let cache = BUILT_IN.get_or_init(Default::default);
    if let Some(found) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return found.clone();
    }
    let built = build();
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, built.clone());
    built
}

/// The Swagger 2.0 document of every group-version of `registry`.
pub fn swagger(registry: &ResourceRegistry, custom: CustomSchemas<'_>) -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for (group, version) in super::group_versions(registry) {
        let v3 = v3::document(&registry.resources(&group, &version), custom);
        if let Some(items) = v3["paths"].as_object() {
            for (path, item) in items {
                paths.insert(path.clone(), path_item(item));
            }
        }
        if let Some(schemas) = v3["components"]["schemas"].as_object() {
            for (name, schema) in schemas {
                definitions
                    .entry(name.clone())
                    .or_insert_with(|| convert_schema(schema));
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": INFO_VERSION},
        "paths": paths,
        "definitions": definitions,
    })
}

/// A v3 path item in v2's form.
fn path_item(item: &Value) -> Value {
    let mut out = Map::new();
    for (key, value) in item.as_object().into_iter().flatten() {
        let converted = match key.as_str() {
            "parameters" => parameters(value),
            _ => operation(value),
        };
        out.insert(key.clone(), converted);
    }
    Value::Object(out)
}

fn parameters(list: &Value) -> Value {
    Value::Array(
        list.as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let mut out = p.clone();
                if let Some(map) = out.as_object_mut() {
                    if let Some(Value::Object(schema)) = map.remove("schema") {
                        map.extend(schema);
                    }
                }
                out
            })
            .collect(),
    )
}

/// A v3 operation in v2's form: the request body becomes a `body` parameter, response
/// contents become `schema`s, media types become `consumes` and `produces`.
fn operation(op: &Value) -> Value {
    let mut out = op.clone();
    let Some(map) = out.as_object_mut() else {
        return out;
    };
    let mut params = match map.remove("parameters") {
        Some(list) => parameters(&list),
        None => json!([]),
    };
    if let Some(body) = map.remove("requestBody") {
        let content = body["content"].as_object().cloned().unwrap_or_default();
        if let Some((_, media)) = content.iter().next() {
            if let Some(list) = params.as_array_mut() {
                list.insert(
                    0,
                    json!({
                        "name": "body",
                        "in": "body",
                        "required": true,
                        "schema": convert_schema(&media["schema"]),
                    }),
                );
            }
        }
        map.insert("consumes".into(), json!(content.keys().collect::<Vec<_>>()));
    }
    let mut produces: Vec<String> = Vec::new();
    if let Some(Value::Object(responses)) = map.get_mut("responses") {
        for response in responses.values_mut() {
            let Some(response) = response.as_object_mut() else {
                continue;
            };
            if let Some(Value::Object(content)) = response.remove("content") {
                for (media, entry) in &content {
                    if !produces.contains(media) {
                        produces.push(media.clone());
                    }
                    response.insert("schema".into(), convert_schema(&entry["schema"]));
                }
            }
        }
    }
    map.insert("parameters".into(), params);
    map.insert("produces".into(), json!(produces));
    map.insert("schemes".into(), json!(["https"]));
    out
}

/// A v3 schema in v2's form: `#/definitions/` references, a `$ref` wrapped in a one-element
/// `allOf` unwrapped (v2 readers such as kubectl's do not follow `allOf`), and the keywords v2
/// lacks (`oneOf`, `anyOf`, `nullable`) dropped, which leaves such values unconstrained.
pub fn convert_schema(schema: &Value) -> Value {
    let Some(map) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "$ref" => {
                let target = value.as_str().unwrap_or_default();
                let name = target.strip_prefix(REF_PREFIX).unwrap_or(target);
                out.insert(key.clone(), json!(format!("{V2_REF_PREFIX}{name}")));
            }
            "allOf" => match value.as_array().map(Vec::as_slice) {
                Some([one]) => {
                    if let Value::Object(inner) = convert_schema(one) {
                        out.extend(inner);
                    }
                }
                _ => {
                    out.insert(
                        key.clone(),
                        Value::Array(
                            value
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(convert_schema)
                                .collect(),
                        ),
                    );
                }
            },
            "oneOf" | "anyOf" | "nullable" | "not" => {}
            "properties" => {
                let properties: Map<String, Value> = value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), convert_schema(v)))
                    .collect();
                out.insert(key.clone(), Value::Object(properties));
            }
            "items" | "additionalProperties" => {
                out.insert(key.clone(), convert_schema(value));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    // A `$ref` with siblings keeps only the description, as upstream's v2 document does.
    if out.contains_key("$ref") {
        out.retain(|k, _| k == "$ref" || k == "description");
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ResourceDef;

    fn no_custom(_: &ResourceDef) -> Option<Value> {
        None
    }

    #[test]
    fn swagger_has_v2_references_and_body_parameters() {
        let doc = swagger(&ResourceRegistry::builtin(), &no_custom);
        assert_eq!(doc["swagger"], "2.0");
        let deployment = &doc["definitions"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["properties"]["spec"]["$ref"],
            "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
        );
        assert!(deployment["properties"]["spec"].get("allOf").is_none());
        let post = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["post"];
        assert_eq!(post["parameters"][0]["in"], "body");
        assert_eq!(
            post["parameters"][0]["schema"]["$ref"],
            "#/definitions/io.k8s.api.apps.v1.Deployment"
        );
        let validation = post["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "fieldValidation")
            .unwrap();
        assert_eq!(validation["type"], "string");
        assert_eq!(validation["in"], "query");
        assert_eq!(
            post["responses"]["201"]["schema"]["$ref"],
            "#/definitions/io.k8s.api.apps.v1.Deployment"
        );
        assert!(
            doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"].is_object()
        );
        let text = serde_json::to_string(&doc).unwrap();
        assert!(!text.contains("#/components/schemas/"));
        let or_bool = &doc["definitions"]
            ["io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool"];
        assert!(or_bool.get("oneOf").is_none());
    }
}
