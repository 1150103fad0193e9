//! Upstream's columns for the built-in kinds (kube-apiserver's table printers), with the
//! cell formats `kubectl get` shows; priority 1 columns appear with `-o wide`.

use super::cells::*;
use super::{column, count, human_duration_since, or_none, text, Column, AGE, NAME};
use crate::registry::ResourceDef;
use serde_json::json;

/// The wide columns of kinds with a pod template at `spec.template`.
const CONTAINERS: Column = Column {
    name: "Containers",
    kind: "string",
    format: "",
    description: "Names of each container in the template.",
    priority: 1,
    cell: |o| json!(containers(&o["spec"]["template"], "name")),
};
const IMAGES: Column = Column {
    name: "Images",
    kind: "string",
    format: "",
    description: "Images referenced by each container in the template.",
    priority: 1,
    cell: |o| json!(containers(&o["spec"]["template"], "image")),
};
const SELECTOR: Column = Column {
    name: "Selector",
    kind: "string",
    format: "",
    description: "The label selector of the pods.",
    priority: 1,
    cell: |o| json!(any_selector(&o["spec"]["selector"])),
};

const READY_OF_DESIRED: Column = Column {
    name: "Ready",
    kind: "string",
    format: "",
    description: "Number of the pod with ready state",
    priority: 0,
    cell: |o| {
        json!(format!(
            "{}/{}",
            int(&o["status"]["readyReplicas"]),
            o["spec"]["replicas"].as_i64().unwrap_or(1)
        ))
    },
};
const PHASE_OR_TERMINATING: Column = Column {
    name: "Status",
    kind: "string",
    format: "",
    description: "",
    priority: 0,
    cell: |o| {
        json!(if o["metadata"]["deletionTimestamp"].is_string() {
            "Terminating".to_owned()
        } else {
            text(&o["status"]["phase"])
        })
    },
};
const VOLUME_ATTRIBUTES_CLASS: Column = Column {
    name: "VolumeAttributesClass",
    kind: "string",
    format: "",
    description: "",
    priority: 0,
    cell: |o| or_none(text(&o["spec"]["volumeAttributesClassName"])),
};

