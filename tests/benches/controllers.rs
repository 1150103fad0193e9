//! The controllers benchmark: what a tenant's built-in controllers cost per busy period,
//! and what leader election among processes sharing a store adds.
//!
//! Run with `scripts/bench controllers`. One process serves control planes behind TLS and
//! a kube-rs client (in the same process) measures, per backend (embedded SQLite, where
//! nothing is elected; the shared PostgreSQL of `scripts/bench`, fsync on, where the
//! controllers' Lease is taken and released in each busy period):
//! - namespace created → its `default` ServiceAccount and `kube-root-ca.crt` exist;
//! - a namespace holding `KFLEX_BENCH_CONFIGMAPS` (default 200) ConfigMaps deleted → gone.
//!
//! Then, on PostgreSQL, two control planes over two connections to one store (two kflex
//! processes serving one tenant) each delete such a namespace at the same moment: the
//! second waits for the first to release the lease, so both are gone after about twice
//! the time of one plus at most the 2 s retry period.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kflex_controlplane::authn::{Authenticator, User};
use kflex_controlplane::controllers::Settings;
use kflex_controlplane::pki::CertificateAuthority;
use kflex_controlplane::{server, ControlPlane, Router};
use kflex_e2e::bench::percentile;
use kflex_storage_backends::postgres::{PostgresOptions, PostgresServer};
use kflex_storage_backends::sqlite::{SqliteOptions, SqliteStore};
use kflex_storage_backends::Store;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The allocator of the `kflex` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Namespaces created (and populated) per backend.
const NAMESPACES: usize = 50;
/// Namespaces with content deleted per backend.
const DELETIONS: usize = 10;

/// A control plane served at `/clusters/<name>` of a TLS server, and a client of it.
struct Served {
    client: kube::Client,
}

async fn serve(name: &str, store: Arc<dyn Store>, ca: &CertificateAuthority) -> Served {
    let mut authn = Authenticator::default();
    authn.add_token(
        "token".to_owned(),
        User {
            name: "bench".into(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        },
    );
    let host_dir = tempfile::tempdir().expect("temporary directory");
    let host_store = SqliteStore::open(host_dir.path().join("host.db"), SqliteOptions::default())
        .await
        .expect("host store");
    let host = ControlPlane::start("host", Arc::new(host_store), Authenticator::default())
        .await
        .expect("host");
    let router = Arc::new(Router::new(host));
    let settings = Settings::served_at("https://127.0.0.1:443", &ca.certificate.cert_pem);
    let tenant = ControlPlane::start_with(name, store, authn, settings)
        .await
        .expect("control plane");
    router.add_tenant(tenant);
    let cert = ca
        .server_certificate(&["localhost"], &["127.0.0.1".parse().unwrap()])
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _keep = host_dir;
        server::serve(
            listener,
            server::tls_config(&cert).unwrap(),
            router,
            std::future::pending(),
        )
        .await
    });
    let mut config = kube::Config::new(
        format!("https://127.0.0.1:{port}/clusters/{name}")
            .parse()
            .unwrap(),
    );
    config.root_cert = Some(vec![ca.certificate.cert_der.to_vec()]);
    config.auth_info.token = Some("token".to_owned().into());
    Served {
        client: kube::Client::try_from(config).unwrap(),
    }
}

async fn create_namespace(client: &kube::Client, name: &str) {
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .expect("create namespace");
}

/// Polls every millisecond until `check` holds (at most 60 s).
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn populated(client: &kube::Client, namespace: &str) -> bool {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    accounts.get_opt("default").await.unwrap().is_some()
        && configmaps
            .get_opt("kube-root-ca.crt")
            .await
            .unwrap()
            .is_some()
}

async fn gone(client: &kube::Client, namespace: &str) -> bool {
    Api::<Namespace>::all(client.clone())
        .get_opt(namespace)
        .await
        .unwrap()
        .is_none()
}

/// Creates namespace `name` holding `count` ConfigMaps.
async fn filled(client: &kube::Client, name: &str, count: usize) {
    create_namespace(client, name).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), name);
    futures::stream::iter(0..count)
        .map(|i| {
            let configmaps = configmaps.clone();
            async move {
                let cm = serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}")}}))
                    .unwrap();
                configmaps.create(&PostParams::default(), &cm).await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("create configmaps");
}

async fn delete_and_wait(client: &kube::Client, name: &str) -> Duration {
    let started = Instant::now();
    Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete namespace");
    until("namespace gone", || gone(client, name)).await;
    started.elapsed()
}

fn row(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "| {what} | {} | {:.1} | {:.1} |",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99)
    );
}

async fn measure(backend: &str, served: &Served, configmaps: usize) {
    let mut populate = Vec::new();
    for i in 0..NAMESPACES {
        let name = format!("p{i}");
        let started = Instant::now();
        create_namespace(&served.client, &name).await;
        until("populated", || populated(&served.client, &name)).await;
        populate.push(started.elapsed());
    }
    row(
        &format!("{backend}: namespace created → default ServiceAccount and root CA"),
        populate,
    );
    let mut deletions = Vec::new();
    for i in 0..DELETIONS {
        let name = format!("d{i}");
        filled(&served.client, &name, configmaps).await;
        deletions.push(delete_and_wait(&served.client, &name).await);
    }
    row(
        &format!("{backend}: namespace with {configmaps} ConfigMaps deleted → gone"),
        deletions,
    );
}

#[tokio::main]
async fn main() {
    let configmaps = std::env::var("KFLEX_BENCH_CONFIGMAPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let ca = CertificateAuthority::generate("bench-ca").unwrap();
    println!("\n| phase | samples | p50 ms | p99 ms |");
    println!("|---|---|---|---|");

    let dir = tempfile::tempdir().expect("temporary directory");
    let sqlite = SqliteStore::open(dir.path().join("t.db"), SqliteOptions::default())
        .await
        .expect("store");
    measure(
        "SQLite",
        &serve("t", Arc::new(sqlite), &ca).await,
        configmaps,
    )
    .await;

    let url = kflex_e2e::postgres_url();
    let name = format!("bench-controllers-{}", std::process::id());
    let connect = || async {
        PostgresServer::connect(
            &url,
            PostgresOptions {
                spare_stores: 0,
                ..PostgresOptions::default()
            },
        )
        .await
        .expect("PostgreSQL")
    };
    let (first, second) = (connect().await, connect().await);
    let store: Arc<dyn Store> = Arc::new(first.ensure_store(&name).await.expect("store"));
    let a = serve(&name, store, &ca).await;
    measure("PostgreSQL", &a, configmaps).await;

    // A second process's view of the same store.
    let other: Arc<dyn Store> = Arc::new(second.open_store(&name).await.expect("store"));
    let b = serve(&name, other, &ca).await;
    let mut both = Vec::new();
    for i in 0..DELETIONS / 2 {
        let (left, right) = (format!("a{i}"), format!("b{i}"));
        filled(&a.client, &left, configmaps).await;
        filled(&b.client, &right, configmaps).await;
        let started = Instant::now();
        let (_, _) = tokio::join!(
            delete_and_wait(&a.client, &left),
            delete_and_wait(&b.client, &right)
        );
        both.push(started.elapsed());
    }
    row(
        &format!("PostgreSQL, 2 processes: each deletes a namespace with {configmaps} ConfigMaps at once → both gone"),
        both,
    );
    first.drop_store(&name).await.expect("drop the store");
}
