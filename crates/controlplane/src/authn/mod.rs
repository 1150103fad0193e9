//! Authentication: who is making a request, checked against one control plane's
//! credentials, so a credential of one control plane means nothing to another.
//!
//! The authenticators run in upstream's order and the first that accepts wins: x509 client
//! certificates (CN = user, O = groups), then bearer tokens: static tokens, ServiceAccount
//! tokens ([`crate::sa_tokens`]), bootstrap tokens ([`bootstrap_tokens`]) and the JWT
//! (OIDC) authenticators of the control plane's settings ([`jwt`]). A request that
//! presents credentials none of them accepts gets 401; one without credentials is served
//! as `system:anonymous` when the settings allow it, as upstream's `--anonymous-auth`.

pub mod bootstrap_tokens;
pub mod jwt;

use crate::controlplane::ControlPlane;
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// An authenticated user, as RBAC and `SelfSubjectReview` see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    /// Extra attributes (`authentication.kubernetes.io/credential-id`, `.../pod-name`, ...).
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

/// The group every authenticated user belongs to.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The user of a request without credentials, when anonymous requests are enabled.
pub const ANONYMOUS: &str = "system:anonymous";
/// The group of that user.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";

/// Why credentials could not be accepted (logged; the client only sees 401).
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("invalid client CA certificate: {0}")]
    BadCa(String),
}

/// One control plane's credentials: static bearer tokens and the CA that signs its client
/// certificates.
#[derive(Debug, Default)]
pub struct Authenticator {
    tokens: HashMap<String, User>,
    client_cas: Vec<rustls_pki_types::TrustAnchor<'static>>,
    /// Chains already verified, by digest, with their user and the leaf's expiry: a
    /// client's requests verify its certificate once, as upstream's x509 authenticator
    /// caches verifications.
    verified: Mutex<HashMap<[u8; 32], (User, UnixTime)>>,
    /// What the control plane's ControlPlane object sets; replaced while it serves.
    settings: RwLock<Arc<Settings>>,
}

/// The authentication settings of a control plane that its ControlPlane object holds
/// (`spec.authentication`), applied on each reconcile without a restart.
#[derive(Debug, Default)]
pub struct Settings {
    /// Whether a request without credentials is served as [`ANONYMOUS`] (refused when not).
    pub anonymous: bool,
    /// The JWT (OIDC) authenticators, tried in order after the built-in ones.
    pub jwt: Vec<Arc<jwt::JwtAuthenticator>>,
}

/// At most this many verified chains are remembered per control plane.
const VERIFIED_CHAINS: usize = 1024;

impl Authenticator {
    /// Accepts `token` as `user` (bearer tokens of kubeconfigs, and kflex's own).
    pub fn add_token(&mut self, token: impl Into<String>, user: User) {
        self.tokens.insert(token.into(), with_authenticated(user));
    }

    /// Trusts client certificates signed by the CA certificate `ca_der`.
    pub fn add_client_ca(&mut self, ca_der: &CertificateDer<'_>) -> Result<(), CredentialError> {
        let anchor = webpki::anchor_from_trusted_cert(ca_der)
            .map_err(|e| CredentialError::BadCa(format!("{e:?}")))?;
        self.client_cas.push(anchor.to_owned());
        Ok(())
    }

    /// The current settings.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the settings. A JWT authenticator whose configuration did not change is
    /// kept, with the keys it fetched.
    pub fn configure(&self, anonymous: bool, jwt: &[jwt::JwtConfig]) -> Result<(), jwt::JwtError> {
        let current = self.settings();
        let jwt = jwt
            .iter()
            .map(
                |config| match current.jwt.iter().find(|a| a.config() == config) {
                    Some(kept) => Ok(kept.clone()),
                    None => jwt::JwtAuthenticator::new(config.clone()).map(Arc::new),
                },
            )
            .collect::<Result<Vec<_>, _>>()?;
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(Settings { anonymous, jwt });
        Ok(())
    }

    /// The user a request authenticates as: a valid client certificate wins, then a static
    /// bearer token (`Authorization: Bearer <token>`). `None`: not authenticated by these.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        peer_certs: &[CertificateDer<'static>],
    ) -> Option<User> {
        if let Some(user) = self.certificate_user(peer_certs) {
            return Some(user);
        }
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        self.token_user(token)
    }

    /// The user of a static bearer token (`TokenReview` asks it too).
    pub fn token_user(&self, token: &str) -> Option<User> {
        self.tokens.get(token).cloned()
    }

    fn certificate_user(&self, chain: &[CertificateDer<'static>]) -> Option<User> {
        if chain.is_empty() || self.client_cas.is_empty() {
            return None;
        }
        let digest = chain_digest(chain);
        let now = UnixTime::now();
        let cached = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&digest)
            .cloned();
        if let Some((user, _)) = cached.filter(|(_, expires)| now.as_secs() < expires.as_secs()) {
            return Some(user);
        }
        let (user, expires) = self.verify(chain, now)?;
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= VERIFIED_CHAINS {
            verified.clear();
        }
        verified.insert(digest, (user.clone(), expires));
        Some(user)
    }

    /// Verifies a chain against the client CAs: its user, and when its leaf expires.
    fn verify(&self, chain: &[CertificateDer<'static>], now: UnixTime) -> Option<(User, UnixTime)> {
        let (leaf, intermediates) = chain.split_first()?;
        let cert = webpki::EndEntityCert::try_from(leaf).ok()?;
        cert.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.client_cas,
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .ok()?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf).ok()?;
        let subject = parsed.subject();
        let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
        let groups = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_owned))
            .collect();
        let expires = UnixTime::since_unix_epoch(Duration::from_secs(
            parsed.validity().not_after.timestamp().max(0) as u64,
        ));
        let user = with_authenticated(User {
            name,
            uid: String::new(),
            groups,
            extra: Default::default(),
        });
        Some((user, expires))
    }
}

