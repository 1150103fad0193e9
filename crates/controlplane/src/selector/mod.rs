//! Kubernetes label and field selectors: upstream's syntax, error messages and matching.
//!
//! Label selectors follow `k8s.io/apimachinery/pkg/labels` (`Parse`): the same lexer, the same
//! recursive-descent parser, the same key/value validation and the same messages (`unable to
//! parse requirement: ...`, `found '<token>', expected: ...`). Field selectors follow
//! `k8s.io/apimachinery/pkg/fields` (`ParseSelector`) for the syntax and the registries'
//! field-label conversion functions and `ToSelectableFields` for which fields each resource
//! accepts and how their values are rendered.
//!
//! The parts:
//!
//! * `label`: [`LabelSelector`], its requirements and how they match labels;
//! * `label_lexer` and `label_parser`: upstream's tokenizer and recursive-descent parser;
//! * `label_validation`: label key/value validation and upstream's error texts;
//! * `field`: [`FieldSelector`]: its syntax, support checks and matching;
//! * `fields_by_kind`: which field labels each resource accepts, and how it refuses others;
//! * `builtin_fields`: how built-in objects render their fields (aliases, typed defaults);
//! * `go`: Go-compatible quoting and value formatting.

mod builtin_fields;
mod field;
mod fields_by_kind;
mod go;
mod label;
mod label_lexer;
mod label_parser;
mod label_validation;

pub use field::FieldSelector;
pub use label::LabelSelector;

/// A selector that cannot be parsed or asks for an unsupported field. The text is the message
/// upstream gives; callers answer it as a 400 `BadRequest` status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

/// Helpers shared by the selector tests, and a robustness test over both parsers.
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    pub(super) fn labelled(labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": labels}})
    }

    pub(super) fn label_matches(selector: &str, labels: Value) -> bool {
        LabelSelector::parse(selector)
            .unwrap_or_else(|e| panic!("{selector:?}: {e}"))
            .matches(&labelled(labels))
    }

    pub(super) fn label_error(selector: &str) -> String {
        match LabelSelector::parse(selector) {
            Ok(parsed) => panic!("{selector:?} parsed: {parsed:?}"),
            Err(SelectorError(message)) => message,
        }
    }

    pub(super) fn field_matches(selector: &str, object: &Value) -> bool {
        FieldSelector::parse(selector)
            .unwrap_or_else(|e| panic!("{selector:?}: {e}"))
            .matches(object)
    }

    pub(super) fn pod() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "node-a", "restartPolicy": "Always", "schedulerName": "default-scheduler", "serviceAccountName": "default"},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]}
        })
    }

    /// xorshift64*: deterministic, dependency-free.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn parsers_never_panic_on_garbage() {
        const PIECES: &[&str] = &[
            "a",
            "b",
            "Z",
            "0",
            "9",
            "-",
            "_",
            ".",
            "/",
            "=",
            "==",
            "!",
            "!=",
            "(",
            ")",
            ",",
            "<",
            ">",
            " ",
            "\t",
            "\n",
            "\r",
            "\0",
            "\\",
            "in",
            "notin",
            " in ",
            "é",
            "함",
            "\u{feff}",
            "\u{1}",
            "metadata.name",
            "spec.host",
            "x",
            "\\,",
            "\\=",
            "\\\\",
        ];
        let objects = [
            pod(),
            labelled(json!({"a": "b", "in": "notin", "x": "1"})),
            json!({"apiVersion": "example.com/v1", "kind": "W", "a": {"b": [1, 2]}}),
            json!(null),
            json!([1, 2]),
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..rng.below(24) {
                text.push_str(PIECES[rng.below(PIECES.len())]);
            }
            if let Ok(selector) = LabelSelector::parse(&text) {
                for object in &objects {
                    let _ = selector.matches(object);
                }
            }
            if let Ok(selector) = FieldSelector::parse(&text) {
                let _ = selector.check_supported("", "pods", &[]);
                let _ = selector.check_supported("example.com", "widgets", &["a.b".to_owned()]);
                let _ = selector.required_value("metadata.name");
                for object in &objects {
                    let _ = selector.matches(object);
                }
            }
            // Raw bytes too, made valid UTF-8 lossily.
            let bytes: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
            let text = String::from_utf8_lossy(&bytes);
            let _ = LabelSelector::parse(&text);
            let _ = FieldSelector::parse(&text);
        }
    }
}
