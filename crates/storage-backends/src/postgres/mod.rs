//! The shared PostgreSQL backend: one server holds thousands of stores, a schema each.
//!
//! A process connects once ([`PostgresServer::connect`]) and shares one bounded pool among
//! all its stores, plus one `LISTEN` connection. Each store is kine's log table (the same
//! as [`sqlite`](crate::sqlite)'s) in schema `kflex_store_<n>`, listed in the catalog
//! `kflex_catalog.stores`. Several processes may serve the same store at once: writers
//! queue on a per-store advisory lock, so revisions stay gapless and in commit order, and
//! each commit sends `NOTIFY kflex_kv, '<schema>:<revision>'`, from which every process
//! feeds its watchers. An idle store runs no query and holds no connection.

mod catalog;
mod connect;
mod driver;
mod feed;

use crate::error::{Result, StoreError};
use crate::log::{delegate_store, LogDriver, LogOptions, LogStore};
use crate::Store;
use driver::PgDriver;
use feed::{Feed, Subscription};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

const BACKEND: &str = "postgres";
/// The notification channel of every commit, on every database kflex uses.
const CHANNEL: &str = "kflex_kv";

/// Turns a failed database call into `Unavailable`, saying what was being done.
fn failed(context: impl std::fmt::Display) -> impl FnOnce(sqlx::Error) -> StoreError {
    // sqlx's message for a pool timeout does not say why no connection came.
    const NO_CONNECTION: &str = "no connection within the acquire timeout: \
        the server is unreachable or every pooled connection is busy";
    move |error| match error {
        sqlx::Error::PoolTimedOut => StoreError::unavailable(BACKEND, context, NO_CONNECTION),
        error => StoreError::unavailable(BACKEND, context, error),
    }
}

/// How to use a PostgreSQL server.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// The most connections the stores of this process share (the listener's is extra).
    pub max_connections: u32,
    /// How long an operation waits for a connection (and `connect` for the server) before
    /// failing with `Unavailable`.
    pub acquire_timeout: Duration,
    /// History window and write batching of each store.
    pub log: LogOptions,
    /// Empty stores kept ready, so that creating a store renames one instead of running
    /// DDL (refilled after each use, off the caller's path). 0: none.
    pub spare_stores: usize,
    /// What a spare store is given before it is offered (for instance the objects every
    /// new control plane starts with), so that claiming it leaves nothing to write.
    pub prepare_spare: Option<SparePreparer>,
}

/// Prepares a spare store's content, off any caller's path ([`PostgresOptions::prepare_spare`]).
/// Its label names what the spares it prepares hold: a server only claims spares with its
/// own label (no label: empty ones), so processes sharing a database never claim each
/// other's differently prepared spares.
#[derive(Clone)]
pub struct SparePreparer {
    label: &'static str,
    prepare: Arc<PrepareFn>,
}

impl SparePreparer {
    /// A preparer of spares labelled `label` (`[a-z0-9-]`, not `empty`), made by `prepare`.
    ///
    /// # Panics
    /// If `label` is not of that form (a programming error).
    pub fn new(label: &'static str, prepare: Arc<PrepareFn>) -> Self {
        assert!(
            !label.is_empty()
                && label != EMPTY_SPARES
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "spare label {label:?} must be [a-z0-9-]+ and not {EMPTY_SPARES:?}"
        );
        SparePreparer { label, prepare }
    }
}

/// The label of spares nothing prepared.
const EMPTY_SPARES: &str = "empty";

/// The function of a [`SparePreparer`].
pub type PrepareFn =
    dyn Fn(Arc<dyn Store>) -> futures::future::BoxFuture<'static, Result<()>> + Send + Sync;

impl std::fmt::Debug for SparePreparer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SparePreparer")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            log: LogOptions::default(),
            spare_stores: 0,
            prepare_spare: None,
        }
    }
}

