//! Events about a ControlPlane on the hosting API, written as client-go's event recorder
//! writes them: a `v1` Event in namespace `default` (the involved object is cluster-scoped),
//! with a reason, a type (`Normal` or `Warning`) and a message cut to the length the
//! `events.k8s.io` API accepts.

use crate::HookError;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, PostParams};
use serde_json::json;

/// The longest message an Event carries, in bytes (`events.k8s.io/v1`'s note limit).
pub const MESSAGE_LIMIT: usize = 1024;
/// The component named as the Events' source.
pub const COMPONENT: &str = "kflex-manager";

/// Whether an Event reports something normal or something that went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// What an Event is about: a ControlPlane of the hosting API.
#[derive(Clone, Copy, Debug)]
pub struct Involved<'a> {
    pub name: &'a str,
    pub uid: &'a str,
}

/// `message` cut to at most [`MESSAGE_LIMIT`] bytes, on a character boundary.
pub fn truncate(message: &str) -> &str {
    if message.len() <= MESSAGE_LIMIT {
        return message;
    }
    let mut end = MESSAGE_LIMIT;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// Writes one Event about control plane `involved`.
pub async fn record(
    host: &kube::Client,
    involved: Involved<'_>,
    kind: EventType,
    reason: &str,
    message: &str,
) -> Result<(), HookError> {
    let now = jiff::Timestamp::now();
    let second = jiff::Timestamp::from_second(now.as_second()).unwrap_or(now);
    let event: Event = serde_json::from_value(json!({
        "metadata": {
            "name": format!("{}.{:x}", involved.name, now.as_nanosecond()),
            "namespace": "default",
        },
        "involvedObject": {
            "apiVersion": crate::API_VERSION,
            "kind": "ControlPlane",
            "name": involved.name,
            "uid": involved.uid,
        },
        "reason": reason,
        "message": truncate(message),
        "type": match kind { EventType::Normal => "Normal", EventType::Warning => "Warning" },
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": second.to_string(),
        "lastTimestamp": second.to_string(),
        "count": 1,
    }))
    .map_err(|e| HookError::Invalid(e.to_string()))?;
    Api::<Event>::namespaced(host.clone(), "default")
        .create(&PostParams::default(), &event)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("short"), "short");
        let long = "é".repeat(MESSAGE_LIMIT);
        let cut = truncate(&long);
        assert!(cut.len() <= MESSAGE_LIMIT && cut.len() > MESSAGE_LIMIT - 2);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
