//! hlx's own state in the provincial database (`hlx_` tables; schema `hlx`
//! on PostgreSQL): mappings and their leases, watermark positions, row
//! checksums, runs and the quarantine.
//!
//! Everything a batch changes (target rows, checksums, quarantine, the
//! watermark position, the run's counters) is written in **one** transaction
//! by the caller, through the `*_tx` functions here, so that a crash at any
//! instant leaves the state describing exactly the rows that landed.

use crate::db::sql::{exec, exec_pool, fetch, fetch_pool, Arg};
use crate::db::{Engine, Pool, Tx};
use crate::value::{format_naive, Value};
use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use std::collections::HashMap;

/// Where a mapping has read to: the last (watermark, key) processed.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub wm: Value,
    pub key: Vec<Value>,
}

impl Position {
    pub fn to_json(&self) -> String {
        serde_json::json!({ "wm": tag(&self.wm), "key": self.key.iter().map(tag).collect::<Vec<_>>() }).to_string()
    }

    pub fn from_json(s: &str) -> anyhow::Result<Position> {
        let j: serde_json::Value = serde_json::from_str(s).context("stored watermark position is not JSON")?;
        let wm = untag(&j["wm"])?;
        let key = j["key"]
            .as_array()
            .map(|a| a.iter().map(untag).collect::<Result<Vec<_>, _>>())
            .transpose()?
            .unwrap_or_default();
        Ok(Position { wm, key })
    }
}

/// A value with its type, so a stored watermark binds back as what it was.
pub fn tag(v: &Value) -> serde_json::Value {
    use serde_json::json;
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => json!({ "b": b }),
        Value::Int(i) => json!({ "i": i }),
        Value::Float(f) => json!({ "f": f }),
        Value::Decimal(s) => json!({ "n": s }),
        Value::Text(s) => json!({ "s": s }),
        Value::Bytes(b) => json!({ "x": hex::encode(b) }),
        Value::Date(d) => json!({ "d": d.to_string() }),
        Value::Time(t) => json!({ "h": t.format("%H:%M:%S%.f").to_string() }),
        Value::Timestamp(t) => json!({ "t": format_naive(t) }),
        Value::TimestampTz(t) => json!({ "z": t.to_rfc3339() }),
    }
}

pub fn untag(j: &serde_json::Value) -> anyhow::Result<Value> {
    if j.is_null() {
        return Ok(Value::Null);
    }
    let o = j.as_object().context("bad tagged value")?;
    let (k, v) = o.iter().next().context("empty tagged value")?;
    let s = || v.as_str().map(str::to_string).context("bad tagged value");
    Ok(match k.as_str() {
        "b" => Value::Bool(v.as_bool().unwrap_or(false)),
        "i" => Value::Int(v.as_i64().context("bad int")?),
        "f" => Value::Float(v.as_f64().context("bad float")?),
        "n" => Value::Decimal(s()?),
        "s" => Value::Text(s()?),
        "x" => Value::Bytes(hex::decode(s()?)?),
        "d" => Value::Date(NaiveDate::parse_from_str(&s()?, "%Y-%m-%d")?),
        "h" => Value::Time(chrono::NaiveTime::parse_from_str(&s()?, "%H:%M:%S%.f")?),
        "t" => Value::Timestamp(NaiveDateTime::parse_from_str(&s()?, "%Y-%m-%d %H:%M:%S%.f")?),
        "z" => Value::TimestampTz(DateTime::parse_from_rfc3339(&s()?)?),
        other => anyhow::bail!("unknown value tag `{other}`"),
    })
}

/// The watermark moved back by the look-back window. Time types subtract;
/// text watermarks that hold a timestamp (`yyyyMMddHHmmss`,
/// `yyyy-MM-dd HH:mm:ss[.f]`) are parsed, moved and written back in their
/// shape; integers and other text are not moved (the docs say so).
pub fn minus(v: &Value, d: chrono::Duration) -> Value {
    match v {
        Value::Timestamp(t) => Value::Timestamp(*t - d),
        Value::TimestampTz(t) => Value::TimestampTz(*t - d),
        Value::Date(x) => Value::Date(*x - chrono::Duration::days((d.num_seconds() + 86399) / 86400)),
        Value::Text(s) => {
            let t = s.trim();
            if t.len() == 14 && t.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(n) = NaiveDateTime::parse_from_str(t, "%Y%m%d%H%M%S") {
                    return Value::Text((n - d).format("%Y%m%d%H%M%S").to_string());
                }
            }
            for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
                if let Ok(n) = NaiveDateTime::parse_from_str(t, f) {
                    // Same separator and the same number of fraction digits, so the
                    // text compares the way the stored values do.
                    let sep = if t.as_bytes().get(10) == Some(&b'T') { "T" } else { " " };
                    let digits = t.split_once('.').map(|(_, f)| f.len().min(9)).unwrap_or(0);
                    let m = n - d;
                    let mut out = m.format(&format!("%Y-%m-%d{sep}%H:%M:%S")).to_string();
                    if digits > 0 {
                        let frac = format!("{:09}", m.and_utc().timestamp_subsec_nanos());
                        out.push('.');
                        out.push_str(&frac[..digits]);
                    }
                    return Value::Text(out);
                }
            }
            v.clone()
        }
        other => other.clone(),
    }
}

/// Counters of a run; also the per-batch increments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub batches: u64,
    pub read: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub deleted: u64,
    pub rejected: u64,
    pub null_watermark: u64,
    /// Rows written with a code that fell back to an 'other' classification.
    pub fallbacks: u64,
    /// Two-way: the other side's changes to fields it does not own, not taken.
    pub ignored: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.batches += o.batches;
        self.read += o.read;
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.deleted += o.deleted;
        self.rejected += o.rejected;
        self.null_watermark += o.null_watermark;
        self.fallbacks += o.fallbacks;
        self.ignored += o.ignored;
    }
}

/// The `direction` recorded in `hlx_run` for `hlx rejects retry`: a retry
/// is a run (its batches, counts and exchange-log entries point at it), but
/// not a run of the schedule.
pub const RETRY_RUN: &str = "retry";

