//! The Pod Security Standards checks at `latest`, in upstream's order (baseline checks,
//! then at `baseline` the baseline checks a restricted one replaces, at `restricted` the
//! restricted ones), each with upstream's reason and detail.

use super::Level;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;

/// One failed check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub reason: String,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{} ({})", self.reason, self.detail)
        }
    }
}

type Check = fn(&Value, &Value) -> Option<Violation>;

/// Baseline checks no restricted check replaces.
const BASELINE: [Check; 8] = [
    app_armor,
    host_namespaces,
    host_ports,
    privileged,
    proc_mount,
    se_linux_options,
    sysctls,
    windows_host_process,
];
/// Baseline checks that a restricted check replaces at `restricted`.
const OVERLAPPING_BASELINE: [Check; 3] =
    [capabilities_baseline, host_path_volumes, seccomp_baseline];
/// The restricted checks.
const RESTRICTED: [Check; 6] = [
    allow_privilege_escalation,
    capabilities_restricted,
    restricted_volumes,
    run_as_non_root,
    run_as_user,
    seccomp_restricted,
];

/// The violations of a pod (its metadata and spec) at `level`.
pub fn evaluate(level: Level, meta: &Value, spec: &Value) -> Vec<Violation> {
    let extra: &[Check] = match level {
        Level::Privileged => return Vec::new(),
        Level::Baseline => &OVERLAPPING_BASELINE,
        Level::Restricted => &RESTRICTED,
    };
    BASELINE
        .iter()
        .chain(extra)
        .filter_map(|check| check(meta, spec))
        .collect()
}

fn violation(reason: impl Into<String>, detail: impl Into<String>) -> Option<Violation> {
    Some(Violation {
        reason: reason.into(),
        detail: detail.into(),
    })
}

/// Every container: init containers, containers, then ephemeral containers.
fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |list| spec[list].as_array().into_iter().flatten())
}

fn name(container: &Value) -> &str {
    container["name"].as_str().unwrap_or("")
}

fn pluralize<'a>(singular: &'a str, plural: &'a str, count: usize) -> &'a str {
    if count == 1 {
        singular
    } else {
        plural
    }
}

fn join_quote<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    items
        .into_iter()
        .map(|s| format!("{:?}", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `container "a"` / `containers "a", "b"`.
fn containers_phrase(names: &[String]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// Whether the pod runs in its own user namespace (`hostUsers: false`), which relaxes
/// the checks about running as root.
fn user_namespaced(spec: &Value) -> bool {
    spec["hostUsers"] == Value::Bool(false)
}

fn app_armor(meta: &Value, spec: &Value) -> Option<Violation> {
    let allowed = |profile: &str| {
        profile.is_empty() || profile == "runtime/default" || profile.starts_with("localhost/")
    };
    let mut bad: Vec<String> = Vec::new();
    for (key, value) in meta["annotations"].as_object().into_iter().flatten() {
        if key.starts_with("container.apparmor.security.beta.kubernetes.io/") {
            let value = value.as_str().unwrap_or("");
            if !allowed(value) {
                bad.push(format!("{key}={value:?}"));
            }
        }
    }
    let mut setters = Vec::new();
    if spec["securityContext"]["appArmorProfile"]["type"] == "Unconfined" {
        setters.push("pod".to_owned());
    }
    let unconfined: Vec<String> = containers(spec)
        .filter(|c| c["securityContext"]["appArmorProfile"]["type"] == "Unconfined")
        .map(|c| name(c).to_owned())
        .collect();
    if !unconfined.is_empty() {
        setters.push(containers_phrase(&unconfined));
    }
    if !setters.is_empty() {
        bad.push(format!(
            "{} must not set securityContext.appArmorProfile.type to \"Unconfined\"",
            setters.join(" and ")
        ));
    }
    if bad.is_empty() {
        return None;
    }
    violation(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            bad.len(),
        ),
        bad.join(", "),
    )
}

fn host_namespaces(_: &Value, spec: &Value) -> Option<Violation> {
    let used: Vec<&str> = ["hostIPC", "hostNetwork", "hostPID"]
        .into_iter()
        .filter(|field| spec[*field] == Value::Bool(true))
        .map(|field| match field {
            "hostIPC" => "hostIPC=true",
            "hostNetwork" => "hostNetwork=true",
            _ => "hostPID=true",
        })
        .collect();
    if used.is_empty() {
        return None;
    }
    violation("host namespaces", used.join(", "))
}

fn host_ports(_: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut ports = BTreeSet::new();
    for container in containers(spec) {
        let used: Vec<i64> = container["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["hostPort"].as_i64())
            .filter(|p| *p != 0)
            .collect();
        if !used.is_empty() {
            bad.push(name(container).to_owned());
            ports.extend(used.into_iter().map(|p| p.to_string()));
        }
    }
    if bad.is_empty() {
        return None;
    }
    violation(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_phrase(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.into_iter().collect::<Vec<_>>().join(", ")
        ),
    )
}

fn privileged(_: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = containers(spec)
        .filter(|c| c["securityContext"]["privileged"] == Value::Bool(true))
        .map(|c| name(c).to_owned())
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers_phrase(&bad)
        ),
    )
}

fn proc_mount(_: &Value, spec: &Value) -> Option<Violation> {
    if user_namespaced(spec) {
        return None;
    }
    let mut bad = Vec::new();
    let mut values = BTreeSet::new();
    for container in containers(spec) {
        if let Some(mount) = container["securityContext"]["procMount"].as_str() {
            if mount != "Default" {
                bad.push(name(container).to_owned());
                values.insert(mount.to_owned());
            }
        }
    }
    if bad.is_empty() {
        return None;
    }
    violation(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers_phrase(&bad),
            join_quote(&values)
        ),
    )
}

