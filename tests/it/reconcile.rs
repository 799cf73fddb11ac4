//! `hlx reconcile`: drift a delta exchange cannot see (a hard delete at
//! the source, a target row changed, removed or added by hand) is found in
//! chunks, reported, and repaired with --apply; other partners' rows in the
//! shared target are left alone.

use crate::files::hlx;
use crate::helpers::*;
use hotline_exchange::db::Engine;
use hotline_exchange::exchange::Status;

fn reconcile(s: &Setup, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["reconcile", "-m", "haikou.work_order"];
    args.extend_from_slice(extra);
    let (code, out, err) = crate::files::hlx_c(&s.scratch.path(), &args);
    (code, out + &err)
}

each_engine!(a_hard_delete_a_changed_a_removed_and_an_extra_row_are_found_and_repaired);
async fn a_hard_delete_a_changed_a_removed_and_an_extra_row_are_found_and_repaired(e: Engine) {
    // batch_size 7: both passes go through several chunks.
    let s = setup(e, e, "batch_size = 7").await;
    let rows: Vec<Row> = (0..30)
        .map(|i| row(i, Some(&ts("2024-03-01 08:00:00", i as i64))))
        .collect();
    insert(&s.partner, &rows).await;
    let o = s.run().await;
    assert_eq!((o.status, o.counts.inserted), (Status::Ok, 30), "{:?}", o.error);
    let (code, out) = reconcile(&s, &[]);
    assert_eq!(code, 0, "in step after a run: {out}");
    assert!(out.contains("30 equal") && out.contains("in step"), "{out}");

    // Drift: a hard delete at the source; by hand on the target, a changed
    // row, a removed row, an extra row of this partner and one of another.
    s.partner
        .exec("DELETE FROM stg_gd_info WHERE GDBH = 'HK00000005'")
        .await;
    s.province
        .exec("UPDATE work_order SET content = 'edited by hand' WHERE order_no = 'HK00000007'")
        .await;
    s.province
        .exec("DELETE FROM work_order WHERE order_no = 'HK00000009'")
        .await;
    s.province
        .exec("INSERT INTO work_order (order_no, source_system, content) VALUES ('HK00000999', 'haikou', 'stray')")
        .await;
    s.province
        .exec("INSERT INTO work_order (order_no, source_system, content) VALUES ('SY00000001', 'sanya', 'not ours')")
        .await;
    let before = s.province.count("work_order").await;

    let (code, out) = reconcile(&s, &["--dry-run"]);
    assert_eq!(code, 1, "drift found: {out}");
    assert!(
        out.contains("29 source row(s)")
            && out.contains("1 missing on the target")
            && out.contains("1 differ")
            && out.contains("2 extra on the target"),
        "{out}"
    );
    assert!(out.contains("missing  HK00000009"), "{out}");
    assert!(out.contains("differs  HK00000007: content"), "{out}");
    assert!(
        out.contains("extra    HK00000005") && out.contains("extra    HK00000999"),
        "{out}"
    );
    assert_eq!(
        s.province.count("work_order").await,
        before,
        "a dry run changes nothing"
    );

    let (code, out) = reconcile(&s, &["--apply"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("repaired"), "{out}");
    // The target equals the source again; the other partner's row is untouched.
    assert_eq!(s.target_keys().await.iter().filter(|k| k.starts_with("HK")).count(), 29);
    assert_eq!(
        s.province
            .count("work_order WHERE order_no IN ('HK00000005', 'HK00000999')")
            .await,
        0
    );
    assert_eq!(s.province.count("work_order WHERE order_no = 'SY00000001'").await, 1);
    assert_eq!(
        s.province
            .rows("work_order WHERE order_no = 'HK00000007'", &["content"], "order_no")
            .await,
        [[rows[7].sqnr.clone()]]
    );
    let (code, out) = reconcile(&s, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("29 equal") && out.contains("in step"), "{out}");
    // The repair recorded its checksums: the next run moves nothing, and the
    // exchange log still verifies with the repair in it.
    let o = s.run().await;
    assert_eq!(
        (o.counts.inserted, o.counts.updated, o.counts.deleted),
        (0, 0, 0),
        "{:?}",
        o.counts
    );
    let cfg = s.scratch.path();
    let v = hlx(&["-c", cfg.to_str().unwrap(), "log", "verify"]);
    assert_eq!(v.status.code(), Some(0), "{}", String::from_utf8_lossy(&v.stderr));
}
