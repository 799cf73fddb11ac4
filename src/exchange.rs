//! The exchange engine: runs a mapping's batches from source to target.
//!
//! One run of a pull mapping:
//!
//! 1. take the mapping's lease (one runner per mapping across processes);
//! 2. read the rows whose watermark is NULL, by key (re-read every run, the
//!    checksums keep that cheap), then the rows from `position - lookback`
//!    onward in (watermark, key) order, one keyset batch at a time, the next
//!    batch read while the current one is written;
//! 3. for each batch, in **one** provincial transaction: look up the stored
//!    checksums, write only rows whose mapped content changed, apply soft
//!    deletes, quarantine rows that fail their mapping (or that the target
//!    refuses), record checksums, move the watermark position and add to the
//!    run's counters; then commit.
//!
//! A crash between batches loses nothing (the next run starts from the last
//! committed position, minus the look-back); a crash inside a batch rolls the
//! whole batch back. Rows re-read are compared by checksum and not written.

use crate::config::{Config, OnReject, RATIO_MIN_ROWS};
use crate::db::read::{Reader, Start};
use crate::db::write::Writer;
use crate::db::Pool;
use crate::mapping::{deleted_checksum, Mapped, Mapping};
use crate::shutdown::Shutdown;
use crate::state::{minus, Counts, Position, QuarantineEntry, State, StateRow};
use crate::value::Value;
use anyhow::Context as _;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Mutex;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// The run failed (partner down, schema drift, database error).
    Failed,
    /// Stopped on purpose: `on_reject = "halt"` or the reject limit.
    Halted,
    /// Another process holds the mapping's lease.
    Skipped,
    /// Shutdown was requested; the committed batches stand.
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Halted => "halted",
            Status::Skipped => "skipped",
            Status::Stopped => "stopped",
        }
    }
}

/// The outcome of one run of one mapping.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub mapping: String,
    pub partner: String,
    pub status: Status,
    pub counts: Counts,
    pub error: Option<String>,
    pub watermark: Option<String>,
    pub seconds: f64,
    pub run_id: Option<i64>,
}

/// Everything runs share: the config, the province, partner pools.
pub struct Exchange {
    pub config: Arc<Config>,
    pub province: Pool,
    pub state: State,
    pub(crate) partners: Mutex<HashMap<String, Pool>>,
    /// `host:pid:nonce`, the lease owner.
    pub owner: String,
}

const LEASE_TTL_SECS: i64 = 300;

impl Exchange {
    /// Connects to the province and migrates hlx's state (and, unless
    /// `state_only`, the default provincial schema).
    pub async fn open(config: Arc<Config>, migrate: bool) -> anyhow::Result<Exchange> {
        let province = Pool::connect(&config.province, true).await.context("province")?;
        let state = State::new(province.clone());
        if migrate {
            state.migrate(false).await?;
        }
        let nonce: u32 = rand_u32();
        Ok(Exchange {
            config,
            province,
            state,
            partners: Mutex::new(HashMap::new()),
            owner: format!("{}:{}:{nonce:08x}", crate::state::hostname(), std::process::id()),
        })
    }

    /// The partner's pool, connecting on first use.
    pub async fn partner_pool(&self, name: &str) -> anyhow::Result<Pool> {
        let mut g = self.partners.lock().await;
        if let Some(p) = g.get(name) {
            return Ok(p.clone());
        }
        let partner = self
            .config
            .partner(name)
            .with_context(|| format!("partner `{name}` is not configured"))?;
        let pool = Pool::connect(&partner.endpoint, false)
            .await
            .with_context(|| format!("partner {name}"))?;
        g.insert(name.to_string(), pool.clone());
        Ok(pool)
    }

    /// Drops a partner's pool (after a connection failure), so the next run reconnects.
    pub async fn forget_partner(&self, name: &str) {
        if let Some(p) = self.partners.lock().await.remove(name) {
            p.close().await;
        }
    }

