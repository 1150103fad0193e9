//! Resource quantities (`500m`, `1Gi`, `2e3`) as admission compares and sums them: exact
//! to the nano-unit, printed in upstream's canonical form (`1000m` prints `1`, `1024Mi`
//! prints `1Gi`).
//!
//! Written here because `k8s-openapi`'s `Quantity` is only the string, and the crates that
//! parse it convert to `f64` (losing the exactness quota sums need) or lack the canonical
//! printing upstream's error messages show.

use std::cmp::Ordering;
use std::fmt;

/// Nano-units in one unit.
const NANO: i128 = 1_000_000_000;

/// How a quantity is printed: the suffix family it was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `k`, `M`, `G`, ... and `m`, `u`, `n`.
    DecimalSi,
    /// `Ki`, `Mi`, `Gi`, ...
    BinarySi,
    /// `e3`, `E6`, ...
    DecimalExponent,
}

/// A quantity, exact to the nano-unit.
#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

/// Why a string is not a quantity.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)]
pub struct ParseError;

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl std::str::FromStr for Quantity {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(ParseError);
        }
        let (format, base, exponent) = parse_suffix(suffix)?;
        // mantissa = whole.fraction as an integer, scaled down by 10^len(fraction).
        let mut mantissa: i128 = 0;
        for digit in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(digit - b'0')))
                .ok_or(ParseError)?;
        }
        let mut numerator = mantissa.checked_mul(NANO).ok_or(ParseError)?;
        let mut denominator: i128 = 1;
        for _ in 0..fraction.len() {
            denominator = denominator.checked_mul(10).ok_or(ParseError)?;
        }
        if exponent >= 0 {
            let factor = base
                .checked_pow(exponent.unsigned_abs())
                .ok_or(ParseError)?;
            numerator = numerator.checked_mul(factor).ok_or(ParseError)?;
        } else {
            let factor = base
                .checked_pow(exponent.unsigned_abs())
                .ok_or(ParseError)?;
            denominator = denominator.checked_mul(factor).ok_or(ParseError)?;
        }
        // Below a nano-unit, upstream rounds away from zero.
        let mut nanos = numerator / denominator;
        if numerator % denominator != 0 {
            nanos += 1;
        }
        Ok(Quantity {
            nanos: if negative { -nanos } else { nanos },
            format,
        })
    }
}

/// The suffix's format, base and exponent: `Mi` is (binary, 2, 20), `k` (decimal, 10, 3).
fn parse_suffix(suffix: &str) -> Result<(Format, i128, i32), ParseError> {
    let decimal = |exponent| Ok((Format::DecimalSi, 10, exponent));
    let binary = |exponent| Ok((Format::BinarySi, 2, exponent));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let digits = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))
                .ok_or(ParseError)?;
            let unsigned = digits.trim_start_matches(['+', '-']);
            if unsigned.is_empty()
                || digits.len() - unsigned.len() > 1
                || !unsigned.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(ParseError);
            }
            let exponent: i32 = digits.parse().map_err(|_| ParseError)?;
            Ok((Format::DecimalExponent, 10, exponent))
        }
    }
}

impl Quantity {
    /// Zero, printed as a decimal quantity.
    pub const ZERO: Quantity = Quantity {
        nanos: 0,
        format: Format::DecimalSi,
    };

    /// A whole number of units (an object count).
    pub fn count(units: i64) -> Self {
        Quantity {
            nanos: i128::from(units) * NANO,
            format: Format::DecimalSi,
        }
    }

    /// Parses a JSON value holding a quantity (a string, or a number as some clients send).
    pub fn from_json(value: &serde_json::Value) -> Option<Self> {
        match value {
            serde_json::Value::String(text) => text.parse().ok(),
            serde_json::Value::Number(number) => number.to_string().parse().ok(),
            _ => None,
        }
    }

    /// Whether this is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// `self / other` as a float (a limit-to-request ratio); `None` when `other` is zero.
    pub fn ratio(&self, other: &Quantity) -> Option<f64> {
        (other.nanos != 0).then(|| self.nanos as f64 / other.nanos as f64)
    }

