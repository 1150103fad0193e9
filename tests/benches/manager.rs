//! The manager benchmark: how fast ControlPlane objects become Ready tenants, what a tenant
//! costs in memory, and what idle tenants cost in CPU.
//!
//! Run with `scripts/bench manager`. One process serves the hosting API behind TLS and runs
//! the manager; a kube-rs client (in the same process) creates control planes on the
//! `shared` backend: 50 one at a time 250 ms apart (latency as people see it), 100 one at
//! a time back to back (latency in a burst), then `KFLEX_BENCH_TENANTS` (default 1,000) 16
//! at a time (throughput), and a watch records when each becomes Ready. Once on embedded SQLite (the default) and once on the
//! shared PostgreSQL of `scripts/bench` (fsync on); then a few `dedicated` (etcd) control
//! planes. Prints create-to-Ready p50/p99, resident memory per tenant and the process's CPU
//! use while every tenant is idle.

use futures::{StreamExt, TryStreamExt};
use kflex_controlplane::authn::{Authenticator, User};
use kflex_controlplane::controllers::Settings;
use kflex_controlplane::manager::storage::StorageConfig;
use kflex_controlplane::manager::{self, Manager, ManagerConfig};
use kflex_controlplane::pki::CertificateAuthority;
use kflex_controlplane::{server, ControlPlane, Router};
use kflex_e2e::bench::{percentile, rss_mib};
use kflex_storage_backends::postgres::{PostgresOptions, PostgresServer};
use kflex_storage_backends::sqlite::{SqliteOptions, SqliteStore};
use kube::api::{Api, DynamicObject, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The allocator of the `kflex` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Clients creating control planes at once in the throughput run.
const CONCURRENCY: usize = 16;
/// Control planes created one at a time in the latency run.
const ONE_AT_A_TIME: usize = 100;
/// Control planes created one at a time with a pause between them, as people create them
/// (so spare stores are refilled between creates).
const SPACED: usize = 50;
/// The pause between them.
const SPACING: Duration = Duration::from_millis(250);

/// CPU time (user + system) this process has used.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

/// A kflex server (hosting API, manager) on `data_dir`, and an admin client for it.
async fn start(data_dir: &std::path::Path, postgres_url: Option<&str>) -> kube::Client {
    let ca = CertificateAuthority::generate("bench-ca").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (manager_token, manager_user) = manager::manager_identity();
    let mut authn = Authenticator::default();
    authn.add_token(manager_token.clone(), manager_user);
    authn.add_token(
        "admin",
        User {
            name: "admin".into(),
            uid: String::new(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        },
    );
    let store = SqliteStore::open(data_dir.join("host.db"), SqliteOptions::default())
        .await
        .unwrap();
    let host = ControlPlane::start("host", Arc::new(store), authn)
        .await
        .unwrap();
    let router = Arc::new(Router::new(host));
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let postgres = match postgres_url {
        // As `kflex serve --postgres-url` runs it: 8 spare stores, prepared for this server.
        Some(postgres_url) => {
            let settings = Settings::served_at(&url, &ca.certificate.cert_pem);
            let options = PostgresOptions {
                spare_stores: 8,
                prepare_spare: Some(ControlPlane::spare_preparer(settings)),
                ..PostgresOptions::default()
            };
            let server = PostgresServer::connect(postgres_url, options)
                .await
                .expect("the benchmark PostgreSQL");
            // Let the spares be made, as they are on a server that has been running.
            tokio::time::sleep(Duration::from_secs(2)).await;
            Some(server)
        }
        None => None,
    };
    let cert = ca
        .server_certificate(&["localhost"], &["127.0.0.1".parse().unwrap()])
        .unwrap();
    let tls = server::tls_config(&cert).unwrap();
    let root = ca.certificate.cert_der.to_vec();
    let config = ManagerConfig {
        storage: StorageConfig {
            data_dir: data_dir.to_owned(),
            postgres,
            etcd_bin: kflex_e2e::etcd_bin(),
        },
        external_url: url.clone(),
        in_cluster_url: url.clone(),
        server_ca: Arc::new(ca),
        token: manager_token,
        allow_exec_hooks: false,
    };
    let manager = Manager::install(router.clone(), config).await.unwrap();
    tokio::spawn(server::serve(listener, tls, router, std::future::pending()));
    tokio::spawn(manager.run(std::future::pending()));
    let mut config = kube::Config::new(url.parse().unwrap());
    config.root_cert = Some(vec![root]);
    config.auth_info.token = Some("admin".to_string().into());
    kube::Client::try_from(config).unwrap()
}

/// Creates `count` control planes named `<prefix>-<i>` with `spec`, `concurrency` at a
/// time, and returns each one's time from the create call to Ready.
async fn create_until_ready(
    client: &kube::Client,
    prefix: &str,
    count: usize,
    concurrency: usize,
    pause: Duration,
    spec: serde_json::Value,
) -> Vec<Duration> {
    let control_planes: Api<DynamicObject> =
        Api::all_with(client.clone(), &manager::api::control_planes());
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let took: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let watch = {
        let (sent, took) = (sent.clone(), took.clone());
        let stream = watcher(control_planes.clone(), watcher::Config::default());
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Ok(Some(event)) = stream.try_next().await {
                let watcher::Event::Apply(cp) = event else {
                    continue;
                };
                let ready = cp.data["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
                let name = cp.metadata.name.clone().unwrap_or_default();
                if ready {
                    if let Some(at) = sent.lock().unwrap().remove(&name) {
                        took.lock().unwrap().push(at.elapsed());
                    }
                }
            }
        })
    };
    futures::stream::iter(0..count)
        .for_each_concurrent(concurrency, |i| {
            let (control_planes, sent, spec) = (control_planes.clone(), sent.clone(), spec.clone());
            async move {
                let name = format!("{prefix}-{i}");
                let object: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1",
                    "kind": "ControlPlane",
                    "metadata": {"name": name},
                    "spec": spec,
                }))
                .unwrap();
                sent.lock().unwrap().insert(name.clone(), Instant::now());
                control_planes
                    .create(&PostParams::default(), &object)
                    .await
                    .expect("create a control plane");
                if concurrency == 1 {
                    // Latency: the next create waits until this one is Ready.
                    while sent.lock().unwrap().contains_key(&name) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        })
        .await;
    let deadline = Instant::now() + Duration::from_secs(600);
    while took.lock().unwrap().len() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watch.abort();
    let mut took = std::mem::take(&mut *took.lock().unwrap());
    assert_eq!(took.len(), count, "every control plane became Ready");
    took.sort();
    took
}

