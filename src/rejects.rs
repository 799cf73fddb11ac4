//! `hlx rejects`: the quarantine made operable. `list` and `show` read
//! `hlx_quarantine`; `retry` maps stored rows again with the current mapping
//! and code sets through the engine ([`Exchange::retry_quarantined`]).
//!
//! The quarantine keeps raw rows in the clear (a retry needs them), so
//! nothing here prints a raw value without masking: personal columns (read
//! by a field with `mask = …` or `personal = …`) are masked by their kind, a
//! column the mapping no longer reads is hidden, and when the mapping is not
//! in the configuration any more every value and the row key are hidden,
//! because nothing says which of them are personal.

use crate::cli::{Format, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::config::Config;
use crate::exchange::{Exchange, RetryOutcome, Status};
use crate::mapping::{Mapping, HIDDEN};
use crate::state::{QuarantineFilter, Quarantined, State};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone as _, Utc};
use clap::Subcommand;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum Action {
    /// Quarantined rows, newest first: open ones (--all adds resolved ones).
    List {
        /// Only this mapping's rows.
        #[arg(short, long, value_name = "NAME")]
        mapping: Option<String>,
        /// Only rows last seen since: an age (24h, 30m, 7d) or a time (YYYY-MM-DD[ HH:MM[:SS]], in [defaults] timezone).
        #[arg(long, value_name = "AGE|DATETIME")]
        since: Option<String>,
        /// Resolved entries too.
        #[arg(long)]
        all: bool,
        /// Show at most this many (the count of the rest is printed).
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: usize,
    },
    /// One entry in full, with its raw source values one per line (personal values masked).
    Show {
        /// The entry's id (from `hlx rejects list`).
        id: i64,
    },
    /// Map quarantined rows again with the current mapping and code sets; land those that pass.
    Retry {
        /// Only this mapping's rows (default: every mapping with open entries).
        #[arg(short, long, value_name = "NAME")]
        mapping: Option<String>,
        /// Only these entries (default: every open entry).
        ids: Vec<i64>,
    },
}

/// Runs `hlx rejects …`; returns the exit code.
pub async fn main(cfg: &Arc<Config>, action: &Action, format: Format) -> i32 {
    let r = match action {
        Action::Retry { mapping, ids } => return retry(cfg, mapping.as_deref(), ids, format).await,
        Action::List {
            mapping,
            since,
            all,
            limit,
        } => match open_state(cfg).await {
            Ok(state) => list(cfg, &state, mapping.as_deref(), since.as_deref(), *all, *limit, format).await,
            Err(e) => Err(e),
        },
        Action::Show { id } => match open_state(cfg).await {
            Ok(state) => show(cfg, &state, *id, format).await,
            Err(e) => Err(e),
        },
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hlx: {e:#}");
            EXIT_FAILED
        }
    }
}

/// The province's state tables, created or upgraded if need be (like `hlx status`).
async fn open_state(cfg: &Config) -> anyhow::Result<State> {
    let pool = crate::db::Pool::connect(&cfg.province, true).await?;
    let state = State::new(pool);
    state.migrate(true).await?;
    Ok(state)
}

/// An entry's fields as they may be shown: times in the province's zone,
/// the row key masked when a key column is personal.
struct Shown<'a> {
    e: &'a Quarantined,
    key: String,
    first_seen: String,
    last_seen: String,
}

