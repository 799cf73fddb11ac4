//! `hlx reconcile -m NAME [--apply]`: compares a mapping's source and
//! target in full, a chunk of keys at a time, and (with `--apply`) repairs
//! the drift a delta exchange cannot see: rows hard-deleted at the source,
//! target rows changed or removed by hand, rows that never arrived.
//!
//! Two passes, each in `batch_size` chunks by key, so memory does not grow
//! with the table:
//! 1. source → target: every source row is mapped as a run would map it and
//!    compared with the target row of the same key, field by field (a
//!    protected field in the clear, times as instants, numbers as numbers):
//!    **missing** (no target row), **differs** (which fields), or equal;
//!    rows the mapping rejects are counted and left to the quarantine.
//! 2. target → source: the target's rows in the mapping's slice (the fields
//!    with a constant `value`, e.g. `source_system = "haikou"`) whose key has
//!    no source row: **extra** (hard-deleted at the source, or written by
//!    someone else).
//!
//! `--apply` upserts the missing and differing rows and deletes the extra
//! ones (or marks them, with `[target] on_delete`), records their checksums
//! as a run would, and appends the exchange log. It holds the mapping's
//! lease meanwhile, so it is safe while the daemon runs: the mapping's
//! scheduled runs wait (are skipped) until it is done.
//!
//! The target key must be a copy of the source key (`order_no = "GDBH"`),
//! which is how pass 2 finds a target row's source row.

use crate::exchange::Exchange;
use crate::mapping::rules::{Input, Transform};
use crate::mapping::{deleted_checksum, Mapped, Mapping, SourceSpec};
use crate::state::{Counts, StateRow};
use crate::value::Value;
use anyhow::Context as _;
use chrono::{FixedOffset, TimeZone};
use serde::Serialize;
use std::collections::HashMap;

/// How many keys of each kind the report lists.
const SHOW: usize = 20;

#[derive(Debug, Default, Serialize)]
pub struct Reconciled {
    pub mapping: String,
    pub applied: bool,
    pub source_rows: u64,
    pub target_rows: u64,
    pub equal: u64,
    pub rejected: u64,
    pub missing: u64,
    pub differs: u64,
    pub extra: u64,
    /// Up to 20 keys of each kind (masked where the key is personal).
    pub missing_keys: Vec<String>,
    pub differing: Vec<Differing>,
    pub extra_keys: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Differing {
    pub key: String,
    pub fields: Vec<String>,
}

/// Runs the comparison (and the repair, with `apply`).
pub async fn reconcile(ex: &Exchange, m: &Mapping, apply: bool) -> anyhow::Result<Reconciled> {
    if let Some(p) = &m.pair {
        anyhow::bail!(
            "{} is a half of the two-way mapping {}: each side owns fields the other may not overwrite, which a \
             one-way comparison cannot respect; reconcile does not apply to it",
            m.name,
            p.name
        );
    }
    let copies = key_copies(m)?;
    let id = ex.state.mapping_id(&m.name, &m.partner).await?;
    let ttl = chrono::Duration::seconds(300);
    if let Err(holder) = ex.state.acquire_lease(id, &ex.owner, ttl).await? {
        anyhow::bail!(
            "a run of {} is in progress ({holder}); try again when it is done",
            m.name
        );
    }
    let r = walk(ex, m, id, &copies, apply).await;
    let _ = ex.state.release_lease(id, &ex.owner).await;
    r
}

/// For each target key field, the source key column it copies.
fn key_copies(m: &Mapping) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::new();
    for &k in &m.target.key {
        let f = &m.fields[k];
        match (&f.input, &f.transform) {
            (Input::Column(c), Transform::None) if m.source.key.contains(c) => out.push(*c),
            _ => anyhow::bail!(
                "reconcile needs each target key field to be a plain copy of a source key column; `{}` is not",
                f.target
            ),
        }
    }
    let mut sorted = out.clone();
    sorted.sort_unstable();
    let mut source = m.source.key.clone();
    source.sort_unstable();
    if sorted != source {
        anyhow::bail!("reconcile needs the target key to copy the whole source key, each column once");
    }
    Ok(out)
}

