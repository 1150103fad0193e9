//! A protobuf message to the JSON upstream's Go types would write for it.
//!
//! Presence follows what upstream's encoder writes and its JSON omits: a nested message
//! that is on the wire is written (`{}` when empty: Go's value structs always are, and
//! gogo writes them always); a repeated or map field only when it has entries; a scalar
//! when it is on the wire, except a zero the field's Go type leaves out with `omitempty`
//! (see `schema::omits_zero`: empty strings of optional fields, and the listed plain
//! numbers and booleans; gogo writes those always). Other numbers and booleans on the wire
//! are kept even when zero, since a pointer such as `replicas: 0` means something its
//! absence does not.
//!
//! Upstream's special types map to their JSON forms: `Time`/`MicroTime` → RFC 3339 (an
//! empty `Time` is Go's zero time, `null`), `Duration` → Go's duration string, `Quantity`
//! → its string, `IntOrString` → a number or a string, `RawExtension`/`FieldsV1`/`JSON` →
//! the JSON they hold, messages of one repeated `items` field (`ExtraValue`) → an array.
//! An embedded Go struct (a nested message on the wire) is written inline, as Go does.

use super::schema::{self, json_fields, JsonField, MapValue, Message, Scalar, Type, MESSAGES};
use super::wire::{Reader, WireValue};
use super::DecodeError;
use base64::Engine as _;
use serde_json::{Map, Number, Value};

/// How deeply messages may nest: bounds the work and stack a hostile body can cause.
pub(super) const MAX_DEPTH: usize = 100;

const TIME: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Time";
const MICRO_TIME: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime";
const DURATION: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Duration";
const FIELDS_V1: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const RAW_EXTENSION: &str = "io.k8s.apimachinery.pkg.runtime.RawExtension";
const CRD_PACKAGE: &str = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.";

/// Every occurrence of each field of a message, by field index.
type Occurrences<'a> = Vec<Vec<WireValue<'a>>>;

/// Reads the fields of a message that may arrive in several parts (protobuf merges a
/// message field that occurs more than once).
fn collect<'a>(parts: &[&'a [u8]], message: &Message) -> Result<Occurrences<'a>, DecodeError> {
    let mut found: Occurrences<'a> = vec![Vec::new(); message.fields.len()];
    for part in parts {
        let mut reader = Reader::new(part);
        while let Some((tag, value)) = reader.next_field()? {
            let Some(index) = message.field(tag) else {
                continue;
            };
            let field = &message.fields[index];
            let expected = match field.ty {
                Type::Scalar(s) => wire_type(s),
                Type::Message(_) | Type::Map(..) => 2,
            };
            let packed = field.repeated && expected != 2 && value.wire_type() == 2;
            if value.wire_type() != expected && !packed {
                return Err(DecodeError::Malformed(format!(
                    "proto: wrong wireType = {} for field {}",
                    value.wire_type(),
                    field.name
                )));
            }
            found[index].push(value);
        }
    }
    Ok(found)
}

fn wire_type(scalar: Scalar) -> u8 {
    match scalar {
        Scalar::String | Scalar::Bytes => 2,
        Scalar::Double => 1,
        Scalar::Bool | Scalar::Int32 | Scalar::Int64 => 0,
    }
}

/// The JSON of message `index` made of `parts`.
pub(super) fn message(parts: &[&[u8]], index: usize, depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let schema = &MESSAGES[index];
    let found = collect(parts, schema)?;
    if let Some(special) = special(schema, &found, depth)? {
        return Ok(special);
    }
    let names = json_fields(index).ok_or_else(|| DecodeError::NoSchema(schema.name.into()))?;
    let mut object = Map::new();
    fields_into(&mut object, schema, &found, names, depth)?;
    Ok(Value::Object(object))
}

