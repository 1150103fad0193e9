//! The embedded default backend: one SQLite file per store, in WAL mode, kine's table.
//!
//! One writer task per store appends each batch in one `INSERT` (one commit); readers use
//! a small pool of their own connections, which WAL lets run beside the writer. A lock
//! file keeps a second process from opening the same store, so this process is the only
//! writer and keeps the store's revisions in memory: reads cost one query.

use crate::error::{Result, StoreError};
use crate::kv::Revision;
use crate::log::{
    delegate_store, Appended, KeyRange, LogDriver, LogOptions, LogStore, Revisions, Row,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

const BACKEND: &str = "sqlite";

/// When SQLite makes a commit durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SqliteSync {
    /// fsync at WAL checkpoints only: an acknowledged write survives the process being
    /// killed, but not a power loss. The default, as kine's.
    #[default]
    Normal,
    /// fsync on every commit (as etcd does): survives a power loss too.
    Full,
}

/// How to open a SQLite store.
#[derive(Clone, Debug, Default)]
pub struct SqliteOptions {
    /// Commit durability.
    pub sync: SqliteSync,
    /// History window and write batching.
    pub log: LogOptions,
}

/// A store in one SQLite file.
pub struct SqliteStore(LogStore<SqliteDriver>);

delegate_store!(SqliteStore);

impl SqliteStore {
    /// Opens (creating if needed) the store in the file at `path`.
    pub async fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let path = path.as_ref();
        let lock = lock_store(path)?;
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match options.sync {
                SqliteSync::Normal => SqliteSynchronous::Normal,
                SqliteSync::Full => SqliteSynchronous::Full,
            })
            .busy_timeout(Duration::from_secs(30))
            .pragma("cache_size", "-8000");
        let pool = SqlitePoolOptions::new()
            .min_connections(0)
            .max_connections(4)
            .idle_timeout(Duration::from_secs(60))
            // The connections are in-process: nothing to test before a statement.
            .test_before_acquire(false)
            .connect_with(connect)
            .await
            .map_err(|e| StoreError::unavailable(BACKEND, format!("open {}", path.display()), e))?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&pool).await.map_err(|e| {
                StoreError::unavailable(BACKEND, format!("create schema in {}", path.display()), e)
            })?;
        }
        let (current, compacted): (i64, i64) = sqlx::query_as(REVISIONS_SQL)
            .fetch_one(&pool)
            .await
            .map_err(|e| {
                StoreError::unavailable(BACKEND, format!("read revisions of {}", path.display()), e)
            })?;
        let driver = SqliteDriver {
            pool,
            lock,
            revisions: Mutex::new(Revisions { current, compacted }),
        };
        Ok(SqliteStore(
            LogStore::start(driver, options.log, true).await?,
        ))
    }

    /// Closes the store: answers queued writes, closes its connections and releases the
    /// file lock, so the store can be opened again at once (dropping it does the same in
    /// the background).
    pub async fn close(self) {
        let driver = self.0.shutdown().await;
        driver.pool.close().await;
        let _ = driver.lock.unlock();
    }

    /// Removes the store's files. The store must not be open.
    pub fn destroy(path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        for file in store_files(path) {
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StoreError::unavailable(
                        BACKEND,
                        format!("remove {}", file.display()),
                        e,
                    ))
                }
            }
        }
        Ok(())
    }
}

/// The files of the store at `path`: the database, its WAL files and its lock file.
fn store_files(path: &Path) -> Vec<PathBuf> {
    ["", "-wal", "-shm", LOCK_SUFFIX]
        .iter()
        .map(|suffix| with_suffix(path, suffix))
        .collect()
}

/// The suffix of the lock file beside a store's database.
const LOCK_SUFFIX: &str = ".lock";

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Takes an exclusive lock on `<path>.lock`, held while the store is open.
fn lock_store(path: &Path) -> Result<File> {
    let lock_path = with_suffix(path, LOCK_SUFFIX);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| {
            StoreError::unavailable(BACKEND, format!("open {}", lock_path.display()), e)
        })?;
    file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => StoreError::unavailable(
            BACKEND,
            format!("open {}", path.display()),
            "the store is open in another process",
        ),
        std::fs::TryLockError::Error(e) => {
            StoreError::unavailable(BACKEND, format!("lock {}", lock_path.display()), e)
        }
    })?;
    Ok(file)
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS kv (
        id INTEGER PRIMARY KEY,
        name BLOB NOT NULL,
        created INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        create_revision INTEGER NOT NULL,
        prev_revision INTEGER NOT NULL,
        lease INTEGER NOT NULL,
        value BLOB NOT NULL,
        old_value BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS kv_name_id ON kv (name, id)",
    "CREATE INDEX IF NOT EXISTS kv_prev_revision ON kv (prev_revision)",
    "CREATE UNIQUE INDEX IF NOT EXISTS kv_name_prev_revision ON kv (name, prev_revision)",
    "CREATE TABLE IF NOT EXISTS meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        schema_version INTEGER NOT NULL,
        compact_rev INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO meta (id, schema_version, compact_rev) VALUES (1, 1, 0)",
];

const COLUMNS: &str = "kv.id, kv.name, kv.created, kv.deleted, kv.create_revision, kv.prev_revision, kv.lease, kv.value, kv.old_value";

/// The SQL of the SQLite backend.
pub(crate) struct SqliteDriver {
    pool: SqlitePool,
    /// Held (locked) while the store is open.
    lock: File,
    /// The store's revisions: this process is its only writer. Updated after a commit,
    /// and before compaction deletes rows.
    revisions: Mutex<Revisions>,
}

impl SqliteDriver {
    fn cached(&self) -> Revisions {
        *self
            .revisions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut Revisions)) {
        change(
            &mut self
                .revisions
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
    }
}

