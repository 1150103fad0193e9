//! Server-side apply and field ownership (`metadata.managedFields`), as upstream's
//! structured-merge-diff and `apimachinery/pkg/util/managedfields` define them: an apply
//! merges the applied configuration into the live object, removes what the manager
//! applied before and no longer applies (unless someone else owns it), and refuses to
//! change fields other managers own unless forced; every other write records its changed
//! fields for its manager (`operation: Update`), taking them from the others.
//!
//! Written here because there is no Rust implementation of structured-merge-diff.

use super::fields::{self, Element, FieldSet};
use super::schema::{FieldMeta, Node};
use crate::status::{ApiError, Cause};
use serde_json::{json, Map, Value};

/// Who writes: the field manager, the API version it writes in, and the subresource.
#[derive(Clone, Copy, Debug)]
pub struct Manager<'a> {
    /// The `fieldManager` (or the client's name from its User-Agent).
    pub name: &'a str,
    /// `group/version` of the request.
    pub api_version: &'a str,
    /// `status`, `scale`, or `None` for the main resource.
    pub subresource: Option<&'a str>,
}

/// The manager upstream names when the first apply meets fields nobody tracked.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    fields: FieldSet,
}

impl Entry {
    fn is(&self, manager: &Manager<'_>, operation: &str) -> bool {
        self.manager == manager.name
            && self.operation == operation
            && self.subresource.as_deref() == manager.subresource
            && (operation == "Apply" || self.api_version == manager.api_version)
    }

    /// How upstream names a manager in conflict messages (`printManager`).
    fn printed(&self) -> String {
        let mut printed = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            printed.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            printed.push_str(&format!(" using {}", self.api_version));
        }
        printed
    }

    fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), json!(self.manager));
        entry.insert("operation".into(), json!(self.operation));
        entry.insert("apiVersion".into(), json!(self.api_version));
        if let Some(time) = &self.time {
            entry.insert("time".into(), json!(time));
        }
        entry.insert("fieldsType".into(), json!("FieldsV1"));
        entry.insert("fieldsV1".into(), self.fields.to_v1());
        if let Some(sub) = &self.subresource {
            entry.insert("subresource".into(), json!(sub));
        }
        Value::Object(entry)
    }

    fn from_json(value: &Value) -> Option<Entry> {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        Some(Entry {
            manager: text("manager").unwrap_or_default(),
            operation: text("operation")?,
            api_version: text("apiVersion").unwrap_or_default(),
            time: text("time"),
            subresource: text("subresource").filter(|s| !s.is_empty()),
            fields: FieldSet::from_v1(value.get("fieldsV1").unwrap_or(&Value::Null)),
        })
    }
}

fn read_entries(object: &Value) -> Vec<Entry> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|entries| entries.iter().filter_map(Entry::from_json).collect())
        .unwrap_or_default()
}

fn write_entries(object: &mut Value, entries: Vec<Entry>) {
    let entries: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(entries));
        }
    }
}

/// The fields of `object` that managers can own: not the type, the identity or the
/// server-set metadata, nor `status` when it is a subresource of its own; `compared` for
/// the sets an update's comparison sees.
fn owned_fields(object: &Value, node: Node<'_>, without_status: bool, compared: bool) -> FieldSet {
    let mut set = match compared {
        true => FieldSet::of_object_compared(object, node),
        false => FieldSet::of_object(object, node),
    };
    let path =
        |elements: &[&str]| -> Vec<Element> { elements.iter().map(|e| format!("f:{e}")).collect() };
    let mut server_set = vec![path(&["apiVersion"]), path(&["kind"])];
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "managedFields",
    ] {
        server_set.push(path(&["metadata", field]));
    }
    if without_status {
        server_set.push(path(&["status"]));
    }
    for path in &server_set {
        set.remove_subtree(path);
    }
    set
}

