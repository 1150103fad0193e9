//! KubeFlex's template syntax: `{{.Var}}` (spaces allowed inside the braces) in any string
//! of a manifest, keys included. Only variables are supported; anything else between
//! `{{` and `}}` is an error, and so is a variable nobody defined (where KubeFlex, through
//! Go's `text/template`, would write `<no value>` into the object).
//!
//! Substitution works on the manifest's strings, not on its text, so a value holding
//! quotes or newlines can never break the manifest's structure.

use crate::HookError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `template` with every `{{.Var}}` replaced by its value in `vars`.
pub fn render(template: &Value, vars: &BTreeMap<String, String>) -> Result<Value, HookError> {
    Ok(match template {
        Value::String(text) => Value::String(render_str(text, vars)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| render(item, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut rendered = Map::new();
            for (key, value) in map {
                rendered.insert(render_str(key, vars)?, render(value, vars)?);
            }
            Value::Object(rendered)
        }
        other => other.clone(),
    })
}

fn render_str(text: &str, vars: &BTreeMap<String, String>) -> Result<String, HookError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| HookError::Template(format!("unclosed action in {text:?}")))?;
        let action = after[..end].trim();
        let name = action
            .strip_prefix('.')
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_'))
            .ok_or_else(|| {
                HookError::Template(format!(
                    "unsupported action {{{{{action}}}}} in {text:?}: only variables such as {{{{.Name}}}} are supported"
                ))
            })?;
        let value = vars
            .get(name)
            .ok_or_else(|| HookError::Template(format!("variable {name} is not defined")))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> BTreeMap<String, String> {
        [("Name", "web"), ("Msg", "say \"hi\"\nbye")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn variables_are_replaced_in_strings_and_keys() {
        let template = json!({"metadata": {"name": "{{.Name}}-x", "labels": {"{{ .Name }}": "{{.Msg}}"}},
                              "spec": {"replicas": 2, "args": ["{{.Name}}", "plain"]}});
        assert_eq!(
            render(&template, &vars()).unwrap(),
            json!({"metadata": {"name": "web-x", "labels": {"web": "say \"hi\"\nbye"}},
                   "spec": {"replicas": 2, "args": ["web", "plain"]}})
        );
    }

    #[test]
    fn undefined_variables_and_other_actions_are_errors() {
        let error = render(&json!("{{.Missing}}"), &vars()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "template: variable Missing is not defined"
        );
        let error = render(&json!("{{if .Name}}x{{end}}"), &vars()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("unsupported action {{if .Name}}"),
            "{error}"
        );
        assert!(render(&json!("{{.Name"), &vars()).is_err());
        assert!(render(&json!("{{.}}"), &vars()).is_err());
    }
}
