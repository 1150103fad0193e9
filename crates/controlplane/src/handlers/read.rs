//! `get` and `list`: reads of one object, and of a collection as pages of one snapshot.

use super::{decode, Call};
use crate::http::{json, Body};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use base64::Engine;
use http::{Response, StatusCode};
use kflex_storage_backends::{RangeRequest, StoreError};
use serde_json::json;

pub(super) async fn get(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let (mut object, _) = call.current().await?;
    if call.rr.subresource.as_deref() == Some("scale") {
        object = super::scale::to_scale(&call.def, &object);
    }
    let object = call.representation.object(&call.def, object);
    Ok(json(StatusCode::OK, &object))
}

/// A list's continue token, as upstream encodes it: the snapshot revision and the key
/// (relative to the collection) to resume at.
#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: i64,
    start: String,
}

const CONTINUE_TOO_OLD: &str = "The provided continue parameter is too old to display a consistent list result. \
You can start a new list without the continue parameter, or use the continue token in this response to retrieve \
the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that \
were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

fn encode_continue(rv: i64, start: &str) -> String {
    let token = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: start.into(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&token).unwrap_or_default())
}

fn decode_continue(text: &str) -> Result<ContinueToken, ApiError> {
    let invalid = || ApiError::bad_request(format!("invalid continue token: {text:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| invalid())?;
    let token: ContinueToken = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if token.v != "meta.k8s.io/v1" || token.rv <= 0 || token.start.contains("..") {
        return Err(invalid());
    }
    Ok(token)
}

/// The label and field selectors of a list or watch, checked for this resource.
pub(super) fn selectors(call: &Call<'_>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let label = LabelSelector::parse(call.req.query.get("labelSelector").unwrap_or_default())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let field = FieldSelector::parse(call.req.query.get("fieldSelector").unwrap_or_default())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    field
        .check_supported(
            &call.def.group,
            &call.def.plural,
            call.def
                .crd
                .as_ref()
                .map_or(&[][..], |c| &c.selectable_fields),
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((label, field))
}

/// Items fetched from the store per round while filtering.
const PAGE: usize = 500;

pub(super) async fn list(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let query = &call.req.query;
    if query.flag("sendInitialEvents") {
        return Err(super::forbidden_option(
            "sendInitialEvents",
            "sendInitialEvents is forbidden for list",
        ));
    }
    let (label, field) = selectors(call)?;
    let limit = query
        .number("limit")?
        .filter(|l| *l > 0)
        .map(|l| l as usize);
    let rv = query.get("resourceVersion").unwrap_or("");
    let rvm = query.get("resourceVersionMatch").unwrap_or("");
    let prefix = call.def.collection_prefix(call.namespace());
    let store = call.cp.store();

    let (mut revision, mut start) = (None, None);
    if let Some(token) = query.get("continue").filter(|t| !t.is_empty()) {
        if !rvm.is_empty() {
            return Err(super::forbidden_option(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        let token = decode_continue(token)?;
        revision = Some(token.rv);
        start = Some(format!("{prefix}{}", token.start));
    } else {
        match (rv, rvm) {
            ("", "") => {}
            ("", _) => {
                return Err(super::forbidden_option(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ))
            }
            ("0", "Exact") => {
                return Err(super::forbidden_option(
                    "resourceVersionMatch",
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ))
            }
            ("0", "" | "NotOlderThan") => {}
            (n, match_) => {
                let n: i64 = n.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version: {n:?}"))
                })?;
                let exact = match match_ {
                    "Exact" => true,
                    "NotOlderThan" => false,
                    "" => limit.is_some(),
                    other => {
                        return Err(super::forbidden_option(
                            "resourceVersionMatch",
                            &format!(
                                "{other:?} is not a supported value: \"Exact\", \"NotOlderThan\""
                            ),
                        ))
                    }
                };
                let current = store
                    .current_revision()
                    .await
                    .map_err(|e| call.store_error(e))?;
                if n > current {
                    return Err(ApiError::too_large_resource_version(n, current));
                }
                if exact {
                    revision = Some(n);
                }
            }
        }
    }

    let mut items = Vec::new();
    let mut snapshot = revision;
    let mut last_key: Option<Vec<u8>> = None;
    let mut more = false;
    let mut remaining = None;
    let filtering = !label.is_empty() || !field.is_empty();
    loop {
        let want = limit.map_or(PAGE, |l| (l - items.len()).max(1));
        let page = store
            .range(RangeRequest {
                prefix: prefix.as_bytes().to_vec(),
                start: start.clone().map(String::into_bytes),
                limit: Some(if filtering { PAGE } else { want }),
                revision: snapshot,
            })
            .await
            .map_err(|e| match e {
                StoreError::Compacted { .. } if query.get("continue").is_some() => {
                    ApiError::expired(CONTINUE_TOO_OLD)
                }
                StoreError::Compacted {
                    requested,
                    compacted,
                } => ApiError::expired(format!(
                    "too old resource version: {requested} ({compacted})"
                )),
                other => call.store_error(other),
            })?;
        snapshot = Some(page.revision);
        let page_len = page.kvs.len();
        for (i, kv) in page.kvs.iter().enumerate() {
            let object = decode(kv)?;
            last_key = Some(kv.key.clone());
            if label.matches(&object) && field.matches(&object) {
                items.push(object);
            }
            if limit.is_some_and(|l| items.len() >= l) {
                more = page.more || i + 1 < page_len;
                if !filtering {
                    remaining = Some(page.count as i64 - page_len as i64);
                }
                break;
            }
        }
        if limit.is_some_and(|l| items.len() >= l) || !page.more {
            break;
        }
        let mut next = last_key.clone().unwrap_or_default();
        next.push(0);
        start = Some(String::from_utf8_lossy(&next).into_owned());
    }

    let revision = snapshot.unwrap_or_default();
    let mut metadata = serde_json::Map::new();
    metadata.insert("resourceVersion".into(), json!(revision.to_string()));
    if more {
        let key = String::from_utf8_lossy(last_key.as_deref().unwrap_or_default()).into_owned();
        let relative = key.strip_prefix(&prefix).unwrap_or(&key);
        metadata.insert(
            "continue".into(),
            json!(encode_continue(revision, &format!("{relative}\u{0}"))),
        );
        if let Some(remaining) = remaining.filter(|r| *r > 0) {
            metadata.insert("remainingItemCount".into(), json!(remaining));
        }
    }
    let list = call.representation.list(&call.def, metadata, items);
    Ok(json(StatusCode::OK, &list))
}
