//! The `paths` of a group-version's document: for every resource its collection, object,
//! `status` and `scale` paths with kube-apiserver's operations, each carrying
//! `x-kubernetes-action`, `x-kubernetes-group-version-kind` and the query parameters the
//! server honours (kubectl looks for `fieldValidation` to choose server-side validation).
//! Written in the OpenAPI v3 form; [`super::v2`] rewrites them for Swagger 2.0.

use super::definitions::{DELETE_OPTIONS, PATCH, SCALE, STATUS};
use crate::registry::ResourceDef;
use crate::schema::REF_PREFIX;
use serde_json::{json, Map, Value};

/// The definitions a resource's operations read and write.
pub struct Schemas<'a> {
    /// The kind's definition name.
    pub kind: &'a str,
    /// The list kind's definition name.
    pub list: &'a str,
}

/// The base path of a group-version (`/api/v1`, `/apis/<group>/<version>`).
pub fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// Every path of `def`, with its operations.
pub fn resource_paths(def: &ResourceDef, schemas: &Schemas<'_>) -> Vec<(String, Value)> {
    let base = group_version_path(&def.group, &def.version);
    let scope = if def.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", def.plural)
    } else {
        format!("{base}/{}", def.plural)
    };
    let ops = Ops::new(def);
    let kind = gvk(&def.group, &def.version, &def.kind);
    let mut paths = Vec::new();
    let mut collection = Map::new();
    if def.serves("list") {
        collection.insert("get".into(), ops.list(schemas.list, &kind, ""));
    }
    if def.serves("create") {
        collection.insert("post".into(), ops.create(schemas.kind, &kind));
    }
    if def.serves("deletecollection") {
        collection.insert("delete".into(), ops.delete_collection(&kind));
    }
    if !collection.is_empty() {
        collection.insert("parameters".into(), ops.scope_parameters(false));
        paths.push((scope.clone(), Value::Object(collection)));
    }
    if def.namespaced && def.serves("list") {
        let mut all = Map::new();
        all.insert(
            "get".into(),
            ops.list(schemas.list, &kind, "ForAllNamespaces"),
        );
        all.insert("parameters".into(), json!([pretty()]));
        paths.push((format!("{base}/{}", def.plural), Value::Object(all)));
    }
    let mut item = Map::new();
    if def.serves("get") {
        item.insert("get".into(), ops.read(schemas.kind, &kind, ""));
    }
    if def.serves("update") {
        item.insert("put".into(), ops.replace(schemas.kind, &kind, ""));
    }
    if def.serves("patch") {
        item.insert("patch".into(), ops.patch(schemas.kind, &kind, ""));
    }
    if def.serves("delete") {
        item.insert("delete".into(), ops.delete(&kind));
    }
    if !item.is_empty() {
        item.insert("parameters".into(), ops.scope_parameters(true));
        paths.push((format!("{scope}/{{name}}"), Value::Object(item)));
    }
    let scale_kind = gvk("autoscaling", "v1", "Scale");
    for (sub, schema, sub_kind) in [
        ("status", schemas.kind, &kind),
        ("scale", SCALE, &scale_kind),
    ] {
        if !def.subresources.iter().any(|s| s == sub) {
            continue;
        }
        let suffix = if sub == "status" { "Status" } else { "Scale" };
        let mut item = Map::new();
        item.insert("get".into(), ops.read(schema, sub_kind, suffix));
        item.insert("put".into(), ops.replace(schema, sub_kind, suffix));
        item.insert("patch".into(), ops.patch(schema, sub_kind, suffix));
        item.insert("parameters".into(), ops.scope_parameters(true));
        paths.push((format!("{scope}/{{name}}/{sub}"), Value::Object(item)));
    }
    paths
}

/// `x-kubernetes-group-version-kind` of an operation (one object, not a list).
fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("{REF_PREFIX}{name}")})
}

/// A query or path parameter.
fn parameter(name: &str, location: &str, kind: &str, description: &str) -> Value {
    let mut p = json!({
        "name": name,
        "in": location,
        "description": description,
        "schema": {"type": kind, "uniqueItems": true},
    });
    if location == "path" {
        p["required"] = json!(true);
    }
    p
}

fn pretty() -> Value {
    parameter(
        "pretty",
        "query",
        "string",
        "If 'true', then the output is pretty printed.",
    )
}

fn dry_run() -> Value {
    parameter(
        "dryRun",
        "query",
        "string",
        "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
    )
}

fn field_manager() -> Value {
    parameter(
        "fieldManager",
        "query",
        "string",
        "fieldManager is a name associated with the actor or entity that is making these changes.",
    )
}