async fn walk(ex: &Exchange, m: &Mapping, id: i64, copies: &[usize], apply: bool) -> anyhow::Result<Reconciled> {
    let (reader, writer, partner) = crate::exchange::ends(ex, m).await?;
    let target_pool = partner.clone().unwrap_or_else(|| ex.province.clone());
    // The target read as if it were a source: its fields are the columns.
    let mut tm = m.clone();
    tm.source = SourceSpec {
        table: m.target.table.clone(),
        columns: m.fields.iter().map(|f| f.target.clone()).collect(),
        key: m.target.key.clone(),
        watermark: None,
        deleted: None,
        consume: None,
    };
    let target = crate::db::read::Reader::new(target_pool.clone(), &tm)
        .await
        .context("reading the target")?;
    // The mapping's slice of a shared target: its constant fields.
    let only: Vec<(usize, Value)> = m
        .fields
        .iter()
        .enumerate()
        .filter_map(|(i, f)| match &f.input {
            Input::Const(v) if matches!(f.transform, Transform::None) => Some((i, v.clone())),
            _ => None,
        })
        .collect();

    let mut out = Reconciled {
        mapping: m.name.clone(),
        applied: apply,
        ..Reconciled::default()
    };
    let key_text = |row: &[Value], cols: &[usize]| {
        let k: Vec<&Value> = cols.iter().map(|&c| &row[c]).collect();
        crate::mapping::key_text(&k)
    };

    // Pass 1: source → target.
    let mut after: Option<Vec<Value>> = None;
    loop {
        let rows = reader.scan(after.as_deref(), &[]).await.context("reading the source")?;
        let Some(last) = rows.last() else { break };
        after = Some(reader.key_of(last));
        out.source_rows += rows.len() as u64;
        let mut fix: Vec<(Vec<Value>, [u8; 32], String)> = Vec::new();
        let mut gone: Vec<(Vec<Value>, String)> = Vec::new();
        let mut wanted: Vec<(usize, Mapped)> = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            match m.map_row(row) {
                Ok(mapped) => wanted.push((i, mapped)),
                Err(_) => out.rejected += 1,
            }
        }
        let keys: Vec<Vec<Value>> = wanted
            .iter()
            .map(|(i, _)| copies.iter().map(|&c| rows[*i][c].clone()).collect())
            .collect();
        let found: HashMap<String, Vec<Value>> = target
            .rows_by_key(&keys)
            .await
            .context("reading the target")?
            .into_iter()
            .map(|t| (key_text(&t, &m.target.key), t))
            .collect();
        for (i, mapped) in wanted {
            let src_key = m.row_key(&rows[i]);
            let tkey = key_text(
                &copies.iter().map(|&c| rows[i][c].clone()).collect::<Vec<_>>(),
                &(0..copies.len()).collect::<Vec<_>>(),
            );
            match (mapped, found.get(&tkey)) {
                (Mapped::Row { values, checksum, .. }, None) => {
                    out.missing += 1;
                    if out.missing_keys.len() < SHOW {
                        out.missing_keys.push(m.show_key(&src_key));
                    }
                    fix.push((values, checksum, src_key));
                }
                (Mapped::Row { values, checksum, .. }, Some(t)) => {
                    let fields = differing_fields(m, &writer, &values, t);
                    if fields.is_empty() {
                        out.equal += 1;
                    } else {
                        out.differs += 1;
                        if out.differing.len() < SHOW {
                            out.differing.push(Differing {
                                key: m.show_key(&src_key),
                                fields: fields.clone(),
                            });
                        }
                        fix.push((values, checksum, src_key));
                    }
                }
                // Marked deleted at the source: the target should not hold it.
                (Mapped::Deleted { key }, Some(_)) => {
                    out.extra += 1;
                    if out.extra_keys.len() < SHOW {
                        out.extra_keys.push(m.show_key(&src_key));
                    }
                    gone.push((key, src_key));
                }
                (Mapped::Deleted { .. }, None) => out.equal += 1,
            }
        }
        if apply {
            repair(ex, m, id, &writer, partner.as_ref(), &fix, &gone).await?;
        }
    }

    // Pass 2: target → source, in the mapping's slice of the target. Not
    // for the flag pattern: a partner purges the staging rows it saw taken,
    // which is no reason to delete them in the province.
    let mut after: Option<Vec<Value>> = None;
    while m.source.consume.is_none() {
        let rows = target
            .scan(after.as_deref(), &only)
            .await
            .context("reading the target")?;
        let Some(last) = rows.last() else { break };
        after = Some(target.key_of(last));
        out.target_rows += rows.len() as u64;
        let keys: Vec<Vec<Value>> = rows.iter().map(|t| target.key_of(t)).collect();
        // The source key is the target key (copies), in source key order.
        let src_keys: Vec<Vec<Value>> = keys
            .iter()
            .map(|k| {
                m.source
                    .key
                    .iter()
                    .map(|sk| k[copies.iter().position(|c| c == sk).expect("checked")].clone())
                    .collect()
            })
            .collect();
        let present: std::collections::HashSet<String> = reader
            .rows_by_key(&src_keys)
            .await
            .context("reading the source")?
            .iter()
            .map(|r| m.row_key(r))
            .collect();
        let mut gone = Vec::new();
        for (k, sk) in keys.into_iter().zip(src_keys) {
            let refs: Vec<&Value> = sk.iter().collect();
            let src_key = crate::mapping::key_text(&refs);
            if !present.contains(&src_key) {
                out.extra += 1;
                if out.extra_keys.len() < SHOW {
                    out.extra_keys.push(m.show_key(&src_key));
                }
                gone.push((k, src_key));
            }
        }
        if apply && !gone.is_empty() {
            repair(ex, m, id, &writer, partner.as_ref(), &[], &gone).await?;
        }
    }
    Ok(out)
}

