//! Privilege escalation prevention on RBAC writes, as upstream's
//! `pkg/registry/rbac/escalation_check.go` and `validation.ConfirmNoEscalation`: a user
//! may write a Role or ClusterRole only with the permissions it grants (or `escalate` on
//! it), and a binding only with the permissions of the role it references (or `bind` on
//! that role).

use super::rbac::{self, MASTERS};
use super::Attributes;
use crate::authn::User;
use crate::controlplane::ControlPlane;
use crate::http::ApiRequest;
use crate::status::{ApiError, GroupResource};
use serde_json::Value;

const RBAC: &str = "rbac.authorization.k8s.io";

/// Refuses a create, update or patch of an RBAC object that would grant `user`
/// permissions it does not hold. A patch of a role, whose result is not known before it
/// is applied, needs `escalate`.
pub async fn check(
    cp: &ControlPlane,
    user: &User,
    attrs: &Attributes,
    req: &ApiRequest,
) -> Result<(), ApiError> {
    let writes = matches!(attrs.verb.as_str(), "create" | "update" | "patch");
    if !attrs.resource_request
        || attrs.group != RBAC
        || !attrs.subresource.is_empty()
        || !writes
        || user.groups.iter().any(|g| g == MASTERS)
    {
        return Ok(());
    }
    let kind = match attrs.resource.as_str() {
        "roles" => "Role",
        "clusterroles" => "ClusterRole",
        "rolebindings" => "RoleBinding",
        "clusterrolebindings" => "ClusterRoleBinding",
        _ => return Ok(()),
    };
    let resource = GroupResource {
        group: RBAC.into(),
        resource: attrs.resource.clone(),
    };
    let patch = attrs.verb == "patch";
    let namespace = (!attrs.namespace.is_empty()).then_some(attrs.namespace.as_str());
    let object = match (patch, kind) {
        // What a patch makes of a role is known only once applied: it needs `escalate`.
        (true, "Role" | "ClusterRole") => Value::Null,
        // A binding's roleRef cannot change, so a patch binds the role bound now.
        (true, _) => match rbac::get(cp, &attrs.resource, namespace, &attrs.name).await? {
            Some(current) => current,
            None => return Ok(()),
        },
        (false, _) => super::review::body(req, &format!("{RBAC}/v1"), kind)?,
    };
    let name = crate::object::meta_str(&object, "name")
        .map(str::to_owned)
        .unwrap_or_else(|| attrs.name.clone());
    if kind == "Role" || kind == "ClusterRole" {
        let escalate = Attributes {
            verb: "escalate".into(),
            subresource: String::new(),
            ..attrs.clone()
        };
        let decision = super::authorize(cp, user, &escalate).await?;
        if decision.allowed {
            return Ok(());
        }
        if patch {
            return Err(super::forbidden(user, &escalate, &decision.reason));
        }
        if kind == "ClusterRole" && object.get("aggregationRule").is_some_and(|a| !a.is_null()) {
            return Err(ApiError::forbidden(
                &resource,
                &name,
                format!(
                    "{resource} \"{name}\" is forbidden: must have cluster-admin privileges to use the aggregationRule"
                ),
            ));
        }
        let rules = object["rules"].as_array().cloned().unwrap_or_default();
        return confirm_no_escalation(cp, user, &attrs.namespace, &rules, &resource, &name).await;
    }
    let role_ref = &object["roleRef"];
    let ref_kind = role_ref["kind"].as_str().unwrap_or_default();
    let ref_name = role_ref["name"].as_str().unwrap_or_default();
    let ref_resource = if ref_kind == "Role" {
        "roles"
    } else {
        "clusterroles"
    };
    let bind = Attributes::resource("bind", RBAC, ref_resource, &attrs.namespace, ref_name);
    if super::authorize(cp, user, &bind).await?.allowed {
        return Ok(());
    }
    let role = match ref_kind {
        "ClusterRole" => rbac::get(cp, "clusterroles", None, ref_name).await?,
        "Role" => rbac::get(cp, "roles", namespace, ref_name).await?,
        _ => return Ok(()),
    };
    let Some(role) = role else {
        return Err(ApiError::not_found(
            &GroupResource {
                group: RBAC.into(),
                resource: ref_resource.into(),
            },
            ref_name,
        ));
    };
    let rules = role["rules"].as_array().cloned().unwrap_or_default();
    confirm_no_escalation(cp, user, &attrs.namespace, &rules, &resource, &name).await
}

