//! Tenant isolation and per-control-plane authentication, from outside: several control
//! planes made by the manager, each with users of every kind (admin certificate,
//! ServiceAccount token, bootstrap token, OIDC user of another control plane acting as
//! the identity provider), every credential against every control plane and the hosting
//! API with every verb. A credential works where it was made, as RBAC says, and is 401
//! everywhere else. Also anonymous requests, the tenancy policy, settings that change
//! on a running control plane, and JWT claims mapped and checked by CEL expressions.

use crate::manager::{condition, control_planes, kubeconfig_of, settled, submit};
use crate::support::{api_error, check, check_fails, client, kubectl, kubectls};
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kflex_e2e::KflexServer;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The control planes of the matrix.
const TENANTS: [&str; 3] = ["iso-a", "iso-b", "iso-c"];
/// The control plane whose ServiceAccount tokens are the OIDC users' ID tokens.
const IDP: &str = "iso-idp";
/// The issuer of every kflex control plane's ServiceAccount tokens.
const SA_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The namespace the tenant users work in.
const WORK: &str = "work";

fn object<T: k8s_openapi::serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

/// A client of `server` at `path` (`""` for the hosting API, `/clusters/<cp>` for a
/// tenant) that authenticates with `auth` (nothing when default).
async fn connect(server: &KflexServer, path: &str, auth: &AuthInfo) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(&server.kubeconfig).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap();
    config.cluster_url = format!("{}{path}", server.url).parse().unwrap();
    config.auth_info = auth.clone();
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

fn bearer(token: &str) -> AuthInfo {
    object(json!({"token": token}))
}

/// The admin credential (client certificate) of control plane `cp`.
async fn admin_of(host: &kube::Client, cp: &str) -> AuthInfo {
    let kubeconfig = Kubeconfig::from_yaml(&kubeconfig_of(host, cp, "kubeconfig").await).unwrap();
    kubeconfig.auth_infos[0].auth_info.clone().unwrap()
}

/// Waits until ControlPlane `name` is Ready.
async fn ready(host: &kube::Client, name: &str) {
    let (cp, _) = settled(host, name).await;
    assert_eq!(
        condition(&cp, "Ready").map(|c| c["status"].clone()),
        Some(json!("True")),
        "{:?}",
        cp.data["status"]
    );
}

/// A token of ServiceAccount `namespace/name` for `audiences` (the API's when empty).
async fn sa_token(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    audiences: &[&str],
) -> String {
    let spec = if audiences.is_empty() {
        json!({})
    } else {
        json!({"audiences": audiences})
    };
    Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(
            name,
            &PostParams::default(),
            &object::<TokenRequest>(json!({"spec": spec})),
        )
        .await
        .unwrap()
        .status
        .unwrap()
        .token
}

async fn create<K>(api: &Api<K>, value: Value)
where
    K: kube::Resource
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug,
{
    api.create(&PostParams::default(), &object::<K>(value))
        .await
        .unwrap();
}

/// The HTTP status of one request through `client`.
async fn status(client: &kube::Client, method: &str, path: &str, body: Option<Value>) -> u16 {
    let body = body.map_or_else(Vec::new, |b| serde_json::to_vec(&b).unwrap());
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(kube::client::Body::from(body))
        .unwrap();
    client.send(request).await.unwrap().status().as_u16()
}

/// What a credential may do in its own control plane.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Rights {
    /// Everything (`system:masters`).
    Admin,
    /// `workspace-admin` in namespace `work`: that namespace's objects, nothing cluster-wide.
    WorkspaceAdmin,
    /// `workspace-viewer` in `work`: reading that namespace's objects.
    WorkspaceViewer,
    /// Discovery only.
    Discovery,
}

