//! The 12345 domain pack through the binary: reference data loaded from
//! CSV with the tree checked, and the code-set fallback to 'other' counted.

use crate::helpers::*;
use hotline_exchange::db::Engine;
use hotline_exchange::exchange::Status;
use std::path::Path;

fn example(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("mappings/examples")
        .join(file)
        .to_string_lossy()
        .into_owned()
}

fn cli(cfg: &Path, args: &[&str]) -> (i32, String, String) {
    crate::files::hlx_c(cfg, args)
}

each_engine!(categories_load_with_their_tree_checked_and_a_broken_file_loads_nothing);
async fn categories_load_with_their_tree_checked_and_a_broken_file_loads_nothing(q: Engine) {
    let db = fresh(q, "categories").await;
    let s = scratch(&db.url, &[], &[], "");
    let cfg = s.path();
    let (code, _, err) = cli(&cfg, &["migrate"]);
    assert_eq!(code, 0, "{err}");

    // A file whose parent is missing: every bad line named, nothing loaded.
    let bad = s.dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "code,name\n01,城乡建设\n0102,市政设施\n01020304,路灯维修\n0100020000,坏码\n",
    )
    .unwrap();
    let (code, _, err) = cli(&cfg, &["load", "categories", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("bad.csv:5: `0100020000`: level 2 is `00` but level 3 is `02`"),
        "{err}"
    );
    std::fs::write(&bad, "code,name\n01,城乡建设\n0102,市政设施\n01020304,路灯维修\n").unwrap();
    let (code, _, err) = cli(&cfg, &["load", "categories", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "bad.csv:4: the parent 0102030000 of 0102030400 (路灯维修) is neither in the file nor in appeal_category"
        ),
        "{err}"
    );
    assert_eq!(db.count("appeal_category").await, 0, "a broken file loads nothing");

    let sample = example("appeal_category_sample.csv");
    let (code, out, err) = cli(&cfg, &["load", "categories", "--dry-run", &sample]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("dry run"), "{out}");
    assert_eq!(db.count("appeal_category").await, 0);
    let (code, out, err) = cli(&cfg, &["--format", "json", "load", "categories", &sample]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let n = j["rows"].as_i64().unwrap();
    assert_eq!((j["inserted"].as_i64(), j["updated"].as_i64()), (Some(n), Some(0)));
    assert_eq!(db.count("appeal_category").await, n);
    // Derived columns: level, parent, 'other', leaf.
    let leaf_check = db
        .count(
            "appeal_category c WHERE is_leaf <> (CASE WHEN EXISTS \
             (SELECT 1 FROM appeal_category k WHERE k.parent_code = c.code) THEN FALSE ELSE TRUE END)",
        )
        .await;
    assert_eq!(leaf_check, 0, "is_leaf says whether a code has children");
    assert_eq!(
        db.count("appeal_category c WHERE level > 1 AND NOT EXISTS (SELECT 1 FROM appeal_category p WHERE p.code = c.parent_code)")
            .await,
        0,
        "every parent exists"
    );
    assert!(
        db.count("appeal_category WHERE is_other = TRUE AND code LIKE '%99%'")
            .await
            > 0
    );

    // Loading again changes nothing; a child of a stored leaf makes it a branch.
    let (code, out, _) = cli(&cfg, &["load", "categories", &sample]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("0 inserted, 0 updated, {n} unchanged")), "{out}");
    let leaf = db
        .rows("appeal_category WHERE is_leaf = TRUE AND level < 5", &["code"], "code")
        .await
        .remove(0)
        .remove(0);
    let child = hotline_exchange::mapping::appeal_code::normalize(&leaf)
        .unwrap()
        .other_child();
    let more = s.dir.path().join("more.csv");
    std::fs::write(&more, format!("code,name\n{},其他\n", child.code)).unwrap();
    let (code, out, err) = cli(&cfg, &["load", "categories", more.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        db.count(&format!("appeal_category WHERE code = '{leaf}' AND is_leaf = FALSE"))
            .await,
        1,
        "{leaf} gained a child"
    );

    // The hotline registry.
    let (code, out, err) = cli(&cfg, &["load", "hotlines", &example("hotlines_yancheng.csv")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("33 row(s)") && out.contains("33 inserted"), "{out}");
    assert_eq!(db.count("hotline WHERE service_number = '12315'").await, 1);
}

const FALLBACK: &str = r#"
name = "haikou.work_order"
partner = "haikou"

[source]
table = "stg_gd_info"
key = ["GDBH"]
watermark = "UPDATE_TIME"

[target]
table = "work_order"
key = ["order_no"]

[fields]
order_no      = "GDBH"
source_system = { value = "haikou" }
content       = { from = "SQNR", required = true }
category_code = { from = "WTFL", codeset = "haikou.category", fallback = "other" }

[[test]]
name = "an unknown sub-code goes to its parent's 'other'"
input  = { GDBH = "T1", SQNR = "x", WTFL = "030599" }
expect = { category_code = "0102039900" }
"#;

const CATEGORY_CODES: &str = r#"
[category]
"03"   = "0100000000"
"0305" = "0102030000"
"#;

each_engine!(an_unknown_partner_category_falls_back_to_its_ancestors_other_and_is_counted);
async fn an_unknown_partner_category_falls_back_to_its_ancestors_other_and_is_counted(q: Engine) {
    let s = setup(q, q, "").await;
    let dir = s.scratch.dir.path();
    std::fs::write(dir.join("mappings/haikou.toml"), FALLBACK).unwrap();
    std::fs::write(
        dir.join("mappings/codesets/haikou.toml"),
        format!("{CODESETS}{CATEGORY_CODES}"),
    )
    .unwrap();
    let (code, out, err) = cli(&s.scratch.path(), &["check", "--offline"]);
    assert_eq!(code, 0, "{out}{err}");
    let mut rows: Vec<Row> = (0..4)
        .map(|i| row(i, Some(&ts("2024-03-01 08:00:00", i as i64))))
        .collect();
    rows[0].wtfl = "0305".into(); // known
    rows[1].wtfl = "030507".into(); // unknown, parent known
    rows[2].wtfl = "0377".into(); // unknown, grandparent known
    rows[3].wtfl = "0412".into(); // no known ancestor: rejected
    insert(&s.partner, &rows).await;
    let o = s.run().await;
    assert_eq!(o.status, Status::Ok, "{:?}", o.error);
    assert_eq!(
        (o.counts.inserted, o.counts.rejected, o.counts.fallbacks),
        (3, 1, 2),
        "{:?}",
        o.counts
    );
    let got = s
        .province
        .rows("work_order", &["order_no", "category_code"], "order_no")
        .await;
    assert_eq!(
        got,
        [
            ["HK00000000", "0102030000"],
            ["HK00000001", "0102039900"],
            ["HK00000002", "0199000000"],
        ]
    );
    let (_, out, _) = cli(&s.scratch.path(), &["--format", "json", "report"]);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["partners"][0]["mappings"][0]["fallbacks"], 2, "{out}");

    // A code set whose values are not classification codes cannot fall back.
    std::fs::write(
        dir.join("mappings/codesets/haikou.toml"),
        format!("{CODESETS}[category]\n\"03\" = \"市政\"\n"),
    )
    .unwrap();
    let (code, _, err) = cli(&s.scratch.path(), &["check", "--offline"]);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("haikou.toml:18:") && err.contains("needs classification codes in code set `haikou.category`"),
        "{err}"
    );
}
