//! The garbage collector, with the contract of upstream's: an object whose owners are all
//! gone is deleted (Background); an owner deleted in the Foreground keeps its
//! `foregroundDeletion` finalizer until its dependents with `blockOwnerDeletion` are gone;
//! an owner deleted with Orphan loses its `orphan` finalizer once no dependent refers to it.
//! Owner references are resolved as upstream resolves them: by uid (an owner recreated
//! under the same name is another object), in the dependent's namespace, and never from a
//! cluster-scoped dependent to a namespaced owner (such a dependent is left alone and
//! reported with an `OwnerRefInvalidNamespace` Event). Cycles of blocking references do not
//! keep foreground deletions waiting for ever: see [`Verdict::Cascade`] and `break_cycle`.
//!
//! There is no graph in memory: when an owner is deleted or marked, the objects that may
//! depend on it are read from the store (its namespace's, for a namespaced owner; every
//! object, for a cluster-scoped one), and owners of one batch share one such read.

use super::{internal, ObjectRef};
use crate::controlplane::ControlPlane;
use crate::handlers::decode;
use crate::object::{self, meta_str, metadata_mut};
use crate::registry::ResourceDef;
use crate::status::ApiError;
use futures::{StreamExt, TryStreamExt};
use kflex_storage_backends::RangeRequest;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// The finalizer of an owner deleted with `propagationPolicy: Orphan`.
pub const ORPHAN: &str = "orphan";
/// The finalizer of an owner deleted with `propagationPolicy: Foreground`.
pub const FOREGROUND: &str = "foregroundDeletion";
/// How often a write that lost a race is tried again.
const RETRIES: usize = 5;
/// Concurrent range reads of one scan.
const SCAN_CONCURRENCY: usize = 4;

/// One `metadata.ownerReferences` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerReference {
    /// The owner's `apiVersion`.
    pub api_version: String,
    /// The owner's kind.
    pub kind: String,
    /// The owner's name (in the dependent's namespace when the owner is namespaced).
    pub name: String,
    /// The owner's uid.
    pub uid: String,
    /// Whether a Foreground deletion of the owner waits for this dependent.
    pub block_owner_deletion: bool,
}

