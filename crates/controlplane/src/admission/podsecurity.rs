//! Upstream's PodSecurity admission: a namespace's `pod-security.kubernetes.io/<mode>`
//! labels (`enforce`, `audit`, `warn`, each with a `-version`) name a Pod Security
//! Standards level (`privileged`, `baseline`, `restricted`). `enforce` refuses Pods that
//! violate it; `warn` sends `Warning` headers for Pods and workload templates; `audit`
//! records the violation in the server log (kflex keeps no separate audit log). The checks
//! are upstream's at the version a `-version` label pins (`latest`, or a version newer than
//! the newest modelled, is the newest), with its reasons and details. Label values are
//! validated on namespace writes, and tightening `enforce` warns about existing Pods.
//!
//! A control plane's [`Configuration`] (upstream's `PodSecurityConfiguration`, from the
//! ControlPlane's `spec.podSecurity`) sets the policy of namespaces without labels and the
//! exemptions: Pods and workloads in an exempt namespace, written by an exempt user or with
//! an exempt `runtimeClassName`, are neither enforced, audited nor warned about; labelling an
//! exempt namespace with a policy warns that it will be ignored.

mod checks;

use super::Attributes;
use crate::controlplane::ControlPlane;
use crate::status::{ApiError, Cause};
use serde::{Deserialize, Serialize};
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
    /// Every mode `privileged:latest`: upstream's default when nothing is configured.
    fn privileged() -> Policy {
        let lv = LevelVersion {
            level: Level::Privileged,
            version: "latest".to_owned(),
        };
        Policy {
            enforce: lv.clone(),
            audit: lv.clone(),
            warn: lv,
        }
    }

    /// The policy a namespace's labels set over `defaults` (for the modes they leave out),
    /// and what is wrong with them, as upstream's `PolicyToEvaluate`: an invalid `enforce`
    /// level is taken as `restricted` (fail closed), an invalid `audit` or `warn` level as
    /// `privileged` (fail open), an invalid version as `latest`; a `warn` level left out
    /// follows an explicit, more restrictive `enforce`.
    pub fn from_labels(
        labels: Option<&serde_json::Map<String, Value>>,
        defaults: &Policy,
    ) -> (Policy, Vec<Cause>) {
        let mut causes = Vec::new();
        let mut policy = defaults.clone();
        let Some(labels) = labels else {
            return (policy, causes);
        };
        let enforce_set = read_mode(
            labels,
            "enforce",
            Level::Restricted,
            &mut policy.enforce,
            &mut causes,
        );
        read_mode(
            labels,
            "audit",
            Level::Privileged,
            &mut policy.audit,
            &mut causes,
        );
        read_mode(
            labels,
            "warn",
            Level::Privileged,
            &mut policy.warn,
            &mut causes,
        );
        let has = |key: &str| labels.contains_key(&format!("{LABEL_PREFIX}{key}"));
        if enforce_set && !has("warn") && policy.enforce.level > policy.warn.level {
            policy.warn.level = policy.enforce.level;
            if !has("warn-version") {
                policy.warn.version = policy.enforce.version.clone();
            }
        }
        (policy, causes)
    }

    fn fully_privileged(&self) -> bool {
        [&self.enforce, &self.audit, &self.warn]
            .iter()
            .all(|m| m.level == Level::Privileged)
    }

    /// Upstream's `Equivalent`: the same in every mode, all privileged levels being alike.
    fn equivalent(&self, other: &Policy) -> bool {
        let same = |a: &LevelVersion, b: &LevelVersion| {
            (a.level == Level::Privileged && b.level == Level::Privileged) || a == b
        };
        same(&self.enforce, &other.enforce)
            && same(&self.audit, &other.audit)
            && same(&self.warn, &other.warn)
    }
}

/// Upstream's messages for a bad level or version.
const LEVEL_CHOICES: &str = "must be one of privileged, baseline, restricted";
const VERSION_CHOICES: &str = "must be \"latest\" or \"v1.x\"";

