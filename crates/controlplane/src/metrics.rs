//! Prometheus metrics (OpenMetrics text) with kube-apiserver's names, one set per process with a
//! `control_plane` label: `apiserver_request_total`, `apiserver_request_duration_seconds`
//! and `apiserver_longrunning_requests` (watches among them: upstream replaced
//! `apiserver_registered_watchers` with it), recorded as requests come; and, read from the
//! stores at scrape time, `apiserver_storage_objects` (label `resource`, as upstream),
//! `apiserver_storage_size_bytes` (labelled `control_plane` where upstream has
//! `storage_cluster_id`) and
//! `kflex_resourcequota` (kube-state-metrics' `kube_resourcequota` labels: each
//! ResourceQuota's `hard` and `used` amounts). Served at `/metrics`: the hosting API shows
//! every control plane's series, a tenant only its own. Recording a request costs a few
//! atomic operations; an idle control plane records nothing, and its store is only read
//! when someone scrapes.

use crate::controlplane::ControlPlane;
use crate::request::{ResourceRequest, Verb};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, LazyLock, Mutex, Weak};
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

/// The control planes whose stores a scrape reads, by name.
static SERVED: LazyLock<Mutex<HashMap<String, Weak<ControlPlane>>>> = LazyLock::new(Mutex::default);

/// Includes `cp`'s store in scrapes (the router calls this when it serves `cp`).
pub fn serve(cp: &Arc<ControlPlane>) {
    SERVED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(cp.name().to_owned(), Arc::downgrade(cp));
}

/// Leaves `cp` out of scrapes again (unless another control plane of its name took its
/// place).
pub fn forget(cp: &Arc<ControlPlane>) {
    let mut served = SERVED.lock().unwrap_or_else(|p| p.into_inner());
    if served
        .get(cp.name())
        .is_some_and(|known| known.as_ptr() == Arc::as_ptr(cp))
    {
        served.remove(cp.name());
    }
}

/// The metrics in Prometheus text format: every control plane's (`None`), or one's.
pub async fn render(control_plane: Option<&str>) -> String {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &METRICS.registry).is_err() {
        return String::new();
    }
    if let Some(name) = control_plane {
        let label = format!("control_plane=\"{name}\"");
        text = text
            .lines()
            .filter(|line| line.starts_with('#') || line.contains(&label))
            .map(|line| format!("{line}\n"))
            .collect();
    }
    let served: Vec<Arc<ControlPlane>> = SERVED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(name, _)| control_plane.is_none_or(|wanted| wanted == name.as_str()))
        .filter_map(|(_, cp)| cp.upgrade())
        .collect();
    let stored = stored_metrics(&served).await;
    match text.rfind("# EOF") {
        Some(end) => text.truncate(end),
        None => return text,
    }
    text.push_str(&stored);
    text
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    control_plane: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StorageLabels {
    resource: String,
    control_plane: String,
}

/// kube-state-metrics' `kube_resourcequota` labels, plus `control_plane`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabels {
    namespace: String,
    resourcequota: String,
    resource: String,
    r#type: &'static str,
    control_plane: String,
}

/// What the stores of `served` hold now: object counts and quota amounts, as OpenMetrics
/// text ending with `# EOF`. Reads each store once per resource (a count) plus once for
/// its ResourceQuotas.
async fn stored_metrics(served: &[Arc<ControlPlane>]) -> String {
    let objects = Family::<StorageLabels, Gauge>::default();
    let sizes = Family::<StoreLabels, Gauge>::default();
    let quotas = Family::<QuotaLabels, Gauge<f64, AtomicU64>>::default();
    let reads = served.iter().map(|cp| async {
        let store = cp.store();
        if let Ok(Some(bytes)) = store.size().await {
            sizes
                .get_or_create(&StoreLabels {
                    control_plane: cp.name().to_owned(),
                })
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        let mut prefixes = BTreeMap::new();
        for def in cp.registry().all() {
            prefixes
                .entry(def.storage_prefix.clone())
                .or_insert_with(|| def.group_resource().to_string());
        }
        for (prefix, resource) in prefixes {
            if let Ok((count, _)) = store.count(prefix.as_bytes()).await {
                objects
                    .get_or_create(&StorageLabels {
                        resource,
                        control_plane: cp.name().to_owned(),
                    })
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
        }
        let Some(def) = cp.registry().lookup("", "v1", "resourcequotas") else {
            return;
        };
        let request = kflex_storage_backends::RangeRequest {
            prefix: def.collection_prefix(None).into_bytes(),
            ..Default::default()
        };
        let Ok(page) = store.range(request).await else {
            return;
        };
        for kv in page.kvs {
            let Ok(quota) = serde_json::from_slice::<serde_json::Value>(&kv.value) else {
                continue;
            };
            for (kind, field) in [("hard", "hard"), ("used", "used")] {
                let amounts = quota["status"][field].as_object().into_iter().flatten();
                for (resource, amount) in amounts {
                    let Some(value) = amount.as_str().and_then(quantity) else {
                        continue;
                    };
                    quotas
                        .get_or_create(&QuotaLabels {
                            namespace: quota["metadata"]["namespace"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                            resourcequota: quota["metadata"]["name"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                            resource: resource.clone(),
                            r#type: kind,
                            control_plane: cp.name().to_owned(),
                        })
                        .set(value);
                }
            }
        }
    });
    futures::future::join_all(reads).await;
    let mut registry = Registry::default();
    registry.register(
        "apiserver_storage_objects",
        "Number of stored objects at the time of last check split by kind",
        objects,
    );
    registry.register(
        "apiserver_storage_size_bytes",
        "Size of the storage database file physically allocated in bytes",
        sizes,
    );
    registry.register(
        "kflex_resourcequota",
        "Resource quota hard and used amounts, as kube-state-metrics' kube_resourcequota",
        quotas,
    );
    let mut text = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// A Kubernetes quantity (`500m`, `2Gi`, `1e3`, `10`) as a number. Written here because
/// no crate the workspace uses parses quantities, and a gauge only needs the value.
fn quantity(text: &str) -> Option<f64> {
    const SUFFIXES: [(&str, f64); 15] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let text = text.trim();
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    text.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_in_every_notation() {
        assert_eq!(quantity("10"), Some(10.0));
        assert_eq!(quantity("500m"), Some(0.5));
        assert_eq!(quantity("2Gi"), Some(2.0 * 1073741824.0));
        assert_eq!(quantity("1k"), Some(1000.0));
        assert_eq!(quantity("1e3"), Some(1000.0));
        assert_eq!(quantity("1.5"), Some(1.5));
        assert_eq!(quantity("lots"), None);
    }
}
