//! Upstream's defaulting of built-in kinds: the fields kube-apiserver fills in
//! (`SetDefaults_*` of `pkg/apis/<group>/<version>/defaults.go` and the generated walks of
//! nested types) between decoding an object and storing it, so that clients read back what
//! a real cluster stores. One module per API group; [`pod_spec`] holds the pod template
//! defaults that every workload kind shares.

mod apps;
mod batch;
mod core;
mod networking;
mod others;
pub mod pod_spec;
pub mod services;

use crate::registry::ResourceDef;
use serde_json::{Map, Value};

/// Applies the defaults and write-time conversions of `def`'s kind to an object about to be
/// stored (created, updated, patched or applied). Custom resources are left alone.
pub fn on_write(def: &ResourceDef, object: &mut Value) {
    if def.custom || !object.is_object() {
        return;
    }
    match def.group.as_str() {
        "" => core::on_write(&def.kind, object),
        "apps" => apps::on_write(&def.kind, object),
        "batch" => batch::on_write(&def.kind, object),
        "networking.k8s.io" => networking::on_write(&def.kind, object),
        group => others::on_write(group, &def.kind, object),
    }
}

/// The object at `key` of `parent`, created empty when missing or null; `None` when the
/// parent is not an object or the field holds something else (validation's business).
pub(crate) fn child<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    let entry = parent.entry(key).or_insert(Value::Null);
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut()
}

/// The object at `key` of `parent` when present (never created).
pub(crate) fn existing<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    parent.get_mut(key)?.as_object_mut()
}

/// Each object of the list at `key` of `parent`, when present.
pub(crate) fn each<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    parent
        .get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// Sets `key` to `value` when it is missing or null (an unset pointer upstream).
pub(crate) fn or_set(map: &mut Map<String, Value>, key: &str, value: Value) {
    let entry = map.entry(key).or_insert(Value::Null);
    if entry.is_null() {
        *entry = value;
    }
}

/// Sets the string `key` to `value` when it is missing, null or empty (Go's zero string).
pub(crate) fn or_set_str(map: &mut Map<String, Value>, key: &str, value: &str) {
    let entry = map.entry(key).or_insert(Value::Null);
    if entry.is_null() || entry.as_str() == Some("") {
        *entry = Value::String(value.into());
    }
}

/// Sets the number `key` to `value` when it is missing, null or zero (Go's zero int).
pub(crate) fn or_set_nonzero(map: &mut Map<String, Value>, key: &str, value: i64) {
    let entry = map.entry(key).or_insert(Value::Null);
    if entry.is_null() || entry.as_i64() == Some(0) {
        *entry = Value::from(value);
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::registry::ResourceDef;

    /// The built-in definition of `group/version` `plural`.
    pub fn def(group: &str, version: &str, plural: &str) -> ResourceDef {
        crate::registry::ResourceRegistry::builtin()
            .lookup(group, version, plural)
            .map(|d| (*d).clone())
            .unwrap()
    }
}
