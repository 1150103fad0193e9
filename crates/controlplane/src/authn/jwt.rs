//! JWT (OpenID Connect) authenticators, as upstream's `AuthenticationConfiguration`
//! `jwt` entries: a bearer token that is a JWT of the configured issuer, signed by one of
//! the issuer's keys, for one of the configured audiences and within its validity,
//! authenticates as the user its claims name (username, groups and uid claims, with
//! prefixes).
//!
//! The issuer's keys are found as OpenID discovery says (`<url>/.well-known/openid-configuration`,
//! or `discoveryURL`, then its `jwks_uri`, both over HTTPS trusting `certificateAuthority`
//! or the system's roots). Nothing is fetched until the first token of the issuer comes;
//! the keys are then kept, and fetched again when a token's key is not among them, at
//! most once per [`REFRESH_INTERVAL`], so a flood of forged tokens makes no flood of
//! requests. Idle control planes fetch nothing.
//!
//! Time checks follow go-oidc, which upstream uses: `exp` exactly, `nbf` with
//! [`NOT_BEFORE_SKEW`] of tolerance.

use super::User;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The shortest time between two fetches of an issuer's keys.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// How far in the future a token's `nbf` may be (go-oidc's allowance for clock skew).
pub const NOT_BEFORE_SKEW: i64 = 300;
/// How long a fetch of a discovery document or key set may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest discovery document or key set read.
const MAX_DOCUMENT: usize = 1 << 20;
/// The signature algorithms accepted: asymmetric ones only, as upstream.
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// One JWT authenticator's configuration (`spec.authentication.jwt[]` of a ControlPlane),
/// in upstream's `AuthenticationConfiguration` vocabulary.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JwtConfig {
    pub issuer: IssuerConfig,
    #[serde(default)]
    pub claim_mappings: ClaimMappings,
}

/// Who issues the tokens and for whom.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IssuerConfig {
    /// The issuer: tokens' `iss` must be exactly this HTTPS URL.
    pub url: String,
    /// Where the discovery document is, when not under `url` (its `issuer` must still be
    /// `url`).
    #[serde(
        default,
        rename = "discoveryURL",
        skip_serializing_if = "Option::is_none"
    )]
    pub discovery_url: Option<String>,
    /// Tokens' `aud` must name one of these (the OIDC client ids).
    pub audiences: Vec<String>,
    /// `MatchAny`, the one policy upstream defines (a token's `aud` must name one of
    /// `audiences`): required with several audiences, optional with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience_match_policy: Option<String>,
    /// PEM CA certificates to trust for the issuer's HTTPS; the system's roots when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
}

/// Which claims make the user.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimMappings {
    /// The username: claim `sub` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<PrefixedClaim>,
    /// The groups: none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<PrefixedClaim>,
    /// The uid: none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<Claim>,
}

/// A claim whose value is prefixed.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PrefixedClaim {
    pub claim: String,
    /// Prepended to the value. For the username, when absent: `<issuer url>#` unless the
    /// claim is `email` (upstream's `--oidc-username-prefix` default); for groups, none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// A claim.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Claim {
    pub claim: String,
}

/// Why a JWT does not authenticate, or a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// Not a JWT, or one of another issuer: for the next authenticator.
    #[error("not a token of this issuer")]
    OtherIssuer,
    #[error("fetching the issuer's keys: {0}")]
    Fetch(String),
    #[error("no key of the issuer verifies the token")]
    Signature,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// The audience match policy: a token's `aud` names one of the audiences.
const MATCH_ANY: &str = "MatchAny";

