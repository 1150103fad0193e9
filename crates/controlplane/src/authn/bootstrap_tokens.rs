//! Bootstrap tokens, as upstream's bootstrap token authenticator: a bearer token
//! `<id>.<secret>` is accepted when Secret `kube-system/bootstrap-token-<id>` of type
//! `bootstrap.kubernetes.io/token` holds that secret, allows authentication, is not
//! expired and is not being deleted. The user is `system:bootstrap:<id>`, in group
//! `system:bootstrappers` and the Secret's `auth-extra-groups`.
//!
//! The Secret is read from the store on each such request (a bearer token of the right
//! shape only): no informer, so an idle control plane keeps nothing for it.

use super::User;
use crate::controlplane::ControlPlane;
use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The Secret type of bootstrap tokens.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The prefix of their Secrets' names.
const NAME_PREFIX: &str = "bootstrap-token-";
/// The namespace they live in.
const NAMESPACE: &str = "kube-system";
/// The group every bootstrap token's user is in.
pub const BOOTSTRAPPERS: &str = "system:bootstrappers";
/// The prefix of their users' names.
const USER_PREFIX: &str = "system:bootstrap:";

/// The id and secret of a token of the bootstrap shape (`[a-z0-9]{6}.[a-z0-9]{16}`).
fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let valid = |part: &str, len: usize| {
        part.len() == len
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (valid(id, 6) && valid(secret, 16)).then_some((id, secret))
}

/// The user of bootstrap token `token` in `cp`; `None` when it is not one or is not
/// (or no longer) valid.
pub async fn authenticate(cp: &ControlPlane, token: &str) -> Option<User> {
    let (id, secret) = parse(token)?;
    let def = cp.builtin("", "v1", "secrets").ok()?;
    let key = def.key(Some(NAMESPACE), &format!("{NAME_PREFIX}{id}"));
    let (kv, _) = match cp.store().get(key.as_bytes(), None).await {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(control_plane = cp.name(), %error, "reading a bootstrap token");
            return None;
        }
    };
    let object = crate::handlers::decode(&kv?).ok()?;
    match user_of(&object, id, secret, jiff::Timestamp::now()) {
        Ok(user) => Some(user),
        Err(reason) => {
            tracing::debug!(
                control_plane = cp.name(),
                token_id = id,
                reason,
                "bootstrap token refused"
            );
            None
        }
    }
}

/// The user the bootstrap token Secret `object` gives token `<id>.<secret>` at `now`, or
/// why it gives none.
fn user_of(
    object: &Value,
    id: &str,
    secret: &str,
    now: jiff::Timestamp,
) -> Result<User, &'static str> {
    if object["type"] != SECRET_TYPE {
        return Err("the Secret is not of type bootstrap.kubernetes.io/token");
    }
    if crate::object::meta_str(object, "deletionTimestamp").is_some() {
        return Err("the Secret is being deleted");
    }
    let data = |key: &str| {
        object["data"][key]
            .as_str()
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .and_then(|v| String::from_utf8(v).ok())
    };
    // Compared by digest, so the time taken says nothing about the secret.
    let stored = data("token-secret").unwrap_or_default();
    if Sha256::digest(stored.as_bytes()) != Sha256::digest(secret.as_bytes()) {
        return Err("the token's secret does not match");
    }
    if data("token-id").is_some_and(|stored| stored != id) {
        return Err("the Secret's token-id does not match its name");
    }
    if data("usage-bootstrap-authentication").as_deref() != Some("true") {
        return Err("the token may not be used for authentication");
    }
    if let Some(expiration) = data("expiration") {
        let expires: jiff::Timestamp = expiration
            .parse()
            .map_err(|_| "the Secret's expiration is not an RFC 3339 time")?;
        if expires <= now {
            return Err("the token has expired");
        }
    }
    let mut groups = vec![BOOTSTRAPPERS.to_owned()];
    for group in data("auth-extra-groups")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        if !valid_extra_group(group) {
            return Err("auth-extra-groups names a group outside system:bootstrappers:");
        }
        if !groups.iter().any(|g| g == group) {
            groups.push(group.to_owned());
        }
    }
    Ok(User {
        name: format!("{USER_PREFIX}{id}"),
        groups,
        ..Default::default()
    })
}

/// Upstream's rule for extra groups: `system:bootstrappers:` followed by lower-case
/// letters, digits, `:` and `-`, ending with a letter or digit.
fn valid_extra_group(group: &str) -> bool {
    let Some(rest) = group.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    !rest.is_empty()
        && rest.len() <= 256
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
        && rest
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(data: &[(&str, &str)]) -> Value {
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| {
                let encoded = base64::engine::general_purpose::STANDARD.encode(v);
                ((*k).to_owned(), json!(encoded))
            })
            .collect();
        json!({
            "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
            "type": SECRET_TYPE,
            "data": data,
        })
    }

    const VALID: [(&str, &str); 4] = [
        ("token-id", "abcdef"),
        ("token-secret", "0123456789abcdef"),
        ("usage-bootstrap-authentication", "true"),
        (
            "auth-extra-groups",
            "system:bootstrappers:kubeadm:default-node-token",
        ),
    ];

    #[test]
    fn only_well_formed_tokens_are_looked_up() {
        assert_eq!(
            parse("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        for bad in [
            "abcdef0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcdef0",
            "abcdef.0123456789abcde_",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_valid_token_is_its_user_with_the_extra_groups() {
        let now = jiff::Timestamp::now();
        let user = user_of(&secret(&VALID), "abcdef", "0123456789abcdef", now).unwrap();
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert_eq!(
            user.groups,
            [
                "system:bootstrappers",
                "system:bootstrappers:kubeadm:default-node-token"
            ]
        );
    }

    #[test]
    fn wrong_secret_usage_expiry_type_groups_or_deletion_refuse_the_token() {
        let now = jiff::Timestamp::now();
        let check = |object: Value| user_of(&object, "abcdef", "0123456789abcdef", now);
        assert!(user_of(&secret(&VALID), "abcdef", "0123456789abcdee", now).is_err());
        let with = |key: &str, value: &str| {
            let mut data = VALID.to_vec();
            data.retain(|(k, _)| *k != key);
            data.push((key, value));
            secret(&data)
        };
        assert!(check(with("usage-bootstrap-authentication", "false")).is_err());
        assert!(check(with("expiration", "2000-01-01T00:00:00Z")).is_err());
        assert!(check(with("expiration", "tomorrow")).is_err());
        assert!(check(with("expiration", "2999-01-01T00:00:00Z")).is_ok());
        assert!(check(with("auth-extra-groups", "system:masters")).is_err());
        assert!(check(with("auth-extra-groups", "system:bootstrappers:")).is_err());
        assert!(check(with("token-id", "zzzzzz")).is_err());
        let mut opaque = secret(&VALID);
        opaque["type"] = json!("Opaque");
        assert!(check(opaque).is_err());
        let mut deleted = secret(&VALID);
        deleted["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
        assert!(check(deleted).is_err());
    }
}
