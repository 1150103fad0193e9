//! What a request asks for, read from its method, path and query as kube-apiserver's
//! `RequestInfoFactory` reads them: discovery, a collection, an object, a subresource.

use crate::status::ApiError;
use std::collections::HashMap;

/// The verbs of resource requests, as RBAC names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    /// The verb's RBAC name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// A request for a resource: `/api/v1/namespaces/ns/pods/name/status` and its kin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceRequest {
    pub verb: Verb,
    /// `""` for the core group.
    pub group: String,
    pub version: String,
    /// The namespace from the path (`None` for cluster-scoped and all-namespaces paths).
    pub namespace: Option<String>,
    /// The plural resource name.
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Every kind of request the API answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `/api`: the core group's versions.
    CoreGroup,
    /// `/apis`: the named groups.
    Groups,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1`, `/apis/<group>/<version>`: the resources of a group-version.
    GroupVersion { group: String, version: String },
    /// A resource request.
    Resource(ResourceRequest),
    /// `/version`.
    Version,
    /// `/metrics`.
    Metrics,
    /// `/healthz`, `/livez`, `/readyz` (and their sub-checks).
    Health,
    /// `/openapi/...`.
    OpenApi(String),
    /// Anything else.
    Other(String),
}

/// A request's query parameters (a repeated key keeps its first value).
#[derive(Clone, Debug, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// Parses a raw query string; tolerates empty components (`?&watch=true`).
    pub fn parse(raw: Option<&str>) -> Self {
        let mut map = HashMap::new();
        for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            map.entry(decode(key)).or_insert_with(|| decode(value));
        }
        Query(map)
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A boolean parameter: `true`/`1` (as upstream's conversion accepts).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | "True" | "TRUE"))
    }

    /// A numeric parameter; `Err` when present but not a number.
    pub fn number(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(value) => value
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid value for {key}: {value:?}"))),
        }
    }
}

/// Percent-decoding of a query component (`+` is a space).
fn decode(component: &str) -> String {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

/// Subresources of a namespace object (`namespaces/<ns>/status`), which upstream reads as
/// subresources rather than as a resource inside the namespace.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// Reads what a request targets from its method, path and query.
pub fn parse(method: &http::Method, path: &str, query: &Query) -> Result<Target, ApiError> {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let (group, version, rest) = match parts.as_slice() {
        [] => return Ok(Target::Other(path.to_owned())),
        ["api"] => return Ok(Target::CoreGroup),
        ["apis"] => return Ok(Target::Groups),
        ["apis", group] => return Ok(Target::Group((*group).to_owned())),
        ["version"] => return Ok(Target::Version),
        ["metrics"] => return Ok(Target::Metrics),
        ["healthz" | "livez" | "readyz", ..] => return Ok(Target::Health),
        ["openapi", ..] => return Ok(Target::OpenApi(path.to_owned())),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Ok(Target::Other(path.to_owned())),
    };
    if rest.is_empty() {
        return Ok(Target::GroupVersion {
            group: group.to_owned(),
            version: version.to_owned(),
        });
    }
    let (namespace, rest) = match rest {
        ["namespaces", ns, sub, ..] if !NAMESPACE_SUBRESOURCES.contains(sub) => {
            (Some((*ns).to_owned()), &rest[2..])
        }
        ["namespaces", ns, ..] => (Some((*ns).to_owned()), rest),
        _ => (None, rest),
    };
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, subresource] => (*resource, Some(*name), Some(*subresource)),
        _ => return Err(ApiError::path_not_found()),
    };
    let verb = match (method.as_str(), name) {
        ("GET" | "HEAD", _) if query.flag("watch") => Verb::Watch,
        ("GET" | "HEAD", Some(_)) => Verb::Get,
        ("GET" | "HEAD", None) => Verb::List,
        ("POST", _) => Verb::Create,
        ("PUT", _) => Verb::Update,
        ("PATCH", _) => Verb::Patch,
        ("DELETE", Some(_)) => Verb::Delete,
        ("DELETE", None) => Verb::DeleteCollection,
        (other, _) => {
            return Err(ApiError::method_not_allowed(
                other,
                &crate::status::GroupResource {
                    group: group.to_owned(),
                    resource: resource.to_owned(),
                },
            ))
        }
    };
    Ok(Target::Resource(ResourceRequest {
        verb,
        group: group.to_owned(),
        version: version.to_owned(),
        namespace,
        resource: resource.to_owned(),
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn resource(method: Method, path: &str, query: &str) -> ResourceRequest {
        match parse(&method, path, &Query::parse(Some(query))).unwrap() {
            Target::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn namespaced_cluster_and_all_namespaces_paths() {
        let r = resource(Method::GET, "/api/v1/namespaces/default/configmaps/foo", "");
        assert_eq!(
            (
                r.verb,
                r.namespace.as_deref(),
                r.resource.as_str(),
                r.name.as_deref()
            ),
            (Verb::Get, Some("default"), "configmaps", Some("foo"))
        );
        let r = resource(Method::GET, "/apis/apps/v1/deployments", "");
        assert_eq!(
            (r.verb, r.group.as_str(), r.namespace),
            (Verb::List, "apps", None)
        );
        let r = resource(Method::GET, "/api/v1/namespaces/default", "");
        assert_eq!(
            (
                r.resource.as_str(),
                r.name.as_deref(),
                r.namespace.as_deref()
            ),
            ("namespaces", Some("default"), Some("default"))
        );
        let r = resource(Method::PUT, "/api/v1/namespaces/foo/finalize", "");
        assert_eq!(
            (
                r.resource.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("namespaces", Some("foo"), Some("finalize"))
        );
        let r = resource(
            Method::PUT,
            "/apis/apps/v1/namespaces/ns/deployments/d/scale",
            "",
        );
        assert_eq!(
            (r.verb, r.subresource.as_deref()),
            (Verb::Update, Some("scale"))
        );
    }

    #[test]
    fn verbs_follow_method_and_query() {
        assert_eq!(
            resource(
                Method::GET,
                "/api/v1/pods",
                "&watch=true&timeoutSeconds=290"
            )
            .verb,
            Verb::Watch
        );
        assert_eq!(
            resource(Method::GET, "/api/v1/pods", "watch=1").verb,
            Verb::Watch
        );
        assert_eq!(
            resource(Method::DELETE, "/api/v1/namespaces/a/pods", "").verb,
            Verb::DeleteCollection
        );
        assert_eq!(
            resource(Method::POST, "/api/v1/namespaces/a/pods", "").verb,
            Verb::Create
        );
        assert!(parse(&Method::OPTIONS, "/api/v1/pods", &Query::default()).is_err());
    }

    #[test]
    fn queries_are_percent_decoded() {
        let q = Query::parse(Some(
            "fieldSelector=metadata.name%3Ddemo&labelSelector=a+in+(x%2Cy)&bad=%zz&cut=%4",
        ));
        assert_eq!(q.get("fieldSelector"), Some("metadata.name=demo"));
        assert_eq!(q.get("labelSelector"), Some("a in (x,y)"));
        assert_eq!(q.get("bad"), Some("%zz"));
        assert_eq!(q.get("cut"), Some("%4"));
    }

    #[test]
    fn paths_too_deep_are_not_found() {
        assert!(parse(
            &Method::GET,
            "/api/v1/namespaces/a/pods/b/c/d",
            &Query::default()
        )
        .is_err());
    }
}
