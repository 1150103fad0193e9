//! `EtcdStore`: the [`Store`] contract on etcd, one etcd request per store operation, in
//! the shapes kube-apiserver uses (see `k8s-api-surface.md` §10.3).

use super::config::{EtcdConfig, MAX_ANSWER_BYTES};
use super::errors::{CallError, Rpc};
use super::keyspace::KeySpace;
use super::lease::LeaseManager;
use super::watch::{self, WatchTarget};
use crate::error::{show_key, Result, StoreError};
use crate::kv::{KeyValue, RangeRequest, RangeResponse, Revision};
use crate::store::{Store, WatchStream};
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, KvClient, PutOptions, ResponseHeader,
    Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions,
};
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// A [`Store`] on an etcd cluster, under a key prefix.
///
/// - Revisions are etcd's own (the response header's revision), so they are shared by
///   every user of the etcd cluster, and so is compaction.
/// - Keys with a TTL are attached to etcd leases, shared between writes (see
///   [`KeyValue::ttl`]: known for leases this store granted, `None` for others').
/// - Watches re-create their etcd watch after a connection loss, for up to about 30 s.
/// - The compaction revision is the highest this store compacted to or saw in etcd's
///   answers; when etcd says history was compacted further (by another client, or by
///   etcd's auto-compaction), the store asks etcd: a watch from revision 1 on a key nobody
///   writes is cancelled with the compaction revision.
pub struct EtcdStore {
    client: Client,
    rpc: Rpc,
    keys: KeySpace,
    leases: LeaseManager,
    /// The highest revision etcd is known to have compacted to (compaction only advances).
    compacted: AtomicI64,
}

impl EtcdStore {
    /// Connects to etcd and checks that it answers a read under the key prefix within
    /// `config.connect_timeout`.
    ///
    /// Fails with `InvalidInput` for an unusable configuration (no endpoints, a malformed
    /// URL, half a TLS identity) and with `Unavailable`, naming the endpoints, when etcd
    /// does not answer in time or refuses.
    pub async fn connect(config: EtcdConfig) -> Result<EtcdStore> {
        config.validate()?;
        let endpoints = config.endpoint_list();
        let client = Client::connect(&config.endpoints, Some(config.connect_options()))
            .await
            .map_err(|error| {
                StoreError::InvalidInput(format!("etcd endpoints [{endpoints}]: {error}"))
            })?;
        let store = EtcdStore {
            client,
            rpc: Rpc::new(endpoints, config.request_timeout),
            keys: KeySpace::new(config.key_prefix),
            leases: LeaseManager::default(),
            compacted: AtomicI64::new(0),
        };
        store
            .probe(config.connect_timeout, "connect", None)
            .await
            .map_err(|error| store.rpc.settle(error))?;
        Ok(store)
    }

    /// Reads nothing at `revision` (`None`: now) and returns etcd's current revision.
    async fn probe(
        &self,
        timeout: Duration,
        what: &str,
        revision: Option<Revision>,
    ) -> Result<Revision, CallError> {
        let mut options = GetOptions::new().with_count_only();
        if let Some(revision) = revision {
            options = options.with_revision(revision);
        }
        let mut kv = self.kv();
        let response = self
            .rpc
            .call_within(timeout, what, kv.get(self.keys.probe_key(), Some(options)))
            .await?;
        Ok(self.revision_of(response.header())?)
    }