async fn shared(label: &str, count: usize, postgres_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let client = start(dir.path(), postgres_url).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_mib();
    let spec = json!({"type": "k8s", "backend": "shared"});
    let spaced = create_until_ready(&client, "spaced", SPACED, 1, SPACING, spec.clone()).await;
    let started = Instant::now();
    let one = create_until_ready(
        &client,
        "one",
        ONE_AT_A_TIME,
        1,
        Duration::ZERO,
        spec.clone(),
    )
    .await;
    let one_rate = ONE_AT_A_TIME as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let many = create_until_ready(&client, "many", count, CONCURRENCY, Duration::ZERO, spec).await;
    let many_rate = count as f64 / started.elapsed().as_secs_f64();
    // The burst leaves work behind (new tenants' controllers' writes, spare stores being
    // refilled): wait until a second passes with under 2% of a core used.
    let burst_ended = Instant::now();
    loop {
        let before = cpu_time();
        tokio::time::sleep(Duration::from_secs(1)).await;
        if (cpu_time() - before).as_secs_f64() < 0.02
            || burst_ended.elapsed() > Duration::from_secs(120)
        {
            break;
        }
    }
    let settled_after = burst_ended.elapsed();
    let rss_after = rss_mib();
    let tenants = SPACED + ONE_AT_A_TIME + count;
    let idle_seconds = 10;
    let cpu_before = cpu_time();
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    let idle_cpu = cpu_time() - cpu_before;
    println!(
        "| {label} | {SPACED} | 1, {} ms apart | - | {:.1} | {:.1} |",
        SPACING.as_millis(),
        percentile(&spaced, 0.50),
        percentile(&spaced, 0.99),
    );
    for (concurrency, rate, took) in [(1, one_rate, &one), (CONCURRENCY, many_rate, &many)] {
        println!(
            "| {label} | {} | {concurrency} | {rate:.0} | {:.1} | {:.1} |",
            took.len(),
            percentile(took, 0.50),
            percentile(took, 0.99),
        );
    }
    println!(
        "\n{label}: settled {:.1} s after the burst",
        settled_after.as_secs_f64()
    );
    println!(
        "\n{label}: {tenants} idle control planes: RSS {rss_before:.1} → {rss_after:.1} MiB \
         ({:.3} MiB per tenant), CPU while idle {:.2}% of one core (over {idle_seconds} s)\n",
        (rss_after - rss_before) / tenants as f64,
        idle_cpu.as_secs_f64() * 100.0 / idle_seconds as f64,
    );
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("KFLEX_BENCH_TENANTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    println!("\n| backend | control planes | at once | creates/s | create→Ready p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    shared("shared: embedded SQLite", count, None).await;
    if let Ok(url) = std::env::var(kflex_e2e::POSTGRES_URL_ENV) {
        shared("shared: PostgreSQL", count, Some(&url)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let client = start(dir.path(), None).await;
    let dedicated = 5;
    let spec = json!({"type": "k8s", "backend": "dedicated"});
    let took = create_until_ready(&client, "etcd", dedicated, 1, Duration::ZERO, spec).await;
    println!(
        "\ndedicated etcd: {dedicated} control planes, create→Ready p50 {:.0} ms, max {:.0} ms",
        percentile(&took, 0.50),
        took.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );
}
