//! A tenant's store, by backend: opened (created on first use) when the control plane is
//! started, and removed with it, never when kflex did not create it.

use super::api::Backend;
use kflex_storage_backends::etcd::{EtcdSupervisor, EtcdSupervisorConfig};
use kflex_storage_backends::external::{open_external, ExternalStoreConfig};
use kflex_storage_backends::postgres::PostgresServer;
use kflex_storage_backends::sqlite::{SqliteOptions, SqliteStore};
use kflex_storage_backends::{Store, StoreError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the manager puts the stores it creates.
#[derive(Clone)]
pub struct StorageConfig {
    /// Directory for embedded SQLite files (`tenants/<cp>.db`) and dedicated etcds
    /// (`etcd/<cp>/`).
    pub data_dir: PathBuf,
    /// The shared PostgreSQL server, when one is configured; else `shared` is SQLite.
    pub postgres: Option<PostgresServer>,
    /// The `etcd` binary for dedicated stores.
    pub etcd_bin: PathBuf,
}

/// A tenant's open store and what removing it takes.
pub struct TenantStore {
    pub store: Arc<dyn Store>,
    owned: Owned,
}

/// What kflex created for a store, so that deletion removes exactly that.
enum Owned {
    Sqlite(PathBuf),
    Postgres(PostgresServer, String),
    Etcd(EtcdSupervisor),
    /// The user's: nothing to remove.
    Nothing,
}

impl StorageConfig {
    fn sqlite_path(&self, cp: &str) -> PathBuf {
        self.data_dir.join("tenants").join(format!("{cp}.db"))
    }

    /// Opens control plane `cp`'s store, creating it when missing. `external` is the data
    /// of the Secret named by `backendSecretRef` (decoded), for backend `external`.
    pub async fn open(
        &self,
        cp: &str,
        backend: Backend,
        external: Option<&BTreeMap<String, Vec<u8>>>,
    ) -> Result<TenantStore, StoreError> {
        match backend {
            Backend::Shared => match &self.postgres {
                Some(server) => Ok(TenantStore {
                    store: Arc::new(server.ensure_store(cp).await?),
                    owned: Owned::Postgres(server.clone(), cp.to_owned()),
                }),
                None => {
                    let path = self.sqlite_path(cp);
                    if let Some(dir) = path.parent() {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            StoreError::unavailable(
                                "sqlite",
                                format!("create {}", dir.display()),
                                e,
                            )
                        })?;
                    }
                    let store = SqliteStore::open(&path, SqliteOptions::default()).await?;
                    Ok(TenantStore {
                        store: Arc::new(store),
                        owned: Owned::Sqlite(path),
                    })
                }
            },
            Backend::Dedicated => {
                let mut config = EtcdSupervisorConfig::new(self.data_dir.join("etcd").join(cp), cp);
                config.etcd_bin = self.etcd_bin.clone();
                let supervisor = EtcdSupervisor::start(config).await?;
                Ok(TenantStore {
                    store: Arc::new(supervisor.store().await?),
                    owned: Owned::Etcd(supervisor),
                })
            }
            Backend::External => {
                let data = external.ok_or_else(|| {
                    StoreError::InvalidInput(
                        "backend external needs spec.backendSecretRef".to_owned(),
                    )
                })?;
                let config = ExternalStoreConfig::from_secret_data(data)?;
                Ok(TenantStore {
                    store: open_external(&config).await?,
                    owned: Owned::Nothing,
                })
            }
        }
    }
}

impl TenantStore {
    /// Stops the store and removes what kflex created for it (the user's external
    /// database is left as it is).
    pub async fn destroy(self) -> Result<(), StoreError> {
        drop(self.store);
        match self.owned {
            Owned::Sqlite(path) => SqliteStore::destroy(path),
            Owned::Postgres(server, name) => server.drop_store(&name).await,
            Owned::Etcd(supervisor) => supervisor.destroy().await,
            Owned::Nothing => Ok(()),
        }
    }
}
