//! Tests of external stores: configuration from Secret data, reachability checks, and
//! that kflex leaves what it does not own alone.

use bytes::Bytes;
use kflex_storage_backends::external::{open_external, ExternalStoreConfig};
use kflex_storage_backends::StoreError;
use sqlx::Connection;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn secret(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), rand::random::<u32>())
}

#[test]
fn secret_data_selects_the_backend_by_endpoint() {
    match ExternalStoreConfig::from_secret_data(&secret(&[(
        "endpoint",
        "postgres://u:p@db:5432/x",
    )]))
    .unwrap()
    {
        ExternalStoreConfig::Postgres { dsn, schema } => assert_eq!(
            (dsn.as_str(), schema.as_str()),
            ("postgres://u:p@db:5432/x", "kflex")
        ),
        other => panic!("{other:?}"),
    }
    let etcd = ExternalStoreConfig::from_secret_data(&secret(&[
        ("endpoint", "https://a:2379, https://b:2379"),
        ("prefix", "/tenant-a"),
        ("ca.crt", "PEM"),
    ]))
    .unwrap();
    match &etcd {
        ExternalStoreConfig::Etcd(config) => {
            assert_eq!(config.endpoints, vec!["https://a:2379", "https://b:2379"]);
            assert_eq!(config.key_prefix, b"/tenant-a");
            assert!(config.tls.is_some());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(etcd.describe(), "etcd https://a:2379,https://b:2379");
    let pg = ExternalStoreConfig::from_secret_data(&secret(&[
        ("endpoint", "postgres://u:secret@db/x"),
        ("schema", "s"),
    ]))
    .unwrap();
    assert!(
        !pg.describe().contains("secret"),
        "no credentials in messages: {}",
        pg.describe()
    );
}

#[test]
fn bad_secret_data_is_invalid_input() {
    for data in [
        secret(&[]),
        secret(&[("endpoint", " ")]),
        secret(&[("endpoint", "mysql://x")]),
        secret(&[("endpoint", "http://a:2379"), ("tls.crt", "PEM")]),
    ] {
        match ExternalStoreConfig::from_secret_data(&data) {
            Err(StoreError::InvalidInput(message)) => assert!(!message.is_empty()),
            other => panic!("{data:?}: expected InvalidInput, got {other:?}"),
        }
    }
    let mut not_text = BTreeMap::new();
    not_text.insert("endpoint".to_string(), vec![0xff, 0xfe]);
    assert!(matches!(
        ExternalStoreConfig::from_secret_data(&not_text),
        Err(StoreError::InvalidInput(_))
    ));
}

#[tokio::test]
async fn an_external_postgres_schema_is_used_and_never_dropped() {
    let url = kflex_e2e::postgres_url();
    let schema = unique("ext");
    let config = ExternalStoreConfig::Postgres {
        dsn: url.clone(),
        schema: schema.clone(),
    };
    let store = open_external(&config).await.unwrap();
    let rev = store
        .create(b"/registry/x", Bytes::from_static(b"v"), None)
        .await
        .unwrap();
    drop(store);
    // Opened again, the data is there: the tables were created once, in the user's schema.
    let store = open_external(&config).await.unwrap();
    assert_eq!(
        store
            .get(b"/registry/x", None)
            .await
            .unwrap()
            .0
            .unwrap()
            .mod_revision,
        rev
    );
    drop(store);
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(&schema)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(exists);
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_external_etcd_with_a_prefix_is_isolated() {
    let endpoints = kflex_e2e::etcd_endpoints().join(",");
    let prefix = format!("/{}/", unique("ext"));
    let config = ExternalStoreConfig::from_secret_data(&secret(&[
        ("endpoint", &endpoints),
        ("prefix", &prefix),
    ]))
    .unwrap();
    let store = open_external(&config).await.unwrap();
    store
        .create(b"/registry/x", Bytes::from_static(b"v"), None)
        .await
        .unwrap();
    let other = open_external(
        &ExternalStoreConfig::from_secret_data(&secret(&[
            ("endpoint", &endpoints),
            ("prefix", "/someone-else/"),
        ]))
        .unwrap(),
    )
    .await
    .unwrap();
    assert!(other.get(b"/registry/x", None).await.unwrap().0.is_none());
    store.delete(b"/registry/x", None).await.unwrap();
}

#[tokio::test]
async fn unreachable_external_stores_fail_fast_and_clearly() {
    for endpoint in [
        "postgres://kflex@127.0.0.1:1/postgres",
        "http://127.0.0.1:1",
    ] {
        let config =
            ExternalStoreConfig::from_secret_data(&secret(&[("endpoint", endpoint)])).unwrap();
        let started = Instant::now();
        match open_external(&config).await {
            Err(StoreError::Unavailable { message, .. }) => assert!(!message.is_empty()),
            Err(other) => panic!("{endpoint}: expected Unavailable, got {other}"),
            Ok(_) => panic!("{endpoint}: nothing listens there"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{endpoint}: took {:?}",
            started.elapsed()
        );
    }
}