    /// Runs mappings (all enabled ones when `names` is empty), at most four at
    /// a time, each to completion. A failing mapping does not stop the others.
    pub async fn run_all(&self, names: &[String], shutdown: &Shutdown) -> Vec<Outcome> {
        use futures::StreamExt;
        let maps: Vec<&Mapping> = if names.is_empty() {
            self.config.mappings.iter().filter(|m| m.enabled).collect()
        } else {
            names.iter().filter_map(|n| self.config.mapping(n)).collect()
        };
        futures::stream::iter(maps.into_iter().map(|m| self.run(m, shutdown)))
            .buffer_unordered(4)
            .collect()
            .await
    }

    /// Runs one mapping to completion.
    pub async fn run(&self, m: &Mapping, shutdown: &Shutdown) -> Outcome {
        let started = Instant::now();
        let mut out = Outcome {
            mapping: m.name.clone(),
            partner: m.partner.clone(),
            status: Status::Ok,
            counts: Counts::default(),
            error: None,
            watermark: None,
            seconds: 0.0,
            run_id: None,
        };
        let span = tracing::info_span!("run", mapping = %m.name, partner = %m.partner);
        let _g = span.enter();
        let id = match self.state.mapping_id(&m.name, &m.partner).await {
            Ok(id) => id,
            Err(e) => return fail(out, started, format!("province: {e:#}")),
        };
        match self
            .state
            .acquire_lease(id, &self.owner, chrono::Duration::seconds(LEASE_TTL_SECS))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(holder)) => {
                out.status = Status::Skipped;
                out.error = Some(format!("another hlx holds this mapping: {holder}"));
                out.seconds = started.elapsed().as_secs_f64();
                return out;
            }
            Err(e) => return fail(out, started, format!("province: {e:#}")),
        }
        let run_id = match self.state.start_run(&m.name, &m.partner, m.direction.as_str()).await {
            Ok(r) => r,
            Err(e) => {
                let _ = self.state.release_lease(id, &self.owner).await;
                return fail(out, started, format!("province: {e:#}"));
            }
        };
        out.run_id = Some(run_id);
        let mut run = Run {
            ex: self,
            m,
            id,
            run_id,
            counts: Counts::default(),
            position: None,
            wm_from: None,
            optimistic: false,
        };
        let result = run.go(shutdown).await;
        out.counts = run.counts;
        out.watermark = run.position.as_ref().map(|p| p.wm.to_string());
        let (status, error) = match result {
            Ok(false) => (Status::Ok, None),
            Ok(true) => (Status::Stopped, None),
            Err(RunError::Halt(msg)) => (Status::Halted, Some(msg)),
            Err(RunError::Fail(e)) => {
                // Whichever side failed, the next run reconnects to the partner:
                // a pool that outlived a partner restart is not worth keeping.
                self.forget_partner(&m.partner).await;
                (Status::Failed, Some(format!("{e:#}")))
            }
        };
        if let Err(e) = self
            .state
            .finish_run(run_id, status.as_str(), run.wm_from.clone(), error.clone())
            .await
        {
            tracing::error!("cannot record the end of run {run_id}: {e:#}");
        }
        let _ = self.state.release_lease(id, &self.owner).await;
        match status {
            Status::Ok | Status::Stopped => tracing::info!(
                read = out.counts.read,
                inserted = out.counts.inserted,
                updated = out.counts.updated,
                rejected = out.counts.rejected,
                "run {}",
                status.as_str()
            ),
            _ => tracing::error!("run {}: {}", status.as_str(), error.as_deref().unwrap_or("")),
        }
        out.status = status;
        out.error = error;
        out.seconds = started.elapsed().as_secs_f64();
        out
    }
}

fn fail(mut out: Outcome, started: Instant, msg: String) -> Outcome {
    tracing::error!("{msg}");
    out.status = Status::Failed;
    out.error = Some(msg);
    out.seconds = started.elapsed().as_secs_f64();
    out
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    t ^ std::process::id().rotate_left(16)
}

enum RunError {
    Halt(String),
    Fail(anyhow::Error),
}

impl From<anyhow::Error> for RunError {
    fn from(e: anyhow::Error) -> Self {
        RunError::Fail(e)
    }
}

