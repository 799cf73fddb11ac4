//! PostgreSQL's binary `COPY` format, for the column types hlx writes most.
//!
//! In text format PostgreSQL scans every byte of every row for delimiters and
//! escapes, then parses each field; for rows of long Chinese text that is the
//! bulk of its work in a first load. In binary format each field comes with
//! its length and is taken as it is (`psql \copy` of 300,000 benchmark rows
//! into a keyed table: 11.5–11.9 s in text format, 7.0–8.0 s in binary).
//!
//! Binary fields skip PostgreSQL's text parsing, so hlx uses the format only
//! where the outcome is provably the one text would give: every column of
//! the table is of a type listed in [`Bin`], and every value is one that
//! type's binary form carries exactly ([`fits`]); otherwise the whole `COPY`
//! goes in text format, and PostgreSQL judges the values as before. The
//! server still applies each column's limits to binary fields (the length of
//! `varchar(n)`, the padding of `char(n)`, the precision of
//! `timestamp(p)`, valid UTF-8), with the same errors.
//!
//! Layout: a header (signature, flags, extension length), per row a field
//! count and, per field, a length (-1 for NULL) and the bytes, then a
//! trailer of -1 (PostgreSQL documentation, "COPY", "Binary Format").

use crate::value::Value;
use chrono::{Datelike as _, NaiveDate, NaiveDateTime, Timelike as _};

/// The signature, the flags and the header extension length.
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The end of the data: a field count of -1.
pub const TRAILER: &[u8] = &[0xff, 0xff];

/// A column type whose binary form hlx writes, by PostgreSQL's type name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bin {
    /// `text`, `varchar`, `bpchar`: the text form as UTF-8.
    Text,
    Int2,
    Int4,
    Int8,
    Bool,
    Float4,
    Float8,
    Date,
    Timestamp,
    TimestampTz,
    Bytea,
}

impl Bin {
    /// The binary form of a column of this PostgreSQL type (`pg_type.typname`),
    /// if hlx writes it.
    pub fn of(typname: &str) -> Option<Bin> {
        Some(match typname {
            "text" | "varchar" | "bpchar" => Bin::Text,
            "int2" => Bin::Int2,
            "int4" => Bin::Int4,
            "int8" => Bin::Int8,
            "bool" => Bin::Bool,
            "float4" => Bin::Float4,
            "float8" => Bin::Float8,
            "date" => Bin::Date,
            "timestamp" => Bin::Timestamp,
            "timestamptz" => Bin::TimestampTz,
            "bytea" => Bin::Bytea,
            _ => return None,
        })
    }
}

/// PostgreSQL's epoch for dates and timestamps.
fn epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("2000-01-01 is a date")
}

/// Whether `v`'s binary form in a column of type `b` is exactly what its
/// text form would have become. Anything else (an integer out of the
/// column's range, a text for a number column, nanoseconds, a year outside
/// 1–9999) leaves the batch to text format, where PostgreSQL decides.
pub fn fits(v: &Value, b: Bin) -> bool {
    let year_ok = |y: i32| (1..=9999).contains(&y);
    match (v, b) {
        (Value::Null, _) => true,
        // Every value has a text form ([`text_form`]); one field's length
        // is an i32.
        (Value::Text(s) | Value::Decimal(s), Bin::Text) => i32::try_from(s.len()).is_ok(),
        (Value::Bytes(x), Bin::Text) => i32::try_from(2 + 2 * x.len()).is_ok(),
        (_, Bin::Text) => true,
        (Value::Int(i), Bin::Int2) => i16::try_from(*i).is_ok(),
        (Value::Int(i), Bin::Int4) => i32::try_from(*i).is_ok(),
        (Value::Int(_), Bin::Int8) => true,
        (Value::Bool(_), Bin::Bool) => true,
        // float4's input refuses what overflows or underflows to zero.
        (Value::Float(f), Bin::Float4) => {
            let g = *f as f32;
            !f.is_finite() || (g.is_finite() && (g != 0.0 || *f == 0.0))
        }
        (Value::Float(_), Bin::Float8) => true,
        (Value::Date(d), Bin::Date) => year_ok(d.year()),
        (Value::Timestamp(t), Bin::Timestamp) => {
            year_ok(t.year()) && t.nanosecond() % 1000 == 0 && t.nanosecond() < 1_000_000_000
        }
        (Value::TimestampTz(t), Bin::TimestampTz) => {
            let u = t.naive_utc();
            year_ok(u.year())
                && year_ok(t.naive_local().year())
                && u.nanosecond() % 1000 == 0
                && u.nanosecond() < 1_000_000_000
        }
        (Value::Bytes(x), Bin::Bytea) => i32::try_from(x.len()).is_ok(),
        _ => false,
    }
}

