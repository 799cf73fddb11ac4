//! Two batches of a first load in flight, on two provincial connections.
//!
//! A first load into PostgreSQL is bound by the province's backend: on one
//! connection its `COPY`s of the target rows and of their state rows are most
//! of the run, and PostgreSQL takes the same rows in about three quarters of
//! the time on two (bench/README.md, "Where hlx's time goes"). So while one
//! batch is being written, the next one's two `COPY`s already run in a
//! transaction of their own on a second connection. Only its tail (the
//! position, the run's counters, its exchange-log entry, the lease) and its
//! `COMMIT` wait: they come after the batch before it has committed, in
//! [`Run::close_batch`], the same tail as every other batch. Batches commit in
//! the order they were read, so after a crash at any instant the province
//! holds a prefix of the run and the position never commits beyond rows that
//! did not; state still commits in the transaction of the rows it covers.
//!
//! Only what cannot go wrong differently in parallel is staged ahead:
//! - the run is a pull in its optimistic first load (PostgreSQL province, no
//!   state yet, so no checksum look-ups), with no flag pattern, no two-way
//!   half, no open quarantine, and a province pool of at least two
//!   connections;
//! - every row of the batch maps (no rejection to quarantine, no reject limit
//!   to count against the run) and no key appears twice in it;
//! - no key of the batch (its source key or its target key) is in the batch
//!   in flight: the later batch would wait on the earlier one's uncommitted
//!   row.
//!
//! Anything else waits until the batch in flight has settled and goes the
//! ordinary way ([`Run::write`]). So does a staged batch whose `COPY` met a
//! row the target refuses or a key that has state after all: it is rolled
//! back, and the batch after it too (its locks must not stand in the way of
//! the redo), and both are written again in order the ordinary way.
//!
//! Locks. The later batch may wait on a lock of the earlier one (a unique
//! index besides the key, a trigger); the earlier one must never wait on the
//! later one, which commits only after it, since neither PostgreSQL nor hlx
//! would see that cycle. So the `COPY`s of a staged batch run under a short
//! `lock_timeout`: a staged batch that waited is rolled back and redone the
//! ordinary way, and the run stops staging ahead. A second connection is
//! waited for only briefly for the same reason (the pool's last one may be
//! this run's own, held by the batch in flight).

