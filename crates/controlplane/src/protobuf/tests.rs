//! Decoding checked against prost's encoding of k8s-pb's types (the same field numbers
//! upstream's Go encoder writes) and k8s-openapi's JSON of the same objects.

use super::*;
use k8s_openapi::api::{apps::v1 as apps, core::v1 as core};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_pb::api::{apps::v1 as pb_apps, core::v1 as pb_core};
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
use k8s_pb::apimachinery::pkg::util::intstr as pb_intstr;
use prost::Message as _;
use serde_json::json;
use std::collections::BTreeMap;

/// A body as client-go sends it: the prefix and a `runtime.Unknown`.
fn envelope_of(api_version: &str, kind: &str, object: &impl prost::Message) -> Vec<u8> {
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
        type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn pb_meta(name: &str) -> Option<pb_meta::ObjectMeta> {
    Some(pb_meta::ObjectMeta {
        name: Some(name.into()),
        // gogo writes Go's plain string fields even when empty.
        namespace: Some(String::new()),
        generate_name: Some(String::new()),
        ..Default::default()
    })
}

fn meta(name: &str) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    }
}

fn decoded(body: &[u8]) -> Value {
    decode(body, "", "").unwrap_or_else(|f| panic!("{f:?}"))
}

#[test]
fn a_config_map_decodes_as_its_json() {
    let pb = pb_core::ConfigMap {
        metadata: pb_meta("settings"),
        data: BTreeMap::from([("a".into(), "b".into()), ("empty".into(), String::new())]),
        binary_data: BTreeMap::from([("bin".into(), vec![0, 1, 2, 255])]),
        immutable: Some(false),
    };
    let expected = core::ConfigMap {
        metadata: meta("settings"),
        data: Some(BTreeMap::from([
            ("a".into(), "b".into()),
            ("empty".into(), String::new()),
        ])),
        binary_data: Some(BTreeMap::from([(
            "bin".into(),
            k8s_openapi::ByteString(vec![0, 1, 2, 255]),
        )])),
        immutable: Some(false),
    };
    assert_eq!(
        decoded(&envelope_of("v1", "ConfigMap", &pb)),
        serde_json::to_value(&expected).unwrap()
    );
}

