//! A SQLite store's connections: a small pool of rusqlite connections, used on the calling
//! thread for point reads and on tokio's blocking pool for everything else.
//!
//! Why not sqlx here: sqlx runs each SQLite connection on a thread of its own and hands
//! every result back through a channel. That costs two thread wake-ups per statement (more
//! than a cached point read itself) and one idle thread per connection per store, which
//! with many control planes is most of an idle tenant's memory. With rusqlite a store
//! owns no thread at all.

use super::{SqliteSync, BACKEND};
use crate::error::{Result, StoreError};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Connections kept open between statements by a store in concurrent use; more are opened
/// under load and closed after.
const KEPT_CONNECTIONS: usize = 2;

/// How many times statements must have found every connection busy before the store keeps a
/// second one: until then it keeps one, so the few overlaps of a control plane's start do
/// not leave an idle store with two page caches (and their fixed buffers: most of an idle
/// store's memory), while a store in real concurrent use soon keeps both.
const CONCURRENT_USES: usize = 16;

/// Each connection's page cache, in KiB (it grows only as pages are read).
const CACHE_KIB: i64 = 4000;

/// How long a statement waits for a lock held by another connection of the store.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The connections to one store's file.
pub(super) struct Database(Arc<Pool>);

struct Pool {
    path: PathBuf,
    sync: SqliteSync,
    idle: Mutex<Vec<Connection>>,
    /// How many statements found no idle connection (counted up to [`CONCURRENT_USES`]).
    contended: AtomicUsize,
}

impl Database {
    /// Opens the file at `path` (creating it), in WAL mode, and keeps the connection.
    pub async fn open(path: &Path, sync: SqliteSync) -> Result<Self> {
        let pool = Arc::new(Pool {
            path: path.to_owned(),
            sync,
            idle: Mutex::new(Vec::new()),
            contended: AtomicUsize::new(0),
        });
        let opened = pool.clone();
        tokio::task::spawn_blocking(move || {
            let conn = opened.connect(OpenFlags::SQLITE_OPEN_CREATE)?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(|e| opened.failed("set WAL mode in", e))?;
            opened.release(conn);
            Ok::<_, StoreError>(())
        })
        .await
        .map_err(|e| StoreError::unavailable(BACKEND, format!("open {}", path.display()), e))??;
        Ok(Database(pool))
    }

    /// Runs `statements` on this thread: for reads that take microseconds.
    pub fn now<T>(
        &self,
        context: &'static str,
        statements: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.0.with(context, statements)
    }

    /// Runs `statements` on tokio's blocking pool: for writes (which may wait for a disk
    /// sync) and reads of many rows.
    pub async fn blocking<T: Send + 'static>(
        &self,
        context: &'static str,
        statements: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = self.0.clone();
        tokio::task::spawn_blocking(move || pool.with_mut(context, statements))
            .await
            .map_err(|e| StoreError::unavailable(BACKEND, context, e))?
    }

    /// Closes the idle connections (off the async threads: closing the last connection
    /// checkpoints the WAL into the database file).
    pub async fn close(&self) {
        let idle = std::mem::take(&mut *self.0.idle.lock().unwrap_or_else(|p| p.into_inner()));
        let _ = tokio::task::spawn_blocking(move || drop(idle)).await;
    }
}

impl Pool {
    fn with<T>(
        &self,
        context: &'static str,
        statements: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.with_mut(context, |conn| statements(conn))
    }

    /// Runs `statements` on an idle connection, or a new one, and keeps it after.
    fn with_mut<T>(
        &self,
        context: &'static str,
        statements: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => {
                if self.contended.load(Ordering::Relaxed) < CONCURRENT_USES {
                    self.contended.fetch_add(1, Ordering::Relaxed);
                }
                self.connect(OpenFlags::empty())?
            }
        };
        let result = statements(&mut conn).map_err(|e| self.failed(context, e));
        self.release(conn);
        result
    }

    /// Keeps `conn` for the next statement, or closes it when the store keeps enough.
    fn release(&self, conn: Connection) {
        let kept = if self.contended.load(Ordering::Relaxed) < CONCURRENT_USES {
            1
        } else {
            KEPT_CONNECTIONS
        };
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < kept {
            idle.push(conn);
            return;
        }
        drop(idle);
        drop(conn);
    }

    /// Opens a connection, with `extra` flags beside read-write.
    fn connect(&self, extra: OpenFlags) -> Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | extra;
        let conn =
            Connection::open_with_flags(&self.path, flags).map_err(|e| self.failed("open", e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            // Keep each statement's plan: otherwise SQLite recompiles a cached statement
            // whose parameters feed its plan every time they are bound anew, which
            // tripled the cost of a point read.
            .and_then(|()| conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true))
            .and_then(|_| {
                conn.execute_batch(&format!(
                    "PRAGMA synchronous = {}; PRAGMA cache_size = -{CACHE_KIB};",
                    match self.sync {
                        SqliteSync::Normal => "NORMAL",
                        SqliteSync::Full => "FULL",
                    }
                ))
            })
            .map_err(|e| self.failed("configure a connection to", e))?;
        Ok(conn)
    }

    /// An error of `context` on this store, naming its file.
    fn failed(&self, context: &str, e: rusqlite::Error) -> StoreError {
        StoreError::unavailable(BACKEND, format!("{context} {}", self.path.display()), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a statement while another holds the only idle connection: one overlap.
    async fn overlap(db: &Database) {
        let pool = db.0.clone();
        db.blocking("test", move |_| {
            pool.with("test", |conn| {
                conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            })
            .map_err(|_| rusqlite::Error::InvalidQuery)
        })
        .await
        .unwrap();
    }

    fn idle(db: &Database) -> usize {
        db.0.idle.lock().unwrap().len()
    }

    #[tokio::test]
    async fn a_second_connection_is_kept_once_concurrent_use_is_usual() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("db"), SqliteSync::Normal)
            .await
            .unwrap();
        assert_eq!(idle(&db), 1);
        for _ in 1..CONCURRENT_USES {
            overlap(&db).await;
            assert_eq!(idle(&db), 1, "a few overlaps leave one connection");
        }
        overlap(&db).await;
        assert_eq!(idle(&db), KEPT_CONNECTIONS);
        overlap(&db).await;
        assert_eq!(idle(&db), KEPT_CONNECTIONS);
    }
}
