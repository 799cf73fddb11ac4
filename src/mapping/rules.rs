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
//!    `division`, `mask = "phone" | "id" | "name"`, `hash = "sha256" |
//!    "hmac-sm3"` or `protect = "sm4" | "aes-256-gcm"` (see [`crate::protect`]);
//!    a personal field (`personal = "phone"`, …) is normalised first, so
//!    `+86 138-0013-8000` and `13800138000` hash alike, and a personal value
//!    masked upstream (it holds `*`) hashes to NULL;
//! 6. checks on the output: `required = true` (not NULL, not empty),
//!    `max_chars = N` (characters, not bytes).
//!
//! `protect` is applied last, after the row's checksum was taken over the
//! plain value ([`Field::seal`]): a random nonce per value would otherwise
//! make every re-read row look changed.
//!
//! A rule that fails yields a [`Rejection`] naming the target field, the
//! source column, the rule and the value; personal values are shown masked.

use super::appeal_code;
use super::codeset::CodeSet;
use super::datetime::{self, DatetimeSpec};
use super::mask;
use crate::ident::Ident;
use crate::protect::{Cipher, HashKind, Keyring};
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
    /// Personal, of no kind that masks partly (`personal = "other"`): shown hidden.
    Other,
}

impl MaskKind {
    pub fn parse(s: &str) -> Option<MaskKind> {
        match s {
            "phone" => Some(MaskKind::Phone),
            "id" => Some(MaskKind::Id),
            "name" => Some(MaskKind::Name),
            "other" => Some(MaskKind::Other),
            _ => None,
        }
    }

    pub fn apply(self, s: &str) -> String {
        match self {
            MaskKind::Phone => mask::mask_phone(s),
            MaskKind::Id => mask::mask_id(s),
            MaskKind::Name => mask::mask_name(s),
            MaskKind::Other => super::HIDDEN.to_string(),
        }
    }

    /// The canonical form hashed or encrypted: a phone without `+86` and
    /// separators, an ID number trimmed with an upper-case `X`, a name trimmed.
    pub fn normalize(self, s: &str) -> String {
        match self {
            MaskKind::Phone => mask::normalize_phone(s),
            MaskKind::Id => s.trim().to_uppercase(),
            MaskKind::Name | MaskKind::Other => s.trim().to_string(),
        }
    }
}

/// The one transform of a field.
#[derive(Debug, Clone)]
pub enum Transform {
    None,
    Datetime(DatetimeSpec),
    /// `fallback_other`: an unknown code goes to its nearest known
    /// ancestor's 'other' classification ([`CodeSet::lookup_other`]).
    Codeset {
        set: Arc<CodeSet>,
        default: Option<String>,
        fallback_other: bool,
    },
    /// `division = true`: a GB/T 2260 code, 6 digits; 9- and 12-digit
    /// statistical codes give their first six.
    Division,
    AppealCode,
    Mask(MaskKind),
    Hash {
        kind: HashKind,
        keys: Arc<Keyring>,
    },
    /// Encrypted by [`Field::seal`], after the checksum.
    Protect {
        cipher: Cipher,
        keys: Arc<Keyring>,
    },
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
    /// What a push does with an input that is hlx ciphertext (a `protect`ed
    /// provincial column).
    pub sealed_input: SealedInput,
    /// Written when the target row is new, never updated (a two-way pull
    /// half's province-owned fields).
    pub insert_only: bool,
}

/// A push reads provincial columns that may hold ciphertext (`hlx1:…`).
#[derive(Debug, Clone)]
pub enum SealedInput {
    /// A pull: partner values are taken as they are.
    Pass,
    /// `decrypt = true`: the mapping allows this partner the plain value.
    Decrypt(Arc<Keyring>),
    /// The default on a push: decrypted only to be masked (`mask = …`);
    /// any other use of the ciphertext rejects the row.
    MaskOnly(Arc<Keyring>),
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
        // The rules' messages quote the value; a personal one is quoted masked.
        let message = match (self.personal, value) {
            (Some(_), Some(v)) => {
                let raw = v.to_string();
                let shown = self.show(v);
                let mut m = message;
                for form in [raw.as_str(), raw.trim()] {
                    if !form.is_empty() && form != shown {
                        m = m.replace(form, &shown);
                    }
                }
                m
            }
            _ => message,
        };
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

    /// The text a hash or a cipher takes: NULL and empty stay NULL, a
    /// personal value is normalised.
    fn plain(&self, v: &Value) -> Option<String> {
        if v.is_null() {
            return None;
        }
        let t = v.to_string();
        let t = match self.personal {
            Some(k) => k.normalize(&t),
            None => t,
        };
        (!t.trim().is_empty()).then_some(t)
    }

    /// The value as stored: the ciphertext of a `protect` field (computed
    /// from [`Field::apply`]'s plain output), any other value unchanged.
    pub fn seal(&self, v: Value) -> Result<Value, Rejection> {
        match (&self.transform, &v) {
            (Transform::Protect { cipher, keys }, Value::Text(t)) => keys
                .encrypt(*cipher, t)
                .map(Value::Text)
                .map_err(|m| self.reject("protect", None, m)),
            _ => Ok(v),
        }
    }

