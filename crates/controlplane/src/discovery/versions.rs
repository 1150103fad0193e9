//! Priorities: versions within a group (`CompareKubeAwareVersionStrings`) and groups by the
//! API-service priority kube-apiserver registers for them.

use std::cmp::Ordering;

/// Sorts versions into kube-apiserver's preference order, most preferred first: GA before beta
/// before alpha, higher major then higher minor first within each (`v2`, `v1`, `v1beta2`,
/// `v1beta1`, `v1alpha1`), then versions not of that form in alphabetical order. The first
/// version is a group's preferred version.
pub fn version_priority_order(versions: &mut [String]) {
    versions.sort_by(|a, b| compare_kube_versions(b, a));
}

/// Compares two versions by kube-apiserver's priority (`CompareKubeAwareVersionStrings`):
/// `Greater` when `a` is preferred to `b`.
pub fn compare_kube_versions(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    match (parse_kube_version(a), parse_kube_version(b)) {
        (None, None) => b.cmp(a),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => a.cmp(&b),
    }
}

/// `v<major>[(alpha|beta)<minor>]` as `(stability, major, minor)`: stability 0 alpha, 1 beta,
/// 2 GA, so that tuples order by priority.
fn parse_kube_version(version: &str) -> Option<(u8, i64, i64)> {
    let rest = version.strip_prefix('v')?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (major, suffix) = rest.split_at(digits);
    let major = parse_digits(major)?;
    if suffix.is_empty() {
        return Some((2, major, 0));
    }
    let (stability, minor) = if let Some(minor) = suffix.strip_prefix("alpha") {
        (0, minor)
    } else if let Some(minor) = suffix.strip_prefix("beta") {
        (1, minor)
    } else {
        return None;
    };
    Some((stability, major, parse_digits(minor)?))
}

/// A non-empty run of ASCII digits that fits an `i64`.
fn parse_digits(digits: &str) -> Option<i64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Every named group with its versions in preference order, groups in kube-apiserver's order.
pub(super) fn ordered_groups(mut groups: Vec<(String, Vec<String>)>) -> Vec<(String, Vec<String>)> {
    for (_, versions) in &mut groups {
        version_priority_order(versions);
    }
    groups.sort_by(|(a, _), (b, _)| {
        group_priority(b)
            .cmp(&group_priority(a))
            .then_with(|| a.cmp(b))
    });
    groups
}

/// The `groupPriorityMinimum` kube-apiserver 1.33 registers for its built-in groups; every other
/// group (custom resources, aggregated APIs) has 1000. Higher comes first; ties go by name.
fn group_priority(group: &str) -> u32 {
    match group {
        "" | "apiregistration.k8s.io" => 18000,
        "apps" => 17800,
        "events.k8s.io" => 17750,
        "authentication.k8s.io" => 17700,
        "authorization.k8s.io" => 17600,
        "autoscaling" => 17500,
        "batch" => 17400,
        "certificates.k8s.io" => 17300,
        "networking.k8s.io" => 17200,
        "policy" => 17100,
        "rbac.authorization.k8s.io" => 17000,
        "storage.k8s.io" => 16800,
        "admissionregistration.k8s.io" | "apiextensions.k8s.io" => 16700,
        "scheduling.k8s.io" => 16600,
        "coordination.k8s.io" => 16500,
        "node.k8s.io" => 16300,
        "discovery.k8s.io" | "resource.k8s.io" => 16200,
        "flowcontrol.apiserver.k8s.io" => 16100,
        "internal.apiserver.k8s.io" => 16000,
        "storagemigration.k8s.io" => 15800,
        _ => 1000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_groups_follow_built_ins_by_name_with_versions_by_priority() {
        let ordered = ordered_groups(vec![
            ("zeta.example.com".into(), vec!["v1".into()]),
            (
                "alpha.example.com".into(),
                vec!["v1alpha1".into(), "v1".into(), "v2beta1".into()],
            ),
            ("apps".into(), vec!["v1".into()]),
        ]);
        assert_eq!(
            ordered,
            vec![
                ("apps".to_string(), vec!["v1".to_string()]),
                (
                    "alpha.example.com".to_string(),
                    vec![
                        "v1".to_string(),
                        "v2beta1".to_string(),
                        "v1alpha1".to_string()
                    ]
                ),
                ("zeta.example.com".to_string(), vec!["v1".to_string()]),
            ]
        );
    }

    #[test]
    fn version_ordering() {
        // The example of the Kubernetes CRD versioning documentation.
        let mut versions: Vec<String> = [
            "v1",
            "v10",
            "v11beta2",
            "v10beta3",
            "v3beta1",
            "v12alpha1",
            "v11alpha2",
            "foo1",
            "foo10",
            "v2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        version_priority_order(&mut versions);
        assert_eq!(
            versions,
            [
                "v10",
                "v2",
                "v1",
                "v11beta2",
                "v10beta3",
                "v3beta1",
                "v12alpha1",
                "v11alpha2",
                "foo1",
                "foo10",
            ]
        );
        let mut versions: Vec<String> = ["v1alpha1", "v1beta1", "v1", "v1beta2", "other"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        version_priority_order(&mut versions);
        assert_eq!(versions, ["v1", "v1beta2", "v1beta1", "v1alpha1", "other"]);
        // Not kube versions: prefix only, overflow, trailing text, non-ASCII digits.
        for odd in [
            "v",
            "vbeta1",
            "v1beta",
            "v1gamma1",
            "v99999999999999999999",
            "v1 ",
            "v\u{661}",
        ] {
            assert_eq!(parse_kube_version(odd), None, "{odd}");
            assert_eq!(
                compare_kube_versions("v1alpha1", odd),
                Ordering::Greater,
                "{odd}"
            );
        }
        assert_eq!(compare_kube_versions("v2", "v2"), Ordering::Equal);
    }
}
