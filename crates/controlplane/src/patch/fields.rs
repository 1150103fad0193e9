//! Field sets as server-side apply tracks them (structured-merge-diff's `fieldpath.Set`):
//! which fields of an object a manager owns, built from an object with its schema, and
//! read and written in upstream's `FieldsV1` encoding (`f:<field>`, `k:{...}` for items of
//! map lists, `v:<value>` for items of sets, `.` for a member with children).

use super::schema::{FieldMeta, ListType, Node};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One step of a path, encoded as in `FieldsV1` (`f:name`, `k:{"name":"a"}`, `v:"x"`).
pub type Element = String;

/// A set of field paths, as a tree: each node is a path, `member` says whether the path
/// itself is in the set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<Element, FieldSet>,
}

impl FieldSet {
    /// The fields `object` sets, with lists and maps treated as `node` describes them, as
    /// an apply owns them (structured-merge-diff's `ToFieldSet`): values, atomic lists and
    /// structs, set and map list items, and empty maps; not the maps and lists holding them.
    pub fn of_object(object: &Value, node: Node<'_>) -> FieldSet {
        Self::walk(object, node, false)
    }

    /// The fields of `object` as a comparison between two versions sees them
    /// (structured-merge-diff's `Compare`): also every granular map, so that a map an
    /// update adds is owned itself (`.` in `fieldsV1`).
    pub fn of_object_compared(object: &Value, node: Node<'_>) -> FieldSet {
        Self::walk(object, node, true)
    }

    fn walk(object: &Value, node: Node<'_>, maps: bool) -> FieldSet {
        let mut set = FieldSet::default();
        if let Value::Object(map) = object {
            for (key, value) in map {
                let (child, meta) = node.field(key);
                set.child(format!("f:{key}"))
                    .insert_value(value, child, &meta, maps);
            }
        }
        set
    }

    fn child(&mut self, element: Element) -> &mut FieldSet {
        self.children.entry(element).or_default()
    }

    fn insert_value(&mut self, value: &Value, node: Node<'_>, meta: &FieldMeta, maps: bool) {
        match value {
            Value::Object(map) => {
                if map.is_empty() || node.is_atomic_struct() {
                    self.member = true;
                    return;
                }
                if maps && node.is_map() {
                    self.member = true;
                }
                for (key, value) in map {
                    let (child, meta) = node.field(key);
                    self.child(format!("f:{key}"))
                        .insert_value(value, child, &meta, maps);
                }
            }
            Value::Array(items) => match meta.apply_list_type() {
                (ListType::Atomic, _) => self.member = true,
                (ListType::Set, _) => {
                    for item in items {
                        self.child(value_element(item)).member = true;
                    }
                }
                (ListType::Map, keys) => {
                    for item in items {
                        let child = self.child(key_element(item, &keys));
                        child.member = true;
                        if let Value::Object(fields) = item {
                            for (key, value) in fields {
                                let (field, meta) = node.items().field(key);
                                child
                                    .child(format!("f:{key}"))
                                    .insert_value(value, field, &meta, maps);
                            }
                        }
                    }
                }
            },
            _ => self.member = true,
        }
    }

    /// Reads a `fieldsV1` value.
    pub fn from_v1(value: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        if let Value::Object(map) = value {
            for (key, child) in map {
                if key == "." {
                    set.member = true;
                    continue;
                }
                let mut child_set = FieldSet::from_v1(child);
                if child.as_object().is_some_and(Map::is_empty) {
                    child_set.member = true;
                }
                set.children.insert(key.clone(), child_set);
            }
        }
        set
    }

