//! The `external` type: an existing cluster adopted from a bootstrap kubeconfig Secret
//! (`spec.bootstrapSecretRef`). kflex makes ServiceAccount `kube-system/kubeflex` there,
//! bound to `cluster-admin` by ClusterRoleBinding `kubeflex-clusterrolebinding`, mints it a
//! token of `spec.tokenExpirationSeconds` with TokenRequest, and stores a kubeconfig with
//! it. The token is renewed (with itself) when two thirds of its life have passed. The
//! bootstrap Secret is moved into `<cp>-system` (`bootstrap-kubeconfig`) once used: the
//! minted token cannot remove its own ServiceAccount and binding (each removal revokes the
//! permission the other needs), so deletion uses the bootstrap credentials, and without
//! them removes what the token still may, never hanging on what it may not.

use super::api;
use super::reconcile::{delete_if_present, ensure_namespace, Provisioned};
use super::{Context, ManagerError};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use std::time::Duration;

const SERVICE_ACCOUNT: &str = "kubeflex";
const SA_NAMESPACE: &str = "kube-system";
const BINDING: &str = "kubeflex-clusterrolebinding";
/// The annotation on the kubeconfig Secret recording when its token expires (RFC 3339).
const EXPIRES: &str = "kflex.kubestellar.org/token-expiration";
/// Where the bootstrap kubeconfig is kept, in `<cp>-system`, for the teardown.
const BOOTSTRAP_SECRET: &str = "bootstrap-kubeconfig";

/// Adopts the cluster; returns where the kubeconfig is and when to renew its token.
pub(super) async fn ensure(
    ctx: &Context,
    name: &str,
    spec: &Value,
) -> Result<(Provisioned, Duration), ManagerError> {
    let namespace = ensure_namespace(ctx, name).await?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let lifetime = spec["tokenExpirationSeconds"]
        .as_i64()
        .unwrap_or(31_536_000)
        .max(600);
    let current = secrets.get_opt(api::KUBECONFIG_SECRET).await?;
    let now = jiff::Timestamp::now();
    let renew_at = |expires: jiff::Timestamp| {
        let left = expires.as_second() - now.as_second();
        Duration::from_secs((left - lifetime / 3).max(0) as u64)
    };
    if let Some(secret) = &current {
        let expires = secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(EXPIRES))
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        if let Some(expires) = expires.filter(|e| !renew_at(*e).is_zero()) {
            return Ok((provisioned(namespace), renew_at(expires)));
        }
    }
    // Who can mint: the stored kubeconfig's token (renewal), else the bootstrap Secret.
    let (kubeconfig, bootstrap) = match &current {
        Some(secret) => (secret_text(secret, api::KUBECONFIG_INCLUSTER_KEY)?, None),
        None => {
            let reference = &spec["bootstrapSecretRef"];
            let (ns, secret_name) = (
                reference["namespace"].as_str().unwrap_or_default(),
                reference["name"].as_str().unwrap_or_default(),
            );
            if ns.is_empty() || secret_name.is_empty() {
                return Err(ManagerError::Invalid(
                    "spec.bootstrapSecretRef is required for type external".into(),
                ));
            }
            let key = reference["inClusterKey"]
                .as_str()
                .unwrap_or(api::KUBECONFIG_INCLUSTER_KEY);
            let bootstrap: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
            let secret = bootstrap.get(secret_name).await?;
            (
                secret_text(&secret, key)?,
                Some((bootstrap, secret_name.to_owned())),
            )
        }
    };
    let (adopted, cluster) = remote(&kubeconfig).await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(adopted.clone(), SA_NAMESPACE);
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": SERVICE_ACCOUNT}})).map_err(invalid)?;
    super::reconcile::create_if_absent(&accounts, &account).await?;
    let bindings: Api<ClusterRoleBinding> = Api::all(adopted.clone());
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": BINDING},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": SA_NAMESPACE}],
    }))
    .map_err(invalid)?;
    super::reconcile::create_if_absent(&bindings, &binding).await?;
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": lifetime}}))
            .map_err(invalid)?;
    let token = accounts
        .create_token_request(SERVICE_ACCOUNT, &PostParams::default(), &request)
        .await?;
    let status = token
        .status
        .ok_or_else(|| ManagerError::Invalid("TokenRequest returned no token".into()))?;
    let expires = status.expiration_timestamp.0;
    let adopted_config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": format!("{name}-cluster"), "cluster": cluster}],
        "users": [{"name": format!("{name}-admin"), "user": {"token": status.token}}],
        "contexts": [{"name": name, "context": {"cluster": format!("{name}-cluster"), "user": format!("{name}-admin")}}],
        "current-context": name,
    })
    .to_string();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": api::KUBECONFIG_SECRET, "namespace": namespace,
                     "annotations": {EXPIRES: expires.to_string()}},
        "stringData": {api::KUBECONFIG_KEY: adopted_config, api::KUBECONFIG_INCLUSTER_KEY: adopted_config},
    }))
    .map_err(invalid)?;
    secrets
        .patch(
            api::KUBECONFIG_SECRET,
            &PatchParams::apply("kflex-manager").force(),
            &Patch::Apply(&secret),
        )
        .await?;
    if let Some((bootstrap, secret_name)) = bootstrap {
        let kept: Secret = serde_json::from_value(json!({
            "metadata": {"name": BOOTSTRAP_SECRET, "namespace": namespace},
            "stringData": {api::KUBECONFIG_INCLUSTER_KEY: kubeconfig},
        }))
        .map_err(invalid)?;
        secrets
            .patch(
                BOOTSTRAP_SECRET,
                &PatchParams::apply("kflex-manager").force(),
                &Patch::Apply(&kept),
            )
            .await?;
        delete_if_present(&bootstrap, &secret_name).await?;
    }
    Ok((provisioned(namespace), renew_at(expires)))
}

