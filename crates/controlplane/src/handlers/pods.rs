//! Pod subresources: `binding` (assign a node), `eviction` (a delete that honours
//! PodDisruptionBudgets), and the kubelet-backed ones (`log`, `exec`, `attach`,
//! `portforward`, `proxy`), which answer at once since kflex runs no kubelets.

use super::{decode, delete, encode, Call};
use crate::http::{json, Body};
use crate::object::meta_str;
use crate::request::Verb;
use crate::selector::LabelSelector;
use crate::status::{ApiError, Cause};
use http::{Response, StatusCode};
use kflex_storage_backends::StoreError;
use serde_json::{json, Value};

/// Serves a pod subresource other than `status`; `None` when `call` is not one.
pub(super) async fn handle(call: &Call<'_>) -> Option<Result<Response<Body>, ApiError>> {
    let is_pod = call.def.group.is_empty() && call.def.plural == "pods";
    let subresource = call.rr.subresource.as_deref().filter(|_| is_pod)?;
    Some(match (subresource, call.rr.verb) {
        ("binding", Verb::Create) => bind(call).await,
        ("eviction", Verb::Create) => evict(call).await,
        ("log" | "exec" | "attach" | "portforward" | "proxy", _) => {
            kubelet(call, subresource).await
        }
        ("status", _) => return None,
        (_, verb) => Err(ApiError::method_not_allowed(
            verb.as_str(),
            &call.def.group_resource(),
        )),
    })
}

fn success(code: StatusCode) -> Response<Body> {
    json(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code.as_u16()}),
    )
}

/// The request body, JSON or protobuf (of `kind` in `api_version`, the subresource's type).
fn body(call: &Call<'_>, api_version: &str, kind: &str) -> Result<Value, ApiError> {
    if call.req.content_type() == crate::protobuf::CONTENT_TYPE {
        return crate::protobuf::decode_request(&call.req.body, api_version, kind);
    }
    serde_json::from_slice(&call.req.body)
        .map_err(|e| ApiError::bad_request(format!("json parse error: {e}")))
}

/// Assigns the pod to the node a `Binding` names, once.
async fn bind(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let binding = body(call, "v1", "Binding")?;
    let target = &binding["target"];
    let node = target["name"].as_str().unwrap_or("");
    if !matches!(target["kind"].as_str(), None | Some("" | "Node")) {
        return Err(ApiError::bad_request("a binding's target must be a Node"));
    }
    if node.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            call.name(),
            vec![Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: "target.name".into(),
            }],
        ));
    }
    loop {
        let (mut pod, revision) = call.current().await?;
        if meta_str(&pod, "deletionTimestamp").is_some() {
            return Err(ApiError::conflict_because(
                &call.def.group_resource(),
                call.name(),
                "pod is being deleted, cannot be assigned to a host",
            ));
        }
        if let Some(assigned) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            return Err(ApiError::conflict_because(
                &call.def.group_resource(),
                call.name(),
                &format!(
                    "pod {} is already assigned to node {assigned:?}",
                    call.name()
                ),
            ));
        }
        pod["spec"]["nodeName"] = json!(node);
        match call
            .cp
            .store()
            .update(call.key().as_bytes(), encode(&pod), revision, None)
            .await
        {
            Ok(_) => return Ok(success(StatusCode::CREATED)),
            Err(StoreError::Conflict {
                current: Some(_), ..
            }) => continue,
            Err(e) => return Err(call.store_error(e)),
        }
    }
}

/// Deletes the pod unless that would break its PodDisruptionBudget, as upstream's
/// eviction REST does: pods not running (pending, finished, or being deleted) are evicted
/// without a budget check; a running pod needs its one matching budget to allow a
/// disruption, which the eviction then uses up.
async fn evict(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let eviction = body(call, "policy/v1", "Eviction")?;
    let options = &eviction["deleteOptions"];
    let (pod, _) = call.current().await?;
    let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
    let running = phase == "Running" && meta_str(&pod, "deletionTimestamp").is_none();
    if running {
        use_disruption_budget(call, &pod).await?;
    }
    let options = delete::DeleteOptions::from_body(options, call.dry_run()?)?;
    delete::delete_object(call, &call.key(), call.name(), &options).await?;
    Ok(success(StatusCode::CREATED))
}

async fn use_disruption_budget(call: &Call<'_>, pod: &Value) -> Result<(), ApiError> {
    let budget_def = call.cp.builtin("policy", "v1", "poddisruptionbudgets")?;
    let budgets = call
        .everything_under(budget_def.collection_prefix(call.namespace()))
        .await?;
    let mut matching = Vec::new();
    for kv in &budgets.kvs {
        let budget = decode(kv)?;
        let selector = super::scale::selector_text(&budget["spec"]["selector"]);
        if selector.is_empty() {
            continue;
        }
        let parsed = LabelSelector::parse(&selector)
            .map_err(|e| ApiError::internal(format!("budget selector: {e}")))?;
        if parsed.matches(pod) {
            matching.push((
                budget,
                kv.mod_revision,
                String::from_utf8_lossy(&kv.key).into_owned(),
            ));
        }
    }
    let (mut budget, revision, key) = match matching.len() {
        0 => return Ok(()),
        1 => matching.remove(0),
        _ => return Err(ApiError::internal("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.")),
    };
    let allowed = budget["status"]["disruptionsAllowed"].as_i64().unwrap_or(0);
    let name = meta_str(&budget, "name").unwrap_or("").to_owned();
    if allowed < 1 {
        let healthy = budget["status"]["currentHealthy"].as_i64().unwrap_or(0);
        let desired = budget["status"]["desiredHealthy"].as_i64().unwrap_or(0);
        return Err(ApiError::too_many_requests(
            "Cannot evict pod as it would violate the pod's disruption budget.",
            vec![Cause {
                reason: "DisruptionBudget".into(),
                message: format!("The disruption budget {name} needs {desired} healthy pods and has {healthy} currently"),
                field: String::new(),
            }],
        ));
    }
    budget["status"]["disruptionsAllowed"] = json!(allowed - 1);
    let gr = budget_def.group_resource();
    call.cp
        .store()
        .update(key.as_bytes(), encode(&budget), revision, None)
        .await
        .map_err(|e| crate::status::from_store(e, &gr, &name))?;
    Ok(())
}

/// The kubelet-backed subresources: upstream's answer for a pod with no node, and for one
/// with a node the error upstream gives when it cannot reach the kubelet (500; not 503,
/// which clients retry), since kflex runs no kubelets.
async fn kubelet(call: &Call<'_>, subresource: &str) -> Result<Response<Body>, ApiError> {
    let (pod, _) = call.current().await?;
    let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {} does not have a host assigned",
            call.name()
        )));
    }
    Err(ApiError::internal(format!(
        "pods/{subresource} for pod {} needs the kubelet of node {node:?}, and this control plane runs no kubelets",
        call.name()
    )))
}