/// Writes the fields of a message into `object` under their JSON `names`.
fn fields_into(
    object: &mut Map<String, Value>,
    schema: &Message,
    found: &Occurrences<'_>,
    names: &[JsonField],
    depth: usize,
) -> Result<(), DecodeError> {
    for ((field, occurrences), json) in schema.fields.iter().zip(found).zip(names) {
        if occurrences.is_empty() {
            continue;
        }
        let (name, omit_zero) = match json {
            JsonField::Unknown => continue,
            JsonField::Inline(inline) => {
                let Type::Message(nested) = field.ty else {
                    continue;
                };
                if depth >= MAX_DEPTH {
                    return Err(too_deep());
                }
                let parts: Vec<&[u8]> = occurrences.iter().map(bytes).collect();
                let nested = &MESSAGES[nested];
                let nested_found = collect(&parts, nested)?;
                fields_into(object, nested, &nested_found, inline, depth + 1)?;
                continue;
            }
            JsonField::Named { name, omit_zero } => (name, *omit_zero),
        };
        let value = match field.ty {
            Type::Map(key, value) => map(occurrences, key, value, depth)?,
            Type::Message(nested) if field.repeated => Value::Array(
                occurrences
                    .iter()
                    .map(|o| message(&[bytes(o)], nested, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            Type::Message(nested) => {
                let parts: Vec<&[u8]> = occurrences.iter().map(bytes).collect();
                message(&parts, nested, depth + 1)?
            }
            Type::Scalar(s) if field.repeated => Value::Array(repeated(occurrences, s)?),
            Type::Scalar(s) => {
                let value = scalar(occurrences[occurrences.len() - 1], s)?;
                if omit_zero && is_zero(&value) {
                    continue;
                }
                value
            }
        };
        object.insert(name.clone(), value);
    }
    Ok(())
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

fn too_deep() -> DecodeError {
    DecodeError::Malformed(format!("proto: messages nest deeper than {MAX_DEPTH}"))
}

fn bytes<'a>(value: &WireValue<'a>) -> &'a [u8] {
    match value {
        WireValue::Bytes(b) => b,
        _ => &[],
    }
}

/// The values of a repeated scalar, packed or not.
fn repeated(occurrences: &[WireValue<'_>], s: Scalar) -> Result<Vec<Value>, DecodeError> {
    let mut values = Vec::new();
    for occurrence in occurrences {
        match (occurrence, wire_type(s)) {
            (WireValue::Bytes(packed), expected) if expected != 2 => {
                let mut reader = Reader::new(packed);
                while !reader.is_empty() {
                    let value = match expected {
                        0 => WireValue::Varint(reader.varint()?),
                        _ => {
                            return Err(DecodeError::Malformed(
                                "proto: packed doubles are not used by Kubernetes".into(),
                            ))
                        }
                    };
                    values.push(scalar(value, s)?);
                }
            }
            (value, _) => values.push(scalar(*value, s)?),
        }
    }
    Ok(values)
}

/// A map field: entries are messages of `1: key, 2: value`; a later key wins.
fn map(
    entries: &[WireValue<'_>],
    key: Scalar,
    value: MapValue,
    depth: usize,
) -> Result<Value, DecodeError> {
    let mut object = Map::new();
    for entry in entries {
        let mut reader = Reader::new(bytes(entry));
        let mut k = None;
        let mut v: Vec<&[u8]> = Vec::new();
        let mut scalar_value = None;
        while let Some((tag, field)) = reader.next_field()? {
            match tag {
                1 => k = Some(field),
                2 => match value {
                    MapValue::Message(_) => v.push(bytes(&field)),
                    MapValue::Scalar(_) => scalar_value = Some(field),
                },
                _ => {}
            }
        }
        let k = match k {
            Some(k) => scalar(k, key)?,
            None => zero(key),
        };
        let k = match k {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let v = match value {
            MapValue::Message(index) => message(&v, index, depth + 1)?,
            MapValue::Scalar(s) => match scalar_value {
                Some(value) => scalar(value, s)?,
                None => zero(s),
            },
        };
        object.insert(k, v);
    }
    Ok(Value::Object(object))
}

/// A scalar type's zero value, for a map entry that leaves out its key or value.
fn zero(s: Scalar) -> Value {
    match s {
        Scalar::String | Scalar::Bytes => Value::String(String::new()),
        Scalar::Bool => Value::Bool(false),
        Scalar::Double => Value::from(0.0),
        Scalar::Int32 | Scalar::Int64 => Value::from(0),
    }
}

fn scalar(value: WireValue<'_>, s: Scalar) -> Result<Value, DecodeError> {
    let mismatch = || DecodeError::Malformed(format!("proto: wrong wireType for a {s:?}"));
    Ok(match (s, value) {
        // Go strings hold any bytes; its JSON encoder replaces invalid UTF-8, as here.
        (Scalar::String, WireValue::Bytes(b)) => Value::String(String::from_utf8_lossy(b).into()),
        (Scalar::Bytes, WireValue::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Scalar::Bool, WireValue::Varint(v)) => Value::Bool(v != 0),
        (Scalar::Int32, WireValue::Varint(v)) => Value::from(v as i32),
        (Scalar::Int64, WireValue::Varint(v)) => Value::from(v as i64),
        (Scalar::Double, WireValue::Fixed64(v)) => float(f64::from_bits(v))?,
        _ => return Err(mismatch()),
    })
}

/// A finite float as a JSON number (Go's JSON encoder refuses NaN and infinities too).
fn float(f: f64) -> Result<Value, DecodeError> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| DecodeError::Malformed(format!("json: unsupported value: {f}")))
}

/// The last occurrence of field `tag`, if any.
fn last<'a>(message: &Message, found: &Occurrences<'a>, tag: u32) -> Option<WireValue<'a>> {
    let index = message.field(tag)?;
    found[index].last().copied()
}

fn int(message: &Message, found: &Occurrences<'_>, tag: u32) -> i64 {
    match last(message, found, tag) {
        Some(WireValue::Varint(v)) => v as i64,
        _ => 0,
    }
}

fn text(message: &Message, found: &Occurrences<'_>, tag: u32) -> String {
    match last(message, found, tag) {
        Some(WireValue::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

/// Whether a message is one of upstream's types whose JSON is not their fields.
#[cfg(test)]
pub(super) fn has_own_json(message: &Message) -> bool {
    let found = vec![Vec::new(); message.fields.len()];
    matches!(special(message, &found, 0), Ok(Some(_)))
}

/// The JSON of upstream's types whose JSON is not their fields, or `None` for the others.
fn special(
    message: &Message,
    found: &Occurrences<'_>,
    depth: usize,
) -> Result<Option<Value>, DecodeError> {
    let empty = found.iter().all(Vec::is_empty);
    let value = match message.name {
        TIME if empty => Value::Null,
        TIME => Value::String(rfc3339(int(message, found, 1), 0, false)?),
        MICRO_TIME if empty => Value::Null,
        MICRO_TIME => {
            let nanos = int(message, found, 2);
            Value::String(rfc3339(int(message, found, 1), nanos, true)?)
        }
        DURATION => Value::String(go_duration(int(message, found, 1))),
        QUANTITY => {
            let quantity = text(message, found, 1);
            Value::String(if quantity.is_empty() {
                "0".into()
            } else {
                quantity
            })
        }
        INT_OR_STRING if int(message, found, 1) == 1 => Value::String(text(message, found, 3)),
        INT_OR_STRING => Value::from(int(message, found, 2) as i32),
        RAW_EXTENSION | FIELDS_V1 => embedded(last(message, found, 1), depth)?,
        name if name
            .strip_prefix(CRD_PACKAGE)
            .is_some_and(|n| n.ends_with(".Json")) =>
        {
            embedded(last(message, found, 1), depth)?
        }
        name if name.starts_with(CRD_PACKAGE) && name.contains(".JsonSchemaPropsOr") => {
            schema_alternative(message, found, depth)?
        }
        _ => match message.fields {
            [only] if only.name == "items" && only.repeated => {
                let Type::Scalar(s) = only.ty else {
                    return Ok(None);
                };
                Value::Array(repeated(&found[0], s)?)
            }
            _ => return Ok(None),
        },
    };
    Ok(Some(value))
}

/// `JSONSchemaPropsOrArray`/`OrStringArray`: the array if any, else the schema;
/// `JSONSchemaPropsOrBool`: the schema if any, else the bool.
fn schema_alternative(
    message: &Message,
    found: &Occurrences<'_>,
    depth: usize,
) -> Result<Value, DecodeError> {
    let mut schema = None;
    let mut alternative = None;
    for (field, occurrences) in message.fields.iter().zip(found) {
        match field.ty {
            Type::Message(index) if !field.repeated && !occurrences.is_empty() => {
                let parts: Vec<&[u8]> = occurrences.iter().map(bytes).collect();
                schema = Some(self::message(&parts, index, depth + 1)?);
            }
            Type::Message(_) if !field.repeated => {}
            Type::Message(index) if !occurrences.is_empty() => {
                alternative = Some(Value::Array(
                    occurrences
                        .iter()
                        .map(|o| self::message(&[bytes(o)], index, depth + 1))
                        .collect::<Result<_, _>>()?,
                ));
            }
            Type::Scalar(s) if field.repeated && !occurrences.is_empty() => {
                alternative = Some(Value::Array(repeated(occurrences, s)?));
            }
            Type::Scalar(s) if !field.repeated => {
                alternative = Some(match occurrences.last() {
                    Some(value) => scalar(*value, s)?,
                    None => zero(s),
                });
            }
            _ => {}
        }
    }
    // Go writes a schema before a bool, and an array before a schema.
    let value = match alternative {
        Some(Value::Bool(allows)) => schema.unwrap_or(Value::Bool(allows)),
        alternative => alternative.or(schema).unwrap_or(Value::Null),
    };
    Ok(value)
}

/// The JSON a `RawExtension`, `FieldsV1` or `JSON` holds; an object embedded as protobuf
/// (with the `k8s\0` prefix) is decoded too.
fn embedded(raw: Option<WireValue<'_>>, depth: usize) -> Result<Value, DecodeError> {
    let raw = raw.as_ref().map(bytes).unwrap_or_default();
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    if raw.starts_with(&super::MAGIC) {
        return super::decode_at_depth(raw, depth + 1);
    }
    serde_json::from_slice(raw)
        .map_err(|e| DecodeError::Malformed(format!("embedded JSON is not valid: {e}")))
}

/// RFC 3339 in UTC, to the second (`Time`) or the microsecond (`MicroTime`), as upstream's
/// JSON writes them.
fn rfc3339(seconds: i64, nanos: i64, micro: bool) -> Result<String, DecodeError> {
    let out_of_range = || DecodeError::Malformed(format!("proto: time {seconds}s is out of range"));
    let time = jiff::Timestamp::from_second(seconds).map_err(|_| out_of_range())?;
    let base = time.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if micro {
        let micros = nanos.clamp(0, 999_999_999) / 1000;
        Ok(format!("{base}.{micros:06}Z"))
    } else {
        Ok(format!("{base}Z"))
    }
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    let body = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", fraction(u, 3))
    } else if u < 1_000_000_000 {
        format!("{}ms", fraction(u, 6))
    } else {
        let seconds = u / 1_000_000_000;
        let whole_and_fraction = fraction(u, 9);
        let fraction_part = whole_and_fraction
            .split_once('.')
            .map(|(_, f)| format!(".{f}"))
            .unwrap_or_default();
        let (h, m, s) = (seconds / 3600, (seconds / 60) % 60, seconds % 60);
        if h > 0 {
            format!("{h}h{m}m{s}{fraction_part}s")
        } else if m > 0 {
            format!("{m}m{s}{fraction_part}s")
        } else {
            format!("{s}{fraction_part}s")
        }
    };
    format!("{sign}{body}")
}

/// `v / 10^precision` with its fraction, trailing zeros dropped: `1500, 3` → `1.5`.
fn fraction(v: u64, precision: u32) -> String {
    let unit = 10u64.pow(precision);
    let (whole, frac) = (v / unit, v % unit);
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:0width$}", width = precision as usize);
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// The index of the message of a definition name, also when k8s-pb spells it in another
/// case.
pub(super) fn message_of_definition(definition: &str) -> Option<usize> {
    schema::message_index(definition).or_else(|| {
        let lower = definition.to_lowercase();
        MESSAGES.iter().position(|m| m.name.to_lowercase() == lower)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_writes_them() {
        for (nanos, text) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (1_500_000, "1.5ms"),
            (1_000_000_000, "1s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_500_000_000, "1h2m3.5s"),
            (-2_000_000_000, "-2s"),
        ] {
            assert_eq!(go_duration(nanos), text);
        }
    }

    #[test]
    fn times_read_as_rfc3339() {
        assert_eq!(rfc3339(0, 0, false).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_700_000_000, 123_456_789, true).unwrap(),
            "2023-11-14T22:13:20.123456Z"
        );
        assert!(rfc3339(i64::MAX, 0, false).is_err());
    }
}
