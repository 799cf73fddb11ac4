//! Two-way mappings (`direction = "both"`): one file describes an exchange
//! in both directions, with field ownership.
//!
//! The file is written like a pull (`[source]` is the partner's table,
//! `[target]` the province's), plus `[target] watermark` (the province
//! table's change column) and `[conflict]`. Every field names its `owner`:
//! `province` (the hotline's: dispatch, deadline …), `partner` (the unit's:
//! acceptance, progress, result …) or `both`. A field is a copy or a
//! one-to-one code set, so that it can be read both ways.
//!
//! It loads as two mappings that run as a pair, the pull half first:
//! - `NAME.pull` (partner → province) writes only the fields the partner
//!   owns or shares: the partner's changes to the province's fields are not
//!   taken;
//! - `NAME.push` (province → partner) writes only the fields the province
//!   owns or shares, with the code sets reversed.
//!
//! Each half keeps its own watermark and checksums. After a half writes a
//! row, the other half's checksum of that row is recomputed from the row as
//! it now stands (origin tracking): when the row comes back on the other
//! side, it is seen as unchanged, so nothing echoes back and forth.
//!
//! A **conflict** is a shared field that both sides changed since the last
//! exchange (the pull half sees a partner row that changed while the
//! province's row also changed since the push half last saw it, and the two
//! values differ). `[conflict] policy = "province_wins"` keeps the
//! province's value (the push half then sends it to the partner);
//! `"newer_wins"` takes the side whose row changed later, by its change
//! column, the province winning within `skew`. Every conflict is recorded in
//! `hlx_conflict` with both values and the one kept.

use super::rules::{Field, Input, SealedInput, Transform};
use super::{Direction, Mapping, OnDelete, SourceSpec, TargetSpec};
use crate::ident::Ident;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Province,
    Partner,
    Both,
}

impl Owner {
    pub fn parse(s: &str) -> Option<Owner> {
        match s {
            "province" => Some(Owner::Province),
            "partner" => Some(Owner::Partner),
            "both" => Some(Owner::Both),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    NewerWins,
    ProvinceWins,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::NewerWins => "newer_wins",
            Policy::ProvinceWins => "province_wins",
        }
    }
}

/// What `compile` keeps of a two-way file for [`split`].
#[derive(Debug, Clone)]
pub struct BothSpec {
    /// Parallel to the mapping's fields.
    pub owners: Vec<Owner>,
    /// `[confidential]`: the province's column, the fields (indexes into
    /// the mapping's fields) and whether to refuse; the push half applies it.
    pub confidential: Option<(Ident, Vec<usize>, bool)>,
    pub province_watermark: Ident,
    pub policy: Policy,
    pub skew: chrono::Duration,
    pub province_zone: chrono::FixedOffset,
}

/// A half of a two-way mapping.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The two-way mapping's own name.
    pub name: String,
    pub role: Direction,
    /// The other half's mapping name.
    pub sibling: String,
    pub policy: Policy,
    pub skew: chrono::Duration,
    /// Pull half: the shared fields, as (index in the pull fields, index of
    /// the province column in the push half's source columns).
    pub shared: Vec<(usize, usize)>,
    /// Pull half: the province's own fields, the same way (written only into
    /// rows the province lacks; the partner's changes to them are ignored
    /// and counted).
    pub province_owned: Vec<(usize, usize)>,
}

