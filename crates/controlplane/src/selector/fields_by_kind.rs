//! Which field labels each resource accepts, as upstream's field-label conversion functions
//! decide, and the message each gives for one it refuses.

use super::go::go_quote;

/// The API groups kube-apiserver serves itself; any other group is a custom resource's.
pub(super) const BUILTIN_GROUPS: &[&str] = &[
    "",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "extensions",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
    "spec.host",
];
const NODE_FIELDS: &[&str] = &["metadata.name", "spec.unschedulable"];
const REPLICATION_CONTROLLER_FIELDS: &[&str] =
    &["metadata.name", "metadata.namespace", "status.replicas"];
const CORE_EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    "metadata.namespace",
    "metadata.name",
];
const EVENTS_API_EVENT_FIELDS: &[&str] = &[
    "reason",
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reportingController",
    "source",
    "type",
    "metadata.namespace",
    "metadata.name",
];
const NAMESPACE_FIELDS: &[&str] = &["status.phase", "metadata.name"];
const SECRET_FIELDS: &[&str] = &["type", "metadata.namespace", "metadata.name"];
const SERVICE_FIELDS: &[&str] = &[
    "metadata.namespace",
    "metadata.name",
    "spec.clusterIP",
    "spec.type",
];
const JOB_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "status.successful"];
const SIGNER_FIELDS: &[&str] = &["metadata.name", "spec.signerName"];
const POD_CERTIFICATE_REQUEST_FIELDS: &[&str] = &[
    "metadata.name",
    "spec.signerName",
    "spec.podName",
    "spec.nodeName",
];

/// How upstream words an unsupported field label for a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Complaint {
    /// `field label not supported: <f>`: most kinds' conversion functions, and custom resources'.
    Conversion,
    /// `field label "<f>" not supported for Job`: batch/v1 Job's conversion function.
    JobConversion,
    /// `runtime.DefaultMetaV1FieldSelectorConversion`, for built-ins without a function.
    DefaultConversion,
}

impl Complaint {
    pub(super) fn message(self, field: &str) -> String {
        match self {
            Complaint::Conversion => format!("field label not supported: {field}"),
            Complaint::JobConversion => {
                format!("field label {} not supported for Job", go_quote(field))
            }
            Complaint::DefaultConversion => format!(
                "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                go_quote(field)
            ),
        }
    }
}

/// The field labels a resource accepts, and how it refuses others.
pub(super) struct FieldRules {
    /// `None`: `metadata.name` and `metadata.namespace`.
    fields: Option<&'static [&'static str]>,
    pub(super) complaint: Complaint,
}

impl FieldRules {
    pub(super) fn for_resource(group: &str, plural: &str) -> Self {
        let listed = |fields, complaint| Self {
            fields: Some(fields),
            complaint,
        };
        match (group, plural) {
            ("", "pods") => listed(POD_FIELDS, Complaint::Conversion),
            ("", "nodes") => listed(NODE_FIELDS, Complaint::Conversion),
            ("", "replicationcontrollers") => {
                listed(REPLICATION_CONTROLLER_FIELDS, Complaint::Conversion)
            }
            ("", "events") => listed(CORE_EVENT_FIELDS, Complaint::Conversion),
            ("", "namespaces") => listed(NAMESPACE_FIELDS, Complaint::Conversion),
            ("", "secrets") => listed(SECRET_FIELDS, Complaint::Conversion),
            ("", "services") => listed(SERVICE_FIELDS, Complaint::Conversion),
            ("events.k8s.io", "events") => listed(EVENTS_API_EVENT_FIELDS, Complaint::Conversion),
            ("batch", "jobs") => listed(JOB_FIELDS, Complaint::JobConversion),
            ("certificates.k8s.io", "certificatesigningrequests" | "clustertrustbundles") => {
                listed(SIGNER_FIELDS, Complaint::Conversion)
            }
            ("certificates.k8s.io", "podcertificaterequests") => {
                listed(POD_CERTIFICATE_REQUEST_FIELDS, Complaint::Conversion)
            }
            _ => Self {
                fields: None,
                complaint: if BUILTIN_GROUPS.contains(&group) {
                    Complaint::DefaultConversion
                } else {
                    Complaint::Conversion
                },
            },
        }
    }

