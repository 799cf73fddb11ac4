//! The flag pattern (前置库 with a processing flag): hlx reads the rows
//! flagged new and marks them taken or failed (with the reason) only after
//! the province committed them.

use crate::files::hlx;
use crate::helpers::*;
use hotline_exchange::db::Engine;
use hotline_exchange::exchange::Status;
use hotline_exchange::samples::{self, Shape};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped Haikou mapping, reading by flag instead of by watermark.
fn flagged_mapping() -> String {
    let m = std::fs::read_to_string(root().join("mappings/examples/haikou_work_order.toml")).unwrap();
    assert!(m.contains("watermark = \"UPDATE_TIME\"\n"));
    m.replace(
        "watermark = \"UPDATE_TIME\"\n",
        "consume = { column = \"CLBZ\", new = \"0\", done = \"1\", failed = \"2\", message_column = \"CLJG\" }\n",
    )
}

/// The Haikou sample table with `rows` rows on `partner`, a province on
/// `province`, and the flagged mapping with the shipped code set.
async fn flagged(partner: Engine, province: Engine, rows: usize, defaults: &str) -> (TestDb, TestDb, Scratch) {
    let p = fresh(partner, "haikou").await;
    let q = fresh(province, "province").await;
    samples::create(&p.pool, Shape::Haikou).await.unwrap();
    samples::fill(&p.pool, Shape::Haikou, 0, rows).await.unwrap();
    let s = scratch(
        &q.url,
        &[("haikou", &p.url)],
        &[("haikou.toml", &flagged_mapping())],
        defaults,
    );
    std::fs::copy(
        root().join("mappings/examples/codesets/haikou.toml"),
        s.dir.path().join("mappings/codesets/haikou.toml"),
    )
    .unwrap();
    (p, q, s)
}

async fn flags(p: &TestDb) -> Vec<(String, String, String)> {
    p.rows("stg_gd_info", &["GDBH", "CLBZ", "CLJG"], "GDBH")
        .await
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect()
}

