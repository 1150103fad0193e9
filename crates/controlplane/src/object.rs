//! Objects as the API stores and serves them: JSON with `metadata`, the server-set
//! fields, and upstream's name validation.

use crate::status::Cause;
use serde_json::{Map, Value};

/// The object's `metadata`, if it is an object.
pub fn metadata(object: &Value) -> Option<&Map<String, Value>> {
    object.get("metadata")?.as_object()
}

/// The object's `metadata`, created if missing.
pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    let Value::Object(map) = object else {
        unreachable!("objects are validated as JSON objects before their metadata is touched")
    };
    let entry = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut().expect("just made an object")
}

/// A string field of `metadata`.
pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    metadata(object)?.get(field)?.as_str()
}

/// Sets `metadata.resourceVersion`: objects are stored without it and served with the
/// store revision of their last write.
pub fn set_resource_version(object: &mut Value, revision: i64) {
    metadata_mut(object).insert(
        "resourceVersion".into(),
        Value::String(revision.to_string()),
    );
}

/// `metadata.finalizers`, as strings.
pub fn finalizers(object: &Value) -> Vec<String> {
    metadata(object)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The current time as Kubernetes writes timestamps (RFC 3339, whole seconds, UTC).
pub fn now() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// A new `metadata.uid`.
pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Characters upstream draws generated name suffixes from.
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `generateName` plus five random characters, as upstream's `SimpleNameGenerator`.
pub fn generate_name(prefix: &str) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let prefix: String = prefix.chars().take(63 - 5).collect();
    let suffix: String = (0..5)
        .map(|_| NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

const DNS1123_LABEL_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is \
'[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is \
'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn is_dns1123_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Checks an object name as upstream does: namespaces must be RFC 1123 labels, other
/// objects RFC 1123 subdomains (at most 253 characters).
pub fn validate_name(name: &str, label_only: bool) -> Result<(), Cause> {
    let invalid = |message: String| Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {}: {message}", Value::String(name.into())),
        field: "metadata.name".into(),
    };
    if label_only {
        if name.len() > 63 {
            return Err(invalid("must be no more than 63 characters".into()));
        }
        if !is_dns1123_label(name) {
            return Err(invalid(DNS1123_LABEL_MESSAGE.into()));
        }
        return Ok(());
    }
    if name.len() > 253 {
        return Err(invalid("must be no more than 253 characters".into()));
    }
    if !name.split('.').all(is_dns1123_label) {
        return Err(invalid(DNS1123_SUBDOMAIN_MESSAGE.into()));
    }
    Ok(())
}

/// The part of an object that `metadata.generation` counts: everything but `metadata`,
/// `status` and the type fields.
pub fn spec_part(object: &Value) -> Map<String, Value> {
    object
        .as_object()
        .map(|map| {
            map.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "kind" | "apiVersion")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_as_upstream() {
        assert!(validate_name("my-config.v1", false).is_ok());
        assert!(validate_name("Upper", false).is_err());
        assert!(validate_name("a.b", true).is_err());
        assert!(validate_name("-x", true).is_err());
        assert!(validate_name(&"a".repeat(254), false).is_err());
        let cause = validate_name("Bad_Name", false).unwrap_err();
        assert!(cause
            .message
            .starts_with("Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"));
    }

    #[test]
    fn generated_names_use_upstreams_alphabet() {
        let name = generate_name("job-");
        assert_eq!(name.len(), 9);
        assert!(name[4..].bytes().all(|b| NAME_ALPHABET.contains(&b)));
    }

    #[test]
    fn timestamps_have_whole_seconds() {
        let t = now();
        assert!(t.ends_with('Z') && !t.contains('.'), "{t}");
    }
}
