//! `hlx load categories|hotlines FILE`: reference data from CSV into the
//! provincial tables `appeal_category` and `hotline`.
//!
//! The whole file is checked before anything is written, every problem is
//! reported with its file and line, and the load is one transaction: a file
//! with any error changes nothing. Loading again is an upsert on the code, so
//! a corrected file can simply be loaded again.
//!
//! Classification codes are normalised with the `appeal_code` rule; each
//! row's level, parent and 'other' flag are derived from the code, and the
//! tree must be consistent: every code's parent is in the file or already in
//! the table. `is_leaf` is recomputed for every code the load touches.

use crate::cli::{Format, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::config::Config;
use crate::db::sql::{exec, fetch_pool, Arg};
use crate::db::Pool;
use crate::mapping::appeal_code;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum Action {
    /// The Guangdong classification (CSV: code,name) into appeal_category, checking the tree.
    Categories {
        file: PathBuf,
        /// Check the file and report what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The hotline registry (CSV: hotline_code,name,service_number,department,kind,integration_mode,exchange_mode[,enabled,note]) into hotline.
    Hotlines {
        file: PathBuf,
        /// Check the file and report what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// What a load did (or, dry, would do).
#[derive(Debug, Default, serde::Serialize)]
pub struct Loaded {
    pub table: &'static str,
    pub file: String,
    pub rows: usize,
    pub inserted: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub dry_run: bool,
    /// Categories: rows per level (1–5, then extension levels).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub levels: BTreeMap<usize, usize>,
}

pub async fn main(cfg: &Config, action: &Action, format: Format) -> i32 {
    let (file, dry_run) = match action {
        Action::Categories { file, dry_run } | Action::Hotlines { file, dry_run } => (file, *dry_run),
    };
    let parsed = match action {
        Action::Categories { .. } => read_categories(file).map(Rows::Categories),
        Action::Hotlines { .. } => read_hotlines(file).map(Rows::Hotlines),
    };
    let rows = match parsed {
        Ok(r) => r,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!(
                "hlx: {} problem(s) in {}; nothing was loaded",
                problems.len(),
                file.display()
            );
            return if problems.len() == 1 && problems[0].contains("cannot read") {
                EXIT_USAGE
            } else {
                EXIT_FAILED
            };
        }
    };
    let pool = match Pool::connect(&cfg.province, true).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("hlx: {e:#}");
            return EXIT_FAILED;
        }
    };
    let result = match rows {
        Rows::Categories(c) => load_categories(&pool, file, c, dry_run).await,
        Rows::Hotlines(h) => load_hotlines(&pool, file, h, dry_run).await,
    };
    pool.close().await;
    match result {
        Ok(Ok(l)) => {
            if format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&l).unwrap_or_default());
            } else {
                let levels = if l.levels.is_empty() {
                    String::new()
                } else {
                    let per: Vec<String> = l.levels.iter().map(|(k, n)| format!("level {k}: {n}")).collect();
                    format!(" ({}; tree consistent)", per.join(", "))
                };
                println!(
                    "{}{}: {} row(s) in {}: {} inserted, {} updated, {} unchanged{levels}",
                    if l.dry_run { "dry run, nothing written — " } else { "" },
                    l.table,
                    l.rows,
                    l.file,
                    l.inserted,
                    l.updated,
                    l.unchanged
                );
            }
            EXIT_OK
        }
        Ok(Err(problems)) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!(
                "hlx: {} problem(s) in {}; nothing was loaded",
                problems.len(),
                file.display()
            );
            EXIT_FAILED
        }
        Err(e) => {
            eprintln!("hlx: load into the provincial database failed, nothing was loaded: {e:#}");
            EXIT_FAILED
        }
    }
}

