//! Proves the test services started by `scripts/test` are real and reachable.

use etcd_client::Client;
use kflex_e2e::{etcd_endpoints, postgres_url};
use sqlx::Connection;

#[tokio::test]
async fn postgres_accepts_writes_and_reads_them_back() {
    let mut conn = sqlx::PgConnection::connect(&postgres_url())
        .await
        .expect("connect to the test PostgreSQL");
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(version.starts_with("PostgreSQL"), "{version}");
    sqlx::query("CREATE TEMPORARY TABLE smoke (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO smoke VALUES ('hello', 'world')")
        .execute(&mut conn)
        .await
        .unwrap();
    let v: String = sqlx::query_scalar("SELECT v FROM smoke WHERE k = 'hello'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, "world");
}

#[tokio::test]
async fn etcd_accepts_writes_and_reads_them_back() {
    let mut client = Client::connect(etcd_endpoints(), None)
        .await
        .expect("connect to the test etcd");
    let key = format!("/kflex-smoke/{}", std::process::id());
    let put = client.put(key.as_str(), "world", None).await.unwrap();
    let written_at = put.header().unwrap().revision();
    let got = client.get(key.as_str(), None).await.unwrap();
    let kv = &got.kvs()[0];
    assert_eq!(kv.value(), b"world");
    assert_eq!(kv.mod_revision(), written_at);
    client.delete(key.as_str(), None).await.unwrap();
}