/// The requests of the matrix: `(label, method, path, body)`, for credential `who`.
fn requests(who: &str) -> Vec<(String, &'static str, String, Option<Value>)> {
    let cm = format!("cm-{who}");
    let cr = format!("cr-{who}");
    let configmap = json!({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": cm}, "data": {"k": "v"}});
    let configmap_v2 = json!({"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": cm}, "data": {"k": "v2"}});
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                      "metadata": {"name": cr}, "rules": []});
    let cms = format!("/api/v1/namespaces/{WORK}/configmaps");
    let crs = "/apis/rbac.authorization.k8s.io/v1/clusterroles".to_owned();
    vec![
        ("version".into(), "GET", "/version".into(), None),
        ("discovery".into(), "GET", "/api".into(), None),
        ("healthz".into(), "GET", "/healthz".into(), None),
        ("list configmaps".into(), "GET", cms.clone(), None),
        (
            "watch configmaps".into(),
            "GET",
            format!("{cms}?watch=1&timeoutSeconds=1"),
            None,
        ),
        ("get configmap".into(), "GET", format!("{cms}/probe"), None),
        (
            "create configmap".into(),
            "POST",
            cms.clone(),
            Some(configmap),
        ),
        (
            "update configmap".into(),
            "PUT",
            format!("{cms}/{cm}"),
            Some(configmap_v2),
        ),
        (
            "delete configmap".into(),
            "DELETE",
            format!("{cms}/{cm}"),
            None,
        ),
        ("list clusterroles".into(), "GET", crs.clone(), None),
        (
            "watch clusterroles".into(),
            "GET",
            format!("{crs}?watch=1&timeoutSeconds=1"),
            None,
        ),
        ("get clusterrole".into(), "GET", format!("{crs}/view"), None),
        (
            "create clusterrole".into(),
            "POST",
            crs.clone(),
            Some(role.clone()),
        ),
        (
            "update clusterrole".into(),
            "PUT",
            format!("{crs}/{cr}"),
            Some(role),
        ),
        (
            "delete clusterrole".into(),
            "DELETE",
            format!("{crs}/{cr}"),
            None,
        ),
    ]
}

/// The status a request of [`requests`] gets in the credential's own control plane.
fn expected(rights: Rights, label: &str) -> u16 {
    let public = matches!(label, "version" | "discovery" | "healthz");
    let namespaced_read = matches!(
        label,
        "list configmaps" | "watch configmaps" | "get configmap"
    );
    let namespaced = label.ends_with("configmaps") || label.ends_with("configmap");
    let allowed = match rights {
        Rights::Admin => true,
        Rights::WorkspaceAdmin => public || namespaced,
        Rights::WorkspaceViewer => public || namespaced_read,
        Rights::Discovery => public,
    };
    match (allowed, label.split(' ').next()) {
        (false, _) => 403,
        (true, Some("create")) => 201,
        (true, _) => 200,
    }
}

