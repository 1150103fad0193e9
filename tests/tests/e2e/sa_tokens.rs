//! ServiceAccount tokens through real clients: kube-rs's `create_token_request` and
//! `kubectl create token` get bound ES256 tokens that authenticate as the ServiceAccount
//! (RBAC then decides), verify against the control plane's JWKS, are reviewed by
//! `TokenReview`, stop working once their ServiceAccount or bound Pod is gone, and mean
//! nothing to another control plane.

use crate::support::{api_error, check, client, kubectls, version_suffix};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest, TokenReview};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kflex_controlplane::authn::{Authenticator, User};
use kflex_controlplane::{ControlPlane, Router};
use kflex_e2e::KflexServer;
use kflex_storage_backends::sqlite::{SqliteOptions, SqliteStore};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const NS: &str = "sa-tokens";

fn object<T: k8s_openapi::serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

/// A TokenRequest with `spec`.
fn token_request(spec: Value) -> TokenRequest {
    object(json!({"spec": spec}))
}

/// A token for ServiceAccount `name`.
async fn token(sas: &Api<ServiceAccount>, name: &str, spec: Value) -> Result<String, kube::Error> {
    let answer = sas
        .create_token_request(name, &PostParams::default(), &token_request(spec))
        .await?;
    Ok(answer.status.unwrap().token)
}

/// A kubeconfig of `server` whose user is `user` (e.g. `{"token": ...}`).
fn kubeconfig_with(server: &KflexServer, file: &str, user: Value) -> PathBuf {
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&server.kubeconfig).unwrap()).unwrap();
    config["users"][0]["user"] = user;
    let path = server.data_dir.path().join(file);
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    path
}

/// A kube-rs client of `server` authenticating with `token` only.
async fn token_client(server: &KflexServer, token: &str) -> kube::Client {
    let path = kubeconfig_with(server, "token.kubeconfig", json!({"token": token}));
    let mut config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&path).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

/// The status code of listing ConfigMaps in [`NS`], or `200`.
async fn list_code(client: &kube::Client) -> u16 {
    match Api::<ConfigMap>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
    {
        Ok(_) => 200,
        Err(e) => api_error(e).0,
    }
}

