//! Push (province → partner): dispatched work orders into 12315's inbound
//! table with the shipped example mapping: codes translated back, the
//! confidential rule, decrypt-for-this-partner, idempotent re-sends.

use crate::helpers::*;
use hotline_exchange::db::Engine;
use hotline_exchange::exchange::Status;
use hotline_exchange::protect::{Cipher, KeyBytes, Keyring};
use hotline_exchange::samples::{self, Shape};
use std::path::{Path, PathBuf};

const K1: &str = "00112233445566778899aabbccddeeff";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cli(cfg: &Path, args: &[&str]) -> (i32, String) {
    let (code, out, err) = crate::files::hlx_c(cfg, args);
    (code, out + &err)
}

fn ring() -> Keyring {
    let mut r = Keyring::default();
    r.insert("k1", KeyBytes::from_hex(K1).unwrap());
    r.encrypt_key = Some("k1".into());
    r
}

struct Push {
    partner: TestDb,
    province: TestDb,
    scratch: Scratch,
}

/// A migrated province with the dispatch view, 12315's tables, and the
/// shipped dispatch mapping.
async fn push_setup(p: Engine, q: Engine) -> Push {
    let partner = fresh(p, "dept12315").await;
    let province = fresh(q, "province").await;
    samples::create(&partner.pool, Shape::Dept12315).await.unwrap();
    let scratch = scratch(&province.url, &[("dept12315", &partner.url)], &[], "");
    let d = scratch.dir.path();
    std::fs::remove_file(d.join("mappings/codesets/haikou.toml")).unwrap();
    std::fs::copy(
        root().join("mappings/examples/dept12315_dispatch.toml"),
        d.join("mappings/dept12315_dispatch.toml"),
    )
    .unwrap();
    std::fs::copy(
        root().join("mappings/examples/codesets/dept12315.toml"),
        d.join("mappings/codesets/dept12315.toml"),
    )
    .unwrap();
    std::fs::write(d.join("k1"), K1).unwrap();
    let cfg = scratch.path();
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).unwrap() + "\n[protection]\nkeys = { k1 = \"k1\" }\nencrypt_key = \"k1\"\n",
    )
    .unwrap();
    let (code, out) = cli(&cfg, &["migrate"]);
    assert_eq!(code, 0, "{out}");
    province
        .exec("CREATE VIEW v_dispatch_12315 AS SELECT * FROM work_order WHERE handling_unit_code = 'SCJGJ'")
        .await;
    Push {
        partner,
        province,
        scratch,
    }
}

/// A provincial work order; the name and phone encrypted at rest.
async fn order(q: &TestDb, no: &str, unit: &str, appeal_type: &str, confidential: bool, updated: &str) {
    let r = ring();
    // Provincial times: timestamptz on PostgreSQL, Beijing wall-clock time elsewhere.
    let (ts, zone) = match q.engine {
        Postgres => ("CAST(? AS timestamptz)", "+08:00"),
        _ => ("?", ""),
    };
    q.exec_args(
        &format!(
            "INSERT INTO work_order (order_no, source_system, source_order_no, appeal_type, status, content, appellant_name, \
             caller_phone, is_confidential, division_code, handling_unit_code, deadline, updated_at) \
             VALUES (?, 'province', ?, ?, '21', ?, ?, ?, ?, '460106', ?, {ts}, {ts})"
        ),
        &[
            no.into(),
            no.into(),
            appeal_type.into(),
            format!("商家拒绝退款 {no} 😡").into(),
            r.encrypt(Cipher::Sm4Gcm, "张三丰").unwrap().into(),
            r.encrypt(Cipher::Sm4Gcm, "13800138000").unwrap().into(),
            hotline_exchange::db::sql::Arg::Bool(Some(confidential)),
            unit.into(),
            format!("2024-03-10 18:00:00{zone}").into(),
            format!("{updated}{zone}").into(),
        ],
    )
    .await;
}

async fn dispatched(p: &TestDb) -> Vec<Vec<String>> {
    p.rows(
        "t_dispatch",
        &[
            "hotlineOrderNo",
            "bizType",
            "status",
            "consumerName",
            "consumerTel",
            "regionCode",
            "receivedAt",
        ],
        "hotlineOrderNo",
    )
    .await
}

macro_rules! engines {
    ($name:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(Postgres, Postgres).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mariadb() {
                super::$name(MySql, MySql).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_to_mariadb() {
                super::$name(MySql, Postgres).await
            }
        }
    };
}

