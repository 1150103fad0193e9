//! The log-structured store shared by the SQL backends, in kine's shape: every write
//! appends a row whose id is the new revision; reads pick, per key, the newest row at or
//! below a revision; watches replay rows after a revision, then follow new ones.
//!
//! A backend supplies a [`LogDriver`] (its SQL); [`LogStore`] supplies the semantics:
//! batched compare-and-swap writes ([`writer`]), watch fan-out with catch-up from the
//! table ([`watch`]), key expiry ([`ttl`]) and compaction that keeps a window of history.

mod row;
mod ttl;
mod watch;
mod writer;

pub(crate) use row::Row;
pub(crate) use watch::WatchHub;

use crate::error::{Result, StoreError};
use crate::kv::{prefix_end, Event, KeyValue, RangeRequest, RangeResponse, Revision};
use crate::store::{Store, WatchStream};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use writer::{WriteHandle, WriteOp};

/// How much history a log store keeps, and how it batches writes.
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// The store compacts on its own, keeping at least this many of the newest revisions.
    pub compaction_window: i64,
    /// At most this many writes are committed in one transaction (group commit).
    pub max_batch: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            compaction_window: 1000,
            max_batch: 256,
        }
    }
}

/// A key range `[start, end)`; `end == None` means "to the last key".
#[derive(Clone, Debug)]
pub(crate) struct KeyRange {
    pub start: Vec<u8>,
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    pub fn prefix(prefix: &[u8]) -> Self {
        let end = prefix_end(prefix);
        KeyRange {
            start: prefix.to_vec(),
            end: (!end.is_empty()).then_some(end),
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }
}

/// The revisions that bound a store's readable history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Revisions {
    pub current: Revision,
    pub compacted: Revision,
}

/// What became of an [`LogDriver::append`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Appended {
    /// The rows are committed.
    Committed,
    /// Another writer (another process) appended first; nothing was written. The batch is
    /// evaluated again against the new state.
    Raced,
}

/// The SQL a backend runs for a [`LogStore`].
#[async_trait::async_trait]
pub(crate) trait LogDriver: Send + Sync + 'static {
    /// The backend's name in errors and logs.
    const BACKEND: &'static str;
    /// The newest revision, and the newest row (possibly a tombstone) of each of `keys`
    /// that has one: the state a batch of writes is evaluated against.
    async fn prepare(&self, keys: &[&[u8]]) -> Result<(Revision, Vec<Row>)>;
    /// Appends `rows`, whose ids follow the revision `prepare` returned without a gap, in
    /// one atomic statement (one commit, one notification). Returns `Raced` when another
    /// writer appended since `prepare`, which the unique row id reveals.
    async fn append(&self, rows: &[Row]) -> Result<Appended>;
    /// The current and compacted revisions.
    async fn revisions(&self) -> Result<Revisions>;
    /// The newest row of `key` with id at or below `at` (the current revision when `None`),
    /// possibly a tombstone, and the revisions as of that read: `current` from before it,
    /// `compacted` from no earlier than it, so a read that compaction overtook is caught.
    async fn get(&self, key: &[u8], at: Option<Revision>) -> Result<(Option<Row>, Revisions)>;
    /// Up to `limit` live keys of `range` at revision `at`, in key order (newest row each).
    async fn range(&self, range: &KeyRange, at: Revision, limit: Option<i64>) -> Result<Vec<Row>>;
    /// How many live keys `range` holds at revision `at`.
    async fn count(&self, range: &KeyRange, at: Revision) -> Result<u64>;
    /// The bytes the store's tables use.
    async fn size(&self) -> Result<u64>;
    /// Up to `limit` rows of `range` with id above `after`, in id order.
    async fn history(&self, range: &KeyRange, after: Revision, limit: i64) -> Result<Vec<Row>>;
    /// Records that history up to `target` is compacted, before any row is deleted, so
    /// readers of older revisions fail rather than see rows half deleted. Returns the
    /// compaction revision recorded before.
    async fn record_compaction(&self, target: Revision) -> Result<Revision>;
    /// Deletes the rows superseded by rows with ids in `(low, high]`, and the tombstones
    /// there.
    async fn delete_superseded(&self, low: Revision, high: Revision) -> Result<()>;
    /// Live keys written with a time-to-live: `(key, mod_revision, ttl seconds)`.
    async fn expiring(&self) -> Result<Vec<(Vec<u8>, Revision, i64)>>;
}

