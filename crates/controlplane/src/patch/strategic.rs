//! Strategic merge patch (`application/strategic-merge-patch+json`), with the semantics of
//! upstream's `apimachinery/pkg/util/strategicpatch` as the API server applies it: maps merge
//! and `null` deletes; lists merge by their patch merge key where the schema says
//! `patchStrategy: merge` and are replaced otherwise; the directives `$patch`,
//! `$retainKeys`, `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>`.
//!
//! Written here because no Rust crate implements it (json-patch has RFC 6902 and 7386 only).
//! Errors carry upstream's messages; some of those print Go values, which [`go`] imitates.

use super::schema::{FieldMeta, Node};
use crate::status::ApiError;
use serde_json::{Map, Value};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// Why a strategic merge patch cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A `$deleteFromPrimitiveList` key without `/<list>`.
    #[error("invalid patch format of primitive list")]
    BadPrimitiveList,
    /// `$retainKeys` that is not a list, or a patched key it does not list.
    #[error("invalid patch format of retainKeys")]
    BadRetainKeys,
    /// A `$setElementOrder` key without `/<list>`.
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrder,
    /// A list whose items are lists.
    #[error("lists of lists are not supported")]
    ListOfLists,
    /// Any other failure, with upstream's message (it answers these with a 500).
    #[error("{0}")]
    Other(String),
}

impl From<Error> for ApiError {
    /// The status upstream's API server answers (`interpretStrategicMergePatchError`).
    fn from(error: Error) -> ApiError {
        match error {
            Error::BadPrimitiveList | Error::BadRetainKeys | Error::BadSetElementOrder => {
                ApiError::bad_request(error.to_string())
            }
            Error::ListOfLists => ApiError::unprocessable(error.to_string()),
            Error::Other(message) => ApiError::unknown(message),
        }
    }
}

type Result<T> = std::result::Result<T, Error>;

/// A strategic merge patch body: a JSON object (upstream decodes it into a Go map).
pub fn parse(body: &[u8]) -> std::result::Result<Value, ApiError> {
    let patch: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if patch.is_null() {
        return Ok(Value::Object(Map::new()));
    }
    if !patch.is_object() {
        return Err(ApiError::bad_request(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            match patch {
                Value::Array(_) => "array",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                _ => "bool",
            }
        )));
    }
    Ok(patch)
}

/// Applies `patch` to `original`, both JSON objects of the kind `node` describes.
pub fn apply(original: &Value, patch: &Value, node: Node<'_>) -> Result<Value> {
    let original = original.as_object().cloned().unwrap_or_default();
    let patch = patch.as_object().cloned().unwrap_or_default();
    let mut merged = Value::Object(merge_map(original, patch, node)?);
    strip_directives(&mut merged);
    Ok(merged)
}

/// Merges `patch` into `original` (upstream's `mergeMap`).
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    node: Node<'_>,
) -> Result<Map<String, Value>> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                Ok(patch)
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(bad_patch_type(directive, &patch)),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_ordered_lists(&mut original, &mut patch, node)?;
    for (key, patch_value) in patch {
        let (key, delete_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            Some(_) => (
                list_key(&key, DELETE_FROM_PRIMITIVE_LIST, Error::BadPrimitiveList)?,
                true,
            ),
            None => (key, false),
        };
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let Some(current) = original.get_mut(&key) else {
            if !delete_list {
                if let Some(value) = without_directives(without_nulls(patch_value)) {
                    original.insert(key, value);
                }
            }
            continue;
        };
        if go_kind(current) != go_kind(&patch_value) {
            if !delete_list {
                match without_directives(without_nulls(patch_value)) {
                    Some(value) => *current = value,
                    None => {
                        original.remove(&key);
                    }
                }
            }
            continue;
        }
        match patch_value {
            Value::Object(patch_map) => {
                let (child, meta) = node.field(&key);
                let current_map = match current.take() {
                    Value::Object(map) => map,
                    _ => Map::new(),
                };
                *current = Value::Object(if meta.replace {
                    patch_map
                } else {
                    merge_map(current_map, patch_map, child)?
                });
            }
            Value::Array(patch_list) => {
                let (child, meta) = node.field(&key);
                let current_list = match current.take() {
                    Value::Array(list) => list,
                    _ => Vec::new(),
                };
                *current = Value::Array(merge_list_field(
                    current_list,
                    patch_list,
                    child,
                    &meta,
                    delete_list,
                )?);
            }
            scalar => *current = scalar,
        }
    }
    Ok(original)
}

