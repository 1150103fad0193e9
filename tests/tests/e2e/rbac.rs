//! RBAC through the real binary: a user outside `system:masters` is denied with
//! upstream's 403 until a Role and RoleBinding allow it (in their namespace only), may not
//! grant what it does not hold, and reviews its access with kube-rs and kubectl.

use crate::support::{check, client, kubectl, kubectls};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kflex_controlplane::pki::CertificateAuthority;
use kflex_e2e::KflexServer;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A kubeconfig for `user` in `groups`, with a client certificate of the server's CA.
fn user_kubeconfig(server: &KflexServer, user: &str, groups: &[&str]) -> PathBuf {
    let pki = server.data_dir.path().join("pki");
    let read = |path: &Path| std::fs::read_to_string(path).unwrap();
    let ca = CertificateAuthority::from_pem(&read(&pki.join("ca.crt")), &read(&pki.join("ca.key")))
        .unwrap();
    let cert = ca.client_certificate(user, groups).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&read(&server.kubeconfig)).unwrap();
    config["users"][0]["user"] = json!({
        "client-certificate-data": base64(&cert.cert_pem),
        "client-key-data": base64(&cert.key_pem),
    });
    let path = server.data_dir.path().join(format!("{user}.kubeconfig"));
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    path
}

fn base64(text: &str) -> String {
    let encoded = serde_json::to_value(k8s_openapi::ByteString(text.as_bytes().to_vec())).unwrap();
    encoded.as_str().unwrap().to_owned()
}

async fn client_of(kubeconfig: &Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap();
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

/// The status of a failed call: code and message.
fn refused<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn role(name: &str, namespace: &str, rules: serde_json::Value) -> Role {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace},
        "rules": rules,
    }))
    .unwrap()
}

fn binding(name: &str, namespace: &str, kind: &str, role: &str, user: &str) -> RoleBinding {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}],
    }))
    .unwrap()
}

async fn can_i(client: &kube::Client, verb: &str, resource: &str, namespace: &str) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    answer.status.expect("a review has a status").allowed
}