use super::{content_digest, BatchCtx, Prepared, Run, RunError};
use crate::db::write::{is_lock_wait, Writer};
use crate::db::Tx;
use crate::mapping::Mapped;
use crate::state::{Counts, State, StateRow};
use anyhow::Context as _;
use std::collections::HashSet;
use std::hash::{BuildHasher as _, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a staged batch's statements wait for a lock before it is rolled
/// back and written the ordinary way.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '2s'";
/// How long to wait for a second provincial connection.
const CONNECTION_WAIT: Duration = Duration::from_secs(2);

/// The batches of one phase that are staged and not yet committed (at most
/// one between two calls).
pub(super) struct Pipeline {
    ahead: Option<Ahead>,
    /// Staging ahead stopped for the rest of the run (a lock wait, no second
    /// connection).
    off: bool,
    hasher: RandomState,
}

/// A batch staged on its own connection: the task running its `COPY`s.
struct Ahead {
    task: Task,
    /// Hashes of its source and target keys (a collision only costs a wait).
    keys: HashSet<u64>,
}

/// Aborts the task if dropped before it was awaited (the run failed): its
/// transaction is then dropped and rolled back.
struct Task(Option<tokio::task::JoinHandle<anyhow::Result<Staged>>>);

impl Task {
    async fn join(mut self) -> anyhow::Result<Staged> {
        let handle = self.0.take().expect("joined once");
        match handle.await {
            Ok(r) => r,
            Err(e) => Err(anyhow::anyhow!("internal: a staged batch's task ended: {e}")),
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

/// A batch after its `COPY`s.
struct Staged {
    p: Prepared,
    outcome: Outcome,
}

enum Outcome {
    /// The rows and their state are written; the transaction waits for its
    /// tail and commit.
    Ready { tx: Tx, c: Counts },
    /// Rolled back; the batch is to be written the ordinary way.
    Ordinary(Why),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Why {
    /// The target refused a row: it is quarantined by the ordinary path.
    Refused,
    /// A key has state after all (a key read again by a later batch).
    KeyExists,
    /// A statement waited on a lock longer than [`LOCK_TIMEOUT`].
    LockWait,
}

impl Pipeline {
    pub(super) fn new() -> Pipeline {
        Pipeline {
            ahead: None,
            off: false,
            hasher: RandomState::new(),
        }
    }

    /// The hashes of a batch's source keys and target keys.
    fn keys(&self, run: &Run<'_>, p: &Prepared) -> HashSet<u64> {
        let m = run.m;
        let mut keys = HashSet::with_capacity(2 * p.mapped.len());
        for (i, r) in &p.mapped {
            keys.insert(self.hasher.hash_one((0u8, p.keys[*i].as_str())));
            if let Ok(Mapped::Row { values, .. }) = r {
                let t: Vec<&crate::value::Value> = m.target.key.iter().map(|&k| &values[k]).collect();
                keys.insert(self.hasher.hash_one((1u8, crate::mapping::key_text(&t))));
            }
        }
        keys
    }
}

impl Run<'_> {
    /// Whether this run may stage batches ahead at all.
    fn can_stage(&self, ctx: &BatchCtx) -> bool {
        self.optimistic
            && !self.retry
            && ctx.partner.is_none()
            && ctx.consume.is_none()
            && ctx.sibling.is_none()
            && !ctx.has_quarantine
            && self.m.pair.is_none()
            && self.ex.config.province.max_connections >= 2
    }

    /// Writes a batch of a phase: staged beside the batch in flight where
    /// it qualifies (see the module's documentation), else the ordinary way
    /// once the batch in flight has committed.
    pub(super) async fn write_staged(
        &mut self,
        ctx: &BatchCtx,
        pipe: &mut Pipeline,
        p: Prepared,
    ) -> Result<(), RunError> {
        let clean = p.duplicates == 0 && p.mapped.iter().all(|(_, r)| matches!(r, Ok(Mapped::Row { .. })));
        if pipe.off || !clean || !self.can_stage(ctx) {
            self.settle(ctx, pipe).await?;
            return self.write(ctx, &p).await;
        }
        let keys = pipe.keys(self, &p);
        if pipe.ahead.as_ref().is_some_and(|a| !a.keys.is_disjoint(&keys)) {
            tracing::debug!("a key of this batch is in the batch in flight; waiting for it");
            self.settle(ctx, pipe).await?;
        }
        let tx = if pipe.ahead.is_some() {
            match tokio::time::timeout(CONNECTION_WAIT, self.ex.province.begin()).await {
                Ok(tx) => tx.context("province")?,
                Err(_) => {
                    tracing::info!("no second provincial connection free; writing one batch at a time");
                    pipe.off = true;
                    self.settle(ctx, pipe).await?;
                    return self.write(ctx, &p).await;
                }
            }
        } else {
            self.ex.province.begin().await.context("province")?
        };
        use tracing::Instrument as _;
        let task = tokio::spawn(
            stage(
                ctx.writer.clone(),
                self.ex.state.clone(),
                self.id,
                self.m.source.watermark,
                tx,
                p,
            )
            .in_current_span(),
        );
        let before = pipe.ahead.replace(Ahead {
            task: Task(Some(task)),
            keys,
        });
        if let Some(before) = before {
            self.settle_one(ctx, pipe, before).await?;
        }
        Ok(())
    }

    /// Commits the batch in flight, if any (the end of a phase, or before a
    /// batch that goes the ordinary way).
    pub(super) async fn settle(&mut self, ctx: &BatchCtx, pipe: &mut Pipeline) -> Result<(), RunError> {
        match pipe.ahead.take() {
            Some(a) => self.settle_one(ctx, pipe, a).await,
            None => Ok(()),
        }
    }

    /// Waits for a staged batch's `COPY`s and commits it after its tail, or
    /// redoes it the ordinary way, with the batch staged after it.
    async fn settle_one(&mut self, ctx: &BatchCtx, pipe: &mut Pipeline, a: Ahead) -> Result<(), RunError> {
        let t0 = Instant::now();
        let Staged { p, outcome } = a.task.join().await?;
        match outcome {
            Outcome::Ready { tx, c } => {
                let moved = self
                    .close_batch(tx, None, &c, p.new_pos.clone(), || content_digest(&p.keys, &p.mapped))
                    .await?;
                self.note_committed(&p, true, moved.as_ref());
                tracing::debug!(
                    rows = p.rows.len(),
                    written = c.inserted,
                    wait_ms = t0.elapsed().as_millis() as u64,
                    "batch committed (staged on a connection of its own)"
                );
                if let Some(m) = moved {
                    self.position = Some(m);
                }
                self.counts.add(&c);
                Ok(())
            }
            Outcome::Ordinary(why) => {
                tracing::debug!(?why, "a staged batch was rolled back; writing it the ordinary way");
                match why {
                    Why::KeyExists => {
                        tracing::info!("a key already has state; checking checksums from here on");
                        self.optimistic = false;
                    }
                    Why::LockWait => {
                        tracing::info!("a staged batch waited on a lock; writing one batch at a time");
                        pipe.off = true;
                    }
                    Why::Refused => {}
                }
                // The batch staged after it holds locks the redo may need.
                let after = match pipe.ahead.take() {
                    Some(next) => {
                        let next = next.task.join().await?;
                        if let Outcome::Ready { tx, .. } = next.outcome {
                            tx.rollback().await.context("province")?;
                        }
                        Some(next.p)
                    }
                    None => None,
                };
                self.write(ctx, &p).await?;
                match after {
                    Some(next) => self.write(ctx, &next).await,
                    None => Ok(()),
                }
            }
        }
    }
}

/// The `COPY`s of a staged batch, in its own transaction: the target rows,
/// then their state rows. Returns the open transaction, or the batch back
/// for the ordinary path (the transaction rolled back).
async fn stage(
    writer: Arc<Writer>,
    state: State,
    id: i64,
    watermark: Option<usize>,
    mut tx: Tx,
    p: Prepared,
) -> anyhow::Result<Staged> {
    crate::db::sql::exec(&mut tx, LOCK_TIMEOUT, &[])
        .await
        .context("province")?;
    let outcome = match copies(&writer, &state, id, watermark, &mut tx, &p).await? {
        Err(why) => {
            tx.rollback().await.context("province")?;
            Outcome::Ordinary(why)
        }
        Ok(c) => {
            // The tail waits on nobody of this run: the session's own lock timeout.
            crate::db::sql::exec(&mut tx, "SET LOCAL lock_timeout TO DEFAULT", &[])
                .await
                .context("province")?;
            Outcome::Ready { tx, c }
        }
    };
    Ok(Staged { p, outcome })
}

/// The two `COPY`s of [`stage`]: the batch's counts, or why it must go the
/// ordinary way.
async fn copies(
    writer: &Writer,
    state: &State,
    id: i64,
    watermark: Option<usize>,
    tx: &mut Tx,
    p: &Prepared,
) -> anyhow::Result<Result<Counts, Why>> {
    let rows: Vec<&[crate::value::Value]> = p
        .mapped
        .iter()
        .filter_map(|(_, r)| match r {
            Ok(Mapped::Row { values, .. }) => Some(values.as_slice()),
            _ => None,
        })
        .collect();
    match writer.upsert(tx, &rows, true).await {
        Ok(refused) if refused.is_empty() => {}
        Ok(_) => return Ok(Err(Why::Refused)),
        Err(e) if is_lock_wait(&e) => return Ok(Err(Why::LockWait)),
        Err(e) => return Err(e.context("province: writing the target")),
    }
    let saved: Vec<StateRow<'_>> = p
        .mapped
        .iter()
        .filter_map(|(i, r)| match r {
            Ok(Mapped::Row { checksum, .. }) => Some(StateRow {
                key: p.keys[*i].as_str(),
                checksum: *checksum,
                deleted: false,
                wm: watermark.map(|w| crate::state::wm_text(&p.rows[*i][w])),
            }),
            _ => None,
        })
        .collect();
    match state.save_checksums_tx(tx, id, &saved, true, true).await {
        Ok(()) => {}
        Err(e) if e.downcast_ref::<crate::state::KeyExists>().is_some() => return Ok(Err(Why::KeyExists)),
        Err(e) if is_lock_wait(&e) => return Ok(Err(Why::LockWait)),
        Err(e) => return Err(e.context("province: checksums")),
    }
    let fallbacks = p
        .mapped
        .iter()
        .filter(|(_, r)| matches!(r, Ok(Mapped::Row { fallbacks, .. }) if *fallbacks > 0))
        .count() as u64;
    Ok(Ok(Counts {
        batches: 1,
        read: p.rows.len() as u64,
        inserted: rows.len() as u64,
        null_watermark: if p.null_phase { p.rows.len() as u64 } else { 0 },
        fallbacks,
        ..Counts::default()
    }))
}
