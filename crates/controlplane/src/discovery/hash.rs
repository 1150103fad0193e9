//! SHA-256 based identifiers: resources' `storageVersionHash` and the documents' `ETag`s.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::registry::ResourceDef;

use super::Document;

impl Document {
    /// A strong entity tag of the body, quoted as the `ETag` header carries it (uppercase hex of
    /// a SHA-256 of the serialized body). kube-apiserver tags aggregated documents only.
    pub fn etag(&self) -> String {
        let bytes = serde_json::to_vec(&self.body).unwrap_or_default();
        let hex: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        format!("\"{hex}\"")
    }

    /// Whether an `If-None-Match` header value names this document's tag (or is `*`), in which
    /// case the answer is `304 Not Modified` without a body.
    pub fn matches_etag(&self, if_none_match: &str) -> bool {
        let etag = self.etag();
        if_none_match
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
    }
}

/// The `storageVersionHash` of a resource: only stored resources have one (those served with
/// `watch`; reviews, bindings and other virtual resources have none). It is computed from the
/// storage group-version-kind: upstream's for the built-ins stored under another one than they
/// are served as (HorizontalPodAutoscalers of every version as `autoscaling/v2`, `events.k8s.io`
/// Events as core `v1` Events), otherwise the resource's own.
pub(super) fn storage_version_hash_of(def: &ResourceDef) -> Option<String> {
    if !def.serves("watch") {
        return None;
    }
    let (group, version, kind) = match (def.group.as_str(), def.plural.as_str()) {
        ("autoscaling", "horizontalpodautoscalers") => {
            ("autoscaling", "v2", "HorizontalPodAutoscaler")
        }
        ("events.k8s.io", "events") => ("", "v1", "Event"),
        _ => (def.group.as_str(), def.version.as_str(), def.kind.as_str()),
    };
    Some(storage_version_hash(group, version, kind))
}