    /// A KV client for one request.
    fn kv(&self) -> KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_ANSWER_BYTES)
    }

    /// The revision in an etcd response header.
    fn revision_of(&self, header: Option<&ResponseHeader>) -> Result<Revision> {
        header.map(ResponseHeader::revision).ok_or_else(|| {
            self.rpc
                .unavailable("read the response", "etcd answered without a header")
        })
    }

    /// The final error for a failed call at revision `requested`, with the numbers etcd
    /// leaves out filled in.
    async fn resolve(&self, error: CallError, requested: Revision) -> StoreError {
        match error {
            CallError::Compacted => StoreError::Compacted {
                requested,
                compacted: match self.compacted_revision().await {
                    Ok(compacted) => compacted,
                    Err(_) => self.compacted.load(Ordering::SeqCst),
                },
            },
            CallError::FutureRevision => StoreError::FutureRevision {
                requested,
                current: self.current_revision().await.unwrap_or(0),
            },
            other => self.rpc.settle(other),
        }
    }

    /// Asks etcd for its compaction revision, known to be past what this store knew: a
    /// watch from revision 1 on a key nobody writes is cancelled with it.
    async fn discover_compaction(&self) -> Result<Revision> {
        let mut client = self
            .client
            .watch_client()
            .max_decoding_message_size(MAX_ANSWER_BYTES);
        let probe = self.keys.probe_key();
        let discovery = async move {
            let mut stream = client
                .watch(probe, Some(WatchOptions::new().with_start_revision(1)))
                .await?;
            while let Some(response) = stream.message().await? {
                if response.compact_revision() != 0 {
                    return Ok(Some(response.compact_revision()));
                }
                if response.canceled() {
                    break;
                }
            }
            Ok(None)
        };
        match self
            .rpc
            .call("find the compaction revision", discovery)
            .await
        {
            Ok(Some(revision)) => {
                self.compacted.fetch_max(revision, Ordering::SeqCst);
                Ok(self.compacted.load(Ordering::SeqCst))
            }
            Ok(None) => Err(self.rpc.unavailable(
                "find the compaction revision",
                "etcd ended the probe watch without reporting it",
            )),
            Err(error) => Err(self.rpc.settle(error)),
        }
    }

    /// Runs a write transaction built for a lease (0 for none), taking a new lease once if
    /// etcd no longer has the reused one.
    async fn write(
        &self,
        what: &str,
        key: &[u8],
        ttl: Option<Duration>,
        txn: impl Fn(i64) -> Txn,
    ) -> Result<TxnResponse> {
        let mut lease_retried = false;
        loop {
            let lease = match ttl {
                Some(ttl) => self
                    .leases
                    .lease_for(ttl, &self.client, &self.rpc)
                    .await
                    .map_err(|error| self.rpc.settle(error))?,
                None => 0,
            };
            let mut kv = self.kv();
            match self
                .rpc
                .call(&format!("{what} {}", show_key(key)), kv.txn(txn(lease)))
                .await
            {
                Ok(response) => return Ok(response),
                Err(CallError::LeaseNotFound) if lease != 0 && !lease_retried => {
                    self.leases.forget(lease).await;
                    lease_retried = true;
                }
                Err(error) => return Err(self.rpc.settle(error)),
            }
        }
    }

    /// The key's current version from a failed transaction's `Range(key)` branch.
    fn current_of(&self, response: &TxnResponse) -> Option<KeyValue> {
        response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(mut get) => get
                .take_kvs()
                .into_iter()
                .next()
                .map(|kv| self.keys.key_value(kv, self.leases.ttls())),
            _ => None,
        })
    }

    /// The deleted version from a successful transaction's `DeleteRange(key)` branch.
    fn deleted_of(&self, response: &TxnResponse) -> Option<KeyValue> {
        response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Delete(mut delete) => delete
                .take_prev_kvs()
                .into_iter()
                .next()
                .map(|kv| self.keys.key_value(kv, self.leases.ttls())),
            _ => None,
        })
    }
}

/// A read revision: `None` or `Some(0)` for the latest, positive for a snapshot.
fn read_revision(revision: Option<Revision>) -> Result<Option<Revision>> {
    match revision {
        Some(revision) if revision < 0 => Err(StoreError::InvalidInput(format!(
            "revision {revision} is negative"
        ))),
        Some(0) | None => Ok(None),
        Some(revision) => Ok(Some(revision)),
    }
}

fn put(key: &[u8], value: &Bytes, lease: i64) -> TxnOp {
    TxnOp::put(
        key,
        value.to_vec(),
        Some(PutOptions::new().with_lease(lease)),
    )
}