/// A row for the quarantine.
#[derive(Debug, Clone)]
pub struct QuarantineEntry {
    pub row_key: String,
    pub raw: String,
    pub digest: Vec<u8>,
    pub field: Option<String>,
    pub column: Option<String>,
    pub rule: String,
    pub value: Option<String>,
    pub reason: String,
}

/// The columns of `hlx_quarantine` that [`Quarantined::from_row`] reads, in its order.
const QUARANTINE_COLS: &str = "id, mapping, partner, row_key, field, column_name, rule, value, reason, status, \
     first_seen, last_seen, attempts, run_id, raw";

/// A quarantine entry as stored. `raw` holds the source values in the
/// clear: never print it without [`crate::mapping::Mapping::show_raw`]
/// (`Debug` leaves it out).
#[derive(Clone)]
pub struct Quarantined {
    pub id: i64,
    pub mapping: String,
    pub partner: String,
    pub row_key: String,
    pub field: Option<String>,
    pub column: Option<String>,
    pub rule: String,
    /// The offending value, masked when personal (masked when it was stored).
    pub value: Option<String>,
    pub reason: String,
    /// `open` or `resolved`.
    pub status: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub attempts: i64,
    pub run_id: Option<i64>,
    pub raw: String,
}

impl std::fmt::Debug for Quarantined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quarantined")
            .field("id", &self.id)
            .field("mapping", &self.mapping)
            .field("row_key", &self.row_key)
            .field("rule", &self.rule)
            .field("status", &self.status)
            .field("raw", &format_args!("<{} bytes>", self.raw.len()))
            .finish_non_exhaustive()
    }
}

impl Quarantined {
    fn from_row(r: &crate::db::sql::DbRow) -> anyhow::Result<Quarantined> {
        let text = |i: usize| -> anyhow::Result<String> { Ok(r.text(i)?.unwrap_or_default()) };
        Ok(Quarantined {
            id: r.i64(0)?.context("quarantine entry without an id")?,
            mapping: text(1)?,
            partner: text(2)?,
            row_key: text(3)?,
            field: r.text(4)?,
            column: r.text(5)?,
            rule: text(6)?,
            value: r.text(7)?,
            reason: text(8)?,
            status: text(9)?,
            first_seen: r.utc(10)?.context("quarantine entry without first_seen")?,
            last_seen: r.utc(11)?.context("quarantine entry without last_seen")?,
            attempts: r.i64(12)?.unwrap_or(0),
            run_id: r.i64(13)?,
            raw: text(14)?,
        })
    }
}

/// Which quarantine entries `hlx rejects list` shows.
#[derive(Debug, Clone, Default)]
pub struct QuarantineFilter<'a> {
    pub mapping: Option<&'a str>,
    /// Last seen at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Resolved entries too.
    pub all: bool,
}

/// The state store.
#[derive(Clone, Debug)]
pub struct State {
    pub pool: Pool,
    /// `hlx.` on PostgreSQL.
    p: &'static str,
}

static STATE_PG: sqlx::migrate::Migrator = sqlx::migrate!("migrations/state/postgres");
static STATE_MY: sqlx::migrate::Migrator = sqlx::migrate!("migrations/state/mysql");
static STATE_LITE: sqlx::migrate::Migrator = sqlx::migrate!("migrations/state/sqlite");
static PROV_PG: sqlx::migrate::Migrator = sqlx::migrate!("migrations/province/postgres");
static PROV_MY: sqlx::migrate::Migrator = sqlx::migrate!("migrations/province/mysql");
static PROV_LITE: sqlx::migrate::Migrator = sqlx::migrate!("migrations/province/sqlite");

