//! CustomResourceDefinitions served as APIs, as apiextensions-apiserver serves them, but
//! event-driven in the request path: a CRD write is validated ([`validation`]), gets its
//! status at once and registers its served versions ([`registration`]); custom resource
//! writes are pruned ([`pruning`]), defaulted ([`defaulting`]) and validated against the
//! version's structural schema ([`schema`]) and its CEL rules ([`rules`]); Tables use the printer columns ([`columns`]);
//! deleting a CRD deletes its objects ([`cleanup`]); kflex processes sharing a store learn
//! of each other's CRD changes ([`shared`]). Nothing runs in the background.

mod cleanup;
pub mod columns;
pub mod defaulting;
pub mod pruning;
mod registration;
pub mod rules;
pub mod schema;
pub(crate) mod shared;
pub mod validation;

use crate::controlplane::ControlPlane;
use crate::registry::{ResourceDef, ResourceRegistry};
use crate::status::{ApiError, Cause};
use serde_json::Value;

pub use columns::PrinterColumn;
pub use registration::load;

/// The finalizer that holds a CRD until its objects are gone (upstream's name).
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// What a served version of a CustomResourceDefinition adds to its [`ResourceDef`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomResource {
    /// The CRD's name (`<plural>.<group>`).
    pub crd_name: String,
    /// The version's `schema.openAPIV3Schema`, as the CRD gives it (for validation,
    /// pruning, defaulting and OpenAPI publication).
    pub open_api_v3_schema: Value,
    /// The Table columns after `Name`.
    pub columns: Vec<PrinterColumn>,
    /// The scale subresource's paths, when the version has one.
    pub scale: Option<ScalePaths>,
    /// `selectableFields[].jsonPath` as field selector names (`spec.color`).
    pub selectable_fields: Vec<String>,
    /// The CRD is being deleted: objects are read and deleted, never created.
    pub terminating: bool,
    /// The schema's `x-kubernetes-validations` rules, compiled when the CRD is registered.
    pub rules: rules::Rules,
}

/// `subresources.scale` of a version: simple JSON paths (`.spec.replicas`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalePaths {
    /// Where `Scale.spec.replicas` is read and written.
    pub spec_replicas: String,
    /// Where `Scale.status.replicas` is read.
    pub status_replicas: String,
    /// Where `Scale.status.selector` (a serialized label selector) is read, if anywhere.
    pub label_selector: Option<String>,
}

/// Whether `def` is the CustomResourceDefinition resource itself.
pub fn is_crd_resource(def: &ResourceDef) -> bool {
    def.group == "apiextensions.k8s.io" && def.plural == "customresourcedefinitions"
}

/// Admission of a write, after the handler's own update rules: a CRD is defaulted,
/// validated and given its status; a custom resource is pruned, defaulted and validated
/// against its schema. Returns the pruned field paths (`spec.foo`), which
/// `fieldValidation=Strict` turns into a 400 here and `Warn` into warnings.
pub fn admit(
    registry: &ResourceRegistry,
    def: &ResourceDef,
    subresource: Option<&str>,
    old: Option<&Value>,
    object: &mut Value,
) -> Result<Vec<String>, ApiError> {
    let name = crate::object::meta_str(object, "name")
        .unwrap_or("")
        .to_owned();
    if is_crd_resource(def) {
        validation::set_defaults(object);
        if old.is_none() {
            registration::add_cleanup_finalizer(object);
        }
        let causes = validation::validate(object, old);
        if !causes.is_empty() {
            return Err(ApiError::invalid(&def.group, &def.kind, &name, causes));
        }
        registration::set_status(registry, object, old, subresource == Some("status"));
        return Ok(Vec::new());
    }
    let Some(custom) = &def.crd else {
        return Ok(Vec::new());
    };
    if custom.terminating && old.is_none() {
        return Err(ApiError::method_not_allowed_because(
            "create not allowed while custom resource definition is terminating",
        ));
    }
    let pruned = pruning::prune(object, &custom.open_api_v3_schema);
    defaulting::apply(object, &custom.open_api_v3_schema);
    let mut causes = schema::validate(object, &custom.open_api_v3_schema);
    if !causes.iter().any(|c| c.reason == "FieldValueTypeInvalid") {
        causes.extend(
            custom
                .rules
                .validate(&custom.open_api_v3_schema, object, old),
        );
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(&def.group, &def.kind, &name, causes));
    }
    Ok(pruned)
}

