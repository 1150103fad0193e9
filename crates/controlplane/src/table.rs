//! `Table` output (`kubectl get`): the columns of a resource ([`builtin`] for the built-in
//! kinds) and their cells, with ages rendered as apimachinery's `HumanDuration`.

mod builtin;
mod cells;

use crate::registry::ResourceDef;
use crate::representation::{partial, IncludeObject};
use serde_json::{json, Value};

/// One column: its definition and how a cell is read from an object.
struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    description: &'static str,
    priority: i32,
    cell: fn(&Value) -> Value,
}

const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    description: "Name must be unique within a namespace.",
    priority: 0,
    cell: |o| o["metadata"]["name"].clone(),
};

const AGE: Column = Column {
    name: "Age",
    kind: "string",
    format: "",
    description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
    priority: 0,
    cell: |o| Value::String(age(o["metadata"]["creationTimestamp"].as_str())),
};

fn column(
    name: &'static str,
    kind: &'static str,
    priority: i32,
    cell: fn(&Value) -> Value,
) -> Column {
    Column {
        name,
        kind,
        format: "",
        description: "",
        priority,
        cell,
    }
}

fn count(value: &Value) -> usize {
    value.as_object().map_or(0, |m| m.len())
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or("").to_owned()
}

fn or_none(s: String) -> Value {
    Value::String(if s.is_empty() { "<none>".into() } else { s })
}

/// A `meta.k8s.io/<version>` Table of `objects`.
pub fn table(
    def: &ResourceDef,
    objects: &[Value],
    metadata: Value,
    version: &str,
    include: IncludeObject,
    headers: bool,
) -> Value {
    let columns = builtin::columns(def);
    let definition = |c: &Column| json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority});
    // Custom resources: Name, then the CRD's printer columns.
    let custom = def.crd.as_ref().map(|c| &c.columns);
    let definitions: Vec<Value> = match (headers, custom) {
        (false, _) => Vec::new(),
        (true, Some(custom)) => std::iter::once(definition(&NAME))
            .chain(custom.iter().map(crate::crd::PrinterColumn::definition))
            .collect(),
        (true, None) => columns.iter().map(definition).collect(),
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let cells: Vec<Value> = match custom {
                Some(custom) => std::iter::once((NAME.cell)(object))
                    .chain(custom.iter().map(|c| c.cell(object)))
                    .collect(),
                None => columns.iter().map(|c| (c.cell)(object)).collect(),
            };
            match include {
                IncludeObject::None => json!({"cells": cells}),
                IncludeObject::Metadata => {
                    json!({"cells": cells, "object": partial(object, version)})
                }
                IncludeObject::Object => json!({"cells": cells, "object": object}),
            }
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

/// How long ago `timestamp` was, as `kubectl get` prints ages; `<unknown>` without one.
fn age(timestamp: Option<&str>) -> String {
    match timestamp {
        Some(t) => human_duration_since(t),
        None => "<unknown>".into(),
    }
}

/// How long ago an RFC 3339 timestamp was; `<unknown>` when it does not parse.
fn human_duration_since(timestamp: &str) -> String {
    duration_between(timestamp, None)
}

/// The time from `start` to `end` (now when `None`), both RFC 3339.
fn duration_between(start: &str, end: Option<&str>) -> String {
    let parse = |t: &str| t.parse::<jiff::Timestamp>().ok();
    let end = match end {
        Some(end) => parse(end),
        None => Some(jiff::Timestamp::now()),
    };
    match (parse(start), end) {
        (Some(start), Some(end)) => human_duration(end.as_second() - start.as_second()),
        _ => "<unknown>".into(),
    }
}

/// apimachinery's `duration.HumanDuration`: coarser as durations grow.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            d => format!("{}y{d}d", hours / 24 / 365),
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_kubectl_prints_them() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (59, "59s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (10 * 3600, "10h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400 + 86400, "3y1d"),
            (10 * 365 * 86400, "10y"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(human_duration(seconds), expected, "{seconds}");
        }
    }
}
