//! Many control planes behind one listener: each tenant at `/clusters/<name>/`, with
//! credentials no other control plane accepts, added and removed while serving.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kflex_controlplane::authn::{Authenticator, User};
use kflex_controlplane::pki::CertificateAuthority;
use kflex_controlplane::{ControlPlane, Router};
use kflex_storage_backends::sqlite::{SqliteOptions, SqliteStore};
use kube::api::{Api, ListParams, PostParams};
use std::sync::Arc;

struct Tenant {
    ca: CertificateAuthority,
    token: String,
}

async fn control_plane(dir: &std::path::Path, name: &str) -> (Arc<ControlPlane>, Tenant) {
    let ca = CertificateAuthority::generate(&format!("{name}-ca")).unwrap();
    let token = format!("token-of-{name}");
    let mut authn = Authenticator::default();
    authn.add_client_ca(&ca.certificate.cert_der).unwrap();
    authn.add_token(
        token.clone(),
        User {
            name: format!("{name}-admin"),
            uid: String::new(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        },
    );
    let store = SqliteStore::open(dir.join(format!("{name}.db")), SqliteOptions::default())
        .await
        .unwrap();
    (
        ControlPlane::start(name, Arc::new(store), authn)
            .await
            .unwrap(),
        Tenant { ca, token },
    )
}

fn client(
    url: &str,
    server_ca: &CertificateAuthority,
    auth: Result<&str, &CertificateAuthority>,
) -> kube::Client {
    let mut config = kube::Config::new(url.parse().unwrap());
    config.root_cert = Some(vec![server_ca.certificate.cert_der.to_vec()]);
    match auth {
        Ok(token) => config.auth_info.token = Some(token.to_string().into()),
        Err(ca) => {
            let cert = ca.client_certificate("alice", &["system:masters"]).unwrap();
            config.auth_info.client_certificate_data = Some(base64(&cert.cert_pem));
            config.auth_info.client_key_data = Some(base64(&cert.key_pem).into());
        }
    }
    kube::Client::try_from(config).unwrap()
}

fn base64(text: &str) -> String {
    use k8s_openapi::ByteString;
    let encoded = serde_json::to_value(ByteString(text.as_bytes().to_vec())).unwrap();
    encoded.as_str().unwrap().to_owned()
}

async fn namespaces(client: &kube::Client) -> Result<usize, u16> {
    match Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(list) => Ok(list.items.len()),
        Err(kube::Error::Api(status)) => Err(status.code),
        Err(other) => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn tenants_are_isolated_and_come_and_go() {
    let dir = tempfile::tempdir().unwrap();
    let (host, _) = control_plane(dir.path(), "host").await;
    let (a, tenant_a) = control_plane(dir.path(), "a").await;
    let (b, tenant_b) = control_plane(dir.path(), "b").await;
    let router = Arc::new(Router::new(host));
    router.add_tenant(a);
    router.add_tenant(b);

    let served = crate::support::InProcess::serve(router.clone()).await;
    let (port, server_ca) = (served.port, &served.server_ca);
    let url = |tenant: &str| format!("https://127.0.0.1:{port}/clusters/{tenant}");

    // Each tenant's token and certificates work on it and nowhere else.
    assert_eq!(
        namespaces(&client(&url("a"), server_ca, Ok(&tenant_a.token))).await,
        Ok(4)
    );
    assert_eq!(
        namespaces(&client(&url("a"), server_ca, Err(&tenant_a.ca))).await,
        Ok(4)
    );
    assert_eq!(
        namespaces(&client(&url("b"), server_ca, Ok(&tenant_a.token))).await,
        Err(401)
    );
    assert_eq!(
        namespaces(&client(&url("b"), server_ca, Err(&tenant_a.ca))).await,
        Err(401)
    );
    let host_url = format!("https://127.0.0.1:{port}");
    assert_eq!(
        namespaces(&client(&host_url, server_ca, Ok(&tenant_b.token))).await,
        Err(401)
    );

    // Objects of one tenant are invisible to another.
    let in_a: Api<ConfigMap> =
        Api::namespaced(client(&url("a"), server_ca, Ok(&tenant_a.token)), "default");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("only-in-a".into());
    in_a.create(&PostParams::default(), &cm).await.unwrap();
    let in_b: Api<ConfigMap> =
        Api::namespaced(client(&url("b"), server_ca, Ok(&tenant_b.token)), "default");
    assert!(in_b.get_opt("only-in-a").await.unwrap().is_none());

    // A tenant removed while serving is gone at once; the others are untouched.
    assert!(router.remove_tenant("b").is_some());
    assert_eq!(
        namespaces(&client(&url("b"), server_ca, Ok(&tenant_b.token))).await,
        Err(404)
    );
    assert_eq!(
        namespaces(&client(&url("a"), server_ca, Ok(&tenant_a.token))).await,
        Ok(4)
    );
    served.stop().await;
}
