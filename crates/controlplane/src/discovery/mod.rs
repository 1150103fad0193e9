//! Discovery: the documents a control plane serves at `/api`, `/apis`, `/apis/<group>`,
//! `/api/v1`, `/apis/<group>/<version>` and `/version`, built from its [`ResourceRegistry`] and
//! shaped as kube-apiserver 1.33 shapes them, so that kubectl 1.27–1.33, client-go, kube-rs and
//! the Python client find resources as they would on a real cluster.
//!
//! Two forms exist for `/api` and `/apis`:
//!
//! * the legacy documents (`APIVersions`, `APIGroupList`), after which a client fetches every
//!   group-version's `APIResourceList` one by one;
//! * aggregated discovery (`APIGroupDiscoveryList`, group `apidiscovery.k8s.io`, versions `v2`
//!   and `v2beta1`), which carries every resource of every group in one answer.
//!
//! A client asks for the aggregated form through parameters of its `Accept` header
//! ([`DiscoveryFormat::negotiate`]) and recognises it only by the parameters of the response's
//! `Content-Type` ([`DiscoveryFormat::content_type`]), so the handler must send the content type
//! of the [`Document`] it got. kube-apiserver also sends aggregated documents with an `ETag`
//! ([`Document::etag`]), `Vary: Accept` and `Cache-Control: public`, and answers
//! `304 Not Modified` when `If-None-Match` names the current tag ([`Document::matches_etag`]).
//!
//! Ordering follows kube-apiserver: groups by their API-service priority (the built-in groups in
//! upstream's fixed order, then every other group by name), versions within a group by
//! [`version_priority_order`] (the first is the preferred version), resources of a
//! group-version by name, subresources as `<resource>/<subresource>` entries (legacy) or under
//! their resource (aggregated).
//!
//! The bodies are [`serde_json::Value`]s built from structs whose fields follow upstream's
//! order, so with serde_json's `preserve_order` feature the bytes match kube-apiserver's field
//! order as well; without it keys come out sorted, which no client minds.
//!
//! This module builds the documents; its parts:
//!
//! * `negotiate`: [`DiscoveryFormat`], the form an `Accept` header asks for;
//! * `types`: the serde structs of the legacy and aggregated documents;
//! * `legacy` and `aggregated`: the building blocks of each form;
//! * `versions`: version and group priority ([`version_priority_order`]);
//! * `subresources`: upstream's verbs and kinds of each subresource;
//! * `hash`: [`storage_version_hash`] and the documents' `ETag`s.

mod aggregated;
mod hash;
mod legacy;
mod negotiate;
mod subresources;
mod types;
mod versions;

pub use hash::storage_version_hash;
pub use negotiate::DiscoveryFormat;
pub use versions::{compare_kube_versions, version_priority_order};

use crate::registry::ResourceRegistry;
use serde_json::Value;

use aggregated::version_discovery;
use legacy::{api_group, api_resources, group_version_string};
use types::{
    to_json, ApiGroupList, ApiResourceList, ApiVersions, GroupDiscovery, GroupDiscoveryList,
    GroupMetadata, ServerAddressByClientCidr,
};
use versions::ordered_groups;

/// The aggregated-discovery API group.
const DISCOVERY_GROUP: &str = "apidiscovery.k8s.io";
/// The aggregated-discovery list kind.
const DISCOVERY_LIST_KIND: &str = "APIGroupDiscoveryList";

/// The Kubernetes release whose API kflex serves.
const KUBE_MAJOR: &str = "1";
const KUBE_MINOR: &str = "33";
/// Semantic version with kflex as build metadata: build metadata does not take part in
/// precedence, so version constraints such as Helm's `kubeVersion: ">=1.20.0"` hold, which a
/// pre-release suffix (`-kflex`) would fail.
const GIT_VERSION: &str = "v1.33.0+kflex";

/// A JSON discovery document and the `Content-Type` to send it with.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The `Content-Type` header of the answer.
    pub content_type: &'static str,
    /// The body.
    pub body: Value,
}

/// `GET /api`: `APIVersions` with the single version `v1` and `serverAddress` (`host:port`) for
/// every client, or an aggregated list whose single item is the core group (no `metadata.name`).
pub fn core_group(
    registry: &ResourceRegistry,
    format: DiscoveryFormat,
    server_address: &str,
) -> Document {
    let body = match format.aggregated_api_version() {
        None => to_json(&ApiVersions {
            kind: "APIVersions",
            versions: ["v1"],
            server_address_by_client_cidrs: [ServerAddressByClientCidr {
                client_cidr: "0.0.0.0/0",
                server_address,
            }],
        }),
        Some(api_version) => to_json(&GroupDiscoveryList {
            kind: DISCOVERY_LIST_KIND,
            api_version,
            metadata: serde_json::Map::new(),
            items: vec![GroupDiscovery {
                metadata: GroupMetadata { name: None },
                versions: vec![version_discovery(registry, "", "v1")],
            }],
        }),
    };
    Document {
        content_type: format.content_type(),
        body,
    }
}

