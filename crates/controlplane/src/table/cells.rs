//! How the built-in columns read their cells: upstream's formats for selectors, node and
//! job status, endpoints, quotas and HPA targets.

use super::{column, human_duration_since, or_none, text, Column};
use serde_json::{json, Value};

pub(super) fn list(value: &Value) -> Vec<Value> {
    value.as_array().cloned().unwrap_or_default()
}

pub(super) fn int(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

/// The items of a list, formatted and joined by commas, skipping empty ones.
pub(super) fn joined(value: &Value, format: impl Fn(&Value) -> String) -> String {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(format)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// At most three items, then how many more, as upstream lists endpoints.
pub(super) fn first_three(items: Vec<String>) -> String {
    let more = items.len().saturating_sub(3);
    let shown = items.into_iter().take(3).collect::<Vec<_>>().join(",");
    if more > 0 {
        format!("{shown} + {more} more...")
    } else {
        shown
    }
}

pub(super) fn created_at() -> Column {
    column("Created At", "date", 0, |o| {
        o["metadata"]["creationTimestamp"].clone()
    })
}

pub(super) fn int_or_string(value: &Value) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => "N/A".into(),
    }
}

/// `k=v` pairs of a map, sorted, joined by commas; `<none>` when empty.
pub(super) fn map_selector(value: &Value) -> String {
    let Some(map) = value.as_object().filter(|m| !m.is_empty()) else {
        return "<none>".into();
    };
    let mut pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", text(v)))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// A `metav1.LabelSelector` as `FormatLabelSelector` writes it.
pub(super) fn label_selector(selector: &Value) -> String {
    if !selector.is_object() {
        return "<none>".into();
    }
    let mut parts: Vec<String> = Vec::new();
    if let Some(labels) = selector["matchLabels"].as_object() {
        let mut pairs: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect();
        pairs.sort();
        parts.extend(pairs);
    }
    for expression in list(&selector["matchExpressions"]) {
        let key = text(&expression["key"]);
        let values = joined(&expression["values"], text);
        parts.push(match text(&expression["operator"]).as_str() {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key,
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other} ({values})"),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

/// A selector that is a `LabelSelector` (apps, batch) or a plain map (core).
pub(super) fn any_selector(selector: &Value) -> String {
    if selector.get("matchLabels").is_some() || selector.get("matchExpressions").is_some() {
        label_selector(selector)
    } else {
        map_selector(selector)
    }
}

/// A pod template's containers' `field`s (names or images), joined by commas.
pub(super) fn containers(template: &Value, field: &str) -> String {
    joined(&template["spec"]["containers"], |c| text(&c[field]))
}

pub(super) fn pod_ready(pod: &Value) -> Value {
    let total = list(&pod["spec"]["containers"]).len();
    let ready = list(&pod["status"]["containerStatuses"])
        .iter()
        .filter(|c| c["ready"].as_bool() == Some(true))
        .count();
    json!(format!("{ready}/{total}"))
}

pub(super) fn pod_status(pod: &Value) -> Value {
    if pod["metadata"]["deletionTimestamp"].is_string() {
        return json!("Terminating");
    }
    let reason = text(&pod["status"]["reason"]);
    let phase = text(&pod["status"]["phase"]);
    json!(if !reason.is_empty() {
        reason
    } else if phase.is_empty() {
        "Pending".into()
    } else {
        phase
    })
}

pub(super) fn endpoints(o: &Value) -> Value {
    let mut items = Vec::new();
    for subset in list(&o["subsets"]) {
        let ports = list(&subset["ports"]);
        for address in list(&subset["addresses"]) {
            let ip = text(&address["ip"]);
            if ports.is_empty() {
                items.push(ip.clone());
            }
            for port in &ports {
                items.push(format!("{ip}:{}", int(&port["port"])));
            }
        }
    }
    or_none(first_three(items))
}

pub(super) fn event_columns() -> Vec<Column> {
    vec![
        column("Last Seen", "string", 0, |o| {
            let last = o["series"]["lastObservedTime"]
                .as_str()
                .or(o["lastTimestamp"].as_str())
                .or(o["deprecatedLastTimestamp"].as_str())
                .or(o["eventTime"].as_str());
            json!(match last {
                Some(t) => human_duration_since(t),
                None => "<unknown>".into(),
            })
        }),
        column("Type", "string", 0, |o| o["type"].clone()),
        column("Reason", "string", 0, |o| o["reason"].clone()),
        column("Object", "string", 0, |o| {
            let object = if o["involvedObject"].is_object() {
                &o["involvedObject"]
            } else {
                &o["regarding"]
            };
            json!(format!(
                "{}/{}",
                text(&object["kind"]).to_lowercase(),
                text(&object["name"])
            ))
        }),
        column("Subobject", "string", 1, |o| {
            let object = if o["involvedObject"].is_object() {
                &o["involvedObject"]
            } else {
                &o["regarding"]
            };
            object["fieldPath"].clone()
        }),
        column("Source", "string", 1, |o| {
            let component = o["source"]["component"]
                .as_str()
                .or(o["reportingController"].as_str())
                .unwrap_or("");
            let host = o["source"]["host"].as_str().unwrap_or("");
            json!(if host.is_empty() {
                component.to_owned()
            } else {
                format!("{component}, {host}")
            })
        }),
        column("Message", "string", 0, |o| {
            if o["message"].is_string() {
                o["message"].clone()
            } else {
                o["note"].clone()
            }
        }),
        column("First Seen", "string", 1, |o| {
            json!(
                match o["firstTimestamp"].as_str().or(o["eventTime"].as_str()) {
                    Some(t) => human_duration_since(t),
                    None => "<unknown>".into(),
                }
            )
        }),
        column("Count", "string", 1, |o| {
            json!(o["series"]["count"]
                .as_i64()
                .or(o["count"].as_i64())
                .unwrap_or(1)
                .to_string())
        }),
        column("Name", "string", 1, |o| o["metadata"]["name"].clone()),
    ]
}

pub(super) fn node_status(node: &Value) -> Value {
    let ready = list(&node["status"]["conditions"])
        .into_iter()
        .find(|c| c["type"] == "Ready");
    let mut status = match ready.as_ref().map(|c| text(&c["status"])) {
        Some(s) if s == "True" => "Ready".to_owned(),
        Some(_) => "NotReady".to_owned(),
        None => "Unknown".to_owned(),
    };
    if node["spec"]["unschedulable"].as_bool() == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    json!(status)
}

pub(super) fn node_roles(node: &Value) -> Value {
    let mut roles: Vec<String> = Vec::new();
    if let Some(labels) = node["metadata"]["labels"].as_object() {
        for (key, value) in labels {
            if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.push(role.to_owned());
                }
            } else if key == "kubernetes.io/role" {
                if let Some(role) = value.as_str().filter(|r| !r.is_empty()) {
                    roles.push(role.to_owned());
                }
            }
        }
    }
    roles.sort();
    roles.dedup();
    or_none(roles.join(","))
}

pub(super) fn node_address(node: &Value, kind: &str) -> String {
    list(&node["status"]["addresses"])
        .into_iter()
        .find(|a| a["type"] == kind)
        .map(|a| text(&a["address"]))
        .unwrap_or_default()
}

pub(super) fn access_modes(modes: &Value) -> String {
    joined(modes, |m| {
        match m.as_str().unwrap_or("") {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            _ => "",
        }
        .to_owned()
    })
}

pub(super) fn storage_class(o: &Value) -> String {
    o["spec"]["storageClassName"]
        .as_str()
        .or(o["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"].as_str())
        .unwrap_or("")
        .to_owned()
}

pub(super) fn volume_mode(o: &Value) -> String {
    o["spec"]["volumeMode"]
        .as_str()
        .unwrap_or("Filesystem")
        .to_owned()
}

/// `resource: used/hard` for a quota's request (or `limits.` prefixed) resources, sorted.
pub(super) fn quota_usage(quota: &Value, limits: bool) -> String {
    let Some(hard) = quota["status"]["hard"]
        .as_object()
        .or(quota["spec"]["hard"].as_object())
    else {
        return String::new();
    };
    let mut items: Vec<String> = hard
        .iter()
        .filter(|(name, _)| name.starts_with("limits.") == limits)
        .map(|(name, limit)| {
            let used = text(&quota["status"]["used"][name.as_str()]);
            let used = if used.is_empty() {
                "0".to_owned()
            } else {
                used
            };
            format!("{name}: {used}/{}", int_or_string(limit))
        })
        .collect();
    items.sort();
    items.join(", ")
}

pub(super) fn subjects(binding: &Value, kind: &str) -> String {
    joined(&binding["subjects"], |s| {
        if text(&s["kind"]) != kind {
            return String::new();
        }
        if kind == "ServiceAccount" {
            format!("{}/{}", text(&s["namespace"]), text(&s["name"]))
        } else {
            text(&s["name"])
        }
    })
}

pub(super) fn load_balancer(ingress: &Value) -> String {
    joined(ingress, |i| {
        let ip = text(&i["ip"]);
        if ip.is_empty() {
            text(&i["hostname"])
        } else {
            ip
        }
    })
}

/// Each metric as `current/target`, as upstream's `formatHPAMetrics`: resource metrics by
/// name (`cpu: 40%/80%`), others by type; `<unknown>` until a current value is reported.
pub(super) fn hpa_targets(hpa: &Value) -> Value {
    let metrics = list(&hpa["spec"]["metrics"]);
    if metrics.is_empty() {
        return json!("<none>");
    }
    let current = list(&hpa["status"]["currentMetrics"]);
    let formatted: Vec<String> = metrics
        .iter()
        .map(|metric| {
            let kind = text(&metric["type"]);
            let field = match kind.as_str() {
                "Resource" => "resource",
                "ContainerResource" => "containerResource",
                "Pods" => "pods",
                "Object" => "object",
                _ => "external",
            };
            let target = &metric[field]["target"];
            let name = text(&metric[field]["name"]);
            let now = current
                .iter()
                .find(|c| c["type"] == metric["type"] && text(&c[field]["name"]) == name)
                .map(|c| &c[field]["current"]);
            let (now, goal) = match target["averageUtilization"].as_i64() {
                Some(goal) => (
                    now.and_then(|c| c["averageUtilization"].as_i64())
                        .map_or("<unknown>".to_owned(), |v| format!("{v}%")),
                    format!("{goal}%"),
                ),
                None => {
                    let key = if target["averageValue"].is_null() {
                        "value"
                    } else {
                        "averageValue"
                    };
                    (
                        now.map(|c| int_or_string(&c[key]))
                            .filter(|v| v != "N/A")
                            .unwrap_or_else(|| "<unknown>".to_owned()),
                        int_or_string(&target[key]),
                    )
                }
            };
            if matches!(kind.as_str(), "Resource" | "ContainerResource") {
                format!("{name}: {now}/{goal}")
            } else {
                format!("{now}/{goal}")
            }
        })
        .collect();
    let more = formatted.len().saturating_sub(2);
    let shown = formatted.into_iter().take(2).collect::<Vec<_>>().join(", ");
    json!(if more > 0 {
        format!("{shown} + {more} more...")
    } else {
        shown
    })
}

pub(super) fn has_condition(o: &Value, kind: &str) -> bool {
    list(&o["status"]["conditions"])
        .iter()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

pub(super) fn job_status(job: &Value) -> Value {
    json!(if has_condition(job, "Complete") {
        "Complete"
    } else if has_condition(job, "Failed") {
        "Failed"
    } else if job["metadata"]["deletionTimestamp"].is_string() {
        "Terminating"
    } else if has_condition(job, "FailureTarget") {
        "FailureTarget"
    } else if has_condition(job, "Suspended") {
        "Suspended"
    } else if has_condition(job, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    })
}

pub(super) fn job_completions(job: &Value) -> Value {
    let succeeded = int(&job["status"]["succeeded"]);
    json!(match job["spec"]["completions"].as_i64() {
        Some(completions) => format!("{succeeded}/{completions}"),
        None => match job["spec"]["parallelism"].as_i64().unwrap_or(1) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    })
}

pub(super) fn csr_condition(csr: &Value) -> Value {
    let mut conditions: Vec<String> = list(&csr["status"]["conditions"])
        .iter()
        .filter(|c| c["status"].as_str().unwrap_or("True") == "True")
        .map(|c| text(&c["type"]))
        .collect();
    if conditions.is_empty() {
        return json!("Pending");
    }
    conditions.sort();
    if conditions.iter().any(|c| c == "Approved" || c == "Denied")
        && !conditions.iter().any(|c| c == "Issued")
    {
        conditions.retain(|c| c != "Failed");
    }
    json!(conditions.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::builtin::columns;

    fn cells_of(group: &str, plural: &str, object: Value) -> Vec<(String, Value)> {
        let registry = crate::registry::ResourceRegistry::builtin();
        let def = registry
            .groups()
            .into_iter()
            .map(|(g, versions)| (g, versions[0].clone()))
            .chain([(String::new(), "v1".to_owned())])
            .find_map(|(g, v)| {
                (g == group)
                    .then(|| registry.lookup(&g, &v, plural))
                    .flatten()
            })
            .expect("a built-in resource");
        columns(&def)
            .iter()
            .map(|c| (c.name.to_owned(), (c.cell)(&object)))
            .collect()
    }

    fn cell(cells: &[(String, Value)], name: &str) -> Value {
        cells
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    }

    #[test]
    fn jobs_show_status_completions_and_wide_columns() {
        let job = json!({
            "metadata": {"name": "pi"},
            "spec": {"completions": 3, "selector": {"matchLabels": {"job": "pi"}},
                     "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
            "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "False"}]},
        });
        let cells = cells_of("batch", "jobs", job);
        assert_eq!(cell(&cells, "Status"), json!("Running"));
        assert_eq!(cell(&cells, "Completions"), json!("1/3"));
        assert_eq!(cell(&cells, "Images"), json!("perl"));
        assert_eq!(cell(&cells, "Selector"), json!("job=pi"));
    }

    #[test]
    fn nodes_show_readiness_roles_and_addresses() {
        let node = json!({
            "metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                       "nodeInfo": {"kubeletVersion": "v1.33.1"}},
        });
        let cells = cells_of("", "nodes", node);
        assert_eq!(cell(&cells, "Status"), json!("Ready,SchedulingDisabled"));
        assert_eq!(cell(&cells, "Roles"), json!("control-plane,worker"));
        assert_eq!(cell(&cells, "Internal-IP"), json!("10.0.0.1"));
        assert_eq!(cell(&cells, "External-IP"), json!("<none>"));
        assert_eq!(cell(&cells, "Version"), json!("v1.33.1"));
    }

    #[test]
    fn events_name_their_object_and_bindings_their_role() {
        let event = json!({
            "metadata": {"name": "e1"}, "type": "Normal", "reason": "Scheduled",
            "involvedObject": {"kind": "Pod", "name": "web-1"}, "message": "assigned", "count": 2,
        });
        let cells = cells_of("", "events", event);
        assert_eq!(cell(&cells, "Object"), json!("pod/web-1"));
        assert_eq!(cell(&cells, "Count"), json!("2"));
        assert_eq!(cell(&cells, "Message"), json!("assigned"));
        let binding = json!({
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "ann"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}],
        });
        let cells = cells_of("rbac.authorization.k8s.io", "rolebindings", binding);
        assert_eq!(cell(&cells, "Role"), json!("ClusterRole/view"));
        assert_eq!(cell(&cells, "Users"), json!("ann"));
        assert_eq!(cell(&cells, "ServiceAccounts"), json!("ns/sa"));
    }

    #[test]
    fn selectors_and_endpoints_read_as_upstream_prints_them() {
        let selector = json!({"matchLabels": {"b": "2", "a": "1"},
                              "matchExpressions": [{"key": "tier", "operator": "In", "values": ["x", "y"]},
                                                   {"key": "gone", "operator": "DoesNotExist"}]});
        assert_eq!(label_selector(&selector), "a=1,b=2,tier in (x,y),!gone");
        assert_eq!(label_selector(&json!({})), "<none>");
        let eps = json!({"subsets": [{"addresses": [{"ip": "1.1.1.1"}, {"ip": "2.2.2.2"}],
                                      "ports": [{"port": 80}, {"port": 443}]}]});
        assert_eq!(
            endpoints(&eps),
            json!("1.1.1.1:80,1.1.1.1:443,2.2.2.2:80 + 1 more...")
        );
    }
}
