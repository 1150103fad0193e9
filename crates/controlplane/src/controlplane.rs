//! One control plane: its store, resources and credentials, and how it answers a request.

use crate::authn::Authenticator;
use crate::authz;
use crate::controllers::Settings;
use crate::discovery::{self, DiscoveryFormat};
use crate::handlers;
use crate::http::{self as h, ApiRequest, Body};
use crate::registry::{ResourceDef, ResourceRegistry};
use crate::request::{self, Target};
use crate::status::{self, ApiError};
use crate::watch_cache::WatchCaches;
use http::{Response, StatusCode};
use kflex_storage_backends::{Store, StoreError};
use serde_json::{json, Value};
use std::sync::Arc;

/// Namespaces every control plane has, as a cluster does.
pub const BOOTSTRAP_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];
/// Namespaces that cannot be deleted.
pub const IMMORTAL_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// A Kubernetes-compatible API served from one store.
pub struct ControlPlane {
    name: String,
    store: Arc<dyn Store>,
    registry: ResourceRegistry,
    authenticator: Authenticator,
    signing_key: crate::sa_tokens::SigningKey,
    watch_caches: Arc<WatchCaches>,
    /// Whether this is the hosting API, whose `/metrics` shows every control plane's.
    hosting: std::sync::atomic::AtomicBool,
    /// Whether its tenancy policy is on.
    tenancy_policy: authz::tenancy::Policy,
    /// What admission keeps per control plane: dedicated-node placement, quota-free
    /// namespaces ([`crate::admission`]).
    admission: crate::admission::State,
    /// Its built-in controllers' queue and state.
    controllers: crate::controllers::Controllers,
}