#[tokio::test]
async fn users_get_what_role_bindings_grant_and_nothing_more() {
    let server = KflexServer::start();
    let admin = client(&server).await;
    let team: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &team)
        .await
        .unwrap();
    let alice = client_of(&user_kubeconfig(&server, "alice", &["devs"])).await;
    let in_team: Api<ConfigMap> = Api::namespaced(alice.clone(), "team");
    let in_default: Api<ConfigMap> = Api::namespaced(alice.clone(), "default");

    // Nothing is granted yet.
    assert_eq!(
        refused(in_default.list(&ListParams::default()).await),
        (
            403,
            r#"configmaps is forbidden: User "alice" cannot list resource "configmaps" in API group "" in the namespace "default""#.into()
        )
    );
    assert_eq!(
        refused(Api::<Namespace>::all(alice.clone()).get("team").await),
        (
            403,
            r#"namespaces "team" is forbidden: User "alice" cannot get resource "namespaces" in API group "" in the namespace "team""#.into()
        )
    );
    assert_eq!(
        refused(Api::<ConfigMap>::all(alice.clone()).list(&ListParams::default()).await),
        (
            403,
            r#"configmaps is forbidden: User "alice" cannot list resource "configmaps" in API group "" at the cluster scope"#.into()
        )
    );
    assert!(!can_i(&alice, "list", "configmaps", "team").await);
    let whoami = Api::<SelfSubjectReview>::all(alice.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    let info = whoami.status.unwrap().user_info.unwrap();
    assert_eq!(info.username.as_deref(), Some("alice"));
    assert_eq!(
        info.groups.unwrap(),
        ["devs", "system:authenticated"].map(String::from)
    );

    // A Role and a RoleBinding allow reading configmaps in their namespace only.
    let pp = PostParams::default();
    let rules = json!([{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["configmaps"]}]);
    Api::<Role>::namespaced(admin.clone(), "team")
        .create(&pp, &role("cm-reader", "team", rules))
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), "team")
        .create(
            &pp,
            &binding("alice-reads", "team", "Role", "cm-reader", "alice"),
        )
        .await
        .unwrap();
    assert!(in_team.list(&ListParams::default()).await.is_ok());
    assert_eq!(
        refused(in_default.list(&ListParams::default()).await).0,
        403
    );
    assert!(can_i(&alice, "list", "configmaps", "team").await);
    assert!(!can_i(&alice, "list", "configmaps", "default").await);
    assert!(!can_i(&alice, "create", "configmaps", "team").await);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    assert_eq!(refused(in_team.create(&pp, &cm).await).0, 403);

    // As admin of the namespace (the aggregated ClusterRole "admin"), alice may write
    // roles, but only with permissions she holds, and bind only roles she could write.
    Api::<RoleBinding>::namespaced(admin.clone(), "team")
        .create(
            &pp,
            &binding("alice-admin", "team", "ClusterRole", "admin", "alice"),
        )
        .await
        .unwrap();
    assert!(in_team.create(&pp, &cm).await.is_ok());
    let roles: Api<Role> = Api::namespaced(alice.clone(), "team");
    let deploys =
        json!([{"verbs": ["get", "list"], "apiGroups": ["apps"], "resources": ["deployments"]}]);
    roles
        .create(&pp, &role("deploy-reader", "team", deploys))
        .await
        .unwrap();
    let nodes = json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]}]);
    let (code, message) = refused(roles.create(&pp, &role("node-reader", "team", nodes)).await);
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "roles.rbac.authorization.k8s.io \"node-reader\" is forbidden: user \"alice\" (groups=[\"devs\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}"
    );
    let bindings: Api<RoleBinding> = Api::namespaced(alice.clone(), "team");
    bindings
        .create(
            &pp,
            &binding("bob-reads", "team", "Role", "cm-reader", "bob"),
        )
        .await
        .unwrap();
    let (code, message) = refused(
        bindings
            .create(
                &pp,
                &binding("bob-root", "team", "ClusterRole", "cluster-admin", "bob"),
            )
            .await,
    );
    assert_eq!(code, 403);
    assert!(
        message.starts_with(
            "rolebindings.rbac.authorization.k8s.io \"bob-root\" is forbidden: user \"alice\""
        ),
        "{message}"
    );

    // A binding's patch binds the role it references; a role's patch needs `escalate`.
    let add_carol =
        json!({"subjects": [{"kind": "User", "name": "bob"}, {"kind": "User", "name": "carol"}]});
    bindings
        .patch(
            "bob-reads",
            &PatchParams::default(),
            &Patch::Merge(&add_carol),
        )
        .await
        .unwrap();
    let (code, message) = refused(
        roles
            .patch(
                "deploy-reader",
                &PatchParams::default(),
                &Patch::Merge(&json!({"rules": []})),
            )
            .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        message,
        r#"roles.rbac.authorization.k8s.io "deploy-reader" is forbidden: User "alice" cannot escalate resource "roles" in API group "rbac.authorization.k8s.io" in the namespace "team""#
    );

    // An administrator reviews alice's access, with the reason RBAC allows it.
    let review: SubjectAccessReview = serde_json::from_value(json!({
        "spec": {"user": "alice", "resourceAttributes": {"verb": "list", "resource": "configmaps", "namespace": "team"}}
    }))
    .unwrap();
    let status = Api::<SubjectAccessReview>::all(admin.clone())
        .create(&pp, &review)
        .await
        .unwrap()
        .status
        .unwrap();
    assert!(status.allowed);
    assert_eq!(
        status.reason.as_deref(),
        Some(
            r#"RBAC: allowed by RoleBinding "alice-admin/team" of ClusterRole "admin" to User "alice""#
        )
    );

    // Aggregation: a ClusterRole labelled for "view" adds its rules to view, edit and admin.
    let widgets: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": "widget-viewer", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["widgets"]}],
    }))
    .unwrap();
    let cluster_roles: Api<ClusterRole> = Api::all(admin.clone());
    cluster_roles.create(&pp, &widgets).await.unwrap();
    for aggregated in ["view", "edit", "admin"] {
        let rules = cluster_roles.get(aggregated).await.unwrap().rules.unwrap();
        assert!(
            rules
                .iter()
                .any(|r| r.resources.as_deref() == Some(&["widgets".to_owned()][..])),
            "{aggregated}"
        );
    }
    cluster_roles
        .delete("widget-viewer", &Default::default())
        .await
        .unwrap();
    let rules = cluster_roles.get("admin").await.unwrap().rules.unwrap();
    assert!(!rules
        .iter()
        .any(|r| r.resources.as_deref() == Some(&["widgets".to_owned()][..])));
}