#[test]
fn a_secret_keeps_its_bytes_as_base64() {
    let pb = pb_core::Secret {
        metadata: pb_meta("token"),
        data: BTreeMap::from([("password".into(), b"s3cr\xffet".to_vec())]),
        string_data: BTreeMap::new(),
        r#type: Some("Opaque".into()),
        immutable: None,
    };
    let expected = core::Secret {
        metadata: meta("token"),
        data: Some(BTreeMap::from([(
            "password".into(),
            k8s_openapi::ByteString(b"s3cr\xffet".to_vec()),
        )])),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    assert_eq!(
        decoded(&envelope_of("v1", "Secret", &pb)),
        serde_json::to_value(&expected).unwrap()
    );
}

#[test]
fn a_deployment_keeps_zero_replicas_and_empty_structs() {
    let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
    let pb = pb_apps::Deployment {
        metadata: pb_meta("web"),
        spec: Some(pb_apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(pb_meta::LabelSelector {
                match_labels: labels.clone(),
                match_expressions: vec![],
            }),
            template: Some(pb_core::PodTemplateSpec {
                metadata: Some(pb_meta::ObjectMeta {
                    labels: labels.clone(),
                    creation_timestamp: Some(pb_meta::Time::default()),
                    ..Default::default()
                }),
                spec: Some(pb_core::PodSpec {
                    containers: vec![pb_core::Container {
                        name: Some("nginx".into()),
                        image: Some("nginx:1.27".into()),
                        ports: vec![pb_core::ContainerPort {
                            container_port: Some(80),
                            ..Default::default()
                        }],
                        resources: Some(Default::default()),
                        // Go's plain bools: written always, zero means unset.
                        stdin: Some(false),
                        tty: Some(false),
                        ..Default::default()
                    }],
                    host_network: Some(false),
                    ..Default::default()
                }),
            }),
            strategy: Some(Default::default()),
            min_ready_seconds: Some(0),
            ..Default::default()
        }),
        status: Some(Default::default()),
    };
    let expected = apps::Deployment {
        metadata: meta("web"),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: meta::LabelSelector {
                match_labels: Some(labels.clone()),
                match_expressions: None,
            },
            template: core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(core::PodSpec {
                    containers: vec![core::Container {
                        name: "nginx".into(),
                        image: Some("nginx:1.27".into()),
                        ports: Some(vec![core::ContainerPort {
                            container_port: 80,
                            ..Default::default()
                        }]),
                        resources: Some(Default::default()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            strategy: Some(Default::default()),
            ..Default::default()
        }),
        status: Some(Default::default()),
    };
    let mut expected = serde_json::to_value(&expected).unwrap();
    // An empty Go time is written as null, as kubectl's JSON bodies show.
    expected["spec"]["template"]["metadata"]["creationTimestamp"] = Value::Null;
    assert_eq!(
        decoded(&envelope_of("apps/v1", "Deployment", &pb)),
        expected
    );
}

#[test]
fn a_service_reads_int_or_string_and_json_casing() {
    let pb = pb_core::Service {
        metadata: pb_meta("api"),
        spec: Some(pb_core::ServiceSpec {
            ports: vec![pb_core::ServicePort {
                name: Some("80-8080".into()),
                protocol: Some("TCP".into()),
                port: Some(80),
                target_port: Some(pb_intstr::IntOrString {
                    r#type: Some(0),
                    int_val: Some(8080),
                    str_val: Some(String::new()),
                }),
                ..Default::default()
            }],
            selector: BTreeMap::from([("app".into(), "api".into())]),
            cluster_ip: Some(String::new()),
            r#type: Some("ClusterIP".into()),
            external_ips: vec!["10.0.0.1".into()],
            ..Default::default()
        }),
        status: None,
    };
    let expected = core::Service {
        metadata: meta("api"),
        spec: Some(core::ServiceSpec {
            ports: Some(vec![core::ServicePort {
                name: Some("80-8080".into()),
                protocol: Some("TCP".into()),
                port: 80,
                target_port: Some(IntOrString::Int(8080)),
                ..Default::default()
            }]),
            selector: Some(BTreeMap::from([("app".into(), "api".into())])),
            type_: Some("ClusterIP".into()),
            external_ips: Some(vec!["10.0.0.1".into()]),
            ..Default::default()
        }),
        status: None,
    };
    assert_eq!(
        decoded(&envelope_of("v1", "Service", &pb)),
        serde_json::to_value(&expected).unwrap()
    );
}

#[test]
fn times_quantities_and_string_ports_read_as_upstream_writes_them() {
    let pb = pb_core::Pod {
        metadata: Some(pb_meta::ObjectMeta {
            name: Some("p".into()),
            creation_timestamp: Some(pb_meta::Time {
                seconds: Some(1_700_000_000),
                nanos: Some(5),
            }),
            ..Default::default()
        }),
        spec: Some(pb_core::PodSpec {
            containers: vec![pb_core::Container {
                name: Some("c".into()),
                resources: Some(pb_core::ResourceRequirements {
                    limits: BTreeMap::from([(
                        "memory".into(),
                        k8s_pb::apimachinery::pkg::api::resource::Quantity {
                            string: Some("1Gi".into()),
                        },
                    )]),
                    ..Default::default()
                }),
                liveness_probe: Some(pb_core::Probe {
                    handler: Some(pb_core::ProbeHandler {
                        http_get: Some(pb_core::HttpGetAction {
                            port: Some(pb_intstr::IntOrString {
                                r#type: Some(1),
                                int_val: Some(0),
                                str_val: Some("http".into()),
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            termination_grace_period_seconds: Some(0),
            ..Default::default()
        }),
        status: None,
    };
    let object = decoded(&envelope_of("v1", "Pod", &pb));
    assert_eq!(
        object["metadata"]["creationTimestamp"],
        "2023-11-14T22:13:20Z"
    );
    let container = &object["spec"]["containers"][0];
    assert_eq!(container["resources"], json!({"limits": {"memory": "1Gi"}}));
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(object["spec"]["terminationGracePeriodSeconds"], 0);
}

#[test]
fn the_envelope_kind_is_defaulted_from_the_endpoint() {
    let pb = pb_core::ConfigMap {
        metadata: pb_meta("x"),
        ..Default::default()
    };
    let mut body = MAGIC.to_vec();
    body.extend(
        k8s_pb::apimachinery::pkg::runtime::Unknown {
            type_meta: None,
            raw: Some(pb.encode_to_vec()),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    assert_eq!(
        decode(&body, "v1", "ConfigMap").unwrap(),
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "x"}})
    );
}

#[test]
fn bad_bodies_get_upstreams_400s() {
    let status = |body: &[u8]| {
        let failure = decode(body, "v1", "ConfigMap").unwrap_err();
        let error = bad_request(&failure, "ConfigMap", body);
        error.to_json()
    };
    let no_prefix = status(b"{\"kind\":\"ConfigMap\"}");
    assert_eq!(no_prefix["code"], 400);
    assert_eq!(no_prefix["reason"], "BadRequest");
    assert_eq!(
        no_prefix["message"],
        "the object provided is unrecognized (must be of type ConfigMap): provided data does not \
         appear to be a protobuf message, expected prefix [107 56 115 0] \
         (7b226b696e64223a22436f6e6669674d6170227d)"
    );
    let pb = pb_core::ConfigMap {
        metadata: pb_meta("x"),
        ..Default::default()
    };
    let body = envelope_of("v1", "ConfigMap", &pb);
    let truncated_raw = {
        let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some("v1".into()),
                kind: Some("ConfigMap".into()),
            }),
            raw: Some(pb.encode_to_vec()[..5].to_vec()),
            ..Default::default()
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    };
    assert_eq!(
        status(&truncated_raw)["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: unexpected EOF"
    );
    let truncated = status(&body[..body.len() - 3]);
    assert!(
        truncated["message"]
            .as_str()
            .unwrap()
            .starts_with("the object provided is unrecognized (must be of type ConfigMap): unexpected EOF (6b387300"),
        "{truncated}"
    );
    let unknown_kind = envelope_of("v1", "Gadget", &pb);
    assert_eq!(
        status(&unknown_kind)["message"],
        "Gadget in version \"v1\" cannot be handled as a ConfigMap: no kind \"Gadget\" is \
         registered for version \"v1\" in scheme \"k8s.io/kubernetes/pkg/api/legacyscheme/scheme.go:30\""
    );
}

#[test]
fn hostile_bytes_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let pb = pb_apps::Deployment {
        metadata: pb_meta("web"),
        spec: Some(pb_apps::DeploymentSpec {
            replicas: Some(3),
            template: Some(pb_core::PodTemplateSpec {
                metadata: pb_meta("t"),
                spec: Some(pb_core::PodSpec {
                    containers: vec![pb_core::Container {
                        name: Some("c".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let valid = envelope_of("apps/v1", "Deployment", &pb);
    for len in 0..valid.len() {
        let _ = decode(&valid[..len], "apps/v1", "Deployment");
    }
    for _ in 0..20_000 {
        let mut body = valid.clone();
        for _ in 0..rng.random_range(1..4) {
            let i = rng.random_range(0..body.len());
            body[i] = rng.random();
        }
        let _ = decode(&body, "apps/v1", "Deployment");
        let len = rng.random_range(0..64);
        let mut noise: Vec<u8> = MAGIC.to_vec();
        noise.extend((0..len).map(|_| rng.random::<u8>()));
        let _ = decode(&noise, "v1", "ConfigMap");
    }
}

#[test]
fn nesting_is_bounded() {
    // JSONSchemaProps.not (28) nested far deeper than any real schema.
    let mut props: Vec<u8> = Vec::new();
    for _ in 0..10_000 {
        let mut outer = vec![0xe2, 0x01];
        let mut len = props.len();
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                outer.push(byte);
                break;
            }
            outer.push(byte | 0x80);
        }
        outer.extend(&props);
        props = outer;
    }
    let crd_validation = |schema: Vec<u8>| {
        // CustomResourceValidation {1: openAPIV3Schema}
        let mut v = vec![0x0a];
        let mut len = schema.len();
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                v.push(byte);
                break;
            }
            v.push(byte | 0x80);
        }
        v.extend(schema);
        v
    };
    let index = schema::message_index(
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceValidation",
    )
    .unwrap();
    let error = decode::message(&[&crd_validation(props)], index, 0).unwrap_err();
    assert!(matches!(error, DecodeError::Malformed(m) if m.contains("nest deeper")));
}

/// `kubectl auth can-i` (1.32+) sends the review's status with Go's plain fields zero:
/// `allowed` has no `omitempty` and stays, `denied` has it and goes, as upstream's JSON.
#[test]
fn an_access_review_keeps_allowed_and_drops_a_zero_denied() {
    use k8s_pb::api::authorization::v1 as pb_authz;
    let pb = pb_authz::SelfSubjectAccessReview {
        metadata: Some(pb_meta::ObjectMeta::default()),
        spec: Some(pb_authz::SelfSubjectAccessReviewSpec {
            resource_attributes: Some(pb_authz::ResourceAttributes {
                namespace: Some("default".into()),
                verb: Some("list".into()),
                resource: Some("pods".into()),
                group: Some(String::new()),
                ..Default::default()
            }),
            non_resource_attributes: None,
        }),
        status: Some(pb_authz::SubjectAccessReviewStatus {
            allowed: Some(false),
            denied: Some(false),
            reason: Some(String::new()),
            evaluation_error: Some(String::new()),
        }),
    };
    let body = envelope_of("authorization.k8s.io/v1", "SelfSubjectAccessReview", &pb);
    let object = decoded(&body);
    assert_eq!(object["status"], json!({"allowed": false}));
    assert_eq!(
        object["spec"],
        json!({"resourceAttributes": {"namespace": "default", "verb": "list", "resource": "pods"}})
    );
}

#[test]
fn the_listed_plain_fields_exist() {
    for (message, fields) in schema::PLAIN_NUMBERS_AND_BOOLEANS {
        let index = decode::message_of_definition(message).unwrap_or_else(|| panic!("{message}"));
        let names: Vec<&str> = schema::MESSAGES[index]
            .fields
            .iter()
            .map(|f| f.name)
            .collect();
        for field in *fields {
            let snake: String = field
                .chars()
                .flat_map(|c| {
                    if c.is_ascii_uppercase() {
                        vec!['_', c.to_ascii_lowercase()]
                    } else {
                        vec![c]
                    }
                })
                .collect();
            let snake = snake.replace("_p_i_d", "_pid").replace("_i_p_c", "_ipc");
            assert!(names.contains(&snake.as_str()), "{message}.{field}");
        }
    }
}

/// Fields of k8s-pb (Kubernetes 1.34) that the served API version (1.33) does not have:
/// decoding drops them, as a 1.33 server drops fields it does not know.
const NEWER_THAN_SERVED: &[&str] = &[
    "io.k8s.api.core.v1.Container.restart_policy_rules",
    "io.k8s.api.core.v1.EnvVarSource.file_key_ref",
    "io.k8s.api.core.v1.EphemeralContainerCommon.restart_policy_rules",
    "io.k8s.api.core.v1.NodeStatus.declared_features",
    "io.k8s.api.core.v1.PodSpec.hostname_override",
    "io.k8s.api.core.v1.PodSpec.workload_ref",
    "io.k8s.api.core.v1.PodStatus.allocated_resources",
    "io.k8s.api.core.v1.PodStatus.extended_resource_claim_status",
    "io.k8s.api.core.v1.PodStatus.resources",
    "io.k8s.api.core.v1.VolumeProjection.pod_certificate",
    "io.k8s.api.storage.v1.CSIDriverSpec.service_account_token_in_secrets",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionCondition.observed_generation",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus.observed_generation",
];

/// Every field of every built-in kind's messages has a JSON name (or is inline, or newer
/// than the served version), and every JSON property is some field's, apart from the
/// types with JSON forms of their own.
#[test]
fn every_field_of_the_built_in_kinds_has_its_json_name() {
    fn walk(
        message: &schema::Message,
        names: &[JsonFieldRef],
        unnamed: &mut Vec<String>,
        filled: &mut Vec<String>,
        pending: &mut Vec<usize>,
    ) {
        for (field, json) in message.fields.iter().zip(names) {
            match json {
                schema::JsonField::Unknown => {
                    unnamed.push(format!("{}.{}", message.name, field.name));
                    continue;
                }
                schema::JsonField::Inline(inline) => {
                    if let schema::Type::Message(m) = field.ty {
                        walk(&schema::MESSAGES[m], inline, unnamed, filled, pending);
                    }
                    continue;
                }
                schema::JsonField::Named { name, .. } => filled.push(name.clone()),
            }
            match field.ty {
                schema::Type::Message(m) | schema::Type::Map(_, schema::MapValue::Message(m)) => {
                    pending.push(m)
                }
                _ => {}
            }
        }
    }
    type JsonFieldRef = schema::JsonField;
    let defs = crate::schema::builtin();
    let mut unnamed = Vec::new();
    let mut unfilled = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (_, definition_name) in defs.kinds() {
        let mut pending = vec![decode::message_of_definition(definition_name).unwrap()];
        while let Some(index) = pending.pop() {
            if !seen.insert(index) {
                continue;
            }
            let message = &schema::MESSAGES[index];
            if decode::has_own_json(message) {
                continue;
            }
            let Some(names) = schema::json_fields(index) else {
                unnamed.push(format!("{} (no definition)", message.name));
                continue;
            };
            let mut filled = Vec::new();
            walk(message, names, &mut unnamed, &mut filled, &mut pending);
            let definition = defs.get(message.name).or_else(|| {
                defs.iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(message.name))
                    .map(|(_, d)| d)
            });
            for (property, _) in definition
                .and_then(|d| d.get("properties"))
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                if !filled.contains(property)
                    && !["kind", "apiVersion"].contains(&property.as_str())
                {
                    unfilled.push(format!("{}.{property}", message.name));
                }
            }
        }
    }
    unnamed.sort();
    unnamed.retain(|f| !NEWER_THAN_SERVED.contains(&f.as_str()));
    unfilled.sort();
    assert_eq!(
        unnamed,
        Vec::<String>::new(),
        "proto fields without a JSON name"
    );
    assert_eq!(
        unfilled,
        Vec::<String>::new(),
        "JSON properties without a proto field"
    );
}

#[test]
fn delete_options_decode_in_any_group_version() {
    let options = pb_meta::DeleteOptions {
        propagation_policy: Some("Foreground".into()),
        dry_run: vec!["All".into()],
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    assert_eq!(
        decode(
            &envelope_of("apps/v1", "DeleteOptions", &options),
            "v1",
            "DeleteOptions"
        )
        .unwrap(),
        json!({
            "kind": "DeleteOptions",
            "apiVersion": "apps/v1",
            "propagationPolicy": "Foreground",
            "dryRun": ["All"],
            "gracePeriodSeconds": 0
        })
    );
}

#[test]
fn token_requests_and_reviews_decode_as_their_json() {
    use k8s_pb::api::authentication::v1 as pb_authn;
    let request = pb_authn::TokenRequest {
        metadata: pb_meta("robot"),
        spec: Some(pb_authn::TokenRequestSpec {
            audiences: vec!["vault".into()],
            expiration_seconds: Some(1200),
            bound_object_ref: Some(pb_authn::BoundObjectReference {
                kind: Some("Pod".into()),
                api_version: Some("v1".into()),
                name: Some("worker".into()),
                u_id: Some("u-1".into()),
            }),
        }),
        status: None,
    };
    let as_json = decoded(&envelope_of(
        "authentication.k8s.io/v1",
        "TokenRequest",
        &request,
    ));
    assert_eq!(
        as_json["spec"],
        json!({
            "audiences": ["vault"],
            "expirationSeconds": 1200,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "worker", "uid": "u-1"},
        })
    );
    let review = pb_authn::TokenReview {
        metadata: pb_meta(""),
        spec: Some(pb_authn::TokenReviewSpec {
            token: Some("t".into()),
            audiences: vec![],
        }),
        status: None,
    };
    let as_json = decoded(&envelope_of(
        "authentication.k8s.io/v1",
        "TokenReview",
        &review,
    ));
    assert_eq!(as_json["spec"]["token"], "t");
}