each_engine!(rows_are_marked_only_after_the_province_has_them_and_a_lost_mark_is_harmless);
async fn rows_are_marked_only_after_the_province_has_them_and_a_lost_mark_is_harmless(e: Engine) {
    let (p, q, s) = flagged(e, e, 150, "batch_size = 40").await;
    let cfg = s.path();
    let o = hlx(&["-c", cfg.to_str().unwrap(), "migrate"]);
    assert_eq!(o.status.code(), Some(0));
    let o = hlx(&["-c", cfg.to_str().unwrap(), "check"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));

    let out = run_once(&load(&cfg)).await.remove(0);
    assert_eq!(out.status, Status::Ok, "{:?}", out.error);
    assert_eq!(out.counts.read, 150, "{:?}", out.counts);
    let f = flags(&p).await;
    let taken = f.iter().filter(|r| r.1 == "1").count() as u64;
    let failed: Vec<_> = f.iter().filter(|r| r.1 == "2").collect();
    assert_eq!(
        f.iter().filter(|r| r.1 == "0").count(),
        0,
        "every row was taken or failed"
    );
    assert_eq!(failed.len() as u64, out.counts.rejected, "{failed:?}");
    assert_eq!(taken, 150 - out.counts.rejected);
    // The reason is written back for the partner's operators (HK…057: channel 42).
    let r57 = f.iter().find(|r| r.0 == "HK2024000057").unwrap();
    assert_eq!(r57.1, "2");
    assert!(r57.2.contains("channel") && r57.2.contains("`42`"), "{r57:?}");
    // Taken rows are in the province; the OP_FLAG = D row (HK…005) was taken too.
    assert_eq!(
        q.count("work_order").await as u64,
        taken - 3,
        "three of the taken rows are deletes"
    );
    assert_eq!(f.iter().find(|r| r.0 == "HK2024000005").unwrap().1, "1");

    // Nothing flagged new: the next run reads nothing.
    let again = run_once(&load(&cfg)).await.remove(0);
    assert_eq!(again.counts.read, 0, "{:?}", again.counts);

    // A crash after the province commit and before the marks: the rows are
    // still flagged new. They are read again, found unchanged, and marked.
    p.exec("UPDATE stg_gd_info SET CLBZ = '0' WHERE GDBH IN ('HK2024000010', 'HK2024000011', 'HK2024000012')")
        .await;
    let before = q.count("work_order").await;
    let again = run_once(&load(&cfg)).await.remove(0);
    assert_eq!(
        (
            again.counts.read,
            again.counts.unchanged,
            again.counts.inserted + again.counts.updated
        ),
        (3, 3, 0),
        "{:?}",
        again.counts
    );
    assert_eq!(q.count("work_order").await, before);
    assert_eq!(p.count("stg_gd_info WHERE CLBZ = '0'").await, 0);

    // The code set learns channel 42; the retry lands the row and marks it taken.
    let sets = s.dir.path().join("mappings/codesets/haikou.toml");
    let text = std::fs::read_to_string(&sets)
        .unwrap()
        .replace("[channel]        # C1\n", "[channel]        # C1\n\"42\" = \"99\"\n");
    std::fs::write(&sets, text).unwrap();
    let o = hlx(&[
        "-c",
        cfg.to_str().unwrap(),
        "rejects",
        "retry",
        "-m",
        "haikou.work_order",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(flags(&p).await.iter().find(|r| r.0 == "HK2024000057").unwrap().1, "1");
}

#[test]
fn consume_with_a_watermark_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("mappings/codesets")).unwrap();
    std::fs::copy(
        root().join("mappings/examples/codesets/haikou.toml"),
        dir.path().join("mappings/codesets/haikou.toml"),
    )
    .unwrap();
    let cfg = dir.path().join("exchange.toml");
    std::fs::write(
        &cfg,
        "[province]\nurl = \"sqlite://p.db\"\n\n[[partner]]\nname = \"haikou\"\nurl = \"sqlite://h.db\"\n",
    )
    .unwrap();
    let both = flagged_mapping().replace("key = [\"GDBH\"]\n", "key = [\"GDBH\"]\nwatermark = \"UPDATE_TIME\"\n");
    std::fs::write(dir.path().join("mappings/haikou.toml"), both).unwrap();
    let o = hlx(&["-c", cfg.to_str().unwrap(), "check", "--offline"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(78), "{err}");
    assert!(
        err.contains("haikou.toml:") && err.contains("consume selects the rows by their flag"),
        "{err}"
    );
}

/// A real crash after the province committed a batch and before its rows
/// were marked: the rerun reads them again (still new), finds them
/// unchanged, and marks them; the province holds each row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_the_marks_the_rerun_marks_without_writing_twice() {
    let (p, q, s) = flagged(MySql, Postgres, 100, "batch_size = 30").await;
    let cfg = s.path();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_hlx"))
        .args(["-c", cfg.to_str().unwrap(), "run"])
        .env("HLX_FAULT_BEFORE_MARKS", "2")
        .env("HLX_LOG", "error")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the process was killed");
    assert_eq!(
        p.count("stg_gd_info WHERE CLBZ <> '0'").await,
        30,
        "only the first batch was marked"
    );
    let landed = q.count("work_order").await;
    assert!(landed > 50, "two batches reached the province: {landed}");
    let out = run_once(&load(&cfg)).await.remove(0);
    assert_eq!(out.status, Status::Ok, "{:?}", out.error);
    assert!(
        out.counts.unchanged >= 30,
        "the second batch was read again, unchanged: {:?}",
        out.counts
    );
    assert_eq!(p.count("stg_gd_info WHERE CLBZ = '0'").await, 0);
    // The province holds exactly the rows marked taken (less the deletes).
    assert_eq!(
        q.count("work_order").await,
        p.count("stg_gd_info WHERE CLBZ = '1' AND OP_FLAG <> 'D'").await
    );
}

/// The partner updates a row (still flagged new) after hlx read it and
/// before hlx marks it: that row is not marked, and its new version is what
/// the next run reads. (The update is injected at that point by a debug-build
/// fault hook.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_updated_before_its_mark_is_read_again_not_lost() {
    let (p, q, s) = flagged(Postgres, MySql, 20, "").await;
    let cfg = s.path();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_hlx"))
        .args(["-c", cfg.to_str().unwrap(), "run"])
        .env(
            "HLX_FAULT_PARTNER_SQL_BEFORE_MARKS",
            "UPDATE stg_gd_info SET SQNR = '第二版' WHERE GDBH = 'HK2024000001'",
        )
        .env("HLX_LOG", "error")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pr = &p;
    let flag = |k: &'static str| async move {
        pr.rows(&format!("stg_gd_info WHERE GDBH = '{k}'"), &["CLBZ"], "GDBH")
            .await[0][0]
            .clone()
    };
    assert_eq!(flag("HK2024000001").await, "0", "the changed row was not marked");
    assert_eq!(flag("HK2024000002").await, "1");
    let out = run_once(&load(&cfg)).await.remove(0);
    assert_eq!((out.counts.read, out.counts.updated), (1, 1), "{:?}", out.counts);
    assert_eq!(
        q.rows("work_order WHERE order_no = 'HK2024000001'", &["content"], "order_no")
            .await,
        [["第二版"]]
    );
    assert_eq!(flag("HK2024000001").await, "1");
}
