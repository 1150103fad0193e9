//! Authentication: who is making a request, from a bearer token or an x509 client
//! certificate (CN = user, O = groups), checked against one control plane's credentials,
//! so a credential of one control plane means nothing to another.

use rustls_pki_types::{CertificateDer, UnixTime};
use std::collections::HashMap;

/// An authenticated user, as RBAC and `SelfSubjectReview` see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
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
}

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
        self.tokens.get(token).cloned()
    }

    fn certificate_user(&self, chain: &[CertificateDer<'static>]) -> Option<User> {
        let (leaf, intermediates) = chain.split_first()?;
        if self.client_cas.is_empty() {
            return None;
        }
        let cert = webpki::EndEntityCert::try_from(leaf).ok()?;
        cert.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.client_cas,
            intermediates,
            UnixTime::now(),
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
        Some(with_authenticated(User {
            name,
            uid: String::new(),
            groups,
        }))
    }
}

fn with_authenticated(mut user: User) -> User {
    if !user.groups.iter().any(|g| g == AUTHENTICATED) {
        user.groups.push(AUTHENTICATED.to_owned());
    }
    user
}
