//! The pod template defaults shared by Pods, PodTemplates and every workload kind
//! (upstream's `SetDefaults_PodSpec`, `SetDefaults_Container`, `SetDefaults_Volume`, the
//! probe, handler and volume source defaults, and the generated walks over them).

use super::{child, each, existing, or_set, or_set_nonzero, or_set_str};
use serde_json::{json, Map, Value};

/// The mode of secret, config map, downward API and projected volume files (0644).
const DEFAULT_FILE_MODE: i64 = 0o644;

/// Defaults a `PodTemplateSpec` (the `template` of a workload): its pod spec.
pub fn template(template: &mut Map<String, Value>) {
    if let Some(spec) = existing(template, "spec") {
        pod_spec(spec);
    }
}

/// Defaults the `PodTemplateSpec` at `key` of `parent`, when present.
pub fn template_at(parent: &mut Map<String, Value>, key: &str) {
    if let Some(t) = existing(parent, key) {
        template(t);
    }
}

/// A Pod: the pod spec defaults, then upstream's `SetDefaults_Pod`, which only a Pod
/// (never a template) gets.
pub fn pod(pod: &mut Map<String, Value>) {
    let Some(spec) = existing(pod, "spec") else {
        return;
    };
    pod_spec(spec);
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    for list in ["containers", "initContainers"] {
        for container in each(spec, list) {
            requests_from_limits(container);
            if host_network {
                for port in each(container, "ports") {
                    if let Some(number) = port.get("containerPort").and_then(Value::as_i64) {
                        or_set_nonzero(port, "hostPort", number);
                    }
                }
            }
        }
    }
    or_set(spec, "enableServiceLinks", json!(true));
}

/// A container's missing resource requests are its limits.
fn requests_from_limits(container: &mut Map<String, Value>) {
    let Some(resources) = existing(container, "resources") else {
        return;
    };
    let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    if let Some(requests) = child(resources, "requests") {
        for (name, quantity) in limits {
            requests.entry(name).or_insert(quantity);
        }
    }
}

/// `SetDefaults_PodSpec` and the defaults of everything a pod spec holds.
pub fn pod_spec(spec: &mut Map<String, Value>) {
    or_set_str(spec, "dnsPolicy", "ClusterFirst");
    or_set_str(spec, "restartPolicy", "Always");
    or_set(spec, "securityContext", json!({}));
    or_set(spec, "terminationGracePeriodSeconds", json!(30));
    or_set_str(spec, "schedulerName", "default-scheduler");
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for container in each(spec, list) {
            self::container(container);
        }
    }
    for volume in each(spec, "volumes") {
        self::volume(volume);
    }
}

/// `SetDefaults_Container`, its ports, probes, lifecycle handlers and env sources.
fn container(container: &mut Map<String, Value>) {
    let image = container.get("image").and_then(Value::as_str).unwrap_or("");
    let policy = if image_tag(image) == "latest" {
        "Always"
    } else {
        "IfNotPresent"
    };
    or_set_str(container, "imagePullPolicy", policy);
    or_set_str(container, "terminationMessagePath", "/dev/termination-log");
    or_set_str(container, "terminationMessagePolicy", "File");
    // Not a default but upstream's encoding of a container's (non-pointer) requirements.
    or_set(container, "resources", json!({}));
    for port in each(container, "ports") {
        or_set_str(port, "protocol", "TCP");
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = existing(container, probe) {
            self::probe(probe);
        }
    }
    if let Some(lifecycle) = existing(container, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(handler) = existing(lifecycle, hook) {
                self::handler(handler);
            }
        }
    }
    for env in each(container, "env") {
        if let Some(from) = existing(env, "valueFrom") {
            field_ref(from);
        }
    }
}

/// The tag an image reference names, as upstream's `parsers.ParseImageName`: `latest`
/// when neither a tag nor a digest is given, empty for a digest only.
fn image_tag(image: &str) -> &str {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    if image.is_empty() {
        return "";
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, tag)) => tag,
        None if digest.is_some() => "",
        None => "latest",
    }
}

/// `SetDefaults_Probe` and its handler's defaults.
fn probe(probe: &mut Map<String, Value>) {
    or_set_nonzero(probe, "timeoutSeconds", 1);
    or_set_nonzero(probe, "periodSeconds", 10);
    or_set_nonzero(probe, "successThreshold", 1);
    or_set_nonzero(probe, "failureThreshold", 3);
    handler(probe);
    if let Some(grpc) = existing(probe, "grpc") {
        or_set(grpc, "service", json!(""));
    }
}

/// `SetDefaults_HTTPGetAction` on a probe's or a lifecycle hook's `httpGet`.
fn handler(handler: &mut Map<String, Value>) {
    if let Some(get) = existing(handler, "httpGet") {
        or_set_str(get, "path", "/");
        or_set_str(get, "scheme", "HTTP");
    }
}

/// `SetDefaults_ObjectFieldSelector` on the `fieldRef` of `parent`.
fn field_ref(parent: &mut Map<String, Value>) {
    if let Some(field) = existing(parent, "fieldRef") {
        or_set_str(field, "apiVersion", "v1");
    }
}

/// The volume source keys besides the volume's name.
fn has_source(volume: &Map<String, Value>) -> bool {
    volume.iter().any(|(k, v)| k != "name" && !v.is_null())
}

