//! Keeps the `networking` hook's NetworkPolicies: applies them in namespaces created after
//! the hook ran, and again where one was deleted.
//!
//! One task per control plane whose hooks use the action, woken only by its store's
//! watches on namespaces and NetworkPolicies: no polling, so an idle tenant's task sleeps. Nothing is persisted: the
//! ControlPlane's spec says which tenants need a keeper, and every reconcile (at start-up
//! too) starts a missing one, which first applies the policies to every namespace, so
//! namespaces made while kflex was down are caught up.

use super::{local_client, Context};
use crate::controlplane::ControlPlane;
use futures::StreamExt;
use kflex_hooks::networking::{self, Mode};
use kflex_storage_backends::{EventKind, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::task::JoinHandle;

/// The running keepers, by control-plane name.
#[derive(Default)]
pub(super) struct Keepers {
    running: Mutex<HashMap<String, Keeper>>,
}

struct Keeper {
    mode: Mode,
    /// The tenant it watches: a tenant served anew (its store reopened) needs a new keeper.
    tenant: Weak<ControlPlane>,
    task: JoinHandle<()>,
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Keeps the policies of `mode` in control plane `cp`'s namespaces; `None` (or a control
/// plane this process does not serve) stops keeping them.
pub(super) fn keep(ctx: &Context, cp: &str, mode: Option<Mode>) {
    let mut running = ctx
        .networking
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let (Some(mode), Some(tenant)) = (mode, ctx.router.tenant(cp)) else {
        running.remove(cp);
        return;
    };
    if running.get(cp).is_some_and(|keeper| {
        keeper.mode == mode
            && !keeper.task.is_finished()
            && keeper
                .tenant
                .upgrade()
                .is_some_and(|t| Arc::ptr_eq(&t, &tenant))
    }) {
        return;
    }
    let prefix = format!("{}{cp}", crate::TENANT_PREFIX);
    let client = local_client::client_at(ctx.router.clone(), &ctx.config.token, &prefix);
    let prefix_of = |group: &str, plural: &str| {
        tenant
            .registry()
            .lookup(group, "v1", plural)
            .expect("the built-in registry has namespaces and NetworkPolicies")
            .collection_prefix(None)
    };
    let prefixes = Prefixes {
        namespaces: prefix_of("", "namespaces"),
        policies: prefix_of("networking.k8s.io", "networkpolicies"),
    };
    let store = tenant.store().clone();
    let name = cp.to_owned();
    let task = tokio::spawn(async move {
        run(store, &prefixes, &client, mode, &name).await;
    });
    running.insert(
        cp.to_owned(),
        Keeper {
            mode,
            tenant: Arc::downgrade(&tenant),
            task,
        },
    );
}

/// Where a tenant's store keeps namespaces and NetworkPolicies.
struct Prefixes {
    namespaces: String,
    policies: String,
}

/// Both watches, from one revision.
async fn watch(
    store: &Arc<dyn Store>,
    prefixes: &Prefixes,
) -> Result<kflex_storage_backends::WatchStream, kflex_storage_backends::StoreError> {
    let revision = store.current_revision().await?;
    let namespaces = store
        .watch(prefixes.namespaces.as_bytes(), revision)
        .await?;
    let policies = store.watch(prefixes.policies.as_bytes(), revision).await?;
    Ok(futures::stream::select(namespaces, policies).boxed())
}

/// Applies `mode` everywhere, then to each namespace the store reports created and where
/// one of the policies was deleted, until the store closes. A broken watch (a compaction,
/// a lost connection) starts over.
async fn run(
    store: Arc<dyn Store>,
    prefixes: &Prefixes,
    client: &kube::Client,
    mode: Mode,
    cp: &str,
) {
    loop {
        let watched = watch(&store, prefixes).await;
        let mut events = match watched {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(cp, %error, "networking: namespaces not watched");
                return;
            }
        };
        if let Err(error) = networking::ensure_all(client, mode).await {
            tracing::warn!(cp, %error, "networking: policies not applied");
        }
        loop {
            match events.next().await {
                None => return,
                Some(Err(error)) => {
                    tracing::debug!(cp, %error, "networking: namespace watch ended; again");
                    break;
                }
                Some(Ok(event)) => {
                    let key = String::from_utf8_lossy(&event.kv.key);
                    let created = event.kind == EventKind::Put && event.prev.is_none();
                    let applied = if let Some(namespace) =
                        key.strip_prefix(&prefixes.namespaces).filter(|_| created)
                    {
                        networking::ensure_namespace(client, namespace, mode).await
                    } else if let Some((namespace, policy)) = key
                        .strip_prefix(&prefixes.policies)
                        .and_then(|rest| rest.split_once('/'))
                        .filter(|(namespace, policy)| {
                            event.kind == EventKind::Delete
                                && networking::is_kept(namespace, policy, mode)
                        })
                    {
                        tracing::debug!(cp, namespace, policy, "networking: policy restored");
                        networking::restore(client, namespace, mode).await
                    } else {
                        Ok(())
                    };
                    if let Err(error) = applied {
                        tracing::warn!(cp, %key, %error, "networking: policies not applied");
                    }
                }
            }
        }
    }
}
