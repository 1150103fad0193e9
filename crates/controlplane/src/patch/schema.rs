//! How the patch algorithms see a kind's fields: a cursor over its schema, and the per-field
//! metadata upstream declares in struct tags (`patchStrategy`, `patchMergeKey`,
//! `listType`, `listMapKey`, `structType`), which k8s-openapi's schemas do not carry.
//!
//! For the built-in kinds the metadata comes from [`FIELDS`], a table written from
//! upstream's API types (their `x-kubernetes-*` extensions in the published OpenAPI). Any
//! other schema (a custom resource's) is read for the same `x-kubernetes-*` extensions.

use crate::schema::Definitions;
use serde_json::Value;

/// How server-side apply treats a list (`x-kubernetes-list-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole, owned as one field.
    Atomic,
    /// Scalars, each owned on its own (`v:<value>`).
    Set,
    /// Objects identified by their key fields (`k:{...}`).
    Map,
}

/// What the patch algorithms know about one field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldMeta {
    /// `patchStrategy: merge`: strategic merge patch merges the list (by `merge_key`).
    pub merge: bool,
    /// `patchStrategy: replace`: strategic merge patch replaces the map.
    pub replace: bool,
    /// `patchStrategy: retainKeys`.
    pub retain_keys: bool,
    /// `patchMergeKey`.
    pub merge_key: Option<String>,
    /// `x-kubernetes-list-type`, when declared.
    pub list_type: Option<ListType>,
    /// `x-kubernetes-list-map-keys`, when declared.
    pub list_map_keys: Vec<String>,
}

impl FieldMeta {
    /// The list type server-side apply uses: the declared one, else the one upstream
    /// derives from the patch strategy (merge with a key is a map by that key, merge
    /// without one a set), else atomic.
    pub fn apply_list_type(&self) -> (ListType, Vec<String>) {
        match self.list_type {
            Some(ListType::Map) if !self.list_map_keys.is_empty() => {
                (ListType::Map, self.list_map_keys.clone())
            }
            Some(ListType::Map) | None if self.merge => match &self.merge_key {
                Some(key) => (ListType::Map, vec![key.clone()]),
                None => (ListType::Set, Vec::new()),
            },
            Some(ListType::Set) => (ListType::Set, Vec::new()),
            _ => (ListType::Atomic, Vec::new()),
        }
    }