/// One run in progress.
struct Run<'a> {
    ex: &'a Exchange,
    m: &'a Mapping,
    id: i64,
    run_id: i64,
    counts: Counts,
    position: Option<Position>,
    wm_from: Option<String>,
    /// Skip checksum lookups (first load; see [`Run::write`]).
    optimistic: bool,
}

/// A batch read from the source.
type Rows = Vec<Vec<Value>>;

impl Run<'_> {
    /// Returns `Ok(true)` when it stopped early for shutdown.
    async fn go(&mut self, shutdown: &Shutdown) -> Result<bool, RunError> {
        let m = self.m;
        let pool = self.ex.partner_pool(&m.partner).await?;
        let reader = Reader::new(pool, m)
            .await
            .with_context(|| format!("partner {}", m.partner))?;
        let writer = Writer::new(&self.ex.province, m, self.ex.config.defaults.timezone)
            .await
            .context("province")?;
        self.position = self.ex.state.position(self.id).await?;
        let has_quarantine = self.ex.state.open_quarantine_count(&m.name).await? > 0;
        let ctx = BatchCtx {
            writer: &writer,
            has_quarantine,
            mapping: Arc::new(m.clone()),
        };
        // A first load on PostgreSQL skips the checksum lookups (see `write`).
        self.optimistic = self.ex.province.engine() == crate::db::Engine::Postgres
            && self.position.is_none()
            && !self.ex.state.has_row_state(self.id).await?;

        // Phase 1: rows whose watermark is NULL (or every row, without a watermark).
        let null_phase = reader.watermark_index().is_some();
        if let Some(stop) = self
            .phase(&reader, &ctx, Start::Beginning, true, null_phase, shutdown)
            .await?
        {
            return Ok(stop);
        }
        // Phase 2: from the stored position minus the look-back window. Where
        // the watermark allows it, the window up to the position is probed by
        // (key, watermark) and only row versions not seen before are fetched;
        // then the read continues after the position.
        if reader.watermark_index().is_some() {
            let start = match self.position.clone() {
                None => Start::Beginning,
                Some(p) if reader.can_probe() && !p.key.is_empty() && m.lookback.0.as_nanos() > 0 => {
                    let lo = minus(&p.wm, m.lookback.chrono());
                    self.wm_from = Some(lo.to_string());
                    if let Some(stop) = self.probe(&reader, &ctx, &lo, &p, shutdown).await? {
                        return Ok(stop);
                    }
                    Start::After { wm: p.wm, key: p.key }
                }
                Some(p) => Start::From(minus(&p.wm, m.lookback.chrono())),
            };
            if let Start::From(v) = &start {
                self.wm_from = Some(v.to_string());
            }
            if let Some(stop) = self.phase(&reader, &ctx, start, false, false, shutdown).await? {
                return Ok(stop);
            }
        }
        Ok(false)
    }

    /// Reads and writes batches until the source is exhausted. `keyed`: order
    /// by key only (NULL phase or no watermark).
    ///
    /// A producer task reads **and maps** the next batch while this task
    /// writes the current one, so the province never waits on hlx's CPU and
    /// the partner never waits on the province. At most two batches are in
    /// memory (see [`produce`]).
    async fn phase(
        &mut self,
        reader: &Reader,
        ctx: &BatchCtx<'_>,
        start: Start,
        keyed: bool,
        null_phase: bool,
        shutdown: &Shutdown,
    ) -> Result<Option<bool>, RunError> {
        let (send, mut recv) = tokio::sync::mpsc::channel::<anyhow::Result<Prepared>>(1);
        let producer = tokio::spawn(produce(
            reader.clone(),
            ctx.mapping.clone(),
            start,
            keyed,
            null_phase,
            shutdown.clone(),
            send,
        ));
        let result = async {
            while let Some(p) = recv.recv().await {
                let p = p.with_context(|| format!("partner {}", self.m.partner))?;
                self.write(ctx, &p).await?;
                if shutdown.is_triggered() {
                    return Ok(Some(true));
                }
            }
            Ok(None)
        }
        .await;
        producer.abort();
        result
    }

    /// The look-back window by (key, watermark): a row whose recorded source
    /// watermark equals the current one is the version already processed; the
    /// others (late commits, updates committed late) are fetched in full and
    /// written like any batch. The position does not move here.
    async fn probe(
        &mut self,
        reader: &Reader,
        ctx: &BatchCtx<'_>,
        lo: &Value,
        upto: &Position,
        shutdown: &Shutdown,
    ) -> Result<Option<bool>, RunError> {
        let m = self.m;
        let mut after: Option<Position> = None;
        loop {
            let probed = reader
                .probe_window(lo, upto, after.as_ref())
                .await
                .with_context(|| format!("partner {}", m.partner))?;
            let Some((k, w)) = probed.last() else { return Ok(None) };
            after = Some(Position {
                wm: w.clone(),
                key: k.clone(),
            });
            let texts: Vec<String> = probed
                .iter()
                .map(|(k, _)| crate::mapping::key_text(&k.iter().collect::<Vec<_>>()))
                .collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let mut tx = self.ex.province.begin().await.context("province")?;
            let stored = self
                .ex
                .state
                .checksums_tx(&mut tx, self.id, &refs)
                .await
                .context("province")?;
            tx.commit().await.context("province")?;
            let mut unseen: Vec<Vec<Value>> = probed
                .iter()
                .zip(&texts)
                .filter(|((_, w), t)| {
                    stored.get(t.as_str()).and_then(|s| s.wm.as_deref()) != Some(crate::state::wm_text(w).as_str())
                })
                .map(|((k, _), _)| k.clone())
                .collect();
            tracing::debug!(probed = probed.len(), unseen = unseen.len(), "look-back window probed");
            // Fetched and written a batch at a time.
            while !unseen.is_empty() {
                let rest = unseen.split_off(unseen.len().min(m.batch_size));
                let rows = reader
                    .rows_by_key(&unseen)
                    .await
                    .with_context(|| format!("partner {}", m.partner))?;
                if !rows.is_empty() {
                    let p = prepare(m, rows, None, false);
                    self.write(ctx, &p).await?;
                }
                unseen = rest;
            }
            if shutdown.is_triggered() {
                return Ok(Some(true));
            }
            if probed.len() < reader.probe_size() {
                return Ok(None);
            }
        }
    }

    /// Writes one prepared batch in one provincial transaction. In optimistic
    /// mode (a first load on PostgreSQL) the checksum lookup is skipped; if a
    /// key turns out to have state after all, the batch is rolled back and
    /// written again with the lookup, and optimism ends for the run.
    async fn write(&mut self, ctx: &BatchCtx<'_>, p: &Prepared) -> Result<(), RunError> {
        if self.optimistic {
            match self.batch(ctx, p, true).await {
                Err(RunError::Fail(e)) if e.downcast_ref::<crate::state::KeyExists>().is_some() => {
                    tracing::info!("a key already has state; checking checksums from here on");
                    self.optimistic = false;
                }
                other => return other,
            }
        }
        self.batch(ctx, p, false).await
    }

    /// Writes one batch in one provincial transaction.
    async fn batch(&mut self, ctx: &BatchCtx<'_>, p: &Prepared, optimistic: bool) -> Result<(), RunError> {
        let m = self.m;
        let state = &self.ex.state;
        let (rows, keys, mapped) = (&p.rows, &p.keys, &p.mapped);
        let mut c = Counts {
            batches: 1,
            read: rows.len() as u64,
            unchanged: p.duplicates,
            null_watermark: if p.null_phase { rows.len() as u64 } else { 0 },
            ..Counts::default()
        };
        let new_pos = p.new_pos.clone();
        let t0 = Instant::now();
        let mut tx = self.ex.province.begin().await.context("province")?;
        let known = if optimistic {
            HashMap::new()
        } else {
            let key_refs: Vec<&str> = mapped.iter().map(|(i, _)| keys[*i].as_str()).collect();
            state
                .checksums_tx(&mut tx, self.id, &key_refs)
                .await
                .context("province")?
        };

        // The source watermark of a row, as recorded in hlx_row_state.
        let wm_of = |i: usize| m.source.watermark.map(|w| crate::state::wm_text(&rows[i][w]));
        let mut upserts: Vec<(usize, &[Value], [u8; 32], bool)> = Vec::new();
        let mut deletes: Vec<(usize, Vec<Value>)> = Vec::new();
        let mut rejects: Vec<(usize, crate::mapping::rules::Rejection)> = Vec::new();
        // Unchanged rows whose watermark moved: their recorded watermark is
        // refreshed, so the next poll's probe does not fetch them again.
        let mut touched: Vec<StateRow<'_>> = Vec::new();
        for (i, r) in mapped {
            let k = keys[*i].as_str();
            match (r, known.get(k)) {
                (Ok(Mapped::Row { checksum, .. }), Some(st)) if !st.deleted && st.checksum.as_slice() == checksum => {
                    c.unchanged += 1;
                    if st.wm != wm_of(*i) {
                        touched.push(StateRow {
                            key: k,
                            checksum: *checksum,
                            deleted: false,
                            wm: wm_of(*i),
                        });
                    }
                }
                (Ok(Mapped::Row { values, checksum }), st) => upserts.push((*i, values, *checksum, st.is_none())),
                (Ok(Mapped::Deleted { .. }), Some(st)) if st.deleted => {
                    c.unchanged += 1;
                    if st.wm != wm_of(*i) {
                        touched.push(StateRow {
                            key: k,
                            checksum: deleted_checksum(),
                            deleted: true,
                            wm: wm_of(*i),
                        });
                    }
                }
                (Ok(Mapped::Deleted { key }), _) => deletes.push((*i, key.clone())),
                (Err(rej), _) => rejects.push((*i, rej.clone())),
            }
        }

        // Target writes; rows the target refuses join the rejections.
        let fresh = upserts.iter().all(|u| u.3);
        let slices: Vec<&[Value]> = upserts.iter().map(|u| u.1).collect();
        let refused = ctx
            .writer
            .upsert(&mut tx, &slices, fresh)
            .await
            .context("province: writing the target")?;
        let refused_idx: std::collections::HashSet<usize> = refused.iter().map(|(j, _)| *j).collect();
        for (j, msg) in &refused {
            let i = upserts[*j].0;
            rejects.push((
                i,
                crate::mapping::rules::Rejection {
                    field: "(row)".into(),
                    column: None,
                    rule: "target",
                    value: None,
                    message: format!("the target table refused the row: {msg}"),
                },
            ));
        }
        let mut saved: Vec<StateRow<'_>> = touched;
        let mut landed: Vec<&str> = Vec::new();
        for (j, (i, _, sum, new)) in upserts.iter().enumerate() {
            if refused_idx.contains(&j) {
                continue;
            }
            if *new {
                c.inserted += 1;
            } else {
                c.updated += 1;
            }
            saved.push(StateRow {
                key: keys[*i].as_str(),
                checksum: *sum,
                deleted: false,
                wm: wm_of(*i),
            });
            landed.push(keys[*i].as_str());
        }
        if !deletes.is_empty() {
            let dkeys: Vec<Vec<Value>> = deletes.iter().map(|d| d.1.clone()).collect();
            let n = ctx
                .writer
                .delete(&mut tx, &dkeys)
                .await
                .context("province: applying deletes")?;
            c.deleted += n;
            c.unchanged += deletes.len() as u64 - n.min(deletes.len() as u64);
            for (i, _) in &deletes {
                saved.push(StateRow {
                    key: keys[*i].as_str(),
                    checksum: deleted_checksum(),
                    deleted: true,
                    wm: wm_of(*i),
                });
                landed.push(keys[*i].as_str());
            }
        }

        // Rejections: halt, or quarantine (an identical row already quarantined counts unchanged).
        if !rejects.is_empty() {
            let rkeys: Vec<&str> = rejects.iter().map(|(i, _)| keys[*i].as_str()).collect();
            let open = state
                .open_quarantine_tx(&mut tx, &m.name, &rkeys)
                .await
                .context("province")?;
            let mut new_rejects = 0u64;
            for (i, rej) in &rejects {
                let raw = m.raw_json(&rows[*i]).to_string();
                let digest = Sha256::digest(format!("{raw}\u{1f}{rej}").as_bytes()).to_vec();
                if open.get(keys[*i].as_str()) == Some(&digest) {
                    c.unchanged += 1;
                    continue;
                }
                if m.on_reject == OnReject::Halt {
                    return Err(RunError::Halt(format!("on_reject = \"halt\": row {}: {rej}", keys[*i])));
                }
                new_rejects += 1;
                let e = QuarantineEntry {
                    row_key: keys[*i].clone(),
                    raw,
                    digest,
                    field: Some(rej.field.clone()),
                    column: rej.column.clone(),
                    rule: rej.rule.to_string(),
                    value: rej.value.clone(),
                    reason: rej.to_string(),
                };
                state
                    .quarantine_tx(&mut tx, &m.name, &m.partner, self.run_id, &e)
                    .await
                    .context("province: quarantine")?;
            }
            c.rejected += new_rejects;
            let total_rej = self.counts.rejected + c.rejected;
            let total_read = self.counts.read + c.read;
            if let Some(limit) = m.reject_limit.count {
                if total_rej > limit {
                    return Err(RunError::Halt(format!("reject limit: {total_rej} rows rejected in this run, the limit is {limit}; the batch was rolled back. First reason: {}", rejects[0].1)));
                }
            }
            if let Some(ratio) = m.reject_limit.ratio {
                if total_read >= RATIO_MIN_ROWS && (total_rej as f64) > ratio * total_read as f64 {
                    return Err(RunError::Halt(format!(
                        "reject limit: {total_rej} of {total_read} rows rejected ({:.0}%), the limit is {:.0}%; the batch was rolled back. First reason: {}",
                        100.0 * total_rej as f64 / total_read as f64,
                        ratio * 100.0,
                        rejects[0].1
                    )));
                }
            }
        }

        state
            .save_checksums_tx(
                &mut tx,
                self.id,
                &saved,
                optimistic || saved.iter().all(|r| !known.contains_key(r.key)),
                optimistic,
            )
            .await
            .context("province: checksums")?;
        if ctx.has_quarantine && !landed.is_empty() {
            state
                .resolve_quarantine_tx(&mut tx, &m.name, &landed)
                .await
                .context("province: quarantine")?;
        }
        let mut moved = None;
        if let Some(p) = new_pos {
            // The position never moves backwards (a hard-deleted newest row
            // must not make the next poll re-read further back).
            let ahead = match &self.position {
                None => true,
                Some(old) => !position_le(&p, old),
            };
            if ahead {
                state
                    .save_position_tx(&mut tx, self.id, &p)
                    .await
                    .context("province: watermark")?;
                moved = Some(p);
            }
        }
        state
            .add_counts_tx(&mut tx, self.run_id, &c, moved.as_ref().map(|p| p.wm.to_string()))
            .await
            .context("province")?;
        if !state
            .renew_lease_tx(
                &mut tx,
                self.id,
                &self.ex.owner,
                chrono::Duration::seconds(LEASE_TTL_SECS),
            )
            .await
            .context("province")?
        {
            return Err(RunError::Fail(anyhow::anyhow!(
                "lost the mapping's lease to another process; batch rolled back"
            )));
        }
        tx.commit().await.context("province: commit")?;
        tracing::debug!(
            rows = rows.len(),
            written = c.inserted + c.updated,
            ms = t0.elapsed().as_millis() as u64,
            optimistic,
            "batch committed"
        );
        if let Some(p) = moved {
            self.position = Some(p);
        }
        self.counts.add(&c);
        Ok(())
    }
}