#[tokio::test]
async fn every_credential_works_in_its_own_control_plane_only() {
    let server = KflexServer::start();
    let host = client(&server).await;
    let started = Instant::now();
    // The identity provider: anonymous requests allowed, and allowed to read the issuer
    // discovery documents, as upstream's documentation sets up for OIDC relying parties.
    submit(
        &host,
        IDP,
        json!({"type": "k8s", "authentication": {"anonymous": {"enabled": true}}}),
    )
    .await
    .unwrap();
    let ca_pem = server_ca(&server);
    for cp in TENANTS {
        let spec = json!({
            "type": "k8s",
            "tenancyPolicy": {"enabled": true},
            "authentication": {"jwt": [{
                "issuer": {
                    "url": SA_ISSUER,
                    "discoveryURL": format!("{}/clusters/{IDP}/.well-known/openid-configuration", server.url),
                    "audiences": [cp],
                    "certificateAuthority": ca_pem,
                },
                "claimMappings": {"username": {"claim": "sub", "prefix": "oidc:"}},
            }]},
        });
        submit(&host, cp, spec).await.unwrap();
    }
    ready(&host, IDP).await;
    let idp = connect(
        &server,
        &format!("/clusters/{IDP}"),
        &admin_of(&host, IDP).await,
    )
    .await;
    create(
        &Api::<ClusterRoleBinding>::all(idp.clone()),
        json!({"metadata": {"name": "oidc-discovery"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "system:service-account-issuer-discovery"},
               "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io",
                             "name": "system:unauthenticated"}]}),
    )
    .await;
    create(
        &Api::<Namespace>::all(idp.clone()),
        json!({"metadata": {"name": "people"}}),
    )
    .await;
    create(
        &Api::<ServiceAccount>::namespaced(idp.clone(), "people"),
        json!({"metadata": {"name": "alice"}}),
    )
    .await;

    // Each tenant: a namespace with a probe object, a ServiceAccount that may read it, a
    // workspace admin from the identity provider, and a bootstrap token.
    let mut credentials: Vec<(String, Option<&str>, Rights, AuthInfo)> = vec![(
        "anonymous".into(),
        None,
        Rights::Discovery,
        AuthInfo::default(),
    )];
    for (i, cp) in TENANTS.into_iter().enumerate() {
        ready(&host, cp).await;
        let admin_auth = admin_of(&host, cp).await;
        let admin = connect(&server, &format!("/clusters/{cp}"), &admin_auth).await;
        create(
            &Api::<Namespace>::all(admin.clone()),
            json!({"metadata": {"name": WORK}}),
        )
        .await;
        create(
            &Api::<ConfigMap>::namespaced(admin.clone(), WORK),
            json!({"metadata": {"name": "probe"}}),
        )
        .await;
        create(
            &Api::<ServiceAccount>::namespaced(admin.clone(), WORK),
            json!({"metadata": {"name": "robot"}}),
        )
        .await;
        let bindings = Api::<RoleBinding>::namespaced(admin.clone(), WORK);
        for (name, role, subject) in [
            (
                "robot-views",
                "workspace-viewer",
                json!({"kind": "ServiceAccount", "name": "robot", "namespace": WORK}),
            ),
            (
                "alice-admin",
                "workspace-admin",
                json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io",
                    "name": "oidc:system:serviceaccount:people:alice"}),
            ),
        ] {
            create(
                &bindings,
                json!({"metadata": {"name": name},
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                       "subjects": [subject]}),
            )
            .await;
        }
        let token_id = format!("token{i}");
        create(
            &Api::<Secret>::namespaced(admin.clone(), "kube-system"),
            json!({"metadata": {"name": format!("bootstrap-token-{token_id}")},
                   "type": "bootstrap.kubernetes.io/token",
                   "stringData": {"token-id": token_id, "token-secret": "0123456789abcdef",
                                  "usage-bootstrap-authentication": "true"}}),
        )
        .await;
        let robot = sa_token(&admin, WORK, "robot", &[]).await;
        let alice = sa_token(&idp, "people", "alice", &[cp]).await;
        credentials.extend([
            (format!("{cp}-admin"), Some(cp), Rights::Admin, admin_auth),
            (
                format!("{cp}-robot"),
                Some(cp),
                Rights::WorkspaceViewer,
                bearer(&robot),
            ),
            (
                format!("{cp}-alice"),
                Some(cp),
                Rights::WorkspaceAdmin,
                bearer(&alice),
            ),
            (
                format!("{cp}-bootstrap"),
                Some(cp),
                Rights::Discovery,
                bearer(&format!("{token_id}.0123456789abcdef")),
            ),
        ]);
    }
    let setup = started.elapsed();

    // Who each credential is where it works.
    for (who, owner, _, auth) in &credentials {
        let Some(cp) = owner else { continue };
        let tenant = connect(&server, &format!("/clusters/{cp}"), auth).await;
        let me = Api::<SelfSubjectReview>::all(tenant)
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        let user = me.status.unwrap().user_info.unwrap();
        let name = user.username.unwrap();
        let wanted = match who.rsplit('-').next().unwrap() {
            "admin" => "kubernetes-admin".to_owned(),
            "robot" => format!("system:serviceaccount:{WORK}:robot"),
            "alice" => "oidc:system:serviceaccount:people:alice".to_owned(),
            _ => format!(
                "system:bootstrap:token{}",
                TENANTS.iter().position(|t| t == cp).unwrap()
            ),
        };
        assert_eq!(name, wanted, "{who}");
    }

    // Every credential against every control plane and the hosting API.
    let mut targets: Vec<(String, String)> = TENANTS
        .iter()
        .chain([&IDP])
        .map(|cp| (cp.to_string(), format!("/clusters/{cp}")))
        .collect();
    targets.push(("hosting".into(), String::new()));
    let matrix_started = Instant::now();
    let mut checked = 0;
    let mut failures = Vec::new();
    let server = &server;
    for (who, owner, rights, auth) in &credentials {
        let checks = targets.iter().map(|(target, path)| async move {
            let client = connect(server, path, auth).await;
            let mut outcomes = Vec::new();
            for (label, method, request_path, body) in requests(who) {
                let got = status(&client, method, &request_path, body).await;
                let want = match (owner, target.as_str()) {
                    (Some(cp), target) if *cp == target => expected(*rights, &label),
                    // The identity provider serves anonymous requests: public paths only.
                    (None, IDP) if matches!(label.as_str(), "version" | "healthz") => 200,
                    (None, IDP) => 403,
                    // The hosting API's health answers everyone (the process's probe).
                    (_, "hosting") if label == "healthz" => 200,
                    _ => 401,
                };
                outcomes.push((target.clone(), label, got, want));
            }
            outcomes
        });
        for (target, label, got, want) in futures::future::join_all(checks)
            .await
            .into_iter()
            .flatten()
        {
            checked += 1;
            if got != want {
                failures.push(format!(
                    "{who} -> {target}: {label}: got {got}, want {want}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        checked,
        credentials.len() * targets.len() * requests("x").len()
    );
    eprintln!(
        "isolation matrix: {checked} requests in {:?} (setup of 4 control planes and their users {setup:?})",
        matrix_started.elapsed()
    );

    // The tenancy policy's refusal says why.
    let alice = credentials.iter().find(|c| c.0 == "iso-a-alice").unwrap();
    let tenant = connect(server, "/clusters/iso-a", &alice.3).await;
    let error = Api::<ClusterRoleBinding>::all(tenant.clone())
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": "mine"},
                           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                           "subjects": []})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = error else {
        panic!("{error:?}")
    };
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert!(
        status.message.contains("tenancy policy"),
        "{}",
        status.message
    );
    // kubectl, as the OIDC user: its own control plane answers as RBAC says, the policy
    // explains itself, another control plane does not know the user.
    let kubectls = kubectls();
    for binary in kubectls.first().into_iter().chain(kubectls.last()) {
        let kubeconfig = |cp: &str| {
            let mut config: Value =
                serde_json::from_str(&std::fs::read_to_string(&server.kubeconfig).unwrap())
                    .unwrap();
            config["clusters"][0]["cluster"]["server"] =
                json!(format!("{}/clusters/{cp}", server.url));
            config["users"][0]["user"] = serde_json::to_value(&alice.3).unwrap();
            let path = server
                .data_dir
                .path()
                .join(format!("alice-{cp}.kubeconfig"));
            std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
            path.to_string_lossy().into_owned()
        };
        let (own, other) = (kubeconfig("iso-a"), kubeconfig("iso-b"));
        let out = kubectl(
            binary,
            server,
            &[
                "--kubeconfig",
                &own,
                "get",
                "configmaps",
                "-n",
                WORK,
                "-o",
                "name",
            ],
        );
        assert!(check(binary, &out).contains("configmap/probe"));
        let out = kubectl(
            binary,
            server,
            &[
                "--kubeconfig",
                &own,
                "create",
                "clusterrole",
                "mine",
                "--verb=get",
                "--resource=pods",
            ],
        );
        check_fails(binary, &out, "tenancy policy");
        let out = kubectl(
            binary,
            server,
            &["--kubeconfig", &other, "get", "configmaps", "-n", WORK],
        );
        check_fails(binary, &out, "You must be logged in to the server");
    }
    // A workspace admin manages access inside the namespace, within what it holds.
    create(
        &Api::<Role>::namespaced(tenant.clone(), WORK),
        json!({"metadata": {"name": "cm-reader"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
    )
    .await;
    let escalating = Api::<Role>::namespaced(tenant.clone(), WORK)
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": "nodes"},
                           "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(escalating).0, 403);
}

#[tokio::test]
async fn authentication_settings_apply_to_a_running_control_plane() {
    let server = KflexServer::start();
    let host = client(&server).await;
    let name = "iso-settings";
    submit(&host, name, json!({"type": "k8s"})).await.unwrap();
    ready(&host, name).await;
    let path = format!("/clusters/{name}");
    let anonymous = connect(&server, &path, &AuthInfo::default()).await;
    let forged = connect(&server, &path, &bearer("abcdef.0123456789abcdef")).await;
    let admin = connect(&server, &path, &admin_of(&host, name).await).await;
    // Off by default: no credentials, no answer, health included.
    for path in [
        "/version",
        "/healthz",
        "/readyz",
        "/livez",
        "/api/v1/namespaces",
    ] {
        assert_eq!(status(&anonymous, "GET", path, None).await, 401, "{path}");
    }
    // The hosting API's health stays open: it is the process's probe.
    let hosting = connect(&server, "", &AuthInfo::default()).await;
    assert_eq!(status(&hosting, "GET", "/healthz", None).await, 200);
    assert_eq!(status(&hosting, "GET", "/version", None).await, 401);

    let control_planes = control_planes(&host);
    let patch = |spec: Value| {
        let control_planes = control_planes.clone();
        async move {
            control_planes
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": spec})),
                )
                .await
        }
    };
    patch(json!({"authentication": {"anonymous": {"enabled": true}}}))
        .await
        .unwrap();
    let started = Instant::now();
    while status(&anonymous, "GET", "/version", None).await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "anonymous never enabled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for path in ["/version", "/healthz", "/readyz", "/livez"] {
        assert_eq!(status(&anonymous, "GET", path, None).await, 200, "{path}");
    }
    let error = Api::<Namespace>::all(anonymous.clone())
        .list(&Default::default())
        .await
        .unwrap_err();
    let kube::Error::Api(refusal) = error else {
        panic!("{error:?}")
    };
    assert_eq!(refusal.code, 403);
    assert!(
        refusal.message.contains("\"system:anonymous\""),
        "{}",
        refusal.message
    );
    // Credentials that fail are refused, not taken for anonymous.
    assert_eq!(status(&forged, "GET", "/version", None).await, 401);

    // What the schema can tell is refused with 422; the rest shows on the ControlPlane.
    let bad_url = patch(
        json!({"authentication": {"jwt": [{"issuer": {"url": "http://idp", "audiences": ["x"]}}]}}),
    )
    .await
    .unwrap_err();
    assert_eq!(api_error(bad_url), (422, "Invalid".into()));
    let no_audience = patch(
        json!({"authentication": {"jwt": [{"issuer": {"url": "https://idp", "audiences": []}}]}}),
    )
    .await
    .unwrap_err();
    assert_eq!(api_error(no_audience).0, 422);
    // Several audiences need upstream's audienceMatchPolicy MatchAny.
    let two = |policy: Value| {
        let mut issuer = json!({"url": "https://idp.example", "audiences": ["a", "b"]});
        if !policy.is_null() {
            issuer["audienceMatchPolicy"] = policy;
        }
        json!({"authentication": {"jwt": [{"issuer": issuer}]}})
    };
    let Err(kube::Error::Api(unmatched)) = patch(two(Value::Null)).await else {
        panic!("two audiences without a policy were accepted")
    };
    assert_eq!(unmatched.code, 422);
    assert!(
        unmatched
            .message
            .contains("spec.authentication.jwt[0].issuer.audienceMatchPolicy")
            && unmatched
                .message
                .contains("audienceMatchPolicy must be MatchAny for multiple audiences"),
        "{}",
        unmatched.message
    );
    let Err(kube::Error::Api(exact)) = patch(two(json!("MatchExact"))).await else {
        panic!("an unknown policy was accepted")
    };
    assert_eq!(exact.code, 422);
    assert!(
        exact.message.contains("Unsupported value: \"MatchExact\""),
        "{}",
        exact.message
    );
    patch(two(json!("MatchAny"))).await.unwrap();
    patch(json!({"authentication": {"jwt": [{"issuer": {"url": SA_ISSUER, "audiences": ["x"]}}]}}))
        .await
        .unwrap();
    let started = Instant::now();
    let message = loop {
        let cp = control_planes.get(name).await.unwrap();
        let synced = condition(&cp, "Synced").cloned().unwrap_or_default();
        if synced["status"] == "False" {
            break synced["message"].as_str().unwrap_or_default().to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            cp.data["status"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        message.contains("spec.authentication.jwt[0].issuer.url")
            && message.contains("discoveryURL"),
        "{message}"
    );
    // The control plane keeps serving with the settings it had.
    assert_eq!(status(&anonymous, "GET", "/version", None).await, 200);

    // The tenancy policy, switched on while a user may write ClusterRoles through RBAC.
    patch(json!({"authentication": {"anonymous": {"enabled": false}, "jwt": null}}))
        .await
        .unwrap();
    create(
        &Api::<ClusterRoleBinding>::all(admin.clone()),
        json!({"metadata": {"name": "bob-rbac"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "system:bootstrap:bobbob"}]}),
    )
    .await;
    create(
        &Api::<Secret>::namespaced(admin.clone(), "kube-system"),
        json!({"metadata": {"name": "bootstrap-token-bobbob"},
               "type": "bootstrap.kubernetes.io/token",
               "stringData": {"token-secret": "0123456789abcdef", "usage-bootstrap-authentication": "true"}}),
    )
    .await;
    let bob = connect(&server, &path, &bearer("bobbob.0123456789abcdef")).await;
    let role = |n: &str| object::<ClusterRole>(json!({"metadata": {"name": n}, "rules": []}));
    Api::<ClusterRole>::all(bob.clone())
        .create(&PostParams::default(), &role("bob-1"))
        .await
        .unwrap();
    // Switched off at the next reconcile.
    let started = Instant::now();
    while status(&anonymous, "GET", "/version", None).await != 401 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "anonymous never disabled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    patch(json!({"tenancyPolicy": {"enabled": true}}))
        .await
        .unwrap();
    let started = Instant::now();
    let refusal = loop {
        match Api::<ClusterRole>::all(bob.clone())
            .create(&PostParams::default(), &role("bob-2"))
            .await
        {
            Ok(_) => {
                Api::<ClusterRole>::all(admin.clone())
                    .delete("bob-2", &Default::default())
                    .await
                    .unwrap();
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "the policy never applied"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => break error,
        }
    };
    assert_eq!(api_error(refusal).0, 403);
    assert_eq!(
        api_error(
            Api::<ClusterRole>::all(bob.clone())
                .delete("bob-1", &Default::default())
                .await
                .unwrap_err()
        )
        .0,
        403
    );
    // The admin is not bound by it, and the workspace roles exist with upstream's rules.
    Api::<ClusterRole>::all(admin.clone())
        .delete("bob-1", &Default::default())
        .await
        .unwrap();
    let roles = Api::<ClusterRole>::all(admin.clone());
    let rules = |role: ClusterRole| serde_json::to_value(role.rules.unwrap_or_default()).unwrap();
    assert_eq!(
        rules(roles.get("workspace-admin").await.unwrap()),
        rules(roles.get("admin").await.unwrap())
    );
    assert_eq!(
        rules(roles.get("workspace-viewer").await.unwrap()),
        rules(roles.get("view").await.unwrap())
    );
}

/// The CA certificate (PEM) of `server`'s HTTPS, which JWT authenticators must trust to
/// fetch another control plane's keys.
fn server_ca(server: &KflexServer) -> String {
    use base64::Engine as _;
    let kubeconfig: Value =
        serde_json::from_str(&std::fs::read_to_string(&server.kubeconfig).unwrap()).unwrap();
    let data = kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .unwrap();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn jwt_expressions_map_claims_and_validation_rules_refuse_tokens() {
    let server = KflexServer::start();
    let host = client(&server).await;
    let (idp_name, name) = ("cel-idp", "cel-tenant");
    submit(
        &host,
        idp_name,
        json!({"type": "k8s", "authentication": {"anonymous": {"enabled": true}}}),
    )
    .await
    .unwrap();
    ready(&host, idp_name).await;
    let idp = connect(
        &server,
        &format!("/clusters/{idp_name}"),
        &admin_of(&host, idp_name).await,
    )
    .await;
    create(
        &Api::<ClusterRoleBinding>::all(idp.clone()),
        json!({"metadata": {"name": "oidc-discovery"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "system:service-account-issuer-discovery"},
               "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io",
                             "name": "system:unauthenticated"}]}),
    )
    .await;
    for (namespace, accounts) in [("people", &["alice", "mallory"][..]), ("robots", &["r2"])] {
        create(
            &Api::<Namespace>::all(idp.clone()),
            json!({"metadata": {"name": namespace}}),
        )
        .await;
        for account in accounts {
            create(
                &Api::<ServiceAccount>::namespaced(idp.clone(), namespace),
                json!({"metadata": {"name": account}}),
            )
            .await;
        }
    }
    // The identity provider's ServiceAccount tokens, their claims mapped by expressions.
    let sa = "claims['kubernetes.io']";
    let jwt = |mappings: Value| {
        json!({
            "issuer": {
                "url": SA_ISSUER,
                "discoveryURL": format!("{}/clusters/{idp_name}/.well-known/openid-configuration", server.url),
                "audiences": [name],
                "certificateAuthority": server_ca(&server),
            },
            "claimValidationRules": [
                {"expression": format!("{sa}.namespace == 'people'"), "message": "people only"},
            ],
            "claimMappings": mappings,
            "userValidationRules": [
                {"expression": "user.username != 'idp:mallory'", "message": "not mallory"},
            ],
        })
    };
    let mappings = json!({
        "username": {"expression": format!("'idp:' + {sa}.serviceaccount.name")},
        "groups": {"expression": format!("['idp:' + {sa}.namespace, 'idp:staff', '']")},
        "uid": {"expression": format!("{sa}.serviceaccount.uid")},
        "extra": [{"key": "example.com/namespace", "valueExpression": format!("{sa}.namespace")}],
    });
    submit(
        &host,
        name,
        json!({"type": "k8s", "authentication": {"jwt": [jwt(mappings.clone())]}}),
    )
    .await
    .unwrap();
    ready(&host, name).await;
    let path = format!("/clusters/{name}");
    let token = |namespace: &'static str, account: &'static str| {
        let idp = idp.clone();
        async move { sa_token(&idp, namespace, account, &[name]).await }
    };
    let alice = connect(&server, &path, &bearer(&token("people", "alice").await)).await;
    let me = Api::<SelfSubjectReview>::all(alice.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    let user = me.status.unwrap().user_info.unwrap();
    assert_eq!(user.username.as_deref(), Some("idp:alice"));
    assert_eq!(
        user.groups.unwrap(),
        ["idp:people", "idp:staff", "system:authenticated"]
    );
    let alice_uid = Api::<ServiceAccount>::namespaced(idp.clone(), "people")
        .get("alice")
        .await
        .unwrap()
        .metadata
        .uid;
    assert_eq!(user.uid, alice_uid);
    let extra = user.extra.unwrap();
    assert_eq!(extra.len(), 1, "{extra:?}");
    assert_eq!(extra["example.com/namespace"], ["people"]);
    // kubectl sees the same user.
    let mut kubeconfig =
        Kubeconfig::from_yaml(&kubeconfig_of(&host, name, "kubeconfig").await).unwrap();
    kubeconfig.auth_infos[0].auth_info = Some(bearer(&token("people", "alice").await));
    let alice_kubeconfig = server.data_dir.path().join("alice.kubeconfig");
    std::fs::write(&alice_kubeconfig, serde_json::to_vec(&kubeconfig).unwrap()).unwrap();
    for binary in kubectls() {
        let out = std::process::Command::new(&binary)
            .arg("--kubeconfig")
            .arg(&alice_kubeconfig)
            .args(["auth", "whoami", "-o", "json"])
            .output()
            .unwrap();
        let review: Value = serde_json::from_str(&check(&binary, &out)).unwrap();
        let info = &review["status"]["userInfo"];
        assert_eq!(info["username"], "idp:alice", "{}", binary.display());
        assert_eq!(
            info["extra"]["example.com/namespace"],
            json!(["people"]),
            "{}",
            binary.display()
        );
    }
    // The claim rule refuses another namespace's tokens, the user rule mallory: 401.
    for (namespace, account) in [("robots", "r2"), ("people", "mallory")] {
        let refused = connect(&server, &path, &bearer(&token(namespace, account).await)).await;
        assert_eq!(
            status(&refused, "GET", "/api", None).await,
            401,
            "{namespace}/{account}"
        );
    }

    // What the schema can tell is refused with 422; expressions that do not compile show
    // on the ControlPlane, and the control plane keeps its settings.
    let control_planes = control_planes(&host);
    let patch = |jwt: Value| {
        let control_planes = control_planes.clone();
        async move {
            control_planes
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"authentication": {"jwt": [jwt]}}})),
                )
                .await
        }
    };
    let mut both = mappings.clone();
    both["username"]["claim"] = json!("sub");
    let Err(kube::Error::Api(both)) = patch(jwt(both)).await else {
        panic!("claim and expression were accepted together")
    };
    assert_eq!(both.code, 422);
    assert!(
        both.message
            .contains("claim and expression can't both be set"),
        "{}",
        both.message
    );
    let mut broken = mappings;
    broken["username"]["expression"] = json!("claims.sub +");
    patch(jwt(broken)).await.unwrap();
    let started = Instant::now();
    let message = loop {
        let cp = control_planes.get(name).await.unwrap();
        let synced = condition(&cp, "Synced").cloned().unwrap_or_default();
        if synced["status"] == "False" {
            break synced["message"].as_str().unwrap_or_default().to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            cp.data["status"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        message.contains("spec.authentication.jwt[0].claimMappings.username.expression")
            && message.contains("compilation failed"),
        "{message}"
    );
    let me = Api::<SelfSubjectReview>::all(alice)
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    let user = me.status.unwrap().user_info.unwrap();
    assert_eq!(user.username.as_deref(), Some("idp:alice"));
}
