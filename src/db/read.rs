//! The source reader: keyset batches in (watermark, key) order.
//!
//! A batch is one index-friendly query:
//!
//! ```sql
//! SELECT … FROM t
//!  WHERE wm >= :from AND (wm > :wm OR (wm = :wm AND key > :key))   -- after the last row read
//!  ORDER BY wm, key LIMIT :batch
//! ```
//!
//! The `wm >= …` term gives the engine a range on the watermark index; the
//! tie-break on the key means rows sharing one watermark value are neither
//! lost nor repeated across batch boundaries. Rows whose watermark is NULL
//! are read in their own phase, ordered by key. A mapping without a
//! watermark reads the whole table by key on every run.
//!
//! Values are decoded by the column's declared type without loss: MySQL
//! temporal columns are read as text and parsed (so zero dates become NULL
//! instead of failing the batch), PostgreSQL numerics and exotic types as
//! their text form. Parameters for PostgreSQL are sent as text and cast to the
//! column's own type, so a comparison never changes type or precision.

use super::catalog::{self, Kind, Table};
use super::{Engine, Pool};
use crate::mapping::Mapping;
use crate::value::Value;
use anyhow::Context as _;
use chrono::{FixedOffset, NaiveDate, NaiveDateTime};
use futures::TryStreamExt as _;
use sqlx::Row as _;
use sqlx::ValueRef as _;
use std::sync::Arc;

/// How one selected column is decoded.
#[derive(Debug, Clone, Copy)]
enum Dec {
    I16,
    I32,
    I64,
    F32,
    F64,
    Bool,
    Text,
    Bytes,
    Date,
    Ts,
    TsTz,
    /// Selected as text by the engine, then parsed as this kind.
    TextAs(Kind),
    /// SQLite: by the value's storage class.
    Dynamic,
}

/// Where a batch starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// From the first row.
    Beginning,
    /// From this watermark value, inclusive (the look-back window start).
    From(Value),
    /// Strictly after this (watermark, key) position.
    After { wm: Value, key: Vec<Value> },
    /// Strictly after this watermark value: every row at the value itself
    /// was taken care of by the look-back probe, whatever its key.
    AfterWm(Value),
    /// NULL-watermark phase, or no watermark: strictly after this key.
    AfterKey(Vec<Value>),
}

/// A column of the source, resolved against the catalog.
#[derive(Debug, Clone)]
struct SrcCol {
    /// The name as the catalog spells it.
    name: String,
    quoted: String,
    sql_type: String,
    kind: Kind,
}

/// Reads one mapping's source table. Cloning shares the pool.
#[derive(Clone)]
pub struct Reader {
    pool: Pool,
    engine: Engine,
    table: String,
    select: String,
    /// The select expression of each column (casts included).
    exprs: Vec<String>,
    decs: Vec<Dec>,
    cols: Vec<SrcCol>,
    key: Vec<usize>,
    watermark: Option<usize>,
    batch_size: usize,
    zone: FixedOffset,
    /// Fraction digits of a timestamp watermark column (6 = microseconds).
    wm_fraction: Option<i64>,
    /// The catalog's view of the table, for `hlx check`.
    pub catalog: Table,
    /// The flag pattern: (flag column index, value of a new row, the
    /// message column quoted and its width).
    consume: Option<ConsumeCols>,
    /// PostgreSQL: whether an index leads with the watermark and holds
    /// every key column, looked up at the first unsorted probe.
    covering: Arc<tokio::sync::OnceCell<bool>>,
}

/// The flag column (index), the value of a new row, and the message column
/// (quoted, with its width).
type ConsumeCols = (usize, String, Option<(String, Option<i64>)>);

