//! The hosting API's kinds: `ControlPlane` and `PostCreateHook` of
//! `tenancy.kflex.kubestellar.org/v1alpha1`, as KubeFlex defines them (with kflex's additive
//! extensions), and the typed view of a ControlPlane the manager works from.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The API group of the hosting API's kinds.
pub const GROUP: &str = "tenancy.kflex.kubestellar.org";
/// Their version.
pub const VERSION: &str = "v1alpha1";
/// The finalizer that holds a ControlPlane until what was made for it is removed.
pub const FINALIZER: &str = "kflex.kubestellar.org/finalizer";
/// The suffix of a control plane's namespace on the hosting API.
pub const NAMESPACE_SUFFIX: &str = "-system";
/// The Secret holding a control plane's kubeconfigs, in its namespace.
pub const KUBECONFIG_SECRET: &str = "admin-kubeconfig";
/// Its keys: for the user's machine, and for clients inside the hosting cluster.
pub const KUBECONFIG_KEY: &str = "kubeconfig";
pub const KUBECONFIG_INCLUSTER_KEY: &str = "kubeconfig-incluster";

/// The CustomResourceDefinitions the hosting API serves (YAML manifests of our own).
pub const CRDS: [&str; 2] = [
    include_str!("crds/controlplanes.yaml"),
    include_str!("crds/postcreatehooks.yaml"),
];

/// The ApiResource of ControlPlanes, for kube-rs's dynamic API.
pub fn control_planes() -> kube::core::ApiResource {
    kube::core::ApiResource {
        group: GROUP.into(),
        version: VERSION.into(),
        api_version: format!("{GROUP}/{VERSION}"),
        kind: "ControlPlane".into(),
        plural: "controlplanes".into(),
    }
}

/// What a ControlPlane asks for (`spec`); fields the manager does not use yet are kept by
/// the API server and ignored here.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneSpec {
    /// `k8s`, `host` or `external` (the schema refuses the others).
    #[serde(rename = "type")]
    pub kind: ControlPlaneType,
    /// Where the data lives; `shared` when absent.
    #[serde(default)]
    pub backend: Option<Backend>,
    /// For backend `external`: the Secret naming the database or etcd.
    #[serde(default)]
    pub backend_secret_ref: Option<SecretName>,
    /// Variables shared by every post-create hook.
    #[serde(default)]
    pub global_vars: BTreeMap<String, String>,
    /// kflex extension: how a `k8s` control plane authenticates requests beyond its
    /// certificates and tokens.
    #[serde(default)]
    pub authentication: Option<Authentication>,
    /// kflex extension: the tenancy policy of a `k8s` control plane.
    #[serde(default)]
    pub tenancy_policy: Option<Enabled>,
    /// kflex extension: dedicated nodes for a `k8s` control plane's Pods.
    #[serde(default)]
    pub node_placement: Option<NodePlacementSpec>,
    /// kflex extension: PodSecurity admission's defaults and exemptions of a `k8s` control
    /// plane, as upstream's `PodSecurityConfiguration`.
    #[serde(default)]
    pub pod_security: Option<crate::admission::PodSecurityConfiguration>,
}

/// `spec.nodePlacement`: every Pod the control plane admits gets this node selector (a Pod
/// selecting otherwise is refused) and these tolerations, applied at each reconcile.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodePlacementSpec {
    /// Node labels every Pod selects.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// `core/v1` Tolerations every Pod gets.
    #[serde(default)]
    pub tolerations: Vec<serde_json::Value>,
}

/// `spec.authentication`: applied to the running control plane on each reconcile.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    /// Whether requests without credentials are served as `system:anonymous` (refused
    /// with 401 when absent or off), as upstream's `anonymous.enabled`.
    #[serde(default)]
    pub anonymous: Option<Enabled>,
    /// JWT (OIDC) authenticators, as upstream's `AuthenticationConfiguration.jwt`.
    #[serde(default)]
    pub jwt: Vec<crate::authn::jwt::JwtConfig>,
}

impl Authentication {
    /// What is wrong with the settings, each as `<field>: <message>`.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (i, jwt) in self.jwt.iter().enumerate() {
            problems.extend(jwt.problems(&format!("spec.authentication.jwt[{i}]")));
            if self.jwt[..i]
                .iter()
                .any(|other| other.issuer.url == jwt.issuer.url)
            {
                problems.push(format!(
                    "spec.authentication.jwt[{i}].issuer.url: Duplicate value: {:?}",
                    jwt.issuer.url
                ));
            }
        }
        problems
    }
}

/// A switch: `{enabled: true}`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Enabled {
    #[serde(default)]
    pub enabled: bool,
}

/// A control plane's type.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ControlPlaneType {
    /// An isolated API server of its own, served at `/clusters/<name>`.
    #[default]
    K8s,
    /// The hosting API itself.
    Host,
    /// An existing cluster, adopted from a bootstrap kubeconfig.
    External,
}

/// Where a `k8s` control plane keeps its data.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The shared PostgreSQL server, or an embedded SQLite file when none is configured.
    Shared,
    /// An etcd of its own, started and supervised by kflex.
    Dedicated,
    /// The user's database or etcd, from `backendSecretRef`.
    External,
}

/// A reference to a Secret.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct SecretName {
    pub namespace: String,
    pub name: String,
}

/// The namespace of control plane `cp` on the hosting API.
pub fn namespace_of(cp: &str) -> String {
    format!("{cp}{NAMESPACE_SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn authentication_settings_read_as_upstream_names_them_and_duplicates_are_refused() {
        let jwt = json!({
            "issuer": {"url": "https://idp.example", "discoveryURL": "https://idp.example/d",
                       "audiences": ["kflex"]},
            "claimMappings": {"username": {"claim": "email"}, "groups": {"claim": "groups", "prefix": "idp:"}},
        });
        let spec: ControlPlaneSpec = serde_json::from_value(json!({
            "type": "k8s",
            "authentication": {"anonymous": {"enabled": true}, "jwt": [jwt, jwt]},
            "tenancyPolicy": {"enabled": true},
        }))
        .unwrap();
        let authentication = spec.authentication.unwrap();
        assert_eq!(authentication.anonymous, Some(Enabled { enabled: true }));
        assert_eq!(spec.tenancy_policy, Some(Enabled { enabled: true }));
        let first = &authentication.jwt[0];
        assert_eq!(
            first.issuer.discovery_url.as_deref(),
            Some("https://idp.example/d")
        );
        let groups = first.claim_mappings.groups.as_ref().unwrap();
        assert_eq!(groups.prefix.as_deref(), Some("idp:"));
        assert_eq!(
            authentication.problems(),
            ["spec.authentication.jwt[1].issuer.url: Duplicate value: \"https://idp.example\""]
        );
    }
}