fn field_validation() -> Value {
    parameter(
        "fieldValidation",
        "query",
        "string",
        "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: drops unknown fields and keeps the last of duplicate fields. - Warn: drops them and sends a warning header for each (the default). - Strict: fails the request with a BadRequest error naming them.",
    )
}

fn list_parameters() -> Vec<Value> {
    [
        ("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
        ("continue", "string", "The continue option should be set when retrieving more results from the server."),
        ("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
        ("labelSelector", "string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
        ("limit", "integer", "limit is a maximum number of responses to return for a list call."),
        ("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."),
        ("resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
        ("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`."),
        ("timeoutSeconds", "integer", "Timeout for the list/watch call."),
        ("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."),
    ]
    .into_iter()
    .map(|(name, kind, description)| parameter(name, "query", kind, description))
    .collect()
}

fn delete_parameters() -> Vec<Value> {
    vec![
        dry_run(),
        parameter("gracePeriodSeconds", "query", "integer", "The duration in seconds before the object should be deleted."),
        parameter("orphanDependents", "query", "boolean", "Deprecated: please use the PropagationPolicy."),
        parameter("propagationPolicy", "query", "string", "Whether and how garbage collection will be performed: Orphan, Background or Foreground."),
    ]
}

/// A response answered with `schema` as JSON.
fn response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": reference(schema)}},
    })
}

fn unauthorized() -> Value {
    json!({"description": "Unauthorized"})
}

/// Builds the operations of one resource.
struct Ops<'a> {
    def: &'a ResourceDef,
    /// `AppsV1`, `CoreV1`: the middle of upstream's operation ids.
    prefix: String,
    tag: String,
}

