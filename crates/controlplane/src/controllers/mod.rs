//! The built-in controllers of a control plane, as kube-controller-manager runs them but
//! driven by the writes that need them: the namespace controller ([`namespaces`]), the
//! garbage collector ([`gc`]), the ServiceAccount and root-CA publishers
//! ([`serviceaccounts`]) and the `kubernetes` Service ([`kubernetes_service`]).
//!
//! Writes hand work to a per-control-plane queue; a tokio task drains it and ends when it
//! is empty, so an idle control plane runs nothing. Of several processes serving one
//! store, only the holder of the controllers' Lease drains ([`leader`]); it holds the lease
//! only while it has work. Before a write whose consequences the garbage collector must see
//! (a deletion, or a mark for deletion), [`prepare`] registers this process in the lease as
//! owing work; the task deregisters it once the queue is empty. A start (or a takeover)
//! that finds work owed by a process no longer running scans the store once for what the
//! garbage collector still owes; one that does not (every idle or new store) only reads
//! the namespaces. Work that fails because the store is unavailable is retried with
//! backoff.

pub mod gc;
mod internal;
pub mod kubernetes_service;
pub mod leader;
pub mod namespaces;
pub mod serviceaccounts;

use crate::controlplane::ControlPlane;
use crate::object::meta_str;
use crate::registry::ResourceDef;
use futures::StreamExt;
use kflex_storage_backends::{RangeRequest, Revision, StoreError};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

/// The longest wait before failed work is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

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
    /// Do what a start does: taken over from a process that stopped while it led.
    Takeover,
    /// Nothing but taking the lease, which scans for the work of processes whose entries
    /// went stale meanwhile.
    Check,
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
    /// The controllers' Lease, as this process holds it.
    lease: leader::Lease,
}

#[derive(Default)]
struct State {
    queue: Vec<Work>,
    /// Whether a task drains the queue.
    running: bool,
    /// Writes between [`prepare`] and their hooks.
    in_flight: usize,
    /// Whether this process holds the lease, or is registered in it as owing work: the
    /// drain then ends with a release.
    in_lease: bool,
    /// Namespaces being deleted: deleting their content advances them.
    terminating: HashSet<String>,
    /// Uids of owners deleting their dependents in the foreground.
    waiting: HashSet<String>,
    /// Failures in a row of garbage collection (the store was unavailable): while some,
    /// this process stays registered and scans again after a backoff.
    failures: u32,
    /// Whether a [`Work::Check`] is due.
    check_armed: bool,
    /// Failures in a row of each namespace's deletion: tried again after a backoff.
    namespace_failures: std::collections::HashMap<String, u32>,
}

