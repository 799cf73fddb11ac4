//! Sync reports against runs with known counts.

use crate::files::hlx;
use crate::helpers::*;
use hotline_exchange::db::Engine;

/// Three good runs (150 inserted; 1 updated; 1 rejected) and one failed run.
async fn history(q: Engine) -> Setup {
    let s = setup(Sqlite, q, "batch_size = 100").await;
    let rows: Vec<Row> = (0..150)
        .map(|i| row(i, Some(&ts("2024-03-01 08:00:00", i as i64 * 1000))))
        .collect();
    insert(&s.partner, &rows).await;
    assert_eq!(s.run().await.counts.inserted, 150);
    s.partner
        .exec("UPDATE stg_gd_info SET SQNR = 'changed', UPDATE_TIME = '2024-03-02 00:00:00' WHERE GDBH = 'HK00000007'")
        .await;
    assert_eq!(s.run().await.counts.updated, 1);
    s.partner.exec("ALTER TABLE stg_gd_info RENAME TO stg_moved").await;
    assert_eq!(s.run().await.status, hotline_exchange::exchange::Status::Failed);
    s.partner.exec("ALTER TABLE stg_moved RENAME TO stg_gd_info").await;
    let mut bad = row(500, Some("2024-03-03 00:00:00"));
    bad.qdlx = "9".into();
    insert(&s.partner, &[bad]).await;
    assert_eq!(s.run().await.counts.rejected, 1);
    // The partner serves a hotline the registry lists.
    let cfg = s.scratch.path();
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).unwrap() + "hotline = \"hk_12345\"\n",
    )
    .unwrap();
    s.province
        .exec(
            "INSERT INTO hotline (hotline_code, name, service_number, department, kind, integration_mode, exchange_mode) \
             VALUES ('hk_12345', '海口市12345热线', '12345', '海口市营商环境建设局', 'city_platform', 'merged', 'two-way')",
        )
        .await;
    s
}

