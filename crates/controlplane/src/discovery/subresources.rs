//! Subresources as discovery lists them: upstream's verbs and served kind of each name.

use crate::registry::ResourceDef;

/// A subresource as discovery lists it.
pub(super) struct Subresource {
    pub(super) name: String,
    pub(super) verbs: &'static [&'static str],
    /// The group-version of the kind served, when not the parent's.
    pub(super) group_version: Option<(&'static str, &'static str)>,
    pub(super) kind: String,
}

/// The subresources of a resource that discovery knows, sorted by name. A name discovery does
/// not know (no upstream verbs to list) is left out.
pub(super) fn subresources(def: &ResourceDef) -> Vec<Subresource> {
    let mut subs: Vec<Subresource> = def
        .subresources
        .iter()
        .filter_map(|name| subresource(def, name))
        .collect();
    subs.sort_by(|a, b| a.name.cmp(&b.name));
    subs.dedup_by(|a, b| a.name == b.name);
    subs
}

/// Upstream's verbs and kind of subresource `name` of `parent`.
fn subresource(parent: &ResourceDef, name: &str) -> Option<Subresource> {
    const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];
    const CREATE_GET: &[&str] = &["create", "get"];
    let parent_kind = parent.kind.as_str();
    let (verbs, group_version, kind): (&'static [&'static str], _, String) = match name {
        "status" | "approval" | "ephemeralcontainers" | "resize" => {
            (GET_PATCH_UPDATE, None, parent_kind.to_string())
        }
        "scale" => (
            GET_PATCH_UPDATE,
            Some(("autoscaling", "v1")),
            "Scale".into(),
        ),
        "finalize" => (&["update"], None, parent_kind.to_string()),
        "binding" => (&["create"], None, "Binding".into()),
        "eviction" => (&["create"], Some(("policy", "v1")), "Eviction".into()),
        "token" => (
            &["create"],
            Some(("authentication.k8s.io", "v1")),
            "TokenRequest".into(),
        ),
        "log" => (&["get"], None, parent_kind.to_string()),
        "exec" => (CREATE_GET, None, format!("{parent_kind}ExecOptions")),
        "attach" => (CREATE_GET, None, format!("{parent_kind}AttachOptions")),
        "portforward" => (CREATE_GET, None, format!("{parent_kind}PortForwardOptions")),
        "proxy" => (
            &["create", "delete", "get", "patch", "update"],
            None,
            format!("{parent_kind}ProxyOptions"),
        ),
        _ => return None,
    };
    Some(Subresource {
        name: name.to_string(),
        verbs,
        group_version,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::group_version;
    use crate::discovery::tests::{entry, registry};
    use serde_json::json;

    #[test]
    fn certificate_approval_subresource() {
        let list = group_version(&registry(), "certificates.k8s.io", "v1").expect("csr");
        assert_eq!(
            entry(&list, "certificatesigningrequests/approval"),
            &json!({
                "name": "certificatesigningrequests/approval",
                "singularName": "",
                "namespaced": false,
                "kind": "CertificateSigningRequest",
                "verbs": ["get", "patch", "update"],
            })
        );
    }

    /// A subresource's name, verbs, group-version and kind.
    type Sub = (
        String,
        &'static [&'static str],
        Option<(&'static str, &'static str)>,
        String,
    );

    #[test]
    fn upstream_subresource_kinds_and_verbs() {
        let pods = registry().lookup("", "v1", "pods").expect("pods");
        let mut pods = (*pods).clone();
        pods.subresources = [
            "status",
            "binding",
            "eviction",
            "log",
            "exec",
            "attach",
            "portforward",
            "proxy",
            "ephemeralcontainers",
            "resize",
            "status",
            "bogus",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let subs: Vec<Sub> = subresources(&pods)
            .into_iter()
            .map(|s| (s.name, s.verbs, s.group_version, s.kind))
            .collect();
        let expected: Vec<Sub> = vec![
            (
                "attach".into(),
                &["create", "get"],
                None,
                "PodAttachOptions".into(),
            ),
            ("binding".into(), &["create"], None, "Binding".into()),
            (
                "ephemeralcontainers".into(),
                &["get", "patch", "update"],
                None,
                "Pod".into(),
            ),
            (
                "eviction".into(),
                &["create"],
                Some(("policy", "v1")),
                "Eviction".into(),
            ),
            (
                "exec".into(),
                &["create", "get"],
                None,
                "PodExecOptions".into(),
            ),
            ("log".into(), &["get"], None, "Pod".into()),
            (
                "portforward".into(),
                &["create", "get"],
                None,
                "PodPortForwardOptions".into(),
            ),
            (
                "proxy".into(),
                &["create", "delete", "get", "patch", "update"],
                None,
                "PodProxyOptions".into(),
            ),
            (
                "resize".into(),
                &["get", "patch", "update"],
                None,
                "Pod".into(),
            ),
            (
                "status".into(),
                &["get", "patch", "update"],
                None,
                "Pod".into(),
            ),
        ];
        assert_eq!(subs, expected);

        let sa = registry().lookup("", "v1", "serviceaccounts").expect("sa");
        let mut sa = (*sa).clone();
        sa.subresources = vec!["token".into()];
        let token = subresources(&sa);
        assert_eq!(token.len(), 1);
        assert_eq!(token[0].verbs, ["create"]);
        assert_eq!(
            token[0].group_version,
            Some(("authentication.k8s.io", "v1"))
        );
        assert_eq!(token[0].kind, "TokenRequest");
    }
}
