//! Mappings: the declarative description of one exchange, from a TOML file
//! that a DBA writes, to the checked [`Mapping`] the engine runs.
//!
//! Loading goes raw → checked: serde reads the file into `Raw*` structs
//! (unknown keys refused, spans kept), then [`compile`] checks names,
//! identifiers, rules and references and reports every problem with its
//! file, line and column. The engine never sees an unchecked mapping.
//!
//! Mapping a row ([`Mapping::map_row`]) is pure: no I/O, table-driven tests.

pub mod appeal_code;
pub mod codeset;
pub mod datetime;
pub mod mask;
pub mod rules;
pub mod twoway;

use crate::config::{Defaults, Duration, OnReject, RejectLimit, Schedule};
use crate::diag::{Diagnostic, Diagnostics, SourceFile};
use crate::ident::{Ident, TableName};
use crate::protect::{Cipher, HashKind, Keyring};
use crate::value::Value;
use chrono::FixedOffset;
use codeset::CodeSets;
use datetime::DatetimeSpec;
use indexmap::IndexMap;
use rules::{Field, Input, MaskKind, Rejection, SealedInput, Transform};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;

/// Which way the rows move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// partner → province (single receive)
    Pull,
    /// province → partner (single push)
    Push,
    /// both ways
    Both,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Pull => "pull",
            Direction::Push => "push",
            Direction::Both => "both",
        }
    }
}

/// What happens to the target row when the source marks a row deleted.
#[derive(Debug, Clone)]
pub enum OnDelete {
    /// `DELETE` the target row.
    Delete,
    /// Set a column instead (soft delete on the target side too).
    Mark { column: Ident, value: Value },
}

/// The source side: the table read and the columns it needs.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub table: TableName,
    /// Every source column the mapping reads, in the order rows hold them.
    pub columns: Vec<Ident>,
    /// Indexes into `columns`.
    pub key: Vec<usize>,
    /// Index into `columns`; `None` means every run reads the whole table.
    pub watermark: Option<usize>,
    /// Soft-delete marker: the column (index) and the text value meaning deleted.
    pub deleted: Option<(usize, String)>,
    /// The flag pattern: hlx reads the rows whose flag is `new` and marks
    /// them `done` (or `failed`, with the reason) once the province has them.
    pub consume: Option<Consume>,
}

/// `[source] consume = { column, new, done, failed, message_column }`.
#[derive(Debug, Clone)]
pub struct Consume {
    /// Index into the source columns.
    pub column: usize,
    pub new: String,
    pub done: String,
    pub failed: String,
    /// Where the reason of a failed row goes (the partner's column).
    pub message_column: Option<Ident>,
}

#[derive(Debug, Clone)]
pub struct TargetSpec {
    pub table: TableName,
    /// Indexes into the mapping's fields.
    pub key: Vec<usize>,
    pub on_delete: OnDelete,
}

/// A test case carried by the mapping file.
#[derive(Debug, Clone)]
pub struct MappingTest {
    pub name: String,
    pub line: (usize, usize),
    /// Source column (as written) → value.
    pub input: Vec<(String, Value)>,
    pub expect: Vec<(String, String)>,
    /// Expected rejection: a field name or a word of the reason.
    pub reject: Option<String>,
    /// Expected to be a soft delete.
    pub deleted: bool,
}

/// A checked mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub name: String,
    pub partner: String,
    pub title: Option<String>,
    pub direction: Direction,
    pub enabled: bool,
    pub file: PathBuf,
    /// SHA-256 (hex) of the mapping file's text, and of the code sets it uses.
    pub digest: String,
    pub schedule: Schedule,
    /// `reconcile = "0 0 3 * * *"`: the daemon also runs `hlx reconcile
    /// --apply` on this schedule (for partners that hard-delete).
    pub reconcile: Option<Schedule>,
    pub batch_size: usize,
    pub lookback: Duration,
    pub on_reject: OnReject,
    pub reject_limit: RejectLimit,
    /// The source's zone: naive source times are wall-clock time there (the
    /// partner's for a pull, the province's for a push).
    pub zone: FixedOffset,
    /// The partner's zone (its naive columns, read or written).
    pub partner_zone: FixedOffset,
    pub source: SourceSpec,
    pub target: TargetSpec,
    pub fields: Vec<Field>,
    /// `[confidential]`, checked.
    pub confidential: Option<Confidential>,
    /// A half of a two-way mapping ([`twoway`]).
    pub pair: Option<twoway::Pair>,
    /// A two-way mapping before [`twoway::split`] (never in a loaded config).
    pub both: Option<twoway::BothSpec>,
    pub tests: Vec<MappingTest>,
}

/// Rows whose `column` is true (保密件) never carry `fields` to the target:
/// they are blanked (NULL), or the row is refused to the quarantine.
#[derive(Debug, Clone)]
pub struct Confidential {
    /// Index into the source columns.
    pub column: usize,
    /// Indexes into the fields.
    pub fields: Vec<usize>,
    pub refuse: bool,
}

/// Whether a flag column's value means yes: true, a non-zero number, or
/// `1`, `true`, `t`, `y`, `yes`, `是` (any case).
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Null => false,
        other => other.as_text().is_some_and(|t| {
            matches!(
                t.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "t" | "y" | "yes" | "是"
            )
        }),
    }
}

/// The outcome of mapping one source row.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// A row to upsert, in field order, with its checksum, and how many of
    /// its fields fell back to an 'other' classification.
    Row {
        values: Vec<Value>,
        checksum: [u8; 32],
        fallbacks: u32,
    },
    /// The source marks the row deleted; the target key values.
    Deleted { key: Vec<Value> },
}

/// A source key as stored in hlx's state: the text of a one-column key, a
/// JSON array of texts for a composite key.
pub fn key_text(key: &[&Value]) -> String {
    if let [k] = key {
        return k.to_string();
    }
    let parts: Vec<serde_json::Value> = key.iter().map(|v| serde_json::Value::String(v.to_string())).collect();
    serde_json::Value::Array(parts).to_string()
}

/// [`key_text`] of owned key values.
pub fn key_text_of(key: &[Value]) -> String {
    key_text(&key.iter().collect::<Vec<_>>())
}