/// The TokenReview status of `token` for `audiences`.
async fn review(admin: &kube::Client, token: &str, audiences: &[&str]) -> Value {
    let review: TokenReview = object(json!({"spec": {"token": token, "audiences": audiences}}));
    let answer = Api::<TokenReview>::all(admin.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    serde_json::to_value(answer.status.unwrap()).unwrap()
}

/// The userInfo a SelfSubjectReview reports to `client`.
async fn whoami(client: &kube::Client) -> Value {
    let answer = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    serde_json::to_value(answer.status.unwrap().user_info.unwrap()).unwrap()
}

/// The claims of `token` once verified with a key of `jwks` (by `kid`), for [`ISSUER`].
fn verify_with_jwks(token: &str, jwks: &str) -> Value {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(jwks).unwrap();
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let jwk = set.find(&kid).expect("the token's key is in the JWKS");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[ISSUER]);
    validation.set_issuer(&[ISSUER]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .expect("the JWKS verifies the token")
        .claims
}

async fn get_text(client: &kube::Client, path: &str) -> Result<String, kube::Error> {
    client
        .request_text(http::Request::get(path).body(Vec::new()).unwrap())
        .await
}

#[tokio::test]
async fn sa_tokens_are_issued_verified_reviewed_and_revoked() {
    let server = KflexServer::start();
    let admin = client(&server).await;
    Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": NS}})),
        )
        .await
        .unwrap();
    let sas = Api::<ServiceAccount>::namespaced(admin.clone(), NS);
    let robot = sas
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": "robot"}})),
        )
        .await
        .unwrap();
    let robot_uid = robot.metadata.uid.unwrap();

    // A default request: the API audience, an hour, signed by a key of the JWKS.
    let answer = sas
        .create_token_request("robot", &PostParams::default(), &token_request(json!({})))
        .await
        .unwrap();
    let spec = answer.spec;
    assert_eq!(spec.audiences, [ISSUER]);
    assert_eq!(spec.expiration_seconds, Some(3600));
    let robot_token = answer.status.unwrap().token;
    let jwks = get_text(&admin, "/openid/v1/jwks").await.unwrap();
    let claims = verify_with_jwks(&robot_token, &jwks);
    assert_eq!(claims["sub"], "system:serviceaccount:sa-tokens:robot");
    assert_eq!(claims["aud"], json!([ISSUER]));
    assert_eq!(
        claims["kubernetes.io"],
        json!({"namespace": NS, "serviceaccount": {"name": "robot", "uid": robot_uid}})
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    assert_eq!(claims["nbf"], claims["iat"]);
    assert!(!claims["jti"].as_str().unwrap().is_empty());
    let discovery: Value = serde_json::from_str(
        &get_text(&admin, "/.well-known/openid-configuration")
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(discovery["issuer"], ISSUER);
    // The key set is where the server is reached, as upstream's external address.
    assert_eq!(
        discovery["jwks_uri"],
        format!("{}/openid/v1/jwks", server.url)
    );

    // The token authenticates as the ServiceAccount; RBAC denies until a RoleBinding allows.
    let robot_client = token_client(&server, &robot_token).await;
    assert_eq!(list_code(&robot_client).await, 403);
    let me = whoami(&robot_client).await;
    assert_eq!(me["username"], "system:serviceaccount:sa-tokens:robot");
    assert_eq!(me["uid"], robot_uid.as_str());
    assert_eq!(
        me["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:sa-tokens",
            "system:authenticated"
        ])
    );
    assert_eq!(
        me["extra"]["authentication.kubernetes.io/credential-id"],
        json!([format!("JTI={}", claims["jti"].as_str().unwrap())])
    );
    // Service accounts may read the issuer's discovery documents.
    assert_eq!(
        get_text(&robot_client, "/openid/v1/jwks").await.unwrap(),
        jwks
    );
    Api::<Role>::namespaced(admin.clone(), NS)
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": "cm-reader"}, "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["configmaps"]}]})),
        )
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), NS)
        .create(
            &PostParams::default(),
            &object(json!({
                "metadata": {"name": "robot-reads"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": NS}],
            })),
        )
        .await
        .unwrap();
    assert_eq!(list_code(&robot_client).await, 200);
    // Requesting tokens is `create serviceaccounts/token`, which the robot lacks.
    let as_robot = Api::<ServiceAccount>::namespaced(robot_client.clone(), NS);
    assert_eq!(
        api_error(token(&as_robot, "robot", json!({})).await.unwrap_err()).0,
        403
    );

    // Upstream's errors.
    let refused = |result: Result<String, kube::Error>| api_error(result.unwrap_err());
    assert_eq!(
        refused(token(&sas, "robot", json!({"expirationSeconds": 599})).await),
        (422, "Invalid".into())
    );
    assert_eq!(
        refused(token(&sas, "nobody", json!({})).await),
        (404, "NotFound".into())
    );
    assert_eq!(
        refused(token(&sas, "robot", json!({"boundObjectRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"}})).await),
        (400, "BadRequest".into())
    );
    assert_eq!(
        refused(
            token(
                &sas,
                "robot",
                json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "missing"}})
            )
            .await
        ),
        (404, "NotFound".into())
    );

    // A token bound to a Pod carries it, and dies with it.
    let pod = Api::<Pod>::namespaced(admin.clone(), NS)
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": "worker"}, "spec": {"serviceAccountName": "robot", "containers": [{"name": "c", "image": "busybox"}]}})),
        )
        .await
        .unwrap();
    let pod_uid = pod.metadata.uid.unwrap();
    assert_eq!(
        refused(token(&sas, "robot", json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "worker", "uid": "not-its-uid"}})).await),
        (409, "Conflict".into())
    );
    let bound = token(
        &sas,
        "robot",
        json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "worker", "uid": pod_uid}, "expirationSeconds": 600}),
    )
    .await
    .unwrap();
    let bound_claims = verify_with_jwks(&bound, &jwks);
    assert_eq!(
        bound_claims["kubernetes.io"]["pod"],
        json!({"name": "worker", "uid": pod_uid})
    );
    let bound_client = token_client(&server, &bound).await;
    let me = whoami(&bound_client).await;
    assert_eq!(
        me["extra"]["authentication.kubernetes.io/pod-name"],
        json!(["worker"])
    );
    assert_eq!(
        me["extra"]["authentication.kubernetes.io/pod-uid"],
        json!([pod_uid])
    );
    let reviewed = review(&admin, &bound, &[]).await;
    assert_eq!(reviewed["authenticated"], true);
    assert_eq!(
        reviewed["user"]["extra"]["authentication.kubernetes.io/pod-name"],
        json!(["worker"])
    );
    Api::<Pod>::namespaced(admin.clone(), NS)
        .delete("worker", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert_eq!(list_code(&bound_client).await, 401);
    let reviewed = review(&admin, &bound, &[]).await;
    assert_eq!(reviewed["authenticated"], Value::Null);
    assert_eq!(
        reviewed["error"],
        "service account token has been invalidated"
    );

    // TokenReview: valid, other audiences, garbage, and none at all.
    let reviewed = review(&admin, &robot_token, &[]).await;
    assert_eq!(reviewed["authenticated"], true);
    assert_eq!(reviewed["audiences"], json!([ISSUER]));
    assert_eq!(
        reviewed["user"]["username"],
        "system:serviceaccount:sa-tokens:robot"
    );
    assert_eq!(reviewed["user"]["uid"], robot_uid.as_str());
    let reviewed = review(&admin, &robot_token, &["vault"]).await;
    assert_eq!(reviewed["authenticated"], Value::Null);
    assert!(reviewed["error"]
        .as_str()
        .unwrap()
        .contains("invalid for the target audiences"));
    let vault = token(&sas, "robot", json!({"audiences": ["vault"]}))
        .await
        .unwrap();
    let reviewed = review(&admin, &vault, &["vault", "other"]).await;
    assert_eq!(reviewed["authenticated"], true);
    assert_eq!(reviewed["audiences"], json!(["vault"]));
    // A token for another audience is no credential for the API.
    assert_eq!(list_code(&token_client(&server, &vault).await).await, 401);
    let reviewed = review(&admin, "not.a-token", &[]).await;
    assert_eq!(
        reviewed,
        json!({"user": {}, "error": "invalid bearer token"})
    );
    let empty = Api::<TokenReview>::all(admin.clone())
        .create(&PostParams::default(), &object(json!({"spec": {}})))
        .await;
    assert_eq!(api_error(empty.unwrap_err()), (400, "BadRequest".into()));

    // Deleted and recreated, the ServiceAccount has a new uid: its old tokens are refused.
    sas.delete("robot", &DeleteParams::default()).await.unwrap();
    sas.create(
        &PostParams::default(),
        &object(json!({"metadata": {"name": "robot"}})),
    )
    .await
    .unwrap();
    assert_eq!(list_code(&robot_client).await, 401);
    let reviewed = review(&admin, &robot_token, &[]).await;
    assert!(reviewed["error"]
        .as_str()
        .unwrap()
        .contains("does not match claim"));
    // The new one gets tokens that work.
    let renewed = token(&sas, "robot", json!({})).await.unwrap();
    assert_eq!(list_code(&token_client(&server, &renewed).await).await, 200);
}