/// `SetDefaults_Volume` (no source is an `emptyDir`) and the volume sources' defaults.
fn volume(volume: &mut Map<String, Value>) {
    if !has_source(volume) {
        volume.insert("emptyDir".into(), json!({}));
    }
    for source in ["secret", "configMap", "projected"] {
        if let Some(source) = existing(volume, source) {
            or_set(source, "defaultMode", json!(DEFAULT_FILE_MODE));
        }
    }
    if let Some(downward) = existing(volume, "downwardAPI") {
        or_set(downward, "defaultMode", json!(DEFAULT_FILE_MODE));
        for item in each(downward, "items") {
            field_ref(item);
        }
    }
    if let Some(projected) = existing(volume, "projected") {
        for source in each(projected, "sources") {
            if let Some(token) = existing(source, "serviceAccountToken") {
                or_set(token, "expirationSeconds", json!(3600));
            }
            if let Some(downward) = existing(source, "downwardAPI") {
                for item in each(downward, "items") {
                    field_ref(item);
                }
            }
        }
    }
    if let Some(host_path) = existing(volume, "hostPath") {
        or_set(host_path, "type", json!(""));
    }
    if let Some(claim) = existing(volume, "ephemeral")
        .and_then(|e| existing(e, "volumeClaimTemplate"))
        .and_then(|t| existing(t, "spec"))
    {
        or_set(claim, "volumeMode", json!("Filesystem"));
    }
    if let Some(iscsi) = existing(volume, "iscsi") {
        or_set_str(iscsi, "iscsiInterface", "default");
    }
    if let Some(rbd) = existing(volume, "rbd") {
        or_set_str(rbd, "pool", "rbd");
        or_set_str(rbd, "user", "admin");
        or_set_str(rbd, "keyring", "/etc/ceph/keyring");
    }
    if let Some(disk) = existing(volume, "azureDisk") {
        or_set(disk, "cachingMode", json!("ReadWrite"));
        or_set(disk, "fsType", json!("ext4"));
        or_set(disk, "readOnly", json!(false));
        or_set(disk, "kind", json!("Shared"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn image_tags_follow_upstream_parsing() {
        assert_eq!(image_tag("nginx"), "latest");
        assert_eq!(image_tag("nginx:latest"), "latest");
        assert_eq!(image_tag("nginx:1.25"), "1.25");
        assert_eq!(image_tag("registry:5000/team/app"), "latest");
        assert_eq!(image_tag("registry:5000/team/app:v2"), "v2");
        assert_eq!(image_tag("app@sha256:abc"), "");
        assert_eq!(image_tag("app:v1@sha256:abc"), "v1");
        assert_eq!(image_tag(""), "");
    }

    #[test]
    fn a_minimal_pod_spec_gets_upstreams_defaults() {
        let mut spec = map(json!({
            "containers": [{
                "name": "c", "image": "nginx",
                "ports": [{"containerPort": 80}],
                "livenessProbe": {"httpGet": {"port": 80}},
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            }],
            "initContainers": [{"name": "i", "image": "busybox:1.36", "imagePullPolicy": "Never"}],
            "volumes": [
                {"name": "a"},
                {"name": "b", "secret": {"secretName": "s"}},
                {"name": "c", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
                {"name": "d", "hostPath": {"path": "/x"}},
            ],
        }));
        pod_spec(&mut spec);
        assert_eq!(
            Value::Object(spec),
            json!({
                "containers": [{
                    "name": "c", "image": "nginx",
                    "imagePullPolicy": "Always",
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File", "resources": {},
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "livenessProbe": {
                        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                        "timeoutSeconds": 1, "periodSeconds": 10,
                        "successThreshold": 1, "failureThreshold": 3,
                    },
                    "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name", "apiVersion": "v1"}}}],
                }],
                "initContainers": [{
                    "name": "i", "image": "busybox:1.36", "imagePullPolicy": "Never",
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File", "resources": {},
                }],
                "volumes": [
                    {"name": "a", "emptyDir": {}},
                    {"name": "b", "secret": {"secretName": "s", "defaultMode": 420}},
                    {"name": "c", "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken": {"path": "t", "expirationSeconds": 3600}}]}},
                    {"name": "d", "hostPath": {"path": "/x", "type": ""}},
                ],
                "dnsPolicy": "ClusterFirst",
                "restartPolicy": "Always",
                "securityContext": {},
                "terminationGracePeriodSeconds": 30,
                "schedulerName": "default-scheduler",
            })
        );
    }

    #[test]
    fn set_values_are_kept_and_only_pods_get_pod_defaults() {
        let mut spec = map(json!({
            "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "x:1", "resources": {"limits": {"cpu": "1"}}}],
        }));
        pod_spec(&mut spec);
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["terminationGracePeriodSeconds"], 0);
        assert!(spec.get("enableServiceLinks").is_none());
        assert!(spec["containers"][0]["resources"].get("requests").is_none());
        let mut p = map(json!({"spec": Value::Object(spec), "kind": "Pod"}));
        p["spec"]["hostNetwork"] = json!(true);
        p["spec"]["containers"][0]["ports"] = json!([{"containerPort": 8080}]);
        pod(&mut p);
        assert_eq!(p["spec"]["enableServiceLinks"], true);
        assert_eq!(
            p["spec"]["containers"][0]["resources"]["requests"],
            json!({"cpu": "1"})
        );
        assert_eq!(p["spec"]["containers"][0]["ports"][0]["hostPort"], 8080);
    }
}