/// The owner references of `object` (malformed entries are skipped).
pub fn owner_references(object: &Value) -> Vec<OwnerReference> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .filter_map(|r| {
                    let text = |f: &str| r.get(f).and_then(Value::as_str).map(str::to_owned);
                    Some(OwnerReference {
                        api_version: text("apiVersion")?,
                        kind: text("kind")?,
                        name: text("name")?,
                        uid: text("uid")?,
                        block_owner_deletion: r
                            .get("blockOwnerDeletion")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `object` without the owner references whose uid is in `uids`; `None` when none is.
pub fn without_references(object: &Value, uids: &HashSet<String>) -> Option<Value> {
    let refs = object["metadata"]["ownerReferences"].as_array()?;
    let kept: Vec<Value> = refs
        .iter()
        .filter(|r| !r["uid"].as_str().is_some_and(|uid| uids.contains(uid)))
        .cloned()
        .collect();
    if kept.len() == refs.len() {
        return None;
    }
    let mut changed = object.clone();
    let meta = metadata_mut(&mut changed);
    if kept.is_empty() {
        meta.remove("ownerReferences");
    } else {
        meta.insert("ownerReferences".into(), json!(kept));
    }
    Some(changed)
}

/// What the owners of a dependent say about it, as upstream classifies them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Owners {
    /// Owners that exist and are not deleting their dependents in the foreground.
    pub solid: Vec<String>,
    /// Owners that are gone (or were replaced by an object with another uid).
    pub dangling: Vec<String>,
    /// Owners that are deleting their dependents in the foreground.
    pub waiting: Vec<String>,
    /// References that cannot be resolved: a cluster-scoped dependent's namespaced owners.
    pub unresolvable: Vec<String>,
}

/// What the garbage collector does with a dependent that is not being deleted.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It keeps a solid owner and refers to no other.
    Keep,
    /// It refers to an owner that cannot be resolved (a cluster-scoped dependent's
    /// namespaced owner): upstream leaves it alone, whatever its other references say, and
    /// reports it with an `OwnerRefInvalidNamespace` Event.
    Unresolvable,
    /// It keeps a solid owner; the references to these gone or deleting owners go.
    DropReferences(HashSet<String>),
    /// An owner deletes its dependents in the foreground and so does it, for it has
    /// dependents of its own (upstream's cascade through the middle of a chain).
    Cascade,
    /// It is deleted with this propagation policy.
    Delete(&'static str),
}

/// Upstream's decision for a dependent with `owners`, whose own finalizers are
/// `finalizers` and which has dependents of its own when `has_dependents`.
pub fn verdict(owners: &Owners, finalizers: &[String], has_dependents: bool) -> Verdict {
    if !owners.unresolvable.is_empty() {
        return Verdict::Unresolvable;
    }
    if !owners.solid.is_empty() {
        if owners.dangling.is_empty() && owners.waiting.is_empty() {
            return Verdict::Keep;
        }
        let uids = owners.dangling.iter().chain(&owners.waiting).cloned();
        return Verdict::DropReferences(uids.collect());
    }
    if !owners.waiting.is_empty() && has_dependents {
        return Verdict::Cascade;
    }
    if finalizers.iter().any(|f| f == ORPHAN) {
        Verdict::Delete("Orphan")
    } else if finalizers.iter().any(|f| f == FOREGROUND) {
        Verdict::Delete("Foreground")
    } else {
        Verdict::Delete("Background")
    }
}

/// The objects a scan read, with who refers to whom.
#[derive(Default)]
struct Graph {
    nodes: Vec<(Arc<ResourceDef>, Value)>,
    uids: HashSet<String>,
    /// Owner uid → indices of the nodes that refer to it.
    dependents: HashMap<String, Vec<usize>>,
}

impl Graph {
    fn add(&mut self, def: Arc<ResourceDef>, object: Value) {
        let index = self.nodes.len();
        if let Some(uid) = meta_str(&object, "uid") {
            self.uids.insert(uid.to_owned());
        }
        for reference in owner_references(&object) {
            self.dependents
                .entry(reference.uid)
                .or_default()
                .push(index);
        }
        self.nodes.push((def, object));
    }

    fn dependents_of(&self, uid: &str) -> impl Iterator<Item = &(Arc<ResourceDef>, Value)> {
        self.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .map(|&i| &self.nodes[i])
    }

    fn has_dependents(&self, object: &Value) -> bool {
        meta_str(object, "uid").is_some_and(|uid| self.dependents.contains_key(uid))
    }

    /// Whether one of the dependents of `object` deletes its own dependents in the
    /// foreground (upstream's test for a possible cycle).
    fn has_dependent_deleting_dependents(&self, object: &Value) -> bool {
        meta_str(object, "uid").is_some_and(|uid| {
            self.dependents_of(uid)
                .any(|(_, dependent)| deleting_dependents(dependent))
        })
    }

    /// Whether owner `uid` waits for itself: a chain of dependents that block their
    /// owners' deletion and all delete their own dependents in the foreground leads from
    /// it back to it, so that none of them can ever finish.
    fn waits_for_itself(&self, uid: &str) -> bool {
        let mut seen = HashSet::new();
        let mut next = vec![uid.to_owned()];
        while let Some(owner) = next.pop() {
            for (_, dependent) in self.dependents_of(&owner) {
                let blocks = owner_references(dependent)
                    .iter()
                    .any(|r| r.uid == owner && r.block_owner_deletion);
                if !blocks || !deleting_dependents(dependent) {
                    continue;
                }
                let Some(dependent_uid) = meta_str(dependent, "uid") else {
                    continue;
                };
                if dependent_uid == uid {
                    return true;
                }
                if seen.insert(dependent_uid.to_owned()) {
                    next.push(dependent_uid.to_owned());
                }
            }
        }
        false
    }
}

/// Whether `object` is being deleted in the foreground: it waits for its dependents.
fn deleting_dependents(object: &Value) -> bool {
    meta_str(object, "deletionTimestamp").is_some()
        && object::finalizers(object).iter().any(|f| f == FOREGROUND)
}

/// `object` with none of its owner references blocking their owner's deletion; `None`
/// when none does.
pub fn unblocked(object: &Value) -> Option<Value> {
    let refs = object["metadata"]["ownerReferences"].as_array()?;
    if !refs.iter().any(|r| r["blockOwnerDeletion"] == json!(true)) {
        return None;
    }
    let refs: Vec<Value> = refs
        .iter()
        .cloned()
        .map(|mut r| {
            if r["blockOwnerDeletion"] == json!(true) {
                r["blockOwnerDeletion"] = json!(false);
            }
            r
        })
        .collect();
    let mut changed = object.clone();
    metadata_mut(&mut changed).insert("ownerReferences".into(), json!(refs));
    Some(changed)
}

/// One resource per storage prefix that can be listed and deleted, namespaced only when
/// `namespaced_only`: where objects live.
pub(super) fn stored_resources(cp: &ControlPlane, namespaced_only: bool) -> Vec<Arc<ResourceDef>> {
    let mut seen = HashSet::new();
    cp.registry()
        .all()
        .into_iter()
        .filter(|def| def.serves("list") && def.serves("delete"))
        .filter(|def| def.namespaced || !namespaced_only)
        .filter(|def| seen.insert(def.storage_prefix.clone()))
        .collect()
}

/// The resource of `object`, stored under `def`'s prefix, by its `apiVersion` (the one
/// writes of it must name).
pub(super) fn resource_of(
    cp: &ControlPlane,
    def: &Arc<ResourceDef>,
    object: &Value,
) -> Arc<ResourceDef> {
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    if def.api_version() == api_version {
        return def.clone();
    }
    cp.registry()
        .all()
        .into_iter()
        .find(|d| d.storage_prefix == def.storage_prefix && d.api_version() == api_version)
        .unwrap_or_else(|| def.clone())
}

/// Reads the objects of `namespace` (every object, for `None`).
async fn scan(cp: &ControlPlane, namespace: Option<&str>) -> Result<Graph, ApiError> {
    let defs = stored_resources(cp, namespace.is_some());
    let pages: Vec<_> = futures::stream::iter(defs)
        .map(|def| async move {
            let prefix = match namespace {
                Some(ns) => def.collection_prefix(Some(ns)),
                None => def.storage_prefix.clone(),
            };
            let page = cp
                .store()
                .range(RangeRequest {
                    prefix: prefix.into_bytes(),
                    ..Default::default()
                })
                .await
                .map_err(|e| ApiError::unavailable(e.to_string()))?;
            Ok::<_, ApiError>((def, page))
        })
        .buffer_unordered(SCAN_CONCURRENCY)
        .try_collect()
        .await?;
    let mut graph = Graph::default();
    for (def, page) in pages {
        for kv in &page.kvs {
            let object = decode(kv)?;
            let def = resource_of(cp, &def, &object);
            graph.add(def, object);
        }
    }
    Ok(graph)
}

/// Reacts to a write of `object`: a deleted object's dependents are collected and its
/// foreground-deleting owners may finish; an object marked with `orphan` or
/// `foregroundDeletion` has its dependents orphaned or deleted.
pub(super) fn after_write(cp: &ControlPlane, def: &ResourceDef, object: &Value, deleted: bool) {
    if !def.custom && def.group.is_empty() && def.plural == "namespaces" {
        return;
    }
    let controllers = cp.controllers();
    let uid = meta_str(object, "uid").unwrap_or("");
    let namespace = meta_str(object, "namespace").filter(|_| def.namespaced);
    if deleted {
        controllers.set_waiting(uid, false);
        if !namespace.is_some_and(|ns| controllers.is_terminating(ns)) {
            super::collect(cp, ObjectRef::of(def, object));
        }
        let waiting = owner_references(object);
        recheck_waiting(cp, namespace, waiting.iter());
    } else if meta_str(object, "deletionTimestamp").is_some() {
        let finalizers = object::finalizers(object);
        if finalizers.iter().any(|f| f == ORPHAN || f == FOREGROUND) {
            super::collect(cp, ObjectRef::of(def, object));
        }
    } else if !owner_references(object).is_empty() {
        super::check_owners(cp, ObjectRef::of(def, object));
    }
}

/// Reacts to an update of `old` into `new` (of `def`): the owners waiting for their
/// dependents in the foreground that `new` no longer blocks (its reference to them removed,
/// or no longer `blockOwnerDeletion`) may finish, as upstream's graph builder sees it.
pub(crate) fn after_update(cp: &ControlPlane, def: &ResourceDef, old: &Value, new: &Value) {
    let blocking: HashSet<String> = owner_references(new)
        .into_iter()
        .filter(|r| r.block_owner_deletion)
        .map(|r| r.uid)
        .collect();
    let released = owner_references(old);
    let released = released
        .iter()
        .filter(|r| r.block_owner_deletion && !blocking.contains(&r.uid));
    let namespace = meta_str(new, "namespace").filter(|_| def.namespaced);
    recheck_waiting(cp, namespace, released);
}

/// Queues those of the owners `references` name (from a dependent in `namespace`) that
/// wait for their dependents in the foreground.
fn recheck_waiting<'a>(
    cp: &ControlPlane,
    namespace: Option<&str>,
    references: impl Iterator<Item = &'a OwnerReference>,
) {
    let waiting: Vec<&OwnerReference> = {
        let state = cp.controllers().state();
        references
            .filter(|r| state.waiting.contains(&r.uid))
            .collect()
    };
    for reference in waiting {
        if let Some(owner) = owner_ref(cp, namespace, reference) {
            super::collect(cp, owner);
        }
    }
}

/// Collects those of `dependents` whose owners are all gone (upstream does so for an
/// object whose owner it has never seen).
pub(super) async fn check_dependents(
    cp: &ControlPlane,
    dependents: Vec<ObjectRef>,
) -> Result<(), ApiError> {
    let graph = Graph::default();
    let mut first_error = None;
    for dependent in dependents {
        let Some(def) = dependent.def(cp) else {
            continue;
        };
        let namespace = dependent.namespace.as_deref();
        let Some(object) = current(cp, &def, namespace, &dependent.name, &dependent.uid).await?
        else {
            continue;
        };
        let def = resource_of(cp, &def, &object);
        if let Err(error) = attempt_to_delete(cp, &graph, &def, &object, None).await {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The resource an owner reference names.
fn owner_def(cp: &ControlPlane, reference: &OwnerReference) -> Option<Arc<ResourceDef>> {
    let all = cp.registry().all();
    let group = reference
        .api_version
        .rsplit_once('/')
        .map_or("", |(g, _)| g);
    all.iter()
        .find(|d| d.api_version() == reference.api_version && d.kind == reference.kind)
        .or_else(|| {
            all.iter()
                .find(|d| d.group == group && d.kind == reference.kind)
        })
        .cloned()
}

/// The owner a dependent in `namespace` refers to with `reference`; `None` when its kind
/// is not served.
fn owner_ref(
    cp: &ControlPlane,
    namespace: Option<&str>,
    reference: &OwnerReference,
) -> Option<ObjectRef> {
    let def = owner_def(cp, reference)?;
    Some(ObjectRef {
        group: def.group.clone(),
        version: def.version.clone(),
        plural: def.plural.clone(),
        namespace: namespace.filter(|_| def.namespaced).map(str::to_owned),
        name: reference.name.clone(),
        uid: reference.uid.clone(),
    })
}

/// The stored object `target` names, if it still has `target`'s uid.
async fn current(
    cp: &ControlPlane,
    def: &ResourceDef,
    namespace: Option<&str>,
    name: &str,
    uid: &str,
) -> Result<Option<Value>, ApiError> {
    let object = super::stored(cp, def, namespace, name).await?;
    Ok(object.filter(|object| meta_str(object, "uid") == Some(uid)))
}

/// Classifies the owners of `dependent`; the owner of uid `gone`, if any, is known to be
/// gone (even when its kind is no longer served, as after its CRD's deletion). Also gives
/// the references upstream reports as naming an owner in the wrong namespace.
async fn classify(
    cp: &ControlPlane,
    dependent: &Value,
    gone: Option<&str>,
) -> Result<(Owners, Vec<OwnerReference>), ApiError> {
    let namespace = meta_str(dependent, "namespace");
    let mut owners = Owners::default();
    let mut misplaced = Vec::new();
    for reference in owner_references(dependent) {
        if gone == Some(reference.uid.as_str()) {
            owners.dangling.push(reference.uid);
            continue;
        }
        let Some(def) = owner_def(cp, &reference) else {
            // A kind this control plane does not serve cannot be checked: keep.
            owners.solid.push(reference.uid);
            continue;
        };
        let owner = match (def.namespaced, namespace) {
            // A cluster-scoped dependent cannot have a namespaced owner: upstream calls the
            // reference unresolvable and leaves the dependent alone.
            (true, None) => {
                owners.unresolvable.push(reference.uid.clone());
                misplaced.push(reference);
                continue;
            }
            // A namespaced owner is looked up in its dependent's namespace only.
            (true, ns) => current(cp, &def, ns, &reference.name, &reference.uid).await?,
            (false, _) => current(cp, &def, None, &reference.name, &reference.uid).await?,
        };
        match owner {
            None => {
                if let (true, Some(ns)) = (def.namespaced, namespace) {
                    if lives_elsewhere(cp, &def, ns, &reference).await? {
                        misplaced.push(reference.clone());
                    }
                }
                owners.dangling.push(reference.uid)
            }
            Some(owner) if deleting_dependents(&owner) => owners.waiting.push(reference.uid),
            Some(_) => owners.solid.push(reference.uid),
        }
    }
    Ok((owners, misplaced))
}

/// Whether the owner `reference` names, of `def`, lives in a namespace other than
/// `namespace`: one point read per namespace, made only for a dependent whose owner is
/// missing from its own namespace.
async fn lives_elsewhere(
    cp: &ControlPlane,
    def: &ResourceDef,
    namespace: &str,
    reference: &OwnerReference,
) -> Result<bool, ApiError> {
    const NAMESPACES: &str = "/registry/namespaces/";
    let page = cp
        .store()
        .range(RangeRequest {
            prefix: NAMESPACES.as_bytes().to_vec(),
            ..Default::default()
        })
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    for kv in &page.kvs {
        let key = String::from_utf8_lossy(&kv.key);
        let Some(other) = key.strip_prefix(NAMESPACES).filter(|n| *n != namespace) else {
            continue;
        };
        if current(cp, def, Some(other), &reference.name, &reference.uid)
            .await?
            .is_some()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The component upstream's garbage collector names in its Events.
const COMPONENT: &str = "garbage-collector-controller";

/// Reports, as upstream does, that `dependent` (of `def`) names an owner with `reference`
/// that cannot be in the namespace it is looked up in: a Warning Event
/// `OwnerRefInvalidNamespace` about the dependent, in its namespace (`default` for a
/// cluster-scoped one). A failure to write it is logged: it must not stop collection.
async fn report_misplaced(
    cp: &ControlPlane,
    def: &ResourceDef,
    dependent: &Value,
    reference: &OwnerReference,
) {
    let Some(events) = cp.registry().lookup("", "v1", "events") else {
        return;
    };
    let namespace = meta_str(dependent, "namespace");
    let name = meta_str(dependent, "name").unwrap_or("");
    let mut involved = json!({
        "apiVersion": def.api_version(), "kind": def.kind, "name": name,
        "uid": meta_str(dependent, "uid").unwrap_or(""),
    });
    if let Some(ns) = namespace {
        involved["namespace"] = json!(ns);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let now = object::now();
    let event_namespace = namespace.unwrap_or("default");
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{name}.{nanos:x}"), "namespace": event_namespace},
        "involvedObject": involved,
        "reason": "OwnerRefInvalidNamespace",
        "message": format!(
            "ownerRef [{}/{}, namespace: {}, name: {}, uid: {}] does not exist in namespace {:?}",
            reference.api_version, reference.kind, namespace.unwrap_or(""), reference.name,
            reference.uid, namespace.unwrap_or(""),
        ),
        "type": "Warning",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    });
    if let Err(error) = internal::create(cp, &events, Some(event_namespace), &event).await {
        tracing::warn!(
            control_plane = cp.name(),
            error = error.message(),
            "reporting an owner reference to the wrong namespace"
        );
    }
}

/// Upstream's `attemptToDeleteItem`: deletes `dependent` unless a solid owner keeps it
/// (the owner of uid `gone` is known to be gone).
async fn attempt_to_delete(
    cp: &ControlPlane,
    graph: &Graph,
    def: &Arc<ResourceDef>,
    dependent: &Value,
    gone: Option<&str>,
) -> Result<(), ApiError> {
    if meta_str(dependent, "deletionTimestamp").is_some() {
        return Ok(());
    }
    let (owners, misplaced) = classify(cp, dependent, gone).await?;
    for reference in &misplaced {
        report_misplaced(cp, def, dependent, reference).await;
    }
    let finalizers = object::finalizers(dependent);
    let policy = match verdict(&owners, &finalizers, graph.has_dependents(dependent)) {
        Verdict::Keep | Verdict::Unresolvable => return Ok(()),
        Verdict::DropReferences(uids) => {
            return drop_references(cp, def, dependent, &uids).await;
        }
        Verdict::Cascade => {
            // Upstream's cycle breaker: when one of its dependents waits for its own
            // dependents too, they may form a cycle that leads back to the owner waiting
            // for this object. Its references stop blocking their owners first, so that
            // its owners can finish whatever it waits for.
            if graph.has_dependent_deleting_dependents(dependent) {
                rewrite(cp, def, dependent, unblocked).await?;
            }
            "Foreground"
        }
        Verdict::Delete(policy) => policy,
    };
    internal::delete(
        cp,
        def,
        meta_str(dependent, "namespace"),
        meta_str(dependent, "name").unwrap_or(""),
        meta_str(dependent, "uid").unwrap_or(""),
        policy,
    )
    .await
}

/// Rewrites the newest version of `object` with `change` (`None`: nothing to change),
/// again after a concurrent write.
async fn rewrite(
    cp: &ControlPlane,
    def: &Arc<ResourceDef>,
    object: &Value,
    change: impl Fn(&Value) -> Option<Value>,
) -> Result<(), ApiError> {
    let namespace = meta_str(object, "namespace");
    let name = meta_str(object, "name").unwrap_or("");
    let uid = meta_str(object, "uid").unwrap_or("");
    for _ in 0..RETRIES {
        let Some(newest) = current(cp, def, namespace, name, uid).await? else {
            return Ok(());
        };
        let Some(changed) = change(&newest) else {
            return Ok(());
        };
        let def = resource_of(cp, def, &changed);
        match internal::update(cp, &def, &changed, None).await {
            Err(e) if e.code() == 409 => continue,
            Err(e) if e.code() == 404 => return Ok(()),
            other => return other,
        }
    }
    Err(ApiError::conflict(&def.group_resource(), name))
}

/// Removes the references to `uids` from `dependent`.
async fn drop_references(
    cp: &ControlPlane,
    def: &Arc<ResourceDef>,
    dependent: &Value,
    uids: &HashSet<String>,
) -> Result<(), ApiError> {
    rewrite(cp, def, dependent, |newest| {
        without_references(newest, uids)
    })
    .await
}

/// Removes `finalizer` from `owner` (which then goes if it was the last).
async fn remove_finalizer(
    cp: &ControlPlane,
    def: &Arc<ResourceDef>,
    owner: &Value,
    finalizer: &str,
) -> Result<(), ApiError> {
    rewrite(cp, def, owner, |newest| {
        let finalizers = object::finalizers(newest);
        if !finalizers.iter().any(|f| f == finalizer) {
            return None;
        }
        let mut changed = newest.clone();
        let kept: Vec<String> = finalizers.into_iter().filter(|f| f != finalizer).collect();
        metadata_mut(&mut changed).insert("finalizers".into(), json!(kept));
        Some(changed)
    })
    .await
}

/// Whether `dependent` still exists and blocks the deletion of owner `uid`.
async fn still_blocks(
    cp: &ControlPlane,
    def: &ResourceDef,
    dependent: &Value,
    uid: &str,
) -> Result<bool, ApiError> {
    let newest = current(
        cp,
        def,
        meta_str(dependent, "namespace"),
        meta_str(dependent, "name").unwrap_or(""),
        meta_str(dependent, "uid").unwrap_or(""),
    )
    .await?;
    Ok(newest.is_some_and(|d| {
        owner_references(&d)
            .iter()
            .any(|r| r.uid == uid && r.block_owner_deletion)
    }))
}

/// Does what owner `owner` needs, its possible dependents being in `graph`.
async fn process_owner(
    cp: &ControlPlane,
    graph: &Graph,
    owner: &ObjectRef,
) -> Result<(), ApiError> {
    let controllers = cp.controllers();
    let def = owner.def(cp);
    let stored = match &def {
        Some(def) => current(cp, def, owner.namespace.as_deref(), &owner.name, &owner.uid).await?,
        None => None,
    };
    let (Some(def), Some(stored)) = (def, stored) else {
        controllers.set_waiting(&owner.uid, false);
        for (def, dependent) in graph.dependents_of(&owner.uid) {
            attempt_to_delete(cp, graph, def, dependent, Some(&owner.uid)).await?;
        }
        return Ok(());
    };
    if meta_str(&stored, "deletionTimestamp").is_none() {
        return Ok(());
    }
    let def = resource_of(cp, &def, &stored);
    let finalizers = object::finalizers(&stored);
    if finalizers.iter().any(|f| f == ORPHAN) {
        let uids = HashSet::from([owner.uid.clone()]);
        for (def, dependent) in graph.dependents_of(&owner.uid) {
            drop_references(cp, def, dependent, &uids).await?;
        }
        return remove_finalizer(cp, &def, &stored, ORPHAN).await;
    }
    if !finalizers.iter().any(|f| f == FOREGROUND) {
        return Ok(());
    }
    controllers.set_waiting(&owner.uid, true);
    let mut blocking = false;
    for (dep_def, dependent) in graph.dependents_of(&owner.uid) {
        attempt_to_delete(cp, graph, dep_def, dependent, None).await?;
        blocking = blocking || still_blocks(cp, dep_def, dependent, &owner.uid).await?;
    }
    if !blocking {
        controllers.set_waiting(&owner.uid, false);
        return remove_finalizer(cp, &def, &stored, FOREGROUND).await;
    }
    if graph.waits_for_itself(&owner.uid) {
        break_cycle(cp, &def, &stored).await?;
    }
    Ok(())
}

/// Breaks a cycle of objects that each wait, deleting in the foreground, for the next:
/// `owner`'s references stop blocking their owners. The write brings those owners back
/// to the queue ([`after_update`]): the one waiting for `owner` in the cycle now finishes
/// first, and the others follow.
///
/// Upstream applies this remedy only to an object that is not being deleted yet, found
/// between an owner and a dependent that both wait (see [`Verdict::Cascade`]); objects
/// that were all deleted in the foreground before its garbage collector saw the cycle
/// stay there for ever. kflex breaks those cycles too, the same way.
async fn break_cycle(
    cp: &ControlPlane,
    def: &Arc<ResourceDef>,
    owner: &Value,
) -> Result<(), ApiError> {
    tracing::debug!(
        control_plane = cp.name(),
        name = meta_str(owner, "name").unwrap_or(""),
        "an owner deleted in the foreground waits for itself: its references stop blocking"
    );
    rewrite(cp, def, owner, unblocked).await
}

/// Collects the dependents of `owners`: one scan per namespace (one of everything when a
/// cluster-scoped owner is among them).
pub(super) async fn collect(cp: &ControlPlane, owners: Vec<ObjectRef>) -> Result<(), ApiError> {
    if owners.is_empty() {
        return Ok(());
    }
    let mut scopes: BTreeMap<Option<String>, Vec<ObjectRef>> = BTreeMap::new();
    if owners.iter().any(|o| o.namespace.is_none()) {
        scopes.insert(None, owners);
    } else {
        for owner in owners {
            scopes
                .entry(owner.namespace.clone())
                .or_default()
                .push(owner);
        }
    }
    let mut first_error = None;
    for (scope, owners) in scopes {
        let started = std::time::Instant::now();
        let graph = scan(cp, scope.as_deref()).await?;
        tracing::debug!(
            control_plane = cp.name(),
            namespace = scope.as_deref().unwrap_or("*"),
            owners = owners.len(),
            objects = graph.nodes.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "scanned for dependents"
        );
        for owner in &owners {
            if let Err(error) = process_owner(cp, &graph, owner).await {
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// After a restart that found work pending: one scan of everything, then the owners
/// marked with `orphan`/`foregroundDeletion`, the dependents whose owners are gone, and
/// `owners`.
pub(super) async fn resume(cp: &ControlPlane, mut owners: Vec<ObjectRef>) -> Result<(), ApiError> {
    let graph = scan(cp, None).await?;
    let mut first_error = None;
    for (def, object) in &graph.nodes {
        let references = owner_references(object);
        if references.iter().any(|r| !graph.uids.contains(&r.uid)) {
            if let Err(error) = attempt_to_delete(cp, &graph, def, object, None).await {
                first_error.get_or_insert(error);
            }
        }
        let finalizers = object::finalizers(object);
        if meta_str(object, "deletionTimestamp").is_some()
            && finalizers.iter().any(|f| f == ORPHAN || f == FOREGROUND)
        {
            owners.push(ObjectRef::of(def, object));
        }
    }
    for owner in &owners {
        if let Err(error) = process_owner(cp, &graph, owner).await {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(solid: &[&str], dangling: &[&str], waiting: &[&str]) -> Owners {
        let list = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        Owners {
            solid: list(solid),
            dangling: list(dangling),
            waiting: list(waiting),
            unresolvable: Vec::new(),
        }
    }

    #[test]
    fn a_solid_owner_keeps_a_dependent_and_drops_the_other_references() {
        assert_eq!(
            verdict(&owners(&["a"], &[], &[]), &[], false),
            Verdict::Keep
        );
        assert_eq!(
            verdict(&owners(&["a"], &["b"], &["c"]), &[], true),
            Verdict::DropReferences(HashSet::from(["b".into(), "c".into()]))
        );
    }

    #[test]
    fn without_solid_owners_the_policy_follows_upstream() {
        assert_eq!(
            verdict(&owners(&[], &["b"], &[]), &[], true),
            Verdict::Delete("Background")
        );
        assert_eq!(
            verdict(&owners(&[], &[], &["c"]), &[], true),
            Verdict::Cascade,
            "a foreground owner's dependent with dependents goes in the foreground too"
        );
        assert_eq!(
            verdict(&owners(&[], &[], &["c"]), &[], false),
            Verdict::Delete("Background")
        );
        assert_eq!(
            verdict(&owners(&[], &["b"], &[]), &[ORPHAN.to_owned()], false),
            Verdict::Delete("Orphan")
        );
        assert_eq!(
            verdict(&owners(&[], &["b"], &[]), &[FOREGROUND.to_owned()], false),
            Verdict::Delete("Foreground")
        );
    }

    #[test]
    fn an_unresolvable_reference_leaves_the_dependent_alone() {
        let mut unresolvable = owners(&[], &["b"], &["c"]);
        unresolvable.unresolvable.push("n".into());
        assert_eq!(verdict(&unresolvable, &[], true), Verdict::Unresolvable);
    }

    /// A ConfigMap of uid `uid` owned by `owners` (uid, blocking), deleting its dependents
    /// in the foreground when `deleting`.
    fn node(uid: &str, owners: &[(&str, bool)], deleting: bool) -> Value {
        let refs: Vec<Value> = owners
            .iter()
            .map(|(owner, block)| {
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                "name": owner, "uid": owner, "blockOwnerDeletion": block})
            })
            .collect();
        let mut object = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": uid, "namespace": "ns", "uid": uid, "ownerReferences": refs}});
        if deleting {
            object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            object["metadata"]["finalizers"] = json!([FOREGROUND]);
        }
        object
    }

    fn graph(nodes: Vec<Value>) -> Graph {
        let registry = crate::registry::ResourceRegistry::builtin();
        let def = registry.lookup("", "v1", "configmaps").unwrap();
        let mut graph = Graph::default();
        for node in nodes {
            graph.add(def.clone(), node);
        }
        graph
    }

    #[test]
    fn an_owner_waits_for_itself_only_through_blocking_foreground_deletions() {
        // a and b own each other, both deleting their dependents in the foreground.
        let cycle = graph(vec![
            node("a", &[("b", true)], true),
            node("b", &[("a", true)], true),
        ]);
        assert!(cycle.waits_for_itself("a") && cycle.waits_for_itself("b"));
        // A longer one, through c.
        let long = graph(vec![
            node("a", &[("c", true)], true),
            node("b", &[("a", true)], true),
            node("c", &[("b", true)], true),
        ]);
        assert!(long.waits_for_itself("a"));
        // A reference that does not block, or a member that is not deleting, is no cycle.
        let loose = graph(vec![
            node("a", &[("b", false)], true),
            node("b", &[("a", true)], true),
        ]);
        assert!(!loose.waits_for_itself("a") && !loose.waits_for_itself("b"));
        let idle = graph(vec![
            node("a", &[("b", true)], true),
            node("b", &[("a", true)], false),
        ]);
        assert!(!idle.waits_for_itself("a"));
        assert!(idle.has_dependent_deleting_dependents(&node("b", &[], false)));
        assert!(!idle.has_dependent_deleting_dependents(&node("a", &[], true)));
    }

    #[test]
    fn unblocking_keeps_the_references() {
        let object = node("x", &[("a", true), ("b", false)], false);
        let changed = unblocked(&object).unwrap();
        let refs = owner_references(&changed);
        assert_eq!(refs.len(), 2);
        assert!(refs.iter().all(|r| !r.block_owner_deletion));
        assert_eq!(
            changed["metadata"]["ownerReferences"][0]["blockOwnerDeletion"],
            json!(false)
        );
        assert!(unblocked(&changed).is_none());
    }

    #[test]
    fn owner_references_are_read_and_removed_by_uid() {
        let object = json!({"metadata": {"name": "d", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "a", "uid": "1", "blockOwnerDeletion": true},
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "b", "uid": "2"},
            {"kind": "broken"},
        ]}});
        let refs = owner_references(&object);
        assert_eq!(refs.len(), 2);
        assert!(refs[0].block_owner_deletion && !refs[1].block_owner_deletion);
        let one = without_references(&object, &HashSet::from(["1".to_owned()])).unwrap();
        assert_eq!(owner_references(&one)[0].uid, "2");
        let none = without_references(&one, &HashSet::from(["2".to_owned()])).unwrap();
        assert_eq!(
            none["metadata"]["ownerReferences"].as_array().map(Vec::len),
            Some(1),
            "the malformed entry is not ours to remove"
        );
        assert!(without_references(&object, &HashSet::from(["9".to_owned()])).is_none());
    }
}