/// What is shown in place of a value that may be personal and cannot be
/// masked by its kind.
pub const HIDDEN: &str = "******";

/// The checksum recorded for a deleted row.
pub fn deleted_checksum() -> [u8; 32] {
    Sha256::digest(b"hlx:deleted").into()
}

impl Mapping {
    /// Maps one source row (values in `source.columns` order).
    pub fn map_row(&self, row: &[Value]) -> Result<Mapped, Rejection> {
        if let Some((col, marker)) = &self.source.deleted {
            if row[*col].as_text().is_some_and(|t| t.trim() == marker) {
                let mut key = Vec::with_capacity(self.target.key.len());
                for &k in &self.target.key {
                    key.push(self.fields[k].apply(row, self.zone)?);
                }
                return Ok(Mapped::Deleted { key });
            }
        }
        let mut values = Vec::with_capacity(self.fields.len());
        let mut h = Sha256::new();
        let mut fallbacks = 0;
        let confidential = self.confidential.as_ref().filter(|c| truthy(&row[c.column]));
        for (i, f) in self.fields.iter().enumerate() {
            let mut fell_back = false;
            let mut v = f.apply_noting(row, self.zone, &mut fell_back)?;
            if let Some(c) = confidential.filter(|c| c.fields.contains(&i) && !v.is_null()) {
                if c.refuse {
                    return Err(Rejection {
                        field: f.target.to_string(),
                        column: f.from.clone(),
                        rule: "confidential",
                        value: None,
                        message: "a confidential work order (保密件) may not carry this field to the partner".into(),
                    });
                }
                v = Value::Null;
            }
            fallbacks += u32::from(fell_back);
            h.update(f.target.as_str().as_bytes());
            h.update([0x1f]);
            f.checksum_input(&v).write_canonical(&mut |b| h.update(b));
            h.update([0x1e]);
            // After the checksum: it covers the plain value of a protected field.
            values.push(f.seal(v)?);
        }
        Ok(Mapped::Row {
            values,
            checksum: h.finalize().into(),
            fallbacks,
        })
    }

    /// The row's key as stored in hlx's state: the text of a one-column key,
    /// a JSON array for a composite key.
    pub fn row_key(&self, row: &[Value]) -> String {
        let key: Vec<&Value> = self.source.key.iter().map(|&k| &row[k]).collect();
        key_text(&key)
    }