/// "The key exists and was last modified at `expected`" (a missing key's modification
/// revision is 0, so the version check keeps `expected == 0` from matching it).
fn modified_at(key: &[u8], expected: Revision) -> [Compare; 2] {
    [
        Compare::version(key, CompareOp::Greater, 0),
        Compare::mod_revision(key, CompareOp::Equal, expected),
    ]
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn current_revision(&self) -> Result<Revision> {
        self.probe(self.rpc.timeout(), "read the current revision", None)
            .await
            .map_err(|error| self.rpc.settle(error))
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        let known = self.compacted.load(Ordering::SeqCst);
        match self
            .probe(
                self.rpc.timeout(),
                "read the compaction revision",
                Some(known.max(1)),
            )
            .await
        {
            Ok(_) => Ok(known),
            Err(CallError::Compacted) => self.discover_compaction().await,
            Err(error) => Err(self.rpc.settle(error)),
        }
    }

    async fn get(
        &self,
        key: &[u8],
        revision: Option<Revision>,
    ) -> Result<(Option<KeyValue>, Revision)> {
        let etcd_key = self.keys.key(key)?;
        let at = read_revision(revision)?;
        let mut options = GetOptions::new().with_limit(1);
        if let Some(at) = at {
            options = options.with_revision(at);
        }
        let mut kv = self.kv();
        let mut response = match self
            .rpc
            .call(
                &format!("get {}", show_key(key)),
                kv.get(etcd_key, Some(options)),
            )
            .await
        {
            Ok(response) => response,
            Err(error) => return Err(self.resolve(error, at.unwrap_or(0)).await),
        };
        let current = self.revision_of(response.header())?;
        let found = response
            .take_kvs()
            .into_iter()
            .next()
            .map(|kv| self.keys.key_value(kv, self.leases.ttls()));
        Ok((found, at.unwrap_or(current)))
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        let (from, end) = self
            .keys
            .page_range(&request.prefix, request.start.as_deref());
        let at = read_revision(request.revision)?;
        let mut options = GetOptions::new().with_range(end);
        if let Some(limit) = request.limit.filter(|limit| *limit > 0) {
            options = options.with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        if let Some(at) = at {
            options = options.with_revision(at);
        }
        let mut kv = self.kv();
        let mut response = match self
            .rpc
            .call(
                &format!("list {}", show_key(&request.prefix)),
                kv.get(from, Some(options)),
            )
            .await
        {
            Ok(response) => response,
            Err(error) => return Err(self.resolve(error, at.unwrap_or(0)).await),
        };
        let current = self.revision_of(response.header())?;
        let (more, count) = (
            response.more(),
            u64::try_from(response.count()).unwrap_or(0),
        );
        let kvs = response
            .take_kvs()
            .into_iter()
            .map(|kv| self.keys.key_value(kv, self.leases.ttls()))
            .collect();
        Ok(RangeResponse {
            kvs,
            more,
            count,
            revision: at.unwrap_or(current),
        })
    }

    async fn size(&self) -> Result<Option<u64>> {
        let mut maintenance = self.client.maintenance_client();
        let status = self
            .rpc
            .call("status", maintenance.status())
            .await
            .map_err(|error| self.rpc.settle(error))?;
        Ok(u64::try_from(status.db_size()).ok())
    }

    async fn count(&self, prefix: &[u8]) -> Result<(u64, Revision)> {
        let (from, end) = self.keys.prefix_range(prefix);
        let options = GetOptions::new().with_range(end).with_count_only();
        let mut kv = self.kv();
        let response = self
            .rpc
            .call(
                &format!("count {}", show_key(prefix)),
                kv.get(from, Some(options)),
            )
            .await
            .map_err(|error| self.rpc.settle(error))?;
        let revision = self.revision_of(response.header())?;
        Ok((u64::try_from(response.count()).unwrap_or(0), revision))
    }

    async fn create(&self, key: &[u8], value: Bytes, ttl: Option<Duration>) -> Result<Revision> {
        let etcd_key = self.keys.key(key)?;
        let response = self
            .write("create", key, ttl, |lease| {
                Txn::new()
                    .when([Compare::mod_revision(
                        etcd_key.as_slice(),
                        CompareOp::Equal,
                        0,
                    )])
                    .and_then([put(&etcd_key, &value, lease)])
                    .or_else([TxnOp::get(etcd_key.as_slice(), None)])
            })
            .await?;
        if response.succeeded() {
            return self.revision_of(response.header());
        }
        match self.current_of(&response) {
            Some(current) => Err(StoreError::AlreadyExists {
                current: Box::new(current),
            }),
            None => Err(self.rpc.unavailable(
                format_args!("create {}", show_key(key)),
                "etcd said the key exists but returned no value",
            )),
        }
    }

    async fn update(
        &self,
        key: &[u8],
        value: Bytes,
        expected: Revision,
        ttl: Option<Duration>,
    ) -> Result<Revision> {
        let etcd_key = self.keys.key(key)?;
        let response = self
            .write("update", key, ttl, |lease| {
                Txn::new()
                    .when(modified_at(&etcd_key, expected))
                    .and_then([put(&etcd_key, &value, lease)])
                    .or_else([TxnOp::get(etcd_key.as_slice(), None)])
            })
            .await?;
        if response.succeeded() {
            return self.revision_of(response.header());
        }
        Err(StoreError::Conflict {
            key: key.to_vec(),
            expected,
            current: self.current_of(&response).map(Box::new),
        })
    }

    async fn delete(&self, key: &[u8], expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let etcd_key = self.keys.key(key)?;
        let what = format!("delete {}", show_key(key));
        let Some(expected) = expected else {
            let mut kv = self.kv();
            let mut response = self
                .rpc
                .call(
                    &what,
                    kv.delete(etcd_key, Some(DeleteOptions::new().with_prev_key())),
                )
                .await
                .map_err(|error| self.rpc.settle(error))?;
            let revision = self.revision_of(response.header())?;
            let deleted = response.take_prev_kvs().into_iter().next();
            return match deleted {
                Some(deleted) => Ok((revision, self.keys.key_value(deleted, self.leases.ttls()))),
                None => Err(StoreError::NotFound { key: key.to_vec() }),
            };
        };
        let txn = Txn::new()
            .when(modified_at(&etcd_key, expected))
            .and_then([TxnOp::delete(
                etcd_key.as_slice(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(etcd_key.as_slice(), None)]);
        let mut kv = self.kv();
        let response = self
            .rpc
            .call(&what, kv.txn(txn))
            .await
            .map_err(|error| self.rpc.settle(error))?;
        let deleted = if response.succeeded() {
            self.deleted_of(&response)
        } else {
            None
        };
        match deleted {
            Some(deleted) => Ok((self.revision_of(response.header())?, deleted)),
            None => Err(StoreError::Conflict {
                key: key.to_vec(),
                expected,
                current: self.current_of(&response).map(Box::new),
            }),
        }
    }

    async fn watch(&self, prefix: &[u8], after: Revision) -> Result<WatchStream> {
        let start = after.checked_add(1).filter(|_| after >= 0).ok_or_else(|| {
            StoreError::InvalidInput(format!("cannot watch after revision {after}"))
        })?;
        // etcd reports a compacted start revision asynchronously, on the stream; asking for
        // a read at the start revision first lets this call fail with `Compacted` itself.
        match self
            .probe(self.rpc.timeout(), "check the watch start", Some(start))
            .await
        {
            Ok(_) | Err(CallError::FutureRevision) => {}
            Err(error) => return Err(self.resolve(error, after).await),
        }
        let (from, end) = self.keys.prefix_range(prefix);
        let target = WatchTarget {
            client: self.client.clone(),
            rpc: self.rpc.clone(),
            keys: self.keys.clone(),
            ttls: self.leases.ttls().clone(),
            from,
            end,
        };
        let opened = target
            .open(after, self.rpc.timeout())
            .await
            .map_err(|error| self.rpc.settle(error))?;
        Ok(watch::resuming(target, after, opened))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        if revision <= self.compacted.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut kv = self.kv();
        match self
            .rpc
            .call(
                &format!("compact to revision {revision}"),
                kv.compact(revision, None),
            )
            .await
        {
            // Compacted: etcd's history already starts at or after `revision`.
            Ok(_) | Err(CallError::Compacted) => {
                self.compacted.fetch_max(revision, Ordering::SeqCst);
                Ok(())
            }
            Err(error) => Err(self.resolve(error, revision).await),
        }
    }
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.rpc.endpoints())
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}
