//! `create`, `update` and `patch`: writes of one object, with upstream's server-set fields,
//! optimistic concurrency, status-subresource rules and generation counting.

use super::{decode, encode, Call};
use crate::defaults::services;
use crate::fieldvalidation::{Directive, FieldProblem, FieldProblems};
use crate::http::{json, Body};
use crate::object::{self, meta_str, metadata_mut};
use crate::status::{ApiError, Cause};
use http::{Response, StatusCode};
use kflex_storage_backends::StoreError;
use serde_json::{json, Value};

/// How often a generated name is tried again after a collision (upstream: 8).
const GENERATE_NAME_ATTEMPTS: usize = 8;
/// How often an unconditional update or a patch is retried after a concurrent write.
const CONFLICT_RETRIES: usize = 10;

/// The request body as a JSON object of this resource's kind.
fn body_object(call: &Call<'_>) -> Result<Value, ApiError> {
    let mut object: Value = match call.req.content_type() {
        "" | "application/json" => {
            let (object, warnings) = crate::fieldvalidation::decode_object(
                &call.def,
                None,
                call.rr.verb,
                &call.req.query,
                &call.req.body,
            )?;
            call.set_warnings(warnings);
            object
        }
        crate::protobuf::CONTENT_TYPE if !call.cp.is_custom_resource(&call.def) => {
            crate::protobuf::decode_request(&call.req.body, &call.def.api_version(), &call.def.kind)?
        }
        crate::protobuf::CONTENT_TYPE => {
            return Err(ApiError::unsupported_media_type(
                "the body of the request was in an unknown format - accepted media types include: application/json",
            ))
        }
        other => return Err(ApiError::unknown_body_format(other)),
    };
    if !object.is_object() {
        return Err(ApiError::body_not_an_object());
    }
    check_type(call, &mut object)?;
    Ok(object)
}

/// `kind` and `apiVersion` must name this resource's kind; missing ones are taken from
/// the endpoint, as upstream's decoder defaults them (the Python client omits them).
pub(super) fn check_type(call: &Call<'_>, object: &mut Value) -> Result<(), ApiError> {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    // Upstream reports a wrong kind before a wrong version.
    if !kind.is_empty() && kind != call.def.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            call.def.kind
        )));
    }
    if !api_version.is_empty() && api_version != call.def.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            call.def.api_version()
        )));
    }
    object["kind"] = json!(call.def.kind);
    object["apiVersion"] = json!(call.def.api_version());
    Ok(())
}

/// The body's namespace must be empty or the path's; it becomes the path's.
pub(super) fn place_in_namespace(call: &Call<'_>, object: &mut Value) -> Result<(), ApiError> {
    let sent = meta_str(object, "namespace").unwrap_or("").to_owned();
    let meta = metadata_mut(object);
    match call.namespace() {
        Some(ns) => {
            if !sent.is_empty() && sent != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            meta.insert("namespace".into(), json!(ns));
        }
        None => {
            meta.remove("namespace");
        }
    }
    Ok(())
}

fn invalid(call: &Call<'_>, name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid(&call.def.group, &call.def.kind, name, causes)
}

pub(super) async fn create(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    if call.rr.name.is_some() || call.rr.subresource.is_some() {
        return Err(ApiError::method_not_allowed(
            "create",
            &call.def.group_resource(),
        ));
    }
    if call.def.namespaced && call.namespace().is_none() {
        return Err(ApiError::path_not_found());
    }
    let mut object = body_object(call)?;
    place_in_namespace(call, &mut object)?;
    if meta_str(&object, "resourceVersion").is_some_and(|rv| !rv.is_empty()) {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    let name = meta_str(&object, "name").unwrap_or("").to_owned();
    let generate = meta_str(&object, "generateName").unwrap_or("").to_owned();
    if name.is_empty() && generate.is_empty() {
        return Err(invalid(
            call,
            "",
            vec![Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value: name or generateName is required".into(),
                field: "metadata.name".into(),
            }],
        ));
    }
    call.cp
        .check_namespace_accepts_content(call.namespace())
        .await?;
    prepare_for_create(call, &mut object);
    crate::defaults::on_write(&call.def, &mut object);
    admit(call, None, &mut object)?;
    super::apply::track_update(call, None, &mut object);
    let admitted = admit_builtin(call, None, &mut object).await?;
    let dry_run = call.dry_run()?;
    let store = call.cp.store().as_ref();
    let allocation = match services::on_write(store, &call.def, None, &mut object, dry_run).await {
        Ok(allocation) => allocation,
        Err(e) => {
            admitted.settle(call.cp, false).await;
            return Err(e);
        }
    };
    let created = insert(call, &mut object, &name, &generate, dry_run).await;
    allocation.settle(store, created.is_ok()).await;
    admitted.settle(call.cp, created.is_ok() && !dry_run).await;
    created
}

