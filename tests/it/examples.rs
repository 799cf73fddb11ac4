//! The shipped example partners end to end, each on the engine such a
//! partner runs (Haikou and 12315 on MariaDB, Sanya on PostgreSQL), with the
//! shipped mappings and code sets over rows full of the ugly cases of
//! DOMAIN.md (`hotline_exchange::samples`), into a provincial PostgreSQL
//! or MariaDB.

use crate::helpers::*;
use hotline_exchange::db::Engine;
use hotline_exchange::exchange::{Outcome, Status};
use hotline_exchange::samples::{self, Shape};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch config for one example partner with the shipped files and keys.
async fn example(shape: Shape, partner: Engine, province: Engine, rows: usize) -> (TestDb, TestDb, Scratch) {
    let p = fresh(partner, shape.partner()).await;
    let q = fresh(province, "province").await;
    samples::create(&p.pool, shape).await.unwrap();
    samples::fill(&p.pool, shape, 0, rows).await.unwrap();
    let s = scratch(&q.url, &[(shape.partner(), &p.url)], &[], "batch_size = 64");
    let d = s.dir.path();
    std::fs::remove_file(d.join("mappings/codesets/haikou.toml")).unwrap();
    for entry in std::fs::read_dir(root().join("mappings/examples")).unwrap() {
        let f = entry.unwrap().path();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        // The pull examples (a push needs a provincial view: tests/it/push.rs).
        let pull = f.is_file() && !std::fs::read_to_string(&f).unwrap().contains("direction = \"push\"");
        if name.starts_with(shape.partner()) && name.ends_with(".toml") && pull {
            std::fs::copy(&f, d.join("mappings").join(&name)).unwrap();
        }
    }
    for set in [
        root().join(format!("mappings/examples/codesets/{}.toml", shape.partner())),
        root().join("mappings/codesets/province.toml"),
        root().join("mappings/codesets/division_hainan.toml"),
    ] {
        std::fs::copy(&set, d.join("mappings/codesets").join(set.file_name().unwrap())).unwrap();
    }
    std::fs::create_dir(d.join("keys")).unwrap();
    std::fs::write(d.join("keys/k1"), "00112233445566778899aabbccddeeff\n").unwrap();
    std::fs::write(d.join("keys/h1"), "5a".repeat(32)).unwrap();
    let cfg = s.path();
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).unwrap()
            + "\n[protection]\nkeys = { k1 = \"keys/k1\", h1 = \"keys/h1\" }\nencrypt_key = \"k1\"\nhash_key = \"h1\"\n",
    )
    .unwrap();
    (p, q, s)
}

/// Exit code and stdout (stderr only when the command failed: it carries
/// warnings, e.g. about a password in a URL).
fn cli(cfg: &Path, args: &[&str]) -> (i32, String) {
    let (code, out, err) = crate::files::hlx_c(cfg, args);
    (code, if code == 0 { out } else { out + &err })
}

/// Runs every mapping; checks each read row was accounted for.
async fn run(s: &Scratch) -> Vec<Outcome> {
    let (code, out) = cli(&s.path(), &["check", "--offline"]);
    assert_eq!(code, 0, "the example's own [[test]] cases pass: {out}");
    let mut o = run_once(&load(&s.path())).await;
    o.sort_by(|a, b| a.mapping.cmp(&b.mapping));
    for x in &o {
        assert_eq!(x.status, Status::Ok, "{}: {:?}", x.mapping, x.error);
        let c = &x.counts;
        assert_eq!(
            c.read,
            c.inserted + c.updated + c.unchanged + c.deleted + c.rejected,
            "{}: every row read is accounted for: {c:?}",
            x.mapping
        );
    }
    o
}

/// The second run moves nothing: every row read is unchanged.
async fn run_again_moves_nothing(s: &Scratch) {
    for x in run(s).await {
        let c = &x.counts;
        assert_eq!((c.inserted, c.updated, c.deleted), (0, 0, 0), "{}: {c:?}", x.mapping);
    }
}

/// The quarantine's (key, rule) pairs of a mapping.
async fn rejected(q: &TestDb, mapping: &str) -> Vec<(String, String)> {
    q.rows(
        &format!("{} WHERE mapping = '{mapping}'", q.hlx("hlx_quarantine")),
        &["row_key", "rule"],
        "row_key",
    )
    .await
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect()
}

