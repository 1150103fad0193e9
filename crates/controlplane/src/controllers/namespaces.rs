//! The namespace controller, with upstream's contract: a namespace being deleted has all
//! its content deleted (built-in and custom resources alike), its status conditions say
//! what remains, and once nothing does the `kubernetes` finalizer leaves `spec.finalizers`
//! through the `finalize` subresource, after which the namespace goes.
//!
//! A pass runs when the namespace is marked for deletion and again whenever content of
//! it is deleted; nothing polls.

use super::gc::stored_resources;
use super::internal;
use crate::controlplane::ControlPlane;
use crate::handlers::decode;
use crate::object::{self, meta_str};
use crate::status::ApiError;
use kflex_storage_backends::RangeRequest;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The finalizer of namespaces that this controller removes.
pub const FINALIZER: &str = "kubernetes";

/// What a pass over the content of a namespace found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Remaining {
    /// Objects left, by resource (`plural` or `plural.group`).
    pub objects: BTreeMap<String, usize>,
    /// Finalizers of the objects left, with how many objects carry each.
    pub finalizers: BTreeMap<String, usize>,
    /// Deletions that failed.
    pub failures: Vec<String>,
}

impl Remaining {
    /// The namespace conditions upstream's controller writes for this outcome.
    pub fn conditions(&self, now: &str) -> Vec<Value> {
        let condition = |kind: &str, status: bool, reason: &str, message: String| {
            json!({
                "type": kind,
                "status": if status { "True" } else { "False" },
                "lastTransitionTime": now,
                "reason": reason,
                "message": message,
            })
        };
        let content_failure = if self.failures.is_empty() {
            condition(
                "NamespaceDeletionContentFailure",
                false,
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization".into(),
            )
        } else {
            condition(
                "NamespaceDeletionContentFailure",
                true,
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    self.failures.len(),
                    self.failures.join(", ")
                ),
            )
        };
        let remaining = if self.objects.is_empty() {
            condition(
                "NamespaceContentRemaining",
                false,
                "ContentRemoved",
                "All content successfully removed".into(),
            )
        } else {
            let parts: Vec<String> = self
                .objects
                .iter()
                .map(|(resource, n)| format!("{resource} has {n} resource instances"))
                .collect();
            condition(
                "NamespaceContentRemaining",
                true,
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", parts.join(", ")),
            )
        };
        let finalizers = if self.finalizers.is_empty() {
            condition(
                "NamespaceFinalizersRemaining",
                false,
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished".into(),
            )
        } else {
            let parts: Vec<String> = self
                .finalizers
                .iter()
                .map(|(finalizer, n)| format!("{finalizer} in {n} resource instances"))
                .collect();
            condition(
                "NamespaceFinalizersRemaining",
                true,
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    parts.join(", ")
                ),
            )
        };
        vec![
            condition(
                "NamespaceDeletionDiscoveryFailure",
                false,
                "ResourcesDiscovered",
                "All resources successfully discovered".into(),
            ),
            condition(
                "NamespaceDeletionGroupVersionParsingFailure",
                false,
                "ParsedGroupVersions",
                "All legacy kube types successfully parsed".into(),
            ),
            content_failure,
            remaining,
            finalizers,
        ]
    }
}

/// `new` conditions, keeping the transition time of those whose status did not change.
pub fn merge_conditions(old: &[Value], new: Vec<Value>) -> Vec<Value> {
    new.into_iter()
        .map(|mut condition| {
            let before = old.iter().find(|c| c["type"] == condition["type"]);
            if let Some(before) = before.filter(|b| b["status"] == condition["status"]) {
                condition["lastTransitionTime"] = before["lastTransitionTime"].clone();
            }
            condition
        })
        .collect()
}

