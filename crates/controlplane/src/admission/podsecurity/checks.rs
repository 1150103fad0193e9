//! The Pod Security Standards checks, versioned as upstream's: each check has one
//! implementation per policy version where it changed (a namespace pinned to `v1.24` is
//! judged by the checks as they were in v1.24, and a check newer than the pinned version
//! does not run), each with upstream's reason and detail. They run in upstream's order: the
//! baseline checks by id, then the restricted ones by id; at `restricted`, a restricted check
//! overrides the baseline check it supersedes (restricted volumes replace the hostPath check,
//! the restricted seccomp and capabilities checks their baseline ones from the version they
//! appear in).

use super::Level;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;

/// The newest policy version modelled (upstream v1.36): `latest`, and any newer version,
/// evaluate as this one.
pub const NEWEST_MINOR: u32 = 36;
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

type CheckFn = fn(&Value, &Value) -> Option<Violation>;

/// One implementation of a check, from the policy version `since` (`v1.<since>`) on.
struct Versioned {
    since: u32,
    check: CheckFn,
    /// The baseline checks this restricted one replaces at `restricted`.
    overrides: &'static [&'static str],
}

/// A check: its upstream id, level, and implementations in increasing version order.
struct Check {
    id: &'static str,
    level: Level,
    versions: &'static [Versioned],
}

const fn at(since: u32, check: CheckFn) -> Versioned {
    Versioned {
        since,
        check,
        overrides: &[],
    }
}

const fn overriding(since: u32, check: CheckFn, overrides: &'static [&'static str]) -> Versioned {
    Versioned {
        since,
        check,
        overrides,
    }
}

/// Every check in upstream's evaluation order: baseline ids sorted, then restricted ids
/// sorted (byte order, as Go sorts them).
const CHECKS: &[Check] = &[
    Check {
        id: "appArmorProfile",
        level: Level::Baseline,
        versions: &[at(0, app_armor)],
    },
    Check {
        id: "capabilities_baseline",
        level: Level::Baseline,
        versions: &[at(0, capabilities_baseline)],
    },
    Check {
        id: "hostNamespaces",
        level: Level::Baseline,
        versions: &[at(0, host_namespaces)],
    },
    Check {
        id: "hostPathVolumes",
        level: Level::Baseline,
        versions: &[at(0, host_path_volumes)],
    },
    Check {
        id: "hostPorts",
        level: Level::Baseline,
        versions: &[at(0, host_ports)],
    },
    Check {
        id: "hostProbesAndHostLifecycle",
        level: Level::Baseline,
        versions: &[at(34, host_probes_and_lifecycle)],
    },
    Check {
        id: "privileged",
        level: Level::Baseline,
        versions: &[at(0, privileged)],
    },
    Check {
        id: "procMount",
        level: Level::Baseline,
        versions: &[at(0, proc_mount), at(35, proc_mount_unless_user_namespaced)],
    },
    Check {
        id: "seLinuxOptions",
        level: Level::Baseline,
        versions: &[at(0, se_linux_options_1_0), at(31, se_linux_options_1_31)],
    },
    Check {
        id: "seccompProfile_baseline",
        level: Level::Baseline,
        versions: &[at(0, seccomp_annotations), at(19, seccomp_baseline)],
    },
    Check {
        id: "sysctls",
        level: Level::Baseline,
        versions: &[
            at(0, sysctls_1_0),
            at(27, sysctls_1_27),
            at(29, sysctls_1_29),
            at(32, sysctls_1_32),
        ],
    },
    Check {
        id: "windowsHostProcess",
        level: Level::Baseline,
        versions: &[at(0, windows_host_process)],
    },
    Check {
        id: "allowPrivilegeEscalation",
        level: Level::Restricted,
        versions: &[
            at(8, allow_privilege_escalation),
            at(25, allow_privilege_escalation_1_25),
        ],
    },
    Check {
        id: "capabilities_restricted",
        level: Level::Restricted,
        versions: &[
            overriding(22, capabilities_restricted, &["capabilities_baseline"]),
            overriding(25, capabilities_restricted_1_25, &["capabilities_baseline"]),
        ],
    },
    Check {
        id: "procMount_restricted",
        level: Level::Restricted,
        versions: &[overriding(35, proc_mount, &["procMount"])],
    },
    Check {
        id: "restrictedVolumes",
        level: Level::Restricted,
        versions: &[overriding(0, restricted_volumes, &["hostPathVolumes"])],
    },
    Check {
        id: "runAsNonRoot",
        level: Level::Restricted,
        versions: &[at(0, run_as_non_root), at(35, run_as_non_root_1_35)],
    },
    Check {
        id: "runAsUser",
        level: Level::Restricted,
        versions: &[at(23, run_as_user), at(35, run_as_user_1_35)],
    },
    Check {
        id: "seccompProfile_restricted",
        level: Level::Restricted,
        versions: &[
            overriding(19, seccomp_restricted, &["seccompProfile_baseline"]),
            overriding(25, seccomp_restricted_1_25, &["seccompProfile_baseline"]),
        ],
    },
];

