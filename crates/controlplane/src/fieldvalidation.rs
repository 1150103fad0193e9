//! Field validation (`?fieldValidation=Ignore|Warn|Strict`, default `Warn`): what a write does
//! with fields its kind does not have and with fields given twice. Upstream decodes bodies into
//! typed structs, which drops unknown fields; kflex keeps JSON, so it walks the body against the
//! kind's schema ([`crate::schema::builtin`]) while parsing it, reports each problem with
//! upstream's wording (`unknown field "spec.foo"`, `duplicate field "spec.paused"`), and drops
//! the unknown fields before the object is stored.
//!
//! [`FieldProblems`] is the report; whoever finds problems (this module for built-in kinds,
//! custom resources' pruning for CRDs) hands it to [`Directive::judge`], which fails the
//! request (`Strict`), turns it into `Warning` headers (`Warn`) or ignores it.

use crate::registry::ResourceDef;
use crate::request::{Query, Verb};
use crate::schema::{self, Definitions};
use crate::status::{ApiError, Cause};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

mod metadata;

/// What a write does with unknown and duplicate fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Directive {
    /// Drop them silently.
    Ignore,
    /// Drop them and warn about each (upstream's default).
    Warn,
    /// Fail the request.
    Strict,
}

impl Directive {
    /// The request's `fieldValidation` parameter; an unknown value is refused as upstream
    /// refuses it (422, `CreateOptions`/`UpdateOptions`/`PatchOptions` invalid).
    pub fn from_query(query: &Query, verb: Verb) -> Result<Self, ApiError> {
        match query.get("fieldValidation") {
            None | Some("") | Some("Warn") => Ok(Directive::Warn),
            Some("Ignore") => Ok(Directive::Ignore),
            Some("Strict") => Ok(Directive::Strict),
            Some(other) => {
                let options = match verb {
                    Verb::Create => "CreateOptions",
                    Verb::Patch => "PatchOptions",
                    _ => "UpdateOptions",
                };
                Err(ApiError::invalid(
                    "meta.k8s.io",
                    options,
                    "",
                    vec![Cause {
                        reason: "FieldValueNotSupported".into(),
                        message: format!(
                            "Unsupported value: {other:?}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
                        ),
                        field: "fieldValidation".into(),
                    }],
                ))
            }
        }
    }

    /// What `problems` make of the request: `Err` (made by `strict_error` from upstream's
    /// `strict decoding error: ...` text) under `Strict`, otherwise the warnings to send
    /// (none under `Ignore`).
    pub fn judge(
        self,
        problems: &FieldProblems,
        strict_error: impl FnOnce(String) -> ApiError,
    ) -> Result<Vec<String>, ApiError> {
        if problems.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Directive::Ignore => Ok(Vec::new()),
            Directive::Warn => Ok(problems.0.iter().map(ToString::to_string).collect()),
            Directive::Strict => Err(strict_error(problems.strict_decoding_error())),
        }
    }
}

/// One problem with a field of a request body, by its path (`spec.template.spec.containers[0].foo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldProblem {
    /// The kind has no such field.
    Unknown(String),
    /// The field is given more than once (the last one counts).
    Duplicate(String),
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldProblem::Unknown(path) => write!(f, "unknown field \"{path}\""),
            FieldProblem::Duplicate(path) => write!(f, "duplicate field \"{path}\""),
        }
    }
}

/// The problems found in a request body, in the order found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldProblems(pub Vec<FieldProblem>);

impl FieldProblems {
    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Upstream's `StrictDecodingError` text: `strict decoding error: <problem>, <problem>`.
    pub fn strict_decoding_error(&self) -> String {
        let listed: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        format!("strict decoding error: {}", listed.join(", "))
    }
}

