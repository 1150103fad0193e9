//! Server-side apply (`PATCH` with `application/apply-patch+yaml`), and the field
//! ownership every other write records, over [`crate::patch::managed`].

use super::write::{
    admit, check_type, place_in_namespace, prepare_for_create, respond, write_with_retries,
};
use super::Call;
use crate::defaults::services;
use crate::http::{json, Body};
use crate::object::{self, meta_str, metadata_mut};
use crate::patch::managed::{self, Manager};
use crate::patch::schema::Node;
use crate::status::{ApiError, Cause};
use http::{Response, StatusCode};
use kflex_storage_backends::StoreError;
use serde_json::Value;

/// The media type of server-side apply.
pub(super) const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// How often an apply that found no object, then lost the race to create it, starts over.
const CREATE_ATTEMPTS: usize = 3;

/// The schema the patch algorithms walk for this request's kind. Custom resources have no
/// built-in metadata: their lists are atomic until their CRD's schema is looked up here
/// (with [`Node::custom`]).
fn schema_node<'a>(call: &'a Call<'_>) -> Node<'a> {
    match &call.def.crd {
        Some(custom) => Node::custom(&custom.open_api_v3_schema),
        None if call.cp.is_custom_resource(&call.def) => Node::unknown(),
        None => Node::builtin_kind(&call.def.group, &call.def.version, &call.def.kind),
    }
}

/// Whether a write's field sets leave out `status` (it has a subresource of its own and
/// this is not a write to it).
fn without_status(call: &Call<'_>) -> bool {
    call.def.has_status() && call.rr.subresource.as_deref() != Some("status")
}

fn manager<'a>(call: &'a Call<'_>, name: &'a str, api_version: &'a str) -> Manager<'a> {
    Manager {
        name,
        api_version,
        subresource: call
            .rr
            .subresource
            .as_deref()
            .filter(|s| matches!(*s, "status" | "scale")),
    }
}

/// Records a create, update or (non-apply) patch for its field manager; `old` is `None`
/// for a create.
pub(super) fn track_update(call: &Call<'_>, old: Option<&Value>, new: &mut Value) {
    if call.req.content_type() == APPLY_PATCH {
        return;
    }
    let name = managed::update_manager(
        call.req.query.get("fieldManager"),
        call.req.header("user-agent"),
    );
    let api_version = call.def.api_version();
    managed::record_update(
        old,
        new,
        schema_node(call),
        &manager(call, &name, &api_version),
        without_status(call),
    );
}

/// The patch options only apply may use: `force` on another patch is a 422, as upstream.
pub(super) fn check_patch_options(call: &Call<'_>) -> Result<(), ApiError> {
    if call.req.content_type() != APPLY_PATCH && call.req.query.get("force").is_some() {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            vec![Cause {
                reason: "FieldValueForbidden".into(),
                message: "Forbidden: may not be specified for non-apply patch".into(),
                field: "force".into(),
            }],
        ));
    }
    Ok(())
}

/// Serves a server-side apply: merges the applied configuration into the object (or
/// creates it), with conflicts between field managers.
pub(super) async fn apply(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let Some(name) = call.req.query.get("fieldManager").filter(|m| !m.is_empty()) else {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            vec![Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value: is required for apply patch".into(),
                field: "fieldManager".into(),
            }],
        ));
    };
    let force = match call.req.query.get("force") {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid boolean value for force: {other:?}"
            )))
        }
    };
    let applied: Value = serde_norway::from_slice(&call.req.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !applied.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a YAML or JSON object",
        ));
    }
    // Unknown fields of a built-in kind are judged by `fieldValidation` and never applied.
    let (mut applied, warnings) = crate::fieldvalidation::decode_object(
        &call.def,
        call.rr.subresource.as_deref(),
        call.rr.verb,
        &call.req.query,
        &serde_json::to_vec(&applied).unwrap_or_default(),
    )?;
    call.set_warnings(warnings);
    if call.rr.subresource.as_deref() == Some("scale") {
        return super::scale::apply(call, applied, name, force).await;
    }
    check_type(call, &mut applied)?;
    let precondition = placed_precondition(call, &mut applied)?;
    let api_version = call.def.api_version();
    let manager = manager(call, name, &api_version);
    let node = schema_node(call);
    let without_status = without_status(call);
    for _ in 0..CREATE_ATTEMPTS {
        let updated = write_with_retries(call, precondition.clone(), |current| {
            managed::apply(
                Some(current),
                &applied,
                node,
                &manager,
                force,
                without_status,
            )
        })
        .await;
        match updated {
            Err(e)
                if e.code() == 404 && call.rr.subresource.is_none() && precondition.is_none() => {}
            other => return Ok(json(StatusCode::OK, &respond(call, other?))),
        }
        let mut object = managed::apply(None, &applied, node, &manager, force, without_status)?;
        if let Some(created) = create(call, &mut object).await? {
            return Ok(json(StatusCode::CREATED, &created));
        }
    }
    Err(ApiError::conflict(&call.def.group_resource(), call.name()))
}

