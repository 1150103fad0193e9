//! One reconcile of a ControlPlane: the finalizer, the type's reconciler, the status
//! (`Synced` and `Ready` with KubeFlex's reasons, `observedGeneration`, `secretRef`), and
//! on deletion the teardown of what was made for it. Also the hosting-API writes the
//! type reconcilers share.

use super::api::{self, ControlPlaneSpec, ControlPlaneType};
use super::credentials::{self, ContextNames};
use super::{external, host, k8s, Context, ManagerError};
use crate::pki::CertifiedKey;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::ResourceExt;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The field manager of the manager's writes.
const MANAGER: &str = "kflex-manager";

/// What the type reconcilers report: where the kubeconfigs are.
pub(super) struct Provisioned {
    pub secret_namespace: String,
    pub secret_name: String,
}

pub(super) async fn reconcile(
    cp: Arc<DynamicObject>,
    ctx: Arc<Context>,
) -> Result<Action, ManagerError> {
    let name = cp.name_any();
    let control_planes: Api<DynamicObject> =
        Api::all_with(ctx.client.clone(), &api::control_planes());
    let finalizers = cp.finalizers();
    let finalized = finalizers.iter().any(|f| f == api::FINALIZER);
    if cp.metadata.deletion_timestamp.is_some() {
        if finalized {
            teardown(&ctx, &name, spec_of(&cp).ok()).await?;
            let remaining: Vec<&String> =
                finalizers.iter().filter(|f| *f != api::FINALIZER).collect();
            let patch = json!({"metadata": {
                "finalizers": remaining,
                "resourceVersion": cp.resource_version(),
            }});
            control_planes
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
        }
        return Ok(Action::await_change());
    }
    if !finalized {
        let mut with_ours = finalizers.to_vec();
        with_ours.push(api::FINALIZER.to_owned());
        let patch = json!({"metadata": {
            "finalizers": with_ours,
            "resourceVersion": cp.resource_version(),
        }});
        control_planes
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
    }
    // An adopted cluster's token is renewed after this long.
    let mut renew = None;
    let outcome = match spec_of(&cp) {
        Ok(spec) => match spec.kind {
            ControlPlaneType::K8s => k8s::ensure(&ctx, &name, &spec).await,
            ControlPlaneType::Host => host::ensure(&ctx, &name).await,
            ControlPlaneType::External => external::ensure(&ctx, &name, &cp.data["spec"])
                .await
                .map(|(provisioned, after)| {
                    renew = Some(after);
                    provisioned
                }),
        },
        Err(error) => Err(error),
    };
    // Hooks run once the control plane serves (KubeFlex's phase 3).
    let hooks = match &outcome {
        Ok(_) => {
            let namespace = api::namespace_of(&name);
            let tenant = ctx.router.tenant(&name).map(|_| {
                let prefix = format!("{}{name}", crate::TENANT_PREFIX);
                super::local_client::client_at(ctx.router.clone(), &ctx.config.token, &prefix)
            });
            let targets = kflex_hooks::Targets {
                host: &ctx.client,
                tenant: tenant.as_ref(),
                allow_exec: ctx.config.allow_exec_hooks,
            };
            let subject = kflex_hooks::Subject {
                name: &name,
                uid: cp.metadata.uid.as_deref().unwrap_or_default(),
                namespace: &namespace,
                spec: &cp.data["spec"],
                status: &cp.data["status"],
            };
            let outcome = kflex_hooks::run(&targets, &subject).await;
            super::networking::keep(&ctx, &name, outcome.networking);
            Some(outcome)
        }
        Err(_) => None,
    };
    let status = status(&cp, &outcome, hooks.as_ref());
    control_planes
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    outcome?;
    match hooks {
        Some(hooks) if !hooks.errors.is_empty() => {
            Err(ManagerError::Hooks(hooks.errors.join("; ")))
        }
        // Waiting for hook objects to become ready: look again shortly.
        Some(hooks) if !hooks.completed => Ok(Action::requeue(Duration::from_secs(5))),
        _ => Ok(renew.map_or_else(Action::await_change, Action::requeue)),
    }
}

