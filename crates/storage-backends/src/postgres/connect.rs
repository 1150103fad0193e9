//! Reaching the server: parses the URL, proves it reachable with one connection (so a
//! failure names its cause: refused, no such database, bad password), then builds the
//! stores' shared pool and the listener's own one-connection pool.

use super::{failed, PostgresOptions, BACKEND};
use crate::error::{Result, StoreError};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use std::str::FromStr;
use std::time::Duration;

/// A pooled connection unused this long is closed, so an idle server holds none.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The pools of one server.
pub(super) struct Pools {
    /// Shared by every store's reads and writes.
    pub stores: PgPool,
    /// Holds the one `LISTEN` connection (a pool so that sqlx can reconnect it).
    pub listener: PgPool,
}

/// Connects to the server at `url`. A malformed URL is `InvalidInput`; a server that
/// cannot be reached or refuses the login is `Unavailable`, within `acquire_timeout`.
pub(super) async fn connect(url: &str, options: &PostgresOptions) -> Result<Pools> {
    let connect = parse(url)?;
    let target = describe(&connect);
    let timeout = options.acquire_timeout;
    match tokio::time::timeout(timeout, connect.connect()).await {
        Ok(Ok(probe)) => {
            // Only a probe: a failure to say goodbye does not matter.
            let _ = probe.close().await;
        }
        Ok(Err(e)) => return Err(failed(format!("connect to {target}"))(e)),
        Err(_) => {
            return Err(StoreError::unavailable(
                BACKEND,
                format!("connect to {target}"),
                format!("no answer within {timeout:?}"),
            ))
        }
    }
    let stores = PgPoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .min_connections(0)
        .idle_timeout(Some(IDLE_TIMEOUT))
        .acquire_timeout(timeout)
        // A ping before every statement would double the round trips of a write; a
        // broken connection fails its statement, which is reported and not retried.
        .test_before_acquire(false)
        .connect_lazy_with(connect.clone());
    let listener = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(timeout)
        .connect_lazy_with(connect);
    tracing::info!(backend = BACKEND, server = %target, max_connections = options.max_connections, "connected");
    Ok(Pools { stores, listener })
}

/// Parses a `postgres://` or `postgresql://` URL; connections are named `kflex` in
/// `pg_stat_activity` unless the URL sets `application_name`.
fn parse(url: &str) -> Result<PgConnectOptions> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(StoreError::InvalidInput(
            "postgres URL must start with postgres:// or postgresql://".into(),
        ));
    }
    // The error is about the URL's shape; it does not repeat the URL (or its password).
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::InvalidInput(format!("postgres URL: {e}")))?;
    Ok(match options.get_application_name() {
        Some(_) => options,
        None => options.application_name("kflex"),
    })
}

/// `user@host:port/database`, for messages (never the password).
fn describe(options: &PgConnectOptions) -> String {
    let host = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    let database = options.get_database().unwrap_or(options.get_username());
    format!("{}@{host}/{database}", options.get_username())
}