impl Reader {
    /// Resolves the mapping's source columns against the live table.
    pub async fn new(pool: Pool, m: &Mapping) -> anyhow::Result<Reader> {
        let engine = pool.engine();
        let catalog = catalog::require(&pool, &m.source.table, "source").await?;
        let mut cols = Vec::new();
        let mut decs = Vec::new();
        let mut select = Vec::new();
        let mut problems = Vec::new();
        let mut wm_fraction = None;
        for c in &m.source.columns {
            let col = match catalog.column(c.as_str()) {
                Ok((_, col)) => col.clone(),
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            let ident = crate::ident::Ident::parse(&col.name).map_err(anyhow::Error::msg)?;
            let q = ident.quoted(engine);
            let (expr, dec) = decoder(engine, &q, &col);
            if Some(cols.len()) == m.source.watermark {
                wm_fraction = col.fraction_digits;
            }
            select.push(expr);
            decs.push(dec);
            cols.push(SrcCol {
                name: col.name.clone(),
                quoted: q,
                sql_type: col.sql_type.clone(),
                kind: col.kind,
            });
        }
        let mut consume = None;
        if let Some(c) = &m.source.consume {
            let msg = match &c.message_column {
                Some(mc) => match catalog.column(mc.as_str()) {
                    Ok((_, col)) => Some((
                        crate::ident::Ident::parse(&col.name)
                            .map_err(anyhow::Error::msg)?
                            .quoted(engine),
                        col.max_chars,
                    )),
                    Err(e) => {
                        problems.push(format!("consume.message_column: {e}"));
                        None
                    }
                },
                None => None,
            };
            consume = Some((c.column, c.new.clone(), msg));
        }
        if !problems.is_empty() {
            anyhow::bail!("source table {}: {}", catalog.name, problems.join("; "));
        }
        Ok(Reader {
            consume,
            engine,
            table: catalog.name.quoted(engine),
            select: select.join(", "),
            exprs: select,
            wm_fraction,
            decs,
            cols,
            key: m.source.key.clone(),
            watermark: m.source.watermark,
            batch_size: m.batch_size,
            zone: m.zone,
            catalog,
            pool,
            covering: Arc::default(),
        })
    }

    /// The kind of the watermark column, if any.
    pub fn watermark_kind(&self) -> Option<Kind> {
        self.watermark.map(|i| self.cols[i].kind)
    }

    /// The partner's zone, for naive values.
    pub fn zone(&self) -> FixedOffset {
        self.zone
    }

    fn param(&self, col: usize) -> String {
        match self.engine {
            Engine::Postgres => format!("CAST(? AS {})", self.cols[col].sql_type),
            _ => "?".to_string(),
        }
    }

    fn key_after(&self, key: &[Value], args: &mut Vec<Value>) -> String {
        // (k1 > v1) OR (k1 = v1 AND k2 > v2) OR …
        let mut ors = Vec::new();
        for i in 0..self.key.len() {
            let mut ands = Vec::new();
            for (&c, v) in self.key.iter().zip(key).take(i) {
                ands.push(format!("{} = {}", self.cols[c].quoted, self.param(c)));
                args.push(v.clone());
            }
            let c = self.key[i];
            ands.push(format!("{} > {}", self.cols[c].quoted, self.param(c)));
            args.push(key[i].clone());
            ors.push(format!("({})", ands.join(" AND ")));
        }
        ors.join(" OR ")
    }

    /// Builds the SQL and arguments of one batch.
    pub fn batch_sql(&self, start: &Start, null_phase: bool) -> (String, Vec<Value>) {
        let mut args = Vec::new();
        let mut conds: Vec<String> = Vec::new();
        let keys: Vec<String> = self.key.iter().map(|&k| self.cols[k].quoted.clone()).collect();
        if let Some((flag, new, _)) = &self.consume {
            conds.push(format!("{} = {}", self.cols[*flag].quoted, self.param(*flag)));
            args.push(Value::Text(new.clone()));
        }
        let order = match (self.watermark, null_phase) {
            (Some(w), false) => {
                let wq = self.cols[w].quoted.clone();
                conds.push(format!("{wq} IS NOT NULL"));
                match start {
                    Start::Beginning | Start::AfterKey(_) => {}
                    Start::From(v) => {
                        conds.push(format!("{wq} >= {}", self.param(w)));
                        args.push(v.clone());
                    }
                    Start::AfterWm(v) => {
                        conds.push(format!("{wq} > {}", self.param(w)));
                        args.push(v.clone());
                    }
                    Start::After { wm, key } => {
                        conds.push(format!("{wq} >= {}", self.param(w)));
                        args.push(wm.clone());
                        let gt = format!("{wq} > {}", self.param(w));
                        args.push(wm.clone());
                        let eq = format!("{wq} = {}", self.param(w));
                        args.push(wm.clone());
                        let k = self.key_after(key, &mut args);
                        conds.push(format!("({gt} OR ({eq} AND ({k})))"));
                    }
                }
                format!("{wq}, {}", keys.join(", "))
            }
            (w, _) => {
                if let Some(w) = w {
                    conds.push(format!("{} IS NULL", self.cols[w].quoted));
                }
                if let Start::AfterKey(key) = start {
                    let k = self.key_after(key, &mut args);
                    conds.push(format!("({k})"));
                }
                keys.join(", ")
            }
        };
        let where_ = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        (
            format!(
                "SELECT {} FROM {}{} ORDER BY {} LIMIT {}",
                self.select, self.table, where_, order, self.batch_size
            ),
            args,
        )
    }

    /// The flag pattern: sets the flag of these rows (their key values, in
    /// key order) to `to` where it is still `from`, and the message column
    /// to `message` when one is configured (cut to the column's width).
    /// Each statement commits on its own: a row marked before a failure
    /// stays marked, and one not marked is read again and found unchanged.
    pub async fn mark(&self, keys: &[Vec<Value>], from: &str, to: &str, message: Option<&str>) -> anyhow::Result<()> {
        let Some((flag, _, msg)) = &self.consume else {
            return Ok(());
        };
        let fq = &self.cols[*flag].quoted;
        let mut set = format!("{fq} = {}", self.param(*flag));
        let mut head = vec![Value::Text(to.to_string())];
        if let (Some((mq, width)), Some(m)) = (msg, message) {
            let m: String = match width {
                Some(w) if *w > 0 => m.chars().take(*w as usize).collect(),
                _ => m.to_string(),
            };
            set.push_str(&format!(", {mq} = ?"));
            head.push(Value::Text(m));
        }
        for chunk in keys.chunks(200) {
            let mut args = head.clone();
            let mut ors = Vec::new();
            for k in chunk {
                let ands: Vec<String> = self
                    .key
                    .iter()
                    .map(|&c| format!("{} = {}", self.cols[c].quoted, self.param(c)))
                    .collect();
                args.extend(k.iter().cloned());
                ors.push(format!("({})", ands.join(" AND ")));
            }
            args.push(Value::Text(from.to_string()));
            let sql = format!(
                "UPDATE {} SET {set} WHERE ({}) AND {fq} = {}",
                self.table,
                ors.join(" OR "),
                self.param(*flag)
            );
            self.fetch(&sql, &args)
                .await
                .with_context(|| format!("marking rows `{to}` in {}", self.catalog.name))?;
        }
        Ok(())
    }

    /// Proves the right to mark rows (UPDATE of the flag and message
    /// columns) with a statement that touches no row.
    pub async fn check_markable(&self) -> anyhow::Result<()> {
        let Some((flag, _, msg)) = &self.consume else {
            return Ok(());
        };
        let fq = &self.cols[*flag].quoted;
        let mut set = format!("{fq} = {fq}");
        if let Some((mq, _)) = msg {
            set.push_str(&format!(", {mq} = {mq}"));
        }
        self.fetch(&format!("UPDATE {} SET {set} WHERE 1 = 0", self.table), &[])
            .await
            .with_context(|| {
                format!(
                    "consume: hlx marks the rows it took, and needs the UPDATE right on {}",
                    self.catalog.name
                )
            })?;
        Ok(())
    }

    /// Reads one batch (at most `batch_size` rows).
    pub async fn batch(&self, start: &Start, null_phase: bool) -> anyhow::Result<Vec<Vec<Value>>> {
        let (sql, args) = self.batch_sql(start, null_phase);
        let t0 = std::time::Instant::now();
        let r = self.fetch(&sql, &args).await;
        tracing::debug!(%sql, args = ?args, ms = t0.elapsed().as_millis() as u64, rows = r.as_ref().map(|v| v.len()).unwrap_or(0), "source batch");
        r.with_context(|| format!("reading source table {}", self.catalog.name))
    }

    /// `hlx reconcile`: the next `batch_size` rows after `after` by key
    /// alone (every row, whatever its watermark or flag), optionally only
    /// those whose columns equal the given values (a mapping's slice of a
    /// shared target).
    pub async fn scan(&self, after: Option<&[Value]>, only: &[(usize, Value)]) -> anyhow::Result<Vec<Vec<Value>>> {
        let mut args = Vec::new();
        let mut conds = Vec::new();
        for (c, v) in only {
            conds.push(format!("{} = {}", self.cols[*c].quoted, self.param(*c)));
            args.push(v.clone());
        }
        if let Some(k) = after {
            let k = self.key_after(k, &mut args);
            conds.push(format!("({k})"));
        }
        let keys: Vec<String> = self.key.iter().map(|&k| self.cols[k].quoted.clone()).collect();
        let where_ = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let sql = format!(
            "SELECT {} FROM {}{where_} ORDER BY {} LIMIT {}",
            self.select,
            self.table,
            keys.join(", "),
            self.batch_size
        );
        self.fetch(&sql, &args)
            .await
            .with_context(|| format!("scanning {}", self.catalog.name))
    }

    /// The key values of a row this reader read.
    pub fn key_of(&self, row: &[Value]) -> Vec<Value> {
        self.key.iter().map(|&k| row[k].clone()).collect()
    }

    /// Reads the rows with these keys (for re-checks and reconcile).
    pub async fn fetch(&self, sql: &str, args: &[Value]) -> anyhow::Result<Vec<Vec<Value>>> {
        self.fetch_with(sql, args, &self.decs).await
    }

    /// [`fetch_with`](Self::fetch_with) of a range read that needs no
    /// order (the unsorted probe). On PostgreSQL it runs in a read-only
    /// transaction that asks for a bitmap heap scan with read-ahead
    /// (`enable_indexscan = off`, `effective_io_concurrency = 32`, both
    /// `SET LOCAL`): with an index on the watermark alone, every row changed
    /// within the look-back costs a heap page, and a plain index scan reads
    /// them one at a time. Measured on the benchmark's 15,100-row window
    /// (11,446 heap pages) with nothing cached: 1,228 ms as an index scan,
    /// 286 ms this way; about 120 ms either way from the OS cache.
    async fn fetch_unsorted(&self, sql: &str, args: &[Value], decs: &[Dec]) -> anyhow::Result<Vec<Vec<Value>>> {
        let Pool::Pg(p) = &self.pool else {
            return self.fetch_with(sql, args, decs).await;
        };
        // With an index that holds the pairs, PostgreSQL reads them from it
        // alone (an index-only scan, where the visibility map allows: 4 ms
        // instead of 81 ms of EXPLAIN ANALYZE for the benchmark's 15,768
        // pairs); the planner chooses. Without one, the heap must be read for every pair, and a
        // bitmap heap scan reads it with read-ahead, where an index scan
        // (which stale statistics make the planner pick) reads one page at
        // a time: 0.3 s instead of 1.2-1.6 s for 15,100 pairs from disk.
        let covering = *self
            .covering
            .get_or_try_init(|| async {
                let idx = catalog::indexes(&self.pool, &self.catalog).await?;
                anyhow::Ok(self.covered_by(&idx))
            })
            .await
            .context("reading the source table's indexes")?;
        let begin = if covering {
            "BEGIN READ ONLY; SET LOCAL effective_io_concurrency = 32"
        } else {
            "BEGIN READ ONLY; SET LOCAL enable_indexscan = off; SET LOCAL effective_io_concurrency = 32"
        };
        // One round trip (simple query); dropped while open (an error, a
        // deadline), the transaction closes its connection.
        let mut tx = super::PoolTx::begin(p, begin).await?;
        let out = fetch_pg(&mut tx, sql, args, decs).await?;
        tx.end("COMMIT").await?;
        Ok(out)
    }

    /// Whether one of these indexes leads with the watermark and holds
    /// every key column (as a key or an included column), so that a probe
    /// can be answered from the index.
    pub fn covered_by(&self, idx: &[catalog::Index]) -> bool {
        let Some(w) = self.watermark else { return false };
        let key: Vec<&str> = self.key.iter().map(|&k| self.cols[k].name.as_str()).collect();
        holds_pairs(idx, &self.cols[w].name, &key)
    }

    async fn fetch_with(&self, sql: &str, args: &[Value], decs: &[Dec]) -> anyhow::Result<Vec<Vec<Value>>> {
        match &self.pool {
            Pool::Pg(p) => super::with_conn(p, async |c| fetch_pg(c, sql, args, decs).await).await,
            Pool::My(p) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for a in args {
                    q = bind_my(q, a);
                }
                super::with_conn(p, async |c| {
                    let mut rows = q.fetch(c);
                    let mut out = Vec::new();
                    while let Some(r) = rows.try_next().await? {
                        out.push(decode_my(&r, decs)?);
                    }
                    Ok(out)
                })
                .await
            }
            Pool::Lite(p) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for a in args {
                    q = bind_lite(q, a);
                }
                let rows = super::with_conn(p, async |c| Ok(q.fetch_all(c).await?)).await?;
                rows.iter().map(decode_lite).collect()
            }
        }
    }

    /// Whether the look-back window may be probed by (key, watermark) instead
    /// of re-read in full: only when two versions of one row cannot share a
    /// watermark value in practice, i.e. a timestamp with microseconds (set
    /// per statement by the database) or an integer version. Coarser
    /// watermarks (seconds, milliseconds, `yyyyMMddHHmmss` text) are re-read.
    pub fn can_probe(&self) -> bool {
        match self.watermark_kind() {
            Some(Kind::Int) => true,
            Some(Kind::Timestamp | Kind::TimestampTz) => self.wm_fraction.is_some_and(|d| d >= 6),
            _ => false,
        }
    }

    /// The (key, watermark) pairs of the look-back window: rows whose
    /// watermark is from `lo` up to and including `hi`, whatever their key,
    /// after `after`, at most `limit` pairs.
    ///
    /// The window takes in the whole group of rows that share the stored
    /// position's watermark, not only those up to the position's key, so the
    /// read after it can be a plain `watermark > hi` ([`Start::AfterWm`]):
    /// with an index on the watermark alone (the usual partner index), a
    /// read from inside a large tie group would make the database fetch and
    /// sort the whole group on every poll just to find nothing after it.
    ///
    /// `ordered` false (only without `after`) asks for the pairs in no
    /// order: when fewer than `limit` come back, that is the whole window, at
    /// the cost of no sort (from an index on the watermark alone, the
    /// database would sort every tie group by key); `limit` of them means
    /// the window may be larger, and the caller pages through it in order.
    pub async fn probe_window(
        &self,
        lo: &Value,
        hi: &Value,
        after: Option<&crate::state::Position>,
        ordered: bool,
        limit: usize,
    ) -> anyhow::Result<Vec<(Vec<Value>, Value)>> {
        let w = self.watermark.context("probe without a watermark")?;
        let wq = self.cols[w].quoted.clone();
        let mut args = Vec::new();
        // After a pair, the range starts at its watermark: implied by the
        // OR below, but only a plain bound lets the index start there, so a
        // page does not re-read (and sort) every pair before it.
        let mut conds = vec![
            format!("{wq} >= {}", self.param(w)),
            format!("{wq} <= {}", self.param(w)),
        ];
        args.push(after.map_or(lo, |a| &a.wm).clone());
        args.push(hi.clone());
        if let Some(a) = after {
            let gt = format!("{wq} > {}", self.param(w));
            args.push(a.wm.clone());
            let eq = format!("{wq} = {}", self.param(w));
            args.push(a.wm.clone());
            let k = self.key_after(&a.key, &mut args);
            conds.push(format!("({gt} OR ({eq} AND ({k})))"));
        }
        let mut select: Vec<String> = self.key.iter().map(|&k| self.exprs[k].clone()).collect();
        select.push(self.exprs[w].clone());
        let mut decs: Vec<Dec> = self.key.iter().map(|&k| self.decs[k]).collect();
        decs.push(self.decs[w]);
        let keys: Vec<String> = self.key.iter().map(|&k| self.cols[k].quoted.clone()).collect();
        let order = if ordered || after.is_some() {
            format!(" ORDER BY {wq}, {}", keys.join(", "))
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT {} FROM {} WHERE {}{order} LIMIT {limit}",
            select.join(", "),
            self.table,
            conds.join(" AND "),
        );
        let t0 = std::time::Instant::now();
        let rows = if order.is_empty() {
            self.fetch_unsorted(&sql, &args, &decs).await
        } else {
            self.fetch_with(&sql, &args, &decs).await
        }
        .with_context(|| format!("probing source table {}", self.catalog.name))?;
        tracing::debug!(
            ms = t0.elapsed().as_millis() as u64,
            rows = rows.len(),
            "look-back probe"
        );
        Ok(rows
            .into_iter()
            .map(|mut r| {
                let wm = r.pop().unwrap_or(Value::Null);
                (r, wm)
            })
            .collect())
    }

    /// Rows per probe query: probe rows are a key and a watermark, so a
    /// probe takes four batches' worth (fewer passes over rows that share a
    /// watermark value when the index does not carry the key).
    pub fn probe_size(&self) -> usize {
        (self.batch_size * 4).max(10_000)
    }

    /// The full rows with these keys (in any order; missing keys are skipped).
    pub async fn rows_by_key(&self, keys: &[Vec<Value>]) -> anyhow::Result<Vec<Vec<Value>>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(500) {
            let mut args = Vec::new();
            let cond = if let [k] = self.key.as_slice() {
                let ps: Vec<String> = chunk.iter().map(|_| self.param(*k)).collect();
                args.extend(chunk.iter().map(|key| key[0].clone()));
                format!("{} IN ({})", self.cols[*k].quoted, ps.join(", "))
            } else {
                let ors: Vec<String> = chunk
                    .iter()
                    .map(|key| {
                        let ands: Vec<String> = self
                            .key
                            .iter()
                            .zip(key)
                            .map(|(&c, v)| {
                                args.push(v.clone());
                                format!("{} = {}", self.cols[c].quoted, self.param(c))
                            })
                            .collect();
                        format!("({})", ands.join(" AND "))
                    })
                    .collect();
                ors.join(" OR ")
            };
            let sql = format!("SELECT {} FROM {} WHERE {cond}", self.select, self.table);
            out.extend(
                self.fetch(&sql, &args)
                    .await
                    .with_context(|| format!("reading source table {}", self.catalog.name))?,
            );
        }
        Ok(out)
    }

    /// Key and watermark of a row.
    pub fn position(&self, row: &[Value]) -> (Option<Value>, Vec<Value>) {
        (
            self.watermark.map(|w| row[w].clone()),
            self.key.iter().map(|&k| row[k].clone()).collect(),
        )
    }

    /// `SELECT … FROM t LIMIT 0`: whether the table can be read at all.
    pub async fn check_readable(&self) -> anyhow::Result<()> {
        let sql = format!("SELECT {} FROM {} LIMIT 0", self.select, self.table);
        self.fetch(&sql, &[]).await.map(|_| ())
    }

    pub fn watermark_index(&self) -> Option<usize> {
        self.watermark
    }

    /// A value of column `col` back from the quarantine's raw JSON
    /// ([`Value::to_json`]), typed the way this reader decodes the column,
    /// so that a re-mapped row is the row a run would have read: a
    /// timestamp column gives a timestamp again (not its text), a
    /// PostgreSQL `numeric` a decimal, a MySQL `DATETIME` a timestamp.
    ///
    /// JSON that does not fit the column (its type changed since the row
    /// was quarantined) is taken for what it is ([`Value::from_json`]).
    /// SQLite decides types per value, so there a text is a text; a SQLite
    /// blob that held UTF-8 comes back as text.
    pub fn value_from_raw(&self, col: usize, j: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        let Some(dec) = self.decs.get(col) else {
            return Value::from_json(j);
        };
        let parsed = match (dec, j) {
            (_, J::Null) => Some(Value::Null),
            (Dec::F32 | Dec::F64 | Dec::Dynamic, J::Number(n)) if n.is_f64() => n.as_f64().map(Value::Float),
            (Dec::F32 | Dec::F64, J::Number(n)) => n.as_f64().map(Value::Float),
            // Non-finite floats are stored as their text.
            (Dec::F32 | Dec::F64, J::String(s)) => s.parse().ok().map(Value::Float),
            (Dec::Bytes, J::String(s)) => Some(Value::Bytes(bytes_from_raw(s))),
            (Dec::Date, J::String(s)) => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(Value::Date),
            (Dec::Ts, J::String(s)) => NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .map(Value::Timestamp),
            (Dec::TsTz, J::String(s)) => chrono::DateTime::parse_from_rfc3339(s).ok().map(Value::TimestampTz),
            (Dec::TextAs(k), J::String(s)) => Some(match k {
                Kind::Decimal | Kind::BigUnsigned => Value::Decimal(s.clone()),
                Kind::Timestamp => NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                    .map(Value::Timestamp)
                    .unwrap_or_else(|_| Value::Text(s.clone())),
                Kind::TimestampTz => chrono::DateTime::parse_from_rfc3339(s)
                    .map(Value::TimestampTz)
                    .unwrap_or_else(|_| Value::Text(s.clone())),
                Kind::Date => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map(Value::Date)
                    .unwrap_or_else(|_| Value::Text(s.clone())),
                _ => Value::Text(s.clone()),
            }),
            (Dec::TextAs(Kind::Decimal | Kind::BigUnsigned), J::Number(n)) => Some(Value::Decimal(n.to_string())),
            _ => None,
        };
        parsed.unwrap_or_else(|| Value::from_json(j))
    }
}

