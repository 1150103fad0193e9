//! Upstream's PodSecurity admission: a namespace's `pod-security.kubernetes.io/<mode>`
//! labels (`enforce`, `audit`, `warn`, each with a `-version`) name a Pod Security
//! Standards level (`privileged`, `baseline`, `restricted`). `enforce` refuses Pods that
//! violate it; `warn` sends `Warning` headers for Pods and workload templates; `audit`
//! records the violation in the server log (kflex keeps no separate audit log). The checks
//! are upstream's at the version a `-version` label pins (`latest`, or a version newer than
//! the newest modelled, is the newest), with its reasons and details. Label values are
//! validated on namespace writes, and tightening `enforce` warns about existing Pods.

mod checks;

use super::Attributes;
use crate::controlplane::ControlPlane;
use crate::status::{ApiError, Cause};
use serde_json::Value;
use std::fmt;

/// The label prefix of the policy modes.
const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";

/// A Pod Security Standards level, least to most restrictive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(text: &str) -> Option<Level> {
        match text {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A level at a version (`restricted:latest`), as messages show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelVersion {
    pub level: Level,
    pub version: String,
}

impl LevelVersion {
    /// The pinned policy version's minor (`v1.<minor>`); `None` for `latest`.
    pub fn minor(&self) -> Option<u32> {
        self.version.strip_prefix("v1.")?.parse().ok()
    }

    /// The violations of a pod (its metadata and spec) at this level and version.
    fn evaluate(&self, meta: &Value, spec: &Value) -> Vec<checks::Violation> {
        checks::evaluate(self.level, self.minor(), meta, spec)
    }
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.level.as_str(), self.version)
    }
}

/// A namespace's policy: one level per mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub enforce: LevelVersion,
    pub audit: LevelVersion,
    pub warn: LevelVersion,
}

impl Policy {
    /// The policy a namespace's labels set, and what is wrong with them. An invalid level is
    /// taken as `restricted` and an invalid version as `latest` (upstream fails closed).
    pub fn from_labels(labels: Option<&serde_json::Map<String, Value>>) -> (Policy, Vec<Cause>) {
        let mut causes = Vec::new();
        let mut mode = |name: &str| {
            let label = |suffix: &str| {
                let key = format!("{LABEL_PREFIX}{name}{suffix}");
                let value = labels
                    .and_then(|l| l.get(&key))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                (key, value)
            };
            let (level_key, level) = label("");
            let (version_key, version) = label("-version");
            let level = match level {
                None => Level::Privileged,
                Some(text) => Level::parse(&text).unwrap_or_else(|| {
                    causes.push(invalid_label(
                        &level_key,
                        &text,
                        "must be one of privileged, baseline, restricted",
                    ));
                    Level::Restricted
                }),
            };
            let version = match version {
                None => "latest".to_owned(),
                Some(text) if valid_version(&text) => text,
                Some(text) => {
                    causes.push(invalid_label(
                        &version_key,
                        &text,
                        "must be \"latest\" or of the form \"v1.x\"",
                    ));
                    "latest".to_owned()
                }
            };
            LevelVersion { level, version }
        };
        let policy = Policy {
            enforce: mode("enforce"),
            audit: mode("audit"),
            warn: mode("warn"),
        };
        (policy, causes)
    }

    fn fully_privileged(&self) -> bool {
        [&self.enforce, &self.audit, &self.warn]
            .iter()
            .all(|m| m.level == Level::Privileged)
    }
}

fn invalid_label(key: &str, value: &str, why: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value:?}: {why}"),
        field: format!("metadata.labels[{key}]"),
    }
}

/// `latest` or `v1.<minor>`.
fn valid_version(text: &str) -> bool {
    text == "latest"
        || text.strip_prefix("v1.").is_some_and(|minor| {
            !minor.is_empty()
                && minor.bytes().all(|b| b.is_ascii_digit())
                && (minor == "0" || !minor.starts_with('0'))
        })
}