    pub(super) fn allows(&self, field: &str) -> bool {
        match self.fields {
            Some(fields) => fields.contains(&field),
            None => field == "metadata.name" || field == "metadata.namespace",
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::selector::{FieldSelector, SelectorError};

    fn unsupported(selector: &str, group: &str, plural: &str, extra: &[String]) -> Option<String> {
        FieldSelector::parse(selector)
            .unwrap_or_else(|e| panic!("{selector:?}: {e}"))
            .check_supported(group, plural, extra)
            .err()
            .map(|SelectorError(message)| message)
    }

    #[test]
    fn field_labels_supported_everywhere_and_per_kind() {
        let none: &[String] = &[];
        for (group, plural) in [
            ("", "configmaps"),
            ("apps", "deployments"),
            ("example.com", "widgets"),
        ] {
            assert_eq!(
                unsupported("metadata.name=a,metadata.namespace=b", group, plural, none),
                None
            );
        }
        let pod_fields =
            "spec.nodeName=n,spec.host=n,spec.restartPolicy=Always,spec.schedulerName=s,\
            spec.serviceAccountName=sa,spec.hostNetwork=false,status.phase=Running,status.podIP=1,\
            status.podIPs=1,status.nominatedNodeName=n,metadata.name=a,metadata.namespace=b";
        assert_eq!(unsupported(pod_fields, "", "pods", none), None);
        assert_eq!(
            unsupported("spec.containers=x", "", "pods", none).as_deref(),
            Some("field label not supported: spec.containers")
        );
        assert_eq!(unsupported("type=Opaque", "", "secrets", none), None);
        assert_eq!(
            unsupported("data=x", "", "secrets", none).as_deref(),
            Some("field label not supported: data")
        );
        let event_fields =
            "involvedObject.kind=Pod,involvedObject.namespace=d,involvedObject.name=p,\
            involvedObject.uid=u,involvedObject.apiVersion=v1,involvedObject.resourceVersion=1,\
            involvedObject.fieldPath=f,reason=r,reportingComponent=c,source=s,type=Normal";
        assert_eq!(unsupported(event_fields, "", "events", none), None);
        assert_eq!(
            unsupported("regarding.name=p", "", "events", none).as_deref(),
            Some("field label not supported: regarding.name")
        );
        assert_eq!(
            unsupported(
                "regarding.name=p,reportingController=c,source=s",
                "events.k8s.io",
                "events",
                none
            ),
            None
        );
        assert_eq!(
            unsupported("involvedObject.name=p", "events.k8s.io", "events", none).as_deref(),
            Some("field label not supported: involvedObject.name")
        );
        assert_eq!(
            unsupported("status.phase=Active", "", "namespaces", none),
            None
        );
        // Cluster-scoped kinds with their own list refuse metadata.namespace.
        assert_eq!(
            unsupported("metadata.namespace=x", "", "namespaces", none).as_deref(),
            Some("field label not supported: metadata.namespace")
        );
        assert_eq!(
            unsupported("spec.unschedulable=true", "", "nodes", none),
            None
        );
        assert_eq!(
            unsupported("metadata.namespace=", "", "nodes", none).as_deref(),
            Some("field label not supported: metadata.namespace")
        );
        assert_eq!(
            unsupported("status.replicas=1", "", "replicationcontrollers", none),
            None
        );
        assert_eq!(
            unsupported(
                "spec.clusterIP=None,spec.type=ClusterIP",
                "",
                "services",
                none
            ),
            None
        );
        assert_eq!(
            unsupported("status.successful=1", "batch", "jobs", none),
            None
        );
        assert_eq!(
            unsupported("status.active=1", "batch", "jobs", none).as_deref(),
            Some("field label \"status.active\" not supported for Job")
        );
        assert_eq!(
            unsupported(
                "spec.signerName=x",
                "certificates.k8s.io",
                "certificatesigningrequests",
                none
            ),
            None
        );
        // apps/v1 ReplicaSet has no conversion function upstream, so status.replicas is refused.
        assert_eq!(
            unsupported("status.replicas=1", "apps", "replicasets", none).as_deref(),
            Some("\"status.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"")
        );
        assert_eq!(
            unsupported("data.x=1", "", "configmaps", none).as_deref(),
            Some("\"data.x\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"")
        );
        // Custom resources: metadata plus their selectable fields, with or without the dot.
        let extra = vec![".spec.color".to_owned(), "spec.size".to_owned()];
        assert_eq!(
            unsupported(
                "spec.color=red,spec.size=1",
                "example.com",
                "widgets",
                &extra
            ),
            None
        );
        assert_eq!(
            unsupported("spec.shape=round", "example.com", "widgets", &extra).as_deref(),
            Some("field label not supported: spec.shape")
        );
        // The first unsupported term in sorted order is reported; an empty field is a field too.
        assert_eq!(
            unsupported("z=1,b=2", "", "pods", none).as_deref(),
            Some("field label not supported: b")
        );
        assert_eq!(
            unsupported("=x", "", "pods", none).as_deref(),
            Some("field label not supported: ")
        );
    }
}
