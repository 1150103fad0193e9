//! External stores: a PostgreSQL database or an etcd that the user provides, described by
//! the data of a Kubernetes Secret. kflex checks the store is reachable and usable, and
//! never creates or drops a database, schema or etcd it does not own: it only creates its
//! own tables in the named schema when they are missing.
//!
//! Secret keys:
//!
//! | key | meaning |
//! |---|---|
//! | `endpoint` | `postgres://…` / `postgresql://…` (a DSN), or comma-separated `http(s)://` etcd client URLs |
//! | `schema` | PostgreSQL: the schema holding kflex's tables (default `kflex`) |
//! | `prefix` | etcd: prepended to every key (default: none, the whole key space) |
//! | `ca.crt`, `tls.crt`, `tls.key` | etcd over TLS: CA, and client certificate and key |

use crate::error::{Result, StoreError};
use crate::etcd::{EtcdConfig, EtcdStore, EtcdTls};
use crate::postgres::{PostgresOptions, PostgresServer};
use crate::Store;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The schema used when the Secret names none.
pub const DEFAULT_SCHEMA: &str = "kflex";

/// Connections an external PostgreSQL store may hold.
const EXTERNAL_POOL_SIZE: u32 = 4;

/// A store the user provides.
#[derive(Clone, Debug)]
pub enum ExternalStoreConfig {
    /// A PostgreSQL database, and the schema (created if missing) for kflex's tables.
    Postgres {
        /// The DSN.
        dsn: String,
        /// The schema.
        schema: String,
    },
    /// An etcd cluster.
    Etcd(EtcdConfig),
}

impl ExternalStoreConfig {
    /// Reads the configuration from a Secret's data (see the module documentation).
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Self> {
        let text = |key: &str| -> Result<Option<String>> {
            data.get(key)
                .map(|bytes| {
                    String::from_utf8(bytes.clone())
                        .map(|s| s.trim().to_owned())
                        .map_err(|_| {
                            StoreError::InvalidInput(format!(
                                "secret key {key:?} is not UTF-8 text"
                            ))
                        })
                })
                .transpose()
        };
        let endpoint = text("endpoint")?.filter(|e| !e.is_empty()).ok_or_else(|| {
            StoreError::InvalidInput(
                "secret has no key \"endpoint\" (a postgres:// DSN or etcd URLs)".into(),
            )
        })?;
        if endpoint.starts_with("postgres://") || endpoint.starts_with("postgresql://") {
            let schema = text("schema")?
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_SCHEMA.into());
            return Ok(ExternalStoreConfig::Postgres {
                dsn: endpoint,
                schema,
            });
        }
        let endpoints: Vec<String> = endpoint.split(',').map(|e| e.trim().to_owned()).collect();
        if let Some(bad) = endpoints
            .iter()
            .find(|e| !(e.starts_with("http://") || e.starts_with("https://")))
        {
            return Err(StoreError::InvalidInput(format!(
                "endpoint {bad:?} is neither a postgres:// DSN nor an http(s):// etcd URL"
            )));
        }
        let mut config =
            EtcdConfig::new(endpoints).with_key_prefix(text("prefix")?.unwrap_or_default());
        let (ca, cert, key) = (data.get("ca.crt"), data.get("tls.crt"), data.get("tls.key"));
        if ca.is_some() || cert.is_some() || key.is_some() {
            config.tls = Some(EtcdTls {
                ca_pem: ca
                    .cloned()
                    .ok_or_else(|| StoreError::InvalidInput("etcd TLS needs \"ca.crt\"".into()))?,
                client_cert_pem: cert.cloned(),
                client_key_pem: key.cloned(),
            });
        }
        Ok(ExternalStoreConfig::Etcd(config))
    }

    /// Where the store is, for messages (without credentials).
    pub fn describe(&self) -> String {
        match self {
            ExternalStoreConfig::Postgres { dsn, schema } => {
                let host = dsn.rsplit('@').next().unwrap_or(dsn);
                let host = host.split_once("://").map_or(host, |(_, rest)| rest);
                format!("postgres {host} schema {schema}")
            }
            ExternalStoreConfig::Etcd(config) => format!("etcd {}", config.endpoints.join(",")),
        }
    }
}

/// Opens an external store, checking that it is reachable and that kflex can write to it.
pub async fn open_external(config: &ExternalStoreConfig) -> Result<Arc<dyn Store>> {
    match config {
        ExternalStoreConfig::Postgres { dsn, schema } => {
            let options = PostgresOptions {
                max_connections: EXTERNAL_POOL_SIZE,
                ..Default::default()
            };
            let server = PostgresServer::connect(dsn, options).await?;
            Ok(Arc::new(server.open_schema(schema).await?))
        }
        ExternalStoreConfig::Etcd(config) => {
            Ok(Arc::new(EtcdStore::connect(config.clone()).await?))
        }
    }
}