impl State {
    /// Whether this process owes nothing beyond its queue.
    fn done(&self) -> bool {
        self.in_flight == 0 && self.waiting.is_empty() && self.failures == 0
    }
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
        self.enqueue_only(work);
        self.kick();
    }

    /// Queues `work` (once), for a drain that runs or is about to.
    fn enqueue_only(&self, work: Work) {
        let mut state = self.state();
        if !state.queue.contains(&work) {
            state.queue.push(work);
        }
    }

    /// Puts a batch this process may not run now (it lost the lease) back in front.
    fn requeue(&self, batch: Vec<Work>) {
        let mut state = self.state();
        let later = std::mem::replace(&mut state.queue, batch);
        for work in later {
            if !state.queue.contains(&work) {
                state.queue.push(work);
            }
        }
    }

    /// Starts the draining task when there is something to do and none runs.
    fn kick(&self) {
        let Some(cp) = self.this.get().and_then(Weak::upgrade) else {
            return;
        };
        {
            let mut state = self.state();
            let release_due = state.in_lease && state.in_flight == 0;
            if state.running || (state.queue.is_empty() && !release_due) {
                return;
            }
            state.running = true;
        }
        tokio::spawn(drain(cp));
    }

    /// Kicks the queue again after `delay`, while another process holds the lease. Only a
    /// control plane with work waits so.
    fn kick_after(&self, delay: Duration) {
        self.later(delay, None);
    }

    /// Kicks the queue again once the lease is written after revision `seen` (its holder
    /// released or renewed it), or after `at_most`: a store watch on the lease key, only
    /// while this process waits with work.
    fn kick_on_lease_change(&self, cp: &ControlPlane, seen: Revision, at_most: Duration) {
        let Some(this) = self.this.get().cloned() else {
            return;
        };
        let store = cp.store().clone();
        let key = leader::key(cp);
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let changed = async {
                let mut events = store.watch(key.as_bytes(), seen).await.ok()?;
                events.next().await?.ok()
            };
            if tokio::time::timeout(at_most, changed)
                .await
                .is_ok_and(|event| event.is_none())
            {
                // The watch could not run: wait out the period instead.
                tokio::time::sleep_until(started + at_most).await;
            }
            if let Some(cp) = this.upgrade() {
                cp.controllers().kick();
            }
        });
    }

    /// After a pass of namespace `name`'s deletion: a failed one is tried again after a
    /// backoff (a store error, or content the namespace cannot delete yet), as upstream's
    /// namespace controller retries with rate limiting.
    fn namespace_outcome(&self, name: &str, failed: bool) {
        let delay = {
            let mut state = self.state();
            if !failed {
                state.namespace_failures.remove(name);
                return;
            }
            let failures = state.namespace_failures.entry(name.to_owned()).or_default();
            *failures += 1;
            backoff(*failures)
        };
        self.enqueue_after(Work::Namespace(name.to_owned()), delay);
    }

    /// Queues `work` after `delay`: a scan again after a failure.
    fn enqueue_after(&self, work: Work, delay: Duration) {
        self.later(delay, Some(work));
    }

    fn later(&self, delay: Duration, work: Option<Work>) {
        let Some(cp) = self.this.get().cloned() else {
            return;
        };
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(cp) = cp.upgrade() {
                let controllers = cp.controllers();
                match work {
                    Some(work) => controllers.enqueue(work),
                    None => controllers.kick(),
                }
            }
        });
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
/// namespaces; the garbage collector's work when the lease records some owed) and writes
/// the bootstrap objects, in a task that ends when done.
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
        cp.controllers().kick();
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

/// Queues what a start (or a takeover from a process that stopped) owes: a scan for the
/// garbage collector's work when the lease records some, the namespaces' work, and
/// `svc/kubernetes`.
async fn resume(cp: &ControlPlane) -> Result<(), StoreError> {
    let controllers = cp.controllers();
    let store = cp.store();
    if controllers.lease.owed(cp).await? {
        controllers.enqueue_only(Work::Resume);
    }
    controllers.enqueue_only(Work::KubernetesService);
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
            controllers.enqueue_only(Work::Namespace(name));
        } else {
            controllers.enqueue_only(Work::Populate(name));
        }
    }
    Ok(())
}

/// Takes the lease before the queue is drained. `false`: another process leads or the
/// lease could not be written, and the queue is kicked again later.
async fn lead(cp: &ControlPlane) -> bool {
    let controllers = cp.controllers();
    let (retry, error) = match controllers.lease.lead(cp).await {
        Ok(leader::Leadership::Leading { resume: takeover }) => {
            controllers.state().in_lease = true;
            if takeover {
                // A process stopped while it led or owed work: what it owed is found again.
                tracing::info!(
                    control_plane = cp.name(),
                    "took over the controllers' work from a stopped process"
                );
                controllers.enqueue_only(Work::Takeover);
            }
            return true;
        }
        Ok(leader::Leadership::Waiting { seen, retry }) => {
            controllers.state().running = false;
            controllers.kick_on_lease_change(cp, seen, retry);
            return false;
        }
        Err(error) => (leader::RETRY_PERIOD, Some(error)),
    };
    if let Some(error) = error {
        tracing::warn!(control_plane = cp.name(), %error, "taking the controllers' lease");
    }
    controllers.state().running = false;
    controllers.kick_after(retry);
    false
}