/// The user a request to `cp` authenticates as, with every authenticator in turn (see
/// the module's doc); `None` when it must be refused with 401.
pub async fn authenticate_request(
    cp: &ControlPlane,
    authorization: Option<&str>,
    peer_certs: &[CertificateDer<'static>],
) -> Option<User> {
    let authenticator = cp.authenticator();
    if let Some(user) = authenticator.authenticate(authorization, peer_certs) {
        return Some(user);
    }
    // An empty bearer token is no credential, as upstream's bearer token authenticator.
    let token = authorization
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if let Some(token) = token {
        if let Some(user) = crate::sa_tokens::authenticate_request(cp, token).await {
            return Some(user);
        }
        return audience_agnostic_user(cp, token).await;
    }
    // Credentials that no authenticator accepts are refused even when anonymous requests
    // are allowed, as upstream's authenticators fail on them rather than pass.
    if !peer_certs.is_empty() || !authenticator.settings().anonymous {
        return None;
    }
    Some(User {
        name: ANONYMOUS.to_owned(),
        groups: vec![UNAUTHENTICATED.to_owned()],
        ..Default::default()
    })
}

/// The user of a bearer token of an authenticator that accepts the API audiences only
/// (static and bootstrap tokens, and the JWT authenticators, which check their own
/// audiences): everything but ServiceAccount tokens. `TokenReview` asks it too.
pub async fn audience_agnostic_user(cp: &ControlPlane, token: &str) -> Option<User> {
    if let Some(user) = cp.authenticator().token_user(token) {
        return Some(user);
    }
    if let Some(user) = bootstrap_tokens::authenticate(cp, token).await {
        return Some(with_authenticated(user));
    }
    let settings = cp.authenticator().settings();
    for authenticator in &settings.jwt {
        match authenticator.authenticate(token).await {
            Ok(user) => return Some(with_authenticated(user)),
            Err(jwt::JwtError::OtherIssuer) => {}
            Err(error @ jwt::JwtError::Fetch(_)) => {
                tracing::warn!(control_plane = cp.name(), %error, "JWT authenticator");
            }
            // A token of the issuer that its checks, rules or mappings refuse is logged
            // with why, as upstream logs failed authentications.
            Err(error @ jwt::JwtError::Invalid(_)) => {
                tracing::info!(control_plane = cp.name(), %error, "JWT refused");
            }
            Err(error) => {
                tracing::debug!(control_plane = cp.name(), %error, "JWT refused");
            }
        }
    }
    None
}

/// A digest of a certificate chain (each certificate length-prefixed).
fn chain_digest(chain: &[CertificateDer<'_>]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for cert in chain {
        hasher.update((cert.len() as u64).to_be_bytes());
        hasher.update(cert.as_ref());
    }
    hasher.finalize().into()
}

fn with_authenticated(mut user: User) -> User {
    if !user.groups.iter().any(|g| g == AUTHENTICATED) {
        user.groups.push(AUTHENTICATED.to_owned());
    }
    user
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::CertificateAuthority;

    #[test]
    fn certificates_of_the_client_ca_authenticate_repeatedly_and_others_never() {
        let ca = CertificateAuthority::generate("ca").unwrap();
        let other = CertificateAuthority::generate("other").unwrap();
        let mut authn = Authenticator::default();
        authn.add_client_ca(&ca.certificate.cert_der).unwrap();
        let alice = vec![ca.client_certificate("alice", &["devs"]).unwrap().cert_der];
        for _ in 0..2 {
            let user = authn
                .authenticate(None, &alice)
                .expect("alice authenticates");
            assert_eq!(user.name, "alice");
            assert_eq!(user.groups, ["devs", AUTHENTICATED]);
        }
        let mallory = vec![
            other
                .client_certificate("alice", &["devs"])
                .unwrap()
                .cert_der,
        ];
        assert!(authn.authenticate(None, &mallory).is_none());
        assert!(authn.authenticate(None, &mallory).is_none());
    }

    #[tokio::test]
    async fn anonymous_requests_only_when_enabled_and_failed_credentials_never() {
        use kflex_storage_backends::sqlite::{SqliteOptions, SqliteStore};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("db"), SqliteOptions::default())
            .await
            .unwrap();
        let ca = CertificateAuthority::generate("ca").unwrap();
        let other = CertificateAuthority::generate("other").unwrap();
        let mut authn = Authenticator::default();
        authn.add_client_ca(&ca.certificate.cert_der).unwrap();
        let cp = ControlPlane::start("t", Arc::new(store), authn)
            .await
            .unwrap();
        let foreign = vec![other.client_certificate("alice", &[]).unwrap().cert_der];
        let names = |user: Option<User>| user.map(|u| (u.name, u.groups));
        let anonymous = Some((ANONYMOUS.to_owned(), vec![UNAUTHENTICATED.to_owned()]));
        for enabled in [false, true] {
            cp.authenticator().configure(enabled, &[]).unwrap();
            let expected = if enabled { anonymous.clone() } else { None };
            assert_eq!(names(authenticate_request(&cp, None, &[]).await), expected);
            assert_eq!(
                names(authenticate_request(&cp, Some("Bearer "), &[]).await),
                expected
            );
            assert_eq!(
                names(authenticate_request(&cp, Some("Basic YTpi"), &[]).await),
                expected
            );
            assert_eq!(
                authenticate_request(&cp, Some("Bearer abcdef.0123456789abcdef"), &[]).await,
                None
            );
            assert_eq!(authenticate_request(&cp, None, &foreign).await, None);
        }
    }
}
