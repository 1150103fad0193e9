//! Cleanup of a deleted CRD, as upstream's CRD finalizer controller does it but driven by
//! requests: deleting the CRD deletes its objects (objects with finalizers are marked and
//! go when their finalizers do), and once none remain the `customresourcecleanup`
//! finalizer is removed and the CRD goes with it.

use super::CLEANUP_FINALIZER;
use crate::controlplane::ControlPlane;
use crate::handlers::{decode, encode};
use crate::object::{self, meta_str, metadata_mut};
use crate::status::{self, ApiError};
use kflex_storage_backends::{RangeRequest, StoreError};
use serde_json::{json, Value};

/// How often a write that lost a race is tried again.
const RETRIES: usize = 10;

/// Advances the cleanup of CRD `crd_name`: deletes what it can of its objects, then the
/// CRD when none remain. Returns the CRD as it now is (`None` when it does not exist).
pub(super) async fn run(cp: &ControlPlane, crd_name: &str) -> Result<Option<Value>, ApiError> {
    let def = cp.builtin("apiextensions.k8s.io", "v1", "customresourcedefinitions")?;
    let gr = def.group_resource();
    let key = def.key(None, crd_name);
    let store = cp.store();
    for _ in 0..RETRIES {
        let (kv, _) = store
            .get(key.as_bytes(), None)
            .await
            .map_err(|e| status::from_store(e, &gr, crd_name))?;
        let Some(kv) = kv else {
            cp.registry().replace_custom(crd_name, Vec::new());
            return Ok(None);
        };
        let mut crd = decode(&kv)?;
        if meta_str(&crd, "deletionTimestamp").is_none()
            || !object::finalizers(&crd)
                .iter()
                .any(|f| f == CLEANUP_FINALIZER)
        {
            return Ok(Some(crd));
        }
        super::registration::sync(cp.registry(), &crd);
        let remaining = delete_objects(cp, &crd).await?;
        let written = if remaining > 0 {
            set_terminating(
                &mut crd,
                &format!("{remaining} custom resources remain: waiting for their finalizers"),
            );
            store
                .update(key.as_bytes(), encode(&crd), kv.mod_revision, None)
                .await
        } else {
            let finalizers: Vec<String> = object::finalizers(&crd)
                .into_iter()
                .filter(|f| f != CLEANUP_FINALIZER)
                .collect();
            metadata_mut(&mut crd).insert("finalizers".into(), json!(finalizers));
            if finalizers.is_empty() {
                store
                    .delete(key.as_bytes(), Some(kv.mod_revision))
                    .await
                    .map(|(revision, _)| revision)
            } else {
                store
                    .update(key.as_bytes(), encode(&crd), kv.mod_revision, None)
                    .await
            }
        };
        match written {
            Ok(revision) => {
                object::set_resource_version(&mut crd, revision);
                super::registration::sync(cp.registry(), &crd);
                super::shared::announce(cp).await;
                return Ok(Some(crd));
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(status::from_store(e, &gr, crd_name)),
        }
    }
    Err(ApiError::conflict(&gr, crd_name))
}

/// The `Terminating` condition upstream's finalizer sets while objects remain.
fn set_terminating(crd: &mut Value, message: &str) {
    let mut conditions: Vec<Value> = crd["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["type"] != "Terminating")
        .collect();
    conditions.push(json!({
        "type": "Terminating", "status": "True", "lastTransitionTime": object::now(),
        "reason": "InstanceDeletionInProgress", "message": message,
    }));
    crd["status"]["conditions"] = json!(conditions);
}

/// Deletes the CRD's objects (marking those with finalizers); returns how many remain.
async fn delete_objects(cp: &ControlPlane, crd: &Value) -> Result<usize, ApiError> {
    let group = crd["spec"]["group"].as_str().unwrap_or("");
    let plural = crd["status"]["acceptedNames"]["plural"]
        .as_str()
        .filter(|p| !p.is_empty())
        .or(crd["spec"]["names"]["plural"].as_str())
        .unwrap_or("");
    if group.is_empty() || plural.is_empty() {
        return Ok(0);
    }
    let prefix = format!("/registry/{group}/{plural}/");
    let store = cp.store();
    let unavailable = |e: StoreError| ApiError::unavailable(e.to_string());
    let range = || RangeRequest {
        prefix: prefix.clone().into_bytes(),
        ..Default::default()
    };
    let page = store.range(range()).await.map_err(unavailable)?;
    // The garbage collector hears of the deleted objects: they may own others.
    let def = cp
        .registry()
        .all()
        .into_iter()
        .find(|d| d.storage_prefix == prefix);
    for kv in &page.kvs {
        let mut object = decode(kv)?;
        let outcome = if object::finalizers(&object).is_empty() {
            let pending = crate::controllers::prepare(cp).await;
            let deleted = store.delete(&kv.key, Some(kv.mod_revision)).await;
            if let (Ok(_), Some(def)) = (&deleted, &def) {
                crate::controllers::after_write(cp, def, &object, true);
            }
            if matches!(deleted, Ok(_) | Err(StoreError::Conflict { .. })) {
                pending.done();
            }
            deleted.map(|_| ())
        } else if meta_str(&object, "deletionTimestamp").is_none() {
            let meta = metadata_mut(&mut object);
            meta.insert("deletionTimestamp".into(), json!(object::now()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            store
                .update(&kv.key, encode(&object), kv.mod_revision, None)
                .await
                .map(|_| ())
        } else {
            Ok(())
        };
        match outcome {
            Ok(()) | Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(unavailable(e)),
        }
    }
    let left = store.range(range()).await.map_err(unavailable)?;
    Ok(left.kvs.len())
}