/// A list field's merge: by its strategy, or as a deletion list (upstream's
/// `mergeSliceHandler`).
fn merge_list_field(
    current: Vec<Value>,
    patch: Vec<Value>,
    node: Node<'_>,
    meta: &FieldMeta,
    delete_list: bool,
) -> Result<Vec<Value>> {
    if meta.merge || delete_list {
        merge_list(current, patch, node, meta.merge_key.as_deref(), delete_list)
    } else {
        Ok(patch)
    }
}

/// Merges two lists of a field with the merge strategy (upstream's `mergeSlice`).
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    node: Node<'_>,
    merge_key: Option<&str>,
    delete_list: bool,
) -> Result<Vec<Value>> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = element_kind(&original, &patch)?;
    let (original, patch, merged) = if kind != Kind::Map {
        if delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for item in original.iter().chain(&patch) {
            if !merged.contains(item) {
                merged.push(item.clone());
            }
        }
        (original, patch, merged)
    } else {
        let key = merge_key.ok_or_else(|| {
            Error::Other(format!(
                "cannot merge lists without merge key for {}",
                node.name()
            ))
        })?;
        let (original, patch) = apply_list_directives(original, patch, key)?;
        let merged = merge_items(original.clone(), &patch, key, node.items())?;
        (original, patch, merged)
    };
    let key = if kind == Kind::Map { merge_key } else { None };
    let (in_patch, server_only) = partition(merged, &patch, key)?;
    normalize_order(in_patch, server_only, &patch, &original, key, kind)
}

/// Handles the list items with `$patch` (upstream's `mergeSliceWithSpecialElements`):
/// `delete` removes the original's items with that key, `replace` makes the patch's other
/// items the whole list. Returns the original and the patch without those items.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(map) = item.as_object() else {
            return Err(bad_arg_type("map[string]interface {}", &item));
        };
        match map.get(DIRECTIVE) {
            None => rest.push(item),
            Some(directive) => match directive.as_str() {
                Some("delete") => match map.get(key) {
                    Some(value) => original.retain(|o| o.get(key) != Some(value)),
                    None => return Err(no_merge_key(map, key)),
                },
                Some("replace") => replace = true,
                Some("merge") => {
                    return Err(Error::Other(
                        "merging lists cannot yet be specified in the patch".into(),
                    ))
                }
                _ => return Err(bad_patch_type(directive, map)),
            },
        }
    }
    Ok(if replace {
        (rest, Vec::new())
    } else {
        (original, rest)
    })
}

/// Merges each patch item into the original item with the same key, or appends it
/// (upstream's `mergeSliceWithoutSpecialElements`).
fn merge_items(
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
    items: Node<'_>,
) -> Result<Vec<Value>> {
    for item in patch {
        let Some(map) = item.as_object() else {
            return Err(bad_arg_type("map[string]interface {}", item));
        };
        let Some(value) = map.get(key) else {
            return Err(no_merge_key(map, key));
        };
        match original.iter().position(|o| o.get(key) == Some(value)) {
            Some(at) => {
                let current = std::mem::take(&mut original[at]);
                let current = match current {
                    Value::Object(current) => current,
                    other => return Err(bad_arg_type("map[string]interface {}", &other)),
                };
                original[at] = Value::Object(merge_map(current, map.clone(), items)?);
            }
            None => original.push(item.clone()),
        }
    }
    Ok(original)
}

/// `$retainKeys`: the original keeps only the listed keys, and the patch may set no other.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<()> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(Error::BadRetainKeys);
    };
    let listed = |key: &str| retain.iter().any(|k| k.as_str() == Some(key));
    for (key, value) in patch.iter() {
        if value.is_null()
            || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || key.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !listed(key) {
            return Err(Error::BadRetainKeys);
        }
    }
    original.retain(|key, _| listed(key));
    Ok(())
}