impl Check {
    /// The implementation in force at policy version `v1.<minor>`, if the check exists then.
    fn at(&self, minor: u32) -> Option<&Versioned> {
        self.versions.iter().rev().find(|v| v.since <= minor)
    }
}

/// The violations of a pod (its metadata and spec) at `level` and policy version
/// `v1.<minor>` (`None` for `latest`).
pub fn evaluate(level: Level, minor: Option<u32>, meta: &Value, spec: &Value) -> Vec<Violation> {
    if level == Level::Privileged {
        return Vec::new();
    }
    let minor = minor.map_or(NEWEST_MINOR, |m| m.min(NEWEST_MINOR));
    let in_force: Vec<(&Check, &Versioned)> = CHECKS
        .iter()
        .filter(|c| c.level <= level)
        .filter_map(|c| Some((c, c.at(minor)?)))
        .collect();
    let overridden: BTreeSet<&str> = in_force
        .iter()
        .flat_map(|(_, v)| v.overrides.iter().copied())
        .collect();
    in_force
        .into_iter()
        .filter(|(c, _)| !overridden.contains(c.id))
        .filter_map(|(_, v)| (v.check)(meta, spec))
        .collect()
}

/// Upstream's v1.25 relaxation: a Windows pod (`spec.os.name: windows`) cannot set what
/// these checks ask for, so they pass it.
fn windows(spec: &Value) -> bool {
    spec["os"]["name"] == "windows"
}

fn allow_privilege_escalation_1_25(meta: &Value, spec: &Value) -> Option<Violation> {
    (!windows(spec))
        .then(|| allow_privilege_escalation(meta, spec))
        .flatten()
}

fn capabilities_restricted_1_25(meta: &Value, spec: &Value) -> Option<Violation> {
    (!windows(spec))
        .then(|| capabilities_restricted(meta, spec))
        .flatten()
}

fn seccomp_restricted_1_25(meta: &Value, spec: &Value) -> Option<Violation> {
    (!windows(spec))
        .then(|| seccomp_restricted(meta, spec))
        .flatten()
}

/// Upstream's v1.35 relaxation: a pod in its own user namespace (`hostUsers: false`) is not
/// root on the node, whatever it runs as.
fn run_as_non_root_1_35(meta: &Value, spec: &Value) -> Option<Violation> {
    (!user_namespaced(spec))
        .then(|| run_as_non_root(meta, spec))
        .flatten()
}

fn run_as_user_1_35(meta: &Value, spec: &Value) -> Option<Violation> {
    (!user_namespaced(spec))
        .then(|| run_as_user(meta, spec))
        .flatten()
}

/// From v1.35, baseline lets a user-namespaced pod unmask `/proc` (restricted still does not).
fn proc_mount_unless_user_namespaced(meta: &Value, spec: &Value) -> Option<Violation> {
    (!user_namespaced(spec))
        .then(|| proc_mount(meta, spec))
        .flatten()
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
    let allowed_type = |t: &str| matches!(t, "RuntimeDefault" | "Localhost");
    fn profile_type(sc: &Value) -> Option<&str> {
        let profile = &sc["appArmorProfile"];
        profile
            .is_object()
            .then(|| profile["type"].as_str().unwrap_or(""))
    }
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    if let Some(t) = profile_type(&spec["securityContext"]).filter(|t| !allowed_type(t)) {
        setters.push("pod".to_owned());
        values.insert(t.to_owned());
    }
    let bad: Vec<String> = containers(spec)
        .filter_map(|c| {
            let t = profile_type(&c["securityContext"]).filter(|t| !allowed_type(t))?;
            values.insert(t.to_owned());
            Some(name(c).to_owned())
        })
        .collect();
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    let allowed_annotation =
        |v: &str| v.is_empty() || v == "runtime/default" || v.starts_with("localhost/");
    let annotations: BTreeSet<String> = meta["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("container.apparmor.security.beta.kubernetes.io/"))
        .map(|(k, v)| (k, v.as_str().unwrap_or("")))
        .filter(|(_, v)| !allowed_annotation(v))
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    let mut values: Vec<String> = values.into_iter().collect();
    if !annotations.is_empty() {
        setters.push(pluralize("annotation", "annotations", annotations.len()).to_owned());
        values.extend(annotations);
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            values.len(),
        ),
        format!(
            "{} must not set AppArmor profile type to {}",
            setters.join(" and "),
            join_quote(&values)
        ),
    )
}

