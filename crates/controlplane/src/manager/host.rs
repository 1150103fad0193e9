//! The `host` type: the hosting API itself. Its kubeconfig authenticates as user `<cp>`,
//! bound to `cluster-admin` by ClusterRoleBinding `<cp>-binding`, as KubeFlex binds its
//! host control planes' ServiceAccount.

use super::reconcile::{
    create_if_absent, delete_if_present, ensure_kubeconfigs, ensure_namespace, Provisioned,
};
use super::{Context, ManagerError};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::Api;
use serde_json::json;

fn binding_name(cp: &str) -> String {
    format!("{cp}-binding")
}

/// Binds user `<name>` to cluster-admin and writes a kubeconfig for the hosting API.
pub(super) async fn ensure(ctx: &Context, name: &str) -> Result<Provisioned, ManagerError> {
    let namespace = ensure_namespace(ctx, name).await?;
    let bindings: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": binding_name(name)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}],
    }))
    .map_err(|e| ManagerError::Invalid(e.to_string()))?;
    create_if_absent(&bindings, &binding).await?;
    let user = ctx.config.server_ca.client_certificate(name, &[])?;
    ensure_kubeconfigs(ctx, name, &namespace, "", &user).await
}

/// Removes the binding (the Secret and namespace go with every type's).
pub(super) async fn teardown(ctx: &Context, name: &str) -> Result<(), ManagerError> {
    let bindings: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
    delete_if_present(&bindings, &binding_name(name)).await
}
