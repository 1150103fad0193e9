//! Commits of every process reach this process's watchers: one `LISTEN` connection
//! receives `<schema>:<revision>` for each commit on the database; a store with watchers
//! then reads the new rows and publishes them to its hub, one without watchers only notes
//! the revision (no query), and a store nobody opened here costs a map lookup.

use super::driver::PgDriver;
use super::{failed, BACKEND, CHANNEL};
use crate::error::Result;
use crate::kv::Revision;
use crate::log::{rows_to_events, KeyRange, LogDriver, WatchHub};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Rows read per query when a store catches up.
const PAGE: i64 = 1000;
/// First and longest wait between attempts to reconnect the listener.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The process's listener and the stores it feeds. Dropping it stops the listener.
pub(super) struct Feed {
    registry: Arc<Registry>,
    task: JoinHandle<()>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Feed {
    /// Connects the listener (from `pool`, of one connection) and starts following commits.
    pub async fn start(pool: PgPool) -> Result<Arc<Feed>> {
        let listener = listen(&pool).await?;
        let registry = Arc::new(Registry::default());
        let task = tokio::spawn(follow(pool, listener, registry.clone()));
        Ok(Arc::new(Feed { registry, task }))
    }

    /// Feeds `hub` with the commits of `driver`'s store from revision `last` on. A store
    /// opened twice in this process is fed twice: each handle has its own hub.
    pub fn subscribe(
        self: &Arc<Self>,
        driver: Arc<PgDriver>,
        hub: Arc<WatchHub>,
        last: Revision,
    ) -> Subscription {
        let schema: Arc<str> = driver.schema().into();
        let entry = Arc::new(Entry {
            driver,
            hub,
            state: Mutex::new(State {
                last,
                notified: last,
                dirty: false,
                working: false,
            }),
        });
        self.registry
            .stores()
            .entry(schema.clone())
            .or_default()
            .push(Arc::downgrade(&entry));
        Subscription {
            feed: self.clone(),
            schema,
            entry,
        }
    }

    /// Stops feeding the stores in `schema` (it was dropped).
    pub fn forget(&self, schema: &str) {
        self.registry.stores().remove(schema);
    }
}

/// A store's registration with the feed; dropping it unregisters the store.
pub(crate) struct Subscription {
    feed: Arc<Feed>,
    schema: Arc<str>,
    entry: Arc<Entry>,
}

impl Subscription {
    /// The schema of the store.
    pub fn schema(&self) -> &str {
        &self.schema
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut stores = self.feed.registry.stores();
        if let Some(entries) = stores.get_mut(&self.schema) {
            let entry = Arc::downgrade(&self.entry);
            entries.retain(|e| !e.ptr_eq(&entry));
            if entries.is_empty() {
                stores.remove(&self.schema);
            }
        }
    }
}

/// The stores open in this process, by schema.
#[derive(Default)]
struct Registry(Mutex<HashMap<Arc<str>, Vec<Weak<Entry>>>>);

impl Registry {
    fn stores(&self) -> MutexGuard<'_, HashMap<Arc<str>, Vec<Weak<Entry>>>> {
        // The map stays consistent even if a holder panicked: every update is one call.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn entries(&self, schema: &str) -> Vec<Arc<Entry>> {
        self.stores()
            .get(schema)
            .map(|entries| entries.iter().filter_map(Weak::upgrade).collect())
            .unwrap_or_default()
    }

    /// A commit of `<schema>:<revision>`.
    fn dispatch(&self, payload: &str) {
        let parsed = payload
            .rsplit_once(':')
            .and_then(|(schema, rev)| Some((schema, rev.parse::<Revision>().ok()?)));
        let Some((schema, revision)) = parsed else {
            tracing::warn!(
                backend = BACKEND,
                payload,
                "ignoring a malformed notification"
            );
            return;
        };
        for entry in self.entries(schema) {
            entry.notified(Some(revision));
        }
    }

