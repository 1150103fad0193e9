//! Building blocks of aggregated discovery (`apidiscovery.k8s.io` `APIGroupDiscoveryList`),
//! which carries every resource of every group in one answer.

use crate::registry::ResourceRegistry;

use super::subresources::subresources;
use super::types::{GroupVersionKind, ResourceDiscovery, SubresourceDiscovery, VersionDiscovery};

/// The aggregated form of one group-version, resources sorted by name.
pub(super) fn version_discovery(
    registry: &ResourceRegistry,
    group: &str,
    version: &str,
) -> VersionDiscovery {
    let mut defs = registry.resources(group, version);
    defs.sort_by(|a, b| a.plural.cmp(&b.plural));
    let resources = defs
        .iter()
        .map(|def| ResourceDiscovery {
            resource: def.plural.clone(),
            response_kind: GroupVersionKind {
                group: def.group.clone(),
                version: def.version.clone(),
                kind: def.kind.clone(),
            },
            scope: if def.namespaced {
                "Namespaced"
            } else {
                "Cluster"
            },
            singular_resource: def.singular.clone(),
            verbs: def.verbs.clone(),
            short_names: def.short_names.clone(),
            categories: def.categories.clone(),
            subresources: subresources(def)
                .into_iter()
                .map(|sub| {
                    let (group, version) = sub
                        .group_version
                        .unwrap_or((def.group.as_str(), def.version.as_str()));
                    SubresourceDiscovery {
                        response_kind: GroupVersionKind {
                            group: group.to_string(),
                            version: version.to_string(),
                            kind: sub.kind,
                        },
                        subresource: sub.name,
                        verbs: sub.verbs,
                    }
                })
                .collect(),
        })
        .collect();
    VersionDiscovery {
        version: version.to_string(),
        resources,
        freshness: "Current",
    }
}

#[cfg(test)]
mod tests {
    use crate::discovery::tests::{registry, ACCEPT_1_27, ACCEPT_1_33};
    use crate::discovery::{core_group, groups, DiscoveryFormat};
    use serde_json::{json, Value};

    fn item<'a>(list: &'a Value, group: &str) -> &'a Value {
        list["items"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["metadata"]["name"] == group))
            .unwrap_or_else(|| panic!("no group {group}"))
    }

    fn resource<'a>(item: &'a Value, version: &str, plural: &str) -> &'a Value {
        item["versions"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["version"] == version))
            .and_then(|v| v["resources"].as_array())
            .and_then(|r| r.iter().find(|r| r["resource"] == plural))
            .unwrap_or_else(|| panic!("no resource {version} {plural}"))
    }

    #[test]
    fn aggregated_v2_apis() {
        let doc = groups(&registry(), DiscoveryFormat::negotiate(Some(ACCEPT_1_33)));
        assert_eq!(
            doc.content_type,
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        );
        assert_eq!(doc.body["kind"], "APIGroupDiscoveryList");
        assert_eq!(doc.body["apiVersion"], "apidiscovery.k8s.io/v2");
        assert_eq!(doc.body["metadata"], json!({}));
        let items = doc.body["items"].as_array().expect("items");
        assert!(items.iter().all(|i| i["metadata"]["name"].is_string()));
        assert_eq!(items[0]["metadata"]["name"], "apps");
        let apps = item(&doc.body, "apps");
        assert_eq!(apps["versions"][0]["version"], "v1");
        assert_eq!(apps["versions"][0]["freshness"], "Current");
        assert_eq!(
            resource(apps, "v1", "deployments"),
            &json!({
                "resource": "deployments",
                "responseKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                "scope": "Namespaced",
                "singularResource": "deployment",
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                "shortNames": ["deploy"],
                "categories": ["all"],
                "subresources": [
                    {
                        "subresource": "scale",
                        "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
                        "verbs": ["get", "patch", "update"],
                    },
                    {
                        "subresource": "status",
                        "responseKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                        "verbs": ["get", "patch", "update"],
                    },
                ],
            })
        );
        let rbac = item(&doc.body, "rbac.authorization.k8s.io");
        let roles = resource(rbac, "v1", "clusterroles");
        assert_eq!(roles["scope"], "Cluster");
        assert!(roles.get("subresources").is_none() && roles.get("shortNames").is_none());
        // Resources sorted by name.
        let names: Vec<&str> = apps["versions"][0]["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .filter_map(|r| r["resource"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "controllerrevisions",
                "daemonsets",
                "deployments",
                "replicasets",
                "statefulsets"
            ]
        );
    }

    #[test]
    fn aggregated_v2beta1_api() {
        let format = DiscoveryFormat::negotiate(Some(ACCEPT_1_27));
        let doc = core_group(&registry(), format, "10.0.0.1:6443");
        assert_eq!(
            doc.content_type,
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
        );
        assert_eq!(doc.body["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        let items = doc.body["items"].as_array().expect("items");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["metadata"], json!({}));
        let core = &items[0];
        assert_eq!(core["versions"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            resource(core, "v1", "namespaces"),
            &json!({
                "resource": "namespaces",
                "responseKind": {"group": "", "version": "v1", "kind": "Namespace"},
                "scope": "Cluster",
                "singularResource": "namespace",
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                "shortNames": ["ns"],
                "subresources": [
                    {
                        "subresource": "finalize",
                        "responseKind": {"group": "", "version": "v1", "kind": "Namespace"},
                        "verbs": ["update"],
                    },
                    {
                        "subresource": "status",
                        "responseKind": {"group": "", "version": "v1", "kind": "Namespace"},
                        "verbs": ["get", "patch", "update"],
                    },
                ],
            })
        );
        // The same registry in v2 differs only in apiVersion and content type.
        let v2 = core_group(&registry(), DiscoveryFormat::AggregatedV2, "10.0.0.1:6443");
        assert_eq!(v2.body["items"], doc.body["items"]);
        let v2 = groups(&registry(), DiscoveryFormat::AggregatedV2);
        let beta = groups(&registry(), DiscoveryFormat::AggregatedV2Beta1);
        assert_eq!(v2.body["items"], beta.body["items"]);
    }
}