/// Runs a migrator that shares `_sqlx_migrations` with the other set.
async fn apply(m: &sqlx::migrate::Migrator, pool: &Pool) -> anyhow::Result<()> {
    let mut m = sqlx::migrate::Migrator {
        migrations: m.migrations.clone(),
        ignore_missing: true,
        locking: m.locking,
        no_tx: m.no_tx,
        table_name: m.table_name.clone(),
        create_schemas: m.create_schemas.clone(),
    };
    m.set_ignore_missing(true);
    match pool {
        Pool::Pg(p) => crate::db::with_conn(p, async |c| Ok(m.run(c).await?)).await?,
        Pool::My(p) => crate::db::with_conn(p, async |c| Ok(m.run(c).await?)).await?,
        Pool::Lite(p) => crate::db::with_conn(p, async |c| Ok(m.run(c).await?)).await?,
    }
    Ok(())
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

impl State {
    pub fn new(pool: Pool) -> State {
        let p = if pool.engine() == Engine::Postgres { "hlx." } else { "" };
        State { pool, p }
    }

    /// Creates or upgrades hlx's state tables and, unless `state_only`, the
    /// default provincial schema.
    pub async fn migrate(&self, state_only: bool) -> anyhow::Result<()> {
        let (s, p) = match self.pool.engine() {
            Engine::Postgres => (&STATE_PG, &PROV_PG),
            Engine::MySql => (&STATE_MY, &PROV_MY),
            Engine::Sqlite => (&STATE_LITE, &PROV_LITE),
        };
        let wanted: &[&sqlx::migrate::Migrator] = if state_only { &[s] } else { &[s, p] };
        if self.migrations_applied(wanted).await {
            return Ok(());
        }
        apply(s, &self.pool).await.context("migrating hlx state tables")?;
        if !state_only {
            apply(p, &self.pool).await.context("migrating the provincial schema")?;
        }
        Ok(())
    }

    /// Whether every migration of these migrators is recorded as applied
    /// with its checksum: one read instead of sqlx's lock, `CREATE TABLE IF
    /// NOT EXISTS` and reads per migrator, which every run and every poll
    /// would otherwise pay. Anything else (no table yet, a migration
    /// missing, a checksum that differs) goes the full way, where sqlx
    /// applies or reports it.
    async fn migrations_applied(&self, wanted: &[&sqlx::migrate::Migrator]) -> bool {
        let Ok(rows) = fetch_pool(
            &self.pool,
            "SELECT version, checksum FROM _sqlx_migrations WHERE success = ?",
            &[true.into()],
        )
        .await
        else {
            return false;
        };
        let applied: HashMap<i64, Vec<u8>> = rows
            .iter()
            .filter_map(|r| Some((r.i64(0).ok()??, r.bytes(1).ok()??)))
            .collect();
        wanted.iter().flat_map(|m| m.iter()).all(|m| {
            m.migration_type.is_down_migration()
                || applied.get(&m.version).is_some_and(|c| c.as_slice() == &*m.checksum)
        })
    }

    /// An hlx table's name as this engine spells it (`hlx.` schema on PostgreSQL).
    pub(crate) fn t(&self, table: &str) -> String {
        format!("{}{}", self.p, table)
    }

    /// The mapping's id, registering it on first use.
    pub async fn mapping_id(&self, name: &str, partner: &str) -> anyhow::Result<i64> {
        let q = format!("SELECT id FROM {} WHERE name = ?", self.t("hlx_mapping"));
        if let Some(r) = fetch_pool(&self.pool, &q, &[name.into()]).await?.first() {
            return r.i64(0)?.context("null mapping id");
        }
        let ins = match self.pool.engine() {
            Engine::MySql => format!(
                "INSERT IGNORE INTO {} (name, partner) VALUES (?, ?)",
                self.t("hlx_mapping")
            ),
            _ => format!(
                "INSERT INTO {} (name, partner) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                self.t("hlx_mapping")
            ),
        };
        exec_pool(&self.pool, &ins, &[name.into(), partner.into()]).await?;
        let r = fetch_pool(&self.pool, &q, &[name.into()]).await?;
        r.first()
            .context("mapping not registered")?
            .i64(0)?
            .context("null mapping id")
    }

    /// Takes the mapping's lease for `ttl`. `Ok(Err(holder))` when another
    /// live process holds it. A lease left by a dead process on this host is
    /// taken over at once.
    pub async fn acquire_lease(
        &self,
        id: i64,
        owner: &str,
        ttl: chrono::Duration,
    ) -> anyhow::Result<Result<(), String>> {
        let until = now() + ttl;
        let q = format!(
            "UPDATE {} SET lease_owner = ?, lease_until = ? WHERE id = ? AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)",
            self.t("hlx_mapping")
        );
        let n = exec_pool(
            &self.pool,
            &q,
            &[owner.into(), until.into(), id.into(), owner.into(), now().into()],
        )
        .await?;
        if n == 1 {
            return Ok(Ok(()));
        }
        let r = fetch_pool(
            &self.pool,
            &format!(
                "SELECT lease_owner, lease_until FROM {} WHERE id = ?",
                self.t("hlx_mapping")
            ),
            &[id.into()],
        )
        .await?;
        let holder = r.first().map(|r| r.text(0)).transpose()?.flatten().unwrap_or_default();
        if owner_is_dead(&holder) {
            let q = format!(
                "UPDATE {} SET lease_owner = ?, lease_until = ? WHERE id = ? AND lease_owner = ?",
                self.t("hlx_mapping")
            );
            if exec_pool(
                &self.pool,
                &q,
                &[owner.into(), until.into(), id.into(), holder.clone().into()],
            )
            .await?
                == 1
            {
                return Ok(Ok(()));
            }
        }
        let until = r.first().map(|r| r.utc(1)).transpose()?.flatten();
        Ok(Err(format!(
            "{holder} (until {})",
            until.map(|u| u.to_rfc3339()).unwrap_or_default()
        )))
    }

    pub async fn renew_lease_tx(
        &self,
        tx: &mut Tx,
        id: i64,
        owner: &str,
        ttl: chrono::Duration,
    ) -> anyhow::Result<bool> {
        let q = format!(
            "UPDATE {} SET lease_until = ? WHERE id = ? AND lease_owner = ?",
            self.t("hlx_mapping")
        );
        Ok(exec(tx, &q, &[(now() + ttl).into(), id.into(), owner.into()]).await? == 1)
    }

    pub async fn release_lease(&self, id: i64, owner: &str) -> anyhow::Result<()> {
        let q = format!(
            "UPDATE {} SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?",
            self.t("hlx_mapping")
        );
        exec_pool(&self.pool, &q, &[id.into(), owner.into()]).await?;
        Ok(())
    }

    pub async fn position(&self, id: i64) -> anyhow::Result<Option<Position>> {
        Ok(self.position_and_seal(id).await?.0)
    }

    /// The stored position and the seal of its look-back window, if one is
    /// in force (see [`crate::window`]), in one read.
    pub async fn position_and_seal(&self, id: i64) -> anyhow::Result<(Option<Position>, Option<String>)> {
        let q = format!(
            "SELECT position, window_seal FROM {} WHERE mapping_id = ?",
            self.t("hlx_watermark")
        );
        match fetch_pool(&self.pool, &q, &[id.into()]).await?.first() {
            Some(r) => Ok((Some(Position::from_json(&r.text(0)?.unwrap_or_default())?), r.text(1)?)),
            None => Ok((None, None)),
        }
    }

    /// Moves the position; the window's seal goes with the old position.
    pub async fn save_position_tx(&self, tx: &mut Tx, id: i64, pos: &Position) -> anyhow::Result<()> {
        let t = self.t("hlx_watermark");
        let sql = match tx.engine() {
            Engine::MySql => format!(
                "INSERT INTO {t} (mapping_id, position, wm_text, updated_at) VALUES (?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE position = VALUES(position), wm_text = VALUES(wm_text), updated_at = VALUES(updated_at), \
                 window_seal = NULL"
            ),
            _ => format!(
                "INSERT INTO {t} (mapping_id, position, wm_text, updated_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (mapping_id) DO UPDATE SET position = excluded.position, wm_text = excluded.wm_text, updated_at = excluded.updated_at, \
                 window_seal = NULL"
            ),
        };
        exec(
            tx,
            &sql,
            &[id.into(), pos.to_json().into(), pos.wm.to_string().into(), now().into()],
        )
        .await?;
        Ok(())
    }

    /// Records the seal of the window at `pos`, if the position is still
    /// `pos` (a run that moved it in the meantime has cleared the seal) and
    /// the seal is not already this one (an idle poll writes nothing).
    pub async fn seal_window(&self, id: i64, pos: &Position, seal: &str) -> anyhow::Result<()> {
        exec_pool(
            &self.pool,
            &format!(
                "UPDATE {} SET window_seal = ? WHERE mapping_id = ? AND position = ? \
                 AND (window_seal IS NULL OR window_seal <> ?)",
                self.t("hlx_watermark")
            ),
            &[seal.into(), id.into(), pos.to_json().into(), seal.into()],
        )
        .await?;
        Ok(())
    }

    /// Whatever changes a mapping's row state breaks its window's seal: in
    /// the same transaction as the change.
    async fn unseal_tx(&self, tx: &mut Tx, id: i64) -> anyhow::Result<()> {
        exec(
            tx,
            &format!(
                "UPDATE {} SET window_seal = NULL WHERE mapping_id = ? AND window_seal IS NOT NULL",
                self.t("hlx_watermark")
            ),
            &[id.into()],
        )
        .await?;
        Ok(())
    }

    /// Removes the position (re-sync from the beginning) or sets it.
    pub async fn reset_position(&self, id: i64, to: Option<&Position>) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        exec(
            &mut tx,
            &format!("DELETE FROM {} WHERE mapping_id = ?", self.t("hlx_watermark")),
            &[id.into()],
        )
        .await?;
        if let Some(p) = to {
            self.save_position_tx(&mut tx, id, p).await?;
        }
        tx.commit().await
    }

    /// Stored checksums of these keys: key → (checksum, deleted).
    pub async fn checksums_tx(&self, tx: &mut Tx, id: i64, keys: &[&str]) -> anyhow::Result<HashMap<String, Stored>> {
        let mut out = HashMap::with_capacity(keys.len());
        if let Tx::Pg(t) = tx {
            // One index probe per key, whatever the statistics say: the
            // LATERAL subquery with LIMIT cannot be flattened into a join, so
            // it is a nested loop over the keys. (`row_key = ANY($2)`, or a
            // plain join with the key array, is planned as a scan of every row
            // of the mapping, hashed, when the table has grown faster than its
            // statistics: after a first load, or where autovacuum is off. That
            // took 855 ms for 15,100 keys against 45 ms for this form.)
            let rows: Vec<(String, Vec<u8>, bool, Option<String>)> = sqlx::query_as(
                "SELECT s.row_key, s.checksum, s.deleted, s.source_wm FROM unnest($2::text[]) AS k(row_key) \
                 CROSS JOIN LATERAL (SELECT t.row_key, t.checksum, t.deleted, t.source_wm FROM hlx.hlx_row_state t \
                 WHERE t.mapping_id = $1 AND t.row_key = k.row_key LIMIT 1) s",
            )
            .bind(id)
            .bind(keys)
            .fetch_all(&mut **t)
            .await?;
            out.extend(
                rows.into_iter()
                    .map(|(k, checksum, deleted, wm)| (k, Stored { checksum, deleted, wm })),
            );
            return Ok(out);
        }
        for chunk in keys.chunks(5000) {
            let q = format!(
                "SELECT row_key, checksum, deleted, source_wm FROM {} WHERE mapping_id = ? AND row_key IN ({})",
                self.t("hlx_row_state"),
                vec!["?"; chunk.len()].join(", ")
            );
            let mut args: Vec<Arg> = vec![id.into()];
            args.extend(chunk.iter().map(|k| Arg::from(*k)));
            for r in fetch(tx, &q, &args).await? {
                out.insert(
                    r.text(0)?.unwrap_or_default(),
                    Stored {
                        checksum: r.bytes(1)?.unwrap_or_default(),
                        deleted: r.bool(2)?.unwrap_or(false),
                        wm: r.text(3)?,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Records checksums (upsert): (key, checksum, deleted). `fresh` says no
    /// key has state yet, which lets PostgreSQL COPY them in (falling back to
    /// the upsert if a key turns out to exist).
    pub async fn save_checksums_tx(
        &self,
        tx: &mut Tx,
        id: i64,
        rows: &[StateRow<'_>],
        fresh: bool,
        strict: bool,
    ) -> anyhow::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.unseal_tx(tx, id).await?;
        if fresh && tx.engine() == Engine::Postgres {
            exec(tx, "SAVEPOINT hlx_state", &[]).await?;
            // A COPY's error can surface on the next statement: RELEASE is part of the attempt.
            let attempt = async {
                copy_checksums(tx, id, rows).await?;
                exec(tx, "RELEASE SAVEPOINT hlx_state", &[]).await
            };
            match attempt.await {
                Ok(_) => return Ok(()),
                Err(e) if crate::db::write::is_data_error(&e) => {
                    if strict {
                        return Err(KeyExists.into());
                    }
                    exec(tx, "ROLLBACK TO SAVEPOINT hlx_state", &[]).await?;
                }
                Err(e) => return Err(e),
            }
        }
        if let Tx::Pg(pg) = tx {
            // Three array parameters instead of four per row.
            let keys: Vec<&str> = rows.iter().map(|r| r.key).collect();
            let sums: Vec<&[u8]> = rows.iter().map(|r| &r.checksum[..]).collect();
            let dels: Vec<bool> = rows.iter().map(|r| r.deleted).collect();
            let wms: Vec<Option<&str>> = rows.iter().map(|r| r.wm.as_deref()).collect();
            sqlx::query(
                "INSERT INTO hlx.hlx_row_state (mapping_id, row_key, checksum, deleted, source_wm) \
                 SELECT $1, k, c, d, w FROM UNNEST($2::text[], $3::bytea[], $4::bool[], $5::text[]) AS u(k, c, d, w) \
                 ON CONFLICT (mapping_id, row_key) DO UPDATE SET checksum = EXCLUDED.checksum, deleted = EXCLUDED.deleted, \
                 source_wm = EXCLUDED.source_wm",
            )
            .bind(id)
            .bind(keys)
            .bind(sums)
            .bind(dels)
            .bind(wms)
            .execute(&mut **pg)
            .await?;
            return Ok(());
        }
        let t = self.t("hlx_row_state");
        for chunk in rows.chunks(2000) {
            let values = vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = match tx.engine() {
                Engine::MySql => format!(
                    "INSERT INTO {t} (mapping_id, row_key, checksum, deleted, source_wm) VALUES {values} \
                     ON DUPLICATE KEY UPDATE checksum = VALUES(checksum), deleted = VALUES(deleted), source_wm = VALUES(source_wm)"
                ),
                _ => format!(
                    "INSERT INTO {t} (mapping_id, row_key, checksum, deleted, source_wm) VALUES {values} \
                     ON CONFLICT (mapping_id, row_key) DO UPDATE SET checksum = excluded.checksum, deleted = excluded.deleted, \
                     source_wm = excluded.source_wm"
                ),
            };
            let mut args = Vec::with_capacity(chunk.len() * 5);
            for r in chunk {
                args.push(Arg::from(id));
                args.push(Arg::from(r.key));
                args.push(Arg::Bytes(Some(r.checksum.to_vec())));
                args.push(Arg::from(r.deleted));
                args.push(Arg::Text(r.wm.clone()));
            }
            exec(tx, &sql, &args).await?;
        }
        Ok(())
    }

    /// Whether the mapping has any checksum recorded.
    pub async fn has_row_state(&self, id: i64) -> anyhow::Result<bool> {
        let q = format!("SELECT 1 FROM {} WHERE mapping_id = ? LIMIT 1", self.t("hlx_row_state"));
        Ok(!fetch_pool(&self.pool, &q, &[id.into()]).await?.is_empty())
    }

    /// Forgets the checksums of a mapping (the next run rewrites every row).
    pub async fn forget_checksums(&self, id: i64) -> anyhow::Result<u64> {
        let mut tx = self.pool.begin().await?;
        self.unseal_tx(&mut tx, id).await?;
        let n = exec(
            &mut tx,
            &format!("DELETE FROM {} WHERE mapping_id = ?", self.t("hlx_row_state")),
            &[id.into()],
        )
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    pub async fn start_run(&self, mapping: &str, partner: &str, direction: &str) -> anyhow::Result<i64> {
        let t = self.t("hlx_run");
        // Runs this process finds still 'running' under its own lease died with their process.
        exec_pool(
            &self.pool,
            &format!("UPDATE {t} SET status = 'interrupted' WHERE mapping = ? AND status = 'running'"),
            &[mapping.into()],
        )
        .await?;
        let args = [mapping.into(), partner.into(), direction.into(), now().into()];
        let sql =
            format!("INSERT INTO {t} (mapping, partner, direction, started_at, status) VALUES (?, ?, ?, ?, 'running')");
        match self.pool.engine() {
            Engine::MySql => {
                let mut tx = self.pool.begin().await?;
                exec(&mut tx, &sql, &args).await?;
                let id = fetch(&mut tx, "SELECT CAST(LAST_INSERT_ID() AS SIGNED)", &[])
                    .await?
                    .first()
                    .context("no id")?
                    .i64(0)?
                    .context("no id")?;
                tx.commit().await?;
                Ok(id)
            }
            _ => {
                let r = fetch_pool(&self.pool, &format!("{sql} RETURNING id"), &args).await?;
                r.first().context("no run id")?.i64(0)?.context("no run id")
            }
        }
    }

    /// Records a two-way conflict (in the batch's transaction).
    #[allow(clippy::too_many_arguments)]
    pub async fn conflict_tx(
        &self,
        tx: &mut Tx,
        mapping: &str,
        row_key: &str,
        field: &str,
        values: ConflictValues,
        kept: &str,
        policy: &str,
        run_id: i64,
    ) -> anyhow::Result<()> {
        let sql = format!(
            "INSERT INTO {} (mapping, row_key, field, agreed_value, province_value, partner_value, kept, policy, detected_at, run_id) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            self.t("hlx_conflict")
        );
        let ConflictValues {
            agreed,
            province: province_value,
            partner: partner_value,
        } = values;
        exec(
            tx,
            &sql,
            &[
                mapping.into(),
                row_key.into(),
                field.into(),
                agreed.into(),
                province_value.into(),
                partner_value.into(),
                kept.into(),
                policy.into(),
                now().into(),
                run_id.into(),
            ],
        )
        .await?;
        Ok(())
    }

    /// Two-way: the values both sides last agreed on, by (row key, field).
    pub async fn shared_values_tx(
        &self,
        tx: &mut Tx,
        pair: &str,
        keys: &[&str],
    ) -> anyhow::Result<HashMap<(String, String), Option<String>>> {
        let mut out = HashMap::new();
        for chunk in keys.chunks(500) {
            let q = format!(
                "SELECT row_key, field, value FROM {} WHERE mapping = ? AND row_key IN ({})",
                self.t("hlx_shared_value"),
                vec!["?"; chunk.len()].join(", ")
            );
            let mut args: Vec<Arg> = vec![pair.into()];
            args.extend(chunk.iter().map(|k| Arg::from(*k)));
            for r in crate::db::sql::fetch(tx, &q, &args).await? {
                out.insert(
                    (r.text(0)?.unwrap_or_default(), r.text(1)?.unwrap_or_default()),
                    r.text(2)?,
                );
            }
        }
        Ok(out)
    }

    /// Two-way: records the values both sides now agree on.
    pub async fn save_shared_values(
        &self,
        pair: &str,
        rows: &[(String, String, Option<String>)],
    ) -> anyhow::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let t = self.t("hlx_shared_value");
        let sql = match self.pool.engine() {
            Engine::MySql => format!(
                "INSERT INTO {t} (mapping, row_key, field, value) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE value = VALUES(value)"
            ),
            _ => format!(
                "INSERT INTO {t} (mapping, row_key, field, value) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (mapping, row_key, field) DO UPDATE SET value = excluded.value"
            ),
        };
        let mut tx = self.pool.begin().await?;
        for (key, field, value) in rows {
            exec(
                &mut tx,
                &sql,
                &[
                    pair.into(),
                    key.as_str().into(),
                    field.as_str().into(),
                    value.clone().into(),
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Adds a batch's counts to its run (in the batch's transaction).
    pub async fn add_counts_tx(&self, tx: &mut Tx, run: i64, c: &Counts, wm_to: Option<String>) -> anyhow::Result<()> {
        let sql = format!(
            "UPDATE {} SET batches = batches + ?, rows_read = rows_read + ?, inserted = inserted + ?, updated = updated + ?, \
             unchanged = unchanged + ?, deleted = deleted + ?, rejected = rejected + ?, null_watermark = null_watermark + ?, \
             fallbacks = fallbacks + ?, ignored = ignored + ?, wm_to = COALESCE(?, wm_to) WHERE id = ?",
            self.t("hlx_run")
        );
        let n = |x: u64| Arg::I64(Some(x as i64));
        exec(
            tx,
            &sql,
            &[
                n(c.batches),
                n(c.read),
                n(c.inserted),
                n(c.updated),
                n(c.unchanged),
                n(c.deleted),
                n(c.rejected),
                n(c.null_watermark),
                n(c.fallbacks),
                n(c.ignored),
                wm_to.into(),
                run.into(),
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn finish_run(
        &self,
        run: i64,
        status: &str,
        wm_from: Option<String>,
        error: Option<String>,
    ) -> anyhow::Result<()> {
        let sql = format!(
            "UPDATE {} SET status = ?, finished_at = ?, wm_from = ?, error = ? WHERE id = ?",
            self.t("hlx_run")
        );
        exec_pool(
            &self.pool,
            &sql,
            &[status.into(), now().into(), wm_from.into(), error.into(), run.into()],
        )
        .await?;
        Ok(())
    }

    /// Digests of the open quarantine entries among these keys.
    pub async fn open_quarantine_tx(
        &self,
        tx: &mut Tx,
        mapping: &str,
        keys: &[&str],
    ) -> anyhow::Result<HashMap<String, Vec<u8>>> {
        let mut out = HashMap::new();
        for chunk in keys.chunks(5000) {
            let q = format!(
                "SELECT row_key, raw_digest FROM {} WHERE mapping = ? AND status = 'open' AND row_key IN ({})",
                self.t("hlx_quarantine"),
                vec!["?"; chunk.len()].join(", ")
            );
            let mut args: Vec<Arg> = vec![mapping.into()];
            args.extend(chunk.iter().map(|k| Arg::from(*k)));
            for r in fetch(tx, &q, &args).await? {
                out.insert(r.text(0)?.unwrap_or_default(), r.bytes(1)?.unwrap_or_default());
            }
        }
        Ok(out)
    }

    pub async fn open_quarantine_count(&self, mapping: &str) -> anyhow::Result<i64> {
        let q = format!(
            "SELECT COUNT(*) FROM {} WHERE mapping = ? AND status = 'open'",
            self.t("hlx_quarantine")
        );
        Ok(fetch_pool(&self.pool, &q, &[mapping.into()])
            .await?
            .first()
            .map(|r| r.i64(0))
            .transpose()?
            .flatten()
            .unwrap_or(0))
    }

    pub async fn quarantine_tx(
        &self,
        tx: &mut Tx,
        mapping: &str,
        partner: &str,
        run: i64,
        e: &QuarantineEntry,
    ) -> anyhow::Result<()> {
        let t = self.t("hlx_quarantine");
        let ts = now();
        let args = [
            mapping.into(),
            partner.into(),
            e.row_key.clone().into(),
            e.raw.clone().into(),
            Arg::Bytes(Some(e.digest.clone())),
            e.field.clone().into(),
            e.column.clone().into(),
            e.rule.clone().into(),
            e.value.clone().into(),
            e.reason.clone().into(),
            ts.into(),
            ts.into(),
            run.into(),
        ];
        let cols = "(mapping, partner, row_key, raw, raw_digest, field, column_name, rule, value, reason, first_seen, last_seen, run_id, status, attempts)";
        let vals = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', 1)";
        let sql = match tx.engine() {
            Engine::MySql => format!(
                "INSERT INTO {t} {cols} VALUES {vals} ON DUPLICATE KEY UPDATE raw = VALUES(raw), raw_digest = VALUES(raw_digest), \
                 field = VALUES(field), column_name = VALUES(column_name), rule = VALUES(rule), value = VALUES(value), reason = VALUES(reason), \
                 last_seen = VALUES(last_seen), run_id = VALUES(run_id), attempts = attempts + 1, \
                 first_seen = IF(status = 'open', first_seen, VALUES(first_seen)), status = 'open'"
            ),
            _ => format!(
                "INSERT INTO {t} {cols} VALUES {vals} ON CONFLICT (mapping, row_key) DO UPDATE SET raw = excluded.raw, \
                 raw_digest = excluded.raw_digest, field = excluded.field, column_name = excluded.column_name, rule = excluded.rule, \
                 value = excluded.value, reason = excluded.reason, last_seen = excluded.last_seen, run_id = excluded.run_id, \
                 attempts = hlx_quarantine.attempts + 1, \
                 first_seen = CASE WHEN hlx_quarantine.status = 'open' THEN hlx_quarantine.first_seen ELSE excluded.first_seen END, \
                 status = 'open'"
            ),
        };
        exec(tx, &sql, &args).await?;
        Ok(())
    }

    /// Quarantine entries, newest first (by last seen): open ones, or every
    /// one with `all`; at most `limit`, with how many match in total.
    pub async fn list_quarantine(
        &self,
        f: &QuarantineFilter<'_>,
        limit: usize,
    ) -> anyhow::Result<(Vec<Quarantined>, i64)> {
        let mut conds: Vec<&str> = Vec::new();
        let mut args: Vec<Arg> = Vec::new();
        if let Some(m) = f.mapping {
            conds.push("mapping = ?");
            args.push(m.into());
        }
        if !f.all {
            conds.push("status = 'open'");
        }
        if let Some(t) = f.since {
            conds.push("last_seen >= ?");
            args.push(t.into());
        }
        let where_ = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let t = self.t("hlx_quarantine");
        let total = fetch_pool(&self.pool, &format!("SELECT COUNT(*) FROM {t}{where_}"), &args)
            .await?
            .first()
            .map(|r| r.i64(0))
            .transpose()?
            .flatten()
            .unwrap_or(0);
        let q = format!("SELECT {QUARANTINE_COLS} FROM {t}{where_} ORDER BY last_seen DESC, id DESC LIMIT {limit}");
        let rows = fetch_pool(&self.pool, &q, &args).await?;
        let list = rows
            .iter()
            .map(Quarantined::from_row)
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok((list, total))
    }

    /// One quarantine entry by id.
    pub async fn quarantine_entry(&self, id: i64) -> anyhow::Result<Option<Quarantined>> {
        let q = format!(
            "SELECT {QUARANTINE_COLS} FROM {} WHERE id = ?",
            self.t("hlx_quarantine")
        );
        fetch_pool(&self.pool, &q, &[id.into()])
            .await?
            .first()
            .map(Quarantined::from_row)
            .transpose()
    }

    /// Open entries of a mapping with an id above `after`, by id, at most
    /// `limit`; only those among `ids` unless it is empty. Paging by id lets
    /// a retry walk the quarantine while it updates the entries it re-rejects.
    pub async fn open_quarantine_page(
        &self,
        mapping: &str,
        ids: &[i64],
        after: i64,
        limit: usize,
    ) -> anyhow::Result<Vec<Quarantined>> {
        let mut args: Vec<Arg> = vec![mapping.into(), after.into()];
        let only = if ids.is_empty() {
            String::new()
        } else {
            args.extend(ids.iter().map(|&i| Arg::from(i)));
            format!(" AND id IN ({})", vec!["?"; ids.len()].join(", "))
        };
        let q = format!(
            "SELECT {QUARANTINE_COLS} FROM {} WHERE mapping = ? AND status = 'open' AND id > ?{only} ORDER BY id LIMIT {limit}",
            self.t("hlx_quarantine")
        );
        fetch_pool(&self.pool, &q, &args)
            .await?
            .iter()
            .map(Quarantined::from_row)
            .collect()
    }

    /// Mappings that have open quarantine entries, with their counts.
    pub async fn open_quarantine_mappings(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let q = format!(
            "SELECT mapping, COUNT(*) FROM {} WHERE status = 'open' GROUP BY mapping ORDER BY mapping",
            self.t("hlx_quarantine")
        );
        fetch_pool(&self.pool, &q, &[])
            .await?
            .iter()
            .map(|r| Ok((r.text(0)?.unwrap_or_default(), r.i64(1)?.unwrap_or(0))))
            .collect()
    }

    /// Whether the quarantine holds any entry of this mapping, open or resolved.
    pub async fn has_quarantine(&self, mapping: &str) -> anyhow::Result<bool> {
        let q = format!("SELECT 1 FROM {} WHERE mapping = ? LIMIT 1", self.t("hlx_quarantine"));
        Ok(!fetch_pool(&self.pool, &q, &[mapping.into()]).await?.is_empty())
    }

    /// Marks open quarantine entries of these keys resolved (the row landed).
    pub async fn resolve_quarantine_tx(&self, tx: &mut Tx, mapping: &str, keys: &[&str]) -> anyhow::Result<u64> {
        let mut n = 0;
        for chunk in keys.chunks(5000) {
            let q = format!(
                "UPDATE {} SET status = 'resolved', last_seen = ? WHERE mapping = ? AND status = 'open' AND row_key IN ({})",
                self.t("hlx_quarantine"),
                vec!["?"; chunk.len()].join(", ")
            );
            let mut args: Vec<Arg> = vec![now().into(), mapping.into()];
            args.extend(chunk.iter().map(|k| Arg::from(*k)));
            n += exec(tx, &q, &args).await?;
        }
        Ok(n)
    }
}

/// What hlx recorded for a source key.
#[derive(Debug, Clone)]
pub struct Stored {
    pub checksum: Vec<u8>,
    pub deleted: bool,
    /// The source watermark the row had ([`wm_text`]), if recorded.
    pub wm: Option<String>,
}

/// One row of `hlx_row_state` to write.
#[derive(Debug, Clone)]
pub struct StateRow<'a> {
    pub key: &'a str,
    pub checksum: [u8; 32],
    pub deleted: bool,
    /// The source watermark ([`wm_text`]); `None` without a watermark column.
    pub wm: Option<String>,
}

/// The stored form of a source watermark value: typed, so that values of
/// different types never compare equal.
pub fn wm_text(v: &Value) -> String {
    // Every row of a batch records one: the usual kinds are written
    // directly, in the very text serde_json gives [`tag`].
    match v {
        Value::Timestamp(t) => {
            let mut s = String::with_capacity(36);
            s.push_str("{\"t\":\"");
            crate::value::push_naive(t, &mut s);
            s.push_str("\"}");
            s
        }
        Value::Int(i) => format!("{{\"i\":{i}}}"),
        other => tag(other).to_string(),
    }
}

/// A key the caller believed new already has state (see `save_checksums_tx`).
#[derive(Debug, thiserror::Error)]
#[error("a key of the batch already has state")]
pub struct KeyExists;

/// `COPY` of new checksums into `hlx.hlx_row_state` (PostgreSQL).
async fn copy_checksums(tx: &mut Tx, id: i64, rows: &[StateRow<'_>]) -> anyhow::Result<()> {
    use crate::db::pgbin;
    let Tx::Pg(t) = tx else {
        anyhow::bail!("internal: COPY on a non-PostgreSQL province")
    };
    // Binary format (see `pgbin`): the checksum goes as its 32 bytes, not as
    // hex for the server to decode.
    let mut buf = Vec::with_capacity(rows.len() * 110 + 32);
    buf.extend_from_slice(pgbin::HEADER);
    let id = id.to_be_bytes();
    for r in rows {
        buf.extend_from_slice(&5i16.to_be_bytes());
        pgbin::push_bytes(&id, &mut buf);
        pgbin::push_text(r.key, &mut buf);
        pgbin::push_bytes(&r.checksum, &mut buf);
        pgbin::push_bytes(&[u8::from(r.deleted)], &mut buf);
        match &r.wm {
            Some(w) => pgbin::push_text(w, &mut buf),
            None => pgbin::push_null(&mut buf),
        }
    }
    buf.extend_from_slice(pgbin::TRAILER);
    let mut copy = t
        .copy_in_raw(
            "COPY hlx.hlx_row_state (mapping_id, row_key, checksum, deleted, source_wm) FROM STDIN WITH (FORMAT binary)",
        )
        .await?;
    if let Err(e) = copy.send(buf).await {
        let _ = copy.abort("hlx: send failed").await;
        return Err(e.into());
    }
    copy.finish().await?;
    Ok(())
}

/// `host:pid:…` of a process on this host that no longer runs.
fn owner_is_dead(owner: &str) -> bool {
    let mut parts = owner.split(':');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    if host != hostname() {
        return false;
    }
    match pid.parse::<u32>() {
        Ok(pid) => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        Err(_) => false,
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// One line of `hlx status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MappingStatus {
    pub mapping: String,
    pub partner: String,
    pub watermark: Option<String>,
    /// Now minus the watermark's time, when the watermark is a time.
    pub lag_seconds: Option<i64>,
    pub last_status: Option<String>,
    pub last_started: Option<String>,
    pub last_finished: Option<String>,
    pub last_error: Option<String>,
    pub quarantined: i64,
    pub schedule: String,
}

/// Reads the status of one mapping.
pub async fn mapping_status(
    state: &State,
    m: &crate::mapping::Mapping,
    _province_zone: chrono::FixedOffset,
) -> anyhow::Result<MappingStatus> {
    let id = state.mapping_id(&m.name, &m.partner).await?;
    let pos = state.position(id).await?;
    let lag_seconds = pos
        .as_ref()
        .and_then(|p| watermark_instant(&p.wm, m.zone))
        .map(|t| (Utc::now() - t).num_seconds());
    let q = format!(
        "SELECT status, started_at, finished_at, error FROM {} WHERE mapping = ? AND direction <> ? ORDER BY id DESC LIMIT 1",
        state.t("hlx_run")
    );
    // The last run of the exchange itself: a retry of the quarantine says
    // nothing about whether the schedule's runs succeed.
    let last = fetch_pool(&state.pool, &q, &[m.name.as_str().into(), RETRY_RUN.into()]).await?;
    let last = last.first();
    let fmt = |t: Option<DateTime<Utc>>| t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string());
    Ok(MappingStatus {
        mapping: m.name.clone(),
        partner: m.partner.clone(),
        watermark: pos.map(|p| p.wm.to_string()),
        lag_seconds,
        last_status: last.map(|r| r.text(0)).transpose()?.flatten(),
        last_started: fmt(last.map(|r| r.utc(1)).transpose()?.flatten()),
        last_finished: fmt(last.map(|r| r.utc(2)).transpose()?.flatten()),
        last_error: last.map(|r| r.text(3)).transpose()?.flatten(),
        quarantined: state.open_quarantine_count(&m.name).await?,
        schedule: m.schedule.to_string(),
    })
}

/// The instant a watermark value stands for, when it is a time.
pub fn watermark_instant(v: &Value, zone: chrono::FixedOffset) -> Option<DateTime<Utc>> {
    use chrono::TimeZone;
    match v {
        Value::TimestampTz(t) => Some(t.with_timezone(&Utc)),
        Value::Timestamp(n) => zone.from_local_datetime(n).single().map(|t| t.with_timezone(&Utc)),
        Value::Text(s) => {
            let t = s.trim();
            ["%Y%m%d%H%M%S", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
                .and_then(|n| zone.from_local_datetime(&n).single())
                .map(|t| t.with_timezone(&Utc))
        }
        _ => None,
    }
}

/// The values of a two-way conflict: what both sides last agreed on, and
/// what each has now (shown masked where the field is personal).
pub struct ConflictValues {
    pub agreed: Option<String>,
    pub province: Option<String>,
    pub partner: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_with_full_precision() {
        let t = NaiveDate::from_ymd_opt(2024, 3, 1)
            .unwrap()
            .and_hms_micro_opt(8, 30, 0, 123_456)
            .unwrap();
        let p = Position {
            wm: Value::Timestamp(t),
            key: vec![Value::Text("HK1".into()), Value::Int(7)],
        };
        assert_eq!(Position::from_json(&p.to_json()).unwrap(), p);
    }

    #[test]
    fn recorded_watermarks_are_the_tagged_json() {
        let t = NaiveDate::from_ymd_opt(2024, 3, 1)
            .unwrap()
            .and_hms_micro_opt(8, 30, 0, 120_000)
            .unwrap();
        for v in [
            Value::Timestamp(t),
            Value::Timestamp(
                NaiveDate::from_ymd_opt(2024, 3, 1)
                    .unwrap()
                    .and_hms_opt(8, 30, 0)
                    .unwrap(),
            ),
            Value::Int(-42),
            Value::Int(i64::MAX),
            Value::Text("2024\"x".into()),
        ] {
            assert_eq!(wm_text(&v), tag(&v).to_string(), "{v:?}");
        }
    }

    #[test]
    fn lookback_on_text_watermarks_keeps_their_shape() {
        let d = chrono::Duration::minutes(10);
        assert_eq!(
            minus(&Value::Text("20240301083000".into()), d),
            Value::Text("20240301082000".into())
        );
        assert_eq!(
            minus(&Value::Text("2024-03-01 08:30:00.5".into()), d),
            Value::Text("2024-03-01 08:20:00.5".into())
        );
        assert_eq!(
            minus(
                &Value::Text("2024-03-01 08:30:00.000004".into()),
                chrono::Duration::zero()
            ),
            Value::Text("2024-03-01 08:30:00.000004".into())
        );
        assert_eq!(minus(&Value::Int(42), d), Value::Int(42));
    }
}