impl JwtConfig {
    /// What is wrong with the configuration, each as `<field>: <message>` with fields
    /// under `path`; empty when it is usable.
    pub fn problems(&self, path: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let mut problem = |field: &str, message: String| {
            problems.push(format!("{path}.{field}: {message}"));
        };
        let issuer = &self.issuer;
        if let Err(message) = https_url(&issuer.url) {
            problem("issuer.url", message);
        }
        match &issuer.discovery_url {
            Some(url) if url == &issuer.url => problem(
                "issuer.discoveryURL",
                "must be different from issuer.url".into(),
            ),
            Some(url) => {
                if let Err(message) = https_url(url) {
                    problem("issuer.discoveryURL", message);
                }
            }
            // The issuer of every control plane's ServiceAccount tokens: only a
            // discoveryURL says which control plane's keys to trust.
            None if issuer.url == crate::sa_tokens::ISSUER => problem(
                "issuer.url",
                format!(
                    "{} is the ServiceAccount token issuer of every kflex control plane: \
                     set issuer.discoveryURL to the control plane whose keys to trust",
                    crate::sa_tokens::ISSUER
                ),
            ),
            None => {}
        }
        if issuer.audiences.is_empty() {
            problem(
                "issuer.audiences",
                "at least one audience is required".into(),
            );
        }
        if issuer.audiences.iter().any(String::is_empty) {
            problem("issuer.audiences", "audiences may not be empty".into());
        }
        for (i, audience) in issuer.audiences.iter().enumerate() {
            if issuer.audiences[..i].contains(audience) {
                problem(
                    &format!("issuer.audiences[{i}]"),
                    format!("Duplicate value: {audience:?}"),
                );
            }
        }
        // Upstream's rules: several audiences need MatchAny, one allows it or nothing.
        let policy = issuer.audience_match_policy.as_deref().unwrap_or("");
        if issuer.audiences.len() > 1 && policy != MATCH_ANY {
            problem(
                "issuer.audienceMatchPolicy",
                format!(
                    "Invalid value: {policy:?}: audienceMatchPolicy must be MatchAny for multiple audiences"
                ),
            );
        }
        if issuer.audiences.len() == 1 && !policy.is_empty() && policy != MATCH_ANY {
            problem(
                "issuer.audienceMatchPolicy",
                format!(
                    "Invalid value: {policy:?}: audienceMatchPolicy must be empty or MatchAny for single audience"
                ),
            );
        }
        if let Some(pem) = &issuer.certificate_authority {
            if let Err(message) = roots(pem) {
                problem("issuer.certificateAuthority", message);
            }
        }
        let mappings = &self.claim_mappings;
        if mappings
            .username
            .as_ref()
            .is_some_and(|u| u.claim.is_empty())
        {
            problem("claimMappings.username.claim", "may not be empty".into());
        }
        if issuer.url == crate::sa_tokens::ISSUER && self.username_prefix().is_empty() {
            problem(
                "claimMappings.username.prefix",
                "may not be empty for the ServiceAccount token issuer: its users would pass for \
                 this control plane's ServiceAccounts"
                    .into(),
            );
        }
        if mappings.groups.as_ref().is_some_and(|g| g.claim.is_empty()) {
            problem("claimMappings.groups.claim", "may not be empty".into());
        }
        if mappings.uid.as_ref().is_some_and(|u| u.claim.is_empty()) {
            problem("claimMappings.uid.claim", "may not be empty".into());
        }
        problems
    }

    fn username_claim(&self) -> &str {
        self.claim_mappings
            .username
            .as_ref()
            .map_or("sub", |u| u.claim.as_str())
    }

    /// The username prefix, with upstream's default.
    fn username_prefix(&self) -> String {
        match self
            .claim_mappings
            .username
            .as_ref()
            .and_then(|u| u.prefix.clone())
        {
            Some(prefix) => prefix,
            None if self.username_claim() == "email" => String::new(),
            None => format!("{}#", self.issuer.url),
        }
    }
}

/// `Ok` for an `https://` URL with a host and no user info, query or fragment.
fn https_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!("{url:?} must use the https scheme"));
    }
    match uri.authority() {
        None => return Err(format!("{url:?} has no host")),
        Some(authority) if authority.as_str().contains('@') => {
            return Err(format!("{url:?} may not hold user info"))
        }
        Some(_) => {}
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(format!("{url:?} may not have a query or fragment"));
    }
    Ok(())
}

/// The root store of PEM certificates `pem`.
fn roots(pem: &str) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("not PEM certificates: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("not a CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(roots)
}

/// One JWT authenticator: its configuration, the TLS settings of its fetches, and the keys
/// fetched so far.
pub struct JwtAuthenticator {
    config: JwtConfig,
    tls: rustls::ClientConfig,
    keys: RwLock<Arc<Vec<Jwk>>>,
    /// When the keys were last fetched (or tried), held while fetching so that concurrent
    /// requests make one fetch.
    fetched: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("issuer", &self.config.issuer.url)
            .finish_non_exhaustive()
    }
}