/// Whether position `a` is at or before `b` (same types compare; a type
/// change of the watermark column counts as "not before").
fn position_le(a: &Position, b: &Position) -> bool {
    use std::cmp::Ordering;
    let cmp = |x: &Value, y: &Value| -> Option<Ordering> {
        match (x, y) {
            (Value::Int(p), Value::Int(q)) => Some(p.cmp(q)),
            (Value::Text(p), Value::Text(q)) => Some(p.cmp(q)),
            (Value::Timestamp(p), Value::Timestamp(q)) => Some(p.cmp(q)),
            (Value::TimestampTz(p), Value::TimestampTz(q)) => Some(p.cmp(q)),
            (Value::Date(p), Value::Date(q)) => Some(p.cmp(q)),
            (Value::Float(p), Value::Float(q)) => p.partial_cmp(q),
            _ => None,
        }
    };
    match cmp(&a.wm, &b.wm) {
        Some(Ordering::Less) => true,
        Some(Ordering::Greater) | None => false,
        Some(Ordering::Equal) => {
            for (x, y) in a.key.iter().zip(&b.key) {
                match cmp(x, y) {
                    Some(Ordering::Less) => return true,
                    Some(Ordering::Greater) | None => return false,
                    Some(Ordering::Equal) => {}
                }
            }
            true
        }
    }
}