impl<'a> Ops<'a> {
    fn new(def: &'a ResourceDef) -> Self {
        let group = if def.group.is_empty() {
            "core"
        } else {
            def.group.strip_suffix(".k8s.io").unwrap_or(&def.group)
        };
        let camel: String = group
            .split(['.', '-'])
            .map(|part| {
                let mut chars = part.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        let version = {
            let mut chars = def.version.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        };
        let tag_group = group.replace(['.', '-'], "");
        Ops {
            def,
            prefix: format!("{camel}{version}"),
            tag: format!("{tag_group}_{}", def.version),
        }
    }

    /// `listAppsV1NamespacedDeployment` and its kin.
    fn id(&self, verb: &str, collection: bool, suffix: &str) -> String {
        let scope = if self.def.namespaced && suffix != "ForAllNamespaces" {
            "Namespaced"
        } else {
            ""
        };
        let collection = if collection { "Collection" } else { "" };
        format!(
            "{verb}{}{collection}{scope}{}{suffix}",
            self.prefix, self.def.kind
        )
    }

    fn operation(
        &self,
        action: &str,
        id: String,
        kind: &Value,
        parameters: Vec<Value>,
        responses: Value,
    ) -> Value {
        json!({
            "tags": [self.tag],
            "description": format!("{action} {}", self.def.kind),
            "operationId": id,
            "parameters": parameters,
            "responses": responses,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": kind,
        })
    }

    /// The path-level parameters: `name` (for objects), `namespace`, `pretty`.
    fn scope_parameters(&self, object: bool) -> Value {
        let mut params = Vec::new();
        if object {
            params.push(parameter(
                "name",
                "path",
                "string",
                &format!("name of the {}", self.def.kind),
            ));
        }
        if self.def.namespaced {
            params.push(parameter(
                "namespace",
                "path",
                "string",
                "object name and auth scope, such as for teams and projects",
            ));
        }
        params.push(pretty());
        Value::Array(params)
    }

    fn list(&self, list: &str, kind: &Value, suffix: &str) -> Value {
        self.operation(
            "list",
            self.id("list", false, suffix),
            kind,
            list_parameters(),
            json!({"200": response("OK", list), "401": unauthorized()}),
        )
    }

    fn create(&self, schema: &str, kind: &Value) -> Value {
        let mut op = self.operation(
            "post",
            self.id("create", false, ""),
            kind,
            vec![dry_run(), field_manager(), field_validation()],
            json!({
                "200": response("OK", schema),
                "201": response("Created", schema),
                "202": response("Accepted", schema),
                "401": unauthorized(),
            }),
        );
        op["requestBody"] = body(&["*/*"], schema);
        op
    }

    fn read(&self, schema: &str, kind: &Value, suffix: &str) -> Value {
        self.operation(
            "get",
            self.id("read", false, suffix),
            kind,
            Vec::new(),
            json!({"200": response("OK", schema), "401": unauthorized()}),
        )
    }

    fn replace(&self, schema: &str, kind: &Value, suffix: &str) -> Value {
        let mut op = self.operation(
            "put",
            self.id("replace", false, suffix),
            kind,
            vec![dry_run(), field_manager(), field_validation()],
            json!({
                "200": response("OK", schema),
                "201": response("Created", schema),
                "401": unauthorized(),
            }),
        );
        op["requestBody"] = body(&["*/*"], schema);
        op
    }

    fn patch(&self, schema: &str, kind: &Value, suffix: &str) -> Value {
        let mut params = vec![dry_run(), field_manager(), field_validation()];
        params.push(parameter(
            "force",
            "query",
            "boolean",
            "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people.",
        ));
        let mut op = self.operation(
            "patch",
            self.id("patch", false, suffix),
            kind,
            params,
            json!({
                "200": response("OK", schema),
                "201": response("Created", schema),
                "401": unauthorized(),
            }),
        );
        let mut types = vec![
            "application/json-patch+json",
            "application/merge-patch+json",
        ];
        if !self.def.custom {
            types.push("application/strategic-merge-patch+json");
        }
        types.push("application/apply-patch+yaml");
        op["requestBody"] = body(&types, PATCH);
        op
    }

    fn delete(&self, kind: &Value) -> Value {
        let mut op = self.operation(
            "delete",
            self.id("delete", false, ""),
            kind,
            delete_parameters(),
            json!({
                "200": response("OK", STATUS),
                "202": response("Accepted", STATUS),
                "401": unauthorized(),
            }),
        );
        op["requestBody"] = body(&["*/*"], DELETE_OPTIONS);
        op
    }

    fn delete_collection(&self, kind: &Value) -> Value {
        let mut params = delete_parameters();
        params.extend(list_parameters());
        let mut op = self.operation(
            "deletecollection",
            self.id("delete", true, ""),
            kind,
            params,
            json!({"200": response("OK", STATUS), "401": unauthorized()}),
        );
        op["requestBody"] = body(&["*/*"], DELETE_OPTIONS);
        op
    }
}

/// A request body of one of `media_types`, shaped by `schema`.
fn body(media_types: &[&str], schema: &str) -> Value {
    let content: Map<String, Value> = media_types
        .iter()
        .map(|t| ((*t).to_owned(), json!({"schema": reference(schema)})))
        .collect();
    json!({"content": content, "required": true})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ResourceRegistry;

    fn paths_of(group: &str, plural: &str) -> Vec<(String, Value)> {
        let def = ResourceRegistry::builtin()
            .lookup(group, "v1", plural)
            .unwrap();
        resource_paths(
            &def,
            &Schemas {
                kind: "K",
                list: "KList",
            },
        )
    }

    #[test]
    fn namespaced_resources_have_collection_object_and_subresource_paths() {
        let paths = paths_of("apps", "deployments");
        let names: Vec<&str> = paths.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "/apis/apps/v1/namespaces/{namespace}/deployments",
                "/apis/apps/v1/deployments",
                "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
                "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status",
                "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
            ]
        );
        let item = &paths[2].1;
        assert_eq!(item["patch"]["x-kubernetes-action"], "patch");
        assert_eq!(
            item["patch"]["operationId"],
            "patchAppsV1NamespacedDeployment"
        );
        assert_eq!(item["put"]["x-kubernetes-action"], "put");
        let names: Vec<&str> = item["patch"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["dryRun", "fieldManager", "fieldValidation", "force"]
        );
        assert_eq!(
            paths[0].1["post"]["x-kubernetes-group-version-kind"],
            json!({"group": "apps", "kind": "Deployment", "version": "v1"})
        );
        assert_eq!(
            paths[0].1["delete"]["x-kubernetes-action"],
            "deletecollection"
        );
        let scale = &paths[4].1["put"];
        assert_eq!(scale["x-kubernetes-group-version-kind"]["kind"], "Scale");
        assert_eq!(
            scale["requestBody"]["content"]["*/*"]["schema"]["$ref"],
            format!("{REF_PREFIX}{SCALE}")
        );
    }

    #[test]
    fn cluster_scoped_resources_have_no_namespace() {
        let paths = paths_of("", "namespaces");
        assert_eq!(paths[0].0, "/api/v1/namespaces");
        assert_eq!(paths[0].1["get"]["operationId"], "listCoreV1Namespace");
        assert!(paths.iter().all(|(p, _)| !p.contains("{namespace}")));
    }
}
