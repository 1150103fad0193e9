//! ClusterRole aggregation: a ClusterRole with `aggregationRule.clusterRoleSelectors`
//! holds the rules of every ClusterRole its selectors match. Upstream's
//! `clusterroleaggregation` controller does this in the background; kflex does it within
//! the request that writes a ClusterRole (and at bootstrap), so nothing runs while idle.

use crate::controlplane::ControlPlane;
use crate::selector::LabelSelector;
use crate::status::ApiError;
use serde_json::Value;

/// Rounds of propagation in memory before giving up on a cycle of aggregations that feed
/// one another (each round propagates one level: view → edit → admin).
const MAX_ROUNDS: usize = 8;
/// Attempts when another writer changes a role between the read and the writes.
const MAX_ATTEMPTS: usize = 8;

/// Brings the rules of every aggregated ClusterRole up to date with the roles its
/// selectors match: the rules are settled in memory, then the roles that changed are
/// written at once (so the store commits them together); roles already current are not
/// written.
pub async fn aggregate(cp: &ControlPlane) -> Result<(), ApiError> {
    let def = cp.builtin("rbac.authorization.k8s.io", "v1", "clusterroles")?;
    for _ in 0..MAX_ATTEMPTS {
        let response = cp
            .store()
            .range(kflex_storage_backends::RangeRequest {
                prefix: def.collection_prefix(None).into_bytes(),
                ..Default::default()
            })
            .await
            .map_err(|e| crate::status::from_store(e, &def.group_resource(), ""))?;
        let stored: Vec<(Value, i64)> = response
            .kvs
            .iter()
            .filter_map(|kv| Some((serde_json::from_slice(&kv.value).ok()?, kv.mod_revision)))
            .collect();
        let mut settled = stored.clone();
        settle(&mut settled);
        let writes = stored
            .iter()
            .zip(&settled)
            .filter(|((old, _), (new, _))| old != new)
            .map(|(_, (role, revision))| {
                let name = crate::object::meta_str(role, "name").unwrap_or_default();
                let key = def.key(None, name);
                async move {
                    cp.store()
                        .update(
                            key.as_bytes(),
                            crate::handlers::encode(role),
                            *revision,
                            None,
                        )
                        .await
                }
            });
        let mut raced = false;
        for result in futures::future::join_all(writes).await {
            match result {
                Ok(_) => {}
                Err(kflex_storage_backends::StoreError::Conflict { .. }) => raced = true,
                Err(e) => return Err(crate::status::from_store(e, &def.group_resource(), "")),
            }
        }
        if !raced {
            break;
        }
    }
    Ok(())
}

/// Gives every aggregated role in `roles` (with their revisions) the rules of the roles
/// its selectors match, propagating through chains of aggregation, in memory.
pub(crate) fn settle(roles: &mut [(Value, i64)]) {
    for _ in 0..MAX_ROUNDS {
        let mut changed = false;
        for i in 0..roles.len() {
            let Some(selectors) = roles[i].0["aggregationRule"]["clusterRoleSelectors"]
                .as_array()
                .cloned()
            else {
                continue;
            };
            let name = crate::object::meta_str(&roles[i].0, "name")
                .unwrap_or_default()
                .to_owned();
            let rules = aggregated_rules(&name, &selectors, roles);
            if roles[i].0["rules"].as_array() != Some(&rules) {
                roles[i].0["rules"] = Value::Array(rules);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

/// The rules of the roles (other than `name`) that `selectors` match, by role name, each
/// rule once, as upstream's controller gathers them.
fn aggregated_rules(name: &str, selectors: &[Value], roles: &[(Value, i64)]) -> Vec<Value> {
    let selectors: Vec<LabelSelector> = selectors.iter().filter_map(selector).collect();
    let mut sources: Vec<&Value> = roles
        .iter()
        .map(|(role, _)| role)
        .filter(|role| crate::object::meta_str(role, "name") != Some(name))
        .filter(|role| selectors.iter().any(|s| s.matches(role)))
        .collect();
    sources.sort_by_key(|role| crate::object::meta_str(role, "name").unwrap_or_default());
    let mut rules: Vec<Value> = Vec::new();
    for rule in sources
        .iter()
        .flat_map(|role| role["rules"].as_array().into_iter().flatten())
    {
        if !rules.contains(rule) {
            rules.push(rule.clone());
        }
    }
    rules
}

/// A `metav1.LabelSelector` as a selector; `None` when it cannot match anything sensible
/// (an unknown operator), as upstream skips invalid selectors.
fn selector(value: &Value) -> Option<LabelSelector> {
    let mut terms = Vec::new();
    for (key, v) in value["matchLabels"].as_object().into_iter().flatten() {
        terms.push(format!("{key}={}", v.as_str()?));
    }
    for expr in value["matchExpressions"].as_array().into_iter().flatten() {
        let key = expr["key"].as_str()?;
        let values: Vec<&str> = expr["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        terms.push(match expr["operator"].as_str()? {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_owned(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        });
    }
    if terms.is_empty() {
        return None;
    }
    LabelSelector::parse(&terms.join(",")).ok()
}

/// Whether a write of `resource` in `group` may change aggregated ClusterRoles.
pub fn affects_aggregation(group: &str, resource: &str, verb: &str) -> bool {
    group == "rbac.authorization.k8s.io"
        && resource == "clusterroles"
        && matches!(
            verb,
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aggregation_gathers_matching_roles_rules_once_by_name() {
        let role = |name: &str, label: &str, rules: Value| {
            (
                json!({"metadata": {"name": name, "labels": {label: "true"}}, "rules": rules}),
                1,
            )
        };
        let r1 = json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]});
        let r2 = json!({"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]});
        let roles = vec![
            role("b", "agg", json!([r2, r1])),
            role("a", "agg", json!([r1])),
            role("c", "other", json!([{"verbs": ["*"]}])),
        ];
        let selectors = [json!({"matchLabels": {"agg": "true"}})];
        assert_eq!(
            aggregated_rules("x", &selectors, &roles),
            vec![r1.clone(), r2.clone()]
        );
        let selectors = [json!({"matchExpressions": [{"key": "agg", "operator": "Exists"}]})];
        assert_eq!(aggregated_rules("a", &selectors, &roles), vec![r2, r1]);
        assert!(selector(&json!({})).is_none());
    }
}
