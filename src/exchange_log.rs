//! The exchange log (接口数据交换日志): a tamper-evident record of what moved.
//!
//! Every batch that moves data appends one [`Entry`] to `hlx_exchange_log`
//! **in the batch's own transaction**, and every failed or halted run appends
//! one too. Entries are numbered 1, 2, 3 … (`seq`) and hash-chained: an
//! entry's hash covers each of its fields and the previous entry's hash, with
//! SHA-256 or SM3 (GB/T 32905, `[log] chain_hash = "sm3"`). The chain's head
//! (last seq and hash) lives in `hlx_exchange_log_head`; appenders lock that
//! row, so concurrent batches are linked one at a time.
//!
//! [`verify`] walks the chain and names the first entry that was altered
//! (its hash no longer matches its fields), removed or re-ordered (its seq or
//! its link to the previous hash is wrong), and checks the head. A rewrite of
//! the whole table with fresh hashes is only detectable against a copy of the
//! head hash kept elsewhere: `hlx log verify` prints it, and sites record it
//! (the daily report, a ticket, a second system) to compare later.
//!
//! [`prune`] drops entries older than the retention period (at least 180
//! days) and appends a *checkpoint* entry recording the seq and hash it cut
//! at, so the remaining chain still verifies from its new first entry.
//!
//! Nothing personal is logged: keys never appear, only counts, watermarks,
//! digests and error texts (which mask personal values, see
//! [`crate::mapping::rules`]).

use crate::db::sql::{exec, fetch, fetch_pool, Arg, DbRow};
use crate::db::{Engine, Pool, Tx};
use anyhow::Context as _;
use sha2::Digest as _;

/// The hash of "no previous entry".
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChainHash {
    #[default]
    Sha256,
    /// SM3 (GB/T 32905-2016), for sites bound by GB/T 39786.
    Sm3,
}

impl ChainHash {
    pub fn parse(s: &str) -> Result<ChainHash, String> {
        match s {
            "sha256" => Ok(ChainHash::Sha256),
            "sm3" => Ok(ChainHash::Sm3),
            other => Err(format!("chain_hash `{other}`: expected \"sha256\" or \"sm3\"")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChainHash::Sha256 => "sha256",
            ChainHash::Sm3 => "sm3",
        }
    }
}

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A batch that moved data.
    Batch,
    /// A run that failed or halted (with or without data moved before).
    Run,
    /// Entries up to `cut_seq` were pruned.
    Checkpoint,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Batch => "batch",
            Kind::Run => "run",
            Kind::Checkpoint => "checkpoint",
        }
    }
}

/// One entry, as stored. `seq`, `prev_hash` and `hash` are set by [`append_tx`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    pub seq: i64,
    /// RFC 3339 UTC with microseconds, hashed as stored.
    pub logged_at: String,
    pub kind: String,
    pub partner: Option<String>,
    pub mapping: Option<String>,
    pub direction: Option<String>,
    pub run_id: Option<i64>,
    pub wm_from: Option<String>,
    pub wm_to: Option<String>,
    pub rows_read: i64,
    pub inserted: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub deleted: i64,
    pub rejected: i64,
    /// SHA-256 (hex) of the batch's mapped content: each row's key and checksum.
    pub content_digest: Option<String>,
    /// SHA-256 (hex) of the mapping file and the code sets it uses.
    pub mapping_digest: Option<String>,
    pub outcome: String,
    pub error: Option<String>,
    pub cut_seq: Option<i64>,
    pub cut_hash: Option<String>,
    pub algo: String,
    pub prev_hash: String,
    pub hash: String,
}

const COLUMNS: &str =
    "seq, logged_at, kind, partner, mapping, direction, run_id, wm_from, wm_to, rows_read, inserted, \
                       updated, unchanged, deleted, rejected, content_digest, mapping_digest, outcome, error, cut_seq, \
                       cut_hash, algo, prev_hash, hash";

