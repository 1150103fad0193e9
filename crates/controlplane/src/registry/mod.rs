//! The resource registry: every resource a control plane serves, built-in or defined by a
//! CustomResourceDefinition, with what discovery, routing and storage need to know.

mod builtin;

use crate::status::GroupResource;
use std::sync::{Arc, RwLock};

/// One resource of one group-version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceDef {
    /// `""` for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    pub list_kind: String,
    /// The plural name, used in paths.
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// The verbs the resource serves, in discovery's order.
    pub verbs: Vec<&'static str>,
    /// The subresources served (`status`, `scale`, ...).
    pub subresources: Vec<String>,
    /// Whether `metadata.generation` counts changes of the object's spec.
    pub tracks_generation: bool,
    /// Whether a CustomResourceDefinition defines the resource.
    pub custom: bool,
    /// What a custom resource's version adds: its schema, printer columns, scale paths.
    pub crd: Option<Arc<crate::crd::CustomResource>>,
    /// Where the objects live in the store: `/registry/<plural>/` for built-ins,
    /// `/registry/<group>/<plural>/` for custom resources, as kube-apiserver lays them out.
    pub storage_prefix: String,
}

/// How long Events are kept (kube-apiserver's `--event-ttl` default).
pub const EVENT_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// The verbs of an ordinary stored resource.
pub const CRUD_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceDef {
    /// The resource as error messages name it.
    pub fn group_resource(&self) -> GroupResource {
        GroupResource {
            group: self.group.clone(),
            resource: self.plural.clone(),
        }
    }

    /// `v1` or `<group>/<version>`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether the resource serves `verb`.
    pub fn serves(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    /// How long the store keeps an object after its last write: Events expire after an
    /// hour, as with kube-apiserver's default `--event-ttl`; other objects live until
    /// deleted.
    pub fn time_to_live(&self) -> Option<std::time::Duration> {
        (self.plural == "events" && matches!(self.group.as_str(), "" | "events.k8s.io"))
            .then_some(EVENT_TTL)
    }

    /// Whether the resource has a `status` subresource.
    pub fn has_status(&self) -> bool {
        self.subresources.iter().any(|s| s == "status")
    }

    /// The store key of an object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("{}{ns}/{name}", self.storage_prefix),
            None => format!("{}{name}", self.storage_prefix),
        }
    }

    /// The store prefix of a collection: one namespace's, or all of it.
    pub fn collection_prefix(&self, namespace: Option<&str>) -> String {
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("{}{ns}/", self.storage_prefix),
            None => self.storage_prefix.clone(),
        }
    }
}

/// The resources a control plane serves. Reads are cheap; CRDs add and remove entries.
#[derive(Debug, Default)]
pub struct ResourceRegistry {
    resources: RwLock<Vec<Arc<ResourceDef>>>,
    /// The revision of the last CRD change (by any process sharing the store) that the
    /// custom resources reflect: see `crd::shared`.
    custom_revision: std::sync::atomic::AtomicI64,
}

impl ResourceRegistry {
    /// A registry of the built-in resources of Kubernetes 1.33 that kflex serves (their
    /// definitions are shared by every control plane).
    pub fn builtin() -> Self {
        ResourceRegistry {
            resources: RwLock::new(builtin::resources().to_vec()),
            custom_revision: Default::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<ResourceDef>>> {
        self.resources
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The resource `plural` of `group`/`version`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.read()
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    /// Every resource of `group`/`version`, in registration order.
    pub fn resources(&self, group: &str, version: &str) -> Vec<Arc<ResourceDef>> {
        self.read()
            .iter()
            .filter(|r| r.group == group && r.version == version)
            .cloned()
            .collect()
    }

    /// Every named group (not the core group) with its versions, preferred first, in
    /// registration order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for r in self.read().iter().filter(|r| !r.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) if !versions.contains(&r.version) => {
                    versions.push(r.version.clone())
                }
                Some(_) => {}
                None => groups.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        groups
    }

    /// Every resource, in registration order.
    pub fn all(&self) -> Vec<Arc<ResourceDef>> {
        self.read().clone()
    }

    /// Replaces the resources that the CustomResourceDefinition `crd` serves with `defs`
    /// (none to remove them), in one step so that readers never see half of a change.
    pub fn replace_custom(&self, crd: &str, defs: Vec<ResourceDef>) {
        let mut resources = self
            .resources
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        resources.retain(|r| r.crd.as_ref().is_none_or(|c| c.crd_name != crd));
        resources.extend(defs.into_iter().map(Arc::new));
    }

    /// The CRDs whose resources are served.
    pub fn custom_crds(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .read()
            .iter()
            .filter_map(|r| r.crd.as_ref().map(|c| c.crd_name.clone()))
            .collect();
        names.dedup();
        names
    }

    /// The revision of the last CRD change the custom resources reflect.
    pub fn custom_revision(&self) -> i64 {
        self.custom_revision
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records that the custom resources reflect the CRD change at `revision`.
    pub fn saw_custom_revision(&self, revision: i64) {
        self.custom_revision
            .fetch_max(revision, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether `group` has any version.
    pub fn has_group(&self, group: &str) -> bool {
        self.read().iter().any(|r| r.group == group)
    }
}
