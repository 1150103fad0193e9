//! API errors as `metav1.Status`: upstream's codes, reasons and message templates
//! (`k8s.io/apimachinery/pkg/api/errors`), so clients classify them as they would a real
//! cluster's.

use serde::Serialize;
use std::fmt;

/// A resource named as upstream names it in messages: `configmaps`, `deployments.apps`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupResource {
    /// The API group (`""` for the core group).
    pub group: String,
    /// The plural resource name.
    pub resource: String,
}

impl fmt::Display for GroupResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// One reason a request was invalid, for `details.causes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, ...
    pub reason: String,
    /// What is wrong with the field.
    pub message: String,
    /// The field's path, as `metadata.name` or `spec.containers[0].image`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
struct Details {
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    kind: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    causes: Vec<Cause>,
    #[serde(rename = "retryAfterSeconds", skip_serializing_if = "Option::is_none")]
    retry_after_seconds: Option<u32>,
}

/// An error answered to a client as a `metav1.Status`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    code: u16,
    reason: &'static str,
    message: String,
    details: Option<Box<Details>>,
}

/// Whether a `reason` is upstream's `StatusReasonUnknown`, which it omits.
fn is_empty(reason: &&str) -> bool {
    reason.is_empty()
}

/// The wire form, fields in upstream's order (some clients compare bytes).
#[derive(Serialize)]
struct Status<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: serde_json::Map<String, serde_json::Value>,
    status: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Details>,
    code: u16,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn about(mut self, resource: &GroupResource, name: &str) -> Self {
        self.details = Some(Box::new(Details {
            name: name.to_owned(),
            group: resource.group.clone(),
            kind: resource.resource.clone(),
            ..Default::default()
        }));
        self
    }

    /// 404: `configmaps "x" not found`.
    pub fn not_found(resource: &GroupResource, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{resource} \"{name}\" not found")).about(resource, name)
    }

    /// 404 for a path that names no resource.
    pub fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 409: `configmaps "x" already exists`.
    pub fn already_exists(resource: &GroupResource, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{resource} \"{name}\" already exists"),
        )
        .about(resource, name)
    }

    /// 409: the object changed since the client read it.
    pub fn conflict(resource: &GroupResource, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again"
            ),
        )
        .about(resource, name)
    }

    /// 409 Conflict with a message of the caller's (e.g. a precondition on uid).
    pub fn conflict_because(resource: &GroupResource, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {resource} \"{name}\": {why}"),
        )
        .about(resource, name)
    }

    /// 422: `ConfigMap "x" is invalid: [metadata.name: Required value: ...]`. `kind` is
    /// the Kind (with `.group` for non-core groups), as upstream puts it.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let qualified = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        let listed: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let summary = match listed.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let mut error = Self::new(
            422,
            "Invalid",
            format!("{qualified} \"{name}\" is invalid: {summary}"),
        );
        error.details = Some(Box::new(Details {
            name: name.to_owned(),
            group: group.to_owned(),
            kind: kind.to_owned(),
            causes,
            ..Default::default()
        }));
        error
    }

    /// 400 with a free-text message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 with upstream's message about `user` and the request.
    pub fn forbidden(resource: &GroupResource, name: &str, message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message).about(resource, name)
    }

    /// 405: the resource does not support the verb.
    pub fn method_not_allowed(verb: &str, resource: &GroupResource) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("{verb} is not supported on resources of kind \"{resource}\""),
        )
    }

    /// 405 with a message of its own (a verb refused for a reason other than the kind).
    pub fn method_not_allowed_because(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message.into())
    }

    /// 429: the request would break a limit (a disruption budget), with its causes.
    pub fn too_many_requests(message: impl Into<String>, causes: Vec<Cause>) -> Self {
        let mut error = Self::new(429, "TooManyRequests", message);
        error.details = Some(Box::new(Details {
            causes,
            ..Default::default()
        }));
        error
    }

    /// 406: no acceptable representation.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    /// 415: the body's media type is not one the endpoint decodes.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    /// 415 for an object body in a media type other than JSON, with upstream's message.
    pub fn unknown_body_format(content_type: &str) -> Self {
        Self::unsupported_media_type(format!(
            "the body of the request was in an unknown format ({content_type}) - accepted media types include: application/json"
        ))
    }

    /// 400 for a body that is JSON but not an object.
    pub fn body_not_an_object() -> Self {
        Self::bad_request("the body of the request must be a JSON object")
    }

    /// 410 Expired: the resource version asked for is no longer kept.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 413: the request body is larger than the server accepts.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// 504 for a resource version from the future.
    pub fn too_large_resource_version(requested: i64, current: i64) -> Self {
        let mut error = Self::new(
            504,
            "Timeout",
            format!("Timeout: Too large resource version: {requested}, current: {current}"),
        );
        error.details = Some(Box::new(Details {
            causes: vec![Cause {
                reason: "ResourceVersionTooLarge".into(),
                message: format!("Too large resource version: {requested}, current: {current}"),
                field: String::new(),
            }],
            retry_after_seconds: Some(1),
            ..Default::default()
        }));
        error
    }

    /// 500 with the cause in `details.causes`.
    pub fn internal(cause: impl fmt::Display) -> Self {
        let message = cause.to_string();
        let mut error = Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        );
        error.details = Some(Box::new(Details {
            causes: vec![Cause {
                reason: String::new(),
                message,
                field: String::new(),
            }],
            ..Default::default()
        }));
        error
    }

    /// 500 with an empty reason (upstream's `StatusReasonUnknown`): how upstream answers
    /// an error that is not an API status (e.g. most strategic merge patch errors).
    pub fn unknown(message: impl Into<String>) -> Self {
        Self::new(500, "", message)
    }

    /// 422 as upstream's `NewGenericServerResponse` builds it: a fixed message, the
    /// specific one in a cause of type `UnexpectedServerResponse`.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        let mut error = Self::new(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
        );
        error.details = Some(Box::new(Details {
            causes: vec![Cause {
                reason: "UnexpectedServerResponse".into(),
                message: message.into(),
                field: String::new(),
            }],
            ..Default::default()
        }));
        error
    }

    /// 409 for a server-side apply that would change fields other managers own
    /// (upstream's `NewApplyConflict`: the causes name the fields and their managers).
    pub fn apply_conflict(message: impl Into<String>, causes: Vec<Cause>) -> Self {
        let mut error = Self::new(409, "Conflict", message);
        error.details = Some(Box::new(Details {
            causes,
            ..Default::default()
        }));
        error
    }

    /// 503: the store cannot serve.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The `reason` (`NotFound`, `Conflict`, ...).
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `metav1.Status` object (`kind: Status`), as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.status()).unwrap_or_default()
    }

    /// The `metav1.Status` body, serialised as upstream does (with a trailing newline).
    pub fn to_body(&self) -> Vec<u8> {
        let mut body = serde_json::to_vec(&self.status()).unwrap_or_default();
        body.push(b'\n');
        body
    }

    fn status(&self) -> Status<'_> {
        Status {
            kind: "Status",
            api_version: "v1",
            metadata: serde_json::Map::new(),
            status: "Failure",
            message: &self.message,
            reason: self.reason,
            details: self.details.as_deref(),
            code: self.code,
        }
    }
}

