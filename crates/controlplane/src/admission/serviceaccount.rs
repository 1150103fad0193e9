//! Upstream's ServiceAccount admission for new Pods: the account defaults to `default` and
//! must exist, its image pull secrets are the Pod's when it has none, and (unless either
//! opts out with `automountServiceAccountToken: false`) every container mounts a projected
//! `kube-api-access-*` volume with a bound token, the cluster CA and the namespace.
//!
//! As upstream, a missing `default` account is looked up again for a short while (the
//! controller that creates it may be a moment behind a new namespace); a missing account
//! is then `403 Forbidden`.

use super::Attributes;
use crate::controlplane::ControlPlane;
use crate::status::ApiError;
use serde_json::{json, Value};
use std::time::Duration;

/// The account a Pod runs as when it names none.
const DEFAULT_ACCOUNT: &str = "default";
/// Where the token volume is mounted in every container.
const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The token volume's name prefix.
const TOKEN_VOLUME_PREFIX: &str = "kube-api-access-";
/// The annotation marking a kubelet's mirror pod.
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// How often a missing `default` account is looked up (upstream: 10, 100–200 ms apart).
const DEFAULT_ACCOUNT_ATTEMPTS: usize = 10;
/// The token's lifetime in the projected volume (upstream's 3607 s).
const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

pub(super) async fn admit(
    cp: &ControlPlane,
    attrs: &Attributes<'_>,
    pod: &mut Value,
) -> Result<(), ApiError> {
    let Some(namespace) = attrs.namespace else {
        return Ok(());
    };
    if pod["metadata"]["annotations"]
        .get(MIRROR_POD_ANNOTATION)
        .is_some()
    {
        return check_mirror_pod(attrs, pod);
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    // The deprecated `serviceAccount` stands for `serviceAccountName` when that is unset.
    let named = |field: &str| {
        spec.get(field)
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
    };
    let name = named("serviceAccountName")
        .or_else(|| named("serviceAccount"))
        .unwrap_or_else(|| DEFAULT_ACCOUNT.to_owned());
    spec.insert("serviceAccountName".into(), json!(name));
    spec.insert("serviceAccount".into(), json!(name));
    let account = lookup(cp, namespace, &name).await?.ok_or_else(|| {
        attrs.forbidden(format!(
            "error looking up service account {namespace}/{name}: serviceaccount \"{name}\" not found"
        ))
    })?;
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| account["automountServiceAccountToken"].as_bool())
        .unwrap_or(true);
    if automount {
        mount_token(spec);
    }
    let has_pull_secrets = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_some_and(|list| !list.is_empty());
    if let Some(secrets) = account["imagePullSecrets"].as_array() {
        if !has_pull_secrets && !secrets.is_empty() {
            spec.insert("imagePullSecrets".into(), json!(secrets));
        }
    }
    Ok(())
}

/// The ServiceAccount, looked up again for a while when it is the missing `default`.
async fn lookup(cp: &ControlPlane, namespace: &str, name: &str) -> Result<Option<Value>, ApiError> {
    let def = cp.builtin("", "v1", "serviceaccounts")?;
    let key = def.key(Some(namespace), name);
    let attempts = if name == DEFAULT_ACCOUNT {
        DEFAULT_ACCOUNT_ATTEMPTS
    } else {
        1
    };
    let pause = Duration::from_millis(rand::random_range(100..200));
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(pause).await;
        }
        let (kv, _) = cp
            .store()
            .get(key.as_bytes(), None)
            .await
            .map_err(|e| crate::status::from_store(e, &def.group_resource(), name))?;
        if let Some(kv) = kv {
            return Ok(Some(serde_json::from_slice(&kv.value).unwrap_or_default()));
        }
    }
    Ok(None)
}

/// Mounts the projected token volume in every container that has nothing at its path.
fn mount_token(spec: &mut serde_json::Map<String, Value>) {
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .and_then(|volumes| {
            volumes.iter().find_map(|v| {
                v["name"]
                    .as_str()
                    .filter(|n| n.starts_with(TOKEN_VOLUME_PREFIX))
                    .map(str::to_owned)
            })
        });
    let volume_name = existing
        .clone()
        .unwrap_or_else(|| crate::object::generate_name(TOKEN_VOLUME_PREFIX));
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers.iter_mut().filter_map(Value::as_object_mut) {
            let mounts = container.entry("volumeMounts").or_insert_with(|| json!([]));
            let Some(mounts) = mounts.as_array_mut() else {
                continue;
            };
            if mounts.iter().any(|m| m["mountPath"] == TOKEN_MOUNT_PATH) {
                continue;
            }
            mounts.push(json!({
                "name": volume_name,
                "readOnly": true,
                "mountPath": TOKEN_MOUNT_PATH,
            }));
            needed = true;
        }
    }
    if needed && existing.is_none() {
        let volume = json!({
            "name": volume_name,
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ],
                "defaultMode": 0o644,
            },
        });
        match spec.get_mut("volumes").and_then(Value::as_array_mut) {
            Some(volumes) => volumes.push(volume),
            None => {
                spec.insert("volumes".into(), json!([volume]));
            }
        }
    }
}

/// A kubelet's mirror pod is left as it is, but may not reference an account, secrets or
/// config maps (upstream's rules).
fn check_mirror_pod(attrs: &Attributes<'_>, pod: &Value) -> Result<(), ApiError> {
    let spec = &pod["spec"];
    if spec["serviceAccountName"]
        .as_str()
        .is_some_and(|n| !n.is_empty())
    {
        return Err(attrs.forbidden("a mirror pod may not reference service accounts"));
    }
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        let sources = volume["projected"]["sources"].as_array();
        if volume.get("secret").is_some()
            || sources.is_some_and(|s| s.iter().any(|s| s.get("secret").is_some()))
        {
            return Err(attrs.forbidden("a mirror pod may not reference secrets"));
        }
        if volume.get("configMap").is_some()
            || sources.is_some_and(|s| s.iter().any(|s| s.get("configMap").is_some()))
        {
            return Err(attrs.forbidden("a mirror pod may not reference configmaps"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_the_token_once_in_every_container() {
        let mut spec = json!({
            "initContainers": [{"name": "i"}],
            "containers": [
                {"name": "a", "volumeMounts": [{"name": "x", "mountPath": "/x"}]},
                {"name": "b", "volumeMounts": [{"name": "mine", "mountPath": TOKEN_MOUNT_PATH}]},
            ],
        });
        let map = spec.as_object_mut().unwrap();
        mount_token(map);
        let volume = spec["volumes"][0]["name"].as_str().unwrap().to_owned();
        assert!(
            volume.starts_with(TOKEN_VOLUME_PREFIX)
                && volume.len() == TOKEN_VOLUME_PREFIX.len() + 5
        );
        assert_eq!(
            spec["initContainers"][0]["volumeMounts"][0]["name"],
            json!(volume)
        );
        assert_eq!(
            spec["containers"][0]["volumeMounts"][1]["mountPath"],
            json!(TOKEN_MOUNT_PATH)
        );
        assert_eq!(
            spec["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(spec["volumes"][0]["projected"]["defaultMode"], json!(420));
        // Admitting again (an apply retried) adds nothing.
        mount_token(spec.as_object_mut().unwrap());
        assert_eq!(spec["volumes"].as_array().unwrap().len(), 1);
        assert_eq!(
            spec["containers"][0]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
}
