//! Upstream's ResourceQuota admission, and the quota's `status.used` kept current without
//! a controller loop.
//!
//! A write that adds usage charges every quota of its namespace that tracks it: the
//! quota's `status.used` is raised with a compare-and-swap on the quota's revision before
//! the object is stored, and the whole check runs again on a conflict, so concurrent
//! creators never go past `hard` (upstream's `exceeded quota: ...` is the refusal). A write
//! that then fails gives its charge back; a deletion, or a pod that finishes, gives its
//! usage back the same way. Creating a quota, or changing its `spec.hard`, counts the
//! namespace's objects afresh into `status`. Nothing runs while nobody writes.

use super::quantity::Quantity;
use super::usage::{self, Usage};
use super::Attributes;
use crate::controlplane::ControlPlane;
use crate::registry::ResourceDef;
use crate::status::ApiError;
use kflex_storage_backends::{KeyValue, StoreError};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How often a charge is tried again after losing a race for the quota's revision.
const CHARGE_ATTEMPTS: usize = 64;

/// The namespaces a read found without a ResourceQuota, so that writes there skip the
/// read (the API benchmark's creates pay nothing for quota). Sound because a control
/// plane's quotas are all created through its own admission, which forgets the namespace
/// before and after the quota is stored; the generation keeps a read that raced with such
/// a create from recording a stale "none". Only kept for a store this process alone
/// writes ([`quota_free`]): another kflex process could create a quota unseen.
#[derive(Debug, Default)]
pub(super) struct QuotaFree {
    generation: AtomicU64,
    namespaces: Mutex<HashSet<String>>,
}

impl QuotaFree {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.namespaces.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn contains(&self, namespace: &str) -> bool {
        self.lock().contains(namespace)
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Records that a read started at `generation` found no quota in `namespace`.
    fn record(&self, namespace: &str, generation: u64) {
        let mut namespaces = self.lock();
        if self.generation.load(Ordering::SeqCst) == generation {
            namespaces.insert(namespace.to_owned());
        }
    }