impl Entry {
    /// A new entry stamped now; the caller fills in what it knows.
    pub fn new(kind: Kind, outcome: &str) -> Entry {
        Entry {
            logged_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            kind: kind.as_str().into(),
            outcome: outcome.into(),
            ..Entry::default()
        }
    }

    /// The entry's hash: every field but `hash`, each as `name=len:value`
    /// (NULL as `name=~`), newline-separated, so no two different entries
    /// serialise alike.
    pub fn compute_hash(&self, algo: ChainHash) -> String {
        let mut s = String::with_capacity(512);
        let mut put = |name: &str, v: Option<&str>| {
            s.push_str(name);
            s.push('=');
            match v {
                Some(v) => {
                    s.push_str(&v.len().to_string());
                    s.push(':');
                    s.push_str(v);
                }
                None => s.push('~'),
            }
            s.push('\n');
        };
        let n = |x: i64| x.to_string();
        put("seq", Some(&n(self.seq)));
        put("logged_at", Some(&self.logged_at));
        put("kind", Some(&self.kind));
        put("partner", self.partner.as_deref());
        put("mapping", self.mapping.as_deref());
        put("direction", self.direction.as_deref());
        put("run_id", self.run_id.map(n).as_deref());
        put("wm_from", self.wm_from.as_deref());
        put("wm_to", self.wm_to.as_deref());
        put("rows_read", Some(&n(self.rows_read)));
        put("inserted", Some(&n(self.inserted)));
        put("updated", Some(&n(self.updated)));
        put("unchanged", Some(&n(self.unchanged)));
        put("deleted", Some(&n(self.deleted)));
        put("rejected", Some(&n(self.rejected)));
        put("content_digest", self.content_digest.as_deref());
        put("mapping_digest", self.mapping_digest.as_deref());
        put("outcome", Some(&self.outcome));
        put("error", self.error.as_deref());
        put("cut_seq", self.cut_seq.map(n).as_deref());
        put("cut_hash", self.cut_hash.as_deref());
        put("algo", Some(&self.algo));
        put("prev_hash", Some(&self.prev_hash));
        match algo {
            ChainHash::Sha256 => hex::encode(sha2::Sha256::digest(s.as_bytes())),
            ChainHash::Sm3 => hex::encode(sm3::Sm3::digest(s.as_bytes())),
        }
    }

    fn args(&self) -> Vec<Arg> {
        vec![
            self.seq.into(),
            self.logged_at.as_str().into(),
            self.kind.as_str().into(),
            self.partner.clone().into(),
            self.mapping.clone().into(),
            self.direction.clone().into(),
            Arg::I64(self.run_id),
            self.wm_from.clone().into(),
            self.wm_to.clone().into(),
            self.rows_read.into(),
            self.inserted.into(),
            self.updated.into(),
            self.unchanged.into(),
            self.deleted.into(),
            self.rejected.into(),
            self.content_digest.clone().into(),
            self.mapping_digest.clone().into(),
            self.outcome.as_str().into(),
            self.error.clone().into(),
            Arg::I64(self.cut_seq),
            self.cut_hash.clone().into(),
            self.algo.as_str().into(),
            self.prev_hash.as_str().into(),
            self.hash.as_str().into(),
        ]
    }

