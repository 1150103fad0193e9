//! Built-in admission: the plugins kube-apiserver enables by default that shape or refuse
//! a write, run in upstream's order (mutating, then validating) after defaulting and
//! before the object is stored.
//!
//! Mutating: LimitRanger (default requests and limits), ServiceAccount (the pod's account
//! and its token volume), PodNodeSelector (with this control plane's own dedicated-node
//! selector), Priority (the pod's priority from its PriorityClass), DefaultTolerationSeconds
//! (300s tolerations of lost nodes), PodTolerationRestriction (with the dedicated-node
//! tolerations). Validating: Priority (one global default PriorityClass), LimitRanger (min,
//! max, ratio), PodSecurity (`pod-security.kubernetes.io/*` namespace labels, this control
//! plane's defaults and exemptions), then ResourceQuota, which charges each matching quota's
//! `status.used` with a compare-and-swap before the object is written, so concurrent creates
//! never exceed `hard`.
//! NamespaceLifecycle is [`ControlPlane::check_namespace_accepts_content`].
//!
//! Costs: a kind no plugin looks at pays nothing in a namespace known to hold no quota
//! (the first write there reads the namespace's quotas once, then it is remembered); pods pay one
//! read of their namespace, their ServiceAccount and the LimitRanges.

mod limitranger;
mod placement;
mod podsecurity;
mod priority;
pub mod quantity;
mod quota;
mod serviceaccount;
mod tolerationseconds;
mod usage;

pub use placement::NodePlacement;
pub use podsecurity::Configuration as PodSecurityConfiguration;

use crate::controlplane::ControlPlane;
use crate::registry::ResourceDef;
use crate::status::ApiError;
use serde_json::Value;
use std::sync::{Arc, RwLock};

/// What admission keeps per control plane.
#[derive(Debug, Default)]
pub struct State {
    /// The dedicated-node placement of new Pods.
    node_placement: RwLock<Option<Arc<NodePlacement>>>,
    /// The namespaces known to hold no ResourceQuota.
    quota_free: quota::QuotaFree,
    /// PodSecurity's defaults and exemptions.
    pod_security: RwLock<Arc<podsecurity::Settings>>,
}

impl State {
    /// Sets the placement every new Pod gets (`None`, or an empty one, for none).
    pub fn set_node_placement(&self, placement: Option<NodePlacement>) {
        let placement = placement.filter(|p| !p.is_empty()).map(Arc::new);
        *self
            .node_placement
            .write()
            .unwrap_or_else(|p| p.into_inner()) = placement;
    }

    /// Sets PodSecurity's defaults and exemptions (`None` for upstream's: everything
    /// privileged, nothing exempt).
    pub fn set_pod_security(&self, config: Option<PodSecurityConfiguration>) {
        *self.pod_security.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(config.unwrap_or_default().into());
    }

