//! Field selectors: [`FieldSelector`] parsing (`k8s.io/apimachinery/pkg/fields`), the check
//! that a resource supports its fields, and matching objects.

use serde_json::Value;

use super::builtin_fields::{builtin_field_value, canonical_label, is_builtin_object};
use super::fields_by_kind::FieldRules;
use super::go::render;
use super::SelectorError;

/// A parsed `fieldSelector`: the conjunction of `field=value` / `field!=value` terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// In upstream's order: sorted by the raw term text.
    requirements: Vec<FieldRequirement>,
}

/// One `field=value` (`equals`) or `field!=value` term, value unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldRequirement {
    field: String,
    equals: bool,
    value: String,
}

impl FieldSelector {
    /// Parses `fieldSelector` (`metadata.name=x,status.phase!=Running`; `=`/`==`/`!=`; `\` escapes `,` `=` `\`).
    ///
    /// The field is everything before the first operator, taken literally (no trimming).
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut terms = split_terms(text);
        terms.sort_unstable();
        let mut requirements = Vec::with_capacity(terms.len());
        for term in terms.into_iter().filter(|term| !term.is_empty()) {
            let Some((field, operator, raw_value)) = split_term(term) else {
                return Err(SelectorError(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                )));
            };
            requirements.push(FieldRequirement {
                field: field.to_owned(),
                equals: operator != "!=",
                value: unescape_value(raw_value)?,
            });
        }
        Ok(Self { requirements })
    }

    /// Checks every field is selectable for the resource (`group`, `plural`), as upstream's
    /// field-label conversion functions decide; `extra` lists additional selectable JSON paths
    /// (CRD `selectableFields`, with or without the leading `.`).
    ///
    /// Built-ins with their own list: pods, nodes, replicationcontrollers, events (core and
    /// `events.k8s.io`), namespaces, secrets, services, `batch` jobs and `certificates.k8s.io`
    /// certificatesigningrequests, clustertrustbundles and podcertificaterequests. Other built-ins
    /// allow `metadata.name` and `metadata.namespace` only; so do custom resources, plus `extra`.
    /// Unsupported → `SelectorError` with upstream's message for that resource: mostly
    /// `field label not supported: <f>`; `"<f>" is not a known field selector: only
    /// "metadata.name", "metadata.namespace"` for built-ins without a list (e.g. configmaps,
    /// apps replicasets); `field label "<f>" not supported for Job` for jobs. The first offending
    /// term in upstream's order (sorted term text) is the one reported. (Upstream also refuses
    /// `metadata.namespace` for cluster-scoped custom resources; the scope is not known here.)
    pub fn check_supported(
        &self,
        group: &str,
        plural: &str,
        extra: &[String],
    ) -> Result<(), SelectorError> {
        let rules = FieldRules::for_resource(group, plural);
        for requirement in &self.requirements {
            let field = requirement.field.as_str();
            let in_extra = extra
                .iter()
                .any(|path| path.strip_prefix('.').unwrap_or(path) == field);
            if !in_extra && !rules.allows(field) {
                return Err(SelectorError(rules.complaint.message(field)));
            }
        }
        Ok(())
    }

    /// Whether the object's fields satisfy every requirement, values compared as upstream renders
    /// them.
    ///
    /// Objects of custom resources (an `apiVersion` outside the built-in groups) are read at the
    /// literal JSON path: strings as-is, booleans `true`/`false`, numbers in decimal, a missing
    /// field as `""`. Built-in objects (or objects without `apiVersion`) are rendered like
    /// upstream's typed `ToSelectableFields`: `spec.hostNetwork`/`spec.unschedulable` default to
    /// `false`, `status.replicas` to `0`; `status.successful` is a job's `status.succeeded`
    /// (default `0`); `spec.host` is `spec.nodeName`; `status.podIP` is the primary pod IP;
    /// `status.podIPs` is always `""` (upstream accepts the label but never fills it); event
    /// fields read either the core (`involvedObject`, `reportingComponent`, `source.component`)
    /// or the `events.k8s.io` shape (`regarding`, `reportingController`,
    /// `deprecatedSource.component`).
    pub fn matches(&self, object: &Value) -> bool {
        let builtin = is_builtin_object(object);
        self.requirements.iter().all(|requirement| {
            let actual = if builtin {
                builtin_field_value(object, canonical_label(&requirement.field))
            } else {
                render(lookup(object, &requirement.field))
            };
            (actual == requirement.value.as_str()) == requirement.equals
        })
    }

    /// True when it selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The exact value required for `field` by an `=`/`==` requirement, if any (lets callers narrow a
    /// list to one key for `metadata.name=x`). Aliases count: `spec.host` for `spec.nodeName`,
    /// `regarding.*` for `involvedObject.*`, `reportingController` for `reportingComponent`.
    pub fn required_value(&self, field: &str) -> Option<&str> {
        let wanted = canonical_label(field);
        self.requirements
            .iter()
            .find(|r| r.equals && canonical_label(&r.field) == wanted)
            .map(|r| r.value.as_str())
    }
}

/// Upstream `splitTerms`: split at commas not escaped by a backslash (escapes are kept).
fn split_terms(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in text.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(text.get(start..i).unwrap_or(""));
            start = i + 1;
        }
    }
    terms.push(text.get(start..).unwrap_or(""));
    terms
}