/// Where a kind keeps its pod template (`None` for kinds without one).
fn template_path(attrs: &Attributes<'_>) -> Option<&'static [&'static str]> {
    if attrs.subresource.is_some() {
        return None;
    }
    match (attrs.def.group.as_str(), attrs.def.plural.as_str()) {
        ("", "podtemplates") => Some(&["template"]),
        ("", "replicationcontrollers")
        | ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets")
        | ("batch", "jobs") => Some(&["spec", "template"]),
        ("batch", "cronjobs") => Some(&["spec", "jobTemplate", "spec", "template"]),
        _ => None,
    }
}

fn is_pod(attrs: &Attributes<'_>) -> bool {
    attrs.def.group.is_empty()
        && attrs.def.plural == "pods"
        && matches!(attrs.subresource, None | Some("ephemeralcontainers"))
}

/// Whether this write is judged by its namespace's labels (Pods and pod templates).
pub(super) fn reads_namespace(attrs: &Attributes<'_>) -> bool {
    is_pod(attrs) || template_path(attrs).is_some()
}

/// Judges a write; returns the `warn` mode's warnings.
pub(super) async fn validate(
    cp: &ControlPlane,
    attrs: &Attributes<'_>,
    namespace: Option<&Value>,
    object: &Value,
) -> Result<Vec<String>, ApiError> {
    if attrs.is_core("namespaces") {
        return validate_namespace(cp, attrs, object).await;
    }
    let pod = is_pod(attrs);
    if !pod && template_path(attrs).is_none() {
        return Ok(Vec::new());
    }
    let labels = namespace.and_then(|ns| ns["metadata"]["labels"].as_object());
    let (policy, _) = Policy::from_labels(labels);
    if policy.fully_privileged() {
        return Ok(Vec::new());
    }
    let (meta, spec) = if pod {
        if let Some(old) = attrs.old {
            if !significant_update(object, old) {
                return Ok(Vec::new());
            }
        }
        (&object["metadata"], &object["spec"])
    } else {
        let template = template_path(attrs)
            .unwrap_or_default()
            .iter()
            .fold(object, |value, key| &value[*key]);
        if template.is_null() {
            return Ok(Vec::new());
        }
        (&template["metadata"], &template["spec"])
    };
    let mut results: Vec<(LevelVersion, String)> = Vec::new();
    let mut judge = |lv: &LevelVersion| -> String {
        if let Some((_, detail)) = results.iter().find(|(seen, _)| seen == lv) {
            return detail.clone();
        }
        let detail = lv
            .evaluate(meta, spec)
            .iter()
            .map(checks::Violation::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        results.push((lv.clone(), detail.clone()));
        detail
    };
    if pod {
        let violations = judge(&policy.enforce);
        if !violations.is_empty() {
            return Err(attrs.forbidden(format!(
                "violates PodSecurity \"{}\": {violations}",
                policy.enforce
            )));
        }
    }
    let audit = judge(&policy.audit);
    if !audit.is_empty() {
        tracing::info!(
            target: "kflex::audit",
            namespace = attrs.namespace.unwrap_or_default(),
            resource = %attrs.def.group_resource(),
            name = attrs.name,
            "pod-security.kubernetes.io/audit-violations: would violate PodSecurity \"{}\": {audit}",
            policy.audit
        );
    }
    let warn = judge(&policy.warn);
    Ok(if warn.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "would violate PodSecurity \"{}\": {warn}",
            policy.warn
        )]
    })
}