/// The built-in admission plugins ([`crate::admission`]) on a write about to be stored;
/// their warnings go to the client. Settle what it returns once the write is done.
pub(super) async fn admit_builtin(
    call: &Call<'_>,
    old: Option<&Value>,
    object: &mut Value,
) -> Result<crate::admission::Admitted, ApiError> {
    let name = meta_str(object, "name").unwrap_or(call.name()).to_owned();
    let attrs = crate::admission::Attributes {
        def: &call.def,
        namespace: call.namespace(),
        name: &name,
        subresource: call.rr.subresource.as_deref(),
        old,
        dry_run: call.dry_run()?,
    };
    let mut admitted = crate::admission::admit(call.cp, &attrs, object).await?;
    call.add_warnings(std::mem::take(&mut admitted.warnings));
    Ok(admitted)
}

/// Stores a new object, trying generated names again after collisions.
async fn insert(
    call: &Call<'_>,
    object: &mut Value,
    name: &str,
    generate: &str,
    dry_run: bool,
) -> Result<Response<Body>, ApiError> {
    let attempts = if name.is_empty() {
        GENERATE_NAME_ATTEMPTS
    } else {
        1
    };
    for attempt in 1..=attempts {
        let name = if name.is_empty() {
            object::generate_name(generate)
        } else {
            name.to_owned()
        };
        let label_only = call.def.group.is_empty() && call.def.plural == "namespaces";
        object::validate_name(&name, label_only)
            .map_err(|cause| invalid(call, &name, vec![cause]))?;
        metadata_mut(object).insert("name".into(), json!(name));
        let key = call.def.key(call.namespace(), &name);
        if dry_run {
            let (existing, _) = call
                .cp
                .store()
                .get(key.as_bytes(), None)
                .await
                .map_err(|e| call.store_error(e))?;
            if existing.is_some() {
                return Err(ApiError::already_exists(&call.def.group_resource(), &name));
            }
            return Ok(json(StatusCode::CREATED, &*object));
        }
        match call
            .cp
            .store()
            .create(key.as_bytes(), encode(object), call.def.time_to_live())
            .await
        {
            Ok(revision) => {
                object::set_resource_version(object, revision);
                crate::crd::after_write(call.cp, &call.def, object).await;
                crate::controllers::after_write(call.cp, &call.def, object, false);
                return Ok(json(StatusCode::CREATED, &*object));
            }
            Err(StoreError::AlreadyExists { .. }) if attempt < attempts => continue,
            Err(StoreError::AlreadyExists { .. }) => {
                return Err(ApiError::already_exists(&call.def.group_resource(), &name));
            }
            Err(e) => {
                return Err(crate::status::from_store(
                    e,
                    &call.def.group_resource(),
                    &name,
                ))
            }
        }
    }
    Err(ApiError::already_exists(&call.def.group_resource(), name))
}

/// The server-set fields of a new object; client-sent values of them are ignored.
pub(super) fn prepare_for_create(call: &Call<'_>, object: &mut Value) {
    let tracks_generation = call.def.tracks_generation;
    let meta = metadata_mut(object);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "resourceVersion",
        "selfLink",
    ] {
        meta.remove(field);
    }
    meta.insert("uid".into(), json!(object::new_uid()));
    meta.insert("creationTimestamp".into(), json!(object::now()));
    if tracks_generation {
        meta.insert("generation".into(), json!(1));
    }
    if call.def.has_status() {
        if let Some(map) = object.as_object_mut() {
            map.remove("status");
        }
    }
    if call.def.group.is_empty() && call.def.plural == "namespaces" {
        object["spec"] = json!({"finalizers": ["kubernetes"]});
        object["status"] = json!({"phase": "Active"});
    }
}