#[tokio::test]
async fn sa_tokens_from_kubectl_create_token_authenticate_and_survive_restarts() {
    let server = KflexServer::start();
    let admin = client(&server).await;
    let sas = Api::<ServiceAccount>::namespaced(admin.clone(), "default");
    // No credentials of its own: kubectl's `--token` is the only one.
    let anonymous = kubeconfig_with(&server, "anonymous.kubeconfig", json!({}));
    for binary in kubectls() {
        let name = format!("kubectl{}", version_suffix(&binary));
        sas.create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": name}})),
        )
        .await
        .unwrap();
        let out = crate::support::kubectl(
            &binary,
            &server,
            &[
                "create",
                "token",
                &name,
                "--duration",
                "20m",
                "--audience",
                ISSUER,
            ],
        );
        let token = check(&binary, &out).trim().to_owned();
        let jwks = get_text(&admin, "/openid/v1/jwks").await.unwrap();
        let claims = verify_with_jwks(&token, &jwks);
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            1200,
            "{}",
            binary.display()
        );
        let out = run(
            &binary,
            &server,
            &anonymous,
            &["--token", &token, "auth", "whoami", "-o", "json"],
        );
        let review: Value = serde_json::from_str(&check(&binary, &out)).unwrap();
        assert_eq!(
            review["status"]["userInfo"]["username"],
            format!("system:serviceaccount:default:{name}"),
            "{}",
            binary.display()
        );
        let out = crate::support::kubectl(&binary, &server, &["create", "token", "nobody"]);
        crate::support::check_fails(&binary, &out, "not found");
    }

    // The signing key is the control plane's for good: after a restart, its tokens still work.
    sas.create(
        &PostParams::default(),
        &object(json!({"metadata": {"name": "survivor"}})),
    )
    .await
    .unwrap();
    let survivor = token(&sas, "survivor", json!({})).await.unwrap();
    let jwks = get_text(&admin, "/openid/v1/jwks").await.unwrap();
    let (_, dir) = server.terminate();
    let server = KflexServer::start_in(dir);
    let restarted = token_client(&server, &survivor).await;
    assert_eq!(
        whoami(&restarted).await["username"],
        "system:serviceaccount:default:survivor"
    );
    assert_eq!(get_text(&restarted, "/openid/v1/jwks").await.unwrap(), jwks);
}

/// kubectl with `kubeconfig` instead of the admin's.
fn run(
    binary: &Path,
    server: &KflexServer,
    kubeconfig: &Path,
    args: &[&str],
) -> std::process::Output {
    let cache = server
        .data_dir
        .path()
        .join(format!("cache-token-{}", binary.display()).replace('/', "_"));
    std::process::Command::new(binary)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .unwrap()
}