fn host_namespaces(_: &Value, spec: &Value) -> Option<Violation> {
    let used: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|field| spec[*field] == Value::Bool(true))
        .map(|field| format!("{field}=true"))
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

fn se_linux_options_1_0(meta: &Value, spec: &Value) -> Option<Violation> {
    se_linux_options(
        meta,
        spec,
        &["", "container_t", "container_init_t", "container_kvm_t"],
    )
}

/// v1.31 allows the `container_engine_t` type.
fn se_linux_options_1_31(meta: &Value, spec: &Value) -> Option<Violation> {
    se_linux_options(
        meta,
        spec,
        &[
            "",
            "container_t",
            "container_init_t",
            "container_kvm_t",
            "container_engine_t",
        ],
    )
}

fn se_linux_options(_: &Value, spec: &Value, allowed_types: &[&str]) -> Option<Violation> {
    let mut setters = Vec::new();
    let mut types = BTreeSet::new();
    let mut user = false;
    let mut role = false;
    let mut judge = |options: &Value| -> bool {
        if !options.is_object() {
            return false;
        }
        let mut bad = false;
        let t = options["type"].as_str().unwrap_or("");
        if !allowed_types.contains(&t) {
            types.insert(t.to_owned());
            bad = true;
        }
        if options["user"].as_str().is_some_and(|u| !u.is_empty()) {
            user = true;
            bad = true;
        }
        if options["role"].as_str().is_some_and(|r| !r.is_empty()) {
            role = true;
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
    if !types.is_empty() {
        what.push(format!(
            "{} {}",
            pluralize("type", "types", types.len()),
            join_quote(&types)
        ));
    }
    if user {
        what.push("user may not be set".to_owned());
    }
    if role {
        what.push("role may not be set".to_owned());
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

/// The sysctls allowed from v1.0; later versions add to them.
const SYSCTLS_1_0: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
];
const SYSCTLS_1_27: &[&str] = &["net.ipv4.ip_local_reserved_ports"];
const SYSCTLS_1_29: &[&str] = &[
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
const SYSCTLS_1_32: &[&str] = &["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"];

fn sysctls_1_0(meta: &Value, spec: &Value) -> Option<Violation> {
    sysctls(meta, spec, &[SYSCTLS_1_0])
}

fn sysctls_1_27(meta: &Value, spec: &Value) -> Option<Violation> {
    sysctls(meta, spec, &[SYSCTLS_1_0, SYSCTLS_1_27])
}

fn sysctls_1_29(meta: &Value, spec: &Value) -> Option<Violation> {
    sysctls(meta, spec, &[SYSCTLS_1_0, SYSCTLS_1_27, SYSCTLS_1_29])
}

fn sysctls_1_32(meta: &Value, spec: &Value) -> Option<Violation> {
    sysctls(
        meta,
        spec,
        &[SYSCTLS_1_0, SYSCTLS_1_27, SYSCTLS_1_29, SYSCTLS_1_32],
    )
}

fn sysctls(_: &Value, spec: &Value, allowed: &[&[&str]]) -> Option<Violation> {
    let bad: Vec<&str> = spec["securityContext"]["sysctls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .filter(|n| !allowed.iter().any(|set| set.contains(n)))
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation("forbidden sysctls", bad.join(", "))
}

/// The v1.0 seccomp check, on the alpha annotations (the fields came in v1.19).
fn seccomp_annotations(meta: &Value, spec: &Value) -> Option<Violation> {
    const POD: &str = "seccomp.security.alpha.kubernetes.io/pod";
    const CONTAINER: &str = "container.seccomp.security.alpha.kubernetes.io/";
    let annotations = &meta["annotations"];
    let valid =
        |v: &str| v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/");
    let keys = std::iter::once(POD.to_owned())
        .chain(containers(spec).map(|c| format!("{CONTAINER}{}", name(c))));
    let forbidden: BTreeSet<String> = keys
        .filter_map(|key| {
            let value = annotations[&key].as_str()?;
            (!valid(value)).then(|| format!("{key}={value:?}"))
        })
        .collect();
    if forbidden.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "forbidden {} {}",
            pluralize("annotation", "annotations", forbidden.len()),
            forbidden.into_iter().collect::<Vec<_>>().join(", ")
        ),
    )
}

/// From v1.34: probes and lifecycle handlers must not reach another host.
fn host_probes_and_lifecycle(_: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for container in containers(spec) {
        let handlers = ["livenessProbe", "readinessProbe", "startupProbe"]
            .iter()
            .map(|probe| &container[*probe])
            .chain(
                ["postStart", "preStop"]
                    .iter()
                    .map(|hook| &container["lifecycle"][*hook]),
            );
        for handler in handlers {
            for action in ["httpGet", "tcpSocket"] {
                if let Some(host) = handler[action]["host"].as_str().filter(|h| !h.is_empty()) {
                    bad.insert(name(container).to_owned());
                    hosts.insert(host.to_owned());
                }
            }
        }
    }
    if bad.is_empty() {
        return None;
    }
    violation(
        "probe or lifecycle host",
        format!(
            "{} {} {} {} {}",
            pluralize("container", "containers", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize(
                "probe or lifecycle host",
                "probe or lifecycle hosts",
                hosts.len()
            ),
            join_quote(&hosts)
        ),
    )
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
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    // The restricted types upstream names, in the order it looks for them.
    const NAMED: [&str; 21] = [
        "hostPath",
        "gcePersistentDisk",
        "awsElasticBlockStore",
        "gitRepo",
        "nfs",
        "iscsi",
        "glusterfs",
        "rbd",
        "flexVolume",
        "cinder",
        "cephfs",
        "flocker",
        "fc",
        "azureFile",
        "vsphereVolume",
        "quobyte",
        "azureDisk",
        "photonPersistentDisk",
        "portworxVolume",
        "scaleIO",
        "storageos",
    ];
    let set = |volume: &Value, source: &str| volume.get(source).is_some_and(|v| !v.is_null());
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for volume in volumes(spec) {
        if ALLOWED.iter().any(|source| set(volume, source)) {
            continue;
        }
        bad.push(volume["name"].as_str().unwrap_or("").to_owned());
        types.insert(
            NAMED
                .iter()
                .find(|source| set(volume, source))
                .copied()
                .unwrap_or("unknown"),
        );
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

    fn message_at(level: Level, minor: Option<u32>, pod: &Value) -> String {
        evaluate(level, minor, &pod["metadata"], &pod["spec"])
            .iter()
            .map(Violation::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn message(level: Level, pod: &Value) -> String {
        message_at(level, None, pod)
    }

    fn reasons_at(level: Level, minor: u32, pod: &Value) -> Vec<String> {
        evaluate(level, Some(minor), &pod["metadata"], &pod["spec"])
            .into_iter()
            .map(|v| v.reason)
            .collect()
    }

    #[test]
    fn the_registry_is_in_upstreams_order() {
        let ids: Vec<&str> = CHECKS.iter().map(|c| c.id).collect();
        let mut sorted = ids.clone();
        sorted.sort_by_key(|id| {
            let level = CHECKS.iter().find(|c| c.id == *id).map(|c| c.level);
            (level, *id)
        });
        assert_eq!(ids, sorted);
        for check in CHECKS {
            assert!(
                check.versions.windows(2).all(|w| w[0].since < w[1].since),
                "{}",
                check.id
            );
            for version in check.versions {
                assert!(version.since <= NEWEST_MINOR);
                assert!(version.overrides.is_empty() || check.level == Level::Restricted);
            }
        }
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

    /// Which checks a plain pod fails at `restricted` as the policy grew: allowPrivilegeEscalation
    /// from v1.8, seccomp from v1.19, dropping ALL capabilities from v1.22.
    #[test]
    fn restricted_checks_appear_with_their_versions() {
        let pod = json!({"metadata": {}, "spec": {"containers": [{"name": "c"}]}});
        for (minor, expected) in [
            (0, vec!["runAsNonRoot != true"]),
            (7, vec!["runAsNonRoot != true"]),
            (
                8,
                vec!["allowPrivilegeEscalation != false", "runAsNonRoot != true"],
            ),
            (
                19,
                vec![
                    "allowPrivilegeEscalation != false",
                    "runAsNonRoot != true",
                    "seccompProfile",
                ],
            ),
            (
                22,
                vec![
                    "allowPrivilegeEscalation != false",
                    "unrestricted capabilities",
                    "runAsNonRoot != true",
                    "seccompProfile",
                ],
            ),
            (
                99,
                vec![
                    "allowPrivilegeEscalation != false",
                    "unrestricted capabilities",
                    "runAsNonRoot != true",
                    "seccompProfile",
                ],
            ),
        ] {
            assert_eq!(
                reasons_at(Level::Restricted, minor, &pod),
                expected,
                "v1.{minor}"
            );
        }
    }

    /// Table of version-dependent outcomes: (pod spec, level, version, expected reasons).
    #[test]
    fn checks_follow_the_pinned_version() {
        let root = json!({"metadata": {}, "spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
        }});
        let windows = json!({"metadata": {}, "spec": {
            "os": {"name": "windows"},
            "securityContext": {"runAsNonRoot": true},
            "containers": [{"name": "c"}],
        }});
        let user_namespaced = json!({"metadata": {}, "spec": {
            "hostUsers": false,
            "securityContext": {"runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "securityContext": {"procMount": "Unmasked", "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
        }});
        let sysctl = |name: &str| {
            json!({"metadata": {}, "spec": {
                "securityContext": {"sysctls": [{"name": name, "value": "1"}]},
                "containers": [{"name": "c"}],
            }})
        };
        let engine = json!({"metadata": {}, "spec": {
            "securityContext": {"seLinuxOptions": {"type": "container_engine_t"}},
            "containers": [{"name": "c"}],
        }});
        let probe_host = json!({"metadata": {}, "spec": {"containers": [{"name": "c",
            "livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}}}]}});
        let annotated = json!({"metadata": {"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}},
            "spec": {"containers": [{"name": "c"}]}});
        let unconfined_field = json!({"metadata": {}, "spec": {
            "securityContext": {"seccompProfile": {"type": "Unconfined"}},
            "containers": [{"name": "c"}],
        }});
        let reserved = sysctl("net.ipv4.ip_local_reserved_ports");
        let keepalive = sysctl("net.ipv4.tcp_keepalive_time");
        let rmem = sysctl("net.ipv4.tcp_rmem");
        let cases: Vec<(&str, &Value, Level, u32, Vec<&str>)> = vec![
            (
                "runAsUser=0 before v1.23",
                &root,
                Level::Restricted,
                22,
                vec![],
            ),
            (
                "runAsUser=0 from v1.23",
                &root,
                Level::Restricted,
                23,
                vec!["runAsUser=0"],
            ),
            (
                "windows pod at v1.24",
                &windows,
                Level::Restricted,
                24,
                vec![
                    "allowPrivilegeEscalation != false",
                    "unrestricted capabilities",
                    "seccompProfile",
                ],
            ),
            (
                "windows pod from v1.25",
                &windows,
                Level::Restricted,
                25,
                vec![],
            ),
            (
                "user namespace before v1.35",
                &user_namespaced,
                Level::Restricted,
                34,
                vec!["procMount", "runAsNonRoot != true", "runAsUser=0"],
            ),
            (
                "user namespace at baseline before v1.35",
                &user_namespaced,
                Level::Baseline,
                34,
                vec!["procMount"],
            ),
            (
                "user namespace at baseline from v1.35",
                &user_namespaced,
                Level::Baseline,
                35,
                vec![],
            ),
            (
                "user namespace at restricted from v1.35",
                &user_namespaced,
                Level::Restricted,
                35,
                vec!["procMount"],
            ),
            (
                "reserved ports v1.26",
                &reserved,
                Level::Baseline,
                26,
                vec!["forbidden sysctls"],
            ),
            (
                "reserved ports v1.27",
                &reserved,
                Level::Baseline,
                27,
                vec![],
            ),
            (
                "keepalive v1.28",
                &keepalive,
                Level::Baseline,
                28,
                vec!["forbidden sysctls"],
            ),
            ("keepalive v1.29", &keepalive, Level::Baseline, 29, vec![]),
            (
                "tcp_rmem v1.31",
                &rmem,
                Level::Baseline,
                31,
                vec!["forbidden sysctls"],
            ),
            ("tcp_rmem v1.32", &rmem, Level::Baseline, 32, vec![]),
            (
                "container_engine_t v1.30",
                &engine,
                Level::Baseline,
                30,
                vec!["seLinuxOptions"],
            ),
            (
                "container_engine_t v1.31",
                &engine,
                Level::Baseline,
                31,
                vec![],
            ),
            ("probe host v1.33", &probe_host, Level::Baseline, 33, vec![]),
            (
                "probe host v1.34",
                &probe_host,
                Level::Baseline,
                34,
                vec!["probe or lifecycle host"],
            ),
            (
                "seccomp annotation v1.18",
                &annotated,
                Level::Baseline,
                18,
                vec!["seccompProfile"],
            ),
            (
                "seccomp annotation v1.19",
                &annotated,
                Level::Baseline,
                19,
                vec![],
            ),
            (
                "seccomp field v1.18",
                &unconfined_field,
                Level::Baseline,
                18,
                vec![],
            ),
            (
                "seccomp field v1.19",
                &unconfined_field,
                Level::Baseline,
                19,
                vec!["seccompProfile"],
            ),
        ];
        for (name, pod, level, minor, expected) in cases {
            assert_eq!(reasons_at(level, minor, pod), expected, "{name}");
        }
        assert_eq!(
            message_at(Level::Baseline, Some(18), &annotated),
            "seccompProfile (forbidden annotation seccomp.security.alpha.kubernetes.io/pod=\"unconfined\")"
        );
        assert_eq!(
            message(Level::Baseline, &probe_host),
            "probe or lifecycle host (container \"c\" uses probe or lifecycle host \"10.0.0.1\")"
        );
    }

    #[test]
    fn baseline_violations_in_upstreams_order() {
        let pod = json!({"metadata": {}, "spec": {
            "hostNetwork": true,
            "hostPID": true,
            "hostIPC": true,
            "securityContext": {"seccompProfile": {"type": "Unconfined"}, "sysctls": [{"name": "kernel.msgmax", "value": "1"}],
                "seLinuxOptions": {"type": "spc_t", "user": "root"}, "appArmorProfile": {"type": "Unconfined"}},
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}, {"name": "nfs", "nfs": {"server": "s", "path": "/"}}, {"name": "odd"}],
            "containers": [
                {"name": "a", "ports": [{"containerPort": 80, "hostPort": 80}], "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN", "CHOWN"]}}},
                {"name": "b", "ports": [{"containerPort": 81, "hostPort": 81}], "securityContext": {"privileged": true, "procMount": "Unmasked"}},
            ],
        }});
        assert_eq!(
            message(Level::Baseline, &pod),
            "forbidden AppArmor profile (pod must not set AppArmor profile type to \"Unconfined\"), \
             non-default capabilities (container \"a\" must not include \"NET_ADMIN\" in securityContext.capabilities.add), \
             host namespaces (hostNetwork=true, hostPID=true, hostIPC=true), \
             hostPath volumes (volume \"root\"), \
             hostPort (containers \"a\", \"b\" use hostPorts 80, 81), \
             privileged (containers \"a\", \"b\" must not set securityContext.privileged=true), \
             procMount (container \"b\" must not set securityContext.procMount to \"Unmasked\"), \
             seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: type \"spc_t\"; user may not be set), \
             seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\"), \
             forbidden sysctls (kernel.msgmax)"
        );
        let restricted = message(Level::Restricted, &pod);
        assert!(restricted.contains(
            "restricted volume types (volumes \"root\", \"nfs\", \"odd\" use restricted volume types \"hostPath\", \"nfs\", \"unknown\")"
        ));
        assert!(!restricted.contains("hostPath volumes"));
        assert!(!restricted.contains("non-default capabilities"));
        assert!(restricted.contains("unrestricted capabilities (containers \"a\", \"b\" must set securityContext.capabilities.drop=[\"ALL\"]; container \"a\" must not include \"CHOWN\", \"NET_ADMIN\" in securityContext.capabilities.add)"));
        // Before v1.22, restricted still ran the baseline capabilities check.
        assert!(message_at(Level::Restricted, Some(21), &pod).contains("non-default capabilities"));
    }

    #[test]
    fn app_armor_names_fields_and_annotations() {
        let pod = json!({"metadata": {"annotations": {
            "container.apparmor.security.beta.kubernetes.io/b": "unconfined",
            "container.apparmor.security.beta.kubernetes.io/a": "runtime/default",
        }}, "spec": {"containers": [{"name": "a", "securityContext": {"appArmorProfile": {"type": "Unconfined"}}}, {"name": "b"}]}});
        assert_eq!(
            message(Level::Baseline, &pod),
            "forbidden AppArmor profiles (container \"a\" and annotation must not set AppArmor profile type to \
             \"Unconfined\", \"container.apparmor.security.beta.kubernetes.io/b=\\\"unconfined\\\"\")"
        );
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
