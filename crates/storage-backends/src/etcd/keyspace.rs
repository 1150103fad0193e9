//! The mapping between kflex's keys and etcd's: the key prefix, key ranges, and key-values.

use super::lease::LeaseTtls;
use crate::error::{Result, StoreError};
use crate::kv::{prefix_end, KeyValue, Revision};
use bytes::Bytes;

/// A range end meaning "every key from the start key on" in etcd's protocol.
const FROM_KEY: &[u8] = b"\0";
/// A key under the store's prefix that kflex never writes (kube-apiserver keys start with
/// `/`), used for requests that only need etcd's response header.
const PROBE_KEY: &[u8] = b"\0kflex-probe";

/// One store's slice of etcd: every kflex key `k` is stored as `prefix + k`.
#[derive(Clone, Debug)]
pub(crate) struct KeySpace {
    prefix: Vec<u8>,
}

impl KeySpace {
    pub(crate) fn new(prefix: Vec<u8>) -> Self {
        KeySpace { prefix }
    }

    /// The etcd key of a kflex key; the key must not be empty.
    pub(crate) fn key(&self, key: &[u8]) -> Result<Vec<u8>> {
        if key.is_empty() {
            return Err(StoreError::InvalidInput("empty key".to_owned()));
        }
        Ok(self.prefixed(key))
    }

    /// A key for requests that only need a response header (the current revision, or
    /// whether a revision has been compacted): it is never written.
    pub(crate) fn probe_key(&self) -> Vec<u8> {
        self.prefixed(PROBE_KEY)
    }

    /// The etcd range `[start, end)` holding every kflex key that starts with `prefix`
    /// (an empty `prefix`: every key of the store).
    pub(crate) fn prefix_range(&self, prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let start = self.prefixed(prefix);
        let end = prefix_end(&start);
        match (start.is_empty(), end.is_empty()) {
            // No prefix at all: every key (etcd keys are never empty, so "\0" is the first).
            (true, _) => (FROM_KEY.to_vec(), FROM_KEY.to_vec()),
            // A prefix of only 0xff bytes has no end: every key from it on.
            (false, true) => (start, FROM_KEY.to_vec()),
            (false, false) => (start, end),
        }
    }

    /// The etcd range for a page of keys under `prefix`, starting at kflex key `start` if
    /// that comes later than the prefix.
    pub(crate) fn page_range(&self, prefix: &[u8], start: Option<&[u8]>) -> (Vec<u8>, Vec<u8>) {
        let (from, end) = self.prefix_range(prefix);
        match start.map(|start| self.prefixed(start)) {
            Some(start) if start > from => (start, end),
            _ => (from, end),
        }
    }

    /// The kflex key of an etcd key in this store's range.
    pub(crate) fn strip(&self, mut key: Vec<u8>) -> Vec<u8> {
        if key.starts_with(&self.prefix) {
            key.drain(..self.prefix.len());
        }
        key
    }

    /// The kflex version of an etcd key-value, with its time-to-live when its lease is known.
    pub(crate) fn key_value(&self, kv: etcd_client::KeyValue, ttls: &LeaseTtls) -> KeyValue {
        let create_revision = kv.create_revision();
        let mod_revision = kv.mod_revision();
        let ttl = ttls.ttl_of(kv.lease());
        let (key, value) = kv.into_key_value();
        KeyValue {
            key: self.strip(key),
            value: Bytes::from(value),
            create_revision,
            mod_revision,
            ttl,
        }
    }

    /// What a deletion event reports: the key, no value, and the deletion revision. The
    /// create revision is the deleted incarnation's, when etcd still had the previous
    /// version (etcd itself reports 0).
    pub(crate) fn tombstone(
        &self,
        key: Vec<u8>,
        deleted_at: Revision,
        prev: Option<&KeyValue>,
    ) -> KeyValue {
        KeyValue {
            key: self.strip(key),
            value: Bytes::new(),
            create_revision: prev.map_or(0, |prev| prev.create_revision),
            mod_revision: deleted_at,
            ttl: None,
        }
    }

    fn prefixed(&self, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.prefix.len() + key.len());
        full.extend_from_slice(&self.prefix);
        full.extend_from_slice(key);
        full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_get_the_prefix_and_lose_it_on_the_way_out() {
        let space = KeySpace::new(b"/t1".to_vec());
        assert_eq!(space.key(b"/a").ok(), Some(b"/t1/a".to_vec()));
        assert_eq!(space.strip(b"/t1/a".to_vec()), b"/a");
        assert!(space.key(b"").is_err());
    }

    #[test]
    fn prefix_ranges_cover_the_prefix_under_the_store_prefix() {
        let space = KeySpace::new(b"/t1".to_vec());
        assert_eq!(
            space.prefix_range(b"/pods/"),
            (b"/t1/pods/".to_vec(), b"/t1/pods0".to_vec())
        );
        assert_eq!(space.prefix_range(b""), (b"/t1".to_vec(), b"/t2".to_vec()));
    }

    #[test]
    fn an_empty_store_prefix_and_range_prefix_mean_every_key() {
        let space = KeySpace::new(Vec::new());
        assert_eq!(space.prefix_range(b""), (b"\0".to_vec(), b"\0".to_vec()));
        assert_eq!(
            space.prefix_range(b"\xff"),
            (b"\xff".to_vec(), b"\0".to_vec())
        );
    }

    #[test]
    fn pages_start_at_the_later_of_prefix_and_start() {
        let space = KeySpace::new(b"/t1".to_vec());
        let (from, end) = space.page_range(b"/pods/", Some(b"/pods/b\0"));
        assert_eq!(
            (from, end),
            (b"/t1/pods/b\0".to_vec(), b"/t1/pods0".to_vec())
        );
        let (from, _) = space.page_range(b"/pods/", Some(b"/a"));
        assert_eq!(from, b"/t1/pods/".to_vec());
    }
}
