//! Malformed requests never take the server down: thousands of generated paths, queries,
//! headers and bodies go through the router, and every answer is a success or a
//! `metav1.Status` whose `code` is the HTTP status.

use http_body_util::BodyExt;
use kflex_controlplane::authn::{Authenticator, User};
use kflex_controlplane::{ControlPlane, Router};
use kflex_storage_backends::sqlite::{SqliteOptions, SqliteStore};
use std::sync::Arc;
use std::time::Duration;

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const SEGMENTS: &[&str] = &[
    "api",
    "apis",
    "v1",
    "apps",
    "namespaces",
    "default",
    "kube-system",
    "configmaps",
    "pods",
    "nodes",
    "deployments",
    "status",
    "scale",
    "finalize",
    "x",
    "",
    "..",
    "%00",
    "%ZZ",
    "ü",
    "clusters",
    "nobody",
    "watch",
    "version",
    "healthz",
    "openapi",
    "v2",
    "secrets",
    "a.b",
    "UPPER",
    "-bad-",
];
const QUERY_KEYS: &[&str] = &[
    "limit",
    "continue",
    "labelSelector",
    "fieldSelector",
    "resourceVersion",
    "resourceVersionMatch",
    "watch",
    "timeoutSeconds",
    "dryRun",
    "fieldManager",
    "propagationPolicy",
    "sendInitialEvents",
    "allowWatchBookmarks",
    "",
];
const QUERY_VALUES: &[&str] = &[
    "1",
    "0",
    "-5",
    "abc",
    "true",
    "1",
    "%",
    "a=b",
    "a in (",
    "!!",
    "metadata.name=x",
    "spec.nope=1",
    "Exact",
    "NotOlderThan",
    "All",
    "Foreground",
    "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6LTEsInN0YXJ0IjoiLi4ifQ",
    "99999999999999999999",
];
const BODIES: &[&str] = &[
    "", "{", "[]", "null", "{}", "{\"kind\":\"ConfigMap\"}", "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"x\"}}",
    "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"Bad Name\"}}",
    "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{\"generateName\":\"g-\",\"namespace\":\"other\"}}",
    "[{\"op\":\"remove\",\"path\":\"/metadata\"}]", "[{\"op\":\"bogus\"}]", "{\"metadata\":null}", "{\"propagationPolicy\":\"Sideways\"}",
    "{\"kind\":\"Namespace\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"n\"}}",
];
const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
    "application/vnd.kubernetes.protobuf",
    "text/plain",
    "",
];
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_a_status_and_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db"), SqliteOptions::default())
        .await
        .unwrap();
    let mut authn = Authenticator::default();
    authn.add_token(
        "t",
        User {
            name: "fuzz".into(),
            uid: String::new(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        },
    );
    let router = Router::new(
        ControlPlane::start("host", Arc::new(store), authn)
            .await
            .unwrap(),
    );
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let depth = 1 + rng.next() % 7;
        let path: String = (0..depth)
            .map(|_| format!("/{}", rng.pick(SEGMENTS)))
            .collect();
        let query: Vec<String> = (0..rng.next() % 4)
            .map(|_| format!("{}={}", rng.pick(QUERY_KEYS), rng.pick(QUERY_VALUES)))
            .collect();
        let uri = format!("{path}?{}", query.join("&"));
        let random_len = (rng.next() % 64) as usize;
        let body = if rng.next().is_multiple_of(5) {
            rng.bytes(random_len)
        } else {
            rng.pick(BODIES).as_bytes().to_vec()
        };
        let method = rng.pick(METHODS);
        let Ok(request) = http::Request::builder()
            .method(method)
            .uri(&uri)
            .header(
                "authorization",
                if rng.next().is_multiple_of(10) {
                    "Bearer wrong"
                } else {
                    "Bearer t"
                },
            )
            .header("content-type", rng.pick(CONTENT_TYPES))
            .header(
                "accept",
                if rng.next().is_multiple_of(8) {
                    "application/vnd.kubernetes.protobuf"
                } else {
                    "application/json"
                },
            )
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        else {
            continue;
        };
        let response = router.handle(request, Arc::new(Vec::new())).await;
        let status = response.status();
        if status.is_success() || status.is_redirection() {
            continue; // a watch streams: its body is not read here
        }
        let body = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
            .await
            .expect("an error body arrives")
            .unwrap()
            .to_bytes();
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            panic!("{method} {uri}: {status} with a body that is not JSON: {body:?}")
        });
        assert_eq!(parsed["kind"], "Status", "{method} {uri}: {parsed}");
        assert_eq!(parsed["code"], status.as_u16(), "{method} {uri}: {parsed}");
        assert_ne!(status.as_u16(), 500, "{method} {uri}: {parsed}");
    }
}
