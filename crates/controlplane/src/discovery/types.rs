//! The wire forms of the discovery documents: serde structs of the legacy (`metav1`) and
//! aggregated (`apidiscovery.k8s.io`) documents, fields in upstream's order.

use serde::Serialize;
use serde_json::Value;

/// `metav1.APIVersions`. kube-apiserver strips `apiVersion` from `/api`.
#[derive(Serialize)]
pub(super) struct ApiVersions<'a> {
    pub(super) kind: &'static str,
    pub(super) versions: [&'static str; 1],
    #[serde(rename = "serverAddressByClientCIDRs")]
    pub(super) server_address_by_client_cidrs: [ServerAddressByClientCidr<'a>; 1],
}

/// `metav1.ServerAddressByClientCIDR`.
#[derive(Serialize)]
pub(super) struct ServerAddressByClientCidr<'a> {
    #[serde(rename = "clientCIDR")]
    pub(super) client_cidr: &'static str,
    #[serde(rename = "serverAddress")]
    pub(super) server_address: &'a str,
}

/// `metav1.APIGroupList`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ApiGroupList {
    pub(super) kind: &'static str,
    pub(super) api_version: &'static str,
    pub(super) groups: Vec<ApiGroup>,
}

/// `metav1.APIGroup`; `kind` and `apiVersion` only when it is the whole document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ApiGroup {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) api_version: Option<&'static str>,
    pub(super) name: String,
    pub(super) versions: Vec<GroupVersionForDiscovery>,
    pub(super) preferred_version: GroupVersionForDiscovery,
}

/// `metav1.GroupVersionForDiscovery`.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GroupVersionForDiscovery {
    pub(super) group_version: String,
    pub(super) version: String,
}

/// `metav1.APIResourceList`. kube-apiserver strips `apiVersion` from `/api/v1`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ApiResourceList<'a> {
    pub(super) kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) api_version: Option<&'static str>,
    pub(super) group_version: String,
    pub(super) resources: Vec<ApiResource<'a>>,
}

/// `metav1.APIResource`: a resource, or a subresource as `<resource>/<subresource>`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ApiResource<'a> {
    pub(super) name: String,
    pub(super) singular_name: &'a str,
    pub(super) namespaced: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub(super) group: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub(super) version: &'a str,
    pub(super) kind: String,
    pub(super) verbs: &'a [&'static str],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub(super) short_names: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub(super) categories: &'a [String],
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(super) storage_version_hash: String,
}

/// `apidiscovery.k8s.io` `APIGroupDiscoveryList`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GroupDiscoveryList<'a> {
    pub(super) kind: &'static str,
    pub(super) api_version: &'static str,
    pub(super) metadata: serde_json::Map<String, Value>,
    pub(super) items: Vec<GroupDiscovery<'a>>,
}

/// `APIGroupDiscovery`: `metadata.name` is the group, absent for the core group.
#[derive(Serialize)]
pub(super) struct GroupDiscovery<'a> {
    pub(super) metadata: GroupMetadata<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) versions: Vec<VersionDiscovery>,
}

/// The part of `ObjectMeta` an `APIGroupDiscovery` fills.
#[derive(Serialize)]
pub(super) struct GroupMetadata<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<&'a str>,
}

/// `APIVersionDiscovery`.
#[derive(Serialize)]
pub(super) struct VersionDiscovery {
    pub(super) version: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) resources: Vec<ResourceDiscovery>,
    pub(super) freshness: &'static str,
}

/// `APIResourceDiscovery`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResourceDiscovery {
    pub(super) resource: String,
    pub(super) response_kind: GroupVersionKind,
    pub(super) scope: &'static str,
    pub(super) singular_resource: String,
    pub(super) verbs: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) short_names: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) categories: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) subresources: Vec<SubresourceDiscovery>,
}

/// `APISubresourceDiscovery`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SubresourceDiscovery {
    pub(super) subresource: String,
    pub(super) response_kind: GroupVersionKind,
    pub(super) verbs: &'static [&'static str],
}

/// `metav1.GroupVersionKind`: every field always present, `group` `""` for the core group.
#[derive(Serialize)]
pub(super) struct GroupVersionKind {
    pub(super) group: String,
    pub(super) version: String,
    pub(super) kind: String,
}

/// Serializes a wire form; these forms have only string keys, so this cannot fail.
pub(super) fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}