/// Renews the lease every [`leader::RETRY_PERIOD`] while a drain runs (only then).
fn renew_while_draining(cp: &Arc<ControlPlane>) -> Option<tokio::task::AbortHandle> {
    if cp.store().exclusive() {
        return None;
    }
    let cp = Arc::downgrade(cp);
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(leader::RETRY_PERIOD).await;
            let Some(cp) = cp.upgrade() else { return };
            // Not leading (released, or lost) is no reason to stop: the drain may take the
            // lease again, and ends this task when it ends.
            match cp.controllers().lease.renew(&cp).await {
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(control_plane = cp.name(), %error, "renewing the controllers' lease")
                }
            }
        }
    });
    Some(task.abort_handle())
}

/// Drains the queue of `cp`'s controllers while this process leads, then releases the
/// lease.
async fn drain(cp: Arc<ControlPlane>) {
    let controllers = cp.controllers();
    let has_work = !controllers.state().queue.is_empty();
    if has_work && !lead(&cp).await {
        return;
    }
    let renewing = renew_while_draining(&cp);
    let _stop_renewing = scopeguard(renewing);
    loop {
        let batch = std::mem::take(&mut controllers.state().queue);
        if !batch.is_empty() {
            if !controllers.lease.leading(&cp).await {
                // Work queued during a drain that only meant to release, or renewals failed
                // and another process may lead: take the lease (again) first.
                controllers.requeue(batch);
                if lead(&cp).await {
                    continue;
                }
                return;
            }
            process(&cp, batch).await;
            continue;
        }
        {
            let mut state = controllers.state();
            if state.in_flight > 0 || !state.in_lease {
                // A write in flight keeps the lease: its guard starts a new drain.
                state.running = false;
                return;
            }
        }
        let released = controllers
            .lease
            .release(&cp, || controllers.state().done())
            .await;
        let queued = {
            let mut state = controllers.state();
            match released {
                Ok(recheck) => {
                    state.in_lease = !state.done();
                    if let Some(after) = recheck.filter(|_| !state.check_armed) {
                        state.check_armed = true;
                        controllers.enqueue_after(Work::Check, after + Duration::from_secs(1));
                    }
                }
                Err(error) => {
                    tracing::warn!(control_plane = cp.name(), %error, "releasing the controllers' lease")
                }
            }
            let queued = !state.queue.is_empty();
            if !queued {
                state.running = false;
            }
            queued
        };
        // Queued while the lease was being released: its kick saw this task running.
        if !queued || !lead(&cp).await {
            return;
        }
    }
}

/// Aborts the renewing task when the drain ends, however it ends.
fn scopeguard(task: Option<tokio::task::AbortHandle>) -> impl Drop {
    struct Abort(Option<tokio::task::AbortHandle>);
    impl Drop for Abort {
        fn drop(&mut self) {
            if let Some(task) = &self.0 {
                task.abort();
            }
        }
    }
    Abort(task)
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
            Work::Takeover => {
                if let Err(error) = self::resume(cp).await {
                    tracing::warn!(control_plane = cp.name(), %error, "taking over the controllers' work");
                    cp.controllers()
                        .enqueue_after(Work::Takeover, leader::RETRY_PERIOD);
                }
                Ok(())
            }
            Work::Check => {
                cp.controllers().state().check_armed = false;
                Ok(())
            }
            Work::Namespace(name) => {
                let outcome = namespaces::run(cp, &name).await;
                cp.controllers().namespace_outcome(&name, outcome.is_err());
                outcome
            }
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
    let controllers = cp.controllers();
    let outcome = if resume {
        let scanned = gc::resume(cp, owners).await;
        if scanned.is_ok() {
            controllers.lease.resumed().await;
        }
        scanned
    } else {
        gc::collect(cp, owners).await
    };
    let checked = gc::check_dependents(cp, dependents).await;
    let mut state = controllers.state();
    match outcome.and(checked) {
        Ok(()) if resume => state.failures = 0,
        Ok(()) => {}
        Err(error) => {
            // What failed is found again by a scan, once the store answers.
            state.failures += 1;
            let backoff = backoff(state.failures);
            tracing::warn!(
                control_plane = cp.name(),
                error = error.message(),
                retry_in_s = backoff.as_secs(),
                "garbage collection failed"
            );
            drop(state);
            controllers.enqueue_after(Work::Resume, backoff);
        }
    }
}

