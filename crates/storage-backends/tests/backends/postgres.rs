//! Tests specific to the PostgreSQL backend: the store catalog, watches fed by writes of
//! other processes, an idle server costing nothing, a lost listener connection (and
//! history compacted meanwhile), and bad input (unreachable servers, missing databases,
//! read-only roles, bad names).
//!
//! They run on the test PostgreSQL (`KFLEX_TEST_POSTGRES_URL`), which other tests share:
//! every test uses store names of its own and drops what it created.

use bytes::Bytes;
use futures::StreamExt;
use kflex_e2e::postgres_url;
use kflex_storage_backends::postgres::{
    PostgresOptions, PostgresServer, PostgresStore, SparePreparer,
};
use kflex_storage_backends::{Event, EventKind, Revision, Store, StoreError, WatchStream};
use sqlx::{Connection, PgConnection};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tells [`postgres_child_writer`] which store to write to (and that it runs as a child).
const CHILD_STORE_ENV: &str = "KFLEX_TEST_PG_CHILD_STORE";
/// Keys the child process creates; it then updates the even ones and deletes every fourth.
const CHILD_KEYS: usize = 100;
/// Keys the parent process creates meanwhile.
const PARENT_KEYS: usize = 100;

/// A store (or role, or schema) name no other test or test run uses.
fn unique(what: &str) -> String {
    format!(
        "kflex_test_{what}_{}_{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

fn v(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// `url` with `name=value` added to its query string.
fn with_param(url: String, name: &str, value: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{name}={value}")
}

/// The test server's URL with another user (and no password) or database.
fn url_replacing(user: Option<&str>, database: Option<&str>) -> String {
    let url = postgres_url();
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (old_user, host) = authority.rsplit_once('@').unwrap_or(("", authority));
    let (old_database, query) = path.split_once('?').unwrap_or((path, ""));
    let user = user.unwrap_or(old_user);
    let database = database.unwrap_or(old_database);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{scheme}://{user}@{host}/{database}{query}")
}

async fn server() -> PostgresServer {
    PostgresServer::connect(&postgres_url(), PostgresOptions::default())
        .await
        .expect("connect to the test PostgreSQL")
}

/// A connection of the test's own, to inspect what the backend did.
async fn admin() -> PgConnection {
    PgConnection::connect(&postgres_url())
        .await
        .expect("admin connection")
}

async fn schema_exists(admin: &mut PgConnection, schema: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(admin)
        .await
        .unwrap()
}

/// The next watch event, within 30 s.
async fn next_event(watch: &mut WatchStream) -> Event {
    tokio::time::timeout(Duration::from_secs(30), watch.next())
        .await
        .expect("an event within 30 s")
        .expect("the watch is open")
        .expect("no watch error")
}

async fn assert_no_event(watch: &mut WatchStream, within: Duration) {
    if let Ok(item) = tokio::time::timeout(within, watch.next()).await {
        panic!("unexpected watch item: {item:?}");
    }
}

fn assert_unavailable<T>(result: Result<T, StoreError>, what: &str, expected: &str) {
    match result {
        Err(StoreError::Unavailable { backend, message }) => {
            assert_eq!(backend, "postgres");
            assert!(
                message.contains(expected),
                "{what}: {message:?} does not say {expected:?}"
            );
        }
        Err(other) => panic!("{what}: expected Unavailable, got {other:?}"),
        Ok(_) => panic!("{what}: expected Unavailable, got Ok"),
    }
}

fn assert_invalid<T>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::InvalidInput(_)) => {}
        Err(other) => panic!("{what}: expected InvalidInput, got {other:?}"),
        Ok(_) => panic!("{what}: expected InvalidInput, got Ok"),
    }
}

