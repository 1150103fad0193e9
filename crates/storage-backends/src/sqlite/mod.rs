//! The embedded default backend: one SQLite file per store, in WAL mode, kine's table.
//!
//! One writer task per store appends each batch in one transaction (one commit); reads run
//! beside it on connections of their own, as WAL allows ([`database`]: why rusqlite and not
//! sqlx here). A lock
//! file keeps a second process from opening the same store, so this process is the only
//! writer and keeps the store's revisions in memory: reads cost one query.

mod database;

use crate::error::{Result, StoreError};
use crate::kv::Revision;
use crate::log::{
    delegate_store, Appended, KeyRange, LogDriver, LogOptions, LogStore, Revisions, Row,
};
use database::Database;
use rusqlite::OptionalExtension;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

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
        let db = Database::open(path, options.sync).await?;
        let (current, compacted) = db
            .blocking("create the schema in", |conn| {
                conn.execute_batch(SCHEMA)?;
                conn.query_row(REVISIONS_SQL, [], |r| Ok((r.get(0)?, r.get(1)?)))
            })
            .await?;
        let driver = SqliteDriver {
            db,
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
        driver.db.close().await;
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

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS kv (
        id INTEGER PRIMARY KEY,
        name BLOB NOT NULL,
        created INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        create_revision INTEGER NOT NULL,
        prev_revision INTEGER NOT NULL,
        lease INTEGER NOT NULL,
        value BLOB NOT NULL,
        old_value BLOB NOT NULL);
    CREATE INDEX IF NOT EXISTS kv_name_id ON kv (name, id);
    CREATE INDEX IF NOT EXISTS kv_prev_revision ON kv (prev_revision);
    CREATE UNIQUE INDEX IF NOT EXISTS kv_name_prev_revision ON kv (name, prev_revision);
    CREATE TABLE IF NOT EXISTS meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        schema_version INTEGER NOT NULL,
        compact_rev INTEGER NOT NULL);
    INSERT OR IGNORE INTO meta (id, schema_version, compact_rev) VALUES (1, 1, 0);";

const COLUMNS: &str = "kv.id, kv.name, kv.created, kv.deleted, kv.create_revision, kv.prev_revision, kv.lease, kv.value, kv.old_value";

/// The SQL of the SQLite backend.
pub(crate) struct SqliteDriver {
    db: Database,
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

/// The newest row (possibly a tombstone) of key `?1` at or below revision `?2`.
static GET_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS} FROM kv WHERE kv.name = ?1 AND kv.id <= ?2 ORDER BY kv.id DESC LIMIT 1"
    )
});

/// A log row from a result row in [`COLUMNS`] order.
fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        name: r.get(1)?,
        created: r.get(2)?,
        deleted: r.get(3)?,
        create_revision: r.get(4)?,
        prev_revision: r.get(5)?,
        lease: r.get(6)?,
        value: r.get(7)?,
        old_value: r.get(8)?,
    })
}

#[async_trait::async_trait]
impl LogDriver for SqliteDriver {
    const BACKEND: &'static str = BACKEND;

    async fn prepare(&self, keys: &[&[u8]]) -> Result<(Revision, Vec<Row>)> {
        let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        let rows = self
            .db
            .blocking("read keys of", move |conn| {
                let mut latest = conn.prepare_cached(&GET_SQL)?;
                let mut rows = Vec::with_capacity(keys.len());
                for key in keys {
                    rows.extend(
                        latest
                            .query_row(rusqlite::params![key, i64::MAX], row)
                            .optional()?,
                    );
                }
                Ok(rows)
            })
            .await?;
        Ok((self.cached().current, rows))
    }