/// kube-apiserver's `storageVersionHash` of a storage group-version-kind: the standard base64
/// of the first 8 bytes of the SHA-256 of `<group>/<version>/<kind>`. Custom resources hash
/// their CRD's storage version.
pub fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    let digest = Sha256::digest(format!("{group}/{version}/{kind}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::tests::{entry, registry};
    use crate::discovery::{core_group, group_version, groups, DiscoveryFormat};

    #[test]
    fn storage_version_hashes_match_kube_apiserver() {
        // From kubernetes test/integration/etcd storageversionhashdata.
        let upstream = [
            ("", "v1", "configmaps", "qFsyl6wFWjQ="),
            ("", "v1", "endpoints", "fWeeMqaN/OA="),
            ("", "v1", "events", "r2yiGXH7wu8="),
            ("", "v1", "limitranges", "EBKMFVe6cwo="),
            ("", "v1", "namespaces", "Q3oi5N2YM8M="),
            ("", "v1", "nodes", "XwShjMxG9Fs="),
            ("", "v1", "persistentvolumeclaims", "QWTyNDq0dC4="),
            ("", "v1", "persistentvolumes", "HN/zwEC+JgM="),
            ("", "v1", "pods", "xPOwRZ+Yhw8="),
            ("", "v1", "podtemplates", "LIXB2x4IFpk="),
            ("", "v1", "replicationcontrollers", "Jond2If31h0="),
            ("", "v1", "resourcequotas", "8uhSgffRX6w="),
            ("", "v1", "secrets", "S6u1pOWzb84="),
            ("", "v1", "serviceaccounts", "pbx9ZvyFpBE="),
            ("", "v1", "services", "0/CO1lhkEBI="),
            (
                "autoscaling",
                "v2",
                "horizontalpodautoscalers",
                "qwQve8ut294=",
            ),
            ("batch", "v1", "jobs", "mudhfqk/qZY="),
            ("batch", "v1", "cronjobs", "sd5LIXh4Fjs="),
            (
                "certificates.k8s.io",
                "v1",
                "certificatesigningrequests",
                "95fRKMXA+00=",
            ),
            ("coordination.k8s.io", "v1", "leases", "gqkMMb/YqFM="),
            ("discovery.k8s.io", "v1", "endpointslices", "qgS0xkrxYAI="),
            ("networking.k8s.io", "v1", "networkpolicies", "YpfwF18m1G8="),
            ("networking.k8s.io", "v1", "ingresses", "39NQlfNR+bo="),
            ("networking.k8s.io", "v1", "ingressclasses", "l/iqIbDgFyQ="),
            ("node.k8s.io", "v1", "runtimeclasses", "WQTu1GL3T2Q="),
            ("policy", "v1", "poddisruptionbudgets", "EVWiDmWqyJw="),
            (
                "rbac.authorization.k8s.io",
                "v1",
                "clusterrolebindings",
                "48tpQ8gZHFc=",
            ),
            (
                "rbac.authorization.k8s.io",
                "v1",
                "clusterroles",
                "bYE5ZWDrJ44=",
            ),
            (
                "rbac.authorization.k8s.io",
                "v1",
                "rolebindings",
                "eGsCzGH6b1g=",
            ),
            ("rbac.authorization.k8s.io", "v1", "roles", "7FuwZcIIItM="),
            ("scheduling.k8s.io", "v1", "priorityclasses", "1QwjyaZjj3Y="),
            ("storage.k8s.io", "v1", "csidrivers", "hL6j/rwBV5w="),
            ("storage.k8s.io", "v1", "csinodes", "Pe62DkZtjuo="),
            ("storage.k8s.io", "v1", "storageclasses", "K+m6uJwbjGY="),
            (
                "storage.k8s.io",
                "v1",
                "csistoragecapacities",
                "xeVl+2Ly1kE=",
            ),
            ("storage.k8s.io", "v1", "volumeattachments", "tJx/ezt6UDU="),
            ("apps", "v1", "controllerrevisions", "85nkx63pcBU="),
            ("apps", "v1", "daemonsets", "dd7pWHUlMKQ="),
            ("apps", "v1", "deployments", "8aSe+NMegvE="),
            ("apps", "v1", "replicasets", "P1RzHs8/mWQ="),
            ("apps", "v1", "statefulsets", "H+vl74LkKdo="),
            (
                "admissionregistration.k8s.io",
                "v1",
                "mutatingwebhookconfigurations",
                "Sqi0GUgDaX0=",
            ),
            (
                "admissionregistration.k8s.io",
                "v1",
                "validatingwebhookconfigurations",
                "B0wHjQmsGNk=",
            ),
            (
                "admissionregistration.k8s.io",
                "v1",
                "validatingadmissionpolicies",
                "6OxvlMmQ6is=",
            ),
            (
                "admissionregistration.k8s.io",
                "v1",
                "validatingadmissionpolicybindings",
                "v9715VZqakg=",
            ),
            ("events.k8s.io", "v1", "events", "r2yiGXH7wu8="),
        ];
        let registry = registry();
        for (group, version, plural, hash) in upstream {
            let list = group_version(&registry, group, version).expect("group-version");
            assert_eq!(
                entry(&list, plural)["storageVersionHash"],
                hash,
                "{group}/{version}/{plural}"
            );
        }
        // The CRD case: hashed from the storage group-version-kind.
        assert_eq!(
            storage_version_hash("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            storage_version_hash_of(
                &registry
                    .lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
                    .expect("crd")
            )
            .unwrap_or_default()
        );
        // autoscaling/v1 HorizontalPodAutoscalers are stored as autoscaling/v2 upstream.
        let mut hpa = (*registry
            .lookup("autoscaling", "v2", "horizontalpodautoscalers")
            .expect("hpa"))
        .clone();
        hpa.version = "v1".into();
        assert_eq!(
            storage_version_hash_of(&hpa).as_deref(),
            Some("qwQve8ut294=")
        );
        // Virtual resources (no watch) have none.
        let mut review = (*registry.lookup("", "v1", "pods").expect("pods")).clone();
        review.verbs = vec!["create"];
        assert_eq!(storage_version_hash_of(&review), None);
    }

    #[test]
    fn etags() {
        let registry = registry();
        let v2 = groups(&registry, DiscoveryFormat::AggregatedV2);
        let tag = v2.etag();
        assert_eq!(tag.len(), 66);
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        assert_eq!(tag, groups(&registry, DiscoveryFormat::AggregatedV2).etag());
        assert_ne!(
            tag,
            groups(&registry, DiscoveryFormat::AggregatedV2Beta1).etag()
        );
        assert_ne!(
            tag,
            core_group(&registry, DiscoveryFormat::AggregatedV2, "h:1").etag()
        );
        assert!(v2.matches_etag(&tag));
        assert!(v2.matches_etag(&format!("\"x\", W/{tag}")));
        assert!(v2.matches_etag("*"));
        assert!(!v2.matches_etag("\"x\""));
        assert!(!v2.matches_etag(""));
    }
}