#[tokio::test]
async fn postgres_stores_are_created_listed_isolated_and_dropped() {
    let server = server().await;
    let mut admin = admin().await;
    let a_name = unique("a");
    // Store names are any UTF-8: the schema name comes from a sequence.
    let b_name = format!("{} / tenant \"ü\" ; DROP TABLE x", unique("b"));

    let a = server.create_store(&a_name).await.unwrap();
    let b = server.ensure_store(&b_name).await.unwrap();
    assert_ne!(a.schema(), b.schema());
    // Other processes may write it: nothing cached about it is safe, and its control
    // plane's controllers are elected.
    assert!(!a.exclusive());
    assert!(a.schema().starts_with("kflex_store_"), "{}", a.schema());
    assert!(schema_exists(&mut admin, a.schema()).await);
    let listed = server.list_stores().await.unwrap();
    assert!(
        listed.contains(&a_name) && listed.contains(&b_name),
        "{listed:?}"
    );

    // Creating again is refused; ensuring and opening find the same store.
    assert_invalid(
        server.create_store(&a_name).await,
        "create an existing store",
    );
    assert_eq!(
        server.ensure_store(&a_name).await.unwrap().schema(),
        a.schema()
    );
    let a_again = server.open_store(&a_name).await.unwrap();
    assert_eq!(a_again.schema(), a.schema());

    // Same key, separate revisions and values.
    let mut watch_a = a.watch(b"/", 0).await.unwrap();
    assert_eq!(b.create(b"/other", v("b only"), None).await.unwrap(), 1);
    assert_eq!(b.create(b"/k", v("in b"), None).await.unwrap(), 2);
    assert_eq!(a.create(b"/k", v("in a"), None).await.unwrap(), 1);
    let (in_a, at_a) = a_again.get(b"/k", None).await.unwrap();
    let (in_b, at_b) = b.get(b"/k", None).await.unwrap();
    assert_eq!((in_a.unwrap().value, at_a), (v("in a"), 1));
    assert_eq!((in_b.unwrap().value, at_b), (v("in b"), 2));
    assert_eq!(a.get(b"/other", None).await.unwrap().0, None);
    let event = next_event(&mut watch_a).await;
    assert_eq!((event.kv.key.as_slice(), event.revision()), (&b"/k"[..], 1));
    assert_no_event(&mut watch_a, Duration::from_millis(300)).await;

    // Dropping removes the schema and the catalog row; again is fine.
    let a_schema = a.schema().to_owned();
    server.drop_store(&a_name).await.unwrap();
    assert!(!schema_exists(&mut admin, &a_schema).await);
    assert!(!server.list_stores().await.unwrap().contains(&a_name));
    assert_invalid(server.open_store(&a_name).await, "open a dropped store");
    server.drop_store(&a_name).await.unwrap();
    // Handles still open fail cleanly.
    assert_unavailable(
        a.get(b"/k", None).await,
        "read a dropped store",
        "does not exist",
    );
    assert_unavailable(
        a.create(b"/new", v("x"), None).await,
        "write a dropped store",
        "does not exist",
    );
    // The name is free again, for a new, empty store.
    let fresh = server.create_store(&a_name).await.unwrap();
    assert_ne!(fresh.schema(), a_schema);
    assert_eq!(fresh.current_revision().await.unwrap(), 0);

    // The other store is untouched.
    assert_eq!(
        b.get(b"/k", None).await.unwrap().0.unwrap().value,
        v("in b")
    );
    server.drop_store(&a_name).await.unwrap();
    server.drop_store(&b_name).await.unwrap();
}