    fn pod_security(&self) -> Arc<podsecurity::Settings> {
        self.pod_security
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The placement every new Pod gets, if any.
    pub fn node_placement(&self) -> Option<Arc<NodePlacement>> {
        self.node_placement
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

tokio::task_local! {
    /// The user a client request is served for (after impersonation), for the plugins that
    /// exempt users; unset for the control plane's own writes.
    static REQUESTER: String;
}

/// Runs `serve` (a client request's handling) as `user`'s.
pub async fn as_requester<F: std::future::Future>(user: &str, serve: F) -> F::Output {
    REQUESTER.scope(user.to_owned(), serve).await
}

/// The user the current request is served for, if it is a client's.
fn requester() -> Option<String> {
    REQUESTER.try_with(String::clone).ok()
}

/// What admission knows of a write.
#[derive(Debug)]
pub struct Attributes<'a> {
    /// The resource written.
    pub def: &'a ResourceDef,
    /// Its namespace (`None` when cluster-scoped).
    pub namespace: Option<&'a str>,
    /// The object's name (empty while a generated name is still to come).
    pub name: &'a str,
    /// The subresource written (`status`, `scale`, ...), if any.
    pub subresource: Option<&'a str>,
    /// The stored object an update replaces; `None` for a create.
    pub old: Option<&'a Value>,
    /// Whether nothing is persisted (`dryRun=All`): quota is checked but not charged.
    pub dry_run: bool,
}

impl Attributes<'_> {
    /// Whether the write is of `plural` in the core group, on the main resource.
    fn is_core(&self, plural: &str) -> bool {
        self.def.group.is_empty() && self.def.plural == plural && self.subresource.is_none()
    }

    /// Upstream's `admission.NewForbidden`: `pods "x" is forbidden: <why>`.
    fn forbidden(&self, why: impl std::fmt::Display) -> ApiError {
        let gr = self.def.group_resource();
        ApiError::forbidden(
            &gr,
            self.name,
            format!("{gr} \"{}\" is forbidden: {why}", self.name),
        )
    }
}

/// What an admitted write leaves to do: warnings for the client, and quota charges to take
/// back if the write then fails.
#[derive(Debug, Default)]
#[must_use = "settle the admission once the write is done"]
pub struct Admitted {
    /// `Warning` headers for the client (PodSecurity `warn`).
    pub warnings: Vec<String>,
    charged: quota::Charged,
}

impl Admitted {
    /// After the write: a failed one gives its quota charges back (what was never stored
    /// is not held against the quota); a stored one releases the usage it gave up.
    pub async fn settle(self, cp: &ControlPlane, written: bool) {
        self.charged.settle(cp, written).await;
    }
}

/// Writes the objects admission needs from a control plane's start (the system
/// PriorityClasses) that the store lacks.
pub(crate) async fn bootstrap(cp: &ControlPlane) -> Result<(), kflex_storage_backends::StoreError> {
    priority::bootstrap(cp).await
}

/// Runs the admission chain on `object` (already defaulted). Mutating plugins change it;
/// a refusal is upstream's error (403 Forbidden, or 422 for invalid labels).
pub async fn admit(
    cp: &ControlPlane,
    attrs: &Attributes<'_>,
    object: &mut Value,
) -> Result<Admitted, ApiError> {
    let mut admitted = Admitted::default();
    if priority::is_class(attrs) {
        priority::validate_class(cp, attrs, object).await?;
        return Ok(admitted);
    }
    if attrs.namespace.is_none() && !attrs.is_core("namespaces") {
        return Ok(admitted);
    }
    let pod = attrs.is_core("pods");
    let namespace = if pod || podsecurity::reads_namespace(attrs) {
        read_namespace(cp, attrs.namespace).await?
    } else {
        None
    };
    // Mutating, in upstream's order.
    let limit_ranges = if limitranger::applies(attrs) {
        limitranger::read(cp, attrs).await?
    } else {
        Vec::new()
    };
    limitranger::default_resources(attrs, &limit_ranges, object);
    let placement = cp.admission().node_placement();
    if pod && attrs.old.is_none() {
        serviceaccount::admit(cp, attrs, object).await?;
        placement::select_nodes(attrs, placement.as_ref(), namespace.as_ref(), object)?;
    }
    if pod {
        priority::admit(cp, attrs, object).await?;
        tolerationseconds::admit(object);
    }
    if pod && attrs.old.is_none() {
        placement::add_tolerations(attrs, placement.as_ref(), namespace.as_ref(), object)?;
    }
    // Validating.
    limitranger::validate(attrs, &limit_ranges, object)?;
    admitted.warnings = podsecurity::validate(cp, attrs, namespace.as_ref(), object).await?;
    admitted.charged = quota::admit(cp, attrs, object).await?;
    Ok(admitted)
}

/// After an object is deleted: the quotas of its namespace that count it are recounted
/// (upstream's quota controller does so when it sees the deletion).
pub async fn after_delete(cp: &ControlPlane, def: &ResourceDef, object: &Value) {
    quota::after_delete(cp, def, object).await;
}

/// The namespace an object is written to, as stored (`None` when missing: NamespaceLifecycle
/// has already refused writes into missing namespaces, bar the namespace itself).
async fn read_namespace(
    cp: &ControlPlane,
    namespace: Option<&str>,
) -> Result<Option<Value>, ApiError> {
    let Some(ns) = namespace else {
        return Ok(None);
    };
    let namespaces = cp.builtin("", "v1", "namespaces")?;
    let (kv, _) = cp
        .store()
        .get(namespaces.key(None, ns).as_bytes(), None)
        .await
        .map_err(|e| crate::status::from_store(e, &namespaces.group_resource(), ns))?;
    Ok(kv.and_then(|kv| serde_json::from_slice(&kv.value).ok()))
}

/// The objects of a namespaced built-in core resource in `namespace`, decoded.
async fn list_core(
    cp: &ControlPlane,
    plural: &str,
    namespace: &str,
) -> Result<Vec<Value>, ApiError> {
    let def = cp.builtin("", "v1", plural)?;
    list_of(cp, &def, Some(namespace)).await
}

/// The objects of `def` in `namespace` (all of them when `None`), decoded.
async fn list_of(
    cp: &ControlPlane,
    def: &ResourceDef,
    namespace: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    Ok(stored_in(cp, def, namespace)
        .await?
        .into_iter()
        .map(|(_, object)| object)
        .collect())
}

/// The objects of `def` in `namespace` (all of them when `None`), decoded, each with its store entry (for its
/// revision), in name order.
async fn stored_in(
    cp: &ControlPlane,
    def: &ResourceDef,
    namespace: Option<&str>,
) -> Result<Vec<(kflex_storage_backends::KeyValue, Value)>, ApiError> {
    let page = cp
        .store()
        .range(kflex_storage_backends::RangeRequest {
            prefix: def.collection_prefix(namespace).into_bytes(),
            ..Default::default()
        })
        .await
        .map_err(|e| crate::status::from_store(e, &def.group_resource(), ""))?;
    Ok(page
        .kvs
        .into_iter()
        .filter_map(|kv| {
            let object = serde_json::from_slice(&kv.value).ok()?;
            Some((kv, object))
        })
        .collect())
}
