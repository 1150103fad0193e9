//! Built-in objects' field values as their typed `ToSelectableFields` render them: label
//! aliases, typed zero values and the fields computed from others.

use std::borrow::Cow;

use serde_json::Value;

use super::field::lookup;
use super::fields_by_kind::BUILTIN_GROUPS;
use super::go::render;

/// Field labels that upstream's conversion functions rename before matching.
const LABEL_ALIASES: &[(&str, &str)] = &[
    ("spec.host", "spec.nodeName"),
    ("regarding.kind", "involvedObject.kind"),
    ("regarding.namespace", "involvedObject.namespace"),
    ("regarding.name", "involvedObject.name"),
    ("regarding.uid", "involvedObject.uid"),
    ("regarding.apiVersion", "involvedObject.apiVersion"),
    (
        "regarding.resourceVersion",
        "involvedObject.resourceVersion",
    ),
    ("regarding.fieldPath", "involvedObject.fieldPath"),
    ("reportingController", "reportingComponent"),
];

pub(super) fn canonical_label(label: &str) -> &str {
    LABEL_ALIASES
        .iter()
        .find(|(alias, _)| *alias == label)
        .map_or(label, |(_, canonical)| canonical)
}

/// Whether the object belongs to a built-in API group (judged by its own `apiVersion`).
pub(super) fn is_builtin_object(object: &Value) -> bool {
    object
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_none_or(|api_version| {
            let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
            BUILTIN_GROUPS.contains(&group)
        })
}

/// Like `render`, but a missing or null field reads as a typed zero value.
fn render_or<'a>(value: Option<&'a Value>, zero: &'static str) -> Cow<'a, str> {
    match value {
        None | Some(Value::Null) => Cow::Borrowed(zero),
        some => render(some),
    }
}

