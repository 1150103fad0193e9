//! The review APIs: `authorization.k8s.io/v1` SelfSubjectAccessReview,
//! SubjectAccessReview, LocalSubjectAccessReview and SelfSubjectRulesReview, and
//! `authentication.k8s.io` SelfSubjectReview. They are create-only and stored nowhere:
//! the answer is the request with its `status` filled in, as upstream's REST storage of
//! these kinds does.

use super::rbac;
use super::Attributes;
use crate::authn::User;
use crate::controlplane::ControlPlane;
use crate::http::{self as h, ApiRequest, Body};
use crate::request::{ResourceRequest, Verb};
use crate::status::{ApiError, Cause};
use http::{Response, StatusCode};
use serde_json::{json, Value};

const AUTHORIZATION: &str = "authorization.k8s.io";
const AUTHENTICATION: &str = "authentication.k8s.io";

/// Whether `rr` is for one of the review resources.
pub fn is_review(rr: &ResourceRequest) -> bool {
    match rr.group.as_str() {
        AUTHORIZATION => matches!(
            rr.resource.as_str(),
            "selfsubjectaccessreviews"
                | "subjectaccessreviews"
                | "localsubjectaccessreviews"
                | "selfsubjectrulesreviews"
        ),
        AUTHENTICATION => matches!(rr.resource.as_str(), "selfsubjectreviews" | "tokenreviews"),
        _ => false,
    }
}

/// Answers a request for a review resource, made by `user`.
pub async fn handle(
    cp: &ControlPlane,
    user: &User,
    rr: &ResourceRequest,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let def = cp
        .registry()
        .lookup(&rr.group, &rr.version, &rr.resource)
        .ok_or_else(ApiError::path_not_found)?;
    if rr.name.is_some() || rr.subresource.is_some() || def.namespaced != rr.namespace.is_some() {
        return Err(ApiError::path_not_found());
    }
    if rr.verb != Verb::Create {
        return Err(ApiError::method_not_allowed(
            rr.verb.as_str(),
            &def.group_resource(),
        ));
    }
    let mut review = body(req, &def.api_version(), &def.kind)?;
    let status = match rr.resource.as_str() {
        "selfsubjectaccessreviews" => {
            let attrs = access_attributes(&review, &def.kind, true)?;
            access_status(cp, user, &attrs).await?
        }
        "subjectaccessreviews" => {
            let subject = subject(&review, &def.kind)?;
            let attrs = access_attributes(&review, &def.kind, true)?;
            access_status(cp, &subject, &attrs).await?
        }
        "localsubjectaccessreviews" => {
            let namespace = rr.namespace.as_deref().unwrap_or_default();
            local_namespace(&mut review, namespace)?;
            let subject = subject(&review, &def.kind)?;
            let attrs = access_attributes(&review, &def.kind, false)?;
            if attrs.namespace != namespace {
                return Err(ApiError::bad_request(format!(
                    "spec.resourceAttributes.namespace must match namespace: {namespace}"
                )));
            }
            access_status(cp, &subject, &attrs).await?
        }
        "selfsubjectrulesreviews" => {
            let namespace = review["spec"]["namespace"].as_str().unwrap_or_default();
            rules_status(cp, user, namespace).await?
        }
        "tokenreviews" => crate::sa_tokens::review_status(cp, &review).await?,
        _ => json!({"userInfo": user_info(user)}),
    };
    review["status"] = status;
    Ok(h::json(StatusCode::CREATED, &review))
}

/// The request body as an object of `kind` (JSON or protobuf); an empty body is an empty
/// review (kubectl's `auth whoami` sends nothing else).
pub(crate) fn body(req: &ApiRequest, api_version: &str, kind: &str) -> Result<Value, ApiError> {
    let mut object: Value = if req.body.is_empty() {
        json!({})
    } else {
        match req.content_type() {
            "" | "application/json" => serde_json::from_slice(&req.body).map_err(|e| {
                ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
            })?,
            crate::protobuf::CONTENT_TYPE => {
                crate::protobuf::decode_request(&req.body, api_version, kind)?
            }
            other => return Err(ApiError::unknown_body_format(other)),
        }
    };
    if !object.is_object() {
        return Err(ApiError::body_not_an_object());
    }
    let given_kind = object["kind"].as_str().unwrap_or_default();
    if !given_kind.is_empty() && given_kind != kind {
        return Err(ApiError::bad_request(format!(
            "{given_kind} is not suitable for converting to {kind}"
        )));
    }
    object["kind"] = json!(kind);
    object["apiVersion"] = json!(api_version);
    if !object["metadata"].is_object() {
        object["metadata"] = json!({"creationTimestamp": null});
    }
    Ok(object)
}