async fn tenant(dir: &Path, name: &str) -> Arc<ControlPlane> {
    let mut authn = Authenticator::default();
    authn.add_token(
        format!("token-of-{name}"),
        User {
            name: format!("{name}-admin"),
            groups: vec!["system:masters".into()],
            ..Default::default()
        },
    );
    let store = SqliteStore::open(dir.join(format!("{name}.db")), SqliteOptions::default())
        .await
        .unwrap();
    ControlPlane::start(name, Arc::new(store), authn)
        .await
        .unwrap()
}

/// An ES256 token signed with `cp`'s stored key, with `claims`.
async fn forge(cp: &ControlPlane, claims: &Value) -> String {
    let (kv, _) = cp
        .store()
        .get(kflex_controlplane::sa_tokens::KEY_PATH.as_bytes(), None)
        .await
        .unwrap();
    let record: Value = serde_json::from_slice(&kv.unwrap().value).unwrap();
    let der: k8s_openapi::ByteString = object(record["privateKey"].clone());
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::ES256),
        claims,
        &jsonwebtoken::EncodingKey::from_ec_der(&der.0),
    )
    .unwrap()
}

#[tokio::test]
async fn sa_tokens_of_one_tenant_are_refused_by_another_and_expire_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let router = Arc::new(Router::new(tenant(dir.path(), "host").await));
    let a = tenant(dir.path(), "a").await;
    router.add_tenant(a.clone());
    router.add_tenant(tenant(dir.path(), "b").await);
    let served = crate::support::InProcess::serve(router.clone()).await;
    let connect = |tenant: &str, token: &str| {
        // The host control plane is served at `/`, tenants under `/clusters/`.
        let url = match tenant {
            "host" => format!("https://127.0.0.1:{}", served.port),
            _ => format!("https://127.0.0.1:{}/clusters/{tenant}", served.port),
        };
        let mut config = kube::Config::new(url.parse().unwrap());
        config.root_cert = Some(vec![served.server_ca.certificate.cert_der.to_vec()]);
        config.auth_info.token = Some(token.to_owned().into());
        config.default_retry = false;
        kube::Client::try_from(config).unwrap()
    };
    let (admin_a, admin_b) = (connect("a", "token-of-a"), connect("b", "token-of-b"));
    // The same ServiceAccount (even with the same uid) in both tenants.
    let sa = json!({"metadata": {"name": "robot", "namespace": "default"}});
    let robot = Api::<ServiceAccount>::namespaced(admin_a.clone(), "default")
        .create(&PostParams::default(), &object(sa.clone()))
        .await
        .unwrap();
    Api::<ServiceAccount>::namespaced(admin_b.clone(), "default")
        .create(&PostParams::default(), &object(sa))
        .await
        .unwrap();
    let token_a = token(
        &Api::<ServiceAccount>::namespaced(admin_a.clone(), "default"),
        "robot",
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(
        whoami(&connect("a", &token_a)).await["username"],
        "system:serviceaccount:default:robot"
    );
    assert_eq!(namespaces_code(&connect("b", &token_a)).await, 401);
    assert_eq!(namespaces_code(&connect("host", &token_a)).await, 401);
    assert_eq!(
        review(&admin_b, &token_a, &[]).await,
        json!({"user": {}, "error": "invalid bearer token"})
    );
    let jwks =
        |client: kube::Client| async move { get_text(&client, "/openid/v1/jwks").await.unwrap() };
    let jwks_a = jwks(admin_a.clone()).await;
    assert_ne!(jwks_a, jwks(admin_b.clone()).await);

    // Expiry, checked with the tenant's own key (a minute of leeway, as upstream).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = |exp: i64| {
        json!({
            "iss": ISSUER, "sub": "system:serviceaccount:default:robot", "aud": [ISSUER],
            "exp": exp, "iat": exp - 600, "nbf": exp - 600, "jti": "forged",
            "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "robot", "uid": robot.metadata.uid.clone().unwrap()}},
        })
    };
    let expired = forge(&a, &claims(now - 120)).await;
    assert_eq!(
        review(&admin_a, &expired, &[]).await,
        json!({"user": {}, "error": "service account token has expired"})
    );
    assert_eq!(namespaces_code(&connect("a", &expired)).await, 401);
    let fresh = forge(&a, &claims(now + 600)).await;
    assert_eq!(review(&admin_a, &fresh, &[]).await["authenticated"], true);

    served.stop().await;
}

async fn namespaces_code(client: &kube::Client) -> u16 {
    match Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(_) => 200,
        Err(e) => api_error(e).0,
    }
}
