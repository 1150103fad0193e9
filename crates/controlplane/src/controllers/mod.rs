//! The built-in controllers of a control plane, as kube-controller-manager runs them but
//! driven by the writes that need them: the namespace controller ([`namespaces`]), the
//! garbage collector ([`gc`]), the ServiceAccount and root-CA publishers
//! ([`serviceaccounts`]) and the `kubernetes` Service ([`kubernetes_service`]).
//!
//! Writes hand work to a per-control-plane queue; a tokio task drains it and ends when it
//! is empty, so an idle control plane runs nothing. Before a write whose consequences the
//! garbage collector must see (a deletion, or a mark for deletion), [`prepare`] makes sure
//! the store holds [`PENDING_MARKER`]; the task deletes the marker once the queue is empty.
//! A start that finds the marker left behind by an earlier process scans the store once
//! for what the garbage collector still owes; a start that does not (every idle or new
//! store) only reads the namespaces.

pub mod gc;
mod internal;
pub mod kubernetes_service;
pub mod namespaces;
pub mod serviceaccounts;

use crate::controlplane::ControlPlane;
use crate::object::meta_str;
use crate::registry::ResourceDef;
use kflex_storage_backends::{RangeRequest, StoreError};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// The store key that says the garbage collector has work a restart must not lose.
pub const PENDING_MARKER: &str = "/registry/kflex/controllers/pending";

/// What the controllers need to know about the server that serves the control plane.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The CA certificate (PEM) that verifies the server's certificate: published as
    /// ConfigMap `kube-root-ca.crt` in every namespace. Without it, no ConfigMap is written.
    pub root_ca: Option<String>,
    /// The port the server listens on: the target port of Service `default/kubernetes`
    /// (443 when not given).
    pub server_port: Option<u16>,
}

impl Settings {
    /// The settings of a control plane served at `url` (`https://host[:port][/path]`) with
    /// a certificate of `root_ca`.
    pub fn served_at(url: &str, root_ca: &str) -> Self {
        let authority = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or("");
        let port = authority
            .rsplit_once(':')
            .filter(|(host, _)| !host.is_empty() && !authority.ends_with(']'))
            .and_then(|(_, port)| port.parse().ok());
        Settings {
            root_ca: Some(root_ca.to_owned()),
            server_port: port.or(Some(443)),
        }
    }
}

/// One unit of controller work.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Work {
    /// Scan the whole store for what the garbage collector still owes (after a restart).
    Resume,
    /// Advance the deletion of a namespace.
    Namespace(String),
    /// Give a namespace its `default` ServiceAccount and `kube-root-ca.crt` ConfigMap.
    Populate(String),
    /// Write Service `default/kubernetes` when missing.
    KubernetesService,
    /// An object deleted or being deleted: collect its dependents, act on its
    /// `orphan`/`foregroundDeletion` finalizers.
    Owner(ObjectRef),
    /// An object written with owner references: collected if none of its owners exists.
    Dependent(ObjectRef),
}

/// An object by resource, namespace, name and uid.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    /// The API group (`""` for the core group).
    pub group: String,
    /// A version the resource is served at.
    pub version: String,
    /// The plural resource name.
    pub plural: String,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
    /// The object's uid: an object of the same name with another uid is another object.
    pub uid: String,
}

impl ObjectRef {
    /// `object`, one of `def`'s.
    pub fn of(def: &ResourceDef, object: &Value) -> Self {
        ObjectRef {
            group: def.group.clone(),
            version: def.version.clone(),
            plural: def.plural.clone(),
            namespace: meta_str(object, "namespace")
                .filter(|_| def.namespaced)
                .map(str::to_owned),
            name: meta_str(object, "name").unwrap_or("").to_owned(),
            uid: meta_str(object, "uid").unwrap_or("").to_owned(),
        }
    }

    /// Its resource, when the control plane still serves it.
    fn def(&self, cp: &ControlPlane) -> Option<Arc<ResourceDef>> {
        cp.registry()
            .lookup(&self.group, &self.version, &self.plural)
    }
}

