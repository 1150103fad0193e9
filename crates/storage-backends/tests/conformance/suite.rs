//! The behaviour every backend must share, written once against `dyn Store`.

use bytes::Bytes;
use futures::StreamExt;
use kflex_storage_backends::{Event, EventKind, RangeRequest, Store, StoreError, WatchStream};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Revision numbers are only compared, never assumed: a shared etcd counts every tenant's writes.
pub async fn revisions_increase_and_reads_see_history(store: Arc<dyn Store>) {
    let start = store.current_revision().await.unwrap();
    let r1 = store
        .create(b"/registry/configmaps/default/a", v("one"), None)
        .await
        .unwrap();
    assert!(r1 > start);
    let r2 = store
        .update(b"/registry/configmaps/default/a", v("two"), r1, None)
        .await
        .unwrap();
    assert!(r2 > r1);
    let r3 = store
        .create(b"/registry/configmaps/default/b", v("b"), None)
        .await
        .unwrap();
    assert!(r3 > r2);
    assert!(store.current_revision().await.unwrap() >= r3);

    let (kv, read_at) = store
        .get(b"/registry/configmaps/default/a", None)
        .await
        .unwrap();
    let kv = kv.unwrap();
    assert!(read_at >= r3);
    assert_eq!(
        (kv.value.as_ref(), kv.create_revision, kv.mod_revision),
        (&b"two"[..], r1, r2)
    );

    let (old, at) = store
        .get(b"/registry/configmaps/default/a", Some(r1))
        .await
        .unwrap();
    assert_eq!(at, r1);
    assert_eq!(old.unwrap().value.as_ref(), b"one");
    let (before, _) = store
        .get(b"/registry/configmaps/default/b", Some(r2))
        .await
        .unwrap();
    assert!(before.is_none(), "b did not exist at {r2}");
    assert!(store
        .get(b"/registry/configmaps/default/missing", None)
        .await
        .unwrap()
        .0
        .is_none());

    let future = store.current_revision().await.unwrap() + 1000;
    match store
        .get(b"/registry/configmaps/default/a", Some(future))
        .await
    {
        Err(StoreError::FutureRevision { requested, .. }) => assert_eq!(requested, future),
        other => panic!("expected FutureRevision, got {other:?}"),
    }
}