/// 403 unless every rule of `rules` is covered by what `user` holds in `namespace`.
async fn confirm_no_escalation(
    cp: &ControlPlane,
    user: &User,
    namespace: &str,
    rules: &[Value],
    resource: &GroupResource,
    name: &str,
) -> Result<(), ApiError> {
    let (grants, errors) = rbac::grants(cp, user, namespace).await?;
    let owned: Vec<Value> = grants.into_iter().flat_map(|g| g.rules).collect();
    let missing: Vec<Value> = rules
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owned.iter().any(|owner| covers(owner, sub)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(not_held(resource, name, user, &missing, &errors))
}

/// Upstream's "attempting to grant RBAC permissions not currently held" 403.
fn not_held(
    resource: &GroupResource,
    name: &str,
    user: &User,
    missing: &[Value],
    errors: &[String],
) -> ApiError {
    let groups: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
    let listed: std::collections::BTreeSet<String> =
        compact_rules(missing).iter().map(compact).collect();
    let listed: Vec<String> = listed.into_iter().collect();
    let mut message = format!(
        "{resource} \"{name}\" is forbidden: user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        groups.join(" "),
        listed.join("\n")
    );
    if !errors.is_empty() {
        message.push_str(&format!("; resolution errors: [{}]", errors.join(", ")));
    }
    ApiError::forbidden(resource, name, message)
}

fn strings<'a>(rule: &'a Value, field: &str) -> Vec<&'a str> {
    rule[field]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A rule as upstream's `CompactString`: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`.