impl JwtAuthenticator {
    /// An authenticator for `config` (which [`JwtConfig::problems`] should accept); fetches
    /// nothing yet.
    pub fn new(config: JwtConfig) -> Result<Self, JwtError> {
        if let Some(problem) = config.problems("jwt").into_iter().next() {
            return Err(JwtError::Config(problem));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| JwtError::Config(e.to_string()))?;
        let tls = match &config.issuer.certificate_authority {
            Some(pem) => builder
                .with_root_certificates(roots(pem).map_err(JwtError::Config)?)
                .with_no_client_auth(),
            None => {
                use rustls_platform_verifier::BuilderVerifierExt as _;
                builder
                    .with_platform_verifier()
                    .map_err(|e| JwtError::Config(format!("system roots: {e}")))?
                    .with_no_client_auth()
            }
        };
        Ok(JwtAuthenticator {
            config,
            tls,
            keys: RwLock::default(),
            fetched: tokio::sync::Mutex::new(None),
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &JwtConfig {
        &self.config
    }

    /// The user `token` authenticates as. [`JwtError::OtherIssuer`] for what is not a JWT
    /// of this issuer (nothing is fetched for those).
    pub async fn authenticate(&self, token: &str) -> Result<User, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::OtherIssuer)?;
        if unverified_issuer(token).as_deref() != Some(self.config.issuer.url.as_str()) {
            return Err(JwtError::OtherIssuer);
        }
        if !ALGORITHMS.contains(&header.alg) {
            return Err(JwtError::Invalid(format!(
                "signature algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let claims = match self.verify(token, &header) {
            Err(JwtError::Signature) => {
                self.refresh().await?;
                self.verify(token, &header)?
            }
            other => other?,
        };
        self.user(&claims, jiff::Timestamp::now().as_second())
    }

    /// The token's claims, verified with a key already fetched.
    fn verify(&self, token: &str, header: &jsonwebtoken::Header) -> Result<Value, JwtError> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer.url]);
        validation.set_audience(&self.config.issuer.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = 0;
        validation.validate_nbf = false;
        let candidates = keys.iter().filter(|jwk| {
            let kid_matches = match (&header.kid, &jwk.common.key_id) {
                (Some(wanted), Some(kid)) => wanted == kid,
                (Some(_), None) => false,
                (None, _) => true,
            };
            let alg_matches = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok())
                .is_none_or(|alg| alg == header.alg);
            kid_matches && alg_matches
        });
        for jwk in candidates {
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            match jsonwebtoken::decode::<Value>(token, &key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(error) => match error.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidSignature
                    | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
                    | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat
                    | jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey
                    | jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_) => continue,
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                        return Err(JwtError::Invalid("the token has expired".into()))
                    }
                    jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                        return Err(JwtError::Invalid(format!(
                            "the token's audience is none of {:?}",
                            self.config.issuer.audiences
                        )))
                    }
                    _ => return Err(JwtError::Invalid(error.to_string())),
                },
            }
        }
        Err(JwtError::Signature)
    }

    /// Fetches the issuer's keys again unless they were fetched within
    /// [`REFRESH_INTERVAL`] (then whatever that fetch brought is used).
    async fn refresh(&self) -> Result<(), JwtError> {
        let mut fetched = self.fetched.lock().await;
        if fetched.is_some_and(|at| at.elapsed() < REFRESH_INTERVAL) {
            return Ok(());
        }
        *fetched = Some(Instant::now());
        let keys = self.fetch_keys().await?;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        Ok(())
    }

    /// The issuer's keys, from its discovery document's `jwks_uri`. Keys of kinds this
    /// authenticator cannot use are left out.
    async fn fetch_keys(&self) -> Result<Vec<Jwk>, JwtError> {
        let issuer = &self.config.issuer;
        let discovery_url = issuer.discovery_url.clone().unwrap_or_else(|| {
            format!(
                "{}/.well-known/openid-configuration",
                issuer.url.trim_end_matches('/')
            )
        });
        let discovery = self.get_json(&discovery_url).await?;
        if discovery["issuer"] != issuer.url.as_str() {
            return Err(JwtError::Fetch(format!(
                "the discovery document at {discovery_url} is for issuer {}, not {}",
                discovery["issuer"], issuer.url
            )));
        }
        let jwks_uri = discovery["jwks_uri"].as_str().ok_or_else(|| {
            JwtError::Fetch(format!(
                "the discovery document at {discovery_url} has no jwks_uri"
            ))
        })?;
        https_url(jwks_uri).map_err(JwtError::Fetch)?;
        let set = self.get_json(jwks_uri).await?;
        let keys: Vec<Jwk> = set["keys"]
            .as_array()
            .ok_or_else(|| JwtError::Fetch(format!("{jwks_uri} is not a JSON Web Key Set")))?
            .iter()
            .filter(|key| key["use"].as_str().is_none_or(|u| u == "sig"))
            .filter_map(|key| serde_json::from_value(key.clone()).ok())
            .collect();
        tracing::info!(issuer = %issuer.url, keys = keys.len(), "fetched the issuer's keys");
        Ok(keys)
    }

    /// The JSON document at `url`, over HTTPS.
    async fn get_json(&self, url: &str) -> Result<Value, JwtError> {
        let fail = |message: String| JwtError::Fetch(format!("GET {url}: {message}"));
        let uri: http::Uri = url.parse().map_err(|e| fail(format!("{e}")))?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(self.tls.clone())
            .https_only()
            .enable_http1()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        let request = http::Request::get(uri)
            .header(http::header::ACCEPT, "application/json")
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|e| fail(e.to_string()))?;
        let fetch = async {
            let response = client
                .request(request)
                .await
                .map_err(|e| fail(format!("{e:?}")))?;
            if response.status() != http::StatusCode::OK {
                return Err(fail(format!("status {}", response.status())));
            }
            let body = http_body_util::Limited::new(response.into_body(), MAX_DOCUMENT)
                .collect()
                .await
                .map_err(|e| fail(e.to_string()))?
                .to_bytes();
            serde_json::from_slice(&body).map_err(|e| fail(format!("not JSON: {e}")))
        };
        tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .map_err(|_| fail(format!("no answer within {FETCH_TIMEOUT:?}")))?
    }

    /// The user of verified `claims` at `now` (seconds since the epoch).
    fn user(&self, claims: &Value, now: i64) -> Result<User, JwtError> {
        if claims["nbf"]
            .as_i64()
            .is_some_and(|nbf| nbf > now + NOT_BEFORE_SKEW)
        {
            return Err(JwtError::Invalid("the token is not valid yet".into()));
        }
        let claim = self.config.username_claim();
        let username = claims[claim]
            .as_str()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                JwtError::Invalid(format!("claim {claim:?} is not a non-empty string"))
            })?;
        if claim == "email" {
            match &claims["email_verified"] {
                Value::Null | Value::Bool(true) => {}
                Value::Bool(false) => {
                    return Err(JwtError::Invalid(format!(
                        "email {username:?} is not verified"
                    )))
                }
                _ => {
                    return Err(JwtError::Invalid(
                        "claim email_verified is not a boolean".into(),
                    ))
                }
            }
        }
        let mut groups = Vec::new();
        if let Some(mapping) = &self.config.claim_mappings.groups {
            let prefix = mapping.prefix.as_deref().unwrap_or_default();
            match &claims[mapping.claim.as_str()] {
                Value::Null => {}
                Value::String(group) => groups.push(format!("{prefix}{group}")),
                Value::Array(values) => {
                    for value in values {
                        let group = value.as_str().ok_or_else(|| {
                            JwtError::Invalid(format!(
                                "claim {:?} holds a non-string",
                                mapping.claim
                            ))
                        })?;
                        groups.push(format!("{prefix}{group}"));
                    }
                }
                _ => {
                    return Err(JwtError::Invalid(format!(
                        "claim {:?} is neither a string nor an array of strings",
                        mapping.claim
                    )))
                }
            }
        }
        let uid = match &self.config.claim_mappings.uid {
            Some(mapping) => claims[mapping.claim.as_str()]
                .as_str()
                .ok_or_else(|| {
                    JwtError::Invalid(format!("claim {:?} is not a string", mapping.claim))
                })?
                .to_owned(),
            None => String::new(),
        };
        Ok(User {
            name: format!("{}{username}", self.config.username_prefix()),
            uid,
            groups,
            extra: Default::default(),
        })
    }
}

