//! Printer columns: a version's `additionalPrinterColumns` (or, without any, `Age`) as
//! Table columns, with cells read by the JSONPath subset CRDs use (`.a.b`, `.a[0].b`,
//! `.a[*]`, `.a['b.c']`, and filters `.a[?(@.type=='Ready')]` with `==`, `!=` or a bare
//! existence test, as KubeFlex's own columns use). Written here rather than taken from a JSONPath crate because
//! upstream's rules are narrower than JSONPath's (the first match only, typed cells, dates
//! as ages) and the subset is small.

use serde_json::{json, Value};

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    /// `[?(@.path == literal)]`, `[?(@.path != literal)]` or `[?(@.path)]`.
    Filter(Filter),
}

/// A filter over list items (or map values).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Filter {
    path: Vec<String>,
    test: Option<(bool, Value)>,
}

impl Filter {
    /// Parses the inside of `[?( ... )]`.
    fn parse(text: &str) -> Option<Filter> {
        let (left, test) = match text.split_once("==") {
            Some((left, right)) => (left, Some((true, right))),
            None => match text.split_once("!=") {
                Some((left, right)) => (left, Some((false, right))),
                None => (text, None),
            },
        };
        let path = left.trim().strip_prefix('@')?;
        let path: Vec<String> = path.split('.').skip(1).map(str::to_owned).collect();
        if path.is_empty() || path.iter().any(String::is_empty) {
            return None;
        }
        let test = match test {
            None => None,
            Some((equal, literal)) => {
                let literal = literal.trim();
                let value = match literal
                    .strip_prefix('\'')
                    .and_then(|l| l.strip_suffix('\''))
                    .or_else(|| literal.strip_prefix('"').and_then(|l| l.strip_suffix('"')))
                {
                    Some(text) => Value::String(text.to_owned()),
                    None => serde_json::from_str(literal).ok()?,
                };
                Some((equal, value))
            }
        };
        Some(Filter { path, test })
    }

    fn accepts(&self, item: &Value) -> bool {
        let found = self
            .path
            .iter()
            .try_fold(item, |value, name| value.get(name));
        match (&self.test, found) {
            (None, found) => found.is_some(),
            (Some((equal, literal)), Some(found)) => (found == literal) == *equal,
            (Some((equal, _)), None) => !equal,
        }
    }
}

/// A parsed column path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPath(Vec<Step>);