/// The columns upstream prints for a built-in resource; Name and Age for the others.
pub(super) fn columns(def: &ResourceDef) -> Vec<Column> {
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
            column("Status", "string", 0, pod_status),
            column("Restarts", "string", 0, |o| {
                let restarts: i64 = list(&o["status"]["containerStatuses"])
                    .iter()
                    .filter_map(|c| c["restartCount"].as_i64())
                    .sum();
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
                or_none(joined(&o["spec"]["externalIPs"], text))
            }),
            column("Port(s)", "string", 0, |o| {
                or_none(joined(&o["spec"]["ports"], |p| {
                    let protocol = p["protocol"].as_str().unwrap_or("TCP");
                    // Upstream prints a node port only once one is allocated.
                    match p["nodePort"].as_i64().filter(|n| *n > 0) {
                        Some(node_port) => format!("{}:{node_port}/{protocol}", p["port"]),
                        None => format!("{}/{protocol}", p["port"]),
                    }
                }))
            }),
            AGE,
            column("Selector", "string", 1, |o| {
                json!(map_selector(&o["spec"]["selector"]))
            }),
        ],
        ("", "serviceaccounts") => vec![
            NAME,
            column("Secrets", "string", 0, |o| json!(list(&o["secrets"]).len())),
            AGE,
        ],
        ("", "endpoints") => vec![NAME, column("Endpoints", "string", 0, endpoints), AGE],
        ("", "events") | ("events.k8s.io", "events") => event_columns(),
        ("", "nodes") => vec![
            NAME,
            column("Status", "string", 0, node_status),
            column("Roles", "string", 0, node_roles),
            AGE,
            column("Version", "string", 0, |o| {
                o["status"]["nodeInfo"]["kubeletVersion"].clone()
            }),
            column("Internal-IP", "string", 1, |o| {
                or_none(node_address(o, "InternalIP"))
            }),
            column("External-IP", "string", 1, |o| {
                or_none(node_address(o, "ExternalIP"))
            }),
            column("OS-Image", "string", 1, |o| {
                o["status"]["nodeInfo"]["osImage"].clone()
            }),
            column("Kernel-Version", "string", 1, |o| {
                o["status"]["nodeInfo"]["kernelVersion"].clone()
            }),
            column("Container-Runtime", "string", 1, |o| {
                o["status"]["nodeInfo"]["containerRuntimeVersion"].clone()
            }),
        ],
        ("", "persistentvolumeclaims") => vec![
            NAME,
            PHASE_OR_TERMINATING,
            column("Volume", "string", 0, |o| o["spec"]["volumeName"].clone()),
            column("Capacity", "string", 0, |o| {
                json!(text(&o["status"]["capacity"]["storage"]))
            }),
            column("Access Modes", "string", 0, |o| {
                json!(access_modes(&o["status"]["accessModes"]))
            }),
            column("StorageClass", "string", 0, |o| json!(storage_class(o))),
            VOLUME_ATTRIBUTES_CLASS,
            AGE,
            column("VolumeMode", "string", 1, |o| json!(volume_mode(o))),
        ],
        ("", "persistentvolumes") => vec![
            NAME,
            column("Capacity", "string", 0, |o| {
                json!(text(&o["spec"]["capacity"]["storage"]))
            }),
            column("Access Modes", "string", 0, |o| {
                json!(access_modes(&o["spec"]["accessModes"]))
            }),
            column("Reclaim Policy", "string", 0, |o| {
                o["spec"]["persistentVolumeReclaimPolicy"].clone()
            }),
            PHASE_OR_TERMINATING,
            column("Claim", "string", 0, |o| {
                let claim = &o["spec"]["claimRef"];
                json!(if claim.is_object() {
                    format!("{}/{}", text(&claim["namespace"]), text(&claim["name"]))
                } else {
                    String::new()
                })
            }),
            column("StorageClass", "string", 0, |o| json!(storage_class(o))),
            VOLUME_ATTRIBUTES_CLASS,
            column("Reason", "string", 0, |o| o["status"]["reason"].clone()),
            AGE,
            column("VolumeMode", "string", 1, |o| json!(volume_mode(o))),
        ],
        ("", "resourcequotas") => vec![
            NAME,
            AGE,
            column("Request", "string", 0, |o| json!(quota_usage(o, false))),
            column("Limit", "string", 0, |o| json!(quota_usage(o, true))),
        ],
        ("", "limitranges") | ("rbac.authorization.k8s.io", "roles" | "clusterroles") => {
            vec![NAME, created_at()]
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => vec![NAME, created_at()],
        ("", "podtemplates") => vec![
            NAME,
            column("Containers", "string", 0, |o| {
                json!(containers(&o["template"], "name"))
            }),
            column("Images", "string", 0, |o| {
                json!(containers(&o["template"], "image"))
            }),
            column("Pod Labels", "string", 0, |o| {
                json!(map_selector(&o["template"]["metadata"]["labels"]))
            }),
        ],
        ("", "replicationcontrollers") | ("apps", "replicasets") => vec![
            NAME,
            column("Desired", "integer", 0, |o| {
                json!(o["spec"]["replicas"].as_i64().unwrap_or(1))
            }),
            column("Current", "integer", 0, |o| {
                json!(int(&o["status"]["replicas"]))
            }),
            column("Ready", "integer", 0, |o| {
                json!(int(&o["status"]["readyReplicas"]))
            }),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        ("apps", "deployments") => vec![
            NAME,
            READY_OF_DESIRED,
            column("Up-to-date", "integer", 0, |o| {
                json!(int(&o["status"]["updatedReplicas"]))
            }),
            column("Available", "integer", 0, |o| {
                json!(int(&o["status"]["availableReplicas"]))
            }),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        ("apps", "statefulsets") => vec![NAME, READY_OF_DESIRED, AGE, CONTAINERS, IMAGES],
        ("apps", "daemonsets") => vec![
            NAME,
            column("Desired", "integer", 0, |o| {
                json!(int(&o["status"]["desiredNumberScheduled"]))
            }),
            column("Current", "integer", 0, |o| {
                json!(int(&o["status"]["currentNumberScheduled"]))
            }),
            column("Ready", "integer", 0, |o| {
                json!(int(&o["status"]["numberReady"]))
            }),
            column("Up-to-date", "integer", 0, |o| {
                json!(int(&o["status"]["updatedNumberScheduled"]))
            }),
            column("Available", "integer", 0, |o| {
                json!(int(&o["status"]["numberAvailable"]))
            }),
            column("Node Selector", "string", 0, |o| {
                or_none(map_selector(&o["spec"]["template"]["spec"]["nodeSelector"]))
            }),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        ("apps", "controllerrevisions") => vec![
            NAME,
            column("Controller", "string", 0, |o| {
                let owner = list(&o["metadata"]["ownerReferences"])
                    .into_iter()
                    .find(|r| r["controller"].as_bool() == Some(true));
                json!(match owner {
                    Some(owner) => {
                        let api_version = text(&owner["apiVersion"]);
                        let group = api_version
                            .rsplit_once('/')
                            .map_or("", |(g, _)| g)
                            .to_owned();
                        let kind = text(&owner["kind"]).to_lowercase();
                        let resource = if group.is_empty() {
                            kind
                        } else {
                            format!("{kind}.{group}")
                        };
                        format!("{resource}/{}", text(&owner["name"]))
                    }
                    None => "<none>".to_owned(),
                })
            }),
            column("Revision", "integer", 0, |o| json!(int(&o["revision"]))),
            AGE,
        ],
        ("batch", "jobs") => vec![
            NAME,
            column("Status", "string", 0, job_status),
            column("Completions", "string", 0, job_completions),
            column("Duration", "string", 0, |o| {
                let status = &o["status"];
                json!(match status["startTime"].as_str() {
                    None => String::new(),
                    Some(start) => {
                        let end = status["completionTime"].as_str();
                        super::duration_between(start, end)
                    }
                })
            }),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        ("batch", "cronjobs") => vec![
            NAME,
            column("Schedule", "string", 0, |o| o["spec"]["schedule"].clone()),
            column("Timezone", "string", 0, |o| {
                or_none(text(&o["spec"]["timeZone"]))
            }),
            column("Suspend", "boolean", 0, |o| {
                json!(o["spec"]["suspend"].as_bool().unwrap_or(false))
            }),
            column("Active", "integer", 0, |o| {
                json!(list(&o["status"]["active"]).len())
            }),
            column("Last Schedule", "string", 0, |o| {
                json!(match o["status"]["lastScheduleTime"].as_str() {
                    Some(t) => human_duration_since(t),
                    None => "<none>".to_owned(),
                })
            }),
            AGE,
            column("Containers", "string", 1, |o| {
                json!(containers(
                    &o["spec"]["jobTemplate"]["spec"]["template"],
                    "name"
                ))
            }),
            column("Images", "string", 1, |o| {
                json!(containers(
                    &o["spec"]["jobTemplate"]["spec"]["template"],
                    "image"
                ))
            }),
            column("Selector", "string", 1, |o| {
                json!(any_selector(&o["spec"]["jobTemplate"]["spec"]["selector"]))
            }),
        ],
        ("autoscaling", "horizontalpodautoscalers") => vec![
            NAME,
            column("Reference", "string", 0, |o| {
                let target = &o["spec"]["scaleTargetRef"];
                json!(format!(
                    "{}/{}",
                    text(&target["kind"]),
                    text(&target["name"])
                ))
            }),
            column("Targets", "string", 0, hpa_targets),
            column("MinPods", "string", 0, |o| {
                json!(o["spec"]["minReplicas"].as_i64().unwrap_or(1))
            }),
            column("MaxPods", "integer", 0, |o| {
                json!(int(&o["spec"]["maxReplicas"]))
            }),
            column("Replicas", "integer", 0, |o| {
                json!(int(&o["status"]["currentReplicas"]))
            }),
            AGE,
        ],
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => vec![
            NAME,
            column("Role", "string", 0, |o| {
                json!(format!(
                    "{}/{}",
                    text(&o["roleRef"]["kind"]),
                    text(&o["roleRef"]["name"])
                ))
            }),
            AGE,
            column("Users", "string", 1, |o| json!(subjects(o, "User"))),
            column("Groups", "string", 1, |o| json!(subjects(o, "Group"))),
            column("ServiceAccounts", "string", 1, |o| {
                json!(subjects(o, "ServiceAccount"))
            }),
        ],
        ("networking.k8s.io", "ingresses") => vec![
            NAME,
            column("Class", "string", 0, |o| {
                or_none(text(&o["spec"]["ingressClassName"]))
            }),
            column("Hosts", "string", 0, |o| {
                let hosts = joined(&o["spec"]["rules"], |r| text(&r["host"]));
                json!(if hosts.is_empty() {
                    "*".to_owned()
                } else {
                    hosts
                })
            }),
            column("Address", "string", 0, |o| {
                json!(load_balancer(&o["status"]["loadBalancer"]["ingress"]))
            }),
            column("Ports", "string", 0, |o| {
                json!(if list(&o["spec"]["tls"]).is_empty() {
                    "80"
                } else {
                    "80, 443"
                })
            }),
            AGE,
        ],
        ("networking.k8s.io", "ingressclasses") => vec![
            NAME,
            column("Controller", "string", 0, |o| {
                o["spec"]["controller"].clone()
            }),
            column("Parameters", "string", 0, |o| {
                let p = &o["spec"]["parameters"];
                json!(if p.is_object() {
                    let group = text(&p["apiGroup"]);
                    let kind = if group.is_empty() {
                        text(&p["kind"])
                    } else {
                        format!("{}.{group}", text(&p["kind"]))
                    };
                    format!("{kind}/{}", text(&p["name"]))
                } else {
                    "<none>".to_owned()
                })
            }),
            AGE,
        ],
        ("networking.k8s.io", "networkpolicies") => vec![
            NAME,
            column("Pod-Selector", "string", 0, |o| {
                json!(label_selector(&o["spec"]["podSelector"]))
            }),
            AGE,
        ],
        ("policy", "poddisruptionbudgets") => vec![
            NAME,
            column("Min Available", "string", 0, |o| {
                json!(int_or_string(&o["spec"]["minAvailable"]))
            }),
            column("Max Unavailable", "string", 0, |o| {
                json!(int_or_string(&o["spec"]["maxUnavailable"]))
            }),
            column("Allowed Disruptions", "integer", 0, |o| {
                json!(int(&o["status"]["disruptionsAllowed"]))
            }),
            AGE,
        ],
        ("coordination.k8s.io", "leases") => vec![
            NAME,
            column("Holder", "string", 0, |o| {
                json!(text(&o["spec"]["holderIdentity"]))
            }),
            AGE,
        ],
        ("discovery.k8s.io", "endpointslices") => vec![
            NAME,
            column("AddressType", "string", 0, |o| o["addressType"].clone()),
            column("Ports", "string", 0, |o| {
                or_none(joined(&o["ports"], |p| match p["port"].as_i64() {
                    Some(port) => port.to_string(),
                    None => String::new(),
                }))
            }),
            column("Endpoints", "string", 0, |o| {
                let addresses: Vec<String> = list(&o["endpoints"])
                    .iter()
                    .flat_map(|e| list(&e["addresses"]))
                    .map(|a| text(&a))
                    .collect();
                or_none(first_three(addresses))
            }),
            AGE,
        ],
        ("scheduling.k8s.io", "priorityclasses") => vec![
            NAME,
            column("Value", "integer", 0, |o| json!(int(&o["value"]))),
            column("Global-Default", "boolean", 0, |o| {
                json!(o["globalDefault"].as_bool().unwrap_or(false))
            }),
            AGE,
            column("PreemptionPolicy", "string", 0, |o| {
                json!(o["preemptionPolicy"]
                    .as_str()
                    .unwrap_or("PreemptLowerPriority"))
            }),
        ],
        ("storage.k8s.io", "storageclasses") => vec![
            column("Name", "string", 0, |o| {
                let name = text(&o["metadata"]["name"]);
                let default = o["metadata"]["annotations"]
                    ["storageclass.kubernetes.io/is-default-class"]
                    .as_str()
                    == Some("true");
                json!(if default {
                    format!("{name} (default)")
                } else {
                    name
                })
            }),
            column("Provisioner", "string", 0, |o| o["provisioner"].clone()),
            column("ReclaimPolicy", "string", 0, |o| {
                json!(o["reclaimPolicy"].as_str().unwrap_or("Delete"))
            }),
            column("VolumeBindingMode", "string", 0, |o| {
                json!(o["volumeBindingMode"].as_str().unwrap_or("Immediate"))
            }),
            column("AllowVolumeExpansion", "string", 0, |o| {
                json!(o["allowVolumeExpansion"].as_bool().unwrap_or(false))
            }),
            AGE,
        ],
        ("storage.k8s.io", "csinodes") => vec![
            NAME,
            column("Drivers", "integer", 0, |o| {
                json!(list(&o["spec"]["drivers"]).len())
            }),
            AGE,
        ],
        ("storage.k8s.io", "volumeattachments") => vec![
            NAME,
            column("Attacher", "string", 0, |o| o["spec"]["attacher"].clone()),
            column("PV", "string", 0, |o| {
                json!(text(&o["spec"]["source"]["persistentVolumeName"]))
            }),
            column("Node", "string", 0, |o| o["spec"]["nodeName"].clone()),
            column("Attached", "boolean", 0, |o| {
                json!(o["status"]["attached"].as_bool().unwrap_or(false))
            }),
            AGE,
        ],
        ("node.k8s.io", "runtimeclasses") => vec![
            NAME,
            column("Handler", "string", 0, |o| o["handler"].clone()),
            AGE,
        ],
        ("certificates.k8s.io", "certificatesigningrequests") => vec![
            NAME,
            AGE,
            column("SignerName", "string", 0, |o| {
                o["spec"]["signerName"].clone()
            }),
            column("Requestor", "string", 0, |o| o["spec"]["username"].clone()),
            column("RequestedDuration", "string", 0, |o| {
                json!(match o["spec"]["expirationSeconds"].as_i64() {
                    Some(seconds) => super::human_duration(seconds),
                    None => "<none>".to_owned(),
                })
            }),
            column("Condition", "string", 0, csr_condition),
        ],
        (
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations" | "validatingwebhookconfigurations",
        ) => vec![
            NAME,
            column("Webhooks", "integer", 0, |o| {
                json!(list(&o["webhooks"]).len())
            }),
            AGE,
        ],
        _ => vec![NAME, AGE],
    }
}
