//! JWT (OpenID Connect) authenticators, as upstream's `AuthenticationConfiguration`
//! `jwt` entries: a bearer token that is a JWT of the configured issuer, signed by one of
//! the issuer's keys, for one of the configured audiences and within its validity,
//! authenticates as the user its claims name (username, groups and uid claims, with
//! prefixes, or CEL expressions over `claims`, which also make extra attributes), when
//! the claim validation rules (a claim's required value, or CEL over `claims`) and then
//! the user validation rules (CEL over `user`) hold.
//!
//! Expressions are compiled once, when the settings are applied, in the CEL environment
//! of [`crate::crd::rules`], and checked as upstream's `AuthenticationConfiguration`
//! validation checks them. Each token evaluates them; one of the wrong type, or failing,
//! refuses the token.
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
use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::{Program, Value as CelValue};
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
    /// Conditions on the token's claims: a token failing one is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claim_validation_rules: Vec<ClaimValidationRule>,
    #[serde(default)]
    pub claim_mappings: ClaimMappings,
    /// Conditions on the user the claims map to: a token failing one is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_validation_rules: Vec<UserValidationRule>,
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

/// Which claims make the user: each from a claim or a CEL expression over `claims`.
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
    /// Extra attributes of the user, each from an expression.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<ExtraMapping>,
}

/// A claim whose value is prefixed, or an expression (upstream's
/// `PrefixedClaimOrExpression`): one of `claim` and `expression`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PrefixedClaim {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub claim: String,
    /// Prepended to the claim's value. For the username, when absent: `<issuer url>#`
    /// unless the claim is `email` (upstream's `--oidc-username-prefix` default); for
    /// groups, none. Not with `expression`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// CEL over `claims`: a non-empty string for the username, a string or a list of
    /// strings for groups.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expression: String,
}

/// A claim, or an expression (upstream's `ClaimOrExpression`): one of them.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Claim {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub claim: String,
    /// CEL over `claims`, giving a string.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expression: String,
}

/// An extra attribute of the user: `key` (a lowercase domain-prefixed path) with the
/// values of `valueExpression` (CEL over `claims`: a string or a list of strings; empty
/// ones are left out).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExtraMapping {
    pub key: String,
    #[serde(default)]
    pub value_expression: String,
}

