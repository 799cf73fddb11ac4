//! The target writer: upserts and deletes inside the caller's transaction.
//!
//! * PostgreSQL: rows whose key hlx has never written go in by `COPY` straight
//!   into the target (inside a savepoint; if a key turns out to exist, the batch
//!   falls back); the rest by `COPY` into a temporary stage table and one
//!   `INSERT … SELECT … ON CONFLICT (key) DO UPDATE`.
//! * MySQL/MariaDB: multi-row `INSERT … ON DUPLICATE KEY UPDATE`.
//! * SQLite: multi-row `INSERT … ON CONFLICT (key) DO UPDATE`.
//!
//! If the target refuses a batch (a value too long for its column, a type it
//! cannot take), the batch is retried row by row under savepoints, and the
//! rows it still refuses are returned to the caller with the database's
//! message, to be quarantined; the rest of the batch lands.

use super::catalog::{self, Kind};
use super::pgbin::{self, Bin};
use super::read::{bind_lite, bind_my, pg_text};
use super::{Engine, Pool, Tx};
use crate::ident::Ident;
use crate::mapping::{Mapping, OnDelete};
use crate::value::Value;
use anyhow::Context as _;
use chrono::{FixedOffset, TimeZone};
use std::borrow::Cow;

#[derive(Debug, Clone)]
struct TgtCol {
    quoted: String,
    kind: Kind,
    sql_type: String,
    /// False for an insert-only field: set when the row is new, never updated.
    update: bool,
    /// PostgreSQL: the column's binary `COPY` form, if hlx writes its type.
    bin: Option<Bin>,
}

/// Writes one mapping's target table.
pub struct Writer {
    engine: Engine,
    table: String,
    cols: Vec<TgtCol>,
    key: Vec<usize>,
    delete: Option<(TgtCol, Value)>,
    source_zone: FixedOffset,
    province_zone: FixedOffset,
    stage: String,
}

/// A row the target refused: its index in the batch and the database's message.
pub type Refused = (usize, String);

impl Writer {
    /// Resolves the mapping's fields against the live target table.
    pub async fn new(pool: &Pool, m: &Mapping, province_zone: FixedOffset) -> anyhow::Result<Writer> {
        let engine = pool.engine();
        let table = catalog::require(pool, &m.target.table, "target").await?;
        let mut cols = Vec::new();
        let mut problems = Vec::new();
        for f in &m.fields {
            match table.column(f.target.as_str()) {
                Ok((_, c)) => cols.push(TgtCol {
                    quoted: Ident::parse(&c.name).map_err(anyhow::Error::msg)?.quoted(engine),
                    kind: c.kind,
                    sql_type: c.sql_type.clone(),
                    update: !f.insert_only,
                    bin: (engine == Engine::Postgres).then(|| Bin::of(&c.udt)).flatten(),
                }),
                Err(e) => problems.push(e),
            }
        }
        let delete = match &m.target.on_delete {
            OnDelete::Delete => None,
            OnDelete::Mark { column, value } => match table.column(column.as_str()) {
                Ok((_, c)) => Some((
                    TgtCol {
                        quoted: Ident::parse(&c.name).map_err(anyhow::Error::msg)?.quoted(engine),
                        kind: c.kind,
                        sql_type: c.sql_type.clone(),
                        update: true,
                        bin: None,
                    },
                    value.clone(),
                )),
                Err(e) => {
                    problems.push(format!("on_delete: {e}"));
                    None
                }
            },
        };
        if !problems.is_empty() {
            anyhow::bail!("target table {}: {}", table.name, problems.join("; "));
        }
        let mut h = 0u64;
        for b in m.name.bytes() {
            h = h.wrapping_mul(31).wrapping_add(b as u64);
        }
        Ok(Writer {
            engine,
            table: table.name.quoted(engine),
            cols,
            key: m.target.key.clone(),
            delete,
            source_zone: m.zone,
            province_zone,
            stage: format!("hlx_stage_{:x}", h),
        })
    }