#[tokio::test]
async fn postgres_open_schema_uses_a_given_schema_outside_the_catalog() {
    let server = server().await;
    let mut admin = admin().await;
    let schema = unique("ext");

    let store = server.open_schema(&schema).await.unwrap();
    assert_eq!(store.schema(), schema);
    let written = store
        .create(b"/registry/x", v("external"), None)
        .await
        .unwrap();
    drop(store);
    assert!(!server
        .list_stores()
        .await
        .unwrap()
        .iter()
        .any(|name| name.contains(&schema)));

    // Opening again finds the data; the schema was never dropped.
    let store = server.open_schema(&schema).await.unwrap();
    let (kv, _) = store.get(b"/registry/x", None).await.unwrap();
    assert_eq!(
        kv.map(|kv| (kv.value, kv.mod_revision)),
        Some((v("external"), written))
    );
    drop(store);
    assert!(schema_exists(&mut admin, &schema).await);

    for bad in [
        "",
        "Upper",
        "1st",
        "pg_mine",
        "kflex_catalog",
        "a-b",
        "a b",
        "ä",
        &"s".repeat(64),
    ] {
        assert_invalid(server.open_schema(bad).await, &format!("schema {bad:?}"));
    }
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&mut admin)
        .await
        .unwrap();

    // A role that owns a schema made for it, but may not create schemas, can use it.
    let role = unique("owner");
    for statement in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("CREATE SCHEMA {role} AUTHORIZATION {role}"),
    ] {
        sqlx::query(&statement).execute(&mut admin).await.unwrap();
    }
    let owner = PostgresServer::connect(
        &url_replacing(Some(&role), None),
        PostgresOptions::default(),
    )
    .await
    .unwrap();
    let store = owner.open_schema(&role).await.unwrap();
    store.create(b"/mine", v("yes"), None).await.unwrap();
    drop((store, owner));
    for statement in [
        format!("DROP SCHEMA {role} CASCADE"),
        format!("DROP ROLE {role}"),
    ] {
        sqlx::query(&statement).execute(&mut admin).await.unwrap();
    }
}

/// The name libtest knows this module's `test` function by (`<module path>::<test>`).
fn test_path(test: &str) -> String {
    let module = module_path!().split_once("::").map_or("", |(_, rest)| rest);
    format!("{module}::{test}")
}

/// Not a test on its own: [`postgres_watch_sees_writes_of_another_process`] runs it in a
/// child process, where it writes to the store it is told through `CHILD_STORE_ENV`.
#[tokio::test]
#[ignore = "run as a child process by postgres_watch_sees_writes_of_another_process"]
async fn postgres_child_writer() {
    let Ok(name) = std::env::var(CHILD_STORE_ENV) else {
        return;
    };
    let store = server()
        .await
        .open_store(&name)
        .await
        .expect("open the parent's store");
    let key = |i: usize| format!("/child/{i:03}").into_bytes();
    let mut revisions = Vec::new();
    for i in 0..CHILD_KEYS {
        revisions.push(store.create(&key(i), v("created"), None).await.unwrap());
    }
    for i in (0..CHILD_KEYS).step_by(2) {
        revisions[i] = store
            .update(&key(i), v("updated"), revisions[i], None)
            .await
            .unwrap();
    }
    for i in (0..CHILD_KEYS).step_by(4) {
        store.delete(&key(i), Some(revisions[i])).await.unwrap();
    }
}

#[tokio::test]
async fn postgres_watch_sees_writes_of_another_process() {
    let server = server().await;
    let name = unique("xproc");
    let store = server.create_store(&name).await.unwrap();
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch(b"/", start).await.unwrap();

    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &test_path("postgres_child_writer"),
            "--nocapture",
            "--include-ignored",
        ])
        .env(CHILD_STORE_ENV, &name)
        .kill_on_drop(true)
        .spawn()
        .expect("re-run this test binary as the writer process");
    // This process writes too, interleaving with the child on the store's write lock.
    for i in 0..PARENT_KEYS {
        store
            .create(format!("/parent/{i:03}").as_bytes(), v("parent"), None)
            .await
            .unwrap();
    }
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
        .await
        .expect("the child finishes within 120 s")
        .unwrap();
    assert!(status.success(), "the child writer failed: {status}");

    let child_writes = CHILD_KEYS + CHILD_KEYS / 2 + CHILD_KEYS / 4;
    let total = PARENT_KEYS + child_writes;
    let mut per_key: BTreeMap<Vec<u8>, Vec<(EventKind, Bytes)>> = BTreeMap::new();
    for expected in start + 1..=start + total as Revision {
        let event = next_event(&mut watch).await;
        assert_eq!(
            event.revision(),
            expected,
            "revisions arrive in order, each once"
        );
        per_key
            .entry(event.kv.key)
            .or_default()
            .push((event.kind, event.kv.value));
    }
    assert_no_event(&mut watch, Duration::from_millis(500)).await;

    let parent: Vec<_> = per_key
        .keys()
        .filter(|k| k.starts_with(b"/parent/"))
        .collect();
    assert_eq!(parent.len(), PARENT_KEYS);
    for i in 0..CHILD_KEYS {
        let key = format!("/child/{i:03}").into_bytes();
        let mut expected = vec![(EventKind::Put, v("created"))];
        if i % 2 == 0 {
            expected.push((EventKind::Put, v("updated")));
        }
        if i % 4 == 0 {
            expected.push((EventKind::Delete, Bytes::new()));
        }
        assert_eq!(
            per_key[&key],
            expected,
            "events of {}",
            String::from_utf8_lossy(&key)
        );
    }
    assert_eq!(
        store.current_revision().await.unwrap(),
        start + total as Revision
    );
    server.drop_store(&name).await.unwrap();
}