/// A built-in object's field as its typed `ToSelectableFields` renders it (label canonical).
pub(super) fn builtin_field_value<'a>(object: &'a Value, label: &str) -> Cow<'a, str> {
    match label {
        "spec.hostNetwork" | "spec.unschedulable" => render_or(lookup(object, label), "false"),
        "status.replicas" => render_or(lookup(object, label), "0"),
        "status.successful" => render_or(lookup(object, "status.succeeded"), "0"),
        "status.podIP" => {
            // Like the v1 → internal conversion: a set `podIP` wins, else the first `podIPs` entry.
            let primary = lookup(object, "status.podIP")
                .and_then(Value::as_str)
                .filter(|ip| !ip.is_empty());
            let first = || {
                lookup(object, "status.podIPs")
                    .and_then(|ips| ips.get(0))
                    .and_then(|ip| ip.get("ip"))
                    .and_then(Value::as_str)
            };
            Cow::Borrowed(primary.or_else(first).unwrap_or(""))
        }
        "status.podIPs" => Cow::Borrowed(""),
        "source" => render(
            lookup(object, "source.component")
                .or_else(|| lookup(object, "deprecatedSource.component")),
        ),
        "reportingComponent" => render(
            object
                .get("reportingComponent")
                .or_else(|| object.get("reportingController")),
        ),
        _ => match label.strip_prefix("involvedObject.") {
            Some(rest) => render(
                lookup(object, label).or_else(|| object.get("regarding").and_then(|r| r.get(rest))),
            ),
            None => render(lookup(object, label)),
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::selector::tests::{field_matches, pod};
    use crate::selector::FieldSelector;
    use serde_json::json;

    #[test]
    fn field_matching_for_pods() {
        let pod = pod();
        assert!(field_matches("status.phase=Running", &pod));
        assert!(!field_matches("status.phase=Pending", &pod));
        assert!(field_matches("status.phase!=Pending", &pod));
        assert!(field_matches(
            "metadata.name=web-1,metadata.namespace=default",
            &pod
        ));
        assert!(!field_matches(
            "metadata.name=web-1,metadata.namespace=other",
            &pod
        ));
        assert!(field_matches("spec.nodeName=node-a", &pod));
        assert!(field_matches("spec.host=node-a", &pod));
        assert!(field_matches("spec.nodeName!=", &pod));
        assert!(field_matches("spec.hostNetwork=false", &pod));
        assert!(!field_matches("spec.hostNetwork=", &pod));
        assert!(field_matches("status.podIP=10.0.0.5", &pod));
        assert!(field_matches("status.nominatedNodeName=", &pod));
        // Upstream accepts status.podIPs but its field set never holds it.
        assert!(field_matches("status.podIPs=", &pod));
        assert!(!field_matches("status.podIPs=10.0.0.5", &pod));

        let mut host_network = pod.clone();
        host_network["spec"]["hostNetwork"] = json!(true);
        host_network["status"]["podIP"] = json!("192.168.1.1");
        assert!(field_matches("spec.hostNetwork=true", &host_network));
        assert!(field_matches("status.podIP=192.168.1.1", &host_network));

        let unscheduled = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        assert!(field_matches("spec.nodeName=", &unscheduled));
        assert!(field_matches("spec.host=", &unscheduled));
        assert!(field_matches("status.podIP=", &unscheduled));
        assert!(field_matches("metadata.namespace=", &unscheduled));

        let selector = FieldSelector::parse("spec.host=node-a").unwrap();
        assert_eq!(selector.required_value("spec.nodeName"), Some("node-a"));
        assert_eq!(selector.required_value("spec.host"), Some("node-a"));
    }

    #[test]
    fn field_matching_for_other_builtins() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "kubernetes.io/tls"});
        assert!(field_matches("type=kubernetes.io/tls", &secret));
        assert!(field_matches("type!=Opaque", &secret));

        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}});
        assert!(field_matches("spec.unschedulable=false", &node));
        assert!(field_matches("spec.unschedulable!=true", &node));
        let cordoned = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}, "spec": {"unschedulable": true}});
        assert!(field_matches("spec.unschedulable=true", &cordoned));

        let rc =
            json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"}});
        assert!(field_matches("status.replicas=0", &rc));
        let scaled = json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"}, "status": {"replicas": 3}});
        assert!(field_matches("status.replicas=3", &scaled));

        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "status": {"succeeded": 1}});
        assert!(field_matches("status.successful=1", &job));
        let fresh_job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}});
        assert!(field_matches("status.successful=0", &fresh_job));

        let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}, "status": {"phase": "Terminating"}});
        assert!(field_matches("status.phase=Terminating", &namespace));

        let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": {"clusterIP": "None", "type": "ClusterIP"}});
        assert!(field_matches(
            "spec.clusterIP=None,spec.type=ClusterIP",
            &service
        ));
    }

    #[test]
    fn field_matching_for_events_in_both_shapes() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "d"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "d", "uid": "u1"},
            "reason": "Scheduled", "type": "Normal", "source": {"component": "scheduler"},
            "reportingComponent": "default-scheduler"
        });
        let events_api = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e", "namespace": "d"},
            "regarding": {"kind": "Pod", "name": "web-1", "namespace": "d", "uid": "u1"},
            "reason": "Scheduled", "type": "Normal", "deprecatedSource": {"component": "scheduler"},
            "reportingController": "default-scheduler"
        });
        for event in [&core, &events_api] {
            for selector in [
                "involvedObject.name=web-1,involvedObject.kind=Pod",
                "regarding.name=web-1,regarding.uid=u1",
                "reason=Scheduled,type=Normal",
                "source=scheduler",
                "reportingComponent=default-scheduler",
                "reportingController=default-scheduler",
                "involvedObject.fieldPath=",
                "involvedObject.name!=web-2",
            ] {
                assert!(field_matches(selector, event), "{selector} on {event}");
            }
            assert!(!field_matches("involvedObject.name=web-2", event));
        }
        let selector = FieldSelector::parse("regarding.name=web-1").unwrap();
        assert_eq!(
            selector.required_value("involvedObject.name"),
            Some("web-1")
        );
    }
}
