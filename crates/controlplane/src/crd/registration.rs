//! Registration: a CRD's status (`acceptedNames`, `NamesAccepted`, `Established`,
//! `storedVersions`), computed in the write that changes the CRD, as upstream's naming and
//! establishing controllers would set it a moment later; and its served versions as
//! [`ResourceDef`]s in the registry, so that discovery and routing see them at once.

use super::{columns::PrinterColumn, CustomResource, ScalePaths, CLEANUP_FINALIZER};
use crate::controlplane::ControlPlane;
use crate::object::{meta_str, metadata_mut};
use crate::registry::{ResourceDef, ResourceRegistry, CRUD_VERBS};
use kflex_storage_backends::{RangeRequest, StoreError};
use serde_json::{json, Value};
use std::sync::Arc;

/// Adds the cleanup finalizer to a new CRD, as upstream's CRD strategy does.
pub(super) fn add_cleanup_finalizer(crd: &mut Value) {
    let meta = metadata_mut(crd);
    let finalizers = meta.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(list) = finalizers.as_array_mut() {
        if !list.iter().any(|f| f == CLEANUP_FINALIZER) {
            list.push(json!(CLEANUP_FINALIZER));
        }
    }
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value.get(field).and_then(Value::as_str).unwrap_or("")
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// The first of `names` that another resource of the group already uses, as upstream's
/// naming controller reports it (`"widgets" is already in use`).
fn name_conflict(registry: &ResourceRegistry, crd_name: &str, spec: &Value) -> Option<String> {
    let group = text(spec, "group");
    let names = &spec["names"];
    let others: Vec<Arc<ResourceDef>> = registry
        .all()
        .into_iter()
        .filter(|r| r.group == group && r.crd.as_ref().is_none_or(|c| c.crd_name != crd_name))
        .collect();
    let resource_names: Vec<&str> = others
        .iter()
        .flat_map(|r| {
            [r.plural.as_str(), r.singular.as_str()]
                .into_iter()
                .chain(r.short_names.iter().map(String::as_str))
        })
        .collect();
    let kinds: Vec<&str> = others
        .iter()
        .flat_map(|r| [r.kind.as_str(), r.list_kind.as_str()])
        .collect();
    let mut resources = vec![
        text(names, "plural").to_owned(),
        text(names, "singular").to_owned(),
    ];
    resources.extend(strings(&names["shortNames"]));
    for name in resources.iter().filter(|n| !n.is_empty()) {
        if resource_names.contains(&name.as_str()) {
            return Some(format!("{} is already in use", json!(name)));
        }
    }
    for kind in [text(names, "kind"), text(names, "listKind")] {
        if kinds.contains(&kind) {
            return Some(format!("{} is already in use", json!(kind)));
        }
    }
    None
}

/// A condition, keeping its `lastTransitionTime` when its status does not change.
fn condition(old: &[Value], kind: &str, status: bool, reason: &str, message: &str) -> Value {
    let status = if status { "True" } else { "False" };
    let since = old
        .iter()
        .find(|c| c["type"] == kind && c["status"] == status)
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(crate::object::now()));
    json!({"type": kind, "status": status, "lastTransitionTime": since, "reason": reason, "message": message})
}

/// Sets a CRD's status for the write that is about to be stored. A `/status` write keeps
/// the `storedVersions` it sends (a storage migration removes old ones); other writes add
/// the storage version to the old list.
pub(super) fn set_status(
    registry: &ResourceRegistry,
    crd: &mut Value,
    old: Option<&Value>,
    status_write: bool,
) {
    let name = meta_str(crd, "name").unwrap_or("").to_owned();
    let spec = crd["spec"].clone();
    let old_status = old.map(|o| o["status"].clone()).unwrap_or(Value::Null);
    let old_conditions = old_status["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut stored = if status_write {
        strings(&crd["status"]["storedVersions"])
    } else {
        strings(&old_status["storedVersions"])
    };
    for version in spec["versions"].as_array().into_iter().flatten() {
        let version_name = text(version, "name").to_owned();
        if version["storage"].as_bool() == Some(true) && !stored.contains(&version_name) {
            stored.push(version_name);
        }
    }
    let conflict = name_conflict(registry, &name, &spec);
    let accepted = match &conflict {
        None => spec["names"].clone(),
        Some(_) => old_status
            .get("acceptedNames")
            .cloned()
            .unwrap_or_else(|| json!({"plural": "", "kind": ""})),
    };
    let was_established = old_conditions
        .iter()
        .any(|c| c["type"] == "Established" && c["status"] == "True");
    let mut conditions = vec![
        match &conflict {
            None => condition(
                &old_conditions,
                "NamesAccepted",
                true,
                "NoConflicts",
                "no conflicts found",
            ),
            Some(message) => condition(
                &old_conditions,
                "NamesAccepted",
                false,
                "NameConflict",
                message,
            ),
        },
        if conflict.is_none() || was_established {
            condition(
                &old_conditions,
                "Established",
                true,
                "InitialNamesAccepted",
                "the initial names have been accepted",
            )
        } else {
            condition(
                &old_conditions,
                "Established",
                false,
                "NotAccepted",
                "not all names are accepted",
            )
        },
    ];
    conditions.extend(
        old_conditions
            .iter()
            .filter(|c| c["type"] == "Terminating")
            .cloned(),
    );
    crd["status"] = json!({
        "conditions": conditions,
        "acceptedNames": accepted,
        "storedVersions": stored,
    });
}