pub(super) async fn update(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let scale = call.rr.subresource.as_deref() == Some("scale");
    let mut sent = if scale {
        json_body(call)?
    } else {
        body_object(call)?
    };
    if !scale {
        place_in_namespace(call, &mut sent)?;
    }
    let sent_name = meta_str(&sent, "name").unwrap_or("");
    if sent_name != call.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({sent_name}) does not match the name on the URL ({})",
            call.name()
        )));
    }
    let precondition = meta_str(&sent, "resourceVersion")
        .filter(|rv| !rv.is_empty())
        .map(str::to_owned);
    let written = write_with_retries(call, precondition, |current| {
        if scale {
            super::scale::apply_scale(&call.def, current, &sent)
        } else {
            Ok(sent.clone())
        }
    })
    .await?;
    Ok(json(StatusCode::OK, &respond(call, written)))
}

/// What a write answers: the object, or its `Scale` for the scale subresource.
pub(super) fn respond(call: &Call<'_>, written: Value) -> Value {
    if call.rr.subresource.as_deref() == Some("scale") {
        super::scale::to_scale(&call.def, &written)
    } else {
        written
    }
}

/// The body of a `scale` write: a `Scale` (JSON, checked against its schema like any
/// object, or protobuf).
fn json_body(call: &Call<'_>) -> Result<Value, ApiError> {
    if call.req.content_type() == crate::protobuf::CONTENT_TYPE {
        return crate::protobuf::decode_request(&call.req.body, "autoscaling/v1", "Scale");
    }
    let (body, warnings) = crate::fieldvalidation::decode_object(
        &call.def,
        call.rr.subresource.as_deref(),
        call.rr.verb,
        &call.req.query,
        &call.req.body,
    )?;
    call.set_warnings(warnings);
    Ok(body)
}

pub(super) async fn patch(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    super::apply::check_patch_options(call)?;
    let patch_type = call.req.content_type().to_owned();
    let is_custom = call.cp.is_custom_resource(&call.def);
    let patch: Value = match patch_type.as_str() {
        super::apply::APPLY_PATCH => return super::apply::apply(call).await,
        "application/json-patch+json" | "application/merge-patch+json" => serde_json::from_slice(&call.req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
        "application/strategic-merge-patch+json" if !is_custom => {
            crate::patch::strategic::parse(&call.req.body)?
        }
        "application/strategic-merge-patch+json" => {
            return Err(ApiError::unsupported_media_type(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ))
        }
        other => {
            return Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format ({other}) - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json"
            )))
        }
    };
    // A resourceVersion inside a merge patch or SMP is a precondition, as upstream.
    let precondition = patch
        .get("metadata")
        .and_then(|m| m.get("resourceVersion"))
        .and_then(Value::as_str)
        .filter(|rv| !rv.is_empty())
        .map(str::to_owned);
    let scale = call.rr.subresource.as_deref() == Some("scale");
    let written = write_with_retries(call, precondition, |current| {
        let mut patched = if scale {
            super::scale::to_scale(&call.def, current)
        } else {
            current.clone()
        };
        match patch_type.as_str() {
            "application/json-patch+json" => {
                let operations: json_patch::Patch = serde_json::from_value(patch.clone())
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                json_patch::patch(&mut patched, &operations).map_err(|e| {
                    ApiError::invalid(
                        &call.def.group,
                        &call.def.kind,
                        call.name(),
                        vec![Cause {
                            reason: "FieldValueInvalid".into(),
                            message: e.to_string(),
                            field: String::new(),
                        }],
                    )
                })?;
            }
            "application/strategic-merge-patch+json" => {
                let (group, version, kind) = match scale {
                    true => ("autoscaling", "v1", "Scale"),
                    false => (&*call.def.group, &*call.def.version, &*call.def.kind),
                };
                let node = crate::patch::schema::Node::builtin_kind(group, version, kind);
                patched = crate::patch::strategic::apply(&patched, &patch, node)?;
            }
            _ => json_patch::merge(&mut patched, &patch),
        }
        if !patched.is_object() {
            return Err(ApiError::bad_request(
                "the patch turned the object into a non-object",
            ));
        }
        if scale {
            return super::scale::apply_scale(&call.def, current, &patched);
        }
        let merge = (patch_type == "application/merge-patch+json").then_some(&call.req.body[..]);
        let (patched, warnings) =
            crate::fieldvalidation::check_patched(&call.def, &call.req.query, merge, &patched)?;
        call.set_warnings(warnings);
        Ok(patched)
    })
    .await?;
    Ok(json(StatusCode::OK, &respond(call, written)))
}