/// `$setElementOrder/<list>`: merges the list now and orders the result as the directive
/// says, then the patch, then the live list (upstream's `mergePatchIntoOriginal`).
fn merge_ordered_lists(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    node: Node<'_>,
) -> Result<()> {
    let directives: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for directive in directives {
        let order = patch.remove(&directive).unwrap_or_default();
        let Value::Array(order) = order else {
            return Err(bad_arg_type("[]interface {}", &order));
        };
        let key = list_key(&directive, SET_ELEMENT_ORDER, Error::BadSetElementOrder)?;
        let original_list = list_of(original.get(&key))?;
        let patch_list = list_of(patch.get(&key))?;
        let (child, meta) = node.field(&key);
        let merge_key = meta.merge_key.as_deref();
        check_order(patch_list.unwrap_or(&[]), &order, merge_key)?;
        let merged = match (original_list, patch_list) {
            (Some(current), None) => current.to_vec(),
            (None, Some(patch)) => match without_directives(Value::Array(patch.to_vec())) {
                Some(Value::Array(list)) => list,
                _ => continue,
            },
            (Some(current), Some(patch)) => {
                merge_list_field(current.to_vec(), patch.to_vec(), child, &meta, false)?
            }
            (None, None) => continue,
        };
        let (in_order, server_only) = partition(merged, &order, merge_key)?;
        let kind = element_kind(original_list.unwrap_or(&[]), patch_list.unwrap_or(&[]))?;
        let live = original_list.unwrap_or(&[]).to_vec();
        let ordered = normalize_order(in_order, server_only, &order, &live, merge_key, kind)?;
        original.insert(key.clone(), Value::Array(ordered));
        patch.remove(&key);
    }
    Ok(())
}

/// A value that must be a list, if present.
fn list_of(value: Option<&Value>) -> Result<Option<&[Value]>> {
    match value {
        None => Ok(None),
        Some(Value::Array(list)) => Ok(Some(list)),
        Some(other) => Err(bad_arg_type("[]interface {}", other)),
    }
}

/// The list a `<prefix>/<list>` directive names.
fn list_key(directive: &str, prefix: &str, error: Error) -> Result<String> {
    match directive.split_once('/') {
        Some((head, list)) if head == prefix => Ok(list.to_owned()),
        _ => Err(error),
    }
}

