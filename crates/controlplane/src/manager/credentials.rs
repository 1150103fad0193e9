//! Credentials of the control planes: each tenant's own CA (kept in a Secret of its
//! namespace on the hosting API, so it survives restarts), the admin client certificates
//! it signs, and the kubeconfigs that carry them.

use crate::pki::{CertificateAuthority, CertifiedKey, PkiError};
use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{json, Value};

/// The Secret (in `<cp>-system`) holding a tenant's CA, with keys `ca.crt` and `ca.key`.
pub const CA_SECRET: &str = "k8s-certs";

/// The admin user of a tenant's kubeconfig, as KubeFlex names it; in `system:masters`.
pub const ADMIN_USER: &str = "kubernetes-admin";
pub const ADMIN_GROUP: &str = "system:masters";

/// A kubeconfig with one cluster, user and context (JSON, which kubectl and every client
/// read as YAML), authenticating with a client certificate.
pub fn kubeconfig(
    names: &ContextNames,
    server: &str,
    server_ca_pem: &str,
    client: &CertifiedKey,
) -> Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": names.cluster, "cluster": {
            "server": server,
            "certificate-authority-data": b64(server_ca_pem),
        }}],
        "users": [{"name": names.user, "user": {
            "client-certificate-data": b64(&client.cert_pem),
            "client-key-data": b64(&client.key_pem),
        }}],
        "contexts": [{"name": names.context, "context": {
            "cluster": names.cluster,
            "user": names.user,
            "namespace": "default",
        }}],
        "current-context": names.context,
        "preferences": {},
    })
}

/// The names of a kubeconfig's cluster, user and context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextNames {
    pub context: String,
    pub cluster: String,
    pub user: String,
}

impl ContextNames {
    /// KubeFlex's names for control plane `cp`: context `<cp>`, cluster `<cp>-cluster`,
    /// user `<cp>-admin`.
    pub fn of_control_plane(cp: &str) -> Self {
        ContextNames {
            context: cp.to_owned(),
            cluster: format!("{cp}-cluster"),
            user: format!("{cp}-admin"),
        }
    }
}

/// The CA kept in `secret` (keys `ca.crt` and `ca.key`), if it holds one.
pub fn ca_from_secret(secret: &Secret) -> Option<Result<CertificateAuthority, PkiError>> {
    let data = secret.data.as_ref()?;
    let field = |key: &str| String::from_utf8(data.get(key)?.0.clone()).ok();
    let (cert, key) = (field("ca.crt")?, field("ca.key")?);
    Some(CertificateAuthority::from_pem(&cert, &key))
}

/// A Secret's `stringData` holding `ca`.
pub fn ca_secret_data(ca: &CertificateAuthority) -> Value {
    json!({"ca.crt": ca.certificate.cert_pem, "ca.key": ca.certificate.key_pem})
}