/// Places an applied object in the request's namespace, checks its name against the
/// URL's, and returns its `resourceVersion`, a precondition as in other patches.
pub(super) fn placed_precondition(
    call: &Call<'_>,
    applied: &mut Value,
) -> Result<Option<String>, ApiError> {
    place_in_namespace(call, applied)?;
    let sent_name = meta_str(applied, "name").unwrap_or("");
    if sent_name != call.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({sent_name}) does not match the name on the URL ({})",
            call.name()
        )));
    }
    Ok(meta_str(applied, "resourceVersion")
        .filter(|rv| !rv.is_empty())
        .map(str::to_owned))
}

/// Creates the object an apply found missing; `None` when someone created it meanwhile.
async fn create(call: &Call<'_>, object: &mut Value) -> Result<Option<Value>, ApiError> {
    call.cp
        .check_namespace_accepts_content(call.namespace())
        .await?;
    let managed_fields = object["metadata"]["managedFields"].take();
    prepare_for_create(call, object);
    metadata_mut(object).insert("managedFields".into(), managed_fields);
    crate::defaults::on_write(&call.def, object);
    admit(call, None, object)?;
    let label_only = call.def.group.is_empty() && call.def.plural == "namespaces";
    object::validate_name(call.name(), label_only).map_err(|cause| {
        ApiError::invalid(&call.def.group, &call.def.kind, call.name(), vec![cause])
    })?;
    let admitted = super::write::admit_builtin(call, None, object).await?;
    let store = call.cp.store().as_ref();
    let dry_run = call.dry_run()?;
    let allocation = match services::on_write(store, &call.def, None, object, dry_run).await {
        Ok(allocation) => allocation,
        Err(e) => {
            admitted.settle(call.cp, false).await;
            return Err(e);
        }
    };
    if dry_run {
        admitted.settle(call.cp, false).await;
        return Ok(Some(object.clone()));
    }
    let key = call.key();
    let created = store
        .create(
            key.as_bytes(),
            super::encode(object),
            call.def.time_to_live(),
        )
        .await;
    allocation.settle(store, created.is_ok()).await;
    admitted.settle(call.cp, created.is_ok()).await;
    match created {
        Ok(revision) => {
            object::set_resource_version(object, revision);
            crate::crd::after_write(call.cp, &call.def, object).await;
            crate::controllers::after_write(call.cp, &call.def, object, false);
            Ok(Some(object.clone()))
        }
        Err(StoreError::AlreadyExists { .. }) => Ok(None),
        Err(e) => Err(call.store_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_and_json_bodies_decode_alike() {
        let yaml: Value =
            serde_norway::from_slice(b"apiVersion: v1\nkind: ConfigMap\ndata:\n  a: \"1\"\n")
                .unwrap();
        let json_body: Value =
            serde_norway::from_slice(br#"{"apiVersion":"v1","kind":"ConfigMap","data":{"a":"1"}}"#)
                .unwrap();
        assert_eq!(yaml, json_body);
        assert_eq!(
            yaml,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"}})
        );
    }
}
