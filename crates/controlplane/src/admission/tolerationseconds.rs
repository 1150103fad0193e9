//! Upstream's DefaultTolerationSeconds: a Pod that does not tolerate the
//! `node.kubernetes.io/not-ready` and `node.kubernetes.io/unreachable` `NoExecute` taints gets
//! tolerations for them of 300 seconds, so that it is evicted five minutes after its node
//! is lost rather than at once (kube-apiserver's default of both flags).

use serde_json::{json, Value};

/// The taint of a node that is not ready.
const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint of a node the node controller cannot reach.
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// How long a Pod stays bound to such a node (`--default-*-toleration-seconds`).
const SECONDS: i64 = 300;

/// Adds the missing tolerations to a Pod being created or updated. A toleration covers a
/// taint when its key is the taint's or empty and its effect `NoExecute` or empty, as
/// upstream judges it.
pub(super) fn admit(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let tolerates = |list: &Value, taint: &str| {
        list.as_array().into_iter().flatten().any(|t| {
            let key = t["key"].as_str().unwrap_or("");
            let effect = t["effect"].as_str().unwrap_or("");
            (key == taint || key.is_empty()) && (effect == "NoExecute" || effect.is_empty())
        })
    };
    let list = spec.entry("tolerations").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    let missing: Vec<&str> = [NOT_READY, UNREACHABLE]
        .into_iter()
        .filter(|taint| !tolerates(list, taint))
        .collect();
    if let Some(list) = list.as_array_mut() {
        list.extend(missing.into_iter().map(|key| {
            json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": SECONDS})
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pod: &Value) -> Vec<(String, Value)> {
        pod["spec"]["tolerations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["key"].as_str().unwrap_or("").to_owned(),
                    t["tolerationSeconds"].clone(),
                )
            })
            .collect()
    }

    #[test]
    fn adds_what_the_pod_does_not_tolerate() {
        let mut pod = json!({"spec": {"containers": []}});
        admit(&mut pod);
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
        // Admitting again changes nothing (an update of a created pod).
        let before = pod.clone();
        admit(&mut pod);
        assert_eq!(pod, before);

        let mut own = json!({"spec": {"tolerations": [
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
            {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"},
        ]}});
        admit(&mut own);
        assert_eq!(
            keys(&own),
            [
                (UNREACHABLE.to_owned(), json!(60)),
                ("dedicated".to_owned(), Value::Null),
                (NOT_READY.to_owned(), json!(300)),
            ]
        );
        // An empty key and effect tolerates every taint: nothing is added.
        let mut everything = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        admit(&mut everything);
        assert_eq!(
            everything["spec"]["tolerations"].as_array().unwrap().len(),
            1
        );
        // A NoSchedule toleration of the taint's key does not cover NoExecute.
        let mut no_schedule = json!({"spec": {"tolerations": [{"key": NOT_READY, "operator": "Exists", "effect": "NoSchedule"}]}});
        admit(&mut no_schedule);
        assert_eq!(
            no_schedule["spec"]["tolerations"].as_array().unwrap().len(),
            3
        );
    }
}
