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
use crate::mapping::{deleted_checksum, Direction, Mapped, Mapping};
use crate::shutdown::Shutdown;
use crate::state::{minus, Counts, Position, QuarantineEntry, State, StateRow};
use crate::value::Value;
use anyhow::Context as _;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

mod pipeline;

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
    /// Partner pools by name, each connected once on first use.
    partners: std::sync::Mutex<HashMap<String, Arc<PartnerSlot>>>,
    /// `host:pid:nonce`, the lease owner.
    pub owner: String,
}

/// One partner's pool: connected once, by whichever run asks first, or
/// by [`Exchange::open_for`] ahead of the runs.
#[derive(Default)]
struct PartnerSlot {
    pool: tokio::sync::OnceCell<Pool>,
    /// A connection attempt started ahead; the first run to ask takes it.
    early: std::sync::Mutex<Option<tokio::task::JoinHandle<anyhow::Result<Pool>>>>,
}

const LEASE_TTL_SECS: i64 = 300;

impl Exchange {
    /// Connects to the province and migrates hlx's state (and, unless
    /// `state_only`, the default provincial schema).
    pub async fn open(config: Arc<Config>, migrate: bool) -> anyhow::Result<Exchange> {
        Exchange::open_for(config, migrate, &[]).await
    }

    /// As [`open`](Self::open), and connects meanwhile to the partners of
    /// the mappings a [`run_all`](Self::run_all) of `names` takes (every
    /// enabled one when `names` is empty), so that a one-shot run
    /// waits for one connection set-up instead of one after another. A
    /// partner that cannot be reached fails the first of its mappings to
    /// ask for it with that attempt's error (another mapping of the same
    /// partner tries again), as a connection made on first use would.
    pub async fn open_for(config: Arc<Config>, migrate: bool, names: &[String]) -> anyhow::Result<Exchange> {
        let mut early: HashMap<String, Arc<PartnerSlot>> = HashMap::new();
        for m in config.selected(names) {
            let Some(partner) = config.partner(&m.partner) else {
                continue;
            };
            early.entry(m.partner.clone()).or_insert_with(|| {
                let endpoint = partner.endpoint.clone();
                Arc::new(PartnerSlot {
                    pool: tokio::sync::OnceCell::new(),
                    early: std::sync::Mutex::new(Some(tokio::spawn(
                        async move { Pool::connect(&endpoint, false).await },
                    ))),
                })
            });
        }
        let province = Pool::connect(&config.province, true).await.context("province")?;
        if migrate {
            State::new(province.clone()).migrate(config.existing_schema).await?;
        }
        let ex = Exchange::with_province(config, province);
        *ex.partners.lock().unwrap_or_else(|e| e.into_inner()) = early;
        Ok(ex)
    }

    /// An exchange over an open (and migrated) provincial pool: the daemon
    /// keeps one pool across config reloads.
    pub fn with_province(config: Arc<Config>, province: Pool) -> Exchange {
        let nonce: u32 = rand_u32();
        Exchange {
            config,
            state: State::new(province.clone()),
            province,
            partners: std::sync::Mutex::new(HashMap::new()),
            owner: format!("{}:{}:{nonce:08x}", crate::state::hostname(), std::process::id()),
        }
    }

    /// The partner's pool, connecting on first use. Mappings of one partner
    /// that ask at once share one connection attempt; mappings of different
    /// partners do not wait for each other.
    pub async fn partner_pool(&self, name: &str) -> anyhow::Result<Pool> {
        let partner = self
            .config
            .partner(name)
            .with_context(|| format!("partner `{name}` is not configured"))?;
        let slot = self
            .partners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone();
        let pool = slot
            .pool
            .get_or_try_init(|| async {
                let early = slot.early.lock().unwrap_or_else(|e| e.into_inner()).take();
                match early {
                    Some(connect) => connect.await.context("connecting")?,
                    None => Pool::connect(&partner.endpoint, false).await,
                }
            })
            .await
            .with_context(|| format!("partner {name}"))?;
        Ok(pool.clone())
    }

    /// Drops a partner's pool (after a connection failure), so the next run reconnects.
    pub async fn forget_partner(&self, name: &str) {
        let slot = self.partners.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
        if let Some(p) = slot.as_ref().and_then(|s| s.pool.get()) {
            p.close().await;
        }
    }

    /// Runs mappings (all enabled ones when `names` is empty), at most four at
    /// a time, each to completion. A failing mapping does not stop the others.
    pub async fn run_all(&self, names: &[String], shutdown: &Shutdown) -> Vec<Outcome> {
        use futures::StreamExt;
        let maps = self.config.selected(names);
        // The halves of a two-way mapping run as one unit, the pull half first.
        let selected: std::collections::HashSet<&str> = maps.iter().map(|m| m.name.as_str()).collect();
        let paired = |m: &Mapping, role: Direction| {
            m.pair
                .as_ref()
                .filter(|p| p.role == role && selected.contains(p.sibling.as_str()))
                .and_then(|p| self.config.mapping(&p.sibling))
        };
        // A push half asked for alone still runs after its pull half: it
        // must not overwrite partner changes the pull has not taken yet.
        let pull_of = |m: &Mapping| {
            m.pair
                .as_ref()
                .filter(|p| p.role == Direction::Push)
                .and_then(|p| self.config.mapping(&p.sibling))
        };
        let units: Vec<Vec<&Mapping>> = maps
            .iter()
            .filter(|m| paired(m, Direction::Push).is_none())
            .map(|m| match pull_of(m) {
                Some(pull) => vec![pull, *m],
                None => {
                    let mut unit = vec![*m];
                    unit.extend(paired(m, Direction::Pull));
                    unit
                }
            })
            .collect();
        let outs: Vec<Vec<Outcome>> = futures::stream::iter(units.into_iter().map(|unit| async move {
            let mut outs: Vec<Outcome> = Vec::new();
            for m in unit {
                // The push half of a pair runs only after its pull half succeeded.
                if let Some(pull) = outs
                    .last()
                    .filter(|_| m.pair.as_ref().is_some_and(|p| p.role == Direction::Push))
                {
                    if pull.status != Status::Ok {
                        outs.push(Outcome {
                            mapping: m.name.clone(),
                            partner: m.partner.clone(),
                            status: Status::Skipped,
                            counts: Counts::default(),
                            error: Some(format!(
                                "not run: its pull half {} ended {}",
                                pull.mapping,
                                pull.status.as_str()
                            )),
                            watermark: None,
                            seconds: 0.0,
                            run_id: None,
                        });
                        continue;
                    }
                }
                outs.push(self.run(m, shutdown).await);
            }
            outs
        }))
        .buffer_unordered(4)
        .collect()
        .await;
        outs.into_iter().flatten().collect()
    }

    /// Runs one mapping to completion. Every log line of the run carries
    /// the partner, the mapping and the run id.
    pub async fn run(&self, m: &Mapping, shutdown: &Shutdown) -> Outcome {
        use tracing::Instrument as _;
        let span = tracing::info_span!("run", partner = %m.partner, mapping = %m.name, run_id = tracing::field::Empty);
        self.execute(m, Work::Exchange(shutdown)).instrument(span).await.outcome
    }

