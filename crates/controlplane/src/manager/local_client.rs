//! An in-process kube-rs client: its requests go straight to the [`Router`], with no
//! socket and no TLS, yet through authentication, authorization and admission like any
//! other client's. The manager uses it to read and write the hosting API.

use crate::router::Router;
use futures::future::BoxFuture;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A kube-rs client of the hosting API `router` serves, authenticated with `token` (a
/// bearer token it accepts).
pub fn client(router: Arc<Router>, token: &str) -> kube::Client {
    client_at(router, token, "")
}

/// A kube-rs client of the control plane served under `prefix` (`/clusters/<name>`, or
/// empty for the hosting API), authenticated with `token`.
pub fn client_at(router: Arc<Router>, token: &str, prefix: &str) -> kube::Client {
    let service = InProcess {
        router,
        authorization: http::HeaderValue::from_str(&format!("Bearer {token}"))
            .unwrap_or_else(|_| http::HeaderValue::from_static("Bearer -")),
        prefix: prefix.into(),
    };
    kube::Client::new(service, "default")
}

/// The tower service behind [`client`].
#[derive(Clone)]
struct InProcess {
    router: Arc<Router>,
    authorization: http::HeaderValue,
    prefix: Arc<str>,
}

impl tower::Service<http::Request<kube::client::Body>> for InProcess {
    type Response = http::Response<crate::http::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<kube::client::Body>) -> Self::Future {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, self.authorization.clone());
        if !self.prefix.is_empty() {
            let path_and_query = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            if let Ok(uri) = format!("{}{path_and_query}", self.prefix).parse() {
                *request.uri_mut() = uri;
            }
        }
        let router = self.router.clone();
        Box::pin(async move { Ok(router.handle(request, Arc::default()).await) })
    }
}
