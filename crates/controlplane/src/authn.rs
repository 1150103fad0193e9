//! Authentication: who is making a request, from a bearer token or an x509 client
//! certificate (CN = user, O = groups), checked against one control plane's credentials,
//! so a credential of one control plane means nothing to another.

use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
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
}

/// At most this many verified chains are remembered per control plane.
const VERIFIED_CHAINS: usize = 1024;

impl Authenticator {
    /// Accepts `token` as `user` (bearer tokens of kubeconfigs and bootstrap tokens).
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

    /// The user a request authenticates as: a valid client certificate wins, then a bearer
    /// token (`Authorization: Bearer <token>`). `None`: not authenticated.
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
}