/// Reads the object, computes its new form with `change`, and writes it with a
/// compare-and-swap; a concurrent write retries unless the client gave a precondition.
pub(super) async fn write_with_retries(
    call: &Call<'_>,
    precondition: Option<String>,
    change: impl Fn(&Value) -> Result<Value, ApiError>,
) -> Result<Value, ApiError> {
    let key = call.key();
    let store = call.cp.store();
    let dry_run = call.dry_run()?;
    for _ in 0..CONFLICT_RETRIES {
        let (kv, _) = store
            .get(key.as_bytes(), None)
            .await
            .map_err(|e| call.store_error(e))?;
        let kv = kv.ok_or_else(|| ApiError::not_found(&call.def.group_resource(), call.name()))?;
        let mut current = decode(&kv)?;
        crate::crd::served(&call.def, &mut current);
        if let Some(rv) = &precondition {
            if *rv != kv.mod_revision.to_string() {
                return Err(ApiError::conflict(&call.def.group_resource(), call.name()));
            }
        }
        let mut updated = change(&current)?;
        check_type(call, &mut updated)?;
        merge_for_update(call, &current, &mut updated)?;
        crate::defaults::on_write(&call.def, &mut updated);
        admit(call, Some(&current), &mut updated)?;
        super::apply::track_update(call, Some(&current), &mut updated);
        let admitted = admit_builtin(call, Some(&current), &mut updated).await?;
        let allocation =
            match services::on_write(&**store, &call.def, Some(&current), &mut updated, dry_run)
                .await
            {
                Ok(allocation) => allocation,
                Err(e) => {
                    admitted.settle(call.cp, false).await;
                    return Err(e);
                }
            };
        let same = same_object(&current, &updated);
        if same || dry_run {
            allocation.settle(&**store, false).await;
            admitted.settle(call.cp, false).await;
            return Ok(if same { current } else { updated });
        }
        let deleting = meta_str(&updated, "deletionTimestamp").is_some()
            && object::finalizers(&updated).is_empty()
            && spec_finalizers(&updated).is_empty();
        let pending = match deleting {
            true => Some(crate::controllers::prepare(call.cp).await),
            false => None,
        };
        let told = |pending: Option<crate::controllers::Pending<'_>>| {
            if let Some(pending) = pending {
                pending.done();
            }
        };
        let written = if deleting {
            store
                .delete(key.as_bytes(), Some(kv.mod_revision))
                .await
                .map(|(rev, _)| rev)
        } else {
            store
                .update(
                    key.as_bytes(),
                    encode(&updated),
                    kv.mod_revision,
                    call.def.time_to_live(),
                )
                .await
        };
        allocation.settle(&**store, written.is_ok()).await;
        admitted.settle(call.cp, written.is_ok()).await;
        if deleting && written.is_ok() {
            services::on_delete(&**store, &call.def, &updated).await;
            crate::admission::after_delete(call.cp, &call.def, &updated).await;
        }
        match written {
            Ok(revision) => {
                object::set_resource_version(&mut updated, revision);
                crate::crd::after_write(call.cp, &call.def, &updated).await;
                crate::controllers::after_write(call.cp, &call.def, &updated, deleting);
                crate::controllers::gc::after_update(call.cp, &call.def, &current, &updated);
                told(pending);
                return Ok(updated);
            }
            Err(StoreError::Conflict {
                current: Some(_), ..
            }) if precondition.is_none() => {
                told(pending);
                continue;
            }
            Err(StoreError::Conflict {
                current: Some(_), ..
            }) => {
                told(pending);
                return Err(ApiError::conflict(&call.def.group_resource(), call.name()));
            }
            Err(e) => return Err(call.store_error(e)),
        }
    }
    Err(ApiError::conflict(&call.def.group_resource(), call.name()))
}