    /// The raw row as JSON (for the quarantine): source column → value,
    /// because `hlx rejects retry` maps it again. A column that a `protect`
    /// field reads is stored encrypted like the field ([`Mapping::raw_value`]
    /// decrypts it); the rest in the clear, and whatever shows them masks
    /// the personal ones ([`Mapping::show_raw`]).
    pub fn raw_json(&self, row: &[Value]) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (i, c) in self.source.columns.iter().enumerate() {
            let j = match (self.column_cipher(i), &row[i]) {
                (Some((cipher, keys)), v) if !v.is_null() => match keys.encrypt(cipher, &v.to_string()) {
                    Ok(sealed) => serde_json::Value::String(sealed),
                    Err(_) => serde_json::Value::String(HIDDEN.into()),
                },
                (_, v) => v.to_json(),
            };
            m.insert(c.to_string(), j);
        }
        serde_json::Value::Object(m)
    }

    /// The raw row as [`Mapping::raw_json`] would hold it, but with a
    /// protected column as its keyed checksum input instead of a fresh
    /// ciphertext: stable across reads, and no plain personal value.
    pub fn raw_fingerprint(&self, row: &[Value]) -> String {
        let mut m = serde_json::Map::new();
        for (i, c) in self.source.columns.iter().enumerate() {
            let protect = self
                .fields
                .iter()
                .find(|f| matches!((&f.input, &f.transform), (Input::Column(x), Transform::Protect { .. }) if *x == i));
            let j = match protect {
                Some(f) if !row[i].is_null() => f.checksum_input(&Value::Text(row[i].to_string())).to_json(),
                _ => row[i].to_json(),
            };
            m.insert(c.to_string(), j);
        }
        serde_json::Value::Object(m).to_string()
    }

    /// A stored raw value of source column `col` as the row held it: a
    /// protected column's ciphertext decrypted.
    pub fn raw_value(&self, col: usize, j: &serde_json::Value) -> Result<serde_json::Value, String> {
        match (self.column_cipher(col), j.as_str()) {
            (Some((_, keys)), Some(t)) if t.starts_with("hlx1:") => keys.decrypt(t).map(serde_json::Value::String),
            _ => Ok(j.clone()),
        }
    }

    /// The cipher and keys of a `protect` field that reads source column `col`.
    fn column_cipher(&self, col: usize) -> Option<(Cipher, &Arc<Keyring>)> {
        self.fields.iter().find_map(|f| match (&f.input, &f.transform) {
            (Input::Column(i), Transform::Protect { cipher, keys }) if *i == col => Some((*cipher, keys)),
            _ => None,
        })
    }

    /// The mask of source column `col` when a personal field reads it
    /// (`mask = …`, or `personal = …`): the same rule that masks values in
    /// rejection messages.
    pub fn column_mask(&self, col: usize) -> Option<MaskKind> {
        self.fields.iter().find_map(|f| match (&f.input, f.personal) {
            (Input::Column(i), Some(k)) if *i == col => Some(k),
            _ => None,
        })
    }

    /// A stored raw row ([`Mapping::raw_json`]) as people may see it:
    /// (column, value) in stored order, personal columns masked (as text).
    /// A column the mapping no longer reads is hidden: whether it is
    /// personal cannot be told any more.
    pub fn show_raw(&self, raw: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
        let hidden = || serde_json::Value::String(HIDDEN.into());
        let Some(obj) = raw.as_object() else {
            return vec![("(raw)".into(), hidden())];
        };
        obj.iter()
            .map(|(name, j)| {
                let col = self.source.columns.iter().position(|c| c.as_str() == name).or_else(|| {
                    self.source
                        .columns
                        .iter()
                        .position(|c| c.as_str().eq_ignore_ascii_case(name))
                });
                let plain = match col.map(|i| self.raw_value(i, j)) {
                    Some(Ok(p)) => p,
                    Some(Err(_)) => return (name.clone(), hidden()),
                    None => j.clone(),
                };
                let j = &plain;
                let v = Value::from_json(j);
                let shown = match (col.map(|i| self.column_mask(i)), v.as_text()) {
                    _ if j.is_null() => serde_json::Value::Null,
                    (Some(None), _) => j.clone(),
                    (Some(Some(k)), Some(t)) => serde_json::Value::String(k.apply(&t)),
                    // Not read any more, or personal but not text.
                    (None, _) | (Some(Some(_)), None) => hidden(),
                };
                (name.clone(), shown)
            })
            .collect()
    }

    /// A stored row key ([`key_text`]) as people may see it: masked when a
    /// key column is personal.
    pub fn show_key(&self, key: &str) -> String {
        let masks: Vec<Option<MaskKind>> = self.source.key.iter().map(|&k| self.column_mask(k)).collect();
        match masks.as_slice() {
            _ if masks.iter().all(Option::is_none) => key.to_string(),
            [Some(k)] => k.apply(key),
            _ => match serde_json::from_str::<Vec<String>>(key) {
                Ok(parts) if parts.len() == masks.len() => {
                    let shown: Vec<serde_json::Value> = parts
                        .iter()
                        .zip(&masks)
                        .map(|(p, m)| serde_json::Value::String(m.map(|k| k.apply(p)).unwrap_or_else(|| p.clone())))
                        .collect();
                    serde_json::Value::Array(shown).to_string()
                }
                _ => HIDDEN.to_string(),
            },
        }
    }

    /// What `hash` field `field` stores for `value` (normalised as the
    /// field normalises it), for `hlx hash`.
    pub fn hash_of(&self, field: &str, value: &str) -> Result<String, String> {
        let f = self
            .fields
            .iter()
            .find(|f| f.target.as_str() == field)
            .ok_or_else(|| format!("mapping `{}` has no field `{field}`", self.name))?;
        match &f.transform {
            Transform::Hash { .. } => {
                let mut row = vec![Value::Null; self.source.columns.len()];
                if let Input::Column(i) = f.input {
                    row[i] = Value::Text(value.to_string());
                }
                match f.apply(&row, self.zone) {
                    Ok(Value::Text(h)) => Ok(h),
                    Ok(_) => Err("an empty value has no hash (it is stored as NULL)".into()),
                    Err(r) => Err(r.to_string()),
                }
            }
            _ => Err(format!(
                "field `{field}` of mapping `{}` is not a `hash` field",
                self.name
            )),
        }
    }

    /// Runs the mapping's own `[[test]]` cases; returns one message per failure.
    pub fn run_tests(&self) -> Vec<String> {
        let mut failures = Vec::new();
        for t in &self.tests {
            let mut row = vec![Value::Null; self.source.columns.len()];
            for (col, v) in &t.input {
                match self
                    .source
                    .columns
                    .iter()
                    .position(|c| c.as_str().eq_ignore_ascii_case(col))
                {
                    Some(i) => row[i] = v.clone(),
                    None => failures.push(format!(
                        "test `{}`: input column `{col}` is not read by the mapping",
                        t.name
                    )),
                }
            }
            let at = format!("{}:{}:{}", self.file.display(), t.line.0, t.line.1);
            match (self.map_row(&row), &t.reject) {
                (Ok(Mapped::Row { values, .. }), None) => {
                    if t.deleted {
                        failures.push(format!("{at}: test `{}`: expected a deleted row, got a row", t.name));
                    }
                    for (field, want) in &t.expect {
                        match self.fields.iter().position(|f| f.target.as_str() == field) {
                            Some(i) => {
                                // A protected field is compared in the clear.
                                let got = match self.fields[i].unseal(&values[i]) {
                                    Ok(v) => v.to_string(),
                                    Err(e) => format!("(cannot decrypt: {e})"),
                                };
                                if &got != want {
                                    failures.push(format!(
                                        "{at}: test `{}`: field `{field}`: expected `{want}`, got `{got}`",
                                        t.name
                                    ));
                                }
                            }
                            None => failures.push(format!(
                                "{at}: test `{}`: `{field}` is not a field of the mapping",
                                t.name
                            )),
                        }
                    }
                }
                (Ok(Mapped::Deleted { .. }), None) => {
                    if !t.deleted {
                        failures.push(format!("{at}: test `{}`: the row was read as deleted", t.name));
                    }
                }
                (Ok(_), Some(want)) => failures.push(format!(
                    "{at}: test `{}`: expected a rejection ({want}), but the row was accepted",
                    t.name
                )),
                (Err(r), None) => failures.push(format!("{at}: test `{}`: rejected: {r}", t.name)),
                (Err(r), Some(want)) => {
                    let text = r.to_string();
                    if r.field != *want && !text.contains(want.as_str()) {
                        failures.push(format!(
                            "{at}: test `{}`: expected a rejection of `{want}`, got: {text}",
                            t.name
                        ));
                    }
                }
            }
        }
        failures
    }
}

// ---------------------------------------------------------------------------
// Raw file shapes

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    name: Spanned<String>,
    partner: Spanned<String>,
    #[serde(default)]
    direction: Option<Spanned<String>>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    schedule: Option<Spanned<String>>,
    #[serde(default)]
    batch_size: Option<Spanned<i64>>,
    #[serde(default)]
    reconcile: Option<Spanned<String>>,
    #[serde(default)]
    lookback: Option<Spanned<String>>,
    #[serde(default)]
    on_reject: Option<Spanned<String>>,
    #[serde(default)]
    reject_limit: Option<crate::config::RawRejectLimit>,
    source: Spanned<RawSource>,
    target: Spanned<RawTarget>,
    fields: Spanned<IndexMap<Spanned<String>, Spanned<RawField>>>,
    #[serde(default)]
    confidential: Option<Spanned<RawConfidential>>,
    #[serde(default)]
    conflict: Option<Spanned<RawConflict>>,
    #[serde(default, rename = "test")]
    tests: Vec<Spanned<RawTest>>,
}