    /// After notifications may have been lost: every store with watchers reads what it missed.
    fn catch_up_all(&self) {
        let entries: Vec<Arc<Entry>> = self
            .stores()
            .values()
            .flatten()
            .filter_map(Weak::upgrade)
            .collect();
        for entry in entries {
            entry.notified(None);
        }
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener> {
    let mut listener = PgListener::connect_with(pool)
        .await
        .map_err(failed("connect the listener"))?;
    listener
        .listen(CHANNEL)
        .await
        .map_err(failed(format!("listen on {CHANNEL}")))?;
    Ok(listener)
}

/// The listener task: waits for notifications (no polling), and after losing its
/// connection, reconnects and has every watched store catch up.
async fn follow(pool: PgPool, mut listener: PgListener, registry: Arc<Registry>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => registry.dispatch(notification.payload()),
            // The connection was lost and re-established (sqlx listens again on it).
            Ok(None) => {
                tracing::info!(
                    backend = BACKEND,
                    "listener reconnected; watched stores catch up"
                );
                registry.catch_up_all();
            }
            Err(err) => {
                tracing::warn!(backend = BACKEND, error = %err, "listener failed; reconnecting");
                drop(listener);
                listener = reconnect(&pool).await;
                tracing::info!(
                    backend = BACKEND,
                    "listener reconnected; watched stores catch up"
                );
                registry.catch_up_all();
            }
        }
    }
}

async fn reconnect(pool: &PgPool) -> PgListener {
    let mut backoff = FIRST_BACKOFF;
    loop {
        tokio::time::sleep(backoff).await;
        match listen(pool).await {
            Ok(listener) => return listener,
            Err(err) => {
                tracing::warn!(backend = BACKEND, error = %err, "listener reconnect failed")
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One open store as the feed sees it.
struct Entry {
    driver: Arc<PgDriver>,
    hub: Arc<WatchHub>,
    state: Mutex<State>,
}

struct State {
    /// Every commit up to here was published to the hub, or made while nobody watched
    /// (watchers read those from the table when they start).
    last: Revision,
    /// The newest revision notified.
    notified: Revision,
    /// Something to read arrived while a worker was reading.
    dirty: bool,
    /// A worker task is reading for this store.
    working: bool,
}

impl Entry {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A commit at `revision` (`None`: unknown commits, after a lost connection).
    fn notified(self: &Arc<Self>, revision: Option<Revision>) {
        let mut state = self.state();
        if let Some(revision) = revision {
            if revision <= state.last {
                return;
            }
            state.notified = state.notified.max(revision);
        }
        if state.working {
            state.dirty = true;
        } else if !self.hub.has_watchers() {
            state.last = state.last.max(state.notified);
        } else {
            state.working = true;
            tokio::spawn(self.clone().work());
        }
    }

    /// Reads and publishes new rows until nothing new arrived meanwhile; one at a time
    /// per store, so a slow store delays only its own watchers.
    async fn work(self: Arc<Self>) {
        loop {
            let last = {
                let mut state = self.state();
                if !self.hub.has_watchers() {
                    state.last = state.last.max(state.notified);
                    state.working = false;
                    return;
                }
                state.dirty = false;
                state.last
            };
            let read = self.publish_after(last).await;
            let mut state = self.state();
            match read {
                Ok(newest) => state.last = state.last.max(newest),
                Err(err) => {
                    // Watchers read the table themselves instead, and end with the error
                    // if it persists; the feed carries on from `last` at the next commit.
                    tracing::warn!(backend = BACKEND, schema = self.driver.schema(), error = %err, "feeding watchers failed; they re-read the table");
                    self.hub.resync();
                    state.dirty = false;
                }
            }
            if !state.dirty {
                state.working = false;
                return;
            }
        }
    }

    /// Publishes every row after `last`, in order; returns the newest revision read.
    async fn publish_after(&self, mut last: Revision) -> Result<Revision> {
        let everything = KeyRange::prefix(&[]);
        loop {
            let rows = self.driver.history(&everything, last, PAGE).await?;
            let full = rows.len() as i64 == PAGE;
            let Some(newest) = rows.last().map(|row| row.id) else {
                return Ok(last);
            };
            // Revisions have no gaps, except where compaction deleted rows: then this
            // page lacks events watchers may need, and they re-read the table themselves
            // (and end with `Compacted` if they need what is gone).
            let contiguous = rows
                .iter()
                .zip(last + 1..)
                .all(|(row, expected)| row.id == expected);
            if contiguous {
                self.hub.publish(rows_to_events(rows));
            } else {
                tracing::warn!(
                    backend = BACKEND,
                    schema = self.driver.schema(),
                    after = last,
                    "history compacted past the feed; watchers re-read"
                );
                self.hub.resync();
            }
            last = newest;
            if !full {
                return Ok(last);
            }
        }
    }
}
