//! Upstream's write-time conversions of built-in kinds that clients rely on: what
//! kube-apiserver does to an object between decoding the request and storing it.

use crate::registry::ResourceDef;
use base64::Engine;
use serde_json::{Map, Value};

/// Applies the conversions for `def`'s kind to an object about to be stored.
pub fn on_write(def: &ResourceDef, object: &mut Value) {
    if def.group.is_empty() && def.plural == "secrets" {
        merge_string_data(object);
    }
}

/// A Secret's `stringData` is write-only: each entry replaces the `data` entry of the same
/// key, base64-encoded, and `stringData` itself is never stored (upstream's v1 conversion).
fn merge_string_data(secret: &mut Value) {
    let Some(map) = secret.as_object_mut() else {
        return;
    };
    let Some(Value::Object(strings)) = map.remove("stringData") else {
        return;
    };
    if strings.is_empty() {
        return;
    }
    let data = map
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Value::Object(data) = data {
        for (key, value) in strings {
            let text = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            data.insert(
                key,
                Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secrets() -> ResourceDef {
        crate::registry::ResourceRegistry::builtin()
            .lookup("", "v1", "secrets")
            .map(|d| (*d).clone())
            .unwrap()
    }

    #[test]
    fn string_data_becomes_base64_data_and_wins() {
        let mut secret = json!({
            "kind": "Secret",
            "data": {"a": "b2xk", "keep": "eA=="},
            "stringData": {"a": "new", "b": "two"},
        });
        on_write(&secrets(), &mut secret);
        assert_eq!(
            secret,
            json!({"kind": "Secret", "data": {"a": "bmV3", "keep": "eA==", "b": "dHdv"}})
        );
    }

    #[test]
    fn other_kinds_and_secrets_without_string_data_are_untouched() {
        let mut secret = json!({"kind": "Secret", "data": {"a": "eA=="}});
        let before = secret.clone();
        on_write(&secrets(), &mut secret);
        assert_eq!(secret, before);
        let configmaps = crate::registry::ResourceRegistry::builtin()
            .lookup("", "v1", "configmaps")
            .unwrap();
        let mut cm = json!({"kind": "ConfigMap", "stringData": {"a": "x"}});
        on_write(&configmaps, &mut cm);
        assert!(cm.get("stringData").is_some());
    }
}
