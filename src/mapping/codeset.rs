//! Code sets: partner value → provincial value tables, loaded from
//! `mappings/codesets/*.toml`. Each TOML table in a file is one code set:
//!
//! ```toml
//! [channel]          # partner value = provincial value
//! "01" = "phone"
//! ```
//!
//! A mapping names a code set either qualified (`haikou.channel`: file
//! `haikou.toml`, table `channel`) or bare (`channel`): a bare name is looked
//! up in the file named after the mapping's partner first, then in the one
//! other file that defines it (two such files is an ambiguity error).

use super::appeal_code::{self, AppealCode};
use crate::diag::{Diagnostics, SourceFile};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// A code-set file as parsed: table → partner value → provincial value, with spans.
type RawFile = toml::Spanned<BTreeMap<String, toml::Spanned<BTreeMap<String, toml::Spanned<toml::Value>>>>>;

/// One code set.
#[derive(Debug)]
pub struct CodeSet {
    /// `file.table`, as reports name it.
    pub name: String,
    /// Partner value (trimmed) → provincial value.
    pub values: HashMap<String, String>,
}

impl CodeSet {
    pub fn lookup(&self, partner_value: &str) -> Option<&str> {
        self.values.get(partner_value.trim()).map(String::as_str)
    }

    /// `fallback = "other"`: for a partner code the set does not know, the
    /// nearest ancestor it does know, translated to a classification code,
    /// and that code's 'other' child (`99` one level down). A partner code's
    /// ancestors are its prefixes: cut at the last separator (`-`, `/`, `.`,
    /// `>`, `|`: `食品-乳制品` → `食品`) when it has one, else two
    /// characters at a time (`CS0107` → `CS01` → `CS`), each also tried
    /// padded with `0` to the code's length (`030701` → `030700`). `None`
    /// when no ancestor is known or its translation is not a valid
    /// classification code.
    pub fn lookup_other(&self, partner_value: &str) -> Option<(String, AppealCode)> {
        let v = partner_value.trim();
        let is_sep = |c: char| matches!(c, '-' | '/' | '.' | '>' | '|' | '－' | '／');
        let found = |candidate: &str| {
            self.lookup(candidate).map(|p| {
                (
                    candidate.to_string(),
                    appeal_code::normalize(p).ok().map(|c| c.other_child()),
                )
            })
        };
        let hit = if v.contains(is_sep) {
            let mut rest = v;
            let mut hit = None;
            while let Some(cut) = rest.rfind(is_sep) {
                rest = rest[..cut].trim_end();
                if let Some(h) = found(rest) {
                    hit = Some(h);
                    break;
                }
            }
            hit
        } else {
            let chars: Vec<char> = v.chars().collect();
            let mut hit = None;
            let mut cut = chars.len();
            while hit.is_none() && cut > 2 {
                cut -= 2;
                let prefix: String = chars[..cut].iter().collect();
                let padded: String = prefix
                    .chars()
                    .chain(std::iter::repeat_n('0', chars.len() - cut))
                    .collect();
                hit = found(&prefix).or_else(|| found(&padded));
            }
            hit
        };
        match hit {
            Some((via, Some(code))) => Some((via, code)),
            _ => None,
        }
    }

