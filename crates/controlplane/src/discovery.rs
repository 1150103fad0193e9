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

use crate::registry::{ResourceDef, ResourceRegistry};
use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use std::cmp::Ordering;

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

/// Which discovery form a request's `Accept` header asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoveryFormat {
    /// `APIVersions` / `APIGroupList`, sent as `application/json`.
    Legacy,
    /// `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList` (kubectl 1.30+, client-go, kube-rs).
    AggregatedV2,
    /// `apidiscovery.k8s.io/v2beta1` `APIGroupDiscoveryList` (kubectl 1.27–1.29).
    AggregatedV2Beta1,
}

impl DiscoveryFormat {
    /// The form an `Accept` header asks for, as kube-apiserver negotiates it: media ranges are
    /// ranked by `q` (highest first; `q=0` is not acceptable), then concrete before wildcard types,
    /// then in the client's order; the first range that asks for an `APIGroupDiscoveryList` of
    /// `apidiscovery.k8s.io` `v2` or `v2beta1` as JSON (`application/json`, `application/*` or
    /// `*/*` with parameters `g`, `v` and `as`, in any order, other parameters such as
    /// `profile=nopeer` ignored) wins. Anything else, including no header, is [`Self::Legacy`].
    pub fn negotiate(accept: Option<&str>) -> DiscoveryFormat {
        let mut ranges: Vec<MediaRange> = accept
            .unwrap_or_default()
            .split(',')
            .filter_map(MediaRange::parse)
            .filter(|range| range.q > 0.0)
            .collect();
        // Stable: equal ranks keep the client's order.
        ranges.sort_by(|a, b| b.q.total_cmp(&a.q).then(a.wildcards.cmp(&b.wildcards)));
        ranges
            .iter()
            .find_map(|range| range.format)
            .unwrap_or(DiscoveryFormat::Legacy)
    }

    /// The `Content-Type` to answer with: `application/json`, or
    /// `application/json;g=apidiscovery.k8s.io;v=<v2|v2beta1>;as=APIGroupDiscoveryList`, which is
    /// how client-go tells an aggregated answer from a legacy one.
    pub fn content_type(&self) -> &'static str {
        match self {
            DiscoveryFormat::Legacy => "application/json",
            DiscoveryFormat::AggregatedV2 => {
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            }
            DiscoveryFormat::AggregatedV2Beta1 => {
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
            }
        }
    }

    /// The `apiVersion` of an aggregated list, `None` for the legacy form.
    fn aggregated_api_version(self) -> Option<&'static str> {
        match self {
            DiscoveryFormat::Legacy => None,
            DiscoveryFormat::AggregatedV2 => Some("apidiscovery.k8s.io/v2"),
            DiscoveryFormat::AggregatedV2Beta1 => Some("apidiscovery.k8s.io/v2beta1"),
        }
    }
}

/// One media range of an `Accept` header, reduced to what negotiation needs.
struct MediaRange {
    q: f32,
    /// `(type is *, subtype is *)`: concrete ranges rank first at equal `q`.
    wildcards: (bool, bool),
    /// The aggregated form the range asks for, if any.
    format: Option<DiscoveryFormat>,
}

impl MediaRange {
    /// Parses `type/subtype;param=value;...`; `None` when the range is malformed.
    fn parse(range: &str) -> Option<MediaRange> {
        let mut parts = range.split(';');
        let essence = parts.next().unwrap_or_default().trim();
        let (kind, subtype) = match essence.split_once('/') {
            Some((kind, subtype)) => (kind.trim(), subtype.trim()),
            None if essence == "*" => ("*", "*"),
            None => return None,
        };
        if kind.is_empty() || subtype.is_empty() || subtype.contains('/') {
            return None;
        }
        let mut q = 1.0_f32;
        let (mut group, mut version, mut as_kind) = (None, None, None);
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let key = key.trim();
            let value = value.trim().trim_matches('"');
            if key.eq_ignore_ascii_case("q") {
                q = value
                    .parse::<f32>()
                    .ok()
                    .filter(|q| q.is_finite())
                    .unwrap_or(0.0);
            } else if key.eq_ignore_ascii_case("g") {
                group = Some(value);
            } else if key.eq_ignore_ascii_case("v") {
                version = Some(value);
            } else if key.eq_ignore_ascii_case("as") {
                as_kind = Some(value);
            }
        }
        let kind_wild = kind == "*";
        let subtype_wild = subtype == "*";
        let json = (kind.eq_ignore_ascii_case("application")
            && (subtype.eq_ignore_ascii_case("json") || subtype_wild))
            || (kind_wild && subtype_wild);
        let format = match (group, version, as_kind) {
            (Some(DISCOVERY_GROUP), Some("v2"), Some(DISCOVERY_LIST_KIND)) if json => {
                Some(DiscoveryFormat::AggregatedV2)
            }
            (Some(DISCOVERY_GROUP), Some("v2beta1"), Some(DISCOVERY_LIST_KIND)) if json => {
                Some(DiscoveryFormat::AggregatedV2Beta1)
            }
            _ => None,
        };
        Some(MediaRange {
            q,
            wildcards: (kind_wild, subtype_wild),
            format,
        })
    }
}