pub async fn create_refuses_an_existing_key(store: Arc<dyn Store>) {
    let rev = store.create(b"/k", v("first"), None).await.unwrap();
    match store.create(b"/k", v("second"), None).await {
        Err(StoreError::AlreadyExists { current }) => {
            assert_eq!(current.value.as_ref(), b"first");
            assert_eq!(current.mod_revision, rev);
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        store
            .get(b"/k", None)
            .await
            .unwrap()
            .0
            .unwrap()
            .value
            .as_ref(),
        b"first"
    );
}

pub async fn compare_and_swap_refuses_stale_writes(store: Arc<dyn Store>) {
    let r1 = store.create(b"/cas", v("1"), None).await.unwrap();
    let r2 = store.update(b"/cas", v("2"), r1, None).await.unwrap();
    match store.update(b"/cas", v("stale"), r1, None).await {
        Err(StoreError::Conflict {
            expected,
            current: Some(current),
            ..
        }) => {
            assert_eq!(expected, r1);
            assert_eq!(
                (current.value.as_ref(), current.mod_revision),
                (&b"2"[..], r2)
            );
        }
        other => panic!("expected Conflict with the current value, got {other:?}"),
    }
    match store.update(b"/cas-missing", v("x"), r1, None).await {
        Err(StoreError::Conflict { current: None, .. }) => {}
        other => panic!("expected Conflict without a current value, got {other:?}"),
    }
    match store.delete(b"/cas", Some(r1)).await {
        Err(StoreError::Conflict {
            current: Some(current),
            ..
        }) => assert_eq!(current.mod_revision, r2),
        other => panic!("expected Conflict on a stale delete, got {other:?}"),
    }
    let (deleted_at, prev) = store.delete(b"/cas", Some(r2)).await.unwrap();
    assert!(deleted_at > r2);
    assert_eq!((prev.value.as_ref(), prev.mod_revision), (&b"2"[..], r2));
    assert!(store.get(b"/cas", None).await.unwrap().0.is_none());
    match store.delete(b"/cas", None).await {
        Err(StoreError::NotFound { key }) => assert_eq!(key, b"/cas"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    match store.delete(b"/cas", Some(deleted_at)).await {
        Err(StoreError::Conflict { current: None, .. }) => {}
        other => {
            panic!("expected Conflict on a conditional delete of a missing key, got {other:?}")
        }
    }
    // A key created again starts a new incarnation.
    let again = store.create(b"/cas", v("3"), None).await.unwrap();
    let kv = store.get(b"/cas", None).await.unwrap().0.unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (again, again));
}

pub async fn unconditional_delete_returns_the_deleted_version(store: Arc<dyn Store>) {
    let r1 = store.create(b"/del", v("gone"), None).await.unwrap();
    let (rev, prev) = store.delete(b"/del", None).await.unwrap();
    assert!(rev > r1);
    assert_eq!(
        (prev.key.as_slice(), prev.value.as_ref(), prev.mod_revision),
        (&b"/del"[..], &b"gone"[..], r1)
    );
}

pub async fn range_pages_one_snapshot_while_writes_continue(store: Arc<dyn Store>) {
    let prefix = b"/registry/pods/ns/".to_vec();
    for i in 0..50 {
        store
            .create(&key(&prefix, i), v(&format!("v{i}")), None)
            .await
            .unwrap();
    }
    store
        .create(
            b"/registry/pods/ns0",
            v("outside: sorts right after the prefix"),
            None,
        )
        .await
        .unwrap();
    store
        .create(b"/registry/pods/n", v("outside: before the prefix"), None)
        .await
        .unwrap();

    let first = store
        .range(RangeRequest {
            prefix: prefix.clone(),
            limit: Some(7),
            ..Default::default()
        })
        .await
        .unwrap();
    let snapshot = first.revision;
    assert_eq!((first.kvs.len(), first.more, first.count), (7, true, 50));
    let expected: BTreeMap<Vec<u8>, Bytes> = (0..50)
        .map(|i| (key(&prefix, i), v(&format!("v{i}"))))
        .collect();

    let mut seen: BTreeMap<Vec<u8>, Bytes> = first
        .kvs
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    let mut last_key = first.kvs.last().unwrap().key.clone();
    let mut pages = 1;
    let mut writes = 0;
    loop {
        // Writes between pages: a new key, an update and a delete inside the range.
        let fresh = key(&prefix, 100 + writes);
        store.create(&fresh, v("new"), None).await.unwrap();
        let victim = key(&prefix, (writes * 7 + 3) % 50);
        if let (Some(kv), _) = store.get(&victim, None).await.unwrap() {
            store
                .update(&victim, v("changed"), kv.mod_revision, None)
                .await
                .unwrap();
            store.delete(&victim, None).await.unwrap();
        }
        writes += 1;

        let mut start = last_key.clone();
        start.push(0);
        let page = store
            .range(RangeRequest {
                prefix: prefix.clone(),
                start: Some(start),
                limit: Some(7),
                revision: Some(snapshot),
            })
            .await
            .unwrap();
        assert_eq!(page.revision, snapshot);
        assert_eq!(
            page.count as usize,
            50 - seen.len(),
            "count is what remains from the start key"
        );
        pages += 1;
        for kv in &page.kvs {
            assert!(kv.key > last_key, "keys come in byte order");
            last_key = kv.key.clone();
            seen.insert(kv.key.clone(), kv.value.clone());
        }
        if !page.more {
            break;
        }
    }
    assert_eq!(pages, 8);
    assert_eq!(seen, expected, "the pages together are the snapshot");

    let now = store
        .range(RangeRequest {
            prefix: prefix.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(now.revision > snapshot);
    assert!(!now.more);
    assert_eq!(now.count as usize, now.kvs.len());
    assert_eq!(store.count(&prefix).await.unwrap().0, now.count);
}

pub async fn watch_replays_history_then_follows_live_writes(store: Arc<dyn Store>) {
    let a = b"/registry/secrets/ns/a";
    let r1 = store.create(a, v("1"), None).await.unwrap();
    let r2 = store.update(a, v("2"), r1, None).await.unwrap();
    store
        .create(b"/registry/other/x", v("not watched"), None)
        .await
        .unwrap();
    let (r3, _) = store.delete(a, Some(r2)).await.unwrap();

    let mut watch = store.watch(b"/registry/secrets/", r1).await.unwrap();
    let update = next(&mut watch).await;
    assert_eq!(
        (update.kind, update.revision(), update.kv.value.as_ref()),
        (EventKind::Put, r2, &b"2"[..])
    );
    let prev = update.prev.expect("an update carries the previous version");
    assert_eq!((prev.value.as_ref(), prev.mod_revision), (&b"1"[..], r1));
    let delete = next(&mut watch).await;
    assert_eq!(
        (delete.kind, delete.revision(), delete.kv.key.as_slice()),
        (EventKind::Delete, r3, &a[..])
    );
    assert_eq!(
        delete
            .prev
            .expect("a delete carries the deleted version")
            .value
            .as_ref(),
        b"2"
    );

    let r4 = store
        .create(b"/registry/secrets/ns/b", v("live"), None)
        .await
        .unwrap();
    let created = next(&mut watch).await;
    assert_eq!(
        (created.kind, created.revision(), created.kv.create_revision),
        (EventKind::Put, r4, r4)
    );
    assert!(created.prev.is_none(), "a create has no previous version");
    store
        .create(b"/registry/other/y", v("not watched"), None)
        .await
        .unwrap();
    assert_quiet(&mut watch).await;
}

pub async fn watch_delivers_concurrent_writes_in_order_exactly_once(store: Arc<dyn Store>) {
    let from = store.current_revision().await.unwrap();
    let mut watch = store.watch(b"/registry/leases/", from).await.unwrap();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut revisions = Vec::new();
                for i in 0..50 {
                    let k = format!("/registry/leases/w{w}/{i}");
                    revisions.push(store.create(k.as_bytes(), v("x"), None).await.unwrap());
                }
                revisions
            })
        })
        .collect();
    let mut written = Vec::new();
    for writer in writers {
        written.extend(writer.await.unwrap());
    }
    written.sort();
    let mut seen = Vec::new();
    while seen.len() < written.len() {
        let event = next(&mut watch).await;
        if let Some(&last) = seen.last() {
            assert!(event.revision() > last, "revisions strictly increase");
        }
        seen.push(event.revision());
    }
    assert_eq!(seen, written);
    assert_quiet(&mut watch).await;
}