/// The controllers' state of one control plane.
#[derive(Default)]
pub(crate) struct Controllers {
    this: OnceLock<Weak<ControlPlane>>,
    settings: Settings,
    state: Mutex<State>,
    /// Serializes the writes of [`PENDING_MARKER`].
    marker: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    queue: Vec<Work>,
    /// Whether a task drains the queue.
    running: bool,
    /// Writes between [`prepare`] and their hooks.
    in_flight: usize,
    /// Whether the store holds [`PENDING_MARKER`] (as far as this process knows).
    marked: bool,
    /// Namespaces being deleted: deleting their content advances them.
    terminating: HashSet<String>,
    /// Uids of owners deleting their dependents in the foreground.
    waiting: HashSet<String>,
    /// Whether garbage collection failed (the store was unavailable): the marker then
    /// stays, for the next start to scan again.
    failed: bool,
}

impl Controllers {
    /// The controllers of a control plane with `settings`.
    pub(crate) fn new(settings: Settings) -> Self {
        Controllers {
            settings,
            ..Default::default()
        }
    }

    /// The settings they were made with.
    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `work` (once) and starts the task that drains the queue if none runs.
    fn enqueue(&self, work: Work) {
        {
            let mut state = self.state();
            if !state.queue.contains(&work) {
                state.queue.push(work);
            }
        }
        self.kick();
    }

    /// Starts the draining task when there is something to do and none runs.
    fn kick(&self) {
        let Some(cp) = self.this.get().and_then(Weak::upgrade) else {
            return;
        };
        {
            let mut state = self.state();
            let idle_marker =
                state.marked && state.in_flight == 0 && state.waiting.is_empty() && !state.failed;
            if state.running || (state.queue.is_empty() && !idle_marker) {
                return;
            }
            state.running = true;
        }
        tokio::spawn(drain(cp));
    }

    fn is_terminating(&self, namespace: &str) -> bool {
        self.state().terminating.contains(namespace)
    }

    fn set_terminating(&self, namespace: &str, terminating: bool) {
        let mut state = self.state();
        if terminating {
            state.terminating.insert(namespace.to_owned());
        } else {
            state.terminating.remove(namespace);
        }
    }

    fn set_waiting(&self, uid: &str, waiting: bool) {
        let mut state = self.state();
        if waiting {
            state.waiting.insert(uid.to_owned());
        } else {
            state.waiting.remove(uid);
        }
    }

    /// Drops queued work that `done` says is finished.
    fn forget(&self, done: &Work) {
        self.state().queue.retain(|w| w != done);
    }
}

/// Starts the controllers of `cp`: resumes what an earlier process left (Terminating
/// namespaces; the garbage collector's work when [`PENDING_MARKER`] is present) and
/// writes the bootstrap objects, in a task that ends when done.
pub(crate) fn start(cp: &Arc<ControlPlane>) {
    let controllers = cp.controllers();
    let _ = controllers.this.set(Arc::downgrade(cp));
    let cp = cp.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        match resume(&cp).await {
            Ok(()) => tracing::debug!(
                control_plane = cp.name(),
                elapsed_us = started.elapsed().as_micros() as u64,
                "controllers resumed"
            ),
            Err(error) => {
                tracing::warn!(control_plane = cp.name(), %error, "resuming the controllers")
            }
        }
    });
}

/// Starts the controllers of `cp` and returns once the work starting gives them is done
/// (the bootstrap namespaces' ServiceAccounts and ConfigMaps, `svc/kubernetes`): how a
/// spare store is prepared before it is offered.
pub(crate) async fn start_and_settle(cp: &Arc<ControlPlane>) -> Result<(), StoreError> {
    let controllers = cp.controllers();
    let _ = controllers.this.set(Arc::downgrade(cp));
    // Marked running, the work `resume` queues waits for the drain below, on this task.
    controllers.state().running = true;
    let resumed = resume(cp).await;
    drain(cp.clone()).await;
    resumed
}