struct BatchCtx<'a> {
    writer: &'a Writer,
    has_quarantine: bool,
    mapping: Arc<Mapping>,
}

/// A batch read from the source and mapped, ready to write.
struct Prepared {
    rows: Rows,
    keys: Vec<String>,
    /// (row index, outcome) for the last row of each key, in read order.
    mapped: Vec<(usize, Result<Mapped, crate::mapping::rules::Rejection>)>,
    /// Rows superseded by a later row of the same key in the batch.
    duplicates: u64,
    /// The position after this batch (watermark phase only).
    new_pos: Option<Position>,
    null_phase: bool,
}

/// Maps a batch (pure CPU work). A key that appears twice in one batch (a
/// source without a unique key) keeps its later row.
fn prepare(m: &Mapping, rows: Rows, new_pos: Option<Position>, null_phase: bool) -> Prepared {
    let keys: Vec<String> = rows.iter().map(|r| m.row_key(r)).collect();
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
    let mut duplicates = 0;
    for (i, k) in keys.iter().enumerate() {
        if let Some(prev) = last.insert(k.as_str(), i) {
            tracing::warn!(key = %keys[prev], "source key appears twice in one batch; the later row wins");
            duplicates += 1;
        }
    }
    let mut order: Vec<usize> = last.values().copied().collect();
    order.sort_unstable();
    let mapped = order.iter().map(|&i| (i, m.map_row(&rows[i]))).collect();
    Prepared {
        rows,
        keys,
        mapped,
        duplicates,
        new_pos,
        null_phase,
    }
}