/// `[confidential]`: rows flagged confidential (保密件) never carry these
/// fields to the partner.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfidential {
    column: Spanned<String>,
    fields: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    action: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    table: Spanned<String>,
    key: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    watermark: Option<Spanned<String>>,
    #[serde(default)]
    deleted: Option<Spanned<RawDeleted>>,
    #[serde(default)]
    consume: Option<Spanned<RawConsume>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsume {
    column: Spanned<String>,
    new: Spanned<toml::Value>,
    done: Spanned<toml::Value>,
    failed: Spanned<toml::Value>,
    #[serde(default)]
    message_column: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeleted {
    column: Spanned<String>,
    equals: Spanned<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    table: Spanned<String>,
    key: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    on_delete: Option<Spanned<toml::Value>>,
    /// Two-way: the province table's change column (the push half's watermark).
    #[serde(default)]
    watermark: Option<Spanned<String>>,
}

/// `[conflict]` of a two-way mapping.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConflict {
    policy: Spanned<String>,
    #[serde(default)]
    skew: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    name: String,
    input: toml::Table,
    #[serde(default)]
    expect: Option<toml::Table>,
    #[serde(default)]
    reject: Option<String>,
    #[serde(default)]
    deleted: Option<bool>,
}

/// `field = "COL"` or `field = { … }`.
enum RawField {
    From(String),
    Rule(Box<RawRule>),
}

