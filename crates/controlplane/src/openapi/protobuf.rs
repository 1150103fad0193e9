//! The protobuf form of the v2 document, which kubectl 1.27/1.28 fetch
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`) and decode with client-go
//! as gnostic's `openapi.v2.Document`.
//!
//! The messages below are the subset of gnostic's `OpenAPIv2.proto` that the document uses,
//! written with prost's derive (field numbers as gnostic assigns them): generating code from
//! the upstream `.proto` would need it vendored plus a build script and `protoc`, for about
//! twenty small messages. Vendor extensions (`x-kubernetes-*`) and free-form values
//! (`default`, `enum`, `example`) are `Any{yaml}`; JSON text is valid YAML, so they carry
//! their JSON.

use prost::Message;
use serde_json::{Map, Value};

#[derive(Clone, PartialEq, Message)]
pub struct Document {
    #[prost(string, tag = "1")]
    pub swagger: String,
    #[prost(message, optional, tag = "2")]
    pub info: Option<Info>,
    #[prost(string, repeated, tag = "6")]
    pub consumes: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    pub produces: Vec<String>,
    #[prost(message, optional, tag = "8")]
    pub paths: Option<Paths>,
    #[prost(message, optional, tag = "9")]
    pub definitions: Option<Definitions>,
    #[prost(message, repeated, tag = "16")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Info {
    #[prost(string, tag = "1")]
    pub title: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(string, tag = "3")]
    pub description: String,
}

/// A free-form value as YAML text.
#[derive(Clone, PartialEq, Message)]
pub struct Any {
    #[prost(string, tag = "2")]
    pub yaml: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct NamedAny {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Any>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Paths {
    #[prost(message, repeated, tag = "1")]
    pub vendor_extension: Vec<NamedAny>,
    #[prost(message, repeated, tag = "2")]
    pub path: Vec<NamedPathItem>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NamedPathItem {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<PathItem>,
}

#[derive(Clone, PartialEq, Message)]
pub struct PathItem {
    #[prost(message, optional, tag = "2")]
    pub get: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    pub put: Option<Operation>,
    #[prost(message, optional, tag = "4")]
    pub post: Option<Operation>,
    #[prost(message, optional, tag = "5")]
    pub delete: Option<Operation>,
    #[prost(message, optional, tag = "8")]
    pub patch: Option<Operation>,
    #[prost(message, repeated, tag = "9")]
    pub parameters: Vec<ParametersItem>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Operation {
    #[prost(string, repeated, tag = "1")]
    pub tags: Vec<String>,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "5")]
    pub operation_id: String,
    #[prost(string, repeated, tag = "6")]
    pub produces: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    pub consumes: Vec<String>,
    #[prost(message, repeated, tag = "8")]
    pub parameters: Vec<ParametersItem>,
    #[prost(message, optional, tag = "9")]
    pub responses: Option<Responses>,
    #[prost(string, repeated, tag = "10")]
    pub schemes: Vec<String>,
    #[prost(message, repeated, tag = "13")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `ParametersItem{oneof {Parameter parameter = 1; ...}}`.
#[derive(Clone, PartialEq, Message)]
pub struct ParametersItem {
    #[prost(message, optional, tag = "1")]
    pub parameter: Option<Parameter>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Parameter {
    #[prost(oneof = "ParameterKind", tags = "1, 2")]
    pub oneof: Option<ParameterKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ParameterKind {
    #[prost(message, tag = "1")]
    Body(BodyParameter),
    #[prost(message, tag = "2")]
    NonBody(NonBodyParameter),
}

#[derive(Clone, PartialEq, Message)]
pub struct BodyParameter {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub r#in: String,
    #[prost(bool, tag = "4")]
    pub required: bool,
    #[prost(message, optional, boxed, tag = "5")]
    pub schema: Option<Box<Schema>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NonBodyParameter {
    #[prost(oneof = "NonBodyKind", tags = "3, 4")]
    pub oneof: Option<NonBodyKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum NonBodyKind {
    #[prost(message, tag = "3")]
    Query(QueryParameter),
    #[prost(message, tag = "4")]
    Path(PathParameter),
}

/// gnostic's `QueryParameterSubSchema`.
#[derive(Clone, PartialEq, Message)]
pub struct QueryParameter {
    #[prost(bool, tag = "1")]
    pub required: bool,
    #[prost(string, tag = "2")]
    pub r#in: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub name: String,
    #[prost(string, tag = "6")]
    pub r#type: String,
    #[prost(bool, tag = "20")]
    pub unique_items: bool,
}

/// gnostic's `PathParameterSubSchema`.
#[derive(Clone, PartialEq, Message)]
pub struct PathParameter {
    #[prost(bool, tag = "1")]
    pub required: bool,
    #[prost(string, tag = "2")]
    pub r#in: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub name: String,
    #[prost(string, tag = "5")]
    pub r#type: String,
    #[prost(bool, tag = "19")]
    pub unique_items: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct Responses {
    #[prost(message, repeated, tag = "1")]
    pub response_code: Vec<NamedResponseValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NamedResponseValue {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<ResponseValue>,
}

/// `ResponseValue{oneof {Response response = 1; ...}}`.
#[derive(Clone, PartialEq, Message)]
pub struct ResponseValue {
    #[prost(message, optional, tag = "1")]
    pub response: Option<Response>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Response {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(message, optional, tag = "2")]
    pub schema: Option<SchemaItem>,
}

/// `SchemaItem{oneof {Schema schema = 1; ...}}`.
#[derive(Clone, PartialEq, Message)]
pub struct SchemaItem {
    #[prost(message, optional, tag = "1")]
    pub schema: Option<Schema>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Definitions {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NamedSchema {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Schema>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Schema {
    #[prost(string, tag = "1")]
    pub r#ref: String,
    #[prost(string, tag = "2")]
    pub format: String,
    #[prost(string, tag = "3")]
    pub title: String,
    #[prost(string, tag = "4")]
    pub description: String,
    #[prost(message, optional, tag = "5")]
    pub default: Option<Any>,
    #[prost(double, tag = "6")]
    pub multiple_of: f64,
    #[prost(double, tag = "7")]
    pub maximum: f64,
    #[prost(bool, tag = "8")]
    pub exclusive_maximum: bool,
    #[prost(double, tag = "9")]
    pub minimum: f64,
    #[prost(bool, tag = "10")]
    pub exclusive_minimum: bool,
    #[prost(int64, tag = "11")]
    pub max_length: i64,
    #[prost(int64, tag = "12")]
    pub min_length: i64,
    #[prost(string, tag = "13")]
    pub pattern: String,
    #[prost(int64, tag = "14")]
    pub max_items: i64,
    #[prost(int64, tag = "15")]
    pub min_items: i64,
    #[prost(bool, tag = "16")]
    pub unique_items: bool,
    #[prost(int64, tag = "17")]
    pub max_properties: i64,
    #[prost(int64, tag = "18")]
    pub min_properties: i64,
    #[prost(string, repeated, tag = "19")]
    pub required: Vec<String>,
    #[prost(message, repeated, tag = "20")]
    pub r#enum: Vec<Any>,
    #[prost(message, optional, tag = "21")]
    pub additional_properties: Option<AdditionalPropertiesItem>,
    #[prost(message, optional, tag = "22")]
    pub r#type: Option<TypeItem>,
    #[prost(message, optional, tag = "23")]
    pub items: Option<ItemsItem>,
    #[prost(message, repeated, tag = "24")]
    pub all_of: Vec<Schema>,
    #[prost(message, optional, tag = "25")]
    pub properties: Option<Properties>,
    #[prost(bool, tag = "27")]
    pub read_only: bool,
    #[prost(message, optional, tag = "30")]
    pub example: Option<Any>,
    #[prost(message, repeated, tag = "31")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AdditionalPropertiesItem {
    #[prost(oneof = "AdditionalProperties", tags = "1, 2")]
    pub oneof: Option<AdditionalProperties>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum AdditionalProperties {
    #[prost(message, boxed, tag = "1")]
    Schema(Box<Schema>),
    #[prost(bool, tag = "2")]
    Boolean(bool),
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ItemsItem {
    #[prost(message, repeated, tag = "1")]
    pub schema: Vec<Schema>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Properties {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

/// Encodes a Swagger 2.0 JSON document as gnostic's protobuf `Document`.
pub fn encode(swagger: &Value) -> Vec<u8> {
    document(swagger).encode_to_vec()
}

fn document(doc: &Value) -> Document {
    Document {
        swagger: text(doc, "swagger"),
        info: doc.get("info").map(|info| Info {
            title: text(info, "title"),
            version: text(info, "version"),
            description: text(info, "description"),
        }),
        consumes: strings(doc, "consumes"),
        produces: strings(doc, "produces"),
        paths: Some(Paths {
            vendor_extension: Vec::new(),
            path: entries(doc, "paths")
                .map(|(name, item)| NamedPathItem {
                    name: name.clone(),
                    value: Some(path_item(item)),
                })
                .collect(),
        }),
        definitions: Some(Definitions {
            additional_properties: entries(doc, "definitions")
                .map(|(name, schema)| NamedSchema {
                    name: name.clone(),
                    value: Some(self::schema(schema)),
                })
                .collect(),
        }),
        vendor_extension: extensions(doc),
    }
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn strings(value: &Value, key: &str) -> Vec<String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn entries<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = (&'a String, &'a Value)> {
    value
        .get(key)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
}

/// A value as `Any{yaml}` (JSON is YAML).
fn any(value: &Value) -> Any {
    Any {
        yaml: value.to_string(),
    }
}

/// The `x-` keys of an object.
fn extensions(value: &Value) -> Vec<NamedAny> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(name, v)| NamedAny {
            name: name.clone(),
            value: Some(any(v)),
        })
        .collect()
}

fn path_item(item: &Value) -> PathItem {
    let op = |method: &str| item.get(method).map(operation);
    PathItem {
        get: op("get"),
        put: op("put"),
        post: op("post"),
        delete: op("delete"),
        patch: op("patch"),
        parameters: parameters(item),
    }
}

fn parameters(value: &Value) -> Vec<ParametersItem> {
    value
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| ParametersItem {
            parameter: Some(parameter(p)),
        })
        .collect()
}

fn parameter(p: &Value) -> Parameter {
    let location = text(p, "in");
    let required = p.get("required").and_then(Value::as_bool).unwrap_or(false);
    let unique_items = p
        .get("uniqueItems")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let kind = match location.as_str() {
        "body" => ParameterKind::Body(BodyParameter {
            description: text(p, "description"),
            name: text(p, "name"),
            r#in: location,
            required,
            schema: p.get("schema").map(|s| Box::new(schema(s))),
        }),
        "path" => ParameterKind::NonBody(NonBodyParameter {
            oneof: Some(NonBodyKind::Path(PathParameter {
                required,
                r#in: location,
                description: text(p, "description"),
                name: text(p, "name"),
                r#type: text(p, "type"),
                unique_items,
            })),
        }),
        _ => ParameterKind::NonBody(NonBodyParameter {
            oneof: Some(NonBodyKind::Query(QueryParameter {
                required,
                r#in: location,
                description: text(p, "description"),
                name: text(p, "name"),
                r#type: text(p, "type"),
                unique_items,
            })),
        }),
    };
    Parameter { oneof: Some(kind) }
}

fn operation(op: &Value) -> Operation {
    Operation {
        tags: strings(op, "tags"),
        description: text(op, "description"),
        operation_id: text(op, "operationId"),
        produces: strings(op, "produces"),
        consumes: strings(op, "consumes"),
        parameters: parameters(op),
        responses: Some(Responses {
            response_code: entries(op, "responses")
                .map(|(code, response)| NamedResponseValue {
                    name: code.clone(),
                    value: Some(ResponseValue {
                        response: Some(Response {
                            description: text(response, "description"),
                            schema: response.get("schema").map(|s| SchemaItem {
                                schema: Some(schema(s)),
                            }),
                        }),
                    }),
                })
                .collect(),
        }),
        schemes: strings(op, "schemes"),
        vendor_extension: extensions(op),
    }
}

fn schema(s: &Value) -> Schema {
    let number = |key: &str| s.get(key).and_then(Value::as_f64).unwrap_or_default();
    let integer = |key: &str| s.get(key).and_then(Value::as_i64).unwrap_or_default();
    let flag = |key: &str| s.get(key).and_then(Value::as_bool).unwrap_or_default();
    let types = match s.get("type") {
        Some(Value::String(t)) => Some(TypeItem {
            value: vec![t.clone()],
        }),
        Some(Value::Array(list)) => Some(TypeItem {
            value: list
                .iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
        }),
        _ => None,
    };
    let items = match s.get("items") {
        Some(Value::Array(list)) => Some(ItemsItem {
            schema: list.iter().map(schema).collect(),
        }),
        Some(one @ Value::Object(_)) => Some(ItemsItem {
            schema: vec![schema(one)],
        }),
        _ => None,
    };
    let additional_properties = match s.get("additionalProperties") {
        Some(Value::Bool(b)) => Some(AdditionalProperties::Boolean(*b)),
        Some(one @ Value::Object(_)) => Some(AdditionalProperties::Schema(Box::new(schema(one)))),
        _ => None,
    }
    .map(|oneof| AdditionalPropertiesItem { oneof: Some(oneof) });
    let properties =
        s.get("properties")
            .and_then(Value::as_object)
            .map(|map: &Map<String, Value>| Properties {
                additional_properties: map
                    .iter()
                    .map(|(name, v)| NamedSchema {
                        name: name.clone(),
                        value: Some(schema(v)),
                    })
                    .collect(),
            });
    Schema {
        r#ref: text(s, "$ref"),
        format: text(s, "format"),
        title: text(s, "title"),
        description: text(s, "description"),
        default: s.get("default").map(any),
        multiple_of: number("multipleOf"),
        maximum: number("maximum"),
        exclusive_maximum: flag("exclusiveMaximum"),
        minimum: number("minimum"),
        exclusive_minimum: flag("exclusiveMinimum"),
        max_length: integer("maxLength"),
        min_length: integer("minLength"),
        pattern: text(s, "pattern"),
        max_items: integer("maxItems"),
        min_items: integer("minItems"),
        unique_items: flag("uniqueItems"),
        max_properties: integer("maxProperties"),
        min_properties: integer("minProperties"),
        required: strings(s, "required"),
        r#enum: s
            .get("enum")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(any)
            .collect(),
        additional_properties,
        r#type: types,
        items,
        all_of: s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(schema)
            .collect(),
        properties,
        read_only: flag("readOnly"),
        example: s.get("example").map(any),
        vendor_extension: extensions(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_round_trip_through_the_wire_format() {
        let swagger = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.33.0"},
            "paths": {"/api/v1/namespaces/{namespace}/configmaps": {
                "parameters": [{"name": "namespace", "in": "path", "required": true, "type": "string"}],
                "post": {
                    "operationId": "createCoreV1NamespacedConfigMap",
                    "parameters": [
                        {"name": "body", "in": "body", "required": true,
                         "schema": {"$ref": "#/definitions/io.k8s.api.core.v1.ConfigMap"}},
                        {"name": "fieldValidation", "in": "query", "type": "string", "uniqueItems": true},
                    ],
                    "responses": {"201": {"description": "Created",
                        "schema": {"$ref": "#/definitions/io.k8s.api.core.v1.ConfigMap"}}},
                    "x-kubernetes-group-version-kind": {"group": "", "kind": "ConfigMap", "version": "v1"},
                },
            }},
            "definitions": {"io.k8s.api.core.v1.ConfigMap": {
                "type": "object",
                "properties": {"data": {"type": "object", "additionalProperties": {"type": "string"}}},
                "x-kubernetes-group-version-kind": [{"group": "", "kind": "ConfigMap", "version": "v1"}],
            }},
        });
        let bytes = encode(&swagger);
        let decoded = Document::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded.swagger, "2.0");
        let path = &decoded.paths.as_ref().unwrap().path[0];
        let post = path.value.as_ref().unwrap().post.as_ref().unwrap();
        assert_eq!(post.operation_id, "createCoreV1NamespacedConfigMap");
        let names: Vec<String> = post
            .parameters
            .iter()
            .map(
                |p| match p.parameter.as_ref().unwrap().oneof.as_ref().unwrap() {
                    ParameterKind::Body(b) => b.name.clone(),
                    ParameterKind::NonBody(NonBodyParameter {
                        oneof: Some(NonBodyKind::Query(q)),
                    }) => q.name.clone(),
                    other => panic!("{other:?}"),
                },
            )
            .collect();
        assert_eq!(names, ["body", "fieldValidation"]);
        let gvk = &post.vendor_extension[0];
        assert_eq!(gvk.name, "x-kubernetes-group-version-kind");
        let yaml: Value = serde_json::from_str(&gvk.value.as_ref().unwrap().yaml).unwrap();
        assert_eq!(yaml["kind"], "ConfigMap");
        let definition = &decoded.definitions.unwrap().additional_properties[0];
        let schema = definition.value.as_ref().unwrap();
        assert_eq!(schema.r#type.as_ref().unwrap().value, ["object"]);
        let data = &schema.properties.as_ref().unwrap().additional_properties[0];
        assert_eq!(data.name, "data");
        assert!(matches!(
            data.value.as_ref().unwrap().additional_properties.as_ref(),
            Some(AdditionalPropertiesItem {
                oneof: Some(AdditionalProperties::Schema(_))
            })
        ));
    }
}