/// The inverse of how [`Value::to_json`] writes bytes: UTF-8 as its text,
/// anything else as `\x` and hex.
fn bytes_from_raw(s: &str) -> Vec<u8> {
    if let Some(h) = s.strip_prefix("\\x") {
        if let Ok(b) = hex::decode(h) {
            if std::str::from_utf8(&b).is_err() {
                return b;
            }
        }
    }
    s.as_bytes().to_vec()
}

fn decoder(engine: Engine, q: &str, col: &catalog::Column) -> (String, Dec) {
    match engine {
        Engine::Postgres => match col.udt.as_str() {
            "int2" => (q.to_string(), Dec::I16),
            "int4" => (q.to_string(), Dec::I32),
            "int8" => (q.to_string(), Dec::I64),
            "float4" => (q.to_string(), Dec::F32),
            "float8" => (q.to_string(), Dec::F64),
            "bool" => (q.to_string(), Dec::Bool),
            "bytea" => (q.to_string(), Dec::Bytes),
            "date" => (q.to_string(), Dec::Date),
            "timestamp" => (q.to_string(), Dec::Ts),
            "timestamptz" => (q.to_string(), Dec::TsTz),
            _ if col.kind == Kind::Text => (q.to_string(), Dec::Text),
            _ => (format!("{q}::text"), Dec::TextAs(col.kind)),
        },
        Engine::MySql => match col.kind {
            Kind::Int => (format!("CAST({q} AS SIGNED)"), Dec::I64),
            Kind::Float if col.udt.eq_ignore_ascii_case("float") => (q.to_string(), Dec::F32),
            Kind::Float => (q.to_string(), Dec::F64),
            Kind::Text => (q.to_string(), Dec::Text),
            Kind::Bytes => (q.to_string(), Dec::Bytes),
            k => (format!("CAST({q} AS CHAR)"), Dec::TextAs(k)),
        },
        Engine::Sqlite => (q.to_string(), Dec::Dynamic),
    }
}

