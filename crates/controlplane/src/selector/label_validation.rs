//! Label key and value validation (`k8s.io/apimachinery/pkg/util/validation`), worded as
//! upstream words its errors.

use super::go::go_quote;

/// `field.Invalid(path, value, detail).Error()`.
pub(super) fn invalid_value(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {}: {detail}", go_quote(value))
}

/// `utilerrors.NewAggregate(errs).Error()`: one message as is, several de-duplicated in brackets.
pub(super) fn aggregate(errors: Vec<String>) -> String {
    let mut unique: Vec<String> = Vec::with_capacity(errors.len());
    for error in errors {
        if !unique.contains(&error) {
            unique.push(error);
        }
    }
    if unique.len() == 1 {
        unique.concat()
    } else {
        format!("[{}]", unique.join(", "))
    }
}

const LABEL_KEY_FORMAT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_KEY_MESSAGE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FORMAT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MESSAGE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FORMAT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const LABEL_MAX_LENGTH: usize = 63;
const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;

/// `content.RegexError`, examples and all (including upstream's doubled space before "or").
fn regex_error(message: &str, format: &str, examples: &[&str]) -> String {
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{message} (e.g. {}regex used for validation is '{format}')",
        examples.join(" or ")
    )
}

fn max_length_error(length: usize) -> String {
    format!("must be no more than {length} bytes")
}

/// Matches `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`.
fn is_label_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Matches the RFC 1123 subdomain pattern: dot-separated lowercase DNS labels.
fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let bytes = label.as_bytes();
        let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        match (bytes.first(), bytes.last()) {
            (Some(first), Some(last)) => {
                edge(first) && edge(last) && bytes.iter().all(|b| edge(b) || *b == b'-')
            }
            _ => false,
        }
    })
}

/// `content.IsLabelKey`: `[prefix/]name`, prefix a DNS subdomain, name at most 63 bytes.
pub(super) fn label_key_errors(key: &str) -> Vec<String> {
    let parts: Vec<&str> = key.split('/').collect();
    let mut errors = Vec::new();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_owned());
            } else {
                if prefix.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
                    errors.push(format!(
                        "prefix part {}",
                        max_length_error(DNS1123_SUBDOMAIN_MAX_LENGTH)
                    ));
                }
                if !is_dns1123_subdomain(prefix) {
                    errors.push(format!(
                        "prefix part {}",
                        regex_error(
                            DNS1123_SUBDOMAIN_MESSAGE,
                            DNS1123_SUBDOMAIN_FORMAT,
                            &["example.com"]
                        )
                    ));
                }
            }
            *name
        }
        _ => {
            return vec![format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    LABEL_KEY_MESSAGE,
                    LABEL_KEY_FORMAT,
                    &["MyName", "my.name", "123-abc"]
                )
            )]
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_owned());
    } else if name.len() > LABEL_MAX_LENGTH {
        errors.push(format!("name part {}", max_length_error(LABEL_MAX_LENGTH)));
    }
    if !is_label_name(name) {
        errors.push(format!(
            "name part {}",
            regex_error(
                LABEL_KEY_MESSAGE,
                LABEL_KEY_FORMAT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errors
}

/// `content.IsLabelValue`: empty, or a label name of at most 63 bytes.
pub(super) fn label_value_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > LABEL_MAX_LENGTH {
        errors.push(max_length_error(LABEL_MAX_LENGTH));
    }
    if !value.is_empty() && !is_label_name(value) {
        errors.push(regex_error(
            LABEL_VALUE_MESSAGE,
            LABEL_VALUE_FORMAT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use crate::selector::tests::label_error;
    use crate::selector::LabelSelector;

    const NAME_PART_REGEX: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const VALUE_REGEX: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    #[test]
    fn label_key_and_value_validation_errors() {
        assert_eq!(
            label_error("-a=b"),
            format!("unable to parse requirement: <nil>: Invalid value: \"-a\": {NAME_PART_REGEX}")
        );
        assert_eq!(
            label_error("a/=b"),
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"a/\": name part must be non-empty; {NAME_PART_REGEX}"
            )
        );
        assert_eq!(
            label_error("/a"),
            "unable to parse requirement: <nil>: Invalid value: \"/a\": prefix part must be non-empty"
        );
        assert_eq!(
            label_error("Example.com/a"),
            "unable to parse requirement: <nil>: Invalid value: \"Example.com/a\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        assert!(label_error("a/b/c").starts_with(
            "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a valid label key must consist of alphanumeric characters"
        ));
        assert!(label_error("a/b/c").ends_with(
            "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ));
        let long = "k".repeat(64);
        assert_eq!(
            label_error(&long),
            format!("unable to parse requirement: <nil>: Invalid value: \"{long}\": name part must be no more than 63 bytes")
        );
        assert!(LabelSelector::parse(&"k".repeat(63)).is_ok());
        assert!(LabelSelector::parse(&format!("{}/k", "a".repeat(253))).is_ok());
        assert!(label_error(&format!("{}/k", "a".repeat(254)))
            .contains("prefix part must be no more than 253 bytes"));

        assert_eq!(
            label_error("x=a||y=b"),
            format!(
                "unable to parse requirement: values[0][x]: Invalid value: \"a||y\": {VALUE_REGEX}"
            )
        );
        assert_eq!(
            label_error("x in (ok,-bad)"),
            format!(
                "unable to parse requirement: values[0][x]: Invalid value: \"-bad\": {VALUE_REGEX}"
            )
        );
        let long_value = "v".repeat(64);
        assert_eq!(
            label_error(&format!("x={long_value}")),
            format!("unable to parse requirement: values[0][x]: Invalid value: \"{long_value}\": must be no more than 63 bytes")
        );
        // Several problems are aggregated in brackets.
        assert_eq!(
            label_error("x in (a-,b-)"),
            format!(
                "unable to parse requirement: [values[0][x]: Invalid value: \"a-\": {VALUE_REGEX}, values[1][x]: Invalid value: \"b-\": {VALUE_REGEX}]"
            )
        );
        assert_eq!(
            label_error("x<a"),
            "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        assert_eq!(
            label_error("x>"),
            "unable to parse requirement: values[0]: Invalid value: \"\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        assert_eq!(
            label_error("x>-1"),
            format!(
                "unable to parse requirement: values[0][x]: Invalid value: \"-1\": {VALUE_REGEX}"
            )
        );
        // Non-ASCII and control bytes are quoted the way Go's %q does.
        assert!(label_error("é=x").contains("Invalid value: \"é\": "));
        assert!(label_error("a\u{1}=x").contains("Invalid value: \"a\\x01\": "));
        assert!(label_error("x=\u{a0}").contains("Invalid value: \"\\u00a0\": "));
    }
}
