//! Upstream's Priority admission: a new Pod's `priorityClassName` is resolved to its
//! `spec.priority` and `spec.preemptionPolicy` from the PriorityClass of that name (the
//! global default class, or priority 0 and `PreemptLowerPriority`, when it names none); an
//! unknown class, or a priority or policy the Pod sets otherwise, is refused. An update
//! keeps what the create resolved. At most one PriorityClass may be the global default. The
//! two system classes exist from a control plane's start, as upstream creates them (and, as
//! upstream since v1.17, any namespace may use them); upstream's validation of PriorityClasses
//! keeps the `system-` names and values above a billion to them, and a class's value and
//! preemption policy immutable.

use super::Attributes;
use crate::controlplane::ControlPlane;
use crate::registry::ResourceDef;
use crate::status::{ApiError, Cause};
use kflex_storage_backends::StoreError;
use serde_json::{json, Value};

const GROUP: &str = "scheduling.k8s.io";
const PLURAL: &str = "priorityclasses";
/// The prefix of the names reserved for the system classes.
const SYSTEM_PREFIX: &str = "system-";
/// The highest value of a class that is not a system one.
const HIGHEST_USER_DEFINABLE: i64 = 1_000_000_000;
/// The preemption policy of a Pod whose class sets none.
const PREEMPT_LOWER_PRIORITY: &str = "PreemptLowerPriority";

/// The system PriorityClasses: upstream's `system-node-critical` and
/// `system-cluster-critical` (a thousand below it).
fn system_classes() -> Vec<Value> {
    [
        (
            "system-node-critical",
            2_000_001_000,
            "Used for system critical pods that must not be moved from their current node.",
        ),
        (
            "system-cluster-critical",
            2_000_000_000,
            "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
        ),
    ]
    .into_iter()
    .map(|(name, value, description)| {
        json!({
            "kind": "PriorityClass",
            "apiVersion": "scheduling.k8s.io/v1",
            "metadata": {"name": name},
            "value": value,
            "description": description,
            "preemptionPolicy": PREEMPT_LOWER_PRIORITY,
        })
    })
    .collect()
}

/// Creates the system PriorityClasses a store lacks (at control-plane start and when a
/// spare store is prepared).
pub(crate) async fn bootstrap(cp: &ControlPlane) -> Result<(), StoreError> {
    cp.create_missing(GROUP, PLURAL, system_classes()).await
}

/// Whether the write is of a PriorityClass (judged for its `globalDefault`).
pub(super) fn is_class(attrs: &Attributes<'_>) -> bool {
    attrs.def.group == GROUP && attrs.def.plural == PLURAL && attrs.subresource.is_none()
}

fn classes_def(cp: &ControlPlane) -> Result<std::sync::Arc<ResourceDef>, ApiError> {
    cp.builtin(GROUP, "v1", PLURAL)
}

/// Every PriorityClass, decoded.
async fn classes(cp: &ControlPlane) -> Result<Vec<Value>, ApiError> {
    super::list_of(cp, &*classes_def(cp)?, None).await
}

/// The PriorityClass named `name`, if any.
async fn class(cp: &ControlPlane, name: &str) -> Result<Option<Value>, ApiError> {
    let def = classes_def(cp)?;
    let (kv, _) = cp
        .store()
        .get(def.key(None, name).as_bytes(), None)
        .await
        .map_err(|e| crate::status::from_store(e, &def.group_resource(), name))?;
    Ok(kv.and_then(|kv| serde_json::from_slice(&kv.value).ok()))
}

/// The global default class: the lowest valued of those marked so (upstream's choice when a
/// race left several).
fn global_default(classes: &[Value]) -> Option<&Value> {
    classes
        .iter()
        .filter(|c| c["globalDefault"] == Value::Bool(true))
        .min_by_key(|c| c["value"].as_i64().unwrap_or(0))
}