    async fn append(&self, rows: &[Row]) -> Result<Appended> {
        let Some(newest) = rows.last().map(|row| row.id) else {
            return Ok(Appended::Committed);
        };
        let rows = rows.to_vec();
        self.db
            .blocking("write to", move |conn| {
                let batch = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                {
                    let mut insert = batch.prepare_cached(
                        "INSERT INTO kv (id, name, created, deleted, create_revision, prev_revision, lease, value, old_value) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )?;
                    for row in &rows {
                        insert.execute(rusqlite::params![
                            row.id,
                            row.name,
                            row.created,
                            row.deleted,
                            row.create_revision,
                            row.prev_revision,
                            row.lease,
                            row.value,
                            row.old_value
                        ])?;
                    }
                }
                batch.commit()
            })
            .await?;
        self.update(|revisions| revisions.current = revisions.current.max(newest));
        Ok(Appended::Committed)
    }

    async fn revisions(&self) -> Result<Revisions> {
        Ok(self.cached())
    }

    async fn get(&self, key: &[u8], at: Option<Revision>) -> Result<(Option<Row>, Revisions)> {
        let current = self.cached().current;
        // A point read with its pages cached takes microseconds: run it here.
        let row = self.db.now("get from", |conn| {
            conn.prepare_cached(&GET_SQL)?
                .query_row(rusqlite::params![key, at.unwrap_or(current)], row)
                .optional()
        })?;
        // Compaction records itself here before deleting rows: read it after the row.
        let compacted = self.cached().compacted;
        Ok((row, Revisions { current, compacted }))
    }

    async fn range(&self, range: &KeyRange, at: Revision, limit: Option<i64>) -> Result<Vec<Row>> {
        let range = range.clone();
        self.db
            .blocking("range over", move |conn| {
                let mut statement = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} {} ORDER BY kv.name LIMIT ?4",
                    latest_rows_sql(&range)
                ))?;
                let params = rusqlite::params![range.start, range.end, at, limit.unwrap_or(-1)];
                let rows = statement.query_map(params, row)?;
                rows.collect()
            })
            .await
    }

    async fn count(&self, range: &KeyRange, at: Revision) -> Result<u64> {
        let range = range.clone();
        self.db
            .blocking("count in", move |conn| {
                let sql = format!("SELECT COUNT(*) {}", latest_rows_sql(&range));
                let count: i64 = conn
                    .prepare_cached(&sql)?
                    .query_row(rusqlite::params![range.start, range.end, at], |r| r.get(0))?;
                Ok(count as u64)
            })
            .await
    }

    async fn size(&self) -> Result<u64> {
        self.db
            .blocking("measure", |conn| {
                let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
                let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
                Ok(u64::try_from(pages * page_size).unwrap_or(0))
            })
            .await
    }

    async fn history(&self, range: &KeyRange, after: Revision, limit: i64) -> Result<Vec<Row>> {
        let range = range.clone();
        self.db
            .blocking("read history of", move |conn| {
                let mut statement = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM kv WHERE {} AND kv.id > ?3 ORDER BY kv.id LIMIT ?4",
                    range_sql(&range)
                ))?;
                let params = rusqlite::params![range.start, range.end, after, limit];
                let rows = statement.query_map(params, row)?;
                rows.collect()
            })
            .await
    }

    async fn record_compaction(&self, target: Revision) -> Result<Revision> {
        let from = self
            .db
            .blocking("compact", move |conn| {
                let from: i64 =
                    conn.query_row("SELECT compact_rev FROM meta WHERE id = 1", [], |r| {
                        r.get(0)
                    })?;
                conn.execute(
                    "UPDATE meta SET compact_rev = MAX(compact_rev, ?1) WHERE id = 1",
                    [target],
                )?;
                Ok(from)
            })
            .await?;
        self.update(|revisions| revisions.compacted = revisions.compacted.max(target));
        Ok(from)
    }

    async fn delete_superseded(&self, low: Revision, high: Revision) -> Result<()> {
        self.db
            .blocking("compact", move |conn| {
                conn.execute(
                    "DELETE FROM kv WHERE id IN ( \
                       SELECT prev_revision FROM kv WHERE id > ?1 AND id <= ?2 AND prev_revision != 0 \
                       UNION SELECT id FROM kv WHERE id > ?1 AND id <= ?2 AND deleted != 0)",
                    [low, high],
                )
                .map(drop)
            })
            .await
    }

    async fn expiring(&self) -> Result<Vec<(Vec<u8>, Revision, i64)>> {
        self.db
            .blocking("read keys with a time-to-live in", |conn| {
                let mut statement = conn.prepare(
                    "SELECT k.name, k.id, k.lease FROM kv k WHERE k.lease > 0 AND k.deleted = 0 \
                     AND k.id = (SELECT MAX(id) FROM kv WHERE name = k.name)",
                )?;
                let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect()
            })
            .await
    }
}

const REVISIONS_SQL: &str = "SELECT MAX(COALESCE((SELECT MAX(id) FROM kv), 0), compact_rev), compact_rev FROM meta WHERE id = 1";