async fn one(q: &TestDb, table: &str, key: &str, value: &str, cols: &[&str]) -> Vec<String> {
    let rows = q.rows(&format!("{table} WHERE {key} = '{value}'"), cols, key).await;
    assert_eq!(rows.len(), 1, "{table} {key} = {value}: {rows:?}");
    rows.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haikou_on_mariadb_string_times_own_codes_district_names_and_an_operation_flag() {
    let (_p, q, s) = example(Shape::Haikou, MySql, Postgres, 400).await;
    let o = run(&s).await;
    assert!(o[0].counts.inserted > 350, "{:?}", o[0].counts);
    // All-zero (i = 13) and empty (i = 29) string times are NULL; a
    // 12-character time (i = 41) is read to the minute.
    let r = one(&q, "work_order", "order_no", "HK2024000013", &["call_time"]).await;
    assert_eq!(r[0], "NULL");
    assert_eq!(
        one(&q, "work_order", "order_no", "HK2024000029", &["call_time"]).await[0],
        "NULL"
    );
    let r = one(&q, "work_order", "order_no", "HK2024000041", &["call_time"]).await;
    assert_eq!(r[0], "2024-03-02 01:30:00+00", "09:30 in Haikou is 01:30 UTC");
    // `+86 138-…` masked; a value masked upstream kept; channel `4  ` trimmed.
    let r = one(
        &q,
        "work_order",
        "order_no",
        "HK2024000000",
        &["caller_phone_masked", "channel"],
    )
    .await;
    assert_eq!(r, ["138****1000", "01"]);
    assert_eq!(
        one(&q, "work_order", "order_no", "HK2024000002", &["caller_phone_masked"]).await[0],
        "137****5678"
    );
    assert_eq!(
        one(&q, "work_order", "order_no", "HK2024000033", &["channel"]).await[0],
        "04"
    );
    // District names became GB/T 2260 codes; emoji survive.
    assert_eq!(
        q.count("work_order WHERE division_code NOT IN ('460105', '460106', '460107', '460108')")
            .await,
        0
    );
    assert!(q.count("work_order WHERE content LIKE '%😡%'").await > 0);
    // A NULL watermark (i = 7) is read, not skipped.
    assert_eq!(q.count("work_order WHERE order_no = 'HK2024000007'").await, 1);
    // OP_FLAG = D (i = 5, 72, …) is not in the province.
    assert_eq!(
        q.count("work_order WHERE order_no IN ('HK2024000005', 'HK2024000072')")
            .await,
        0
    );
    // The bad rows are quarantined with their rule, the rest landed.
    let bad = rejected(&q, "haikou.work_order").await;
    for (key, rule) in [
        ("HK2024000057", "codeset"),
        ("HK2024000088", "appeal_code"),
        ("HK2024000133", "required"),
    ] {
        assert!(bad.contains(&(key.into(), rule.into())), "{key} {rule}: {bad:?}");
    }
    run_again_moves_nothing(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dept12315_on_mariadb_camel_case_region_codes_and_categories_that_fall_back() {
    let (_p, q, s) = example(Shape::Dept12315, MySql, MySql, 150).await;
    let o = run(&s).await;
    assert!(o[0].counts.fallbacks > 0, "{:?}", o[0].counts);
    // A 12-digit region code gives its county; a 9-digit one too.
    let r = one(
        &q,
        "work_order",
        "order_no",
        "SJ2024000000",
        &["division_code", "status"],
    )
    .await;
    assert_eq!(r[0], "460105");
    assert_eq!(r[1].len(), 2, "word status with a trailing space translated: {r:?}");
    assert_eq!(
        one(&q, "work_order", "order_no", "SJ2024000004", &["division_code"]).await[0],
        "460105"
    );
    // "食品-乳制品" (i = 6) is new: the 'other' under 食品安全.
    assert_eq!(
        one(&q, "work_order", "order_no", "SJ2024000006", &["category_code"]).await[0],
        "0202019900"
    );
    let bad = rejected(&q, "dept12315.work_order").await;
    assert!(bad.contains(&("SC20240009".into(), "division".into())), "{bad:?}");
    assert!(bad.contains(&("SC20240011".into(), "codeset".into())), "{bad:?}");
    // isDeleted = 1 (i = 3) never lands.
    assert_eq!(q.count("work_order WHERE order_no = 'SJ2024000003'").await, 0);
    run_again_moves_nothing(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sanya_on_postgres_orders_and_flow_events_with_protected_phones() {
    let (p, q, s) = example(Shape::Sanya, Postgres, Postgres, 200).await;
    let o = run(&s).await;
    let by = |n: &str| {
        o.iter()
            .find(|x| x.mapping == n)
            .unwrap_or_else(|| panic!("{n}: {o:?}"))
    };
    assert_eq!(o.len(), 4, "orders, flow events, the knowledge base both ways");
    let (flow, orders) = (by("sanya.work_order_flow"), by("sanya.work_order"));
    assert!(flow.counts.inserted > 180 && orders.counts.fallbacks > 0, "{o:?}");
    // i = 1: a landline, protected and hashed; decrypts to the normalised number.
    let r = one(
        &q,
        "work_order",
        "order_no",
        "SY2024000001",
        &[
            "caller_phone",
            "caller_phone_hash",
            "caller_phone_masked",
            "division_code",
            "call_time",
        ],
    )
    .await;
    assert!(r[0].starts_with("hlx1:sm4-gcm:k1:"), "{r:?}");
    let (code, plain) = cli(&s.path(), &["decrypt", &r[0]]);
    assert_eq!((code, plain.trim()), (0, "089865000001"));
    assert_eq!(r[1].len(), 64);
    assert_eq!(r[3], "460203", "12-digit region code shortened");
    assert_eq!(r[4], "2024-03-01 00:01:03+00", "08:01:03+08:00 kept its instant");
    // A phone masked upstream (i = 2) has no hash: it would match every other.
    assert_eq!(
        one(&q, "work_order", "order_no", "SY2024000002", &["caller_phone_hash"]).await[0],
        "NULL"
    );
    // "抖音" (i = 20) is channel 99; CS0107 (i = 8) falls back to CS01's 'other'.
    assert_eq!(
        one(&q, "work_order", "order_no", "SY2024000020", &["channel"]).await[0],
        "99"
    );
    assert_eq!(
        one(&q, "work_order", "order_no", "SY2024000008", &["category_code"]).await[0],
        "0501990000"
    );
    // Names masked; is_deleted = 1 (i = 21) absent.
    assert_eq!(q.count("work_order WHERE appellant_name NOT LIKE '%*%'").await, 0);
    assert_eq!(q.count("work_order WHERE order_no = 'SY2024000021'").await, 0);
    let bad = rejected(&q, "sanya.work_order").await;
    for (key, rule) in [("16", "codeset"), ("13", "division"), ("27", "required")] {
        assert!(bad.contains(&(key.into(), rule.into())), "{key} {rule}: {bad:?}");
    }
    // Flow events: C5 codes; an unknown action quarantined.
    let r = one(
        &q,
        "work_order_flow",
        "flow_id",
        "SYF2024000000",
        &["order_no", "action", "source_system"],
    )
    .await;
    assert_eq!((r[0].as_str(), r[1].len(), r[2].as_str()), ("SY2024000000", 2, "sanya"));
    let bad = rejected(&q, "sanya.work_order_flow").await;
    assert!(bad.contains(&("SYF2024000033".into(), "codeset".into())), "{bad:?}");

    // The knowledge base, both ways: the city's 20 articles arrived with
    // provincial status codes; nothing went back (no echo).
    assert_eq!(by("sanya.knowledge.pull").counts.inserted, 20);
    assert_eq!(
        by("sanya.knowledge.push").counts.inserted + by("sanya.knowledge.push").counts.updated,
        0
    );
    assert_eq!(
        q.count("knowledge_article WHERE status NOT IN ('draft', 'published', 'withdrawn')")
            .await,
        0
    );
    run_again_moves_nothing(&s).await;
    // The province corrects an article: it reaches the city, and stays put.
    q.exec("UPDATE knowledge_article SET content = '省级更正：请拨打12345。', updated_at = now() WHERE article_id = 'SYKB00003'")
        .await;
    let o = run(&s).await;
    let pushed = o.iter().find(|x| x.mapping == "sanya.knowledge.push").unwrap();
    assert_eq!(
        pushed.counts.updated,
        1,
        "{pushed:?} {:?}",
        q.rows(&q.hlx("hlx_quarantine"), &["mapping", "reason"], "id").await
    );
    assert_eq!(
        p.rows("kb_article WHERE article_no = 'SYKB00003'", &["content"], "article_no")
            .await,
        [["省级更正：请拨打12345。"]]
    );
    run_again_moves_nothing(&s).await;
}
