//! The watch cache: one store watch per watched resource of a control plane, fanned out to
//! every watcher of that resource, with a window of recent events so that a watcher that
//! starts a little in the past is served from memory, as kube-apiserver's cacher does.
//!
//! A cache lives only while someone watches its resource: the last watcher to leave stops
//! its store watch, so an idle control plane holds no watch and runs no task.

use kflex_storage_backends::{Event, Revision, Store, StoreError};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// Recent events kept for watchers that start in the past (upstream keeps 100 or more).
const HISTORY: usize = 1024;
/// Events a watcher may fall behind the live stream before its watch ends with 410.
const FAN_OUT_BUFFER: usize = 1024;

/// The live caches of one control plane, by store prefix of the resource.
#[derive(Debug, Default)]
pub struct WatchCaches {
    caches: tokio::sync::Mutex<HashMap<String, Weak<WatchCache>>>,
}

/// The shared store watch of one resource.
#[derive(Debug)]
pub struct WatchCache {
    shared: Arc<Shared>,
    feeder: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Every event after this revision is in `history` (or still on its way).
    covered_after: Revision,
    /// Recent events, oldest first.
    history: VecDeque<Arc<Event>>,
    /// The live fan-out; `None` once the store watch ended, which closes every watcher.
    live: Option<broadcast::Sender<Arc<Event>>>,
}

/// What a watcher gets: the events after its revision that the cache already holds, then
/// the live ones (which may repeat replayed revisions: skip revisions already seen).
#[derive(Debug)]
pub struct Subscription {
    pub replay: Vec<Arc<Event>>,
    pub live: broadcast::Receiver<Arc<Event>>,
}

impl WatchCaches {
    /// A subscription to the changes under `prefix` (a key prefix inside the resource's
    /// `resource_prefix`) after revision `after`. `None` when the shared watch does not
    /// reach back that far; the caller then watches the store itself.
    pub async fn subscribe(
        &self,
        store: &Arc<dyn Store>,
        resource_prefix: &str,
        prefix: &[u8],
        after: Revision,
    ) -> Result<Option<(Arc<WatchCache>, Subscription)>, StoreError> {
        let mut caches = self.caches.lock().await;
        caches.retain(|_, cache| cache.strong_count() > 0);
        if let Some(cache) = caches.get(resource_prefix).and_then(Weak::upgrade) {
            if let Some(subscription) = cache.subscribe(prefix, after) {
                return Ok(Some((cache, subscription)));
            }
            if cache.is_live() {
                return Ok(None);
            }
        }
        let cache = Arc::new(WatchCache::start(store, resource_prefix, after).await?);
        caches.insert(resource_prefix.to_owned(), Arc::downgrade(&cache));
        Ok(cache
            .subscribe(prefix, after)
            .map(|subscription| (cache, subscription)))
    }

    /// How many resources have a live shared watch.
    pub async fn live(&self) -> usize {
        self.caches
            .lock()
            .await
            .values()
            .filter(|c| c.upgrade().is_some_and(|c| c.is_live()))
            .count()
    }
}

impl WatchCache {
    async fn start(
        store: &Arc<dyn Store>,
        resource_prefix: &str,
        after: Revision,
    ) -> Result<Self, StoreError> {
        let mut events = store.watch(resource_prefix.as_bytes(), after).await?;
        let (sender, _) = broadcast::channel(FAN_OUT_BUFFER);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                covered_after: after,
                history: VecDeque::new(),
                live: Some(sender),
            }),
        });
        let feeding = shared.clone();
        let prefix = resource_prefix.to_owned();
        let feeder = tokio::spawn(async move {
            use futures::StreamExt;
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => feeding.record(Arc::new(event)),
                    Err(error) => {
                        tracing::debug!(%prefix, %error, "shared watch ended");
                        break;
                    }
                }
            }
            feeding.lock().live = None;
        });
        Ok(WatchCache { shared, feeder })
    }

    fn is_live(&self) -> bool {
        self.shared.lock().live.is_some()
    }

    fn subscribe(&self, prefix: &[u8], after: Revision) -> Option<Subscription> {
        let state = self.shared.lock();
        let live = state.live.as_ref()?;
        if after < state.covered_after {
            return None;
        }
        let replay = state
            .history
            .iter()
            .filter(|e| e.revision() > after && e.kv.key.starts_with(prefix))
            .cloned()
            .collect();
        Some(Subscription {
            replay,
            live: live.subscribe(),
        })
    }
}