/// A condition on the claims: claim `claim` is the string `requiredValue`, or CEL
/// `expression` over `claims` is true (else the token is refused, saying `message`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimValidationRule {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub claim: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub required_value: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expression: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A condition on the user: CEL `expression` over `user` (`username`, `uid`, `groups`,
/// `extra`) is true, else the token is refused, saying `message`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct UserValidationRule {
    #[serde(default)]
    pub expression: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
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
        self.checked(path).1
    }

    /// The configuration's compiled expressions, and what is wrong with it (see
    /// [`JwtConfig::problems`]).
    fn checked(&self, path: &str) -> (Expressions, Vec<String>) {
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
        let expressions = self.compile(path, &mut problems);
        let expression = self
            .claim_mappings
            .username
            .as_ref()
            .is_some_and(|u| !u.expression.is_empty());
        // With an expression, the username is checked when a token maps to it.
        if issuer.url == crate::sa_tokens::ISSUER
            && !expression
            && self.username_prefix().is_empty()
        {
            problems.push(format!(
                "{path}.claimMappings.username.prefix: may not be empty for the \
                 ServiceAccount token issuer: its users would pass for this control \
                 plane's ServiceAccounts"
            ));
        }
        (expressions, problems)
    }

    /// Checks the rules and mappings as upstream's validation does and compiles their
    /// expressions, adding what is wrong to `problems`.
    fn compile(&self, path: &str, problems: &mut Vec<String>) -> Expressions {
        let mut problem = |field: String, message: String| {
            problems.push(format!("{path}.{field}: {message}"));
        };
        let mut expressions = Expressions::default();
        let mut uses_email_verified = false;
        let mut claims_seen: Vec<&str> = Vec::new();
        let mut expressions_seen: Vec<&str> = Vec::new();
        for (i, rule) in self.claim_validation_rules.iter().enumerate() {
            let field = format!("claimValidationRules[{i}]");
            match (rule.claim.is_empty(), rule.expression.is_empty()) {
                (false, false) => problem(
                    field,
                    format!(
                        "Invalid value: {:?}: claim and expression can't both be set",
                        rule.claim
                    ),
                ),
                (true, true) => problem(
                    field,
                    "Required value: claim or expression is required".into(),
                ),
                (false, true) => {
                    if !rule.message.is_empty() {
                        problem(
                            format!("{field}.message"),
                            format!(
                                "Invalid value: {:?}: may not be specified when claim is set",
                                rule.message
                            ),
                        );
                    }
                    if claims_seen.contains(&rule.claim.as_str()) {
                        problem(
                            format!("{field}.claim"),
                            format!("Duplicate value: {:?}", rule.claim),
                        );
                    }
                    claims_seen.push(&rule.claim);
                }
                (true, false) => {
                    if !rule.required_value.is_empty() {
                        problem(
                            format!("{field}.requiredValue"),
                            format!(
                                "Invalid value: {:?}: may not be specified when expression is set",
                                rule.required_value
                            ),
                        );
                    }
                    if expressions_seen.contains(&rule.expression.as_str()) {
                        problem(
                            format!("{field}.expression"),
                            format!("Duplicate value: {:?}", rule.expression),
                        );
                        continue;
                    }
                    expressions_seen.push(&rule.expression);
                    match compile(&rule.expression, CLAIMS, true) {
                        Ok(program) => {
                            uses_email_verified |= selects(program.expression(), EMAIL_VERIFIED);
                            expressions.claim_rules.push(Check {
                                expression: rule.expression.clone(),
                                message: rule.message.clone(),
                                program,
                            });
                        }
                        Err(message) => problem(format!("{field}.expression"), message),
                    }
                }
            }
        }
        let mappings = &self.claim_mappings;
        let mut uses_email = false;
        for (name, mapping) in [
            ("username", &mappings.username),
            ("groups", &mappings.groups),
        ] {
            let Some(mapping) = mapping else { continue };
            let field = format!("claimMappings.{name}");
            match (mapping.claim.is_empty(), mapping.expression.is_empty()) {
                (false, false) => problem(
                    field,
                    "Invalid value: \"\": claim and expression can't both be set".into(),
                ),
                (true, true) if name == "username" => problem(
                    field,
                    "Required value: claim or expression is required".into(),
                ),
                (true, false) => {
                    if let Some(prefix) = &mapping.prefix {
                        problem(
                            format!("{field}.prefix"),
                            format!(
                                "Invalid value: {prefix:?}: may not be specified when expression is set"
                            ),
                        );
                    }
                    match compile(&mapping.expression, CLAIMS, false) {
                        Ok(program) if name == "username" => {
                            uses_email = selects(program.expression(), EMAIL);
                            uses_email_verified |= selects(program.expression(), EMAIL_VERIFIED);
                            expressions.username = Some(program);
                        }
                        Ok(program) => expressions.groups = Some(program),
                        Err(message) => problem(format!("{field}.expression"), message),
                    }
                }
                _ => {}
            }
        }
        if let Some(uid) = &mappings.uid {
            match (uid.claim.is_empty(), uid.expression.is_empty()) {
                (false, false) => problem(
                    "claimMappings.uid".into(),
                    "Invalid value: \"\": claim and expression can't both be set".into(),
                ),
                (true, false) => match compile(&uid.expression, CLAIMS, false) {
                    Ok(program) => expressions.uid = Some(program),
                    Err(message) => problem("claimMappings.uid.expression".into(), message),
                },
                _ => {}
            }
        }
        let mut keys_seen: Vec<&str> = Vec::new();
        for (i, extra) in mappings.extra.iter().enumerate() {
            let field = format!("claimMappings.extra[{i}]");
            for message in extra_key_problems(&extra.key) {
                problem(format!("{field}.key"), message);
            }
            if keys_seen.contains(&extra.key.as_str()) {
                problem(
                    format!("{field}.key"),
                    format!("Duplicate value: {:?}", extra.key),
                );
                continue;
            }
            keys_seen.push(&extra.key);
            if extra.value_expression.is_empty() {
                problem(format!("{field}.valueExpression"), "Required value".into());
                continue;
            }
            match compile(&extra.value_expression, CLAIMS, false) {
                Ok(program) => {
                    uses_email_verified |= selects(program.expression(), EMAIL_VERIFIED);
                    expressions.extra.push((
                        extra.key.clone(),
                        extra.value_expression.clone(),
                        program,
                    ));
                }
                Err(message) => problem(format!("{field}.valueExpression"), message),
            }
        }
        // Upstream's rule: an email username needs its verification checked somewhere.
        if uses_email && !uses_email_verified {
            let expression = mappings
                .username
                .as_ref()
                .map_or("", |u| u.expression.as_str());
            problem(
                "claimMappings.username.expression".into(),
                format!(
                    "Invalid value: {expression:?}: claims.email_verified must be used in \
                     claimMappings.username.expression or claimMappings.extra[*].valueExpression \
                     or claimValidationRules[*].expression when claims.email is used in \
                     claimMappings.username.expression"
                ),
            );
        }
        let mut expressions_seen: Vec<&str> = Vec::new();
        for (i, rule) in self.user_validation_rules.iter().enumerate() {
            let field = format!("userValidationRules[{i}].expression");
            if rule.expression.is_empty() {
                problem(field, "Required value".into());
                continue;
            }
            if expressions_seen.contains(&rule.expression.as_str()) {
                problem(field, format!("Duplicate value: {:?}", rule.expression));
                continue;
            }
            expressions_seen.push(&rule.expression);
            match compile(&rule.expression, USER, true) {
                Ok(program) => expressions.user_rules.push(Check {
                    expression: rule.expression.clone(),
                    message: rule.message.clone(),
                    program,
                }),
                Err(message) => problem(field, message),
            }
        }
        expressions
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

/// The variable of claim expressions: the token's claims.
const CLAIMS: &str = "claims";
/// The variable of user validation rules: the user the claims map to.
const USER: &str = "user";
/// The claim whose use in a username expression needs [`EMAIL_VERIFIED`] used too.
const EMAIL: &str = "email";
const EMAIL_VERIFIED: &str = "email_verified";

/// How the usernames of ServiceAccounts begin.
const SERVICE_ACCOUNT_USERS: &str = "system:serviceaccount:";

/// A configuration's expressions, compiled once when it is applied.
#[derive(Default)]
struct Expressions {
    claim_rules: Vec<Check>,
    username: Option<Program>,
    groups: Option<Program>,
    uid: Option<Program>,
    /// Each extra attribute's key, expression and program.
    extra: Vec<(String, String, Program)>,
    user_rules: Vec<Check>,
}

impl Expressions {
    fn over_claims(&self) -> bool {
        !self.claim_rules.is_empty()
            || self.username.is_some()
            || self.groups.is_some()
            || self.uid.is_some()
            || !self.extra.is_empty()
    }
}

/// A validation rule: its expression, message and program.
struct Check {
    expression: String,
    message: String,
    program: Program,
}

/// Compiles `source` with `variable` in scope (the shared CEL environment of
/// [`crate::crd::rules`]), as `Invalid value: <source>: <why>` when it cannot be. A
/// `boolean` expression must not be one that [`never_bool`] tells: the `cel` crate has
/// no type checker, so other wrong types show when the expression runs.
fn compile(source: &str, variable: &str, boolean: bool) -> Result<Program, String> {
    let invalid = |why: String| format!("Invalid value: {source:?}: {why}");
    let program = crate::crd::rules::compile_expression(source, &[variable])
        .map_err(|e| invalid(format!("compilation failed: {e}")))?;
    if boolean && never_bool(program.expression()) {
        return Err(invalid("must evaluate to bool".into()));
    }
    Ok(program)
}

/// Whether `expr` is certainly not a bool, as far as it can tell without types: a
/// literal of another type, a list or map, arithmetic, or a field of `user` (whose
/// fields are strings, a list and a map).
fn never_bool(expr: &IdedExpr) -> bool {
    match &expr.expr {
        Expr::Literal(literal) => !matches!(literal, LiteralValue::Boolean(_)),
        Expr::List(_) | Expr::Map(_) => true,
        Expr::Call(call) => {
            ["_+_", "_-_", "_*_", "_/_", "_%_", "-_"].contains(&call.func_name.as_str())
        }
        Expr::Select(select) => {
            !select.test && matches!(&select.operand.expr, Expr::Ident(name) if name == USER)
        }
        _ => false,
    }
}

/// Whether `expr` selects `claims.<field>` (or `claims.?<field>`, or tests it with
/// `has`), as upstream looks for the email claims in expressions.
fn selects(expr: &IdedExpr, field: &str) -> bool {
    let is_claims = |e: &IdedExpr| matches!(&e.expr, Expr::Ident(name) if name == CLAIMS);
    match &expr.expr {
        Expr::Select(select) => {
            (is_claims(&select.operand) && select.field == field) || selects(&select.operand, field)
        }
        Expr::Call(call) => {
            let optional_select = call.target.is_none()
                && call.func_name == "_?._"
                && call.args.len() == 2
                && is_claims(&call.args[0])
                && matches!(&call.args[1].expr,
                    Expr::Literal(LiteralValue::String(s)) if s.inner() == field);
            optional_select
                || call.args.iter().any(|a| selects(a, field))
                || call.target.as_deref().is_some_and(|t| selects(t, field))
        }
        Expr::List(list) => list.elements.iter().any(|e| selects(e, field)),
        Expr::Map(map) => map.entries.iter().any(|entry| match &entry.expr {
            EntryExpr::MapEntry(e) => selects(&e.key, field) || selects(&e.value, field),
            EntryExpr::StructField(f) => selects(&f.value, field),
        }),
        Expr::Comprehension(c) => [
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ]
        .into_iter()
        .any(|e| selects(e, field)),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Struct(_) | Expr::Unspecified => false,
    }
}

/// What is wrong with an extra attribute's key, as upstream validates them: a lowercase
/// domain-prefixed path (`acme.io/foo`) outside the domains Kubernetes reserves.
fn extra_key_problems(key: &str) -> Vec<String> {
    if key.is_empty() {
        return vec!["Required value".into()];
    }
    let mut problems = Vec::new();
    match key.split_once('/') {
        Some((host, path)) if !host.is_empty() && !path.is_empty() => {
            if let Err(cause) = crate::object::validate_name(host, false) {
                problems.push(cause.message);
            }
            let path_char = |c: char| c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:".contains(c);
            if !path.chars().all(path_char) {
                problems.push(format!(
                    "Invalid value: {path:?}: Invalid path: regex used for validation is \
                     '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+'"
                ));
            }
        }
        _ => problems.push(format!(
            "Invalid value: {key:?}: must be a domain-prefixed path (such as \"acme.io/foo\")"
        )),
    }
    if key != key.to_lowercase() {
        problems.push(format!("Invalid value: {key:?}: must be lowercase"));
    }
    let domain = key.split_once('/').map_or("", |(host, _)| host);
    let reserved = ["kubernetes.io", "k8s.io"]
        .iter()
        .any(|r| domain == *r || domain.ends_with(&format!(".{r}")));
    if reserved {
        problems.push(format!(
            "Invalid value: {key:?}: k8s.io, kubernetes.io and their subdomains are reserved \
             for Kubernetes use"
        ));
    }
    problems
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
    expressions: Expressions,
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
        let (expressions, problems) = config.checked("jwt");
        if let Some(problem) = problems.into_iter().next() {
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
            expressions,
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
        let expressions = &self.expressions;
        let bound = expressions
            .over_claims()
            .then(|| crate::crd::rules::json_to_cel(claims));
        let run = |program: &Program, what: &str| -> Result<CelValue, JwtError> {
            let invalid =
                |why: String| JwtError::Invalid(format!("error evaluating {what}: {why}"));
            if crate::crd::rules::too_costly(program, &[claims]) {
                return Err(invalid("the expression's cost exceeds the limit".into()));
            }
            let value = bound.clone().unwrap_or(CelValue::Null);
            let context = crate::crd::rules::expression_context(vec![(CLAIMS, value)]);
            program
                .execute(&context)
                .map_err(|e| invalid(e.to_string()))
        };
        let username = match &expressions.username {
            Some(program) => match run(program, "username claim expression")? {
                CelValue::String(name) if name.is_empty() => {
                    return Err(JwtError::Invalid(
                        "empty username via CEL expression is not allowed".into(),
                    ))
                }
                CelValue::String(name)
                    if self.config.issuer.url == crate::sa_tokens::ISSUER
                        && name.starts_with(SERVICE_ACCOUNT_USERS) =>
                {
                    return Err(JwtError::Invalid(format!(
                        "username {name:?} of the ServiceAccount token issuer would pass for \
                         a ServiceAccount of this control plane"
                    )))
                }
                CelValue::String(name) => name.to_string(),
                _ => {
                    return Err(JwtError::Invalid(
                        "error evaluating username claim expression: username claim \
                         expression must return a string"
                            .into(),
                    ))
                }
            },
            None => self.username_of_claim(claims)?,
        };
        let mut groups = Vec::new();
        match (&self.config.claim_mappings.groups, &expressions.groups) {
            (_, Some(program)) => {
                groups = strings(run(program, "group claim expression")?).map_err(|why| {
                    JwtError::Invalid(format!("error evaluating group claim expression: {why}"))
                })?;
            }
            (Some(mapping), None) if !mapping.claim.is_empty() => {
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
            _ => {}
        }
        let uid = match (&self.config.claim_mappings.uid, &expressions.uid) {
            (_, Some(program)) => match run(program, "uid claim expression")? {
                CelValue::String(uid) => uid.to_string(),
                _ => {
                    return Err(JwtError::Invalid(
                        "error evaluating uid claim expression: uid claim expression must \
                         return a string"
                            .into(),
                    ))
                }
            },
            (Some(mapping), None) if !mapping.claim.is_empty() => claims[mapping.claim.as_str()]
                .as_str()
                .ok_or_else(|| {
                    JwtError::Invalid(format!("claim {:?} is not a string", mapping.claim))
                })?
                .to_owned(),
            _ => String::new(),
        };
        let mut extra = std::collections::BTreeMap::new();
        for (key, expression, program) in &expressions.extra {
            let values = strings(run(program, "extra claim expression")?).map_err(|why| {
                JwtError::Invalid(format!(
                    "error evaluating extra claim expression: {expression}: {why}"
                ))
            })?;
            if !values.is_empty() {
                extra.insert(key.clone(), values);
            }
        }
        for rule in &self.config.claim_validation_rules {
            if rule.claim.is_empty() {
                continue;
            }
            let value = match claims.get(&rule.claim) {
                None => {
                    return Err(JwtError::Invalid(format!(
                        "required claim {} not present in ID token",
                        rule.claim
                    )))
                }
                Some(Value::String(value)) => value,
                Some(other) => {
                    return Err(JwtError::Invalid(format!(
                        "parse claim {}: {other} is not a string",
                        rule.claim
                    )))
                }
            };
            if *value != rule.required_value {
                return Err(JwtError::Invalid(format!(
                    "required claim {} value does not match. Got = {value}, want = {}",
                    rule.claim, rule.required_value
                )));
            }
        }
        for rule in &expressions.claim_rules {
            let result = run(&rule.program, "claim validation expression")?;
            passes(rule, result).map_err(|why| {
                JwtError::Invalid(format!(
                    "error evaluating claim validation expression: {why}"
                ))
            })?;
        }
        let user = User {
            name: username,
            uid,
            groups,
            extra,
        };
        if !expressions.user_rules.is_empty() {
            let info = serde_json::json!({
                "username": user.name,
                "uid": user.uid,
                "groups": user.groups,
                "extra": user.extra,
            });
            for rule in &expressions.user_rules {
                let invalid = |why: String| {
                    JwtError::Invalid(format!("error evaluating user info validation rule: {why}"))
                };
                if crate::crd::rules::too_costly(&rule.program, &[&info]) {
                    return Err(invalid("the expression's cost exceeds the limit".into()));
                }
                let context = crate::crd::rules::expression_context(vec![(
                    USER,
                    crate::crd::rules::json_to_cel(&info),
                )]);
                let result = rule
                    .program
                    .execute(&context)
                    .map_err(|e| invalid(e.to_string()))?;
                passes(rule, result).map_err(invalid)?;
            }
        }
        Ok(user)
    }

    /// The username of the username claim (`sub` unless mapped), prefixed; an `email`
    /// must not be unverified.
    fn username_of_claim(&self, claims: &Value) -> Result<String, JwtError> {
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
        Ok(format!("{}{username}", self.config.username_prefix()))
    }
}

/// The strings of a mapping expression's value, as upstream reads groups and extra
/// values: a string or a list of strings, empty strings left out; null is none.
fn strings(value: CelValue) -> Result<Vec<String>, String> {
    let wrong = || "expression must return a string or a list of strings".to_owned();
    match value {
        CelValue::String(s) if s.is_empty() => Ok(Vec::new()),
        CelValue::String(s) => Ok(vec![s.to_string()]),
        CelValue::List(items) => items
            .iter()
            .filter(|item| !matches!(item, CelValue::String(s) if s.is_empty()))
            .map(|item| match item {
                CelValue::String(s) => Ok(s.to_string()),
                _ => Err(wrong()),
            })
            .collect(),
        CelValue::Null => Ok(Vec::new()),
        _ => Err(wrong()),
    }
}

/// `Ok` when a validation rule's `result` is true; why the token is refused when not.
fn passes(rule: &Check, result: CelValue) -> Result<(), String> {
    match result {
        CelValue::Bool(true) => Ok(()),
        CelValue::Bool(false) => Err(format!(
            "validation expression '{}' failed: {}",
            rule.expression, rule.message
        )),
        _ => Err("validation expression must return a boolean".into()),
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
            ..Default::default()
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
                ..Default::default()
            }),
            uid: Some(Claim {
                claim: "oid".into(),
                ..Default::default()
            }),
            ..Default::default()
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
                ..Default::default()
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
                ..Default::default()
            });
        });
        assert_eq!(unprefixed.len(), 1);
        assert!(unprefixed[0].starts_with("jwt[0].claimMappings.username.prefix: "));
        assert!(JwtAuthenticator::new(JwtConfig::default()).is_err());
    }

    /// An authenticator for the test issuer with `settings` (JSON of upstream's names:
    /// `claimMappings`, `claimValidationRules`, `userValidationRules`) holding `keys`.
    fn with_settings(settings: Value, keys: Vec<Jwk>) -> JwtAuthenticator {
        let mut json = serde_json::to_value(config(ClaimMappings::default())).unwrap();
        for (k, v) in settings.as_object().unwrap() {
            json[k] = v.clone();
        }
        let config: JwtConfig = serde_json::from_value(json).unwrap();
        let authenticator = JwtAuthenticator::new(config).unwrap();
        *authenticator.keys.write().unwrap() = Arc::new(keys);
        *authenticator.fetched.try_lock().unwrap() = Some(Instant::now());
        authenticator
    }

    /// Why `authn` refuses a token of `extra` claims (panics when it accepts it).
    async fn refusal(authn: &JwtAuthenticator, key: &EncodingKey, extra: Value) -> String {
        let token = sign(key, Algorithm::ES256, "k", claims(extra));
        match authn.authenticate(&token).await {
            Err(JwtError::Invalid(why)) => why,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn expressions_map_username_groups_uid_and_extra() {
        let (key, jwk) = es256("k");
        let authn = with_settings(
            json!({"claimMappings": {
                "username": {"expression": "'idp:' + claims.sub"},
                "groups": {"expression": "claims.roles.map(r, 'role:' + r)"},
                "uid": {"expression": "claims.tid + '/' + claims.sub"},
                "extra": [
                    {"key": "example.com/tenant", "valueExpression": "claims.tid"},
                    {"key": "example.com/scopes", "valueExpression": "claims.scp.split(' ')"},
                    {"key": "example.com/none", "valueExpression": "has(claims.absent) ? claims.absent : ''"},
                ],
            }}),
            vec![jwk],
        );
        let token = sign(
            &key,
            Algorithm::ES256,
            "k",
            claims(json!({"roles": ["dev", "", "ops"], "tid": "t1", "scp": "read write"})),
        );
        let user = authn.authenticate(&token).await.unwrap();
        assert_eq!(user.name, "idp:alice");
        assert_eq!(user.groups, ["role:dev", "role:", "role:ops"]);
        assert_eq!(user.uid, "t1/alice");
        assert_eq!(user.extra.len(), 2, "{:?}", user.extra);
        assert_eq!(user.extra["example.com/tenant"], ["t1"]);
        assert_eq!(user.extra["example.com/scopes"], ["read", "write"]);
        // A string of groups is one group; empty strings and null are none.
        let single = with_settings(
            json!({"claimMappings": {"groups": {"expression": "claims.g"}}}),
            vec![es256("k").1],
        );
        for (g, want) in [
            (json!("devs"), vec!["devs"]),
            (json!(""), vec![]),
            (Value::Null, vec![]),
            (json!(["a", "", "b"]), vec!["a", "b"]),
        ] {
            let user = single
                .user(&claims(json!({"g": g})), jiff::Timestamp::now().as_second())
                .unwrap();
            assert_eq!(user.groups, want, "{g}");
        }
    }

    #[tokio::test]
    async fn expressions_of_the_wrong_type_or_failing_refuse_the_token() {
        let (key, jwk) = es256("k");
        let mapping = |m: Value| with_settings(json!({"claimMappings": m}), vec![jwk.clone()]);
        let username = mapping(json!({"username": {"expression": "claims.n"}}));
        assert_eq!(
            refusal(&username, &key, json!({"n": 7})).await,
            "error evaluating username claim expression: username claim expression must return a string"
        );
        assert_eq!(
            refusal(&username, &key, json!({"n": ""})).await,
            "empty username via CEL expression is not allowed"
        );
        assert!(refusal(&username, &key, json!({}))
            .await
            .starts_with("error evaluating username claim expression: "));
        let groups = mapping(json!({"groups": {"expression": "claims.g"}}));
        for g in [json!(1), json!(["a", 2]), json!({"a": "b"})] {
            assert_eq!(
                refusal(&groups, &key, json!({"g": g})).await,
                "error evaluating group claim expression: expression must return a string or a list of strings"
            );
        }
        let uid = mapping(json!({"uid": {"expression": "claims.n"}}));
        assert_eq!(
            refusal(&uid, &key, json!({"n": true})).await,
            "error evaluating uid claim expression: uid claim expression must return a string"
        );
        let extra =
            mapping(json!({"extra": [{"key": "example.com/x", "valueExpression": "claims.n"}]}));
        assert_eq!(
            refusal(&extra, &key, json!({"n": 1.5})).await,
            "error evaluating extra claim expression: claims.n: expression must return a string or a list of strings"
        );
        // Runtime errors (a string plus an int) refuse, never panic.
        let broken = mapping(json!({"username": {"expression": "claims.sub + 1"}}));
        assert!(refusal(&broken, &key, json!({}))
            .await
            .starts_with("error evaluating username claim expression: "));
        // Work beyond the cost limit is refused before it runs.
        let costly = mapping(json!({"groups": {
            "expression": "claims.l.map(a, claims.l.map(b, claims.l.map(c, 'x'))).size() > 0 ? ['x'] : []"
        }}));
        let long: Vec<i64> = (0..200).collect();
        assert!(refusal(&costly, &key, json!({"l": long}))
            .await
            .contains("cost exceeds the limit"));
    }

    #[tokio::test]
    async fn claim_validation_rules_refuse_tokens_saying_why() {
        let (key, jwk) = es256("k");
        let authn = with_settings(
            json!({"claimValidationRules": [
                {"claim": "hd", "requiredValue": "example.com"},
                {"expression": "claims.level >= 2", "message": "level too low"},
            ]}),
            vec![jwk],
        );
        let ok = sign(
            &key,
            Algorithm::ES256,
            "k",
            claims(json!({"hd": "example.com", "level": 2})),
        );
        assert_eq!(
            authn.authenticate(&ok).await.unwrap().name,
            format!("{ISSUER}#alice")
        );
        assert_eq!(
            refusal(&authn, &key, json!({"level": 2})).await,
            "required claim hd not present in ID token"
        );
        assert_eq!(
            refusal(&authn, &key, json!({"hd": "other.com", "level": 2})).await,
            "required claim hd value does not match. Got = other.com, want = example.com"
        );
        assert!(refusal(&authn, &key, json!({"hd": 1, "level": 2}))
            .await
            .starts_with("parse claim hd: "));
        assert_eq!(
            refusal(&authn, &key, json!({"hd": "example.com", "level": 1})).await,
            "error evaluating claim validation expression: validation expression 'claims.level >= 2' failed: level too low"
        );
        // A rule that is not a bool when it runs.
        let not_bool = with_settings(
            json!({"claimValidationRules": [{"expression": "claims.level"}]}),
            vec![es256("k").1],
        );
        let why = not_bool
            .user(
                &claims(json!({"level": 3})),
                jiff::Timestamp::now().as_second(),
            )
            .unwrap_err()
            .to_string();
        assert_eq!(
            why,
            "invalid token: error evaluating claim validation expression: validation expression must return a boolean"
        );
    }

    #[tokio::test]
    async fn user_validation_rules_see_the_mapped_user() {
        let (key, jwk) = es256("k");
        let authn = with_settings(
            json!({
                "claimMappings": {
                    "username": {"expression": "claims.sub"},
                    "groups": {"claim": "groups", "prefix": "g:"},
                    "uid": {"claim": "oid"},
                    "extra": [{"key": "example.com/t", "valueExpression": "claims.t"}],
                },
                "userValidationRules": [
                    {"expression": "!user.username.startsWith('system:')", "message": "no system users"},
                    {"expression": "!('g:banned' in user.groups)", "message": "banned"},
                    {"expression": "user.uid != '' && user.extra['example.com/t'] == ['t1']"},
                ],
            }),
            vec![jwk],
        );
        let ok = json!({"groups": ["dev"], "oid": "u1", "t": "t1"});
        let user = authn
            .authenticate(&sign(&key, Algorithm::ES256, "k", claims(ok.clone())))
            .await
            .unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, ["g:dev"]);
        let mut system = ok.clone();
        system["sub"] = json!("system:admin");
        assert_eq!(
            refusal(&authn, &key, system).await,
            "error evaluating user info validation rule: validation expression '!user.username.startsWith('system:')' failed: no system users"
        );
        let mut banned = ok.clone();
        banned["groups"] = json!(["banned"]);
        assert!(refusal(&authn, &key, banned)
            .await
            .ends_with("failed: banned"));
        let mut other = ok;
        other["t"] = json!("t2");
        assert!(refusal(&authn, &key, other)
            .await
            .contains("validation expression 'user.uid != '' && user.extra['example.com/t'] == ['t1']' failed: "));
        let not_bool = with_settings(
            json!({"userValidationRules": [{"expression": "user.groups.size()"}]}),
            vec![es256("k").1],
        );
        let why = not_bool
            .user(&claims(json!({})), jiff::Timestamp::now().as_second())
            .unwrap_err()
            .to_string();
        assert!(
            why.ends_with("validation expression must return a boolean"),
            "{why}"
        );
    }

    #[test]
    fn invalid_rules_and_mappings_are_named_by_field_as_upstream_words_them() {
        let problems = |settings: Value| {
            let mut json = serde_json::to_value(config(ClaimMappings::default())).unwrap();
            for (k, v) in settings.as_object().unwrap() {
                json[k] = v.clone();
            }
            serde_json::from_value::<JwtConfig>(json)
                .unwrap()
                .problems("jwt[0]")
        };
        assert_eq!(
            problems(json!({"claimValidationRules": [
                {"claim": "a", "expression": "true"},
                {},
                {"claim": "b", "message": "m"},
                {"claim": "b", "requiredValue": "x"},
                {"expression": "claims.a", "requiredValue": "x"},
                {"expression": "claims.a"},
                {"expression": "'yes'"},
                {"expression": "claims.a +"},
                {"expression": "self.a"},
            ]}))[..7],
            [
                "jwt[0].claimValidationRules[0]: Invalid value: \"a\": claim and expression can't both be set",
                "jwt[0].claimValidationRules[1]: Required value: claim or expression is required",
                "jwt[0].claimValidationRules[2].message: Invalid value: \"m\": may not be specified when claim is set",
                "jwt[0].claimValidationRules[3].claim: Duplicate value: \"b\"",
                "jwt[0].claimValidationRules[4].requiredValue: Invalid value: \"x\": may not be specified when expression is set",
                "jwt[0].claimValidationRules[5].expression: Duplicate value: \"claims.a\"",
                "jwt[0].claimValidationRules[6].expression: Invalid value: \"'yes'\": must evaluate to bool",
            ]
        );
        let compiled = problems(json!({"claimValidationRules": [{"expression": "claims.a +"}]}));
        assert_eq!(compiled.len(), 1);
        assert!(compiled[0].starts_with(
            "jwt[0].claimValidationRules[0].expression: Invalid value: \"claims.a +\": compilation failed: "
        ), "{compiled:?}");
        let undeclared = problems(json!({"claimValidationRules": [{"expression": "self.a == 1"}]}));
        assert!(
            undeclared[0].contains("undeclared reference to 'self'"),
            "{undeclared:?}"
        );
        let user_scope =
            problems(json!({"userValidationRules": [{"expression": "claims.a == 1"}]}));
        assert!(
            user_scope[0].starts_with("jwt[0].userValidationRules[0].expression: Invalid value: ")
        );
        assert!(
            user_scope[0].contains("undeclared reference to 'claims'"),
            "{user_scope:?}"
        );
        assert_eq!(
            problems(json!({"claimMappings": {
                "username": {"claim": "sub", "expression": "claims.sub"},
                "groups": {"expression": "claims.g", "prefix": "p:"},
                "uid": {"claim": "oid", "expression": "claims.oid"},
            }})),
            [
                "jwt[0].claimMappings.username: Invalid value: \"\": claim and expression can't both be set",
                "jwt[0].claimMappings.groups.prefix: Invalid value: \"p:\": may not be specified when expression is set",
                "jwt[0].claimMappings.uid: Invalid value: \"\": claim and expression can't both be set",
            ]
        );
        assert_eq!(
            problems(json!({"claimMappings": {"username": {"prefix": "p:"}}})),
            ["jwt[0].claimMappings.username: Required value: claim or expression is required"]
        );
        assert_eq!(
            problems(json!({"claimMappings": {"extra": [
                {"key": "example.com/a", "valueExpression": "claims.a"},
                {"key": "example.com/a", "valueExpression": "claims.b"},
                {"key": "nodomain", "valueExpression": "claims.a"},
                {"key": "Example.com/B", "valueExpression": "claims.a"},
                {"key": "sub.kubernetes.io/x", "valueExpression": "claims.a"},
                {"key": "example.com/c"},
                {"key": "", "valueExpression": "claims.a"},
                {"key": "example.com/d e", "valueExpression": "claims.a"},
            ]}})),
            [
                "jwt[0].claimMappings.extra[1].key: Duplicate value: \"example.com/a\"",
                "jwt[0].claimMappings.extra[2].key: Invalid value: \"nodomain\": must be a domain-prefixed path (such as \"acme.io/foo\")",
                "jwt[0].claimMappings.extra[3].key: Invalid value: \"Example.com\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                "jwt[0].claimMappings.extra[3].key: Invalid value: \"Example.com/B\": must be lowercase",
                "jwt[0].claimMappings.extra[4].key: Invalid value: \"sub.kubernetes.io/x\": k8s.io, kubernetes.io and their subdomains are reserved for Kubernetes use",
                "jwt[0].claimMappings.extra[5].valueExpression: Required value",
                "jwt[0].claimMappings.extra[6].key: Required value",
                "jwt[0].claimMappings.extra[7].key: Invalid value: \"d e\": Invalid path: regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+'",
            ]
        );
        assert_eq!(
            problems(json!({"userValidationRules": [
                {"expression": ""},
                {"expression": "user.uid != ''"},
                {"expression": "user.uid != ''"},
                {"expression": "1"},
                {"expression": "user.username"},
                {"expression": "user.groups + ['x']"},
            ]})),
            [
                "jwt[0].userValidationRules[0].expression: Required value",
                "jwt[0].userValidationRules[2].expression: Duplicate value: \"user.uid != ''\"",
                "jwt[0].userValidationRules[3].expression: Invalid value: \"1\": must evaluate to bool",
                "jwt[0].userValidationRules[4].expression: Invalid value: \"user.username\": must evaluate to bool",
                "jwt[0].userValidationRules[5].expression: Invalid value: \"user.groups + ['x']\": must evaluate to bool",
            ]
        );
        // A username of claims.email needs claims.email_verified used somewhere.
        let email = "claims.email";
        let unverified = problems(json!({"claimMappings": {"username": {"expression": email}}}));
        assert_eq!(unverified.len(), 1);
        assert!(unverified[0].starts_with(
            "jwt[0].claimMappings.username.expression: Invalid value: \"claims.email\": claims.email_verified must be used in claimMappings.username.expression or claimMappings.extra[*].valueExpression or claimValidationRules[*].expression when claims.email is used in claimMappings.username.expression"
        ));
        let optional = problems(
            json!({"claimMappings": {"username": {"expression": "claims.?email.orValue('x')"}}}),
        );
        assert_eq!(optional.len(), 1, "{optional:?}");
        for verified in [
            json!({"claimMappings": {"username": {"expression": "claims.email_verified ? claims.email : claims.sub"}}}),
            json!({"claimMappings": {"username": {"expression": email}},
                   "claimValidationRules": [{"expression": "claims.email_verified == true"}]}),
            json!({"claimMappings": {"username": {"expression": email},
                   "extra": [{"key": "example.com/v", "valueExpression": "string(has(claims.email_verified))"}]}}),
            json!({"claimMappings": {"username": {"expression": "claims['email']"}}}),
        ] {
            assert!(problems(verified.clone()).is_empty(), "{verified}");
        }
    }

    #[tokio::test]
    async fn service_account_issuer_expressions_may_not_name_service_accounts() {
        let (key, jwk) = es256("k");
        let mut config = config(ClaimMappings {
            username: Some(PrefixedClaim {
                expression: "claims.sub".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
        config.issuer.url = crate::sa_tokens::ISSUER.into();
        config.issuer.discovery_url = Some("https://127.0.0.1/d".into());
        assert!(config.problems("jwt[0]").is_empty());
        let authn = JwtAuthenticator::new(config).unwrap();
        *authn.keys.write().unwrap() = Arc::new(vec![jwk]);
        *authn.fetched.try_lock().unwrap() = Some(Instant::now());
        let token = |sub: &str| {
            let mut claims = claims(json!({"sub": sub}));
            claims["iss"] = json!(crate::sa_tokens::ISSUER);
            sign(&key, Algorithm::ES256, "k", claims)
        };
        let refused = authn
            .authenticate(&token("system:serviceaccount:default:robot"))
            .await
            .unwrap_err();
        assert!(matches!(refused, JwtError::Invalid(_)), "{refused:?}");
        let user = authn.authenticate(&token("people")).await.unwrap();
        assert_eq!(user.name, "people");
    }
}
