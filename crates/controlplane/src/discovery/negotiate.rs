//! Content negotiation: which discovery form an `Accept` header asks for, and the
//! `Content-Type` that tells a client which form it got.

use super::{DISCOVERY_GROUP, DISCOVERY_LIST_KIND};

/// Which discovery form a request's `Accept` header asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoveryFormat {
    /// `APIVersions` / `APIGroupList`, sent as `application/json`.
    Legacy,
    /// `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList` (kubectl 1.30+, client-go, kube-rs).
    AggregatedV2,
    /// `apidiscovery.k8s.io/v2beta1` `APIGroupDiscoveryList` (kubectl 1.27–1.29).
    AggregatedV2Beta1,
}

impl DiscoveryFormat {
    /// The form an `Accept` header asks for, as kube-apiserver negotiates it: media ranges are
    /// ranked by `q` (highest first; `q=0` is not acceptable), then concrete before wildcard types,
    /// then in the client's order; the first range that asks for an `APIGroupDiscoveryList` of
    /// `apidiscovery.k8s.io` `v2` or `v2beta1` as JSON (`application/json`, `application/*` or
    /// `*/*` with parameters `g`, `v` and `as`, in any order, other parameters such as
    /// `profile=nopeer` ignored) wins. Anything else, including no header, is [`Self::Legacy`].
    pub fn negotiate(accept: Option<&str>) -> DiscoveryFormat {
        let mut ranges: Vec<MediaRange> = accept
            .unwrap_or_default()
            .split(',')
            .filter_map(MediaRange::parse)
            .filter(|range| range.q > 0.0)
            .collect();
        // Stable: equal ranks keep the client's order.
        ranges.sort_by(|a, b| b.q.total_cmp(&a.q).then(a.wildcards.cmp(&b.wildcards)));
        ranges
            .iter()
            .find_map(|range| range.format)
            .unwrap_or(DiscoveryFormat::Legacy)
    }

    /// The `Content-Type` to answer with: `application/json`, or
    /// `application/json;g=apidiscovery.k8s.io;v=<v2|v2beta1>;as=APIGroupDiscoveryList`, which is
    /// how client-go tells an aggregated answer from a legacy one.
    pub fn content_type(&self) -> &'static str {
        match self {
            DiscoveryFormat::Legacy => "application/json",
            DiscoveryFormat::AggregatedV2 => {
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            }
            DiscoveryFormat::AggregatedV2Beta1 => {
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
            }
        }
    }

    /// The `apiVersion` of an aggregated list, `None` for the legacy form.
    pub(super) fn aggregated_api_version(self) -> Option<&'static str> {
        match self {
            DiscoveryFormat::Legacy => None,
            DiscoveryFormat::AggregatedV2 => Some("apidiscovery.k8s.io/v2"),
            DiscoveryFormat::AggregatedV2Beta1 => Some("apidiscovery.k8s.io/v2beta1"),
        }
    }
}

/// One media range of an `Accept` header, reduced to what negotiation needs.
struct MediaRange {
    q: f32,
    /// `(type is *, subtype is *)`: concrete ranges rank first at equal `q`.
    wildcards: (bool, bool),
    /// The aggregated form the range asks for, if any.
    format: Option<DiscoveryFormat>,
}