/// Upstream `splitTerm`: the first `!=`, `==` or `=` splits the term (no escaping on the left).
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let (field, rest) = term.split_at_checked(i)?;
        for operator in ["!=", "==", "="] {
            if let Some(value) = rest.strip_prefix(operator) {
                return Some((field, operator, value));
            }
        }
    }
    None
}

/// Upstream `UnescapeValue`: `\\`, `\,` and `\=` are the only escapes; bare `,`/`=` are errors.
fn unescape_value(raw: &str) -> Result<String, SelectorError> {
    let mut value = String::with_capacity(raw.len());
    let mut in_slash = false;
    for c in raw.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(SelectorError(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                )));
            }
            value.push(c);
            in_slash = false;
        } else {
            match c {
                '\\' => in_slash = true,
                ',' | '=' => {
                    // Go prints the rune with %v: its code point in decimal.
                    return Err(SelectorError(format!(
                        "invalid field selector: unescaped character in value: {}",
                        c as u32
                    )));
                }
                _ => value.push(c),
            }
        }
    }
    if in_slash {
        return Err(SelectorError(
            "invalid field selector: invalid escape sequence: \\".to_owned(),
        ));
    }
    Ok(value)
}

/// The value at a dotted JSON path.
pub(super) fn lookup<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(object, |value, key| value.get(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::tests::field_matches;
    use serde_json::json;

    fn field_error(selector: &str) -> String {
        match FieldSelector::parse(selector) {
            Ok(parsed) => panic!("{selector:?} parsed: {parsed:?}"),
            Err(SelectorError(message)) => message,
        }
    }

    #[test]
    fn field_selector_parses_operators_and_escapes() {
        let selector =
            FieldSelector::parse("metadata.name=a,status.phase!=Running,spec.nodeName==n1")
                .unwrap();
        assert!(!selector.is_empty());
        assert_eq!(selector.required_value("metadata.name"), Some("a"));
        assert_eq!(selector.required_value("spec.nodeName"), Some("n1"));
        assert_eq!(selector.required_value("status.phase"), None);
        assert_eq!(selector.required_value("metadata.namespace"), None);

        let escaped = FieldSelector::parse(r"metadata.name=a\,b\=c\\d,x=").unwrap();
        assert_eq!(escaped.required_value("metadata.name"), Some(r"a,b=c\d"));
        assert_eq!(escaped.required_value("x"), Some(""));
        // Empty terms are skipped; an empty selector selects everything.
        for text in ["", ",", ",,"] {
            assert!(FieldSelector::parse(text).unwrap().is_empty());
        }
        assert_eq!(
            FieldSelector::parse("a=1,,b=2").unwrap().requirements.len(),
            2
        );
        // The first operator splits; the rest belongs to the value.
        let bang = FieldSelector::parse("a!b=c").unwrap();
        assert_eq!(bang.required_value("a!b"), Some("c"));
        let multibyte = FieldSelector::parse("함=수,목=록").unwrap();
        assert_eq!(multibyte.required_value("목"), Some("록"));
        // A literal escaped backslash before a comma ends the value.
        let two = FieldSelector::parse(r"k=\\,k2=v2").unwrap();
        assert_eq!(two.required_value("k"), Some("\\"));
        assert_eq!(two.required_value("k2"), Some("v2"));
    }

    #[test]
    fn field_selector_syntax_errors() {
        assert_eq!(
            field_error("metadata.name"),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            field_error("x=a,b"),
            "invalid selector: 'x=a,b'; can't understand 'b'"
        );
        assert_eq!(
            field_error("x in (a)"),
            "invalid selector: 'x in (a)'; can't understand 'x in (a)'"
        );
        assert_eq!(
            field_error("x==a==b"),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            field_error("x=a=b"),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            field_error(r"x=\a"),
            r"invalid field selector: invalid escape sequence: \a"
        );
        assert_eq!(
            field_error(r"x=a\"),
            r"invalid field selector: invalid escape sequence: \"
        );
        assert_eq!(
            field_error(r"x=\\\"),
            r"invalid field selector: invalid escape sequence: \"
        );
        // Terms are checked in sorted order, so the reported one is the smallest.
        assert_eq!(
            field_error("zz,aa"),
            "invalid selector: 'zz,aa'; can't understand 'aa'"
        );
    }

    #[test]
    fn field_matching_for_custom_resources() {
        let widget = json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": "d"},
            "spec": {"color": "red", "size": 3, "big": 12345678901_i64, "ratio": 1.5, "tiny": 0.00001, "enabled": false, "host": "h"}
        });
        assert!(field_matches(
            "spec.color=red,spec.size=3,spec.enabled=false",
            &widget
        ));
        assert!(field_matches(
            "spec.big=12345678901,spec.ratio=1.5",
            &widget
        ));
        assert!(field_matches("spec.tiny=1e-05", &widget));
        assert!(field_matches("spec.missing=", &widget));
        assert!(field_matches("spec.missing!=x", &widget));
        // No built-in rendering for custom kinds: no aliases, no typed defaults.
        assert!(field_matches("spec.host=h", &widget));
        assert!(field_matches("spec.unschedulable=", &widget));
        assert!(field_matches("status.replicas=", &widget));
        assert!(!field_matches("spec.color=blue", &widget));
    }
}