    /// `hlx rejects retry`: maps the mapping's open quarantine entries (those
    /// among `ids`, or all of them) again from their stored raw rows, with
    /// the mapping and code sets in force now, and writes them exactly as a
    /// run writes a batch: under the mapping's lease, one provincial
    /// transaction per batch covering target rows, checksums, quarantine
    /// and the exchange log. Rows that pass land and their entries are
    /// resolved; rows that fail again stay open with this attempt's reason.
    /// The watermark position does not move: the rows were read before.
    ///
    /// The partner is asked for its table's column types only (so stored
    /// values are typed as a run would read them); no source row is read.
    pub async fn retry_quarantined(&self, m: &Mapping, ids: &[i64]) -> RetryOutcome {
        use tracing::Instrument as _;
        let span =
            tracing::info_span!("retry", partner = %m.partner, mapping = %m.name, run_id = tracing::field::Empty);
        let done = self.execute(m, Work::Retry(ids)).instrument(span).await;
        let o = done.outcome;
        RetryOutcome {
            retried: o.counts.read,
            landed: done.resolved,
            rejected: o.counts.rejected,
            skipped: done.skipped,
            mapping: o.mapping,
            partner: o.partner,
            status: o.status,
            counts: o.counts,
            error: o.error,
            seconds: o.seconds,
            run_id: o.run_id,
        }
    }

    /// One run of either kind, from taking the lease to recording its end.
    async fn execute(&self, m: &Mapping, work: Work<'_>) -> Done {
        let started = Instant::now();
        let mut done = Done {
            outcome: Outcome {
                mapping: m.name.clone(),
                partner: m.partner.clone(),
                status: Status::Ok,
                counts: Counts::default(),
                error: None,
                watermark: None,
                seconds: 0.0,
                run_id: None,
            },
            resolved: 0,
            skipped: Vec::new(),
        };
        let id = match self.state.mapping_id(&m.name, &m.partner).await {
            Ok(id) => id,
            Err(e) => return done.fail(started, format!("province: {e:#}")),
        };
        match self
            .state
            .acquire_lease(id, &self.owner, chrono::Duration::seconds(LEASE_TTL_SECS))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(holder)) => {
                done.outcome.status = Status::Skipped;
                done.outcome.error = Some(format!("another hlx holds this mapping: {holder}"));
                done.outcome.seconds = started.elapsed().as_secs_f64();
                return done;
            }
            Err(e) => return done.fail(started, format!("province: {e:#}")),
        }
        let direction = match work {
            Work::Exchange(_) => m.direction.as_str(),
            Work::Retry(ids) => {
                // Nothing to retry is not worth a run in the records.
                match self.state.open_quarantine_page(&m.name, ids, 0, 1).await {
                    Ok(open) if open.is_empty() => {
                        let _ = self.state.release_lease(id, &self.owner).await;
                        done.outcome.seconds = started.elapsed().as_secs_f64();
                        return done;
                    }
                    Ok(_) => crate::state::RETRY_RUN,
                    Err(e) => {
                        let _ = self.state.release_lease(id, &self.owner).await;
                        return done.fail(started, format!("province: {e:#}"));
                    }
                }
            }
        };
        let run_id = match self.state.start_run(&m.name, &m.partner, direction).await {
            Ok(r) => r,
            Err(e) => {
                let _ = self.state.release_lease(id, &self.owner).await;
                return done.fail(started, format!("province: {e:#}"));
            }
        };
        done.outcome.run_id = Some(run_id);
        tracing::Span::current().record("run_id", run_id);
        let mut run = Run {
            ex: self,
            m,
            id,
            run_id,
            counts: Counts::default(),
            position: None,
            wm_from: None,
            optimistic: false,
            retry: matches!(work, Work::Retry(_)),
            resolved: 0,
            window: None,
            seal: None,
            seal_matched: false,
            committed: false,
        };
        let result = match work {
            Work::Exchange(shutdown) => run.go(shutdown).await,
            Work::Retry(ids) => run.retry(ids, &mut done.skipped).await.map(|()| false),
        };
        let what = if run.retry { "retry" } else { "run" };
        let out = &mut done.outcome;
        out.counts = run.counts;
        out.watermark = run.position.as_ref().map(|p| p.wm.to_string());
        done.resolved = run.resolved;
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
            tracing::error!("cannot record the end of {what} {run_id}: {e:#}");
        }
        if matches!(status, Status::Failed | Status::Halted) {
            let mut e = log_entry(
                m,
                Some(run_id),
                crate::exchange_log::Kind::Run,
                status.as_str(),
                &run.counts,
            );
            e.wm_from = run.wm_from.clone();
            e.wm_to = run.position.as_ref().map(|p| p.wm.to_string());
            e.error = error.clone();
            if let Err(e) = crate::exchange_log::append(&self.province, self.config.log.chain_hash, e).await {
                tracing::error!("cannot log the failed {what} in the exchange log: {e:#}");
            }
        }
        let _ = self.state.release_lease(id, &self.owner).await;
        match status {
            Status::Ok | Status::Stopped => tracing::info!(
                read = out.counts.read,
                inserted = out.counts.inserted,
                updated = out.counts.updated,
                rejected = out.counts.rejected,
                "{what} {}",
                status.as_str()
            ),
            _ => tracing::error!("{what} {}: {}", status.as_str(), error.as_deref().unwrap_or("")),
        }
        out.status = status;
        out.error = error;
        out.seconds = started.elapsed().as_secs_f64();
        done
    }
}

/// What a run does: exchange rows from the source, or retry the quarantine.
#[derive(Clone, Copy)]
enum Work<'a> {
    Exchange(&'a Shutdown),
    /// These entry ids (all open entries when empty).
    Retry(&'a [i64]),
}

/// A finished run, with what only a retry reports.
struct Done {
    outcome: Outcome,
    resolved: u64,
    skipped: Vec<RetrySkip>,
}

impl Done {
    fn fail(mut self, started: Instant, msg: String) -> Done {
        self.outcome = fail(self.outcome, started, msg);
        self
    }
}

/// What `hlx rejects retry` did for one mapping.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RetryOutcome {
    pub mapping: String,
    pub partner: String,
    /// `ok` also when rows are still rejected; `failed` when the retry could
    /// not be carried out (database error); `skipped` when a run held the lease.
    pub status: Status,
    /// Entries re-mapped.
    pub retried: u64,
    /// Entries whose row now maps and is in the target (written now, or
    /// already identical there); they are resolved.
    pub landed: u64,
    /// Entries whose row fails again; they stay open with the new reason.
    pub rejected: u64,
    /// Entries left alone: their stored row cannot stand for the row any more.
    pub skipped: Vec<RetrySkip>,
    pub counts: Counts,
    pub error: Option<String>,
    pub seconds: f64,
    pub run_id: Option<i64>,
}

/// A quarantine entry a retry left alone, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RetrySkip {
    pub id: i64,
    pub reason: String,
}

fn fail(mut out: Outcome, started: Instant, msg: String) -> Outcome {
    tracing::error!("{msg}");
    out.status = Status::Failed;
    out.error = Some(msg);
    out.seconds = started.elapsed().as_secs_f64();
    out
}

