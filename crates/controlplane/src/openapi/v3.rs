//! OpenAPI v3: the root (`/openapi/v3`), which lists a document per group-version with its
//! content hash, and the group-version documents (`/openapi/v3/apis/<group>/<version>`).

use super::definitions::{self, DELETE_OPTIONS, PATCH, SCALE, STATUS};
use super::paths::{resource_paths, Schemas};
use super::{CustomSchemas, Published};
use crate::registry::{ResourceDef, ResourceRegistry};
use crate::schema;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

/// The Kubernetes release the documents describe.
pub const INFO_VERSION: &str = "v1.33.0";

/// The root's key of a group-version: `api/v1`, `apis/<group>/<version>`.
pub fn root_key(group: &str, version: &str) -> String {
    super::paths::group_version_path(group, version)
        .trim_start_matches('/')
        .to_owned()
}

/// `/openapi/v3`: every group-version's document, by a URL that names its hash. The URLs start
/// with `/openapi/v3` so that clients keep their own path prefix (`/clusters/<name>`) in front.
pub fn root(registry: &ResourceRegistry, custom: CustomSchemas<'_>) -> Value {
    let mut paths = Map::new();
    for (group, version) in super::group_versions(registry) {
        if let Some(document) = group_version(registry, &group, &version, custom) {
            let key = root_key(&group, &version);
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", document.hash)}),
            );
        }
    }
    json!({ "paths": paths })
}

/// The document of a group-version, `None` when the control plane serves no such
/// group-version. Documents of built-in group-versions are built once per process and shared
/// by every control plane; those with custom resources are built on each request.
pub fn group_version(
    registry: &ResourceRegistry,
    group: &str,
    version: &str,
    custom: CustomSchemas<'_>,
) -> Option<Arc<Published>> {
    static BUILT_IN: OnceLock<Mutex<HashMap<String, Arc<Published>>>> = OnceLock::new();
    let resources = registry.resources(group, version);
    if resources.is_empty() {
        return None;
    }
    if resources.iter().any(|r| r.custom) {
        return Some(Arc::new(Published::json(&document(&resources, custom))));
    }
    let key = super::fingerprint(&resources);
    let cache = BUILT_IN.get_or_init(Default::default);
    if let Some(found) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Some(found.clone());
    }
    let built = Arc::new(Published::json(&document(&resources, custom)));
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, built.clone());
    Some(built)
}

/// The OpenAPI 3.0 document of one group-version's `resources`.
pub fn document(resources: &[Arc<ResourceDef>], custom: CustomSchemas<'_>) -> Value {
    let mut paths = BTreeMap::new();
    let mut roots: Vec<String> = vec![STATUS.into(), DELETE_OPTIONS.into(), PATCH.into()];
    let mut custom_defs = Map::new();
    for def in resources {
        let kind = if def.custom {
            for (name, definition) in definitions::custom_definitions(def, custom(def)) {
                custom_defs.insert(name, definition);
            }
            definitions::custom_kind_name(def)
        } else {
            match schema::builtin().name_of_kind(&def.group, &def.version, &def.kind) {
                Some(name) => name.to_owned(),
                None => continue,
            }
        };
        let list = definitions::list_name(&kind, def);
        paths.extend(resource_paths(
            def,
            &Schemas {
                kind: &kind,
                list: &list,
            },
        ));
        if def.subresources.iter().any(|s| s == "scale") {
            roots.push(SCALE.into());
        }
        roots.push(kind);
        roots.push(list);
    }
    let schemas = definitions::closure(roots.iter().map(String::as_str), &custom_defs);
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": INFO_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_custom(_: &ResourceDef) -> Option<Value> {
        None
    }

    #[test]
    fn root_lists_every_group_version_with_its_hash() {
        let registry = ResourceRegistry::builtin();
        let root = root(&registry, &no_custom);
        let apps = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        let hash = group_version(&registry, "apps", "v1", &no_custom)
            .unwrap()
            .hash
            .clone();
        assert_eq!(apps, format!("/openapi/v3/apis/apps/v1?hash={hash}"));
        assert!(root["paths"]["api/v1"].is_object());
        assert!(root["paths"]["apis/rbac.authorization.k8s.io/v1"].is_object());
        assert_eq!(hash.len(), 128);
    }

    #[test]
    fn group_version_documents_carry_paths_and_their_schemas() {
        let registry = ResourceRegistry::builtin();
        let doc = document(&registry.resources("apps", "v1"), &no_custom);
        assert_eq!(doc["openapi"], "3.0.0");
        let post = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["post"];
        assert_eq!(post["x-kubernetes-action"], "post");
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "io.k8s.api.apps.v1.Deployment",
            "io.k8s.api.apps.v1.DeploymentList",
            "io.k8s.api.core.v1.PodSpec",
            "io.k8s.api.autoscaling.v1.Scale",
            "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        ] {
            assert!(schemas.contains_key(name), "{name}");
        }
        assert!(!schemas.contains_key("io.k8s.api.core.v1.ConfigMap"));
        assert!(group_version(&registry, "apps", "v9", &no_custom).is_none());
    }

    #[test]
    fn custom_resources_use_the_schema_given() {
        let registry = ResourceRegistry::builtin();
        let mut def = (*registry.lookup("", "v1", "configmaps").unwrap()).clone();
        def.group = "example.com".into();
        def.kind = "Widget".into();
        def.list_kind = "WidgetList".into();
        def.plural = "widgets".into();
        def.custom = true;
        let schema = |_: &ResourceDef| {
            Some(json!({"type": "object", "properties": {"spec": {"type": "object"}}}))
        };
        let doc = document(&[Arc::new(def)], &schema);
        let widget = &doc["components"]["schemas"]["com.example.v1.Widget"];
        assert_eq!(widget["properties"]["spec"]["type"], "object");
        assert!(
            doc["components"]["schemas"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]
                .is_object()
        );
        assert!(
            doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"]
                .is_object()
        );
    }
}
