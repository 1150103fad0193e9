//! Leases for keys with a time-to-live, shared between writes like kube-apiserver's lease
//! manager (`apiserver/pkg/storage/etcd3/lease_manager.go`) does.
//!
//! A lease per write would make a burst of Events cost a `LeaseGrant` each and leave etcd
//! with as many leases. Instead, a write with a TTL of `t` seconds gets a lease granted for
//! `t + r` seconds, where the reuse window `r` is 5% of `t` (at most 60 s), and later writes
//! with the same TTL reuse it while it still has between `t` and `t + r` seconds left, for at
//! most 1000 keys. A key thus lives between `t` and `t + r` seconds after its last write.

use super::errors::{CallError, Rpc};
use crate::error::StoreError;
use crate::kv::ttl_seconds;
use etcd_client::Client;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The longest reuse window, in seconds.
const MAX_REUSE_SECONDS: i64 = 60;
/// The reuse window as a percentage of the TTL.
const REUSE_PERCENT: i64 = 5;
/// How many writes may share one lease.
const MAX_KEYS_PER_LEASE: u32 = 1000;
/// etcd's own limit on a lease's TTL, in seconds (`lease.MaxLeaseTTL`).
const MAX_LEASE_SECONDS: i64 = 9_000_000_000;

/// Hands out leases for TTLs, reusing them between writes.
#[derive(Default)]
pub(crate) struct LeaseManager {
    /// The lease being reused for each TTL (in seconds). Held across `LeaseGrant`, so a
    /// burst of concurrent writes shares one new lease instead of each granting its own.
    reusable: tokio::sync::Mutex<HashMap<i64, Reusable>>,
    ttls: LeaseTtls,
}

struct Reusable {
    id: i64,
    expires: Instant,
    keys: u32,
}

impl LeaseManager {
    /// The lookup of the TTLs this manager's leases were granted for.
    pub(crate) fn ttls(&self) -> &LeaseTtls {
        &self.ttls
    }

    /// A lease to attach to a key written with `ttl`.
    pub(crate) async fn lease_for(
        &self,
        ttl: Duration,
        client: &Client,
        rpc: &Rpc,
    ) -> Result<i64, CallError> {
        let seconds = ttl_seconds(ttl);
        if seconds > MAX_LEASE_SECONDS {
            return Err(StoreError::InvalidInput(format!(
                "a time-to-live of {seconds} s is longer than etcd allows ({MAX_LEASE_SECONDS} s)"
            ))
            .into());
        }
        let reuse = (seconds * REUSE_PERCENT / 100).min(MAX_REUSE_SECONDS);
        let mut reusable = self.reusable.lock().await;
        let now = Instant::now();
        let needed = now + Duration::from_secs(seconds.unsigned_abs());
        let latest = needed + Duration::from_secs(reuse.unsigned_abs());
        if let Some(lease) = reusable.get_mut(&seconds) {
            if lease.keys < MAX_KEYS_PER_LEASE && needed < lease.expires && lease.expires < latest {
                lease.keys += 1;
                return Ok(lease.id);
            }
        }
        let granted = rpc
            .call(
                &format!("grant a lease of {} s", seconds + reuse),
                client.lease_client().grant(seconds + reuse, None),
            )
            .await?;
        let id = granted.id();
        reusable.retain(|_, lease| lease.expires > now);
        reusable.insert(
            seconds,
            Reusable {
                id,
                expires: latest,
                keys: 1,
            },
        );
        self.ttls
            .record(id, Duration::from_secs(seconds.unsigned_abs()), latest);
        Ok(id)
    }

    /// Stops reusing a lease etcd no longer has.
    pub(crate) async fn forget(&self, id: i64) {
        self.reusable.lock().await.retain(|_, lease| lease.id != id);
    }
}

/// The TTL each lease this process granted was asked for, to report `KeyValue::ttl`.
/// Leases granted by others (another process, an earlier run) are unknown: keys attached
/// to them report no TTL.
#[derive(Clone, Default)]
pub(crate) struct LeaseTtls(Arc<Mutex<TtlTable>>);

#[derive(Default)]
struct TtlTable {
    leases: HashMap<i64, Granted>,
    /// Expired leases are dropped when the table grows past this size.
    prune_above: usize,
}

struct Granted {
    ttl: Duration,
    expires: Instant,
}

impl LeaseTtls {
    /// The TTL a key attached to lease `id` was written with, if this process granted it.
    pub(crate) fn ttl_of(&self, id: i64) -> Option<Duration> {
        if id == 0 {
            return None;
        }
        let table = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        table.leases.get(&id).map(|granted| granted.ttl)
    }

    fn record(&self, id: i64, ttl: Duration, expires: Instant) {
        let mut table = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if table.leases.len() >= table.prune_above {
            let now = Instant::now();
            table.leases.retain(|_, granted| granted.expires > now);
            table.prune_above = (table.leases.len() * 2).max(64);
        }
        table.leases.insert(id, Granted { ttl, expires });
    }
}
