//! The tenant router: the hosting API at `/`, each tenant control plane at
//! `/clusters/<name>/...`. Tenants come and go while the server runs.

use crate::controlplane::ControlPlane;
use crate::http::{self as h, ApiRequest, Body, MAX_BODY_BYTES};
use crate::request::Query;
use crate::status::ApiError;
use http::Response;
use http_body_util::{BodyExt, Limited};
use rustls_pki_types::CertificateDer;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The path prefix under which tenants are served.
pub const TENANT_PREFIX: &str = "/clusters/";

/// Routes requests to the hosting control plane or to a tenant.
#[derive(Debug)]
pub struct Router {
    host: Arc<ControlPlane>,
    tenants: RwLock<HashMap<String, Arc<ControlPlane>>>,
}

impl Router {
    /// A router serving `host` at `/` and no tenants yet.
    pub fn new(host: Arc<ControlPlane>) -> Self {
        host.mark_hosting();
        crate::metrics::serve(&host);
        Router {
            host,
            tenants: RwLock::new(HashMap::new()),
        }
    }

    /// Serves `tenant` at `/clusters/<its name>/`, replacing one of the same name.
    pub fn add_tenant(&self, tenant: Arc<ControlPlane>) {
        crate::metrics::serve(&tenant);
        self.tenants
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.name().to_owned(), tenant);
    }

    /// Stops serving the tenant `name`; returns it if it was served.
    pub fn remove_tenant(&self, name: &str) -> Option<Arc<ControlPlane>> {
        let removed = self
            .tenants
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        if let Some(tenant) = &removed {
            crate::metrics::forget(tenant);
        }
        removed
    }

    /// The tenant `name`, if served.
    pub fn tenant(&self, name: &str) -> Option<Arc<ControlPlane>> {
        self.tenants
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The control plane a path belongs to, and the path relative to it.
    fn route(&self, path: &str) -> Result<(Arc<ControlPlane>, String), ApiError> {
        let Some(rest) = path.strip_prefix(TENANT_PREFIX) else {
            return Ok((self.host.clone(), path.to_owned()));
        };
        let (name, relative) = rest.split_once('/').map_or((rest, "/"), |(n, r)| (n, r));
        let tenant = self.tenant(name).ok_or_else(ApiError::path_not_found)?;
        Ok((tenant, format!("/{}", relative.trim_start_matches('/'))))
    }

    /// Answers an HTTP request.
    pub async fn handle<B>(
        &self,
        request: http::Request<B>,
        peer_certs: Arc<Vec<CertificateDer<'static>>>,
    ) -> Response<Body>
    where
        B: hyper::body::Body + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (parts, body) = request.into_parts();
        let (cp, path) = match self.route(parts.uri.path()) {
            Ok(found) => found,
            Err(error) => return h::error(&error),
        };
        let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                return h::error(&ApiError::too_large(MAX_BODY_BYTES))
            }
            Err(error) => {
                return h::error(&ApiError::bad_request(format!(
                    "reading the request body: {error}"
                )))
            }
        };
        let req = ApiRequest {
            method: parts.method,
            path,
            query: Query::parse(parts.uri.query()),
            headers: parts.headers,
            body,
            peer_certs,
        };
        cp.handle(req).await
    }
}