engines!(dispatched_orders_reach_the_partner_translated_confidential_ones_without_the_appellant);
async fn dispatched_orders_reach_the_partner_translated_confidential_ones_without_the_appellant(p: Engine, q: Engine) {
    let s = push_setup(p, q).await;
    let cfg = s.scratch.path();
    order(&s.province, "HK01", "SCJGJ", "02", false, "2024-03-01 09:00:00").await;
    order(&s.province, "HK02", "SCJGJ", "05", true, "2024-03-01 09:00:01").await;
    order(&s.province, "HK03", "SCJGJ", "99", false, "2024-03-01 09:00:02").await;
    order(&s.province, "HK04", "SCJGJ", "01", false, "2024-03-01 09:00:03").await;
    order(&s.province, "HK05", "ZJJ", "02", false, "2024-03-01 09:00:04").await;
    // Online check: the view and 12315's table exist, hlx may write there.
    let (code, out) = cli(&cfg, &["check"]);
    assert_eq!(code, 0, "{out}");

    let o = s.run_push().await;
    assert_eq!((o.counts.inserted, o.counts.rejected), (3, 1), "{:?}", o.counts);
    let rows = dispatched(&s.partner).await;
    assert_eq!(
        rows,
        [
            ["HK01", "TS", "NEW", "张**", "13800138000", "460106", "NULL"],
            ["HK02", "JB", "NEW", "NULL", "NULL", "460106", "NULL"],
            ["HK04", "ZX", "NEW", "张**", "13800138000", "460106", "NULL"],
        ],
        "codes back to 12315's words; the phone decrypted for this partner, the name masked; HK02 is confidential"
    );
    let (_, out) = cli(&cfg, &["rejects", "list"]);
    assert!(
        out.contains("HK03") && out.contains("bizType") && out.contains("dept12315.biz_type (reversed)"),
        "{out}"
    );

    // 12315 records when it took an order; nothing changed: nothing is sent.
    s.partner
        .exec("UPDATE t_dispatch SET receivedAt = '2024-03-01 10:00:00' WHERE hotlineOrderNo = 'HK01'")
        .await;
    let o = s.run_push().await;
    assert_eq!((o.counts.inserted, o.counts.updated), (0, 0), "{:?}", o.counts);

    // The province moves HK01 on: one update, 12315's own column kept.
    s.province
        .exec(&format!(
            "UPDATE work_order SET status = '22', updated_at = {} WHERE order_no = 'HK01'",
            if q == Postgres {
                "CAST('2024-03-02 09:00:00+08:00' AS timestamptz)"
            } else {
                "'2024-03-02 09:00:00'"
            }
        ))
        .await;
    let o = s.run_push().await;
    assert_eq!(o.counts.updated, 1, "{:?}", o.counts);
    let r = &dispatched(&s.partner).await[0];
    assert_eq!(
        (r[2].as_str(), r[6].starts_with("2024-03-01 10:00:00")),
        ("DOING", true),
        "{r:?}"
    );

    // A crash after 12315 committed and before the province recorded it
    // leaves the province's state as it was before the batch: forgetting
    // the state (watermark and checksums) is that situation. The re-send
    // lands on the same keys: no duplicates, same content.
    let before = dispatched(&s.partner).await;
    let (code, out) = cli(&cfg, &["reset", "-m", "dept12315.dispatch", "--rewrite", "--yes"]);
    assert_eq!(code, 0, "{out}");
    let o = s.run_push().await;
    assert_eq!(
        (o.counts.inserted, o.counts.updated),
        (3, 0),
        "every row re-sent (counted new: hlx had no state for them): {:?}",
        o.counts
    );
    assert_eq!(dispatched(&s.partner).await, before);
    assert_eq!(s.partner.count("t_dispatch").await, 3);
}