fn failed(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::unavailable(BACKEND, context, e)
}

/// `name >= ?start [AND name < ?end]`, with the end bound only when the range has one.
fn range_sql(range: &KeyRange) -> &'static str {
    if range.end.is_some() {
        "kv.name >= ?1 AND kv.name < ?2"
    } else {
        "kv.name >= ?1 AND ?2 IS NULL"
    }
}

/// The newest row at or below `?3` of every key in the range.
fn latest_rows_sql(range: &KeyRange) -> String {
    format!(
        "FROM kv JOIN (SELECT MAX(kv.id) AS id FROM kv WHERE {} AND kv.id <= ?3 GROUP BY kv.name) latest \
         ON kv.id = latest.id WHERE kv.deleted = 0",
        range_sql(range)
    )
}

#[async_trait::async_trait]
impl LogDriver for SqliteDriver {
    const BACKEND: &'static str = BACKEND;

    async fn prepare(&self, keys: &[&[u8]]) -> Result<(Revision, Vec<Row>)> {
        let placeholders = vec!["?"; keys.len()].join(", ");
        let sql = format!(
            "SELECT {COLUMNS} FROM kv WHERE kv.id IN (SELECT MAX(id) FROM kv WHERE name IN ({placeholders}) GROUP BY name)"
        );
        let mut query = sqlx::query_as(&sql);
        for key in keys {
            query = query.bind(*key);
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(failed("read keys"))?;
        Ok((self.cached().current, rows))
    }

    async fn append(&self, rows: &[Row]) -> Result<Appended> {
        let Some(newest) = rows.last().map(|row| row.id) else {
            return Ok(Appended::Committed);
        };
        let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; rows.len()].join(", ");
        let sql = format!(
            "INSERT INTO kv (id, name, created, deleted, create_revision, prev_revision, lease, value, old_value) VALUES {values}"
        );
        let mut query = sqlx::query(&sql);
        for row in rows {
            query = query
                .bind(row.id)
                .bind(&row.name)
                .bind(row.created)
                .bind(row.deleted)
                .bind(row.create_revision)
                .bind(row.prev_revision)
                .bind(row.lease)
                .bind(&row.value)
                .bind(&row.old_value);
        }
        query.execute(&self.pool).await.map_err(failed("write"))?;
        self.update(|revisions| revisions.current = revisions.current.max(newest));
        Ok(Appended::Committed)
    }

    async fn revisions(&self) -> Result<Revisions> {
        Ok(self.cached())
    }

    async fn get(&self, key: &[u8], at: Option<Revision>) -> Result<(Option<Row>, Revisions)> {
        let current = self.cached().current;
        let row = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM kv WHERE kv.name = ?1 AND kv.id <= ?2 ORDER BY kv.id DESC LIMIT 1"
        ))
        .bind(key)
        .bind(at.unwrap_or(current))
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("get"))?;
        // Compaction records itself here before deleting rows: read it after the row.
        let compacted = self.cached().compacted;
        Ok((row, Revisions { current, compacted }))
    }

    async fn range(&self, range: &KeyRange, at: Revision, limit: Option<i64>) -> Result<Vec<Row>> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} {} ORDER BY kv.name LIMIT ?4",
            latest_rows_sql(range)
        ))
        .bind(&range.start)
        .bind(&range.end)
        .bind(at)
        .bind(limit.unwrap_or(-1))
        .fetch_all(&self.pool)
        .await
        .map_err(failed("range"))
    }

    async fn count(&self, range: &KeyRange, at: Revision) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) {}", latest_rows_sql(range)))
            .bind(&range.start)
            .bind(&range.end)
            .bind(at)
            .fetch_one(&self.pool)
            .await
            .map_err(failed("count"))?;
        Ok(count as u64)
    }

    async fn history(&self, range: &KeyRange, after: Revision, limit: i64) -> Result<Vec<Row>> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM kv WHERE {} AND kv.id > ?3 ORDER BY kv.id LIMIT ?4",
            range_sql(range)
        ))
        .bind(&range.start)
        .bind(&range.end)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(failed("read history"))
    }

    async fn record_compaction(&self, target: Revision) -> Result<Revision> {
        let from: i64 = sqlx::query_scalar("SELECT compact_rev FROM meta WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(failed("compact"))?;
        sqlx::query("UPDATE meta SET compact_rev = MAX(compact_rev, ?1) WHERE id = 1")
            .bind(target)
            .execute(&self.pool)
            .await
            .map_err(failed("compact"))?;
        self.update(|revisions| revisions.compacted = revisions.compacted.max(target));
        Ok(from)
    }

    async fn delete_superseded(&self, low: Revision, high: Revision) -> Result<()> {
        sqlx::query(
            "DELETE FROM kv WHERE id IN ( \
               SELECT prev_revision FROM kv WHERE id > ?1 AND id <= ?2 AND prev_revision != 0 \
               UNION SELECT id FROM kv WHERE id > ?1 AND id <= ?2 AND deleted != 0)",
        )
        .bind(low)
        .bind(high)
        .execute(&self.pool)
        .await
        .map_err(failed("compact"))?;
        Ok(())
    }

    async fn expiring(&self) -> Result<Vec<(Vec<u8>, Revision, i64)>> {
        sqlx::query_as(
            "SELECT k.name, k.id, k.lease FROM kv k WHERE k.lease > 0 AND k.deleted = 0 \
             AND k.id = (SELECT MAX(id) FROM kv WHERE name = k.name)",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(failed("read keys with a time-to-live"))
    }
}

const REVISIONS_SQL: &str = "SELECT MAX(COALESCE((SELECT MAX(id) FROM kv), 0), compact_rev), compact_rev FROM meta WHERE id = 1";