fn report(s: &Setup, args: &[&str]) -> String {
    let cfg = s.scratch.path();
    let mut a = vec!["-c", cfg.to_str().unwrap(), "report"];
    a.extend_from_slice(args);
    let out = hlx(&a);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn the_report_counts_what_the_runs_did(q: Engine) {
    let s = history(q).await;
    let j: serde_json::Value = serde_json::from_str(&report(&s, &["--format", "json"])).unwrap();
    let m = &j["partners"][0]["mappings"][0];
    assert_eq!(m["mapping"], "haikou.work_order");
    let h = &j["hotlines"][0];
    assert_eq!(
        (&h["hotline"], &h["name"], &h["service_number"]),
        (&"hk_12345".into(), &"海口市12345热线".into(), &"12345".into()),
        "{h}"
    );
    assert_eq!(
        (&h["partners"][0], &h["rows_moved"], &h["health"]),
        (&"haikou".into(), &151.into(), &"silent".into())
    );
    assert!(report(&s, &[]).contains("hk_12345 12345 海口市12345热线: haikou"));
    assert_eq!((m["runs_ok"].as_i64(), m["runs_failed"].as_i64()), (Some(3), Some(1)));
    assert_eq!(m["inserted"], 150);
    assert_eq!(m["updated"], 1);
    assert_eq!(m["rejected"], 1);
    assert_eq!(m["quarantined_open"], 1);
    let top = &m["top_rejections"][0];
    assert_eq!(
        (top["rule"].as_str(), top["count"].as_i64()),
        (Some("codeset"), Some(1))
    );
    assert_eq!(top["example_key"], "HK00000500");
    assert!(top["example_reason"].as_str().unwrap().contains("`9`"), "{top}");
    assert!(
        m["first_error"]["message"].as_str().unwrap().contains("stg_gd_info"),
        "{m}"
    );
    // The watermark is from 2024: runs succeed, nothing new for days.
    assert_eq!(m["health"], "silent");
    assert!(m["lag_seconds"].as_i64().unwrap() > 86_400);
    assert_eq!(j["summary"]["silent"], 1);
    assert_eq!(j["summary"]["rows_moved"], 151);
    assert_eq!(j["summary"]["runs_failed"], 1);
    let moved: i64 = m["moved_per_hour"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["rows"].as_i64().unwrap())
        .sum();
    assert_eq!(moved, 151, "rows per hour add up to what moved");
    assert_eq!(j["log_head"]["seq"], 5, "4 data batches + 1 failed run");

    // A period before any of it is empty.
    let j: serde_json::Value = serde_json::from_str(&report(
        &s,
        &["--format", "json", "--since", "2020-01-01", "--until", "2020-01-02"],
    ))
    .unwrap();
    assert_eq!(j["partners"][0]["mappings"][0]["inserted"], 0);

    // Text: the summary line first, aligned columns after.
    let t = report(&s, &[]);
    let second = t.lines().nth(1).unwrap();
    assert!(
        second.starts_with("1 partner(s): 0 healthy, 0 lagging, 0 failing, 1 silent"),
        "{t}"
    );
    assert!(t.contains("hlx rejects list --mapping haikou.work_order"), "{t}");
}

#[tokio::test]
async fn the_report_counts_what_the_runs_did_sqlite() {
    the_report_counts_what_the_runs_did(Sqlite).await
}
#[tokio::test]
async fn the_report_counts_what_the_runs_did_postgres() {
    the_report_counts_what_the_runs_did(Postgres).await
}
#[tokio::test]
async fn the_report_counts_what_the_runs_did_mariadb() {
    the_report_counts_what_the_runs_did(MySql).await
}

/// Every key path of a JSON value with its type (arrays by their first item).
fn shape(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    use serde_json::Value::*;
    let ty = match v {
        Null => "null",
        Bool(_) => "bool",
        Number(n) if n.is_i64() => "integer",
        Number(_) => "number",
        String(_) => "string",
        Array(_) => "array",
        Object(_) => "object",
    };
    out.push(format!("{path}: {ty}"));
    match v {
        Array(a) => {
            if let Some(x) = a.first() {
                shape(x, &format!("{path}[]"), out);
            }
        }
        Object(o) => {
            for (k, x) in o {
                shape(x, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn the_json_report_keeps_its_documented_shape() {
    let s = history(Sqlite).await;
    let j: serde_json::Value = serde_json::from_str(&report(&s, &["--format", "json"])).unwrap();
    let mut got = Vec::new();
    shape(&j, "$", &mut got);
    let golden_path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/golden/report_shape.txt");
    if std::env::var_os("HLX_BLESS").is_some() {
        std::fs::write(golden_path, got.join("\n") + "\n").unwrap();
    }
    let golden = std::fs::read_to_string(golden_path).unwrap();
    assert_eq!(
        got.join("\n") + "\n",
        golden,
        "the JSON report changed shape: update docs/report.schema.json (and schema_version if a field changed meaning), then HLX_BLESS=1"
    );
    // Every key is described in the schema.
    let schema = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/report.schema.json")).unwrap();
    for line in &got {
        let key = line
            .split(':')
            .next()
            .unwrap()
            .rsplit('.')
            .next()
            .unwrap()
            .trim_end_matches("[]");
        if key != "$" {
            assert!(
                schema.contains(&format!("\"{key}\"")),
                "`{key}` is not in docs/report.schema.json"
            );
        }
    }
}

#[tokio::test]
async fn csv_keeps_chinese_and_html_stands_alone() {
    let s = history(Sqlite).await;
    std::fs::write(
        s.scratch.path(),
        std::fs::read_to_string(s.scratch.path()).unwrap().replace(
            "name = \"haikou\"",
            "name = \"haikou\"\ntitle = \"海口市12345热线平台\"",
        ),
    )
    .unwrap();
    let csv = report(&s, &["--format", "csv", "--bom"]);
    assert!(csv.starts_with('\u{feff}'), "BOM first");
    let mut lines = csv.trim_start_matches('\u{feff}').lines();
    assert!(lines.next().unwrap().starts_with("partner,partner_title,mapping,"));
    assert!(lines
        .next()
        .unwrap()
        .starts_with("haikou,海口市12345热线平台,haikou.work_order,pull,silent,"));
    assert!(!report(&s, &["--format", "csv"]).starts_with('\u{feff}'));

    let out = s.scratch.dir.path().join("report.html");
    let cfg = s.scratch.path();
    let o = hlx(&[
        "-c",
        cfg.to_str().unwrap(),
        "report",
        "--format",
        "html",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("海口市12345热线平台"));
    assert!(html.contains("<svg") && html.contains("<polyline") && html.contains("class=\"bar\""));
    for external in ["http://", "https://", " src=", "<link", "@import", "url("] {
        assert!(
            !html.contains(external),
            "the page must stand alone: found `{external}`"
        );
    }
}
