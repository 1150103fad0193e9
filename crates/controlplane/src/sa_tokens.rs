//! ServiceAccount tokens, as kube-apiserver issues and checks them: `TokenRequest`
//! (`serviceaccounts/<name>/token`), authentication of the bound tokens it issues,
//! `TokenReview`, and the issuer's OpenID discovery (`/.well-known/openid-configuration`,
//! `/openid/v1/jwks`).
//!
//! Tokens are ES256 JWTs signed by a key of each control plane's own, generated when the
//! control plane first starts and kept in its store at [`KEY_PATH`], so it survives restarts
//! and a token of one control plane fails the signature check of every other. The store
//! rather than a `kube-system` Secret: upstream keeps `sa.key` out of the API, and a Secret
//! would hand the private key to anyone who may read Secrets there. ES256 rather than
//! upstream's default RS256: a P-256 key is generated in microseconds (RSA takes tens of
//! milliseconds per control plane) and every OIDC verifier accepts it.

use crate::authn::{User, AUTHENTICATED};
use crate::controlplane::ControlPlane;
use crate::http::{self as h, ApiRequest, Body};
use crate::request::{ResourceRequest, Verb};
use crate::status::{self, ApiError, Cause, GroupResource};
use base64::Engine as _;
use bytes::Bytes;
use http::{Response, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use kflex_storage_backends::{Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The issuer (`iss`) of every control plane's tokens, upstream's default
/// (`https://kubernetes.default.svc.cluster.local`): what in-cluster workloads expect, and
/// independent of the address a tenant is reached at.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Where a control plane's store keeps its signing key.
pub const KEY_PATH: &str = "/registry/kflex/serviceaccount-signing-key";

/// The API group of `TokenRequest` and `TokenReview`.
const AUTHENTICATION: &str = "authentication.k8s.io";
/// Default lifetime of a requested token, in seconds.
const DEFAULT_EXPIRATION: i64 = 3600;
/// Shortest lifetime a token may be requested for (upstream: 10 minutes).
const MIN_EXPIRATION: i64 = 600;
/// Longest lifetime a token may be requested for (upstream: 2^32 seconds).
const MAX_EXPIRATION: i64 = 1 << 32;
/// Clock skew tolerated on `exp` and `nbf`, as go-jose's default leeway.
const LEEWAY: u64 = 60;

/// The audiences the API accepts (upstream's `--api-audiences`, defaulting to the issuer).
pub fn api_audiences() -> Vec<String> {
    vec![ISSUER.to_owned()]
}

/// Why a stored signing key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("malformed signing key record: {0}")]
    Record(String),
    #[error("invalid signing key: {0}")]
    Key(String),
}

/// One control plane's signing key: ES256 (ECDSA P-256, SHA-256).
pub struct SigningKey {
    /// The key id: base64url of the SHA-256 of the public key's DER, as upstream derives it.
    kid: String,
    /// The public point's coordinates, base64url, for the JWKS.
    x: String,
    y: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The stored form of a signing key.
#[derive(Serialize, Deserialize)]
struct KeyRecord {
    algorithm: String,
    /// PKCS#8 DER, standard base64.
    #[serde(rename = "privateKey")]
    private_key: String,
}

impl SigningKey {
    /// The control plane's key from `store`, generated and stored on first use.
    pub async fn load_or_create(store: &dyn Store) -> Result<Self, StoreError> {
        let broken = |e: KeyError| {
            StoreError::unavailable("store", "reading the service account signing key", e)
        };
        if let (Some(kv), _) = store.get(KEY_PATH.as_bytes(), None).await? {
            return Self::from_record(&kv.value).map_err(broken);
        }
        let pair = rcgen::KeyPair::generate().map_err(|e| broken(KeyError::Key(e.to_string())))?;
        let record = KeyRecord {
            algorithm: "ES256".into(),
            private_key: base64::engine::general_purpose::STANDARD.encode(pair.serialize_der()),
        };
        let value = Bytes::from(serde_json::to_vec(&record).unwrap_or_default());
        match store.create(KEY_PATH.as_bytes(), value.clone(), None).await {
            Ok(_) => Self::from_record(&value).map_err(broken),
            // Another process started the same control plane first: use its key.
            Err(StoreError::AlreadyExists { .. }) => {
                match store.get(KEY_PATH.as_bytes(), None).await? {
                    (Some(kv), _) => Self::from_record(&kv.value).map_err(broken),
                    (None, _) => Err(broken(KeyError::Record("the key vanished".into()))),
                }
            }
            Err(e) => Err(e),
        }
    }

    fn from_record(bytes: &[u8]) -> Result<Self, KeyError> {
        let record: KeyRecord =
            serde_json::from_slice(bytes).map_err(|e| KeyError::Record(e.to_string()))?;
        if record.algorithm != "ES256" {
            return Err(KeyError::Record(format!(
                "unsupported algorithm {}",
                record.algorithm
            )));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(&record.private_key)
            .map_err(|e| KeyError::Record(e.to_string()))?;
        Self::from_pkcs8(&der)
    }

    /// A key from its PKCS#8 DER.
    fn from_pkcs8(der: &[u8]) -> Result<Self, KeyError> {
        use rcgen::PublicKeyData as _;
        let pair = rcgen::KeyPair::try_from(der).map_err(|e| KeyError::Key(e.to_string()))?;
        let point = pair.public_key_raw();
        if point.len() != 65 || point[0] != 4 {
            return Err(KeyError::Key("not an uncompressed P-256 point".into()));
        }
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let (x, y) = (b64(&point[1..33]), b64(&point[33..]));
        let decoding =
            DecodingKey::from_ec_components(&x, &y).map_err(|e| KeyError::Key(e.to_string()))?;
        Ok(SigningKey {
            kid: b64(&Sha256::digest(pair.subject_public_key_info())),
            x,
            y,
            encoding: EncodingKey::from_ec_der(der),
            decoding,
        })
    }

    /// The public key as a JSON Web Key Set (`/openid/v1/jwks`).
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "use": "sig",
            "kty": "EC",
            "kid": self.kid,
            "crv": "P-256",
            "alg": "ES256",
            "x": self.x,
            "y": self.y,
        }]})
    }

    fn sign(&self, claims: &Claims) -> Result<String, ApiError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| ApiError::internal(format!("failed to sign the token: {e}")))
    }

    /// The claims of a token this key signed for [`ISSUER`], still valid at the current
    /// time (with [`LEEWAY`]); the audience is checked by the caller.
    fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::NotOurs)?;
        if header.alg != Algorithm::ES256 {
            return Err(TokenError::NotOurs);
        }
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.leeway = LEEWAY;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                _ => TokenError::NotOurs,
            })
    }
}

