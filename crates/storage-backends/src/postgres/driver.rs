//! The SQL of one store: kine's log table in the store's own schema, writes serialised
//! across processes by a per-store advisory lock, commits announced with `pg_notify`.

use super::{failed, BACKEND, CHANNEL};
use crate::error::{Result, StoreError};
use crate::kv::Revision;
use crate::log::{KeyRange, LogDriver, LogTx, Revisions, Row};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use std::sync::Arc;

/// High half of every advisory-lock key kflex takes (`"kflx"`), so its locks stay apart
/// from other applications' on the same database.
const LOCK_TAG: i64 = 0x6b66_6c78 << 32;
/// The advisory lock that serialises kflex's DDL (catalog and store tables): concurrent
/// `CREATE ... IF NOT EXISTS` of the same object can otherwise fail on a unique index.
pub(super) const DDL_LOCK: i64 = LOCK_TAG;

/// Revisions compacted per delete statement.
const COMPACT_STEP: i64 = 1000;

const COLUMNS: &str = "kv.id, kv.name, kv.created, kv.deleted, kv.create_revision, kv.prev_revision, kv.lease, kv.value, kv.old_value";

/// Creates the store's schema and tables if missing. Run inside a transaction holding
/// [`DDL_LOCK`].
pub(super) async fn create_tables(conn: &mut PgConnection, schema: &str) -> Result<()> {
    let context = || format!("create tables in schema {schema}");
    // `CREATE SCHEMA IF NOT EXISTS` needs the right to create schemas even when the schema
    // exists, which a role given only a schema of its own lacks.
    let schema_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *conn)
            .await
            .map_err(failed(context()))?;
    let s = quote(schema);
    let statements = [
        (!schema_exists).then(|| format!("CREATE SCHEMA {s}")),
        Some(format!(
            "CREATE TABLE IF NOT EXISTS {s}.kv (
                id BIGINT PRIMARY KEY,
                name BYTEA NOT NULL,
                created BOOLEAN NOT NULL,
                deleted BOOLEAN NOT NULL,
                create_revision BIGINT NOT NULL,
                prev_revision BIGINT NOT NULL,
                lease BIGINT NOT NULL,
                value BYTEA NOT NULL,
                old_value BYTEA NOT NULL)"
        )),
        Some(format!("CREATE INDEX IF NOT EXISTS kv_name_id ON {s}.kv (name, id)")),
        Some(format!("CREATE INDEX IF NOT EXISTS kv_prev_revision ON {s}.kv (prev_revision)")),
        Some(format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS kv_name_prev_revision ON {s}.kv (name, prev_revision)"
        )),
        Some(format!(
            "CREATE TABLE IF NOT EXISTS {s}.meta (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                schema_version INTEGER NOT NULL,
                compact_rev BIGINT NOT NULL)"
        )),
        Some(format!(
            "INSERT INTO {s}.meta (id, schema_version, compact_rev) VALUES (1, 1, 0) ON CONFLICT (id) DO NOTHING"
        )),
    ];
    for statement in statements.into_iter().flatten() {
        sqlx::query(&statement)
            .execute(&mut *conn)
            .await
            .map_err(failed(context()))?;
    }
    Ok(())
}

/// Whether `schema` already holds a store's tables.
pub(super) async fn tables_exist(pool: &PgPool, schema: &str) -> Result<bool> {
    let found: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_tables WHERE schemaname = $1 AND tablename IN ('kv', 'meta')",
    )
    .bind(schema)
    .fetch_one(pool)
    .await
    .map_err(failed(format!("look up schema {schema}")))?;
    Ok(found == 2)
}

/// `schema` as a quoted SQL identifier. Schema names are validated identifiers; the
/// doubling of `"` keeps this correct for any name regardless.
pub(super) fn quote(schema: &str) -> String {
    format!("\"{}\"", schema.replace('"', "\"\""))
}

/// The SQL of one store, whose tables live in schema `schema`.
pub(crate) struct PgDriver {
    pool: PgPool,
    schema: Arc<str>,
    /// `schema`, quoted.
    quoted: Arc<str>,
    /// The advisory lock held by the store's write transactions.
    lock_key: i64,
}