/// Applies upstream's update rules: immutable metadata, `status` only through `/status`
/// (and only `status` there), generation counting, no new finalizers while deleting.
fn merge_for_update(call: &Call<'_>, current: &Value, updated: &mut Value) -> Result<(), ApiError> {
    let status_write = call.rr.subresource.as_deref() == Some("status");
    // A namespace's spec.finalizers change only through `finalize`, and `finalize`
    // changes nothing else (upstream's namespace strategies).
    if call.def.group.is_empty() && call.def.plural == "namespaces" {
        if call.rr.subresource.as_deref() == Some("finalize") {
            let finalizers = spec_finalizers(updated);
            *updated = current.clone();
            updated["spec"]["finalizers"] = json!(finalizers);
            return Ok(());
        }
        updated["spec"]["finalizers"] = json!(spec_finalizers(current));
    }
    if status_write {
        let status = updated.get("status").cloned();
        *updated = current.clone();
        match status {
            Some(status) => updated["status"] = status,
            None => {
                if let Some(map) = updated.as_object_mut() {
                    map.remove("status");
                }
            }
        }
    } else if call.def.has_status() {
        match current.get("status") {
            Some(status) => updated["status"] = status.clone(),
            None => {
                if let Some(map) = updated.as_object_mut() {
                    map.remove("status");
                }
            }
        }
    }
    let old = object::metadata(current).cloned().unwrap_or_default();
    let meta = metadata_mut(updated);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "name",
    ] {
        match old.get(field) {
            Some(value) => meta.insert(field.into(), value.clone()),
            None => meta.remove(field),
        };
    }
    meta.remove("resourceVersion");
    meta.remove("selfLink");
    let generation = old.get("generation").and_then(Value::as_i64);
    match generation {
        Some(g) => meta.insert("generation".into(), json!(g)),
        None => meta.remove("generation"),
    };
    if old.contains_key("deletionTimestamp") {
        let before = object::finalizers(current);
        if object::finalizers(updated)
            .iter()
            .any(|f| !before.contains(f))
        {
            return Err(invalid(
                call,
                call.name(),
                vec![Cause {
                    reason: "FieldValueForbidden".into(),
                    message:
                        "Forbidden: no new finalizers can be added if the object is being deleted"
                            .into(),
                    field: "metadata.finalizers".into(),
                }],
            ));
        }
    }
    let status_counts = call.def.custom && !call.def.has_status();
    if !status_write
        && call.def.tracks_generation
        && (object::spec_part(current) != object::spec_part(updated)
            || (status_counts && current.get("status") != updated.get("status")))
    {
        metadata_mut(updated).insert("generation".into(), json!(generation.unwrap_or(0) + 1));
    }
    Ok(())
}

/// CustomResourceDefinition and custom resource admission ([`crate::crd::admit`]); the
/// fields a custom resource's schema pruned are judged by the request's `fieldValidation`.
pub(super) fn admit(
    call: &Call<'_>,
    old: Option<&Value>,
    object: &mut Value,
) -> Result<(), ApiError> {
    let pruned = crate::crd::admit(
        call.cp.registry(),
        &call.def,
        call.rr.subresource.as_deref(),
        old,
        object,
    )?;
    let problems = FieldProblems(pruned.into_iter().map(FieldProblem::Unknown).collect());
    let warnings = Directive::from_query(&call.req.query, call.rr.verb)?
        .judge(&problems, |message| {
            crate::fieldvalidation::strict_error(&call.def, call.rr.verb, object, message)
        })?;
    call.add_warnings(warnings);
    Ok(())
}

/// A namespace's `spec.finalizers`.
fn spec_finalizers(object: &Value) -> Vec<String> {
    object["spec"]["finalizers"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether an update changes nothing (upstream then writes nothing).
fn same_object(current: &Value, updated: &Value) -> bool {
    let mut a = current.clone();
    let mut b = updated.clone();
    for object in [&mut a, &mut b] {
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
    }
    a == b
}
