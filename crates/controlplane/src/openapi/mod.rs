//! OpenAPI publication: `/openapi/v3` (a root listing one OpenAPI 3.0 document per
//! group-version) and `/openapi/v2` (one Swagger 2.0 document, as JSON or as gnostic's
//! protobuf), which kubectl reads to validate manifests (it looks for the `fieldValidation`
//! parameter and then lets the server validate), to explain fields and to build patches.
//!
//! Documents are built lazily from [`crate::schema::builtin`] and the control plane's
//! [`ResourceRegistry`]; those of built-in resources are the same for every control plane and
//! built once per process, so an idle control plane costs nothing. Custom resources take their
//! schema from a [`CustomSchemas`] source (the CustomResourceDefinition's `openAPIV3Schema`).
//!
//! Parts: `definitions` (the published schemas), `paths` (operations per resource), `v3`,
//! `v2` and `protobuf` (v2's wire form).

pub mod definitions;
pub mod paths;
pub mod protobuf;
pub mod v2;
pub mod v3;

use crate::http::{self as h, ApiRequest, Body};
use crate::registry::{ResourceDef, ResourceRegistry};
use crate::status::ApiError;
use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG, EXPIRES, LOCATION, VARY};
use http::{Response, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha512};
use std::sync::Arc;

/// The schema of a custom resource's version (its CRD's `openAPIV3Schema`), if it has one.
/// Resources without one are published as objects that keep unknown fields.
pub type CustomSchemas<'a> = &'a dyn Fn(&ResourceDef) -> Option<Value>;

/// The media type of the v2 protobuf document, as kubectl asks for it.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The same as older clients spell it, and the `Content-Type` of the answer (client-go parses
/// it with Go's `mime`, which refuses the `@`).
pub const V2_PROTOBUF_LEGACY: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// A serialized document and its content hash (uppercase hex SHA-512, as kube-openapi's).
#[derive(Debug)]
pub struct Published {
    pub json: Bytes,
    pub hash: String,
    /// The protobuf form and its hash (v2 only).
    pub protobuf: Option<(Bytes, String)>,
}

impl Published {
    fn json(document: &Value) -> Self {
        let json = Bytes::from(serde_json::to_vec(document).unwrap_or_default());
        Published {
            hash: hash(&json),
            json,
            protobuf: None,
        }
    }

    fn with_protobuf(document: &Value) -> Self {
        let proto = Bytes::from(protobuf::encode(document));
        Published {
            protobuf: Some((proto.clone(), hash(&proto))),
            ..Self::json(document)
        }
    }
}

fn hash(bytes: &[u8]) -> String {
    Sha512::digest(bytes)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// Every group-version of `registry`: the core group's `v1` first, then the named groups.
pub fn group_versions(registry: &ResourceRegistry) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if !registry.resources("", "v1").is_empty() {
        out.push((String::new(), "v1".to_owned()));
    }
    for (group, versions) in registry.groups() {
        out.extend(versions.into_iter().map(|v| (group.clone(), v)));
    }
    out
}