/// The patch list's items must come in the `$setElementOrder` list's order and be in it
/// (upstream's `validatePatchWithSetOrderList`).
fn check_order(patch: &[Value], order: &[Value], merge_key: Option<&str>) -> Result<()> {
    if order.is_empty() || patch.is_empty() {
        return Ok(());
    }
    let kept: Vec<&Value> = match merge_key {
        Some(_) => {
            let mut kept = Vec::new();
            for item in patch {
                let Some(map) = item.as_object() else {
                    return Err(bad_arg_type("map[string]interface {}", item));
                };
                if map.get(DIRECTIVE).and_then(Value::as_str) != Some("delete") {
                    kept.push(item);
                }
            }
            kept
        }
        None => patch.iter().collect(),
    };
    let (mut p, mut o) = (0, 0);
    while p < kept.len() && o < order.len() {
        if kept[p].get(DIRECTIVE).is_some() {
            p += 1;
            continue;
        }
        if same_key(kept[p], &order[o], merge_key)? {
            p += 1;
        }
        o += 1;
    }
    if p < kept.len() && o >= order.len() {
        return Err(Error::Other(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            go(&Value::Array(patch.to_vec())),
            go(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

/// Whether two items have the same merge key value (or are equal, for scalars).
fn same_key(left: &Value, right: &Value, merge_key: Option<&str>) -> Result<bool> {
    let Some(key) = merge_key else {
        return Ok(left == right);
    };
    let value = |item: &Value| -> Result<Value> {
        let Some(map) = item.as_object() else {
            return Err(bad_arg_type("map[string]interface {}", item));
        };
        map.get(key).cloned().ok_or_else(|| no_merge_key(map, key))
    };
    Ok(value(left)? == value(right)?)
}

/// Splits `list` into the items found in `by` and the others (server-only), keeping order.
fn partition(
    list: Vec<Value>,
    by: &[Value],
    merge_key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut found = Vec::with_capacity(list.len());
    let mut others = Vec::new();
    for item in list {
        let present = match merge_key {
            None => by.contains(&item),
            Some(key) => {
                let Some(map) = item.as_object() else {
                    return Err(bad_arg_type("map[string]interface {}", &item));
                };
                let Some(value) = map.get(key) else {
                    return Err(no_merge_key(map, key));
                };
                by.iter().any(|b| b.get(key) == Some(value))
            }
        };
        if present {
            found.push(item);
        } else {
            others.push(item);
        }
    }
    Ok((found, others))
}

/// Orders the patched items by `patch_order` and the server-only ones by `server_order`,
/// then interleaves them by the live order (upstream's `normalizeElementOrder`).
fn normalize_order(
    in_patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
    kind: Kind,
) -> Result<Vec<Value>> {
    let in_patch = sort_by_order(in_patch, patch_order, merge_key, kind)?;
    let server_only = sort_by_order(server_only, server_order, merge_key, kind)?;
    let identity = |item: &Value| -> Option<Value> {
        match (kind, merge_key) {
            (Kind::Map, Some(key)) => item.get(key).cloned(),
            _ => Some(item.clone()),
        }
    };
    let index = |item: &Value| {
        let id = identity(item);
        server_order.iter().position(|o| identity(o) == id)
    };
    let mut merged = Vec::with_capacity(in_patch.len() + server_only.len());
    let (mut left, mut right) = (
        server_only.into_iter().peekable(),
        in_patch.into_iter().peekable(),
    );
    loop {
        match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => {
                let take_left = matches!((index(l), index(r)), (Some(li), Some(ri)) if li < ri);
                merged.extend(if take_left { left.next() } else { right.next() });
            }
            (Some(_), None) => merged.extend(left.next()),
            (None, Some(_)) => merged.extend(right.next()),
            (None, None) => break,
        }
    }
    Ok(merged)
}

/// Sorts `items` by their place in `order` (upstream's `normalizeSliceOrder`: a stable
/// insertion sort whose comparison puts unordered items first; `$patch: delete` items last).
fn sort_by_order(
    items: Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
    kind: Kind,
) -> Result<Vec<Value>> {
    let mut items = items;
    let mut deleted = Vec::new();
    if let (Kind::Map, Some(key)) = (kind, merge_key) {
        for item in items.iter().chain(order) {
            let Some(map) = item.as_object() else {
                return Err(bad_arg_type("map[string]interface {}", item));
            };
            if !map.contains_key(key) {
                return Err(no_merge_key(map, key));
            }
        }
        let (kept, to_delete): (Vec<Value>, Vec<Value>) = items
            .into_iter()
            .partition(|i| i.get(DIRECTIVE).and_then(Value::as_str) != Some("delete"));
        items = kept;
        deleted = to_delete;
    }
    let index = |item: &Value| match (kind, merge_key) {
        (Kind::Map, Some(key)) => order.iter().position(|o| o.get(key) == item.get(key)),
        _ => order.iter().position(|o| o == item),
    };
    let less = |a: &Value, b: &Value| match (index(a), index(b)) {
        (Some(ia), Some(ib)) => ia < ib,
        _ => true,
    };
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && less(&items[j], &items[j - 1]) {
            items.swap(j, j - 1);
            j -= 1;
        }
    }
    items.extend(deleted);
    Ok(items)
}

/// The kinds of JSON values as Go's decoder types them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    List,
    Map,
}

fn go_kind(value: &Value) -> Kind {
    match value {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(_) => Kind::Number,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::List,
        Value::Object(_) => Kind::Map,
    }
}

/// The one kind of the items of both lists (upstream's `sliceElementType`).
fn element_kind(original: &[Value], patch: &[Value]) -> Result<Kind> {
    let mut kind = None;
    for item in original.iter().chain(patch) {
        if item.is_null() {
            continue;
        }
        let this = go_kind(item);
        match kind {
            None if this == Kind::List => return Err(Error::ListOfLists),
            None => kind = Some(this),
            Some(k) if k != this => {
                return Err(Error::Other(format!(
                    "list element types are not identical: [{} {}]",
                    go(&Value::Array(original.to_vec())),
                    go(&Value::Array(patch.to_vec()))
                )))
            }
            Some(_) => {}
        }
    }
    kind.ok_or_else(|| Error::Other("no elements in any of the given slices".into()))
}

/// A value with the maps that carry `$patch` dropped (upstream's `removeDirectives`);
/// `None` when the value itself is one.
fn without_directives(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) => {
            if map.contains_key(DIRECTIVE) {
                return None;
            }
            Some(Value::Object(
                map.into_iter()
                    .filter_map(|(k, v)| without_directives(v).map(|v| (k, v)))
                    .collect(),
            ))
        }
        Value::Array(list) => Some(Value::Array(
            list.into_iter().filter_map(without_directives).collect(),
        )),
        other => Some(other),
    }
}