    /// The set read the other way (provincial value → partner value), for a
    /// push: only when it is one-to-one; the error names the provincial
    /// values that several partner values share.
    pub fn reversed(&self) -> Result<CodeSet, String> {
        let mut back: HashMap<String, String> = HashMap::new();
        let mut shared: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (k, v) in &self.values {
            shared.entry(v.as_str()).or_default().push(k.as_str());
            back.insert(v.trim().to_string(), k.clone());
        }
        let many: Vec<String> = shared
            .iter()
            .filter(|(_, ks)| ks.len() > 1)
            .map(|(v, ks)| {
                let mut ks = ks.clone();
                ks.sort();
                format!(
                    "`{v}` ← {}",
                    ks.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        if !many.is_empty() {
            return Err(format!(
                "code set `{}` cannot be reversed: it is not one-to-one ({})",
                self.name,
                many.join("; ")
            ));
        }
        Ok(CodeSet {
            name: format!("{} (reversed)", self.name),
            values: back,
        })
    }

    /// Values that are not valid classification codes (for `fallback`).
    pub fn invalid_appeal_codes(&self) -> Vec<String> {
        let mut bad: Vec<String> = self
            .values
            .iter()
            .filter(|(_, v)| appeal_code::normalize(v).is_err())
            .map(|(k, v)| format!("`{k}` = `{v}`"))
            .collect();
        bad.sort();
        bad
    }
}

/// Every code set, by file stem and table.
#[derive(Debug, Default)]
pub struct CodeSets {
    /// file stem → table → set
    files: BTreeMap<String, BTreeMap<String, Arc<CodeSet>>>,
    /// Digest input: (file name, text) of every file read, for the exchange log.
    pub sources: Vec<(String, String)>,
}

impl CodeSets {
    /// Loads every `*.toml` in `dir`; a missing directory is an empty set.
    pub fn load(dir: &Path, diags: &mut Diagnostics) -> CodeSets {
        let mut sets = CodeSets::default();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return sets;
        };
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let file = match SourceFile::read(&path) {
                Ok(f) => f,
                Err(d) => {
                    diags.push(d);
                    continue;
                }
            };
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_string();
            sets.sources.push((format!("codesets/{stem}.toml"), file.text.clone()));
            let doc: RawFile = match toml::from_str(&file.text) {
                Ok(d) => d,
                Err(e) => {
                    let mut d = file.toml_error(&e);
                    d.message = format!(
                        "{} (a code-set file holds tables of \"partner value\" = \"provincial value\")",
                        d.message
                    );
                    diags.push(d);
                    continue;
                }
            };
            let mut tables = BTreeMap::new();
            for (table, entries) in doc.into_inner() {
                let mut values = HashMap::new();
                for (k, v) in entries.into_inner() {
                    let span = v.span();
                    match v.into_inner() {
                        toml::Value::String(s) => {
                            values.insert(k.trim().to_string(), s);
                        }
                        toml::Value::Integer(i) => {
                            values.insert(k.trim().to_string(), i.to_string());
                        }
                        other => diags.push(file.at(
                            span,
                            format!(
                                "code set `{table}`: value of `{k}` is a {}, expected a string",
                                other.type_str()
                            ),
                        )),
                    }
                }
                tables.insert(
                    table.clone(),
                    Arc::new(CodeSet {
                        name: format!("{stem}.{table}"),
                        values,
                    }),
                );
            }
            sets.files.insert(stem, tables);
        }
        sets
    }

    /// Resolves a code-set reference from a mapping of `partner`.
    pub fn resolve(&self, reference: &str, partner: &str) -> Result<Arc<CodeSet>, String> {
        if let Some((file, table)) = reference.split_once('.') {
            return self.files.get(file).and_then(|t| t.get(table)).cloned().ok_or_else(|| {
                format!("code set `{reference}` not found (no table `{table}` in codesets/{file}.toml)")
            });
        }
        if let Some(set) = self.files.get(partner).and_then(|t| t.get(reference)) {
            return Ok(set.clone());
        }
        let found: Vec<&Arc<CodeSet>> = self.files.values().filter_map(|t| t.get(reference)).collect();
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(format!(
                "code set `{reference}` not found in mappings/codesets/ (known: {})",
                self.known().join(", ")
            )),
            many => Err(format!(
                "code set `{reference}` is ambiguous: defined as {}; write the qualified name",
                many.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(" and ")
            )),
        }
    }

    fn known(&self) -> Vec<String> {
        let v: Vec<String> = self
            .files
            .values()
            .flat_map(|t| t.values().map(|s| s.name.clone()))
            .collect();
        if v.is_empty() {
            vec!["none".into()]
        } else {
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> CodeSet {
        CodeSet {
            name: "city.category".into(),
            values: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn an_unknown_code_falls_back_to_its_nearest_known_ancestors_other() {
        let s = set(&[("03", "0100000000"), ("0305", "0102030000"), ("A1", "not a code")]);
        let other = |v: &str| s.lookup_other(v).map(|(via, c)| (via, c.code));
        assert_eq!(other("030507"), Some(("0305".into(), "0102039900".into())));
        assert_eq!(other("0399"), Some(("03".into(), "0199000000".into())));
        assert_eq!(other("03050000"), Some(("0305".into(), "0102039900".into())));
        assert_eq!(other("04"), None, "no ancestor");
        assert_eq!(other("0412"), None);
        assert_eq!(other("A1B2"), None, "the ancestor's value is not a classification code");
        assert_eq!(s.invalid_appeal_codes(), ["`A1` = `not a code`"]);
        // Not ASCII, no separator: cut by characters, never inside one.
        assert_eq!(other("食品乳品"), None);
    }

    #[test]
    fn a_separated_taxonomy_is_cut_at_its_separators() {
        let s = set(&[("食品", "0202010000"), ("家电", "0201010000")]);
        let other = |v: &str| s.lookup_other(v).map(|(via, c)| (via, c.code));
        assert_eq!(other("食品-乳制品"), Some(("食品".into(), "0202019900".into())));
        assert_eq!(
            other("食品 / 乳制品 / 酸奶"),
            Some(("食品".into(), "0202019900".into()))
        );
        assert_eq!(other("二手车"), None);
        assert_eq!(other("服装-童装"), None);
    }

    #[test]
    fn a_padded_ancestor_is_found() {
        let s = set(&[("030000", "0102000000")]);
        assert_eq!(
            s.lookup_other("030701").map(|(via, c)| (via, c.code)),
            Some(("030000".into(), "0102990000".into()))
        );
    }
}
