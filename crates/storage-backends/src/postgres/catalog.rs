//! Which stores a database holds: the catalog (`kflex_catalog.stores`) maps each store's
//! name to the schema holding its tables, numbered from a sequence (`kflex_store_<n>`).

use super::driver::{self, DDL_LOCK};
use super::{failed, BACKEND};
use crate::error::{Result, StoreError};
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};

/// The schema holding the catalog.
pub(super) const CATALOG_SCHEMA: &str = "kflex_catalog";
/// Longest store name, in bytes (a Kubernetes object name's limit).
const MAX_NAME_BYTES: usize = 253;

const CREATE_CATALOG: &[&str] = &[
    "CREATE SCHEMA IF NOT EXISTS kflex_catalog",
    "CREATE TABLE IF NOT EXISTS kflex_catalog.stores (
        name TEXT PRIMARY KEY,
        schema_name TEXT UNIQUE NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    "CREATE SEQUENCE IF NOT EXISTS kflex_catalog.store_numbers",
];

/// The name prefix of kflex's own stores; reserved (a caller's name may not start with it).
const RESERVED_PREFIX: &str = "kflex:";
/// The name prefix of spare stores, made ahead of need so that creating a store only
/// renames one; followed by the label of what they hold (see [`spare_prefix`]).
const SPARE_PREFIX: &str = "kflex:spare:";

/// The name prefix of the spare stores holding what `label` names: only those are claimed
/// by a server whose spares are prepared that way (a plain `[a-z0-9-]` label, so it needs
/// no escaping in `LIKE`).
pub(super) fn spare_prefix(label: &str) -> String {
    format!("{SPARE_PREFIX}{label}:")
}
/// The name prefix of a spare store while it is made and prepared.
pub(super) const UNPREPARED_PREFIX: &str = "kflex:unprepared:";
/// After this long, a store still being prepared was left by a process that died.
const ABANDONED_AFTER: &str = "10 minutes";

/// Checks a store name: non-empty, at most 253 bytes, no NUL (PostgreSQL text cannot hold
/// it), not reserved.
pub(super) fn check_name(name: &str) -> Result<()> {
    if name.starts_with(RESERVED_PREFIX) {
        return Err(StoreError::InvalidInput(format!(
            "store name {:?}: names starting with {RESERVED_PREFIX:?} are reserved",
            truncated(name)
        )));
    }
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.contains('\0') {
        return Err(StoreError::InvalidInput(format!(
            "store name {:?}: must be 1 to {MAX_NAME_BYTES} bytes of UTF-8 without NUL",
            truncated(name)
        )));
    }
    Ok(())
}

fn truncated(name: &str) -> &str {
    let mut end = name.len().min(64);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Creates the catalog if it does not exist. Checks first without DDL, so a role that may
/// use an existing catalog but not create schemas gets past this.
pub(super) async fn ensure(pool: &PgPool) -> Result<()> {
    let found: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'kflex_catalog' AND c.relname IN ('stores', 'store_numbers')",
    )
    .fetch_one(pool)
    .await
    .map_err(failed("look up the store catalog"))?;
    if found == 2 {
        return Ok(());
    }
    let mut tx = ddl(pool, "create the store catalog").await?;
    for statement in CREATE_CATALOG {
        sqlx::query(statement)
            .execute(&mut *tx)
            .await
            .map_err(failed("create the store catalog"))?;
    }
    tx.commit()
        .await
        .map_err(failed("create the store catalog"))?;
    tracing::info!(backend = BACKEND, "created the store catalog");
    Ok(())
}

/// A transaction holding the DDL lock: kflex's schema changes on the database run one at
/// a time, so concurrent `IF NOT EXISTS` creations of one object cannot collide.
pub(super) async fn ddl(pool: &PgPool, context: &str) -> Result<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await.map_err(failed(context))?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(DDL_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(failed(context))?;
    Ok(tx)
}

/// The schema of store `name`, if the catalog has it.
pub(super) async fn lookup<'e>(
    executor: impl PgExecutor<'e>,
    name: &str,
) -> Result<Option<String>> {
    sqlx::query_scalar("SELECT schema_name FROM kflex_catalog.stores WHERE name = $1")
        .bind(name)
        .fetch_optional(executor)
        .await
        .map_err(failed(format!("look up store {name:?}")))
}