/// kubectl with the kubeconfig at `kubeconfig`.
fn kubectl_as(binary: &Path, server: &KflexServer, kubeconfig: &Path, args: &[&str]) -> Output {
    let cache = server
        .data_dir
        .path()
        .join(format!("cache-user-{}", binary.display()).replace('/', "_"));
    Command::new(binary)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn kubectl_checks_access_impersonates_and_is_refused() {
    let server = KflexServer::start();
    let admin = client(&server).await;
    let rules = json!([{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]);
    Api::<Role>::namespaced(admin.clone(), "kube-public")
        .create(
            &PostParams::default(),
            &role("pod-lister", "kube-public", rules),
        )
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), "kube-public")
        .create(
            &PostParams::default(),
            &binding("alice-lists", "kube-public", "Role", "pod-lister", "alice"),
        )
        .await
        .unwrap();
    let alice = user_kubeconfig(&server, "alice", &[]);
    for binary in kubectls() {
        let answer = |args: &[&str]| {
            let out = kubectl(&binary, &server, args);
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        assert_eq!(
            answer(&[
                "auth",
                "can-i",
                "list",
                "pods",
                "--as",
                "alice",
                "-n",
                "kube-public"
            ]),
            "yes",
            "{}",
            binary.display()
        );
        assert_eq!(
            answer(&["auth", "can-i", "list", "pods", "--as", "alice"]),
            "no",
            "{}",
            binary.display()
        );
        assert_eq!(
            answer(&["auth", "can-i", "list", "pods"]),
            "yes",
            "{}",
            binary.display()
        );

        let out = kubectl_as(&binary, &server, &alice, &["auth", "whoami", "-o", "json"]);
        let review: serde_json::Value = serde_json::from_str(&check(&binary, &out)).unwrap();
        assert_eq!(
            review["status"]["userInfo"]["username"],
            "alice",
            "{}",
            binary.display()
        );

        let robot = "system:serviceaccount:kube-public:robot";
        let out = kubectl(
            &binary,
            &server,
            &["auth", "whoami", "--as", robot, "-o", "json"],
        );
        let review: serde_json::Value = serde_json::from_str(&check(&binary, &out)).unwrap();
        assert_eq!(
            review["status"]["userInfo"],
            json!({"username": robot, "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-public", "system:authenticated"]}),
            "{}",
            binary.display()
        );
        let out = kubectl_as(
            &binary,
            &server,
            &alice,
            &["get", "configmaps", "-n", "default"],
        );
        crate::support::check_fails(
            &binary,
            &out,
            r#"Error from server (Forbidden): configmaps is forbidden: User "alice" cannot list resource "configmaps" in API group "" in the namespace "default""#,
        );
        let out = kubectl_as(
            &binary,
            &server,
            &alice,
            &["get", "pods", "-n", "kube-public", "--as", "bob"],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(r#"users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#),
            "{}: {stderr}",
            binary.display()
        );
        let out = kubectl_as(
            &binary,
            &server,
            &alice,
            &["get", "pods", "-n", "kube-public"],
        );
        check(&binary, &out);
        let out = kubectl_as(
            &binary,
            &server,
            &alice,
            &["auth", "can-i", "--list", "-n", "kube-public"],
        );
        let listed = check(&binary, &out);
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with("pods ") && l.trim_end().ends_with("[list]")),
            "{}: {listed}",
            binary.display()
        );
    }
}