/// `(pid, query_start)` of the connections named `application` (other than this one).
async fn connections(admin: &mut PgConnection, application: &str) -> BTreeSet<(i32, String)> {
    sqlx::query_as(
        "SELECT pid, COALESCE(query_start::text, '') FROM pg_stat_activity \
         WHERE application_name = $1 AND pid <> pg_backend_pid()",
    )
    .bind(application)
    .fetch_all(admin)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// Waits until the connections of `application` run no query for 300 ms (within 15 s).
async fn quiet(admin: &mut PgConnection, application: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = connections(admin, application).await;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = connections(admin, application).await;
        if now == seen {
            return;
        }
        assert!(Instant::now() < deadline, "{application} does not go quiet");
        seen = now;
    }
}

#[tokio::test]
async fn postgres_idle_stores_run_no_queries() {
    const STORES: usize = 50;
    const WATCHED: usize = 10;
    let application = unique("idle");
    let options = PostgresOptions {
        max_connections: 4,
        ..PostgresOptions::default()
    };
    let server = PostgresServer::connect(
        &with_param(postgres_url(), "application_name", &application),
        options.clone(),
    )
    .await
    .unwrap();
    let names: Vec<String> = (0..STORES).map(|i| format!("{application}_{i}")).collect();
    let mut stores: Vec<PostgresStore> = Vec::new();
    for name in &names {
        stores.push(server.ensure_store(name).await.unwrap());
    }
    // Watch some stores, and see a write go through each watch, so the feed is warm.
    let mut watches = Vec::new();
    for store in &stores[..WATCHED] {
        let mut watch = store.watch(b"/", 0).await.unwrap();
        store.create(b"/warm", v("up"), None).await.unwrap();
        next_event(&mut watch).await;
        watches.push(watch);
    }
    // Another process (here: another server, under another name) writes to stores that
    // nobody watches here: their notifications reach this process and must cost nothing.
    let other = server_named(&unique("other")).await;
    let unwatched: Vec<PostgresStore> = {
        let mut opened = Vec::new();
        for name in &names[WATCHED..WATCHED + 5] {
            opened.push(other.open_store(name).await.unwrap());
        }
        opened
    };

    let mut admin = admin().await;
    quiet(&mut admin, &application).await;
    let before = connections(&mut admin, &application).await;
    assert!(
        before.len() <= options.max_connections as usize + 1,
        "{} connections, more than the pool's {} and the listener",
        before.len(),
        options.max_connections
    );
    let started = Instant::now();
    for (i, store) in unwatched.iter().enumerate() {
        store
            .create(format!("/elsewhere/{i}").as_bytes(), v("x"), None)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(started.elapsed())).await;
    let after = connections(&mut admin, &application).await;
    // The same connections, none of which started a query (a closed idle connection
    // would be fine, a new connection or query is not).
    let new: Vec<_> = after.difference(&before).collect();
    assert!(
        new.is_empty(),
        "idle stores ran queries: {new:?} (before: {before:?})"
    );
    eprintln!("idle for 3 s: {} connections, no queries", after.len());

    for watch in &mut watches {
        assert_no_event(watch, Duration::from_millis(10)).await;
    }
    drop((watches, unwatched, stores));
    for name in &names {
        server.drop_store(name).await.unwrap();
    }
}

