//! Authorization: whether an authenticated user may make a request. `system:masters`
//! may do anything; everyone else gets what RBAC grants ([`rbac`]), starting from the
//! bootstrap policy ([`bootstrap`]), within a control plane's optional tenancy policy
//! ([`tenancy`]). Also the review APIs ([`review`]) and impersonation ([`impersonation`]).

pub mod aggregation;
pub mod attributes;
pub mod bootstrap;
pub mod escalation;
pub mod impersonation;
pub mod rbac;
pub mod review;
pub mod tenancy;

pub use attributes::Attributes;
pub use rbac::Decision;

use crate::authn::User;
use crate::controlplane::ControlPlane;
use crate::status::{ApiError, GroupResource};

/// Whether `user` may do what `attrs` describe.
pub async fn authorize(
    cp: &ControlPlane,
    user: &User,
    attrs: &Attributes,
) -> Result<Decision, ApiError> {
    if user.groups.iter().any(|g| g == rbac::MASTERS) {
        return Ok(Decision {
            allowed: true,
            reason: String::new(),
        });
    }
    rbac::authorize(cp, user, attrs).await
}

/// `Ok` when `user` may do what `attrs` describe, otherwise upstream's 403.
pub async fn check(cp: &ControlPlane, user: &User, attrs: &Attributes) -> Result<(), ApiError> {
    let decision = authorize(cp, user, attrs).await?;
    if decision.allowed {
        return Ok(());
    }
    Err(forbidden(user, attrs, &decision.reason))
}

/// Upstream's 403 for a denied request (`responsewriters.Forbidden`).
pub fn forbidden(user: &User, attrs: &Attributes, reason: &str) -> ApiError {
    let mut message = attrs.forbidden_message(user);
    if !reason.is_empty() {
        message = format!("{message}: {reason}");
    }
    let resource = GroupResource {
        group: attrs.group.clone(),
        resource: attrs.resource.clone(),
    };
    let full = if attrs.resource.is_empty() && attrs.group.is_empty() {
        format!("forbidden: {message}")
    } else if attrs.name.is_empty() {
        format!("{resource} is forbidden: {message}")
    } else {
        format!("{resource} \"{}\" is forbidden: {message}", attrs.name)
    };
    ApiError::forbidden(&resource, &attrs.name, full)
}

/// Authorizes a request: the user it acts as (after impersonation), once allowed to make
/// it and, for RBAC writes, once sure it grants nothing the user lacks.
pub async fn admit(
    cp: &ControlPlane,
    user: User,
    attrs: &Attributes,
    req: &crate::http::ApiRequest,
) -> Result<User, ApiError> {
    let user = impersonation::acting_user(cp, user, &req.headers).await?;
    tenancy::check(cp, &user, attrs)?;
    check(cp, &user, attrs).await?;
    escalation::check(cp, &user, attrs, req).await?;
    Ok(user)
}
