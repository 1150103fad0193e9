//! The storage benchmark: one workload through every backend, printed as a table.
//!
//! Run it with `scripts/bench storage` (it starts PostgreSQL with fsync on, and etcd is
//! run by the dedicated-backend supervisor). Phases, each at concurrency 1 and 16, each
//! running for `KFLEX_BENCH_SECONDS` (default 2): creates, updates (compare-and-swap),
//! gets, ranges of 1,000 keys, and watch delivery latency (from the write call to the
//! event's arrival at a watcher). Then 1,000 PostgreSQL stores are opened and left idle
//! for `KFLEX_BENCH_IDLE_SECONDS` (default 30): the queries per second they cause and the
//! connections they hold are reported.

use bytes::Bytes;
use futures::StreamExt;
use kflex_storage_backends::etcd::{EtcdSupervisor, EtcdSupervisorConfig};
use kflex_storage_backends::postgres::{PostgresOptions, PostgresServer};
use kflex_storage_backends::sqlite::{SqliteOptions, SqliteStore, SqliteSync};
use kflex_storage_backends::{RangeRequest, Store};
use sqlx::Connection;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONCURRENCY: [usize; 2] = [1, 16];
const VALUE_SIZE: usize = 1024;

fn seconds(var: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default),
    )
}

fn value() -> Bytes {
    Bytes::from(vec![b'v'; VALUE_SIZE])
}

/// One row of the table.
struct Measured {
    backend: String,
    concurrency: usize,
    creates: f64,
    updates: f64,
    gets: f64,
    ranges: f64,
    watch_p50: Duration,
    watch_p99: Duration,
}