/// The text form PostgreSQL casts back to the column's type exactly.
pub fn pg_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(if *b { "true".into() } else { "false".into() }),
        Value::Bytes(b) => Some(format!("\\x{}", hex::encode(b))),
        other => Some(other.to_string()),
    }
}

type MyQuery<'q> = sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments>;
type LiteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

pub fn bind_my<'q>(q: MyQuery<'q>, v: &Value) -> MyQuery<'q> {
    match v {
        Value::Null => q.bind(None::<String>),
        Value::Bool(b) => q.bind(*b),
        Value::Int(i) => q.bind(*i),
        Value::Float(f) => q.bind(*f),
        Value::Decimal(s) | Value::Text(s) => q.bind(s.clone()),
        Value::Bytes(b) => q.bind(b.clone()),
        Value::Date(d) => q.bind(*d),
        Value::Time(t) => q.bind(t.format("%H:%M:%S%.f").to_string()),
        Value::Timestamp(t) => q.bind(*t),
        // The session zone is UTC, so TIMESTAMP columns compare in UTC.
        Value::TimestampTz(t) => q.bind(t.naive_utc()),
    }
}

pub fn bind_lite<'q>(q: LiteQuery<'q>, v: &Value) -> LiteQuery<'q> {
    match v {
        Value::Null => q.bind(None::<String>),
        Value::Bool(b) => q.bind(*b),
        Value::Int(i) => q.bind(*i),
        Value::Float(f) => q.bind(*f),
        Value::Bytes(b) => q.bind(b.clone()),
        other => q.bind(other.to_string()),
    }
}