impl<'a> Shown<'a> {
    fn new(e: &'a Quarantined, m: Option<&Mapping>, zone: FixedOffset, json: bool) -> Shown<'a> {
        let t = |t: DateTime<Utc>| {
            let l = t.with_timezone(&zone);
            if json {
                l.to_rfc3339()
            } else {
                l.format("%Y-%m-%d %H:%M:%S").to_string()
            }
        };
        Shown {
            e,
            key: match m {
                Some(m) => m.show_key(&e.row_key),
                None => HIDDEN.to_string(),
            },
            first_seen: t(e.first_seen),
            last_seen: t(e.last_seen),
        }
    }

    fn json(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::Value as J;
        let e = self.e;
        let text = |v: &Option<String>| v.clone().map(J::String).unwrap_or(J::Null);
        let mut o = serde_json::Map::new();
        o.insert("id".into(), e.id.into());
        o.insert("mapping".into(), e.mapping.clone().into());
        o.insert("partner".into(), e.partner.clone().into());
        o.insert("row_key".into(), self.key.clone().into());
        o.insert("field".into(), text(&e.field));
        o.insert("column".into(), text(&e.column));
        o.insert("rule".into(), e.rule.clone().into());
        o.insert("value".into(), text(&e.value));
        o.insert("reason".into(), e.reason.clone().into());
        o.insert("status".into(), e.status.clone().into());
        o.insert("first_seen".into(), self.first_seen.clone().into());
        o.insert("last_seen".into(), self.last_seen.clone().into());
        o.insert("attempts".into(), e.attempts.into());
        o.insert("run_id".into(), e.run_id.map(J::from).unwrap_or(J::Null));
        o
    }
}

/// `--since`: an age back from `now`, or a time in `zone` (RFC 3339 with
/// its own offset also goes).
pub fn parse_since(s: &str, zone: FixedOffset, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    if t.starts_with(|c: char| c.is_ascii_digit()) && t.ends_with(|c: char| c.is_ascii_alphabetic()) {
        if let Ok(d) = crate::config::Duration::parse(t) {
            return Ok(now - d.chrono());
        }
    }
    if let Ok(x) = DateTime::parse_from_rfc3339(t) {
        return Ok(x.with_timezone(&Utc));
    }
    let naive = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    });
    match naive.and_then(|n| zone.from_local_datetime(&n).single()) {
        Some(x) => Ok(x.with_timezone(&Utc)),
        None => Err(format!(
            "--since {t}: expected an age such as 24h, 30m or 7d, or a time YYYY-MM-DD[ HH:MM[:SS]]"
        )),
    }
}