impl<'de> Deserialize<'de> for RawField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawField;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a source column name or a table of rules, e.g. { from = \"COL\", required = true }")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawField, E> {
                Ok(RawField::From(s.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<RawField, A::Error> {
                RawRule::deserialize(de::value::MapAccessDeserializer::new(m)).map(|r| RawField::Rule(Box::new(r)))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    from: Option<Spanned<String>>,
    #[serde(default)]
    value: Option<Spanned<toml::Value>>,
    #[serde(default)]
    trim: Option<bool>,
    #[serde(default)]
    null_if: Option<Vec<String>>,
    #[serde(default)]
    pattern: Option<Spanned<String>>,
    #[serde(default)]
    datetime: Option<Spanned<toml::Value>>,
    #[serde(default)]
    codeset: Option<Spanned<String>>,
    #[serde(default)]
    default: Option<Spanned<toml::Value>>,
    #[serde(default)]
    fallback: Option<Spanned<String>>,
    #[serde(default)]
    reverse: Option<Spanned<bool>>,
    #[serde(default)]
    owner: Option<Spanned<String>>,
    #[serde(default)]
    decrypt: Option<Spanned<bool>>,
    #[serde(default)]
    appeal_code: Option<bool>,
    #[serde(default)]
    division: Option<bool>,
    #[serde(default)]
    mask: Option<Spanned<String>>,
    #[serde(default)]
    personal: Option<Spanned<String>>,
    #[serde(default)]
    required: Option<bool>,
    #[serde(default)]
    max_chars: Option<Spanned<i64>>,
    #[serde(default)]
    protect: Option<Spanned<String>>,
    #[serde(default)]
    hash: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------
// Loading and checking

/// What a mapping is checked against.
pub struct Context<'a> {
    pub defaults: &'a Defaults,
    /// Partner name → (zone, schedule override, batch size override)
    pub partner: &'a dyn Fn(&str) -> Option<crate::config::PartnerDefaults>,
    pub codesets: &'a CodeSets,
    /// `[protection]`: the keys `hash` and `protect` fields use.
    pub keys: &'a Arc<Keyring>,
}

/// Loads and checks one mapping file; problems go to `diags`.
/// Loads and checks one mapping file; problems go to `diags`. A two-way
/// file gives its two halves ([`twoway::split`]).
pub fn load(path: &Path, ctx: &Context, diags: &mut Diagnostics) -> Vec<Mapping> {
    let Some(m) = load_one(path, ctx, diags) else {
        return vec![];
    };
    match m.both.clone() {
        None => vec![m],
        Some(spec) => {
            let path = m.file.clone();
            match twoway::split(m, spec) {
                Ok(halves) => halves,
                Err(e) => {
                    diags.push(Diagnostic::file(&path, e));
                    vec![]
                }
            }
        }
    }
}

fn load_one(path: &Path, ctx: &Context, diags: &mut Diagnostics) -> Option<Mapping> {
    let file = match SourceFile::read(path) {
        Ok(f) => f,
        Err(d) => {
            diags.push(d);
            return None;
        }
    };
    let raw: RawMapping = match toml::from_str(&file.text) {
        Ok(r) => r,
        Err(e) => {
            diags.push(file.toml_error(&e));
            return None;
        }
    };
    let before = diags.errors();
    let m = compile(&file, raw, ctx, diags);
    if diags.errors() > before {
        None
    } else {
        m
    }
}

fn ident(file: &SourceFile, s: &Spanned<String>, what: &str, diags: &mut Diagnostics) -> Option<Ident> {
    match Ident::parse(s.get_ref()) {
        Ok(i) => Some(i),
        Err(e) => {
            diags.push(file.at(s.span(), format!("{what}: {e}")));
            None
        }
    }
}

fn table(file: &SourceFile, s: &Spanned<String>, what: &str, diags: &mut Diagnostics) -> Option<TableName> {
    match TableName::parse(s.get_ref()) {
        Ok(t) => Some(t),
        Err(e) => {
            diags.push(file.at(s.span(), format!("{what}: {e}")));
            None
        }
    }
}

fn toml_to_value(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::Text(s.clone()),
        toml::Value::Integer(i) => Value::Int(*i),
        toml::Value::Float(f) => Value::Float(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::Text(d.to_string()),
        other => Value::Text(other.to_string()),
    }
}

fn toml_to_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

static NAME_RE: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$").expect("static regex"));

fn compile(file: &SourceFile, raw: RawMapping, ctx: &Context, diags: &mut Diagnostics) -> Option<Mapping> {
    let name = raw.name.get_ref().clone();
    if !NAME_RE.is_match(&name) {
        diags.push(file.at(raw.name.span(), format!("mapping name `{name}`: expected lower-case letters, digits, `_`, in dot-separated parts (e.g. `haikou.work_order`)")));
    }
    let partner_name = raw.partner.get_ref().clone();
    let partner = (ctx.partner)(&partner_name);
    if partner.is_none() {
        diags.push(file.at(
            raw.partner.span(),
            format!("partner `{partner_name}` is not declared in exchange.toml ([[partner]] name = …)"),
        ));
    }
    let direction = match raw.direction.as_ref().map(|d| d.get_ref().as_str()) {
        None | Some("pull") => Direction::Pull,
        Some("push") => Direction::Push,
        Some("both") => Direction::Both,
        Some(other) => {
            let d = raw.direction.as_ref().expect("some");
            diags.push(file.at(
                d.span(),
                format!("direction `{other}`: expected \"pull\", \"push\" or \"both\""),
            ));
            Direction::Pull
        }
    };
    let pd = partner.unwrap_or_default();
    let d = ctx.defaults;
    let schedule = match &raw.schedule {
        Some(s) => match Schedule::parse(s.get_ref()) {
            Ok(v) => v,
            Err(e) => {
                diags.push(file.at(s.span(), e));
                d.schedule.clone()
            }
        },
        None => pd.schedule.unwrap_or_else(|| d.schedule.clone()),
    };
    let reconcile = match &raw.reconcile {
        Some(s) => match Schedule::parse(s.get_ref()) {
            Ok(v) => Some(v),
            Err(e) => {
                diags.push(file.at(s.span(), format!("reconcile: {e}")));
                None
            }
        },
        None => None,
    };
    let batch_size = match &raw.batch_size {
        Some(b) if (1..=1_000_000).contains(b.get_ref()) => *b.get_ref() as usize,
        Some(b) => {
            diags.push(file.at(b.span(), format!("batch_size {}: expected 1 to 1000000", b.get_ref())));
            d.batch_size
        }
        None => pd.batch_size.unwrap_or(d.batch_size),
    };
    let lookback = match &raw.lookback {
        Some(s) => match Duration::parse(s.get_ref()) {
            Ok(v) => v,
            Err(e) => {
                diags.push(file.at(s.span(), e));
                d.lookback
            }
        },
        None => pd.lookback.unwrap_or(d.lookback),
    };
    let on_reject = match &raw.on_reject {
        Some(s) => match OnReject::parse(s.get_ref()) {
            Ok(v) => v,
            Err(e) => {
                diags.push(file.at(s.span(), e));
                d.on_reject
            }
        },
        None => d.on_reject,
    };
    let reject_limit = match &raw.reject_limit {
        Some(r) => r.check().unwrap_or_else(|e| {
            diags.push(Diagnostic::file(&file.path, e));
            d.reject_limit
        }),
        None => d.reject_limit,
    };
    let partner_zone = pd.zone.unwrap_or(d.timezone);
    // Naive source times are read in the source's zone: the partner's for a
    // pull, the province's for a push.
    let zone = if direction == Direction::Push {
        d.timezone
    } else {
        partner_zone
    };

    // Source columns: key, watermark, deleted marker, then every `from`, in first-use order.
    let mut columns: Vec<Ident> = Vec::new();
    let mut col_index = |id: Ident| -> usize {
        match columns
            .iter()
            .position(|c| c.as_str().eq_ignore_ascii_case(id.as_str()))
        {
            Some(i) => i,
            None => {
                columns.push(id);
                columns.len() - 1
            }
        }
    };
    let src = raw.source.get_ref();
    let src_table = table(file, &src.table, "[source] table", diags);
    if src.key.get_ref().is_empty() {
        diags.push(file.at(src.key.span(), "[source] key: at least one column is needed"));
    }
    let mut src_key = Vec::new();
    for k in src.key.get_ref() {
        if let Some(id) = ident(file, k, "[source] key", diags) {
            src_key.push(col_index(id));
        }
    }
    let watermark = src
        .watermark
        .as_ref()
        .and_then(|w| ident(file, w, "[source] watermark", diags))
        .map(&mut col_index);
    let deleted = match &src.deleted {
        Some(del) => {
            let del = del.get_ref();
            ident(file, &del.column, "[source] deleted.column", diags)
                .map(|id| (col_index(id), toml_to_text(del.equals.get_ref())))
        }
        None => None,
    };
    let consume = match &src.consume {
        None => None,
        Some(c) => {
            let span = c.span();
            let c = c.get_ref();
            let (new, done, failed) = (
                toml_to_text(c.new.get_ref()),
                toml_to_text(c.done.get_ref()),
                toml_to_text(c.failed.get_ref()),
            );
            if new == done || new == failed || done == failed {
                diags.push(file.at(
                    span.clone(),
                    "[source] consume: new, done and failed must be three different values",
                ));
            }
            if direction != Direction::Pull {
                diags.push(file.at(
                    span.clone(),
                    "[source] consume is for pull mappings (hlx marks the partner's rows it took)",
                ));
            }
            if let Some(w) = &src.watermark {
                diags.push(file.at(
                    w.span(),
                    "[source] consume selects the rows by their flag: leave out `watermark` (each run reads the rows still flagged new, by key)",
                ));
            }
            let message_column = c
                .message_column
                .as_ref()
                .and_then(|m| ident(file, m, "[source] consume.message_column", diags));
            ident(file, &c.column, "[source] consume.column", diags).map(|id| Consume {
                column: col_index(id),
                new,
                done,
                failed,
                message_column,
            })
        }
    };

    let mut fields: Vec<Field> = Vec::new();
    let mut owners: Vec<twoway::Owner> = Vec::new();
    for (target, spec) in raw.fields.get_ref() {
        let Some(target_id) = ident(file, target, "field name", diags) else {
            continue;
        };
        if fields
            .iter()
            .any(|f| f.target.as_str().eq_ignore_ascii_case(target_id.as_str()))
        {
            diags.push(file.at(target.span(), format!("field `{target_id}` is defined twice")));
            continue;
        }
        let field = match spec.get_ref() {
            RawField::From(col) => {
                let Ok(id) = Ident::parse(col) else {
                    diags.push(file.at(
                        spec.span(),
                        format!("field `{target_id}`: {}", Ident::parse(col).unwrap_err()),
                    ));
                    continue;
                };
                Field {
                    target: target_id,
                    from: Some(id.to_string()),
                    input: Input::Column(col_index(id)),
                    trim: false,
                    null_if: vec![],
                    pattern: None,
                    transform: Transform::None,
                    required: false,
                    max_chars: None,
                    personal: None,
                    sealed_input: sealed_input(direction, false, ctx),
                    insert_only: false,
                }
            }
            RawField::Rule(r) => match compile_rule(
                file,
                &target_id,
                spec.span(),
                r,
                (&partner_name, direction),
                ctx,
                &mut col_index,
                diags,
            ) {
                Some(f) => f,
                None => continue,
            },
        };
        if direction == Direction::Both {
            let owner = match spec.get_ref() {
                RawField::Rule(r) => r.owner.as_ref(),
                RawField::From(_) => None,
            };
            match owner.map(|o| (o, twoway::Owner::parse(o.get_ref()))) {
                Some((_, Some(o))) => owners.push(o),
                Some((o, None)) => diags.push(file.at(
                    o.span(),
                    format!("owner `{}`: expected \"province\", \"partner\" or \"both\"", o.get_ref()),
                )),
                None => diags.push(file.at(
                    spec.span(),
                    format!(
                        "field `{}`: in a two-way mapping every field names its owner (owner = \"province\", \"partner\" or \"both\")",
                        field.target
                    ),
                )),
            }
        } else if let RawField::Rule(r) = spec.get_ref() {
            if let Some(o) = &r.owner {
                diags.push(file.at(o.span(), "`owner` is for two-way mappings (direction = \"both\")"));
            }
        }
        fields.push(field);
    }
    if fields.is_empty() {
        diags.push(file.at(raw.fields.span(), "[fields] is empty: map at least the target key"));
    }

    // A two-way file names the province's column and fields: the push half
    // applies them (twoway::split).
    let mut both_confidential = None;
    let confidential = match &raw.confidential {
        None => None,
        Some(c) => {
            let span = c.span();
            let c = c.get_ref();
            if direction == Direction::Pull {
                diags.push(file.at(
                    span,
                    "[confidential] keeps fields back from a partner: it is for push and two-way mappings",
                ));
            }
            let column_id = ident(file, &c.column, "[confidential] column", diags);
            let column = match direction {
                Direction::Both => None,
                _ => column_id.clone().map(&mut col_index),
            };
            let mut idx = Vec::new();
            for f in c.fields.get_ref() {
                match fields
                    .iter()
                    .position(|x| x.target.as_str().eq_ignore_ascii_case(f.get_ref()))
                {
                    Some(i) => idx.push(i),
                    None => diags.push(file.at(
                        f.span(),
                        format!("[confidential] field `{}` is not one of the [fields]", f.get_ref()),
                    )),
                }
            }
            if idx.is_empty() {
                diags.push(file.at(
                    c.fields.span(),
                    "[confidential] fields: name the target fields to keep back",
                ));
            }
            let refuse = match c.action.as_ref().map(|a| a.get_ref().as_str()) {
                None | Some("blank") => false,
                Some("refuse") => true,
                Some(other) => {
                    diags.push(file.at(
                        c.action.as_ref().expect("some").span(),
                        format!("[confidential] action `{other}`: expected \"blank\" (send NULL) or \"refuse\" (quarantine the row)"),
                    ));
                    false
                }
            };
            if direction == Direction::Both {
                both_confidential = column_id.map(|c| (c, idx.clone(), refuse));
            }
            column.map(|column| Confidential {
                column,
                fields: idx,
                refuse,
            })
        }
    };

    let tgt = raw.target.get_ref();
    let tgt_table = table(file, &tgt.table, "[target] table", diags);
    let mut tgt_key = Vec::new();
    if tgt.key.get_ref().is_empty() {
        diags.push(file.at(tgt.key.span(), "[target] key: at least one column is needed"));
    }
    for k in tgt.key.get_ref() {
        match fields
            .iter()
            .position(|f| f.target.as_str().eq_ignore_ascii_case(k.get_ref()))
        {
            Some(i) if matches!(fields[i].transform, Transform::Protect { .. }) => diags.push(file.at(
                k.span(),
                format!(
                    "[target] key `{}` is a `protect` field: its ciphertext differs on every write, so the key would never match; \
                     key on a `hash` field instead",
                    k.get_ref()
                ),
            )),
            Some(i) => tgt_key.push(i),
            None => diags.push(file.at(
                k.span(),
                format!("[target] key `{}` is not one of the [fields]", k.get_ref()),
            )),
        }
    }
    let on_delete = match &tgt.on_delete {
        None => OnDelete::Delete,
        Some(v) => match v.get_ref() {
            toml::Value::String(s) if s == "delete" => OnDelete::Delete,
            toml::Value::Table(t) => {
                let col = t.get("column").and_then(|c| c.as_str()).map(Ident::parse);
                let val = t.get("value");
                match (col, val, t.len()) {
                    (Some(Ok(column)), Some(value), 2) => OnDelete::Mark {
                        column,
                        value: toml_to_value(value),
                    },
                    _ => {
                        diags.push(file.at(
                            v.span(),
                            "[target] on_delete: expected \"delete\" or { column = \"NAME\", value = … }",
                        ));
                        OnDelete::Delete
                    }
                }
            }
            _ => {
                diags.push(file.at(
                    v.span(),
                    "[target] on_delete: expected \"delete\" or { column = \"NAME\", value = … }",
                ));
                OnDelete::Delete
            }
        },
    };

    let mut tests = Vec::new();
    for t in &raw.tests {
        let line = file.locate(t.span().start);
        let rt = t.get_ref();
        if rt.expect.is_some() == rt.reject.is_some() && !rt.deleted.unwrap_or(false) {
            diags.push(file.at(
                t.span(),
                format!(
                    "test `{}`: give either `expect = {{ … }}` or `reject = \"field\"`",
                    rt.name
                ),
            ));
            continue;
        }
        tests.push(MappingTest {
            name: rt.name.clone(),
            line,
            input: rt.input.iter().map(|(k, v)| (k.clone(), toml_to_value(v))).collect(),
            expect: rt
                .expect
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), toml_to_text(v)))
                .collect(),
            reject: rt.reject.clone(),
            deleted: rt.deleted.unwrap_or(false),
        });
    }