/// Appends one field: its length and its binary form. Call only for a value
/// that [`fits`].
pub fn push(v: &Value, b: Bin, out: &mut Vec<u8>, scratch: &mut String) {
    match (v, b) {
        (Value::Null, _) => push_null(out),
        (_, Bin::Text) => put(out, text_form(v, scratch).as_bytes()),
        (Value::Int(i), Bin::Int2) => put(out, &(*i as i16).to_be_bytes()),
        (Value::Int(i), Bin::Int4) => put(out, &(*i as i32).to_be_bytes()),
        (Value::Int(i), Bin::Int8) => put(out, &i.to_be_bytes()),
        (Value::Bool(x), Bin::Bool) => put(out, &[u8::from(*x)]),
        (Value::Float(f), Bin::Float4) => put(out, &(*f as f32).to_bits().to_be_bytes()),
        (Value::Float(f), Bin::Float8) => put(out, &f.to_bits().to_be_bytes()),
        (Value::Date(d), Bin::Date) => put(out, &((*d - epoch().date()).num_days() as i32).to_be_bytes()),
        (Value::Timestamp(t), Bin::Timestamp) => put(out, &micros(t).to_be_bytes()),
        (Value::TimestampTz(t), Bin::TimestampTz) => put(out, &micros(&t.naive_utc()).to_be_bytes()),
        (Value::Bytes(x), Bin::Bytea) => put(out, x),
        // Not reached for a value that fits.
        _ => push_null(out),
    }
}

/// Appends a NULL field.
pub fn push_null(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i32).to_be_bytes());
}

/// Appends a text field (of a text column).
pub fn push_text(s: &str, out: &mut Vec<u8>) {
    put(out, s.as_bytes());
}

/// Appends a `bytea` field.
pub fn push_bytes(b: &[u8], out: &mut Vec<u8>) {
    put(out, b);
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    let n = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Microseconds since PostgreSQL's epoch (the value fits: whole
/// microseconds, years 1–9999).
fn micros(t: &NaiveDateTime) -> i64 {
    let d = t.signed_duration_since(epoch());
    d.num_microseconds().unwrap_or(i64::MAX)
}

/// The text a value has in a text column: what the text format of `COPY`
/// sends for it, before escaping (`db::write` escapes it for text format).
pub(crate) fn text_form<'a>(v: &'a Value, scratch: &'a mut String) -> &'a str {
    match v {
        Value::Text(s) | Value::Decimal(s) => s,
        Value::Bool(b) => {
            if *b {
                "true"
            } else {
                "false"
            }
        }
        Value::Bytes(b) => {
            scratch.clear();
            scratch.push_str("\\x");
            scratch.push_str(&hex::encode(b));
            scratch
        }
        Value::Timestamp(t) => {
            scratch.clear();
            crate::value::push_naive(t, scratch);
            scratch
        }
        other => {
            use std::fmt::Write as _;
            scratch.clear();
            let _ = write!(scratch, "{other}");
            scratch
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(v: &Value, b: Bin) -> Vec<u8> {
        let mut out = Vec::new();
        push(v, b, &mut out, &mut String::new());
        out
    }

    #[test]
    fn fields_carry_their_length_and_network_order_bytes() {
        assert_eq!(field(&Value::Null, Bin::Int4), vec![0xff, 0xff, 0xff, 0xff]);
        assert_eq!(field(&Value::Int(-2), Bin::Int2), vec![0, 0, 0, 2, 0xff, 0xfe]);
        assert_eq!(field(&Value::Int(258), Bin::Int4), vec![0, 0, 0, 4, 0, 0, 1, 2]);
        assert_eq!(field(&Value::Bool(true), Bin::Bool), vec![0, 0, 0, 1, 1]);
        let t = field(&Value::Text("路灯\t不亮".into()), Bin::Text);
        assert_eq!(&t[..4], &(("路灯\t不亮".len()) as i32).to_be_bytes());
        assert_eq!(&t[4..], "路灯\t不亮".as_bytes(), "no escaping in binary");
    }

    #[test]
    fn times_count_from_2000_01_01() {
        let t = NaiveDate::from_ymd_opt(2000, 1, 2)
            .unwrap()
            .and_hms_micro_opt(0, 0, 1, 5)
            .unwrap();
        let want = (86_400_000_000i64 + 1_000_005).to_be_bytes();
        assert_eq!(&field(&Value::Timestamp(t), Bin::Timestamp)[4..], &want);
        use chrono::TimeZone as _;
        let tz = chrono::FixedOffset::east_opt(8 * 3600)
            .unwrap()
            .from_local_datetime(&(t + chrono::Duration::hours(8)))
            .unwrap();
        assert_eq!(&field(&Value::TimestampTz(tz), Bin::TimestampTz)[4..], &want);
        let d = NaiveDate::from_ymd_opt(1999, 12, 31).unwrap();
        assert_eq!(&field(&Value::Date(d), Bin::Date)[4..], &(-1i32).to_be_bytes());
    }

    #[test]
    fn values_binary_would_change_are_left_to_text() {
        assert!(!fits(&Value::Int(70_000), Bin::Int2));
        assert!(!fits(&Value::Text("12".into()), Bin::Int4));
        assert!(!fits(&Value::Float(1e300), Bin::Float4));
        assert!(!fits(&Value::Float(1e-300), Bin::Float4));
        assert!(fits(&Value::Float(0.0), Bin::Float4));
        let nanos = NaiveDate::from_ymd_opt(2024, 3, 1)
            .unwrap()
            .and_hms_nano_opt(8, 0, 0, 1)
            .unwrap();
        assert!(!fits(&Value::Timestamp(nanos), Bin::Timestamp));
        assert!(fits(&Value::Int(12), Bin::Text), "a text column takes any value's text");
        assert!(Bin::of("numeric").is_none() && Bin::of("uuid").is_none());
    }
}