/// Runs `op(worker, i)` from `workers` tasks until `duration` passes; returns ops/s.
async fn rate<F, Fut>(workers: usize, duration: Duration, op: F) -> f64
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (op, done) = (op.clone(), done.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while started.elapsed() < duration {
                    op(w, i).await;
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("benchmark worker");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

async fn measure(
    backend: &str,
    store: Arc<dyn Store>,
    concurrency: usize,
    phase: Duration,
) -> Measured {
    let run = format!("/registry/bench/c{concurrency}");
    // Creates: fresh keys. The keys written are the ones later updated and read.
    let written = Arc::new(std::sync::Mutex::new(Vec::new()));
    let creates = {
        let (store, run, written) = (store.clone(), run.clone(), written.clone());
        rate(concurrency, phase, move |w, i| {
            let (store, written) = (store.clone(), written.clone());
            let key = format!("{run}/objects/{w}-{i:08}");
            async move {
                let rev = store
                    .create(key.as_bytes(), value(), None)
                    .await
                    .expect("create");
                written.lock().unwrap().push((key, rev));
            }
        })
        .await
    };
    let keys: Arc<Vec<(String, i64)>> = Arc::new(std::mem::take(&mut *written.lock().unwrap()));
    // Updates: compare-and-swap on distinct keys per worker, tracking each key's revision.
    let revisions: Arc<Vec<std::sync::Mutex<i64>>> = Arc::new(
        keys.iter()
            .map(|(_, r)| std::sync::Mutex::new(*r))
            .collect(),
    );
    let updates = {
        let (store, keys, revisions) = (store.clone(), keys.clone(), revisions.clone());
        rate(concurrency, phase, move |w, i| {
            let (store, keys, revisions) = (store.clone(), keys.clone(), revisions.clone());
            async move {
                let n = (w + i * concurrency) % keys.len();
                let expected = *revisions[n].lock().unwrap();
                match store
                    .update(keys[n].0.as_bytes(), value(), expected, None)
                    .await
                {
                    Ok(rev) => *revisions[n].lock().unwrap() = rev,
                    // Two workers may land on the same key once the keys wrap around.
                    Err(kflex_storage_backends::StoreError::Conflict {
                        current: Some(c), ..
                    }) => *revisions[n].lock().unwrap() = c.mod_revision,
                    Err(e) => panic!("update: {e}"),
                }
            }
        })
        .await
    };
    let gets = {
        let (store, keys) = (store.clone(), keys.clone());
        rate(concurrency, phase, move |w, i| {
            let (store, keys) = (store.clone(), keys.clone());
            async move {
                let key = &keys[(w * 7919 + i) % keys.len()].0;
                store
                    .get(key.as_bytes(), None)
                    .await
                    .expect("get")
                    .0
                    .expect("key exists");
            }
        })
        .await
    };
    // Ranges of 1,000 keys under their own prefix.
    let range_prefix = format!("{run}/range/");
    for i in 0..1000 {
        store
            .create(format!("{range_prefix}{i:04}").as_bytes(), value(), None)
            .await
            .expect("create range key");
    }
    let ranges = {
        let store = store.clone();
        rate(concurrency, phase, move |_, _| {
            let (store, prefix) = (store.clone(), range_prefix.clone());
            async move {
                let page = store
                    .range(RangeRequest {
                        prefix: prefix.into_bytes(),
                        ..Default::default()
                    })
                    .await
                    .expect("range");
                assert_eq!(page.kvs.len(), 1000);
            }
        })
        .await
    };
    let (watch_p50, watch_p99) = watch_latency(store, &run, concurrency, phase).await;
    Measured {
        backend: backend.to_owned(),
        concurrency,
        creates,
        updates,
        gets,
        ranges,
        watch_p50,
        watch_p99,
    }
}

/// Writers create keys while one watcher receives them; latency is from the create call
/// to the event's arrival.
async fn watch_latency(
    store: Arc<dyn Store>,
    run: &str,
    concurrency: usize,
    phase: Duration,
) -> (Duration, Duration) {
    let prefix = format!("{run}/watched/");
    let from = store.current_revision().await.expect("revision");
    let mut watch = store.watch(prefix.as_bytes(), from).await.expect("watch");
    let sent: Arc<sent_times::SentTimes> = Arc::new(sent_times::SentTimes::default());
    let epoch = Instant::now();
    let writes = {
        let (store, sent, prefix) = (store.clone(), sent.clone(), prefix.clone());
        tokio::spawn(rate(concurrency, phase, move |w, i| {
            let (store, sent) = (store.clone(), sent.clone());
            let key = format!("{prefix}{w}-{i:08}");
            async move {
                sent.record(&key, epoch.elapsed());
                store
                    .create(key.as_bytes(), value(), None)
                    .await
                    .expect("create");
            }
        }))
    };
    let mut latencies = Vec::new();
    let receive = async {
        while let Some(event) = watch.next().await {
            let arrived = epoch.elapsed();
            let event = event.expect("watch event");
            let key = String::from_utf8(event.kv.key).expect("utf-8 key");
            if let Some(at) = sent.take(&key) {
                latencies.push(arrived.saturating_sub(at));
            }
        }
    };
    let _ = tokio::time::timeout(phase + Duration::from_secs(2), receive).await;
    writes.await.expect("writers");
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    (pick(0.50), pick(0.99))
}

/// The send time of each watched key.
mod sent_times {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Duration;

    #[derive(Default)]
    pub struct SentTimes(Mutex<HashMap<String, Duration>>);

    impl SentTimes {
        pub fn record(&self, key: &str, at: Duration) {
            self.0.lock().unwrap().insert(key.to_owned(), at);
        }
        pub fn take(&self, key: &str) -> Option<Duration> {
            self.0.lock().unwrap().remove(key)
        }
    }
}

/// Opens 1,000 stores on one server, leaves them idle, and counts the transactions they
/// cause and the connections they hold. The stores live in a database of their own, so
/// the probe's statements are not counted; PostgreSQL flushes a backend's statistics up
/// to 10 s late, so the window is preceded and followed by 11 s of settling.
async fn idle_postgres_stores(url: &str, idle: Duration) -> (usize, f64, i64, u32) {
    const STORES: usize = 1000;
    const DATABASE: &str = "kflex_idle_bench";
    const SETTLE: Duration = Duration::from_secs(11);
    let mut probe = sqlx::PgConnection::connect(url)
        .await
        .expect("probe connection");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {DATABASE}"))
        .execute(&mut probe)
        .await
        .expect("drop database");
    sqlx::query(&format!("CREATE DATABASE {DATABASE}"))
        .execute(&mut probe)
        .await
        .expect("create database");
    let (server_url, _) = url.rsplit_once('/').expect("a URL with a database");
    let options = PostgresOptions::default();
    let pool_size = options.max_connections;
    let server = PostgresServer::connect(&format!("{server_url}/{DATABASE}"), options)
        .await
        .expect("connect");
    let mut stores = Vec::new();
    for i in 0..STORES {
        stores.push(
            server
                .ensure_store(&format!("idle-{i}"))
                .await
                .expect("store"),
        );
    }
    tokio::time::sleep(SETTLE).await;
    let before = transactions(&mut probe, DATABASE).await;
    tokio::time::sleep(idle + SETTLE).await;
    let after = transactions(&mut probe, DATABASE).await;
    let per_second = (after - before) as f64 / (idle + SETTLE).as_secs_f64();
    let (connections,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'",
    )
    .bind(DATABASE)
    .fetch_one(&mut probe)
    .await
    .expect("pg_stat_activity");
    drop(stores);
    drop(server);
    (STORES, per_second, connections, pool_size)
}

/// Transactions committed or rolled back in `database`, as the statistics say now.
async fn transactions(probe: &mut sqlx::PgConnection, database: &str) -> i64 {
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *probe)
        .await
        .expect("clear snapshot");
    let (n,): (i64,) = sqlx::query_as(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = $1",
    )
    .bind(database)
    .fetch_one(probe)
    .await
    .expect("pg_stat_database");
    n
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let phase = seconds("KFLEX_BENCH_SECONDS", 2);
    let idle = seconds("KFLEX_BENCH_IDLE_SECONDS", 30);
    let postgres_url = std::env::var("KFLEX_TEST_POSTGRES_URL")
        .expect("run through scripts/bench: KFLEX_TEST_POSTGRES_URL");
    let etcd_bin = std::env::var("KFLEX_ETCD_BIN").unwrap_or_else(|_| "etcd".into());
    let dir = tempfile::tempdir().expect("temporary directory");

    let mut rows = Vec::new();
    for concurrency in CONCURRENCY {
        let tag = format!("c{concurrency}");
        for (name, sync) in [
            ("sqlite (synchronous=NORMAL)", SqliteSync::Normal),
            ("sqlite (synchronous=FULL)", SqliteSync::Full),
        ] {
            let path = dir.path().join(format!("{tag}-{sync:?}.db"));
            let options = SqliteOptions {
                sync,
                ..Default::default()
            };
            let store: Arc<dyn Store> =
                Arc::new(SqliteStore::open(&path, options).await.expect("sqlite"));
            rows.push(measure(name, store, concurrency, phase).await);
        }
        let server = PostgresServer::connect(&postgres_url, PostgresOptions::default())
            .await
            .expect("postgres");
        let store_name = format!("bench-{tag}-{}", std::process::id());
        let store: Arc<dyn Store> = Arc::new(
            server
                .ensure_store(&store_name)
                .await
                .expect("postgres store"),
        );
        rows.push(measure("postgres (shared, fsync on)", store, concurrency, phase).await);
        server.drop_store(&store_name).await.expect("drop store");

        let mut config = EtcdSupervisorConfig::new(
            dir.path().join(format!("etcd-{tag}")),
            format!("bench-{tag}"),
        );
        config.etcd_bin = etcd_bin.clone().into();
        let etcd = EtcdSupervisor::start(config).await.expect("etcd");
        let store: Arc<dyn Store> = Arc::new(etcd.store().await.expect("etcd store"));
        rows.push(
            measure(
                "etcd 3.4 (dedicated, real server)",
                store,
                concurrency,
                phase,
            )
            .await,
        );
        etcd.destroy().await.expect("stop etcd");
    }

    println!("\n| backend | conc. | creates/s | updates/s | gets/s | ranges of 1,000/s | watch p50 ms | watch p99 ms |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.1} | {} | {} |",
            r.backend,
            r.concurrency,
            r.creates,
            r.updates,
            r.gets,
            r.ranges,
            ms(r.watch_p50),
            ms(r.watch_p99)
        );
    }

    let (stores, qps, connections, pool) = idle_postgres_stores(&postgres_url, idle).await;
    println!(
        "\nidle: {stores} PostgreSQL stores open for {} s: {qps:.3} transactions/s, {connections} connections held (pool size {pool}, plus 1 listener)",
        idle.as_secs() + 11
    );
}