/// Retries a failed reconcile after a pause that does not hammer a broken dependency.
pub(super) fn error_policy(_: Arc<DynamicObject>, error: &ManagerError, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "control plane not reconciled; retrying");
    Action::requeue(Duration::from_secs(5))
}

fn spec_of(cp: &DynamicObject) -> Result<ControlPlaneSpec, ManagerError> {
    serde_json::from_value(cp.data.get("spec").cloned().unwrap_or(Value::Null))
        .map_err(|e| ManagerError::Invalid(format!("spec: {e}")))
}

/// The status after a reconcile: KubeFlex's conditions, keeping each condition's
/// `lastTransitionTime` while its status holds, and the hooks' progress.
fn status(
    cp: &DynamicObject,
    outcome: &Result<Provisioned, ManagerError>,
    hooks: Option<&kflex_hooks::Outcome>,
) -> Value {
    let now = crate::object::now();
    let old: &[Value] = cp.data["status"]["conditions"]
        .as_array()
        .map_or(&[], Vec::as_slice);
    let condition = |kind: &str, ok: bool, reason: &str, message: String| {
        let status = if ok { "True" } else { "False" };
        let since = old
            .iter()
            .find(|c| c["type"] == kind && c["status"] == status)
            .and_then(|c| c["lastTransitionTime"].as_str())
            .map_or_else(|| now.clone(), str::to_owned);
        json!({"type": kind, "status": status, "reason": reason, "message": message,
               "lastUpdateTime": now, "lastTransitionTime": since})
    };
    let mut status = json!({"observedGeneration": cp.metadata.generation.unwrap_or(0)});
    match outcome {
        Ok(provisioned) => {
            let waiting = cp.data["spec"]["waitForPostCreateHooks"].as_bool() == Some(true)
                && !hooks.is_some_and(|h| h.completed);
            let synced = match hooks.filter(|h| !h.errors.is_empty()) {
                Some(failed) => condition(
                    "Synced",
                    false,
                    "ReconcileError",
                    format!("errors processing hooks: {}", failed.errors.join("; ")),
                ),
                None => condition("Synced", true, "ReconcileSuccess", String::new()),
            };
            let ready = if waiting {
                condition(
                    "Ready",
                    false,
                    "WaitingForPostCreateHooks",
                    "Waiting for PostCreateHook completion".into(),
                )
            } else {
                condition("Ready", true, "Available", String::new())
            };
            status["conditions"] = json!([synced, ready]);
            if let Some(hooks) = hooks {
                status["postCreateHooks"] = json!(hooks.applied);
                status["postCreateHookCompleted"] = json!(hooks.completed);
            }
            status["secretRef"] = json!({
                "namespace": provisioned.secret_namespace,
                "name": provisioned.secret_name,
                "key": api::KUBECONFIG_KEY,
                "inClusterKey": api::KUBECONFIG_INCLUSTER_KEY,
            });
        }
        Err(error) => {
            status["conditions"] = json!([
                condition("Synced", false, "ReconcileError", error.to_string()),
                condition("Ready", false, "Unavailable", String::new()),
            ]);
        }
    }
    status
}

/// Removes what was made for control plane `name`: the served tenant and its store, its
/// Secrets and its namespace. `spec` is `None` when it cannot be read; then whatever
/// exists is removed.
async fn teardown(
    ctx: &Context,
    name: &str,
    spec: Option<ControlPlaneSpec>,
) -> Result<(), ManagerError> {
    super::networking::keep(ctx, name, None);
    match spec.as_ref().map(|s| s.kind) {
        Some(ControlPlaneType::Host) => host::teardown(ctx, name).await?,
        Some(ControlPlaneType::External) => external::teardown(ctx, name).await?,
        _ => k8s::teardown(ctx, name, spec.as_ref()).await?,
    }
    let namespace = api::namespace_of(name);
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    match namespaces.get_opt(&namespace).await? {
        Some(found) if owned_by(&found, name) => {}
        _ => return Ok(()),
    }
    kflex_hooks::remove_applied(&ctx.client, name, &namespace).await?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    for secret in [api::KUBECONFIG_SECRET, credentials::CA_SECRET] {
        delete_if_present(&secrets, secret).await?;
    }
    delete_namespace(ctx, &namespace).await
}