    /// The quantity as JSON (its canonical string).
    pub fn to_json(self) -> serde_json::Value {
        serde_json::Value::String(self.to_string())
    }
}

impl std::ops::Add for Quantity {
    type Output = Quantity;

    /// The sum, printed in this quantity's format (a zero sum takes the other's).
    fn add(self, other: Quantity) -> Quantity {
        let format = if self.nanos == 0 && self.format == Format::DecimalSi {
            other.format
        } else {
            self.format
        };
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
            format,
        }
    }
}

impl std::ops::Sub for Quantity {
    type Output = Quantity;

    /// The difference, printed in this quantity's format.
    fn sub(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_sub(other.nanos),
            format: self.format,
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let sign = if self.nanos < 0 { "-" } else { "" };
        let magnitude = self.nanos.unsigned_abs();
        let whole = magnitude.is_multiple_of(NANO.unsigned_abs());
        let units = magnitude / NANO.unsigned_abs();
        if self.format == Format::BinarySi && whole && units >= 1024 {
            let mut value = units;
            let mut power = 0;
            while power < 6 && value.is_multiple_of(1024) {
                value /= 1024;
                power += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
            return write!(f, "{sign}{value}{suffix}");
        }
        // Decimal: the largest exponent (a multiple of 3, from -9) leaving an integer.
        let mut value = magnitude;
        let mut exponent: i32 = -9;
        while value.is_multiple_of(1000) && exponent < 18 {
            value /= 1000;
            exponent += 3;
        }
        if self.format == Format::DecimalExponent {
            return match exponent {
                0 => write!(f, "{sign}{value}"),
                e => write!(f, "{sign}{value}e{e}"),
            };
        }
        let suffix = match exponent {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            0 => "",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            _ => "E",
        };
        write!(f, "{sign}{value}{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        text.parse().unwrap()
    }

    #[test]
    fn parses_every_suffix_family() {
        assert_eq!(q("500m"), q("0.5"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1k"), q("1e3"));
        assert_eq!(q("1E"), q("1e18"));
        assert_eq!(q("1.5Gi"), q("1536Mi"));
        assert_eq!(q("100n"), q("0.0000001"));
        assert_eq!(q("-1"), Quantity::ZERO - q("1"));
        assert_eq!(q(".5"), q("500m"));
        assert_eq!(q("+2"), q("2"));
        assert_eq!(q("1e-3"), q("1m"));
        for bad in [
            "", "abc", "1.2.3", "1Qi", "1e", "1e+-3", "m", ".", "1 Gi", "1ee3",
        ] {
            assert_eq!(bad.parse::<Quantity>(), Err(ParseError), "{bad:?}");
        }
    }

    #[test]
    fn prints_the_canonical_form() {
        for (text, canonical) in [
            ("1000m", "1"),
            ("0.5", "500m"),
            ("1500m", "1500m"),
            ("2000", "2k"),
            ("1500", "1500"),
            ("1024Mi", "1Gi"),
            ("1536", "1536"),
            ("1536Ki", "1536Ki"),
            ("512Ki", "512Ki"),
            ("1G", "1G"),
            ("0.5Gi", "512Mi"),
            ("2e3", "2e3"),
            ("0", "0"),
            ("100Mi", "100Mi"),
            ("1.5Ki", "1536"),
            ("0.1Ki", "102400m"),
            ("-1500m", "-1500m"),
        ] {
            assert_eq!(q(text).to_string(), canonical, "{text}");
        }
    }

    #[test]
    fn sums_keep_the_first_format() {
        assert_eq!((q("500m") + q("500m")).to_string(), "1");
        assert_eq!((q("1Gi") + q("1Gi")).to_string(), "2Gi");
        assert_eq!((Quantity::ZERO + q("1Gi")).to_string(), "1Gi");
        assert_eq!((q("2") - q("500m")).to_string(), "1500m");
        assert!(q("1") < q("1001m"));
        assert_eq!(q("2").ratio(&q("500m")), Some(4.0));
        assert_eq!(q("2").ratio(&Quantity::ZERO), None);
        assert_eq!(Quantity::count(3).to_string(), "3");
    }
}
