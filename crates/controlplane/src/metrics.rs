//! Prometheus metrics (OpenMetrics text) with kube-apiserver's names, one set per process with a
//! `control_plane` label: `apiserver_request_total`, `apiserver_request_duration_seconds`
//! and `apiserver_longrunning_requests`. Served at `/metrics`: the hosting API shows every
//! control plane's series, a tenant only its own. Recording a request costs a few atomic
//! operations; an idle control plane records nothing.

use crate::request::{ResourceRequest, Verb};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// kube-apiserver's request-latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// The labels of a request's series, as upstream names them, plus `control_plane`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: &'static str,
    group: String,
    version: String,
    resource: String,
    subresource: String,
    scope: &'static str,
    component: &'static str,
    control_plane: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    #[prometheus(flatten)]
    request: RequestLabels,
    code: String,
}

struct Metrics {
    registry: Registry,
    requests: Family<CodeLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
    longrunning: Family<RequestLabels, Gauge>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::default();
    let requests = Family::<CodeLabels, Counter>::default();
    let latency = Family::<RequestLabels, Histogram>::new_with_constructor(
        (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
    );
    let longrunning = Family::<RequestLabels, Gauge>::default();
    registry.register(
        "apiserver_request",
        "Counter of apiserver requests broken out for each verb, group, version, resource, scope, component, and HTTP response code",
        requests.clone(),
    );
    registry.register(
        "apiserver_request_duration_seconds",
        "Response latency distribution in seconds for each verb, group, version, resource, subresource, scope and component",
        latency.clone(),
    );
    registry.register(
        "apiserver_longrunning_requests",
        "Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component",
        longrunning.clone(),
    );
    Metrics {
        registry,
        requests,
        latency,
        longrunning,
    }
});

/// Upstream's verb label: the request's verb in capitals, `APPLY` for server-side apply.
fn verb_label(rr: &ResourceRequest, apply: bool) -> &'static str {
    match rr.verb {
        Verb::Get => "GET",
        Verb::List => "LIST",
        Verb::Watch => "WATCH",
        Verb::Create => "POST",
        Verb::Update => "PUT",
        Verb::Patch if apply => "APPLY",
        Verb::Patch => "PATCH",
        Verb::Delete => "DELETE",
        Verb::DeleteCollection => "DELETECOLLECTION",
    }
}

fn labels(control_plane: &str, rr: &ResourceRequest, apply: bool) -> RequestLabels {
    let scope = if rr.name.is_some() {
        "resource"
    } else if rr.namespace.is_some() {
        "namespace"
    } else {
        "cluster"
    };
    RequestLabels {
        verb: verb_label(rr, apply),
        group: rr.group.clone(),
        version: rr.version.clone(),
        resource: rr.resource.clone(),
        subresource: rr.subresource.clone().unwrap_or_default(),
        scope,
        component: "apiserver",
        control_plane: control_plane.to_owned(),
    }
}

/// Records one answered resource request.
pub fn record(control_plane: &str, rr: &ResourceRequest, apply: bool, code: u16, took: Duration) {
    let request = labels(control_plane, rr, apply);
    if rr.verb != Verb::Watch {
        METRICS
            .latency
            .get_or_create(&request)
            .observe(took.as_secs_f64());
    }
    METRICS
        .requests
        .get_or_create(&CodeLabels {
            request,
            code: code.to_string(),
        })
        .inc();
}

/// Counts a long-running request (a watch) while the returned guard lives.
pub fn long_running(control_plane: &str, rr: &ResourceRequest) -> LongRunning {
    let gauge = METRICS
        .longrunning
        .get_or_create(&labels(control_plane, rr, false))
        .clone();
    gauge.inc();
    LongRunning(Arc::new(gauge))
}

/// Decrements its long-running gauge when dropped.
#[derive(Clone)]
pub struct LongRunning(Arc<Gauge>);

impl Drop for LongRunning {
    fn drop(&mut self) {
        if Arc::strong_count(&self.0) == 1 {
            self.0.dec();
        }
    }
}

/// The metrics in Prometheus text format: every control plane's (`None`), or one's.
pub fn render(control_plane: Option<&str>) -> String {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &METRICS.registry).is_err() {
        return String::new();
    }
    let Some(name) = control_plane else {
        return text;
    };
    let label = format!("control_plane=\"{name}\"");
    text.lines()
        .filter(|line| line.starts_with('#') || line.contains(&label))
        .map(|line| format!("{line}\n"))
        .collect()
}
