//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`, sent by kubectl 1.32+
//! and every typed client-go client) of the built-in kinds, turned into the JSON object
//! upstream would have decoded from them.
//!
//! The body is the `k8s\0` prefix and a `runtime.Unknown` (`1: typeMeta {1: apiVersion,
//! 2: kind}, 2: raw, 3: contentEncoding, 4: contentType`) whose `raw` is the object's own
//! message from upstream's `generated.proto`. The messages' field numbers come from the
//! k8s-pb crate's sources (`build.rs`), their JSON names and types from the built-in
//! OpenAPI definitions ([`crate::schema`]): see `schema.rs` and `decode.rs`.
//!
//! A descriptor-driven transcoder is used rather than prost's typed structs: k8s-pb's
//! structs have no JSON form, and converting hundreds of them to k8s-openapi's types one by
//! one would be code to keep in step with every release, where the wire schema and the
//! OpenAPI names are both data that comes with the crates.

mod decode;
mod schema;
mod wire;

use crate::status::ApiError;
use serde_json::{Map, Value};
use wire::{Reader, WireValue};

/// The media type of protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The definition of `DeleteOptions`, a body of DELETE requests.
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";

/// What every protobuf body starts with.
const MAGIC: [u8; 4] = *b"k8s\0";

/// Why a protobuf body could not be read; the messages are upstream's where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body is empty.
    #[error("empty data")]
    Empty,
    /// The body does not start with `k8s\0`.
    #[error(
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    )]
    NoPrefix,
    /// The body is the prefix alone.
    #[error("empty body")]
    EmptyBody,
    /// Bytes that are not a well-formed message of the expected type.
    #[error("{0}")]
    Malformed(String),
    /// The envelope names a kind this server has no schema for.
    #[error("no kind \"{kind}\" is registered for version \"{api_version}\" in scheme \"k8s.io/kubernetes/pkg/api/legacyscheme/scheme.go:30\"")]
    UnknownKind {
        /// The envelope's kind.
        kind: String,
        /// The envelope's apiVersion.
        api_version: String,
    },
    /// A nested message with no OpenAPI definition to name its fields.
    #[error("no schema for message {0}")]
    NoSchema(String),
}

/// A decoding failure, with the kind and version the envelope named if it was read that far
/// (upstream words its 400 differently with and without them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The envelope's `(kind, version)`, defaults applied.
    pub kind_version: Option<(String, String)>,
    /// What went wrong.
    pub error: DecodeError,
}

/// The object a protobuf request body holds, as JSON with its `kind` and `apiVersion`; an
/// envelope that leaves them empty gets `default_api_version`/`default_kind`, as upstream
/// defaults them from the endpoint's type.
pub fn decode(
    body: &[u8],
    default_api_version: &str,
    default_kind: &str,
) -> Result<Value, Failure> {
    let failure = |kind_version: Option<(String, String)>| {
        move |error: DecodeError| Failure {
            kind_version,
            error,
        }
    };
    let (mut api_version, mut kind, raw) = envelope(body).map_err(failure(None))?;
    if kind.is_empty() {
        kind = default_kind.to_owned();
    }
    if api_version.is_empty() {
        api_version = default_api_version.to_owned();
    }
    let version = api_version
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let object =
        object(&api_version, &kind, raw, 0).map_err(failure(Some((kind.clone(), version))))?;
    Ok(object)
}

/// A protobuf request body of `kind` in `api_version` (the defaults for an envelope that
/// leaves them out) as JSON, or upstream's 400.
pub fn decode_request(body: &[u8], api_version: &str, kind: &str) -> Result<Value, ApiError> {
    decode(body, api_version, kind).map_err(|failure| bad_request(&failure, kind, body))
}

/// Upstream's 400 for a body that could not be decoded into `expected_kind`
/// (`transformDecodeError` in the apiserver's handlers).
fn bad_request(failure: &Failure, expected_kind: &str, body: &[u8]) -> ApiError {
    match &failure.kind_version {
        Some((kind, version)) => ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {expected_kind}: {}",
            failure.error
        )),
        None => ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {expected_kind}): {} ({})",
            failure.error,
            summarize(body)
        )),
    }
}

/// Upstream's summary of a body that is not JSON: its first 30 bytes in hex.
fn summarize(body: &[u8]) -> String {
    const MAX: usize = 30;
    let hex: String = body.iter().take(MAX).map(|b| format!("{b:02x}")).collect();
    match body.len() {
        0 => "<empty>".into(),
        n if n > MAX => format!("{hex} ..."),
        _ => hex,
    }
}

/// The envelope's apiVersion, kind and raw object bytes.
fn envelope(body: &[u8]) -> Result<(String, String, &[u8]), DecodeError> {
    if body.is_empty() {
        return Err(DecodeError::Empty);
    }
    let rest = body.strip_prefix(&MAGIC).ok_or(DecodeError::NoPrefix)?;
    if rest.is_empty() {
        return Err(DecodeError::EmptyBody);
    }
    let mut type_meta: &[u8] = &[];
    let mut raw: &[u8] = &[];
    let mut reader = Reader::new(rest);
    while let Some((tag, value)) = reader.next_field()? {
        match (tag, value) {
            (1, WireValue::Bytes(b)) => type_meta = b,
            (2, WireValue::Bytes(b)) => raw = b,
            (3 | 4, WireValue::Bytes(_)) => {}
            (1..=4, _) => {
                return Err(DecodeError::Malformed(format!(
                    "proto: wrong wireType = {} for field {tag} of Unknown",
                    value.wire_type()
                )))
            }
            _ => {}
        }
    }
    let (mut api_version, mut kind) = (String::new(), String::new());
    let mut reader = Reader::new(type_meta);
    while let Some((tag, value)) = reader.next_field()? {
        match (tag, value) {
            (1, WireValue::Bytes(b)) => api_version = String::from_utf8_lossy(b).into_owned(),
            (2, WireValue::Bytes(b)) => kind = String::from_utf8_lossy(b).into_owned(),
            (1 | 2, _) => {
                return Err(DecodeError::Malformed(format!(
                    "proto: wrong wireType = {} for field {tag} of TypeMeta",
                    value.wire_type()
                )))
            }
            _ => {}
        }
    }
    Ok((api_version, kind, raw))
}

/// The JSON of a `kind` in `api_version` whose message is `raw`.
fn object(api_version: &str, kind: &str, raw: &[u8], depth: usize) -> Result<Value, DecodeError> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let unknown = || DecodeError::UnknownKind {
        kind: kind.to_owned(),
        api_version: api_version.to_owned(),
    };
    // Upstream registers DeleteOptions in every group version.
    let definition = crate::schema::builtin()
        .name_of_kind(group, version, kind)
        .or((kind == "DeleteOptions").then_some(DELETE_OPTIONS))
        .ok_or_else(unknown)?;
    let message = decode::message_of_definition(definition).ok_or_else(unknown)?;
    let mut object = Map::new();
    object.insert("kind".into(), Value::String(kind.to_owned()));
    object.insert("apiVersion".into(), Value::String(api_version.to_owned()));
    if let Value::Object(fields) = decode::message(&[raw], message, depth)? {
        object.extend(fields);
    }
    Ok(Value::Object(object))
}

/// An object embedded with its own envelope (in a `RawExtension`).
fn decode_at_depth(body: &[u8], depth: usize) -> Result<Value, DecodeError> {
    let (api_version, kind, raw) = envelope(body)?;
    object(&api_version, &kind, raw, depth)
}

#[cfg(test)]
mod tests;