impl PgDriver {
    /// The driver of the store in `schema`, whose tables must exist.
    pub(super) async fn open(pool: PgPool, schema: &str) -> Result<Self> {
        let oid: Option<i64> =
            sqlx::query_scalar("SELECT oid::bigint FROM pg_namespace WHERE nspname = $1")
                .bind(schema)
                .fetch_optional(&pool)
                .await
                .map_err(failed(format!("open schema {schema}")))?;
        let oid = oid.ok_or_else(|| {
            StoreError::unavailable(
                BACKEND,
                format!("open schema {schema}"),
                "the schema does not exist",
            )
        })?;
        Ok(PgDriver {
            pool,
            schema: schema.into(),
            quoted: quote(schema).into(),
            // Schema OIDs are unique in the database (advisory locks are per database).
            lock_key: LOCK_TAG | oid,
        })
    }

    /// The schema holding the store's tables.
    pub(super) fn schema(&self) -> &str {
        &self.schema
    }

    fn revisions_sql(&self) -> String {
        let s = &self.quoted;
        format!("SELECT GREATEST(COALESCE((SELECT MAX(id) FROM {s}.kv), 0), compact_rev), compact_rev FROM {s}.meta WHERE id = 1")
    }

    /// The newest row at or below `$3` of every key in the range.
    fn latest_rows_sql(&self, range: &KeyRange) -> String {
        let s = &self.quoted;
        format!(
            "FROM {s}.kv kv JOIN (SELECT MAX(kv.id) AS id FROM {s}.kv kv WHERE {} AND kv.id <= $3 GROUP BY kv.name) latest \
             ON kv.id = latest.id WHERE NOT kv.deleted",
            range_sql(range)
        )
    }
}

/// `name >= $1 [AND name < $2]`, with the end bound only when the range has one. BYTEA
/// compares bytewise, so this is the keys' byte order whatever the collation.
fn range_sql(range: &KeyRange) -> &'static str {
    if range.end.is_some() {
        "kv.name >= $1 AND kv.name < $2"
    } else {
        "kv.name >= $1 AND $2::bytea IS NULL"
    }
}

#[async_trait::async_trait]
impl LogDriver for PgDriver {
    const BACKEND: &'static str = BACKEND;

    async fn begin(&self) -> Result<Box<dyn LogTx>> {
        let mut tx = self.pool.begin().await.map_err(failed("begin write"))?;
        // Writers of every process queue here, so revisions follow each other without gaps.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(self.lock_key)
            .execute(&mut *tx)
            .await
            .map_err(failed("lock the store for writing"))?;
        // A new statement, so a new snapshot: it sees the previous lock holder's commit.
        let (current, _): (i64, i64) = sqlx::query_as(&self.revisions_sql())
            .fetch_one(&mut *tx)
            .await
            .map_err(failed("read revisions"))?;
        Ok(Box::new(PgTx {
            tx,
            current,
            schema: self.schema.clone(),
            quoted: self.quoted.clone(),
        }))
    }

    async fn revisions(&self) -> Result<Revisions> {
        let (current, compacted): (i64, i64) = sqlx::query_as(&self.revisions_sql())
            .fetch_one(&self.pool)
            .await
            .map_err(failed("read revisions"))?;
        Ok(Revisions { current, compacted })
    }