/// Upstream's `isSignificantPodUpdate`: only container lists, images and seccomp
/// annotations of a Pod can change in ways the policy cares about.
fn significant_update(pod: &Value, old: &Value) -> bool {
    let names_and_images = |pod: &Value, list: &str| -> Vec<(Value, Value)> {
        pod["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| (c["name"].clone(), c["image"].clone()))
            .collect()
    };
    ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .any(|list| names_and_images(pod, list) != names_and_images(old, list))
        || seccomp_annotations(pod) != seccomp_annotations(old)
}

fn seccomp_annotations(pod: &Value) -> Vec<(String, Value)> {
    pod["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("container.seccomp.security.alpha.kubernetes.io/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A namespace's labels must be valid (when they changed); a tighter `enforce` level
/// warns about the existing Pods that violate it.
async fn validate_namespace(
    cp: &ControlPlane,
    attrs: &Attributes<'_>,
    namespace: &Value,
) -> Result<Vec<String>, ApiError> {
    let (policy, causes) = Policy::from_labels(namespace["metadata"]["labels"].as_object());
    let old = attrs
        .old
        .map(|old| Policy::from_labels(old["metadata"]["labels"].as_object()));
    if !causes.is_empty()
        && old
            .as_ref()
            .is_none_or(|(_, old_causes)| *old_causes != causes)
    {
        return Err(ApiError::invalid("", "Namespace", attrs.name, causes));
    }
    let Some((old, _)) = old else {
        return Ok(Vec::new());
    };
    let tightened = policy.enforce != old.enforce
        && policy.enforce.level != Level::Privileged
        && !(policy.enforce.version == old.enforce.version
            && policy.enforce.level <= old.enforce.level);
    if !tightened {
        return Ok(Vec::new());
    }
    let pods = super::list_core(cp, "pods", attrs.name).await?;
    // Pods with the same violations are reported once, under the first name.
    let mut found: Vec<(String, String, usize)> = Vec::new();
    for pod in &pods {
        let reasons = policy
            .enforce
            .evaluate(&pod["metadata"], &pod["spec"])
            .iter()
            .map(|v| v.reason.clone())
            .collect::<Vec<_>>()
            .join(", ");
        if reasons.is_empty() {
            continue;
        }
        let name = crate::object::meta_str(pod, "name")
            .unwrap_or("")
            .to_owned();
        match found.iter_mut().find(|(r, _, _)| *r == reasons) {
            Some((_, first, count)) => {
                *count += 1;
                if name < *first {
                    *first = name;
                }
            }
            None => found.push((reasons, name, 1)),
        }
    }
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let mut per_pod: Vec<String> = found
        .into_iter()
        .map(|(reasons, name, count)| match count {
            1 => format!("{name}: {reasons}"),
            2 => format!("{name} (and 1 other pod): {reasons}"),
            n => format!("{name} (and {} other pods): {reasons}", n - 1),
        })
        .collect();
    per_pod.sort();
    let mut warnings = vec![format!(
        "existing pods in namespace \"{}\" violate the new PodSecurity enforce level \"{}\"",
        attrs.name, policy.enforce
    )];
    warnings.extend(per_pod);
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_policies_from_labels() {
        let labels = json!({
            "pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/warn-version": "v1.30",
        });
        let (policy, causes) = Policy::from_labels(labels.as_object());
        assert!(causes.is_empty());
        assert_eq!(policy.enforce.to_string(), "baseline:latest");
        assert_eq!(policy.audit.to_string(), "privileged:latest");
        assert_eq!(policy.warn.to_string(), "restricted:v1.30");
        assert_eq!(policy.warn.minor(), Some(30));
        assert_eq!(policy.enforce.minor(), None);
        let bad = json!({
            "pod-security.kubernetes.io/enforce": "strict",
            "pod-security.kubernetes.io/audit-version": "1.30",
        });
        let (policy, causes) = Policy::from_labels(bad.as_object());
        assert_eq!(policy.enforce.level, Level::Restricted);
        assert_eq!(causes.len(), 2);
        assert_eq!(
            causes[0].field,
            "metadata.labels[pod-security.kubernetes.io/enforce]"
        );
        assert_eq!(
            causes[0].message,
            "Invalid value: \"strict\": must be one of privileged, baseline, restricted"
        );
        for (version, valid) in [
            ("v1.0", true),
            ("v1.33", true),
            ("v1.03", false),
            ("v2.1", false),
            ("latest", true),
            ("v1.", false),
        ] {
            assert_eq!(valid_version(version), valid, "{version}");
        }
    }
}