/// Splits a compiled two-way mapping into its pull and push halves.
/// `Err` names what keeps a field from being read both ways.
pub fn split(m: Mapping, spec: BothSpec) -> Result<Vec<Mapping>, String> {
    let key_fields = m.target.key.clone();
    let mut problems = Vec::new();
    for (i, f) in m.fields.iter().enumerate() {
        // A constant is written by the pull half (into new rows only, when the
        // province owns it); the push half has no column to read it from.
        let constant_for_the_pull = matches!(f.input, Input::Const(_)) && spec.owners[i] != Owner::Both;
        let ok = (matches!(f.input, Input::Column(_)) || constant_for_the_pull)
            && matches!(
                &f.transform,
                Transform::None
                    | Transform::Datetime(super::datetime::DatetimeSpec::Auto)
                    | Transform::Codeset {
                        default: None,
                        fallback_other: false,
                        ..
                    }
            );
        if !ok {
            problems.push(format!(
                "field `{}`: in a two-way mapping a field is a column copy, `datetime = true`, a code set without default or fallback (it must read both ways), or a constant owned by one side",
                f.target
            ));
        }
        if key_fields.contains(&i) && !matches!(f.transform, Transform::None) {
            problems.push(format!(
                "field `{}`: a key field of a two-way mapping is a plain copy",
                f.target
            ));
        }
    }
    // The target key copies the source key, column for column, in order:
    // each half finds the other side's row by it.
    let copies: Vec<Option<usize>> = key_fields
        .iter()
        .map(|&k| match m.fields[k].input {
            Input::Column(c) => Some(c),
            Input::Const(_) => None,
        })
        .collect();
    if copies != m.source.key.iter().map(|&c| Some(c)).collect::<Vec<_>>() {
        problems.push(
            "[target] key: in a two-way mapping the target key fields copy the [source] key columns, in the same order"
                .into(),
        );
    }
    if m.reconcile.is_some() {
        problems.push(
            "`reconcile` does not apply to a two-way mapping (each side owns fields the other may not overwrite)"
                .into(),
        );
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let keeps =
        |i: usize, side: Owner| key_fields.contains(&i) || spec.owners[i] == side || spec.owners[i] == Owner::Both;
    let pull_name = format!("{}.pull", m.name);
    let push_name = format!("{}.push", m.name);

    // The push half: province columns → partner columns.
    let mut columns: Vec<Ident> = Vec::new();
    let mut col = |id: &Ident| -> usize {
        match columns
            .iter()
            .position(|c| c.as_str().eq_ignore_ascii_case(id.as_str()))
        {
            Some(i) => i,
            None => {
                columns.push(id.clone());
                columns.len() - 1
            }
        }
    };
    let mut push_fields = Vec::new();
    let mut push_key = Vec::new();
    let mut shared = Vec::new();
    for (i, f) in m.fields.iter().enumerate() {
        if !keeps(i, Owner::Province) {
            continue;
        }
        let Some(from) = f.from.as_deref() else { continue };
        let partner_col = Ident::parse(from).map_err(|e| format!("field `{}`: {e}", f.target))?;
        let transform = match &f.transform {
            Transform::Codeset { set, .. } => Transform::Codeset {
                set: Arc::new(set.reversed()?),
                default: None,
                fallback_other: false,
            },
            other => other.clone(),
        };
        let province_col = col(&f.target);
        push_fields.push(Field {
            target: partner_col,
            input: Input::Column(province_col),
            from: Some(f.target.to_string()),
            trim: false,
            null_if: vec![],
            pattern: None,
            transform,
            required: false,
            max_chars: None,
            personal: f.personal,
            sealed_input: SealedInput::Pass,
            insert_only: false,
        });
    }
    // Keys in [target] key order, as indexes into each half's fields.
    for &k in &key_fields {
        let from = m.fields[k].target.to_string();
        push_key.push(
            push_fields
                .iter()
                .position(|f: &Field| f.from.as_deref() == Some(from.as_str()))
                .expect("key fields are kept"),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for f in &push_fields {
        if !seen.insert(f.target.as_str().to_ascii_lowercase()) {
            return Err(format!(
                "partner column `{}` is read by two fields the province sends; give one of them owner = \"partner\"",
                f.target
            ));
        }
    }
    let source_key: Vec<usize> = key_fields.iter().map(|&k| col(&m.fields[k].target)).collect();
    let wm = col(&spec.province_watermark);
    // The pull half keeps the partner's and the shared fields.
    let mut pull_fields = Vec::new();
    let mut pull_key = Vec::new();
    let mut province_owned = Vec::new();
    for (i, f) in m.fields.iter().enumerate() {
        let mut f = f.clone();
        if !keeps(i, Owner::Partner) {
            // The partner's value lands only in a row the province lacks;
            // its later changes to a field it does not own are ignored.
            f.insert_only = true;
            if let Input::Column(_) = f.input {
                province_owned.push((pull_fields.len(), col(&m.fields[i].target)));
            }
        }
        if spec.owners[i] == Owner::Both && !key_fields.contains(&i) {
            shared.push((pull_fields.len(), col(&f.target)));
        }
        pull_fields.push(f);
    }
    for &k in &key_fields {
        let t = &m.fields[k].target;
        pull_key.push(
            pull_fields
                .iter()
                .position(|f: &Field| f.target.as_str() == t.as_str())
                .expect("key fields are kept"),
        );
    }
    let mut pull = m.clone();
    pull.confidential = None;
    pull.name = pull_name.clone();
    pull.direction = Direction::Pull;
    pull.fields = pull_fields;
    pull.target.key = pull_key;
    pull.pair = Some(Pair {
        name: m.name.clone(),
        role: Direction::Pull,
        sibling: push_name.clone(),
        policy: spec.policy,
        skew: spec.skew,
        shared,
        province_owned,
    });
    let mut push = m.clone();
    push.name = push_name;
    push.direction = Direction::Push;
    push.zone = spec.province_zone;
    push.source = SourceSpec {
        table: m.target.table.clone(),
        columns,
        key: source_key,
        watermark: Some(wm),
        deleted: None,
        consume: None,
    };
    push.target = TargetSpec {
        table: m.source.table.clone(),
        key: push_key,
        on_delete: OnDelete::Delete,
    };
    push.fields = push_fields;
    push.confidential = None;
    if let Some((column, fields, refuse)) = &spec.confidential {
        let mut idx = Vec::new();
        for &i in fields {
            let from = m.fields[i].target.to_string();
            match push.fields.iter().position(|f| f.from.as_deref() == Some(from.as_str())) {
                Some(p) => idx.push(p),
                None => {
                    return Err(format!(
                        "[confidential] field `{from}` is not sent to the partner (owner = \"partner\"): nothing to keep back"
                    ))
                }
            }
        }
        let c = push
            .source
            .columns
            .iter()
            .position(|x| x.as_str().eq_ignore_ascii_case(column.as_str()));
        let c = match c {
            Some(c) => c,
            None => {
                push.source.columns.push(column.clone());
                push.source.columns.len() - 1
            }
        };
        push.confidential = Some(super::Confidential {
            column: c,
            fields: idx,
            refuse: *refuse,
        });
    }
    push.tests = vec![];
    push.pair = Some(Pair {
        name: m.name,
        role: Direction::Push,
        sibling: pull_name,
        policy: spec.policy,
        skew: spec.skew,
        shared: vec![],
        province_owned: vec![],
    });
    Ok(vec![pull, push])
}