/// The `iss` a JWT claims, before any check.
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims["iss"].as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const ISSUER: &str = "https://issuer.example";
    /// A throwaway RSA key made for these tests (PKCS#1), and its modulus (base64url).
    const RSA_KEY: &str = include_str!("testdata/rsa-test-key.pem");
    const RSA_N: &str = include_str!("testdata/rsa-test-key.n");

    fn es256(kid: &str) -> (EncodingKey, Jwk) {
        let pair = rcgen::KeyPair::generate().unwrap();
        let point = pair.public_key_raw();
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
                         "x": b64(&point[1..33]), "y": b64(&point[33..])});
        (
            EncodingKey::from_ec_der(&pair.serialize_der()),
            serde_json::from_value(jwk).unwrap(),
        )
    }

    fn rs256(kid: &str) -> (EncodingKey, Jwk) {
        let jwk = json!({"kty": "RSA", "kid": kid, "alg": "RS256", "n": RSA_N.trim(), "e": "AQAB"});
        (
            EncodingKey::from_rsa_der(
                rustls_pki_types::PrivatePkcs1KeyDer::from_pem_slice(RSA_KEY.as_bytes())
                    .unwrap()
                    .secret_pkcs1_der(),
            ),
            serde_json::from_value(jwk).unwrap(),
        )
    }

    fn config(mappings: ClaimMappings) -> JwtConfig {
        let ca = crate::pki::CertificateAuthority::generate("issuer-ca").unwrap();
        JwtConfig {
            issuer: IssuerConfig {
                url: ISSUER.into(),
                discovery_url: None,
                audiences: vec!["kflex".into(), "other".into()],
                audience_match_policy: Some("MatchAny".into()),
                certificate_authority: Some(ca.certificate.cert_pem.clone()),
            },
            claim_mappings: mappings,
        }
    }

    /// An authenticator holding `keys`, as if it had just fetched them (so it fetches
    /// nothing more within the refresh interval).
    fn authenticator(mappings: ClaimMappings, keys: Vec<Jwk>) -> JwtAuthenticator {
        let authenticator = JwtAuthenticator::new(config(mappings)).unwrap();
        *authenticator.keys.write().unwrap() = Arc::new(keys);
        *authenticator.fetched.try_lock().unwrap() = Some(Instant::now());
        authenticator
    }

    fn sign(key: &EncodingKey, alg: Algorithm, kid: &str, claims: Value) -> String {
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    fn claims(extra: Value) -> Value {
        let now = jiff::Timestamp::now().as_second();
        let mut claims =
            json!({"iss": ISSUER, "sub": "alice", "aud": ["kflex"], "exp": now + 600, "iat": now});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    }

    #[tokio::test]
    async fn tokens_signed_by_the_issuers_keys_authenticate_with_mapped_claims() {
        let (ec, ec_jwk) = es256("ec");
        let (rsa, rsa_jwk) = rs256("rsa");
        let mappings = ClaimMappings {
            username: None,
            groups: Some(PrefixedClaim {
                claim: "groups".into(),
                prefix: Some("oidc:".into()),
            }),
            uid: Some(Claim {
                claim: "oid".into(),
            }),
        };
        let authn = authenticator(mappings, vec![ec_jwk, rsa_jwk]);
        let token = sign(
            &ec,
            Algorithm::ES256,
            "ec",
            claims(json!({"groups": ["devs", "ops"], "oid": "u-1", "aud": "other"})),
        );
        let user = authn.authenticate(&token).await.unwrap();
        assert_eq!(user.name, format!("{ISSUER}#alice"));
        assert_eq!(user.groups, ["oidc:devs", "oidc:ops"]);
        assert_eq!(user.uid, "u-1");
        let token = sign(
            &rsa,
            Algorithm::RS256,
            "rsa",
            claims(json!({"groups": "devs", "oid": "u-2"})),
        );
        let user = authn.authenticate(&token).await.unwrap();
        assert_eq!(user.groups, ["oidc:devs"]);
    }

    #[tokio::test]
    async fn other_issuers_wrong_audiences_times_keys_and_algorithms_are_refused() {
        let (key, jwk) = es256("k");
        let (forger, _) = es256("k");
        let authn = authenticator(ClaimMappings::default(), vec![jwk]);
        let refused = |token: String| {
            let authn = &authn;
            async move { authn.authenticate(&token).await.unwrap_err() }
        };
        let now = jiff::Timestamp::now().as_second();
        assert!(matches!(
            refused("not-a-jwt".into()).await,
            JwtError::OtherIssuer
        ));
        let other = sign(
            &key,
            Algorithm::ES256,
            "k",
            claims(json!({"iss": "https://elsewhere"})),
        );
        assert!(matches!(refused(other).await, JwtError::OtherIssuer));
        let audience = sign(
            &key,
            Algorithm::ES256,
            "k",
            claims(json!({"aud": ["someone"]})),
        );
        assert!(matches!(refused(audience).await, JwtError::Invalid(_)));
        let expired = sign(&key, Algorithm::ES256, "k", claims(json!({"exp": now - 1})));
        assert!(matches!(refused(expired).await, JwtError::Invalid(_)));
        let early = claims(json!({"nbf": now + NOT_BEFORE_SKEW + 60}));
        assert!(matches!(
            refused(sign(&key, Algorithm::ES256, "k", early)).await,
            JwtError::Invalid(_)
        ));
        let skewed = claims(json!({"nbf": now + 60}));
        assert!(authn
            .authenticate(&sign(&key, Algorithm::ES256, "k", skewed))
            .await
            .is_ok());
        let forged = sign(&forger, Algorithm::ES256, "k", claims(json!({})));
        assert!(matches!(refused(forged).await, JwtError::Signature));
        let unknown = sign(&key, Algorithm::ES256, "unknown", claims(json!({})));
        assert!(matches!(refused(unknown).await, JwtError::Signature));
        let hmac = sign(
            &EncodingKey::from_secret(b"guess"),
            Algorithm::HS256,
            "k",
            claims(json!({})),
        );
        assert!(matches!(refused(hmac).await, JwtError::Invalid(_)));
        let nameless = sign(&key, Algorithm::ES256, "k", claims(json!({"sub": ""})));
        assert!(matches!(refused(nameless).await, JwtError::Invalid(_)));
    }

    #[tokio::test]
    async fn email_usernames_must_be_verified_and_are_not_prefixed() {
        let (key, jwk) = es256("k");
        let mappings = ClaimMappings {
            username: Some(PrefixedClaim {
                claim: "email".into(),
                prefix: None,
            }),
            ..Default::default()
        };
        let authn = authenticator(mappings, vec![jwk]);
        let token = |verified: Value| {
            sign(
                &key,
                Algorithm::ES256,
                "k",
                claims(json!({"email": "a@example.com", "email_verified": verified})),
            )
        };
        let user = authn.authenticate(&token(json!(true))).await.unwrap();
        assert_eq!(user.name, "a@example.com");
        assert!(authn.authenticate(&token(Value::Null)).await.is_ok());
        assert!(authn.authenticate(&token(json!(false))).await.is_err());
        assert!(authn.authenticate(&token(json!("yes"))).await.is_err());
    }

    #[test]
    fn unusable_configurations_are_named_by_field() {
        let problems = |edit: &dyn Fn(&mut JwtConfig)| {
            let mut config = config(ClaimMappings::default());
            edit(&mut config);
            config.problems("jwt[0]")
        };
        assert!(problems(&|_| {}).is_empty());
        assert_eq!(
            problems(&|c| c.issuer.url = "http://issuer.example".into()),
            ["jwt[0].issuer.url: \"http://issuer.example\" must use the https scheme"]
        );
        assert_eq!(
            problems(&|c| c.issuer.audiences.clear()),
            ["jwt[0].issuer.audiences: at least one audience is required"]
        );
        assert_eq!(
            problems(&|c| c.issuer.audience_match_policy = None),
            ["jwt[0].issuer.audienceMatchPolicy: Invalid value: \"\": audienceMatchPolicy must be MatchAny for multiple audiences"]
        );
        assert_eq!(
            problems(&|c| {
                c.issuer.audiences.truncate(1);
                c.issuer.audience_match_policy = Some("MatchExact".into());
            }),
            ["jwt[0].issuer.audienceMatchPolicy: Invalid value: \"MatchExact\": audienceMatchPolicy must be empty or MatchAny for single audience"]
        );
        assert!(problems(&|c| {
            c.issuer.audiences.truncate(1);
            c.issuer.audience_match_policy = None;
        })
        .is_empty());
        assert_eq!(
            problems(&|c| c.issuer.audiences[1] = "kflex".into()),
            ["jwt[0].issuer.audiences[1]: Duplicate value: \"kflex\""]
        );
        assert_eq!(
            problems(&|c| c.issuer.certificate_authority = Some("junk".into())),
            ["jwt[0].issuer.certificateAuthority: holds no PEM certificate"]
        );
        let service_accounts = problems(&|c| c.issuer.url = crate::sa_tokens::ISSUER.into());
        assert_eq!(service_accounts.len(), 1);
        assert!(service_accounts[0].starts_with("jwt[0].issuer.url: "));
        let unprefixed = problems(&|c| {
            c.issuer.url = crate::sa_tokens::ISSUER.into();
            c.issuer.discovery_url =
                Some("https://127.0.0.1/clusters/idp/.well-known/openid-configuration".into());
            c.claim_mappings.username = Some(PrefixedClaim {
                claim: "sub".into(),
                prefix: Some(String::new()),
            });
        });
        assert_eq!(unprefixed.len(), 1);
        assert!(unprefixed[0].starts_with("jwt[0].claimMappings.username.prefix: "));
        assert!(JwtAuthenticator::new(JwtConfig::default()).is_err());
    }
}