enum Rows {
    Categories(Vec<Category>),
    Hotlines(Vec<Hotline>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Category {
    pub line: u64,
    pub code: appeal_code::AppealCode,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hotline {
    pub line: u64,
    pub values: [String; 7],
    pub enabled: bool,
    pub note: Option<String>,
}

/// The records of a CSV file with a header, as (line, column → value).
/// A UTF-8 byte-order mark is skipped; header names are matched without case.
/// A CSV record: its line and column → value.
type Record = (u64, BTreeMap<String, String>);

fn read_csv(path: &Path, required: &[&str]) -> Result<Vec<Record>, Vec<String>> {
    let at = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| vec![format!("{at}: cannot read: {e}")])?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..good].iter().filter(|b| **b == b'\n').count();
        vec![format!(
            "{at}:{line}: not UTF-8: save the file as UTF-8 (GBK files need converting, e.g. iconv -f GBK -t UTF-8)"
        )]
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| vec![format!("{at}:1: {e}")])?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let missing: Vec<&&str> = required.iter().filter(|r| !headers.iter().any(|h| h == **r)).collect();
    if !missing.is_empty() {
        return Err(vec![format!(
            "{at}:1: the header lacks {} (expected columns: {})",
            missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", "),
            required.join(",")
        )]);
    }
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for rec in rdr.records() {
        match rec {
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line());
                if r.iter().all(str::is_empty) {
                    continue;
                }
                let row = headers.iter().cloned().zip(r.iter().map(str::to_string)).collect();
                out.push((line, row));
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(format!("{at}:{line}: {e}"));
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Reads and checks a classification file (without the database).
pub fn read_categories(path: &Path) -> Result<Vec<Category>, Vec<String>> {
    let at = path.display().to_string();
    let records = read_csv(path, &["code", "name"])?;
    let mut problems = Vec::new();
    let mut out: Vec<Category> = Vec::new();
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for (line, row) in records {
        let raw = &row["code"];
        let name = row["name"].clone();
        let code = match appeal_code::normalize(raw) {
            Ok(c) => c,
            Err(e) => {
                problems.push(format!("{at}:{line}: {e}"));
                continue;
            }
        };
        if name.is_empty() {
            problems.push(format!("{at}:{line}: code {code} has no name"));
        } else if name.chars().count() > 200 {
            problems.push(format!("{at}:{line}: the name of {code} has more than 200 characters"));
        }
        if let Some(first) = seen.insert(code.code.clone(), line) {
            problems.push(format!(
                "{at}:{line}: code {code} (written `{raw}`) is already on line {first}"
            ));
            continue;
        }
        out.push(Category { line, code, name });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

const KINDS: &[&str] = &[
    "province_platform",
    "city_platform",
    "department_line",
    "emergency_line",
];
const INTEGRATION: &[&str] = &[
    "merged",
    "keep_number_interconnect",
    "keep_number_parallel",
    "emergency_linkage",
];
const EXCHANGE: &[&str] = &["push", "receive", "two-way"];
const HOTLINE_COLUMNS: [&str; 7] = [
    "hotline_code",
    "name",
    "service_number",
    "department",
    "kind",
    "integration_mode",
    "exchange_mode",
];

/// Reads and checks a hotline registry file (without the database).
pub fn read_hotlines(path: &Path) -> Result<Vec<Hotline>, Vec<String>> {
    let at = path.display().to_string();
    let records = read_csv(path, &HOTLINE_COLUMNS)?;
    let mut problems = Vec::new();
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for (line, row) in records {
        let values: [String; 7] = HOTLINE_COLUMNS.map(|c| row[c].clone());
        let code = &values[0];
        let before = problems.len();
        if code.is_empty()
            || !code
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            problems.push(format!(
                "{at}:{line}: hotline_code `{code}`: expected lower-case letters, digits and `_`"
            ));
        }
        if values[1].is_empty() {
            problems.push(format!("{at}:{line}: hotline {code} has no name"));
        }
        // The widths of the default `hotline` table.
        for (i, max) in [(0, 32), (1, 200), (2, 32), (3, 200)] {
            let n = values[i].chars().count();
            if n > max {
                problems.push(format!(
                    "{at}:{line}: {} has {n} characters, at most {max} fit",
                    HOTLINE_COLUMNS[i]
                ));
            }
        }
        for (i, allowed) in [(4, KINDS), (5, INTEGRATION), (6, EXCHANGE)] {
            if !allowed.contains(&values[i].as_str()) {
                problems.push(format!(
                    "{at}:{line}: {} `{}`: expected one of {}",
                    HOTLINE_COLUMNS[i],
                    values[i],
                    allowed.join(", ")
                ));
            }
        }
        let enabled = match row.get("enabled").map(String::as_str) {
            None | Some("") | Some("true") | Some("1") | Some("yes") => true,
            Some("false") | Some("0") | Some("no") => false,
            Some(other) => {
                problems.push(format!("{at}:{line}: enabled `{other}`: expected true or false"));
                true
            }
        };
        if let Some(first) = seen.insert(code.clone(), line) {
            problems.push(format!("{at}:{line}: hotline_code {code} is already on line {first}"));
        }
        if problems.len() == before {
            out.push(Hotline {
                line,
                note: row.get("note").filter(|n| !n.is_empty()).cloned(),
                values,
                enabled,
            });
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Checks the tree against the file and the table, then upserts in one
/// transaction. `Ok(Err(problems))` when the tree is inconsistent.
async fn load_categories(
    pool: &Pool,
    file: &Path,
    rows: Vec<Category>,
    dry_run: bool,
) -> anyhow::Result<Result<Loaded, Vec<String>>> {
    let at = file.display().to_string();
    // code → (parent, name, is_other, is_leaf) as stored now.
    let mut stored: BTreeMap<String, (Option<String>, String, bool, bool)> = BTreeMap::new();
    for r in fetch_pool(
        pool,
        "SELECT code, parent_code, name, is_other, is_leaf FROM appeal_category",
        &[],
    )
    .await?
    {
        stored.insert(
            r.text(0)?.unwrap_or_default(),
            (
                r.text(1)?,
                r.text(2)?.unwrap_or_default(),
                r.bool(3)?.unwrap_or(false),
                r.bool(4)?.unwrap_or(true),
            ),
        );
    }
    let in_file: BTreeSet<&str> = rows.iter().map(|c| c.code.code.as_str()).collect();
    let mut problems = Vec::new();
    for c in &rows {
        if let Some(p) = c.code.parent() {
            if !in_file.contains(p.as_str()) && !stored.contains_key(&p) {
                problems.push(format!(
                    "{at}:{}: the parent {p} of {} ({}) is neither in the file nor in appeal_category",
                    c.line, c.code, c.name
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Ok(Err(problems));
    }
    // The tree after the load: a code is a leaf when nothing names it as parent.
    let mut parents: BTreeSet<String> = stored.values().filter_map(|v| v.0.clone()).collect();
    parents.extend(rows.iter().filter_map(|c| c.code.parent()));
    let mut loaded = Loaded {
        table: "appeal_category",
        file: at,
        rows: rows.len(),
        dry_run,
        ..Loaded::default()
    };
    let mut tx = pool.begin().await?;
    for c in &rows {
        *loaded.levels.entry(c.code.level).or_default() += 1;
        let code = c.code.code.as_str();
        let parent = c.code.parent();
        let is_other = c.code.is_other();
        let is_leaf = !parents.contains(code);
        let args = |first: Vec<Arg>| {
            let mut a = first;
            a.extend([
                Arg::I64(Some(c.code.level as i64)),
                Arg::Text(parent.clone()),
                Arg::from(c.name.as_str()),
                Arg::Bool(Some(is_other)),
                Arg::Bool(Some(is_leaf)),
            ]);
            a
        };
        match stored.get(code) {
            Some(now) if *now == (parent.clone(), c.name.clone(), is_other, is_leaf) => loaded.unchanged += 1,
            Some(_) => {
                loaded.updated += 1;
                if !dry_run {
                    let mut a = args(vec![]);
                    a.push(code.into());
                    exec(
                        &mut tx,
                        "UPDATE appeal_category SET level = ?, parent_code = ?, name = ?, is_other = ?, is_leaf = ? WHERE code = ?",
                        &a,
                    )
                    .await?;
                }
            }
            None => {
                loaded.inserted += 1;
                if !dry_run {
                    exec(
                        &mut tx,
                        "INSERT INTO appeal_category (code, level, parent_code, name, is_other, is_leaf) VALUES (?, ?, ?, ?, ?, ?)",
                        &args(vec![code.into()]),
                    )
                    .await?;
                }
            }
        }
    }
    // Stored codes that gained their first child are no longer leaves.
    if !dry_run {
        for (code, (_, _, _, leaf)) in &stored {
            if *leaf && parents.contains(code) && !in_file.contains(code.as_str()) {
                exec(
                    &mut tx,
                    "UPDATE appeal_category SET is_leaf = ? WHERE code = ?",
                    &[Arg::Bool(Some(false)), code.as_str().into()],
                )
                .await?;
            }
        }
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(Ok(loaded))
}

async fn load_hotlines(
    pool: &Pool,
    file: &Path,
    rows: Vec<Hotline>,
    dry_run: bool,
) -> anyhow::Result<Result<Loaded, Vec<String>>> {
    let mut stored: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for r in fetch_pool(
        pool,
        "SELECT hotline_code, name, service_number, department, kind, integration_mode, exchange_mode, note, enabled FROM hotline",
        &[],
    )
    .await?
    {
        let mut v = Vec::new();
        for i in 0..8 {
            v.push(r.text(i)?);
        }
        v.push(r.bool(8)?.map(|b| b.to_string()));
        stored.insert(v[0].clone().unwrap_or_default(), v);
    }
    let mut loaded = Loaded {
        table: "hotline",
        file: file.display().to_string(),
        rows: rows.len(),
        dry_run,
        ..Loaded::default()
    };
    let mut tx = pool.begin().await?;
    for h in &rows {
        let mut want: Vec<Option<String>> = h.values.iter().map(|v| Some(v.clone())).collect();
        want.push(h.note.clone());
        want.push(Some(h.enabled.to_string()));
        let mut args: Vec<Arg> = h.values[1..].iter().map(|v| Arg::from(v.as_str())).collect();
        args.push(Arg::Text(h.note.clone()));
        args.push(Arg::Bool(Some(h.enabled)));
        args.push(h.values[0].as_str().into());
        match stored.get(&h.values[0]) {
            Some(now) if *now == want => loaded.unchanged += 1,
            Some(_) => {
                loaded.updated += 1;
                if !dry_run {
                    exec(
                        &mut tx,
                        "UPDATE hotline SET name = ?, service_number = ?, department = ?, kind = ?, integration_mode = ?, \
                         exchange_mode = ?, note = ?, enabled = ? WHERE hotline_code = ?",
                        &args,
                    )
                    .await?;
                }
            }
            None => {
                loaded.inserted += 1;
                if !dry_run {
                    exec(
                        &mut tx,
                        "INSERT INTO hotline (name, service_number, department, kind, integration_mode, exchange_mode, note, enabled, hotline_code) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        &args,
                    )
                    .await?;
                }
            }
        }
    }
    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(Ok(loaded))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn categories_are_normalised_and_every_bad_line_is_named() {
        let f = file("\u{feff}code,name\n01,城乡建设\n\"01 02\",市政设施\n０１０２０３,路灯\n");
        let rows = read_categories(f.path()).unwrap();
        let codes: Vec<(&str, usize)> = rows.iter().map(|c| (c.code.code.as_str(), c.code.level)).collect();
        assert_eq!(codes, [("0100000000", 1), ("0102000000", 2), ("0102030000", 3)]);
        assert_eq!(rows[2].line, 4);

        let f = file("code,name\n0100020000,坏\n01,\n0102,重复\n010200,重复\n");
        let e = read_categories(f.path()).unwrap_err();
        assert!(
            e[0].contains(":2: `0100020000`: level 2 is `00` but level 3 is `02`"),
            "{e:?}"
        );
        assert!(e[1].contains(":3: code 0100000000 has no name"), "{e:?}");
        assert!(
            e[2].contains(":5: code 0102000000 (written `010200`) is already on line 4"),
            "{e:?}"
        );
        assert_eq!(e.len(), 3);

        let f = file("编码,名称\n01,x\n");
        assert!(read_categories(f.path()).unwrap_err()[0].contains("the header lacks `code`, `name`"));
        std::fs::write(f.path(), b"code,name\n01,\xb3\xc7\n").unwrap();
        assert!(read_categories(f.path()).unwrap_err()[0].contains(":2: not UTF-8"));
    }

    #[test]
    fn hotlines_check_their_codes_and_modes() {
        let head = "hotline_code,name,service_number,department,kind,integration_mode,exchange_mode,enabled\n";
        let f = file(&format!(
            "{head}yc_12315,市场监管,12315,市场监管局,department_line,keep_number_interconnect,two-way,\n\
             yc_110,公安,110,公安局,emergency_line,emergency_linkage,two-way,false\n"
        ));
        let rows = read_hotlines(f.path()).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].enabled && !rows[1].enabled);
        let f = file(&format!(
            "{head}YC-1,x,1,d,department_line,merged,receive,\nyc_2,x,1,d,hotline,merged,both,maybe\nyc_3,x,1,d,department_line,merged,receive,\nyc_3,x,1,d,department_line,merged,receive,\n"
        ));
        let e = read_hotlines(f.path()).unwrap_err();
        assert!(e[0].contains(":2: hotline_code `YC-1`"), "{e:?}");
        assert!(e.iter().any(|p| p.contains(":3: kind `hotline`")), "{e:?}");
        assert!(e.iter().any(|p| p.contains(":3: exchange_mode `both`")), "{e:?}");
        assert!(e.iter().any(|p| p.contains(":3: enabled `maybe`")), "{e:?}");
        assert!(
            e.iter()
                .any(|p| p.contains(":5: hotline_code yc_3 is already on line 4")),
            "{e:?}"
        );
        let f = file(&format!(
            "{head}yc_1,x,{},d,department_line,merged,receive,\n",
            "9".repeat(33)
        ));
        let e = read_hotlines(f.path()).unwrap_err();
        assert!(
            e[0].contains(":2: service_number has 33 characters, at most 32 fit"),
            "{e:?}"
        );
    }
}
