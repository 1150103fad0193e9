//! The `monitoring` action: checks that the hosting API serves the Prometheus operator's
//! kinds the monitoring hook's templates use (`ServiceMonitor`, `PrometheusRule` of
//! `monitoring.coreos.com/v1`), so a cluster without the operator gets a clear reason on
//! the ControlPlane. kflex does not install those CRDs itself: the operator owns them and
//! would conflict with a copy it did not make.
//!
//! The metrics themselves are the server's (`/metrics`, per control plane); the hook only
//! tells a Prometheus operator where to scrape and what to alert on.

use crate::HookError;
use kube::core::GroupVersionKind;
use kube::discovery::Discovery;

/// The kinds the monitoring hook's templates need.
pub const KINDS: [&str; 2] = ["ServiceMonitor", "PrometheusRule"];
const GROUP: &str = "monitoring.coreos.com";
const VERSION: &str = "v1";

/// Fails with the kinds `discovery` lacks.
pub fn check(discovery: &Discovery) -> Result<(), HookError> {
    let missing: Vec<&str> = KINDS
        .into_iter()
        .filter(|kind| {
            discovery
                .resolve_gvk(&GroupVersionKind::gvk(GROUP, VERSION, kind))
                .is_none()
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(HookError::Invalid(format!(
        "monitoring: the hosting API does not serve {} of {GROUP}/{VERSION}: install the \
         Prometheus operator (or its CRDs) first; the hook is retried",
        missing.join(" and ")
    )))
}
