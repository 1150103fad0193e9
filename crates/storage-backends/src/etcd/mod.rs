//! The etcd backend: a [`Store`](crate::Store) on a real etcd, and a supervisor that runs a
//! dedicated `etcd` process per store.
//!
//! [`EtcdStore`] maps the store contract 1:1 onto the etcd operations kube-apiserver
//! issues: kflex revisions *are* etcd revisions, writes are `Txn`s comparing a key's
//! `mod_revision`, time-to-lives are etcd leases shared between writes, and watches are
//! etcd watches that transparently resume after the connection to etcd breaks.
//!
//! Every key lives under [`EtcdConfig::key_prefix`] in etcd, so several stores can share
//! one etcd; the prefix is added on the way in and stripped on the way out. Revisions and
//! compaction, however, are etcd's: they are global to the etcd cluster, not per prefix.
//!
//! [`EtcdSupervisor`] starts and babysits one `etcd` process on loopback ports, restarting
//! it (on the same ports and data) if it dies.

mod config;
mod errors;
mod keyspace;
mod lease;
mod process;
mod store;
mod supervisor;
mod watch;

pub use config::{EtcdConfig, EtcdTls};
pub use store::EtcdStore;
pub use supervisor::{EtcdSupervisor, EtcdSupervisorConfig};
