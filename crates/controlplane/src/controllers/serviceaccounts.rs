//! Upstream's ServiceAccount controller and root-CA publisher: every namespace that is not
//! being deleted has ServiceAccount `default` and ConfigMap `kube-root-ca.crt` (key
//! `ca.crt`: the CA that verifies the server), written when the namespace is created and
//! again when they are deleted or the ConfigMap is changed.

use super::{internal, Settings};
use crate::controlplane::ControlPlane;
use crate::object::meta_str;
use crate::registry::ResourceDef;
use crate::status::ApiError;
use serde_json::{json, Value};

/// The ServiceAccount every namespace has.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// The ConfigMap that publishes the root CA.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
/// Its key.
pub const ROOT_CA_KEY: &str = "ca.crt";

fn is_core(def: &ResourceDef, plural: &str) -> bool {
    !def.custom && def.group.is_empty() && def.plural == plural
}

/// Whether a write of `object` (`deleted` or not) takes a namespace's ServiceAccount or
/// root-CA ConfigMap away from what they must be.
pub(super) fn needs_populate(
    settings: &Settings,
    def: &ResourceDef,
    object: &Value,
    deleted: bool,
) -> bool {
    let name = meta_str(object, "name").unwrap_or("");
    if is_core(def, "serviceaccounts") {
        return deleted && name == DEFAULT_SERVICE_ACCOUNT;
    }
    if !is_core(def, "configmaps") || name != ROOT_CA_CONFIGMAP {
        return false;
    }
    let Some(ca) = &settings.root_ca else {
        return false;
    };
    deleted || object["data"][ROOT_CA_KEY].as_str() != Some(ca.as_str())
}

/// The ConfigMap that publishes `ca`.
fn root_ca_configmap(ca: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": ROOT_CA_CONFIGMAP,
            "annotations": {
                "kubernetes.io/description": "The CA bundle that verifies this control plane's API server, for clients inside it.",
            },
        },
        "data": {ROOT_CA_KEY: ca},
    })
}

/// Gives namespace `name` what it lacks of its ServiceAccount and ConfigMap.
pub(super) async fn populate(cp: &ControlPlane, name: &str) -> Result<(), ApiError> {
    let namespaces = cp.builtin("", "v1", "namespaces")?;
    let active = super::stored(cp, &namespaces, None, name)
        .await?
        .is_some_and(|ns| meta_str(&ns, "deletionTimestamp").is_none());
    if !active {
        return Ok(());
    }
    let accounts = cp.builtin("", "v1", "serviceaccounts")?;
    if super::stored(cp, &accounts, Some(name), DEFAULT_SERVICE_ACCOUNT)
        .await?
        .is_none()
    {
        let account = json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": DEFAULT_SERVICE_ACCOUNT},
        });
        internal::create(cp, &accounts, Some(name), &account).await?;
    }
    let Some(ca) = cp.controllers().settings().root_ca.clone() else {
        return Ok(());
    };
    let configmaps = cp.builtin("", "v1", "configmaps")?;
    match super::stored(cp, &configmaps, Some(name), ROOT_CA_CONFIGMAP).await? {
        None => internal::create(cp, &configmaps, Some(name), &root_ca_configmap(&ca)).await,
        Some(current) if current["data"][ROOT_CA_KEY].as_str() != Some(ca.as_str()) => {
            let mut fixed = current.clone();
            fixed["data"] = json!({ROOT_CA_KEY: ca});
            match internal::update(cp, &configmaps, &fixed, None).await {
                Err(e) if e.code() == 409 || e.code() == 404 => {
                    cp.controllers()
                        .enqueue(super::Work::Populate(name.to_owned()));
                    Ok(())
                }
                other => other,
            }
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_missing_or_changed_account_or_configmap_needs_work() {
        let registry = crate::registry::ResourceRegistry::builtin();
        let cms = registry.lookup("", "v1", "configmaps").unwrap();
        let sas = registry.lookup("", "v1", "serviceaccounts").unwrap();
        let settings = Settings {
            root_ca: Some("PEM".into()),
            server_port: None,
        };
        let cm =
            |data: &str| json!({"metadata": {"name": ROOT_CA_CONFIGMAP}, "data": {"ca.crt": data}});
        assert!(!needs_populate(&settings, &cms, &cm("PEM"), false));
        assert!(needs_populate(&settings, &cms, &cm("other"), false));
        assert!(needs_populate(&settings, &cms, &cm("PEM"), true));
        assert!(!needs_populate(&Settings::default(), &cms, &cm("x"), true));
        let sa = |name: &str| json!({"metadata": {"name": name}});
        assert!(needs_populate(&settings, &sas, &sa("default"), true));
        assert!(!needs_populate(&settings, &sas, &sa("default"), false));
        assert!(!needs_populate(&settings, &sas, &sa("builder"), true));
    }
}