/// A control plane on `store`, with the tokens `admin` (system:masters) and `alice` (no
/// groups).
async fn control_plane(
    store: std::sync::Arc<dyn kflex_storage_backends::Store>,
) -> std::sync::Arc<kflex_controlplane::ControlPlane> {
    use kflex_controlplane::authn::{Authenticator, User};
    let mut authn = Authenticator::default();
    let user = |name: &str, groups: &[&str]| User {
        name: name.into(),
        uid: String::new(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        ..Default::default()
    };
    authn.add_token("admin", user("admin", &["system:masters"]));
    authn.add_token("alice", user("alice", &[]));
    kflex_controlplane::ControlPlane::start("rbac", store, authn)
        .await
        .unwrap()
}

/// Sends one request as the user of `token`: the status and the JSON answer.
async fn call(
    cp: &kflex_controlplane::ControlPlane,
    token: &str,
    method: http::Method,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    use http_body_util::BodyExt;
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    let req = kflex_controlplane::http::ApiRequest {
        method,
        path: path.into(),
        query: kflex_controlplane::request::Query::default(),
        headers,
        body: if body.is_null() {
            bytes::Bytes::new()
        } else {
            serde_json::to_vec(&body).unwrap().into()
        },
        peer_certs: Default::default(),
    };
    let response = cp.handle(req).await;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test]
async fn review_apis_answer_and_reject_bad_input_as_upstream() {
    use kflex_storage_backends::sqlite::{SqliteOptions, SqliteStore};
    let dir = tempfile::tempdir().unwrap();
    let store: std::sync::Arc<dyn kflex_storage_backends::Store> = std::sync::Arc::new(
        SqliteStore::open(dir.path().join("rbac.db"), SqliteOptions::default())
            .await
            .unwrap(),
    );
    let cp = control_plane(store.clone()).await;
    let post = http::Method::POST;

    // Discovery lists the reviews as create-only.
    let (code, doc) = call(
        &cp,
        "alice",
        http::Method::GET,
        "/apis/authorization.k8s.io/v1",
        json!(null),
    )
    .await;
    assert_eq!(code, 200);
    let ssar = doc["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "selfsubjectaccessreviews")
        .unwrap();
    assert_eq!(ssar["verbs"], json!(["create"]));

    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let (code, answer) = call(
        &cp,
        "alice",
        post.clone(),
        path,
        json!({"spec": {"nonResourceAttributes": {"path": "/version", "verb": "get"}}}),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(answer["kind"], "SelfSubjectAccessReview");
    assert_eq!(answer["status"]["allowed"], true);
    assert_eq!(
        answer["status"]["reason"],
        r#"RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole "system:discovery" to Group "system:authenticated""#
    );
    let (code, answer) = call(&cp, "alice", post.clone(), path, json!({"spec": {}})).await;
    assert_eq!((code, answer["reason"].as_str()), (422, Some("Invalid")));
    assert_eq!(
        answer["message"],
        r#"SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes: Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes must be specified"#
    );
    // Authorization comes first: a list is forbidden to alice, and not served to admins.
    let (code, _) = call(&cp, "alice", http::Method::GET, path, json!(null)).await;
    assert_eq!(code, 403);
    let (code, _) = call(&cp, "admin", http::Method::GET, path, json!(null)).await;
    assert_eq!(code, 405);

    // SubjectAccessReview needs a user or group, and the right to create it.
    let sar = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let spec = json!({"spec": {"user": "bob", "resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "default"}}});
    let (code, answer) = call(&cp, "alice", post.clone(), sar, spec.clone()).await;
    assert_eq!(code, 403);
    assert_eq!(
        answer["message"],
        r#"subjectaccessreviews.authorization.k8s.io is forbidden: User "alice" cannot create resource "subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope"#
    );
    let (code, answer) = call(&cp, "admin", post.clone(), sar, spec).await;
    assert_eq!(
        (code, answer["status"]["allowed"].as_bool()),
        (201, Some(false))
    );
    let (code, _) = call(
        &cp,
        "admin",
        post.clone(),
        sar,
        json!({"spec": {"resourceAttributes": {"verb": "get"}}}),
    )
    .await;
    assert_eq!(code, 422);

    // A LocalSubjectAccessReview is about its own namespace only.
    let local = "/apis/authorization.k8s.io/v1/namespaces/default/localsubjectaccessreviews";
    let ask = |ns: &str| json!({"spec": {"user": "bob", "resourceAttributes": {"verb": "get", "resource": "pods", "namespace": ns}}});
    let (code, answer) = call(&cp, "admin", post.clone(), local, ask("default")).await;
    assert_eq!(
        (code, answer["metadata"]["namespace"].as_str()),
        (201, Some("default"))
    );
    let (code, _) = call(&cp, "admin", post.clone(), local, ask("kube-system")).await;
    assert_eq!(code, 400);

    // Rules reviews list what RBAC grants: every user may review itself.
    let rules = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews";
    let (code, answer) = call(
        &cp,
        "alice",
        post.clone(),
        rules,
        json!({"spec": {"namespace": "default"}}),
    )
    .await;
    assert_eq!(code, 201);
    assert!(answer["status"]["resourceRules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["resources"] == json!(["selfsubjectaccessreviews", "selfsubjectrulesreviews"])));
    assert_eq!(answer["status"]["incomplete"], false);

    // The bootstrap policy survives a restart unchanged and carries upstream's marks.
    drop(cp);
    let cp = control_plane(store).await;
    let (code, admin) = call(
        &cp,
        "admin",
        http::Method::GET,
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
        json!(null),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        admin["metadata"]["annotations"]["rbac.authorization.k8s.io/autoupdate"],
        "true"
    );
    assert!(admin["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["resources"] == json!(["rolebindings", "roles"])));
    assert!(admin["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["resources"]
            .as_array()
            .unwrap()
            .contains(&json!("pods/log"))));
}
