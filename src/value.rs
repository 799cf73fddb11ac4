//! The engine-neutral value that flows from a source row through the field
//! rules into a target row.
//!
//! Every backend decodes its columns into [`Value`] and encodes [`Value`] back;
//! the mapping core only ever sees this type. Two properties matter:
//!
//! * **No precision is lost.** Timestamps keep chrono's nanoseconds (the engines
//!   give microseconds), decimals keep their exact text.
//! * **A canonical byte form** ([`Value::write_canonical`]) feeds the row
//!   checksum, so the same mapped content always hashes the same, whatever
//!   engine it came from.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat};
use std::fmt;

/// One column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// An exact decimal (DECIMAL/NUMERIC, or an unsigned BIGINT past i64), as text.
    Decimal(String),
    Text(String),
    Bytes(Vec<u8>),
    Date(NaiveDate),
    Time(NaiveTime),
    /// A wall-clock timestamp with no zone (DATETIME, `timestamp without time zone`).
    Timestamp(NaiveDateTime),
    /// An instant with its offset (TIMESTAMPTZ, or a naive value resolved in a zone).
    TimestampTz(DateTime<FixedOffset>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A short name of the kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Decimal(_) => "decimal",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Date(_) => "date",
            Value::Time(_) => "time",
            Value::Timestamp(_) => "timestamp",
            Value::TimestampTz(_) => "timestamptz",
        }
    }

    /// The value as text, for rules that work on text (code sets, patterns,
    /// masks). `None` for NULL and for bytes that are not UTF-8.
    pub fn as_text(&self) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        match self {
            Value::Null => None,
            Value::Text(s) | Value::Decimal(s) => Some(Cow::Borrowed(s)),
            Value::Bytes(b) => std::str::from_utf8(b).ok().map(Cow::Borrowed),
            other => Some(Cow::Owned(other.to_string())),
        }
    }

    /// Feeds the canonical form into a hasher: a type tag, then the bytes.
    /// Integers, decimals and floats share one numeric tag so that a partner
    /// changing INT to DECIMAL(10,0) does not make every row look changed.
    pub fn write_canonical(&self, out: &mut impl FnMut(&[u8])) {
        match self {
            Value::Null => out(b"N"),
            Value::Bool(b) => out(if *b { b"B1" } else { b"B0" }),
            Value::Int(i) => {
                out(b"#");
                out(i.to_string().as_bytes())
            }
            Value::Decimal(s) => {
                out(b"#");
                out(normalize_decimal(s).as_bytes())
            }
            Value::Float(f) => {
                out(b"#");
                out(format_float(*f).as_bytes())
            }
            Value::Text(s) => {
                out(b"S");
                out(s.as_bytes())
            }
            Value::Bytes(b) => {
                out(b"X");
                out(b)
            }
            Value::Date(d) => {
                out(b"D");
                out(d.to_string().as_bytes())
            }
            Value::Time(t) => {
                out(b"H");
                out(t.format("%H:%M:%S%.f").to_string().as_bytes())
            }
            Value::Timestamp(t) => {
                out(b"T");
                out(format_naive(t).as_bytes())
            }
            Value::TimestampTz(t) => {
                // The instant and the offset both count: a re-zoned value is a change.
                out(b"Z");
                out(t.to_rfc3339_opts(SecondsFormat::AutoSi, false).as_bytes())
            }
        }
    }

    /// JSON for the quarantine's raw row and for `hlx rejects show`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or_else(|| J::String(f.to_string())),
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => J::String(s.to_string()),
                Err(_) => J::String(format!("\\x{}", hex::encode(b))),
            },
            other => J::String(other.to_string()),
        }
    }

    /// The inverse of [`Value::to_json`] as far as it goes: used to re-map
    /// quarantined rows and to read `[[test]]` inputs.
    pub fn from_json(j: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match j {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Decimal(n.to_string()),
            },
            J::String(s) => Value::Text(s.clone()),
            other => Value::Text(other.to_string()),
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS[.fraction]` with as many fraction digits as needed
/// (never rounded).
pub fn format_naive(t: &NaiveDateTime) -> String {
    let mut out = String::with_capacity(26);
    push_naive(t, &mut out);
    out
}

/// Appends [`format_naive`]'s form of `t` to `out`. Timestamps are formatted
/// several times per row (checksum, recorded watermark, `COPY` text), so the
/// common case (years 0–9999, no leap second) writes the digits directly
/// instead of interpreting chrono's format string each time; the rest goes
/// through chrono, which gives the same text.
pub fn push_naive(t: &NaiveDateTime, out: &mut String) {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        use fmt::Write as _;
        let _ = write!(out, "{}", t.format("%Y-%m-%d %H:%M:%S%.f"));
        return;
    }
    let mut b = [0u8; 29];
    let put = |b: &mut [u8], at: usize, v: u32, width: usize| {
        let mut v = v;
        for i in (0..width).rev() {
            b[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(&mut b, 0, year as u32, 4);
    b[4] = b'-';
    put(&mut b, 5, t.month(), 2);
    b[7] = b'-';
    put(&mut b, 8, t.day(), 2);
    b[10] = b' ';
    put(&mut b, 11, t.hour(), 2);
    b[13] = b':';
    put(&mut b, 14, t.minute(), 2);
    b[16] = b':';
    put(&mut b, 17, t.second(), 2);
    // chrono's `%.f`: nothing, or 3, 6 or 9 digits, as the precision needs.
    let len = if nanos == 0 {
        19
    } else {
        b[19] = b'.';
        let (v, width) = if nanos % 1_000_000 == 0 {
            (nanos / 1_000_000, 3)
        } else if nanos % 1_000 == 0 {
            (nanos / 1_000, 6)
        } else {
            (nanos, 9)
        };
        put(&mut b, 20, v, width);
        20 + width
    };
    // Only ASCII digits and separators were written.
    out.push_str(std::str::from_utf8(&b[..len]).unwrap_or_default());
}

/// The inverse of [`format_naive`], which is also how MySQL prints DATETIME
/// and TIMESTAMP: read digit by digit (a watermark column is parsed on every
/// row read), and anything else handed to chrono, which reads the same values.
pub fn parse_naive(s: &str) -> Option<NaiveDateTime> {
    fn num(b: &[u8]) -> Option<u32> {
        b.iter()
            .try_fold(0u32, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    }
    let b = s.as_bytes();
    let shaped = b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && (b.len() == 19 || (b[19] == b'.' && (21..=29).contains(&b.len())));
    let fast = || {
        let date = NaiveDate::from_ymd_opt(num(&b[0..4])? as i32, num(&b[5..7])?, num(&b[8..10])?)?;
        let frac = if b.len() > 20 { &b[20..] } else { &[][..] };
        let nanos = num(frac)? * 10u32.pow(9 - frac.len() as u32);
        date.and_hms_nano_opt(num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?, nanos)
    };
    match shaped.then(fast).flatten() {
        Some(t) => Some(t),
        None => NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok(),
    }
}

fn format_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// Drops a leading `+`, leading zeros and trailing fractional zeros, so that
/// `12.50`, `12.5` and `+012.5` hash the same.
pub fn normalize_decimal(s: &str) -> String {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let body = if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    };
    if neg && body != "0" {
        format!("-{body}")
    } else {
        body
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => f.write_str(&format_float(*x)),
            Value::Decimal(s) | Value::Text(s) => f.write_str(s),
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => f.write_str(s),
                Err(_) => write!(f, "\\x{}", hex::encode(b)),
            },
            Value::Date(d) => write!(f, "{d}"),
            Value::Time(t) => write!(f, "{}", t.format("%H:%M:%S%.f")),
            Value::Timestamp(t) => f.write_str(&format_naive(t)),
            Value::TimestampTz(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, false)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn digest(v: &Value) -> Vec<u8> {
        let mut h = Sha256::new();
        v.write_canonical(&mut |b| h.update(b));
        h.finalize().to_vec()
    }

    #[test]
    fn numbers_hash_alike_across_engine_types() {
        assert_eq!(digest(&Value::Int(12)), digest(&Value::Decimal("12.000".into())));
        assert_eq!(
            digest(&Value::Decimal("+012.50".into())),
            digest(&Value::Decimal("12.5".into()))
        );
        assert_ne!(digest(&Value::Int(12)), digest(&Value::Text("12".into())));
    }

    #[test]
    fn null_and_empty_text_differ() {
        assert_ne!(digest(&Value::Null), digest(&Value::Text(String::new())));
    }

    #[test]
    fn microseconds_are_kept() {
        let t = NaiveDate::from_ymd_opt(2024, 3, 1)
            .unwrap()
            .and_hms_micro_opt(8, 30, 0, 123_456)
            .unwrap();
        assert_eq!(Value::Timestamp(t).to_string(), "2024-03-01 08:30:00.123456");
        let t2 = t + chrono::Duration::microseconds(1);
        assert_ne!(digest(&Value::Timestamp(t)), digest(&Value::Timestamp(t2)));
    }

    #[test]
    fn fast_timestamp_text_is_chronos_text() {
        let cases = [
            "2024-03-01 08:30:00",
            "2024-03-01 08:30:00.5",
            "2024-03-01 08:30:00.123",
            "0001-01-01 00:00:00.000001",
            "9999-12-31 23:59:59.999999",
            "2024-02-29 23:59:59.123456789",
            "2024-01-01 00:00:00.000000010",
        ];
        for c in cases {
            let t = NaiveDateTime::parse_from_str(c, "%Y-%m-%d %H:%M:%S%.f").unwrap();
            assert_eq!(format_naive(&t), t.format("%Y-%m-%d %H:%M:%S%.f").to_string(), "{c}");
        }
        let far = NaiveDate::from_ymd_opt(12345, 6, 7)
            .unwrap()
            .and_hms_opt(1, 2, 3)
            .unwrap();
        assert_eq!(format_naive(&far), far.format("%Y-%m-%d %H:%M:%S%.f").to_string());
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap();
        assert_eq!(format_naive(&leap), leap.format("%Y-%m-%d %H:%M:%S%.f").to_string());
    }

    #[test]
    fn sql_datetimes_read_as_chrono_reads_them() {
        for s in [
            "2024-03-01 08:30:00",
            "2024-03-01 08:30:00.5",
            "2024-03-01 08:30:00.123456",
            "2024-03-01 08:30:00.000001",
            "2024-03-01 08:30:00.123456789",
            "1000-01-01 00:00:00",
            "9999-12-31 23:59:59.999999",
        ] {
            let want = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap();
            assert_eq!(parse_naive(s), Some(want), "{s}");
        }
        // Not a date, or not this shape: what chrono says (nothing).
        for s in [
            "2024-02-30 00:00:00",
            "2024-03-01 24:00:00",
            "2024-03-01T08:30:00",
            "2024-03-01 08:30:0x",
            "",
            "0000-00-00 00:00:00",
        ] {
            assert_eq!(
                parse_naive(s),
                NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok(),
                "{s}"
            );
        }
    }

    #[test]
    fn decimal_normalisation() {
        assert_eq!(normalize_decimal("-0.00"), "0");
        assert_eq!(normalize_decimal("007"), "7");
        assert_eq!(normalize_decimal("-1.2300"), "-1.23");
    }
}