/// A control plane's PodSecurity admission configuration: upstream's
/// `PodSecurityConfiguration` (`defaults` and `exemptions`, with its field names).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Configuration {
    /// The policy of the modes a namespace does not label.
    #[serde(default)]
    pub defaults: Defaults,
    /// Who and what PodSecurity leaves alone.
    #[serde(default)]
    pub exemptions: Exemptions,
}

/// `defaults`: a level and version per mode (`privileged` and `latest` when absent).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct Defaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_version: Option<String>,
}

/// `exemptions`: requesting users, namespaces and runtime classes PodSecurity skips.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Exemptions {
    #[serde(default)]
    pub usernames: Vec<String>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub runtime_classes: Vec<String>,
}

impl Configuration {
    /// What is wrong with the configuration, each as `<path>.<field>: <message>` (upstream's
    /// `ValidatePodSecurityConfiguration`).
    pub fn problems(&self, path: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let d = &self.defaults;
        for (field, level, version) in [
            ("enforce", &d.enforce, &d.enforce_version),
            ("audit", &d.audit, &d.audit_version),
            ("warn", &d.warn, &d.warn_version),
        ] {
            if let Some(level) = level.as_deref().filter(|l| Level::parse(l).is_none()) {
                problems.push(format!(
                    "{path}.defaults.{field}: Invalid value: {level:?}: {LEVEL_CHOICES}"
                ));
            }
            if let Some(version) = version.as_deref().filter(|v| !valid_version(v)) {
                problems.push(format!(
                    "{path}.defaults.{field}-version: Invalid value: {version:?}: {VERSION_CHOICES}"
                ));
            }
        }
        let e = &self.exemptions;
        for (field, list) in [
            ("usernames", &e.usernames),
            ("namespaces", &e.namespaces),
            ("runtimeClasses", &e.runtime_classes),
        ] {
            for (i, item) in list.iter().enumerate() {
                if item.is_empty() {
                    problems.push(format!(
                        "{path}.exemptions.{field}[{i}]: Invalid value: \"\": must not be empty"
                    ));
                } else if list[..i].contains(item) {
                    problems.push(format!(
                        "{path}.exemptions.{field}[{i}]: Duplicate value: {item:?}"
                    ));
                }
            }
        }
        problems
    }

    /// The policy of a namespace without labels (a bad level or version reads as upstream's
    /// default: the configuration is refused before it gets here).
    fn default_policy(&self) -> Policy {
        let mut policy = Policy::privileged();
        let d = &self.defaults;
        for (target, level, version) in [
            (&mut policy.enforce, &d.enforce, &d.enforce_version),
            (&mut policy.audit, &d.audit, &d.audit_version),
            (&mut policy.warn, &d.warn, &d.warn_version),
        ] {
            if let Some(level) = level.as_deref().and_then(Level::parse) {
                target.level = level;
            }
            if let Some(version) = version.as_deref().filter(|v| valid_version(v)) {
                target.version = version.to_owned();
            }
        }
        policy
    }
}

/// A configuration ready to judge with: its default policy worked out once.
#[derive(Debug)]
pub struct Settings {
    defaults: Policy,
    exemptions: Exemptions,
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from(Configuration::default())
    }
}

impl From<Configuration> for Settings {
    fn from(config: Configuration) -> Self {
        Settings {
            defaults: config.default_policy(),
            exemptions: config.exemptions,
        }
    }
}

impl Settings {
    fn exempt_namespace(&self, namespace: Option<&str>) -> bool {
        namespace
            .is_some_and(|ns| !ns.is_empty() && self.exemptions.namespaces.iter().any(|n| n == ns))
    }

    fn exempt_user(&self, user: Option<&str>) -> bool {
        user.is_some_and(|u| !u.is_empty() && self.exemptions.usernames.iter().any(|n| n == u))
    }

    fn exempt_runtime_class(&self, spec: &Value) -> bool {
        spec["runtimeClassName"].as_str().is_some_and(|rc| {
            !rc.is_empty() && self.exemptions.runtime_classes.iter().any(|n| n == rc)
        })
    }

