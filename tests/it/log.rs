//! The exchange log: one entry per batch that moved data, in the batch's
//! transaction; the chain detects an altered, removed or re-ordered entry.

use crate::helpers::*;
use hotline_exchange::db::Engine;
use hotline_exchange::exchange_log::{self, ChainHash};

/// Three runs that move data: 2 batches, then 1, then 1 (with a rejection).
async fn logged(p: Engine, q: Engine, extra: &str) -> Setup {
    let s = setup(p, q, &format!("batch_size = 100\n{extra}")).await;
    let rows: Vec<Row> = (0..150)
        .map(|i| row(i, Some(&ts("2024-03-01 08:00:00", i as i64 * 1000))))
        .collect();
    insert(&s.partner, &rows).await;
    assert_eq!(s.run().await.counts.inserted, 150);
    s.partner
        .exec(&format!(
            "UPDATE stg_gd_info SET SQNR = 'changed', UPDATE_TIME = {} WHERE GDBH = 'HK00000007'",
            match p {
                Postgres => "CAST('2024-03-02 00:00:00' AS timestamp(6))",
                _ => "'2024-03-02 00:00:00'",
            }
        ))
        .await;
    assert_eq!(s.run().await.counts.updated, 1);
    // A row with an unknown channel code is rejected and logged as such.
    let mut bad = row(500, Some("2024-03-03 00:00:00"));
    bad.qdlx = "9".into();
    insert(&s.partner, &[bad]).await;
    assert_eq!(s.run().await.counts.rejected, 1);
    s
}

async fn entries(s: &Setup) -> Vec<exchange_log::Entry> {
    exchange_log::entries_between(&s.province.pool, "2000", "3000")
        .await
        .unwrap()
}

async fn verify(s: &Setup) -> exchange_log::Verified {
    exchange_log::verify(&s.province.pool).await.unwrap()
}

async fn every_batch_that_moves_data_is_logged_and_the_chain_verifies(p: Engine, q: Engine) {
    let s = logged(p, q, "").await;
    let e = entries(&s).await;
    let kinds: Vec<(i64, i64, i64, i64)> = e.iter().map(|e| (e.seq, e.inserted, e.updated, e.rejected)).collect();
    assert_eq!(kinds, vec![(1, 100, 0, 0), (2, 50, 0, 0), (3, 0, 1, 0), (4, 0, 0, 1)]);
    for x in &e {
        assert_eq!(x.mapping.as_deref(), Some("haikou.work_order"));
        assert_eq!(x.direction.as_deref(), Some("pull"));
        assert_eq!(x.algo, "sha256");
        assert_eq!(x.content_digest.as_ref().map(String::len), Some(64));
        assert_eq!(x.mapping_digest.as_ref().map(String::len), Some(64));
        assert!(x.run_id.is_some());
    }
    assert_eq!(e[1].wm_from.as_deref(), e[0].wm_to.as_deref(), "watermark ranges chain");
    // No keys or personal values in the log.
    let all = format!("{e:?}");
    assert!(!all.contains("HK0000"), "{all}");
    let v = verify(&s).await;
    assert!(v.broken.is_none(), "{v:?}");
    assert_eq!((v.entries, v.head_seq), (4, 4));
    // A poll that moves nothing adds nothing.
    assert_eq!(s.run().await.counts.inserted, 0);
    assert_eq!(entries(&s).await.len(), 4);
}

#[tokio::test]
async fn every_batch_that_moves_data_is_logged_and_the_chain_verifies_sqlite() {
    every_batch_that_moves_data_is_logged_and_the_chain_verifies(Sqlite, Sqlite).await
}
#[tokio::test]
async fn every_batch_that_moves_data_is_logged_and_the_chain_verifies_postgres() {
    every_batch_that_moves_data_is_logged_and_the_chain_verifies(MySql, Postgres).await
}
#[tokio::test]
async fn every_batch_that_moves_data_is_logged_and_the_chain_verifies_mariadb() {
    every_batch_that_moves_data_is_logged_and_the_chain_verifies(Postgres, MySql).await
}

