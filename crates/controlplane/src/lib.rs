//! kflex's embedded Kubernetes API server.
//!
//! Start with [`ControlPlane`]: one Kubernetes-compatible API over one
//! [`Store`](kflex_storage_backends::Store), with its own credentials ([`authn`]). A
//! [`Router`] serves many control planes behind one HTTPS listener ([`server`]): the hosting
//! API at `/`, tenants at `/clusters/<name>/`.
//!
//! A request's way: [`server`] (TLS, HTTP/1.1 and HTTP/2) → [`Router`] (which control
//! plane) → [`ControlPlane::handle`] (authentication, authorization ([`authz`]), then discovery or a resource) →
//! [`request`] (what is asked) → the handlers (REST semantics) → the store. Errors are
//! `metav1.Status` ([`status`]).
//!
//! [`controllers`] are the built-in controllers (namespaces, garbage collection,
//! ServiceAccounts), driven by writes. [`manager`] turns the hosting API's `ControlPlane` objects into tenants.

pub mod admission;
pub mod authn;
pub mod authz;
pub mod controllers;
mod controlplane;
pub mod crd;
pub mod defaults;
pub mod discovery;
pub mod fieldvalidation;
mod handlers;
pub mod http;
pub mod manager;
pub mod metrics;
pub mod object;
pub mod openapi;
pub mod patch;
pub mod pki;
pub mod protobuf;
pub mod registry;
pub mod representation;
pub mod request;
mod router;
pub mod sa_tokens;
pub mod schema;
pub mod selector;
pub mod server;
pub mod status;
pub mod table;
pub mod watch_cache;

pub use controlplane::{ControlPlane, BOOTSTRAP_NAMESPACES, IMMORTAL_NAMESPACES};
pub use router::{Router, TENANT_PREFIX};