/// The claims of a ServiceAccount token, as upstream writes them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Vec<String>,
    exp: i64,
    iat: i64,
    nbf: i64,
    jti: String,
    #[serde(rename = "kubernetes.io")]
    kubernetes: KubernetesClaims,
}

/// The private `kubernetes.io` claim: the ServiceAccount and the object the token is bound
/// to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct KubernetesClaims {
    namespace: String,
    serviceaccount: ObjectClaim,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pod: Option<ObjectClaim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<ObjectClaim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<ObjectClaim>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ObjectClaim {
    name: String,
    uid: String,
}

/// Why a token does not authenticate (the `TokenReview`'s `status.error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a well-formed token of this control plane's issuer and key.
    #[error("invalid bearer token")]
    NotOurs,
    #[error("service account token has expired")]
    Expired,
    #[error("service account token is not valid yet")]
    NotYetValid,
    #[error("token audiences {token:?} is invalid for the target audiences {target:?}")]
    Audience {
        token: Vec<String>,
        target: Vec<String>,
    },
    /// The ServiceAccount or bound object is gone, or was recreated.
    #[error("{0}")]
    Invalidated(String),
    /// The store could not be read.
    #[error("{0}")]
    Unavailable(String),
}

/// The kinds a token can be bound to: `(kind, plural, claim)`.
const BINDABLE: [(&str, &str, &str); 3] = [
    ("Pod", "pods", "pod"),
    ("Secret", "secrets", "secret"),
    ("Node", "nodes", "node"),
];