    /// Upstream's warning when an exempt namespace is labelled with a policy that is not
    /// privileged nor the default: the modes it sets, and that they are ignored.
    fn exempt_namespace_warning(
        &self,
        name: &str,
        policy: &Policy,
        labels: Option<&serde_json::Map<String, Value>>,
    ) -> Option<String> {
        if policy.fully_privileged() || policy.equivalent(&self.defaults) {
            return None;
        }
        let has =
            |key: &str| labels.is_some_and(|l| l.contains_key(&format!("{LABEL_PREFIX}{key}")));
        let set: Vec<String> = [
            ("enforce", &policy.enforce),
            ("audit", &policy.audit),
            ("warn", &policy.warn),
        ]
        .into_iter()
        .filter(|(mode, lv)| {
            lv.level != Level::Privileged && (has(mode) || has(&format!("{mode}-version")))
        })
        .map(|(mode, lv)| format!("{mode}={lv}"))
        .collect();
        Some(format!(
            "namespace {name:?} is exempt from Pod Security, and the policy ({}) will be ignored",
            set.join(", ")
        ))
    }
}

/// Reads one mode's level and version labels into `target`; whether a valid level was set.
fn read_mode(
    labels: &serde_json::Map<String, Value>,
    mode: &str,
    invalid_level: Level,
    target: &mut LevelVersion,
    causes: &mut Vec<Cause>,
) -> bool {
    let label = |suffix: &str| {
        let key = format!("{LABEL_PREFIX}{mode}{suffix}");
        let value = labels.get(&key).and_then(Value::as_str).map(str::to_owned);
        (key, value)
    };
    let mut set = false;
    if let (key, Some(text)) = label("") {
        target.level = Level::parse(&text).unwrap_or_else(|| {
            causes.push(invalid_label(&key, &text, LEVEL_CHOICES));
            invalid_level
        });
        set = Level::parse(&text).is_some();
    }
    if let (key, Some(text)) = label("-version") {
        target.version = if valid_version(&text) {
            text
        } else {
            causes.push(invalid_label(&key, &text, VERSION_CHOICES));
            "latest".to_owned()
        };
    }
    set
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
    let settings = cp.admission().pod_security();
    if attrs.is_core("namespaces") {
        return validate_namespace(cp, &settings, attrs, object).await;
    }
    let pod = is_pod(attrs);
    if !pod && template_path(attrs).is_none() {
        return Ok(Vec::new());
    }
    if settings.exempt_namespace(attrs.namespace)
        || settings.exempt_user(super::requester().as_deref())
    {
        return Ok(Vec::new());
    }
    let labels = namespace.and_then(|ns| ns["metadata"]["labels"].as_object());
    let (policy, _) = Policy::from_labels(labels, &settings.defaults);
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
    if settings.exempt_runtime_class(spec) {
        return Ok(Vec::new());
    }
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
    settings: &Settings,
    attrs: &Attributes<'_>,
    namespace: &Value,
) -> Result<Vec<String>, ApiError> {
    let labels = namespace["metadata"]["labels"].as_object();
    let (policy, causes) = Policy::from_labels(labels, &settings.defaults);
    let old = attrs
        .old
        .map(|old| Policy::from_labels(old["metadata"]["labels"].as_object(), &settings.defaults));
    if !causes.is_empty()
        && old
            .as_ref()
            .is_none_or(|(_, old_causes)| *old_causes != causes)
    {
        return Err(ApiError::invalid("", "Namespace", attrs.name, causes));
    }
    let exempt = settings.exempt_namespace(Some(attrs.name));
    let exempt_warning = || {
        settings
            .exempt_namespace_warning(attrs.name, &policy, labels)
            .into_iter()
            .collect()
    };
    let Some((old, _)) = old else {
        return Ok(if exempt { exempt_warning() } else { Vec::new() });
    };
    let tightened = policy.enforce != old.enforce
        && policy.enforce.level != Level::Privileged
        && !(policy.enforce.version == old.enforce.version
            && policy.enforce.level <= old.enforce.level);
    if !tightened {
        return Ok(Vec::new());
    }
    if exempt {
        return Ok(exempt_warning());
    }
    let pods = super::list_core(cp, "pods", attrs.name).await?;
    // Pods with the same violations are reported once, under the first name.
    let mut found: Vec<(String, String, usize)> = Vec::new();
    for pod in pods
        .iter()
        .filter(|p| !settings.exempt_runtime_class(&p["spec"]))
    {
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
        let (policy, causes) = Policy::from_labels(labels.as_object(), &Policy::privileged());
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
        let (policy, causes) = Policy::from_labels(bad.as_object(), &Policy::privileged());
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

    #[test]
    fn warn_follows_an_explicit_stricter_enforce() {
        let policy =
            |labels: Value| Policy::from_labels(labels.as_object(), &Policy::privileged()).0;
        let p = policy(json!({
            "pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/enforce-version": "v1.24",
        }));
        assert_eq!(p.warn.to_string(), "baseline:v1.24");
        assert_eq!(p.audit.to_string(), "privileged:latest");
        let p = policy(json!({
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/warn-version": "v1.30",
        }));
        assert_eq!(p.warn.to_string(), "restricted:v1.30");
        let p = policy(json!({
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/warn": "privileged",
        }));
        assert_eq!(p.warn.to_string(), "privileged:latest");
        // Bad audit and warn levels fail open, a bad enforce level fails closed.
        let p = policy(json!({
            "pod-security.kubernetes.io/enforce": "x",
            "pod-security.kubernetes.io/audit": "y",
            "pod-security.kubernetes.io/warn": "z",
        }));
        assert_eq!(
            (p.enforce.level, p.audit.level, p.warn.level),
            (Level::Restricted, Level::Privileged, Level::Privileged)
        );
    }

    #[test]
    fn configuration_defaults_exemptions_and_problems() {
        let config: Configuration = serde_json::from_value(json!({
            "defaults": {"enforce": "baseline", "enforce-version": "v1.24", "warn": "restricted"},
            "exemptions": {"usernames": ["ci"], "namespaces": ["kube-system"], "runtimeClasses": ["kata"]},
        }))
        .unwrap();
        assert!(config.problems("spec.podSecurity").is_empty());
        let settings = Settings::from(config);
        let (policy, _) = Policy::from_labels(None, &settings.defaults);
        assert_eq!(policy.enforce.to_string(), "baseline:v1.24");
        assert_eq!(policy.warn.to_string(), "restricted:latest");
        let labels = json!({"pod-security.kubernetes.io/enforce": "restricted"});
        let (labelled, _) = Policy::from_labels(labels.as_object(), &settings.defaults);
        assert_eq!(labelled.enforce.to_string(), "restricted:v1.24");
        assert!(settings.exempt_namespace(Some("kube-system")));
        assert!(!settings.exempt_namespace(Some("default")));
        assert!(settings.exempt_user(Some("ci")));
        assert!(!settings.exempt_user(None));
        assert!(settings.exempt_runtime_class(&json!({"runtimeClassName": "kata"})));
        assert!(!settings.exempt_runtime_class(&json!({})));
        assert_eq!(
            settings.exempt_namespace_warning("kube-system", &labelled, labels.as_object()),
            Some("namespace \"kube-system\" is exempt from Pod Security, and the policy (enforce=restricted:v1.24) will be ignored".to_owned())
        );
        assert_eq!(
            settings.exempt_namespace_warning("kube-system", &policy, None),
            None,
            "the default policy is not worth a warning"
        );

        let bad: Configuration = serde_json::from_value(json!({
            "defaults": {"audit": "strict", "warn-version": "1.24"},
            "exemptions": {"usernames": ["", "a", "a"]},
        }))
        .unwrap();
        assert_eq!(
            bad.problems("spec.podSecurity"),
            [
                "spec.podSecurity.defaults.audit: Invalid value: \"strict\": must be one of privileged, baseline, restricted",
                "spec.podSecurity.defaults.warn-version: Invalid value: \"1.24\": must be \"latest\" or \"v1.x\"",
                "spec.podSecurity.exemptions.usernames[0]: Invalid value: \"\": must not be empty",
                "spec.podSecurity.exemptions.usernames[2]: Duplicate value: \"a\"",
            ]
        );
    }
}