impl Drop for WatchCache {
    fn drop(&mut self) {
        self.feeder.abort();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds an event to the history and sends it to every watcher, under one lock, so a
    /// watcher subscribing concurrently sees it exactly once (replayed or live).
    fn record(&self, event: Arc<Event>) {
        let mut state = self.lock();
        if state.history.len() == HISTORY {
            if let Some(oldest) = state.history.pop_front() {
                state.covered_after = oldest.revision();
            }
        }
        state.history.push_back(event.clone());
        if let Some(live) = &state.live {
            let _ = live.send(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kflex_storage_backends::sqlite::{SqliteOptions, SqliteStore};

    async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("db"), SqliteOptions::default())
            .await
            .unwrap();
        (dir, Arc::new(store))
    }

    #[tokio::test]
    async fn watchers_of_one_resource_share_one_store_watch() {
        let (_dir, store) = store().await;
        let caches = WatchCaches::default();
        let start = store.current_revision().await.unwrap();
        let (a, mut sub_a) = caches
            .subscribe(
                &store,
                "/registry/configmaps/",
                b"/registry/configmaps/ns1/",
                start,
            )
            .await
            .unwrap()
            .unwrap();
        let (b, mut sub_b) = caches
            .subscribe(
                &store,
                "/registry/configmaps/",
                b"/registry/configmaps/",
                start,
            )
            .await
            .unwrap()
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(caches.live().await, 1);
        let rev = store
            .create(
                b"/registry/configmaps/ns1/x",
                Bytes::from_static(b"{}"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(sub_a.live.recv().await.unwrap().revision(), rev);
        assert_eq!(sub_b.live.recv().await.unwrap().revision(), rev);
        assert!(sub_a.replay.is_empty() && sub_b.replay.is_empty());
    }

    #[tokio::test]
    async fn late_watchers_replay_from_history_and_old_ones_fall_back() {
        let (_dir, store) = store().await;
        let caches = WatchCaches::default();
        let start = store.current_revision().await.unwrap();
        let (_cache, mut first) = caches
            .subscribe(&store, "/registry/secrets/", b"/registry/secrets/", start)
            .await
            .unwrap()
            .unwrap();
        let r1 = store
            .create(b"/registry/secrets/a/one", Bytes::from_static(b"{}"), None)
            .await
            .unwrap();
        let r2 = store
            .create(b"/registry/secrets/b/two", Bytes::from_static(b"{}"), None)
            .await
            .unwrap();
        first.live.recv().await.unwrap();
        first.live.recv().await.unwrap();
        let (_same, late) = caches
            .subscribe(&store, "/registry/secrets/", b"/registry/secrets/b/", r1)
            .await
            .unwrap()
            .unwrap();
        let replayed: Vec<_> = late.replay.iter().map(|e| e.revision()).collect();
        assert_eq!(replayed, vec![r2]);
        assert!(caches
            .subscribe(
                &store,
                "/registry/secrets/",
                b"/registry/secrets/",
                start - 1
            )
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn the_last_watcher_leaving_stops_the_store_watch() {
        let (_dir, store) = store().await;
        let caches = WatchCaches::default();
        let start = store.current_revision().await.unwrap();
        let held = caches
            .subscribe(&store, "/registry/pods/", b"/registry/pods/", start)
            .await
            .unwrap();
        assert_eq!(caches.live().await, 1);
        drop(held);
        assert_eq!(caches.live().await, 0);
    }
}
