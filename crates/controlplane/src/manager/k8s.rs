//! The `k8s` type: an isolated API server of the tenant's own, on its own store, served
//! at `/clusters/<name>`, accepting client certificates of the tenant's own CA.

use super::api::{Backend, ControlPlaneSpec};
use super::credentials;
use super::reconcile::{ensure_kubeconfigs, ensure_namespace, ensure_secret, Provisioned};
use super::{Context, ManagerError};
use crate::authn::Authenticator;
use crate::pki::CertificateAuthority;
use crate::ControlPlane;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use std::collections::BTreeMap;

/// Serves control plane `name` (starting it on its store when this process does not
/// serve it yet) and writes its kubeconfig Secret.
pub(super) async fn ensure(
    ctx: &Context,
    name: &str,
    spec: &ControlPlaneSpec,
) -> Result<Provisioned, ManagerError> {
    let problems = spec
        .authentication
        .as_ref()
        .map(|a| a.problems())
        .unwrap_or_default();
    if !problems.is_empty() {
        return Err(ManagerError::Invalid(format!(
            "invalid authentication settings: {}",
            problems.join("; ")
        )));
    }
    let problems = spec
        .pod_security
        .as_ref()
        .map(|p| p.problems("spec.podSecurity"))
        .unwrap_or_default();
    if !problems.is_empty() {
        return Err(ManagerError::Invalid(format!(
            "invalid PodSecurity settings: {}",
            problems.join("; ")
        )));
    }
    let namespace = ensure_namespace(ctx, name).await?;
    let ca_secret = ensure_secret(
        ctx,
        &namespace,
        credentials::CA_SECRET,
        credentials::ca_secret_data(&CertificateAuthority::generate(&format!("{name}-ca"))?),
    )
    .await?;
    let ca = credentials::ca_from_secret(&ca_secret).ok_or_else(|| {
        ManagerError::Invalid(format!(
            "Secret {namespace}/{} holds no ca.crt and ca.key",
            credentials::CA_SECRET
        ))
    })??;
    match ctx.router.tenant(name) {
        Some(tenant) => configure(&tenant, spec).await?,
        None => serve(ctx, name, spec, &ca).await?,
    }
    let admin = ca.client_certificate(credentials::ADMIN_USER, &[credentials::ADMIN_GROUP])?;
    let path = format!("{}{name}", crate::TENANT_PREFIX);
    ensure_kubeconfigs(ctx, name, &namespace, &path, &admin).await
}

/// Opens the tenant's store and starts serving it.
async fn serve(
    ctx: &Context,
    name: &str,
    spec: &ControlPlaneSpec,
    ca: &CertificateAuthority,
) -> Result<(), ManagerError> {
    let backend = spec.backend.unwrap_or(Backend::Shared);
    let external = match (&spec.backend_secret_ref, backend) {
        (Some(reference), Backend::External) => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &reference.namespace);
            let secret = secrets.get(&reference.name).await?;
            let data: BTreeMap<String, Vec<u8>> = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            Some(data)
        }
        (None, Backend::External) => {
            return Err(ManagerError::Invalid(
                "spec.backendSecretRef is required for backend external".to_owned(),
            ))
        }
        _ => None,
    };
    let store = ctx
        .config
        .storage
        .open(name, backend, external.as_ref())
        .await?;
    let mut authenticator = Authenticator::default();
    authenticator
        .add_client_ca(&ca.certificate.cert_der)
        .map_err(|e| ManagerError::Invalid(e.to_string()))?;
    // The manager applies hooks that target the tenant itself.
    let (_, manager) = super::manager_identity();
    authenticator.add_token(ctx.config.token.clone(), manager);
    let settings = crate::controllers::Settings::served_at(
        &ctx.config.in_cluster_url,
        &ctx.config.server_ca.certificate.cert_pem,
    );
    let tenant =
        ControlPlane::start_with(name, store.store.clone(), authenticator, settings).await?;
    configure(&tenant, spec).await?;
    ctx.tenants
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(name.to_owned(), store);
    ctx.router.add_tenant(tenant);
    Ok(())
}

/// Applies the ControlPlane's authentication settings, tenancy policy, node placement and
/// PodSecurity settings to the tenant (while it serves: no restart).
async fn configure(tenant: &ControlPlane, spec: &ControlPlaneSpec) -> Result<(), ManagerError> {
    let authentication = spec.authentication.clone().unwrap_or_default();
    let anonymous = authentication.anonymous.is_some_and(|a| a.enabled);
    tenant
        .authenticator()
        .configure(anonymous, &authentication.jwt)
        .map_err(|e| ManagerError::Invalid(format!("spec.authentication: {e}")))?;
    let tenancy = spec.tenancy_policy.is_some_and(|p| p.enabled);
    crate::authz::tenancy::apply(tenant, tenancy).await?;
    tenant.set_node_placement(spec.node_placement.clone().map(|p| {
        crate::admission::NodePlacement {
            node_selector: p.node_selector,
            tolerations: p.tolerations,
        }
    }));
    tenant
        .admission()
        .set_pod_security(spec.pod_security.clone());
    Ok(())
}

/// Stops serving control plane `name` and removes the store kflex made for it (opening it
/// first when this process did not serve it, e.g. when it was deleted while kflex was
/// down). `spec` is `None` when the ControlPlane's spec cannot be read.
pub(super) async fn teardown(
    ctx: &Context,
    name: &str,
    spec: Option<&ControlPlaneSpec>,
) -> Result<(), ManagerError> {
    ctx.router.remove_tenant(name);
    let served = ctx
        .tenants
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(name);
    let store = match (served, spec.map(|s| s.backend.unwrap_or(Backend::Shared))) {
        (Some(store), _) => store,
        (None, Some(backend @ (Backend::Shared | Backend::Dedicated))) => {
            ctx.config.storage.open(name, backend, None).await?
        }
        (None, _) => return Ok(()),
    };
    store.destroy().await?;
    Ok(())
}