/// `GET /apis`: the `APIGroupList` of every named group, or the aggregated list of every named
/// group with all its resources. Never the core group.
pub fn groups(registry: &ResourceRegistry, format: DiscoveryFormat) -> Document {
    let groups = ordered_groups(registry.groups());
    let body = match format.aggregated_api_version() {
        None => to_json(&ApiGroupList {
            kind: "APIGroupList",
            api_version: "v1",
            groups: groups
                .iter()
                .filter_map(|(name, versions)| api_group(name, versions, false))
                .collect(),
        }),
        Some(api_version) => to_json(&GroupDiscoveryList {
            kind: DISCOVERY_LIST_KIND,
            api_version,
            metadata: serde_json::Map::new(),
            items: groups
                .iter()
                .map(|(name, versions)| GroupDiscovery {
                    metadata: GroupMetadata { name: Some(name) },
                    versions: versions
                        .iter()
                        .map(|version| version_discovery(registry, name, version))
                        .collect(),
                })
                .collect(),
        }),
    };
    Document {
        content_type: format.content_type(),
        body,
    }
}

/// `GET /apis/<group>`: the `APIGroup` with its versions in preference order and the first as
/// `preferredVersion`; `None` when the registry has no such named group.
pub fn group(registry: &ResourceRegistry, group: &str) -> Option<Value> {
    let (name, mut versions) = registry
        .groups()
        .into_iter()
        .find(|(name, _)| name == group)?;
    version_priority_order(&mut versions);
    api_group(&name, &versions, true).map(|group| to_json(&group))
}

/// `GET /api/v1` (group `""`) and `GET /apis/<group>/<version>`: the `APIResourceList` of the
/// group-version, resources and their subresources sorted by name; `None` when the registry has
/// no resource in it.
pub fn group_version(registry: &ResourceRegistry, group: &str, version: &str) -> Option<Value> {
    let defs = registry.resources(group, version);
    if defs.is_empty() {
        return None;
    }
    Some(to_json(&ApiResourceList {
        kind: "APIResourceList",
        api_version: (!group.is_empty()).then_some("v1"),
        group_version: group_version_string(group, version),
        resources: api_resources(&defs),
    }))
}

/// `GET /version`: the `version.Info` of Kubernetes 1.33 as kflex serves it. `major` and
/// `minor` parse as integers (the Python client, kube-rs and conformance rely on it) and
/// `gitVersion` as a semantic version (kubectl's version-skew check parses it). `gitCommit` and
/// `buildDate` come from the `KFLEX_GIT_COMMIT` and `KFLEX_BUILD_DATE` environment variables at
/// build time when set.
pub fn version_info() -> Value {
    serde_json::json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "emulationMajor": KUBE_MAJOR,
        "emulationMinor": KUBE_MINOR,
        "minCompatibilityMajor": KUBE_MAJOR,
        "minCompatibilityMinor": "32",
        "gitVersion": GIT_VERSION,
        "gitCommit": option_env!("KFLEX_GIT_COMMIT").unwrap_or("unknown"),
        "gitTreeState": "clean",
        "buildDate": option_env!("KFLEX_BUILD_DATE").unwrap_or("1970-01-01T00:00:00Z"),
        "goVersion": "n/a",
        "compiler": "rustc",
        "platform": platform(),
    })
}

/// `<os>/<arch>` in Go's names (`linux/amd64`, `darwin/arm64`), as `platform` carries them.
fn platform() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    };
    format!("{os}/{arch}")
}

/// Helpers shared by the discovery tests, and the tests of `/version`.
#[cfg(test)]
mod tests {
    use super::*;

    /// kubectl 1.27–1.29 (trace `apires-1.27`).
    pub(super) const ACCEPT_1_27: &str =
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    /// kubectl 1.30–1.33 and kube-rs (trace `apires-1.33`).
    pub(super) const ACCEPT_1_33: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    /// client-go after 1.33.
    pub(super) const ACCEPT_HEAD: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;profile=nopeer,application/json";

    pub(super) fn registry() -> ResourceRegistry {
        ResourceRegistry::builtin()
    }

    pub(super) fn entry<'a>(list: &'a Value, name: &str) -> &'a Value {
        list["resources"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["name"] == name))
            .unwrap_or_else(|| panic!("no entry {name}"))
    }

    #[test]
    fn version_info_parses() {
        let info = version_info();
        let major: u32 = info["major"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("major");
        let minor: u32 = info["minor"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("minor");
        assert_eq!((major, minor), (1, 33));
        for field in [
            "gitVersion",
            "gitCommit",
            "gitTreeState",
            "buildDate",
            "goVersion",
            "compiler",
            "platform",
        ] {
            assert!(info[field].is_string(), "{field}");
        }
        // gitVersion is `v<major>.<minor>.<patch>` with optional build metadata: a semantic
        // version that agrees with major and minor.
        let git = info["gitVersion"].as_str().expect("gitVersion");
        let core = git.strip_prefix('v').expect("v prefix");
        let (core, build) = core.split_once('+').unwrap_or((core, ""));
        let parts: Vec<u64> = core.split('.').filter_map(|p| p.parse().ok()).collect();
        assert_eq!(parts, [1, 33, 0]);
        assert!(
            !core.contains('-'),
            "no pre-release: it would sort below v1.33.0"
        );
        assert!(
            build
                .split('.')
                .all(|id| !id.is_empty()
                    && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        );
        assert!(info["platform"].as_str().is_some_and(|p| p.contains('/')));
    }
}