/// A value with its maps' `null` entries dropped (a new value has nothing to delete).
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(list) => Value::Array(list.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// Removes the directive keys a patch may leave behind in a result, as decoding the result
/// into the kind's type drops them upstream.
fn strip_directives(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| {
                k != DIRECTIVE
                    && k != RETAIN_KEYS
                    && !k.starts_with(SET_ELEMENT_ORDER)
                    && !k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            });
            map.values_mut().for_each(strip_directives);
        }
        Value::Array(list) => list.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

fn bad_patch_type(directive: &Value, map: &Map<String, Value>) -> Error {
    let directive = match directive {
        Value::String(s) => s.clone(),
        other => format!("%!s({}={})", go_type(other), go(other)),
    };
    Error::Other(format!(
        "unknown patch type: {directive} in map: {}",
        go(&Value::Object(map.clone()))
    ))
}

fn no_merge_key(map: &Map<String, Value>, key: &str) -> Error {
    Error::Other(format!(
        "map: {} does not contain declared merge key: {key}",
        go(&Value::Object(map.clone()))
    ))
}

fn bad_arg_type(expected: &str, actual: &Value) -> Error {
    Error::Other(format!(
        "expected a {expected}, but received a {}",
        go_type(actual)
    ))
}

/// A value's Go type after `encoding/json` decoding, as `%s` of its `reflect.Type` prints.
fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "%!s(<nil>)",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// A value as Go's `%v` prints it after `encoding/json` decoding (maps with sorted keys).
fn go(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(list) => format!("[{}]", list.iter().map(go).collect::<Vec<_>>().join(" ")),
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let entries: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{k}:{}", go(v)))
                .collect();
            format!("map[{}]", entries.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(original: Value, patch: Value) -> Result<Value> {
        apply(
            &original,
            &patch,
            Node::builtin_kind("apps", "v1", "Deployment"),
        )
    }

    fn pod_spec(containers: Value) -> Value {
        json!({"spec": {"template": {"spec": {"containers": containers}}}})
    }

    fn containers(object: &Value) -> &Value {
        &object["spec"]["template"]["spec"]["containers"]
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        let original = json!({"data": {"a": "1", "b": "2"}, "metadata": {"name": "x"}});
        let patch = json!({"data": {"b": null, "c": "3"}});
        let merged = apply(&original, &patch, Node::builtin_kind("", "v1", "ConfigMap")).unwrap();
        assert_eq!(
            merged,
            json!({"data": {"a": "1", "c": "3"}, "metadata": {"name": "x"}})
        );
    }

    #[test]
    fn containers_env_and_ports_merge_by_their_keys() {
        let original = pod_spec(json!([
            {"name": "app", "image": "app:1",
             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
             "ports": [{"containerPort": 80, "name": "http"}],
             "args": ["a", "b"]},
            {"name": "side", "image": "side:1"},
        ]));
        let patch = pod_spec(json!([
            {"name": "app", "image": "app:2",
             "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
             "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}],
             "args": ["c"]},
        ]));
        let merged = deployment(original, patch).unwrap();
        assert_eq!(
            containers(&merged),
            &json!([
                {"name": "app", "image": "app:2",
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
                 "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 443}],
                 "args": ["c"]},
                {"name": "side", "image": "side:1"},
            ])
        );
    }

    #[test]
    fn list_items_are_deleted_and_lists_replaced_by_directive() {
        let original = pod_spec(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]));
        let merged = deployment(
            original.clone(),
            pod_spec(json!([{"name": "b", "$patch": "delete"}])),
        )
        .unwrap();
        assert_eq!(containers(&merged), &json!([{"name": "a"}, {"name": "c"}]));
        let merged = deployment(
            original,
            pod_spec(json!([{"name": "z", "image": "z"}, {"$patch": "replace"}])),
        )
        .unwrap();
        assert_eq!(containers(&merged), &json!([{"name": "z", "image": "z"}]));
    }

    #[test]
    fn map_directives_replace_and_delete() {
        let original =
            json!({"spec": {"selector": {"matchLabels": {"a": "1", "b": "2"}}, "replicas": 1}});
        let merged = deployment(
            original.clone(),
            json!({"spec": {"selector": {"matchLabels": {"c": "3", "$patch": "replace"}}}}),
        )
        .unwrap();
        assert_eq!(merged["spec"]["selector"]["matchLabels"], json!({"c": "3"}));
        let merged = deployment(
            original,
            json!({"spec": {"selector": {"$patch": "delete"}}}),
        )
        .unwrap();
        assert_eq!(merged["spec"], json!({"selector": {}, "replicas": 1}));
    }

    #[test]
    fn an_unknown_directive_is_upstreams_error() {
        let error = deployment(
            pod_spec(json!([{"name": "a"}])),
            pod_spec(json!([{"name": "a", "$patch": "frobnicate"}])),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown patch type: frobnicate in map: map[$patch:frobnicate name:a]"
        );
        let status = ApiError::from(error);
        assert_eq!((status.code(), status.reason()), (500, ""));
        let error =
            deployment(json!({"spec": {}}), json!({"spec": {"$patch": "merge"}})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown patch type: merge in map: map[$patch:merge]"
        );
        let error = deployment(
            pod_spec(json!([{"name": "a"}])),
            pod_spec(json!([{"$patch": "merge"}])),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "merging lists cannot yet be specified in the patch"
        );
    }

    #[test]
    fn items_without_their_merge_key_are_refused() {
        let error = deployment(
            pod_spec(json!([{"name": "a"}])),
            pod_spec(json!([{"image": "x"}])),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "map: map[image:x] does not contain declared merge key: name"
        );
        let error = deployment(
            pod_spec(json!([{"name": "a"}])),
            pod_spec(json!([{"$patch": "delete"}])),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "map: map[$patch:delete] does not contain declared merge key: name"
        );
    }

    #[test]
    fn primitive_merge_lists_are_unioned_and_deleted_from() {
        let original = json!({"metadata": {"finalizers": ["a", "b"]}});
        let merged = deployment(
            original.clone(),
            json!({"metadata": {"finalizers": ["c", "a"]}}),
        )
        .unwrap();
        // Patched items in the patch's order; server-only ones where the live list had them.
        assert_eq!(merged["metadata"]["finalizers"], json!(["c", "a", "b"]));
        let merged = deployment(
            original.clone(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "$setElementOrder/finalizers": ["b"]}}),
        )
        .unwrap();
        assert_eq!(merged["metadata"], json!({"finalizers": ["b"]}));
        let error = deployment(
            original,
            json!({"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}}),
        )
        .unwrap_err();
        assert_eq!(error, Error::BadPrimitiveList);
        assert_eq!(ApiError::from(error).code(), 400);
    }

    #[test]
    fn set_element_order_orders_the_merged_list() {
        let original = pod_spec(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]));
        let mut patch = pod_spec(json!([{"name": "d", "image": "d"}]));
        patch["spec"]["template"]["spec"]["$setElementOrder/containers"] =
            json!([{"name": "c"}, {"name": "d"}, {"name": "a"}]);
        let merged = deployment(original.clone(), patch).unwrap();
        let names: Vec<&str> = containers(&merged)
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        // The directive's order; the server-only "b" stays before "c" as it was live.
        assert_eq!(names, ["b", "c", "d", "a"]);
        assert!(merged["spec"]["template"]["spec"]
            .get("$setElementOrder/containers")
            .is_none());

        let mut patch = pod_spec(json!([{"name": "a"}, {"name": "c"}]));
        patch["spec"]["template"]["spec"]["$setElementOrder/containers"] =
            json!([{"name": "c"}, {"name": "a"}]);
        let error = deployment(original.clone(), patch).unwrap_err();
        assert!(
            error.to_string().starts_with("The order in patch list:\n"),
            "{error}"
        );

        let mut patch = json!({});
        patch["spec"] = json!({"$setElementOrderx": []});
        assert_eq!(
            deployment(original.clone(), patch).unwrap_err(),
            Error::BadSetElementOrder
        );
        let mut patch = json!({});
        patch["spec"] = json!({"template": {"spec": {"$setElementOrder/containers": "a"}}});
        assert_eq!(
            deployment(original, patch).unwrap_err().to_string(),
            "expected a []interface {}, but received a string"
        );
    }

    #[test]
    fn retain_keys_clears_unlisted_fields() {
        let original = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let merged = deployment(
            original.clone(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        )
        .unwrap();
        assert_eq!(merged["spec"]["strategy"], json!({"type": "Recreate"}));
        let error = deployment(
            original.clone(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
        )
        .unwrap_err();
        assert_eq!(error, Error::BadRetainKeys);
        let error = deployment(
            original,
            json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
        )
        .unwrap_err();
        assert_eq!(error, Error::BadRetainKeys);
        assert_eq!(
            ApiError::from(error).message(),
            "invalid patch format of retainKeys"
        );
    }

    #[test]
    fn lists_of_lists_are_unprocessable() {
        let error = deployment(
            json!({"metadata": {"finalizers": ["a"]}}),
            json!({"metadata": {"finalizers": [["b"]]}}),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "list element types are not identical: [[a] [[b]]]"
        );
        let error = deployment(
            json!({"metadata": {"finalizers": []}}),
            json!({"metadata": {"finalizers": [["b"]]}}),
        )
        .unwrap_err();
        assert_eq!(error, Error::ListOfLists);
        let status = ApiError::from(error).to_json();
        assert_eq!(status["code"], 422);
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(
            status["details"]["causes"][0]["message"],
            "lists of lists are not supported"
        );
    }

    #[test]
    fn lists_without_a_strategy_are_replaced() {
        let original = json!({"spec": {"template": {"spec": {"tolerations": [{"key": "a"}]}}}});
        let merged = deployment(
            original,
            json!({"spec": {"template": {"spec": {"tolerations": [{"key": "b"}]}}}}),
        )
        .unwrap();
        assert_eq!(
            merged["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "b"}])
        );
    }

    #[test]
    fn service_ports_merge_by_port() {
        let original = json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}});
        let merged = apply(
            &original,
            &json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}),
            Node::builtin_kind("", "v1", "Service"),
        )
        .unwrap();
        assert_eq!(
            merged["spec"]["ports"],
            json!([{"port": 80, "name": "http", "targetPort": 8080}, {"port": 443, "name": "https"}])
        );
    }

    #[test]
    fn new_values_lose_their_directives_and_nulls() {
        let merged = deployment(
            json!({"spec": {}}),
            json!({"spec": {"template": {"metadata": {"labels": {"a": "1", "b": null}}, "spec": {"$patch": "replace"}}}}),
        )
        .unwrap();
        assert_eq!(
            merged["spec"],
            json!({"template": {"metadata": {"labels": {"a": "1"}}}})
        );
    }

    #[test]
    fn bodies_must_be_objects() {
        assert_eq!(parse(b"null").unwrap(), json!({}));
        assert_eq!(
            parse(b"[1]").unwrap_err().message(),
            "json: cannot unmarshal array into Go value of type map[string]interface {}"
        );
        assert_eq!(parse(b"{").unwrap_err().code(), 400);
    }
}
