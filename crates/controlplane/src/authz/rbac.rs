//! RBAC evaluation as upstream's `plugin/pkg/auth/authorizer/rbac` and
//! `pkg/apis/rbac/v1/evaluation_helpers.go`: the union of the rules of every
//! ClusterRoleBinding and every RoleBinding of the request's namespace whose subjects
//! include the user. Roles and bindings are read from the store for each decision, so a
//! write is effective at once and an idle control plane holds nothing.

use super::attributes::Attributes;
use crate::authn::User;
use crate::controlplane::ControlPlane;
use crate::status::ApiError;
use serde_json::Value;

/// The group whose members may do anything, without RBAC.
pub const MASTERS: &str = "system:masters";

/// One decision, with its reason as upstream phrases it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// Whether `rule` (a `PolicyRule` as JSON) allows `attrs` (upstream's `RuleAllows`).
pub fn rule_allows(attrs: &Attributes, rule: &Value) -> bool {
    let list = |field: &str| -> Vec<&str> {
        rule[field]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    let verbs = list("verbs");
    if !verbs.iter().any(|v| *v == "*" || *v == attrs.verb) {
        return false;
    }
    if !attrs.resource_request {
        return list("nonResourceURLs").iter().any(|url| {
            *url == "*"
                || *url == attrs.path
                || url
                    .strip_suffix('*')
                    .is_some_and(|prefix| attrs.path.starts_with(prefix))
        });
    }
    let groups = list("apiGroups");
    if !groups.iter().any(|g| *g == "*" || *g == attrs.group) {
        return false;
    }
    let combined = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let resources = list("resources");
    let resource_matches = resources.iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!attrs.subresource.is_empty()
                && r.strip_prefix("*/") == Some(attrs.subresource.as_str()))
    });
    if !resource_matches {
        return false;
    }
    let names = list("resourceNames");
    names.is_empty() || names.contains(&attrs.name.as_str())
}

/// Whether a binding's `subjects` include `user`; `namespace` is the binding's (`""` for
/// a ClusterRoleBinding), the default of ServiceAccount subjects.
pub fn applies_to(user: &User, subjects: &Value, namespace: &str) -> bool {
    subjects.as_array().into_iter().flatten().any(|subject| {
        let name = subject["name"].as_str().unwrap_or_default();
        match subject["kind"].as_str() {
            Some("User") => user.name == name,
            Some("Group") => user.groups.iter().any(|g| g == name),
            Some("ServiceAccount") => {
                let ns = subject["namespace"]
                    .as_str()
                    .filter(|ns| !ns.is_empty())
                    .unwrap_or(namespace);
                !ns.is_empty()
                    && !name.is_empty()
                    && user.name == format!("system:serviceaccount:{ns}:{name}")
            }
            _ => false,
        }
    })
}

/// How a subject is named in reasons: `User "alice"`, `ServiceAccount "robot/ns"`.
fn describe_subjects(user: &User, subjects: &Value, namespace: &str) -> String {
    for subject in subjects.as_array().into_iter().flatten() {
        let single = Value::Array(vec![subject.clone()]);
        if applies_to(user, &single, namespace) {
            let kind = subject["kind"].as_str().unwrap_or_default();
            let name = subject["name"].as_str().unwrap_or_default();
            return if kind == "ServiceAccount" {
                let ns = subject["namespace"]
                    .as_str()
                    .filter(|ns| !ns.is_empty())
                    .unwrap_or(namespace);
                format!("{kind} \"{name}/{ns}\"")
            } else {
                format!("{kind} {name:?}")
            };
        }
    }
    String::new()
}

/// One source of rules for a user: a binding and the rules of its role.
pub struct Grant {
    /// `RoleBinding "x" of ClusterRole "y" to User "z"`, as upstream's allow reasons.
    pub description: String,
    pub rules: Vec<Value>,
}