fn se_linux_options(_: &Value, spec: &Value) -> Option<Violation> {
    const TYPES: [&str; 5] = [
        "",
        "container_t",
        "container_init_t",
        "container_kvm_t",
        "container_engine_t",
    ];
    let mut setters = Vec::new();
    let mut types = BTreeSet::new();
    let mut users = BTreeSet::new();
    let mut roles = BTreeSet::new();
    let mut judge = |options: &Value| -> bool {
        let mut bad = false;
        if let Some(t) = options["type"].as_str().filter(|t| !TYPES.contains(t)) {
            types.insert(t.to_owned());
            bad = true;
        }
        if let Some(u) = options["user"].as_str().filter(|u| !u.is_empty()) {
            users.insert(u.to_owned());
            bad = true;
        }
        if let Some(r) = options["role"].as_str().filter(|r| !r.is_empty()) {
            roles.insert(r.to_owned());
            bad = true;
        }
        bad
    };
    if judge(&spec["securityContext"]["seLinuxOptions"]) {
        setters.push("pod".to_owned());
    }
    let bad: Vec<String> = containers(spec)
        .filter(|c| judge(&c["securityContext"]["seLinuxOptions"]))
        .map(|c| name(c).to_owned())
        .collect();
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    let mut what = Vec::new();
    for (singular, plural, set) in [
        ("type", "types", &types),
        ("user", "users", &users),
        ("role", "roles", &roles),
    ] {
        if !set.is_empty() {
            what.push(format!(
                "{} {}",
                pluralize(singular, plural, set.len()),
                join_quote(set)
            ));
        }
    }
    violation(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters.join(" and "),
            what.join("; ")
        ),
    )
}

fn sysctls(_: &Value, spec: &Value) -> Option<Violation> {
    const ALLOWED: [&str; 12] = [
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    ];
    let bad: Vec<&str> = spec["securityContext"]["sysctls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .filter(|n| !ALLOWED.contains(n))
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation("forbidden sysctls", bad.join(", "))
}

fn windows_host_process(_: &Value, spec: &Value) -> Option<Violation> {
    let host_process = |sc: &Value| sc["windowsOptions"]["hostProcess"] == Value::Bool(true);
    let mut setters = Vec::new();
    if host_process(&spec["securityContext"]) {
        setters.push("pod".to_owned());
    }
    let bad: Vec<String> = containers(spec)
        .filter(|c| host_process(&c["securityContext"]))
        .map(|c| name(c).to_owned())
        .collect();
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters.join(" and ")
        ),
    )
}

const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn added_capabilities(container: &Value) -> impl Iterator<Item = &str> {
    container["securityContext"]["capabilities"]["add"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn capabilities_baseline(_: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut capabilities = BTreeSet::new();
    for container in containers(spec) {
        let extra: Vec<&str> = added_capabilities(container)
            .filter(|c| !BASELINE_CAPABILITIES.contains(c))
            .collect();
        if !extra.is_empty() {
            bad.push(name(container).to_owned());
            capabilities.extend(extra);
        }
    }
    if bad.is_empty() {
        return None;
    }
    violation(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&bad),
            join_quote(&capabilities)
        ),
    )
}

fn host_path_volumes(_: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<&str> = volumes(spec)
        .filter(|v| v.get("hostPath").is_some_and(|h| !h.is_null()))
        .map(|v| v["name"].as_str().unwrap_or(""))
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad)
        ),
    )
}

fn volumes(spec: &Value) -> impl Iterator<Item = &Value> {
    spec["volumes"].as_array().into_iter().flatten()
}

