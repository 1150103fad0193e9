//! The `Store` trait: the one contract every backend implements, with etcd's semantics.

use crate::error::Result;
use crate::kv::{Event, KeyValue, RangeRequest, RangeResponse, Revision};
use bytes::Bytes;
use futures::stream::BoxStream;
use std::time::Duration;

/// A stream of watch events, in revision order, each exactly once. It ends with an error
/// ([`StoreError::Compacted`](crate::StoreError::Compacted),
/// [`StoreError::WatchLagged`](crate::StoreError::WatchLagged) or an unavailable backend)
/// when it cannot go on; the caller then re-lists and re-watches.
pub type WatchStream = BoxStream<'static, Result<Event>>;

/// A revisioned key-value store with etcd's semantics, as kube-apiserver uses etcd.
///
/// - One revision counter per store that only increases; every write returns the revision
///   it created, and every read says which revision it saw.
/// - Writes are atomic; updates and conditional deletes compare the key's modification
///   revision, so concurrent writers never lose an update.
/// - History is kept until compaction; reads and watches at compacted revisions fail with
///   [`StoreError::Compacted`](crate::StoreError::Compacted).
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The newest revision of the store.
    async fn current_revision(&self) -> Result<Revision>;

    /// The revision up to which history has been compacted (0 if never).
    async fn compacted_revision(&self) -> Result<Revision>;

    /// The key's version at `revision` (`None`: the latest), or `None` if it did not exist
    /// then. Also returns the revision the read was made at.
    async fn get(
        &self,
        key: &[u8],
        revision: Option<Revision>,
    ) -> Result<(Option<KeyValue>, Revision)>;

    /// A page of the keys under a prefix, at one revision.
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse>;

    /// How many keys start with `prefix` now, and at which revision that was counted.
    async fn count(&self, prefix: &[u8]) -> Result<(u64, Revision)>;

    /// The bytes the backend uses for this store, when it can tell (`None` otherwise):
    /// SQLite's database pages, PostgreSQL's tables with their indexes, etcd's database
    /// (all of it: an etcd shared under key prefixes reports its whole size, as
    /// kube-apiserver's `apiserver_storage_size_bytes` does). It may trail the latest
    /// writes: etcd reports its database file as of its last backend commit (every 100 ms).
    async fn size(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Whether this process is the store's only writer (it holds the store's lock), so that
    /// nothing another process does can change it: what the process caches about the store
    /// stays true, and work on it needs no election. `false` when unknown.
    fn exclusive(&self) -> bool {
        false
    }

    /// Creates `key`; fails with `AlreadyExists` if it exists. A `ttl` makes the store
    /// delete the key that long after this write (unless it is written again).
    async fn create(&self, key: &[u8], value: Bytes, ttl: Option<Duration>) -> Result<Revision>;

    /// Replaces `key`'s value if its modification revision is `expected`; otherwise fails
    /// with `Conflict` carrying the current value (or `None` if the key is gone).
    async fn update(
        &self,
        key: &[u8],
        value: Bytes,
        expected: Revision,
        ttl: Option<Duration>,
    ) -> Result<Revision>;

    /// Deletes `key`, if its modification revision is `expected` when given. Returns the
    /// deletion revision and the deleted version. Fails with `NotFound` (unconditional) or
    /// `Conflict` (conditional) when the key is missing or changed.
    async fn delete(&self, key: &[u8], expected: Option<Revision>) -> Result<(Revision, KeyValue)>;

    /// Every change to keys under `prefix` after revision `after`, in order, then live
    /// changes as they happen. Fails with `Compacted` when `after` is older than the
    /// compaction revision.
    async fn watch(&self, prefix: &[u8], after: Revision) -> Result<WatchStream>;

    /// Discards history older than `revision` (the versions superseded at or before it, and
    /// deleted keys). Reads and watches before it then fail with `Compacted`.
    async fn compact(&self, revision: Revision) -> Result<()>;
}
