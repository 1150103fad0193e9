//! Request attributes as upstream's `authorizer.Attributes`: who asks, the verb, and the
//! resource (group, resource, subresource, namespace, name) or non-resource path.

use crate::authn::User;
use crate::request::{Query, Target};

/// What a request asks to do, as RBAC sees it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Attributes {
    /// `get`, `list`, ..., `impersonate`, `bind`, `escalate`; for non-resource requests
    /// the lower-cased HTTP method.
    pub verb: String,
    /// Whether the request is for a resource (otherwise for `path`).
    pub resource_request: bool,
    /// The non-resource path.
    pub path: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

impl Attributes {
    /// The attributes of a request for `target`, as upstream's `RequestInfoFactory`
    /// produces them (a list or watch filtered on `metadata.name` names that object).
    pub fn of_request(method: &http::Method, path: &str, query: &Query, target: &Target) -> Self {
        match target {
            Target::Resource(rr) => {
                let mut name = rr.name.clone().unwrap_or_default();
                if name.is_empty() && matches!(rr.verb.as_str(), "list" | "watch") {
                    if let Some(selected) = query
                        .get("fieldSelector")
                        .and_then(|s| crate::selector::FieldSelector::parse(s).ok())
                        .and_then(|s| s.required_value("metadata.name").map(str::to_owned))
                    {
                        name = selected;
                    }
                }
                Attributes {
                    verb: rr.verb.as_str().to_owned(),
                    resource_request: true,
                    path: path.to_owned(),
                    group: rr.group.clone(),
                    version: rr.version.clone(),
                    resource: rr.resource.clone(),
                    subresource: rr.subresource.clone().unwrap_or_default(),
                    namespace: rr.namespace.clone().unwrap_or_default(),
                    name,
                }
            }
            _ => Attributes::non_resource(&method.as_str().to_ascii_lowercase(), path),
        }
    }

    /// A request for a non-resource `path`.
    pub fn non_resource(verb: &str, path: &str) -> Self {
        Attributes {
            verb: verb.to_owned(),
            path: path.to_owned(),
            ..Default::default()
        }
    }

    /// A request for `resource` of `group` (set `subresource` on the result for one).
    pub fn resource(verb: &str, group: &str, resource: &str, namespace: &str, name: &str) -> Self {
        Attributes {
            verb: verb.to_owned(),
            resource_request: true,
            group: group.to_owned(),
            resource: resource.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            ..Default::default()
        }
    }

    /// Upstream's `forbiddenMessage`: what `user` may not do.
    pub fn forbidden_message(&self, user: &User) -> String {
        let who = &user.name;
        if !self.resource_request {
            return format!("User {who:?} cannot {} path {:?}", self.verb, self.path);
        }
        let mut resource = self.resource.clone();
        if !self.subresource.is_empty() {
            resource = format!("{resource}/{}", self.subresource);
        }
        if self.namespace.is_empty() {
            format!(
                "User {who:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
                self.verb, self.group
            )
        } else {
            format!(
                "User {who:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
                self.verb, self.group, self.namespace
            )
        }
    }
}