    /// A quota is being created in `namespace`.
    fn forget(&self, namespace: &str) {
        let mut namespaces = self.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        namespaces.remove(namespace);
    }
}

/// The quota-free namespaces of `cp`, when its store has no other writer.
fn quota_free(cp: &ControlPlane) -> Option<&QuotaFree> {
    cp.store().exclusive().then(|| &cp.admission().quota_free)
}

/// The charges a write made, to give back if the write fails; and what a successful
/// write releases (a pod that finished).
#[derive(Debug, Default)]
pub(super) struct Charged {
    namespace: String,
    /// (quota key, usage added to its `status.used`).
    charges: Vec<(String, Usage)>,
    /// The object's kind and the usage it gives up once written.
    release: Option<(Arc<ResourceDef>, Value, Usage)>,
    /// Whether this write creates a quota (the namespace is no longer quota-free).
    creates_quota: bool,
}

impl Charged {
    /// After the write: a failed one takes its charges back, a successful one releases
    /// what it gave up.
    pub(super) async fn settle(self, cp: &ControlPlane, written: bool) {
        if self.creates_quota {
            cp.admission().quota_free.forget(&self.namespace);
        }
        if !written {
            for (key, charge) in &self.charges {
                adjust(cp, key, charge, false).await;
            }
        } else if let Some((def, object, release)) = &self.release {
            release_usage(cp, &self.namespace, def, object, release).await;
        }
    }
}

/// The namespace's quotas, with their store revisions, in name order.
async fn quotas(cp: &ControlPlane, namespace: &str) -> Result<Vec<(KeyValue, Value)>, ApiError> {
    let def = cp.builtin("", "v1", "resourcequotas")?;
    super::stored_in(cp, &def, Some(namespace)).await
}

fn to_json(usage: &Usage) -> Value {
    Value::Object(
        usage
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect::<Map<_, _>>(),
    )
}

/// `pods=1,requests.cpu=500m`: names in order, as upstream prints a resource list.
fn pretty(usage: &Usage) -> String {
    usage
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn mask(usage: &Usage, names: impl Fn(&str) -> bool) -> Usage {
    usage
        .iter()
        .filter(|(k, _)| names(k))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// Admission: refuses a write that would exceed a quota, and charges the quotas for it.
pub(super) async fn admit(
    cp: &ControlPlane,
    attrs: &Attributes<'_>,
    object: &mut Value,
) -> Result<Charged, ApiError> {
    let Some(namespace) = attrs.namespace else {
        return Ok(Charged::default());
    };
    let quota_free = quota_free(cp);
    let creates_quota = attrs.is_core("resourcequotas") && attrs.old.is_none();
    if let (true, Some(free)) = (creates_quota, quota_free) {
        free.forget(namespace);
    } else if quota_free.is_some_and(|free| free.contains(namespace)) {
        return Ok(Charged::default());
    }
    if attrs.is_core("resourcequotas") {
        count_into_status(cp, attrs, object).await?;
    }
    let released = |new: &Usage, old: &Usage| -> Usage {
        old.iter()
            .filter_map(|(k, v)| {
                let now = new.get(k).copied().unwrap_or(Quantity::ZERO);
                (now < *v).then(|| (k.clone(), *v - now))
            })
            .collect()
    };
    let new_usage = usage::usage(attrs.def, object);
    let old_usage = attrs.old.map(|old| usage::usage(attrs.def, old));
    let mut charged = Charged {
        namespace: namespace.to_owned(),
        creates_quota,
        ..Charged::default()
    };
    if let (Some(old), Some(old_usage)) = (attrs.old, &old_usage) {
        let release = released(&new_usage, old_usage);
        if !release.is_empty() && !attrs.dry_run {
            let def = Arc::new(attrs.def.clone());
            charged.release = Some((def, old.clone(), release));
        }
    }
    // Subresources (status, scale) and deletions never add usage upstream.
    if attrs.subresource.is_some() || crate::object::meta_str(object, "deletionTimestamp").is_some()
    {
        return Ok(charged);
    }
    let delta: Usage = match &old_usage {
        None => new_usage,
        Some(old) => new_usage
            .into_iter()
            .filter_map(|(k, v)| {
                let before = old.get(&k).copied().unwrap_or(Quantity::ZERO);
                (v > before).then(|| (k, v - before))
            })
            .collect(),
    };
    if delta.is_empty() {
        return Ok(charged);
    }
    for attempt in 0..CHARGE_ATTEMPTS {
        if attempt > 0 {
            tokio::task::yield_now().await;
        }
        match charge(cp, attrs, namespace, object, &delta, &mut charged).await? {
            Outcome::Done => return Ok(charged),
            Outcome::Conflict => {}
        }
    }
    for (key, charge) in charged.charges.drain(..) {
        adjust(cp, &key, &charge, false).await;
    }
    Err(ApiError::conflict(
        &cp.builtin("", "v1", "resourcequotas")?.group_resource(),
        "",
    ))
}

enum Outcome {
    Done,
    Conflict,
}

/// One pass: checks every matching quota and charges them one by one; a lost race gives
/// back this pass's charges and asks for another pass.
async fn charge(
    cp: &ControlPlane,
    attrs: &Attributes<'_>,
    namespace: &str,
    object: &Value,
    delta: &Usage,
    charged: &mut Charged,
) -> Result<Outcome, ApiError> {
    let mut plan = Vec::new();
    let quota_free = quota_free(cp);
    let generation = quota_free.map(QuotaFree::generation);
    let found = quotas(cp, namespace).await?;
    if let (Some(free), Some(generation), true) = (quota_free, generation, found.is_empty()) {
        free.record(namespace, generation);
    }
    for (kv, mut quota) in found {
        if !usage::scopes_match(&quota, attrs.def, object) {
            continue;
        }
        let quota_name = crate::object::meta_str(&quota, "name")
            .unwrap_or("")
            .to_owned();
        let hard = usage::resource_list(&quota["status"]["hard"]);
        let tracked: Vec<&str> = hard
            .keys()
            .map(String::as_str)
            .filter(|name| usage::tracks(attrs.def, name))
            .collect();
        if tracked.is_empty() {
            continue;
        }
        if attrs.old.is_none() {
            usage::constraints(attrs.def, &tracked, object)
                .map_err(|why| attrs.forbidden(format!("failed quota: {quota_name}: {why}")))?;
        }
        let mut used = usage::resource_list(&quota["status"]["used"]);
        if tracked.iter().any(|name| !used.contains_key(*name)) {
            // Written before kflex kept quota status (or status was cleared): count now.
            let (counted_hard, counted) = count(cp, namespace, &quota).await?;
            quota["status"] = json!({"hard": to_json(&counted_hard), "used": to_json(&counted)});
            used = counted;
        }
        let requested = mask(delta, |name| hard.contains_key(name));
        if requested.is_empty() {
            continue;
        }
        let mut new_used = used.clone();
        usage::add_into(&mut new_used, &requested);
        let exceeded: Vec<&String> = requested
            .keys()
            .filter(|name| new_used[*name] > hard[*name])
            .collect();
        if !exceeded.is_empty() {
            let only = |name: &str| exceeded.iter().any(|e| *e == name);
            let used_now = exceeded
                .iter()
                .map(|name| {
                    (
                        (*name).clone(),
                        used.get(*name).copied().unwrap_or(Quantity::ZERO),
                    )
                })
                .collect::<Usage>();
            return Err(attrs.forbidden(format!(
                "exceeded quota: {quota_name}, requested: {}, used: {}, limited: {}",
                pretty(&mask(&requested, only)),
                pretty(&used_now),
                pretty(&mask(&hard, only)),
            )));
        }
        quota["status"]["used"] = to_json(&new_used);
        plan.push((kv, quota, requested));
    }
    if attrs.dry_run {
        return Ok(Outcome::Done);
    }
    let mut this_pass = Vec::new();
    for (kv, quota, requested) in plan {
        let key = String::from_utf8_lossy(&kv.key).into_owned();
        let written = cp
            .store()
            .update(
                &kv.key,
                crate::handlers::encode(&quota),
                kv.mod_revision,
                None,
            )
            .await;
        match written {
            Ok(_) => this_pass.push((key, requested)),
            Err(StoreError::Conflict { .. }) => {
                for (key, charge) in &this_pass {
                    adjust(cp, key, charge, false).await;
                }
                return Ok(Outcome::Conflict);
            }
            Err(e) => {
                for (key, charge) in &this_pass {
                    adjust(cp, key, charge, false).await;
                }
                return Err(crate::status::from_store(
                    e,
                    &cp.builtin("", "v1", "resourcequotas")?.group_resource(),
                    crate::object::meta_str(&quota, "name").unwrap_or(""),
                ));
            }
        }
    }
    charged.charges.extend(this_pass);
    Ok(Outcome::Done)
}

/// Adds `change` to (or takes it from) the `status.used` of the quota at `key`, with
/// compare-and-swap retries; usage never goes below zero. Best effort: a quota deleted
/// meanwhile needs nothing.
async fn adjust(cp: &ControlPlane, key: &str, change: &Usage, add: bool) {
    for _ in 0..CHARGE_ATTEMPTS {
        let Ok((Some(kv), _)) = cp.store().get(key.as_bytes(), None).await else {
            return;
        };
        let Ok(mut quota) = serde_json::from_slice::<Value>(&kv.value) else {
            return;
        };
        let mut used = usage::resource_list(&quota["status"]["used"]);
        for (name, amount) in change {
            let Some(current) = used.get_mut(name) else {
                continue;
            };
            *current = if add {
                *current + *amount
            } else if *current > *amount {
                *current - *amount
            } else {
                Quantity::ZERO
            };
        }
        quota["status"]["used"] = to_json(&used);
        match cp
            .store()
            .update(
                key.as_bytes(),
                crate::handlers::encode(&quota),
                kv.mod_revision,
                None,
            )
            .await
        {
            Err(StoreError::Conflict { .. }) => tokio::task::yield_now().await,
            Ok(_) | Err(_) => return,
        }
    }
}

/// Gives `release` back to every quota of the namespace that tracks `object`.
async fn release_usage(
    cp: &ControlPlane,
    namespace: &str,
    def: &ResourceDef,
    object: &Value,
    release: &Usage,
) {
    if quota_free(cp).is_some_and(|free| free.contains(namespace)) {
        return;
    }
    let Ok(found) = quotas(cp, namespace).await else {
        return;
    };
    for (kv, quota) in found {
        if !usage::scopes_match(&quota, def, object) {
            continue;
        }
        let hard = usage::resource_list(&quota["status"]["hard"]);
        let change = mask(release, |name| hard.contains_key(name));
        if !change.is_empty() {
            adjust(cp, &String::from_utf8_lossy(&kv.key), &change, false).await;
        }
    }
}

/// After a deletion: the quotas that counted the object give its usage back.
pub(super) async fn after_delete(cp: &ControlPlane, def: &ResourceDef, object: &Value) {
    let Some(namespace) = crate::object::meta_str(object, "namespace") else {
        return;
    };
    if !def.namespaced {
        return;
    }
    let used = usage::usage(def, object);
    release_usage(cp, namespace, def, object, &used).await;
}

/// A ResourceQuota written through the main resource: when new, or when its `spec.hard`
/// or scopes changed, its `status` is counted afresh (`hard` from the spec, `used` from
/// the namespace's objects).
async fn count_into_status(
    cp: &ControlPlane,
    attrs: &Attributes<'_>,
    quota: &mut Value,
) -> Result<(), ApiError> {
    let Some(namespace) = attrs.namespace else {
        return Ok(());
    };
    if let Some(old) = attrs.old {
        if old["spec"] == quota["spec"] && old["status"]["used"].is_object() {
            return Ok(());
        }
    }
    let (hard, mut used) = count(cp, namespace, quota).await?;
    if attrs.old.is_none() {
        // The quota itself is an object of its namespace too.
        let def = cp.builtin("", "v1", "resourcequotas")?;
        let itself = mask(&usage::usage(&def, quota), |name| hard.contains_key(name));
        usage::add_into(&mut used, &itself);
    }
    quota["status"] = json!({"hard": to_json(&hard), "used": to_json(&used)});
    Ok(())
}

/// A quota's `hard` (from its spec) and what the namespace's objects use of it.
async fn count(
    cp: &ControlPlane,
    namespace: &str,
    quota: &Value,
) -> Result<(Usage, Usage), ApiError> {
    let hard = usage::resource_list(&quota["spec"]["hard"]);
    let mut used: Usage = hard.keys().map(|k| (k.clone(), Quantity::ZERO)).collect();
    let defs: Vec<Arc<ResourceDef>> = cp
        .registry()
        .all()
        .into_iter()
        .filter(|def| def.namespaced && hard.keys().any(|name| usage::tracks(def, name)))
        .collect();
    let mut seen_prefixes = Vec::new();
    for def in defs {
        // One resource may be served at several versions: count its objects once.
        let prefix = def.collection_prefix(Some(namespace));
        if seen_prefixes.contains(&prefix) {
            continue;
        }
        seen_prefixes.push(prefix);
        for object in super::list_of(cp, &def, Some(namespace)).await? {
            if !usage::scopes_match(quota, &def, &object) {
                continue;
            }
            let used_by = mask(&usage::usage(&def, &object), |name| hard.contains_key(name));
            usage::add_into(&mut used, &used_by);
        }
    }
    Ok((hard, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_raced_with_a_quota_create_records_nothing() {
        let free = QuotaFree::default();
        let before = free.generation();
        free.forget("ns");
        free.record("ns", before);
        assert!(!free.contains("ns"));
        free.record("ns", free.generation());
        assert!(free.contains("ns") && !free.contains("other"));
        free.forget("ns");
        assert!(!free.contains("ns"));
    }

    #[test]
    fn prints_resource_lists_as_upstream() {
        let usage: Usage = [("pods", "2"), ("requests.cpu", "1500m")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
            .collect();
        assert_eq!(pretty(&usage), "pods=2,requests.cpu=1500m");
        assert_eq!(
            to_json(&usage),
            json!({"pods": "2", "requests.cpu": "1500m"})
        );
        assert_eq!(usage::resource_list(&to_json(&usage)), usage);
    }
}
