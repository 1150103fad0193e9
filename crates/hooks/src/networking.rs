//! The `networking` action: NetworkPolicies in every namespace of a control plane, kept by
//! the manager: it calls [`ensure_namespace`] when the tenant's store reports a new
//! namespace, and [`restore`] when one of the policies is deleted.
//!
//! Mode `strict` (the default, variable `NetworkMode`): `default-deny` isolates every pod
//! for ingress and egress, `allow-same-namespace` lets pods of the namespace talk to each
//! other, `allow-dns` lets them reach the cluster DNS (pods `k8s-app: kube-dns` in
//! `kube-system`, port 53); `kube-system` also gets `allow-dns-ingress` so the DNS pods
//! accept queries from every namespace.
//! Mode `open`: one `allow-all` policy (every ingress and egress allowed) and the strict
//! policies removed, so switching modes converges either way.

use crate::{HookError, FIELD_MANAGER};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The variable choosing the mode.
pub const MODE_VAR: &str = "NetworkMode";
/// The label on every policy the action writes.
const MANAGED_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "kflex-networking");
const STRICT: [&str; 4] = [
    "default-deny",
    "allow-same-namespace",
    "allow-dns",
    "allow-dns-ingress",
];
const OPEN: [&str; 1] = ["allow-all"];

/// How open a control plane's namespaces are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Strict,
    Open,
}

impl Mode {
    /// The mode `vars` choose (`strict` when unset).
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<Self, HookError> {
        match vars.get(MODE_VAR).map(String::as_str) {
            None | Some("strict") => Ok(Mode::Strict),
            Some("open") => Ok(Mode::Open),
            Some(other) => Err(HookError::Invalid(format!(
                "networking: {MODE_VAR} must be strict or open, not {other:?}"
            ))),
        }
    }
}

fn policy(namespace: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {MANAGED_LABEL.0: MANAGED_LABEL.1}},
        "spec": spec,
    })
}

/// The policies namespace `namespace` gets in `mode`, and the names of those it must not
/// have.
pub fn policies(namespace: &str, mode: Mode) -> (Vec<Value>, Vec<&'static str>) {
    let dns_ports = json!([{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]);
    match mode {
        Mode::Open => (
            vec![policy(
                namespace,
                "allow-all",
                json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                       "ingress": [{}], "egress": [{}]}),
            )],
            STRICT.to_vec(),
        ),
        Mode::Strict => {
            let mut wanted = vec![
                policy(
                    namespace,
                    "default-deny",
                    json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
                ),
                policy(
                    namespace,
                    "allow-same-namespace",
                    json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                           "ingress": [{"from": [{"podSelector": {}}]}],
                           "egress": [{"to": [{"podSelector": {}}]}]}),
                ),
                policy(
                    namespace,
                    "allow-dns",
                    json!({"podSelector": {}, "policyTypes": ["Egress"],
                           "egress": [{"to": [{
                               "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                               "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                           }], "ports": dns_ports}]}),
                ),
            ];
            let mut unwanted = OPEN.to_vec();
            if namespace == "kube-system" {
                wanted.push(policy(
                    namespace,
                    "allow-dns-ingress",
                    json!({"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                           "policyTypes": ["Ingress"],
                           "ingress": [{"from": [{"namespaceSelector": {}}], "ports": dns_ports}]}),
                ));
            } else {
                unwanted.push("allow-dns-ingress");
            }
            (wanted, unwanted)
        }
    }
}

/// Gives namespace `namespace` of the control plane `client` reaches the policies of `mode`
/// (server-side apply, field manager `kubeflex`) and removes the other mode's.
pub async fn ensure_namespace(
    client: &kube::Client,
    namespace: &str,
    mode: Mode,
) -> Result<(), HookError> {
    let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), namespace);
    let (wanted, unwanted) = policies(namespace, mode);
    for object in wanted {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await?;
    }
    for name in unwanted {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// Applies `mode` again in `namespace` after one of its policies was deleted, unless the
/// namespace is gone or going, or holds a policy of the other mode (a switch of modes is
/// under way, and its deletions are not to be undone).
pub async fn restore(client: &kube::Client, namespace: &str, mode: Mode) -> Result<(), HookError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.get_opt(namespace).await? {
        Some(found) if found.metadata.deletion_timestamp.is_none() => {}
        _ => return Ok(()),
    }
    let (_, unwanted) = policies(namespace, mode);
    let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), namespace);
    let managed = kube::api::ListParams::default()
        .labels(&format!("{}={}", MANAGED_LABEL.0, MANAGED_LABEL.1));
    let switching = api.list(&managed).await?.into_iter().any(|p| {
        p.metadata
            .name
            .is_some_and(|name| unwanted.contains(&name.as_str()))
    });
    if switching {
        return Ok(());
    }
    ensure_namespace(client, namespace, mode).await
}

/// Whether `name` is one of the policies `mode` keeps in `namespace`.
pub fn is_kept(namespace: &str, name: &str, mode: Mode) -> bool {
    policies(namespace, mode)
        .0
        .iter()
        .any(|p| p["metadata"]["name"] == name)
}

/// Applies `mode` to every namespace of the control plane `client` reaches, except those
/// being deleted (which accept no new objects).
pub async fn ensure_all(client: &kube::Client, mode: Mode) -> Result<(), HookError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for namespace in namespaces.list(&Default::default()).await? {
        if namespace.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = namespace.metadata.name.unwrap_or_default();
        ensure_namespace(client, &name, mode).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(policies: &[Value]) -> Vec<&str> {
        policies
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn modes_come_from_the_variable() {
        let vars = |v: &str| BTreeMap::from([(MODE_VAR.to_owned(), v.to_owned())]);
        assert_eq!(Mode::from_vars(&BTreeMap::new()).unwrap(), Mode::Strict);
        assert_eq!(Mode::from_vars(&vars("open")).unwrap(), Mode::Open);
        let error = Mode::from_vars(&vars("closed")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "networking: NetworkMode must be strict or open, not \"closed\""
        );
    }

    #[test]
    fn strict_denies_with_exceptions_and_open_removes_them() {
        let (wanted, unwanted) = policies("team", Mode::Strict);
        assert_eq!(
            names(&wanted),
            ["default-deny", "allow-same-namespace", "allow-dns"]
        );
        assert_eq!(unwanted, ["allow-all", "allow-dns-ingress"]);
        assert_eq!(wanted[0]["metadata"]["namespace"], "team");
        assert_eq!(
            wanted[0]["spec"]["policyTypes"],
            json!(["Ingress", "Egress"])
        );
        let (wanted, _) = policies("kube-system", Mode::Strict);
        assert_eq!(names(&wanted).last(), Some(&"allow-dns-ingress"));
        assert!(is_kept("kube-system", "allow-dns-ingress", Mode::Strict));
        assert!(!is_kept("team", "allow-dns-ingress", Mode::Strict));
        assert!(!is_kept("team", "default-deny", Mode::Open));
        let (wanted, unwanted) = policies("team", Mode::Open);
        assert_eq!(names(&wanted), ["allow-all"]);
        assert_eq!(unwanted, STRICT);
    }
}