fn parse_text_as(kind: Kind, s: String) -> Value {
    let zero = crate::mapping::datetime::is_zero_or_empty(&s);
    match kind {
        Kind::Decimal | Kind::BigUnsigned => Value::Decimal(s),
        Kind::Timestamp | Kind::TimestampTz if zero => Value::Null,
        Kind::Date if zero => Value::Null,
        Kind::Timestamp => match crate::value::parse_naive(&s) {
            Some(t) => Value::Timestamp(t),
            None => Value::Text(s),
        },
        Kind::TimestampTz => match crate::value::parse_naive(&s) {
            Some(t) => Value::TimestampTz(t.and_utc().fixed_offset()),
            None => Value::Text(s),
        },
        Kind::Date => match NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
            Ok(d) => Value::Date(d),
            Err(_) => Value::Text(s),
        },
        _ => Value::Text(s),
    }
}

/// Text the database declared UTF-8, checked.
fn utf8(b: &[u8]) -> anyhow::Result<&str> {
    simdutf8::basic::from_utf8(b).map_err(|_| match std::str::from_utf8(b) {
        Err(e) => anyhow::anyhow!("a text value is not UTF-8: {e}"),
        Ok(_) => anyhow::anyhow!("a text value is not UTF-8"),
    })
}

/// Whether one of the indexes leads with column `wm` and holds every `key`
/// column (catalog names).
fn holds_pairs(idx: &[catalog::Index], wm: &str, key: &[&str]) -> bool {
    idx.iter()
        .any(|i| i.columns.first().is_some_and(|c| c == wm) && key.iter().all(|k| i.columns.iter().any(|c| c == k)))
}

