//! The `hlx` binary: bad files refused with their location and exit 78,
//! partners that are down, the demo.

use crate::helpers::*;
use std::process::{Command, Output};

pub fn hlx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hlx"))
        .args(args)
        .env("HLX_LOG", "error")
        .output()
        .expect("run hlx")
}

/// `hlx -c CFG args…`: exit code (-1 if killed), stdout and stderr apart
/// (stderr carries warnings, e.g. about a password in a URL).
pub fn hlx_c(cfg: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["-c", cfg.to_str().unwrap()];
    all.extend_from_slice(args);
    let o = hlx(&all);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn check_offline(mapping: &str) -> (i32, String) {
    let s = scratch(
        "sqlite://unused.db",
        &[("haikou", "sqlite://unused-partner.db")],
        &[("haikou.toml", mapping)],
        "",
    );
    let o = hlx(&["-c", s.path().to_str().unwrap(), "check", "--offline"]);
    (o.status.code().unwrap(), text(&o))
}

#[test]
fn a_toml_syntax_error_is_refused_with_file_line_and_column() {
    let bad = MAPPING.replace("key = [\"order_no\"]", "key = [\"order_no\"");
    let (code, out) = check_offline(&bad);
    assert_eq!(code, 78, "{out}");
    assert!(
        out.contains("haikou.toml:15:1: error: invalid array"),
        "location missing: {out}"
    );
}

#[test]
fn an_unknown_key_is_refused_with_its_location() {
    let bad = MAPPING.replace(
        "content             = { from = \"SQNR\", required = true",
        "content             = { from = \"SQNR\", requird = true",
    );
    let (code, out) = check_offline(&bad);
    assert_eq!(code, 78, "{out}");
    assert!(
        out.contains("haikou.toml:23:40:") && out.contains("unknown field `requird`"),
        "{out}"
    );
}

#[test]
fn an_identifier_that_smuggles_sql_is_refused() {
    let bad = MAPPING.replace("key = [\"GDBH\"]", "key = [\"x; drop table y\"]");
    let (code, out) = check_offline(&bad);
    assert_eq!(code, 78, "{out}");
    assert!(
        out.contains("haikou.toml:7:8: error: [source] key: identifier `x; drop table y` contains `;`"),
        "{out}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let bad = MAPPING
        .replace("codeset = \"channel\"", "codeset = \"nosuch\"")
        .replace("datetime = [\"%Y%m%d%H%M%S\", \"%Y%m%d%H%M\"]", "datetime = \"%Y%K\"");
    let (code, out) = check_offline(&bad);
    assert_eq!(code, 78, "{out}");
    assert!(out.contains("code set `nosuch` not found"), "{out}");
    assert!(out.contains("unknown `%` specifier"), "{out}");
}

#[test]
fn failing_mapping_tests_are_reported_with_expected_and_actual() {
    let with_test = format!(
        "{MAPPING}\n[[test]]\nname = \"channel\"\ninput = {{ GDBH = \"A\", LDSJ = \"20240301083000\", QDLX = \"2\", SQNR = \"x\" }}\nexpect = {{ channel = \"03\" }}\n"
    );
    let (code, out) = check_offline(&with_test);
    assert_eq!(code, 78, "{out}");
    assert!(out.contains("field `channel`: expected `03`, got `02`"), "{out}");
    let ok = with_test.replace("channel = \"03\"", "channel = \"02\"");
    let (code, out) = check_offline(&ok);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_missing_config_is_a_config_error() {
    let o = hlx(&["-c", "/nonexistent/exchange.toml", "check", "--offline"]);
    assert_eq!(o.status.code(), Some(78));
    assert!(text(&o).contains("/nonexistent/exchange.toml"));
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(hlx(&["frobnicate"]).status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_check_names_a_column_that_does_not_exist() {
    let s = setup(Sqlite, Sqlite, "").await;
    let bad = MAPPING.replace("\"SQNR\"", "\"SQNR_TYPO\"");
    std::fs::write(s.scratch.dir.path().join("mappings/haikou.toml"), bad).unwrap();
    let o = hlx(&["-c", s.scratch.path().to_str().unwrap(), "migrate"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = hlx(&["-c", s.scratch.path().to_str().unwrap(), "check"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("mapping haikou.work_order")
            && out.contains("column `SQNR_TYPO` does not exist in table stg_gd_info"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_that_is_down_fails_alone_and_its_password_never_shows() {
    let s = setup(Sqlite, Postgres, "").await;
    insert(&s.partner, &[row(1, Some("2024-03-01 08:30:00"))]).await;
    // A second partner on a port where nothing listens, with a password.
    let cfg = std::fs::read_to_string(s.scratch.path()).unwrap()
        + "\n[[partner]]\nname = \"sanya\"\nurl = \"mysql://hlx_reader@127.0.0.1:1/sanya_stage\"\npassword_env = \"HLX_IT_SANYA_PW\"\nconnect_timeout = \"2s\"\n";
    std::fs::write(s.scratch.path(), cfg).unwrap();
    let sanya = MAPPING
        .replace("haikou.work_order", "sanya.work_order")
        .replace("partner = \"haikou\"", "partner = \"sanya\"");
    std::fs::write(s.scratch.dir.path().join("mappings/sanya.toml"), sanya).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_hlx"))
        .args(["-c", s.scratch.path().to_str().unwrap(), "run"])
        .env("HLX_IT_SANYA_PW", "S3cretPassw0rd")
        .env("HLX_LOG", "info")
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(!out.contains("S3cretPassw0rd"), "password leaked: {out}");
    let haikou = out.lines().find(|l| l.starts_with("haikou.work_order")).unwrap();
    assert!(haikou.contains(" ok "), "{out}");
    let sanya = out.lines().find(|l| l.starts_with("sanya.work_order")).unwrap();
    assert!(sanya.contains("failed"), "{out}");
    assert!(
        out.contains("partner sanya: cannot connect to mysql://hlx_reader@127.0.0.1:1/sanya_stage"),
        "{out}"
    );
    assert_eq!(s.province.count("work_order").await, 1);
}

#[test]
fn the_demo_runs_offline_and_its_second_run_moves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    let o = hlx(&["demo", "--dir", d.to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("haikou.work_order"))
        .unwrap()
        .to_string();
    let n: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(n[1], "ok");
    assert!(n[3].parse::<u64>().unwrap() > 300, "inserted: {line}");
    assert!(d.join("province.db").exists());
    let o = hlx(&["demo", "--dir", d.to_str().unwrap()]);
    let out = text(&o);
    for l in out.lines().filter(|l| l.contains(".work_order")) {
        let n: Vec<&str> = l.split_whitespace().collect();
        assert_eq!((n[3], n[4], n[6]), ("0", "0", "0"), "second run moved rows: {l}");
    }
    let o = hlx(&["-c", d.join("exchange.toml").to_str().unwrap(), "check"]);
    assert_eq!(o.status.code(), Some(0), "the demo checks clean online: {}", text(&o));
    let o = hlx(&["-c", d.join("exchange.toml").to_str().unwrap(), "status"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("haikou.work_order") && l.contains("2024-03-10") && l.contains(" ok ")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_check_flags_a_watermark_without_an_index_and_a_target_without_a_unique_key() {
    let s = setup(Postgres, Postgres, "").await;
    let cfg = s.scratch.path();
    let cfg = cfg.to_str().unwrap();
    assert_eq!(hlx(&["-c", cfg, "migrate"]).status.code(), Some(0));
    let o = hlx(&["-c", cfg, "check"]);
    assert_eq!(o.status.code(), Some(0), "a clean setup checks clean: {}", text(&o));
    s.partner.exec("DROP INDEX stg_ut").await;
    s.province
        .exec("ALTER TABLE work_order DROP CONSTRAINT work_order_pkey")
        .await;
    let o = hlx(&["-c", cfg, "check"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("no index starting with the watermark column update_time"),
        "{out}"
    );
    assert!(out.contains("no unique index or primary key on (order_no)"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_check_advises_a_postgres_partner_whose_watermark_index_lacks_the_key() {
    // PostgreSQL's secondary indexes do not carry the primary key (InnoDB's
    // do): with an index on the watermark alone, every poll's look-back
    // probe reads the table. Advice, not a problem: the check passes.
    for p in [Postgres, MySql] {
        let s = setup(p, Sqlite, "lookback = \"10m\"").await;
        let cfg = s.scratch.path();
        let cfg = cfg.to_str().unwrap();
        assert_eq!(hlx(&["-c", cfg, "migrate"]).status.code(), Some(0));
        let o = hlx(&["-c", cfg, "check"]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(0), "{p:?}: {out}");
        assert!(
            !out.contains("advice"),
            "{p:?}: (UPDATE_TIME, GDBH) holds the key: {out}"
        );
        s.partner
            .exec(if p == Postgres {
                "DROP INDEX stg_ut"
            } else {
                "DROP INDEX stg_ut ON stg_gd_info"
            })
            .await;
        s.partner
            .exec("CREATE INDEX stg_ut1 ON stg_gd_info (UPDATE_TIME)")
            .await;
        let o = hlx(&["-c", cfg, "check"]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(0), "{p:?}: advice does not fail the check: {out}");
        if p == Postgres {
            assert!(
                out.contains("advice: source table") && out.contains("no index holds (update_time, gdbh)"),
                "{out}"
            );
            assert!(out.contains("ok, 1 piece(s) of advice"), "{out}");
        } else {
            assert!(!out.contains("advice"), "InnoDB's index carries the key: {out}");
        }
    }
}

#[test]
fn the_shipped_example_config_and_mappings_check_clean_offline() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("deploy/exchange.toml"), dir.path().join("exchange.toml")).unwrap();
    std::fs::create_dir_all(dir.path().join("mappings/codesets")).unwrap();
    let mut tests = 0;
    for dir_in in ["mappings/examples", "mappings/examples/codesets", "mappings/codesets"] {
        for e in std::fs::read_dir(root.join(dir_in)).unwrap() {
            let f = e.unwrap().path();
            if f.extension().is_some_and(|x| x == "toml") {
                let to = if dir_in.ends_with("codesets") {
                    "mappings/codesets"
                } else {
                    "mappings"
                };
                tests += std::fs::read_to_string(&f).unwrap().matches("[[test]]").count();
                std::fs::copy(&f, dir.path().join(to).join(f.file_name().unwrap())).unwrap();
            }
        }
    }
    // The unit's credentials: relative key files are read from there.
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("sm4-2026"), "00112233445566778899aabbccddeeff").unwrap();
    std::fs::write(creds.path().join("hmac-2026"), "ab".repeat(32)).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_hlx"))
        .args([
            "-c",
            dir.path().join("exchange.toml").to_str().unwrap(),
            "check",
            "--offline",
        ])
        .env("HLX_LOG", "error")
        .env("CREDENTIALS_DIRECTORY", creds.path())
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains(&format!("3 partner(s), 7 mapping(s), {tests} mapping test(s)")),
        "{out}"
    );
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/verify-unit.sh"))
        .arg(env!("CARGO_BIN_EXE_hlx"))
        .output()
        .unwrap();
    let text = text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("systemd-analyze verify: ok"), "{text}");
    assert!(text.contains("Overall exposure level"), "{text}");
}