async fn resume(cp: &ControlPlane) -> Result<(), StoreError> {
    let controllers = cp.controllers();
    let store = cp.store();
    if store
        .get(PENDING_MARKER.as_bytes(), None)
        .await?
        .0
        .is_some()
    {
        controllers.state().marked = true;
        controllers.enqueue(Work::Resume);
    }
    controllers.enqueue(Work::KubernetesService);
    let namespaces = store
        .range(RangeRequest {
            prefix: b"/registry/namespaces/".to_vec(),
            ..Default::default()
        })
        .await?;
    for kv in &namespaces.kvs {
        let Ok(namespace) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        let name = meta_str(&namespace, "name").unwrap_or("").to_owned();
        if meta_str(&namespace, "deletionTimestamp").is_some() {
            controllers.set_terminating(&name, true);
            controllers.enqueue(Work::Namespace(name));
        } else {
            controllers.enqueue(Work::Populate(name));
        }
    }
    controllers.kick();
    Ok(())
}

/// Drains the queue of `cp`'s controllers, then removes [`PENDING_MARKER`].
async fn drain(cp: Arc<ControlPlane>) {
    let controllers = cp.controllers();
    loop {
        let batch = std::mem::take(&mut controllers.state().queue);
        if batch.is_empty() {
            let _writing = controllers.marker.lock().await;
            {
                let mut state = controllers.state();
                if !state.queue.is_empty() {
                    continue;
                }
                let keep = state.in_flight > 0 || !state.waiting.is_empty() || state.failed;
                if !state.marked || keep {
                    // A write in flight keeps the marker (its guard starts a new drain),
                    // and so do owners waiting for their dependents and failed work.
                    state.running = false;
                    return;
                }
            }
            let cleared = match cp.store().delete(PENDING_MARKER.as_bytes(), None).await {
                Ok(_) | Err(StoreError::NotFound { .. }) => true,
                Err(error) => {
                    tracing::warn!(control_plane = cp.name(), %error, "clearing the controllers' marker");
                    false
                }
            };
            let mut state = controllers.state();
            state.marked = !cleared;
            if !state.queue.is_empty() {
                // Queued while the marker was being removed: its kick saw this task running.
                continue;
            }
            state.running = false;
            return;
        }
        process(&cp, batch).await;
    }
}

/// Does one batch of work: owners grouped by where their dependents can be, so that one
/// scan serves every owner of a namespace.
async fn process(cp: &ControlPlane, batch: Vec<Work>) {
    let mut owners: Vec<ObjectRef> = Vec::new();
    let mut dependents: Vec<ObjectRef> = Vec::new();
    let mut resume = false;
    // Namespaces' own objects are independent writes: made at once, they are done in
    // about one commit's time instead of one per object.
    let mut independent = Vec::new();
    for work in batch {
        let outcome = match work {
            Work::Resume => {
                resume = true;
                Ok(())
            }
            Work::Namespace(name) => namespaces::run(cp, &name).await,
            Work::Populate(name) => {
                independent.push(futures::future::Either::Left(async move {
                    serviceaccounts::populate(cp, &name).await
                }));
                Ok(())
            }
            Work::KubernetesService => {
                independent.push(futures::future::Either::Right(kubernetes_service::ensure(
                    cp,
                )));
                Ok(())
            }
            Work::Owner(owner) => {
                owners.push(owner);
                Ok(())
            }
            Work::Dependent(dependent) => {
                dependents.push(dependent);
                Ok(())
            }
        };
        report(cp, outcome);
    }
    for outcome in futures::future::join_all(independent).await {
        report(cp, outcome);
    }
    let outcome = if resume {
        gc::resume(cp, owners).await
    } else {
        gc::collect(cp, owners).await
    };
    let checked = gc::check_dependents(cp, dependents).await;
    if let Err(error) = outcome.and(checked) {
        tracing::warn!(
            control_plane = cp.name(),
            error = error.message(),
            "garbage collection failed"
        );
        cp.controllers().state().failed = true;
    }
}