    /// Reads the `x-kubernetes-*` extensions of a property's schema.
    fn from_extensions(schema: &Value) -> FieldMeta {
        let strategies = schema
            .get("x-kubernetes-patch-strategy")
            .and_then(Value::as_str)
            .unwrap_or("");
        let list_type = match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("atomic") => Some(ListType::Atomic),
            Some("set") => Some(ListType::Set),
            Some("map") => Some(ListType::Map),
            _ => None,
        };
        FieldMeta {
            merge: strategies.split(',').any(|s| s == "merge"),
            replace: strategies.split(',').any(|s| s == "replace"),
            retain_keys: strategies.split(',').any(|s| s == "retainKeys"),
            merge_key: schema
                .get("x-kubernetes-patch-merge-key")
                .and_then(Value::as_str)
                .map(str::to_owned),
            list_type,
            list_map_keys: schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|keys| {
                    keys.iter()
                        .filter_map(|k| k.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

const CORE: &str = "io.k8s.api.core.v1.";
const APPS: &str = "io.k8s.api.apps.v1.";
const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.";

/// One row of [`FIELDS`]: definition (prefix and short name), property, patch strategies,
/// patch merge key, list type, list-map keys.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

/// The built-in kinds' fields with a patch strategy or a list type, as upstream declares
/// them (v1.33). Lists not named here are atomic for apply and replaced by strategic merge
/// patch, as upstream's undeclared lists are.
#[rustfmt::skip]
const FIELDS: &[Row] = &[
    (META, "ObjectMeta", "finalizers", "merge", "", "set", &[]),
    (META, "ObjectMeta", "ownerReferences", "merge", "uid", "map", &["uid"]),
    (META, "ObjectMeta", "managedFields", "", "", "atomic", &[]),
    (CORE, "PodSpec", "volumes", "merge,retainKeys", "name", "map", &["name"]),
    (CORE, "PodSpec", "initContainers", "merge", "name", "map", &["name"]),
    (CORE, "PodSpec", "containers", "merge", "name", "map", &["name"]),
    (CORE, "PodSpec", "ephemeralContainers", "merge", "name", "map", &["name"]),
    (CORE, "PodSpec", "imagePullSecrets", "merge", "name", "map", &["name"]),
    (CORE, "PodSpec", "hostAliases", "merge", "ip", "map", &["ip"]),
    (CORE, "PodSpec", "topologySpreadConstraints", "merge", "topologyKey", "map", &["topologyKey", "whenUnsatisfiable"]),
    (CORE, "PodSpec", "resourceClaims", "merge,retainKeys", "name", "map", &["name"]),
    (CORE, "PodSpec", "schedulingGates", "merge", "name", "map", &["name"]),
    (CORE, "Container", "ports", "merge", "containerPort", "map", &["containerPort", "protocol"]),
    (CORE, "Container", "env", "merge", "name", "map", &["name"]),
    (CORE, "Container", "volumeMounts", "merge", "mountPath", "map", &["mountPath"]),
    (CORE, "Container", "volumeDevices", "merge", "devicePath", "map", &["devicePath"]),
    (CORE, "EphemeralContainer", "ports", "merge", "containerPort", "map", &["containerPort", "protocol"]),
    (CORE, "EphemeralContainer", "env", "merge", "name", "map", &["name"]),
    (CORE, "EphemeralContainer", "volumeMounts", "merge", "mountPath", "map", &["mountPath"]),
    (CORE, "EphemeralContainer", "volumeDevices", "merge", "devicePath", "map", &["devicePath"]),
    (CORE, "ResourceRequirements", "claims", "", "", "map", &["name"]),
    (CORE, "PodStatus", "conditions", "merge", "type", "map", &["type"]),
    (CORE, "PodStatus", "podIPs", "merge", "ip", "map", &["ip"]),
    (CORE, "PodStatus", "hostIPs", "merge", "ip", "map", &["ip"]),
    (CORE, "PodStatus", "resourceClaimStatuses", "merge,retainKeys", "name", "map", &["name"]),
    (CORE, "ContainerStatus", "volumeMounts", "", "", "map", &["mountPath"]),
    (CORE, "NodeSpec", "podCIDRs", "merge", "", "set", &[]),
    (CORE, "NodeStatus", "conditions", "merge", "type", "map", &["type"]),
    (CORE, "NodeStatus", "addresses", "merge", "type", "map", &["type"]),
    (CORE, "NamespaceStatus", "conditions", "merge", "type", "map", &["type"]),
    (CORE, "PersistentVolumeClaimStatus", "conditions", "merge", "type", "map", &["type"]),
    (CORE, "ReplicationControllerStatus", "conditions", "merge", "type", "map", &["type"]),
    (CORE, "ServiceSpec", "ports", "merge", "port", "map", &["port", "protocol"]),
    (CORE, "ServiceStatus", "conditions", "merge", "type", "map", &["type"]),
    (CORE, "ServiceAccount", "secrets", "merge", "name", "map", &["name"]),
    (APPS, "DeploymentSpec", "strategy", "retainKeys", "", "", &[]),
    (APPS, "DeploymentStatus", "conditions", "merge", "type", "map", &["type"]),
    (APPS, "ReplicaSetStatus", "conditions", "merge", "type", "map", &["type"]),
    (APPS, "DaemonSetStatus", "conditions", "merge", "type", "map", &["type"]),
    (APPS, "StatefulSetStatus", "conditions", "merge", "type", "map", &["type"]),
    ("io.k8s.api.batch.v1.", "JobStatus", "conditions", "merge", "type", "map", &["type"]),
    ("io.k8s.api.batch.v1.", "UncountedTerminatedPods", "failed", "", "", "set", &[]),
    ("io.k8s.api.batch.v1.", "UncountedTerminatedPods", "succeeded", "", "", "set", &[]),
    ("io.k8s.api.autoscaling.v2.", "HorizontalPodAutoscalerStatus", "conditions", "merge", "type", "map", &["type"]),
    ("io.k8s.api.policy.v1.", "PodDisruptionBudgetStatus", "conditions", "merge", "type", "map", &["type"]),
    ("io.k8s.api.certificates.v1.", "CertificateSigningRequestStatus", "conditions", "", "", "map", &["type"]),
    ("io.k8s.api.discovery.v1.", "Endpoint", "addresses", "", "", "set", &[]),
    ("io.k8s.api.storage.v1.", "CSINodeSpec", "drivers", "merge", "name", "map", &["name"]),
    ("io.k8s.api.storage.v1.", "CSIDriverSpec", "volumeLifecycleModes", "", "", "set", &[]),
    ("io.k8s.api.admissionregistration.v1.", "ValidatingWebhookConfiguration", "webhooks", "merge", "name", "map", &["name"]),
    ("io.k8s.api.admissionregistration.v1.", "MutatingWebhookConfiguration", "webhooks", "merge", "name", "map", &["name"]),
    ("io.k8s.api.admissionregistration.v1.", "ValidatingWebhook", "matchConditions", "merge", "name", "map", &["name"]),
    ("io.k8s.api.admissionregistration.v1.", "MutatingWebhook", "matchConditions", "merge", "name", "map", &["name"]),
    ("io.k8s.api.admissionregistration.v1.", "ValidatingAdmissionPolicySpec", "matchConditions", "merge", "name", "map", &["name"]),
    ("io.k8s.api.admissionregistration.v1.", "ValidatingAdmissionPolicySpec", "variables", "", "", "map", &["name"]),
    ("io.k8s.api.admissionregistration.v1.", "ValidatingAdmissionPolicyBindingSpec", "validationActions", "", "", "set", &[]),
    ("io.k8s.api.admissionregistration.v1.", "ValidatingAdmissionPolicyStatus", "conditions", "", "", "map", &["type"]),
    ("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.", "CustomResourceDefinitionStatus", "conditions", "", "", "map", &["type"]),
];

/// The built-in definitions whose objects server-side apply owns as a whole
/// (`x-kubernetes-map-type: atomic`, upstream's `+structType=atomic`).
const ATOMIC_STRUCTS: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "io.k8s.api.core.v1.NodeSelector",
    "io.k8s.api.core.v1.NodeSelectorTerm",
    "io.k8s.api.core.v1.TopologySelectorTerm",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
    "io.k8s.api.core.v1.ObjectReference",
];

/// Every row of [`FIELDS`] as the `x-kubernetes-*` extensions upstream publishes on the
/// property: `(definition name, property, extensions)`. The OpenAPI documents carry them so
/// that clients computing patches (kubectl's client-side apply) agree with the server.
pub fn published_extensions(
) -> impl Iterator<Item = (String, &'static str, serde_json::Map<String, Value>)> {
    FIELDS.iter().map(
        |(prefix, short, property, strategies, key, list_type, keys)| {
            let mut extensions = serde_json::Map::new();
            if !strategies.is_empty() {
                extensions.insert(
                    "x-kubernetes-patch-strategy".into(),
                    Value::from(*strategies),
                );
            }
            if !key.is_empty() {
                extensions.insert("x-kubernetes-patch-merge-key".into(), Value::from(*key));
            }
            if !list_type.is_empty() {
                extensions.insert("x-kubernetes-list-type".into(), Value::from(*list_type));
            }
            if !keys.is_empty() {
                extensions.insert(
                    "x-kubernetes-list-map-keys".into(),
                    Value::from(keys.to_vec()),
                );
            }
            (format!("{prefix}{short}"), *property, extensions)
        },
    )
}

/// The metadata of `property` in the built-in definition `definition`, from [`FIELDS`].
fn builtin_field(definition: &str, property: &str) -> Option<FieldMeta> {
    let (_, _, _, strategies, key, list_type, keys) =
        FIELDS.iter().find(|(prefix, short, name, ..)| {
            *name == property && definition.strip_prefix(prefix) == Some(short)
        })?;
    Some(FieldMeta {
        merge: strategies.split(',').any(|s| s == "merge"),
        replace: strategies.split(',').any(|s| s == "replace"),
        retain_keys: strategies.split(',').any(|s| s == "retainKeys"),
        merge_key: (!key.is_empty()).then(|| (*key).to_owned()),
        list_type: match *list_type {
            "atomic" => Some(ListType::Atomic),
            "set" => Some(ListType::Set),
            "map" => Some(ListType::Map),
            _ => None,
        },
        list_map_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
    })
}

/// A place in a kind's schema: the schema of one value, and the definitions its `$ref`s
/// name. A node without a schema (a field the schema does not know) has no metadata, so
/// maps merge and lists are atomic below it.
#[derive(Clone, Copy, Debug)]
pub struct Node<'a> {
    definitions: Option<&'a Definitions>,
    schema: Option<&'a Value>,
    /// The definition `schema` is, when it is one itself rather than a `$ref` to one.
    name: Option<&'a str>,
}

impl<'a> Node<'a> {
    /// The root of a built-in kind's schema; a node without metadata for unknown kinds.
    pub fn builtin_kind(group: &str, version: &str, kind: &str) -> Node<'static> {
        let definitions = crate::schema::builtin();
        let name = definitions.name_of_kind(group, version, kind);
        Node {
            definitions: Some(definitions),
            schema: name.and_then(|name| definitions.get(name)),
            name,
        }
    }

    /// The root of a schema that carries its own `x-kubernetes-*` extensions (a custom
    /// resource's structural schema).
    pub fn custom(schema: &'a Value) -> Node<'a> {
        Node {
            definitions: None,
            schema: Some(schema),
            name: None,
        }
    }

    /// A node that knows nothing: maps merge, lists are atomic.
    pub fn unknown() -> Node<'static> {
        Node {
            definitions: None,
            schema: None,
            name: None,
        }
    }

    /// The definition this node's schema is (after following a `$ref`), and its schema.
    fn resolved(&self) -> (Option<&'a str>, Option<&'a Value>) {
        let Some(schema) = self.schema else {
            return (None, None);
        };
        match (self.definitions, Definitions::reference(schema)) {
            (Some(defs), Some(name)) => (Some(name), defs.get(name)),
            (Some(_), None) => (self.name, Some(schema)),
            (None, _) => (None, Some(schema)),
        }
    }

    /// The node of `key` inside this object (a property, or a map's value), and the
    /// field's metadata.
    pub fn field(&self, key: &str) -> (Node<'a>, FieldMeta) {
        let (name, schema) = self.resolved();
        let Some(schema) = schema else {
            return (Node::unknown(), FieldMeta::default());
        };
        if let Some(property) = schema.get("properties").and_then(|p| p.get(key)) {
            let meta = match (self.definitions, name) {
                (Some(_), Some(name)) => builtin_field(name, key).unwrap_or_default(),
                (Some(_), None) => FieldMeta::default(),
                (None, _) => FieldMeta::from_extensions(property),
            };
            return (self.child(property), meta);
        }
        match schema.get("additionalProperties") {
            Some(value) if value.is_object() => (self.child(value), FieldMeta::default()),
            _ => (Node::unknown(), FieldMeta::default()),
        }
    }

    /// The node of this list's items.
    pub fn items(&self) -> Node<'a> {
        match self.resolved().1.and_then(|s| s.get("items")) {
            Some(items) => self.child(items),
            None => Node::unknown(),
        }
    }