/// Whether `rr` is a `serviceaccounts/<name>/token` request.
pub fn is_token_request(rr: &ResourceRequest) -> bool {
    rr.group.is_empty()
        && rr.resource == "serviceaccounts"
        && rr.subresource.as_deref() == Some("token")
}

/// Answers `POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token`: a token for the
/// ServiceAccount, as upstream's `TokenREST`.
pub async fn token_request(
    cp: &ControlPlane,
    rr: &ResourceRequest,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let def = cp.builtin("", "v1", "serviceaccounts")?;
    let (Some(namespace), Some(name)) = (rr.namespace.as_deref(), rr.name.as_deref()) else {
        return Err(ApiError::path_not_found());
    };
    if rr.version != "v1" {
        return Err(ApiError::path_not_found());
    }
    if rr.verb != Verb::Create {
        return Err(ApiError::method_not_allowed(
            rr.verb.as_str(),
            &GroupResource {
                group: String::new(),
                resource: "serviceaccounts/token".into(),
            },
        ));
    }
    let mut request =
        crate::authz::review::body(req, &format!("{AUTHENTICATION}/v1"), "TokenRequest")?;
    let spec = request["spec"].clone();
    let expiration = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION,
        value => value
            .as_i64()
            .ok_or_else(|| ApiError::bad_request("spec.expirationSeconds must be an integer"))?,
    };
    let invalid = |message: &str| {
        ApiError::invalid(
            AUTHENTICATION,
            "TokenRequest",
            name,
            vec![Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: {expiration}: {message}"),
                field: "spec.expirationSeconds".into(),
            }],
        )
    };
    if expiration < MIN_EXPIRATION {
        return Err(invalid("may not specify a duration less than 10 minutes"));
    }
    if expiration > MAX_EXPIRATION {
        return Err(invalid(
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let mut audiences: Vec<String> = spec["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    if audiences.is_empty() {
        audiences = api_audiences();
    }
    let account = read(cp, &def.key(Some(namespace), name)).await?;
    let account = account.ok_or_else(|| ApiError::not_found(&def.group_resource(), name))?;
    let mut kubernetes = KubernetesClaims {
        namespace: namespace.to_owned(),
        serviceaccount: ObjectClaim {
            name: name.to_owned(),
            uid: uid(&account),
        },
        pod: None,
        secret: None,
        node: None,
    };
    let bound = &spec["boundObjectRef"];
    if bound.is_object() {
        let (claim, object) = bound_object(cp, namespace, bound).await?;
        match claim {
            "pod" => kubernetes.pod = Some(object),
            "secret" => kubernetes.secret = Some(object),
            _ => kubernetes.node = Some(object),
        }
    }
    let now = jiff::Timestamp::now().as_second();
    let claims = Claims {
        iss: ISSUER.to_owned(),
        sub: format!("system:serviceaccount:{namespace}:{name}"),
        aud: audiences.clone(),
        exp: now + expiration,
        iat: now,
        nbf: now,
        jti: crate::object::new_uid(),
        kubernetes,
    };
    let token = cp.signing_key().sign(&claims)?;
    let expires = jiff::Timestamp::from_second(claims.exp)
        .map_err(ApiError::internal)?
        .to_string();
    request["metadata"] = json!({
        "name": name,
        "namespace": namespace,
        "creationTimestamp": crate::object::now(),
    });
    request["spec"]["audiences"] = json!(audiences);
    request["spec"]["expirationSeconds"] = json!(expiration);
    if !bound.is_object() {
        request["spec"]["boundObjectRef"] = Value::Null;
    }
    request["status"] = json!({"token": token, "expirationTimestamp": expires});
    Ok(h::json(StatusCode::CREATED, &request))
}

/// The object a `boundObjectRef` names: its claim name and `{name, uid}`. 400 for kinds a
/// token cannot be bound to, 404 when it does not exist, 409 when its uid differs.
async fn bound_object(
    cp: &ControlPlane,
    namespace: &str,
    bound: &Value,
) -> Result<(&'static str, ObjectClaim), ApiError> {
    let text = |key: &str| bound[key].as_str().unwrap_or_default();
    let (api_version, kind, name) = (text("apiVersion"), text("kind"), text("name"));
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let Some(&(_, plural, claim)) = BINDABLE
        .iter()
        .find(|(k, _, _)| *k == kind && group.is_empty())
    else {
        return Err(ApiError::bad_request(format!(
            "cannot bind token for object of type {group}/{version}, Kind={kind}"
        )));
    };
    let def = cp.builtin("", "v1", plural)?;
    let object_namespace = def.namespaced.then_some(namespace);
    let object = read(cp, &def.key(object_namespace, name))
        .await?
        .ok_or_else(|| ApiError::not_found(&def.group_resource(), name))?;
    let actual = uid(&object);
    let wanted = text("uid");
    if !wanted.is_empty() && wanted != actual {
        return Err(ApiError::conflict_because(
            &GroupResource {
                group: String::new(),
                resource: kind.to_owned(),
            },
            name,
            &format!(
                "the UID in the bound object reference ({wanted}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        ));
    }
    Ok((
        claim,
        ObjectClaim {
            name: name.to_owned(),
            uid: actual,
        },
    ))
}

/// The object stored at `key`, if any.
async fn read(cp: &ControlPlane, key: &str) -> Result<Option<Value>, ApiError> {
    let (kv, _) = cp.store().get(key.as_bytes(), None).await.map_err(|e| {
        let resource = GroupResource {
            group: String::new(),
            resource: String::new(),
        };
        status::from_store(e, &resource, "")
    })?;
    kv.map(|kv| crate::handlers::decode(&kv)).transpose()
}

fn uid(object: &Value) -> String {
    crate::object::meta_str(object, "uid")
        .unwrap_or_default()
        .to_owned()
}

/// The user a ServiceAccount token authenticates as for `audiences`, and the audiences it
/// is valid for (those of `audiences` it names).
pub async fn authenticate(
    cp: &ControlPlane,
    token: &str,
    audiences: &[String],
) -> Result<(User, Vec<String>), TokenError> {
    let claims = cp.signing_key().verify(token)?;
    let matched: Vec<String> = audiences
        .iter()
        .filter(|a| claims.aud.contains(a))
        .cloned()
        .collect();
    if matched.is_empty() {
        return Err(TokenError::Audience {
            token: claims.aud,
            target: audiences.to_vec(),
        });
    }
    let k8s = &claims.kubernetes;
    let namespace = k8s.namespace.as_str();
    check_current(cp, "serviceaccounts", Some(namespace), &k8s.serviceaccount).await?;
    let mut extra = BTreeMap::new();
    for (plural, claim) in [
        ("pods", &k8s.pod),
        ("secrets", &k8s.secret),
        ("nodes", &k8s.node),
    ] {
        let Some(object) = claim else { continue };
        let scope = (plural != "nodes").then_some(namespace);
        check_current(cp, plural, scope, object).await?;
        if plural != "secrets" {
            let kind = &plural[..plural.len() - 1];
            let key = |what: &str| format!("authentication.kubernetes.io/{kind}-{what}");
            extra.insert(key("name"), vec![object.name.clone()]);
            extra.insert(key("uid"), vec![object.uid.clone()]);
        }
    }
    if !claims.jti.is_empty() {
        extra.insert(
            "authentication.kubernetes.io/credential-id".into(),
            vec![format!("JTI={}", claims.jti)],
        );
    }
    let user = User {
        name: claims.sub.clone(),
        uid: k8s.serviceaccount.uid.clone(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{namespace}"),
            AUTHENTICATED.into(),
        ],
        extra,
    };
    Ok((user, matched))
}

/// `Ok` when the object a token names still exists with the uid the token recorded and
/// was not deleted more than [`LEEWAY`] ago, with upstream's messages otherwise: the
/// ServiceAccount's own, an opaque one for a bound object that is gone.
async fn check_current(
    cp: &ControlPlane,
    plural: &str,
    namespace: Option<&str>,
    claim: &ObjectClaim,
) -> Result<(), TokenError> {
    const GONE: &str = "service account token has been invalidated";
    let def = cp
        .builtin("", "v1", plural)
        .map_err(|e| TokenError::Unavailable(e.message().to_owned()))?;
    let object = read(cp, &def.key(namespace, &claim.name))
        .await
        .map_err(|e| TokenError::Unavailable(e.message().to_owned()))?;
    let is_account = plural == "serviceaccounts";
    let Some(object) = object else {
        return Err(TokenError::Invalidated(if is_account {
            format!("serviceaccounts \"{}\" not found", claim.name)
        } else {
            GONE.to_owned()
        }));
    };
    let deleted_long_ago = crate::object::meta_str(&object, "deletionTimestamp")
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .is_some_and(|t| t.as_second() + (LEEWAY as i64) < jiff::Timestamp::now().as_second());
    if deleted_long_ago {
        return Err(TokenError::Invalidated(if is_account {
            format!(
                "service account {}/{} has been deleted",
                namespace.unwrap_or_default(),
                claim.name
            )
        } else {
            GONE.to_owned()
        }));
    }
    let actual = uid(&object);
    if actual != claim.uid {
        let kind = &plural[..plural.len() - 1];
        return Err(TokenError::Invalidated(if is_account {
            format!(
                "service account UID ({actual}) does not match claim ({})",
                claim.uid
            )
        } else {
            format!(
                "{kind} UID ({actual}) does not match service account {kind} ref claim ({})",
                claim.uid
            )
        }));
    }
    Ok(())
}

/// The user of a request's bearer token as a ServiceAccount token, for the API audiences;
/// `None` when it does not authenticate.
pub async fn authenticate_request(cp: &ControlPlane, token: &str) -> Option<User> {
    match authenticate(cp, token, &api_audiences()).await {
        Ok((user, _)) => Some(user),
        Err(error) => {
            tracing::debug!(control_plane = cp.name(), %error, "bearer token refused");
            None
        }
    }
}

/// The `status` of a `TokenReview`: the token's user, from the authenticators that accept
/// the API audiences only (static, bootstrap and JWT) or as a ServiceAccount token, for
/// `spec.audiences` (the API audiences when empty).
pub async fn review_status(cp: &ControlPlane, review: &Value) -> Result<Value, ApiError> {
    let token = review["spec"]["token"].as_str().unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let requested: Vec<String> = review["spec"]["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    let api = api_audiences();
    let audiences = if requested.is_empty() {
        api.clone()
    } else {
        requested
    };
    let result = match crate::authn::audience_agnostic_user(cp, token).await {
        // These hold for the API audiences only, as upstream's audience-agnostic
        // authenticators.
        Some(user) => {
            let matched: Vec<String> = audiences
                .iter()
                .filter(|a| api.contains(a))
                .cloned()
                .collect();
            if matched.is_empty() {
                Err(TokenError::Audience {
                    token: api,
                    target: audiences,
                })
            } else {
                Ok((user, matched))
            }
        }
        None => authenticate(cp, token, &audiences).await,
    };
    Ok(match result {
        Ok((user, matched)) => json!({
            "authenticated": true,
            "user": crate::authz::review::user_info(&user),
            "audiences": matched,
        }),
        Err(TokenError::Unavailable(message)) => return Err(ApiError::unavailable(message)),
        Err(error) => json!({"user": {}, "error": error.to_string()}),
    })
}

/// Paths of the issuer discovery documents.
const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";
const JWKS: &str = "/openid/v1/jwks";

/// The issuer's OpenID discovery documents (`None` for other paths), GET only. The key
/// set's address is where the control plane is served (`host`, the request's `Host`, and
/// its path there), as upstream's is the API server's external address: the issuer URL
/// names no server.
pub fn issuer_discovery(
    cp: &ControlPlane,
    method: &http::Method,
    path: &str,
    host: Option<&str>,
) -> Option<Response<Body>> {
    let path = path.strip_suffix('/').unwrap_or(path);
    let (body, content_type) = match path {
        OPENID_CONFIGURATION => (
            json!({
                "issuer": ISSUER,
                "jwks_uri": match host {
                    Some(host) if !cp.is_hosting() => {
                        format!("https://{host}{}{}{JWKS}", crate::TENANT_PREFIX, cp.name())
                    }
                    Some(host) => format!("https://{host}{JWKS}"),
                    None => format!("{ISSUER}{JWKS}"),
                },
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
            }),
            "application/json",
        ),
        JWKS => (cp.signing_key().jwks(), "application/jwk-set+json"),
        _ => return None,
    };
    if method != http::Method::GET && method != http::Method::HEAD {
        return Some(h::error(&ApiError::method_not_allowed_because(format!(
            "{method} is not allowed on {path}"
        ))));
    }
    let mut response = h::json_with_type(StatusCode::OK, &body, content_type);
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, max-age=3600"),
    );
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        let pair = rcgen::KeyPair::generate().unwrap();
        SigningKey::from_pkcs8(&pair.serialize_der()).unwrap()
    }

    fn claims(exp_in: i64) -> Claims {
        let now = jiff::Timestamp::now().as_second();
        Claims {
            iss: ISSUER.into(),
            sub: "system:serviceaccount:ns:sa".into(),
            aud: api_audiences(),
            exp: now + exp_in,
            iat: now,
            nbf: now,
            jti: "j".into(),
            kubernetes: KubernetesClaims {
                namespace: "ns".into(),
                serviceaccount: ObjectClaim {
                    name: "sa".into(),
                    uid: "u".into(),
                },
                pod: None,
                secret: None,
                node: None,
            },
        }
    }

    #[test]
    fn tokens_verify_with_their_key_only() {
        let (mine, other) = (key(), key());
        let token = mine.sign(&claims(600)).unwrap();
        assert_eq!(mine.verify(&token).unwrap(), claims_of(&token));
        assert_eq!(other.verify(&token), Err(TokenError::NotOurs));
        assert_eq!(mine.verify("garbage"), Err(TokenError::NotOurs));
        let mut tampered = token.clone();
        tampered.replace_range(token.len() - 4.., "AAAA");
        assert_eq!(mine.verify(&tampered), Err(TokenError::NotOurs));
    }

    fn claims_of(token: &str) -> Claims {
        let payload = token.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn expired_and_future_tokens_and_other_issuers_are_refused() {
        let key = key();
        let expired = key.sign(&claims(-(LEEWAY as i64) - 5)).unwrap();
        assert_eq!(key.verify(&expired), Err(TokenError::Expired));
        let mut future = claims(3600);
        future.nbf += 3 * LEEWAY as i64;
        assert_eq!(
            key.verify(&key.sign(&future).unwrap()),
            Err(TokenError::NotYetValid)
        );
        let mut foreign = claims(600);
        foreign.iss = "https://elsewhere".into();
        assert_eq!(
            key.verify(&key.sign(&foreign).unwrap()),
            Err(TokenError::NotOurs)
        );
    }

    #[test]
    fn the_key_survives_its_stored_form_and_its_jwks_verifies() {
        let pair = rcgen::KeyPair::generate().unwrap();
        let record = serde_json::to_vec(&KeyRecord {
            algorithm: "ES256".into(),
            private_key: base64::engine::general_purpose::STANDARD.encode(pair.serialize_der()),
        })
        .unwrap();
        let (a, b) = (
            SigningKey::from_record(&record).unwrap(),
            SigningKey::from_record(&record).unwrap(),
        );
        assert_eq!(a.kid, b.kid);
        let token = a.sign(&claims(600)).unwrap();
        assert!(b.verify(&token).is_ok());
        let jwk: jsonwebtoken::jwk::JwkSet = serde_json::from_value(a.jwks()).unwrap();
        let decoding = DecodingKey::from_jwk(&jwk.keys[0]).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&api_audiences());
        assert!(jsonwebtoken::decode::<Claims>(&token, &decoding, &validation).is_ok());
        assert!(SigningKey::from_record(b"{}").is_err());
        assert!(SigningKey::from_record(br#"{"algorithm":"RS256","privateKey":""}"#).is_err());
    }
}