/// A discovery document with its ETag, or 304 when the client's copy is current, as
/// kube-apiserver serves aggregated discovery.
fn discovery_response(req: &ApiRequest, document: discovery::Document) -> Response<Body> {
    let etag = document.etag();
    let mut response = if req
        .header("if-none-match")
        .is_some_and(|tag| document.matches_etag(tag))
    {
        let mut response = Response::new(h::full(Vec::new()));
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        h::json_with_type(StatusCode::OK, &document.body, document.content_type)
    };
    let headers = response.headers_mut();
    if let Ok(etag) = http::HeaderValue::from_str(&etag) {
        headers.insert(http::header::ETAG, etag);
    }
    headers.insert(http::header::VARY, http::HeaderValue::from_static("Accept"));
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("public"),
    );
    response
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// A control plane named `name` on `store`, accepting `authenticator`'s credentials,
    /// with controllers that know nothing of the server ([`Self::start_with`]).
    pub async fn start(
        name: impl Into<String>,
        store: Arc<dyn Store>,
        authenticator: Authenticator,
    ) -> Result<Arc<Self>, StoreError> {
        Self::start_with(name, store, authenticator, Settings::default()).await
    }

    /// A control plane named `name` on `store`, accepting `authenticator`'s credentials,
    /// its controllers knowing the server by `settings`. Creates the bootstrap namespaces
    /// when missing and starts the controllers ([`crate::controllers`]).
    pub async fn start_with(
        name: impl Into<String>,
        store: Arc<dyn Store>,
        authenticator: Authenticator,
        settings: Settings,
    ) -> Result<Arc<Self>, StoreError> {
        let cp = Self::open(name.into(), store, authenticator, settings).await?;
        crate::controllers::start(&cp);
        Ok(cp)
    }

    /// The control plane on `store`, its bootstrap objects written; controllers not started.
    async fn open(
        name: String,
        store: Arc<dyn Store>,
        authenticator: Authenticator,
        settings: Settings,
    ) -> Result<Arc<Self>, StoreError> {
        let signing_key = crate::sa_tokens::SigningKey::load_or_create(store.as_ref()).await?;
        let cp = ControlPlane {
            name,
            store,
            registry: ResourceRegistry::builtin(),
            authenticator,
            signing_key,
            watch_caches: Arc::default(),
            hosting: std::sync::atomic::AtomicBool::new(false),
            tenancy_policy: Default::default(),
            admission: crate::admission::State::default(),
            controllers: crate::controllers::Controllers::new(settings),
        };
        cp.bootstrap().await?;
        crate::crd::load(&cp).await?;
        Ok(Arc::new(cp))
    }

    /// Gives `store` what a new control plane served with `settings` starts with
    /// (namespaces, bootstrap policy, the ServiceAccount signing key, and what the
    /// controllers write at start: ServiceAccounts, `kube-root-ca.crt`, `svc/kubernetes`),
    /// so that one started on it later only reads. Returns once all of it is written.
    pub async fn prepare_store(
        store: Arc<dyn Store>,
        settings: Settings,
    ) -> Result<(), StoreError> {
        let cp = Self::open(String::new(), store, Authenticator::default(), settings).await?;
        crate::controllers::start_and_settle(&cp).await
    }

    /// [`prepare_store`](Self::prepare_store) for PostgreSQL's spare stores, so that a
    /// control plane made from a spare starts without a write.
    pub fn spare_preparer(settings: Settings) -> kflex_storage_backends::postgres::SparePreparer {
        kflex_storage_backends::postgres::SparePreparer::new(
            "controlplane",
            Arc::new(move |store| Box::pin(Self::prepare_store(store, settings.clone()))),
        )
    }

    async fn bootstrap(&self) -> Result<(), StoreError> {
        let namespaces = BOOTSTRAP_NAMESPACES.map(|ns| {
            json!({
                "kind": "Namespace",
                "apiVersion": "v1",
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            })
        });
        self.create_missing("", "namespaces", namespaces.into())
            .await?;
        crate::admission::bootstrap(self).await?;
        authz::bootstrap::ensure(self).await
    }

    /// Creates those of the cluster-scoped `objects` of built-in resource `plural` (of
    /// `group`, version v1) that the store lacks, all at once so that the store commits
    /// them together; a store that has them all is only read (one range read).
    pub(crate) async fn create_missing(
        &self,
        group: &str,
        plural: &str,
        objects: Vec<Value>,
    ) -> Result<(), StoreError> {
        if objects.is_empty() {
            return Ok(());
        }
        let def = self
            .registry
            .lookup(group, "v1", plural)
            .expect("bootstrap objects are of built-in resources");
        let prefix = def.collection_prefix(None);
        let present = self
            .store
            .range(kflex_storage_backends::RangeRequest {
                prefix: prefix.clone().into_bytes(),
                ..Default::default()
            })
            .await?;
        let present: std::collections::HashSet<&[u8]> =
            present.kvs.iter().map(|kv| kv.key.as_slice()).collect();
        let creates = objects.into_iter().filter_map(|mut object| {
            let key = def.key(None, crate::object::meta_str(&object, "name")?);
            if present.contains(key.as_bytes()) {
                return None;
            }
            object["metadata"]["uid"] = json!(crate::object::new_uid());
            object["metadata"]["creationTimestamp"] = json!(crate::object::now());
            Some(async move {
                match self
                    .store
                    .create(key.as_bytes(), handlers::encode(&object), None)
                    .await
                {
                    Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
                    Err(e) => Err(e),
                }
            })
        });
        futures::future::try_join_all(creates).await?;
        Ok(())
    }

    /// Makes this control plane the hosting API (the router does, for the one at `/`).
    pub(crate) fn mark_hosting(&self) {
        self.hosting
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether this is the hosting API.
    pub(crate) fn is_hosting(&self) -> bool {
        self.hosting.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Pins every Pod created from now on to dedicated nodes: each gets this node selector
    /// and these tolerations (`None`, or an empty placement, turns it off).
    pub fn set_node_placement(&self, placement: Option<crate::admission::NodePlacement>) {
        self.admission.set_node_placement(placement);
    }

    /// Its admission state.
    pub(crate) fn admission(&self) -> &crate::admission::State {
        &self.admission
    }

    /// The control plane's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Its credentials.
    pub fn authenticator(&self) -> &Authenticator {
        &self.authenticator
    }

    /// Its tenancy policy ([`authz::tenancy`]).
    pub fn tenancy_policy(&self) -> &authz::tenancy::Policy {
        &self.tenancy_policy
    }

    /// The key its ServiceAccount tokens are signed with.
    pub fn signing_key(&self) -> &crate::sa_tokens::SigningKey {
        &self.signing_key
    }

    /// The shared store watches of its watched resources.
    pub fn watch_caches(&self) -> &Arc<WatchCaches> {
        &self.watch_caches
    }

    /// Its controllers.
    pub(crate) fn controllers(&self) -> &crate::controllers::Controllers {
        &self.controllers
    }

    /// Its resources.
    pub fn registry(&self) -> &ResourceRegistry {
        &self.registry
    }

    /// A built-in resource this control plane always serves.
    pub(crate) fn builtin(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Result<Arc<ResourceDef>, ApiError> {
        self.registry.lookup(group, version, plural).ok_or_else(|| {
            ApiError::internal(format!("the built-in resource {plural} is not registered"))
        })
    }

    /// Whether `def` is a custom resource (served from a CustomResourceDefinition).
    pub fn is_custom_resource(&self, def: &ResourceDef) -> bool {
        def.custom
    }

    /// NamespaceLifecycle: objects go only into namespaces that exist and are not being
    /// deleted.
    pub async fn check_namespace_accepts_content(
        &self,
        namespace: Option<&str>,
    ) -> Result<(), ApiError> {
        let Some(ns) = namespace else { return Ok(()) };
        let namespaces = self.builtin("", "v1", "namespaces")?;
        let gr = namespaces.group_resource();
        let (kv, _) = self
            .store
            .get(namespaces.key(None, ns).as_bytes(), None)
            .await
            .map_err(|e| status::from_store(e, &gr, ns))?;
        let kv = kv.ok_or_else(|| ApiError::not_found(&gr, ns))?;
        let object: Value = serde_json::from_slice(&kv.value).unwrap_or_default();
        if crate::object::meta_str(&object, "deletionTimestamp").is_some() {
            return Err(ApiError::forbidden(
                &gr,
                ns,
                format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            ));
        }
        Ok(())
    }

    /// Answers one request (its path relative to this control plane).
    pub async fn handle(&self, req: ApiRequest) -> Response<Body> {
        let target = match request::parse(&req.method, &req.path, &req.query) {
            Ok(target) => target,
            Err(error) => return h::error(&error),
        };
        // The hosting API's health answers everyone: it is the process's probe. A tenant's
        // is authorized as upstream's (`system:public-info-viewer`).
        if target == Target::Health && self.is_hosting() {
            return h::text(StatusCode::OK, "ok");
        }
        let user =
            crate::authn::authenticate_request(self, req.header("authorization"), &req.peer_certs)
                .await;
        let Some(user) = user else {
            return h::error(&ApiError::unauthorized());
        };
        let attrs = authz::Attributes::of_request(&req.method, &req.path, &req.query, &target);
        let user = match authz::admit(self, user, &attrs, &req).await {
            Ok(user) => user,
            Err(error) => return h::error(&error),
        };
        crate::crd::shared::refresh_for(self, &target).await;
        let accept = req.header("accept").map(str::to_owned);
        let found = |value: Option<Value>| match value {
            Some(value) => h::json(StatusCode::OK, &value),
            None => h::error(&ApiError::path_not_found()),
        };
        match target {
            Target::CoreGroup => {
                let address = req.header("host").unwrap_or("").to_owned();
                let format = DiscoveryFormat::negotiate(accept.as_deref());
                discovery_response(
                    &req,
                    discovery::core_group(&self.registry, format, &address),
                )
            }
            Target::Groups => {
                let format = DiscoveryFormat::negotiate(accept.as_deref());
                discovery_response(&req, discovery::groups(&self.registry, format))
            }
            Target::Group(group) => found(discovery::group(&self.registry, &group)),
            Target::GroupVersion { group, version } => {
                found(discovery::group_version(&self.registry, &group, &version))
            }
            Target::Version => h::json(StatusCode::OK, &discovery::version_info()),
            Target::Metrics => {
                let hosting = self.hosting.load(std::sync::atomic::Ordering::Relaxed);
                let text = crate::metrics::render((!hosting).then_some(self.name.as_str())).await;
                let mut response = Response::new(h::full(text));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                response
            }
            Target::OpenApi(path) => {
                let crd_schema =
                    |def: &ResourceDef| def.crd.as_ref().map(|c| c.open_api_v3_schema.clone());
                crate::openapi::serve(&self.registry, &req, &path, &crd_schema)
            }
            Target::Other(path) => {
                crate::sa_tokens::issuer_discovery(self, &req.method, &path, req.header("host"))
                    .unwrap_or_else(|| h::error(&ApiError::path_not_found()))
            }
            Target::Health => h::text(StatusCode::OK, "ok"),
            Target::Resource(rr) if crate::sa_tokens::is_token_request(&rr) => {
                match crate::sa_tokens::token_request(self, &rr, &req).await {
                    Ok(response) => response,
                    Err(error) => h::error(&error),
                }
            }
            Target::Resource(rr) if authz::review::is_review(&rr) => {
                match authz::review::handle(self, &user, &rr, &req).await {
                    Ok(response) => response,
                    Err(error) => h::error(&error),
                }
            }
            Target::Resource(rr) => {
                let started = std::time::Instant::now();
                let apply = req
                    .header("content-type")
                    .is_some_and(|t| t.starts_with("application/apply-patch"));
                let watch = (rr.verb == crate::request::Verb::Watch)
                    .then(|| crate::metrics::long_running(&self.name, &rr));
                let measured = rr.clone();
                let response =
                    crate::admission::as_requester(&user.name, self.handle_resource(rr, req)).await;
                crate::metrics::record(
                    &self.name,
                    &measured,
                    apply,
                    response.status().as_u16(),
                    started.elapsed(),
                );
                match watch {
                    Some(guard) => response.map(|body| h::with_guard(body, guard)),
                    None => response,
                }
            }
        }
    }

    /// Answers a resource request (after authentication and authorization).
    async fn handle_resource(
        &self,
        rr: crate::request::ResourceRequest,
        req: ApiRequest,
    ) -> Response<Body> {
        match self.handle_internal(rr, req).await {
            Ok(response) => response,
            Err(error) => h::error(&error),
        }
    }

    /// Answers a resource request that needs no authentication or authorization: a
    /// client's after both, or the controllers' own.
    pub(crate) async fn handle_internal(
        &self,
        rr: crate::request::ResourceRequest,
        req: ApiRequest,
    ) -> Result<Response<Body>, ApiError> {
        let writes_aggregation =
            authz::aggregation::affects_aggregation(&rr.group, &rr.resource, rr.verb.as_str());
        let response = handlers::handle(self, rr, req).await?;
        if writes_aggregation && response.status().is_success() {
            authz::aggregation::aggregate(self).await?;
        }
        Ok(response)
    }
}