/// A value with every `null` map entry dropped (an applied `null` sets nothing).
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Applies `applied` for `manager` to `live` (`None` when the object does not exist yet),
/// returning the new object with its `managedFields`; 409 on conflicts unless `force`.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    node: Node<'_>,
    manager: &Manager<'_>,
    force: bool,
    without_status: bool,
) -> Result<Value, ApiError> {
    let applied = without_nulls(applied);
    let applied_set = owned_fields(&applied, node, without_status, false);
    let mut entries = live.map(read_entries).unwrap_or_default();
    if let Some(live) = live {
        if entries.is_empty() {
            entries.push(Entry {
                manager: BEFORE_FIRST_APPLY.into(),
                operation: "Update".into(),
                api_version: manager.api_version.into(),
                time: None,
                subresource: None,
                fields: owned_fields(live, node, without_status, true),
            });
        }
    }
    let base = live.cloned().unwrap_or_else(|| json!({}));
    let mut merged = fields::merge(&base, &applied, node, &FieldMeta::default());

    let changed: Vec<Vec<Element>> = applied_set
        .leaves()
        .into_iter()
        .filter(|path| fields::get(&base, path) != fields::get(&merged, path))
        .collect();
    let mut conflicts: Vec<(usize, Vec<Element>)> = Vec::new();
    for (at, entry) in entries.iter().enumerate() {
        if entry.is(manager, "Apply") {
            continue;
        }
        for path in &changed {
            if entry.fields.contains(path) {
                conflicts.push((at, path.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        let mut blocking = conflicts.clone();
        if manager.name == KUBECTL {
            blocking.retain(|(_, path)| !last_applied_still_live(&base, path, node, manager));
        }
        if !force && !blocking.is_empty() {
            return Err(conflict_error(&entries, &blocking));
        }
        for (at, path) in &conflicts {
            entries[*at].fields.subtract(&FieldSet::from_paths([path]));
        }
    }

    let mine = entries.iter().position(|e| e.is(manager, "Apply"));
    let mut removed = mine
        .map(|at| entries[at].fields.clone())
        .unwrap_or_default();
    removed.subtract(&applied_set);
    for path in removed.paths() {
        // Kept while anyone owns it or something below it, the applier's new set included
        // (upstream prunes, then adds back what is owned).
        let owned_elsewhere = applied_set.touches(&path)
            || entries
                .iter()
                .enumerate()
                .any(|(at, e)| Some(at) != mine && e.fields.touches(&path));
        if !owned_elsewhere {
            fields::remove(&mut merged, &path);
        }
    }

    let entry = Entry {
        manager: manager.name.into(),
        operation: "Apply".into(),
        api_version: manager.api_version.into(),
        time: Some(crate::object::now()),
        subresource: manager.subresource.map(str::to_owned),
        fields: applied_set,
    };
    match mine {
        Some(at) => entries[at] = entry,
        None => entries.push(entry),
    }
    if !merged.get("metadata").is_some_and(Value::is_object) {
        merged["metadata"] = json!({});
    }
    write_entries(&mut merged, entries);
    Ok(merged)
}

/// The manager of `kubectl apply --server-side`.
const KUBECTL: &str = "kubectl";
/// Where client-side `kubectl apply` keeps what it applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Whether `path` is a field client-side `kubectl apply` set (it is in the object's
/// last-applied annotation, in this API version) and nobody changed since: upstream lets
/// kubectl's server-side apply take such fields over without a conflict
/// (`lastAppliedManager`), so that moving from client-side to server-side apply works.
fn last_applied_still_live(
    live: &Value,
    path: &[Element],
    node: Node<'_>,
    manager: &Manager<'_>,
) -> bool {
    let Some(text) = live["metadata"]["annotations"][LAST_APPLIED].as_str() else {
        return false;
    };
    let Ok(last_applied) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    if last_applied["apiVersion"].as_str() != Some(manager.api_version) {
        return false;
    }
    FieldSet::of_object(&last_applied, node).contains(path)
        && fields::get(&last_applied, path) == fields::get(live, path)
}

/// Records a non-apply write (create, update, patch) of `manager`: the fields it set or
/// changed become its own (`operation: Update`), and other managers lose the fields it
/// changed or removed. `old` is `None` for a create.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    node: Node<'_>,
    manager: &Manager<'_>,
    without_status: bool,
) {
    let mut entries = if new["metadata"].get("managedFields").is_some() {
        read_entries(new)
    } else {
        old.map(read_entries).unwrap_or_default()
    };
    let old_set = old
        .map(|o| owned_fields(o, node, without_status, true))
        .unwrap_or_default();
    let new_set = owned_fields(new, node, without_status, true);
    let changed: Vec<Vec<Element>> = new_set
        .paths()
        .into_iter()
        .filter(|path| {
            !old_set.contains(path)
                || (new_set.is_leaf(path)
                    && old.and_then(|o| fields::get(o, path)) != fields::get(new, path))
        })
        .collect();
    let removed: Vec<Vec<Element>> = old_set
        .paths()
        .into_iter()
        .filter(|path| !new_set.contains(path))
        .collect();
    if !changed.is_empty() || !removed.is_empty() {
        let changed = FieldSet::from_paths(&changed);
        let removed = FieldSet::from_paths(&removed);
        for entry in entries.iter_mut() {
            entry.fields.subtract(&changed);
            entry.fields.subtract(&removed);
        }
        match entries.iter_mut().find(|e| e.is(manager, "Update")) {
            Some(entry) => {
                entry.fields.union(&changed);
                entry.time = Some(crate::object::now());
            }
            None => entries.push(Entry {
                manager: manager.name.into(),
                operation: "Update".into(),
                api_version: manager.api_version.into(),
                time: Some(crate::object::now()),
                subresource: manager.subresource.map(str::to_owned),
                fields: changed,
            }),
        }
    }
    write_entries(new, entries);
}

/// Upstream's apply conflict (`errors.NewApplyConflict` with the managedfields message).
fn conflict_error(entries: &[Entry], conflicts: &[(usize, Vec<Element>)]) -> ApiError {
    let causes: Vec<Cause> = conflicts
        .iter()
        .map(|(at, path)| Cause {
            reason: "FieldManagerConflict".into(),
            message: format!("conflict with {}", entries[*at].printed()),
            field: fields::path_string(path),
        })
        .collect();
    let message = match conflicts {
        [(at, path)] => format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            entries[*at].printed(),
            fields::path_string(path)
        ),
        many => {
            let mut managers: Vec<String> =
                many.iter().map(|(at, _)| entries[*at].printed()).collect();
            managers.sort();
            managers.dedup();
            let mut lines = Vec::new();
            for printed in managers {
                lines.push(format!("conflicts with {printed}:"));
                for (at, path) in many {
                    if entries[*at].printed() == printed {
                        lines.push(format!("- {}", fields::path_string(path)));
                    }
                }
            }
            format!(
                "Apply failed with {} conflicts: {}",
                many.len(),
                lines.join("\n")
            )
        }
    };
    ApiError::apply_conflict(message, causes)
}

/// The field manager of a non-apply write: `fieldManager`, else the client's name from
/// its User-Agent (the part before the first `/`), as upstream derives it.
pub fn update_manager(field_manager: Option<&str>, user_agent: Option<&str>) -> String {
    match field_manager.filter(|m| !m.is_empty()) {
        Some(manager) => manager.to_owned(),
        None => user_agent
            .unwrap_or_default()
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm() -> Node<'static> {
        Node::builtin_kind("", "v1", "ConfigMap")
    }

    fn manager(name: &str) -> Manager<'_> {
        Manager {
            name,
            api_version: "v1",
            subresource: None,
        }
    }

    fn config(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"}, "data": data})
    }

    /// Applies `data` as the ConfigMap's data, as manager `name`.
    fn apply_cm(
        live: Option<&Value>,
        data: Value,
        name: &str,
        force: bool,
    ) -> Result<Value, ApiError> {
        apply(live, &config(data), cm(), &manager(name), force, false)
    }

    #[test]
    fn apply_creates_with_managed_fields() {
        let object = apply_cm(None, json!({"a": "1"}), "m", false).unwrap();
        let entries = object["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0]["manager"], "m");
        assert_eq!(entries[0]["operation"], "Apply");
        assert_eq!(entries[0]["fieldsType"], "FieldsV1");
        assert_eq!(entries[0]["fieldsV1"], json!({"f:data": {"f:a": {}}}));
        assert_eq!(object["data"], json!({"a": "1"}));
    }

    #[test]
    fn fields_no_longer_applied_are_removed_unless_owned_elsewhere() {
        let first = apply_cm(None, json!({"a": "1", "b": "2", "c": "3"}), "m", false).unwrap();
        let shared = apply_cm(Some(&first), json!({"c": "3"}), "other", false).unwrap();
        let second = apply_cm(Some(&shared), json!({"a": "1"}), "m", false).unwrap();
        assert_eq!(second["data"], json!({"a": "1", "c": "3"}));
    }

    #[test]
    fn changing_anothers_field_conflicts_and_force_takes_it() {
        let first = apply_cm(None, json!({"a": "1"}), "m", false).unwrap();
        let error = apply_cm(Some(&first), json!({"a": "2"}), "n", false).unwrap_err();
        assert_eq!((error.code(), error.reason()), (409, "Conflict"));
        assert_eq!(
            error.message(),
            "Apply failed with 1 conflict: conflict with \"m\": .data.a"
        );
        let status = error.to_json();
        assert_eq!(
            status["details"]["causes"][0],
            json!({"reason": "FieldManagerConflict", "message": "conflict with \"m\"", "field": ".data.a"})
        );
        // The same value is shared ownership, not a conflict.
        apply_cm(Some(&first), json!({"a": "1"}), "n", false).unwrap();
        let forced = apply_cm(Some(&first), json!({"a": "2"}), "n", true).unwrap();
        assert_eq!(forced["data"]["a"], "2");
        let owners: Vec<(&str, &Value)> = forced["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["manager"].as_str().unwrap(), &e["fieldsV1"]))
            .collect();
        // ".data.a" is "n"'s now, and "m" owns nothing left.
        assert_eq!(owners, [("n", &json!({"f:data": {"f:a": {}}}))]);
    }

    #[test]
    fn updates_take_fields_and_conflict_with_applies() {
        let first = apply_cm(None, json!({"a": "1", "b": "1"}), "m", false).unwrap();
        let mut updated = first.clone();
        updated["data"]["a"] = json!("2");
        updated["data"]["z"] = json!("9");
        record_update(
            Some(&first),
            &mut updated,
            cm(),
            &manager("kubectl-edit"),
            false,
        );
        let entries = updated["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries[0]["fieldsV1"], json!({"f:data": {"f:b": {}}}));
        assert_eq!(entries[1]["manager"], "kubectl-edit");
        assert_eq!(entries[1]["operation"], "Update");
        assert_eq!(
            entries[1]["fieldsV1"],
            json!({"f:data": {"f:a": {}, "f:z": {}}})
        );
        let error = apply_cm(Some(&updated), json!({"a": "3", "b": "1"}), "m", false).unwrap_err();
        assert_eq!(
            error.message(),
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1: .data.a"
        );
        let mut both = updated.clone();
        both["data"]["z"] = json!("8");
        let error = apply_cm(Some(&updated), json!({"a": "3", "z": "0"}), "m", false).unwrap_err();
        assert_eq!(
            error.message(),
            "Apply failed with 2 conflicts: conflicts with \"kubectl-edit\" using v1:\n- .data.a\n- .data.z"
        );
    }

    #[test]
    fn untracked_objects_are_owned_before_the_first_apply() {
        let live = config(json!({"a": "1"}));
        let error = apply_cm(Some(&live), json!({"a": "2"}), "m", false).unwrap_err();
        assert!(
            error.message().contains("\"before-first-apply\" using v1"),
            "{}",
            error.message()
        );
    }

    #[test]
    fn managers_come_from_the_query_or_the_user_agent() {
        assert_eq!(update_manager(Some("x"), Some("kubectl/v1.33")), "x");
        assert_eq!(
            update_manager(None, Some("kubectl/v1.33 (linux/amd64)")),
            "kubectl"
        );
        assert_eq!(update_manager(Some(""), None), "");
    }

    #[test]
    fn kubectl_takes_over_what_client_side_apply_set() {
        let mut live = apply_cm(None, json!({"a": "1", "b": "1"}), "m", false).unwrap();
        let mut updated = live.clone();
        updated["metadata"]["annotations"] =
            json!({LAST_APPLIED: config(json!({"a": "1"})).to_string()});
        updated["data"]["a"] = json!("1");
        record_update(
            Some(&live),
            &mut updated,
            cm(),
            &manager("kubectl-client-side-apply"),
            false,
        );
        live = updated;
        // "a" was last applied client-side with its live value: kubectl may take it...
        apply(
            Some(&live),
            &config(json!({"a": "2"})),
            cm(),
            &manager(KUBECTL),
            false,
            false,
        )
        .unwrap();
        // ...but not "b", which "m" applied, nor may other managers.
        let error = apply(
            Some(&live),
            &config(json!({"b": "2"})),
            cm(),
            &manager(KUBECTL),
            false,
            false,
        )
        .unwrap_err();
        assert_eq!(error.code(), 409);
        let error = apply_cm(Some(&live), json!({"a": "2"}), "other", false).unwrap_err();
        assert_eq!(error.code(), 409);
    }

    #[test]
    fn a_map_the_manager_owned_stays_while_it_applies_entries_in_it() {
        let mut live = apply_cm(None, json!({"a": "1"}), "m", false).unwrap();
        // The manager's entry says it owns the map itself too (as kubectl writes it when it
        // moves client-side ownership over).
        live["metadata"]["managedFields"][0]["fieldsV1"] = json!({"f:data": {".": {}, "f:a": {}}});
        let applied = apply_cm(Some(&live), json!({"a": "2"}), "m", false).unwrap();
        assert_eq!(applied["data"], json!({"a": "2"}));
    }
}