    let both = if direction == Direction::Both {
        let tgt = raw.target.get_ref();
        let wm = match &tgt.watermark {
            Some(w) => ident(file, w, "[target] watermark", diags),
            None => {
                diags.push(file.at(
                    raw.target.span(),
                    "[target] watermark: a two-way mapping names the province table's change column (its push half's watermark)",
                ));
                None
            }
        };
        let (policy, skew) = match &raw.conflict {
            None => {
                diags.push(file.at(
                    raw.fields.span(),
                    "a two-way mapping says how conflicts on shared fields are settled: [conflict] policy = \"newer_wins\" or \"province_wins\"",
                ));
                (twoway::Policy::ProvinceWins, chrono::Duration::zero())
            }
            Some(c) => {
                let c = c.get_ref();
                let policy = match c.policy.get_ref().as_str() {
                    "newer_wins" => twoway::Policy::NewerWins,
                    "province_wins" => twoway::Policy::ProvinceWins,
                    other => {
                        diags.push(file.at(
                            c.policy.span(),
                            format!("[conflict] policy `{other}`: expected \"newer_wins\" or \"province_wins\""),
                        ));
                        twoway::Policy::ProvinceWins
                    }
                };
                let skew = match &c.skew {
                    Some(sk) => match Duration::parse(sk.get_ref()) {
                        Ok(d) => d.chrono(),
                        Err(e) => {
                            diags.push(file.at(sk.span(), format!("[conflict] skew: {e}")));
                            chrono::Duration::zero()
                        }
                    },
                    None => chrono::Duration::zero(),
                };
                (policy, skew)
            }
        };
        wm.map(|province_watermark| twoway::BothSpec {
            owners,
            confidential: both_confidential,
            province_watermark,
            policy,
            skew,
            province_zone: d.timezone,
        })
    } else {
        if let Some(w) = &raw.target.get_ref().watermark {
            diags.push(file.at(
                w.span(),
                "[target] watermark is for two-way mappings (direction = \"both\")",
            ));
        }
        if let Some(c) = &raw.conflict {
            diags.push(file.at(c.span(), "[conflict] is for two-way mappings (direction = \"both\")"));
        }
        None
    };