async fn list(
    cfg: &Config,
    state: &State,
    mapping: Option<&str>,
    since: Option<&str>,
    all: bool,
    limit: usize,
    format: Format,
) -> anyhow::Result<i32> {
    let zone = cfg.defaults.timezone;
    if let Some(n) = mapping {
        // A mapping removed from the configuration may still have entries.
        if cfg.mapping(n).is_none() && !state.has_quarantine(n).await? {
            eprintln!("hlx: no mapping named `{n}`, and no quarantined rows of one");
            return Ok(EXIT_USAGE);
        }
    }
    let since = match since.map(|s| parse_since(s, zone, Utc::now())).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hlx: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let filter = QuarantineFilter { mapping, since, all };
    let (entries, total) = state.list_quarantine(&filter, limit).await?;
    let json = format == Format::Json;
    let shown: Vec<Shown> = entries
        .iter()
        .map(|e| Shown::new(e, cfg.mapping(&e.mapping), zone, json))
        .collect();
    let more = (total - entries.len() as i64).max(0);
    if json {
        let v = serde_json::json!({
            "total": total,
            "shown": shown.len(),
            "more": more,
            "entries": shown.iter().map(Shown::json).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(EXIT_OK);
    }
    print!("{}", render_list(&shown, more, all, limit));
    Ok(EXIT_OK)
}

/// The list as aligned text; the reason last, as long as it is.
fn render_list(rows: &[Shown], more: i64, all: bool, limit: usize) -> String {
    let what = if all { "quarantined" } else { "open quarantined" };
    if rows.is_empty() {
        return format!("no {what} rows\n");
    }
    let head = [
        "id",
        "mapping",
        "row key",
        "field",
        "rule",
        "first seen",
        "last seen",
        "attempts",
        "status",
        "reason",
    ];
    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|r| {
            let e = r.e;
            [
                e.id.to_string(),
                e.mapping.clone(),
                r.key.clone(),
                e.field.clone().unwrap_or_else(|| "-".into()),
                e.rule.clone(),
                r.first_seen.clone(),
                r.last_seen.clone(),
                e.attempts.to_string(),
                e.status.clone(),
                e.reason.clone(),
            ]
        })
        .collect();
    let mut w = head.map(|h| h.chars().count());
    for c in &cells {
        for (i, x) in c.iter().enumerate() {
            w[i] = w[i].max(x.chars().count());
        }
    }
    // Numbers right-aligned, text left-aligned; the last column unpadded.
    let line = |c: &[String]| {
        let mut s = String::new();
        for (i, x) in c.iter().enumerate() {
            let pad = w[i].saturating_sub(x.chars().count());
            if i == 0 || i == 7 {
                s.push_str(&" ".repeat(pad));
                s.push_str(x);
            } else if i == c.len() - 1 {
                s.push_str(x);
            } else {
                s.push_str(x);
                s.push_str(&" ".repeat(pad));
            }
            if i + 1 < c.len() {
                s.push_str("  ");
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(&head.map(String::from));
    for c in &cells {
        out.push_str(&line(c));
    }
    if more > 0 {
        out.push_str(&format!(
            "{} {what} row(s) shown, {more} more (--limit {} shows them, --mapping and --since narrow the list)\n",
            rows.len(),
            limit as i64 + more
        ));
    } else {
        out.push_str(&format!("{} {what} row(s)\n", rows.len()));
    }
    out
}

async fn show(cfg: &Config, state: &State, id: i64, format: Format) -> anyhow::Result<i32> {
    let Some(e) = state.quarantine_entry(id).await? else {
        eprintln!("hlx: no quarantine entry {id}");
        return Ok(EXIT_USAGE);
    };
    let m = cfg.mapping(&e.mapping);
    let json = format == Format::Json;
    let shown = Shown::new(&e, m, cfg.defaults.timezone, json);
    let raw: serde_json::Value = serde_json::from_str(&e.raw).unwrap_or(serde_json::Value::Null);
    let values: Vec<(String, serde_json::Value)> = match m {
        Some(m) => m.show_raw(&raw),
        None => raw
            .as_object()
            .map(|o| o.keys().map(|k| (k.clone(), HIDDEN.into())).collect())
            .unwrap_or_default(),
    };
    let masking = match m {
        Some(_) => "personal values masked".to_string(),
        None => format!(
            "all values hidden: mapping `{}` is not in the configuration, so which of them are personal is unknown",
            e.mapping
        ),
    };
    if json {
        let mut o = shown.json();
        let raw: serde_json::Map<String, serde_json::Value> = values.into_iter().collect();
        o.insert("raw".into(), serde_json::Value::Object(raw));
        o.insert("raw_masking".into(), serde_json::Value::String(masking));
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::Value::Object(o)).unwrap_or_default()
        );
        return Ok(EXIT_OK);
    }
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let zone = cfg.defaults.timezone;
    let fields = [
        ("id", e.id.to_string()),
        ("mapping", e.mapping.clone()),
        ("partner", e.partner.clone()),
        ("row key", shown.key.clone()),
        ("status", e.status.clone()),
        ("field", dash(&e.field)),
        ("column", dash(&e.column)),
        ("rule", e.rule.clone()),
        ("value", dash(&e.value)),
        ("reason", e.reason.clone()),
        ("first seen", format!("{} ({zone})", shown.first_seen)),
        ("last seen", format!("{} ({zone})", shown.last_seen)),
        ("attempts", e.attempts.to_string()),
        ("run", e.run_id.map(|r| r.to_string()).unwrap_or_else(|| "-".into())),
    ];
    let mut out = String::new();
    for (k, v) in &fields {
        out.push_str(&format!("{k:<11} {v}\n"));
    }
    // As JSON, so that NULL, an empty text and trailing blanks can be told apart.
    out.push_str(&format!("raw values ({masking}):\n"));
    let w = values.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    for (k, v) in &values {
        out.push_str(&format!("  {k:<w$}  {v}\n"));
    }
    print!("{out}");
    Ok(EXIT_OK)
}

async fn retry(cfg: &Arc<Config>, mapping: Option<&str>, ids: &[i64], format: Format) -> i32 {
    if let Some(n) = mapping {
        if cfg.mapping(n).is_none() {
            eprintln!("{}", crate::cli::unknown_mapping(cfg, n));
            return EXIT_USAGE;
        }
    }
    let ex = match Exchange::open(cfg.clone(), false).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("hlx: {e:#}");
            return EXIT_FAILED;
        }
    };
    if let Err(e) = ex.state.migrate(true).await {
        eprintln!("hlx: {e:#}");
        return EXIT_FAILED;
    }
    let plan = match plan_retry(cfg, &ex.state, mapping, ids).await {
        Ok(Ok(p)) => p,
        Ok(Err(usage)) => {
            eprintln!("hlx: {usage}");
            return EXIT_USAGE;
        }
        Err(e) => {
            eprintln!("hlx: {e:#}");
            return EXIT_FAILED;
        }
    };
    let mut outcomes = Vec::new();
    for (m, ids) in &plan.runs {
        outcomes.push(ex.retry_quarantined(m, ids).await);
    }
    ex.province.close().await;
    if format == Format::Json {
        let v = serde_json::json!({ "outcomes": outcomes, "notes": plan.notes });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", render_retry(&outcomes, &plan.notes));
    }
    if outcomes
        .iter()
        .any(|o| matches!(o.status, Status::Failed | Status::Halted | Status::Skipped))
    {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

/// Which entries a retry takes, per mapping, and what it leaves and why.
struct Plan<'a> {
    /// A mapping and its entry ids (empty: every open entry).
    runs: Vec<(&'a Mapping, Vec<i64>)>,
    notes: Vec<String>,
}

/// Checks the arguments against the quarantine before anything is retried.
/// `Ok(Err(message))` is bad usage: an unknown id, an id of another
/// mapping, or of a mapping that is not configured (it cannot be re-mapped).
async fn plan_retry<'a>(
    cfg: &'a Config,
    state: &State,
    mapping: Option<&str>,
    ids: &[i64],
) -> anyhow::Result<Result<Plan<'a>, String>> {
    let mut plan = Plan {
        runs: Vec::new(),
        notes: Vec::new(),
    };
    if !ids.is_empty() {
        for &id in ids {
            let Some(e) = state.quarantine_entry(id).await? else {
                return Ok(Err(format!("no quarantine entry {id}")));
            };
            if mapping.is_some_and(|n| n != e.mapping) {
                return Ok(Err(format!(
                    "entry {id} belongs to mapping `{}`, not `{}`",
                    e.mapping,
                    mapping.unwrap_or_default()
                )));
            }
            let Some(m) = cfg.mapping(&e.mapping) else {
                return Ok(Err(format!(
                    "entry {id} belongs to mapping `{}`, which is not in the configuration: it cannot be mapped again",
                    e.mapping
                )));
            };
            if e.status != "open" {
                plan.notes.push(format!("entry {id} is {} already", e.status));
                continue;
            }
            match plan.runs.iter_mut().find(|(x, _)| x.name == m.name) {
                Some((_, list)) if !list.contains(&id) => list.push(id),
                Some(_) => {}
                None => plan.runs.push((m, vec![id])),
            }
        }
        return Ok(Ok(plan));
    }
    for (name, count) in state.open_quarantine_mappings().await? {
        if mapping.is_some_and(|n| n != name) {
            continue;
        }
        match cfg.mapping(&name) {
            Some(m) => plan.runs.push((m, Vec::new())),
            None => plan.notes.push(format!(
                "{count} open entr{} of mapping `{name}`, which is not in the configuration, left alone",
                if count == 1 { "y" } else { "ies" }
            )),
        }
    }
    if plan.runs.is_empty() {
        plan.notes.push(match mapping {
            Some(n) => format!("{n}: no open quarantine entries: nothing to retry"),
            None if plan.notes.is_empty() => "no open quarantine entries: nothing to retry".into(),
            None => "nothing to retry".into(),
        });
    }
    Ok(Ok(plan))
}

