//! A row of the log table, and how it reads as a key-value or a watch event.

use crate::kv::{Event, EventKind, KeyValue, Revision};
use bytes::Bytes;
use std::time::Duration;

/// One row of the log: one write. `id` is the revision of the write.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct Row {
    pub id: Revision,
    pub name: Vec<u8>,
    /// This row created the key (first write, or the first after a delete).
    pub created: bool,
    /// This row is a deletion (tombstone).
    pub deleted: bool,
    /// The revision that created this incarnation of the key.
    pub create_revision: Revision,
    /// The id of the row this one supersedes (0: none).
    pub prev_revision: Revision,
    /// Time-to-live in seconds (0: none).
    pub lease: i64,
    pub value: Vec<u8>,
    /// The superseded row's value, so events carry it without a join.
    pub old_value: Vec<u8>,
}

impl Row {
    /// The version of the key this row wrote.
    pub fn into_kv(self) -> KeyValue {
        KeyValue {
            key: self.name,
            value: Bytes::from(self.value),
            create_revision: self.create_revision,
            mod_revision: self.id,
            ttl: (self.lease > 0).then(|| Duration::from_secs(self.lease as u64)),
        }
    }

    /// The watch event this row reports: the new version, and the one it superseded.
    pub fn into_event(mut self) -> Event {
        let prev = (!self.created && self.prev_revision != 0).then(|| KeyValue {
            key: self.name.clone(),
            value: Bytes::from(std::mem::take(&mut self.old_value)),
            create_revision: self.create_revision,
            mod_revision: self.prev_revision,
            ttl: None,
        });
        let kind = if self.deleted {
            EventKind::Delete
        } else {
            EventKind::Put
        };
        let mut kv = self.into_kv();
        if kind == EventKind::Delete {
            kv.value = Bytes::new();
            kv.ttl = None;
        }
        Event { kind, kv, prev }
    }
}