    let mut h = Sha256::new();
    h.update(file.text.as_bytes());
    for (name, text) in &ctx.codesets.sources {
        h.update(name.as_bytes());
        h.update(text.as_bytes());
    }
    Some(Mapping {
        name,
        partner: partner_name,
        title: raw.title,
        direction,
        enabled: raw.enabled.unwrap_or(true),
        file: file.path.clone(),
        digest: hex::encode(h.finalize()),
        schedule,
        reconcile,
        batch_size,
        lookback,
        on_reject,
        reject_limit,
        zone,
        partner_zone,
        source: SourceSpec {
            table: src_table?,
            columns,
            key: src_key,
            watermark,
            deleted,
            consume,
        },
        target: TargetSpec {
            table: tgt_table?,
            key: tgt_key,
            on_delete,
        },
        confidential,
        pair: None,
        both,
        fields,
        tests,
    })
}

#[allow(clippy::too_many_arguments)]
fn compile_rule(
    file: &SourceFile,
    target: &Ident,
    span: std::ops::Range<usize>,
    r: &RawRule,
    (partner, direction): (&str, Direction),
    ctx: &Context,
    col_index: &mut dyn FnMut(Ident) -> usize,
    diags: &mut Diagnostics,
) -> Option<Field> {
    let before = diags.errors();
    let err = |diags: &mut Diagnostics, sp: std::ops::Range<usize>, m: String| {
        diags.push(file.at(sp, format!("field `{target}`: {m}")))
    };
    let (input, from) = match (&r.from, &r.value) {
        (Some(c), None) => match Ident::parse(c.get_ref()) {
            Ok(id) => (Input::Column(col_index(id.clone())), Some(id.to_string())),
            Err(e) => {
                err(diags, c.span(), e);
                return None;
            }
        },
        (None, Some(v)) => (Input::Const(toml_to_value(v.get_ref())), None),
        (Some(_), Some(v)) => {
            err(diags, v.span(), "give `from` or `value`, not both".into());
            return None;
        }
        (None, None) => {
            err(diags, span, "needs `from = \"COLUMN\"` or `value = …`".into());
            return None;
        }
    };
    let mut transforms: Vec<(Transform, std::ops::Range<usize>)> = Vec::new();
    if let Some(dt) = &r.datetime {
        let spec = match dt.get_ref() {
            toml::Value::Boolean(true) => Some(DatetimeSpec::Auto),
            toml::Value::String(s) => Some(DatetimeSpec::Formats(vec![s.clone()])),
            toml::Value::Array(a) if !a.is_empty() && a.iter().all(|x| x.is_str()) => Some(DatetimeSpec::Formats(
                a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
            )),
            _ => None,
        };
        match spec {
            Some(s) => {
                if let DatetimeSpec::Formats(fs) = &s {
                    for f in fs {
                        if let Some(bad) = check_chrono_format(f) {
                            err(diags, dt.span(), bad);
                        }
                    }
                }
                transforms.push((Transform::Datetime(s), dt.span()));
            }
            None => err(
                diags,
                dt.span(),
                "datetime: expected a format such as \"%Y%m%d%H%M%S\", a list of formats, or true".into(),
            ),
        }
    }
    let fallback_other = match &r.fallback {
        Some(f) if f.get_ref() == "other" && r.codeset.is_some() => true,
        Some(f) if f.get_ref() == "other" => {
            err(diags, f.span(), "`fallback` goes with `codeset`".into());
            false
        }
        Some(f) => {
            err(
                diags,
                f.span(),
                format!(
                    "fallback `{}`: expected \"other\" (the nearest ancestor's 99 classification)",
                    f.get_ref()
                ),
            );
            false
        }
        None => false,
    };
    if let (Some(rev), None) = (&r.reverse, &r.codeset) {
        err(diags, rev.span(), "`reverse` goes with `codeset`".into());
    }
    if let Some(cs) = &r.codeset {
        let default = r.default.as_ref().map(|d| toml_to_text(d.get_ref()));
        let resolved = ctx.codesets.resolve(cs.get_ref(), partner).and_then(|set| {
            if r.reverse.as_ref().is_some_and(|x| *x.get_ref()) {
                set.reversed().map(Arc::new)
            } else {
                Ok(set)
            }
        });
        match resolved {
            Ok(set) => {
                if fallback_other {
                    let bad = set.invalid_appeal_codes();
                    if !bad.is_empty() {
                        err(
                            diags,
                            cs.span(),
                            format!(
                                "fallback = \"other\" needs classification codes in code set `{}`, but {} {} not: {}",
                                set.name,
                                bad.len(),
                                if bad.len() == 1 { "is" } else { "are" },
                                bad.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
                            ),
                        );
                    }
                }
                transforms.push((
                    Transform::Codeset {
                        set,
                        default,
                        fallback_other,
                    },
                    cs.span(),
                ))
            }
            Err(e) => err(diags, cs.span(), e),
        }
    } else if let Some(d) = &r.default {
        err(diags, d.span(), "`default` goes with `codeset`".into());
    }
    if r.division == Some(true) {
        transforms.push((Transform::Division, span.clone()));
    }
    if r.appeal_code == Some(true) {
        transforms.push((Transform::AppealCode, span.clone()));
    }
    if let Some(m) = &r.mask {
        match MaskKind::parse(m.get_ref()) {
            Some(MaskKind::Other) | None => err(
                diags,
                m.span(),
                format!("mask `{}`: expected \"phone\", \"id\" or \"name\"", m.get_ref()),
            ),
            Some(k) => transforms.push((Transform::Mask(k), m.span())),
        }
    }
    if let Some(h) = &r.hash {
        match HashKind::parse(h.get_ref()) {
            Some(kind) => match ctx.keys.can_hash(kind) {
                Ok(()) => transforms.push((
                    Transform::Hash {
                        kind,
                        keys: ctx.keys.clone(),
                    },
                    h.span(),
                )),
                Err(e) => err(diags, h.span(), format!("hash `{}`: {e}", h.get_ref())),
            },
            None => err(
                diags,
                h.span(),
                format!("hash `{}`: expected \"hmac-sm3\" or \"sha256\"", h.get_ref()),
            ),
        }
    }
    if let Some(p) = &r.protect {
        match Cipher::parse(p.get_ref()) {
            Some(cipher) => match ctx.keys.can_encrypt(cipher) {
                Ok(()) => transforms.push((
                    Transform::Protect {
                        cipher,
                        keys: ctx.keys.clone(),
                    },
                    p.span(),
                )),
                Err(e) => err(diags, p.span(), format!("protect `{}`: {e}", p.get_ref())),
            },
            None => err(
                diags,
                p.span(),
                format!("protect `{}`: expected \"sm4\" or \"aes-256-gcm\"", p.get_ref()),
            ),
        }
    }
    if transforms.len() > 1 {
        err(
            diags,
            transforms[1].1.clone(),
            "a field takes one transform (datetime, codeset, appeal_code, division, mask, hash or protect); split it into two fields".into(),
        );
    }
    let pattern = match &r.pattern {
        Some(p) => match regex::Regex::new(p.get_ref()) {
            Ok(re) => Some(re),
            Err(e) => {
                err(diags, p.span(), format!("pattern: {e}"));
                None
            }
        },
        None => None,
    };
    let max_chars = match &r.max_chars {
        Some(m) if *m.get_ref() > 0 => Some(*m.get_ref() as usize),
        Some(m) => {
            err(diags, m.span(), "max_chars must be positive".into());
            None
        }
        None => None,
    };
    let mask_kind = transforms.iter().find_map(|(t, _)| match t {
        Transform::Mask(k) => Some(*k),
        _ => None,
    });
    let personal = match &r.personal {
        Some(p) => match MaskKind::parse(p.get_ref()) {
            Some(k) => Some(k),
            None => {
                err(
                    diags,
                    p.span(),
                    format!(
                        "personal `{}`: expected \"phone\", \"id\", \"name\" or \"other\"",
                        p.get_ref()
                    ),
                );
                None
            }
        },
        // A hashed or encrypted field is personal even unnamed: shown hidden.
        None if r.hash.is_some() || r.protect.is_some() => Some(mask_kind.unwrap_or(MaskKind::Other)),
        None => mask_kind,
    };
    if let (Some(h), Some(MaskKind::Phone | MaskKind::Id)) = (&r.hash, personal) {
        if h.get_ref() == "sha256" {
            diags.push(
                file.at(
                    h.span(),
                    format!(
                        "field `{target}`: an unkeyed SHA-256 of a phone or ID number is reversed by trying every number; use hash = \"hmac-sm3\""
                    ),
                )
                .warning(),
            );
        }
    }
    if let Some(d) = r.decrypt.as_ref().filter(|d| *d.get_ref()) {
        if direction != Direction::Push {
            err(
                diags,
                d.span(),
                "`decrypt = true` is for push mappings (it sends a value encrypted at rest to the partner in the clear)".into(),
            );
        }
    }
    if diags.errors() > before {
        return None;
    }
    Some(Field {
        target: target.clone(),
        input,
        from,
        trim: r.trim.unwrap_or(false),
        null_if: r.null_if.clone().unwrap_or_default(),
        pattern,
        transform: transforms.into_iter().next().map(|t| t.0).unwrap_or(Transform::None),
        required: r.required.unwrap_or(false),
        max_chars,
        personal,
        sealed_input: sealed_input(direction, r.decrypt.as_ref().is_some_and(|d| *d.get_ref()), ctx),
        insert_only: false,
    })
}

/// chrono panics on nothing but reports bad formats only when used; check
/// the specifiers up front so a typo is a config error, not a rejected table.
fn check_chrono_format(f: &str) -> Option<String> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(f).any(|i| matches!(i, Item::Error)) {
        Some(format!("datetime format `{f}` has an unknown `%` specifier"))
    } else {
        None
    }
}

/// How a field treats ciphertext it reads: only a push reads provincial
/// columns that may be encrypted at rest.
fn sealed_input(direction: Direction, decrypt: bool, ctx: &Context) -> SealedInput {
    match (direction, decrypt) {
        (Direction::Push, true) => SealedInput::Decrypt(ctx.keys.clone()),
        (Direction::Push, false) => SealedInput::MaskOnly(ctx.keys.clone()),
        _ => SealedInput::Pass,
    }
}