/// A [`Store`] over a [`LogDriver`].
pub(crate) struct LogStore<D: LogDriver> {
    driver: Arc<D>,
    writes: WriteHandle,
    hub: Arc<WatchHub>,
    /// Whether this process is the only writer (the events of its writes are all there is).
    exclusive: bool,
}

impl<D: LogDriver> LogStore<D> {
    /// Starts the store's writer. `local_events`: publish committed writes to watchers
    /// directly (a single-process store); otherwise the backend feeds [`Self::hub`] itself.
    pub async fn start(driver: D, options: LogOptions, local_events: bool) -> Result<Self> {
        let driver = Arc::new(driver);
        let hub = Arc::new(WatchHub::new());
        let writes = writer::spawn(driver.clone(), hub.clone(), options, local_events).await?;
        Ok(LogStore {
            driver,
            writes,
            hub,
            exclusive: local_events,
        })
    }

    /// Stops the store: waits until every queued write is answered, then hands back the
    /// driver so the backend can release its resources. Open watches end.
    pub async fn shutdown(self) -> Arc<D> {
        let LogStore {
            driver,
            writes,
            hub,
            ..
        } = self;
        drop(hub);
        writes.finish().await;
        driver
    }

    /// The watch fan-out, for backends that learn about commits from elsewhere.
    pub fn hub(&self) -> &Arc<WatchHub> {
        &self.hub
    }

    /// The backend's driver.
    pub fn driver(&self) -> &Arc<D> {
        &self.driver
    }

    /// The revision a read is made at: `requested`, checked against history, or the
    /// current one. Also says whether the read must be re-checked with
    /// [`Self::still_readable`] (it is older than the current revision).
    async fn read_revision(&self, requested: Option<Revision>) -> Result<(Revision, bool)> {
        let revs = self.driver.revisions().await?;
        let at = check_revision(requested.filter(|r| *r != 0), revs)?;
        Ok((at, at < revs.current))
    }

    /// After reading at an old revision: fails if compaction reached it meanwhile, since
    /// the read may then have missed rows (compaction records its revision first).
    async fn still_readable(&self, at: Revision, recheck: bool) -> Result<()> {
        if !recheck {
            return Ok(());
        }
        let compacted = self.driver.revisions().await?.compacted;
        if at < compacted {
            return Err(StoreError::Compacted {
                requested: at,
                compacted,
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl<D: LogDriver> Store for LogStore<D> {
    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.driver.revisions().await?.current)
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.driver.revisions().await?.compacted)
    }

    async fn get(
        &self,
        key: &[u8],
        revision: Option<Revision>,
    ) -> Result<(Option<KeyValue>, Revision)> {
        let requested = revision.filter(|r| *r != 0);
        let (row, revs) = self.driver.get(key, requested).await?;
        let at = check_revision(requested, revs)?;
        Ok((row.filter(|r| !r.deleted).map(Row::into_kv), at))
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        let (at, recheck) = self.read_revision(request.revision).await?;
        let mut range = KeyRange::prefix(&request.prefix);
        if let Some(start) = request.start.filter(|s| *s > range.start) {
            range.start = start;
        }
        let limit = request.limit.filter(|l| *l > 0).map(|l| l as i64);
        let mut rows = self.driver.range(&range, at, limit.map(|l| l + 1)).await?;
        let more = limit.is_some_and(|l| rows.len() as i64 > l);
        let count = if more {
            rows.truncate(limit.unwrap_or_default() as usize);
            self.driver.count(&range, at).await?
        } else {
            rows.len() as u64
        };
        self.still_readable(at, recheck).await?;
        Ok(RangeResponse {
            kvs: rows.into_iter().map(Row::into_kv).collect(),
            more,
            count,
            revision: at,
        })
    }

    async fn count(&self, prefix: &[u8]) -> Result<(u64, Revision)> {
        let (at, _) = self.read_revision(None).await?;
        Ok((self.driver.count(&KeyRange::prefix(prefix), at).await?, at))
    }

    async fn size(&self) -> Result<Option<u64>> {
        self.driver.size().await.map(Some)
    }

    fn exclusive(&self) -> bool {
        self.exclusive
    }

    async fn create(&self, key: &[u8], value: Bytes, ttl: Option<Duration>) -> Result<Revision> {
        check_key(key)?;
        let op = WriteOp::Create {
            key: key.to_vec(),
            value,
            ttl,
        };
        Ok(self.writes.submit(op).await?.0)
    }

    async fn update(
        &self,
        key: &[u8],
        value: Bytes,
        expected: Revision,
        ttl: Option<Duration>,
    ) -> Result<Revision> {
        check_key(key)?;
        let op = WriteOp::Update {
            key: key.to_vec(),
            value,
            expected,
            ttl,
        };
        Ok(self.writes.submit(op).await?.0)
    }

    async fn delete(&self, key: &[u8], expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        check_key(key)?;
        let (rev, prev) = self
            .writes
            .submit(WriteOp::Delete {
                key: key.to_vec(),
                expected,
            })
            .await?;
        let prev = prev.ok_or_else(|| StoreError::NotFound { key: key.to_vec() })?;
        Ok((rev, prev))
    }

    async fn watch(&self, prefix: &[u8], after: Revision) -> Result<WatchStream> {
        let revs = self.driver.revisions().await?;
        if after < revs.compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted: revs.compacted,
            });
        }
        Ok(watch::spawn_watcher(
            self.driver.clone(),
            &self.hub,
            KeyRange::prefix(prefix),
            after,
        ))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let revs = self.driver.revisions().await?;
        if revision > revs.current {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current: revs.current,
            });
        }
        if revision < revs.compacted {
            return Err(StoreError::Compacted {
                requested: revision,
                compacted: revs.compacted,
            });
        }
        self.writes.compact(revision).await
    }
}