    /// Proves the rights the writes need (INSERT, UPDATE, and DELETE when
    /// `deletes`) with statements that touch no row, in a transaction that
    /// is rolled back: the server checks rights before it looks for rows.
    pub async fn check_writable(&self, pool: &Pool, deletes: bool) -> anyhow::Result<()> {
        let k = &self.cols[self.key[0]].quoted;
        let t = &self.table;
        let mut tx = pool.begin().await?;
        let mut stmts = vec![
            (
                "INSERT",
                format!("INSERT INTO {t} ({k}) SELECT {k} FROM {t} WHERE 1 = 0"),
            ),
            ("UPDATE", format!("UPDATE {t} SET {k} = {k} WHERE 1 = 0")),
        ];
        if deletes {
            stmts.push(("DELETE", format!("DELETE FROM {t} WHERE 1 = 0")));
        }
        for (right, sql) in stmts {
            super::sql::exec(&mut tx, &sql, &[])
                .await
                .with_context(|| format!("hlx needs the {right} right on {t}"))?;
        }
        tx.rollback().await
    }

    /// Converts a value to what the target column holds: naive times become
    /// instants in the partner's zone for zoned columns, instants become
    /// wall-clock time in the province's zone for naive columns. Every other
    /// value is borrowed as it is.
    fn adapt<'v>(&self, v: &'v Value, kind: Kind) -> Cow<'v, Value> {
        Cow::Owned(match (v, kind) {
            (Value::Timestamp(n), Kind::TimestampTz) => match self.source_zone.from_local_datetime(n).single() {
                Some(t) => Value::TimestampTz(t),
                None => return Cow::Borrowed(v),
            },
            (Value::TimestampTz(t), Kind::Timestamp) => {
                Value::Timestamp(t.with_timezone(&self.province_zone).naive_local())
            }
            (Value::TimestampTz(t), Kind::Date) => Value::Date(t.with_timezone(&self.province_zone).date_naive()),
            (Value::Timestamp(n), Kind::Date) => Value::Date(n.date()),
            _ => return Cow::Borrowed(v),
        })
    }

    /// A mapped value of field `field` as the target column holds it (for
    /// `hlx reconcile`, which compares it with what it reads back), and the
    /// zone naive values of the target are in.
    pub fn as_stored(&self, field: usize, v: &Value) -> (Value, FixedOffset) {
        (self.adapt(v, self.cols[field].kind).into_owned(), self.province_zone)
    }

    fn col_list(&self) -> String {
        self.cols
            .iter()
            .map(|c| c.quoted.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Upserts rows (each in field order). `fresh` says hlx has no state for
    /// any of these keys, which lets PostgreSQL try a plain COPY first.
    /// Returns the rows the target refused.
    pub async fn upsert(&self, tx: &mut Tx, rows: &[&[Value]], fresh: bool) -> anyhow::Result<Vec<Refused>> {
        if rows.is_empty() {
            return Ok(vec![]);
        }
        savepoint(tx, "hlx_batch").await?;
        let first = if fresh && self.engine == Engine::Postgres {
            match self.pg_copy(tx, rows, &self.table).await {
                Err(e) if is_unique_violation(&e) => {
                    rollback_to(tx, "hlx_batch").await?;
                    savepoint(tx, "hlx_batch").await?;
                    self.write_many(tx, rows).await
                }
                r => r,
            }
        } else {
            self.write_many(tx, rows).await
        };
        match first {
            Ok(()) => {
                release(tx, "hlx_batch").await?;
                Ok(vec![])
            }
            Err(e) if !is_data_error(&e) => Err(e),
            Err(_) => {
                rollback_to(tx, "hlx_batch").await?;
                let mut refused = Vec::new();
                for (i, r) in rows.iter().enumerate() {
                    savepoint(tx, "hlx_row").await?;
                    match self.write_many(tx, std::slice::from_ref(r)).await {
                        Ok(()) => release(tx, "hlx_row").await?,
                        Err(e) if is_data_error(&e) => {
                            rollback_to(tx, "hlx_row").await?;
                            refused.push((i, format!("{e:#}")));
                        }
                        Err(e) => return Err(e),
                    }
                }
                release(tx, "hlx_batch").await?;
                Ok(refused)
            }
        }
    }

    async fn write_many(&self, tx: &mut Tx, rows: &[&[Value]]) -> anyhow::Result<()> {
        let cols = self.col_list();
        let keys: Vec<&str> = self.key.iter().map(|&k| self.cols[k].quoted.as_str()).collect();
        let non_key: Vec<&TgtCol> = (0..self.cols.len())
            .filter(|i| !self.key.contains(i) && self.cols[*i].update)
            .map(|i| &self.cols[i])
            .collect();
        match tx {
            Tx::Pg(_) if rows.len() > 1 => {
                let create = format!(
                    "CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DROP AS SELECT {cols} FROM {} WITH NO DATA",
                    self.stage, self.table
                );
                super::sql::exec(tx, &create, &[]).await?;
                super::sql::exec(tx, &format!("TRUNCATE {}", self.stage), &[]).await?;
                self.pg_copy(tx, rows, &self.stage).await?;
                let set = if non_key.is_empty() {
                    "NOTHING".to_string()
                } else {
                    format!(
                        "UPDATE SET {}",
                        non_key
                            .iter()
                            .map(|c| format!("{0} = EXCLUDED.{0}", c.quoted))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                let sql = format!(
                    "INSERT INTO {} ({cols}) SELECT {cols} FROM {} ON CONFLICT ({}) DO {set}",
                    self.table,
                    self.stage,
                    keys.join(", ")
                );
                super::sql::exec(tx, &sql, &[]).await?;
                Ok(())
            }
            Tx::Pg(t) => {
                let params: Vec<String> = self.cols.iter().map(|c| format!("CAST(? AS {})", c.sql_type)).collect();
                let set = if non_key.is_empty() {
                    "NOTHING".to_string()
                } else {
                    format!(
                        "UPDATE SET {}",
                        non_key
                            .iter()
                            .map(|c| format!("{0} = EXCLUDED.{0}", c.quoted))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                let sql = super::sql::placeholders(&format!(
                    "INSERT INTO {} ({cols}) VALUES ({}) ON CONFLICT ({}) DO {set}",
                    self.table,
                    params.join(", "),
                    keys.join(", ")
                ));
                for r in rows {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                    for (v, c) in r.iter().zip(&self.cols) {
                        q = q.bind(pg_text(&self.adapt(v, c.kind)));
                    }
                    q.execute(&mut **t).await?;
                }
                Ok(())
            }
            Tx::My(t) => {
                let update = if non_key.is_empty() {
                    format!("{0} = {0}", keys[0])
                } else {
                    non_key
                        .iter()
                        .map(|c| format!("{0} = VALUES({0})", c.quoted))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                for chunk in chunks(rows, self.cols.len(), 60_000, 4 << 20) {
                    let one = format!("({})", vec!["?"; self.cols.len()].join(", "));
                    let sql = format!(
                        "INSERT INTO {} ({cols}) VALUES {} ON DUPLICATE KEY UPDATE {update}",
                        self.table,
                        vec![one; chunk.len()].join(", ")
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                    for r in chunk {
                        for (v, c) in r.iter().zip(&self.cols) {
                            q = bind_my(q, &self.adapt_my(v, c.kind));
                        }
                    }
                    q.execute(&mut **t).await?;
                }
                Ok(())
            }
            Tx::Lite(t) => {
                let set = if non_key.is_empty() {
                    "NOTHING".to_string()
                } else {
                    format!(
                        "UPDATE SET {}",
                        non_key
                            .iter()
                            .map(|c| format!("{0} = excluded.{0}", c.quoted))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                for chunk in chunks(rows, self.cols.len(), 30_000, usize::MAX) {
                    let one = format!("({})", vec!["?"; self.cols.len()].join(", "));
                    let sql = format!(
                        "INSERT INTO {} ({cols}) VALUES {} ON CONFLICT ({}) DO {set}",
                        self.table,
                        vec![one; chunk.len()].join(", "),
                        keys.join(", ")
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                    for r in chunk {
                        for (v, c) in r.iter().zip(&self.cols) {
                            q = bind_lite(q, &lite_text(&self.adapt(v, c.kind)));
                        }
                    }
                    q.execute(&mut **t).await?;
                }
                Ok(())
            }
        }
    }

    /// MySQL TIMESTAMP columns are written in UTC (the session zone).
    fn adapt_my(&self, v: &Value, kind: Kind) -> Value {
        let v = self.adapt(v, kind);
        match (&*v, kind) {
            (Value::TimestampTz(t), Kind::TimestampTz) => Value::Timestamp(t.naive_utc()),
            _ => v.into_owned(),
        }
    }

    /// `COPY … FROM STDIN` of the rows, in binary format where every column and
    /// value allows it ([`pgbin`]), else in text format. The rows are encoded
    /// and sent a slice at a time, so the server parses one slice while the
    /// next is encoded, and one huge batch never becomes one huge message.
    async fn pg_copy(&self, tx: &mut Tx, rows: &[&[Value]], into: &str) -> anyhow::Result<()> {
        let Tx::Pg(t) = tx else {
            anyhow::bail!("internal: COPY on a non-PostgreSQL target")
        };
        // Binary where it provably lands the same rows (see `pgbin`).
        let bins: Option<Vec<Bin>> = self.cols.iter().map(|c| c.bin).collect();
        let bins = bins.filter(|b| {
            rows.iter().all(|r| {
                r.iter()
                    .zip(&self.cols)
                    .zip(b)
                    .all(|((v, c), &b)| pgbin::fits(&self.adapt(v, c.kind), b))
            })
        });
        let sql = match bins {
            Some(_) => format!("COPY {into} ({}) FROM STDIN WITH (FORMAT binary)", self.col_list()),
            None => format!("COPY {into} ({}) FROM STDIN", self.col_list()),
        };
        let mut copy = t.copy_in_raw(&sql).await?;
        let mut buf = Vec::with_capacity(COPY_SLICE + (64 << 10));
        let mut scratch = String::new();
        if bins.is_some() {
            buf.extend_from_slice(pgbin::HEADER);
        }
        let fields = i16::try_from(self.cols.len()).unwrap_or(i16::MAX).to_be_bytes();
        for (n, r) in rows.iter().enumerate() {
            match &bins {
                Some(bins) => {
                    buf.extend_from_slice(&fields);
                    for ((v, c), &b) in r.iter().zip(&self.cols).zip(bins) {
                        pgbin::push(&self.adapt(v, c.kind), b, &mut buf, &mut scratch);
                    }
                }
                None => {
                    for (i, (v, c)) in r.iter().zip(&self.cols).enumerate() {
                        if i > 0 {
                            buf.push(b'\t');
                        }
                        push_copy_text(&self.adapt(v, c.kind), &mut buf, &mut scratch);
                    }
                    buf.push(b'\n');
                }
            }
            if n + 1 == rows.len() && bins.is_some() {
                buf.extend_from_slice(pgbin::TRAILER);
            }
            if buf.len() >= COPY_SLICE || n + 1 == rows.len() {
                if let Err(e) = copy.send(buf.as_slice()).await {
                    let _ = copy.abort("hlx: send failed").await;
                    return Err(e.into());
                }
                // One buffer for the whole COPY: sent, then refilled.
                buf.clear();
            }
        }
        copy.finish().await?;
        Ok(())
    }

    /// Applies soft deletes: deletes the target rows with these keys (or sets
    /// the configured marker column). Returns rows affected.
    pub async fn delete(&self, tx: &mut Tx, keys: &[Vec<Value>]) -> anyhow::Result<u64> {
        let mut n = 0;
        for key in keys {
            let mut args: Vec<(Value, &TgtCol)> = Vec::new();
            let cond: Vec<String> = self
                .key
                .iter()
                .zip(key)
                .map(|(&k, v)| {
                    let c = &self.cols[k];
                    args.push((v.clone(), c));
                    format!("{} = {}", c.quoted, self.param(c))
                })
                .collect();
            let sql = match &self.delete {
                None => format!("DELETE FROM {} WHERE {}", self.table, cond.join(" AND ")),
                Some((col, v)) => {
                    args.insert(0, (v.clone(), col));
                    format!(
                        "UPDATE {} SET {} = {} WHERE {}",
                        self.table,
                        col.quoted,
                        self.param(col),
                        cond.join(" AND ")
                    )
                }
            };
            n += match tx {
                Tx::Pg(t) => {
                    let sql = super::sql::placeholders(&sql);
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                    for (v, c) in &args {
                        q = q.bind(pg_text(&self.adapt(v, c.kind)));
                    }
                    q.execute(&mut **t).await?.rows_affected()
                }
                Tx::My(t) => {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                    for (v, c) in &args {
                        q = bind_my(q, &self.adapt_my(v, c.kind));
                    }
                    q.execute(&mut **t).await?.rows_affected()
                }
                Tx::Lite(t) => {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                    for (v, c) in &args {
                        q = bind_lite(q, &lite_text(&self.adapt(v, c.kind)));
                    }
                    q.execute(&mut **t).await?.rows_affected()
                }
            };
        }
        Ok(n)
    }

    fn param(&self, c: &TgtCol) -> String {
        match self.engine {
            Engine::Postgres => format!("CAST(? AS {})", c.sql_type),
            _ => "?".into(),
        }
    }
}

/// SQLite holds times as ISO-8601 text.
fn lite_text(v: &Value) -> Value {
    match v {
        Value::Timestamp(_) | Value::TimestampTz(_) | Value::Date(_) | Value::Time(_) | Value::Decimal(_) => {
            Value::Text(v.to_string())
        }
        other => other.clone(),
    }
}

/// How much `COPY` text is encoded before it is sent.
const COPY_SLICE: usize = 256 << 10;

/// One value in `COPY` text format ([`pg_text`]'s text, escaped), written
/// straight into the buffer: most values need no allocation of their own.
fn push_copy_text(v: &Value, out: &mut Vec<u8>, scratch: &mut String) {
    match v {
        Value::Null => out.extend_from_slice(b"\\N"),
        v => copy_escape(pgbin::text_form(v, scratch), out),
    }
}

/// COPY text format: backslash, tab, newline and carriage return escaped.
/// Text is copied in runs between the bytes that need escaping (most text
/// has none), not byte by byte.
pub(crate) fn copy_escape(s: &str, out: &mut Vec<u8>) {
    fn special(b: u8) -> bool {
        matches!(b, b'\\' | b'\t' | b'\n' | b'\r')
    }
    let bytes = s.as_bytes();
    let mut start = 0;
    // 64 bytes at a time: a fold without early exit, which the compiler
    // vectorises, says whether the block needs looking at byte by byte.
    for (n, block) in bytes.chunks(64).enumerate() {
        if !block.iter().fold(false, |any, &b| any | special(b)) {
            continue;
        }
        for (j, &b) in block.iter().enumerate() {
            let esc: &[u8] = match b {
                b'\\' => b"\\\\",
                b'\t' => b"\\t",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                _ => continue,
            };
            let i = n * 64 + j;
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(esc);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Splits rows so a statement stays under a parameter count and a byte size.
fn chunks<'a>(rows: &'a [&'a [Value]], cols: usize, max_params: usize, max_bytes: usize) -> Vec<&'a [&'a [Value]]> {
    let per = (max_params / cols.max(1)).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, r) in rows.iter().enumerate() {
        let sz: usize = r
            .iter()
            .map(|v| match v {
                Value::Text(s) | Value::Decimal(s) => s.len() + 8,
                Value::Bytes(b) => b.len() + 8,
                _ => 16,
            })
            .sum();
        if i > start && (i - start >= per || bytes + sz > max_bytes) {
            out.push(&rows[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += sz;
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}

async fn savepoint(tx: &mut Tx, name: &str) -> anyhow::Result<()> {
    super::sql::exec(tx, &format!("SAVEPOINT {name}"), &[])
        .await
        .map(|_| ())
}
async fn release(tx: &mut Tx, name: &str) -> anyhow::Result<()> {
    super::sql::exec(tx, &format!("RELEASE SAVEPOINT {name}"), &[])
        .await
        .map(|_| ())
}
async fn rollback_to(tx: &mut Tx, name: &str) -> anyhow::Result<()> {
    super::sql::exec(tx, &format!("ROLLBACK TO SAVEPOINT {name}"), &[])
        .await
        .context("rolling back to a savepoint")
        .map(|_| ())
}

fn db_error(e: &anyhow::Error) -> Option<&(dyn sqlx::error::DatabaseError + 'static)> {
    e.chain().find_map(|c| match c.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(d)) => Some(&**d),
        _ => None,
    })
}

/// A refusal by the database of the data (as opposed to a lost connection,
/// a lock timeout or a deadlock): worth retrying row by row, and the rows it
/// still refuses are quarantined.
pub fn is_data_error(e: &anyhow::Error) -> bool {
    let Some(d) = db_error(e) else { return false };
    if let Some(lite) = d.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
        // SQLite's (extended) result codes: the primary code is the low byte.
        // 18 TOOBIG, 19 CONSTRAINT, 20 MISMATCH; never BUSY (5) or LOCKED (6).
        let code = sqlx::error::DatabaseError::code(lite)
            .and_then(|c| c.parse::<u32>().ok())
            .unwrap_or(0);
        return matches!(code & 0xff, 18..=20);
    }
    // SQLSTATE (PostgreSQL, MySQL): 22 data exception, 23 integrity constraint.
    let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
    code.starts_with("22") || code.starts_with("23")
}

/// A lock wait cut short by `lock_timeout` (55P03), or a deadlock
/// PostgreSQL broke (40P01).
pub(crate) fn is_lock_wait(e: &anyhow::Error) -> bool {
    db_error(e).is_some_and(|d| matches!(d.code().as_deref(), Some("55P03" | "40P01")))
}

fn is_unique_violation(e: &anyhow::Error) -> bool {
    db_error(e).is_some_and(|d| matches!(d.kind(), sqlx::error::ErrorKind::UniqueViolation))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The escaping byte by byte, as the COPY text format defines it.
    fn escaped(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for b in s.bytes() {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                _ => out.push(b),
            }
        }
        out
    }

    #[test]
    fn copy_text_escapes_every_special_byte_wherever_it_falls() {
        let long = "路灯不亮，".repeat(30);
        let mut cases = vec![
            String::new(),
            "plain".to_string(),
            "\\".to_string(),
            "a\tb\nc\rd\\e".to_string(),
            long.clone(),
            format!("{long}\t"),
            format!("\n{long}"),
        ];
        // A special byte at each position around the 64-byte block edges.
        for at in [0, 1, 62, 63, 64, 65, 127, 128, 129] {
            let mut s = "x".repeat(200);
            s.replace_range(at..at + 1, "\\");
            cases.push(s.clone());
            s.replace_range(at + 2..at + 3, "\r");
            cases.push(s);
        }
        for c in &cases {
            let mut out = Vec::new();
            copy_escape(c, &mut out);
            assert_eq!(out, escaped(c), "{c:?}");
        }
    }

    #[test]
    fn copy_text_of_each_kind_is_what_postgresql_casts_back() {
        let t = chrono::NaiveDate::from_ymd_opt(2024, 3, 1)
            .unwrap()
            .and_hms_micro_opt(8, 30, 0, 5)
            .unwrap();
        let cases = [
            (Value::Null, "\\N"),
            (Value::Text("a\tb".into()), "a\\tb"),
            (Value::Bool(true), "true"),
            (Value::Int(-7), "-7"),
            (Value::Decimal("12.50".into()), "12.50"),
            (Value::Bytes(vec![0xde, 0xad]), "\\\\xdead"),
            (Value::Timestamp(t), "2024-03-01 08:30:00.000005"),
        ];
        let mut scratch = String::new();
        for (v, want) in cases {
            let mut out = Vec::new();
            push_copy_text(&v, &mut out, &mut scratch);
            assert_eq!(String::from_utf8(out).unwrap(), want, "{v:?}");
            // The same as escaping the text the row-by-row path binds.
            let mut via = Vec::new();
            match pg_text(&v) {
                None => via.extend_from_slice(b"\\N"),
                Some(s) => copy_escape(&s, &mut via),
            }
            assert_eq!(String::from_utf8(via).unwrap(), want, "{v:?}");
        }
    }
}