async fn server_named(application: &str) -> PostgresServer {
    PostgresServer::connect(
        &with_param(postgres_url(), "application_name", application),
        PostgresOptions::default(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn postgres_watch_survives_a_lost_listener_connection() {
    let application = unique("relisten");
    let server = server_named(&application).await;
    let name = unique("relisten");
    let store = server.create_store(&name).await.unwrap();
    let mut watch = store.watch(b"/", 0).await.unwrap();
    let writer = server_named(&unique("writer"))
        .await
        .open_store(&name)
        .await
        .unwrap();

    let mut admin = admin().await;
    let mut listener = listener_pid(&mut admin, &application, None).await;
    for round in 1..=3 {
        let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(listener)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert!(killed, "round {round}: cut the listener's connection");
        // Written while the listener may be away: its notification can be lost, and the
        // feed catches up after reconnecting.
        let written = writer
            .create(format!("/k/{round}").as_bytes(), v("x"), None)
            .await
            .unwrap();
        let event = next_event(&mut watch).await;
        assert_eq!(event.revision(), written, "round {round}");
        listener = listener_pid(&mut admin, &application, Some(listener)).await;
    }
    assert_no_event(&mut watch, Duration::from_millis(300)).await;
    server.drop_store(&name).await.unwrap();
}

/// The pid of the one listening connection of `application`, once `gone` has left and a
/// new one listens (within 15 s).
async fn listener_pid(admin: &mut PgConnection, application: &str, gone: Option<i32>) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query ILIKE 'LISTEN%'",
        )
        .bind(application)
        .fetch_all(&mut *admin)
        .await
        .unwrap();
        match pids.as_slice() {
            [pid] if Some(*pid) != gone => return *pid,
            _ => assert!(
                Instant::now() < deadline,
                "no single new listener connection: {pids:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn postgres_unreachable_servers_and_missing_databases_are_unavailable_quickly() {
    let timeout = Duration::from_secs(3);
    let options = PostgresOptions {
        acquire_timeout: timeout,
        ..PostgresOptions::default()
    };
    let started = Instant::now();
    let refused =
        PostgresServer::connect("postgres://kflex@127.0.0.1:1/postgres", options.clone()).await;
    assert_unavailable(refused, "a closed port", "127.0.0.1:1");
    assert!(started.elapsed() < timeout, "took {:?}", started.elapsed());

    let started = Instant::now();
    let missing = unique("nodb");
    let result =
        PostgresServer::connect(&url_replacing(None, Some(&missing)), options.clone()).await;
    assert_unavailable(result, "a missing database", "does not exist");
    assert!(started.elapsed() < timeout, "took {:?}", started.elapsed());

    for bad in [
        "",
        "not a url",
        "mysql://kflex@127.0.0.1/db",
        "postgres://kflex@127.0.0.1:notaport/postgres",
    ] {
        assert_invalid(
            PostgresServer::connect(bad, options.clone()).await,
            &format!("URL {bad:?}"),
        );
    }
}

#[tokio::test]
async fn postgres_read_only_role_gets_clear_errors() {
    let admin_server = server().await;
    let existing = unique("ro_target");
    admin_server.create_store(&existing).await.unwrap();
    let role = unique("ro");
    let mut admin = admin().await;
    sqlx::query(&format!("CREATE ROLE {role} LOGIN"))
        .execute(&mut admin)
        .await
        .unwrap();

    // The role may connect and listen, but not read or create stores.
    let server = PostgresServer::connect(
        &url_replacing(Some(&role), None),
        PostgresOptions::default(),
    )
    .await
    .expect("a role that may only connect can connect");
    assert_unavailable(
        server.create_store(&unique("ro_new")).await,
        "create_store",
        "permission denied",
    );
    assert_unavailable(
        server.ensure_store(&existing).await,
        "ensure_store",
        "permission denied",
    );
    assert_unavailable(
        server.open_store(&existing).await,
        "open_store",
        "permission denied",
    );
    assert_unavailable(
        server.list_stores().await,
        "list_stores",
        "permission denied",
    );
    assert_unavailable(
        server.drop_store(&existing).await,
        "drop_store",
        "permission denied",
    );
    assert_unavailable(
        server.open_schema(&unique("ro_schema")).await,
        "open_schema",
        "permission denied",
    );
    drop(server);

    admin_server
        .open_store(&existing)
        .await
        .expect("the store is intact");
    admin_server.drop_store(&existing).await.unwrap();
    sqlx::query(&format!("DROP ROLE {role}"))
        .execute(&mut admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn postgres_invalid_store_names_are_invalid_input() {
    let server = server().await;
    let too_long = "x".repeat(254);
    for bad in ["", too_long.as_str(), "nul\0inside"] {
        let shown = format!("{:?}", &bad[..bad.len().min(20)]);
        assert_invalid(
            server.create_store(bad).await,
            &format!("create_store {shown}"),
        );
        assert_invalid(
            server.ensure_store(bad).await,
            &format!("ensure_store {shown}"),
        );
        assert_invalid(server.open_store(bad).await, &format!("open_store {shown}"));
        assert_invalid(server.drop_store(bad).await, &format!("drop_store {shown}"));
    }
    assert_invalid(
        server.open_store(&unique("never_created")).await,
        "open an unknown store",
    );
    server
        .drop_store(&unique("never_created"))
        .await
        .expect("dropping an unknown store is fine");

    // 253 bytes, multi-byte characters included, is the longest name.
    let prefix = unique("long");
    let mut longest = format!("{prefix}{}", "é".repeat((253 - prefix.len()) / 2));
    longest.push_str(&"x".repeat(253 - longest.len()));
    assert_eq!(longest.len(), 253);
    server.create_store(&longest).await.unwrap();
    server.drop_store(&longest).await.unwrap();
}

#[tokio::test]
async fn postgres_watch_ends_with_compacted_when_history_it_missed_is_gone() {
    // This process connects as a role of its own, so that its listener can be kept from
    // reconnecting while another process writes and compacts.
    let role = unique("cut");
    sqlx::query(&format!("CREATE ROLE {role} LOGIN SUPERUSER"))
        .execute(&mut admin().await)
        .await
        .unwrap();
    let application = unique("cut");
    let url = with_param(
        url_replacing(Some(&role), None),
        "application_name",
        &application,
    );
    let server = PostgresServer::connect(&url, PostgresOptions::default())
        .await
        .unwrap();
    let name = unique("cut");
    let other = PostgresServer::connect(
        &postgres_url(),
        PostgresOptions {
            log: kflex_storage_backends::LogOptions {
                compaction_window: 2,
                ..Default::default()
            },
            ..PostgresOptions::default()
        },
    )
    .await
    .unwrap();
    let writer = other.create_store(&name).await.unwrap();
    let store = server.open_store(&name).await.unwrap();
    let start = writer.create(b"/hot", v("0"), None).await.unwrap();
    let mut watch = store.watch(b"/", 0).await.unwrap();
    // The watch is live and the process quiet before the role may no longer log in.
    assert_eq!(next_event(&mut watch).await.revision(), start);
    let mut admin = admin().await;
    quiet(&mut admin, &application).await;

    sqlx::query(&format!("ALTER ROLE {role} NOLOGIN"))
        .execute(&mut admin)
        .await
        .unwrap();
    let listener = listener_pid(&mut admin, &application, None).await;
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(listener)
        .execute(&mut admin)
        .await
        .unwrap();
    // Meanwhile the other process rewrites the key and compacts its history away.
    let mut last = start;
    for i in 1..=50 {
        last = writer
            .update(b"/hot", v(&i.to_string()), last, None)
            .await
            .unwrap();
    }
    assert!(writer.compacted_revision().await.unwrap() > start);
    sqlx::query(&format!("ALTER ROLE {role} LOGIN"))
        .execute(&mut admin)
        .await
        .unwrap();

    // Back online, the feed finds the gap; the watch cannot be continued and says so.
    let item = tokio::time::timeout(Duration::from_secs(30), watch.next())
        .await
        .expect("the watch answers within 30 s")
        .expect("the watch is open");
    match item {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => {
            assert!(requested < compacted, "{requested} < {compacted}")
        }
        other => panic!("expected Compacted, got {other:?}"),
    }

    drop((watch, store, server));
    other.drop_store(&name).await.unwrap();
    sqlx::query(&format!("DROP ROLE {role}"))
        .execute(&mut admin)
        .await
        .unwrap();
}

async fn spare_schemas(admin: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT schema_name FROM kflex_catalog.stores WHERE name LIKE 'kflex:spare:%'",
    )
    .fetch_all(admin)
    .await
    .unwrap_or_default()
}

/// A database of the test's own, so that no other test's spare stores mix with its own.
async fn own_database(admin: &mut PgConnection, name: &str) -> String {
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut *admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut *admin)
        .await
        .unwrap();
    let url = postgres_url();
    let base = url.rsplit_once('/').expect("a database in the URL").0;
    format!("{base}/{name}")
}

#[tokio::test]
async fn postgres_spare_stores_are_prepared_then_claimed_by_a_rename_and_refilled() {
    let mut admin = admin().await;
    let database = format!("kflex_spares_{}", std::process::id());
    let url = own_database(&mut admin, &database).await;
    // Preparation is slow, so a spare being prepared would be seen if it were offered.
    let prepare = SparePreparer::new(
        "test",
        Arc::new(|store: Arc<dyn Store>| {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                store
                    .create(b"/prepared", Bytes::from_static(b"yes"), None)
                    .await
                    .map(drop)
            })
        }),
    );
    let options = PostgresOptions {
        spare_stores: 2,
        prepare_spare: Some(prepare),
        ..PostgresOptions::default()
    };
    let server = PostgresServer::connect(&url, options).await.unwrap();
    let mut own = PgConnection::connect(&url).await.unwrap();
    let started = Instant::now();
    while spare_schemas(&mut own).await.len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "spares were not made"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let spares = spare_schemas(&mut own).await;
    let name = "spare-user";
    let store = server.create_store(name).await.unwrap();
    assert!(
        spares.contains(&store.schema().to_owned()),
        "{} from {spares:?}",
        store.schema()
    );
    let (prepared, _) = store.get(b"/prepared", None).await.unwrap();
    assert_eq!(prepared.expect("the spare was prepared").value, &b"yes"[..]);
    // A server whose spares are not prepared that way never claims these.
    let plain = PostgresServer::connect(&url, PostgresOptions::default())
        .await
        .unwrap();
    let empty = plain.create_store("plain-user").await.unwrap();
    assert!(!spares.contains(&empty.schema().to_owned()));
    assert_eq!(empty.get(b"/prepared", None).await.unwrap().0, None);
    drop(empty);
    plain.drop_store("plain-user").await.unwrap();
    assert_eq!(server.list_stores().await.unwrap(), vec![name.to_owned()]);
    assert!(matches!(
        server.create_store(name).await,
        Err(StoreError::InvalidInput(_))
    ));
    for reserved in ["kflex:spare:mine", "kflex:unprepared:mine"] {
        assert!(matches!(
            server.create_store(reserved).await,
            Err(StoreError::InvalidInput(_))
        ));
    }
    // Refilled: at once, nothing half prepared is offered.
    let started = Instant::now();
    loop {
        let spares = spare_schemas(&mut own).await;
        for schema in &spares {
            let prepared: bool = sqlx::query_scalar(&format!(
                "SELECT EXISTS (SELECT 1 FROM {schema}.kv WHERE name = '/prepared'::bytea)"
            ))
            .fetch_one(&mut own)
            .await
            .unwrap();
            assert!(prepared, "spare {schema} offered before it was prepared");
        }
        if spares.len() >= 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "spares were not refilled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop((store, server, own));
    sqlx::query(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}