pub async fn watch_from_a_compacted_revision_fails(store: Arc<dyn Store>) {
    let r1 = store.create(b"/c/a", v("1"), None).await.unwrap();
    let r2 = store.update(b"/c/a", v("2"), r1, None).await.unwrap();
    let r3 = store.update(b"/c/a", v("3"), r2, None).await.unwrap();
    let r4 = store.create(b"/c/b", v("b"), None).await.unwrap();
    store.compact(r3).await.unwrap();
    assert!(store.compacted_revision().await.unwrap() >= r3);

    match store.watch(b"/c/", r1).await {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (r1, r3)),
        Ok(mut watch) => match watch.next().await {
            Some(Err(StoreError::Compacted { .. })) => {}
            other => panic!("expected Compacted, got {other:?}"),
        },
        Err(other) => panic!("expected Compacted, got {other:?}"),
    }
    match store.get(b"/c/a", Some(r1)).await {
        Err(StoreError::Compacted { .. }) => {}
        other => panic!("expected Compacted, got {other:?}"),
    }
    match store
        .range(RangeRequest {
            prefix: b"/c/".to_vec(),
            revision: Some(r2),
            ..Default::default()
        })
        .await
    {
        Err(StoreError::Compacted { .. }) => {}
        other => panic!("expected Compacted, got {other:?}"),
    }
    // The compaction revision itself and later stay readable and watchable.
    assert_eq!(
        store
            .get(b"/c/a", Some(r3))
            .await
            .unwrap()
            .0
            .unwrap()
            .value
            .as_ref(),
        b"3"
    );
    let mut watch = store.watch(b"/c/", r3).await.unwrap();
    assert_eq!(next(&mut watch).await.revision(), r4);
}

/// For stores opened with a compaction window of 10 revisions.
pub async fn history_is_compacted_automatically_keeping_the_window(store: Arc<dyn Store>) {
    let mut rev = store.create(b"/w", v("0"), None).await.unwrap();
    for i in 1..60 {
        rev = store
            .update(b"/w", v(&i.to_string()), rev, None)
            .await
            .unwrap();
    }
    let compacted = store.compacted_revision().await.unwrap();
    assert!(
        compacted >= rev - 16 && compacted <= rev - 10,
        "compacted {compacted}, current {rev}"
    );
    let kept = store.get(b"/w", Some(rev - 10)).await.unwrap().0.unwrap();
    assert_eq!(kept.mod_revision, rev - 10);
    match store.get(b"/w", Some(compacted - 1)).await {
        Err(StoreError::Compacted { .. }) => {}
        other => panic!("expected Compacted, got {other:?}"),
    }
}

pub async fn keys_expire_after_their_time_to_live(store: Arc<dyn Store>) {
    let from = store.current_revision().await.unwrap();
    let mut watch = store.watch(b"/registry/events/", from).await.unwrap();
    let written = store
        .create(
            b"/registry/events/ns/e1",
            v("event"),
            Some(Duration::from_secs(2)),
        )
        .await
        .unwrap();
    store
        .create(b"/registry/events/ns/keep", v("no ttl"), None)
        .await
        .unwrap();
    let kv = store
        .get(b"/registry/events/ns/e1", None)
        .await
        .unwrap()
        .0
        .unwrap();
    assert_eq!(kv.mod_revision, written);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let event = tokio::time::timeout_at(deadline, watch.next())
            .await
            .expect("the key expires within 15 s")
            .expect("watch open")
            .unwrap();
        if event.kind == EventKind::Delete {
            assert_eq!(event.kv.key, b"/registry/events/ns/e1");
            break;
        }
    }
    assert!(store
        .get(b"/registry/events/ns/e1", None)
        .await
        .unwrap()
        .0
        .is_none());
    assert!(store
        .get(b"/registry/events/ns/keep", None)
        .await
        .unwrap()
        .0
        .is_some());
}