/// A custom resource as a client reads it through `def`: in `def`'s version (conversion
/// `None` rewrites `apiVersion`) and with the schema's defaults, as upstream defaults on
/// reads from storage.
pub fn served(def: &ResourceDef, object: &mut Value) {
    let Some(custom) = &def.crd else { return };
    if object.get("kind").and_then(Value::as_str) != Some(def.kind.as_str()) {
        return;
    }
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(def.api_version()));
    }
    defaulting::apply(object, &custom.open_api_v3_schema);
}

/// After a write: a CRD's served versions are registered (or removed when the write
/// deleted it); a write to an object of a terminating CRD may finish the CRD's cleanup.
pub async fn after_write(cp: &ControlPlane, def: &ResourceDef, object: &Value) {
    if is_crd_resource(def) {
        registration::sync(cp.registry(), object);
        shared::announce(cp).await;
    } else if let Some(custom) = def.crd.as_ref().filter(|c| c.terminating) {
        if let Err(error) = cleanup::run(cp, &custom.crd_name).await {
            tracing::warn!(crd = %custom.crd_name, %error, "cleaning up a deleted CRD");
        }
    }
}

/// After a delete: deleting a CRD deletes its objects (then the CRD); deleting the last
/// object of a terminating CRD lets the CRD go. Returns the object to answer with.
pub async fn after_delete(
    cp: &ControlPlane,
    def: &ResourceDef,
    object: Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    if dry_run {
        return Ok(object);
    }
    if is_crd_resource(def) {
        let name = crate::object::meta_str(&object, "name")
            .unwrap_or("")
            .to_owned();
        if crate::object::meta_str(&object, "deletionTimestamp").is_some() {
            return Ok(cleanup::run(cp, &name).await?.unwrap_or(object));
        }
        cp.registry().replace_custom(&name, Vec::new());
        shared::announce(cp).await;
    } else if let Some(custom) = def.crd.as_ref().filter(|c| c.terminating) {
        cleanup::run(cp, &custom.crd_name).await?;
    }
    Ok(object)
}

/// One validation failure, as `field.Error` renders it.
/// The subschemas of a schema node's `allOf`, `anyOf`, `oneOf` and `not`, each with its
/// path below `path` (`<path>.allOf[0]`, `<path>.not`).
pub(crate) fn combined_schemas<'a>(
    map: &'a serde_json::Map<String, Value>,
    path: &'a str,
) -> impl Iterator<Item = (String, &'a Value)> + 'a {
    ["allOf", "anyOf", "oneOf"]
        .into_iter()
        .flat_map(move |keyword| {
            map.get(keyword)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
                .map(move |(i, sub)| (format!("{path}.{keyword}[{i}]"), sub))
        })
        .chain(map.get("not").map(|not| (format!("{path}.not"), not)))
}

pub(crate) fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause {
        reason: reason.into(),
        message,
        field: field.into(),
    }
}

/// `Required value[: detail]`.
pub(crate) fn required(field: &str, detail: &str) -> Cause {
    let message = if detail.is_empty() {
        "Required value".to_owned()
    } else {
        format!("Required value: {detail}")
    };
    cause("FieldValueRequired", field, message)
}

/// `Invalid value: <value>: detail`; composite values print as `...`.
pub(crate) fn invalid(field: &str, value: &Value, detail: &str) -> Cause {
    cause(
        "FieldValueInvalid",
        field,
        format!("Invalid value: {}: {detail}", render(value)),
    )
}

/// `Forbidden: detail`.
pub(crate) fn forbidden(field: &str, detail: &str) -> Cause {
    cause("FieldValueForbidden", field, format!("Forbidden: {detail}"))
}

/// `Duplicate value: <value>`.
pub(crate) fn duplicate(field: &str, value: &Value) -> Cause {
    cause(
        "FieldValueDuplicate",
        field,
        format!("Duplicate value: {}", render(value)),
    )
}

/// `Unsupported value: <value>: supported values: "a", "b"`.
pub(crate) fn not_supported(field: &str, value: &Value, supported: &[Value]) -> Cause {
    let supported: Vec<String> = supported.iter().map(render).collect();
    cause(
        "FieldValueNotSupported",
        field,
        format!(
            "Unsupported value: {}: supported values: {}",
            render(value),
            supported.join(", ")
        ),
    )
}

/// A value as field errors print it: JSON for scalars, `...` for objects and lists.
fn render(value: &Value) -> String {
    match value {
        Value::Object(_) | Value::Array(_) => "...".into(),
        other => other.to_string(),
    }
}
