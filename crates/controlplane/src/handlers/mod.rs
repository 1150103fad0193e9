//! Resource handlers, one file per family of verbs, kube-apiserver's REST semantics over a
//! [`Store`](kflex_storage_backends::Store): objects are JSON under kube-apiserver's keys,
//! and `metadata.resourceVersion` is the store revision of an object's last write.

mod apply;
mod delete;
mod pods;
mod read;
mod scale;
mod watch;
mod write;

use crate::controlplane::ControlPlane;
use crate::http::{ApiRequest, Body};
use crate::registry::ResourceDef;
use crate::representation::Representation;
use crate::request::{ResourceRequest, Verb};
use crate::status::{self, ApiError};
use bytes::Bytes;
use http::Response;
use kflex_storage_backends::KeyValue;
use serde_json::Value;
use std::sync::Arc;

/// One resource request on its way through a handler.
pub(crate) struct Call<'a> {
    pub cp: &'a ControlPlane,
    pub def: Arc<ResourceDef>,
    pub rr: ResourceRequest,
    pub req: ApiRequest,
    /// The form reads are answered in (writes answer the object itself).
    pub representation: Representation,
    /// `Warning` headers to send with the answer.
    pub warnings: Arc<std::sync::Mutex<Vec<String>>>,
}

/// Serves a resource request.
pub(crate) async fn handle(
    cp: &ControlPlane,
    rr: ResourceRequest,
    req: ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let def = cp
        .registry()
        .lookup(&rr.group, &rr.version, &rr.resource)
        .ok_or_else(ApiError::path_not_found)?;
    let is_namespace = def.group.is_empty() && def.plural == "namespaces";
    let cluster_scoped_in_namespace = !def.namespaced && rr.namespace.is_some() && !is_namespace;
    let namespaced_object_without_namespace =
        def.namespaced && rr.namespace.is_none() && rr.name.is_some();
    if cluster_scoped_in_namespace || namespaced_object_without_namespace {
        return Err(ApiError::path_not_found());
    }
    if let Some(sub) = &rr.subresource {
        if !def.subresources.contains(sub) {
            return Err(ApiError::path_not_found());
        }
    }
    if !def.serves(rr.verb.as_str()) {
        return Err(ApiError::method_not_allowed(
            rr.verb.as_str(),
            &def.group_resource(),
        ));
    }
    let accept = req.header("accept");
    let representation = match rr.verb {
        Verb::Get | Verb::List | Verb::Watch => {
            Representation::negotiate(accept, req.query.get("includeObject"))?
        }
        _ if crate::http::accepts_json(accept) => Representation::Object,
        _ => {
            return Err(ApiError::not_acceptable(format!(
                "only the following media types are accepted: application/json (asked for {})",
                accept.unwrap_or_default()
            )))
        }
    };
    let call = Call {
        cp,
        def,
        rr,
        req,
        representation,
        warnings: Arc::default(),
    };
    if let Some(answer) = pods::handle(&call).await {
        return answer;
    }
    let warnings = call.warnings.clone();
    let mut response = match call.rr.verb {
        Verb::Get => read::get(&call).await,
        Verb::List => read::list(&call).await,
        Verb::Watch => watch::watch(call).await,
        Verb::Create => write::create(&call).await,
        Verb::Update => write::update(&call).await,
        Verb::Patch => write::patch(&call).await,
        Verb::Delete => delete::delete(&call).await,
        Verb::DeleteCollection => delete::delete_collection(&call).await,
    }?;
    let warnings = warnings.lock().unwrap_or_else(|p| p.into_inner());
    crate::http::add_warnings(&mut response, &warnings);
    Ok(response)
}

impl Call<'_> {
    /// The object's name from the path.
    fn name(&self) -> &str {
        self.rr.name.as_deref().unwrap_or_default()
    }

    /// The namespace the request applies to (`None` for cluster-scoped resources).
    fn namespace(&self) -> Option<&str> {
        self.rr.namespace.as_deref().filter(|_| self.def.namespaced)
    }

    /// The store key of the object the path names.
    fn key(&self) -> String {
        self.def.key(self.namespace(), self.name())
    }

    /// The object the path names, and its resource version; 404 when it does not exist.
    async fn current(&self) -> Result<(Value, i64), ApiError> {
        let (kv, _) = self
            .cp
            .store()
            .get(self.key().as_bytes(), None)
            .await
            .map_err(|e| self.store_error(e))?;
        let kv = kv.ok_or_else(|| ApiError::not_found(&self.def.group_resource(), self.name()))?;
        Ok((decode(&kv)?, kv.mod_revision))
    }

    /// Every stored value under `prefix`, read at one revision.
    async fn everything_under(
        &self,
        prefix: String,
    ) -> Result<kflex_storage_backends::RangeResponse, ApiError> {
        self.cp
            .store()
            .range(kflex_storage_backends::RangeRequest {
                prefix: prefix.into_bytes(),
                ..Default::default()
            })
            .await
            .map_err(|e| self.store_error(e))
    }

    /// A store error as the API reports it for this request's object.
    fn store_error(&self, error: kflex_storage_backends::StoreError) -> ApiError {
        status::from_store(error, &self.def.group_resource(), self.name())
    }

    /// Sets the warnings to send with the answer (a retried write replaces those of its
    /// earlier attempt).
    fn set_warnings(&self, warnings: Vec<String>) {
        *self.warnings.lock().unwrap_or_else(|p| p.into_inner()) = warnings;
    }

    /// Adds warnings to send with the answer, each once (a retried write finds them again).
    fn add_warnings(&self, warnings: Vec<String>) {
        let mut all = self.warnings.lock().unwrap_or_else(|p| p.into_inner());
        for warning in warnings {
            if !all.contains(&warning) {
                all.push(warning);
            }
        }
    }

    /// Whether the request is a dry run (`dryRun=All`); other values are refused.
    fn dry_run(&self) -> Result<bool, ApiError> {
        match self.req.query.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other:?}: supported values: \"All\""
            ))),
        }
    }
}

/// 422 for list and watch options that may not be combined, as upstream's
/// `ListOptions` validation reports them.
pub(crate) fn forbidden_option(field: &str, message: &str) -> ApiError {
    ApiError::invalid(
        "meta.k8s.io",
        "ListOptions",
        "",
        vec![status::Cause {
            reason: "FieldValueForbidden".into(),
            message: message.into(),
            field: field.into(),
        }],
    )
}

/// A stored value as the object it holds, with its resource version.
pub(crate) fn decode(kv: &KeyValue) -> Result<Value, ApiError> {
    decode_bytes(&kv.value, kv.mod_revision)
}

/// Stored bytes as an object served at `revision`.
pub(crate) fn decode_bytes(value: &Bytes, revision: i64) -> Result<Value, ApiError> {
    let mut object: Value = serde_json::from_slice(value)
        .map_err(|e| ApiError::internal(format!("stored object is not JSON: {e}")))?;
    if !object.is_object() {
        return Err(ApiError::internal("stored value is not an object"));
    }
    crate::object::set_resource_version(&mut object, revision);
    Ok(object)
}

/// An object as the store keeps it: without `metadata.resourceVersion`.
pub(crate) fn encode(object: &Value) -> Bytes {
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    Bytes::from(serde_json::to_vec(&object).unwrap_or_default())
}