    /// The `fieldsV1` value of this set.
    pub fn to_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".into(), Value::Object(Map::new()));
        }
        for (element, child) in &self.children {
            map.insert(element.clone(), child.to_v1());
        }
        Value::Object(map)
    }

    /// Whether the set has no path.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// Adds every path of `other`.
    pub fn union(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (element, child) in &other.children {
            self.child(element.clone()).union(child);
        }
    }

    /// Removes every path of `other`.
    pub fn subtract(&mut self, other: &FieldSet) {
        if other.member {
            self.member = false;
        }
        for (element, child) in &other.children {
            if let Some(mine) = self.children.get_mut(element) {
                mine.subtract(child);
                if mine.is_empty() {
                    self.children.remove(element);
                }
            }
        }
    }

    /// Every path in the set, parents before their children, in the set's order.
    pub fn paths(&self) -> Vec<Vec<Element>> {
        let mut paths = Vec::new();
        self.collect(&mut Vec::new(), &mut paths);
        paths
    }

    fn collect(&self, prefix: &mut Vec<Element>, paths: &mut Vec<Vec<Element>>) {
        if self.member && !prefix.is_empty() {
            paths.push(prefix.clone());
        }
        for (element, child) in &self.children {
            prefix.push(element.clone());
            child.collect(prefix, paths);
            prefix.pop();
        }
    }

    /// The paths that have no path below them (values, not containers).
    pub fn leaves(&self) -> Vec<Vec<Element>> {
        self.paths()
            .into_iter()
            .filter(|path| self.is_leaf(path))
            .collect()
    }

    /// Whether `path` is in the set with nothing below it.
    pub fn is_leaf(&self, path: &[Element]) -> bool {
        let mut node = self;
        for element in path {
            match node.children.get(element) {
                Some(child) => node = child,
                None => return false,
            }
        }
        node.member && node.children.is_empty()
    }

    /// Removes `path` and everything below it.
    pub fn remove_subtree(&mut self, path: &[Element]) {
        let Some((first, rest)) = path.split_first() else {
            *self = FieldSet::default();
            return;
        };
        if rest.is_empty() {
            self.children.remove(first);
        } else if let Some(child) = self.children.get_mut(first) {
            child.remove_subtree(rest);
            if child.is_empty() {
                self.children.remove(first);
            }
        }
    }

    /// Whether the set holds `path` itself.
    pub fn contains(&self, path: &[Element]) -> bool {
        match path.split_first() {
            None => self.member,
            Some((first, rest)) => self.children.get(first).is_some_and(|c| c.contains(rest)),
        }
    }

    /// Whether the set holds `path` or any path below it.
    pub fn touches(&self, path: &[Element]) -> bool {
        match path.split_first() {
            None => !self.is_empty(),
            Some((first, rest)) => self.children.get(first).is_some_and(|c| c.touches(rest)),
        }
    }

    /// A set of exactly these paths.
    pub fn from_paths<'a>(paths: impl IntoIterator<Item = &'a Vec<Element>>) -> FieldSet {
        let mut set = FieldSet::default();
        for path in paths {
            let mut node = &mut set;
            for element in path {
                node = node.child(element.clone());
            }
            node.member = true;
        }
        set
    }
}

/// `k:{...}`: a map list item's key fields, as compact JSON with sorted keys.
fn key_element(item: &Value, keys: &[String]) -> Element {
    let fields: BTreeMap<&str, Value> = keys
        .iter()
        .filter_map(|k| key_field(item, k).map(|v| (k.as_str(), v)))
        .collect();
    format!("k:{}", serde_json::to_string(&fields).unwrap_or_default())
}

/// A key field of a map list item, with upstream's default where the API defaults it
/// (`protocol: TCP` of container and service ports): upstream computes field sets on
/// defaulted objects, so `{containerPort: 80}` and `{containerPort: 80, protocol: TCP}`
/// are the same item.
fn key_field(item: &Value, key: &str) -> Option<Value> {
    match (item.get(key), key) {
        (Some(value), _) => Some(value.clone()),
        (None, "protocol") => Some(Value::String("TCP".into())),
        (None, _) => None,
    }
}

/// `v:<json>`: a set item.
fn value_element(item: &Value) -> Element {
    format!("v:{item}")
}

/// A path as upstream prints it in conflicts: `.spec.containers[name="app"].image`.
pub fn path_string(path: &[Element]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(field) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(key) = element.strip_prefix("k:") {
            let fields: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(value) = element.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        } else if let Some(index) = element.strip_prefix("i:") {
            out.push_str(&format!("[{index}]"));
        }
    }
    out
}

/// The value at `path` in `object`, if there is one.
pub fn get<'v>(object: &'v Value, path: &[Element]) -> Option<&'v Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(object);
    };
    let next = if let Some(field) = first.strip_prefix("f:") {
        object.get(field)?
    } else {
        object
            .as_array()?
            .iter()
            .find(|item| matches_element(item, first))?
    };
    get(next, rest)
}

/// Removes the value at `path` from `object` (a field, a map list item, a set item).
pub fn remove(object: &mut Value, path: &[Element]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if let Some(field) = first.strip_prefix("f:") {
        let Some(map) = object.as_object_mut() else {
            return;
        };
        if rest.is_empty() {
            map.remove(field);
        } else if let Some(next) = map.get_mut(field) {
            remove(next, rest);
        }
        return;
    }
    let Some(items) = object.as_array_mut() else {
        return;
    };
    if rest.is_empty() {
        items.retain(|item| !matches_element(item, first));
    } else if let Some(next) = items.iter_mut().find(|item| matches_element(item, first)) {
        remove(next, rest);
    }
}

