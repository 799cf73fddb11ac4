//! Parsing partner date-times: explicit chrono formats, the partner's time
//! zone for naive values, and the junk that real staging tables hold (empty
//! strings, all-zero values such as `00000000000000` or MySQL's zero date)
//! read as NULL.

use crate::value::Value;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};

/// How a `datetime` rule reads its input.
#[derive(Debug, Clone)]
pub enum DatetimeSpec {
    /// `datetime = true`: native timestamp columns, or ISO-like text.
    Auto,
    /// `datetime = "%Y%m%d%H%M%S"` or a list tried in order.
    Formats(Vec<String>),
}

const AUTO_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y/%m/%d %H:%M:%S%.f",
    "%Y%m%d%H%M%S",
    "%Y-%m-%d %H:%M",
    "%Y%m%d%H%M",
];

/// True for values that mean "no date": empty, all zeros with separators.
pub fn is_zero_or_empty(s: &str) -> bool {
    let t = s.trim();
    t.is_empty() || t.chars().all(|c| matches!(c, '0' | '-' | ':' | ' ' | '.' | '/' | 'T'))
}

/// Parses `input` into an instant. Naive inputs are taken as wall-clock time
/// in `zone`. `Ok(Value::Null)` for empty and zero values.
pub fn parse(input: &Value, spec: &DatetimeSpec, zone: FixedOffset) -> Result<Value, String> {
    let attach = |n: NaiveDateTime| -> Result<Value, String> {
        match zone.from_local_datetime(&n).single() {
            Some(t) => Ok(Value::TimestampTz(t)),
            None => Err(format!("`{n}` does not exist in zone {zone}")),
        }
    };
    match input {
        Value::Null => Ok(Value::Null),
        Value::Timestamp(n) => attach(*n),
        Value::TimestampTz(t) => Ok(Value::TimestampTz(*t)),
        Value::Date(d) => attach(d.and_hms_opt(0, 0, 0).expect("midnight")),
        other => {
            let Some(text) = other.as_text() else {
                return Err(format!("a {} value is not a date-time", other.kind()));
            };
            let s = text.trim();
            if is_zero_or_empty(s) {
                return Ok(Value::Null);
            }
            let formats: Vec<&str> = match spec {
                DatetimeSpec::Auto => AUTO_FORMATS.to_vec(),
                DatetimeSpec::Formats(f) => f.iter().map(String::as_str).collect(),
            };
            for f in &formats {
                if let Ok(t) = DateTime::parse_from_str(s, f) {
                    return Ok(Value::TimestampTz(t));
                }
                if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
                    return attach(n);
                }
                if let Ok(d) = NaiveDate::parse_from_str(s, f) {
                    return attach(d.and_hms_opt(0, 0, 0).expect("midnight"));
                }
            }
            if matches!(spec, DatetimeSpec::Auto) {
                if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                    return Ok(Value::TimestampTz(t));
                }
            }
            Err(format!(
                "`{s}` does not match {}",
                formats
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ))
        }
    }
}

/// Parses `+08:00`, `-05:30`, `UTC`, `Z`, and the zone names of China
/// (`Asia/Shanghai`, `PRC`, which have had no daylight saving since 1991).
pub fn parse_zone(s: &str) -> Result<FixedOffset, String> {
    let t = s.trim();
    match t {
        "UTC" | "Z" | "Etc/UTC" | "+00:00" => return Ok(FixedOffset::east_opt(0).expect("0")),
        "Asia/Shanghai" | "PRC" | "Asia/Chongqing" | "Asia/Harbin" | "Asia/Urumqi" | "Asia/Hong_Kong"
        | "Asia/Macau" | "Asia/Taipei" => return Ok(FixedOffset::east_opt(8 * 3600).expect("+8")),
        _ => {}
    }
    let bad = || format!("time zone `{t}`: expected an offset like \"+08:00\", or \"UTC\" or \"Asia/Shanghai\"");
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let h: i32 = h.parse().map_err(|_| bad())?;
    let m: i32 = m.parse().map_err(|_| bad())?;
    if h > 14 || m > 59 {
        return Err(bad());
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cst() -> FixedOffset {
        parse_zone("+08:00").unwrap()
    }

    fn fmt(f: &[&str]) -> DatetimeSpec {
        DatetimeSpec::Formats(f.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn string_times_in_the_partner_zone() {
        let v = parse(&Value::Text("20240301083000".into()), &fmt(&["%Y%m%d%H%M%S"]), cst()).unwrap();
        assert_eq!(v.to_string(), "2024-03-01T08:30:00+08:00");
        let v = parse(
            &Value::Text("202403010830".into()),
            &fmt(&["%Y%m%d%H%M%S", "%Y%m%d%H%M"]),
            cst(),
        )
        .unwrap();
        assert_eq!(v.to_string(), "2024-03-01T08:30:00+08:00");
    }

    #[test]
    fn zero_and_empty_are_null() {
        for s in ["", "  ", "00000000000000", "0000-00-00 00:00:00", "0000-00-00"] {
            assert_eq!(
                parse(&Value::Text(s.into()), &fmt(&["%Y%m%d%H%M%S"]), cst()).unwrap(),
                Value::Null,
                "{s:?}"
            );
        }
    }

    #[test]
    fn garbage_is_an_error_naming_the_formats() {
        let e = parse(&Value::Text("2024-13-45".into()), &fmt(&["%Y%m%d%H%M%S"]), cst()).unwrap_err();
        assert!(e.contains("`2024-13-45` does not match `%Y%m%d%H%M%S`"), "{e}");
    }

    #[test]
    fn naive_columns_get_the_zone_and_keep_microseconds() {
        let n = NaiveDate::from_ymd_opt(2024, 3, 1)
            .unwrap()
            .and_hms_micro_opt(8, 0, 0, 5)
            .unwrap();
        let v = parse(&Value::Timestamp(n), &DatetimeSpec::Auto, cst()).unwrap();
        assert_eq!(v.to_string(), "2024-03-01T08:00:00.000005+08:00");
    }

    #[test]
    fn zones() {
        assert_eq!(parse_zone("Asia/Shanghai").unwrap(), cst());
        assert_eq!(parse_zone("-05:30").unwrap().local_minus_utc(), -(5 * 3600 + 1800));
        assert!(parse_zone("Mars/Base").is_err());
    }
}