/// `sql` (with `?` placeholders) on one PostgreSQL connection, its rows
/// decoded as they arrive: a batch's wire rows are not held beside its
/// values.
async fn fetch_pg(
    c: &mut sqlx::PgConnection,
    sql: &str,
    args: &[Value],
    decs: &[Dec],
) -> anyhow::Result<Vec<Vec<Value>>> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(super::sql::placeholders(sql)));
    for a in args {
        q = q.bind(pg_text(a));
    }
    let mut rows = q.fetch(c);
    let mut out = Vec::new();
    while let Some(r) = rows.try_next().await? {
        out.push(decode_pg(&r, decs)?);
    }
    Ok(out)
}

fn decode_pg(r: &sqlx::postgres::PgRow, decs: &[Dec]) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::with_capacity(decs.len());
    for (i, d) in decs.iter().enumerate() {
        let v = match d {
            Dec::I16 => r.try_get::<Option<i16>, _>(i)?.map(|x| Value::Int(x as i64)),
            Dec::I32 => r.try_get::<Option<i32>, _>(i)?.map(|x| Value::Int(x as i64)),
            Dec::I64 => r.try_get::<Option<i64>, _>(i)?.map(Value::Int),
            Dec::F32 => r.try_get::<Option<f32>, _>(i)?.map(|x| Value::Float(x as f64)),
            Dec::F64 => r.try_get::<Option<f64>, _>(i)?.map(Value::Float),
            Dec::Bool => r.try_get::<Option<bool>, _>(i)?.map(Value::Bool),
            // The server sends its own (UTF-8) text: checked here with
            // simdutf8, many times faster than std on Chinese text.
            Dec::Text => {
                let raw = r.try_get_raw(i)?;
                if raw.is_null() {
                    None
                } else {
                    Some(Value::Text(
                        utf8(raw.as_bytes().map_err(anyhow::Error::from_boxed)?)?.to_owned(),
                    ))
                }
            }
            Dec::Bytes => r.try_get::<Option<Vec<u8>>, _>(i)?.map(Value::Bytes),
            Dec::Date => r.try_get::<Option<NaiveDate>, _>(i)?.map(Value::Date),
            Dec::Ts => r.try_get::<Option<NaiveDateTime>, _>(i)?.map(Value::Timestamp),
            Dec::TsTz => r
                .try_get::<Option<chrono::DateTime<chrono::Utc>>, _>(i)?
                .map(|t| Value::TimestampTz(t.fixed_offset())),
            Dec::TextAs(k) => r.try_get::<Option<String>, _>(i)?.map(|s| parse_text_as(*k, s)),
            Dec::Dynamic => unreachable!("dynamic decoding is SQLite's"),
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(out)
}

fn decode_my(r: &sqlx::mysql::MySqlRow, decs: &[Dec]) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::with_capacity(decs.len());
    for (i, d) in decs.iter().enumerate() {
        let v = match d {
            Dec::I64 => r.try_get::<Option<i64>, _>(i)?.map(Value::Int),
            Dec::F32 => r.try_get::<Option<f32>, _>(i)?.map(|x| Value::Float(x as f64)),
            Dec::F64 => r.try_get::<Option<f64>, _>(i)?.map(Value::Float),
            Dec::Text => r
                .try_get_unchecked::<Option<&[u8]>, _>(i)?
                .map(|b| match simdutf8::basic::from_utf8(b) {
                    Ok(s) => Value::Text(s.to_owned()),
                    Err(_) => Value::Bytes(b.to_vec()),
                }),
            Dec::Bytes => r.try_get_unchecked::<Option<Vec<u8>>, _>(i)?.map(Value::Bytes),
            Dec::TextAs(k) => r
                .try_get_unchecked::<Option<&[u8]>, _>(i)?
                .map(|b| parse_text_as(*k, String::from_utf8_lossy(b).into_owned())),
            other => anyhow::bail!("internal: decoder {other:?} is not used for MySQL"),
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(out)
}

fn decode_lite(r: &sqlx::sqlite::SqliteRow) -> anyhow::Result<Vec<Value>> {
    let n = r.columns().len();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let raw = r.try_get_raw(i)?;
        if raw.is_null() {
            out.push(Value::Null);
            continue;
        }
        let class = sqlx::TypeInfo::name(&*raw.type_info()).to_string();
        let v = match class.as_str() {
            "INTEGER" => Value::Int(r.try_get_unchecked::<i64, _>(i)?),
            "REAL" => Value::Float(r.try_get_unchecked::<f64, _>(i)?),
            "BLOB" => Value::Bytes(r.try_get_unchecked::<Vec<u8>, _>(i)?),
            _ => Value::Text(r.try_get_unchecked::<String, _>(i)?),
        };
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(columns: &[&str]) -> catalog::Index {
        catalog::Index {
            name: "i".into(),
            unique: false,
            columns: columns.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn a_probe_is_answered_from_an_index_only_if_it_leads_with_the_watermark_and_holds_the_key() {
        let holds = |cols: &[&str]| holds_pairs(&[index(cols)], "update_time", &["gdbh"]);
        assert!(holds(&["update_time", "gdbh"]));
        assert!(
            holds(&["update_time", "op_flag", "gdbh"]),
            "an included column counts too"
        );
        assert!(!holds(&["update_time"]), "the usual partner index");
        assert!(!holds(&["gdbh", "update_time"]), "not led by the watermark");
        assert!(!holds(&["(expression)", "update_time", "gdbh"]));
        assert!(!holds(&["UPDATE_TIME", "GDBH"]), "catalog names, as spelt");
        assert!(holds_pairs(
            &[index(&["update_time"]), index(&["update_time", "city", "no"])],
            "update_time",
            &["city", "no"]
        ));
        assert!(!holds_pairs(
            &[index(&["update_time", "city"])],
            "update_time",
            &["city", "no"]
        ));
    }
}