/// Creates namespace `name` for control plane `cp` unless it exists.
/// Refuses a namespace of that name made by someone else: kflex removes what it made.
pub(super) async fn ensure_namespace(ctx: &Context, cp: &str) -> Result<String, ManagerError> {
    let name = api::namespace_of(cp);
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let namespace: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {OWNER_LABEL: cp}},
    }))
    .map_err(|e| ManagerError::Invalid(e.to_string()))?;
    let stored = create_if_absent(&namespaces, &namespace).await?;
    if !owned_by(&stored, cp) {
        return Err(ManagerError::Invalid(format!(
            "namespace {name} exists and does not belong to control plane {cp} \
             (it lacks label {OWNER_LABEL}={cp}): rename the control plane or remove the namespace"
        )));
    }
    Ok(name)
}

/// The label marking the namespace kflex made for a control plane.
const OWNER_LABEL: &str = "kflex.kubestellar.org/controlplane";

fn owned_by(namespace: &Namespace, cp: &str) -> bool {
    namespace.labels().get(OWNER_LABEL).map(String::as_str) == Some(cp)
}

/// Creates `object` unless one of its name exists; returns the stored object.
pub(super) async fn create_if_absent<K>(api: &Api<K>, object: &K) -> Result<K, ManagerError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let params = PostParams {
        field_manager: Some(MANAGER.to_owned()),
        ..PostParams::default()
    };
    match api.create(&params, object).await {
        Ok(created) => Ok(created),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            Ok(api.get(&object.name_any()).await?)
        }
        Err(error) => Err(error.into()),
    }
}

pub(super) async fn delete_if_present<K>(api: &Api<K>, name: &str) -> Result<(), ManagerError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Deletes a namespace whose content the manager removed itself, and finalizes it (as
/// the namespace controller would), so nothing stays behind in `Terminating`.
async fn delete_namespace(ctx: &Context, name: &str) -> Result<(), ManagerError> {
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    delete_if_present(&namespaces, name).await?;
    let Some(mut namespace) = namespaces.get_opt(name).await? else {
        return Ok(());
    };
    if let Some(spec) = namespace.spec.as_mut() {
        spec.finalizers = Some(Vec::new());
    }
    match namespaces
        .replace_subresource("finalize", name, &PostParams::default(), &namespace)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Writes control plane `cp`'s Secret `admin-kubeconfig` unless it exists: kubeconfigs
/// for the server's external and in-cluster URLs followed by `path`, authenticating
/// with `client`.
pub(super) async fn ensure_kubeconfigs(
    ctx: &Context,
    cp: &str,
    namespace: &str,
    path: &str,
    client: &CertifiedKey,
) -> Result<Provisioned, ManagerError> {
    let names = ContextNames::of_control_plane(cp);
    let ca = &ctx.config.server_ca.certificate.cert_pem;
    let kubeconfig = |base: &str| {
        let server = format!("{}{path}", base.trim_end_matches('/'));
        credentials::kubeconfig(&names, &server, ca, client).to_string()
    };
    ensure_secret(
        ctx,
        namespace,
        api::KUBECONFIG_SECRET,
        json!({
            api::KUBECONFIG_KEY: kubeconfig(&ctx.config.external_url),
            api::KUBECONFIG_INCLUSTER_KEY: kubeconfig(&ctx.config.in_cluster_url),
        }),
    )
    .await?;
    Ok(Provisioned {
        secret_namespace: namespace.to_owned(),
        secret_name: api::KUBECONFIG_SECRET.to_owned(),
    })
}

/// Stores `data` (string values) in Secret `name` of `namespace` unless it exists.
pub(super) async fn ensure_secret(
    ctx: &Context,
    namespace: &str,
    name: &str,
    data: Value,
) -> Result<Secret, ManagerError> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": data,
    }))
    .map_err(|e| ManagerError::Invalid(e.to_string()))?;
    create_if_absent(&secrets, &secret).await
}