/// A JSON discovery document and the `Content-Type` to send it with.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The `Content-Type` header of the answer.
    pub content_type: &'static str,
    /// The body.
    pub body: Value,
}

impl Document {
    /// A strong entity tag of the body, quoted as the `ETag` header carries it (uppercase hex of
    /// a SHA-256 of the serialized body). kube-apiserver tags aggregated documents only.
    pub fn etag(&self) -> String {
        let bytes = serde_json::to_vec(&self.body).unwrap_or_default();
        let hex: String = sha256(&bytes).iter().map(|b| format!("{b:02X}")).collect();
        format!("\"{hex}\"")
    }

    /// Whether an `If-None-Match` header value names this document's tag (or is `*`), in which
    /// case the answer is `304 Not Modified` without a body.
    pub fn matches_etag(&self, if_none_match: &str) -> bool {
        let etag = self.etag();
        if_none_match
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
    }
}

// --- Wire forms (fields in upstream's order) -------------------------------------------------

/// `metav1.APIVersions`. kube-apiserver strips `apiVersion` from `/api`.
#[derive(Serialize)]
struct ApiVersions<'a> {
    kind: &'static str,
    versions: [&'static str; 1],
    #[serde(rename = "serverAddressByClientCIDRs")]
    server_address_by_client_cidrs: [ServerAddressByClientCidr<'a>; 1],
}

/// `metav1.ServerAddressByClientCIDR`.
#[derive(Serialize)]
struct ServerAddressByClientCidr<'a> {
    #[serde(rename = "clientCIDR")]
    client_cidr: &'static str,
    #[serde(rename = "serverAddress")]
    server_address: &'a str,
}

/// `metav1.APIGroupList`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiGroupList {
    kind: &'static str,
    api_version: &'static str,
    groups: Vec<ApiGroup>,
}

/// `metav1.APIGroup`; `kind` and `apiVersion` only when it is the whole document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiGroup {
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_version: Option<&'static str>,
    name: String,
    versions: Vec<GroupVersionForDiscovery>,
    preferred_version: GroupVersionForDiscovery,
}

/// `metav1.GroupVersionForDiscovery`.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupVersionForDiscovery {
    group_version: String,
    version: String,
}

/// `metav1.APIResourceList`. kube-apiserver strips `apiVersion` from `/api/v1`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiResourceList<'a> {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_version: Option<&'static str>,
    group_version: String,
    resources: Vec<ApiResource<'a>>,
}

/// `metav1.APIResource`: a resource, or a subresource as `<resource>/<subresource>`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiResource<'a> {
    name: String,
    singular_name: &'a str,
    namespaced: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    group: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    version: &'a str,
    kind: String,
    verbs: &'a [&'static str],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    short_names: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    categories: &'a [String],
    #[serde(skip_serializing_if = "String::is_empty")]
    storage_version_hash: String,
}

/// `apidiscovery.k8s.io` `APIGroupDiscoveryList`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupDiscoveryList<'a> {
    kind: &'static str,
    api_version: &'static str,
    metadata: serde_json::Map<String, Value>,
    items: Vec<GroupDiscovery<'a>>,
}

/// `APIGroupDiscovery`: `metadata.name` is the group, absent for the core group.
#[derive(Serialize)]
struct GroupDiscovery<'a> {
    metadata: GroupMetadata<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    versions: Vec<VersionDiscovery>,
}

