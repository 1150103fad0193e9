//! The controllers' writes: requests to the control plane's own handlers (past
//! authentication and authorization, through admission), so that finalizers, Service IP
//! release, CRD cleanup and RBAC aggregation happen as for any client's write.

use crate::controlplane::ControlPlane;
use crate::http::ApiRequest;
use crate::registry::ResourceDef;
use crate::request::{Query, ResourceRequest, Verb};
use crate::status::ApiError;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::Value;
use std::sync::Arc;

/// The user agent of the controllers' writes: managed fields name them as upstream's.
const USER_AGENT: &str = "kube-controller-manager/v1.33.0 (linux/amd64) kubernetes/kflex";

/// Where a request goes.
pub(super) struct Target<'a> {
    pub def: &'a ResourceDef,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub subresource: Option<&'a str>,
}

impl Target<'_> {
    fn path(&self) -> String {
        let def = self.def;
        let mut path = if def.group.is_empty() {
            format!("/api/{}", def.version)
        } else {
            format!("/apis/{}/{}", def.group, def.version)
        };
        if let Some(ns) = self.namespace.filter(|_| def.namespaced) {
            path.push_str(&format!("/namespaces/{ns}"));
        }
        path.push('/');
        path.push_str(&def.plural);
        for part in [self.name, self.subresource].into_iter().flatten() {
            path.push('/');
            path.push_str(part);
        }
        path
    }
}

/// Sends `verb` with `body` (JSON) and `query` to `target`; the answer's status is the
/// outcome.
pub(super) async fn send(
    cp: &ControlPlane,
    verb: Verb,
    target: Target<'_>,
    query: &str,
    body: Option<&Value>,
) -> Result<(), ApiError> {
    let method = match verb {
        Verb::Create => Method::POST,
        Verb::Update => Method::PUT,
        Verb::Patch => Method::PATCH,
        Verb::Delete | Verb::DeleteCollection => Method::DELETE,
        Verb::Get | Verb::List | Verb::Watch => Method::GET,
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static(USER_AGENT),
    );
    let rr = ResourceRequest {
        verb,
        group: target.def.group.clone(),
        version: target.def.version.clone(),
        namespace: target.namespace.map(str::to_owned),
        resource: target.def.plural.clone(),
        name: target.name.map(str::to_owned),
        subresource: target.subresource.map(str::to_owned),
    };
    let req = ApiRequest {
        method,
        path: target.path(),
        query: Query::parse(Some(query)),
        headers,
        body: body
            .map(|b| bytes::Bytes::from(serde_json::to_vec(b).unwrap_or_default()))
            .unwrap_or_default(),
        peer_certs: Arc::default(),
    };
    let response = cp.handle_internal(rr, req).await?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(ApiError::internal(format!(
            "{} {} answered {}",
            verb.as_str(),
            target.path(),
            response.status()
        )))
    }
}

/// Deletes `name` (whose uid must be `uid`) with `propagation`; gone already is done.
pub(super) async fn delete(
    cp: &ControlPlane,
    def: &ResourceDef,
    namespace: Option<&str>,
    name: &str,
    uid: &str,
    propagation: &str,
) -> Result<(), ApiError> {
    let options = serde_json::json!({
        "kind": "DeleteOptions", "apiVersion": "v1",
        "preconditions": {"uid": uid},
        "propagationPolicy": propagation,
    });
    let target = Target {
        def,
        namespace,
        name: Some(name),
        subresource: None,
    };
    match send(cp, Verb::Delete, target, "", Some(&options)).await {
        Err(e) if matches!(e.code(), 404 | 409) => Ok(()),
        other => other,
    }
}

/// Replaces `object` (its `resourceVersion` a precondition) at `subresource`.
pub(super) async fn update(
    cp: &ControlPlane,
    def: &ResourceDef,
    object: &Value,
    subresource: Option<&str>,
) -> Result<(), ApiError> {
    let target = Target {
        def,
        namespace: crate::object::meta_str(object, "namespace"),
        name: crate::object::meta_str(object, "name"),
        subresource,
    };
    send(cp, Verb::Update, target, "", Some(object)).await
}

/// Creates `object` in `namespace`; one that exists already is done.
pub(super) async fn create(
    cp: &ControlPlane,
    def: &ResourceDef,
    namespace: Option<&str>,
    object: &Value,
) -> Result<(), ApiError> {
    let target = Target {
        def,
        namespace,
        name: None,
        subresource: None,
    };
    match send(cp, Verb::Create, target, "", Some(object)).await {
        Err(e) if e.code() == 409 => Ok(()),
        other => other,
    }
}