impl JsonPath {
    /// Parses `.a.b[0]['c.d'][*]`, with or without surrounding `{}`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let inner = text
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or(text);
        let chars: Vec<char> = inner.chars().collect();
        let mut steps = Vec::new();
        let mut i = 0;
        if chars.first() != Some(&'.') {
            return Err(format!(
                "must be a simple json path starting with ., got {text:?}"
            ));
        }
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    i += 1;
                    let start = i;
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        if chars[i] == '\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                    let name: String = chars[start..i.min(chars.len())]
                        .iter()
                        .collect::<String>()
                        .replace("\\.", ".");
                    if !name.is_empty() {
                        steps.push(Step::Field(name));
                    } else if i < chars.len() && chars[i] != '[' {
                        return Err(format!("empty field name in {text:?}"));
                    }
                }
                '[' if chars.get(i + 1) == Some(&'?') => {
                    let rest: String = chars[i..].iter().collect();
                    let end = rest
                        .find(")]")
                        .ok_or_else(|| format!("unclosed filter in {text:?}"))?;
                    let inside = rest[2..end].trim();
                    let filter = inside
                        .strip_prefix('(')
                        .and_then(Filter::parse)
                        .ok_or_else(|| format!("unsupported filter {inside:?} in {text:?}"))?;
                    steps.push(Step::Filter(filter));
                    i += rest[..end + 2].chars().count();
                }
                '[' => {
                    let end = chars[i..]
                        .iter()
                        .position(|c| *c == ']')
                        .ok_or_else(|| format!("unclosed [ in {text:?}"))?;
                    let inside: String = chars[i + 1..i + end].iter().collect();
                    let inside = inside.trim();
                    if inside == "*" {
                        steps.push(Step::All);
                    } else if let Some(key) =
                        inside.strip_prefix('\'').and_then(|k| k.strip_suffix('\''))
                    {
                        steps.push(Step::Field(key.to_owned()));
                    } else {
                        let index = inside
                            .parse()
                            .map_err(|_| format!("unsupported index {inside:?} in {text:?}"))?;
                        steps.push(Step::Index(index));
                    }
                    i += end + 1;
                }
                other => return Err(format!("unexpected {other:?} in {text:?}")),
            }
        }
        Ok(JsonPath(steps))
    }

    /// The first value the path finds in `object`, as upstream's columns use only it.
    pub fn first<'a>(&self, object: &'a Value) -> Option<&'a Value> {
        let mut found = vec![object];
        for step in &self.0 {
            found = found
                .into_iter()
                .flat_map(|value| -> Vec<&'a Value> {
                    match step {
                        Step::Field(name) => value.get(name).into_iter().collect(),
                        Step::Index(i) => {
                            let list = value.as_array();
                            let len = list.map_or(0, Vec::len) as i64;
                            let at = if *i < 0 { len + i } else { *i };
                            list.and_then(|l| l.get(usize::try_from(at).ok()?))
                                .into_iter()
                                .collect()
                        }
                        Step::All => match value {
                            Value::Array(items) => items.iter().collect(),
                            Value::Object(map) => map.values().collect(),
                            _ => Vec::new(),
                        },
                        Step::Filter(filter) => match value {
                            Value::Array(items) => {
                                items.iter().filter(|item| filter.accepts(item)).collect()
                            }
                            Value::Object(map) => {
                                map.values().filter(|item| filter.accepts(item)).collect()
                            }
                            _ => Vec::new(),
                        },
                    }
                })
                .collect();
        }
        found.into_iter().next()
    }
}

/// One column of a custom resource's Table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrinterColumn {
    /// The column header.
    pub name: String,
    /// `integer`, `number`, `string`, `boolean` or `date`.
    pub kind: String,
    /// An OpenAPI format hint for clients (`int32`, `date-time`, ...).
    pub format: String,
    /// What the column shows.
    pub description: String,
    /// 0 for the default view; higher only in `-o wide`.
    pub priority: i64,
    /// Where a cell is read from.
    pub path: JsonPath,
}