    fn from_row(r: &DbRow) -> anyhow::Result<Entry> {
        let t = |i: usize| r.text(i);
        let req = |i: usize, what: &str| -> anyhow::Result<String> { t(i)?.with_context(|| format!("{what} is NULL")) };
        Ok(Entry {
            seq: r.i64(0)?.context("seq is NULL")?,
            logged_at: req(1, "logged_at")?,
            kind: req(2, "kind")?,
            partner: t(3)?,
            mapping: t(4)?,
            direction: t(5)?,
            run_id: r.i64(6)?,
            wm_from: t(7)?,
            wm_to: t(8)?,
            rows_read: r.i64(9)?.unwrap_or(0),
            inserted: r.i64(10)?.unwrap_or(0),
            updated: r.i64(11)?.unwrap_or(0),
            unchanged: r.i64(12)?.unwrap_or(0),
            deleted: r.i64(13)?.unwrap_or(0),
            rejected: r.i64(14)?.unwrap_or(0),
            content_digest: t(15)?,
            mapping_digest: t(16)?,
            outcome: req(17, "outcome")?,
            error: t(18)?,
            cut_seq: r.i64(19)?,
            cut_hash: t(20)?,
            algo: req(21, "algo")?,
            prev_hash: req(22, "prev_hash")?,
            hash: req(23, "hash")?,
        })
    }
}

fn table(engine: Engine, name: &str) -> String {
    if engine == Engine::Postgres {
        format!("hlx.{name}")
    } else {
        name.to_string()
    }
}

/// Appends `e` to the chain inside `tx`: locks the head, numbers and links
/// the entry, hashes it, moves the head. Call it last in a transaction, so the
/// head lock is held only for the commit.
pub async fn append_tx(tx: &mut Tx, algo: ChainHash, mut e: Entry) -> anyhow::Result<Entry> {
    let engine = tx.engine();
    let head_t = table(engine, "hlx_exchange_log_head");
    // SQLite transactions are already exclusive (BEGIN IMMEDIATE).
    let lock = if engine == Engine::Sqlite { "" } else { " FOR UPDATE" };
    let head = fetch(tx, &format!("SELECT seq, hash FROM {head_t} WHERE id = 1{lock}"), &[]).await?;
    let head = head
        .first()
        .context("hlx_exchange_log_head has no row (was it emptied?)")?;
    let (seq, prev) = (
        head.i64(0)?.context("head seq is NULL")?,
        head.text(1)?.context("head hash is NULL")?,
    );
    e.seq = seq + 1;
    e.prev_hash = prev;
    e.algo = algo.as_str().into();
    e.hash = e.compute_hash(algo);
    let placeholders = vec!["?"; 24].join(", ");
    exec(
        tx,
        &format!(
            "INSERT INTO {} ({COLUMNS}) VALUES ({placeholders})",
            table(engine, "hlx_exchange_log")
        ),
        &e.args(),
    )
    .await?;
    exec(
        tx,
        &format!("UPDATE {head_t} SET seq = ?, hash = ? WHERE id = 1"),
        &[e.seq.into(), e.hash.as_str().into()],
    )
    .await?;
    Ok(e)
}

/// Appends `e` in a transaction of its own.
pub async fn append(pool: &Pool, algo: ChainHash, e: Entry) -> anyhow::Result<Entry> {
    let mut tx = pool.begin().await?;
    let e = append_tx(&mut tx, algo, e).await?;
    tx.commit().await?;
    Ok(e)
}

/// The first problem [`verify`] found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Break {
    /// The entry at fault (for a removed entry: the one after the gap).
    pub seq: i64,
    pub logged_at: Option<String>,
    pub problem: String,
}

/// What [`verify`] found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    pub entries: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    /// The head as stored (seq, hash): record it elsewhere to detect a
    /// wholesale rewrite later.
    pub head_seq: i64,
    pub head_hash: String,
    pub broken: Option<Break>,
}

