//! What form a read is answered in, chosen from the Accept header as kube-apiserver
//! chooses it: the object itself, its metadata only (`PartialObjectMetadata`, used by
//! metadata informers and the garbage collector), or a `Table` (kubectl's output).

use crate::registry::ResourceDef;
use crate::status::ApiError;
use crate::table;
use serde_json::{json, Map, Value};

/// How `includeObject` asks rows of a Table to carry their object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

/// The form of a response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Representation {
    /// The resource's own JSON.
    Object,
    /// `PartialObjectMetadata(List)` of `meta.k8s.io/<version>`.
    Metadata { version: &'static str },
    /// A `Table` of `meta.k8s.io/<version>`.
    Table {
        version: &'static str,
        include: IncludeObject,
    },
}

impl Representation {
    /// The first form in the client's Accept list that kflex can produce (JSON only);
    /// 406 when there is none.
    pub fn negotiate(accept: Option<&str>, include_object: Option<&str>) -> Result<Self, ApiError> {
        let include = match include_object {
            None | Some("" | "Metadata") => IncludeObject::Metadata,
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "includeObject: unsupported value {other:?}: supported values: \"None\", \"Metadata\", \"Object\""
                )))
            }
        };
        let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
            return Ok(Representation::Object);
        };
        for item in accept.split(',') {
            let mut parts = item.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            if !matches!(media, "application/json" | "application/*" | "*/*") {
                continue;
            }
            let mut params = (None, None, None);
            for param in parts {
                match param.split_once('=') {
                    Some(("as", v)) => params.0 = Some(v),
                    Some(("g", v)) => params.1 = Some(v),
                    Some(("v", v)) => params.2 = Some(v),
                    _ => {}
                }
            }
            let version = match params.2 {
                Some("v1") => "v1",
                Some("v1beta1") => "v1beta1",
                _ => "",
            };
            match params {
                (None, _, _) => return Ok(Representation::Object),
                (Some("Table"), Some("meta.k8s.io"), _) if !version.is_empty() => {
                    return Ok(Representation::Table { version, include })
                }
                (
                    Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                    Some("meta.k8s.io"),
                    _,
                ) if !version.is_empty() => return Ok(Representation::Metadata { version }),
                _ => {}
            }
        }
        Err(ApiError::not_acceptable(format!(
            "only the following media types are accepted: application/json, \
             application/json;as=Table;v=v1;g=meta.k8s.io, \
             application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io (asked for {accept})"
        )))
    }

    /// One object in this form (a Table of one row, for a Table).
    pub fn object(&self, def: &ResourceDef, object: Value) -> Value {
        self.watch_object(def, object, true)
    }

    /// A list in this form; `metadata` is the list's metadata.
    pub fn list(
        &self,
        def: &ResourceDef,
        metadata: Map<String, Value>,
        mut items: Vec<Value>,
    ) -> Value {
        for item in &mut items {
            crate::crd::served(def, item);
        }
        match *self {
            Representation::Object => json!({
                "kind": def.list_kind,
                "apiVersion": def.api_version(),
                "metadata": metadata,
                "items": items,
            }),
            Representation::Metadata { version } => json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": format!("meta.k8s.io/{version}"),
                "metadata": metadata,
                "items": items.iter().map(|o| partial(o, version)).collect::<Vec<_>>(),
            }),
            Representation::Table { version, include } => {
                table::table(def, &items, Value::Object(metadata), version, include, true)
            }
        }
    }

    /// The object of a watch event; Tables carry their column definitions in the first
    /// event only, as upstream.
    pub fn watch_object(&self, def: &ResourceDef, mut object: Value, first: bool) -> Value {
        crate::crd::served(def, &mut object);
        match *self {
            Representation::Object => object,
            Representation::Metadata { version } => partial(&object, version),
            Representation::Table { version, include } => {
                let rv = resource_version(&object);
                table::table(
                    def,
                    &[object],
                    json!({"resourceVersion": rv}),
                    version,
                    include,
                    first,
                )
            }
        }
    }
}

fn resource_version(object: &Value) -> Value {
    object["metadata"]["resourceVersion"].clone()
}

/// The `PartialObjectMetadata` of an object.
pub fn partial(object: &Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL_TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

    #[test]
    fn negotiates_as_upstream() {
        assert_eq!(
            Representation::negotiate(None, None).unwrap(),
            Representation::Object
        );
        assert_eq!(
            Representation::negotiate(Some(KUBECTL_TABLE), None).unwrap(),
            Representation::Table {
                version: "v1",
                include: IncludeObject::Metadata
            }
        );
        assert_eq!(
            Representation::negotiate(
                Some("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"),
                None
            )
            .unwrap(),
            Representation::Metadata { version: "v1" }
        );
        assert_eq!(
            Representation::negotiate(
                Some("application/vnd.kubernetes.protobuf, application/json"),
                None
            )
            .unwrap(),
            Representation::Object
        );
        assert_eq!(
            Representation::negotiate(Some("application/vnd.kubernetes.protobuf"), None)
                .unwrap_err()
                .code(),
            406
        );
        assert_eq!(
            Representation::negotiate(Some("application/json;as=Table;g=example.com;v=v1"), None)
                .unwrap_err()
                .code(),
            406
        );
        assert_eq!(
            Representation::negotiate(Some(KUBECTL_TABLE), Some("Bogus"))
                .unwrap_err()
                .code(),
            400
        );
    }
}
