//! The storage conformance suite: the cases in `suite` run against every backend.
//!
//! Each backend module opens a fresh, isolated store per case. Backends that reach
//! outside services (PostgreSQL, etcd) take their addresses from `scripts/test`.

mod suite;

use kflex_storage_backends::Store;
use std::sync::Arc;

/// A store under test, and whatever must live as long as it (a temporary directory,
/// a supervised etcd, a schema to drop).
pub struct Subject {
    pub store: Arc<dyn Store>,
    pub _guard: Box<dyn std::any::Any + Send>,
}

/// One `#[tokio::test]` per listed case, running `suite::<case>` on `$open().await`.
macro_rules! cases {
    ($open:path: $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let subject = $open().await;
                crate::suite::$case(subject.store.clone()).await;
                drop(subject);
            }
        )*
    };
}

/// The cases every backend passes.
macro_rules! conformance {
    ($open:path) => {
        cases!($open:
            revisions_increase_and_reads_see_history,
            create_refuses_an_existing_key,
            compare_and_swap_refuses_stale_writes,
            unconditional_delete_returns_the_deleted_version,
            range_pages_one_snapshot_while_writes_continue,
            watch_replays_history_then_follows_live_writes,
            watch_delivers_concurrent_writes_in_order_exactly_once,
            keys_expire_after_their_time_to_live,
            large_values_round_trip,
            keys_with_unusual_bytes_round_trip_in_byte_order,
            concurrent_writers_on_one_key_lose_no_update,
            size_covers_what_is_stored,
        );
    };
}

/// Log options that compact after a few writes.
fn small_window() -> kflex_storage_backends::LogOptions {
    kflex_storage_backends::LogOptions {
        compaction_window: 10,
        ..Default::default()
    }
}

mod sqlite {
    use super::*;
    use kflex_storage_backends::sqlite::{SqliteOptions, SqliteStore};

    async fn open() -> Subject {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("store.db"), SqliteOptions::default())
            .await
            .unwrap();
        Subject {
            store: Arc::new(store),
            _guard: Box::new(dir),
        }
    }

    async fn open_small_window() -> Subject {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteOptions {
            log: small_window(),
            ..Default::default()
        };
        let store = SqliteStore::open(dir.path().join("store.db"), options)
            .await
            .unwrap();
        Subject {
            store: Arc::new(store),
            _guard: Box::new(dir),
        }
    }

    conformance!(open);
    cases!(open: watch_from_a_compacted_revision_fails);
    cases!(open_small_window: history_is_compacted_automatically_keeping_the_window);
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), rand::random::<u32>())
}

mod postgres {
    use super::*;
    use kflex_storage_backends::postgres::{PostgresOptions, PostgresServer};

    async fn open_with(options: PostgresOptions) -> Subject {
        let server = PostgresServer::connect(&kflex_e2e::postgres_url(), options)
            .await
            .unwrap();
        let store = server.ensure_store(&unique("conformance")).await.unwrap();
        Subject {
            store: Arc::new(store),
            _guard: Box::new(server),
        }
    }

    async fn open() -> Subject {
        open_with(PostgresOptions::default()).await
    }

    async fn open_small_window() -> Subject {
        open_with(PostgresOptions {
            log: small_window(),
            ..Default::default()
        })
        .await
    }

    conformance!(open);
    cases!(open: watch_from_a_compacted_revision_fails);
    cases!(open_small_window: history_is_compacted_automatically_keeping_the_window);
}

/// The dedicated backend: a supervised etcd of its own per case. etcd compacts on its own
/// schedule (`--auto-compaction-*`), so the window case does not apply.
mod etcd {
    use super::*;
    use kflex_storage_backends::etcd::{EtcdSupervisor, EtcdSupervisorConfig};

    async fn open() -> Subject {
        let dir = tempfile::tempdir().unwrap();
        let mut config = EtcdSupervisorConfig::new(dir.path().join("etcd"), "conformance");
        config.etcd_bin = kflex_e2e::etcd_bin();
        let etcd = EtcdSupervisor::start(config).await.unwrap();
        let store = etcd.store().await.unwrap();
        Subject {
            store: Arc::new(store),
            _guard: Box::new((etcd, dir)),
        }
    }

    conformance!(open);
    cases!(open: watch_from_a_compacted_revision_fails);
}

/// External stores: the user's etcd (the shared test etcd, under a key prefix) and the
/// user's PostgreSQL schema. kflex never compacts an external etcd, so that case is left
/// out there.
mod external_etcd {
    use super::*;
    use kflex_storage_backends::external::{open_external, ExternalStoreConfig};

    async fn open() -> Subject {
        let data = [
            (
                "endpoint".to_string(),
                kflex_e2e::etcd_endpoints().join(",").into_bytes(),
            ),
            (
                "prefix".to_string(),
                format!("/{}/", unique("conformance")).into_bytes(),
            ),
        ]
        .into_iter()
        .collect();
        let store = open_external(&ExternalStoreConfig::from_secret_data(&data).unwrap())
            .await
            .unwrap();
        Subject {
            store,
            _guard: Box::new(()),
        }
    }

    conformance!(open);
}

mod external_postgres {
    use super::*;
    use kflex_storage_backends::external::{open_external, ExternalStoreConfig};

    async fn open() -> Subject {
        let config = ExternalStoreConfig::Postgres {
            dsn: kflex_e2e::postgres_url(),
            schema: unique("conformance").replace('-', "_"),
        };
        Subject {
            store: open_external(&config).await.unwrap(),
            _guard: Box::new(()),
        }
    }

    conformance!(open);
    cases!(open: watch_from_a_compacted_revision_fails);
}
