//! Sync reports (`hlx report`, and the daemon's daily report): per partner
//! and mapping, what moved in a period, what was rejected and why, who is
//! behind.
//!
//! Sources, all in the provincial database: `hlx_run` (runs, counts, errors,
//! the watermark each run reached), `hlx_watermark` (current position, for
//! the current lag), `hlx_exchange_log` (batches by time, for rows per hour;
//! the head hash, printed so a site can anchor it), `hlx_quarantine` (top
//! rejection reasons).
//!
//! Health of a mapping, worst first (a partner takes its worst mapping's):
//! * **failing**: its most recent run failed or halted;
//! * **lagging**: its watermark is older than `[report] lag_threshold`
//!   (default 1h) — but see *silent* — or no run succeeded within it;
//! * **silent**: runs succeed, yet no new row arrived for longer than
//!   `[report] silent_after` (default 24h): the partner stopped sending;
//! * **healthy**: otherwise.
//!
//! Lag is *now minus the instant of the watermark* (the newest change hlx has
//! taken from the partner), so it is only known for time watermarks.
//!
//! The JSON form is stable and described by `docs/report.schema.json`.

use crate::config::Config;
use crate::db::sql::fetch_pool;
use crate::db::Pool;
use crate::state::{watermark_instant, State};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// The report's schema version (bumped when a field changes meaning or goes).
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Silent,
    Lagging,
    Failing,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Silent => "silent",
            Health::Lagging => "lagging",
            Health::Failing => "failing",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub generated_at: DateTime<Utc>,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub summary: Summary,
    pub partners: Vec<PartnerReport>,
    /// Partners grouped by the hotline they serve (`hotline = …` on a
    /// partner); partners without one are in no group.
    pub hotlines: Vec<HotlineGroup>,
    /// The exchange log's head when the report was made: keep it elsewhere
    /// to detect a wholesale rewrite of the log later.
    pub log_head: LogHead,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogHead {
    pub seq: i64,
    pub hash: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub partners: usize,
    pub healthy: usize,
    pub lagging: usize,
    pub failing: usize,
    pub silent: usize,
    pub rows_moved: i64,
    pub rows_rejected: i64,
    pub runs_failed: i64,
}