    /// What the row checksum takes for this field's (plain) output: the
    /// value itself, except for a `protect` field, whose plain value is
    /// stored encrypted and so must not be recoverable from the checksum:
    /// an HMAC-SM3 of it under the current encryption key (a key rotation
    /// thus makes every row look changed once, which re-encrypts it under
    /// the new key, so the old key can be retired).
    pub fn checksum_input<'v>(&self, v: &'v Value) -> std::borrow::Cow<'v, Value> {
        use std::borrow::Cow;
        match (&self.transform, v) {
            (Transform::Protect { keys, .. }, Value::Text(t)) => {
                let key = keys.encrypt_key.as_deref().and_then(|id| keys.key(id));
                match key {
                    Some(k) => Cow::Owned(Value::Bytes(
                        crate::protect::hmac_sm3_labelled(k, "hlx-checksum", t).to_vec(),
                    )),
                    None => Cow::Borrowed(v),
                }
            }
            // Every other field: the value itself, not a copy (this runs for
            // every field of every row).
            _ => Cow::Borrowed(v),
        }
    }

    /// The plain value of a stored `protect` field (for tests and pushes).
    pub fn unseal(&self, v: &Value) -> Result<Value, String> {
        match (&self.transform, v) {
            (Transform::Protect { keys, .. }, Value::Text(t)) => keys.decrypt(t).map(Value::Text),
            _ => Ok(v.clone()),
        }
    }

    /// The least target width (characters) a `hash` or `protect` field needs:
    /// 64 for a hex digest; for a ciphertext, the envelope and the base64 of
    /// nonce, tag and `max_chars` (or 32) characters of 3-byte UTF-8 text.
    pub fn stored_chars_needed(&self) -> Option<usize> {
        match &self.transform {
            Transform::Hash { .. } => Some(64),
            Transform::Protect { cipher, keys } => {
                let bytes = 12 + 16 + 3 * self.max_chars.unwrap_or(32);
                let id = keys.encrypt_key.as_deref().map_or(16, str::len);
                Some(6 + cipher.as_str().len() + id + bytes.div_ceil(3) * 4)
            }
            _ => None,
        }
    }

    /// Computes the field from a source row.
    pub fn apply(&self, row: &[Value], zone: FixedOffset) -> Result<Value, Rejection> {
        self.apply_noting(row, zone, &mut false)
    }

    /// [`Field::apply`], setting `fell_back` when a code set fell back to an
    /// 'other' classification (the run counts those).
    pub fn apply_noting(&self, row: &[Value], zone: FixedOffset, fell_back: &mut bool) -> Result<Value, Rejection> {
        let raw = match &self.input {
            Input::Column(i) => &row[*i],
            Input::Const(v) => v,
        };
        let mut v = raw.clone();
        if let (SealedInput::Decrypt(keys) | SealedInput::MaskOnly(keys), Value::Text(t)) = (&self.sealed_input, &v) {
            if t.starts_with("hlx1:") {
                let masking = matches!(self.transform, Transform::Mask(_));
                if !masking && matches!(self.sealed_input, SealedInput::MaskOnly(_)) {
                    return Err(self.reject(
                        "protect",
                        None,
                        "the value is encrypted at rest; this partner gets it only masked (`mask = …`), \
                         or in the clear where the mapping says `decrypt = true`"
                            .into(),
                    ));
                }
                v = Value::Text(
                    keys.decrypt(t)
                        .map_err(|e| self.reject("protect", None, format!("cannot decrypt: {e}")))?,
                );
            }
        }
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
        // `max_chars` limits the value a hash or a cipher takes, not its digest.
        let plain_len = match (&self.transform, self.max_chars) {
            (Transform::Hash { .. } | Transform::Protect { .. }, Some(_)) => self.plain(&v).map(|t| t.chars().count()),
            _ => None,
        };
        let out = match &self.transform {
            Transform::None => v,
            Transform::Datetime(spec) => {
                datetime::parse(&v, spec, zone).map_err(|m| self.reject("datetime", Some(&v), m))?
            }
            Transform::Codeset {
                set,
                default,
                fallback_other,
            } => match v.as_text() {
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
                    None if *fallback_other && set.lookup_other(&t).is_some() => {
                        let (via, code) = set.lookup_other(&t).expect("checked");
                        tracing::info!(
                            field = %self.target,
                            value = %self.show(&v),
                            via = %via,
                            code = %code,
                            "unknown code fell back to its ancestor's 'other' classification"
                        );
                        *fell_back = true;
                        Value::Text(code.code)
                    }
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
            Transform::Division => match v.as_text() {
                None if v.is_null() => Value::Null,
                Some(t) if t.trim().is_empty() => Value::Null,
                _ => match division(&v.to_string()) {
                    Ok(code) => Value::Text(code),
                    Err(m) => return Err(self.reject("division", Some(&v), m)),
                },
            },
            Transform::Hash { kind, keys } => match self.plain(&v) {
                None => Value::Null,
                // Masked upstream (`138****1234`): no longer the person's
                // value, and hashing it would make every such row look alike.
                Some(t) if self.personal.is_some() && t.contains('*') => Value::Null,
                Some(t) => Value::Text(keys.hash(*kind, &t).map_err(|m| self.reject("hash", None, m))?),
            },
            Transform::Protect { .. } => match self.plain(&v) {
                None => Value::Null,
                Some(t) => Value::Text(t),
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
        let checked_len = match (&self.transform, &out) {
            (Transform::Hash { .. } | Transform::Protect { .. }, _) => plain_len,
            (_, Value::Text(s)) => Some(s.chars().count()),
            _ => None,
        };
        if let (Some(max), Some(n)) = (self.max_chars, checked_len) {
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

/// GB/T 2260 province codes (the first two digits of a division code).
const PROVINCES: &[&str] = &[
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42", "43", "44",
    "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71", "81", "82",
];

/// Checks a GB/T 2260 division code's shape and returns its six digits: a
/// 9-digit (township) or 12-digit (village) statistical code gives its
/// county part. The error says exactly what is wrong.
pub fn division(raw: &str) -> Result<String, String> {
    let s: String = raw.trim().chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if let Some(bad) = s.chars().find(|c| !c.is_ascii_digit()) {
        return Err(format!("division code `{raw}`: `{bad}` is not a digit"));
    }
    let code = match s.len() {
        6 => s.clone(),
        9 | 12 => s[..6].to_string(),
        n => {
            return Err(format!(
                "division code `{raw}`: {n} digits, expected 6 (or a 9- or 12-digit statistical code)"
            ))
        }
    };
    if !PROVINCES.contains(&&code[..2]) {
        return Err(format!(
            "division code `{raw}`: `{}` is not a province code",
            &code[..2]
        ));
    }
    if &code[2..4] == "00" && &code[4..6] != "00" {
        return Err(format!(
            "division code `{raw}`: the city part is `00` but the county part is `{}`",
            &code[4..6]
        ));
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(transform: Transform, personal: Option<MaskKind>, max_chars: Option<usize>) -> Field {
        Field {
            target: Ident::parse("f").unwrap(),
            input: Input::Column(0),
            from: Some("C".into()),
            trim: false,
            null_if: vec![],
            pattern: None,
            transform,
            required: false,
            max_chars,
            personal,
            sealed_input: SealedInput::Pass,
            insert_only: false,
        }
    }

    #[test]
    fn a_personal_value_is_never_quoted_in_the_clear() {
        let zone = FixedOffset::east_opt(8 * 3600).unwrap();
        let dt = Transform::Datetime(DatetimeSpec::Formats(vec!["%Y%m%d".into()]));
        let row = [Value::Text("19900231".into())];
        let clear = field(dt.clone(), None, None).apply(&row, zone).unwrap_err();
        assert!(clear.to_string().contains("19900231"), "{clear}");
        let hidden = field(dt, Some(MaskKind::Other), None).apply(&row, zone).unwrap_err();
        assert!(!hidden.to_string().contains("19900231"), "{hidden}");
        assert_eq!(hidden.value.as_deref(), Some(super::super::HIDDEN));
        let phone = field(Transform::Division, Some(MaskKind::Phone), None)
            .apply(&[Value::Text("13800138000".into())], zone)
            .unwrap_err();
        assert!(
            !phone.to_string().contains("13800138000") && phone.to_string().contains("138****8000"),
            "{phone}"
        );
    }

    #[test]
    fn max_chars_of_a_hash_field_limits_the_value_not_the_digest() {
        let zone = FixedOffset::east_opt(8 * 3600).unwrap();
        let h = Transform::Hash {
            kind: HashKind::Sha256,
            keys: Arc::new(Keyring::default()),
        };
        let f = field(h, None, Some(20));
        assert_eq!(
            f.apply(&[Value::Text("13800138000".into())], zone)
                .unwrap()
                .to_string()
                .len(),
            64
        );
        let e = f.apply(&[Value::Text("x".repeat(21))], zone).unwrap_err();
        assert_eq!(e.rule, "max_chars");
    }

    #[test]
    fn division_codes_are_checked_and_statistical_codes_shortened() {
        assert_eq!(division("460105").unwrap(), "460105");
        assert_eq!(division(" 460000 ").unwrap(), "460000");
        assert_eq!(division("460105003001").unwrap(), "460105", "12-digit village code");
        assert_eq!(division("460105003").unwrap(), "460105", "9-digit township code");
        assert_eq!(division("469001").unwrap(), "469001");
        for (bad, why) in [
            ("4601", "4 digits"),
            ("990105", "`99` is not a province code"),
            ("460005", "city part is `00`"),
            ("46010X", "`X` is not a digit"),
            ("秀英区", "is not a digit"),
        ] {
            let e = division(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