fn valid_seccomp(profile_type: &str) -> bool {
    matches!(profile_type, "RuntimeDefault" | "Localhost")
}

fn seccomp_type(security_context: &Value) -> Option<&str> {
    let profile = &security_context["seccompProfile"];
    profile
        .is_object()
        .then(|| profile["type"].as_str().unwrap_or(""))
}

/// The pod and the containers that set a seccomp profile type other than the allowed
/// ones, and those types.
fn bad_seccomp_setters(spec: &Value) -> (Vec<String>, BTreeSet<String>, bool) {
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    let pod_type = seccomp_type(&spec["securityContext"]);
    if let Some(t) = pod_type.filter(|t| !valid_seccomp(t)) {
        setters.push("pod".to_owned());
        values.insert(t.to_owned());
    }
    let bad: Vec<String> = containers(spec)
        .filter_map(|c| {
            let t = seccomp_type(&c["securityContext"])?;
            (!valid_seccomp(t)).then(|| {
                values.insert(t.to_owned());
                name(c).to_owned()
            })
        })
        .collect();
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    let pod_valid = pod_type.is_some_and(valid_seccomp);
    (setters, values, pod_valid)
}

fn seccomp_baseline(_: &Value, spec: &Value) -> Option<Violation> {
    let (setters, values, _) = bad_seccomp_setters(spec);
    if setters.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            setters.join(" and "),
            join_quote(&values)
        ),
    )
}

fn seccomp_restricted(meta: &Value, spec: &Value) -> Option<Violation> {
    if let Some(found) = seccomp_baseline(meta, spec) {
        return Some(found);
    }
    let (_, _, pod_valid) = bad_seccomp_setters(spec);
    if pod_valid {
        return None;
    }
    let implicit: Vec<String> = containers(spec)
        .filter(|c| seccomp_type(&c["securityContext"]).is_none())
        .map(|c| name(c).to_owned())
        .collect();
    if implicit.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            containers_phrase(&implicit)
        ),
    )
}

fn allow_privilege_escalation(_: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = containers(spec)
        .filter(|c| c["securityContext"]["allowPrivilegeEscalation"] != Value::Bool(false))
        .map(|c| name(c).to_owned())
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_phrase(&bad)
        ),
    )
}

fn capabilities_restricted(_: &Value, spec: &Value) -> Option<Violation> {
    let mut missing_drop = Vec::new();
    let mut adding = Vec::new();
    let mut forbidden = BTreeSet::new();
    for container in containers(spec) {
        let capabilities = &container["securityContext"]["capabilities"];
        let drops_all = capabilities["drop"]
            .as_array()
            .is_some_and(|d| d.iter().any(|c| c == "ALL"));
        if !drops_all {
            missing_drop.push(name(container).to_owned());
        }
        let extra: Vec<&str> = added_capabilities(container)
            .filter(|c| *c != "NET_BIND_SERVICE")
            .collect();
        if !extra.is_empty() {
            adding.push(name(container).to_owned());
            forbidden.extend(extra);
        }
    }
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding),
            join_quote(&forbidden)
        ));
    }
    if details.is_empty() {
        return None;
    }
    violation("unrestricted capabilities", details.join("; "))
}

fn restricted_volumes(_: &Value, spec: &Value) -> Option<Violation> {
    const ALLOWED: [&str; 9] = [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
        "image",
    ];
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for volume in volumes(spec) {
        let Some(map) = volume.as_object() else {
            continue;
        };
        let sources: Vec<&String> = map
            .iter()
            .filter(|(k, v)| *k != "name" && !v.is_null())
            .map(|(k, _)| k)
            .collect();
        if sources.iter().any(|k| ALLOWED.contains(&k.as_str())) {
            continue;
        }
        bad.push(volume["name"].as_str().unwrap_or("").to_owned());
        types.extend(sources.into_iter().cloned());
    }
    if bad.is_empty() {
        return None;
    }
    violation(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
        ),
    )
}

fn run_as_non_root(_: &Value, spec: &Value) -> Option<Violation> {
    if user_namespaced(spec) {
        return None;
    }
    let mut setters = Vec::new();
    let pod = &spec["securityContext"]["runAsNonRoot"];
    if *pod == Value::Bool(false) {
        setters.push("pod".to_owned());
    }
    let pod_non_root = *pod == Value::Bool(true);
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for container in containers(spec) {
        match container["securityContext"]["runAsNonRoot"].as_bool() {
            Some(false) => explicit.push(name(container).to_owned()),
            Some(true) => {}
            None if !pod_non_root => implicit.push(name(container).to_owned()),
            None => {}
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_phrase(&explicit));
    }
    if !setters.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        );
    }
    if implicit.is_empty() {
        return None;
    }
    violation(
        "runAsNonRoot != true",
        format!(
            "pod or {} must set securityContext.runAsNonRoot=true",
            containers_phrase(&implicit)
        ),
    )
}