    /// Whether this object is owned as a whole by server-side apply.
    pub fn is_atomic_struct(&self) -> bool {
        match self.resolved() {
            (Some(name), _) if self.definitions.is_some() => ATOMIC_STRUCTS.contains(&name),
            (_, Some(schema)) => {
                schema.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic")
            }
            _ => false,
        }
    }

    /// Whether this object is a map (`additionalProperties`) rather than a struct: apply
    /// owns a granular map itself as well as its entries.
    pub fn is_map(&self) -> bool {
        self.resolved().1.is_some_and(|schema| {
            schema.get("properties").is_none()
                && schema
                    .get("additionalProperties")
                    .is_some_and(Value::is_object)
        })
    }

    /// A name for error messages: the definition, as upstream names the struct.
    pub fn name(&self) -> String {
        self.resolved().0.unwrap_or_default().to_owned()
    }

    fn child(&self, schema: &'a Value) -> Node<'a> {
        Node {
            definitions: self.definitions,
            schema: Some(schema),
            name: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_row_names_a_property_of_a_builtin_definition() {
        let defs = crate::schema::builtin();
        for (prefix, short, property, ..) in FIELDS {
            let name = format!("{prefix}{short}");
            let definition = defs
                .get(&name)
                .unwrap_or_else(|| panic!("no definition {name}"));
            assert!(
                definition["properties"].get(*property).is_some(),
                "{name} has no {property}"
            );
        }
        for name in ATOMIC_STRUCTS {
            assert!(defs.get(name).is_some(), "no definition {name}");
        }
    }

    #[test]
    fn nested_fields_find_their_definitions() {
        let deployment = Node::builtin_kind("apps", "v1", "Deployment");
        let (spec, _) = deployment.field("spec");
        let (template, _) = spec.field("template");
        let (pod, _) = template.field("spec");
        let (containers, meta) = pod.field("containers");
        assert!(meta.merge);
        assert_eq!(meta.merge_key.as_deref(), Some("name"));
        let (_, env) = containers.items().field("env");
        assert_eq!(env.merge_key.as_deref(), Some("name"));
        let (_, strategy) = spec.field("strategy");
        assert!(strategy.retain_keys && !strategy.merge);
        let (selector, _) = spec.field("selector");
        assert!(selector.is_atomic_struct());
        let (metadata, _) = deployment.field("metadata");
        let (labels, _) = metadata.field("labels");
        assert!(labels.is_map());
        let (_, meta) = labels.field("anything");
        assert_eq!(meta, FieldMeta::default());
        let (unknown, _) = deployment.field("nonsense");
        assert!(!unknown.is_map() && !unknown.is_atomic_struct());
    }

    #[test]
    fn service_ports_merge_by_port_but_apply_keys_by_port_and_protocol() {
        let service = Node::builtin_kind("", "v1", "Service");
        let (_, ports) = service.field("spec").0.field("ports");
        assert_eq!(ports.merge_key.as_deref(), Some("port"));
        assert_eq!(
            ports.apply_list_type(),
            (
                ListType::Map,
                vec!["port".to_owned(), "protocol".to_owned()]
            )
        );
        let (_, finalizers) = service.field("metadata").0.field("finalizers");
        assert_eq!(finalizers.apply_list_type().0, ListType::Set);
        let (_, args) = Node::builtin_kind("", "v1", "Pod")
            .field("spec")
            .0
            .field("containers")
            .0
            .items()
            .field("args");
        assert_eq!(args.apply_list_type().0, ListType::Atomic);
    }

    #[test]
    fn custom_schemas_carry_their_own_extensions() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "items": {"type": "array", "x-kubernetes-list-type": "map",
                      "x-kubernetes-list-map-keys": ["id"], "items": {"type": "object"}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "ref": {"type": "object", "x-kubernetes-map-type": "atomic"},
        }}}});
        let (spec, _) = Node::custom(&schema).field("spec");
        assert_eq!(
            spec.field("items").1.apply_list_type(),
            (ListType::Map, vec!["id".to_owned()])
        );
        assert_eq!(spec.field("tags").1.apply_list_type().0, ListType::Atomic);
        assert!(spec.field("ref").0.is_atomic_struct());
    }
}