/// The revision a read is made at: `requested` if history still holds it, else the current.
fn check_revision(requested: Option<Revision>, revs: Revisions) -> Result<Revision> {
    match requested {
        None => Ok(revs.current),
        Some(r) if r > revs.current => Err(StoreError::FutureRevision {
            requested: r,
            current: revs.current,
        }),
        Some(r) if r < revs.compacted => Err(StoreError::Compacted {
            requested: r,
            compacted: revs.compacted,
        }),
        Some(r) => Ok(r),
    }
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::InvalidInput("empty key".into()));
    }
    Ok(())
}

/// The events a batch of committed rows reports.
pub(crate) fn rows_to_events(rows: Vec<Row>) -> Vec<Event> {
    rows.into_iter().map(Row::into_event).collect()
}

/// Implements [`Store`] for a newtype around a [`LogStore`] by delegating to field `0`.
macro_rules! delegate_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::Store for $store {
            async fn current_revision(&self) -> $crate::Result<$crate::Revision> {
                self.0.current_revision().await
            }
            async fn compacted_revision(&self) -> $crate::Result<$crate::Revision> {
                self.0.compacted_revision().await
            }
            async fn get(
                &self,
                key: &[u8],
                revision: Option<$crate::Revision>,
            ) -> $crate::Result<(Option<$crate::KeyValue>, $crate::Revision)> {
                self.0.get(key, revision).await
            }
            async fn range(
                &self,
                request: $crate::RangeRequest,
            ) -> $crate::Result<$crate::RangeResponse> {
                self.0.range(request).await
            }
            async fn count(&self, prefix: &[u8]) -> $crate::Result<(u64, $crate::Revision)> {
                self.0.count(prefix).await
            }
            async fn size(&self) -> $crate::Result<Option<u64>> {
                self.0.size().await
            }
            fn exclusive(&self) -> bool {
                self.0.exclusive()
            }
            async fn create(
                &self,
                key: &[u8],
                value: bytes::Bytes,
                ttl: Option<std::time::Duration>,
            ) -> $crate::Result<$crate::Revision> {
                self.0.create(key, value, ttl).await
            }
            async fn update(
                &self,
                key: &[u8],
                value: bytes::Bytes,
                expected: $crate::Revision,
                ttl: Option<std::time::Duration>,
            ) -> $crate::Result<$crate::Revision> {
                self.0.update(key, value, expected, ttl).await
            }
            async fn delete(
                &self,
                key: &[u8],
                expected: Option<$crate::Revision>,
            ) -> $crate::Result<($crate::Revision, $crate::KeyValue)> {
                self.0.delete(key, expected).await
            }
            async fn watch(
                &self,
                prefix: &[u8],
                after: $crate::Revision,
            ) -> $crate::Result<$crate::WatchStream> {
                self.0.watch(prefix, after).await
            }
            async fn compact(&self, revision: $crate::Revision) -> $crate::Result<()> {
                self.0.compact(revision).await
            }
        }
    };
}
pub(crate) use delegate_store;
