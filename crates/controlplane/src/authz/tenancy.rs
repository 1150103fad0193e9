//! The tenancy policy a control plane may opt into (`spec.tenancyPolicy.enabled` of its
//! ControlPlane), from the hosted-KaaS design kflex follows: tenant users manage access
//! inside namespaces only. With the policy on, nobody but `system:masters` (the control
//! plane's admin credential and kflex itself) may create, change or delete ClusterRoles
//! or ClusterRoleBindings, whatever RBAC grants; Roles and RoleBindings stay subject to
//! RBAC and its escalation checks as usual. ClusterRoles `workspace-admin` and
//! `workspace-viewer` are provided for namespaced RoleBindings to reference.
//!
//! A deny in front of RBAC rather than a trimmed bootstrap policy: the bootstrap roles
//! stay upstream's (`admin` still lists roles and rolebindings, aggregation still works),
//! and the admin cannot hand cluster-wide power to a tenant user by mistake. The
//! workspace roles aggregate what `admin` and `view` aggregate, so roles added for custom
//! resources with upstream's `aggregate-to-*` labels reach them too.

use super::{rbac, Attributes};
use crate::authn::User;
use crate::controlplane::ControlPlane;
use crate::status::{ApiError, GroupResource};
use kflex_storage_backends::StoreError;
use std::sync::atomic::{AtomicBool, Ordering};

/// The ClusterRole a namespace's administrators are bound to.
pub const WORKSPACE_ADMIN: &str = "workspace-admin";
/// The ClusterRole a namespace's readers are bound to.
pub const WORKSPACE_VIEWER: &str = "workspace-viewer";

/// Whether a control plane's tenancy policy is on; changed while it serves.
#[derive(Debug, Default)]
pub struct Policy(AtomicBool);

impl Policy {
    pub fn enabled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, enabled: bool) {
        self.0.store(enabled, Ordering::Relaxed);
    }
}

/// Turns the policy of `cp` on or off; on, makes sure the workspace ClusterRoles exist.
pub async fn apply(cp: &ControlPlane, enabled: bool) -> Result<(), StoreError> {
    if enabled {
        super::bootstrap::create_missing(cp, super::bootstrap::workspace_roles()).await?;
    }
    cp.tenancy_policy().set(enabled);
    Ok(())
}

/// `Ok` unless the policy of `cp` is on and forbids what `attrs` describe to `user`.
pub fn check(cp: &ControlPlane, user: &User, attrs: &Attributes) -> Result<(), ApiError> {
    if !cp.tenancy_policy().enabled() || !reserved(user, attrs) {
        return Ok(());
    }
    let resource = GroupResource {
        group: attrs.group.clone(),
        resource: attrs.resource.clone(),
    };
    let what = if attrs.name.is_empty() {
        resource.to_string()
    } else {
        format!("{resource} \"{}\"", attrs.name)
    };
    Err(ApiError::forbidden(
        &resource,
        &attrs.name,
        format!(
            "{what} is forbidden: {}: the tenancy policy of this control plane reserves \
             cluster-wide RBAC to its administrators; use Roles and RoleBindings in a \
             namespace (ClusterRoles {WORKSPACE_ADMIN} and {WORKSPACE_VIEWER} may be bound there)",
            attrs.forbidden_message(user)
        ),
    ))
}

/// Whether the policy forbids `attrs` to `user`: a write of cluster-wide RBAC by anyone
/// but `system:masters`.
fn reserved(user: &User, attrs: &Attributes) -> bool {
    let cluster_rbac = attrs.resource_request
        && attrs.group == "rbac.authorization.k8s.io"
        && matches!(
            attrs.resource.as_str(),
            "clusterroles" | "clusterrolebindings"
        );
    let write = matches!(
        attrs.verb.as_str(),
        "create" | "update" | "patch" | "delete" | "deletecollection"
    );
    cluster_rbac && write && !user.groups.iter().any(|g| g == rbac::MASTERS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_writes_of_cluster_rbac_by_non_masters_are_reserved() {
        let tenant = User {
            name: "alice".into(),
            groups: vec!["system:authenticated".into()],
            ..Default::default()
        };
        let admin = User {
            name: "admin".into(),
            groups: vec![rbac::MASTERS.into()],
            ..Default::default()
        };
        let rbac_group = "rbac.authorization.k8s.io";
        let attrs = |verb: &str, resource: &str, namespace: &str| {
            Attributes::resource(verb, rbac_group, resource, namespace, "x")
        };
        for verb in ["create", "update", "patch", "delete", "deletecollection"] {
            assert!(
                reserved(&tenant, &attrs(verb, "clusterroles", "")),
                "{verb}"
            );
            assert!(
                reserved(&tenant, &attrs(verb, "clusterrolebindings", "")),
                "{verb}"
            );
            assert!(
                !reserved(&admin, &attrs(verb, "clusterroles", "")),
                "{verb}"
            );
        }
        for verb in ["get", "list", "watch"] {
            assert!(
                !reserved(&tenant, &attrs(verb, "clusterroles", "")),
                "{verb}"
            );
        }
        assert!(!reserved(&tenant, &attrs("create", "roles", "ns")));
        assert!(!reserved(&tenant, &attrs("create", "rolebindings", "ns")));
        let core = Attributes::resource("create", "", "clusterroles", "", "x");
        assert!(!reserved(&tenant, &core));
    }
}