/// The partners serving one hotline, with their combined health.
#[derive(Debug, Clone, Serialize)]
pub struct HotlineGroup {
    pub hotline: String,
    /// From the provincial `hotline` table, when it lists the code.
    pub name: Option<String>,
    pub service_number: Option<String>,
    pub health: Health,
    pub partners: Vec<String>,
    pub rows_moved: i64,
    pub rows_rejected: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartnerReport {
    pub partner: String,
    pub title: Option<String>,
    pub hotline: Option<String>,
    pub health: Health,
    pub mappings: Vec<MappingReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MappingReport {
    pub mapping: String,
    pub partner: String,
    pub direction: String,
    pub health: Health,
    /// Why the health is what it is, in words.
    pub health_reason: String,
    pub runs_ok: i64,
    pub runs_failed: i64,
    pub rows_read: i64,
    pub inserted: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub deleted: i64,
    pub rejected: i64,
    /// Rows written with a partner code that fell back to its nearest
    /// ancestor's 'other' classification (`fallback = "other"`).
    pub fallbacks: i64,
    pub watermark: Option<String>,
    pub lag_seconds: Option<i64>,
    pub worst_lag_seconds: Option<i64>,
    /// Rows read per second of run time in the period.
    pub rows_per_second: Option<f64>,
    pub last_success: Option<DateTime<Utc>>,
    pub first_error: Option<Event>,
    pub last_error: Option<Event>,
    pub quarantined_open: i64,
    pub top_rejections: Vec<Rejections>,
    /// Rows moved (inserted + updated + deleted) per hour, from the exchange log.
    pub moved_per_hour: Vec<HourCount>,
    /// Lag at the end of each successful run.
    pub lag_series: Vec<LagPoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rejections {
    pub rule: String,
    pub field: Option<String>,
    pub count: i64,
    pub example_key: String,
    pub example_reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HourCount {
    pub hour: DateTime<Utc>,
    pub rows: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LagPoint {
    pub at: DateTime<Utc>,
    pub lag_seconds: i64,
}

fn rfc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Builds the report for `[since, until)`, for one partner or all.
pub async fn build(
    cfg: &Config,
    pool: &Pool,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    partner: Option<&str>,
) -> anyhow::Result<Report> {
    let state = State::new(pool.clone());
    let now = Utc::now();
    let head = fetch_pool(
        pool,
        &format!(
            "SELECT seq, hash FROM {} WHERE id = 1",
            state.t("hlx_exchange_log_head")
        ),
        &[],
    )
    .await?;
    let log_head = LogHead {
        seq: head.first().map(|r| r.i64(0)).transpose()?.flatten().unwrap_or(0),
        hash: head
            .first()
            .map(|r| r.text(1))
            .transpose()?
            .flatten()
            .unwrap_or_default(),
    };
    let entries = crate::exchange_log::entries_between(pool, &rfc(since), &rfc(until)).await?;
    let mut partners: Vec<PartnerReport> = Vec::new();
    for p in cfg.partners.iter().filter(|p| partner.is_none_or(|x| x == p.name)) {
        let mut maps = Vec::new();
        for m in cfg.mappings.iter().filter(|m| m.partner == p.name) {
            maps.push(mapping_report(cfg, &state, m, since, until, now, &entries).await?);
        }
        let health = maps.iter().map(|m| m.health).max().unwrap_or(Health::Healthy);
        partners.push(PartnerReport {
            partner: p.name.clone(),
            title: p.title.clone(),
            hotline: p.hotline.clone(),
            health,
            mappings: maps,
        });
    }
    let mut summary = Summary {
        partners: partners.len(),
        ..Summary::default()
    };
    for p in &partners {
        match p.health {
            Health::Healthy => summary.healthy += 1,
            Health::Lagging => summary.lagging += 1,
            Health::Failing => summary.failing += 1,
            Health::Silent => summary.silent += 1,
        }
        for m in &p.mappings {
            summary.rows_moved += m.inserted + m.updated + m.deleted;
            summary.rows_rejected += m.rejected;
            summary.runs_failed += m.runs_failed;
        }
    }
    let hotlines = hotline_groups(pool, &partners).await;
    Ok(Report {
        schema_version: SCHEMA_VERSION,
        generated_at: now,
        since,
        until,
        summary,
        partners,
        hotlines,
        log_head,
    })
}

/// Groups partners by hotline, named from the `hotline` table where it
/// lists the code (a province on its own schema may have no such table).
async fn hotline_groups(pool: &Pool, partners: &[PartnerReport]) -> Vec<HotlineGroup> {
    let mut groups: BTreeMap<&str, HotlineGroup> = BTreeMap::new();
    for p in partners {
        let Some(h) = p.hotline.as_deref() else { continue };
        let g = groups.entry(h).or_insert_with(|| HotlineGroup {
            hotline: h.to_string(),
            name: None,
            service_number: None,
            health: Health::Healthy,
            partners: Vec::new(),
            rows_moved: 0,
            rows_rejected: 0,
        });
        g.partners.push(p.partner.clone());
        g.health = g.health.max(p.health);
        for m in &p.mappings {
            g.rows_moved += m.inserted + m.updated + m.deleted;
            g.rows_rejected += m.rejected;
        }
    }
    for g in groups.values_mut() {
        if let Ok(rows) = fetch_pool(
            pool,
            "SELECT name, service_number FROM hotline WHERE hotline_code = ?",
            &[g.hotline.as_str().into()],
        )
        .await
        {
            if let Some(r) = rows.first() {
                g.name = r.text(0).ok().flatten();
                g.service_number = r.text(1).ok().flatten();
            }
        }
    }
    groups.into_values().collect()
}

async fn mapping_report(
    cfg: &Config,
    state: &State,
    m: &crate::mapping::Mapping,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
    entries: &[crate::exchange_log::Entry],
) -> anyhow::Result<MappingReport> {
    let pool = &state.pool;
    let runs = fetch_pool(
        pool,
        &format!(
            "SELECT status, started_at, finished_at, rows_read, inserted, updated, unchanged, deleted, rejected, wm_to, error, fallbacks \
             FROM {} WHERE mapping = ? AND started_at >= ? AND started_at < ? ORDER BY id",
            state.t("hlx_run")
        ),
        &[m.name.as_str().into(), since.into(), until.into()],
    )
    .await?;
    let mut r = MappingReport {
        mapping: m.name.clone(),
        partner: m.partner.clone(),
        direction: m.direction.as_str().into(),
        health: Health::Healthy,
        health_reason: String::new(),
        runs_ok: 0,
        runs_failed: 0,
        rows_read: 0,
        inserted: 0,
        updated: 0,
        unchanged: 0,
        deleted: 0,
        rejected: 0,
        fallbacks: 0,
        watermark: None,
        lag_seconds: None,
        worst_lag_seconds: None,
        rows_per_second: None,
        last_success: None,
        first_error: None,
        last_error: None,
        quarantined_open: state.open_quarantine_count(&m.name).await?,
        top_rejections: Vec::new(),
        moved_per_hour: Vec::new(),
        lag_series: Vec::new(),
    };
    let mut run_secs = 0.0;
    for row in &runs {
        let status = row.text(0)?.unwrap_or_default();
        let started = row.utc(1)?;
        let finished = row.utc(2)?;
        let n = |i: usize| -> anyhow::Result<i64> { Ok(row.i64(i)?.unwrap_or(0)) };
        r.rows_read += n(3)?;
        r.inserted += n(4)?;
        r.updated += n(5)?;
        r.unchanged += n(6)?;
        r.deleted += n(7)?;
        r.rejected += n(8)?;
        r.fallbacks += n(11)?;
        if let (Some(s), Some(f)) = (started, finished) {
            run_secs += (f - s).num_microseconds().unwrap_or(0) as f64 / 1e6;
        }
        match status.as_str() {
            "ok" | "stopped" => {
                r.runs_ok += 1;
                if let Some(f) = finished {
                    r.last_success = Some(f);
                    // The lag when this run ended: how old the newest change it had taken was.
                    let wm = row.text(9)?;
                    if let Some(at) = wm.as_deref().and_then(|w| text_instant(w, m.zone)) {
                        let lag = (f - at).num_seconds();
                        r.lag_series.push(LagPoint {
                            at: f,
                            lag_seconds: lag,
                        });
                    }
                }
            }
            "failed" | "halted" => {
                r.runs_failed += 1;
                let ev = Event {
                    at: finished.or(started).unwrap_or(since),
                    message: row.text(10)?.unwrap_or_else(|| status.clone()),
                };
                if r.first_error.is_none() {
                    r.first_error = Some(ev.clone());
                }
                r.last_error = Some(ev);
            }
            _ => {}
        }
    }
    if run_secs > 0.0 {
        r.rows_per_second = Some((r.rows_read as f64 / run_secs * 10.0).round() / 10.0);
    }
    // The lag series carries forward the watermark between runs: a run that
    // moved nothing leaves the previous watermark, so the series shows the
    // lag growing while the partner is quiet.
    r.worst_lag_seconds = r.lag_series.iter().map(|p| p.lag_seconds).max();

    let id = state.mapping_id(&m.name, &m.partner).await?;
    if let Some(pos) = state.position(id).await? {
        r.watermark = Some(pos.wm.to_string());
        r.lag_seconds = watermark_instant(&pos.wm, m.zone).map(|t| (now - t).num_seconds());
    }
    if let Some(l) = r.lag_seconds {
        if until >= now - Duration::minutes(1) {
            r.worst_lag_seconds = Some(r.worst_lag_seconds.map_or(l, |w| w.max(l)));
        }
    }

    // Rows moved per hour, from the exchange log's batches.
    let mut hours: BTreeMap<DateTime<Utc>, i64> = BTreeMap::new();
    for e in entries
        .iter()
        .filter(|e| e.kind == "batch" && e.mapping.as_deref() == Some(m.name.as_str()))
    {
        if let Ok(at) = DateTime::parse_from_rfc3339(&e.logged_at) {
            let at = at.with_timezone(&Utc);
            let hour = at
                - Duration::seconds(at.timestamp() % 3600)
                - Duration::nanoseconds(at.timestamp_subsec_nanos() as i64);
            *hours.entry(hour).or_default() += e.inserted + e.updated + e.deleted;
        }
    }
    r.moved_per_hour = hours.into_iter().map(|(hour, rows)| HourCount { hour, rows }).collect();

    let q = fetch_pool(
        pool,
        &format!(
            "SELECT rule, field, COUNT(*), MIN(row_key), MIN(reason) FROM {} \
             WHERE mapping = ? AND last_seen >= ? AND last_seen < ? GROUP BY rule, field ORDER BY COUNT(*) DESC LIMIT 5",
            state.t("hlx_quarantine")
        ),
        &[m.name.as_str().into(), since.into(), until.into()],
    )
    .await?;
    for row in &q {
        r.top_rejections.push(Rejections {
            rule: row.text(0)?.unwrap_or_default(),
            field: row.text(1)?,
            count: row.i64(2)?.unwrap_or(0),
            example_key: row.text(3)?.unwrap_or_default(),
            example_reason: row.text(4)?.unwrap_or_default(),
        });
    }

    // Health.
    let last = fetch_pool(
        pool,
        &format!(
            "SELECT status, finished_at FROM {} WHERE mapping = ? AND status <> 'running' ORDER BY id DESC LIMIT 1",
            state.t("hlx_run")
        ),
        &[m.name.as_str().into()],
    )
    .await?;
    let last_status = last.first().map(|r| r.text(0)).transpose()?.flatten();
    let last_ok = fetch_pool(
        pool,
        &format!(
            "SELECT MAX(finished_at) FROM {} WHERE mapping = ? AND status IN ('ok', 'stopped')",
            state.t("hlx_run")
        ),
        &[m.name.as_str().into()],
    )
    .await?
    .first()
    .map(|r| r.utc(0))
    .transpose()
    .ok()
    .flatten()
    .flatten();
    let lag_limit = cfg.report.lag_threshold.0.as_secs() as i64;
    let silent_limit = cfg.report.silent_after.0.as_secs() as i64;
    let since_ok = last_ok.map(|t| (now - t).num_seconds());
    (r.health, r.health_reason) = match (last_status.as_deref(), since_ok, r.lag_seconds) {
        (Some("failed" | "halted"), _, _) => (
            Health::Failing,
            format!(
                "the last run {}: {}",
                last_status.as_deref().unwrap_or(""),
                r.last_error
                    .as_ref()
                    .map(|e| e.message.as_str())
                    .unwrap_or("see hlx status")
            ),
        ),
        (_, None, _) => (Health::Lagging, "no run has succeeded yet".into()),
        (_, Some(s), _) if s > lag_limit => (
            Health::Lagging,
            format!("no successful run for {} (threshold {})", human(s), human(lag_limit)),
        ),
        (_, _, Some(l)) if l > silent_limit => (
            Health::Silent,
            format!(
                "runs succeed but the newest row is {} old (silent after {})",
                human(l),
                human(silent_limit)
            ),
        ),
        (_, _, Some(l)) if l > lag_limit => (
            Health::Lagging,
            format!("the watermark is {} behind (threshold {})", human(l), human(lag_limit)),
        ),
        _ => (Health::Healthy, "runs succeed and the watermark is current".into()),
    };
    Ok(r)
}

/// A watermark as `hlx_run.wm_to` stores it (the value's text), as an instant.
fn text_instant(s: &str, zone: chrono::FixedOffset) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f %:z") {
        return Some(t.with_timezone(&Utc));
    }
    watermark_instant(&crate::value::Value::Text(s.to_string()), zone)
}

/// `95s`, `12m`, `3h`, `2d`.
pub fn human(s: i64) -> String {
    match s {
        s if s < 0 => "ahead".into(),
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn opt_human(s: Option<i64>) -> String {
    s.map(human).unwrap_or_else(|| "-".into())
}

/// The line an operator reads first.
pub fn summary_line(r: &Report) -> String {
    let s = &r.summary;
    format!(
        "{} partner(s): {} healthy, {} lagging, {} failing, {} silent — {} rows moved, {} rejected, {} failed run(s)",
        s.partners, s.healthy, s.lagging, s.failing, s.silent, s.rows_moved, s.rows_rejected, s.runs_failed
    )
}

fn local(t: DateTime<Utc>, zone: chrono::FixedOffset) -> String {
    t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string()
}

/// Aligned text for a terminal.
pub fn text(r: &Report, zone: chrono::FixedOffset) -> String {
    let mut s = format!(
        "hlx sync report {} – {} ({})\n{}\n",
        local(r.since, zone),
        local(r.until, zone),
        zone,
        summary_line(r)
    );
    let w = r
        .partners
        .iter()
        .flat_map(|p| p.mappings.iter().map(|m| m.mapping.chars().count()))
        .max()
        .unwrap_or(7)
        .max(7);
    if !r.hotlines.is_empty() {
        s.push_str("\nby hotline\n");
        for g in &r.hotlines {
            let label = match (&g.service_number, &g.name) {
                (Some(n), Some(name)) => format!("{} {n} {name}", g.hotline),
                (None, Some(name)) => format!("{} {name}", g.hotline),
                _ => g.hotline.clone(),
            };
            s.push_str(&format!(
                "  {:<8} {label}: {} — {} rows moved, {} rejected\n",
                g.health.as_str(),
                g.partners.join(", "),
                g.rows_moved,
                g.rows_rejected
            ));
        }
    }
    for p in &r.partners {
        s.push_str(&format!(
            "\n{} {}{}\n",
            p.health.as_str().to_uppercase(),
            p.partner,
            p.title.as_deref().map(|t| format!(" ({t})")).unwrap_or_default()
        ));
        s.push_str(&format!(
            "  {:<w$}  {:<8} {:>5} {:>6} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>6} {:>9} {:>8}  last success\n",
            "mapping",
            "health",
            "runs",
            "failed",
            "read",
            "inserted",
            "updated",
            "unchanged",
            "deleted",
            "rejected",
            "lag",
            "worst lag",
            "rows/s"
        ));
        for m in &p.mappings {
            s.push_str(&format!(
                "  {:<w$}  {:<8} {:>5} {:>6} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>6} {:>9} {:>8}  {}\n",
                m.mapping,
                m.health.as_str(),
                m.runs_ok + m.runs_failed,
                m.runs_failed,
                m.rows_read,
                m.inserted,
                m.updated,
                m.unchanged,
                m.deleted,
                m.rejected,
                opt_human(m.lag_seconds),
                opt_human(m.worst_lag_seconds),
                m.rows_per_second
                    .map(|x| format!("{x:.0}"))
                    .unwrap_or_else(|| "-".into()),
                m.last_success.map(|t| local(t, zone)).unwrap_or_else(|| "never".into()),
            ));
            s.push_str(&format!("  {:<w$}  {}\n", "", m.health_reason));
            if m.fallbacks > 0 {
                s.push_str(&format!(
                    "  {:<w$}  {} row(s) classified 'other' by code-set fallback\n",
                    "", m.fallbacks
                ));
            }
            if let Some(e) = &m.first_error {
                s.push_str(&format!(
                    "  {:<w$}  first error {}: {}\n",
                    "",
                    local(e.at, zone),
                    e.message
                ));
            }
            if let Some(e) = &m.last_error {
                if m.runs_failed > 1 {
                    s.push_str(&format!(
                        "  {:<w$}  last error  {}: {}\n",
                        "",
                        local(e.at, zone),
                        e.message
                    ));
                }
            }
            for x in &m.top_rejections {
                s.push_str(&format!(
                    "  {:<w$}  {:>6} × {} {} (e.g. key {}: {})\n",
                    "",
                    x.count,
                    x.rule,
                    x.field.as_deref().unwrap_or(""),
                    x.example_key,
                    x.example_reason
                ));
            }
            if m.quarantined_open > 0 {
                s.push_str(&format!(
                    "  {:<w$}  {} row(s) in quarantine: hlx rejects list --mapping {}\n",
                    "", m.quarantined_open, m.mapping
                ));
            }
        }
    }
    s.push_str(&format!(
        "\nexchange log head: entry {} {}\n",
        r.log_head.seq, r.log_head.hash
    ));
    s
}

/// JSON, stable (see `docs/report.schema.json`).
pub fn json(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_default()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One row per mapping. UTF-8; `bom` prefixes a byte-order mark so that
/// spreadsheet programs on Windows open the Chinese text correctly.
pub fn csv(r: &Report, bom: bool) -> String {
    let mut s = String::new();
    if bom {
        s.push('\u{feff}');
    }
    s.push_str("partner,partner_title,mapping,direction,health,health_reason,runs_ok,runs_failed,rows_read,inserted,updated,unchanged,deleted,rejected,quarantined_open,watermark,lag_seconds,worst_lag_seconds,rows_per_second,last_success,first_error,last_error,top_rejection,fallbacks\r\n");
    for p in &r.partners {
        for m in &p.mappings {
            let cells: Vec<String> = vec![
                p.partner.clone(),
                p.title.clone().unwrap_or_default(),
                m.mapping.clone(),
                m.direction.clone(),
                m.health.as_str().into(),
                m.health_reason.clone(),
                m.runs_ok.to_string(),
                m.runs_failed.to_string(),
                m.rows_read.to_string(),
                m.inserted.to_string(),
                m.updated.to_string(),
                m.unchanged.to_string(),
                m.deleted.to_string(),
                m.rejected.to_string(),
                m.quarantined_open.to_string(),
                m.watermark.clone().unwrap_or_default(),
                m.lag_seconds.map(|x| x.to_string()).unwrap_or_default(),
                m.worst_lag_seconds.map(|x| x.to_string()).unwrap_or_default(),
                m.rows_per_second.map(|x| x.to_string()).unwrap_or_default(),
                m.last_success.map(rfc).unwrap_or_default(),
                m.first_error
                    .as_ref()
                    .map(|e| format!("{} {}", rfc(e.at), e.message))
                    .unwrap_or_default(),
                m.last_error
                    .as_ref()
                    .map(|e| format!("{} {}", rfc(e.at), e.message))
                    .unwrap_or_default(),
                m.top_rejections
                    .first()
                    .map(|x| format!("{} × {}: {}", x.count, x.rule, x.example_reason))
                    .unwrap_or_default(),
                // Added in a later version: at the end, so that columns keep their positions.
                m.fallbacks.to_string(),
            ];
            s.push_str(&cells.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","));
            s.push_str("\r\n");
        }
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A bar chart of rows moved per hour over the period, as inline SVG.
fn svg_bars(r: &Report, m: &MappingReport) -> String {
    let (w, h) = (360.0, 80.0);
    let hours = ((r.until - r.since).num_hours().max(1)) as usize;
    let max = m.moved_per_hour.iter().map(|x| x.rows).max().unwrap_or(0).max(1) as f64;
    let bw = w / hours as f64;
    let mut s = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {w} {}\" width=\"{w}\" height=\"{}\" role=\"img\" aria-label=\"rows moved per hour\">\
         <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" class=\"bg\"/>",
        h + 14.0,
        h + 14.0
    );
    for x in &m.moved_per_hour {
        let i = (x.hour - r.since).num_hours();
        if i < 0 || i as usize >= hours {
            continue;
        }
        let bh = (x.rows as f64 / max * (h - 4.0)).max(1.0);
        s.push_str(&format!(
            "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\"><title>{}: {} rows</title></rect>",
            i as f64 * bw + 0.5,
            h - bh,
            (bw - 1.0).max(1.0),
            esc(&x.hour.format("%Y-%m-%d %H:00 UTC").to_string()),
            x.rows
        ));
    }
    s.push_str(&format!(
        "<text x=\"2\" y=\"{}\" class=\"axis\">rows moved per hour (max {})</text></svg>",
        h + 11.0,
        max as i64
    ));
    s
}

/// A line of the lag at the end of each run over the period, as inline SVG.
fn svg_lag(r: &Report, m: &MappingReport) -> String {
    let (w, h) = (360.0, 80.0);
    let span = (r.until - r.since).num_seconds().max(1) as f64;
    let max = m.lag_series.iter().map(|p| p.lag_seconds).max().unwrap_or(0).max(1) as f64;
    let pts: Vec<String> = m
        .lag_series
        .iter()
        .map(|p| {
            let x = ((p.at - r.since).num_seconds() as f64 / span * w).clamp(0.0, w);
            let y = h - (p.lag_seconds.max(0) as f64 / max * (h - 4.0));
            format!("{x:.1},{y:.1}")
        })
        .collect();
    // A dot per run, so that runs close together still show.
    let dots: String = pts
        .iter()
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            format!("<circle class=\"dot\" cx=\"{x}\" cy=\"{y}\" r=\"2\"/>")
        })
        .collect();
    format!(
        "<svg class=\"chart\" viewBox=\"0 0 {w} {hh}\" width=\"{w}\" height=\"{hh}\" role=\"img\" aria-label=\"lag over time\">\
         <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" class=\"bg\"/>\
         <polyline class=\"line\" points=\"{}\"/>{dots}\
         <text x=\"2\" y=\"{ty}\" class=\"axis\">lag at the end of each run (max {})</text></svg>",
        pts.join(" "),
        human(max as i64),
        hh = h + 14.0,
        ty = h + 11.0
    )
}

/// One self-contained HTML page: no external assets, works offline.
pub fn html(r: &Report, zone: chrono::FixedOffset) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
    );
    s.push_str(&format!(
        "<title>hlx 同步报告 {} – {}</title>",
        esc(&local(r.since, zone)),
        esc(&local(r.until, zone))
    ));
    s.push_str(
        "<style>\
         body{font-family:system-ui,'Noto Sans CJK SC','Microsoft YaHei',sans-serif;margin:24px;color:#1d2430;background:#fff}\
         h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 6px}\
         .summary{font-size:15px;padding:10px 12px;border-radius:6px;background:#f2f5f9;margin:10px 0}\
         .pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}\
         .healthy{background:#2e7d32}.lagging{background:#ed6c02}.failing{background:#c62828}.silent{background:#607d8b}\
         table{border-collapse:collapse;font-size:13px;margin:4px 0 8px}\
         th,td{border-bottom:1px solid #dde3ea;padding:4px 8px;text-align:right;white-space:nowrap}\
         th:first-child,td:first-child{text-align:left} td.reason{text-align:left;white-space:normal;max-width:520px;color:#444}\
         .charts{display:flex;gap:16px;flex-wrap:wrap;margin:4px 0 16px}\
         .chart .bg{fill:#f7f9fb}.chart .bar{fill:#1f77b4}.chart .line{fill:none;stroke:#d62728;stroke-width:1.5}.chart .dot{fill:#d62728}\
         .chart .axis{font-size:10px;fill:#555}\
         .muted{color:#667;font-size:12px} code{font-size:12px}\
         </style></head><body>",
    );
    s.push_str(&format!(
        "<h1>hlx 同步报告 · sync report</h1><div class=\"muted\">{} – {} ({}) · generated {}</div>",
        esc(&local(r.since, zone)),
        esc(&local(r.until, zone)),
        zone,
        esc(&local(r.generated_at, zone))
    ));
    s.push_str(&format!("<div class=\"summary\">{}</div>", esc(&summary_line(r))));
    for p in &r.partners {
        s.push_str(&format!(
            "<h2><span class=\"pill {}\">{}</span> {}{}</h2>",
            p.health.as_str(),
            p.health.as_str(),
            esc(&p.partner),
            p.title.as_deref().map(|t| format!(" · {}", esc(t))).unwrap_or_default()
        ));
        s.push_str(
            "<table><tr><th>mapping</th><th>health</th><th>runs</th><th>failed</th><th>read</th><th>inserted</th>\
             <th>updated</th><th>unchanged</th><th>deleted</th><th>rejected</th><th>quarantined</th><th>lag</th>\
             <th>worst lag</th><th>rows/s</th><th>last success</th></tr>",
        );
        for m in &p.mappings {
            s.push_str(&format!(
                "<tr><td>{}</td><td><span class=\"pill {}\">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&m.mapping),
                m.health.as_str(),
                m.health.as_str(),
                m.runs_ok + m.runs_failed,
                m.runs_failed,
                m.rows_read,
                m.inserted,
                m.updated,
                m.unchanged,
                m.deleted,
                m.rejected,
                m.quarantined_open,
                opt_human(m.lag_seconds),
                opt_human(m.worst_lag_seconds),
                m.rows_per_second.map(|x| format!("{x:.0}")).unwrap_or_else(|| "-".into()),
                m.last_success.map(|t| esc(&local(t, zone))).unwrap_or_else(|| "never".into()),
            ));
            let mut notes = vec![esc(&m.health_reason)];
            if let Some(e) = &m.first_error {
                notes.push(format!("first error {}: {}", esc(&local(e.at, zone)), esc(&e.message)));
            }
            if let Some(e) = m.last_error.as_ref().filter(|_| m.runs_failed > 1) {
                notes.push(format!("last error {}: {}", esc(&local(e.at, zone)), esc(&e.message)));
            }
            for x in &m.top_rejections {
                notes.push(format!(
                    "{} × {} {} (e.g. key <code>{}</code>: {})",
                    x.count,
                    esc(&x.rule),
                    esc(x.field.as_deref().unwrap_or("")),
                    esc(&x.example_key),
                    esc(&x.example_reason)
                ));
            }
            s.push_str(&format!(
                "<tr><td></td><td class=\"reason\" colspan=\"14\">{}</td></tr>",
                notes.join("<br>")
            ));
        }
        s.push_str("</table>");
        for m in &p.mappings {
            s.push_str(&format!(
                "<div class=\"muted\">{}</div><div class=\"charts\">{}{}</div>",
                esc(&m.mapping),
                svg_bars(r, m),
                svg_lag(r, m)
            ));
        }
    }
    s.push_str(&format!(
        "<p class=\"muted\">exchange log head: entry {} <code>{}</code> — keep this hash elsewhere; \
         <code>hlx log verify</code> checks the chain up to it.</p></body></html>\n",
        r.log_head.seq,
        esc(&r.log_head.hash)
    ));
    s
}

/// Parses `--since`: a duration back from now (`24h`, `7d`) or a time
/// (`2026-11-25`, `2026-11-25 08:00`, RFC 3339) in `zone`.
pub fn parse_time(s: &str, zone: chrono::FixedOffset, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone};
    if let Ok(d) = crate::config::Duration::parse(s) {
        return Ok(now - d.chrono());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let naive = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    });
    naive
        .and_then(|n| zone.from_local_datetime(&n).single())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            format!("`{s}`: expected a duration such as 24h or 7d, or a time such as 2026-11-25 or 2026-11-25 08:00")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_or_a_local_time() {
        let zone = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
        let now = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_time("24h", zone, now).unwrap(), now - Duration::hours(24));
        assert_eq!(
            parse_time("2026-11-26", zone, now).unwrap(),
            DateTime::parse_from_rfc3339("2026-11-25T16:00:00Z").unwrap()
        );
        assert!(parse_time("yesterday", zone, now)
            .unwrap_err()
            .contains("expected a duration"));
    }

    #[test]
    fn csv_quotes_what_needs_quoting_and_keeps_chinese() {
        assert_eq!(csv_field("海口市"), "海口市");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