/// Whether a list item is the one a `k:` or `v:` element names.
fn matches_element(item: &Value, element: &str) -> bool {
    if let Some(key) = element.strip_prefix("k:") {
        let fields: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
        return fields
            .iter()
            .all(|(k, v)| key_field(item, k).as_ref() == Some(v));
    }
    if let Some(value) = element.strip_prefix("v:") {
        return serde_json::from_str::<Value>(value).ok().as_ref() == Some(item);
    }
    false
}

/// Merges the items of a set or map list as structured-merge-diff orders them: the applied
/// items in their order, live-only items kept where they stood among them, merging
/// the items both have.
fn merge_items(
    live: &[Value],
    applied: &[Value],
    id: impl Fn(&Value) -> Element,
    merge_item: impl Fn(Option<&Value>, &Value) -> Value,
) -> Vec<Value> {
    let live_ids: Vec<Element> = live.iter().map(&id).collect();
    let applied_ids: Vec<Element> = applied.iter().map(&id).collect();
    let live_by_id = |pe: &Element| live_ids.iter().position(|l| l == pe).map(|at| &live[at]);
    let in_applied = |pe: &Element| applied_ids.contains(pe);
    let mut shared = applied_ids
        .iter()
        .filter(|pe| live_ids.contains(pe))
        .cloned()
        .collect::<std::collections::VecDeque<_>>();
    let mut next_shared = shared.pop_front();
    let mut merged_applied: Vec<Element> = Vec::new();
    let mut out = Vec::with_capacity(live.len().max(applied.len()));
    let (mut l, mut r) = (0, 0);
    while l < live.len() || r < applied.len() {
        if l < live.len() && r < applied.len() {
            let pe = &live_ids[l];
            if *pe == applied_ids[r] {
                merged_applied.push(pe.clone());
                out.push(merge_item(Some(&live[l]), &applied[r]));
                l += 1;
                r += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if in_applied(pe) && next_shared.as_ref().is_some_and(|n| n != pe) {
                l += 1;
                continue;
            }
        }
        if l < live.len() {
            let pe = &live_ids[l];
            if !in_applied(pe) {
                out.push(live[l].clone());
                l += 1;
                continue;
            } else if merged_applied.contains(pe) {
                l += 1;
            }
        }
        if r < applied.len() {
            let pe = &applied_ids[r];
            merged_applied.push(pe.clone());
            out.push(merge_item(live_by_id(pe), &applied[r]));
            r += 1;
            if next_shared.as_ref() == Some(pe) {
                next_shared = shared.pop_front();
            }
        }
    }
    out
}

/// Merges an applied configuration into the live object: maps and structs merge, atomic
/// lists and scalars are replaced, sets are unioned and map lists merge item by item.
pub fn merge(live: &Value, applied: &Value, node: Node<'_>, meta: &FieldMeta) -> Value {
    match (live, applied) {
        (Value::Object(live_map), Value::Object(applied_map)) if !node.is_atomic_struct() => {
            let mut merged = live_map.clone();
            for (key, value) in applied_map {
                let (child, meta) = node.field(key);
                let next = match live_map.get(key) {
                    Some(current) => merge(current, value, child, &meta),
                    None => value.clone(),
                };
                merged.insert(key.clone(), next);
            }
            Value::Object(merged)
        }
        (Value::Array(live_items), Value::Array(applied_items)) => match meta.apply_list_type() {
            (ListType::Atomic, _) => applied.clone(),
            (ListType::Set, _) => Value::Array(merge_items(
                live_items,
                applied_items,
                value_element,
                |_, applied| applied.clone(),
            )),
            (ListType::Map, keys) => Value::Array(merge_items(
                live_items,
                applied_items,
                |item| key_element(item, &keys),
                |live, applied| match live {
                    Some(live) => merge(live, applied, node.items(), &FieldMeta::default()),
                    None => applied.clone(),
                },
            )),
        },
        _ => applied.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Node<'static> {
        Node::builtin_kind("apps", "v1", "Deployment")
    }

    #[test]
    fn sets_are_encoded_as_upstream_fields_v1() {
        let object = json!({
            "metadata": {"labels": {"app": "web"}, "finalizers": ["a"]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "app", "image": "x",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}], "args": ["a"]}]}}},
        });
        let set = FieldSet::of_object(&object, deployment());
        assert_eq!(
            set.to_v1(),
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}, "f:finalizers": {"v:\"a\"": {}}},
                "f:spec": {"f:replicas": {}, "f:selector": {},
                    "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                        ".": {}, "f:args": {}, "f:image": {}, "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                            ".": {}, "f:containerPort": {}, "f:protocol": {}}}}}}}},
            })
        );
        assert_eq!(FieldSet::from_v1(&set.to_v1()), set);
        let compared = FieldSet::of_object_compared(&object, deployment());
        assert_eq!(
            compared.to_v1()["f:metadata"]["f:labels"],
            json!({".": {}, "f:app": {}})
        );
    }

    #[test]
    fn union_subtract_and_paths() {
        let a = FieldSet::of_object(
            &json!({"data": {"a": "1", "b": "2"}}),
            Node::builtin_kind("", "v1", "ConfigMap"),
        );
        let b = FieldSet::of_object(
            &json!({"data": {"b": "3"}}),
            Node::builtin_kind("", "v1", "ConfigMap"),
        );
        let mut left = a.clone();
        left.subtract(&b);
        // Both own the map itself: only `.data.a` is left.
        assert_eq!(
            left.paths(),
            vec![vec!["f:data".to_owned(), "f:a".to_owned()]]
        );
        assert!(a.touches(&["f:data".to_owned()]));
        assert!(!left.contains(&["f:data".to_owned(), "f:b".to_owned()]));
        let mut both = left.clone();
        both.union(&b);
        assert_eq!(both, a);
        assert!(a.is_leaf(&["f:data".to_owned(), "f:a".to_owned()]));
        assert!(!a.is_leaf(&["f:data".to_owned()]));
        let mut cut = a.clone();
        cut.remove_subtree(&["f:data".to_owned()]);
        assert!(cut.is_empty());
    }

    #[test]
    fn paths_print_as_upstream() {
        let path = vec![
            "f:spec".to_owned(),
            "f:containers".to_owned(),
            "k:{\"name\":\"app\"}".to_owned(),
            "f:image".to_owned(),
        ];
        assert_eq!(path_string(&path), ".spec.containers[name=\"app\"].image");
        assert_eq!(path_string(&["f:f".into(), "v:\"a\"".into()]), ".f[=\"a\"]");
    }

    #[test]
    fn merge_follows_list_types_and_removal_finds_items() {
        let live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "args": ["x"]}, {"name": "b", "image": "b:1"}]}}}});
        let applied = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "args": ["y"]}, {"name": "c", "image": "c:1"}]}}}});
        let mut merged = merge(&live, &applied, deployment(), &FieldMeta::default());
        assert_eq!(
            merged["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "a:1", "args": ["y"]}, {"name": "b", "image": "b:1"}, {"name": "c", "image": "c:1"}])
        );
        let b = vec![
            "f:spec".to_owned(),
            "f:template".to_owned(),
            "f:spec".to_owned(),
            "f:containers".to_owned(),
            "k:{\"name\":\"b\"}".to_owned(),
        ];
        assert_eq!(get(&merged, &b).unwrap()["image"], "b:1");
        remove(&mut merged, &b);
        assert!(get(&merged, &b).is_none());
        assert_eq!(
            merged["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn merged_items_follow_the_applied_order_with_live_ones_in_place() {
        let set = FieldMeta {
            merge: true,
            ..Default::default()
        };
        let merged = merge(
            &json!(["a", "x", "b"]),
            &json!(["b", "c", "a"]),
            Node::unknown(),
            &set,
        );
        assert_eq!(merged, json!(["x", "b", "c", "a"]));
        let merged = merge(
            &json!(["a", "x", "b"]),
            &json!(["a", "c"]),
            Node::unknown(),
            &set,
        );
        assert_eq!(merged, json!(["a", "x", "b", "c"]));
    }

    #[test]
    fn defaulted_protocols_name_the_same_port() {
        let service = Node::builtin_kind("", "v1", "Service");
        let live = json!({"spec": {"ports": [{"port": 80, "name": "http"}]}});
        let applied =
            json!({"spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}});
        let merged = merge(&live, &applied, service, &FieldMeta::default());
        assert_eq!(
            merged["spec"]["ports"],
            json!([{"port": 80, "name": "http", "protocol": "TCP", "targetPort": 8080}])
        );
        let set = FieldSet::of_object(&live, service);
        let key = "k:{\"port\":80,\"protocol\":\"TCP\"}".to_owned();
        assert!(set.contains(&["f:spec".into(), "f:ports".into(), key.clone()]));
        assert!(get(&live, &["f:spec".into(), "f:ports".into(), key]).is_some());
    }
}
