//! kflex's storage: a revisioned key-value store with etcd's semantics, and its backends.
//!
//! Start with [`Store`]: the one trait the API server writes through. It is etcd's
//! contract as kube-apiserver uses it (and as kine implements it over SQL): one increasing
//! revision per store, reads at a revision, compare-and-swap writes on a key's modification
//! revision, keys with a time-to-live, watches from a revision, and compaction.
//!
//! Backends, one module each:
//! - [`sqlite`]: the embedded default, one file per store.
//! - [`postgres`]: one PostgreSQL server shared by many stores (a schema per store, one
//!   connection pool, `LISTEN/NOTIFY` watches).
//! - [`etcd`]: a real etcd, through `etcd-client`; [`etcd::EtcdSupervisor`] runs one
//!   `etcd` process per store.
//! - [`external`]: a store on a database or etcd the user provides.
//!
//! Every backend passes the same conformance suite (`tests/conformance`).

pub mod etcd;
mod log;
pub mod postgres;
pub mod sqlite;

mod error;
pub mod external;
mod kv;
mod store;

pub use error::{Result, StoreError};
pub use kv::{prefix_end, Event, EventKind, KeyValue, RangeRequest, RangeResponse, Revision};
pub use log::LogOptions;
pub use store::{Store, WatchStream};
