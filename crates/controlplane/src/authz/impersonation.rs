//! Impersonation as upstream's `WithImpersonation` filter: `Impersonate-User`,
//! `Impersonate-Group`, `Impersonate-Uid` and `Impersonate-Extra-<key>` make a request act
//! as another user, when the requester may `impersonate` each of them.

use super::Attributes;
use crate::authn::{User, ANONYMOUS, AUTHENTICATED, UNAUTHENTICATED};
use crate::controlplane::ControlPlane;
use crate::status::ApiError;
use http::HeaderMap;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA: &str = "impersonate-extra-";
const SERVICE_ACCOUNT: &str = "system:serviceaccount:";

/// The user a request acts as: `user` itself without impersonation headers, otherwise
/// the impersonated user once `user` is allowed to impersonate every part of it.
pub async fn acting_user(
    cp: &ControlPlane,
    user: User,
    headers: &HeaderMap,
) -> Result<User, ApiError> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    };
    let name = values(USER).into_iter().next();
    let groups = values(GROUP);
    let uid = values(UID).into_iter().next();
    let extras: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(key, value)| {
            let extra = key.as_str().strip_prefix(EXTRA)?;
            Some((unescape(extra), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let Some(name) = name else {
        if groups.is_empty() && uid.is_none() && extras.is_empty() {
            return Ok(user);
        }
        return Err(ApiError::internal(
            "requested impersonation of groups, a uid or extra fields without impersonating a user",
        ));
    };
    let mut checks = vec![match name.strip_prefix(SERVICE_ACCOUNT) {
        Some(sa) => {
            let (ns, sa) = sa.split_once(':').unwrap_or((sa, ""));
            Attributes::resource("impersonate", "", "serviceaccounts", ns, sa)
        }
        None => Attributes::resource("impersonate", "", "users", "", &name),
    }];
    checks.extend(
        groups
            .iter()
            .map(|g| Attributes::resource("impersonate", "", "groups", "", g)),
    );
    if let Some(uid) = &uid {
        checks.push(Attributes::resource(
            "impersonate",
            "authentication.k8s.io",
            "uids",
            "",
            uid,
        ));
    }
    for (key, value) in &extras {
        let mut attrs = Attributes::resource(
            "impersonate",
            "authentication.k8s.io",
            "userextras",
            "",
            value,
        );
        attrs.subresource = key.clone();
        checks.push(attrs);
    }
    for attrs in &checks {
        super::check(cp, &user, attrs).await?;
    }
    let mut impersonated = User {
        name: name.clone(),
        uid: uid.unwrap_or_default(),
        groups,
        ..Default::default()
    };
    if impersonated.groups.is_empty() {
        if let Some((ns, _)) = name
            .strip_prefix(SERVICE_ACCOUNT)
            .and_then(|sa| sa.split_once(':'))
        {
            impersonated.groups = vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{ns}"),
            ];
        }
    }
    // Anonymous is unauthenticated; anyone else is authenticated unless declared not to be.
    let (implicit, unless) = if name == ANONYMOUS {
        (UNAUTHENTICATED, UNAUTHENTICATED)
    } else {
        (AUTHENTICATED, UNAUTHENTICATED)
    };
    if !impersonated
        .groups
        .iter()
        .any(|g| g == implicit || g == unless)
    {
        impersonated.groups.push(implicit.to_owned());
    }
    Ok(impersonated)
}

/// An extra's key from its header name: percent-decoded and lower-cased, as upstream.
fn unescape(key: &str) -> String {
    crate::request::Query::parse(Some(&format!("k={key}")))
        .get("k")
        .unwrap_or(key)
        .to_ascii_lowercase()
}
