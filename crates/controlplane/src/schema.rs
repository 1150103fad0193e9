//! The schemas of the built-in kinds, generated once per process from k8s-openapi's types:
//! what OpenAPI publication, field validation, strategic merge patch and protobuf decoding
//! read to know a kind's fields.
//!
//! Definitions are named as upstream's OpenAPI names them (`io.k8s.api.core.v1.ConfigMap`)
//! and refer to each other with `$ref: "#/components/schemas/<name>"` (OpenAPI v3).

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Where `$ref`s point: OpenAPI v3's components.
pub const REF_PREFIX: &str = "#/components/schemas/";

/// Every definition reachable from the built-in kinds, and which definition is which kind.
#[derive(Debug)]
pub struct Definitions {
    definitions: Map<String, Value>,
    kinds: HashMap<(String, String, String), String>,
}

/// The built-in definitions, generated on first use and shared by every control plane.
pub fn builtin() -> &'static Definitions {
    static BUILTIN: OnceLock<Definitions> = OnceLock::new();
    BUILTIN.get_or_init(generate)
}

impl Definitions {
    /// The definition named `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.definitions.get(name)
    }

    /// The name of the definition of `kind` in `group`/`version`.
    pub fn name_of_kind(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.kinds
            .get(&(group.to_owned(), version.to_owned(), kind.to_owned()))
            .map(String::as_str)
    }

    /// The definition of `kind` in `group`/`version`.
    pub fn of_kind(&self, group: &str, version: &str, kind: &str) -> Option<&Value> {
        self.get(self.name_of_kind(group, version, kind)?)
    }

    /// `schema` itself, or the definition its `$ref` names (also when the `$ref` is wrapped
    /// in an `allOf` of one, as generators write a `$ref` with a description).
    pub fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match Self::reference(schema).and_then(|name| self.get(name)) {
            Some(target) => target,
            None => schema,
        }
    }

    /// The definition name a schema refers to, if it is a reference.
    pub fn reference(schema: &Value) -> Option<&str> {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            return reference.strip_prefix(REF_PREFIX);
        }
        match schema.get("allOf").and_then(Value::as_array) {
            Some(all) if all.len() == 1 => Self::reference(&all[0]),
            _ => None,
        }
    }

    /// Every definition, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.definitions.iter()
    }

    /// Every built-in kind: `(group, version, kind)` and its definition's name.
    pub fn kinds(&self) -> impl Iterator<Item = (&(String, String, String), &String)> {
        self.kinds.iter()
    }
}

/// Registers the kinds' types with a generator, remembering which definition is which kind.
macro_rules! kinds {
    ($generator:ident, $kinds:ident, $($ty:ty),* $(,)?) => {
        $(
            $generator.subschema_for::<$ty>();
            $kinds.insert(
                (
                    <$ty as k8s_openapi::Resource>::GROUP.to_owned(),
                    <$ty as k8s_openapi::Resource>::VERSION.to_owned(),
                    <$ty as k8s_openapi::Resource>::KIND.to_owned(),
                ),
                <$ty as schemars::JsonSchema>::schema_name().into_owned(),
            );
        )*
    };
}

fn generate() -> Definitions {
    use k8s_openapi::api::{
        admissionregistration::v1 as admissionregistration, apps::v1 as apps,
        authentication::v1 as authentication, authorization::v1 as authorization,
        autoscaling::v1 as autoscaling_v1, autoscaling::v2 as autoscaling, batch::v1 as batch,
        certificates::v1 as certificates, coordination::v1 as coordination, core::v1 as core,
        discovery::v1 as discovery, events::v1 as events, networking::v1 as networking,
        node::v1 as node, policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as scheduling,
        storage::v1 as storage,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let mut kinds = HashMap::new();
    kinds!(
        generator,
        kinds,
        core::ConfigMap,
        core::Endpoints,
        core::Event,
        core::LimitRange,
        core::Namespace,
        core::Node,
        core::PersistentVolumeClaim,
        core::PersistentVolume,
        core::Pod,
        core::PodTemplate,
        core::ReplicationController,
        core::ResourceQuota,
        core::Secret,
        core::ServiceAccount,
        core::Service,
        core::Binding,
        apps::ControllerRevision,
        apps::DaemonSet,
        apps::Deployment,
        apps::ReplicaSet,
        apps::StatefulSet,
        batch::CronJob,
        batch::Job,
        autoscaling_v1::Scale,
        autoscaling::HorizontalPodAutoscaler,
        rbac::ClusterRoleBinding,
        rbac::ClusterRole,
        rbac::RoleBinding,
        rbac::Role,
        networking::IngressClass,
        networking::Ingress,
        networking::NetworkPolicy,
        policy::PodDisruptionBudget,
        policy::Eviction,
        coordination::Lease,
        discovery::EndpointSlice,
        events::Event,
        scheduling::PriorityClass,
        storage::CSIDriver,
        storage::CSINode,
        storage::CSIStorageCapacity,
        storage::StorageClass,
        storage::VolumeAttachment,
        node::RuntimeClass,
        certificates::CertificateSigningRequest,
        admissionregistration::MutatingWebhookConfiguration,
        admissionregistration::ValidatingWebhookConfiguration,
        admissionregistration::ValidatingAdmissionPolicy,
        admissionregistration::ValidatingAdmissionPolicyBinding,
        apiextensions::CustomResourceDefinition,
        authentication::TokenRequest,
        authentication::TokenReview,
        authentication::SelfSubjectReview,
        authorization::LocalSubjectAccessReview,
        authorization::SelfSubjectAccessReview,
        authorization::SelfSubjectRulesReview,
        authorization::SubjectAccessReview,
    );
    generator.subschema_for::<meta::Status>();
    generator.subschema_for::<meta::DeleteOptions>();
    generator.subschema_for::<meta::WatchEvent<Value>>();
    Definitions {
        definitions: generator.take_definitions(true),
        kinds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_resolve_to_their_definitions() {
        let defs = builtin();
        assert_eq!(
            defs.name_of_kind("apps", "v1", "Deployment"),
            Some("io.k8s.api.apps.v1.Deployment")
        );
        let deployment = defs.of_kind("apps", "v1", "Deployment").unwrap();
        let spec = defs.resolve(&deployment["properties"]["spec"]);
        let template = defs.resolve(&spec["properties"]["template"]);
        let pod_spec = defs.resolve(&template["properties"]["spec"]);
        assert!(pod_spec["properties"]["containers"].is_object());
        assert!(defs
            .get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .is_some());
        assert!(defs.of_kind("", "v1", "Nonexistent").is_none());
    }

    #[test]
    fn every_reference_has_a_definition() {
        fn walk(defs: &Definitions, value: &Value) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        let name = r.strip_prefix(REF_PREFIX).expect("components ref");
                        assert!(defs.get(name).is_some(), "dangling {r}");
                    }
                    map.values().for_each(|v| walk(defs, v));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(defs, v)),
                _ => {}
            }
        }
        let defs = builtin();
        for (_, definition) in defs.iter() {
            walk(defs, definition);
        }
    }
}
