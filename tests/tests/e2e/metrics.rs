//! `/metrics` from outside: kube-apiserver's metric names with a `control_plane` label; the
//! hosting API shows every control plane's series, a tenant only its own; watches count
//! as long-running requests while they last.

use crate::support::client;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kflex_e2e::KflexServer;
use kube::api::{Api, DynamicObject, PostParams, WatchParams};
use serde_json::json;
use std::time::{Duration, Instant};

/// `GET /metrics` as text.
pub(crate) async fn metrics(client: &kube::Client) -> String {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    client.request_text(request).await.expect("GET /metrics")
}

/// The sum of metric `name`'s samples whose lines contain every one of `labels`.
pub(crate) fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .reduce(|a, b| a + b)
}

#[tokio::test]
async fn metrics_carry_upstream_names_and_stay_within_their_control_plane() {
    let server = KflexServer::start();
    let host = client(&server).await;
    let resource = kflex_controlplane::manager::api::control_planes();
    for name in ["m1", "m2"] {
        let cp: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1", "kind": "ControlPlane",
            "metadata": {"name": name}, "spec": {"type": "k8s"}}))
        .unwrap();
        Api::<DynamicObject>::all_with(host.clone(), &resource)
            .create(&PostParams::default(), &cp)
            .await
            .unwrap();
    }
    let started = Instant::now();
    let m1 = loop {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(host.clone(), "m1-system");
        if secrets.get_opt("admin-kubeconfig").await.unwrap().is_some() {
            break crate::manager::tenant(&host, "m1").await;
        }
        assert!(started.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let configmaps: Api<ConfigMap> = Api::namespaced(m1.clone(), "default");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("counted".into());
    configmaps
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    configmaps.get("counted").await.unwrap();
    let _ = configmaps.get("missing").await;

    let all = metrics(&host).await;
    assert!(all.contains("# TYPE apiserver_request counter"), "{all}");
    assert!(all.contains("# TYPE apiserver_request_duration_seconds histogram"));
    let get = [
        "verb=\"GET\"",
        "resource=\"configmaps\"",
        "scope=\"resource\"",
        "control_plane=\"m1\"",
    ];
    assert_eq!(
        sample(
            &all,
            "apiserver_request_total",
            &[&get[..], &["code=\"200\""]].concat()
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &all,
            "apiserver_request_total",
            &[&get[..], &["code=\"404\""]].concat()
        ),
        Some(1.0)
    );
    let post = [
        "verb=\"POST\"",
        "resource=\"configmaps\"",
        "scope=\"namespace\"",
        "code=\"201\"",
        "control_plane=\"m1\"",
    ];
    assert_eq!(sample(&all, "apiserver_request_total", &post), Some(1.0));
    assert!(sample(&all, "apiserver_request_duration_seconds_count", &get).is_some());
    assert!(
        all.contains("control_plane=\"host\""),
        "the hosting API sees its own series too"
    );

    // A tenant sees only its own series.
    let mine = metrics(&m1).await;
    assert!(mine.contains("control_plane=\"m1\""));
    assert!(
        !mine.contains("control_plane=\"host\"") && !mine.contains("control_plane=\"m2\""),
        "{mine}"
    );

    // A watch is long-running while it lasts.
    let watching = [
        "apiserver_longrunning_requests",
        "verb=\"WATCH\"",
        "control_plane=\"m1\"",
    ];
    let stream = configmaps
        .watch(&WatchParams::default().timeout(30), "0")
        .await
        .unwrap();
    let mut stream = Box::pin(stream);
    let _ = stream.next().await;
    assert_eq!(
        sample(&metrics(&m1).await, watching[0], &watching[1..]),
        Some(1.0)
    );
    drop(stream);
    let started = Instant::now();
    while sample(&metrics(&m1).await, watching[0], &watching[1..]) != Some(0.0) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the watch is still counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
