//! The default provincial schema (migrations/province, DOMAIN.md): migrating a
//! fresh database creates all six tables on every engine, every column carries
//! a Chinese comment where the engine keeps one (PostgreSQL, MariaDB),
//! `hlx migrate --state-only` leaves the provincial tables out, and the shipped
//! code sets and example CSVs fit.

use crate::files::hlx;
use crate::helpers::*;
use hotline_exchange::db::sql::{fetch_pool, Arg};
use hotline_exchange::db::Engine;
use hotline_exchange::diag::Diagnostics;
use hotline_exchange::mapping::appeal_code;
use hotline_exchange::mapping::codeset::CodeSets;
use hotline_exchange::state::State;
use std::collections::BTreeSet;
use std::path::Path;

/// The provincial tables, sorted.
const PROVINCIAL: [&str; 6] = [
    "appeal_category",
    "callback_visit",
    "hotline",
    "knowledge_article",
    "work_order",
    "work_order_flow",
];

/// hlx's own state tables (schema `hlx` on PostgreSQL).
const STATE: [&str; 4] = ["hlx_mapping", "hlx_row_state", "hlx_run", "hlx_watermark"];

fn in_list(names: &[&str]) -> String {
    names.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ")
}

fn has_chinese(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// The first `n` columns of every row, as text (NULL as "").
async fn texts(db: &TestDb, sql: &str, n: usize) -> Vec<Vec<String>> {
    let rows = fetch_pool(&db.pool, sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:#}"));
    rows.iter()
        .map(|r| {
            (0..n)
                .map(|i| {
                    r.text(i)
                        .unwrap_or_else(|e| panic!("{sql}: column {i}: {e:#}"))
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect()
}

/// Every table of the database, by bare name, in any non-system schema.
async fn tables(db: &TestDb) -> BTreeSet<String> {
    let sql = match db.engine {
        Postgres => {
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'"
        }
        MySql => "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
        Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table'",
    };
    texts(db, sql, 1).await.into_iter().map(|r| r[0].clone()).collect()
}

/// (table, column, comment) for every column of the provincial tables, and
/// (table, "", comment) for the tables themselves.
async fn comments(db: &TestDb) -> Vec<(String, String, String)> {
    let list = in_list(&PROVINCIAL);
    let (tables_sql, columns_sql) = match db.engine {
        Postgres => (
            format!(
                "SELECT c.relname::text, COALESCE(obj_description(c.oid, 'pg_class'), '') \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname IN ({list})"
            ),
            format!(
                "SELECT c.relname::text, a.attname::text, COALESCE(col_description(c.oid, a.attnum), '') \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                 WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname IN ({list})"
            ),
        ),
        MySql => (
            format!(
                "SELECT TABLE_NAME, TABLE_COMMENT FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({list})"
            ),
            format!(
                "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_COMMENT FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({list})"
            ),
        ),
        Sqlite => unreachable!("SQLite keeps no comments in its catalog"),
    };
    let mut out: Vec<(String, String, String)> = texts(db, &tables_sql, 2)
        .await
        .into_iter()
        .map(|r| (r[0].clone(), String::new(), r[1].clone()))
        .collect();
    out.extend(
        texts(db, &columns_sql, 3)
            .await
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone(), r[2].clone())),
    );
    out
}

async fn migrated(engine: Engine, tag: &str) -> TestDb {
    let db = fresh(engine, tag).await;
    State::new(db.pool.clone()).migrate(false).await.unwrap();
    db
}

async fn migrating_creates_every_provincial_table_with_chinese_comments(engine: Engine) {
    let db = migrated(engine, "schema").await;
    let have = tables(&db).await;
    for t in PROVINCIAL.iter().chain(STATE.iter()) {
        assert!(
            have.contains(*t),
            "{engine:?}: table {t} missing after migrate; have {have:?}"
        );
    }
    if engine == Sqlite {
        return;
    }
    let all = comments(&db).await;
    let seen: BTreeSet<&str> = all.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(seen, PROVINCIAL.into_iter().collect(), "{engine:?}: tables found");
    let columns = all.iter().filter(|(_, c, _)| !c.is_empty()).count();
    assert!(columns >= 80, "{engine:?}: only {columns} columns found");
    let bad: Vec<String> = all
        .iter()
        .filter(|(_, _, comment)| !has_chinese(comment))
        .map(|(t, c, comment)| match c.is_empty() {
            true => format!("table {t}: `{comment}`"),
            false => format!("{t}.{c}: `{comment}`"),
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{engine:?}: without a Chinese comment:\n{}",
        bad.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_creates_every_provincial_table_with_chinese_comments_postgres() {
    migrating_creates_every_provincial_table_with_chinese_comments(Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_creates_every_provincial_table_with_chinese_comments_mariadb() {
    migrating_creates_every_provincial_table_with_chinese_comments(MySql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_creates_every_provincial_table_sqlite() {
    migrating_creates_every_provincial_table_with_chinese_comments(Sqlite).await
}

/// SQLite keeps the `CREATE TABLE` text with its comments: every column of the
/// tables of 1002 has a `-- ` comment in Chinese on its line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_columns_of_the_domain_tables_carry_chinese_comments() {
    let db = migrated(Sqlite, "schema").await;
    for t in PROVINCIAL.iter().filter(|t| **t != "work_order") {
        let sql = db
            .scalar(&format!(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = '{t}'"
            ))
            .await
            .unwrap();
        let columns = texts(&db, &format!("SELECT name FROM pragma_table_info('{t}')"), 1).await;
        assert!(!columns.is_empty(), "{t}: no columns");
        for c in columns.iter().map(|r| &r[0]) {
            let line = sql
                .lines()
                .map(str::trim_start)
                .find(|l| l.split_whitespace().next() == Some(c.as_str()))
                .unwrap_or_else(|| panic!("{t}.{c}: no line in\n{sql}"));
            let comment = line.split_once("--").map(|(_, c)| c).unwrap_or("");
            assert!(has_chinese(comment), "{t}.{c}: no Chinese comment on `{line}`");
        }
    }
}

async fn state_only_creates_the_hlx_tables_and_no_provincial_table(engine: Engine) {
    let db = fresh(engine, "stateonly").await;
    let s = scratch(&db.url, &[], &[], "");
    let cfg = s.path();
    let o = hlx(&["-c", cfg.to_str().unwrap(), "migrate", "--state-only"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let have = tables(&db).await;
    for t in STATE {
        assert!(
            have.contains(t),
            "{engine:?}: {t} missing after --state-only; have {have:?}"
        );
    }
    for t in PROVINCIAL {
        assert!(!have.contains(t), "{engine:?}: --state-only created {t}");
    }
    // A later full migrate adds the provincial schema to the same database.
    let o = hlx(&["-c", cfg.to_str().unwrap(), "migrate"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let have = tables(&db).await;
    for t in PROVINCIAL {
        assert!(have.contains(t), "{engine:?}: {t} missing after the full migrate");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_only_creates_the_hlx_tables_and_no_provincial_table_postgres() {
    state_only_creates_the_hlx_tables_and_no_provincial_table(Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_only_creates_the_hlx_tables_and_no_provincial_table_mariadb() {
    state_only_creates_the_hlx_tables_and_no_provincial_table(MySql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_only_creates_the_hlx_tables_and_no_provincial_table_sqlite() {
    state_only_creates_the_hlx_tables_and_no_provincial_table(Sqlite).await
}

/// A shipped CSV: header and rows (these files quote nothing).
fn csv(file: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("mappings/examples")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains('"'),
        "{file}: quoted fields; this reader splits on commas"
    );
    let mut lines = text
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>());
    let header = lines.next().unwrap();
    let rows: Vec<Vec<String>> = lines.collect();
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.len(), header.len(), "{file}:{}: {r:?}", i + 2);
    }
    (header, rows)
}

/// The example CSVs load into their tables on every engine: the 33 Yancheng
/// hotlines with known kinds and modes, and a classification tree whose every
/// code is valid and has its parent.
async fn the_example_csvs_load_into_the_provincial_tables(engine: Engine) {
    let db = migrated(engine, "csv").await;

    let (header, hotlines) = csv("hotlines_yancheng.csv");
    assert_eq!(
        header.join(","),
        "hotline_code,name,service_number,department,kind,integration_mode,exchange_mode"
    );
    assert_eq!(hotlines.len(), 33, "the Yancheng plan merges 33 hotlines");
    for r in &hotlines {
        assert!(
            ["city_platform", "department_line", "emergency_line"].contains(&r[4].as_str()),
            "{r:?}"
        );
        assert!(
            [
                "merged",
                "keep_number_interconnect",
                "keep_number_parallel",
                "emergency_linkage"
            ]
            .contains(&r[5].as_str()),
            "{r:?}"
        );
        assert!(["push", "receive", "two-way"].contains(&r[6].as_str()), "{r:?}");
        db.exec_args(
            "INSERT INTO hotline (hotline_code, name, service_number, department, kind, integration_mode, exchange_mode) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            &r.iter().map(|v| Arg::from(v.as_str())).collect::<Vec<_>>(),
        )
        .await;
    }
    assert_eq!(db.count("hotline").await, 33);
    let enabled = db.count("hotline WHERE enabled = TRUE").await;
    assert_eq!(enabled, 33, "enabled defaults to true");

    let (header, categories) = csv("appeal_category_sample.csv");
    assert_eq!(header.join(","), "code,name");
    let codes: BTreeSet<&str> = categories.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(codes.len(), categories.len(), "duplicate codes");
    let parsed: Vec<appeal_code::AppealCode> = categories
        .iter()
        .map(|r| appeal_code::normalize(&r[0]).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let parents: BTreeSet<String> = parsed.iter().filter_map(|c| c.parent()).collect();
    for (r, c) in categories.iter().zip(&parsed) {
        assert_eq!(c.code, r[0], "codes are stored normalised");
        if let Some(p) = c.parent() {
            assert!(codes.contains(p.as_str()), "{}: parent {p} missing", c.code);
        }
        if c.is_other() {
            assert_eq!(r[1], "其他", "{}", c.code);
        }
        db.exec_args(
            "INSERT INTO appeal_category (code, level, parent_code, name, is_other, is_leaf) VALUES (?, ?, ?, ?, ?, ?)",
            &[
                Arg::from(c.code.as_str()),
                Arg::from(c.level as i64),
                Arg::Text(c.parent()),
                Arg::from(r[1].as_str()),
                Arg::Bool(Some(c.is_other())),
                Arg::Bool(Some(!parents.contains(&c.code))),
            ],
        )
        .await;
    }
    let levels = db
        .rows("appeal_category", &["level"], "level")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect::<BTreeSet<_>>();
    assert_eq!(levels, BTreeSet::from(["1", "2", "3", "4", "5"].map(String::from)));
    let orphans = db
        .count(
            "appeal_category c WHERE c.parent_code IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM appeal_category p WHERE p.code = c.parent_code)",
        )
        .await;
    assert_eq!(orphans, 0);
    let others = db
        .count("appeal_category WHERE is_other = TRUE AND level IN (2, 3)")
        .await;
    assert!(others >= 2, "the sample shows `99` items at levels 2 and 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_csvs_load_into_the_provincial_tables_postgres() {
    the_example_csvs_load_into_the_provincial_tables(Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_csvs_load_into_the_provincial_tables_mariadb() {
    the_example_csvs_load_into_the_provincial_tables(MySql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_csvs_load_into_the_provincial_tables_sqlite() {
    the_example_csvs_load_into_the_provincial_tables(Sqlite).await
}

/// mappings/codesets/: every file loads, each provincial code set validates its
/// own codes and has a Chinese name for each, and the Hainan division names
/// resolve to codes that have an official name.
#[test]
fn the_shipped_code_sets_load_and_name_every_code() {
    let mut diags = Diagnostics::default();
    let sets = CodeSets::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/codesets"),
        &mut diags,
    );
    assert!(diags.0.is_empty(), "{diags:?}");
    let get = |r: &str| sets.resolve(r, "nobody").unwrap_or_else(|e| panic!("{e}"));
    for set in [
        "channel",
        "appeal_type",
        "appellant_type",
        "status",
        "flow_action",
        "satisfaction",
        "urgency",
        "return_reason",
    ] {
        let codes = get(&format!("province.{set}"));
        let names = get(&format!("province.{set}_name"));
        assert!(!codes.values.is_empty(), "{set}");
        for (k, v) in &codes.values {
            assert_eq!(k, v, "province.{set} is an identity table");
            let name = names
                .lookup(k)
                .unwrap_or_else(|| panic!("province.{set}_name lacks {k}"));
            assert!(has_chinese(name), "province.{set}_name.{k} = {name}");
        }
        assert_eq!(
            names.values.len(),
            codes.values.len(),
            "province.{set}_name has extra codes"
        );
    }
    let c1 = get("province.channel");
    assert_eq!(c1.values.len(), 15);
    assert_eq!(get("province.channel_name").lookup("13"), Some("110转入"));
    let three = get("province.satisfaction_3level");
    let c6 = get("province.satisfaction");
    for (word, want) in [("满意", "2"), ("基本满意", "3"), ("不满意", "4")] {
        assert_eq!(three.lookup(word), Some(want));
        assert!(c6.lookup(want).is_some());
    }
    let division = get("division_hainan.division");
    let division_name = get("division_hainan.division_name");
    for (name, code) in [
        ("秀英区", "460105"),
        ("秀英", "460105"),
        ("海口", "460100"),
        ("陵水", "469028"),
    ] {
        assert_eq!(division.lookup(name), Some(code), "{name}");
    }
    for code in division.values.values() {
        assert!(division_name.lookup(code).is_some(), "{code} has no official name");
    }
    assert_eq!(division_name.lookup("469030"), Some("琼中黎族苗族自治县"));
}
