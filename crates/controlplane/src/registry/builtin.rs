//! The built-in resources, as Kubernetes 1.33's discovery lists them.

use super::{ResourceDef, CRUD_VERBS};
use std::sync::{Arc, LazyLock};

/// Flags of a built-in resource.
const NS: u8 = 1; // namespaced
const GEN: u8 = 2; // metadata.generation tracks spec changes
const ALL: u8 = 4; // in category "all"
const CREATE_ONLY: u8 = 8; // a review: created, never stored

/// `(group, version, kind, plural, singular, flags, short names, subresources)`.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    u8,
    &'static [&'static str],
    &'static [&'static str],
);

#[rustfmt::skip]
const RESOURCES: &[Row] = &[
    ("", "v1", "ConfigMap", "configmaps", "configmap", NS, &["cm"], &[]),
    ("", "v1", "Endpoints", "endpoints", "endpoints", NS, &["ep"], &[]),
    ("", "v1", "Event", "events", "event", NS, &["ev"], &[]),
    ("", "v1", "LimitRange", "limitranges", "limitrange", NS, &["limits"], &[]),
    ("", "v1", "Namespace", "namespaces", "namespace", 0, &["ns"], &["status", "finalize"]),
    ("", "v1", "Node", "nodes", "node", 0, &["no"], &["status"]),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", NS, &["pvc"], &["status"]),
    ("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", 0, &["pv"], &["status"]),
    ("", "v1", "Pod", "pods", "pod", NS | ALL, &["po"], &["status", "binding", "eviction", "log", "exec", "attach", "portforward", "proxy"]),
    ("", "v1", "PodTemplate", "podtemplates", "podtemplate", NS, &[], &[]),
    ("", "v1", "ReplicationController", "replicationcontrollers", "replicationcontroller", NS | GEN | ALL, &["rc"], &["status", "scale"]),
    ("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", NS, &["quota"], &["status"]),
    ("", "v1", "Secret", "secrets", "secret", NS, &[], &[]),
    ("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", NS, &["sa"], &["token"]),
    ("", "v1", "Service", "services", "service", NS | ALL, &["svc"], &["status"]),
    ("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", NS, &[], &[]),
    ("apps", "v1", "DaemonSet", "daemonsets", "daemonset", NS | GEN | ALL, &["ds"], &["status"]),
    ("apps", "v1", "Deployment", "deployments", "deployment", NS | GEN | ALL, &["deploy"], &["status", "scale"]),
    ("apps", "v1", "ReplicaSet", "replicasets", "replicaset", NS | GEN | ALL, &["rs"], &["status", "scale"]),
    ("apps", "v1", "StatefulSet", "statefulsets", "statefulset", NS | GEN | ALL, &["sts"], &["status", "scale"]),
    ("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview", CREATE_ONLY, &[], &[]),
    ("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", "tokenreview", CREATE_ONLY, &[], &[]),
    ("authentication.k8s.io", "v1beta1", "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview", CREATE_ONLY, &[], &[]),
    ("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", "localsubjectaccessreview", NS | CREATE_ONLY, &[], &[]),
    ("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", "selfsubjectaccessreview", CREATE_ONLY, &[], &[]),
    ("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", "selfsubjectrulesreview", CREATE_ONLY, &[], &[]),
    ("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", "subjectaccessreview", CREATE_ONLY, &[], &[]),
    ("batch", "v1", "CronJob", "cronjobs", "cronjob", NS | GEN | ALL, &["cj"], &["status"]),
    ("batch", "v1", "Job", "jobs", "job", NS | GEN | ALL, &[], &["status"]),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", NS | GEN | ALL, &["hpa"], &["status"]),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", 0, &[], &[]),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", 0, &[], &[]),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", NS, &[], &[]),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", NS, &[], &[]),
    ("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "ingressclass", GEN, &[], &[]),
    ("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", NS | GEN, &["ing"], &["status"]),
    ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", NS | GEN, &["netpol"], &[]),
    ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", NS | GEN, &["pdb"], &["status"]),
    ("coordination.k8s.io", "v1", "Lease", "leases", "lease", NS, &[], &[]),
    ("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", NS, &[], &[]),
    ("events.k8s.io", "v1", "Event", "events", "event", NS, &["ev"], &[]),
    ("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", "priorityclass", 0, &["pc"], &[]),
    ("storage.k8s.io", "v1", "CSIDriver", "csidrivers", "csidriver", 0, &[], &[]),
    ("storage.k8s.io", "v1", "CSINode", "csinodes", "csinode", 0, &[], &[]),
    ("storage.k8s.io", "v1", "CSIStorageCapacity", "csistoragecapacities", "csistoragecapacity", NS, &[], &[]),
    ("storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", 0, &["sc"], &[]),
    ("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", "volumeattachment", 0, &[], &["status"]),
    ("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", "runtimeclass", 0, &[], &[]),
    ("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", "certificatesigningrequest", 0, &["csr"], &["status", "approval"]),
    ("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", "mutatingwebhookconfiguration", 0, &[], &[]),
    ("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", "validatingwebhookconfiguration", 0, &[], &[]),
    ("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", "validatingadmissionpolicy", GEN, &[], &["status"]),
    ("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings", "validatingadmissionpolicybinding", GEN, &[], &[]),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", "customresourcedefinition", GEN, &["crd", "crds"], &["status"]),
];

/// The built-in resources, made once per process: every control plane's registry shares them.
pub(super) fn resources() -> &'static [Arc<ResourceDef>] {
    static BUILTIN: LazyLock<Vec<Arc<ResourceDef>>> = LazyLock::new(|| {
        RESOURCES
            .iter()
            .map(|row| Arc::new(resource(row)))
            .collect()
    });
    &BUILTIN
}

/// The definition of one built-in resource.
fn resource(
    &(group, version, kind, plural, singular, flags, short_names, subresources): &Row,
) -> ResourceDef {
    ResourceDef {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        plural: plural.into(),
        singular: singular.into(),
        namespaced: flags & NS != 0,
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        categories: if flags & ALL != 0 {
            vec!["all".into()]
        } else {
            Vec::new()
        },
        verbs: if flags & CREATE_ONLY != 0 {
            vec!["create"]
        } else {
            CRUD_VERBS.to_vec()
        },
        subresources: subresources.iter().map(|s| s.to_string()).collect(),
        tracks_generation: flags & GEN != 0,
        custom: false,
        crd: None,
        storage_prefix: format!("/registry/{plural}/"),
    }
}