/// The producer of [`Run::phase`]: reads keyset batches and maps them until
/// the source is exhausted, the writer hangs up, or shutdown is requested.
async fn produce(
    reader: Reader,
    m: Arc<Mapping>,
    mut start: Start,
    keyed: bool,
    null_phase: bool,
    shutdown: Shutdown,
    send: tokio::sync::mpsc::Sender<anyhow::Result<Prepared>>,
) {
    loop {
        // Take the channel's one slot before reading, so that a batch is read
        // only once the writer has taken the previous one: at most two
        // batches are alive (one being written, one being read and mapped).
        let Ok(slot) = send.reserve().await else { return };
        let rows = match reader.batch(&start, keyed).await {
            Ok(r) => r,
            Err(e) => {
                slot.send(Err(e));
                return;
            }
        };
        let Some(last) = rows.last() else { return };
        let more = rows.len() >= m.batch_size;
        let (wm, key) = reader.position(last);
        let new_pos = (!keyed).then(|| Position {
            wm: wm.clone().unwrap_or(Value::Null),
            key: key.clone(),
        });
        start = if keyed {
            Start::AfterKey(key)
        } else {
            Start::After {
                wm: wm.unwrap_or(Value::Null),
                key,
            }
        };
        slot.send(Ok(prepare(&m, rows, new_pos, null_phase)));
        if !more || shutdown.is_triggered() {
            return;
        }
    }
}