impl Push {
    async fn run_push(&self) -> hotline_exchange::exchange::Outcome {
        let mut o = run_once(&load(&self.scratch.path())).await;
        assert_eq!(o.len(), 1);
        let o = o.pop().unwrap();
        assert_eq!(o.status, Status::Ok, "{:?}", o.error);
        o
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_decrypt_an_encrypted_column_goes_only_masked_and_a_lossy_code_set_cannot_be_reversed() {
    let s = push_setup(MySql, Sqlite).await;
    let cfg = s.scratch.path();
    let m = s.scratch.dir.path().join("mappings/dept12315_dispatch.toml");
    let text = std::fs::read_to_string(&m).unwrap();
    // Without `decrypt = true` the phone cannot go in the clear: refused.
    std::fs::write(&m, text.replace("decrypt = true, ", "")).unwrap();
    order(&s.province, "HK01", "SCJGJ", "02", false, "2024-03-01 09:00:00").await;
    let o = s.run_push().await;
    assert_eq!(o.counts.rejected, 1, "{:?}", o.counts);
    let (_, out) = cli(&cfg, &["rejects", "list"]);
    assert!(
        out.contains("consumerTel") && out.contains("encrypted at rest"),
        "{out}"
    );
    // Masked, it goes.
    std::fs::write(
        &m,
        text.replace("decrypt = true, personal = \"phone\"", "mask = \"phone\""),
    )
    .unwrap();
    let (code, out) = cli(&cfg, &["rejects", "retry"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(dispatched(&s.partner).await[0][4], "138****8000");
    // A code set that maps two partner values to one provincial value
    // cannot be read backwards: a config error with its location.
    let sets = s.scratch.dir.path().join("mappings/codesets/dept12315.toml");
    std::fs::write(
        &sets,
        std::fs::read_to_string(&sets)
            .unwrap()
            .replace("\"JB\" = \"05\"", "\"JB\" = \"02\""),
    )
    .unwrap();
    let (code, out) = cli(&cfg, &["check", "--offline"]);
    assert_eq!(code, 78, "{out}");
    assert!(
        out.contains("dept12315_dispatch.toml:")
            && out.contains("cannot be reversed: it is not one-to-one (`02` ← `JB`, `TS`)"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_when_the_partner_login_may_not_write() {
    let s = push_setup(Postgres, Postgres).await;
    let role = format!("hlx_ro_{}", std::process::id());
    let db = s.partner.url.rsplit('/').next().unwrap().to_string();
    s.partner.exec(&format!("DROP ROLE IF EXISTS {role}")).await;
    s.partner.exec(&format!("CREATE ROLE {role} LOGIN PASSWORD 'ro'")).await;
    s.partner
        .exec(&format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
        .await;
    let host = s.partner.url.rsplit('@').next().unwrap();
    let ro = format!("postgres://{role}:ro@{host}");
    let cfg = s.scratch.path();
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).unwrap().replace(&s.partner.url, &ro),
    )
    .unwrap();
    let (code, out) = cli(&cfg, &["check"]);
    s.partner.exec(&format!("DROP OWNED BY {role}")).await;
    s.partner.exec(&format!("DROP ROLE {role}")).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("hlx needs the INSERT right on") && out.contains("t_dispatch"),
        "{out}"
    );
    assert!(!out.contains(":ro@"), "no password in the output: {out}");
    let _ = db;
}

/// A real crash in the window: the process dies right after 12315 committed
/// a batch and before the province recorded it. The rerun sends that batch
/// again: 12315 ends with exactly the province's rows, no duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_partner_commit_the_rerun_resends_without_duplicates() {
    for (p, q) in [(MySql, Postgres), (Postgres, MySql)] {
        let s = push_setup(p, q).await;
        let cfg = s.scratch.path();
        // batch_size 4: several batches; the process dies after the second.
        std::fs::write(
            &cfg,
            std::fs::read_to_string(&cfg)
                .unwrap()
                .replace("timezone = \"+08:00\"\n", "timezone = \"+08:00\"\nbatch_size = 4\n"),
        )
        .unwrap();
        for i in 0..13 {
            order(
                &s.province,
                &format!("HK{i:02}"),
                "SCJGJ",
                "02",
                false,
                &format!("2024-03-01 09:00:{i:02}"),
            )
            .await;
        }
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_hlx"))
            .args(["-c", cfg.to_str().unwrap(), "run"])
            .env("HLX_FAULT_AFTER_PARTNER_COMMIT", "2")
            .env("HLX_LOG", "error")
            .output()
            .unwrap();
        assert!(!o.status.success(), "the process was killed");
        assert_eq!(s.partner.count("t_dispatch").await, 8, "two batches reached 12315");
        // The province recorded only the first batch.
        let wm = s.province.hlx("hlx_row_state");
        assert_eq!(s.province.count(&wm).await, 4, "{p:?} -> {q:?}");
        let o = s.run_push().await;
        assert_eq!(o.counts.inserted, 9, "the lost batch and the rest: {:?}", o.counts);
        assert_eq!(s.partner.count("t_dispatch").await, 13);
        let keys = s
            .partner
            .rows("t_dispatch", &["hotlineOrderNo"], "hotlineOrderNo")
            .await;
        let want: Vec<Vec<String>> = (0..13).map(|i| vec![format!("HK{i:02}")]).collect();
        assert_eq!(keys, want);
        assert_eq!(
            s.run_push().await.counts.inserted + s.run_push().await.counts.updated,
            0
        );
    }
}