/// A store failure as the API reports it, for the object `name` of `resource`.
pub(crate) fn from_store(
    error: kflex_storage_backends::StoreError,
    resource: &GroupResource,
    name: &str,
) -> ApiError {
    use kflex_storage_backends::StoreError as E;
    match error {
        E::AlreadyExists { .. } => ApiError::already_exists(resource, name),
        E::Conflict { current: None, .. } | E::NotFound { .. } => {
            ApiError::not_found(resource, name)
        }
        E::Conflict { .. } => ApiError::conflict(resource, name),
        E::Compacted {
            requested,
            compacted,
        } => ApiError::expired(format!(
            "too old resource version: {requested} ({compacted})"
        )),
        E::FutureRevision { requested, current } => {
            ApiError::too_large_resource_version(requested, current)
        }
        E::WatchLagged(_) => ApiError::expired("the watch fell behind; list again"),
        E::InvalidInput(message) => ApiError::bad_request(message),
        E::Unavailable { .. } => ApiError::unavailable(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm() -> GroupResource {
        GroupResource {
            group: String::new(),
            resource: "configmaps".into(),
        }
    }

    #[test]
    fn already_exists_is_byte_for_byte_upstream() {
        let apiservices = GroupResource {
            group: "apiregistration.k8s.io".into(),
            resource: "apiservices".into(),
        };
        let body = ApiError::already_exists(&apiservices, "v1alpha1.wardle.k8s.io").to_body();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\
             \"message\":\"apiservices.apiregistration.k8s.io \\\"v1alpha1.wardle.k8s.io\\\" already exists\",\
             \"reason\":\"AlreadyExists\",\"details\":{\"name\":\"v1alpha1.wardle.k8s.io\",\
             \"group\":\"apiregistration.k8s.io\",\"kind\":\"apiservices\"},\"code\":409}\n"
        );
    }

    #[test]
    fn messages_follow_upstream_templates() {
        assert_eq!(
            ApiError::not_found(&cm(), "x").message(),
            "configmaps \"x\" not found"
        );
        assert!(ApiError::conflict(&cm(), "x")
            .message()
            .starts_with("Operation cannot be fulfilled on configmaps \"x\""));
        let invalid = ApiError::invalid(
            "",
            "ConfigMap",
            "x",
            vec![Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: "metadata.name".into(),
            }],
        );
        assert_eq!(
            invalid.message(),
            "ConfigMap \"x\" is invalid: metadata.name: Required value"
        );
        assert_eq!(invalid.code(), 422);
    }
}