pub async fn large_values_round_trip(store: Arc<dyn Store>) {
    let big: Bytes = (0..1536 * 1024)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let from = store.current_revision().await.unwrap();
    let mut watch = store.watch(b"/big/", from).await.unwrap();
    let rev = store.create(b"/big/one", big.clone(), None).await.unwrap();
    assert_eq!(
        store.get(b"/big/one", None).await.unwrap().0.unwrap().value,
        big
    );
    let event = next(&mut watch).await;
    assert_eq!((event.revision(), event.kv.value.len()), (rev, big.len()));
    assert_eq!(event.kv.value, big);
}

pub async fn keys_with_unusual_bytes_round_trip_in_byte_order(store: Arc<dyn Store>) {
    let keys: Vec<Vec<u8>> = vec![
        b"/u/\x00nul".to_vec(),
        b"/u/\x01".to_vec(),
        b"/u/ space and \"quotes\" 'single' %_ *".to_vec(),
        "/u/ünïcödé/名前".as_bytes().to_vec(),
        b"/u/\xfe\xff".to_vec(),
        b"/u/\xff".to_vec(),
        b"/u/\xff\xff\x00".to_vec(),
        b"/u/a\\b".to_vec(),
    ];
    for (i, k) in keys.iter().enumerate() {
        store.create(k, v(&i.to_string()), None).await.unwrap();
        assert_eq!(store.get(k, None).await.unwrap().0.unwrap().key, *k);
    }
    let all = store
        .range(RangeRequest {
            prefix: b"/u/".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        all.kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
        sorted
    );
    let high = store
        .range(RangeRequest {
            prefix: b"/u/\xff".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(high.kvs.len(), 2, "prefix ending in 0xff");
    match store.create(b"", v("x"), None).await {
        Err(StoreError::InvalidInput(_)) => {}
        other => panic!("an empty key is invalid input, got {other:?}"),
    }
}

pub async fn concurrent_writers_on_one_key_lose_no_update(store: Arc<dyn Store>) {
    const WRITERS: usize = 16;
    const INCREMENTS: usize = 20;
    store.create(b"/counter", v("0"), None).await.unwrap();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                for _ in 0..INCREMENTS {
                    let (mut kv, _) = store.get(b"/counter", None).await.unwrap();
                    loop {
                        let current = kv.as_ref().unwrap();
                        let n: usize = std::str::from_utf8(&current.value)
                            .unwrap()
                            .parse()
                            .unwrap();
                        match store
                            .update(
                                b"/counter",
                                v(&(n + 1).to_string()),
                                current.mod_revision,
                                None,
                            )
                            .await
                        {
                            Ok(_) => break,
                            Err(StoreError::Conflict { current, .. }) => {
                                conflicts += 1;
                                kv = current.map(|c| *c);
                            }
                            Err(other) => panic!("unexpected error: {other:?}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.unwrap();
    }
    let final_value = store.get(b"/counter", None).await.unwrap().0.unwrap();
    assert_eq!(
        std::str::from_utf8(&final_value.value).unwrap(),
        (WRITERS * INCREMENTS).to_string()
    );
    assert!(
        conflicts > 0,
        "16 writers on one key must have collided at least once"
    );
}

pub async fn size_covers_what_is_stored(store: Arc<dyn Store>) {
    assert!(store.size().await.unwrap().is_some_and(|bytes| bytes > 0));
    // 2 MiB of hexadecimal noise: at least 1 MiB once a backend has compressed it.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..32 {
        let value: String = (0..8 * 1024)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                format!("{:08x}", state as u32)
            })
            .collect::<String>()
            .chars()
            .take(64 * 1024)
            .collect();
        let key = format!("/registry/configmaps/size/{i}");
        store.create(key.as_bytes(), v(&value), None).await.unwrap();
    }
    // etcd's figure trails its writes until its next backend commit.
    let started = std::time::Instant::now();
    loop {
        let bytes = store.size().await.unwrap().unwrap();
        if bytes >= 1024 * 1024 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{bytes} bytes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn v(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn key(prefix: &[u8], i: usize) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(format!("{i:04}").as_bytes());
    k
}

/// The next event, within 10 s.
pub async fn next(watch: &mut WatchStream) -> Event {
    tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("an event within 10 s")
        .expect("the watch is open")
        .expect("no watch error")
}

/// No event arrives for a short while.
async fn assert_quiet(watch: &mut WatchStream) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(300), watch.next()).await {
        panic!("unexpected watch item: {item:?}");
    }
}