fn run_as_user(_: &Value, spec: &Value) -> Option<Violation> {
    if user_namespaced(spec) {
        return None;
    }
    let root = |sc: &Value| sc["runAsUser"].as_i64() == Some(0);
    let mut setters = Vec::new();
    if root(&spec["securityContext"]) {
        setters.push("pod".to_owned());
    }
    let bad: Vec<String> = containers(spec)
        .filter(|c| root(&c["securityContext"]))
        .map(|c| name(c).to_owned())
        .collect();
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", setters.join(" and ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(level: Level, pod: &Value) -> String {
        evaluate(level, &pod["metadata"], &pod["spec"])
            .iter()
            .map(Violation::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    #[test]
    fn a_plain_pod_passes_baseline_and_fails_restricted() {
        let pod =
            json!({"metadata": {}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}});
        assert_eq!(message(Level::Baseline, &pod), "");
        assert_eq!(message(Level::Privileged, &pod), "");
        assert_eq!(
            message(Level::Restricted, &pod),
            "allowPrivilegeEscalation != false (container \"nginx\" must set securityContext.allowPrivilegeEscalation=false), \
             unrestricted capabilities (container \"nginx\" must set securityContext.capabilities.drop=[\"ALL\"]), \
             runAsNonRoot != true (pod or container \"nginx\" must set securityContext.runAsNonRoot=true), \
             seccompProfile (pod or container \"nginx\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
    }

    #[test]
    fn a_hardened_pod_passes_restricted() {
        let pod = json!({"metadata": {}, "spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "data", "emptyDir": {}}],
            "containers": [{"name": "app", "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            }}],
        }});
        assert_eq!(message(Level::Restricted, &pod), "");
    }

    #[test]
    fn baseline_violations_in_upstreams_order() {
        let pod = json!({"metadata": {}, "spec": {
            "hostNetwork": true,
            "hostPID": true,
            "securityContext": {"seccompProfile": {"type": "Unconfined"}, "sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}, {"name": "nfs", "nfs": {"server": "s", "path": "/"}}],
            "containers": [
                {"name": "a", "ports": [{"containerPort": 80, "hostPort": 80}], "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN", "CHOWN"]}}},
                {"name": "b", "ports": [{"containerPort": 81, "hostPort": 81}], "securityContext": {"privileged": true, "procMount": "Unmasked"}},
            ],
        }});
        assert_eq!(
            message(Level::Baseline, &pod),
            "host namespaces (hostNetwork=true, hostPID=true), \
             hostPort (containers \"a\", \"b\" use hostPorts 80, 81), \
             privileged (containers \"a\", \"b\" must not set securityContext.privileged=true), \
             procMount (container \"b\" must not set securityContext.procMount to \"Unmasked\"), \
             forbidden sysctls (kernel.msgmax), \
             non-default capabilities (container \"a\" must not include \"NET_ADMIN\" in securityContext.capabilities.add), \
             hostPath volumes (volume \"root\"), \
             seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"
        );
        let restricted = message(Level::Restricted, &pod);
        assert!(restricted.contains(
            "restricted volume types (volumes \"root\", \"nfs\" use restricted volume types \"hostPath\", \"nfs\")"
        ));
        assert!(!restricted.contains("hostPath volumes"));
        assert!(restricted.contains("unrestricted capabilities (containers \"a\", \"b\" must set securityContext.capabilities.drop=[\"ALL\"]; container \"a\" must not include \"CHOWN\", \"NET_ADMIN\" in securityContext.capabilities.add)"));
    }

    #[test]
    fn explicit_settings_name_their_setters() {
        let pod = json!({"metadata": {}, "spec": {
            "securityContext": {"runAsNonRoot": false, "runAsUser": 0},
            "initContainers": [{"name": "init", "securityContext": {"runAsUser": 0}}],
            "containers": [{"name": "c", "securityContext": {"runAsNonRoot": false}}],
        }});
        let restricted = message(Level::Restricted, &pod);
        assert!(restricted.contains("runAsNonRoot != true (pod and container \"c\" must not set securityContext.runAsNonRoot=false)"));
        assert!(restricted
            .contains("runAsUser=0 (pod and container \"init\" must not set runAsUser=0)"));
        let user_namespaced = json!({"metadata": {}, "spec": {"hostUsers": false, "securityContext": {"runAsUser": 0}, "containers": [{"name": "c"}]}});
        assert!(!message(Level::Restricted, &user_namespaced).contains("runAs"));
    }
}
