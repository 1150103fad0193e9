//! Go-compatible text: `strconv.Quote` for messages and `fmt`'s `%v` for field values.

use std::borrow::Cow;

use serde_json::{Number, Value};

/// Go's `%q` (`strconv.Quote`) for valid UTF-8. Which code points count as printable follows
/// Go's `unicode.IsPrint` for controls, spaces and the common format characters.
pub(super) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

fn is_go_printable(c: char) -> bool {
    let code = c as u32;
    let format_or_private = matches!(
        code,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0xE000..=0xF8FF
            | 0xFEFF
            | 0xFDD0..=0xFDEF
            | 0xFFF9..=0xFFFB
            | 0xF0000..=0x10FFFF
    ) || code & 0xFFFE == 0xFFFE;
    c == ' ' || !(c.is_control() || c.is_whitespace() || format_or_private)
}

/// A field value as upstream's field set holds it (`fmt.Sprint` of the unstructured value).
pub(super) fn render(value: Option<&Value>) -> Cow<'_, str> {
    match value {
        None | Some(Value::Null) => Cow::Borrowed(""),
        Some(Value::String(s)) => Cow::Borrowed(s),
        Some(Value::Bool(b)) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Some(Value::Number(n)) => Cow::Owned(number_text(n)),
        Some(other) => Cow::Owned(other.to_string()),
    }
}

fn number_text(number: &Number) -> String {
    if let Some(i) = number.as_i64() {
        i.to_string()
    } else if let Some(u) = number.as_u64() {
        u.to_string()
    } else {
        number.as_f64().map_or_else(|| number.to_string(), go_float)
    }
}

/// Go's `%v` for a float64: shortest digits, exponent form below 1e-4 and from 1e6 up.
fn go_float(f: f64) -> String {
    let scientific = format!("{f:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return f.to_string();
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..6).contains(&exponent) {
        f.to_string()
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        assert_eq!(go_quote(""), "\"\"");
        assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(
            go_quote("\u{7}\u{8}\u{c}\u{b}\u{7f}"),
            "\"\\a\\b\\f\\v\\x7f\""
        );
        assert_eq!(go_quote("함 x"), "\"함 x\"");
        assert_eq!(go_quote("\u{feff}\u{10ffff}"), "\"\\ufeff\\U0010ffff\"");
    }

    #[test]
    fn go_float_formatting() {
        assert_eq!(go_float(0.0), "0");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(3.0), "3");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(-2.5e-7), "-2.5e-07");
    }
}