/// The part of `ObjectMeta` an `APIGroupDiscovery` fills.
#[derive(Serialize)]
struct GroupMetadata<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

/// `APIVersionDiscovery`.
#[derive(Serialize)]
struct VersionDiscovery {
    version: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    resources: Vec<ResourceDiscovery>,
    freshness: &'static str,
}

/// `APIResourceDiscovery`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceDiscovery {
    resource: String,
    response_kind: GroupVersionKind,
    scope: &'static str,
    singular_resource: String,
    verbs: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    short_names: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    categories: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subresources: Vec<SubresourceDiscovery>,
}

/// `APISubresourceDiscovery`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SubresourceDiscovery {
    subresource: String,
    response_kind: GroupVersionKind,
    verbs: &'static [&'static str],
}

/// `metav1.GroupVersionKind`: every field always present, `group` `""` for the core group.
#[derive(Serialize)]
struct GroupVersionKind {
    group: String,
    version: String,
    kind: String,
}

/// Serializes a wire form; these forms have only string keys, so this cannot fail.
fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

// --- Documents -------------------------------------------------------------------------------

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
    let mut resources = Vec::new();
    for def in &defs {
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
    Some(to_json(&ApiResourceList {
        kind: "APIResourceList",
        api_version: (!group.is_empty()).then_some("v1"),
        group_version: group_version_string(group, version),
        resources,
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

// --- Building blocks -------------------------------------------------------------------------

/// `v1` or `<group>/<version>`.
fn group_version_string(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// An `APIGroup` of versions already in preference order; `None` when there is no version.
fn api_group(name: &str, versions: &[String], document: bool) -> Option<ApiGroup> {
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

/// The aggregated form of one group-version, resources sorted by name.
fn version_discovery(registry: &ResourceRegistry, group: &str, version: &str) -> VersionDiscovery {
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

/// Every named group with its versions in preference order, groups in kube-apiserver's order.
fn ordered_groups(mut groups: Vec<(String, Vec<String>)>) -> Vec<(String, Vec<String>)> {
    for (_, versions) in &mut groups {
        version_priority_order(versions);
    }
    groups.sort_by(|(a, _), (b, _)| {
        group_priority(b)
            .cmp(&group_priority(a))
            .then_with(|| a.cmp(b))
    });
    groups
}

/// The `groupPriorityMinimum` kube-apiserver 1.33 registers for its built-in groups; every other
/// group (custom resources, aggregated APIs) has 1000. Higher comes first; ties go by name.
fn group_priority(group: &str) -> u32 {
    match group {
        "" | "apiregistration.k8s.io" => 18000,
        "apps" => 17800,
        "events.k8s.io" => 17750,
        "authentication.k8s.io" => 17700,
        "authorization.k8s.io" => 17600,
        "autoscaling" => 17500,
        "batch" => 17400,
        "certificates.k8s.io" => 17300,
        "networking.k8s.io" => 17200,
        "policy" => 17100,
        "rbac.authorization.k8s.io" => 17000,
        "storage.k8s.io" => 16800,
        "admissionregistration.k8s.io" | "apiextensions.k8s.io" => 16700,
        "scheduling.k8s.io" => 16600,
        "coordination.k8s.io" => 16500,
        "node.k8s.io" => 16300,
        "discovery.k8s.io" | "resource.k8s.io" => 16200,
        "flowcontrol.apiserver.k8s.io" => 16100,
        "internal.apiserver.k8s.io" => 16000,
        "storagemigration.k8s.io" => 15800,
        _ => 1000,
    }
}

/// Sorts versions into kube-apiserver's preference order, most preferred first: GA before beta
/// before alpha, higher major then higher minor first within each (`v2`, `v1`, `v1beta2`,
/// `v1beta1`, `v1alpha1`), then versions not of that form in alphabetical order. The first
/// version is a group's preferred version.
pub fn version_priority_order(versions: &mut [String]) {
    versions.sort_by(|a, b| compare_kube_versions(b, a));
}

/// Compares two versions by kube-apiserver's priority (`CompareKubeAwareVersionStrings`):
/// `Greater` when `a` is preferred to `b`.
pub fn compare_kube_versions(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    match (parse_kube_version(a), parse_kube_version(b)) {
        (None, None) => b.cmp(a),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => a.cmp(&b),
    }
}

/// `v<major>[(alpha|beta)<minor>]` as `(stability, major, minor)`: stability 0 alpha, 1 beta,
/// 2 GA, so that tuples order by priority.
fn parse_kube_version(version: &str) -> Option<(u8, i64, i64)> {
    let rest = version.strip_prefix('v')?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (major, suffix) = rest.split_at(digits);
    let major = parse_digits(major)?;
    if suffix.is_empty() {
        return Some((2, major, 0));
    }
    let (stability, minor) = if let Some(minor) = suffix.strip_prefix("alpha") {
        (0, minor)
    } else if let Some(minor) = suffix.strip_prefix("beta") {
        (1, minor)
    } else {
        return None;
    };
    Some((stability, major, parse_digits(minor)?))
}

/// A non-empty run of ASCII digits that fits an `i64`.
fn parse_digits(digits: &str) -> Option<i64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A subresource as discovery lists it.
struct Subresource {
    name: String,
    verbs: &'static [&'static str],
    /// The group-version of the kind served, when not the parent's.
    group_version: Option<(&'static str, &'static str)>,
    kind: String,
}

/// The subresources of a resource that discovery knows, sorted by name. A name discovery does
/// not know (no upstream verbs to list) is left out.
fn subresources(def: &ResourceDef) -> Vec<Subresource> {
    let mut subs: Vec<Subresource> = def
        .subresources
        .iter()
        .filter_map(|name| subresource(def, name))
        .collect();
    subs.sort_by(|a, b| a.name.cmp(&b.name));
    subs.dedup_by(|a, b| a.name == b.name);
    subs
}

/// Upstream's verbs and kind of subresource `name` of `parent`.
fn subresource(parent: &ResourceDef, name: &str) -> Option<Subresource> {
    const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];
    const CREATE_GET: &[&str] = &["create", "get"];
    let parent_kind = parent.kind.as_str();
    let (verbs, group_version, kind): (&'static [&'static str], _, String) = match name {
        "status" | "approval" | "ephemeralcontainers" | "resize" => {
            (GET_PATCH_UPDATE, None, parent_kind.to_string())
        }
        "scale" => (
            GET_PATCH_UPDATE,
            Some(("autoscaling", "v1")),
            "Scale".into(),
        ),
        "finalize" => (&["update"], None, parent_kind.to_string()),
        "binding" => (&["create"], None, "Binding".into()),
        "eviction" => (&["create"], Some(("policy", "v1")), "Eviction".into()),
        "token" => (
            &["create"],
            Some(("authentication.k8s.io", "v1")),
            "TokenRequest".into(),
        ),
        "log" => (&["get"], None, parent_kind.to_string()),
        "exec" => (CREATE_GET, None, format!("{parent_kind}ExecOptions")),
        "attach" => (CREATE_GET, None, format!("{parent_kind}AttachOptions")),
        "portforward" => (CREATE_GET, None, format!("{parent_kind}PortForwardOptions")),
        "proxy" => (
            &["create", "delete", "get", "patch", "update"],
            None,
            format!("{parent_kind}ProxyOptions"),
        ),
        _ => return None,
    };
    Some(Subresource {
        name: name.to_string(),
        verbs,
        group_version,
        kind,
    })
}

/// The `storageVersionHash` of a resource: only stored resources have one (those served with
/// `watch`; reviews, bindings and other virtual resources have none). It is computed from the
/// storage group-version-kind: upstream's for the built-ins stored under another one than they
/// are served as (HorizontalPodAutoscalers of every version as `autoscaling/v2`, `events.k8s.io`
/// Events as core `v1` Events), otherwise the resource's own.
fn storage_version_hash_of(def: &ResourceDef) -> Option<String> {
    if !def.serves("watch") {
        return None;
    }
    let (group, version, kind) = match (def.group.as_str(), def.plural.as_str()) {
        ("autoscaling", "horizontalpodautoscalers") => {
            ("autoscaling", "v2", "HorizontalPodAutoscaler")
        }
        ("events.k8s.io", "events") => ("", "v1", "Event"),
        _ => (def.group.as_str(), def.version.as_str(), def.kind.as_str()),
    };
    Some(storage_version_hash(group, version, kind))
}

/// kube-apiserver's `storageVersionHash` of a storage group-version-kind: the standard base64
/// of the first 8 bytes of the SHA-256 of `<group>/<version>/<kind>`. Custom resources hash
/// their CRD's storage version.
pub fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    let digest = sha256(format!("{group}/{version}/{kind}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

/// SHA-256 (FIPS 180-4).
fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut state: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let bit_len = (data.len() as u64).wrapping_mul(8);
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (word, bytes) in w.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for t in 16..64 {
            let s0 = w[t - 15].rotate_right(7) ^ w[t - 15].rotate_right(18) ^ (w[t - 15] >> 3);
            let s1 = w[t - 2].rotate_right(17) ^ w[t - 2].rotate_right(19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16]
                .wrapping_add(s0)
                .wrapping_add(w[t - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = state;
        for (k, w) in K.iter().zip(w.iter()) {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let choice = (e & f) ^ (!e & g);
            let t1 = h
                .wrapping_add(s1)
                .wrapping_add(choice)
                .wrapping_add(*k)
                .wrapping_add(*w);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let majority = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(majority);
            h = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (slot, value) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *slot = slot.wrapping_add(value);
        }
    }
    let mut digest = [0u8; 32];
    for (bytes, word) in digest.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// kubectl 1.27–1.29 (trace `apires-1.27`).
    const ACCEPT_1_27: &str =
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    /// kubectl 1.30–1.33 and kube-rs (trace `apires-1.33`).
    const ACCEPT_1_33: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    /// client-go after 1.33.
    const ACCEPT_HEAD: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;profile=nopeer,application/json";

    fn registry() -> ResourceRegistry {
        ResourceRegistry::builtin()
    }

    fn entry<'a>(list: &'a Value, name: &str) -> &'a Value {
        list["resources"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["name"] == name))
            .unwrap_or_else(|| panic!("no entry {name}"))
    }

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
    fn negotiates_each_kubectl_accept_header() {
        use DiscoveryFormat::*;
        for (accept, want) in [
            (ACCEPT_1_27, AggregatedV2Beta1),
            (ACCEPT_1_33, AggregatedV2),
            (ACCEPT_HEAD, AggregatedV2),
            ("application/json, */*", Legacy),
            ("application/json", Legacy),
            (
                "application/vnd.kubernetes.protobuf,application/json",
                Legacy,
            ),
            ("", Legacy),
        ] {
            assert_eq!(DiscoveryFormat::negotiate(Some(accept)), want, "{accept}");
        }
        assert_eq!(DiscoveryFormat::negotiate(None), Legacy);
    }

    #[test]
    fn negotiation_details() {
        use DiscoveryFormat::*;
        for (accept, want) in [
            // Parameters in any order, spaces, quoted values.
            ("application/json;as=APIGroupDiscoveryList;v=v2;g=apidiscovery.k8s.io", AggregatedV2),
            ("application/json; g=apidiscovery.k8s.io; v=\"v2beta1\"; as=APIGroupDiscoveryList", AggregatedV2Beta1),
            ("Application/JSON;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", AggregatedV2),
            // Wildcards.
            ("*/*;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", AggregatedV2),
            ("application/*;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList", AggregatedV2Beta1),
            // A plain range earlier does not stop a later aggregated one, as upstream.
            ("application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", AggregatedV2),
            // q ranks first; q=0 is refused.
            ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0.5,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList", AggregatedV2Beta1),
            ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0", Legacy),
            // Concrete before wildcard at equal q.
            ("*/*;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList", AggregatedV2Beta1),
            // Forms kflex cannot produce, or that are not aggregated discovery.
            ("application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", Legacy),
            ("application/yaml;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", Legacy),
            ("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList", Legacy),
            ("application/json;g=apidiscovery.k8s.io;v=v2", Legacy),
            ("application/json;as=Table;v=v1;g=meta.k8s.io", Legacy),
            // Malformed input.
            (";;;,,,", Legacy),
            ("application/json;g", Legacy),
            ("application/json;q=abc;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", Legacy),
            ("application/json;q=NaN;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", Legacy),
            ("a/b/c;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", Legacy),
            ("\u{e9}/\u{e9};q=\u{e9}", Legacy),
        ] {
            assert_eq!(DiscoveryFormat::negotiate(Some(accept)), want, "{accept}");
        }
    }

    #[test]
    fn content_types_carry_the_gvk_client_go_checks() {
        assert_eq!(DiscoveryFormat::Legacy.content_type(), "application/json");
        assert_eq!(
            DiscoveryFormat::AggregatedV2.content_type(),
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        );
        assert_eq!(
            DiscoveryFormat::AggregatedV2Beta1.content_type(),
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
        );
    }

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
        let autoscaling = &groups[2];
        assert_eq!(
            autoscaling["preferredVersion"]["groupVersion"],
            "autoscaling/v2"
        );
    }

    #[test]
    fn custom_groups_follow_built_ins_by_name_with_versions_by_priority() {
        let ordered = ordered_groups(vec![
            ("zeta.example.com".into(), vec!["v1".into()]),
            (
                "alpha.example.com".into(),
                vec!["v1alpha1".into(), "v1".into(), "v2beta1".into()],
            ),
            ("apps".into(), vec!["v1".into()]),
        ]);
        assert_eq!(
            ordered,
            vec![
                ("apps".to_string(), vec!["v1".to_string()]),
                (
                    "alpha.example.com".to_string(),
                    vec![
                        "v1".to_string(),
                        "v2beta1".to_string(),
                        "v1alpha1".to_string()
                    ]
                ),
                ("zeta.example.com".to_string(), vec!["v1".to_string()]),
            ]
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
        assert_eq!(names.get(pods + 1), Some(&"pods/status"));
        assert_eq!(names.get(pods + 2), Some(&"podtemplates"));
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

    #[test]
    fn certificate_approval_subresource() {
        let list = group_version(&registry(), "certificates.k8s.io", "v1").expect("csr");
        assert_eq!(
            entry(&list, "certificatesigningrequests/approval"),
            &json!({
                "name": "certificatesigningrequests/approval",
                "singularName": "",
                "namespaced": false,
                "kind": "CertificateSigningRequest",
                "verbs": ["get", "patch", "update"],
            })
        );
    }

    /// A subresource's name, verbs, group-version and kind.
    type Sub = (
        String,
        &'static [&'static str],
        Option<(&'static str, &'static str)>,
        String,
    );

    #[test]
    fn upstream_subresource_kinds_and_verbs() {
        let pods = registry().lookup("", "v1", "pods").expect("pods");
        let mut pods = (*pods).clone();
        pods.subresources = [
            "status",
            "binding",
            "eviction",
            "log",
            "exec",
            "attach",
            "portforward",
            "proxy",
            "ephemeralcontainers",
            "resize",
            "status",
            "bogus",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let subs: Vec<Sub> = subresources(&pods)
            .into_iter()
            .map(|s| (s.name, s.verbs, s.group_version, s.kind))
            .collect();
        let expected: Vec<Sub> = vec![
            (
                "attach".into(),
                &["create", "get"],
                None,
                "PodAttachOptions".into(),
            ),
            ("binding".into(), &["create"], None, "Binding".into()),
            (
                "ephemeralcontainers".into(),
                &["get", "patch", "update"],
                None,
                "Pod".into(),
            ),
            (
                "eviction".into(),
                &["create"],
                Some(("policy", "v1")),
                "Eviction".into(),
            ),
            (
                "exec".into(),
                &["create", "get"],
                None,
                "PodExecOptions".into(),
            ),
            ("log".into(), &["get"], None, "Pod".into()),
            (
                "portforward".into(),
                &["create", "get"],
                None,
                "PodPortForwardOptions".into(),
            ),
            (
                "proxy".into(),
                &["create", "delete", "get", "patch", "update"],
                None,
                "PodProxyOptions".into(),
            ),
            (
                "resize".into(),
                &["get", "patch", "update"],
                None,
                "Pod".into(),
            ),
            (
                "status".into(),
                &["get", "patch", "update"],
                None,
                "Pod".into(),
            ),
        ];
        assert_eq!(subs, expected);

        let sa = registry().lookup("", "v1", "serviceaccounts").expect("sa");
        let mut sa = (*sa).clone();
        sa.subresources = vec!["token".into()];
        let token = subresources(&sa);
        assert_eq!(token.len(), 1);
        assert_eq!(token[0].verbs, ["create"]);
        assert_eq!(
            token[0].group_version,
            Some(("authentication.k8s.io", "v1"))
        );
        assert_eq!(token[0].kind, "TokenRequest");
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

    #[test]
    fn version_ordering() {
        // The example of the Kubernetes CRD versioning documentation.
        let mut versions: Vec<String> = [
            "v1",
            "v10",
            "v11beta2",
            "v10beta3",
            "v3beta1",
            "v12alpha1",
            "v11alpha2",
            "foo1",
            "foo10",
            "v2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        version_priority_order(&mut versions);
        assert_eq!(
            versions,
            [
                "v10",
                "v2",
                "v1",
                "v11beta2",
                "v10beta3",
                "v3beta1",
                "v12alpha1",
                "v11alpha2",
                "foo1",
                "foo10",
            ]
        );
        let mut versions: Vec<String> = ["v1alpha1", "v1beta1", "v1", "v1beta2", "other"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        version_priority_order(&mut versions);
        assert_eq!(versions, ["v1", "v1beta2", "v1beta1", "v1alpha1", "other"]);
        // Not kube versions: prefix only, overflow, trailing text, non-ASCII digits.
        for odd in [
            "v",
            "vbeta1",
            "v1beta",
            "v1gamma1",
            "v99999999999999999999",
            "v1 ",
            "v\u{661}",
        ] {
            assert_eq!(parse_kube_version(odd), None, "{odd}");
            assert_eq!(
                compare_kube_versions("v1alpha1", odd),
                Ordering::Greater,
                "{odd}"
            );
        }
        assert_eq!(compare_kube_versions("v2", "v2"), Ordering::Equal);
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

    #[test]
    fn storage_version_hashes_match_kube_apiserver() {
        // From kubernetes test/integration/etcd storageversionhashdata.
        let upstream = [
            ("", "v1", "configmaps", "qFsyl6wFWjQ="),
            ("", "v1", "endpoints", "fWeeMqaN/OA="),
            ("", "v1", "events", "r2yiGXH7wu8="),
            ("", "v1", "limitranges", "EBKMFVe6cwo="),
            ("", "v1", "namespaces", "Q3oi5N2YM8M="),
            ("", "v1", "nodes", "XwShjMxG9Fs="),
            ("", "v1", "persistentvolumeclaims", "QWTyNDq0dC4="),
            ("", "v1", "persistentvolumes", "HN/zwEC+JgM="),
            ("", "v1", "pods", "xPOwRZ+Yhw8="),
            ("", "v1", "podtemplates", "LIXB2x4IFpk="),
            ("", "v1", "replicationcontrollers", "Jond2If31h0="),
            ("", "v1", "resourcequotas", "8uhSgffRX6w="),
            ("", "v1", "secrets", "S6u1pOWzb84="),
            ("", "v1", "serviceaccounts", "pbx9ZvyFpBE="),
            ("", "v1", "services", "0/CO1lhkEBI="),
            (
                "autoscaling",
                "v2",
                "horizontalpodautoscalers",
                "qwQve8ut294=",
            ),
            ("batch", "v1", "jobs", "mudhfqk/qZY="),
            ("batch", "v1", "cronjobs", "sd5LIXh4Fjs="),
            (
                "certificates.k8s.io",
                "v1",
                "certificatesigningrequests",
                "95fRKMXA+00=",
            ),
            ("coordination.k8s.io", "v1", "leases", "gqkMMb/YqFM="),
            ("discovery.k8s.io", "v1", "endpointslices", "qgS0xkrxYAI="),
            ("networking.k8s.io", "v1", "networkpolicies", "YpfwF18m1G8="),
            ("networking.k8s.io", "v1", "ingresses", "39NQlfNR+bo="),
            ("networking.k8s.io", "v1", "ingressclasses", "l/iqIbDgFyQ="),
            ("node.k8s.io", "v1", "runtimeclasses", "WQTu1GL3T2Q="),
            ("policy", "v1", "poddisruptionbudgets", "EVWiDmWqyJw="),
            (
                "rbac.authorization.k8s.io",
                "v1",
                "clusterrolebindings",
                "48tpQ8gZHFc=",
            ),
            (
                "rbac.authorization.k8s.io",
                "v1",
                "clusterroles",
                "bYE5ZWDrJ44=",
            ),
            (
                "rbac.authorization.k8s.io",
                "v1",
                "rolebindings",
                "eGsCzGH6b1g=",
            ),
            ("rbac.authorization.k8s.io", "v1", "roles", "7FuwZcIIItM="),
            ("scheduling.k8s.io", "v1", "priorityclasses", "1QwjyaZjj3Y="),
            ("storage.k8s.io", "v1", "csidrivers", "hL6j/rwBV5w="),
            ("storage.k8s.io", "v1", "csinodes", "Pe62DkZtjuo="),
            ("storage.k8s.io", "v1", "storageclasses", "K+m6uJwbjGY="),
            (
                "storage.k8s.io",
                "v1",
                "csistoragecapacities",
                "xeVl+2Ly1kE=",
            ),
            ("storage.k8s.io", "v1", "volumeattachments", "tJx/ezt6UDU="),
            ("apps", "v1", "controllerrevisions", "85nkx63pcBU="),
            ("apps", "v1", "daemonsets", "dd7pWHUlMKQ="),
            ("apps", "v1", "deployments", "8aSe+NMegvE="),
            ("apps", "v1", "replicasets", "P1RzHs8/mWQ="),
            ("apps", "v1", "statefulsets", "H+vl74LkKdo="),
            (
                "admissionregistration.k8s.io",
                "v1",
                "mutatingwebhookconfigurations",
                "Sqi0GUgDaX0=",
            ),
            (
                "admissionregistration.k8s.io",
                "v1",
                "validatingwebhookconfigurations",
                "B0wHjQmsGNk=",
            ),
            (
                "admissionregistration.k8s.io",
                "v1",
                "validatingadmissionpolicies",
                "6OxvlMmQ6is=",
            ),
            (
                "admissionregistration.k8s.io",
                "v1",
                "validatingadmissionpolicybindings",
                "v9715VZqakg=",
            ),
            ("events.k8s.io", "v1", "events", "r2yiGXH7wu8="),
        ];
        let registry = registry();
        for (group, version, plural, hash) in upstream {
            let list = group_version(&registry, group, version).expect("group-version");
            assert_eq!(
                entry(&list, plural)["storageVersionHash"],
                hash,
                "{group}/{version}/{plural}"
            );
        }
        // The CRD case: hashed from the storage group-version-kind.
        assert_eq!(
            storage_version_hash("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            storage_version_hash_of(
                &registry
                    .lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
                    .expect("crd")
            )
            .unwrap_or_default()
        );
        // autoscaling/v1 HorizontalPodAutoscalers are stored as autoscaling/v2 upstream.
        let mut hpa = (*registry
            .lookup("autoscaling", "v2", "horizontalpodautoscalers")
            .expect("hpa"))
        .clone();
        hpa.version = "v1".into();
        assert_eq!(
            storage_version_hash_of(&hpa).as_deref(),
            Some("qwQve8ut294=")
        );
        // Virtual resources (no watch) have none.
        let mut review = (*registry.lookup("", "v1", "pods").expect("pods")).clone();
        review.verbs = vec!["create"];
        assert_eq!(storage_version_hash_of(&review), None);
    }

    #[test]
    fn sha256_vectors() {
        let hex = |d: [u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(sha256(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(
            hex(sha256(&[b'a'; 1000])),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
        );
    }

    #[test]
    fn etags() {
        let registry = registry();
        let v2 = groups(&registry, DiscoveryFormat::AggregatedV2);
        let tag = v2.etag();
        assert_eq!(tag.len(), 66);
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        assert_eq!(tag, groups(&registry, DiscoveryFormat::AggregatedV2).etag());
        assert_ne!(
            tag,
            groups(&registry, DiscoveryFormat::AggregatedV2Beta1).etag()
        );
        assert_ne!(
            tag,
            core_group(&registry, DiscoveryFormat::AggregatedV2, "h:1").etag()
        );
        assert!(v2.matches_etag(&tag));
        assert!(v2.matches_etag(&format!("\"x\", W/{tag}")));
        assert!(v2.matches_etag("*"));
        assert!(!v2.matches_etag("\"x\""));
        assert!(!v2.matches_etag(""));
    }
}