/// Parses a create or update body of `def`'s kind (an `autoscaling/v1` `Scale` for the
/// `scale` subresource), drops its unknown fields and judges the problems by the request's
/// directive: the object, and the warnings to send.
pub fn decode_object(
    def: &ResourceDef,
    subresource: Option<&str>,
    verb: Verb,
    query: &Query,
    body: &[u8],
) -> Result<(Value, Vec<String>), ApiError> {
    let directive = Directive::from_query(query, verb)?;
    let defs = schema::builtin();
    let expected = match subresource {
        Some("scale") => "Scale",
        _ => def.kind.as_str(),
    };
    let root = match subresource {
        Some("scale") => defs.of_kind("autoscaling", "v1", "Scale"),
        _ if def.custom => None,
        _ => defs.of_kind(&def.group, &def.version, &def.kind),
    };
    let (mut object, mut problems) = parse(body, defs, root).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    let cannot_handle = |object: &Value, message: String| {
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .map(|v| v.rsplit('/').next().unwrap_or(v))
            .unwrap_or_default();
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {expected}: {message}"
        ))
    };
    let custom_metadata = def.custom && subresource != Some("scale");
    if let Some(error) = metadata::type_error(&object, defs, (!custom_metadata).then_some(expected))
    {
        return Err(cannot_handle(&object, error));
    }
    if custom_metadata {
        metadata::prune_custom(&mut object, defs, &mut problems);
    }
    let warnings = directive.judge(&problems, |message| cannot_handle(&object, message))?;
    Ok((object, warnings))
}

/// Checks the result of a patch of `def`'s kind: duplicates in the patch body (for merge
/// patches), then unknown fields of the patched object, which come back without them.
/// Under `Strict` the error is upstream's 422 on the field `patch`.
pub fn check_patched(
    def: &ResourceDef,
    query: &Query,
    merge_patch: Option<&[u8]>,
    patched: &Value,
) -> Result<(Value, Vec<String>), ApiError> {
    let directive = Directive::from_query(query, Verb::Patch)?;
    let defs = schema::builtin();
    let root = (!def.custom)
        .then(|| defs.of_kind(&def.group, &def.version, &def.kind))
        .flatten();
    let mut problems = FieldProblems::default();
    if let Some(patch) = merge_patch {
        if let Ok((_, found)) = parse(patch, defs, None) {
            problems = found;
        }
    }
    let patched_json = serde_json::to_vec(patched).unwrap_or_default();
    let (mut clean, found) = parse(&patched_json, defs, root)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    problems.0.extend(found.0);
    let invalid_patch = |message: String| invalid_patch(&patched_json, message);
    if let Some(error) = metadata::type_error(patched, defs, (!def.custom).then_some(&*def.kind)) {
        return Err(invalid_patch(error));
    }
    if def.custom {
        metadata::prune_custom(&mut clean, defs, &mut problems);
    }
    let warnings = directive.judge(&problems, invalid_patch)?;
    Ok((clean, warnings))
}

/// The `metadata` of an embedded resource (`x-kubernetes-embedded-resource`) at `path` in
/// a custom resource, pruned to `ObjectMeta`'s fields as upstream's `objectmeta.Coerce`
/// prunes it: the dropped paths (`spec.template.metadata.foo`).
pub fn prune_embedded_metadata(metadata: &mut Value, path: &str) -> Vec<String> {
    metadata::prune(metadata, schema::builtin(), path)
}

/// Upstream's 422 for a patched object that does not decode: on the field `patch`,
/// quoting the object.
fn invalid_patch(patched_json: &[u8], message: String) -> ApiError {
    let quoted = serde_json::to_string(&String::from_utf8_lossy(patched_json)).unwrap_or_default();
    ApiError::invalid(
        "",
        "",
        "",
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {quoted}: {message}"),
            field: "patch".into(),
        }],
    )
}

/// Upstream's error for `Strict` problems found while decoding `object` of `def`'s kind
/// after the body (a custom resource's schema pruning): for a patch the 422 on the field
/// `patch`, else the 400 naming the kind.
pub fn strict_error(def: &ResourceDef, verb: Verb, object: &Value, message: String) -> ApiError {
    match verb {
        Verb::Patch => invalid_patch(&serde_json::to_vec(object).unwrap_or_default(), message),
        _ => ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {message}",
            kind = def.kind,
            version = def.version
        )),
    }
}