fn invalid(kind: &str, field: &str, message: &str) -> ApiError {
    ApiError::invalid(
        AUTHORIZATION,
        kind,
        "",
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message: message.into(),
            field: field.into(),
        }],
    )
}

/// The attributes a review asks about (`spec.resourceAttributes` or
/// `spec.nonResourceAttributes`, exactly one of them).
fn access_attributes(
    review: &Value,
    kind: &str,
    non_resource_allowed: bool,
) -> Result<Attributes, ApiError> {
    let spec = &review["spec"];
    let resource = spec["resourceAttributes"].as_object();
    let non_resource = spec["nonResourceAttributes"].as_object();
    let text = |map: &serde_json::Map<String, Value>, key: &str| {
        map.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match (resource, non_resource) {
        (Some(r), None) => Ok(Attributes {
            verb: text(r, "verb"),
            resource_request: true,
            path: String::new(),
            group: text(r, "group"),
            version: text(r, "version"),
            resource: text(r, "resource"),
            subresource: text(r, "subresource"),
            namespace: text(r, "namespace"),
            name: text(r, "name"),
        }),
        (None, Some(n)) if non_resource_allowed => {
            Ok(Attributes::non_resource(&text(n, "verb"), &text(n, "path")))
        }
        (None, Some(_)) => Err(invalid(
            kind,
            "spec.nonResourceAttributes",
            "Invalid value: \"null\": disallowed on this kind of request",
        )),
        (Some(_), Some(_)) => Err(invalid(
            kind,
            "spec.nonResourceAttributes",
            "Invalid value: \"null\": cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => Err(invalid(
            kind,
            "spec.resourceAttributes",
            "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
    }
}

/// A LocalSubjectAccessReview's namespace: `metadata.namespace` defaults to the path's and
/// must equal it.
fn local_namespace(review: &mut Value, namespace: &str) -> Result<(), ApiError> {
    let given = crate::object::meta_str(review, "namespace")
        .unwrap_or_default()
        .to_owned();
    if given.is_empty() {
        review["metadata"]["namespace"] = json!(namespace);
    } else if given != namespace {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// The user a SubjectAccessReview asks about (`spec.user`, `spec.groups`, `spec.uid`).
fn subject(review: &Value, kind: &str) -> Result<User, ApiError> {
    let spec = &review["spec"];
    let name = spec["user"].as_str().unwrap_or_default().to_owned();
    let groups: Vec<String> = spec["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_str().map(str::to_owned))
        .collect();
    if name.is_empty() && groups.is_empty() {
        return Err(invalid(
            kind,
            "spec.user",
            "Invalid value: \"\": at least one of user or group must be specified",
        ));
    }
    Ok(User {
        name,
        uid: spec["uid"].as_str().unwrap_or_default().to_owned(),
        groups,
        ..Default::default()
    })
}

/// `SubjectAccessReviewStatus` of a decision.
async fn access_status(
    cp: &ControlPlane,
    user: &User,
    attrs: &Attributes,
) -> Result<Value, ApiError> {
    let decision = super::authorize(cp, user, attrs).await?;
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    Ok(status)
}

/// `SubjectRulesReviewStatus`: the rules `user` holds in `namespace`.
async fn rules_status(cp: &ControlPlane, user: &User, namespace: &str) -> Result<Value, ApiError> {
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    if user.groups.iter().any(|g| g == rbac::MASTERS) {
        resource_rules.push(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
        non_resource_rules.push(json!({"verbs": ["*"], "nonResourceURLs": ["*"]}));
    }
    let (grants, errors) = rbac::grants(cp, user, namespace).await?;
    for rule in grants.iter().flat_map(|g| g.rules.iter()) {
        let field = |key: &str| rule.get(key).cloned().unwrap_or(json!([]));
        let has = |key: &str| rule[key].as_array().is_some_and(|a| !a.is_empty());
        if has("resources") {
            let mut r = json!({"verbs": field("verbs"), "apiGroups": field("apiGroups"), "resources": field("resources")});
            if has("resourceNames") {
                r["resourceNames"] = field("resourceNames");
            }
            resource_rules.push(r);
        }
        if has("nonResourceURLs") {
            non_resource_rules.push(
                json!({"verbs": field("verbs"), "nonResourceURLs": field("nonResourceURLs")}),
            );
        }
    }
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": !errors.is_empty(),
    });
    if !errors.is_empty() {
        status["evaluationError"] = json!(errors.join(", "));
    }
    Ok(status)
}

/// `UserInfo` of a user.
pub(crate) fn user_info(user: &User) -> Value {
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    info
}
