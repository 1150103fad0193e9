//! Crash safety: a child process writes continuously and is killed with SIGKILL; on
//! reopening, every write it acknowledged is present and revisions keep increasing.
//!
//! The child is this test binary run again with `--exact crash::crash_child_writer`
//! and `KFLEX_CRASH_CHILD` naming the store to write to.

use bytes::Bytes;
use kflex_storage_backends::Store;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "KFLEX_CRASH_CHILD";
const WRITERS: usize = 8;

/// Which store the child writes to; it reopens the same one.
#[derive(Clone, Debug)]
pub enum Target {
    Sqlite(std::path::PathBuf),
    Postgres { url: String, store: String },
}

impl Target {
    fn encode(&self) -> String {
        match self {
            Target::Sqlite(path) => format!("sqlite\n{}", path.display()),
            Target::Postgres { url, store } => format!("postgres\n{url}\n{store}"),
        }
    }

    fn decode(spec: &str) -> Target {
        let parts: Vec<&str> = spec.split('\n').collect();
        match parts.as_slice() {
            ["sqlite", path] => Target::Sqlite(path.into()),
            ["postgres", url, store] => Target::Postgres {
                url: url.to_string(),
                store: store.to_string(),
            },
            _ => panic!("bad {CHILD_ENV}: {spec:?}"),
        }
    }

    async fn open(&self) -> Arc<dyn Store> {
        match self {
            Target::Sqlite(path) => Arc::new(
                kflex_storage_backends::sqlite::SqliteStore::open(path, Default::default())
                    .await
                    .unwrap(),
            ),
            Target::Postgres { url, store } => {
                let server = kflex_storage_backends::postgres::PostgresServer::connect(
                    url,
                    Default::default(),
                )
                .await
                .unwrap();
                Arc::new(server.ensure_store(store).await.unwrap())
            }
        }
    }
}

fn value(writer: usize, i: usize) -> Bytes {
    Bytes::from(format!(
        "{{\"writer\":{writer},\"i\":{i},\"pad\":\"{}\"}}",
        "x".repeat(200)
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the child half of the crash tests, run by them with KFLEX_CRASH_CHILD set"]
async fn crash_child_writer() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Target::decode(&spec).open().await;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("/crash/{writer}/{i:08}");
                    let rev = store
                        .create(key.as_bytes(), value(writer, i), None)
                        .await
                        .unwrap();
                    // One write(2) per line: the parent sees whole lines only.
                    let line = format!("ack {writer} {i} {rev}\n");
                    std::io::stdout().lock().write_all(line.as_bytes()).unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// Runs the child against `target`, kills it after `acks` acknowledged writes, and checks
/// every acknowledged write survived.
pub async fn kill_writer_and_check(target: Target, acks: usize) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash::crash_child_writer",
            "--nocapture",
            "--include-ignored",
        ])
        .env(CHILD_ENV, target.encode())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let counted = Arc::new(AtomicUsize::new(0));
    let reader = {
        let counted = counted.clone();
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let fields: Vec<&str> = line.split(' ').collect();
                if let ["ack", writer, i, rev] = fields.as_slice() {
                    acked.push((
                        writer.parse::<usize>().unwrap(),
                        i.parse::<usize>().unwrap(),
                        rev.parse::<i64>().unwrap(),
                    ));
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            }
            acked
        })
    };
    let started = Instant::now();
    while counted.load(Ordering::Relaxed) < acks {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the child acknowledged too few writes in 60 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child writer exited early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL, in the middle of further writes
    child.wait().unwrap();
    // Lines already in the pipe were acknowledged before the kill: they count too.
    let acked = reader.join().unwrap();
    assert!(acked.len() >= acks);

    let store = target.open().await;
    let mut newest = 0;
    for (writer, i, rev) in &acked {
        let key = format!("/crash/{writer}/{i:08}");
        let (kv, _) = store.get(key.as_bytes(), None).await.unwrap();
        let kv =
            kv.unwrap_or_else(|| panic!("acknowledged write {key} at revision {rev} was lost"));
        assert_eq!(kv.mod_revision, *rev, "{key}");
        assert_eq!(kv.value, value(*writer, *i), "{key}");
        newest = newest.max(*rev);
    }
    let after = store
        .create(b"/crash/after", Bytes::from_static(b"x"), None)
        .await
        .unwrap();
    assert!(
        after > newest,
        "revision {after} after the crash must exceed {newest}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_every_acknowledged_write_across_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    kill_writer_and_check(Target::Sqlite(dir.path().join("crash.db")), 2000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_every_acknowledged_write_across_sigkill() {
    let store = format!("crash-{}-{}", std::process::id(), rand::random::<u32>());
    kill_writer_and_check(
        Target::Postgres {
            url: kflex_e2e::postgres_url(),
            store,
        },
        2000,
    )
    .await;
}