/// The fields whose stored value is not what the source maps to.
fn differing_fields(m: &Mapping, writer: &crate::db::write::Writer, mapped: &[Value], stored: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, f) in m.fields.iter().enumerate() {
        let (want, zone) = writer.as_stored(i, &f.unseal(&mapped[i]).unwrap_or_else(|_| mapped[i].clone()));
        let have = f.unseal(&stored[i]).unwrap_or_else(|_| stored[i].clone());
        if !same(&want, &have, zone) {
            out.push(f.target.to_string());
        }
    }
    out
}

/// Equal as a user would judge it: numbers by value, times as instants,
/// text without trailing blanks (CHAR padding), booleans by truth.
pub(crate) fn same(a: &Value, b: &Value, zone: FixedOffset) -> bool {
    use Value::*;
    match (a, b) {
        (Null, Null) => true,
        (Null, _) | (_, Null) => false,
        (Bool(x), y) | (y, Bool(x)) => *x == crate::mapping::truthy(y),
        _ => {
            if let (Some(x), Some(y)) = (instant(a, zone), instant(b, zone)) {
                return x == y;
            }
            let (sa, sb) = (a.to_string(), b.to_string());
            if let (Ok(x), Ok(y)) = (sa.trim().parse::<f64>(), sb.trim().parse::<f64>()) {
                if matches!(a, Int(_) | Float(_) | Decimal(_)) || matches!(b, Int(_) | Float(_) | Decimal(_)) {
                    return x == y;
                }
            }
            sa.trim_end() == sb.trim_end()
        }
    }
}

/// A time value as an instant: native timestamps, and the text forms hlx
/// writes to SQLite (RFC 3339, `yyyy-MM-dd HH:mm:ss[.f][±hh:mm]`).
pub(crate) fn instant(v: &Value, zone: FixedOffset) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::{DateTime, NaiveDateTime, Utc};
    match v {
        Value::TimestampTz(t) => Some(t.with_timezone(&Utc)),
        Value::Timestamp(n) => zone.from_local_datetime(n).single().map(|t| t.with_timezone(&Utc)),
        Value::Text(s) => {
            let s = s.trim();
            DateTime::parse_from_rfc3339(s)
                .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z"))
                .map(|t| t.with_timezone(&Utc))
                .ok()
                .or_else(|| {
                    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                        .ok()
                        .and_then(|n| zone.from_local_datetime(&n).single())
                        .map(|t| t.with_timezone(&Utc))
                })
        }
        _ => None,
    }
}

/// Writes the repairs of one chunk: upserts and deletes on the target (the
/// partner's own transaction for a push, committed first), checksums and the
/// exchange log in the province's.
async fn repair(
    ex: &Exchange,
    m: &Mapping,
    id: i64,
    writer: &crate::db::write::Writer,
    partner: Option<&crate::db::Pool>,
    fix: &[(Vec<Value>, [u8; 32], String)],
    gone: &[(Vec<Value>, String)],
) -> anyhow::Result<()> {
    if fix.is_empty() && gone.is_empty() {
        return Ok(());
    }
    let mut tx = ex.province.begin().await.context("province")?;
    let mut ptx = match partner {
        Some(p) => Some(p.begin().await.with_context(|| format!("partner {}", m.partner))?),
        None => None,
    };
    let rows: Vec<&[Value]> = fix.iter().map(|f| f.0.as_slice()).collect();
    let refused = writer
        .upsert(ptx.as_mut().unwrap_or(&mut tx), &rows, false)
        .await
        .context("repairing the target")?;
    if let Some((j, msg)) = refused.first() {
        anyhow::bail!(
            "the target refused row {}: {msg}; nothing of this chunk was repaired",
            fix[*j].2
        );
    }
    let keys: Vec<Vec<Value>> = gone.iter().map(|g| g.0.clone()).collect();
    let deleted = writer
        .delete(ptx.as_mut().unwrap_or(&mut tx), &keys)
        .await
        .context("deleting extra target rows")?;
    let mut saved: Vec<StateRow<'_>> = fix
        .iter()
        .map(|f| StateRow {
            key: &f.2,
            checksum: f.1,
            deleted: false,
            wm: None,
        })
        .collect();
    saved.extend(gone.iter().map(|g| StateRow {
        key: &g.1,
        checksum: deleted_checksum(),
        deleted: true,
        wm: None,
    }));
    ex.state
        .save_checksums_tx(&mut tx, id, &saved, false, false)
        .await
        .context("province: checksums")?;
    let c = Counts {
        batches: 1,
        updated: fix.len() as u64,
        deleted,
        ..Counts::default()
    };
    let e = crate::exchange::log_entry(m, None, crate::exchange_log::Kind::Batch, "reconcile", &c);
    crate::exchange_log::append_tx(&mut tx, ex.config.log.chain_hash, e)
        .await
        .context("province: exchange log")?;
    if let Some(p) = ptx {
        p.commit()
            .await
            .with_context(|| format!("partner {}: commit", m.partner))?;
    }
    tx.commit().await.context("province: commit")?;
    Ok(())
}