/// Walks the whole chain in seq order (in pages, memory stays flat) and
/// reports the first entry that was altered, removed or re-ordered.
pub async fn verify(pool: &Pool) -> anyhow::Result<Verified> {
    let engine = pool.engine();
    let log_t = table(engine, "hlx_exchange_log");
    let head = fetch_pool(
        pool,
        &format!(
            "SELECT seq, hash FROM {} WHERE id = 1",
            table(engine, "hlx_exchange_log_head")
        ),
        &[],
    )
    .await?;
    let (head_seq, head_hash) = match head.first() {
        Some(r) => (r.i64(0)?.unwrap_or(0), r.text(1)?.unwrap_or_default()),
        None => (-1, String::new()),
    };
    let mut out = Verified {
        entries: 0,
        first_seq: None,
        last_seq: None,
        head_seq,
        head_hash: head_hash.clone(),
        broken: None,
    };
    let mut last: Option<(i64, String)> = None;
    // The cut the first entry must continue from: recorded by checkpoints,
    // checked once the checkpoint itself has verified.
    let mut first: Option<Entry> = None;
    let mut cuts: Vec<(i64, String)> = Vec::new();
    let mut after = i64::MIN;
    'pages: loop {
        let rows = fetch_pool(
            pool,
            &format!("SELECT {COLUMNS} FROM {log_t} WHERE seq > ? ORDER BY seq LIMIT 5000"),
            &[after.into()],
        )
        .await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let e = Entry::from_row(r)?;
            after = e.seq;
            out.entries += 1;
            let brk = |problem: String| Break {
                seq: e.seq,
                logged_at: Some(e.logged_at.clone()),
                problem,
            };
            let algo = match ChainHash::parse(&e.algo) {
                Ok(a) => a,
                Err(_) => {
                    out.broken = Some(brk(format!("unknown chain hash `{}`: the entry was altered", e.algo)));
                    break 'pages;
                }
            };
            if e.compute_hash(algo) != e.hash {
                out.broken = Some(brk(
                    "altered: its fields no longer match its hash (edited, or moved to another seq)".into(),
                ));
                break 'pages;
            }
            match &last {
                None => first = Some(e.clone()),
                Some((seq, hash)) => {
                    if e.seq != seq + 1 {
                        let gap = if e.seq == seq + 2 {
                            format!("entry {} is missing", seq + 1)
                        } else if e.seq > seq + 2 {
                            format!("entries {}..{} are missing", seq + 1, e.seq - 1)
                        } else {
                            format!("it follows entry {seq}")
                        };
                        out.broken = Some(brk(format!("{gap}: entries were removed or re-numbered")));
                        break 'pages;
                    }
                    if &e.prev_hash != hash {
                        out.broken = Some(brk(format!(
                            "does not link to entry {seq}: an entry was removed, inserted or re-ordered here"
                        )));
                        break 'pages;
                    }
                }
            }
            if let (Some(s), Some(h)) = (e.cut_seq, &e.cut_hash) {
                cuts.push((s, h.clone()));
            }
            out.first_seq.get_or_insert(e.seq);
            out.last_seq = Some(e.seq);
            last = Some((e.seq, e.hash.clone()));
        }
    }
    if out.broken.is_none() {
        if let Some(f) = &first {
            let continues = (f.seq == 1 && f.prev_hash == GENESIS)
                || cuts.iter().any(|(s, h)| *s == f.seq - 1 && *h == f.prev_hash);
            if !continues {
                out.broken = Some(Break {
                    seq: f.seq,
                    logged_at: Some(f.logged_at.clone()),
                    problem: format!(
                        "the oldest entry does not start the chain and no checkpoint records a cut at entry {}: \
                         older entries were removed",
                        f.seq - 1
                    ),
                });
            }
        }
    }
    if out.broken.is_none() {
        let (seq, hash) = last.unwrap_or((0, GENESIS.to_string()));
        if head_seq != seq || head_hash != hash {
            out.broken = Some(Break {
                seq: head_seq,
                logged_at: None,
                problem: if head_seq > seq {
                    format!(
                        "the newest entries {}..{head_seq} were removed (the head names entry {head_seq})",
                        seq + 1
                    )
                } else {
                    format!("the head (entry {head_seq}) does not match the last entry {seq}: the head was altered")
                },
            });
        }
    }
    Ok(out)
}

