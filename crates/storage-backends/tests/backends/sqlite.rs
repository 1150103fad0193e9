//! Tests specific to the SQLite backend: reopening, exclusive use, bad paths, a full disk.

use bytes::Bytes;
use kflex_storage_backends::sqlite::{SqliteOptions, SqliteStore};
use kflex_storage_backends::{Store, StoreError};
use std::time::Duration;

async fn open(path: &std::path::Path) -> kflex_storage_backends::Result<SqliteStore> {
    SqliteStore::open(path, SqliteOptions::default()).await
}

#[tokio::test]
async fn reopening_keeps_data_revisions_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = open(&path).await.unwrap();
    let kept = store
        .create(b"/a", Bytes::from_static(b"kept"), None)
        .await
        .unwrap();
    store
        .create(
            b"/ttl",
            Bytes::from_static(b"short"),
            Some(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    store.close().await;

    let store = open(&path).await.unwrap();
    let (kv, _) = store.get(b"/a", None).await.unwrap();
    assert_eq!(kv.unwrap().mod_revision, kept);
    let next = store
        .create(b"/b", Bytes::from_static(b"x"), None)
        .await
        .unwrap();
    assert!(next > kept + 1, "revisions continue after reopening");
    // Expiry timers are rebuilt from the table on open.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(store.get(b"/ttl", None).await.unwrap().0.is_none());
}

#[tokio::test]
async fn a_store_open_elsewhere_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let first = open(&path).await.unwrap();
    // Its only writer, which can keep what it learns of the store.
    assert!(first.exclusive());
    match open(&path).await {
        Err(StoreError::Unavailable {
            backend: "sqlite",
            message,
        }) => {
            assert!(message.contains("open in another process"), "{message}")
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("a second open of the same store must fail"),
    }
}

#[tokio::test]
async fn a_path_that_cannot_hold_a_store_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("s.db");
    match open(&path).await {
        Err(StoreError::Unavailable {
            backend: "sqlite",
            message,
        }) => {
            assert!(message.contains("missing-dir"), "names the path: {message}")
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("opening in a missing directory must fail"),
    }
}

#[tokio::test]
async fn destroy_removes_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = open(&path).await.unwrap();
    store
        .create(b"/a", Bytes::from_static(b"x"), None)
        .await
        .unwrap();
    store.close().await;
    SqliteStore::destroy(&path).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    SqliteStore::destroy(&path).unwrap();
}

/// A full disk, simulated with RLIMIT_FSIZE (nextest runs each test in its own process,
/// so the limit touches no other test): writes fail with a clear error and lose nothing
/// acknowledged; once space is back, writes succeed again.
#[tokio::test]
async fn a_full_disk_fails_writes_cleanly_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = open(&path).await.unwrap();
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let key = format!("/before/{i}");
        acknowledged.push((
            key.clone(),
            store
                .create(key.as_bytes(), Bytes::from(vec![1u8; 1024]), None)
                .await
                .unwrap(),
        ));
    }
    let used: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .max()
        .unwrap();
    set_file_size_limit(used + 64 * 1024);

    let mut failure = None;
    for i in 0..2000 {
        let key = format!("/during/{i}");
        match store
            .create(key.as_bytes(), Bytes::from(vec![2u8; 16 * 1024]), None)
            .await
        {
            Ok(rev) => acknowledged.push((key, rev)),
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
    }
    match failure {
        Some(StoreError::Unavailable {
            backend: "sqlite",
            message,
        }) => {
            assert!(!message.is_empty());
        }
        other => panic!("expected the full disk to fail a write with Unavailable, got {other:?}"),
    }

    set_file_size_limit(libc::RLIM_INFINITY);
    let after = store
        .create(b"/after", Bytes::from_static(b"ok"), None)
        .await
        .unwrap();
    for (key, rev) in &acknowledged {
        let (kv, _) = store.get(key.as_bytes(), None).await.unwrap();
        assert_eq!(
            kv.unwrap_or_else(|| panic!("{key} lost")).mod_revision,
            *rev
        );
        assert!(after > *rev);
    }
}

fn set_file_size_limit(bytes: u64) {
    // Without this, exceeding the limit kills the process with SIGXFSZ instead of
    // failing the write with EFBIG.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: bytes as libc::rlim_t,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}