impl PrinterColumn {
    /// A version's columns: its `additionalPrinterColumns`, or `Age` when it has none.
    pub fn of_version(version: &Value) -> Vec<PrinterColumn> {
        let given = version["additionalPrinterColumns"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let given = if given.is_empty() {
            vec![json!({
                "name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
                "description": "CreationTimestamp is a timestamp representing the server time when this object was created.",
            })]
        } else {
            given
        };
        given
            .iter()
            .filter_map(|c| {
                let text = |k: &str| c[k].as_str().unwrap_or("").to_owned();
                Some(PrinterColumn {
                    name: text("name"),
                    kind: text("type"),
                    format: text("format"),
                    description: text("description"),
                    priority: c["priority"].as_i64().unwrap_or(0),
                    path: JsonPath::parse(c["jsonPath"].as_str()?).ok()?,
                })
            })
            .collect()
    }

    /// The column's `TableColumnDefinition`.
    pub fn definition(&self) -> Value {
        json!({
            "name": self.name, "type": self.kind, "format": self.format,
            "description": self.description, "priority": self.priority,
        })
    }

    /// The cell of `object`: typed by the column's type, `null` when absent or of
    /// another type, dates as ages.
    pub fn cell(&self, object: &Value) -> Value {
        let Some(value) = self.path.first(object) else {
            return Value::Null;
        };
        match self.kind.as_str() {
            "integer" => value
                .as_i64()
                .or_else(|| value.as_f64().map(|f| f as i64))
                .map_or(Value::Null, |n| json!(n)),
            "number" => value.as_f64().map_or(Value::Null, |n| json!(n)),
            "boolean" => value.as_bool().map_or(Value::Null, Value::Bool),
            "date" => match value.as_str() {
                Some(text) => match text.parse::<jiff::Timestamp>() {
                    Ok(t) => json!(crate::table::human_duration(
                        jiff::Timestamp::now().as_second() - t.as_second()
                    )),
                    Err(_) => json!("<invalid>"),
                },
                None => Value::Null,
            },
            _ => match value {
                Value::String(s) => json!(s),
                Value::Null => Value::Null,
                other => json!(other.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_find_the_first_match() {
        let object = json!({"spec": {"replicas": 3, "items": [{"name": "a"}, {"name": "b"}],
            "labels": {"app.kubernetes.io/name": "web"}}});
        let find = |p: &str| JsonPath::parse(p).unwrap().first(&object).cloned();
        assert_eq!(find(".spec.replicas"), Some(json!(3)));
        assert_eq!(find("{.spec.items[1].name}"), Some(json!("b")));
        assert_eq!(find(".spec.items[-1].name"), Some(json!("b")));
        assert_eq!(find(".spec.items[*].name"), Some(json!("a")));
        assert_eq!(
            find(".spec.labels['app.kubernetes.io/name']"),
            Some(json!("web"))
        );
        assert_eq!(
            find(".spec.labels.app\\.kubernetes\\.io/name"),
            Some(json!("web"))
        );
        assert_eq!(find(".spec.missing"), None);
        assert!(JsonPath::parse("spec.replicas").is_err());
        assert!(JsonPath::parse(".spec[").is_err());
    }

    #[test]
    fn filters_pick_list_items_as_kubeflex_columns_do() {
        let object = json!({"status": {"conditions": [
            {"type": "Synced", "status": "True", "n": 1},
            {"type": "Ready", "status": "False"},
        ]}});
        let find = |p: &str| JsonPath::parse(p).unwrap().first(&object).cloned();
        assert_eq!(
            find(".status.conditions[?(@.type=='Ready')].status"),
            Some(json!("False"))
        );
        assert_eq!(
            find(".status.conditions[?(@.type == \"Synced\")].status"),
            Some(json!("True"))
        );
        assert_eq!(
            find(".status.conditions[?(@.type!='Synced')].type"),
            Some(json!("Ready"))
        );
        assert_eq!(
            find(".status.conditions[?(@.n)].type"),
            Some(json!("Synced"))
        );
        assert_eq!(
            find(".status.conditions[?(@.n==1)].type"),
            Some(json!("Synced"))
        );
        assert_eq!(find(".status.conditions[?(@.type=='Gone')].status"), None);
        assert!(JsonPath::parse(".a[?(@.type=='x'].b").is_err());
        assert!(JsonPath::parse(".a[?(type=='x')].b").is_err());
    }

    #[test]
    fn cells_are_typed_and_dates_are_ages() {
        let object = json!({"metadata": {"creationTimestamp": "2000-01-01T00:00:00Z"},
            "spec": {"replicas": 3, "ready": true, "ratio": 0.5, "name": "x", "list": [1, 2]}});
        let column = |kind: &str, path: &str| PrinterColumn {
            name: "c".into(),
            kind: kind.into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            path: JsonPath::parse(path).unwrap(),
        };
        assert_eq!(column("integer", ".spec.replicas").cell(&object), json!(3));
        assert_eq!(column("integer", ".spec.name").cell(&object), Value::Null);
        assert_eq!(column("number", ".spec.ratio").cell(&object), json!(0.5));
        assert_eq!(column("boolean", ".spec.ready").cell(&object), json!(true));
        assert_eq!(column("string", ".spec.replicas").cell(&object), json!("3"));
        assert_eq!(column("string", ".spec.list").cell(&object), json!("[1,2]"));
        assert!(column("date", ".metadata.creationTimestamp")
            .cell(&object)
            .as_str()
            .unwrap()
            .ends_with('y'));
        let defaults = PrinterColumn::of_version(&json!({}));
        assert_eq!(defaults[0].name, "Age");
        assert_eq!(defaults[0].kind, "date");
    }
}