    async fn get(&self, key: &[u8], at: Revision) -> Result<Option<Row>> {
        let s = &self.quoted;
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM {s}.kv kv WHERE kv.name = $1 AND kv.id <= $2 ORDER BY kv.id DESC LIMIT 1"
        ))
        .bind(key)
        .bind(at)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("get"))
    }

    async fn range(&self, range: &KeyRange, at: Revision, limit: Option<i64>) -> Result<Vec<Row>> {
        // `LIMIT NULL` is no limit.
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} {} ORDER BY kv.name LIMIT $4",
            self.latest_rows_sql(range)
        ))
        .bind(&range.start)
        .bind(&range.end)
        .bind(at)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(failed("range"))
    }

    async fn count(&self, range: &KeyRange, at: Revision) -> Result<u64> {
        let count: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) {}", self.latest_rows_sql(range)))
                .bind(&range.start)
                .bind(&range.end)
                .bind(at)
                .fetch_one(&self.pool)
                .await
                .map_err(failed("count"))?;
        Ok(count as u64)
    }

    async fn history(&self, range: &KeyRange, after: Revision, limit: i64) -> Result<Vec<Row>> {
        let s = &self.quoted;
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM {s}.kv kv WHERE {} AND kv.id > $3 ORDER BY kv.id LIMIT $4",
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

    async fn compact(&self, target: Revision) -> Result<()> {
        let s = &self.quoted;
        // Record the compaction first, so readers of older revisions fail rather than
        // see rows half deleted; then delete in bounded steps.
        let from: i64 =
            sqlx::query_scalar(&format!("SELECT compact_rev FROM {s}.meta WHERE id = 1"))
                .fetch_one(&self.pool)
                .await
                .map_err(failed("compact"))?;
        sqlx::query(&format!(
            "UPDATE {s}.meta SET compact_rev = GREATEST(compact_rev, $1) WHERE id = 1"
        ))
        .bind(target)
        .execute(&self.pool)
        .await
        .map_err(failed("compact"))?;
        let delete = format!(
            "DELETE FROM {s}.kv WHERE id IN ( \
               SELECT prev_revision FROM {s}.kv WHERE id > $1 AND id <= $2 AND prev_revision != 0 \
               UNION SELECT id FROM {s}.kv WHERE id > $1 AND id <= $2 AND deleted)"
        );
        let mut low = from;
        while low < target {
            let high = (low + COMPACT_STEP).min(target);
            sqlx::query(&delete)
                .bind(low)
                .bind(high)
                .execute(&self.pool)
                .await
                .map_err(failed("compact"))?;
            low = high;
        }
        Ok(())
    }

    async fn expiring(&self) -> Result<Vec<(Vec<u8>, Revision, i64)>> {
        let s = &self.quoted;
        sqlx::query_as(&format!(
            "SELECT k.name, k.id, k.lease FROM {s}.kv k WHERE k.lease > 0 AND NOT k.deleted \
             AND k.id = (SELECT MAX(id) FROM {s}.kv WHERE name = k.name)"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(failed("read keys with a time-to-live"))
    }
}

/// A write transaction, holding the store's advisory lock until it ends.
struct PgTx {
    tx: Transaction<'static, Postgres>,
    current: Revision,
    schema: Arc<str>,
    quoted: Arc<str>,
}

#[async_trait::async_trait]
impl LogTx for PgTx {
    fn current(&self) -> Revision {
        self.current
    }

    async fn latest(&mut self, key: &[u8]) -> Result<Option<Row>> {
        let s = &self.quoted;
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM {s}.kv kv WHERE kv.name = $1 ORDER BY kv.id DESC LIMIT 1"
        ))
        .bind(key)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(failed("read key"))
    }

    async fn insert(&mut self, row: &Row) -> Result<()> {
        let s = &self.quoted;
        sqlx::query(&format!(
            "INSERT INTO {s}.kv (id, name, created, deleted, create_revision, prev_revision, lease, value, old_value) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(row.id)
        .bind(&row.name)
        .bind(row.created)
        .bind(row.deleted)
        .bind(row.create_revision)
        .bind(row.prev_revision)
        .bind(row.lease)
        .bind(&row.value)
        .bind(&row.old_value)
        .execute(&mut *self.tx)
        .await
        .map_err(failed("write"))?;
        Ok(())
    }

    async fn commit(mut self: Box<Self>, newest: Revision) -> Result<()> {
        // Delivered to every listener at commit, in commit order.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(format!("{}:{newest}", self.schema))
            .execute(&mut *self.tx)
            .await
            .map_err(failed("notify"))?;
        self.tx.commit().await.map_err(failed("commit"))
    }
}