/// Removes what kflex made on the adopted cluster, with the bootstrap credentials when
/// kept; a removal the credentials may not make is logged and skipped.
pub(super) async fn teardown(ctx: &Context, name: &str) -> Result<(), ManagerError> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &api::namespace_of(name));
    let mut credentials = None;
    for secret in [BOOTSTRAP_SECRET, api::KUBECONFIG_SECRET] {
        if let Some(found) = secrets.get_opt(secret).await? {
            credentials = Some(found);
            break;
        }
    }
    let Some(secret) = credentials else {
        return Ok(());
    };
    let (adopted, _) = remote(&secret_text(&secret, api::KUBECONFIG_INCLUSTER_KEY)?).await?;
    let removals = [
        delete_if_present(&Api::<ClusterRoleBinding>::all(adopted.clone()), BINDING).await,
        delete_if_present(
            &Api::<ServiceAccount>::namespaced(adopted, SA_NAMESPACE),
            SERVICE_ACCOUNT,
        )
        .await,
    ];
    for removal in removals {
        match removal {
            Err(ManagerError::Api(kube::Error::Api(status)))
                if matches!(status.code, 401 | 403) =>
            {
                tracing::warn!(control_plane = name, error = %status.message, "left on the adopted cluster");
            }
            other => other?,
        }
    }
    Ok(())
}

fn provisioned(namespace: String) -> Provisioned {
    Provisioned {
        secret_namespace: namespace,
        secret_name: api::KUBECONFIG_SECRET.to_owned(),
    }
}

fn invalid(error: impl std::fmt::Display) -> ManagerError {
    ManagerError::Invalid(error.to_string())
}

fn secret_text(secret: &Secret, key: &str) -> Result<String, ManagerError> {
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| ManagerError::Invalid(format!("Secret {name} has no key {key}")))?;
    String::from_utf8(bytes.0.clone())
        .map_err(|_| ManagerError::Invalid(format!("Secret {name}: {key} is not text")))
}

/// A client for the cluster of a kubeconfig (its current context), and its cluster entry.
async fn remote(kubeconfig: &str) -> Result<(kube::Client, Value), ManagerError> {
    let parsed = kube::config::Kubeconfig::from_yaml(kubeconfig)
        .map_err(|e| ManagerError::Invalid(format!("the adopted cluster's kubeconfig: {e}")))?;
    let document: Value = serde_norway::from_str(kubeconfig).map_err(invalid)?;
    let current = document["current-context"].as_str().unwrap_or_default();
    let cluster_name = document["contexts"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == current))
        .map(|c| c["context"]["cluster"].clone())
        .unwrap_or(Value::Null);
    let cluster = document["clusters"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == cluster_name))
        .map(|c| c["cluster"].clone())
        .ok_or_else(|| {
            ManagerError::Invalid(
                "the adopted cluster's kubeconfig has no cluster for its current context".into(),
            )
        })?;
    let config = kube::Config::from_custom_kubeconfig(parsed, &Default::default())
        .await
        .map_err(|e| ManagerError::Invalid(format!("the adopted cluster's kubeconfig: {e}")))?;
    let client = kube::Client::try_from(config).map_err(invalid)?;
    Ok((client, cluster))
}
