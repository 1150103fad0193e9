//! Service `default/kubernetes`, as kube-apiserver keeps it: the first address of the
//! service range (10.96.0.1), port 443 (`https`) to the port the server listens on.

use super::internal;
use crate::controlplane::ControlPlane;
use crate::status::ApiError;
use serde_json::{json, Value};

/// The Service's namespace and name.
pub const NAMESPACE: &str = "default";
pub const NAME: &str = "kubernetes";
/// The first address of the service range, which the Service always holds.
pub const CLUSTER_IP: &str = "10.96.0.1";

/// The Service for a server listening on `port`.
pub fn service(port: u16) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": CLUSTER_IP,
            "clusterIPs": [CLUSTER_IP],
            "sessionAffinity": "None",
            "ports": [{"name": "https", "protocol": "TCP", "port": 443, "targetPort": port}],
        },
    })
}

/// Creates the Service when missing.
pub(super) async fn ensure(cp: &ControlPlane) -> Result<(), ApiError> {
    let services = cp.builtin("", "v1", "services")?;
    let (existing, _) = cp
        .store()
        .get(services.key(Some(NAMESPACE), NAME).as_bytes(), None)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    if existing.is_some() {
        return Ok(());
    }
    let port = cp.controllers().settings().server_port.unwrap_or(443);
    internal::create(cp, &services, Some(NAMESPACE), &service(port)).await
}