/// Resolves a Pod's priority on create; keeps the resolved one on update.
pub(super) async fn admit(
    cp: &ControlPlane,
    attrs: &Attributes<'_>,
    pod: &mut Value,
) -> Result<(), ApiError> {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    if let Some(old) = attrs.old {
        for field in ["priority", "preemptionPolicy"] {
            let kept = &old["spec"][field];
            if spec.get(field).is_none_or(Value::is_null) && !kept.is_null() {
                spec.insert(field.to_owned(), kept.clone());
            }
        }
        return Ok(());
    }
    let named = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let (priority, policy) = match named {
        Some(name) => {
            let class = class(cp, &name).await?.ok_or_else(|| {
                attrs.forbidden(format!("no PriorityClass with name {name} was found"))
            })?;
            (
                class["value"].as_i64().unwrap_or(0),
                class["preemptionPolicy"].as_str().map(str::to_owned),
            )
        }
        None => {
            let classes = classes(cp).await?;
            match global_default(&classes) {
                Some(class) => {
                    let name = crate::object::meta_str(class, "name").unwrap_or_default();
                    spec.insert("priorityClassName".into(), json!(name));
                    (
                        class["value"].as_i64().unwrap_or(0),
                        class["preemptionPolicy"].as_str().map(str::to_owned),
                    )
                }
                None => (0, Some(PREEMPT_LOWER_PRIORITY.to_owned())),
            }
        }
    };
    if let Some(set) = spec.get("priority").and_then(Value::as_i64) {
        if set != priority {
            return Err(attrs.forbidden(format!(
                "the integer value of priority ({set}) must not be provided in pod spec; \
                 priority admission controller computed {priority} from the given PriorityClass name"
            )));
        }
    }
    spec.insert("priority".into(), json!(priority));
    if let Some(policy) = policy {
        if let Some(set) = spec.get("preemptionPolicy").and_then(Value::as_str) {
            if set != policy {
                return Err(attrs.forbidden(format!(
                    "the string value of PreemptionPolicy ({set}) must not be provided in pod spec; \
                     priority admission controller computed {policy} from the given PriorityClass name"
                )));
            }
        }
        spec.insert("preemptionPolicy".into(), json!(policy));
    }
    Ok(())
}

/// Upstream's validation of a PriorityClass (422): what is wrong with it, or with the change
/// an update makes.
fn problems(class: &Value, old: Option<&Value>) -> Vec<Cause> {
    let forbidden = |field: &str, why: String| Cause {
        reason: "FieldValueForbidden".into(),
        message: format!("Forbidden: {why}"),
        field: field.into(),
    };
    let mut causes = Vec::new();
    let name = crate::object::meta_str(class, "name").unwrap_or_default();
    let value = class["value"].as_i64().unwrap_or(0);
    if name.starts_with(SYSTEM_PREFIX) {
        let system = system_classes();
        let known = system
            .iter()
            .find(|c| crate::object::meta_str(c, "name") == Some(name));
        let error = match known {
            None => Some(format!("{name} is not a known system priority class")),
            Some(known) if known["value"] != class["value"] => Some(format!(
                "value of {name} PriorityClass must be {}",
                known["value"]
            )),
            Some(_) if class["globalDefault"] == Value::Bool(true) => Some(format!(
                "globalDefault of {name} PriorityClass must be false"
            )),
            Some(_) => None,
        };
        if let Some(error) = error {
            causes.push(forbidden(
                "metadata.name",
                format!(
                    "priority class names with '{SYSTEM_PREFIX}' prefix are reserved for system use only. error: {error}"
                ),
            ));
        }
    } else if value > HIGHEST_USER_DEFINABLE {
        causes.push(forbidden(
            "value",
            format!("maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE}"),
        ));
    }
    if let Some(old) = old {
        if old["value"] != class["value"] {
            causes.push(forbidden(
                "value",
                "may not be changed in an update.".into(),
            ));
        }
        if old["preemptionPolicy"] != class["preemptionPolicy"] {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: {}: field is immutable",
                    class["preemptionPolicy"]
                ),
                field: "preemptionPolicy".into(),
            });
        }
    }
    causes
}

/// A PriorityClass must be valid (upstream's validation, 422), and one marked
/// `globalDefault` is refused while another one is the default (403).
pub(super) async fn validate_class(
    cp: &ControlPlane,
    attrs: &Attributes<'_>,
    class: &Value,
) -> Result<(), ApiError> {
    let causes = problems(class, attrs.old);
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            GROUP,
            "PriorityClass",
            attrs.name,
            causes,
        ));
    }
    if class["globalDefault"] != Value::Bool(true) {
        return Ok(());
    }
    let classes = classes(cp).await?;
    let Some(current) = global_default(&classes) else {
        return Ok(());
    };
    let current = crate::object::meta_str(current, "name").unwrap_or_default();
    if attrs.old.is_none() || current != attrs.name {
        return Err(attrs.forbidden(format!(
            "PriorityClass {current} is already marked as default. Only one default can exist"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_classes_and_the_default() {
        let classes = system_classes();
        let names: Vec<&str> = classes
            .iter()
            .filter_map(|c| crate::object::meta_str(c, "name"))
            .collect();
        assert_eq!(names, ["system-node-critical", "system-cluster-critical"]);
        assert_eq!(classes[0]["value"], 2_000_001_000);
        assert_eq!(classes[1]["value"], 2_000_000_000);
        assert!(global_default(&classes).is_none());
        let defaults = vec![
            json!({"metadata": {"name": "high"}, "value": 100, "globalDefault": true}),
            json!({"metadata": {"name": "low"}, "value": 10, "globalDefault": true}),
            json!({"metadata": {"name": "lowest"}, "value": 1}),
        ];
        assert_eq!(
            global_default(&defaults).unwrap()["metadata"]["name"],
            "low"
        );
    }
}
