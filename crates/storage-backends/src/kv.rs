//! The values a store keeps and hands out: revisions, key-values, watch events, ranges.

use bytes::Bytes;
use std::time::Duration;

/// A store revision: one counter per store that only increases; every write creates one.
pub type Revision = i64;

/// One version of a key, as etcd's `mvccpb.KeyValue`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, in kube-apiserver's layout (`/registry/<resource>/<namespace>/<name>`).
    pub key: Vec<u8>,
    /// The value: opaque bytes (the API layer stores JSON). Empty on a deletion event.
    pub value: Bytes,
    /// The revision that created this incarnation of the key.
    pub create_revision: Revision,
    /// The revision of the write that produced this version (the deletion, on a delete event).
    pub mod_revision: Revision,
    /// The time-to-live the version was written with, if any.
    pub ttl: Option<Duration>,
}

/// What a watch event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or updated: `kv` is the new version.
    Put,
    /// The key was deleted (or expired): `kv` carries the key and the deletion revision.
    Delete,
}

/// One change seen by a watch, in revision order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The new version (for a delete: the key, an empty value and the deletion revision).
    pub kv: KeyValue,
    /// The version this change replaced; `None` for a create.
    pub prev: Option<KeyValue>,
}

impl Event {
    /// The revision of the write this event reports.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// A read of keys under a prefix at one revision: a page of a consistent snapshot.
#[derive(Clone, Debug, Default)]
pub struct RangeRequest {
    /// Keys returned start with this prefix.
    pub prefix: Vec<u8>,
    /// The first key to return (inclusive) if later than `prefix`: the continue token's key
    /// plus a `\0`, as kube-apiserver does.
    pub start: Option<Vec<u8>>,
    /// At most this many keys; `None` or `Some(0)` for all.
    pub limit: Option<usize>,
    /// The snapshot to read; `None` for the current revision.
    pub revision: Option<Revision>,
}

/// A page of a range read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResponse {
    /// The keys found, in byte order of the key.
    pub kvs: Vec<KeyValue>,
    /// True when keys beyond this page exist at the same revision.
    pub more: bool,
    /// How many keys the range holds from `start` on (this page and the rest).
    pub count: u64,
    /// The revision the page was read at: pass it back to read the next page.
    pub revision: Revision,
}

/// The key just past every key that starts with `prefix` (etcd's "range end" for a prefix);
/// empty when no such key exists (a prefix of only `0xff` bytes, or an empty prefix).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    Vec::new()
}

/// Rounds a time-to-live up to whole seconds (at least one), as leases count them.
pub(crate) fn ttl_seconds(ttl: Duration) -> i64 {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    secs.clamp(1, i64::MAX as u64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_that_can_be() {
        assert_eq!(prefix_end(b"/registry/pods/"), b"/registry/pods0");
        assert_eq!(prefix_end(b"a\xff\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"");
        assert_eq!(prefix_end(b""), b"");
    }

    #[test]
    fn ttl_rounds_up_to_seconds() {
        assert_eq!(ttl_seconds(Duration::from_millis(1)), 1);
        assert_eq!(ttl_seconds(Duration::from_secs(3)), 3);
        assert_eq!(ttl_seconds(Duration::from_millis(3001)), 4);
        assert_eq!(ttl_seconds(Duration::ZERO), 1);
    }
}
