//! `Table` output (`kubectl get`): upstream's columns for the common built-in kinds, and
//! Name and Age for the rest, with ages rendered as apimachinery's `HumanDuration`.

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

/// The columns upstream prints for a resource.
fn columns(def: &ResourceDef) -> Vec<Column> {
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "namespaces") => vec![
            NAME,
            column("Status", "string", 0, |o| o["status"]["phase"].clone()),
            AGE,
        ],
        ("", "configmaps") => vec![
            NAME,
            column("Data", "string", 0, |o| {
                json!(count(&o["data"]) + count(&o["binaryData"]))
            }),
            AGE,
        ],
        ("", "secrets") => vec![
            NAME,
            column("Type", "string", 0, |o| o["type"].clone()),
            column("Data", "string", 0, |o| json!(count(&o["data"]))),
            AGE,
        ],
        ("", "pods") => vec![
            NAME,
            column("Ready", "string", 0, pod_ready),
            column("Status", "string", 0, |o| {
                let reason = text(&o["status"]["reason"]);
                let phase = text(&o["status"]["phase"]);
                json!(if !reason.is_empty() {
                    reason
                } else if phase.is_empty() {
                    "Pending".into()
                } else {
                    phase
                })
            }),
            column("Restarts", "string", 0, |o| {
                let restarts: i64 = o["status"]["containerStatuses"].as_array().map_or(0, |s| {
                    s.iter().filter_map(|c| c["restartCount"].as_i64()).sum()
                });
                json!(restarts.to_string())
            }),
            AGE,
            column("IP", "string", 1, |o| or_none(text(&o["status"]["podIP"]))),
            column("Node", "string", 1, |o| {
                or_none(text(&o["spec"]["nodeName"]))
            }),
        ],
        ("", "services") => vec![
            NAME,
            column("Type", "string", 0, |o| {
                json!(o["spec"]["type"].as_str().unwrap_or("ClusterIP"))
            }),
            column("Cluster-IP", "string", 0, |o| {
                or_none(text(&o["spec"]["clusterIP"]))
            }),
            column("External-IP", "string", 0, |o| {
                let ips: Vec<String> = o["spec"]["externalIPs"]
                    .as_array()
                    .map(|a| a.iter().map(text).collect())
                    .unwrap_or_default();
                or_none(ips.join(","))
            }),
            column("Port(s)", "string", 0, |o| {
                let ports: Vec<String> = o["spec"]["ports"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|p| {
                                format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP"))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                or_none(ports.join(","))
            }),
            AGE,
        ],
        ("apps", "deployments") => vec![
            NAME,
            column("Ready", "string", 0, |o| {
                json!(format!(
                    "{}/{}",
                    o["status"]["readyReplicas"].as_i64().unwrap_or(0),
                    o["spec"]["replicas"].as_i64().unwrap_or(1)
                ))
            }),
            column("Up-to-date", "integer", 0, |o| {
                json!(o["status"]["updatedReplicas"].as_i64().unwrap_or(0))
            }),
            column("Available", "integer", 0, |o| {
                json!(o["status"]["availableReplicas"].as_i64().unwrap_or(0))
            }),
            AGE,
        ],
        ("", "serviceaccounts") => vec![NAME, AGE],
        _ => vec![NAME, AGE],
    }
}

fn pod_ready(pod: &Value) -> Value {
    let total = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = pod["status"]["containerStatuses"]
        .as_array()
        .map_or(0, |s| {
            s.iter()
                .filter(|c| c["ready"].as_bool() == Some(true))
                .count()
        });
    json!(format!("{ready}/{total}"))
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
    let columns = columns(def);
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
    let Some(created) = timestamp.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    human_duration(jiff::Timestamp::now().as_second() - created.as_second())
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
