//! Watch fan-out: committed events are published once to a broadcast channel; each watcher
//! first replays history from the table, then follows the broadcast, dropping what it has
//! already seen. A watcher that falls behind catches up from the table again instead of
//! losing events, so delivery is in revision order and exactly once.

use super::{KeyRange, LogDriver, Row};
use crate::error::{Result, StoreError};
use crate::kv::{Event, Revision};
use crate::store::WatchStream;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

/// Batches of committed events, in revision order, for every watcher of one store.
pub(crate) struct WatchHub {
    /// The broadcast channel, while anyone watches: made by the first watcher, dropped by
    /// a publish that finds none left, so an unwatched store keeps no buffer (its
    /// `HUB_CAPACITY` slots are most of an idle store's memory otherwise).
    events: Mutex<Option<broadcast::Sender<Arc<Vec<Event>>>>>,
}

/// Batches a lagging watcher may miss before it catches up from the table.
const HUB_CAPACITY: usize = 1024;
/// Events buffered between a watcher and its consumer.
const WATCHER_BUFFER: usize = 256;
/// Rows read per catch-up query.
const CATCH_UP_PAGE: i64 = 1000;

impl WatchHub {
    pub fn new() -> Self {
        WatchHub {
            events: Mutex::new(None),
        }
    }

    fn events(&self) -> MutexGuard<'_, Option<broadcast::Sender<Arc<Vec<Event>>>>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver of every batch published from now on.
    fn subscribe(&self) -> broadcast::Receiver<Arc<Vec<Event>>> {
        self.events()
            .get_or_insert_with(|| broadcast::channel(HUB_CAPACITY).0)
            .subscribe()
    }

    /// Publishes committed events; they must follow the previous batch without a gap.
    pub fn publish(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let mut sender = self.events();
        match &*sender {
            Some(live) if live.receiver_count() > 0 => {
                let _ = live.send(Arc::new(events));
            }
            Some(_) => *sender = None,
            None => {}
        }
    }

    /// Whether anyone watches the store now.
    pub fn has_watchers(&self) -> bool {
        self.events()
            .as_ref()
            .is_some_and(|live| live.receiver_count() > 0)
    }

    /// Makes every watcher re-read the table from its last event, as one that fell
    /// behind does: for a backend whose feed of commits has a gap it cannot fill (history
    /// compacted meanwhile). A watcher that needs the lost history ends with `Compacted`.
    pub fn resync(&self) {
        // An empty batch, which `publish` never sends, is the signal.
        if let Some(live) = &*self.events() {
            let _ = live.send(Arc::new(Vec::new()));
        }
    }
}

/// Starts a watcher of `range` after revision `after`; its events arrive on the stream.
pub(crate) fn spawn_watcher<D: LogDriver>(
    driver: Arc<D>,
    hub: &WatchHub,
    range: KeyRange,
    after: Revision,
) -> WatchStream {
    // Subscribe before replaying, so nothing committed in between is missed.
    let live = hub.subscribe();
    let (out, stream) = mpsc::channel(WATCHER_BUFFER);
    let watcher = Watcher {
        driver,
        range,
        last: after,
        out,
    };
    tokio::spawn(watcher.run(live));
    Box::pin(ReceiverStream::new(stream))
}

struct Watcher<D> {
    driver: Arc<D>,
    range: KeyRange,
    /// The newest revision delivered or skipped.
    last: Revision,
    out: mpsc::Sender<Result<Event>>,
}

/// The consumer dropped the stream.
struct Gone;

impl<D: LogDriver> Watcher<D> {
    async fn run(mut self, mut live: broadcast::Receiver<Arc<Vec<Event>>>) {
        if self.catch_up().await.is_err() {
            return;
        }
        loop {
            let received = tokio::select! {
                _ = self.out.closed() => return,
                received = live.recv() => received,
            };
            let delivered = match received {
                Ok(batch) if batch.is_empty() => self.catch_up().await,
                Ok(batch) => self.forward(&batch).await,
                Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up().await,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if delivered.is_err() {
                return;
            }
        }
    }

    async fn forward(&mut self, batch: &[Event]) -> Result<(), Gone> {
        for event in batch {
            if event.revision() <= self.last {
                continue;
            }
            self.last = event.revision();
            if self.range.contains(&event.kv.key) {
                self.send(Ok(event.clone())).await?;
            }
        }
        Ok(())
    }

    /// Replays the table's rows after `last`; on failure sends the error and ends.
    async fn catch_up(&mut self) -> Result<(), Gone> {
        loop {
            let rows = match self.history_page().await {
                Ok(rows) => rows,
                Err(err) => {
                    let _ = self.send(Err(err)).await;
                    return Err(Gone);
                }
            };
            if rows.is_empty() {
                return Ok(());
            }
            for row in rows {
                self.last = row.id;
                self.send(Ok(row.into_event())).await?;
            }
        }
    }

    async fn history_page(&self) -> Result<Vec<Row>> {
        let revisions = self.driver.revisions().await?;
        if self.last < revisions.compacted {
            return Err(StoreError::Compacted {
                requested: self.last,
                compacted: revisions.compacted,
            });
        }
        let rows = self
            .driver
            .history(&self.range, self.last, CATCH_UP_PAGE)
            .await?;
        // Compaction records its revision before deleting: if it passed us meanwhile, the
        // page may lack rows.
        let compacted = self.driver.revisions().await?.compacted;
        if self.last < compacted {
            return Err(StoreError::Compacted {
                requested: self.last,
                compacted,
            });
        }
        Ok(rows)
    }

    async fn send(&self, item: Result<Event>) -> Result<(), Gone> {
        self.out.send(item).await.map_err(|_| Gone)
    }
}
