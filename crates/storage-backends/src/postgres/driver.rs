//! The SQL of one store: kine's log table in the store's own schema. A batch of writes is
//! one `INSERT` statement (its own transaction) that also announces the commit with
//! `pg_notify`. Writers in several processes need no lock: rows are numbered from the
//! revision the writer read, so a writer that raced another hits the primary key and
//! evaluates its batch again; hence revisions commit in order, without gaps.

use super::{failed, BACKEND, CHANNEL};
use crate::error::{Result, StoreError};
use crate::kv::Revision;
use crate::log::{Appended, KeyRange, LogDriver, Revisions, Row};
use sqlx::{FromRow, PgConnection, PgPool, Row as _};
use std::sync::Arc;

/// High half of every advisory-lock key kflex takes (`"kflx"`), so its locks stay apart
/// from other applications' on the same database.
const LOCK_TAG: i64 = 0x6b66_6c78 << 32;
/// The advisory lock that serialises kflex's DDL (catalog and store tables): concurrent
/// `CREATE ... IF NOT EXISTS` of the same object can otherwise fail on a unique index.
pub(super) const DDL_LOCK: i64 = LOCK_TAG;

/// The row in a record from a `LEFT JOIN` onto the log table: `None` when it matched none.
fn optional_row(record: &sqlx::postgres::PgRow) -> Result<Option<Row>, sqlx::Error> {
    match record.try_get::<Option<i64>, _>("id")? {
        Some(_) => Row::from_row(record).map(Some),
        None => Ok(None),
    }
}

/// PostgreSQL's SQLSTATE for a unique-constraint violation: another writer took the id.
pub(super) const UNIQUE_VIOLATION: &str = "23505";

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
}

impl PgDriver {
    /// The driver of the store in `schema`, whose tables must exist.
    pub(super) async fn open(pool: PgPool, schema: &str) -> Result<Self> {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(schema)
                .fetch_one(&pool)
                .await
                .map_err(failed(format!("open schema {schema}")))?;
        if !exists {
            return Err(StoreError::unavailable(
                BACKEND,
                format!("open schema {schema}"),
                "the schema does not exist",
            ));
        }
        Ok(PgDriver {
            pool,
            schema: schema.into(),
            quoted: quote(schema).into(),
        })
    }

    /// The schema holding the store's tables.
    pub(super) fn schema(&self) -> &str {
        &self.schema
    }