/// Drops entries logged before `cutoff` and appends a checkpoint recording
/// the seq and hash of the last entry dropped. Returns how many were dropped.
/// The caller enforces the retention floor (see [`crate::config::LogSettings`]).
pub async fn prune(pool: &Pool, algo: ChainHash, cutoff: chrono::DateTime<chrono::Utc>) -> anyhow::Result<u64> {
    let engine = pool.engine();
    let log_t = table(engine, "hlx_exchange_log");
    let cut = cutoff.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let mut tx = pool.begin().await?;
    // Lock the head first: no entry is appended while the cut is made.
    let lock = if engine == Engine::Sqlite { "" } else { " FOR UPDATE" };
    fetch(
        &mut tx,
        &format!(
            "SELECT seq FROM {} WHERE id = 1{lock}",
            table(engine, "hlx_exchange_log_head")
        ),
        &[],
    )
    .await?;
    // The last entry to drop: the newest one before the cutoff, but never the
    // newest entry of all (the chain must keep at least its head entry).
    let rows = fetch(
        &mut tx,
        &format!(
            "SELECT seq, hash FROM {log_t} WHERE logged_at < ? AND seq < (SELECT MAX(seq) FROM {log_t}) \
             ORDER BY seq DESC LIMIT 1"
        ),
        &[cut.as_str().into()],
    )
    .await?;
    let Some(r) = rows.first() else {
        tx.rollback().await?;
        return Ok(0);
    };
    let (seq, hash) = (r.i64(0)?.context("seq")?, r.text(1)?.context("hash")?);
    let mut e = Entry::new(Kind::Checkpoint, "ok");
    e.cut_seq = Some(seq);
    e.cut_hash = Some(hash);
    e.error = Some(format!("entries up to {seq} (logged before {cut}) pruned"));
    append_tx(&mut tx, algo, e).await?;
    let n = exec(&mut tx, &format!("DELETE FROM {log_t} WHERE seq <= ?"), &[seq.into()]).await?;
    tx.commit().await?;
    Ok(n)
}

/// Entries logged in `[since, until)`, oldest first (for reports).
pub async fn entries_between(pool: &Pool, since: &str, until: &str) -> anyhow::Result<Vec<Entry>> {
    let rows = fetch_pool(
        pool,
        &format!(
            "SELECT {COLUMNS} FROM {} WHERE logged_at >= ? AND logged_at < ? ORDER BY seq",
            table(pool.engine(), "hlx_exchange_log")
        ),
        &[since.into(), until.into()],
    )
    .await?;
    rows.iter().map(Entry::from_row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64) -> Entry {
        let mut e = Entry::new(Kind::Batch, "ok");
        e.seq = seq;
        e.mapping = Some("haikou.work_order".into());
        e.inserted = 3;
        e.prev_hash = GENESIS.into();
        e.algo = "sha256".into();
        e
    }

    #[test]
    fn the_hash_covers_every_field_and_the_algorithm_matters() {
        let e = entry(1);
        let h = e.compute_hash(ChainHash::Sha256);
        assert_eq!(h.len(), 64);
        assert_ne!(h, e.compute_hash(ChainHash::Sm3));
        let mut f = e.clone();
        f.inserted = 4;
        assert_ne!(h, f.compute_hash(ChainHash::Sha256));
        let mut f = e.clone();
        f.error = Some(String::new());
        assert_ne!(h, f.compute_hash(ChainHash::Sha256), "NULL and empty differ");
        // Field boundaries cannot be shifted: "ab" + "c" is not "a" + "bc".
        let (mut x, mut y) = (e.clone(), e.clone());
        x.partner = Some("ab".into());
        x.direction = Some("c".into());
        y.partner = Some("a".into());
        y.direction = Some("bc".into());
        assert_ne!(x.compute_hash(ChainHash::Sha256), y.compute_hash(ChainHash::Sha256));
    }

    #[test]
    fn sm3_is_the_standard_one() {
        // GB/T 32905-2016, example 1: SM3("abc").
        assert_eq!(
            hex::encode(sm3::Sm3::digest(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
    }
}
