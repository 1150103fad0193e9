//! Label selectors: [`LabelSelector`], its requirements and how they match an object's labels.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::label_parser::Parser;
use super::label_validation::{aggregate, invalid_value, label_value_errors};
use super::SelectorError;

/// A parsed `labelSelector`: the conjunction of its requirements over `metadata.labels`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

impl LabelSelector {
    /// Parses `labelSelector` (`a=b,c!=d,e in (x,y),f notin (z),g,!h`, `==` too; empty = everything).
    ///
    /// Upstream's `>`/`<` integer comparisons (`replicas>1`) are accepted as well, and so are its
    /// quirks: `x in ()` means "x is the empty string", `in`/`notin` may be keys or values.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut requirements = Parser::new(text).parse().map_err(SelectorError)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements })
    }

    /// Whether an object's `metadata.labels` satisfy every requirement. A label whose value is
    /// not a JSON string counts as absent.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object
            .get("metadata")
            .and_then(|metadata| metadata.get("labels"))
            .and_then(Value::as_object);
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True when it selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// `selection.Operator`, with `=` and `==` folded together (they mean the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LabelOperator {
    Exists,
    DoesNotExist,
    Equals,
    NotEquals,
    In,
    NotIn,
    GreaterThan,
    LessThan,
}

/// One `key <op> values` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LabelRequirement {
    key: String,
    operator: LabelOperator,
    /// Sorted and de-duplicated, as upstream's `sets.String.List()` leaves them.
    values: Vec<String>,
}

impl LabelRequirement {
    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let value = labels
            .and_then(|labels| labels.get(&self.key))
            .and_then(Value::as_str);
        let listed = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            LabelOperator::Exists => value.is_some(),
            LabelOperator::DoesNotExist => value.is_none(),
            LabelOperator::Equals | LabelOperator::In => value.is_some_and(listed),
            LabelOperator::NotEquals | LabelOperator::NotIn => !value.is_some_and(listed),
            LabelOperator::GreaterThan | LabelOperator::LessThan => {
                let actual = value.and_then(|v| v.parse::<i64>().ok());
                let bound = self.values.first().and_then(|v| v.parse::<i64>().ok());
                match (actual, bound) {
                    (Some(actual), Some(bound)) if self.operator == LabelOperator::GreaterThan => {
                        actual > bound
                    }
                    (Some(actual), Some(bound)) => actual < bound,
                    _ => false,
                }
            }
        }
    }
}

/// Upstream `NewRequirement`'s checks that the parser can trip (the key is already checked):
/// integer values for `>`/`<`, then every value a valid label value.
pub(super) fn new_requirement(
    key: &str,
    operator: LabelOperator,
    values: BTreeSet<&str>,
) -> Result<LabelRequirement, String> {
    let values: Vec<String> = values.into_iter().map(str::to_owned).collect();
    let mut errors = Vec::new();
    if matches!(
        operator,
        LabelOperator::GreaterThan | LabelOperator::LessThan
    ) {
        for (i, value) in values.iter().enumerate() {
            if value.parse::<i64>().is_err() {
                errors.push(invalid_value(
                    &format!("values[{i}]"),
                    value,
                    "for 'Gt', 'Lt' operators, the value must be an integer",
                ));
            }
        }
    }
    for (i, value) in values.iter().enumerate() {
        let problems = label_value_errors(value);
        if !problems.is_empty() {
            errors.push(invalid_value(
                &format!("values[{i}][{key}]"),
                value,
                &problems.join("; "),
            ));
        }
    }
    if errors.is_empty() {
        Ok(LabelRequirement {
            key: key.to_owned(),
            operator,
            values,
        })
    } else {
        Err(aggregate(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::tests::{label_matches, labelled};
    use serde_json::json;

    #[test]
    fn empty_label_selector_selects_everything() {
        for text in ["", "   ", " \t\r\n"] {
            let selector = LabelSelector::parse(text).unwrap();
            assert!(selector.is_empty());
            assert!(selector.matches(&json!({})));
            assert!(selector.matches(&labelled(json!({"a": "b"}))));
        }
        assert!(!LabelSelector::parse("a").unwrap().is_empty());
    }

    #[test]
    fn label_equality_operators() {
        for op in ["=", "=="] {
            assert!(label_matches(&format!("app{op}web"), json!({"app": "web"})));
            assert!(!label_matches(&format!("app{op}web"), json!({"app": "db"})));
            assert!(!label_matches(&format!("app{op}web"), json!({})));
        }
        assert!(label_matches("app!=web", json!({"app": "db"})));
        assert!(!label_matches("app!=web", json!({"app": "web"})));
        assert!(label_matches("app!=web", json!({"other": "web"})));
        // An empty value after the operator is the empty string.
        assert!(label_matches("app=", json!({"app": ""})));
        assert!(label_matches("app= ,b", json!({"app": "", "b": "x"})));
        assert!(!label_matches("app=", json!({"app": "x"})));
    }

    #[test]
    fn label_set_operators() {
        assert!(label_matches(
            "env in (prod,staging)",
            json!({"env": "staging"})
        ));
        assert!(!label_matches(
            "env in (prod,staging)",
            json!({"env": "dev"})
        ));
        assert!(!label_matches("env in (prod)", json!({})));
        assert!(label_matches("env notin (prod)", json!({"env": "dev"})));
        assert!(!label_matches(
            "env notin (prod, dev)",
            json!({"env": "dev"})
        ));
        assert!(label_matches("env notin (prod)", json!({})));
        // Upstream's empty-string members.
        assert!(label_matches("x in ()", json!({"x": ""})));
        assert!(label_matches("x in (,a)", json!({"x": ""})));
        assert!(label_matches("x in (a,)", json!({"x": ""})));
        assert!(label_matches("x in (a,,b)", json!({"x": ""})));
        assert!(label_matches(
            "x in (foo,,baz),y,z notin ()",
            json!({"x": "baz", "y": "1"})
        ));
        assert!(!label_matches("x in (a,b)", json!({"x": ""})));
    }

    #[test]
    fn label_existence_operators() {
        assert!(label_matches("app", json!({"app": "anything"})));
        assert!(label_matches("app", json!({"app": ""})));
        assert!(!label_matches("app", json!({"other": "x"})));
        assert!(label_matches("!app", json!({"other": "x"})));
        assert!(!label_matches("!app", json!({"app": ""})));
        // No labels at all, or labels that are not a map.
        let selector = LabelSelector::parse("!app,x notin (y),z!=w").unwrap();
        assert!(selector.matches(&json!({"metadata": {"name": "n"}})));
        assert!(selector.matches(&json!({"metadata": {"labels": null}})));
        assert!(!LabelSelector::parse("app").unwrap().matches(&json!({})));
        // A non-string label value counts as absent.
        assert!(label_matches("!app", json!({"app": 1})));
    }

    #[test]
    fn label_integer_comparisons() {
        assert!(label_matches("x>1", json!({"x": "2"})));
        assert!(!label_matches("x>1", json!({"x": "1"})));
        assert!(label_matches("x<1", json!({"x": "0"})));
        assert!(!label_matches("x<1", json!({"x": "2"})));
        assert!(!label_matches("x>1", json!({})));
        assert!(!label_matches("x>1", json!({"x": "two"})));
        assert!(label_matches("x>1,x<5", json!({"x": "3"})));
    }
}
