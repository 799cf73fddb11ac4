//! Field rules: how one target column is computed from a source row.
//!
//! A field is `target = "SOURCE_COLUMN"` (a copy) or a table of rules. The
//! rules run in a fixed, documented order, so that they compose without
//! surprises:
//!
//! 1. **input**: `from = "COL"` (a source column) or `value = …` (a constant);
//! 2. `trim = true`: strip white space (code sets, classification codes and
//!    date-times always look at the trimmed text);
//! 3. `null_if = ["", "-"]`: these values become NULL;
//! 4. `pattern = "regex"`: the (trimmed) input text must match;
//! 5. one transform: `datetime`, `codeset` (with `default`), `appeal_code`,
//!    or `mask = "phone" | "id" | "name"`;
//! 6. checks on the output: `required = true` (not NULL, not empty),
//!    `max_chars = N` (characters, not bytes).
//!
//! A rule that fails yields a [`Rejection`] naming the target field, the
//! source column, the rule and the value; personal values are shown masked.

use super::appeal_code;
use super::codeset::CodeSet;
use super::datetime::{self, DatetimeSpec};
use super::mask;
use crate::ident::Ident;
use crate::value::Value;
use chrono::FixedOffset;
use regex::Regex;
use std::fmt;
use std::sync::Arc;

/// Where a field's value comes from.
#[derive(Debug, Clone)]
pub enum Input {
    /// Index into the mapping's source column list.
    Column(usize),
    Const(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskKind {
    Phone,
    Id,
    Name,
}

impl MaskKind {
    pub fn parse(s: &str) -> Option<MaskKind> {
        match s {
            "phone" => Some(MaskKind::Phone),
            "id" => Some(MaskKind::Id),
            "name" => Some(MaskKind::Name),
            _ => None,
        }
    }

    pub fn apply(self, s: &str) -> String {
        match self {
            MaskKind::Phone => mask::mask_phone(s),
            MaskKind::Id => mask::mask_id(s),
            MaskKind::Name => mask::mask_name(s),
        }
    }
}

/// The one transform of a field.
#[derive(Debug, Clone)]
pub enum Transform {
    None,
    Datetime(DatetimeSpec),
    Codeset { set: Arc<CodeSet>, default: Option<String> },
    AppealCode,
    Mask(MaskKind),
}

/// A checked field rule.
#[derive(Debug, Clone)]
pub struct Field {
    pub target: Ident,
    pub input: Input,
    /// The source column's name, for messages.
    pub from: Option<String>,
    pub trim: bool,
    pub null_if: Vec<String>,
    pub pattern: Option<Regex>,
    pub transform: Transform,
    pub required: bool,
    pub max_chars: Option<usize>,
    /// Personal data: values are masked in rejection messages and reports.
    pub personal: Option<MaskKind>,
}

/// Why a row was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The target field.
    pub field: String,
    /// The source column, when the field reads one.
    pub column: Option<String>,
    /// The rule that failed: `datetime`, `codeset`, `required`, …
    pub rule: &'static str,
    /// The offending value, shortened, masked when personal.
    pub value: Option<String>,
    pub message: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`", self.field)?;
        if let Some(c) = &self.column {
            write!(f, " (column `{c}`)")?;
        }
        write!(f, ": {} [{}]", self.message, self.rule)
    }
}

impl Field {
    fn reject(&self, rule: &'static str, value: Option<&Value>, message: String) -> Rejection {
        Rejection {
            field: self.target.to_string(),
            column: self.from.clone(),
            rule,
            value: value.map(|v| self.show(v)),
            message,
        }
    }

    /// A value as messages may show it: at most 60 characters, masked if personal.
    pub fn show(&self, v: &Value) -> String {
        let s = v.to_string();
        let s = match self.personal {
            Some(k) => k.apply(&s),
            None => s,
        };
        if s.chars().count() > 60 {
            format!("{}…", s.chars().take(60).collect::<String>())
        } else {
            s
        }
    }

    /// Computes the field from a source row.
    pub fn apply(&self, row: &[Value], zone: FixedOffset) -> Result<Value, Rejection> {
        let raw = match &self.input {
            Input::Column(i) => &row[*i],
            Input::Const(v) => v,
        };
        let mut v = raw.clone();
        if self.trim {
            if let Value::Text(s) = &v {
                let t = s.trim();
                if t.len() != s.len() {
                    v = Value::Text(t.to_string());
                }
            }
        }
        if !self.null_if.is_empty() {
            if let Some(t) = v.as_text() {
                if self.null_if.iter().any(|n| n == t.as_ref()) {
                    v = Value::Null;
                }
            }
        }
        if let (Some(re), Some(t)) = (&self.pattern, v.as_text()) {
            let t = t.trim();
            if !re.is_match(t) {
                return Err(self.reject(
                    "pattern",
                    Some(&v),
                    format!("`{}` does not match pattern `{}`", self.show(&v), re.as_str()),
                ));
            }
        }
        let out = match &self.transform {
            Transform::None => v,
            Transform::Datetime(spec) => {
                datetime::parse(&v, spec, zone).map_err(|m| self.reject("datetime", Some(&v), m))?
            }
            Transform::Codeset { set, default } => match v.as_text() {
                None if v.is_null() => Value::Null,
                None => {
                    return Err(self.reject(
                        "codeset",
                        Some(&v),
                        format!("a {} value cannot be looked up in code set `{}`", v.kind(), set.name),
                    ))
                }
                Some(t) if t.trim().is_empty() => Value::Null,
                Some(t) => match set.lookup(&t) {
                    Some(p) => Value::Text(p.to_string()),
                    None => match default {
                        Some(d) => Value::Text(d.clone()),
                        None => {
                            return Err(self.reject(
                                "codeset",
                                Some(&v),
                                format!(
                                    "value `{}` is not in code set `{}`",
                                    self.show(&Value::Text(t.trim().to_string())),
                                    set.name
                                ),
                            ))
                        }
                    },
                },
            },
            Transform::AppealCode => match v.as_text() {
                None => Value::Null,
                Some(t) if t.trim().is_empty() => Value::Null,
                Some(t) => match appeal_code::normalize(&t) {
                    Ok(c) => Value::Text(c.code),
                    Err(m) => {
                        return Err(self.reject("appeal_code", Some(&v), format!("malformed classification code: {m}")))
                    }
                },
            },
            Transform::Mask(k) => match v.as_text() {
                None => Value::Null,
                Some(t) => Value::Text(k.apply(&t)),
            },
        };
        if self.required {
            let empty = match &out {
                Value::Null => true,
                Value::Text(s) => s.trim().is_empty(),
                _ => false,
            };
            if empty {
                return Err(self.reject("required", None, "a value is required but the row has none".to_string()));
            }
        }
        if let (Some(max), Value::Text(s)) = (self.max_chars, &out) {
            let n = s.chars().count();
            if n > max {
                return Err(self.reject(
                    "max_chars",
                    Some(&out),
                    format!("{n} characters, at most {max} allowed"),
                ));
            }
        }
        Ok(out)
    }
}