async fn tampering_is_detected(q: Engine) {
    let s = logged(Sqlite, q, "").await;
    let t = s.province.hlx("hlx_exchange_log");
    let h = s.province.hlx("hlx_exchange_log_head");
    // Each tampering on a fresh copy of the chain: snapshot and restore.
    let snapshot = entries(&s).await;
    let head = s.province.scalar(&format!("SELECT hash FROM {h}")).await.unwrap();
    let restore = || async {
        s.province.exec(&format!("DELETE FROM {t}")).await;
        for e in &snapshot {
            s.province
                .exec_args(
                    &format!(
                        "INSERT INTO {t} (seq, logged_at, kind, partner, mapping, direction, run_id, wm_from, wm_to, rows_read, \
                         inserted, updated, unchanged, deleted, rejected, content_digest, mapping_digest, outcome, error, \
                         cut_seq, cut_hash, algo, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    ),
                    &[
                        e.seq.into(),
                        e.logged_at.as_str().into(),
                        e.kind.as_str().into(),
                        e.partner.clone().into(),
                        e.mapping.clone().into(),
                        e.direction.clone().into(),
                        hotline_exchange::db::sql::Arg::I64(e.run_id),
                        e.wm_from.clone().into(),
                        e.wm_to.clone().into(),
                        e.rows_read.into(),
                        e.inserted.into(),
                        e.updated.into(),
                        e.unchanged.into(),
                        e.deleted.into(),
                        e.rejected.into(),
                        e.content_digest.clone().into(),
                        e.mapping_digest.clone().into(),
                        e.outcome.as_str().into(),
                        e.error.clone().into(),
                        hotline_exchange::db::sql::Arg::I64(e.cut_seq),
                        e.cut_hash.clone().into(),
                        e.algo.as_str().into(),
                        e.prev_hash.as_str().into(),
                        e.hash.as_str().into(),
                    ],
                )
                .await;
        }
        s.province
            .exec(&format!("UPDATE {h} SET seq = 4, hash = '{head}'"))
            .await;
    };
    let cases: Vec<(&str, String, i64, &str)> = vec![
        ("one field changed", format!("UPDATE {t} SET inserted = 99 WHERE seq = 2"), 2, "altered"),
        ("one entry deleted", format!("DELETE FROM {t} WHERE seq = 2"), 3, "entry 2 is missing"),
        (
            "two entries swapped",
            format!("UPDATE {t} SET seq = 100 WHERE seq = 2; UPDATE {t} SET seq = 2 WHERE seq = 3; UPDATE {t} SET seq = 3 WHERE seq = 100"),
            2,
            "altered",
        ),
        ("the newest entry deleted", format!("DELETE FROM {t} WHERE seq = 4"), 4, "newest entries"),
        ("the oldest entry deleted", format!("DELETE FROM {t} WHERE seq = 1"), 2, "older entries were removed"),
        (
            "an entry rewritten with a fresh hash",
            format!("UPDATE {t} SET hash = 'f{}' WHERE seq = 3", "0".repeat(63)),
            3,
            "altered",
        ),
    ];
    for (what, sql, seq, says) in cases {
        for stmt in sql.split("; ") {
            s.province.exec(stmt).await;
        }
        let v = verify(&s).await;
        let b = v.broken.unwrap_or_else(|| panic!("{what}: not detected"));
        assert_eq!(b.seq, seq, "{what}: {b:?}");
        assert!(b.problem.contains(says), "{what}: {b:?}");
        restore().await;
        assert!(verify(&s).await.broken.is_none(), "restored after {what}");
    }
}

#[tokio::test]
async fn tampering_with_one_field_one_entry_or_the_order_is_detected_sqlite() {
    tampering_is_detected(Sqlite).await
}
#[tokio::test]
async fn tampering_with_one_field_one_entry_or_the_order_is_detected_postgres() {
    tampering_is_detected(Postgres).await
}

#[tokio::test]
async fn pruning_leaves_a_checkpoint_and_the_rest_still_verifies() {
    let s = logged(Sqlite, Postgres, "").await;
    // Everything before "now + 1 day": all but the newest entry go.
    let cutoff = chrono::Utc::now() + chrono::Duration::days(1);
    let n = exchange_log::prune(&s.province.pool, ChainHash::Sha256, cutoff)
        .await
        .unwrap();
    assert_eq!(n, 3);
    let e = entries(&s).await;
    assert_eq!(e.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4, 5]);
    assert_eq!(e[1].kind, "checkpoint");
    assert_eq!(e[1].cut_seq, Some(3));
    let v = verify(&s).await;
    assert!(v.broken.is_none(), "{v:?}");
    // The checkpoint is itself in the chain: editing its cut is caught.
    let t = s.province.hlx("hlx_exchange_log");
    s.province
        .exec(&format!("UPDATE {t} SET cut_seq = 2 WHERE seq = 5"))
        .await;
    assert!(verify(&s).await.broken.is_some());
}

#[tokio::test]
async fn the_chain_can_use_sm3() {
    let s = logged(Sqlite, Sqlite, "").await;
    std::fs::write(
        s.scratch.path(),
        std::fs::read_to_string(s.scratch.path()).unwrap() + "\n[log]\nchain_hash = \"sm3\"\n",
    )
    .unwrap();
    s.partner
        .exec("UPDATE stg_gd_info SET SQNR = 'sm3', UPDATE_TIME = '2024-03-04 00:00:00' WHERE GDBH = 'HK00000001'")
        .await;
    assert_eq!(s.run().await.counts.updated, 1);
    let e = entries(&s).await;
    assert_eq!(e.last().unwrap().algo, "sm3");
    assert_eq!(e[0].algo, "sha256");
    assert!(verify(&s).await.broken.is_none(), "a chain may switch algorithms");
}

#[test]
fn a_retention_under_180_days_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("mappings")).unwrap();
    let cfg = dir.path().join("exchange.toml");
    std::fs::write(
        &cfg,
        "[province]\nurl = \"sqlite://p.db\"\n\n[log]\nretention_days = 90\n",
    )
    .unwrap();
    let out = crate::files::hlx(&["-c", cfg.to_str().unwrap(), "check", "--offline"]);
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exchange.toml:5:18") && err.contains("retention_days 90"),
        "{err}"
    );
}

#[tokio::test]
async fn a_run_that_fails_before_moving_data_is_logged_with_its_reason() {
    let s = setup(Postgres, Sqlite, "").await;
    s.partner.exec("DROP TABLE stg_gd_info").await;
    let o = s.run().await;
    assert_eq!(o.status, hotline_exchange::exchange::Status::Failed);
    let e = entries(&s).await;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].kind.as_str(), e[0].outcome.as_str()), ("run", "failed"));
    assert_eq!(e[0].partner.as_deref(), Some("haikou"));
    assert!(e[0].error.as_deref().unwrap_or("").contains("stg_gd_info"), "{e:?}");
    assert!(verify(&s).await.broken.is_none());
}