fn rand_u32() -> u32 {
    fastrand::u32(..)
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
    /// `hlx rejects retry`: the rows come from the quarantine, not the source.
    retry: bool,
    /// Quarantine entries resolved by the committed batches.
    resolved: u64,
    /// The pairs of the look-back window this run confirmed, where the
    /// window can be sealed ([`crate::window`]).
    window: Option<crate::window::Window>,
    /// The seal stored with the position this run started from.
    seal: Option<String>,
    /// The probe found the window as sealed. Unless this run `committed`
    /// (a write to the row state clears the stored seal), the stored seal
    /// still holds and is not taken again.
    seal_matched: bool,
    /// This run committed a batch.
    committed: bool,
}

/// A batch read from the source.
type Rows = Vec<Vec<Value>>;

impl Run<'_> {
    /// An exchange-log entry for this run, with the given counts.
    fn log_entry(&self, kind: crate::exchange_log::Kind, outcome: &str, c: &Counts) -> crate::exchange_log::Entry {
        log_entry(self.m, Some(self.run_id), kind, outcome, c)
    }

    /// How long one partner read may take before the run gives up on it. The
    /// partner's server enforces `statement_timeout` itself; this guard is
    /// for a partner that stopped answering at all (a hung host, a network
    /// that drops packets), so that it cannot hold a run forever.
    fn partner_deadline(&self) -> std::time::Duration {
        match self.ex.config.partner(&self.m.partner) {
            Some(p) => {
                p.endpoint.statement_timeout.0 + p.endpoint.connect_timeout.0 + std::time::Duration::from_secs(30)
            }
            None => std::time::Duration::from_secs(3600),
        }
    }

    async fn ends(&self) -> Result<(Reader, Writer, Option<Pool>), RunError> {
        Ok(ends(self.ex, self.m).await?)
    }

    /// Two-way, pull half: for the rows about to be written, the shared
    /// fields that the province changed too since the push half last saw
    /// the row (its checksum moved), and that now differ, are conflicts:
    /// each is settled by the policy and recorded. Returns, per upsert, the
    /// row to write instead (the province's value kept), or an empty row.
    async fn settle_conflicts(
        &self,
        tx: &mut crate::db::Tx,
        sib: &Sibling,
        pair: &crate::mapping::twoway::Pair,
        rows: &Rows,
        upserts: &[Upsert<'_>],
        province: &HashMap<String, Vec<Value>>,
    ) -> Result<(Vec<Vec<Value>>, u64, Vec<usize>), RunError> {
        use crate::mapping::twoway::Policy;
        let m = self.m;
        let keys: Vec<Vec<Value>> = upserts
            .iter()
            .map(|u| m.target.key.iter().map(|&k| u.values[k].clone()).collect())
            .collect();
        let texts: Vec<String> = keys.iter().map(|k| crate::mapping::key_text_of(k)).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let pushed = self
            .ex
            .state
            .checksums_tx(tx, sib.id, &refs)
            .await
            .context("province")?;
        let agreed = if pair.shared.is_empty() {
            HashMap::new()
        } else {
            self.ex
                .state
                .shared_values_tx(tx, &pair.name, &refs)
                .await
                .context("province")?
        };
        let pzone = self.ex.config.defaults.timezone;
        let mut out = vec![Vec::new(); upserts.len()];
        let mut ignored = 0;
        let mut reassert = Vec::new();
        for (j, u) in upserts.iter().enumerate() {
            let Some(prov) = province.get(&texts[j]) else { continue };
            // The partner changed a field the province owns: not taken.
            let foreign = pair
                .province_owned
                .iter()
                .filter(|&&(pf, pc)| !crate::reconcile::same(&u.values[pf], &prov[pc], pzone))
                .count();
            if foreign > 0 {
                ignored += foreign as u64;
                reassert.push(j);
                tracing::info!(key = %texts[j], fields = foreign, "two-way: the partner's changes to province-owned fields are ignored");
            }
            // Without a recorded agreed value, whether the province's row
            // moved since the push half last saw it stands in for the field.
            let row_moved_in_province = match (pushed.get(&texts[j]), sib.m.map_row(prov)) {
                (Some(st), Ok(Mapped::Row { checksum, .. })) => st.checksum.as_slice() != checksum,
                _ => false,
            };
            for &(pf, pc) in &pair.shared {
                let (partner_v, province_v) = (&u.values[pf], &prov[pc]);
                if crate::reconcile::same(partner_v, province_v, pzone) {
                    continue;
                }
                // Three-way, per field: who moved away from the value both
                // sides last agreed on?
                let field = m.fields[pf].target.as_str();
                let last = agreed.get(&(texts[j].clone(), field.to_string()));
                let moved = |v: &Value, from: &Option<String>| match from {
                    Some(t) => !crate::reconcile::same(v, &Value::Text(t.clone()), pzone),
                    None => !v.is_null(),
                };
                let (partner_moved, province_moved) = match last {
                    Some(c) => (moved(partner_v, c), moved(province_v, c)),
                    None => (true, row_moved_in_province),
                };
                if !province_moved {
                    // Only the partner changed it: taken.
                    continue;
                }
                if !partner_moved {
                    // Only the province changed it; the partner's row moved
                    // for another field. Keep the province's value (the push
                    // half then sends it); no conflict.
                    if out[j].is_empty() {
                        out[j] = u.values.to_vec();
                    }
                    out[j][pf] = province_v.clone();
                    continue;
                }
                let partner_newer = match pair.policy {
                    Policy::ProvinceWins => false,
                    Policy::NewerWins => {
                        let pt = m
                            .source
                            .watermark
                            .and_then(|w| crate::reconcile::instant(&rows[u.row][w], m.zone));
                        let qt = sib
                            .m
                            .source
                            .watermark
                            .and_then(|w| crate::reconcile::instant(&prov[w], pzone));
                        matches!((pt, qt), (Some(p), Some(q)) if p > q + pair.skew)
                    }
                };
                let kept = if partner_newer { "partner" } else { "province" };
                tracing::warn!(
                    key = %texts[j],
                    field = %m.fields[pf].target,
                    kept,
                    policy = pair.policy.as_str(),
                    "two-way conflict: both sides changed a shared field"
                );
                // In full (the losing text must be recoverable); masked when personal.
                let show = |v: &Value| {
                    (!v.is_null()).then(|| match m.fields[pf].personal {
                        Some(k) => k.apply(&v.to_string()),
                        None => v.to_string(),
                    })
                };
                let before = last.cloned().flatten().and_then(|t| show(&Value::Text(t)));
                self.ex
                    .state
                    .conflict_tx(
                        tx,
                        &pair.name,
                        &texts[j],
                        field,
                        crate::state::ConflictValues {
                            agreed: before,
                            province: show(province_v),
                            partner: show(partner_v),
                        },
                        kept,
                        pair.policy.as_str(),
                        self.run_id,
                    )
                    .await
                    .context("province: recording a conflict")?;
                if !partner_newer {
                    if out[j].is_empty() {
                        out[j] = u.values.to_vec();
                    }
                    out[j][pf] = province_v.clone();
                }
            }
        }
        Ok((out, ignored, reassert))
    }

    /// Two-way: after this half wrote rows, the other half's checksums of
    /// them, recomputed from the rows as they now stand on the side written
    /// (origin tracking): when they come back, they are unchanged.
    async fn track_origin(&self, sib: &Sibling, written: &[Vec<Value>]) -> Result<(), RunError> {
        if written.is_empty() {
            return Ok(());
        }
        let rows = sib
            .reader
            .rows_by_key(written)
            .await
            .context("two-way: reading back the rows written")?;
        let mut saved = Vec::new();
        let keys: Vec<String> = rows.iter().map(|r| sib.m.row_key(r)).collect();
        for (r, k) in rows.iter().zip(&keys) {
            if let Ok(Mapped::Row { checksum, .. }) = sib.m.map_row(r) {
                saved.push(StateRow {
                    key: k.as_str(),
                    checksum,
                    deleted: false,
                    wm: sib.m.source.watermark.map(|w| crate::state::wm_text(&r[w])),
                });
            }
        }
        let mut tx = self.ex.province.begin().await.context("province")?;
        self.ex
            .state
            .save_checksums_tx(&mut tx, sib.id, &saved, false, false)
            .await
            .context("province: two-way checksums")?;
        tx.commit().await.context("province: commit")?;
        // The shared fields' values both sides now hold: what a later
        // conflict started from, in the province's terms (the province rows
        // themselves after a pull; the partner rows mapped by the pull half
        // after a push).
        let pulling = self.m.pair.as_ref().is_some_and(|p| p.role == Direction::Pull);
        let (pull, pull_pair) = if pulling {
            (self.m, self.m.pair.as_ref().expect("checked"))
        } else {
            match &sib.m.pair {
                Some(p) => (&*sib.m, p),
                None => return Ok(()),
            }
        };
        if pull_pair.shared.is_empty() {
            return Ok(());
        }
        let mut agreed = Vec::new();
        for r in &rows {
            if pulling {
                let key = sib.m.row_key(r);
                for &(pf, pc) in &pull_pair.shared {
                    agreed.push((key.clone(), pull.fields[pf].target.to_string(), value_text(&r[pc])));
                }
            } else if let Ok(Mapped::Row { values, .. }) = pull.map_row(r) {
                let key = crate::mapping::key_text(&pull.target.key.iter().map(|&k| &values[k]).collect::<Vec<_>>());
                for &(pf, _) in &pull_pair.shared {
                    agreed.push((key.clone(), pull.fields[pf].target.to_string(), value_text(&values[pf])));
                }
            }
        }
        self.ex
            .state
            .save_shared_values(&pull_pair.name, &agreed)
            .await
            .context("province: two-way agreed values")?;
        Ok(())
    }

    /// The other half of a two-way mapping, reading the side this half writes.
    async fn sibling(&self) -> Result<Option<Sibling>, RunError> {
        let Some(pair) = &self.m.pair else { return Ok(None) };
        let sm = self
            .ex
            .config
            .mapping(&pair.sibling)
            .with_context(|| format!("the other half {} is not loaded", pair.sibling))?;
        let (reader, _, _) = ends(self.ex, sm).await?;
        let id = self.ex.state.mapping_id(&sm.name, &sm.partner).await?;
        Ok(Some(Sibling {
            m: Arc::new(sm.clone()),
            reader,
            id,
        }))
    }

    /// Returns `Ok(true)` when it stopped early for shutdown.
    async fn go(&mut self, shutdown: &Shutdown) -> Result<bool, RunError> {
        let m = self.m;
        let (reader, writer, partner) = self.ends().await?;
        let (position, seal) = self.ex.state.position_and_seal(self.id).await?;
        self.position = position;
        let has_quarantine = self.ex.state.open_quarantine_count(&m.name).await? > 0;
        // A first load into PostgreSQL skips the checksum lookups (see `write`).
        let target_engine = partner.as_ref().unwrap_or(&self.ex.province).engine();
        let ctx = BatchCtx {
            writer: Arc::new(writer),
            has_quarantine,
            mapping: Arc::new(m.clone()),
            partner,
            consume: m.source.consume.as_ref().map(|_| reader.clone()),
            sibling: self.sibling().await?,
        };
        self.optimistic = target_engine == crate::db::Engine::Postgres
            && self.position.is_none()
            && !self.ex.state.has_row_state(self.id).await?;
        // A two-way half's row state is also written by its other half, and
        // the flag pattern reads by flag, not by window: neither is sealed.
        if reader.can_probe() && m.lookback.0.as_nanos() > 0 && m.pair.is_none() && m.source.consume.is_none() {
            let cap = crate::window::MAX_PAIRS.max(reader.probe_size());
            self.window = Some(crate::window::Window::new(m.lookback.chrono(), cap));
            self.seal = seal;
        }

        // Phase 1: rows whose watermark is NULL (or every row, without a watermark).
        let null_phase = reader.watermark_index().is_some();
        if let Some(stop) = self
            .phase(&reader, &ctx, Start::Beginning, true, null_phase, shutdown)
            .await?
        {
            return Ok(stop);
        }
        // Phase 2: from the stored position minus the look-back window. Where
        // the watermark allows it, the window up to the position's watermark
        // (the rows that share it included) is probed by (key, watermark) and
        // only row versions not seen before are fetched; then the read goes
        // on after that watermark.
        if reader.watermark_index().is_some() {
            let start = match self.position.clone() {
                None => Start::Beginning,
                Some(p) if reader.can_probe() && !p.key.is_empty() && m.lookback.0.as_nanos() > 0 => {
                    let lo = minus(&p.wm, m.lookback.chrono());
                    self.wm_from = Some(lo.to_string());
                    if let Some(stop) = self.probe(&reader, &ctx, &lo, &p.wm, shutdown).await? {
                        return Ok(stop);
                    }
                    Start::AfterWm(p.wm)
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
        self.seal_window().await;
        Ok(false)
    }

    /// Seals the window of the position the run ended at, when the run can
    /// vouch for every pair in it (`State::seal_window` writes nothing when
    /// the stored seal is already this one). A failure here costs the next
    /// poll its shortcut, nothing else.
    async fn seal_window(&mut self) {
        let (Some(w), Some(p)) = (&mut self.window, &self.position) else {
            return;
        };
        if self.seal_matched && !self.committed {
            return;
        }
        let lo = minus(&p.wm, self.m.lookback.chrono());
        let Some(seal) = w.seal(&lo, &p.wm) else { return };
        match self.ex.state.seal_window(self.id, p, &seal).await {
            Ok(()) => tracing::debug!("look-back window sealed"),
            Err(e) => tracing::warn!("could not record the look-back window's seal: {e:#}"),
        }
    }

    /// The retry of [`Exchange::retry_quarantined`]: the open entries a
    /// batch at a time (by id), their stored rows typed by the partner's
    /// catalog, mapped and written by [`Run::write`] like a batch read from
    /// the source, with no position to move.
    async fn retry(&mut self, ids: &[i64], skipped: &mut Vec<RetrySkip>) -> Result<(), RunError> {
        let m = self.m;
        // The source's column types are needed to re-map stored rows.
        let (reader, writer, partner) = self.ends().await?;
        let ctx = BatchCtx {
            writer: Arc::new(writer),
            has_quarantine: true,
            mapping: Arc::new(m.clone()),
            partner,
            consume: m.source.consume.as_ref().map(|_| reader.clone()),
            sibling: self.sibling().await?,
        };
        let mut after = 0;
        loop {
            let entries = self
                .ex
                .state
                .open_quarantine_page(&m.name, ids, after, m.batch_size)
                .await
                .context("province: reading the quarantine")?;
            let Some(last) = entries.last() else { return Ok(()) };
            after = last.id;
            let mut rows = Vec::with_capacity(entries.len());
            for e in &entries {
                match stored_row(m, &reader, e) {
                    Ok(row) => rows.push(row),
                    Err(reason) => {
                        tracing::warn!(entry = e.id, "quarantine entry left alone: {reason}");
                        skipped.push(RetrySkip { id: e.id, reason });
                    }
                }
            }
            if !rows.is_empty() {
                let p = prepare(m, rows, None, false);
                self.write(&ctx, &p).await?;
            }
            if entries.len() < m.batch_size {
                return Ok(());
            }
        }
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
        ctx: &BatchCtx,
        start: Start,
        keyed: bool,
        null_phase: bool,
        shutdown: &Shutdown,
    ) -> Result<Option<bool>, RunError> {
        let (send, mut recv) = tokio::sync::mpsc::channel::<anyhow::Result<Prepared>>(1);
        use tracing::Instrument as _;
        let producer = tokio::spawn(
            produce(
                Producer {
                    reader: reader.clone(),
                    m: ctx.mapping.clone(),
                    keyed,
                    null_phase,
                    shutdown: shutdown.clone(),
                    deadline: self.partner_deadline(),
                },
                start,
                send,
            )
            .in_current_span(),
        );
        let result = async {
            let mut pipe = pipeline::Pipeline::new();
            while let Some(p) = recv.recv().await {
                let p = p.with_context(|| format!("partner {}", self.m.partner))?;
                self.write_staged(ctx, &mut pipe, p).await?;
                if shutdown.is_triggered() {
                    self.settle(ctx, &mut pipe).await?;
                    return Ok(Some(true));
                }
            }
            self.settle(ctx, &mut pipe).await?;
            Ok(None)
        }
        .await;
        producer.abort();
        result
    }

    /// The look-back window by (key, watermark): a row whose recorded source
    /// watermark equals the current one is the version already processed; the
    /// others (late commits, updates committed late) are fetched in full and
    /// written like any batch. The position does not move here: rows that
    /// share its watermark but sort after its key are written here too, and
    /// seen (their watermark recorded) by the next poll's probe.
    async fn probe(
        &mut self,
        reader: &Reader,
        ctx: &BatchCtx,
        lo: &Value,
        hi: &Value,
        shutdown: &Shutdown,
    ) -> Result<Option<bool>, RunError> {
        let m = self.m;
        let page = reader.probe_size();
        // A sealed window: its pairs in one unsorted query, for one more
        // than sealed or a page, whichever is more: fewer back is the whole
        // window, to compare with the seal or else to look up as it is.
        let mut whole: Option<Vec<(Vec<Value>, Value)>> = None;
        let sealed = match (&self.seal, &self.window) {
            (Some(stored), Some(_)) => crate::window::sealed_pairs(stored),
            _ => None,
        };
        if let Some(sealed) = sealed {
            let limit = (sealed + 1).max(page);
            let probed = within(self.partner_deadline(), reader.probe_window(lo, hi, None, false, limit))
                .await
                .with_context(|| format!("partner {}", m.partner))?;
            if let (Some(stored), Some(window)) = (&self.seal, &mut self.window) {
                if window.confirm_sealed(stored, lo, hi, &probed) {
                    self.seal_matched = true;
                    tracing::debug!(probed = sealed, "look-back window unchanged since sealed");
                    return Ok(None);
                }
            }
            // Changed. All of it: looked up as it is; else paged through
            // in order below.
            if probed.len() < limit {
                whole = Some(probed);
            }
        }
        let mut after: Option<Position> = None;
        loop {
            let complete = whole.is_some();
            let probed = match whole.take() {
                Some(p) => p,
                None => within(
                    self.partner_deadline(),
                    reader.probe_window(lo, hi, after.as_ref(), true, page),
                )
                .await
                .with_context(|| format!("partner {}", m.partner))?,
            };
            let Some((k, w)) = probed.last() else { return Ok(None) };
            after = Some(Position {
                wm: w.clone(),
                key: k.clone(),
            });
            let texts: Vec<String> = probed.iter().map(|(k, _)| crate::mapping::key_text_of(k)).collect();
            let wm_texts: Vec<String> = probed.iter().map(|(_, w)| crate::state::wm_text(w)).collect();
            // Looked up in key order: neighbouring index pages in turn.
            let mut refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            refs.sort_unstable();
            refs.dedup();
            let mut tx = self.ex.province.begin().await.context("province")?;
            let stored = self
                .ex
                .state
                .checksums_tx(&mut tx, self.id, &refs)
                .await
                .context("province")?;
            tx.commit().await.context("province")?;
            let mut unseen: Vec<Vec<Value>> = Vec::new();
            for (((k, w), t), wt) in probed.iter().zip(&texts).zip(&wm_texts) {
                if stored.get(t.as_str()).and_then(|s| s.wm.as_deref()) == Some(wt.as_str()) {
                    if let Some(window) = &mut self.window {
                        window.confirm(t, w);
                    }
                } else {
                    unseen.push(k.clone());
                }
            }
            tracing::debug!(probed = probed.len(), unseen = unseen.len(), "look-back window probed");
            // Fetched and written a batch at a time.
            while !unseen.is_empty() {
                let rest = unseen.split_off(unseen.len().min(m.batch_size));
                let rows = within(self.partner_deadline(), reader.rows_by_key(&unseen))
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
            if complete || probed.len() < page {
                return Ok(None);
            }
        }
    }

    /// What a committed batch tells the look-back window: every row it
    /// mapped is now the version its row state records, unless a row was
    /// rejected (`clean` false) or a key came twice; the position moved.
    fn note_committed(&mut self, p: &Prepared, clean: bool, moved: Option<&Position>) {
        self.committed = true;
        if let (Some(window), Some(w)) = (&mut self.window, self.m.source.watermark) {
            if !clean || p.duplicates > 0 {
                window.spoil(crate::window::newest(p.rows.iter().map(|r| &r[w])));
            } else if !p.null_phase {
                for (i, _) in &p.mapped {
                    window.confirm(&p.keys[*i], &p.rows[*i][w]);
                }
            }
            if let Some(p) = moved {
                window.advance(&p.wm);
            }
        }
    }

    /// The end of every batch's transaction: the position (never moved
    /// backwards: a hard-deleted newest row must not make the next poll
    /// re-read further back), the run's counters, the exchange-log entry
    /// (`digest` is the batch's content digest) and the lease; then the
    /// partner's commit (a push: `ptx` and what to call it in errors) and
    /// the province's. Returns the position it moved to.
    async fn close_batch(
        &self,
        mut tx: crate::db::Tx,
        ptx: Option<(crate::db::Tx, String)>,
        c: &Counts,
        new_pos: Option<Position>,
        digest: impl FnOnce() -> String,
    ) -> Result<Option<Position>, RunError> {
        let state = &self.ex.state;
        let mut moved = None;
        if let Some(p) = new_pos {
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
            .add_counts_tx(&mut tx, self.run_id, c, moved.as_ref().map(|p| p.wm.to_string()))
            .await
            .context("province")?;
        if c.inserted + c.updated + c.deleted + c.rejected > 0 {
            // Last before the commit: the log's head lock is held only briefly.
            let mut e = self.log_entry(crate::exchange_log::Kind::Batch, "ok", c);
            e.wm_from = self.position.as_ref().map(|p| p.wm.to_string());
            e.wm_to = moved.as_ref().map(|p| p.wm.to_string());
            e.content_digest = Some(digest());
            crate::exchange_log::append_tx(&mut tx, self.ex.config.log.chain_hash, e)
                .await
                .context("province: exchange log")?;
        }
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
        if let Some((p, target)) = ptx {
            // The partner first: the province's state then records what the
            // partner holds. If the province commit fails now, the next run
            // re-sends this batch (upserts on the key: no duplicates).
            p.commit().await.with_context(|| format!("{target}: commit"))?;
            crash_point("HLX_FAULT_AFTER_PARTNER_COMMIT");
        }
        tx.commit().await.context("province: commit")?;
        Ok(moved)
    }

    /// Writes one prepared batch in one provincial transaction. In optimistic
    /// mode (a first load on PostgreSQL) the checksum lookup is skipped; if a
    /// key turns out to have state after all, the batch is rolled back and
    /// written again with the lookup, and optimism ends for the run.
    async fn write(&mut self, ctx: &BatchCtx, p: &Prepared) -> Result<(), RunError> {
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
    async fn batch(&mut self, ctx: &BatchCtx, p: &Prepared, optimistic: bool) -> Result<(), RunError> {
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
        // Two-way, pull half: the province's current rows of this batch,
        // read before the batch's transaction takes a connection (a second
        // one inside it could wait on a pool that concurrent runs hold).
        let province_now = match (&ctx.sibling, &m.pair) {
            (Some(sib), Some(pair)) if pair.role == Direction::Pull => {
                let keys: Vec<Vec<Value>> = mapped
                    .iter()
                    .filter_map(|(_, r)| match r {
                        Ok(Mapped::Row { values, .. }) => {
                            Some(m.target.key.iter().map(|&k| values[k].clone()).collect())
                        }
                        _ => None,
                    })
                    .collect();
                sib.reader
                    .rows_by_key(&keys)
                    .await
                    .context("province: reading the rows a two-way pull would change")?
                    .into_iter()
                    .map(|r| (sib.m.row_key(&r), r))
                    .collect()
            }
            _ => HashMap::new(),
        };
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
        let mut upserts: Vec<Upsert<'_>> = Vec::new();
        let mut deletes: Vec<(usize, Vec<Value>)> = Vec::new();
        let mut rejects: Vec<(usize, crate::mapping::rules::Rejection)> = Vec::new();
        // Unchanged rows whose watermark moved: their recorded watermark is
        // refreshed, so the next poll's probe does not fetch them again.
        let mut touched: Vec<StateRow<'_>> = Vec::new();
        // Rows that map and whose target row is already what they map to: an
        // open quarantine entry of theirs is stale (a rejected version was
        // followed by one equal to what had landed before), and is resolved
        // with the rows that land; a retry must never land that stale version.
        let mut current: Vec<&str> = Vec::new();
        for (i, r) in mapped {
            let k = keys[*i].as_str();
            match (r, known.get(k)) {
                (Ok(Mapped::Row { checksum, .. }), Some(st)) if !st.deleted && st.checksum.as_slice() == checksum => {
                    c.unchanged += 1;
                    current.push(k);
                    if st.wm != wm_of(*i) {
                        touched.push(StateRow {
                            key: k,
                            checksum: *checksum,
                            deleted: false,
                            wm: wm_of(*i),
                        });
                    }
                }
                (
                    Ok(Mapped::Row {
                        values,
                        checksum,
                        fallbacks,
                    }),
                    st,
                ) => upserts.push(Upsert {
                    row: *i,
                    values,
                    checksum: *checksum,
                    new: st.is_none(),
                    fallbacks: *fallbacks,
                }),
                (Ok(Mapped::Deleted { .. }), Some(st)) if st.deleted => {
                    c.unchanged += 1;
                    current.push(k);
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

        // Two-way, pull half: shared fields both sides changed are settled by
        // the policy before anything is written.
        let mut settled: Vec<Vec<Value>> = Vec::new();
        // Rows whose partner copy of a province-owned field differs: the
        // push half is told they changed, so it sends the province's values
        // the next time it reads them.
        let mut reassert: Vec<usize> = Vec::new();
        if let (Some(sib), Some(pair)) = (&ctx.sibling, &m.pair) {
            if pair.role == Direction::Pull && !upserts.is_empty() {
                let ignored;
                (settled, ignored, reassert) = self
                    .settle_conflicts(&mut tx, sib, pair, rows, &upserts, &province_now)
                    .await?;
                c.ignored += ignored;
                for (u, v) in upserts.iter_mut().zip(settled.iter()) {
                    if !v.is_empty() {
                        u.values = v.as_slice();
                    }
                }
            }
        }

        // Target writes; rows the target refuses join the rejections. A
        // push writes the partner in a transaction of its own.
        let target = if ctx.partner.is_some() {
            format!("partner {}", m.partner)
        } else {
            "province".to_string()
        };
        let mut ptx = match &ctx.partner {
            Some(p) => Some(p.begin().await.with_context(|| target.clone())?),
            None => None,
        };
        let fresh = upserts.iter().all(|u| u.new);
        let slices: Vec<&[Value]> = upserts.iter().map(|u| u.values).collect();
        let refused = ctx
            .writer
            .upsert(ptx.as_mut().unwrap_or(&mut tx), &slices, fresh)
            .await
            .with_context(|| format!("{target}: writing the target"))?;
        let refused_idx: std::collections::HashSet<usize> = refused.iter().map(|(j, _)| *j).collect();
        let written_keys: Vec<Vec<Value>> = if ctx.sibling.is_some() {
            upserts
                .iter()
                .enumerate()
                // A row whose conflict the province won must still go to the
                // partner: the push half is not told it is in step.
                .filter(|(j, _)| {
                    !refused_idx.contains(j) && settled.get(*j).is_none_or(|v| v.is_empty()) && !reassert.contains(j)
                })
                .map(|(_, u)| m.target.key.iter().map(|&k| u.values[k].clone()).collect())
                .collect()
        } else {
            Vec::new()
        };
        c.fallbacks = upserts
            .iter()
            .enumerate()
            .filter(|(j, u)| u.fallbacks > 0 && !refused_idx.contains(j))
            .count() as u64;
        for (j, msg) in &refused {
            let i = upserts[*j].row;
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
        let mut landed: Vec<&str> = current;
        for (j, u) in upserts.iter().enumerate() {
            let (i, sum, new) = (&u.row, &u.checksum, &u.new);
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
                .delete(ptx.as_mut().unwrap_or(&mut tx), &dkeys)
                .await
                .with_context(|| format!("{target}: applying deletes"))?;
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

        // The flag pattern: what to mark once the province has committed.
        let key_of = |i: usize| m.source.key.iter().map(|&k| rows[i][k].clone()).collect::<Vec<Value>>();
        let failed_idx: std::collections::HashSet<usize> = rejects.iter().map(|(i, _)| *i).collect();
        // Each with what the row was when read: a row the partner changed
        // meanwhile (still flagged new) is not marked, so its new version
        // is read next time instead of being lost.
        let (mark_done, mark_failed): (Vec<Taken>, Vec<Failed>) = if ctx.consume.is_some() {
            (
                mapped
                    .iter()
                    .filter(|(i, _)| !failed_idx.contains(i))
                    .filter_map(|(i, r)| match r {
                        Ok(Mapped::Row { checksum, .. }) => Some((key_of(*i), *checksum)),
                        Ok(Mapped::Deleted { .. }) => Some((key_of(*i), deleted_checksum())),
                        Err(_) => None,
                    })
                    .collect(),
                rejects
                    .iter()
                    .map(|(i, r)| (key_of(*i), m.raw_fingerprint(&rows[*i]), r.to_string()))
                    .collect(),
            )
        } else {
            (Vec::new(), Vec::new())
        };

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
                // Over the row as read (protected columns keyed, not their
                // fresh ciphertext): the same rejected row gives the same digest.
                let digest = Sha256::digest(format!("{}\u{1f}{rej}", m.raw_fingerprint(&rows[*i])).as_bytes()).to_vec();
                // A retry records every attempt (attempts, last seen, its run).
                if !self.retry && open.get(keys[*i].as_str()) == Some(&digest) {
                    c.unchanged += 1;
                    continue;
                }
                // The rows a retry re-maps are in the quarantine already:
                // failing again is their expected state, not a reason to stop.
                if !self.retry && m.on_reject == OnReject::Halt {
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
            if let Some(limit) = m.reject_limit.count.filter(|_| !self.retry) {
                if total_rej > limit {
                    return Err(RunError::Halt(format!("reject limit: {total_rej} rows rejected in this run, the limit is {limit}; the batch was rolled back. First reason: {}", rejects[0].1)));
                }
            }
            if let Some(ratio) = m.reject_limit.ratio.filter(|_| !self.retry) {
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
        let mut resolved = 0;
        if ctx.has_quarantine && !landed.is_empty() {
            resolved = state
                .resolve_quarantine_tx(&mut tx, &m.name, &landed)
                .await
                .context("province: quarantine")?;
        }
        let moved = self
            .close_batch(tx, ptx.map(|p| (p, target)), &c, new_pos, || {
                content_digest(keys, mapped)
            })
            .await?;
        self.note_committed(p, rejects.is_empty(), moved.as_ref());
        if let (Some(r), Some(c)) = (&ctx.consume, &m.source.consume) {
            crash_point("HLX_FAULT_BEFORE_MARKS");
            // Tests (debug builds): the partner changes a row right here.
            if cfg!(debug_assertions) {
                if let Ok(sql) = std::env::var("HLX_FAULT_PARTNER_SQL_BEFORE_MARKS") {
                    if !FAULT_SQL_DONE.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        r.fetch(&sql, &[]).await.context("HLX_FAULT_PARTNER_SQL_BEFORE_MARKS")?;
                    }
                }
            }
            // After the province commit: a crash before this line leaves the
            // rows flagged new; the next run reads them again and finds them
            // unchanged (checksums), then marks them.
            let from = if self.retry { &c.failed } else { &c.new };
            // Re-read just before marking: only the versions the province
            // now holds (or quarantined) are marked.
            let all: Vec<Vec<Value>> = mark_done
                .iter()
                .map(|d| d.0.clone())
                .chain(mark_failed.iter().map(|f| f.0.clone()))
                .collect();
            let now: HashMap<String, Vec<Value>> = r
                .rows_by_key(&all)
                .await
                .with_context(|| format!("partner {}: re-reading rows to mark", m.partner))?
                .into_iter()
                .map(|row| (m.row_key(&row), row))
                .collect();
            let same_done: Vec<Vec<Value>> = mark_done
                .iter()
                .filter(|(k, sum)| {
                    now.get(&crate::mapping::key_text_of(k))
                        .is_some_and(|row| match m.map_row(row) {
                            Ok(Mapped::Row { checksum, .. }) => checksum == *sum,
                            Ok(Mapped::Deleted { .. }) => deleted_checksum() == *sum,
                            Err(_) => false,
                        })
                })
                .map(|(k, _)| k.clone())
                .collect();
            r.mark(&same_done, from, &c.done, None)
                .await
                .with_context(|| format!("partner {}", m.partner))?;
            for (k, fp, reason) in &mark_failed {
                if now
                    .get(&crate::mapping::key_text_of(k))
                    .is_some_and(|row| m.raw_fingerprint(row) == *fp)
                {
                    r.mark(std::slice::from_ref(k), from, &c.failed, Some(reason))
                        .await
                        .with_context(|| format!("partner {}", m.partner))?;
                }
            }
        }
        if let Some(sib) = &ctx.sibling {
            self.track_origin(sib, &written_keys).await?;
            if !reassert.is_empty() {
                let keys: Vec<String> = reassert
                    .iter()
                    .map(|&j| {
                        crate::mapping::key_text(
                            &m.target.key.iter().map(|&k| &upserts[j].values[k]).collect::<Vec<_>>(),
                        )
                    })
                    .collect();
                let stale: Vec<StateRow<'_>> = keys
                    .iter()
                    .map(|k| StateRow {
                        key: k,
                        checksum: [0; 32],
                        deleted: false,
                        wm: None,
                    })
                    .collect();
                let mut tx = self.ex.province.begin().await.context("province")?;
                state
                    .save_checksums_tx(&mut tx, sib.id, &stale, false, false)
                    .await
                    .context("province: two-way checksums")?;
                tx.commit().await.context("province: commit")?;
            }
        }
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
        self.resolved += resolved;
        Ok(())
    }
}

/// An exchange-log entry for a mapping: who, which run, the counts, and the
/// digest of the mapping and code sets in force.
pub(crate) fn log_entry(
    m: &Mapping,
    run_id: Option<i64>,
    kind: crate::exchange_log::Kind,
    outcome: &str,
    c: &Counts,
) -> crate::exchange_log::Entry {
    let mut e = crate::exchange_log::Entry::new(kind, outcome);
    e.partner = Some(m.partner.clone());
    e.mapping = Some(m.name.clone());
    e.direction = Some(m.direction.as_str().into());
    e.run_id = run_id;
    e.rows_read = c.read as i64;
    e.inserted = c.inserted as i64;
    e.updated = c.updated as i64;
    e.unchanged = c.unchanged as i64;
    e.deleted = c.deleted as i64;
    e.rejected = c.rejected as i64;
    e.mapping_digest = Some(m.digest.clone());
    e
}

/// SHA-256 over a batch's mapped content: per row in read order, its key and
/// the checksum of its mapped values (rejected rows by key and a marker).
/// Keys are hashed, never logged.
fn content_digest(keys: &[String], mapped: &[(usize, Result<Mapped, crate::mapping::rules::Rejection>)]) -> String {
    let mut h = Sha256::new();
    for (i, r) in mapped {
        h.update(keys[*i].as_bytes());
        h.update([0x1f]);
        match r {
            Ok(Mapped::Row { checksum, .. }) => h.update(checksum),
            Ok(Mapped::Deleted { .. }) => h.update(deleted_checksum()),
            Err(_) => h.update(b"rejected"),
        }
        h.update([b'\n']);
    }
    hex::encode(h.finalize())
}

/// A quarantined row back as a source row (`m.source.columns` order),
/// typed by the reader's view of the partner's columns. `Err` says why the
/// stored row cannot stand for the source row under the current mapping: a
/// column the mapping reads now was not stored (a NULL there could land a
/// row that is not the partner's), or the source key changed.
fn stored_row(m: &Mapping, reader: &Reader, e: &crate::state::Quarantined) -> Result<Vec<Value>, String> {
    let raw: serde_json::Value =
        serde_json::from_str(&e.raw).map_err(|err| format!("the stored raw row is not JSON ({err})"))?;
    let obj = raw.as_object().ok_or("the stored raw row is not a JSON object")?;
    let mut row = Vec::with_capacity(m.source.columns.len());
    for (i, c) in m.source.columns.iter().enumerate() {
        let j = obj.get(c.as_str()).or_else(|| {
            let mut hits = obj.iter().filter(|(k, _)| k.eq_ignore_ascii_case(c.as_str()));
            match (hits.next(), hits.next()) {
                (Some((_, v)), None) => Some(v),
                _ => None,
            }
        });
        match j {
            Some(j) => row.push(reader.value_from_raw(i, &m.raw_value(i, j)?)),
            None => {
                return Err(format!(
                    "the stored row has no column `{c}`, which the mapping reads now; re-read the table instead \
                     (hlx reset -m {} --yes, then hlx run)",
                    m.name
                ))
            }
        }
    }
    if m.row_key(&row) != e.row_key {
        return Err(format!(
            "the mapping's source key is not the one the row was quarantined under; re-read the table instead \
             (hlx reset -m {} --yes, then hlx run)",
            m.name
        ));
    }
    Ok(row)
}

/// A partner read bounded by `limit`.
async fn within<T>(
    limit: std::time::Duration,
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r,
        Err(_) => anyhow::bail!(
            "no answer within {}s (statement_timeout + connect_timeout + 30s); the partner may be hung",
            limit.as_secs()
        ),
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

struct BatchCtx {
    writer: Arc<Writer>,
    has_quarantine: bool,
    mapping: Arc<Mapping>,
    /// A push writes the partner in its own transaction, committed before
    /// the province's (state, quarantine, log): a crash in between re-sends
    /// the batch, which the upsert on the key makes harmless.
    partner: Option<Pool>,
    /// The flag pattern: the source reader, which marks the rows taken
    /// once the province committed them.
    consume: Option<Reader>,
    /// A half of a two-way mapping: the other half.
    sibling: Option<Sibling>,
}

/// The other half of a two-way mapping: its mapping, a reader of its source
/// (the side this half writes), and its state id.
struct Sibling {
    m: Arc<Mapping>,
    reader: Reader,
    id: i64,
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

/// What the producer of one phase reads with.
struct Producer {
    reader: Reader,
    m: Arc<Mapping>,
    /// Order by key only (the NULL-watermark phase, or no watermark).
    keyed: bool,
    null_phase: bool,
    shutdown: Shutdown,
    /// The bound on one partner read ([`Run::partner_deadline`]).
    deadline: std::time::Duration,
}

/// The producer of [`Run::phase`]: reads keyset batches and maps them until
/// the source is exhausted, the writer hangs up, or shutdown is requested.
async fn produce(p: Producer, mut start: Start, send: tokio::sync::mpsc::Sender<anyhow::Result<Prepared>>) {
    let Producer {
        reader,
        m,
        keyed,
        null_phase,
        shutdown,
        deadline,
    } = p;
    loop {
        // Take the channel's one slot before reading, so that a batch is read
        // only once the writer has taken the previous one: at most two
        // batches are alive (one being written, one being read and mapped).
        let Ok(slot) = send.reserve().await else { return };
        let rows = match within(deadline, reader.batch(&start, keyed)).await {
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

/// A mapped row the batch writes to the target.
struct Upsert<'a> {
    /// Index into the batch's rows.
    row: usize,
    values: &'a [Value],
    checksum: [u8; 32],
    /// No state yet: an insert.
    new: bool,
    /// Fields that fell back to an 'other' classification.
    fallbacks: u32,
}

/// A row the flag pattern marks done: its key values and the checksum of
/// the version the province committed.
type Taken = (Vec<Value>, [u8; 32]);

/// A row the flag pattern marks failed: its key values, the fingerprint of
/// the version quarantined, and the reason.
type Failed = (Vec<Value>, String, String);

/// The source reader and the target writer of a mapping, by direction: a
/// pull reads the partner and writes the province, a push the other way
/// round. The pool is the partner's when the target is the partner (a push
/// writes it in a transaction of its own).
pub(crate) async fn ends(ex: &Exchange, m: &Mapping) -> anyhow::Result<(Reader, Writer, Option<Pool>)> {
    let partner = ex.partner_pool(&m.partner).await?;
    let province = ex.province.clone();
    // The two catalogs are read at once: two round trips, one wait.
    if m.direction == Direction::Push {
        let (reader, writer) = tokio::join!(Reader::new(province, m), Writer::new(&partner, m, m.partner_zone));
        let reader = reader.context("province (the push's source)")?;
        let writer = writer.with_context(|| format!("partner {} (the push's target)", m.partner))?;
        Ok((reader, writer, Some(partner)))
    } else {
        let (reader, writer) = tokio::join!(
            Reader::new(partner, m),
            Writer::new(&province, m, ex.config.defaults.timezone)
        );
        let reader = reader.with_context(|| format!("partner {}", m.partner))?;
        let writer = writer.context("province")?;
        Ok((reader, writer, None))
    }
}

/// `HLX_FAULT_PARTNER_SQL_BEFORE_MARKS` runs once per process.
static FAULT_SQL_DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Fault injection for the tests, in debug builds only: with `VAR=N` in
/// the environment, the process aborts (as `kill -9` would end it) the N-th
/// time it passes this point. `HLX_FAULT_AFTER_PARTNER_COMMIT`: right after
/// a push's partner commit, before the province's (README, "no transaction
/// across two databases"); `HLX_FAULT_BEFORE_MARKS`: after the province
/// commit of a flag-pattern batch, before its rows are marked. Release
/// builds compile this to nothing.
fn crash_point(var: &str) {
    if !cfg!(debug_assertions) {
        return;
    }
    static PASSES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    if let Some(n) = std::env::var(var).ok().and_then(|v| v.parse::<usize>().ok()) {
        if PASSES.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == n {
            eprintln!("hlx: {var}={n}: aborting here");
            std::process::abort();
        }
    }
}

/// A value as hlx_shared_value stores it (NULL as NULL).
fn value_text(v: &Value) -> Option<String> {
    (!v.is_null()).then(|| v.to_string())
}