/// What identifies a set of resources' documents: two registries with the same fingerprint
/// publish the same built-in documents.
fn fingerprint(resources: &[Arc<ResourceDef>]) -> String {
    resources
        .iter()
        .map(|r| {
            format!(
                "{}/{}/{}:{}:{}:{}",
                r.group,
                r.version,
                r.plural,
                r.kind,
                r.verbs.join(","),
                r.subresources.join(",")
            )
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Answers `/openapi/...` (`path` relative to the control plane).
pub fn serve(
    registry: &ResourceRegistry,
    req: &ApiRequest,
    path: &str,
    custom: CustomSchemas<'_>,
) -> Response<Body> {
    let accept = req.header("accept").unwrap_or("*/*");
    match path.trim_end_matches('/') {
        "/openapi/v3" => {
            let root = Published::json(&v3::root(registry, custom));
            cached(req, &root.json, &root.hash, "application/json")
        }
        "/openapi/v2" => {
            let Some(protobuf) = negotiate(accept, true) else {
                return not_acceptable(accept);
            };
            let document = v2::document(registry, custom);
            match (protobuf, &document.protobuf) {
                (true, Some((bytes, hash))) => cached(req, bytes, hash, V2_PROTOBUF_LEGACY),
                _ => cached(req, &document.json, &document.hash, "application/json"),
            }
        }
        other => {
            let Some(rest) = other.strip_prefix("/openapi/v3/") else {
                return h::error(&ApiError::path_not_found());
            };
            let (group, version) = match rest.split('/').collect::<Vec<_>>().as_slice() {
                ["api", version] => (String::new(), (*version).to_owned()),
                ["apis", group, version] => ((*group).to_owned(), (*version).to_owned()),
                _ => return h::error(&ApiError::path_not_found()),
            };
            if negotiate(accept, false).is_none() {
                return not_acceptable(accept);
            }
            let Some(document) = v3::group_version(registry, &group, &version, custom) else {
                return h::error(&ApiError::path_not_found());
            };
            group_version_response(req, &document, &version)
        }
    }
}

/// A group-version document. Asked for by another hash than the current one, it redirects to
/// the current URL; asked for by its hash, it may be cached for good, as kube-apiserver says.
fn group_version_response(req: &ApiRequest, document: &Published, version: &str) -> Response<Body> {
    match req.query.get("hash") {
        Some(hash) if !hash.is_empty() && hash != document.hash => {
            let mut response = Response::new(h::full(Vec::new()));
            *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
            // Relative to the request's own URL, so a tenant's path prefix stays.
            if let Ok(location) =
                HeaderValue::from_str(&format!("{version}?hash={}", document.hash))
            {
                response.headers_mut().insert(LOCATION, location);
            }
            response
        }
        Some(hash) if !hash.is_empty() => {
            let mut response = cached(req, &document.json, &document.hash, "application/json");
            let headers = response.headers_mut();
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("public, immutable"));
            if let Ok(expires) = HeaderValue::from_str(&a_year_from_now()) {
                headers.insert(EXPIRES, expires);
            }
            response
        }
        _ => cached(req, &document.json, &document.hash, "application/json"),
    }
}

/// An HTTP date a year from now (kube-openapi's `Expires` of hashed documents).
fn a_year_from_now() -> String {
    let later = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * 365))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    later.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// `body` with its `ETag`, or `304 Not Modified` when `If-None-Match` names it.
fn cached(
    req: &ApiRequest,
    body: &Bytes,
    hash: &str,
    content_type: &'static str,
) -> Response<Body> {
    let etag = format!("\"{hash}\"");
    let unchanged = req.header("if-none-match").is_some_and(|tags| {
        tags.split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
    });
    let mut response = if unchanged {
        let mut response = Response::new(h::full(Vec::new()));
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        let mut response = Response::new(h::full(body.clone()));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(ETAG, etag);
    }
    headers.insert(VARY, HeaderValue::from_static("Accept"));
    response
}

/// Whether the client wants protobuf (`Some(true)`), JSON (`Some(false)`), or neither; the
/// first acceptable media type of the `Accept` header wins.
fn negotiate(accept: &str, protobuf_served: bool) -> Option<bool> {
    accept
        .split(',')
        .find_map(|item| match item.split(';').next().unwrap_or("").trim() {
            V2_PROTOBUF | V2_PROTOBUF_LEGACY if protobuf_served => Some(true),
            "application/json" | "application/*" | "*/*" | "" => Some(false),
            _ => None,
        })
}

fn not_acceptable(accept: &str) -> Response<Body> {
    h::error(&ApiError::not_acceptable(format!(
        "only the following media types are accepted: application/json, {V2_PROTOBUF} (asked for {accept})"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Query;
    use http::{HeaderMap, Method};

    fn request(path: &str, query: &str, headers: &[(&'static str, &str)]) -> ApiRequest {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        ApiRequest {
            method: Method::GET,
            path: path.into(),
            query: Query::parse(Some(query)),
            headers: map,
            body: Bytes::new(),
            peer_certs: Arc::default(),
        }
    }

    fn answer(path: &str, query: &str, headers: &[(&'static str, &str)]) -> Response<Body> {
        let registry = ResourceRegistry::builtin();
        serve(&registry, &request(path, query, headers), path, &|_| None)
    }

    #[test]
    fn hashed_documents_are_immutable_and_other_hashes_redirect() {
        let registry = ResourceRegistry::builtin();
        let hash = v3::group_version(&registry, "apps", "v1", &|_| None)
            .unwrap()
            .hash
            .clone();
        let response = answer("/openapi/v3/apis/apps/v1", &format!("hash={hash}"), &[]);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CACHE_CONTROL], "public, immutable");
        assert_eq!(response.headers()[ETAG], format!("\"{hash}\""));
        assert!(response.headers()[EXPIRES]
            .to_str()
            .unwrap()
            .ends_with("GMT"));
        let response = answer(
            "/openapi/v3/apis/apps/v1",
            &format!("hash={hash}"),
            &[("if-none-match", &format!("\"{hash}\""))],
        );
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        let response = answer("/openapi/v3/apis/apps/v1", "hash=OLD", &[]);
        assert_eq!(response.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(response.headers()[LOCATION], format!("v1?hash={hash}"));
        let response = answer("/openapi/v3/apis/apps/v1", "", &[]);
        assert!(response.headers().get(CACHE_CONTROL).is_none());
    }

    #[test]
    fn unknown_documents_are_not_found() {
        for path in [
            "/openapi/v3/apis/nope/v1",
            "/openapi/v3/api/v2",
            "/openapi/v4",
            "/openapi/v3/x",
        ] {
            assert_eq!(
                answer(path, "", &[]).status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
    }

    #[test]
    fn v2_is_served_as_protobuf_or_json() {
        let response = answer("/openapi/v2", "", &[("accept", V2_PROTOBUF)]);
        assert_eq!(response.headers()[CONTENT_TYPE], V2_PROTOBUF_LEGACY);
        let response = answer("/openapi/v2", "", &[("accept", "application/json")]);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let response = answer("/openapi/v2", "", &[("accept", "text/html")]);
        assert_eq!(response.status(), StatusCode::NOT_ACCEPTABLE);
    }
}