/// The wait before trying failed work again after `failures` failures in a row: 4 s,
/// doubling, at most [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    leader::RETRY_PERIOD
        .saturating_mul(1 << failures.min(5))
        .min(MAX_BACKOFF)
}

/// Logs failed controller work: a namespace's deletion is tried again after a backoff, the
/// rest when the next write or start needs it.
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
/// write until its hooks ran: keeps this process registered in the lease meanwhile. The
/// write calls [`Pending::done`] once its hooks told the controllers (or nothing was
/// written); dropped without that (a cancelled request, a store error that may hide a
/// commit), it queues a scan of the store, so no consequence of the write is lost.
#[must_use]
pub(crate) struct Pending<'a> {
    controllers: &'a Controllers,
    done: bool,
}

impl Pending<'_> {
    /// The controllers know what the write did (or it wrote nothing).
    pub(crate) fn done(mut self) {
        self.done = true;
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.controllers.enqueue_only(Work::Resume);
        }
        self.controllers.state().in_flight -= 1;
        self.controllers.kick();
    }
}

/// Registers this process in the controllers' lease as owing work, before a write whose
/// consequences the controllers must see even if the process stops right after it.
pub(crate) async fn prepare(cp: &ControlPlane) -> Pending<'_> {
    let controllers = cp.controllers();
    // Counted first, so that a drain ending meanwhile does not deregister this process;
    // the guard exists before the await, so a request cancelled meanwhile gives it back.
    controllers.state().in_flight += 1;
    let pending = Pending {
        controllers,
        done: false,
    };
    match controllers.lease.register(cp).await {
        Ok(()) => controllers.state().in_lease = true,
        Err(error) => {
            tracing::warn!(control_plane = cp.name(), %error, "registering in the controllers' lease")
        }
    }
    pending
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

/// The stored object `name` of `def` in `namespace`, if any.
async fn stored(
    cp: &ControlPlane,
    def: &ResourceDef,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>, crate::status::ApiError> {
    let (kv, _) = cp
        .store()
        .get(def.key(namespace, name).as_bytes(), None)
        .await
        .map_err(|e| crate::status::ApiError::unavailable(e.to_string()))?;
    kv.map(|kv| crate::handlers::decode(&kv)).transpose()
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
    fn a_write_abandoned_before_its_hooks_queues_a_scan() {
        let controllers = Controllers::default();
        controllers.state().in_flight = 2;
        Pending {
            controllers: &controllers,
            done: false,
        }
        .done();
        assert!(controllers.state().queue.is_empty());
        drop(Pending {
            controllers: &controllers,
            done: false,
        });
        let state = controllers.state();
        assert_eq!(
            (state.queue.as_slice(), state.in_flight),
            (&[Work::Resume][..], 0)
        );
    }

    #[test]
    fn failed_work_waits_longer_each_time_up_to_a_minute() {
        let waits: Vec<u64> = (1..=6).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn the_server_port_comes_from_the_url() {
        let port = |url: &str| Settings::served_at(url, "ca").server_port;
        assert_eq!(port("https://127.0.0.1:6443"), Some(6443));
        assert_eq!(port("https://kflex.example.com/clusters/a"), Some(443));
        assert_eq!(port("https://[::1]:8443/x"), Some(8443));
        assert_eq!(port("https://[::1]"), Some(443));
    }
}