impl MediaRange {
    /// Parses `type/subtype;param=value;...`; `None` when the range is malformed.
    fn parse(range: &str) -> Option<MediaRange> {
        let mut parts = range.split(';');
        let essence = parts.next().unwrap_or_default().trim();
        let (kind, subtype) = match essence.split_once('/') {
            Some((kind, subtype)) => (kind.trim(), subtype.trim()),
            None if essence == "*" => ("*", "*"),
            None => return None,
        };
        if kind.is_empty() || subtype.is_empty() || subtype.contains('/') {
            return None;
        }
        let mut q = 1.0_f32;
        let (mut group, mut version, mut as_kind) = (None, None, None);
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let key = key.trim();
            let value = value.trim().trim_matches('"');
            if key.eq_ignore_ascii_case("q") {
                q = value
                    .parse::<f32>()
                    .ok()
                    .filter(|q| q.is_finite())
                    .unwrap_or(0.0);
            } else if key.eq_ignore_ascii_case("g") {
                group = Some(value);
            } else if key.eq_ignore_ascii_case("v") {
                version = Some(value);
            } else if key.eq_ignore_ascii_case("as") {
                as_kind = Some(value);
            }
        }
        let kind_wild = kind == "*";
        let subtype_wild = subtype == "*";
        let json = (kind.eq_ignore_ascii_case("application")
            && (subtype.eq_ignore_ascii_case("json") || subtype_wild))
            || (kind_wild && subtype_wild);
        let format = match (group, version, as_kind) {
            (Some(DISCOVERY_GROUP), Some("v2"), Some(DISCOVERY_LIST_KIND)) if json => {
                Some(DiscoveryFormat::AggregatedV2)
            }
            (Some(DISCOVERY_GROUP), Some("v2beta1"), Some(DISCOVERY_LIST_KIND)) if json => {
                Some(DiscoveryFormat::AggregatedV2Beta1)
            }
            _ => None,
        };
        Some(MediaRange {
            q,
            wildcards: (kind_wild, subtype_wild),
            format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::tests::{ACCEPT_1_27, ACCEPT_1_33, ACCEPT_HEAD};

    #[test]
    fn negotiates_each_kubectl_accept_header() {
        use DiscoveryFormat::*;
        for (accept, want) in [
            (ACCEPT_1_27, AggregatedV2Beta1),
            (ACCEPT_1_33, AggregatedV2),
            (ACCEPT_HEAD, AggregatedV2),
            ("application/json, */*", Legacy),
            ("application/json", Legacy),
            (
                "application/vnd.kubernetes.protobuf,application/json",
                Legacy,
            ),
            ("", Legacy),
        ] {
            assert_eq!(DiscoveryFormat::negotiate(Some(accept)), want, "{accept}");
        }
        assert_eq!(DiscoveryFormat::negotiate(None), Legacy);
    }

    #[test]
    fn negotiation_details() {
        use DiscoveryFormat::*;
        for (accept, want) in [
            // Parameters in any order, spaces, quoted values.
            ("application/json;as=APIGroupDiscoveryList;v=v2;g=apidiscovery.k8s.io", AggregatedV2),
            ("application/json; g=apidiscovery.k8s.io; v=\"v2beta1\"; as=APIGroupDiscoveryList", AggregatedV2Beta1),
            ("Application/JSON;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", AggregatedV2),
            // Wildcards.
            ("*/*;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", AggregatedV2),
            ("application/*;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList", AggregatedV2Beta1),
            // A plain range earlier does not stop a later aggregated one, as upstream.
            ("application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", AggregatedV2),
            // q ranks first; q=0 is refused.
            ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0.5,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList", AggregatedV2Beta1),
            ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0", Legacy),
            // Concrete before wildcard at equal q.
            ("*/*;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList", AggregatedV2Beta1),
            // Forms kflex cannot produce, or that are not aggregated discovery.
            ("application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", Legacy),
            ("application/yaml;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", Legacy),
            ("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList", Legacy),
            ("application/json;g=apidiscovery.k8s.io;v=v2", Legacy),
            ("application/json;as=Table;v=v1;g=meta.k8s.io", Legacy),
            // Malformed input.
            (";;;,,,", Legacy),
            ("application/json;g", Legacy),
            ("application/json;q=abc;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", Legacy),
            ("application/json;q=NaN;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", Legacy),
            ("a/b/c;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", Legacy),
            ("\u{e9}/\u{e9};q=\u{e9}", Legacy),
        ] {
            assert_eq!(DiscoveryFormat::negotiate(Some(accept)), want, "{accept}");
        }
    }

    #[test]
    fn content_types_carry_the_gvk_client_go_checks() {
        assert_eq!(DiscoveryFormat::Legacy.content_type(), "application/json");
        assert_eq!(
            DiscoveryFormat::AggregatedV2.content_type(),
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        );
        assert_eq!(
            DiscoveryFormat::AggregatedV2Beta1.content_type(),
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
        );
    }
}
