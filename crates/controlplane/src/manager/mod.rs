//! The ControlPlane manager: turns `ControlPlane` objects of the hosting API into live
//! tenant control planes, served at `/clusters/<name>` by the same process.
//!
//! Start with [`Manager`]. It installs the hosting API's kinds ([`api`]), then reconciles every
//! ControlPlane with kube-runtime's controller, through an in-process client
//! ([`local_client`]) that goes through authentication, authorization and admission like
//! any client. Each reconcile is idempotent and resumes after a restart: the tenant's CA
//! is kept in a Secret ([`credentials`]), its store is reopened ([`storage`]). One
//! reconciler per control-plane type: [`k8s`] and [`host`].

pub mod api;
pub mod credentials;
mod external;
mod host;
mod k8s;
pub mod local_client;
mod networking;
mod reconcile;
pub mod storage;

pub use kflex_hooks::api_message;

use crate::pki::CertificateAuthority;
use crate::router::Router;
use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{watcher, Controller};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use storage::{StorageConfig, TenantStore};

/// How the manager provisions control planes.
pub struct ManagerConfig {
    /// Where stores go.
    pub storage: StorageConfig,
    /// The server's URL as the user's machine reaches it (`https://host:port`): the
    /// `kubeconfig` key of a control plane's Secret points there.
    pub external_url: String,
    /// The server's URL as clients inside the hosting cluster reach it: the
    /// `kubeconfig-incluster` key points there.
    pub in_cluster_url: String,
    /// The CA of the server's certificate (kubeconfigs carry it), which also signs the
    /// hosting API's client certificates.
    pub server_ca: Arc<CertificateAuthority>,
    /// A bearer token the hosting API accepts as a `system:masters` user: the manager's.
    pub token: String,
    /// Whether PostCreateHooks may run local programs (`exec` actions).
    pub allow_exec_hooks: bool,
}

/// A fresh bearer token and the user it stands for: what [`ManagerConfig::token`] needs the
/// hosting API to accept. The token never leaves the process.
pub fn manager_identity() -> (String, crate::authn::User) {
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let user = crate::authn::User {
        name: "system:kflex-manager".to_owned(),
        uid: String::new(),
        groups: vec!["system:masters".to_owned()],
        ..Default::default()
    };
    (token, user)
}

/// Why a reconcile failed; shown as the ControlPlane's `Synced` message.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("{}", api_message(.0))]
    Api(#[from] kube::Error),
    #[error("storage: {0}")]
    Store(#[from] kflex_storage_backends::StoreError),
    #[error("credentials: {0}")]
    Pki(#[from] crate::pki::PkiError),
    #[error("{0}")]
    Invalid(String),
    #[error("errors processing hooks: {0}")]
    Hooks(String),
    #[error("post-create hooks: {0}")]
    Hook(#[from] kflex_hooks::HookError),
}

/// What every reconcile shares.
pub(crate) struct Context {
    router: Arc<Router>,
    config: ManagerConfig,
    client: kube::Client,
    /// The stores of the tenants this process serves, by control-plane name.
    tenants: Mutex<HashMap<String, TenantStore>>,
    /// The `networking` hook's keepers of tenants' NetworkPolicies.
    networking: networking::Keepers,
}

/// The manager of one process's control planes.
pub struct Manager {
    context: Arc<Context>,
}

impl Manager {
    /// Installs the hosting API's kinds and the built-in PostCreateHooks, and resumes the existing control planes (through
    /// `router`, before anything listens), so the hosting API serves them from its first
    /// request.
    pub async fn install(router: Arc<Router>, config: ManagerConfig) -> Result<Self, ManagerError> {
        let client = local_client::client(router.clone(), &config.token);
        install_kinds(&client).await?;
        kflex_hooks::builtin::install(&client).await?;
        let manager = Manager {
            context: Arc::new(Context {
                router,
                config,
                client,
                tenants: Mutex::default(),
                networking: networking::Keepers::default(),
            }),
        };
        manager.resume().await?;
        Ok(manager)
    }

    /// Reconciles every existing ControlPlane once, concurrently, so that a restarted
    /// kflex serves its tenants before it listens. A control plane that fails is retried
    /// by [`Self::run`] and holds up no other.
    async fn resume(&self) -> Result<(), ManagerError> {
        let control_planes: Api<kube::api::DynamicObject> =
            Api::all_with(self.context.client.clone(), &api::control_planes());
        let existing = control_planes.list(&Default::default()).await?;
        let reconciles = existing.items.into_iter().map(|cp| {
            let context = self.context.clone();
            async move {
                if let Err(error) = reconcile::reconcile(Arc::new(cp), context).await {
                    tracing::warn!(%error, "control plane not resumed; retrying");
                }
            }
        });
        futures::future::join_all(reconciles).await;
        Ok(())
    }

    /// Reconciles ControlPlanes (every existing one first, then as they change) until
    /// `shutdown` completes.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ) {
        let resource = api::control_planes();
        let control_planes: Api<kube::api::DynamicObject> =
            Api::all_with(self.context.client.clone(), &resource);
        let controller =
            Controller::new_with(control_planes, watcher::Config::default(), resource.clone());
        // A PostCreateHook that appears or changes is (re)applied to the control planes
        // that use it.
        let known = controller.store();
        let hooks = Api::<kube::api::DynamicObject>::all_with(
            self.context.client.clone(),
            &kflex_hooks::resource(),
        );
        controller
            .watches_with(
                hooks,
                kflex_hooks::resource(),
                watcher::Config::default(),
                move |hook| {
                    let name = hook.metadata.name.clone().unwrap_or_default();
                    known
                        .state()
                        .into_iter()
                        .filter(|cp| {
                            kflex_hooks::uses(&cp.data["spec"])
                                .iter()
                                .any(|u| u.name == name)
                        })
                        .map(|cp| {
                            kube::runtime::reflector::ObjectRef::from_obj_with(
                                cp.as_ref(),
                                resource.clone(),
                            )
                        })
                        .collect::<Vec<_>>()
                },
            )
            .graceful_shutdown_on(shutdown)
            .run(reconcile::reconcile, reconcile::error_policy, self.context)
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, "control plane reconcile");
                }
            })
            .await;
    }
}

/// Applies the CRDs of the hosting API's kinds (server-side apply, so a newer kflex
/// updates them).
async fn install_kinds(client: &kube::Client) -> Result<(), ManagerError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for manifest in api::CRDS {
        let crd: CustomResourceDefinition = serde_norway::from_str(manifest)
            .map_err(|e| ManagerError::Invalid(format!("built-in CRD manifest: {e}")))?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(
            &name,
            &PatchParams::apply("kflex").force(),
            &Patch::Apply(&crd),
        )
        .await?;
    }
    Ok(())
}
