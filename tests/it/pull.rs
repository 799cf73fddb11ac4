//! Pull exchange behaviour, on every engine (partner and province on the same
//! engine) and across engines.

use crate::helpers::*;
use hotline_exchange::db::Engine;
use hotline_exchange::exchange::Status;

/// Generates one test per engine pairing for a scenario `fn(partner, province)`.
macro_rules! engines {
    ($name:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(Sqlite, Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(Postgres, Postgres).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mariadb() {
                super::$name(MySql, MySql).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mariadb_to_postgres() {
                super::$name(MySql, Postgres).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_to_mariadb() {
                super::$name(Postgres, MySql).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_to_postgres() {
                super::$name(Sqlite, Postgres).await
            }
        }
    };
}

const T0: &str = "2024-03-01 08:30:00";

engines!(second_run_moves_nothing_and_target_is_identical);
async fn second_run_moves_nothing_and_target_is_identical(p: Engine, q: Engine) {
    let s = setup(p, q, "batch_size = 70").await;
    let rows: Vec<Row> = (0..300).map(|i| row(i, Some(&ts(T0, i as i64 * 1_000_017)))).collect();
    insert(&s.partner, &rows).await;
    let first = s.run().await;
    assert_eq!(first.status, Status::Ok, "{:?}", first.error);
    assert_eq!(
        (first.counts.read, first.counts.inserted, first.counts.rejected),
        (300, 300, 0)
    );
    let before = s.target().await;
    assert_eq!(before.len(), 300);
    let second = s.run().await;
    assert_eq!(second.status, Status::Ok, "{:?}", second.error);
    assert_eq!(
        (second.counts.inserted, second.counts.updated, second.counts.deleted),
        (0, 0, 0)
    );
    assert_eq!(
        second.counts.unchanged, second.counts.read,
        "every re-read row is unchanged"
    );
    assert_eq!(s.target().await, before, "the target is identical after the second run");
}

engines!(ten_thousand_rows_sharing_one_watermark_arrive_once);
async fn ten_thousand_rows_sharing_one_watermark_arrive_once(p: Engine, q: Engine) {
    let s = setup(p, q, "batch_size = 1000").await;
    let rows: Vec<Row> = (0..10_000).map(|i| row(i, Some(T0))).collect();
    insert(&s.partner, &rows).await;
    let o = s.run().await;
    assert_eq!(o.status, Status::Ok, "{:?}", o.error);
    assert_eq!((o.counts.read, o.counts.inserted), (10_000, 10_000));
    assert!(
        o.counts.batches >= 10,
        "read in batches of 1000, got {} batches",
        o.counts.batches
    );
    assert_eq!(s.province.count("work_order").await, 10_000);
    assert_eq!(s.target_keys().await, s.source_keys("1=1").await);
    let again = s.run().await;
    assert_eq!((again.counts.inserted, again.counts.updated), (0, 0));
}

engines!(late_commit_inside_lookback_arrives_on_the_next_run);
async fn late_commit_inside_lookback_arrives_on_the_next_run(p: Engine, q: Engine) {
    let s = setup(p, q, "batch_size = 40\nlookback = \"10m\"").await;
    let rows: Vec<Row> = (0..100).map(|i| row(i, Some(&ts(T0, i as i64 * 1_000_000)))).collect();
    insert(&s.partner, &rows).await;
    // A partner transaction stamps a row with an early time and commits late.
    let mut tx = s.partner.pool.begin().await.unwrap();
    let late = row(5000, Some(&ts(T0, 5_000_000)));
    let sql = format!("INSERT INTO stg_gd_info (GDBH, LDSJ, LDHM, QDLX, SQNR, WTFL, UPDATE_TIME, OP_FLAG) VALUES (?, ?, ?, ?, ?, ?, {}, 'I')", s.partner.ts_param());
    hotline_exchange::db::sql::exec(
        &mut tx,
        &sql,
        &[
            late.gdbh.as_str().into(),
            late.ldsj.as_str().into(),
            late.ldhm.as_str().into(),
            "1".into(),
            late.sqnr.as_str().into(),
            "01".into(),
            hotline_exchange::db::sql::Arg::Text(late.ut.clone()),
        ],
    )
    .await
    .unwrap();
    if p != Sqlite {
        // SQLite allows one writer: the run reads while the writer holds the lock (WAL).
        let o = s.run().await;
        assert_eq!(o.counts.inserted, 100, "{:?}", o.error);
    }
    tx.commit().await.unwrap();
    if p == Sqlite {
        // SQLite serialises: commit first, but the run still has read past the row's time.
    }
    let o = s.run().await;
    assert_eq!(o.status, Status::Ok, "{:?}", o.error);
    let keys = s.target_keys().await;
    assert!(keys.contains(&late.gdbh), "the late row arrived");
    assert_eq!(keys.len(), 101);
}

engines!(rows_stamped_with_the_last_synced_watermark_arrive);
async fn rows_stamped_with_the_last_synced_watermark_arrive(p: Engine, q: Engine) {
    // Sling's S4 loss: new rows at exactly MAX(cursor) after a sync.
    let s = setup(p, q, "batch_size = 50").await;
    let rows: Vec<Row> = (0..120)
        .map(|i| row(i, Some(&ts(T0, (i as i64 / 10) * 1_000_000))))
        .collect();
    insert(&s.partner, &rows).await;
    s.run().await;
    let max = ts(T0, 11 * 1_000_000);
    let late: Vec<Row> = (1000..1020).map(|i| row(i, Some(&max))).collect();
    insert(&s.partner, &late).await;
    let o = s.run().await;
    assert_eq!(o.counts.inserted, 20, "{:?}", o.error);
    assert_eq!(s.target_keys().await, s.source_keys("1=1").await);
}

engines!(microsecond_watermarks_are_kept_exactly);
async fn microsecond_watermarks_are_kept_exactly(p: Engine, q: Engine) {
    let s = setup(p, q, "batch_size = 2\nlookback = \"0s\"").await;
    let rows: Vec<Row> = (0..5).map(|i| row(i, Some(&ts(T0, i as i64)))).collect();
    insert(&s.partner, &rows).await;
    let o = s.run().await;
    assert_eq!(o.counts.inserted, 5, "{:?}", o.error);
    let wm = s
        .province
        .scalar(&format!("SELECT wm_text FROM {}", s.province.hlx("hlx_watermark")))
        .await
        .unwrap();
    assert_eq!(
        wm, "2024-03-01 08:30:00.000004",
        "the stored watermark keeps microseconds"
    );
    // One microsecond later, and a tie at the last value with a later key.
    insert(&s.partner, &[row(100, Some(&ts(T0, 4))), row(101, Some(&ts(T0, 5)))]).await;
    let o = s.run().await;
    assert_eq!(
        (o.counts.inserted, o.counts.read),
        (2, 3),
        "only the new rows and the boundary row are read"
    );
    let o = s.run().await;
    assert_eq!(
        (o.counts.inserted, o.counts.updated),
        (0, 0),
        "nothing is reloaded: {:?}",
        o.counts
    );
}

engines!(naive_partner_times_are_read_in_the_partner_zone);
async fn naive_partner_times_are_read_in_the_partner_zone(p: Engine, q: Engine) {
    let s = setup(p, q, "").await;
    insert(&s.partner, &[row(1, Some("2024-03-01 08:30:00.250000"))]).await;
    let o = s.run().await;
    assert_eq!(o.status, Status::Ok, "{:?}", o.error);
    let got = s
        .province
        .rows("work_order", &["updated_at", "call_time"], "order_no")
        .await;
    let want = match q {
        // timestamptz shown in the session zone hlx pins (UTC): 08:30 +08:00 is 00:30 UTC.
        Postgres => vec!["2024-03-01 00:30:00.25+00".to_string(), "2024-03-02 00:30:00+00".into()],
        // DATETIME holds wall-clock time in the province's zone (+08:00).
        MySql => vec![
            "2024-03-01 08:30:00.250000".to_string(),
            "2024-03-02 08:30:00.000000".into(),
        ],
        Sqlite => vec![
            "2024-03-01T08:30:00.250+08:00".to_string(),
            "2024-03-02T08:30:00+08:00".into(),
        ],
    };
    assert_eq!(got[0], want);
}

engines!(rows_with_a_null_watermark_are_read);
async fn rows_with_a_null_watermark_are_read(p: Engine, q: Engine) {
    let s = setup(p, q, "batch_size = 3").await;
    let mut rows: Vec<Row> = (0..10).map(|i| row(i, Some(&ts(T0, i as i64 * 1000)))).collect();
    rows.extend((10..17).map(|i| row(i, None)));
    insert(&s.partner, &rows).await;
    let o = s.run().await;
    assert_eq!(o.status, Status::Ok, "{:?}", o.error);
    assert_eq!((o.counts.inserted, o.counts.null_watermark), (17, 7));
    assert_eq!(s.target_keys().await, s.source_keys("1=1").await);
    let o = s.run().await;
    assert_eq!(o.counts.inserted + o.counts.updated, 0);
}

engines!(old_source_times_arrive_because_the_watermark_is_the_sources);
async fn old_source_times_arrive_because_the_watermark_is_the_sources(p: Engine, q: Engine) {
    // A watermark taken from the scheduler's clock (now) would skip these.
    let s = setup(p, q, "lookback = \"0s\"").await;
    insert(
        &s.partner,
        &[row(1, Some("2020-01-01 00:00:00")), row(2, Some("2020-01-01 00:00:01"))],
    )
    .await;
    s.run().await;
    insert(&s.partner, &[row(3, Some("2020-01-02 00:00:00"))]).await;
    let o = s.run().await;
    assert_eq!(o.counts.inserted, 1, "{:?}", o.error);
}

engines!(bad_values_are_quarantined_and_good_rows_land);
async fn bad_values_are_quarantined_and_good_rows_land(p: Engine, q: Engine) {
    let s = setup(p, q, "").await;
    let mut rows: Vec<Row> = (0..10).map(|i| row(i, Some(&ts(T0, i as i64)))).collect();
    let mut bad = |i: usize, f: &dyn Fn(&mut Row)| {
        let mut r = row(i, Some(&ts(T0, i as i64)));
        f(&mut r);
        rows.push(r);
    };
    bad(100, &|r| r.ldsj = "2024-13-45".into());
    bad(101, &|r| r.qdlx = "9".into());
    bad(102, &|r| r.sqnr = "长".repeat(51));
    bad(103, &|r| r.sqnr = "  ".into());
    bad(104, &|r| r.wtfl = "0100020000".into());
    insert(&s.partner, &rows).await;
    let o = s.run().await;
    assert_eq!(o.status, Status::Ok, "{:?}", o.error);
    assert_eq!((o.counts.inserted, o.counts.rejected), (10, 5));
    let qt = s.province.hlx("hlx_quarantine");
    let got = s
        .province
        .rows(&qt, &["row_key", "rule", "column_name", "reason"], "row_key")
        .await;
    let rules: Vec<(&str, &str, &str)> = got
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str()))
        .collect();
    assert_eq!(
        rules,
        vec![
            ("HK00000100", "datetime", "LDSJ"),
            ("HK00000101", "codeset", "QDLX"),
            ("HK00000102", "max_chars", "SQNR"),
            ("HK00000103", "required", "SQNR"),
            ("HK00000104", "appeal_code", "WTFL"),
        ]
    );
    assert!(got[0][3].contains("`2024-13-45` does not match"), "{}", got[0][3]);
    assert!(
        got[1][3].contains("value `9` is not in code set `haikou.channel`"),
        "{}",
        got[1][3]
    );
    assert!(got[2][3].contains("51 characters, at most 50"), "{}", got[2][3]);
    let raw = s
        .province
        .scalar(&format!("SELECT raw FROM {qt} WHERE row_key = 'HK00000101'"))
        .await
        .unwrap();
    assert!(raw.contains("\"QDLX\":\"9\""), "raw row kept as JSON: {raw}");
    // A rerun does not count them again; fixing the row at the source lands it.
    let o = s.run().await;
    assert_eq!(o.counts.rejected, 0);
    s.partner
        .exec_args(
            &format!(
                "UPDATE stg_gd_info SET QDLX = '1', UPDATE_TIME = {} WHERE GDBH = 'HK00000101'",
                s.partner.ts_param()
            ),
            &[ts(T0, 999).into()],
        )
        .await;
    let o = s.run().await;
    assert_eq!(o.counts.inserted, 1, "{:?}", o.error);
    let status = s
        .province
        .scalar(&format!("SELECT status FROM {qt} WHERE row_key = 'HK00000101'"))
        .await
        .unwrap();
    assert_eq!(status, "resolved");
}

engines!(halt_on_reject_stops_the_mapping_and_rolls_back_its_batch);
async fn halt_on_reject_stops_the_mapping_and_rolls_back_its_batch(p: Engine, q: Engine) {
    let s = setup(p, q, "on_reject = \"halt\"").await;
    let mut rows: Vec<Row> = (0..10).map(|i| row(i, Some(&ts(T0, i as i64)))).collect();
    rows[4].qdlx = "9".into();
    insert(&s.partner, &rows).await;
    let o = s.run().await;
    assert_eq!(o.status, Status::Halted);
    let e = o.error.unwrap();
    assert!(e.contains("HK00000004") && e.contains("QDLX"), "{e}");
    assert_eq!(s.province.count("work_order").await, 0, "the batch was rolled back");
}

engines!(reject_limit_halts_a_plainly_broken_mapping);
async fn reject_limit_halts_a_plainly_broken_mapping(p: Engine, q: Engine) {
    let s = setup(p, q, "reject_limit = { ratio = 0.2 }").await;
    let rows: Vec<Row> = (0..300)
        .map(|i| {
            let mut r = row(i, Some(&ts(T0, i as i64)));
            r.qdlx = "X".into();
            r
        })
        .collect();
    insert(&s.partner, &rows).await;
    let o = s.run().await;
    assert_eq!(o.status, Status::Halted);
    assert!(o.error.as_deref().unwrap().contains("reject limit"), "{:?}", o.error);
    assert_eq!(
        s.province.count(&s.province.hlx("hlx_quarantine")).await,
        0,
        "the table was not quarantined wholesale"
    );
}

engines!(soft_deletes_and_changes_move_and_no_op_updates_do_not);
async fn soft_deletes_and_changes_move_and_no_op_updates_do_not(p: Engine, q: Engine) {
    let s = setup(p, q, "").await;
    let rows: Vec<Row> = (0..20).map(|i| row(i, Some(&ts(T0, i as i64)))).collect();
    insert(&s.partner, &rows).await;
    s.run().await;
    let tp = s.partner.ts_param();
    let later = ts(T0, 60_000_000);
    s.partner
        .exec_args(
            &format!("UPDATE stg_gd_info SET OP_FLAG = 'D', UPDATE_TIME = {tp} WHERE GDBH = 'HK00000003'"),
            &[later.clone().into()],
        )
        .await;
    s.partner.exec_args(&format!("UPDATE stg_gd_info SET SQNR = '井盖缺失', UPDATE_TIME = {tp} WHERE GDBH IN ('HK00000004', 'HK00000005')"), &[later.clone().into()]).await;
    // A no-op change: another spelling of the same phone masks to the same value,
    // so the mapped row (and its checksum) is unchanged and nothing is written.
    s.partner
        .exec("UPDATE stg_gd_info SET LDHM = '+86 13800060042' WHERE GDBH = 'HK00000006'")
        .await;
    let o = s.run().await;
    assert_eq!(o.status, Status::Ok, "{:?}", o.error);
    assert_eq!(
        (o.counts.deleted, o.counts.updated, o.counts.inserted),
        (1, 2, 0),
        "{:?}",
        o.counts
    );
    let keys = s.target_keys().await;
    assert!(!keys.contains(&"HK00000003".to_string()));
    let content = s
        .province
        .scalar("SELECT content FROM work_order WHERE order_no = 'HK00000004'")
        .await
        .unwrap();
    assert_eq!(content, "井盖缺失");
}

engines!(a_key_repeated_across_batches_keeps_the_later_row);
async fn a_key_repeated_across_batches_keeps_the_later_row(p: Engine, q: Engine) {
    // A staging table without a unique key: the same GDBH twice, in different
    // batches. On a first load this also exercises the PostgreSQL fast path's
    // fallback (the second occurrence finds state written by the first).
    let s = setup(p, q, "batch_size = 2").await;
    s.partner
        .exec("CREATE TABLE stg_dup AS SELECT * FROM stg_gd_info WHERE 1 = 0")
        .await;
    let mapping = MAPPING.replace("table = \"stg_gd_info\"", "table = \"stg_dup\"");
    std::fs::write(s.scratch.dir.path().join("mappings/haikou.toml"), mapping).unwrap();
    let mut rows: Vec<Row> = (0..5).map(|i| row(i, Some(&ts(T0, i as i64)))).collect();
    let mut again = row(1, Some(&ts(T0, 10)));
    again.sqnr = "第二次".into();
    rows.push(again);
    for chunk in rows.chunks(1) {
        let r = &chunk[0];
        s.partner
            .exec_args(
                &format!("INSERT INTO stg_dup (GDBH, LDSJ, LDHM, QDLX, SQNR, WTFL, UPDATE_TIME, OP_FLAG) VALUES (?, ?, ?, ?, ?, ?, {}, 'I')", s.partner.ts_param()),
                &[r.gdbh.as_str().into(), r.ldsj.as_str().into(), r.ldhm.as_str().into(), r.qdlx.as_str().into(), r.sqnr.as_str().into(), r.wtfl.as_str().into(), hotline_exchange::db::sql::Arg::Text(r.ut.clone())],
            )
            .await;
    }
    let o = s.run().await;
    assert_eq!(o.status, Status::Ok, "{:?}", o.error);
    assert_eq!(
        (o.counts.read, o.counts.inserted, o.counts.updated),
        (6, 5, 1),
        "{:?}",
        o.counts
    );
    let content = s
        .province
        .scalar("SELECT content FROM work_order WHERE order_no = 'HK00000001'")
        .await
        .unwrap();
    assert_eq!(content, "第二次");
    assert_eq!(s.province.count(&s.province.hlx("hlx_row_state")).await, 5);
}

/// A row the target refuses (too long for its column) is quarantined with the
/// database's reason; the rest of the batch lands. SQLite does not enforce
/// lengths, so this runs on the two server engines.
async fn rows_the_target_refuses_are_quarantined(p: Engine, q: Engine) {
    let s = setup(p, q, "").await;
    hotline_exchange::state::State::new(s.province.pool.clone())
        .migrate(false)
        .await
        .unwrap();
    s.province
        .exec(match q {
            Postgres => "ALTER TABLE work_order ALTER COLUMN caller_phone_masked TYPE varchar(8)",
            _ => "ALTER TABLE work_order MODIFY caller_phone_masked VARCHAR(8)",
        })
        .await;
    let mut rows: Vec<Row> = (0..6).map(|i| row(i, Some(&ts(T0, i as i64)))).collect();
    for r in rows.iter_mut() {
        r.ldhm = "12345".into();
    }
    rows[3].ldhm = "13812345678".into(); // masks to 11 characters
    insert(&s.partner, &rows).await;
    let o = s.run().await;
    assert_eq!(o.status, Status::Ok, "{:?}", o.error);
    assert_eq!((o.counts.inserted, o.counts.rejected), (5, 1), "{:?}", o.counts);
    let qt = s.province.hlx("hlx_quarantine");
    let got = s.province.rows(&qt, &["rule", "reason"], "row_key").await;
    assert_eq!(got[0][0], "target");
    assert!(got[0][1].contains("refused"), "{}", got[0][1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_the_target_refuses_are_quarantined_postgres() {
    rows_the_target_refuses_are_quarantined(Postgres, Postgres).await
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_the_target_refuses_are_quarantined_mariadb() {
    rows_the_target_refuses_are_quarantined(MySql, MySql).await
}

engines!(the_lookback_window_is_probed_and_only_unseen_versions_are_read);
async fn the_lookback_window_is_probed_and_only_unseen_versions_are_read(p: Engine, q: Engine) {
    let s = setup(p, q, "batch_size = 20\nlookback = \"10m\"").await;
    let rows: Vec<Row> = (0..50).map(|i| row(i, Some(&ts(T0, i as i64 * 1_000_000)))).collect();
    insert(&s.partner, &rows).await;
    assert_eq!(s.run().await.counts.inserted, 50);
    let idle = s.run().await;
    assert_eq!((idle.counts.inserted, idle.counts.updated), (0, 0));
    // Microsecond watermarks are probed: an idle poll reads no full row. A
    // text watermark (SQLite here) cannot be, and re-reads the window.
    let probed = p != Sqlite;
    assert_eq!(idle.counts.read, if probed { 0 } else { 50 }, "{:?}", idle.counts);
    // An update that commits late, stamped inside the window before the
    // position: it is a version not seen yet, so it is read and written.
    let tp = s.partner.ts_param();
    s.partner
        .exec_args(
            &format!("UPDATE stg_gd_info SET SQNR = '迟到的更新', UPDATE_TIME = {tp} WHERE GDBH = 'HK00000010'"),
            &[ts(T0, 10_500_000).into()],
        )
        .await;
    let o = s.run().await;
    assert_eq!(o.counts.updated, 1, "{:?}", o.counts);
    assert_eq!(o.counts.read, if probed { 1 } else { 50 }, "{:?}", o.counts);
    assert_eq!(
        s.province
            .scalar("SELECT content FROM work_order WHERE order_no = 'HK00000010'")
            .await
            .unwrap(),
        "迟到的更新"
    );
    // A no-op update (new watermark, same content) is read once, then its new
    // watermark is recorded and it is not read again.
    s.partner
        .exec_args(
            &format!("UPDATE stg_gd_info SET UPDATE_TIME = {tp} WHERE GDBH = 'HK00000020'"),
            &[ts(T0, 20_500_000).into()],
        )
        .await;
    let o = s.run().await;
    assert_eq!(
        (o.counts.updated, o.counts.inserted),
        (1, 0),
        "updated_at is mapped, so the row changed: {:?}",
        o.counts
    );
    let o = s.run().await;
    assert_eq!(o.counts.read, if probed { 0 } else { 50 }, "{:?}", o.counts);
    // Rows stamped with the position's own watermark, one whose key sorts
    // after the position's key (new) and one before it (an update): both are
    // versions not seen yet, so both are read, once.
    let at_pos = ts(T0, 49_000_000);
    insert(&s.partner, &[row(2000, Some(&at_pos))]).await;
    s.partner
        .exec_args(
            &format!("UPDATE stg_gd_info SET SQNR = '同一时刻的更新', UPDATE_TIME = {tp} WHERE GDBH = 'HK00000030'"),
            &[at_pos.clone().into()],
        )
        .await;
    let o = s.run().await;
    assert_eq!((o.counts.inserted, o.counts.updated), (1, 1), "{:?}", o.counts);
    if probed {
        assert_eq!(o.counts.read, 2, "{:?}", o.counts);
    }
    let o = s.run().await;
    assert_eq!(o.counts.read, if probed { 0 } else { 51 }, "{:?}", o.counts);
    assert_eq!(s.target_keys().await, s.source_keys("1=1").await);
}

engines!(a_sealed_window_that_grows_past_one_probe_page_is_read_in_pages);
async fn a_sealed_window_that_grows_past_one_probe_page_is_read_in_pages(p: Engine, q: Engine) {
    // A sealed window is first probed unsorted, for one pair more than it
    // was sealed with or a probe page (10,000 pairs), whichever is more.
    // Late commits that make it larger than that must still all be read,
    // once: the probe pages through the window in order.
    let s = setup(p, q, "batch_size = 500\nlookback = \"10m\"").await;
    let rows: Vec<Row> = (0..50).map(|i| row(i, Some(&ts(T0, i as i64 * 1_000_000)))).collect();
    insert(&s.partner, &rows).await;
    assert_eq!(s.run().await.counts.inserted, 50);
    assert_eq!(s.run().await.counts.read, if p == Sqlite { 50 } else { 0 });
    let wt = s.province.hlx("hlx_watermark");
    let sealed = s.province.scalar(&format!("SELECT window_seal FROM {wt}")).await;
    // A text watermark (SQLite here) is re-read, not probed, nor sealed.
    assert_eq!(sealed.is_some(), p != Sqlite, "sealed before the late rows come");
    // 10,500 rows stamped inside the window, before the position, many on
    // one watermark value: committed after the run that sealed it.
    let late: Vec<Row> = (1000..11_500)
        .map(|i| row(i, Some(&ts(T0, 10_000_000 + (i as i64 % 7) * 1_000_000))))
        .collect();
    insert(&s.partner, &late).await;
    let o = s.run().await;
    assert_eq!(o.status, Status::Ok, "{:?}", o.error);
    assert_eq!((o.counts.inserted, o.counts.updated), (10_500, 0), "{:?}", o.counts);
    assert_eq!(s.target_keys().await, s.source_keys("1=1").await);
    // 10,550 pairs, more than a probe page: sealed all the same, and found
    // as sealed by the idle poll after it.
    let big = s.province.scalar(&format!("SELECT window_seal FROM {wt}")).await;
    assert_eq!(big.is_some(), p != Sqlite, "a window past one probe page is sealed");
    if p != Sqlite {
        assert_ne!(big, sealed);
    }
    let idle = s.run().await;
    assert_eq!(
        (idle.counts.read, idle.counts.inserted),
        (if p == Sqlite { 10_550 } else { 0 }, 0)
    );
    assert_eq!(s.province.scalar(&format!("SELECT window_seal FROM {wt}")).await, big);
    // One more late commit into that window: the probe asks for one pair
    // more than were sealed (more than a page), finds it, pages through the
    // window in order, and the row lands.
    insert(&s.partner, &[row(20_000, Some(&ts(T0, 12_500_000)))]).await;
    let o = s.run().await;
    assert_eq!((o.counts.inserted, o.counts.updated), (1, 0), "{:?}", o.counts);
    assert_eq!(s.target_keys().await, s.source_keys("1=1").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_partner_is_probed_right_whatever_indexes_its_watermark_has() {
    // The unsorted probe leaves PostgreSQL its plan when an index holds
    // (watermark, key) (an index-only scan), and asks for a bitmap heap scan
    // otherwise. Either way the pairs, the seal and late commits are the
    // same as with the setup's (UPDATE_TIME, GDBH) index.
    for (what, index) in [
        (
            "the watermark alone",
            Some("CREATE INDEX stg_ut1 ON stg_gd_info (UPDATE_TIME)"),
        ),
        ("no index", None),
        (
            "the key included",
            Some("CREATE INDEX stg_ut2 ON stg_gd_info (UPDATE_TIME) INCLUDE (GDBH)"),
        ),
    ] {
        let s = setup(Postgres, Sqlite, "batch_size = 20\nlookback = \"10m\"").await;
        s.partner.exec("DROP INDEX stg_ut").await;
        if let Some(sql) = index {
            s.partner.exec(sql).await;
        }
        let wt = s.province.hlx("hlx_watermark");
        let seal_sql = format!("SELECT window_seal FROM {wt}");
        let rows: Vec<Row> = (0..50).map(|i| row(i, Some(&ts(T0, i as i64 * 1_000_000)))).collect();
        insert(&s.partner, &rows).await;
        assert_eq!(s.run().await.counts.inserted, 50, "{what}");
        let sealed = s.province.scalar(&seal_sql).await;
        assert!(sealed.is_some(), "{what}");
        let idle = s.run().await;
        assert_eq!(
            (idle.counts.read, idle.counts.inserted),
            (0, 0),
            "{what}: {:?}",
            idle.counts
        );
        assert_eq!(
            s.province.scalar(&seal_sql).await,
            sealed,
            "{what}: the idle poll found it sealed"
        );
        insert(&s.partner, &[row(3000, Some(&ts(T0, 5_500_000)))]).await;
        let o = s.run().await;
        assert_eq!((o.counts.read, o.counts.inserted), (1, 1), "{what}: {:?}", o.counts);
        assert_eq!(s.target_keys().await, s.source_keys("1=1").await, "{what}");
    }
}

engines!(a_sealed_lookback_window_still_lets_late_rows_and_rejections_through);
async fn a_sealed_lookback_window_still_lets_late_rows_and_rejections_through(p: Engine, q: Engine) {
    // An idle poll whose probe finds the window as it was sealed skips the
    // row-state lookups (src/window.rs). What it must never skip: a late
    // commit into the window, and a row that is still quarantined.
    let s = setup(p, q, "batch_size = 20\nlookback = \"10m\"").await;
    let sealable = p != Sqlite; // a text watermark is re-read, not probed
    let wt = s.province.hlx("hlx_watermark");
    let seal_sql = format!("SELECT window_seal FROM {wt}");
    let rows: Vec<Row> = (0..50).map(|i| row(i, Some(&ts(T0, i as i64 * 1_000_000)))).collect();
    insert(&s.partner, &rows).await;
    assert_eq!(s.run().await.counts.inserted, 50);
    let first = s.province.scalar(&seal_sql).await;
    assert_eq!(first.is_some(), sealable, "the first load seals the window it ends at");
    let idle = s.run().await;
    assert_eq!(idle.counts.read, if sealable { 0 } else { 50 }, "{:?}", idle.counts);
    assert_eq!(s.province.scalar(&seal_sql).await, first, "an idle poll keeps the seal");

    // A row stamped inside the sealed window, before the position, that
    // commits late: the probe's pairs differ from the seal's, so it is seen.
    insert(&s.partner, &[row(3000, Some(&ts(T0, 5_500_000)))]).await;
    let o = s.run().await;
    assert_eq!((o.counts.inserted, o.counts.updated), (1, 0), "{:?}", o.counts);
    if sealable {
        assert_eq!(o.counts.read, 1, "{:?}", o.counts);
        let renewed = s.province.scalar(&seal_sql).await;
        assert!(
            renewed.is_some() && renewed != first,
            "sealed again, over the new pairs"
        );
    }

    // A row the mapping rejects, stamped inside the window: quarantined, and
    // read again on every poll (it is not a version the row state records),
    // however many idle polls pass.
    let mut bad = row(3001, Some(&ts(T0, 6_500_000)));
    bad.ldsj = "2024-13-45".into();
    insert(&s.partner, &[bad]).await;
    let o = s.run().await;
    assert_eq!(o.counts.rejected, 1, "{:?}", o.counts);
    for _ in 0..2 {
        let o = s.run().await;
        assert_eq!((o.counts.rejected, o.counts.inserted), (0, 0), "{:?}", o.counts);
        if sealable {
            assert_eq!((o.counts.read, o.counts.unchanged), (1, 1), "{:?}", o.counts);
        }
    }
    // Fixed at the partner: it lands.
    let tp = s.partner.ts_param();
    s.partner
        .exec_args(
            &format!("UPDATE stg_gd_info SET LDSJ = '20240301083000', UPDATE_TIME = {tp} WHERE GDBH = 'HK00003001'"),
            &[ts(T0, 7_500_000).into()],
        )
        .await;
    let o = s.run().await;
    assert_eq!(o.counts.inserted, 1, "{:?}", o.counts);
    let idle = s.run().await;
    assert_eq!(idle.counts.read, if sealable { 0 } else { 52 }, "{:?}", idle.counts);
    assert_eq!(s.target_keys().await, s.source_keys("1=1").await);
}