/// The rules `user` holds in `namespace` (`""`: cluster-wide only), with the errors met
/// on the way (bindings to missing roles), as upstream's `VisitRulesFor`.
pub async fn grants(
    cp: &ControlPlane,
    user: &User,
    namespace: &str,
) -> Result<(Vec<Grant>, Vec<String>), ApiError> {
    let mut grants = Vec::new();
    let mut errors = Vec::new();
    for binding in list(cp, "clusterrolebindings", None).await? {
        if !applies_to(user, &binding["subjects"], "") {
            continue;
        }
        let role_ref = &binding["roleRef"];
        let role_name = role_ref["name"].as_str().unwrap_or_default();
        let binding_name = crate::object::meta_str(&binding, "name").unwrap_or_default();
        if role_ref["kind"].as_str() != Some("ClusterRole") {
            continue;
        }
        match get(cp, "clusterroles", None, role_name).await? {
            Some(role) => grants.push(Grant {
                description: format!(
                    "ClusterRoleBinding {binding_name:?} of ClusterRole {role_name:?} to {}",
                    describe_subjects(user, &binding["subjects"], "")
                ),
                rules: rules_of(&role),
            }),
            None => errors.push(format!(
                "clusterrole.rbac.authorization.k8s.io {role_name:?} not found"
            )),
        }
    }
    if namespace.is_empty() {
        return Ok((grants, errors));
    }
    for binding in list(cp, "rolebindings", Some(namespace)).await? {
        if !applies_to(user, &binding["subjects"], namespace) {
            continue;
        }
        let role_ref = &binding["roleRef"];
        let role_name = role_ref["name"].as_str().unwrap_or_default();
        let kind = role_ref["kind"].as_str().unwrap_or_default();
        let binding_name = crate::object::meta_str(&binding, "name").unwrap_or_default();
        let role = match kind {
            "ClusterRole" => get(cp, "clusterroles", None, role_name).await?,
            "Role" => get(cp, "roles", Some(namespace), role_name).await?,
            _ => continue,
        };
        match role {
            Some(role) => grants.push(Grant {
                description: format!(
                    "RoleBinding \"{binding_name}/{namespace}\" of {kind} {role_name:?} to {}",
                    describe_subjects(user, &binding["subjects"], namespace)
                ),
                rules: rules_of(&role),
            }),
            None => errors.push(format!(
                "{}.rbac.authorization.k8s.io {role_name:?} not found",
                kind.to_ascii_lowercase()
            )),
        }
    }
    Ok((grants, errors))
}

/// Upstream's RBAC authorizer (without the `system:masters` bypass, see [`super::authorize`]).
pub async fn authorize(
    cp: &ControlPlane,
    user: &User,
    attrs: &Attributes,
) -> Result<Decision, ApiError> {
    let (grants, errors) = grants(cp, user, &attrs.namespace).await?;
    if let Some(grant) = grants
        .iter()
        .find(|g| g.rules.iter().any(|rule| rule_allows(attrs, rule)))
    {
        return Ok(Decision {
            allowed: true,
            reason: format!("RBAC: allowed by {}", grant.description),
        });
    }
    let reason = if errors.is_empty() {
        String::new()
    } else if errors.len() == 1 {
        format!("RBAC: {}", errors[0])
    } else {
        format!("RBAC: [{}]", errors.join(", "))
    };
    Ok(Decision {
        allowed: false,
        reason,
    })
}

fn rules_of(role: &Value) -> Vec<Value> {
    role["rules"].as_array().cloned().unwrap_or_default()
}

/// Every object of an RBAC resource, in one namespace or cluster-wide.
pub(crate) async fn list(
    cp: &ControlPlane,
    plural: &str,
    namespace: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let def = cp.builtin("rbac.authorization.k8s.io", "v1", plural)?;
    let response = cp
        .store()
        .range(kflex_storage_backends::RangeRequest {
            prefix: def.collection_prefix(namespace).into_bytes(),
            ..Default::default()
        })
        .await
        .map_err(|e| crate::status::from_store(e, &def.group_resource(), ""))?;
    Ok(response
        .kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
        .collect())
}