/// Logs failed controller work (it runs again when the next write or start needs it).
fn report(cp: &ControlPlane, outcome: Result<(), crate::status::ApiError>) {
    if let Err(error) = outcome {
        tracing::warn!(
            control_plane = cp.name(),
            error = error.message(),
            "controller work failed"
        );
    }
}

/// Held by a write that deletes or marks objects for deletion, from before the store
/// write until its hooks ran: keeps [`PENDING_MARKER`] in the store meanwhile.
#[must_use]
pub(crate) struct Pending<'a> {
    controllers: &'a Controllers,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.controllers.state().in_flight -= 1;
        self.controllers.kick();
    }
}

/// Makes sure [`PENDING_MARKER`] is stored before a write whose consequences the
/// controllers must see even if the process stops right after it.
pub(crate) async fn prepare(cp: &ControlPlane) -> Pending<'_> {
    let controllers = cp.controllers();
    let _writing = controllers.marker.lock().await;
    if !controllers.state().marked {
        let written = cp
            .store()
            .create(
                PENDING_MARKER.as_bytes(),
                bytes::Bytes::from_static(b"{}"),
                None,
            )
            .await;
        match written {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => controllers.state().marked = true,
            Err(error) => {
                tracing::warn!(control_plane = cp.name(), %error, "writing the controllers' marker")
            }
        }
    }
    controllers.state().in_flight += 1;
    Pending { controllers }
}

/// Tells the controllers that `object` of `def` was written: `deleted` when the write
/// removed it from the store, else created or updated (possibly marked for deletion).
pub(crate) fn after_write(cp: &ControlPlane, def: &ResourceDef, object: &Value, deleted: bool) {
    let controllers = cp.controllers();
    let namespace = meta_str(object, "namespace").filter(|_| def.namespaced);
    let name = meta_str(object, "name").unwrap_or("");
    let is_namespace = !def.custom && def.group.is_empty() && def.plural == "namespaces";
    let deleting = meta_str(object, "deletionTimestamp").is_some();
    if is_namespace {
        match (deleted, deleting) {
            (true, _) => controllers.set_terminating(name, false),
            (false, true) if !controllers.is_terminating(name) => {
                controllers.set_terminating(name, true);
                controllers.enqueue(Work::Namespace(name.to_owned()));
            }
            (false, true) => {}
            (false, false) => controllers.enqueue(Work::Populate(name.to_owned())),
        }
    }
    if let Some(ns) = namespace {
        if controllers.is_terminating(ns) {
            if deleted {
                controllers.enqueue(Work::Namespace(ns.to_owned()));
            }
        } else if serviceaccounts::needs_populate(controllers.settings(), def, object, deleted) {
            controllers.enqueue(Work::Populate(ns.to_owned()));
        }
    }
    let is_service = !def.custom && def.group.is_empty() && def.plural == "services";
    if is_service
        && deleted
        && namespace == Some(kubernetes_service::NAMESPACE)
        && name == kubernetes_service::NAME
    {
        controllers.enqueue(Work::KubernetesService);
    }
    gc::after_write(cp, def, object, deleted);
}

/// Queues the garbage collection of `owner`.
fn collect(cp: &ControlPlane, owner: ObjectRef) {
    cp.controllers().enqueue(Work::Owner(owner));
}

/// Queues the check of the owners of `dependent`.
fn check_owners(cp: &ControlPlane, dependent: ObjectRef) {
    cp.controllers().enqueue(Work::Dependent(dependent));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_port_comes_from_the_url() {
        let port = |url: &str| Settings::served_at(url, "ca").server_port;
        assert_eq!(port("https://127.0.0.1:6443"), Some(6443));
        assert_eq!(port("https://kflex.example.com/clusters/a"), Some(443));
        assert_eq!(port("https://[::1]:8443/x"), Some(8443));
        assert_eq!(port("https://[::1]"), Some(443));
    }
}