fn compact(rule: &Value) -> String {
    let fields = [
        ("APIGroups", "apiGroups"),
        ("Resources", "resources"),
        ("ResourceNames", "resourceNames"),
        ("NonResourceURLs", "nonResourceURLs"),
        ("Verbs", "verbs"),
    ];
    let parts: Vec<String> = fields
        .iter()
        .filter_map(|(label, field)| {
            let values = strings(rule, field);
            (!values.is_empty()).then(|| {
                let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
                format!("{label}:[{}]", quoted.join(" "))
            })
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Simple rules of one group and resource (no names) merged into one rule with all their
/// verbs, as upstream's `CompactRules` presents missing permissions.
fn compact_rules(rules: &[Value]) -> Vec<Value> {
    let mut compacted: Vec<Value> = Vec::new();
    for rule in rules {
        let groups = strings(rule, "apiGroups");
        let resources = strings(rule, "resources");
        let simple = groups.len() == 1
            && resources.len() == 1
            && strings(rule, "resourceNames").is_empty()
            && strings(rule, "nonResourceURLs").is_empty();
        let same = compacted.iter_mut().find(|c| {
            simple
                && strings(c, "apiGroups") == groups
                && strings(c, "resources") == resources
                && strings(c, "resourceNames").is_empty()
                && strings(c, "nonResourceURLs").is_empty()
        });
        match same {
            Some(existing) => {
                for verb in strings(rule, "verbs") {
                    if let Some(verbs) = existing["verbs"].as_array_mut() {
                        if !verbs.iter().any(|v| v == verb) {
                            verbs.push(Value::from(verb));
                        }
                    }
                }
            }
            None => compacted.push(rule.clone()),
        }
    }
    compacted
}

/// A rule as its simplest parts (one group, resource, name and verb each; or one URL and
/// verb), as upstream's `BreakdownRule`.
fn breakdown(rule: &Value) -> Vec<Value> {
    let mut parts = Vec::new();
    let verbs = strings(rule, "verbs");
    let names = strings(rule, "resourceNames");
    for group in strings(rule, "apiGroups") {
        for resource in strings(rule, "resources") {
            for verb in &verbs {
                if names.is_empty() {
                    parts.push(serde_json::json!({"apiGroups": [group], "resources": [resource], "verbs": [verb]}));
                }
                for name in &names {
                    parts.push(serde_json::json!({"apiGroups": [group], "resources": [resource], "resourceNames": [name], "verbs": [verb]}));
                }
            }
        }
    }
    for url in strings(rule, "nonResourceURLs") {
        for verb in &verbs {
            parts.push(serde_json::json!({"nonResourceURLs": [url], "verbs": [verb]}));
        }
    }
    parts
}

/// Whether `owner` grants everything `sub` does (upstream's `ruleCovers`).
fn covers(owner: &Value, sub: &Value) -> bool {
    let has_all = |set: &[&str], wanted: &[&str]| wanted.iter().all(|w| set.contains(w));
    let owner_verbs = strings(owner, "verbs");
    let owner_groups = strings(owner, "apiGroups");
    let owner_resources = strings(owner, "resources");
    let owner_names = strings(owner, "resourceNames");
    let owner_urls = strings(owner, "nonResourceURLs");
    let verbs = owner_verbs.contains(&"*") || has_all(&owner_verbs, &strings(sub, "verbs"));
    let groups = owner_groups.contains(&"*") || has_all(&owner_groups, &strings(sub, "apiGroups"));
    let wanted_resources = strings(sub, "resources");
    let resources = owner_resources.contains(&"*")
        || wanted_resources.iter().all(|r| {
            owner_resources.contains(r)
                || r.split_once('/')
                    .is_some_and(|(_, s)| owner_resources.contains(&format!("*/{s}").as_str()))
        });
    let urls = strings(sub, "nonResourceURLs").iter().all(|url| {
        owner_urls.iter().any(|o| {
            o == url
                || o.strip_suffix('*')
                    .is_some_and(|prefix| url.starts_with(prefix))
        })
    });
    let wanted_names = strings(sub, "resourceNames");
    let names = if wanted_names.is_empty() {
        owner_names.is_empty()
    } else {
        owner_names.is_empty() || has_all(&owner_names, &wanted_names)
    };
    verbs && groups && resources && urls && names
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn covered(owner: Value, requested: Value) -> bool {
        breakdown(&requested).iter().all(|sub| covers(&owner, sub))
    }

    #[test]
    fn coverage_follows_upstream() {
        let pods_rw = json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]});
        assert!(covered(
            pods_rw.clone(),
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]})
        ));
        assert!(!covered(
            pods_rw.clone(),
            json!({"verbs": ["delete"], "apiGroups": [""], "resources": ["pods"]})
        ));
        assert!(!covered(
            pods_rw.clone(),
            json!({"verbs": ["get"], "apiGroups": ["*"], "resources": ["pods"]})
        ));
        assert!(!covered(
            pods_rw.clone(),
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]})
        ));
        assert!(covered(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*/log"]}),
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]})
        ));
        assert!(covered(
            pods_rw.clone(),
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]})
        ));
        assert!(!covered(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]}),
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]})
        ));
        assert!(covered(
            json!({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}),
            json!({"verbs": ["get"], "nonResourceURLs": ["/apis/apps"]})
        ));
        assert!(!covered(
            json!({"verbs": ["get"], "nonResourceURLs": ["/apis"]}),
            json!({"verbs": ["get"], "nonResourceURLs": ["/apis/apps"]})
        ));
        assert!(covered(
            json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
            json!({"verbs": ["escalate"], "apiGroups": ["x"], "resources": ["y/z"]})
        ));
    }

    #[test]
    fn missing_verbs_of_one_resource_are_merged() {
        let rule =
            json!({"verbs": ["get", "list"], "apiGroups": ["", "apps"], "resources": ["pods"]});
        let merged: Vec<String> = compact_rules(&breakdown(&rule))
            .iter()
            .map(compact)
            .collect();
        assert_eq!(
            merged,
            [
                r#"{APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}"#,
                r#"{APIGroups:["apps"], Resources:["pods"], Verbs:["get" "list"]}"#,
            ]
        );
    }

    #[test]
    fn missing_rules_are_listed_compactly() {
        let user = User {
            name: "alice".into(),
            uid: String::new(),
            groups: vec!["system:authenticated".into()],
            ..Default::default()
        };
        let resource = GroupResource {
            group: RBAC.into(),
            resource: "roles".into(),
        };
        let error = not_held(
            &resource,
            "r",
            &user,
            &[json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]})],
            &[],
        );
        assert_eq!(error.code(), 403);
        assert_eq!(
            error.message(),
            "roles.rbac.authorization.k8s.io \"r\" is forbidden: user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}"
        );
    }
}
