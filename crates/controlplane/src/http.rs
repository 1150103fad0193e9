//! The HTTP edge of the API: requests as the handlers see them, response bodies (whole or
//! streamed), and JSON and `Status` responses.

use crate::request::Query;
use crate::status::ApiError;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use rustls_pki_types::CertificateDer;
use std::convert::Infallible;
use std::sync::Arc;

/// The largest request body accepted, as kube-apiserver's default.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// A response body: whole, or a stream (watches).
pub type Body = BoxBody<Bytes, Infallible>;

/// A request, routed to one control plane (`path` is relative to it).
#[derive(Debug)]
pub struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub query: Query,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The TLS client certificate chain, if the client sent one.
    pub peer_certs: Arc<Vec<CertificateDer<'static>>>,
}

impl ApiRequest {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The media type of the body, without parameters.
    pub fn content_type(&self) -> &str {
        self.header("content-type")
            .and_then(|v| v.split(';').next())
            .map(str::trim)
            .unwrap_or("")
    }
}

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A streamed body.
pub fn stream(chunks: impl futures::Stream<Item = Bytes> + Send + Sync + 'static) -> Body {
    use futures::StreamExt;
    BodyExt::boxed(StreamBody::new(
        chunks.map(|chunk| Ok(hyper::body::Frame::data(chunk))),
    ))
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    json_with_type(status, value, "application/json")
}

/// A JSON response with a given Content-Type (aggregated discovery echoes parameters).
pub fn json_with_type(
    status: StatusCode,
    value: &serde_json::Value,
    content_type: &'static str,
) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A plain-text response (health checks).
pub fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// An error as a `metav1.Status` response.
pub fn error(error: &ApiError) -> Response<Body> {
    let mut response = Response::new(full(error.to_body()));
    *response.status_mut() =
        StatusCode::from_u16(error.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Adds a `Warning: 299 - "<text>"` header per warning, as kube-apiserver sends them (clients
/// such as kubectl print each as `Warning: <text>`).
pub fn add_warnings(response: &mut Response<Body>, warnings: &[String]) {
    for warning in warnings {
        let escaped = warning.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(value) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            response.headers_mut().append(http::header::WARNING, value);
        }
    }
}

/// Whether the client accepts JSON (`application/json`, `*/*`, or no Accept at all).
/// Clients that also list protobuf or Table forms accept JSON as their fallback.
pub fn accepts_json(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return true };
    accept.split(',').any(|item| {
        let media = item.split(';').next().unwrap_or("").trim();
        matches!(media, "application/json" | "application/*" | "*/*" | "")
    })
}

/// `body`, holding `guard` until the body is dropped (the end of a streamed response).
pub fn with_guard<G: Send + Sync + Unpin + 'static>(body: Body, guard: G) -> Body {
    http_body_util::BodyExt::boxed(Guarded {
        body,
        _guard: guard,
    })
}

struct Guarded<G> {
    body: Body,
    _guard: G,
}

impl<G: Unpin> hyper::body::Body for Guarded<G> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_quoted_and_escaped_as_upstream_sends_them() {
        let mut response = text(StatusCode::OK, "ok");
        add_warnings(
            &mut response,
            &["unknown field \"spec.foo\"".into(), "back\\slash".into()],
        );
        let sent: Vec<&str> = response
            .headers()
            .get_all(http::header::WARNING)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            sent,
            [
                r#"299 - "unknown field \"spec.foo\"""#,
                r#"299 - "back\\slash""#
            ]
        );
    }
}