/// Parses `bytes` as JSON shaped by `root` (a definition of `defs`; `None` checks nothing
/// but duplicates): the value without its unknown fields, and the problems found.
pub fn parse(
    bytes: &[u8],
    defs: &Definitions,
    root: Option<&Value>,
) -> Result<(Value, FieldProblems), serde_json::Error> {
    let mut problems = FieldProblems::default();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = Node {
        defs,
        schema: root,
        path: String::new(),
        problems: &mut problems,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok((value, problems))
}

/// How a schema constrains the value it describes.
enum Shape<'s> {
    /// An object with known fields.
    Fields(&'s Map<String, Value>),
    /// An object whose values all follow one schema.
    Values(&'s Value),
    /// An array whose items follow one schema.
    Items(&'s Value),
    /// Anything (scalars, int-or-string, embedded objects, preserved unknown fields).
    Free,
}

/// A value being parsed at `path` under `schema`.
struct Node<'a, 's> {
    defs: &'s Definitions,
    schema: Option<&'s Value>,
    path: String,
    problems: &'a mut FieldProblems,
}

impl<'s> Node<'_, 's> {
    fn shape(&self) -> Shape<'s> {
        let Some(schema) = self.schema.map(|s| self.defs.resolve(s)) else {
            return Shape::Free;
        };
        if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
            return Shape::Free;
        }
        if let Some(fields) = schema.get("properties").and_then(Value::as_object) {
            return Shape::Fields(fields);
        }
        if let Some(values @ Value::Object(_)) = schema.get("additionalProperties") {
            return Shape::Values(values);
        }
        if let Some(items @ Value::Object(_)) = schema.get("items") {
            return Shape::Items(items);
        }
        Shape::Free
    }

    fn child(&mut self, path: String, schema: Option<&'s Value>) -> Node<'_, 's> {
        Node {
            defs: self.defs,
            schema,
            path,
            problems: self.problems,
        }
    }

    fn field_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_, '_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        let items = match self.shape() {
            Shape::Items(items) => Some(items),
            _ => None,
        };
        let mut out = Vec::new();
        loop {
            let path = format!("{}[{}]", self.path, out.len());
            match seq.next_element_seed(self.child(path, items))? {
                Some(value) => out.push(value),
                None => return Ok(Value::Array(out)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        let shape = self.shape();
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = self.field_path(&key);
            if out.contains_key(&key) {
                self.problems.0.push(FieldProblem::Duplicate(path.clone()));
            }
            let (schema, known) = match &shape {
                Shape::Fields(fields) => match fields.get(&key) {
                    Some(schema) => (Some(schema), true),
                    None => (None, false),
                },
                Shape::Values(values) => (Some(*values), true),
                Shape::Items(_) | Shape::Free => (None, true),
            };
            if known {
                let value = map.next_value_seed(self.child(path, schema))?;
                out.insert(key, value);
            } else {
                map.next_value::<IgnoredAny>()?;
                out.remove(&key);
                self.problems.0.push(FieldProblem::Unknown(path));
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ResourceRegistry;
    use serde_json::json;

    fn deployment_parse(body: &str) -> (Value, FieldProblems) {
        let defs = schema::builtin();
        parse(
            body.as_bytes(),
            defs,
            defs.of_kind("apps", "v1", "Deployment"),
        )
        .unwrap()
    }

    #[test]
    fn unknown_fields_are_found_and_dropped() {
        let (value, problems) = deployment_parse(
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a","labels":{"x":"y"},"bogus":1},
                "spec":{"foo":true,"replicas":2,"selector":{"matchLabels":{"a":"b"}},
                 "strategy":{"rollingUpdate":{"maxSurge":"25%","maxUnavailable":1}},
                 "template":{"spec":{"containers":[{"name":"c","image":"i","extra":{"deep":1},
                   "resources":{"limits":{"cpu":"1"}}}]}}},
                "status":{"replicas":1}}"#,
        );
        assert_eq!(
            problems.0,
            [
                FieldProblem::Unknown("metadata.bogus".into()),
                FieldProblem::Unknown("spec.foo".into()),
                FieldProblem::Unknown("spec.template.spec.containers[0].extra".into()),
            ]
        );
        assert_eq!(
            value["metadata"],
            json!({"name": "a", "labels": {"x": "y"}})
        );
        assert!(value["spec"].get("foo").is_none());
        assert_eq!(
            value["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
            "25%"
        );
        assert_eq!(
            value["spec"]["template"]["spec"]["containers"][0],
            json!({"name": "c", "image": "i", "resources": {"limits": {"cpu": "1"}}})
        );
    }

    #[test]
    fn duplicates_are_found_and_the_last_counts() {
        let (value, problems) =
            deployment_parse(r#"{"kind":"Deployment","spec":{"paused":true,"paused":false}}"#);
        assert_eq!(problems.0, [FieldProblem::Duplicate("spec.paused".into())]);
        assert_eq!(value["spec"]["paused"], false);
        assert_eq!(
            problems.strict_decoding_error(),
            "strict decoding error: duplicate field \"spec.paused\""
        );
    }

    #[test]
    fn embedded_and_free_form_values_are_not_checked() {
        let defs = schema::builtin();
        let revision = defs.of_kind("apps", "v1", "ControllerRevision");
        let (value, problems) = parse(
            br#"{"data":{"anything":{"goes":1}},"revision":1,"metadata":{"annotations":{"k":"v"}}}"#,
            defs,
            revision,
        )
        .unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(value["data"]["anything"]["goes"], 1);
    }

    #[test]
    fn directives_judge_problems() {
        let problems = FieldProblems(vec![
            FieldProblem::Unknown("spec.foo".into()),
            FieldProblem::Duplicate("spec.bar".into()),
        ]);
        let strict = |m: String| ApiError::bad_request(m);
        assert_eq!(
            Directive::Ignore.judge(&problems, strict).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            Directive::Warn.judge(&problems, strict).unwrap(),
            ["unknown field \"spec.foo\"", "duplicate field \"spec.bar\""]
        );
        let error = Directive::Strict.judge(&problems, strict).unwrap_err();
        assert_eq!(
            error.message(),
            "strict decoding error: unknown field \"spec.foo\", duplicate field \"spec.bar\""
        );
    }

    #[test]
    fn bad_directives_are_refused_as_upstream_refuses_them() {
        let error =
            Directive::from_query(&Query::parse(Some("fieldValidation=Loud")), Verb::Create)
                .unwrap_err();
        assert_eq!(error.code(), 422);
        assert_eq!(
            error.message(),
            "CreateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"Loud\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
        );
        assert_eq!(
            Directive::from_query(&Query::default(), Verb::Update).unwrap(),
            Directive::Warn
        );
    }

    #[test]
    fn strict_create_errors_name_the_body_kind() {
        let def = ResourceRegistry::builtin()
            .lookup("", "v1", "configmaps")
            .unwrap();
        let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"dta":{}}"#;
        let error = decode_object(
            &def,
            None,
            Verb::Create,
            &Query::parse(Some("fieldValidation=Strict")),
            body,
        )
        .unwrap_err();
        assert_eq!(error.code(), 400);
        assert_eq!(
            error.message(),
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"dta\""
        );
        let (object, warnings) =
            decode_object(&def, None, Verb::Create, &Query::default(), body).unwrap();
        assert_eq!(warnings, ["unknown field \"dta\""]);
        assert!(object.get("dta").is_none());
    }

    #[test]
    fn scale_bodies_are_checked_against_scale() {
        let def = ResourceRegistry::builtin()
            .lookup("apps", "v1", "deployments")
            .unwrap();
        let body =
            br#"{"kind":"Scale","apiVersion":"autoscaling/v1","spec":{"replicas":3,"replica":1}}"#;
        let error = decode_object(
            &def,
            Some("scale"),
            Verb::Update,
            &Query::parse(Some("fieldValidation=Strict")),
            body,
        )
        .unwrap_err();
        assert_eq!(
            error.message(),
            "Scale in version \"v1\" cannot be handled as a Scale: strict decoding error: unknown field \"spec.replica\""
        );
    }

    #[test]
    fn patched_objects_report_patch_duplicates_then_unknown_fields() {
        let def = ResourceRegistry::builtin()
            .lookup("", "v1", "configmaps")
            .unwrap();
        let patched =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "bogus": 1});
        let (clean, warnings) = check_patched(
            &def,
            &Query::default(),
            Some(br#"{"data":{"a":"1","a":"2"}}"#),
            &patched,
        )
        .unwrap();
        assert!(clean.get("bogus").is_none());
        assert_eq!(
            warnings,
            ["duplicate field \"data.a\"", "unknown field \"bogus\""]
        );
        let error = check_patched(
            &def,
            &Query::parse(Some("fieldValidation=Strict")),
            None,
            &patched,
        )
        .unwrap_err();
        assert_eq!(error.code(), 422);
        assert!(error
            .message()
            .ends_with("strict decoding error: unknown field \"bogus\""));
    }
}
