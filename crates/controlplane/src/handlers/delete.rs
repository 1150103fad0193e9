//! `delete` and `deletecollection`: immediate removal, or, while finalizers remain, a
//! `deletionTimestamp` that the finalizers' owners act on, as upstream.

use super::{decode, encode, read, Call};
use crate::http::{json, Body};
use crate::object::{self, meta_str, metadata_mut};
use crate::status::{ApiError, Cause};
use http::{Response, StatusCode};
use kflex_storage_backends::StoreError;
use serde_json::{json, Value};

/// The finalizers upstream adds for the propagation policies the garbage collector runs.
const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

/// The parts of `DeleteOptions` that deletion honours.
#[derive(Default)]
pub(super) struct DeleteOptions {
    uid: Option<String>,
    resource_version: Option<String>,
    propagation: Option<String>,
    dry_run: bool,
}

impl DeleteOptions {
    /// Reads a `DeleteOptions` object (kubectl sends it without kind and apiVersion);
    /// `Null` is no options. Validated as upstream does (`422 Invalid`, kind
    /// `DeleteOptions.meta.k8s.io`): a known `propagationPolicy`, and not both it and the
    /// deprecated `orphanDependents`, which otherwise means Orphan (`true`) or Background.
    pub(super) fn from_body(body: &Value, dry_run: bool) -> Result<Self, ApiError> {
        let preconditions = body.get("preconditions");
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let mut options = DeleteOptions {
            uid: text(preconditions.and_then(|p| p.get("uid"))),
            resource_version: text(preconditions.and_then(|p| p.get("resourceVersion"))),
            propagation: text(body.get("propagationPolicy")),
            dry_run,
        };
        let orphan_dependents = body.get("orphanDependents").and_then(Value::as_bool);
        let invalid = |reason: &str, message: String| {
            ApiError::invalid(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                vec![Cause {
                    reason: reason.into(),
                    message,
                    field: "propagationPolicy".into(),
                }],
            )
        };
        match (&options.propagation, orphan_dependents) {
            (Some(policy), Some(_)) => {
                return Err(invalid(
                    "FieldValueInvalid",
                    format!("Invalid value: {policy:?}: orphanDependents and deletionPropagation cannot be both set"),
                ))
            }
            (None, Some(orphan)) => {
                options.propagation = Some(if orphan { "Orphan" } else { "Background" }.into())
            }
            _ => {}
        }
        if let Some(dry_run) = body.get("dryRun").and_then(Value::as_array) {
            options.dry_run |= dry_run.iter().any(|v| v == "All");
        }
        match options.propagation.as_deref() {
            None | Some("Background" | "Foreground" | "Orphan") => Ok(options),
            Some(other) => Err(invalid(
                "FieldValueNotSupported",
                format!("Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""),
            )),
        }
    }

    /// The finalizers of `object` once deleted with these options, as upstream's
    /// `deletionFinalizersForGarbageCollection` makes them: `orphan` and
    /// `foregroundDeletion` as the propagation policy says (an object being deleted keeps
    /// those it has when the request names no policy), the others as they are.
    fn finalizers(&self, object: &Value) -> Vec<String> {
        let current = object::finalizers(object);
        let had = |finalizer: &str| current.iter().any(|f| f == finalizer);
        let (orphan, foreground) = match self.propagation.as_deref() {
            Some(policy) => (policy == "Orphan", policy == "Foreground"),
            None => (had(ORPHAN), had(FOREGROUND)),
        };
        let mut finalizers: Vec<String> = current
            .iter()
            .filter(|f| *f != ORPHAN && *f != FOREGROUND)
            .cloned()
            .collect();
        if orphan {
            finalizers.push(ORPHAN.into());
        }
        if foreground {
            finalizers.push(FOREGROUND.into());
        }
        finalizers
    }
}

/// The request's `DeleteOptions`: its body, and `propagationPolicy`/`dryRun` queries.
fn options(call: &Call<'_>) -> Result<DeleteOptions, ApiError> {
    let body: Value = if call.req.body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else if call.req.content_type() == crate::protobuf::CONTENT_TYPE {
        crate::protobuf::decode_request(&call.req.body, "v1", "DeleteOptions")?
    } else {
        serde_json::from_slice(&call.req.body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let mut options = DeleteOptions::from_body(&body, call.dry_run()?)?;
    if options.propagation.is_none() {
        if let Some(policy) = call.req.query.get("propagationPolicy") {
            options = DeleteOptions::from_body(
                &serde_json::json!({"propagationPolicy": policy}),
                options.dry_run,
            )
            .map(|from_query| DeleteOptions {
                propagation: from_query.propagation,
                ..options
            })?;
        }
    }
    Ok(options)
}

pub(super) async fn delete(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let options = options(call)?;
    let object = delete_object(call, &call.key(), call.name(), &options).await?;
    let object = crate::crd::after_delete(call.cp, &call.def, object, options.dry_run).await?;
    Ok(json(StatusCode::OK, &object))
}

/// Deletes the object at `key`, or marks it deleted while finalizers remain. Returns the
/// object as it was deleted or as it now is.
pub(super) async fn delete_object(
    call: &Call<'_>,
    key: &str,
    name: &str,
    options: &DeleteOptions,
) -> Result<Value, ApiError> {
    let store = call.cp.store();
    let gr = call.def.group_resource();
    if call.def.group.is_empty()
        && call.def.plural == "namespaces"
        && crate::controlplane::IMMORTAL_NAMESPACES.contains(&name)
    {
        return Err(ApiError::forbidden(
            &gr,
            name,
            format!("namespace \"{name}\" is forbidden: this namespace may not be deleted"),
        ));
    }
    loop {
        let (kv, _) = store
            .get(key.as_bytes(), None)
            .await
            .map_err(|e| crate::status::from_store(e, &gr, name))?;
        let kv = kv.ok_or_else(|| ApiError::not_found(&gr, name))?;
        let mut object = decode(&kv)?;
        if let Some(uid) = &options.uid {
            if meta_str(&object, "uid") != Some(uid) {
                return Err(ApiError::conflict_because(
                    &gr,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta_str(&object, "uid").unwrap_or("")
                    ),
                ));
            }
        }
        if let Some(rv) = &options.resource_version {
            if *rv != kv.mod_revision.to_string() {
                return Err(ApiError::conflict_because(&gr, name, &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    kv.mod_revision
                )));
            }
        }
        let finalizers = options.finalizers(&object);
        let is_namespace = call.def.group.is_empty() && call.def.plural == "namespaces";
        let spec_finalizers = is_namespace
            && object
                .get("spec")
                .and_then(|s| s.get("finalizers"))
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
        if finalizers.is_empty() && !spec_finalizers {
            if options.dry_run {
                return Ok(object);
            }
            let pending = crate::controllers::prepare(call.cp).await;
            match store.delete(key.as_bytes(), Some(kv.mod_revision)).await {
                Ok(_) => {
                    crate::defaults::services::on_delete(&**store, &call.def, &object).await;
                    crate::admission::after_delete(call.cp, &call.def, &object).await;
                    crate::controllers::after_write(call.cp, &call.def, &object, true);
                    pending.done();
                    return Ok(object);
                }
                Err(StoreError::Conflict {
                    current: Some(_), ..
                }) => {
                    pending.done();
                    continue;
                }
                Err(e) => return Err(crate::status::from_store(e, &gr, name)),
            }
        }
        // Graceful deletion: mark once, then the finalizers' owners take over.
        let unchanged = {
            let set = |f: &[String]| f.iter().cloned().collect::<std::collections::BTreeSet<_>>();
            set(&object::finalizers(&object)) == set(&finalizers)
        };
        if meta_str(&object, "deletionTimestamp").is_some() && unchanged {
            return Ok(object);
        }
        let meta = metadata_mut(&mut object);
        meta.entry("deletionTimestamp")
            .or_insert_with(|| json!(object::now()));
        meta.entry("deletionGracePeriodSeconds").or_insert(json!(0));
        meta.insert("finalizers".into(), json!(finalizers));
        if let Some(generation) = meta.get("generation").and_then(Value::as_i64) {
            meta.insert("generation".into(), json!(generation + 1));
        }
        if is_namespace {
            object["status"]["phase"] = json!("Terminating");
        }
        if options.dry_run {
            return Ok(object);
        }
        let pending = crate::controllers::prepare(call.cp).await;
        match store
            .update(key.as_bytes(), encode(&object), kv.mod_revision, None)
            .await
        {
            Ok(revision) => {
                object::set_resource_version(&mut object, revision);
                crate::controllers::after_write(call.cp, &call.def, &object, false);
                pending.done();
                return Ok(object);
            }
            Err(StoreError::Conflict {
                current: Some(_), ..
            }) => {
                pending.done();
                continue;
            }
            Err(e) => return Err(crate::status::from_store(e, &gr, name)),
        }
    }
}

pub(super) async fn delete_collection(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let options = options(call)?;
    let (label, field) = read::selectors(call)?;
    let prefix = call.def.collection_prefix(call.namespace());
    let page = call.everything_under(prefix).await?;
    let mut deleted = Vec::new();
    for kv in &page.kvs {
        let object = decode(kv)?;
        if !(label.matches(&object) && field.matches(&object)) {
            continue;
        }
        let key = String::from_utf8_lossy(&kv.key).into_owned();
        let name = meta_str(&object, "name").unwrap_or("").to_owned();
        match delete_object(call, &key, &name, &options).await {
            Ok(object) => deleted
                .push(crate::crd::after_delete(call.cp, &call.def, object, options.dry_run).await?),
            Err(e) if e.code() == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let list = json!({
        "kind": call.def.list_kind,
        "apiVersion": call.def.api_version(),
        "metadata": {"resourceVersion": page.revision.to_string()},
        "items": deleted,
    });
    Ok(json(StatusCode::OK, &list))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(body: Value) -> Result<DeleteOptions, ApiError> {
        DeleteOptions::from_body(&body, false)
    }

    #[test]
    fn options_are_validated_as_upstream() {
        let bad = options(json!({"propagationPolicy": "Sideways"}))
            .err()
            .unwrap();
        assert_eq!(bad.code(), 422);
        assert_eq!(
            bad.message(),
            "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"Sideways\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
        );
        let both = options(json!({"propagationPolicy": "Orphan", "orphanDependents": true}))
            .err()
            .unwrap();
        assert_eq!(both.code(), 422);
        assert!(both
            .message()
            .ends_with("propagationPolicy: Invalid value: \"Orphan\": orphanDependents and deletionPropagation cannot be both set"));
        let legacy = |orphan: bool| options(json!({"orphanDependents": orphan})).unwrap();
        assert_eq!(legacy(true).propagation.as_deref(), Some("Orphan"));
        assert_eq!(legacy(false).propagation.as_deref(), Some("Background"));
    }

    #[test]
    fn the_policy_sets_the_garbage_collector_finalizers() {
        let object =
            json!({"metadata": {"finalizers": ["foregroundDeletion", "example.com/hold"]}});
        let with = |policy: Option<&str>| {
            let options = DeleteOptions {
                propagation: policy.map(str::to_owned),
                ..Default::default()
            };
            options.finalizers(&object)
        };
        assert_eq!(with(Some("Orphan")), ["example.com/hold", ORPHAN]);
        assert_eq!(with(Some("Background")), ["example.com/hold"]);
        assert_eq!(with(Some("Foreground")), ["example.com/hold", FOREGROUND]);
        assert_eq!(with(None), ["example.com/hold", FOREGROUND]);
    }
}