/// Creates store `name` (schema, tables and catalog row, in one transaction) and returns
/// its schema. If it exists: its schema when `existing_ok`, else `InvalidInput`.
pub(super) async fn create(pool: &PgPool, name: &str, existing_ok: bool) -> Result<String> {
    let context = format!("create store {name:?}");
    let mut tx = ddl(pool, &context).await?;
    if let Some(schema) = lookup(&mut *tx, name).await? {
        if existing_ok {
            return Ok(schema);
        }
        return Err(StoreError::InvalidInput(format!(
            "store {name:?} already exists"
        )));
    }
    let number: i64 = sqlx::query_scalar("SELECT nextval('kflex_catalog.store_numbers')")
        .fetch_one(&mut *tx)
        .await
        .map_err(failed(&context))?;
    let schema = format!("kflex_store_{number}");
    driver::create_tables(&mut tx, &schema).await?;
    sqlx::query("INSERT INTO kflex_catalog.stores (name, schema_name) VALUES ($1, $2)")
        .bind(name)
        .bind(&schema)
        .execute(&mut *tx)
        .await
        .map_err(failed(&context))?;
    tx.commit().await.map_err(failed(context))?;
    tracing::info!(backend = BACKEND, store = name, schema, "created store");
    Ok(schema)
}

/// Drops store `name`'s schema (with its tables) and catalog row; returns the schema, or
/// `None` if there was no such store.
pub(super) async fn drop(pool: &PgPool, name: &str) -> Result<Option<String>> {
    let context = format!("drop store {name:?}");
    let mut tx = ddl(pool, &context).await?;
    let Some(schema) = lookup(&mut *tx, name).await? else {
        return Ok(None);
    };
    sqlx::query(&format!(
        "DROP SCHEMA IF EXISTS {} CASCADE",
        driver::quote(&schema)
    ))
    .execute(&mut *tx)
    .await
    .map_err(failed(&context))?;
    sqlx::query("DELETE FROM kflex_catalog.stores WHERE name = $1")
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(failed(&context))?;
    tx.commit().await.map_err(failed(context))?;
    tracing::info!(backend = BACKEND, store = name, schema, "dropped store");
    Ok(Some(schema))
}

/// The names of every store in the catalog, sorted.
pub(super) async fn list(pool: &PgPool) -> Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT name FROM kflex_catalog.stores WHERE name NOT LIKE 'kflex:%' \
         ORDER BY name COLLATE \"C\"",
    )
    .fetch_all(pool)
    .await
    .map_err(failed("list stores"))
}

/// Gives a spare store whose name starts with `prefix` the name `name` (one statement, no DDL); its schema, or `None` when
/// no spare is left or `name` is taken meanwhile.
pub(super) async fn claim_spare(pool: &PgPool, name: &str, prefix: &str) -> Result<Option<String>> {
    let claimed = sqlx::query_scalar(
        "UPDATE kflex_catalog.stores SET name = $1, created_at = now() WHERE name = ( \
           SELECT name FROM kflex_catalog.stores WHERE name LIKE $2 || '%' \
           ORDER BY name LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING schema_name",
    )
    .bind(name)
    .bind(prefix)
    .fetch_optional(pool)
    .await;
    match claimed {
        Ok(schema) => Ok(schema),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(driver::UNIQUE_VIOLATION) => {
            Ok(None)
        }
        Err(e) => Err(failed(format!("claim a spare store for {name:?}"))(e)),
    }
}

/// How many spare stores whose names start with `prefix` are ready.
pub(super) async fn count_spares(pool: &PgPool, prefix: &str) -> Result<usize> {
    let spares: i64 =
        sqlx::query_scalar("SELECT count(*) FROM kflex_catalog.stores WHERE name LIKE $1 || '%'")
            .bind(prefix)
            .fetch_one(pool)
            .await
            .map_err(failed("count spare stores"))?;
    Ok(spares as usize)
}

/// Spare stores whose preparation was abandoned (their process died meanwhile).
pub(super) async fn abandoned_unprepared(pool: &PgPool) -> Result<Vec<String>> {
    sqlx::query_scalar(&format!(
        "SELECT name FROM kflex_catalog.stores WHERE name LIKE 'kflex:unprepared:%' \
         AND created_at < now() - interval '{ABANDONED_AFTER}'"
    ))
    .fetch_all(pool)
    .await
    .map_err(failed("list abandoned spare stores"))
}

/// Renames store `from` to `to`.
pub(super) async fn rename(pool: &PgPool, from: &str, to: &str) -> Result<()> {
    sqlx::query("UPDATE kflex_catalog.stores SET name = $2 WHERE name = $1")
        .bind(from)
        .bind(to)
        .execute(pool)
        .await
        .map_err(failed(format!("rename store {from:?}")))?;
    Ok(())
}