/// A PostgreSQL server (one database) holding kflex stores: the pool and the listener
/// all its stores share. Connect once per process and clone it (clones are cheap).
#[derive(Clone)]
pub struct PostgresServer(Arc<Server>);

struct Server {
    pool: PgPool,
    feed: Arc<Feed>,
    /// Set once the catalog is known to exist (it is created on first use).
    catalog: OnceCell<()>,
    options: PostgresOptions,
    /// Set while a task makes spare stores.
    filling: std::sync::atomic::AtomicBool,
}

impl PostgresServer {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`).
    /// A malformed URL fails with `InvalidInput`; an unreachable server, a refused login
    /// or a missing database with `Unavailable`, within `options.acquire_timeout`.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self> {
        let pools = connect::connect(url, &options).await?;
        let feed = Feed::start(pools.listener).await?;
        let server = PostgresServer(Arc::new(Server {
            pool: pools.stores,
            feed,
            catalog: OnceCell::new(),
            options,
            filling: std::sync::atomic::AtomicBool::new(false),
        }));
        server.refill_spares();
        Ok(server)
    }

    /// Makes spare stores up to `options.spare_stores` in the background, unless that is
    /// already under way. Runs at connect and after a spare is used: never while idle.
    fn refill_spares(&self) {
        use std::sync::atomic::Ordering;
        let target = self.0.options.spare_stores;
        if target == 0 || self.0.filling.swap(true, Ordering::AcqRel) {
            return;
        }
        let server = self.clone();
        tokio::spawn(async move {
            let filled = match server.catalog().await {
                Ok(()) => server.fill_spares(target).await,
                Err(e) => Err(e),
            };
            if let Err(error) = filled {
                tracing::warn!(backend = BACKEND, %error, "making spare stores");
            }
            server.0.filling.store(false, Ordering::Release);
        });
    }

    /// Makes spare stores until `target` exist. Each is made and prepared under a name no
    /// one claims, then renamed a spare; one a crashed process left half made is dropped.
    async fn fill_spares(&self, target: usize) -> Result<()> {
        let pool = &self.0.pool;
        for name in catalog::abandoned_unprepared(pool).await? {
            catalog::drop(pool, &name).await?;
        }
        let prefix = self.spare_prefix();
        while catalog::count_spares(pool, &prefix).await? < target {
            let suffix = format!("{:016x}", rand::random::<u64>());
            let unprepared = format!("{}{suffix}", catalog::UNPREPARED_PREFIX);
            let schema = catalog::create(pool, &unprepared, false).await?;
            if let Some(prepare) = &self.0.options.prepare_spare {
                let store = Arc::new(self.open(&schema).await?);
                if let Err(error) = (prepare.prepare)(store).await {
                    catalog::drop(pool, &unprepared).await?;
                    return Err(error);
                }
            }
            catalog::rename(pool, &unprepared, &format!("{prefix}{suffix}")).await?;
        }
        Ok(())
    }

    /// The name prefix of the spares this server makes and claims.
    fn spare_prefix(&self) -> String {
        let label = self
            .0
            .options
            .prepare_spare
            .as_ref()
            .map_or(EMPTY_SPARES, |p| p.label);
        catalog::spare_prefix(label)
    }

    /// Store `name`'s schema, made from a spare when one is left, else created.
    async fn create_schema(&self, name: &str, existing_ok: bool) -> Result<String> {
        if let Some(schema) = catalog::claim_spare(&self.0.pool, name, &self.spare_prefix()).await?
        {
            self.refill_spares();
            return Ok(schema);
        }
        catalog::create(&self.0.pool, name, existing_ok).await
    }

    /// Creates store `name` (any UTF-8 of 1 to 253 bytes, without NUL). Fails with
    /// `InvalidInput` if it exists.
    pub async fn create_store(&self, name: &str) -> Result<PostgresStore> {
        catalog::check_name(name)?;
        self.catalog().await?;
        let schema = self.create_schema(name, false).await?;
        self.open(&schema).await
    }

    /// Opens store `name`, creating it first if it does not exist (safe to race with other
    /// processes doing the same).
    pub async fn ensure_store(&self, name: &str) -> Result<PostgresStore> {
        catalog::check_name(name)?;
        self.catalog().await?;
        let schema = match catalog::lookup(&self.0.pool, name).await? {
            Some(schema) => schema,
            None => self.create_schema(name, true).await?,
        };
        self.open(&schema).await
    }

    /// Opens the existing store `name`; `InvalidInput` if there is none.
    pub async fn open_store(&self, name: &str) -> Result<PostgresStore> {
        catalog::check_name(name)?;
        self.catalog().await?;
        let schema = catalog::lookup(&self.0.pool, name)
            .await?
            .ok_or_else(|| StoreError::InvalidInput(format!("store {name:?} does not exist")))?;
        self.open(&schema).await
    }

    /// Deletes store `name` and all its data; Ok if there is no such store. Handles of it
    /// open in this process stop receiving watch events, and their operations fail.
    pub async fn drop_store(&self, name: &str) -> Result<()> {
        catalog::check_name(name)?;
        self.catalog().await?;
        if let Some(schema) = catalog::drop(&self.0.pool, name).await? {
            self.0.feed.forget(&schema);
        }
        Ok(())
    }

    /// The names of all stores on the database, in byte order.
    pub async fn list_stores(&self) -> Result<Vec<String>> {
        self.catalog().await?;
        catalog::list(&self.0.pool).await
    }

    /// Opens a store in schema `schema` of a database the user provides, creating its
    /// tables if missing. The catalog is not involved, and nothing is ever dropped. The
    /// name must be a plain lowercase identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes,
    /// not `pg_*` nor the catalog's).
    pub async fn open_schema(&self, schema: &str) -> Result<PostgresStore> {
        check_schema(schema)?;
        if !driver::tables_exist(&self.0.pool, schema).await? {
            let context = format!("create tables in schema {schema}");
            let mut tx = catalog::ddl(&self.0.pool, &context).await?;
            driver::create_tables(&mut tx, schema).await?;
            tx.commit().await.map_err(failed(context))?;
        }
        self.open(schema).await
    }

    async fn catalog(&self) -> Result<()> {
        self.0
            .catalog
            .get_or_try_init(|| catalog::ensure(&self.0.pool))
            .await?;
        Ok(())
    }

    /// Starts the store whose tables are in `schema`, fed by the listener from its
    /// current revision on.
    async fn open(&self, schema: &str) -> Result<PostgresStore> {
        let driver = PgDriver::open(self.0.pool.clone(), schema).await?;
        let current = driver.revisions().await?.current;
        let log = LogStore::start(driver, self.0.options.log.clone(), false).await?;
        let subscription = self
            .0
            .feed
            .subscribe(log.driver().clone(), log.hub().clone(), current);
        Ok(PostgresStore(log, subscription))
    }
}

fn check_schema(schema: &str) -> Result<()> {
    let plain = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
    let valid = (1..=63).contains(&schema.len())
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && schema.bytes().all(plain)
        && !schema.starts_with("pg_")
        && schema != catalog::CATALOG_SCHEMA;
    if !valid {
        return Err(StoreError::InvalidInput(format!(
            "schema name {schema:?}: must match [a-z_][a-z0-9_]* (at most 63 bytes), not pg_* nor {}",
            catalog::CATALOG_SCHEMA
        )));
    }
    Ok(())
}

/// A store on a PostgreSQL server: kine's table in a schema of its own. Watches see the
/// writes of every process using the store. Opening a store twice gives two independent
/// handles (each its own writer and watch fan-out) that see each other's writes.
pub struct PostgresStore(LogStore<PgDriver>, Subscription);

delegate_store!(PostgresStore);

impl PostgresStore {
    /// The schema holding the store's tables.
    pub fn schema(&self) -> &str {
        self.1.schema()
    }
}