/// One object of an RBAC resource, if it exists.
pub(crate) async fn get(
    cp: &ControlPlane,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    let def = cp.builtin("rbac.authorization.k8s.io", "v1", plural)?;
    let (kv, _) = cp
        .store()
        .get(def.key(namespace, name).as_bytes(), None)
        .await
        .map_err(|e| crate::status::from_store(e, &def.group_resource(), name))?;
    Ok(kv.and_then(|kv| serde_json::from_slice(&kv.value).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alice() -> User {
        User {
            name: "alice".into(),
            uid: String::new(),
            groups: vec!["devs".into(), crate::authn::AUTHENTICATED.into()],
            ..Default::default()
        }
    }

    fn get_pods(name: &str, sub: &str) -> Attributes {
        let mut a = Attributes::resource("get", "", "pods", "default", name);
        a.subresource = sub.into();
        a
    }

    #[test]
    fn rules_match_as_upstream() {
        let cases: Vec<(Value, Attributes, bool)> = vec![
            (
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}),
                get_pods("p", ""),
                true,
            ),
            (
                json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
                get_pods("p", "log"),
                true,
            ),
            (
                json!({"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}),
                get_pods("p", ""),
                false,
            ),
            (
                json!({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["pods"]}),
                get_pods("p", ""),
                false,
            ),
            (
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}),
                get_pods("p", "log"),
                false,
            ),
            (
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}),
                get_pods("p", "log"),
                true,
            ),
            (
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*/log"]}),
                get_pods("p", "log"),
                true,
            ),
            (
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/*"]}),
                get_pods("p", "log"),
                false,
            ),
            (
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["p"]}),
                get_pods("p", ""),
                true,
            ),
            (
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["q"]}),
                get_pods("p", ""),
                false,
            ),
            (
                json!({"verbs": ["list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["p"]}),
                Attributes::resource("list", "", "pods", "default", ""),
                false,
            ),
            (
                json!({"verbs": ["create"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["p"]}),
                Attributes::resource("create", "", "pods", "default", ""),
                false,
            ),
            (
                json!({"verbs": ["get"], "nonResourceURLs": ["/healthz"]}),
                Attributes::non_resource("get", "/healthz"),
                true,
            ),
            (
                json!({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}),
                Attributes::non_resource("get", "/apis/apps/v1"),
                true,
            ),
            (
                json!({"verbs": ["get"], "nonResourceURLs": ["/apis"]}),
                Attributes::non_resource("get", "/apis/apps"),
                false,
            ),
            (
                json!({"verbs": ["get"], "nonResourceURLs": ["*"]}),
                Attributes::non_resource("get", "/metrics"),
                true,
            ),
            (
                json!({"verbs": ["get"], "apiGroups": ["*"], "resources": ["*"]}),
                Attributes::non_resource("get", "/version"),
                false,
            ),
            (
                json!({"verbs": ["get"], "nonResourceURLs": ["*"]}),
                get_pods("p", ""),
                false,
            ),
        ];
        for (i, (rule, attrs, want)) in cases.iter().enumerate() {
            assert_eq!(
                rule_allows(attrs, rule),
                *want,
                "case {i}: {rule} {attrs:?}"
            );
        }
    }

    #[test]
    fn subjects_match_users_groups_and_service_accounts() {
        let sa = User {
            name: "system:serviceaccount:ns:robot".into(),
            uid: String::new(),
            groups: vec!["system:serviceaccounts".into()],
            ..Default::default()
        };
        assert!(applies_to(
            &alice(),
            &json!([{"kind": "User", "name": "alice"}]),
            ""
        ));
        assert!(!applies_to(
            &alice(),
            &json!([{"kind": "User", "name": "bob"}]),
            ""
        ));
        assert!(applies_to(
            &alice(),
            &json!([{"kind": "Group", "name": "devs"}]),
            ""
        ));
        assert!(applies_to(
            &alice(),
            &json!([{"kind": "Group", "name": "system:authenticated"}]),
            ""
        ));
        assert!(applies_to(
            &sa,
            &json!([{"kind": "ServiceAccount", "name": "robot", "namespace": "ns"}]),
            ""
        ));
        assert!(applies_to(
            &sa,
            &json!([{"kind": "ServiceAccount", "name": "robot"}]),
            "ns"
        ));
        assert!(!applies_to(
            &sa,
            &json!([{"kind": "ServiceAccount", "name": "robot"}]),
            ""
        ));
        assert!(!applies_to(
            &sa,
            &json!([{"kind": "ServiceAccount", "name": "robot"}]),
            "other"
        ));
        assert_eq!(
            describe_subjects(
                &alice(),
                &json!([{"kind": "User", "name": "bob"}, {"kind": "Group", "name": "devs"}]),
                ""
            ),
            "Group \"devs\""
        );
        assert_eq!(
            describe_subjects(
                &sa,
                &json!([{"kind": "ServiceAccount", "name": "robot"}]),
                "ns"
            ),
            "ServiceAccount \"robot/ns\""
        );
    }

    #[test]
    fn forbidden_messages_are_upstreams() {
        let a = Attributes::resource("list", "", "configmaps", "default", "");
        assert_eq!(
            a.forbidden_message(&alice()),
            r#"User "alice" cannot list resource "configmaps" in API group "" in the namespace "default""#
        );
        let mut a = Attributes::resource("get", "apps", "deployments", "", "d");
        a.subresource = "scale".into();
        assert_eq!(
            a.forbidden_message(&alice()),
            r#"User "alice" cannot get resource "deployments/scale" in API group "apps" at the cluster scope"#
        );
        assert_eq!(
            Attributes::non_resource("get", "/metrics").forbidden_message(&alice()),
            r#"User "alice" cannot get path "/metrics""#
        );
    }
}