    fn revisions_sql(&self) -> String {
        let s = &self.quoted;
        // `ORDER BY id DESC LIMIT 1` walks the primary key backwards whatever the
        // statistics say; `MAX(id)` was seen to scan a whole index on a new table.
        format!(
            "SELECT GREATEST(COALESCE((SELECT id FROM {s}.kv ORDER BY id DESC LIMIT 1), 0), compact_rev) AS current, \
             compact_rev AS compacted FROM {s}.meta WHERE id = 1"
        )
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

    async fn prepare(&self, keys: &[&[u8]]) -> Result<(Revision, Vec<Row>)> {
        let s = &self.quoted;
        // One statement, one snapshot: the revision and the keys' newest rows. The LEFT
        // JOIN yields the revision even when no key has a row.
        let records = sqlx::query(&format!(
            "SELECT r.current, {COLUMNS} FROM ({}) r LEFT JOIN LATERAL ( \
               SELECT newest.* FROM UNNEST($1::bytea[]) AS k(name), \
               LATERAL (SELECT * FROM {s}.kv h WHERE h.name = k.name ORDER BY h.id DESC LIMIT 1) newest) kv ON true",
            self.revisions_sql()
        ))
        .bind(keys)
        .fetch_all(&self.pool)
        .await
        .map_err(failed("read keys"))?;
        let mut current = 0;
        let mut rows = Vec::with_capacity(records.len());
        for record in &records {
            current = record.try_get("current").map_err(failed("read keys"))?;
            if record
                .try_get::<Option<i64>, _>("id")
                .map_err(failed("read keys"))?
                .is_some()
            {
                rows.push(Row::from_row(record).map_err(failed("read keys"))?);
            }
        }
        Ok((current, rows))
    }

    async fn append(&self, rows: &[Row]) -> Result<Appended> {
        let Some(newest) = rows.last().map(|row| row.id) else {
            return Ok(Appended::Committed);
        };
        let s = &self.quoted;
        let column = |f: fn(&Row) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
        let flag = |f: fn(&Row) -> bool| rows.iter().map(f).collect::<Vec<bool>>();
        let bytes = |f: fn(&Row) -> &[u8]| rows.iter().map(f).collect::<Vec<&[u8]>>();
        // A data-modifying WITH runs to completion whatever the outer query reads; the
        // notification is delivered when the statement's transaction commits.
        let outcome = sqlx::query(&format!(
            "WITH appended AS ( \
               INSERT INTO {s}.kv (id, name, created, deleted, create_revision, prev_revision, lease, value, old_value) \
               SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::boolean[], $4::boolean[], $5::bigint[], \
                                    $6::bigint[], $7::bigint[], $8::bytea[], $9::bytea[]) \
               RETURNING id) \
             SELECT pg_notify($10, $11) FROM (SELECT COUNT(*) FROM appended) n"
        ))
        .bind(column(|r| r.id))
        .bind(bytes(|r| &r.name))
        .bind(flag(|r| r.created))
        .bind(flag(|r| r.deleted))
        .bind(column(|r| r.create_revision))
        .bind(column(|r| r.prev_revision))
        .bind(column(|r| r.lease))
        .bind(bytes(|r| &r.value))
        .bind(bytes(|r| &r.old_value))
        .bind(CHANNEL)
        .bind(format!("{}:{newest}", self.schema))
        .execute(&self.pool)
        .await;
        match outcome {
            Ok(_) => Ok(Appended::Committed),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(UNIQUE_VIOLATION) => {
                Ok(Appended::Raced)
            }
            Err(e) => Err(failed("write")(e)),
        }
    }

    async fn revisions(&self) -> Result<Revisions> {
        let (current, compacted): (i64, i64) = sqlx::query_as(&self.revisions_sql())
            .fetch_one(&self.pool)
            .await
            .map_err(failed("read revisions"))?;
        Ok(Revisions { current, compacted })
    }

    async fn get(&self, key: &[u8], at: Option<Revision>) -> Result<(Option<Row>, Revisions)> {
        let s = &self.quoted;
        // One statement, one snapshot: the revisions and the row.
        let record = sqlx::query(&format!(
            "SELECT r.current, r.compacted, {COLUMNS} FROM ({}) r LEFT JOIN LATERAL ( \
               SELECT * FROM {s}.kv h WHERE h.name = $1 AND h.id <= COALESCE($2, r.current) \
               ORDER BY h.id DESC LIMIT 1) kv ON true",
            self.revisions_sql()
        ))
        .bind(key)
        .bind(at)
        .fetch_one(&self.pool)
        .await
        .map_err(failed("get"))?;
        let revisions = Revisions {
            current: record.try_get("current").map_err(failed("get"))?,
            compacted: record.try_get("compacted").map_err(failed("get"))?,
        };
        Ok((optional_row(&record).map_err(failed("get"))?, revisions))
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

    async fn size(&self) -> Result<u64> {
        let bytes: i64 = sqlx::query_scalar(
            "SELECT pg_total_relation_size(format('%I.kv', $1::text)::regclass) \
             + pg_total_relation_size(format('%I.meta', $1::text)::regclass)",
        )
        .bind(&*self.schema)
        .fetch_one(&self.pool)
        .await
        .map_err(failed("measure"))?;
        Ok(u64::try_from(bytes).unwrap_or(0))
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

    async fn record_compaction(&self, target: Revision) -> Result<Revision> {
        let s = &self.quoted;
        // The old value, read in the same statement that replaces it.
        sqlx::query_scalar(&format!(
            "UPDATE {s}.meta m SET compact_rev = GREATEST(m.compact_rev, $1) \
             FROM (SELECT compact_rev FROM {s}.meta WHERE id = 1) old \
             WHERE m.id = 1 RETURNING old.compact_rev"
        ))
        .bind(target)
        .fetch_one(&self.pool)
        .await
        .map_err(failed("compact"))
    }

    async fn delete_superseded(&self, low: Revision, high: Revision) -> Result<()> {
        let s = &self.quoted;
        sqlx::query(&format!(
            "DELETE FROM {s}.kv WHERE id IN ( \
               SELECT prev_revision FROM {s}.kv WHERE id > $1 AND id <= $2 AND prev_revision != 0 \
               UNION SELECT id FROM {s}.kv WHERE id > $1 AND id <= $2 AND deleted)"
        ))
        .bind(low)
        .bind(high)
        .execute(&self.pool)
        .await
        .map_err(failed("compact"))?;
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