/// Whether a stored CRD's names were accepted (it is served).
fn names_accepted(crd: &Value) -> bool {
    crd["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "NamesAccepted" && c["status"] == "True")
}

/// The resources a CRD serves: one per served version, under its accepted names.
pub(super) fn resources(crd: &Value, terminating: bool) -> Vec<ResourceDef> {
    let name = meta_str(crd, "name").unwrap_or("").to_owned();
    let spec = &crd["spec"];
    let group = text(spec, "group").to_owned();
    let names = match crd["status"].get("acceptedNames") {
        Some(accepted) if !text(accepted, "plural").is_empty() => accepted,
        _ => &spec["names"],
    };
    let plural = text(names, "plural").to_owned();
    let kind = text(names, "kind").to_owned();
    let mut defs: Vec<ResourceDef> = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"].as_bool() == Some(true))
        .map(|version| {
            let subresources = &version["subresources"];
            let scale = subresources
                .get("scale")
                .filter(|s| s.is_object())
                .map(|s| ScalePaths {
                    spec_replicas: text(s, "specReplicasPath").to_owned(),
                    status_replicas: text(s, "statusReplicasPath").to_owned(),
                    label_selector: Some(text(s, "labelSelectorPath").to_owned())
                        .filter(|p| !p.is_empty()),
                });
            let mut served_subresources = Vec::new();
            if subresources.get("status").is_some_and(Value::is_object) {
                served_subresources.push("status".to_owned());
            }
            if scale.is_some() {
                served_subresources.push("scale".to_owned());
            }
            ResourceDef {
                group: group.clone(),
                version: text(version, "name").to_owned(),
                kind: kind.clone(),
                list_kind: Some(text(names, "listKind"))
                    .filter(|l| !l.is_empty())
                    .map_or_else(|| format!("{kind}List"), str::to_owned),
                plural: plural.clone(),
                singular: Some(text(names, "singular"))
                    .filter(|s| !s.is_empty())
                    .map_or_else(|| kind.to_lowercase(), str::to_owned),
                namespaced: text(spec, "scope") == "Namespaced",
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                verbs: CRUD_VERBS.to_vec(),
                subresources: served_subresources,
                tracks_generation: true,
                custom: true,
                crd: Some(Arc::new(CustomResource {
                    crd_name: name.clone(),
                    open_api_v3_schema: version["schema"]["openAPIV3Schema"].clone(),
                    columns: PrinterColumn::of_version(version),
                    scale,
                    selectable_fields: version["selectableFields"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|f| f["jsonPath"].as_str())
                        .map(|p| p.trim_start_matches('.').to_owned())
                        .collect(),
                    terminating,
                    rules: super::rules::Rules::compile(&version["schema"]["openAPIV3Schema"]),
                })),
                storage_prefix: format!("/registry/{group}/{plural}/"),
            }
        })
        .collect();
    defs.sort_by(|a, b| crate::discovery::compare_kube_versions(&b.version, &a.version));
    defs
}

/// Brings the registry in line with a CRD as just stored: served while its names are
/// accepted and it exists, gone once it is deleted.
pub(super) fn sync(registry: &ResourceRegistry, crd: &Value) {
    let name = meta_str(crd, "name").unwrap_or("");
    let deleting = meta_str(crd, "deletionTimestamp").is_some();
    let gone = deleting && crate::object::finalizers(crd).is_empty();
    if gone || !names_accepted(crd) {
        registry.replace_custom(name, Vec::new());
    } else {
        registry.replace_custom(name, resources(crd, deleting));
    }
}

/// Every CRD in the store (those that are not JSON are logged and skipped).
pub(super) async fn stored(cp: &ControlPlane) -> Result<Vec<Value>, StoreError> {
    let Some(def) = cp
        .registry()
        .lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    else {
        return Ok(Vec::new());
    };
    let page = cp
        .store()
        .range(RangeRequest {
            prefix: def.collection_prefix(None).into_bytes(),
            ..Default::default()
        })
        .await?;
    Ok(page
        .kvs
        .iter()
        .filter_map(|kv| {
            let crd = serde_json::from_slice::<Value>(&kv.value);
            if crd.is_err() {
                tracing::warn!(key = %String::from_utf8_lossy(&kv.key), "a stored CRD is not JSON");
            }
            crd.ok()
        })
        .collect())
}

/// Serves every CRD in the store: called when a control plane starts. A CRD that was being
/// deleted when the process stopped finishes its cleanup here.
pub async fn load(cp: &ControlPlane) -> Result<(), StoreError> {
    let mut deleting = Vec::new();
    for crd in stored(cp).await? {
        sync(cp.registry(), &crd);
        if meta_str(&crd, "deletionTimestamp").is_some() {
            deleting.push(meta_str(&crd, "name").unwrap_or("").to_owned());
        }
    }
    for name in deleting {
        if let Err(error) = super::cleanup::run(cp, &name).await {
            tracing::warn!(crd = %name, %error, "resuming the cleanup of a deleted CRD");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(name: &str, plural: &str, kind: &str) -> Value {
        json!({
            "metadata": {"name": format!("{plural}.example.com")},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": plural, "singular": name, "kind": kind, "listKind": format!("{kind}List"), "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}},
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}}},
                    {"name": "v2alpha1", "served": false, "storage": false, "schema": {"openAPIV3Schema": {"type": "object"}}},
                ]},
        })
    }

    #[test]
    fn accepted_crds_register_their_served_versions() {
        let registry = ResourceRegistry::builtin();
        let mut widget = crd("widget", "widgets", "Widget");
        add_cleanup_finalizer(&mut widget);
        set_status(&registry, &mut widget, None, false);
        assert_eq!(widget["status"]["conditions"][0]["reason"], "NoConflicts");
        assert_eq!(widget["status"]["conditions"][1]["type"], "Established");
        assert_eq!(widget["status"]["conditions"][1]["status"], "True");
        assert_eq!(widget["status"]["storedVersions"], json!(["v1"]));
        sync(&registry, &widget);
        let v1 = registry.lookup("example.com", "v1", "widgets").unwrap();
        assert_eq!(v1.subresources, vec!["status", "scale"]);
        assert_eq!(v1.storage_prefix, "/registry/example.com/widgets/");
        assert!(registry
            .lookup("example.com", "v1beta1", "widgets")
            .is_some());
        assert!(registry
            .lookup("example.com", "v2alpha1", "widgets")
            .is_none());

        let mut other = crd("widget", "widgets2", "Gadget");
        other["metadata"]["name"] = json!("widgets2.example.com");
        set_status(&registry, &mut other, None, false);
        assert_eq!(other["status"]["conditions"][0]["status"], "False");
        assert_eq!(
            other["status"]["conditions"][0]["message"],
            "\"widget\" is already in use"
        );
        assert_eq!(other["status"]["conditions"][1]["reason"], "NotAccepted");
        sync(&registry, &other);
        assert!(registry.lookup("example.com", "v1", "widgets2").is_none());

        widget["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        sync(&registry, &widget);
        assert!(
            registry
                .lookup("example.com", "v1", "widgets")
                .unwrap()
                .crd
                .as_ref()
                .unwrap()
                .terminating
        );
        widget["metadata"]["finalizers"] = json!([]);
        sync(&registry, &widget);
        assert!(registry.lookup("example.com", "v1", "widgets").is_none());
    }

    #[test]
    fn built_in_names_conflict() {
        let registry = ResourceRegistry::builtin();
        let mut deployments = crd("deployment", "deployments", "Deployment");
        deployments["spec"]["group"] = json!("apps");
        set_status(&registry, &mut deployments, None, false);
        assert_eq!(deployments["status"]["conditions"][0]["status"], "False");
    }
}
