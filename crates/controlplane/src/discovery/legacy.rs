//! Building blocks of the legacy discovery documents (`APIGroup`, `APIResourceList`), after
//! which a client fetches every group-version one by one.

use std::sync::Arc;

use crate::registry::ResourceDef;

use super::hash::storage_version_hash_of;
use super::subresources::subresources;
use super::types::{ApiGroup, ApiResource, GroupVersionForDiscovery};

/// `v1` or `<group>/<version>`.
pub(super) fn group_version_string(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// An `APIGroup` of versions already in preference order; `None` when there is no version.
pub(super) fn api_group(name: &str, versions: &[String], document: bool) -> Option<ApiGroup> {
    let versions: Vec<GroupVersionForDiscovery> = versions
        .iter()
        .map(|version| GroupVersionForDiscovery {
            group_version: group_version_string(name, version),
            version: version.clone(),
        })
        .collect();
    Some(ApiGroup {
        kind: document.then_some("APIGroup"),
        api_version: document.then_some("v1"),
        name: name.to_string(),
        preferred_version: versions.first()?.clone(),
        versions,
    })
}

/// The `APIResource` entries of a group-version's resources: each resource, then each of its
/// subresources as `<resource>/<subresource>`, all sorted by name.
pub(super) fn api_resources(defs: &[Arc<ResourceDef>]) -> Vec<ApiResource<'_>> {
    let mut resources = Vec::new();
    for def in defs {
        resources.push(ApiResource {
            name: def.plural.clone(),
            singular_name: &def.singular,
            namespaced: def.namespaced,
            group: "",
            version: "",
            kind: def.kind.clone(),
            verbs: &def.verbs,
            short_names: &def.short_names,
            categories: &def.categories,
            storage_version_hash: storage_version_hash_of(def).unwrap_or_default(),
        });
        for sub in subresources(def) {
            let (group, version) = sub.group_version.unwrap_or_default();
            resources.push(ApiResource {
                name: format!("{}/{}", def.plural, sub.name),
                singular_name: "",
                namespaced: def.namespaced,
                group,
                version,
                kind: sub.kind,
                verbs: sub.verbs,
                short_names: &[],
                categories: &[],
                storage_version_hash: String::new(),
            });
        }
    }
    resources.sort_by(|a, b| a.name.cmp(&b.name));
    resources
}

#[cfg(test)]
mod tests {
    use crate::discovery::tests::{entry, registry};
    use crate::discovery::{core_group, group, group_version, groups, DiscoveryFormat};
    use serde_json::json;

    #[test]
    fn legacy_api() {
        let doc = core_group(&registry(), DiscoveryFormat::Legacy, "10.0.0.1:6443");
        assert_eq!(doc.content_type, "application/json");
        assert_eq!(
            doc.body,
            json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:6443"}],
            })
        );
    }

    #[test]
    fn legacy_apis() {
        let doc = groups(&registry(), DiscoveryFormat::Legacy);
        assert_eq!(doc.content_type, "application/json");
        assert_eq!(doc.body["kind"], "APIGroupList");
        assert_eq!(doc.body["apiVersion"], "v1");
        let groups = doc.body["groups"].as_array().expect("groups");
        assert_eq!(
            groups[0],
            json!({
                "name": "apps",
                "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
            })
        );
        let names: Vec<&str> = groups.iter().filter_map(|g| g["name"].as_str()).collect();
        assert_eq!(
            names,
            [
                "apps",
                "events.k8s.io",
                "authentication.k8s.io",
                "authorization.k8s.io",
                "autoscaling",
                "batch",
                "certificates.k8s.io",
                "networking.k8s.io",
                "policy",
                "rbac.authorization.k8s.io",
                "storage.k8s.io",
                "admissionregistration.k8s.io",
                "apiextensions.k8s.io",
                "scheduling.k8s.io",
                "coordination.k8s.io",
                "node.k8s.io",
                "discovery.k8s.io",
            ]
        );
        let autoscaling = &groups[4];
        assert_eq!(
            autoscaling["preferredVersion"]["groupVersion"],
            "autoscaling/v2"
        );
    }

    #[test]
    fn api_group() {
        assert_eq!(
            group(&registry(), "apps"),
            Some(json!({
                "kind": "APIGroup",
                "apiVersion": "v1",
                "name": "apps",
                "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
            }))
        );
        assert_eq!(group(&registry(), "nope.example.com"), None);
        assert_eq!(group(&registry(), ""), None);
    }

    #[test]
    fn api_v1_resource_list() {
        let list = group_version(&registry(), "", "v1").expect("core v1");
        assert_eq!(list["kind"], "APIResourceList");
        assert_eq!(list["groupVersion"], "v1");
        // kube-apiserver strips apiVersion from the core group's documents.
        assert!(list.get("apiVersion").is_none());
        assert_eq!(
            entry(&list, "pods"),
            &json!({
                "name": "pods",
                "singularName": "pod",
                "namespaced": true,
                "kind": "Pod",
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                "shortNames": ["po"],
                "categories": ["all"],
                "storageVersionHash": "xPOwRZ+Yhw8=",
            })
        );
        assert_eq!(
            entry(&list, "pods/status"),
            &json!({
                "name": "pods/status",
                "singularName": "",
                "namespaced": true,
                "kind": "Pod",
                "verbs": ["get", "patch", "update"],
            })
        );
        assert_eq!(
            entry(&list, "namespaces/finalize"),
            &json!({
                "name": "namespaces/finalize",
                "singularName": "",
                "namespaced": false,
                "kind": "Namespace",
                "verbs": ["update"],
            })
        );
        assert_eq!(
            entry(&list, "replicationcontrollers/scale"),
            &json!({
                "name": "replicationcontrollers/scale",
                "singularName": "",
                "namespaced": true,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            })
        );
        let secrets = entry(&list, "secrets");
        assert!(secrets.get("shortNames").is_none() && secrets.get("categories").is_none());
        // Sorted by name as kube-apiserver sorts its paths.
        let names: Vec<&str> = list["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        let pods = names
            .iter()
            .position(|n| *n == "pods")
            .unwrap_or(usize::MAX);
        let templates = names.iter().position(|n| *n == "podtemplates").unwrap_or(0);
        let pod_subresources = &names[pods + 1..templates];
        assert_eq!(
            pod_subresources,
            [
                "pods/attach",
                "pods/binding",
                "pods/eviction",
                "pods/exec",
                "pods/log",
                "pods/portforward",
                "pods/proxy",
                "pods/status"
            ]
        );
    }

    #[test]
    fn apps_v1_resource_list() {
        let list = group_version(&registry(), "apps", "v1").expect("apps/v1");
        assert_eq!(list["kind"], "APIResourceList");
        assert_eq!(list["apiVersion"], "v1");
        assert_eq!(list["groupVersion"], "apps/v1");
        assert_eq!(
            entry(&list, "deployments"),
            &json!({
                "name": "deployments",
                "singularName": "deployment",
                "namespaced": true,
                "kind": "Deployment",
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                "shortNames": ["deploy"],
                "categories": ["all"],
                "storageVersionHash": "8aSe+NMegvE=",
            })
        );
        assert_eq!(
            entry(&list, "deployments/scale"),
            &json!({
                "name": "deployments/scale",
                "singularName": "",
                "namespaced": true,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            })
        );
        assert_eq!(entry(&list, "deployments/status")["kind"], "Deployment");
        assert_eq!(group_version(&registry(), "apps", "v9"), None);
        assert_eq!(group_version(&registry(), "nope.example.com", "v1"), None);
    }
}