/// One line per mapping, then what was left alone and why.
fn render_retry(outcomes: &[RetryOutcome], notes: &[String]) -> String {
    let mut s = String::new();
    for o in outcomes {
        match o.status {
            Status::Ok => s.push_str(&format!(
                "{}: {} retried, {} landed, {} still rejected{}\n",
                o.mapping,
                o.retried,
                o.landed,
                o.rejected,
                if o.skipped.is_empty() {
                    String::new()
                } else {
                    format!(", {} left alone", o.skipped.len())
                }
            )),
            status => s.push_str(&format!(
                "{}: {}: {}{}\n",
                o.mapping,
                status.as_str(),
                o.error.as_deref().unwrap_or(""),
                if status == Status::Skipped {
                    "; nothing was retried, try again when its run has finished"
                } else {
                    ""
                }
            )),
        }
        for k in &o.skipped {
            s.push_str(&format!("  entry {} left alone: {}\n", k.id, k.reason));
        }
    }
    for n in notes {
        s.push_str(&format!("{n}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_an_age_or_a_time_in_the_province_zone() {
        let zone = FixedOffset::east_opt(8 * 3600).unwrap();
        let now = Utc.with_ymd_and_hms(2024, 3, 2, 12, 0, 0).unwrap();
        assert_eq!(
            parse_since("24h", zone, now).unwrap(),
            Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap()
        );
        assert_eq!(
            parse_since("2024-03-01 08:00", zone, now).unwrap(),
            Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            parse_since("2024-03-01", zone, now).unwrap(),
            Utc.with_ymd_and_hms(2024, 2, 29, 16, 0, 0).unwrap()
        );
        assert_eq!(
            parse_since("2024-03-01T08:00:00Z", zone, now).unwrap(),
            Utc.with_ymd_and_hms(2024, 3, 1, 8, 0, 0).unwrap()
        );
        assert!(parse_since("yesterday", zone, now).is_err());
        assert!(parse_since("24", zone, now).is_err());
    }

    /// A mapping whose key includes an ID number, with a personal name.
    fn personal_mapping() -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("mappings/codesets")).unwrap();
        std::fs::write(
            dir.path().join("exchange.toml"),
            "[province]\nurl = \"sqlite://p.db\"\n[[partner]]\nname = \"hk\"\nurl = \"sqlite://s.db\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("mappings/m.toml"),
            r#"
name = "hk.person"
partner = "hk"
[source]
table = "stg"
key = ["GDBH", "SFZH"]
[target]
table = "t"
key = ["order_no"]
[fields]
order_no  = "GDBH"
id_masked = { from = "SFZH", mask = "id" }
caller    = { from = "XM", personal = "name" }
note      = "BZ"
"#,
        )
        .unwrap();
        let cfg = crate::config::load(&dir.path().join("exchange.toml")).unwrap_or_else(|d| panic!("{d}"));
        (dir, cfg)
    }

    #[test]
    fn raw_values_and_keys_of_personal_columns_are_masked() {
        let (_dir, cfg) = personal_mapping();
        let m = cfg.mapping("hk.person").unwrap();
        let raw = serde_json::json!({
            "GDBH": "HK1", "SFZH": "460100199001011234", "XM": "张三", "BZ": "", "LDHM": "13812345678", "N": null
        });
        let shown: Vec<(String, String)> = m.show_raw(&raw).into_iter().map(|(k, v)| (k, v.to_string())).collect();
        let want = [
            ("GDBH", "\"HK1\""),
            ("SFZH", "\"460100********1234\""),
            ("XM", "\"张*\""),
            ("BZ", "\"\""),
            // Not read by the mapping (any more): it may be personal.
            ("LDHM", "\"******\""),
            ("N", "null"),
        ];
        let want: Vec<(String, String)> = want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(shown, want);
        assert_eq!(
            m.show_key(r#"["HK1","460100199001011234"]"#),
            r#"["HK1","460100********1234"]"#
        );
    }
}
