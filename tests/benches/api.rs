//! The API benchmark: one process serving 100 tenant control planes (embedded SQLite, one
//! file each) behind one TLS listener, driven by 16 concurrent kube-rs clients.
//!
//! Run with `scripts/bench api`. Prints, per phase, operations per second and latency
//! p50/p99: creates, gets, strategic merge patches, server-side applies, lists of 500
//! objects, and watch delivery latency (from the create call to the event reaching a
//! kube-rs watch). Also prints the resident memory of the process with the control planes
//! idle and after the run. The clients run in the same
//! process and on the same two cores as the server, so the figures are conservative.
//! `KFLEX_BENCH_SECONDS` sets the length of each phase (default 5).

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kflex_controlplane::authn::{Authenticator, User};
use kflex_controlplane::pki::CertificateAuthority;
use kflex_controlplane::{server, ControlPlane, Router};
use kflex_e2e::bench::{percentile, rss_mib};
use kflex_storage_backends::sqlite::{SqliteOptions, SqliteStore};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The allocator of the `kflex` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
const TENANTS: usize = 100;
const CLIENTS: usize = 16;
const LIST_SIZE: usize = 500;

struct Phase {
    name: &'static str,
    ops: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Phase {
    fn print(&mut self) {
        self.latencies.sort();
        println!(
            "| {} | {:.0} | {:.2} | {:.2} |",
            self.name,
            self.ops as f64 / self.elapsed.as_secs_f64(),
            percentile(&self.latencies, 0.50),
            percentile(&self.latencies, 0.99)
        );
    }
}

/// Runs `op(worker, i)` from `CLIENTS` tasks for `duration`, timing each call.
async fn run<F, Fut>(name: &'static str, duration: Duration, op: F) -> Phase
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let ops = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|w| {
            let (op, latencies, ops) = (op.clone(), latencies.clone(), ops.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                let mut i = 0;
                while started.elapsed() < duration {
                    let t = Instant::now();
                    op(w, i).await;
                    mine.push(t.elapsed());
                    i += 1;
                    ops.fetch_add(1, Ordering::Relaxed);
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("benchmark client");
    }
    let latencies = std::mem::take(&mut *latencies.lock().unwrap());
    Phase {
        name,
        ops: ops.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        latencies,
    }
}

fn configmap(name: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.into());
    cm.data = Some([("key".to_string(), "v".repeat(256))].into());
    cm
}

#[tokio::main]
async fn main() {
    let phase = Duration::from_secs(
        std::env::var("KFLEX_BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let rss_empty = rss_mib();

    let server_ca = CertificateAuthority::generate("bench-ca").unwrap();
    let host = tenant(dir.path(), "host").await;
    let router = Arc::new(Router::new(host));
    for i in 0..TENANTS {
        router.add_tenant(tenant(dir.path(), &format!("t{i}")).await);
    }
    let cert = server_ca
        .server_certificate(&["localhost"], &["127.0.0.1".parse().unwrap()])
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(server::serve(
        listener,
        server::tls_config(&cert).unwrap(),
        router,
        std::future::pending(),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = rss_mib();

    let clients: Arc<Vec<Api<ConfigMap>>> = Arc::new(
        (0..TENANTS)
            .map(|i| {
                let mut config = kube::Config::new(
                    format!("https://127.0.0.1:{port}/clusters/t{i}")
                        .parse()
                        .unwrap(),
                );
                config.root_cert = Some(vec![server_ca.certificate.cert_der.to_vec()]);
                config.auth_info.token = Some(format!("token-t{i}").into());
                Api::namespaced(kube::Client::try_from(config).unwrap(), "default")
            })
            .collect(),
    );

    println!("\n| phase ({TENANTS} control planes, {CLIENTS} clients) | ops/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    let created = Arc::new(Mutex::new(Vec::new()));
    let mut creates = {
        let (clients, created) = (clients.clone(), created.clone());
        run("create configmap", phase, move |w, i| {
            let (clients, created) = (clients.clone(), created.clone());
            async move {
                let tenant = (w + i * CLIENTS) % TENANTS;
                let name = format!("cm-{w}-{i}");
                clients[tenant]
                    .create(&PostParams::default(), &configmap(&name))
                    .await
                    .expect("create");
                created.lock().unwrap().push((tenant, name));
            }
        })
        .await
    };
    creates.print();
    let created: Arc<Vec<(usize, String)>> =
        Arc::new(std::mem::take(&mut *created.lock().unwrap()));
    let mut gets = {
        let (clients, created) = (clients.clone(), created.clone());
        run("get configmap", phase, move |w, i| {
            let (clients, created) = (clients.clone(), created.clone());
            async move {
                let (tenant, name) = &created[(w * 7919 + i) % created.len()];
                clients[*tenant].get(name).await.expect("get");
            }
        })
        .await
    };
    gets.print();

    let mut patches = {
        let (clients, created) = (clients.clone(), created.clone());
        run("strategic merge patch configmap", phase, move |w, i| {
            let (clients, created) = (clients.clone(), created.clone());
            async move {
                let (tenant, name) = &created[(w * 7919 + i) % created.len()];
                let patch =
                    Patch::Strategic(serde_json::json!({"data": {"patched": i.to_string()}}));
                clients[*tenant]
                    .patch(name, &PatchParams::default(), &patch)
                    .await
                    .expect("strategic merge patch");
            }
        })
        .await
    };
    patches.print();
    let mut applies = {
        let (clients, created) = (clients.clone(), created.clone());
        run("server-side apply configmap", phase, move |w, i| {
            let (clients, created) = (clients.clone(), created.clone());
            async move {
                let (tenant, name) = &created[(w * 7919 + i) % created.len()];
                let applied = Patch::Apply(serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": name},
                    "data": {"applied": i.to_string()},
                }));
                clients[*tenant]
                    .patch(name, &PatchParams::apply("bench").force(), &applied)
                    .await
                    .expect("server-side apply");
            }
        })
        .await
    };
    applies.print();

    let listed = Api::<ConfigMap>::namespaced(clients[0].clone().into_client(), "kube-public");
    for i in 0..LIST_SIZE {
        listed
            .create(&PostParams::default(), &configmap(&format!("item-{i:04}")))
            .await
            .expect("create list item");
    }
    let mut lists = run("list 500 configmaps", phase, move |_, _| {
        let listed = listed.clone();
        async move {
            let list = listed
                .list(&ListParams::default().limit(LIST_SIZE as u32))
                .await
                .expect("list");
            assert_eq!(list.items.len(), LIST_SIZE);
        }
    })
    .await;
    lists.print();

    // Watch delivery: one watch per client's tenant; each client writes to its tenant.
    let sent: Arc<Mutex<std::collections::HashMap<String, Instant>>> = Arc::default();
    let arrivals: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let mut watchers = Vec::new();
    for w in 0..CLIENTS {
        let api = clients[w].clone();
        let (sent, arrivals) = (sent.clone(), arrivals.clone());
        let rv = api
            .list(&ListParams::default().limit(1))
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap();
        watchers.push(tokio::spawn(async move {
            let mut stream = api
                .watch(&WatchParams::default().timeout(290), &rv)
                .await
                .expect("watch")
                .boxed();
            while let Some(Ok(event)) = stream.next().await {
                if let WatchEvent::Added(cm) = event {
                    let name = cm.metadata.name.unwrap_or_default();
                    if let Some(at) = sent.lock().unwrap().remove(&name) {
                        arrivals.lock().unwrap().push(at.elapsed());
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let writes = {
        let (clients, sent) = (clients.clone(), sent.clone());
        run("watch: create", phase, move |w, i| {
            let (clients, sent) = (clients.clone(), sent.clone());
            async move {
                let name = format!("watched-{w}-{i}");
                sent.lock().unwrap().insert(name.clone(), Instant::now());
                clients[w]
                    .create(&PostParams::default(), &configmap(&name))
                    .await
                    .expect("create watched");
            }
        })
        .await
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut delivered = Phase {
        name: "watch delivery (create call to event)",
        ops: writes.ops,
        elapsed: writes.elapsed,
        latencies: std::mem::take(&mut *arrivals.lock().unwrap()),
    };
    delivered.print();
    for watcher in watchers {
        watcher.abort();
    }
    println!(
        "\nresident memory: {rss_empty:.1} MiB before, {rss_idle:.1} MiB with {TENANTS} idle control planes \
         ({:.2} MiB each), {:.1} MiB after the run (clients included)",
        (rss_idle - rss_empty) / TENANTS as f64,
        rss_mib()
    );
}

async fn tenant(dir: &std::path::Path, name: &str) -> Arc<ControlPlane> {
    let mut authn = Authenticator::default();
    authn.add_token(
        format!("token-{name}"),
        User {
            name: "bench".into(),
            uid: String::new(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        },
    );
    let store = SqliteStore::open(dir.join(format!("{name}.db")), SqliteOptions::default())
        .await
        .expect("store");
    ControlPlane::start(name, Arc::new(store), authn)
        .await
        .expect("control plane")
}