/// One pass of the deletion of namespace `name`.
pub(super) async fn run(cp: &ControlPlane, name: &str) -> Result<(), ApiError> {
    let controllers = cp.controllers();
    let def = cp.builtin("", "v1", "namespaces")?;
    let (kv, _) = cp
        .store()
        .get(def.key(None, name).as_bytes(), None)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let Some(namespace) = kv.map(|kv| decode(&kv)).transpose()? else {
        controllers.set_terminating(name, false);
        return Ok(());
    };
    if meta_str(&namespace, "deletionTimestamp").is_none() {
        controllers.set_terminating(name, false);
        return Ok(());
    }
    controllers.set_terminating(name, true);
    let spec_finalizers: Vec<String> = namespace["spec"]["finalizers"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !spec_finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let remaining = delete_content(cp, name).await?;
    let old = namespace["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let conditions = merge_conditions(&old, remaining.conditions(&object::now()));
    if conditions != old {
        let mut updated = namespace.clone();
        updated["status"]["conditions"] = json!(conditions);
        match internal::update(cp, &def, &updated, Some("status")).await {
            Err(e) if e.code() == 409 => {
                controllers.enqueue(super::Work::Namespace(name.to_owned()));
                return Ok(());
            }
            other => other?,
        }
    }
    if !remaining.objects.is_empty() {
        return Ok(());
    }
    let (kv, _) = cp
        .store()
        .get(def.key(None, name).as_bytes(), None)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let Some(mut finalize) = kv.map(|kv| decode(&kv)).transpose()? else {
        return Ok(());
    };
    let kept: Vec<String> = spec_finalizers
        .into_iter()
        .filter(|f| f != FINALIZER)
        .collect();
    finalize["spec"]["finalizers"] = json!(kept);
    match internal::update(cp, &def, &finalize, Some("finalize")).await {
        Err(e) if e.code() == 409 => {
            controllers.enqueue(super::Work::Namespace(name.to_owned()));
            Ok(())
        }
        Err(e) if e.code() == 404 => Ok(()),
        Err(e) => Err(e),
        Ok(()) => {
            controllers.forget(&super::Work::Namespace(name.to_owned()));
            Ok(())
        }
    }
}

/// Deletes every object of namespace `name` that is not being deleted yet; returns what
/// is left afterwards.
async fn delete_content(cp: &ControlPlane, name: &str) -> Result<Remaining, ApiError> {
    let mut remaining = Remaining::default();
    for def in stored_resources(cp, true) {
        let prefix = def.collection_prefix(Some(name)).into_bytes();
        let read = || async {
            cp.store()
                .range(RangeRequest {
                    prefix: prefix.clone(),
                    ..Default::default()
                })
                .await
                .map_err(|e| ApiError::unavailable(e.to_string()))
        };
        let page = read().await?;
        if page.kvs.is_empty() {
            continue;
        }
        for kv in &page.kvs {
            let object = decode(kv)?;
            if meta_str(&object, "deletionTimestamp").is_some() {
                continue;
            }
            let def = super::gc::resource_of(cp, &def, &object);
            let deleted = internal::delete(
                cp,
                &def,
                Some(name),
                meta_str(&object, "name").unwrap_or(""),
                meta_str(&object, "uid").unwrap_or(""),
                "Background",
            )
            .await;
            if let Err(error) = deleted {
                remaining.failures.push(error.message().to_owned());
            }
        }
        let left = read().await?;
        if left.kvs.is_empty() {
            continue;
        }
        let resource = if def.group.is_empty() {
            def.plural.clone()
        } else {
            format!("{}.{}", def.plural, def.group)
        };
        remaining.objects.insert(resource, left.kvs.len());
        for kv in &left.kvs {
            for finalizer in object::finalizers(&decode(kv)?) {
                *remaining.finalizers.entry(finalizer).or_default() += 1;
            }
        }
    }
    Ok(remaining)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_say_what_remains() {
        let mut remaining = Remaining::default();
        let clear = remaining.conditions("t0");
        assert_eq!(clear.len(), 5);
        assert!(clear.iter().all(|c| c["status"] == "False"));
        remaining.objects.insert("configmaps".into(), 2);
        remaining.finalizers.insert("example.com/hold".into(), 2);
        let held = remaining.conditions("t1");
        assert_eq!(held[3]["type"], "NamespaceContentRemaining");
        assert_eq!(held[3]["status"], "True");
        assert_eq!(
            held[3]["message"],
            "Some resources are remaining: configmaps has 2 resource instances"
        );
        assert_eq!(
            held[4]["message"],
            "Some content in the namespace has finalizers remaining: example.com/hold in 2 resource instances"
        );
        let merged = merge_conditions(&clear, held);
        assert_eq!(merged[0]["lastTransitionTime"], "t0", "unchanged status");
        assert_eq!(merged[3]["lastTransitionTime"], "t1", "changed status");
        assert_eq!(
            merge_conditions(&merged, remaining.conditions("t2")),
            merged
        );
    }
}
