//! `hlx rejects`: the quarantine listed, shown with personal values masked,
//! and retried with the current mapping and code sets, through the binary.

use crate::files::hlx;
use crate::helpers::*;
use hotline_exchange::db::Engine;
use hotline_exchange::exchange::{Exchange, Status};
use hotline_exchange::state::State;

/// One test per province engine (partner on the same engine), and one
/// across engines, whose timestamps must survive the trip through JSON.
macro_rules! provinces {
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
            async fn postgres_to_mariadb() {
                super::$name(Postgres, MySql).await
            }
        }
    };
}

const T0: &str = "2024-03-01 08:30:00";

/// `hlx -c <scratch config> args…`: exit code and stdout + stderr.
fn cli(s: &Setup, args: &[&str]) -> (i32, String) {
    let cfg = s.scratch.path();
    let mut all = vec!["-c", cfg.to_str().unwrap()];
    all.extend_from_slice(args);
    let o = hlx(&all);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), out)
}

/// `hlx --format json -c <scratch config> args…`: stdout parsed as JSON
/// (stderr carries warnings, e.g. about a password in a URL).
fn cli_json(s: &Setup, args: &[&str]) -> serde_json::Value {
    let cfg = s.scratch.path();
    let mut all = vec!["--format", "json", "-c", cfg.to_str().unwrap()];
    all.extend_from_slice(args);
    let o = hlx(&all);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"))
}

/// Five good rows and row 101, whose channel code `9` is not in the code set.
async fn one_rejected(p: Engine, q: Engine, bad: impl Fn(&mut Row)) -> Setup {
    let s = setup(p, q, "").await;
    let mut rows: Vec<Row> = (0..5).map(|i| row(i, Some(&ts(T0, i as i64)))).collect();
    let mut r = row(101, Some(&ts(T0, 101)));
    r.qdlx = "9".into();
    bad(&mut r);
    rows.push(r);
    insert(&s.partner, &rows).await;
    let o = s.run().await;
    assert_eq!(o.status, Status::Ok, "{:?}", o.error);
    assert_eq!((o.counts.inserted, o.counts.rejected), (5, 1));
    s
}

fn add_channel_nine(s: &Setup) {
    std::fs::write(
        s.scratch.dir.path().join("mappings/codesets/haikou.toml"),
        format!("{CODESETS}\"9\" = \"09\"\n"),
    )
    .unwrap();
}

/// The id of the one quarantine entry of `key`.
async fn entry_id(s: &Setup, key: &str) -> String {
    let qt = s.province.hlx("hlx_quarantine");
    s.province
        .rows(&format!("{qt} WHERE row_key = '{key}'"), &["id"], "id")
        .await[0][0]
        .clone()
}

async fn entry(s: &Setup, key: &str, cols: &[&str]) -> Vec<String> {
    let qt = s.province.hlx("hlx_quarantine");
    s.province
        .rows(&format!("{qt} WHERE row_key = '{key}'"), cols, "id")
        .await
        .remove(0)
}

provinces!(a_rejected_row_is_listed_shown_masked_and_lands_on_retry_after_the_code_set_is_fixed);
async fn a_rejected_row_is_listed_shown_masked_and_lands_on_retry_after_the_code_set_is_fixed(p: Engine, q: Engine) {
    let s = one_rejected(p, q, |_| {}).await;
    // row(101)'s phone is "+86 138-0101-0707".
    let (clear, spaced) = ("13801010707", "0101-0707");

    let (code, out) = cli(&s, &["rejects", "list"]);
    assert_eq!(code, 0, "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("HK00000101"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("channel") && line.contains("codeset") && line.contains("open"),
        "{out}"
    );
    assert!(line.contains("value `9` is not in code set `haikou.channel`"), "{out}");
    assert!(out.contains("1 open quarantined row(s)"), "{out}");
    let j = cli_json(&s, &["rejects", "list", "--mapping", "haikou.work_order"]);
    let out = j.to_string();
    assert_eq!(j["total"], 1, "{out}");
    assert_eq!(j["entries"][0]["row_key"], "HK00000101", "{out}");
    assert_eq!(j["entries"][0]["attempts"], 1, "{out}");
    let id = entry_id(&s, "HK00000101").await;
    assert_eq!(j["entries"][0]["id"].to_string(), id);

    let (code, out) = cli(&s, &["rejects", "show", &id]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("HK00000101") && out.contains("codeset"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("QDLX") && l.contains("\"9\"")),
        "raw values one per line: {out}"
    );
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("LDHM") && l.contains("138****0707")),
        "the phone is shown masked: {out}"
    );
    assert!(!out.contains(clear) && !out.contains(spaced), "the phone leaked: {out}");
    let j = cli_json(&s, &["rejects", "show", &id]);
    let out = j.to_string();
    assert!(!out.contains(clear) && !out.contains(spaced), "the phone leaked: {out}");
    assert_eq!(j["raw"]["LDHM"], "138****0707", "{out}");

    // Nothing changed: the retry rejects it again, for the same reason.
    let (code, out) = cli(&s, &["rejects", "retry"]);
    assert_eq!(code, 0, "rows still rejected are not a failure: {out}");
    assert!(out.contains("1 retried, 0 landed, 1 still rejected"), "{out}");

    let wm = s.province.hlx("hlx_watermark");
    let position = s.province.rows(&wm, &["position"], "mapping_id").await;
    add_channel_nine(&s);
    let (code, out) = cli(&s, &["rejects", "retry"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("haikou.work_order: 1 retried, 1 landed, 0 still rejected"),
        "{out}"
    );

    assert_eq!(entry(&s, "HK00000101", &["status"]).await, ["resolved"]);
    let landed = s
        .province
        .rows(
            "work_order WHERE order_no = 'HK00000101'",
            &["channel", "caller_phone_masked"],
            "order_no",
        )
        .await;
    assert_eq!(landed, [["09", "138****0707"]]);
    assert_eq!(s.province.count("work_order").await, 6);
    assert_eq!(
        s.province.rows(&wm, &["position"], "mapping_id").await,
        position,
        "the watermark did not move"
    );
    let rs = s.province.hlx("hlx_row_state");
    assert_eq!(
        s.province.count(&format!("{rs} WHERE row_key = 'HK00000101'")).await,
        1,
        "its checksum was recorded with it"
    );

    // A second retry finds nothing and records no run.
    let runs = s.province.count(&s.province.hlx("hlx_run")).await;
    let (code, out) = cli(&s, &["rejects", "retry"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nothing to retry"), "{out}");
    assert_eq!(s.province.count(&s.province.hlx("hlx_run")).await, runs);
    let (code, out) = cli(&s, &["rejects", "list"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no open quarantined rows"), "{out}");
    let (_, out) = cli(&s, &["rejects", "list", "--all"]);
    assert!(out.contains("HK00000101") && out.contains("resolved"), "{out}");

    // The retried row is the row a run reads: the next run finds it unchanged.
    let o = s.run().await;
    assert_eq!(o.status, Status::Ok, "{:?}", o.error);
    assert_eq!(
        (o.counts.inserted, o.counts.updated, o.counts.rejected),
        (0, 0, 0),
        "{:?}",
        o.counts
    );
    if p != Sqlite {
        // Its watermark was recorded as a run records it: the look-back probe
        // knows this version and fetches no full row.
        assert_eq!(o.counts.read, 0, "{:?}", o.counts);
    }
    // Status keeps the schedule's runs and the open count; the chain verifies.
    let (code, out) = cli(&s, &["status"]);
    assert_eq!(code, 0, "{out}");
    let line = out.lines().find(|l| l.starts_with("haikou.work_order")).unwrap();
    assert!(line.contains(" ok ") && line.contains(" 0  every"), "{out}");
    let (code, out) = cli(&s, &["log", "verify"]);
    assert_eq!(code, 0, "{out}");
}

provinces!(a_row_that_still_fails_stays_quarantined_with_its_new_reason);
async fn a_row_that_still_fails_stays_quarantined_with_its_new_reason(p: Engine, q: Engine) {
    // Row 101 also has a malformed classification code, checked after the channel.
    let s = one_rejected(p, q, |r| r.wtfl = "0100020000".into()).await;
    let id = entry_id(&s, "HK00000101").await;
    add_channel_nine(&s);
    let (code, out) = cli(&s, &["rejects", "retry", "-m", "haikou.work_order", &id]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 retried, 0 landed, 1 still rejected"), "{out}");
    let e = entry(
        &s,
        "HK00000101",
        &["status", "rule", "column_name", "reason", "attempts"],
    )
    .await;
    assert_eq!(&e[..3], ["open", "appeal_code", "WTFL"], "{e:?}");
    assert!(e[3].contains("malformed classification code"), "{e:?}");
    assert_eq!(e[4], "2", "{e:?}");
    assert_eq!(s.province.count("work_order").await, 5);

    // The same through the library: the outcome counts it, nothing lands.
    let ex = Exchange::open(s.config(), false).await.unwrap();
    let m = ex.config.mapping("haikou.work_order").unwrap().clone();
    let o = ex.retry_quarantined(&m, &[]).await;
    assert_eq!(o.status, Status::Ok, "{:?}", o.error);
    assert_eq!((o.retried, o.landed, o.rejected), (1, 0, 1), "{o:?}");
    assert!(o.skipped.is_empty(), "{o:?}");
    ex.province.close().await;
}

/// Bad usage exits 2: an unknown id, an unknown mapping, an id of another
/// mapping; a retry that finds the mapping's lease taken exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_and_mappings_are_bad_usage_and_a_held_lease_fails_the_retry() {
    let s = one_rejected(Sqlite, Sqlite, |_| {}).await;
    for args in [
        &["rejects", "show", "99999"][..],
        &["rejects", "retry", "99999"],
        &["rejects", "retry", "-m", "nosuch.mapping"],
        &["rejects", "list", "-m", "nosuch.mapping"],
        &["rejects", "list", "--since", "last tuesday"],
        &["rejects", "show", "x"],
    ] {
        let (code, out) = cli(&s, args);
        assert_eq!(code, 2, "{args:?}: {out}");
    }
    let id = entry_id(&s, "HK00000101").await;
    let other = MAPPING.replace("haikou.work_order", "haikou.other");
    std::fs::write(s.scratch.dir.path().join("mappings/other.toml"), other).unwrap();
    let (code, out) = cli(&s, &["rejects", "retry", "-m", "haikou.other", &id]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("belongs to mapping `haikou.work_order`"), "{out}");

    let state = State::new(s.province.pool.clone());
    let mid = state.mapping_id("haikou.work_order", "haikou").await.unwrap();
    state
        .acquire_lease(mid, "elsewhere:1:cafe", chrono::Duration::seconds(60))
        .await
        .unwrap()
        .unwrap();
    add_channel_nine(&s);
    let (code, out) = cli(&s, &["rejects", "retry"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("skipped") && out.contains("another hlx holds this mapping"),
        "{out}"
    );
    assert_eq!(entry(&s, "HK00000101", &["status"]).await, ["open"]);
    state.release_lease(mid, "elsewhere:1:cafe").await.unwrap();
    let (code, out) = cli(&s, &["rejects", "retry", &id]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 landed"), "{out}");
}

/// Without its mapping, hlx cannot tell which values are personal: `show`
/// hides every raw value and the row key; `retry` refuses the entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_hides_every_value_when_the_mapping_is_gone() {
    let s = one_rejected(Sqlite, Sqlite, |_| {}).await;
    let id = entry_id(&s, "HK00000101").await;
    std::fs::write(
        s.scratch.dir.path().join("mappings/haikou.toml"),
        MAPPING.replace("haikou.work_order", "haikou.renamed"),
    )
    .unwrap();
    let (code, out) = cli(&s, &["rejects", "show", &id]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("all values hidden"), "{out}");
    assert!(out.contains("LDHM") && out.contains("******"), "{out}");
    for clear in ["13801010707", "0101-0707", "HK00000101", "路灯不亮"] {
        assert!(!out.contains(clear), "`{clear}` shown: {out}");
    }
    let (code, out) = cli(&s, &["rejects", "list"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("haikou.work_order") && !out.contains("HK00000101"),
        "{out}"
    );
    let (code, out) = cli(&s, &["rejects", "retry", &id]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not in the configuration"), "{out}");
    let (code, out) = cli(&s, &["rejects", "retry"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("left alone"), "{out}");
}

/// A row version that is rejected, then followed by one that maps to what
/// the target already holds, resolves its entry: a later retry must not land
/// the stale rejected version over the current row.
async fn a_rejected_version_followed_by_the_landed_content_resolves_its_entry(p: Engine, q: Engine) {
    let s = setup(p, q, "").await;
    // Without the watermark among the fields, a new version can map to the same row.
    let no_wm = MAPPING.replace(
        "updated_at          = { from = \"UPDATE_TIME\", datetime = true }\n",
        "",
    );
    assert_ne!(no_wm, MAPPING);
    std::fs::write(s.scratch.dir.path().join("mappings/haikou.toml"), no_wm).unwrap();
    insert(&s.partner, &[row(1, Some(&ts(T0, 1)))]).await;
    assert_eq!(s.run().await.counts.inserted, 1);
    let set = |qdlx: &str, us: i64| {
        format!(
            "UPDATE stg_gd_info SET QDLX = '{qdlx}', UPDATE_TIME = {} WHERE GDBH = 'HK00000001'",
            match p {
                Postgres => format!("CAST('{}' AS timestamp(6))", ts(T0, us)),
                _ => format!("'{}'", ts(T0, us)),
            }
        )
    };
    s.partner.exec(&set("9", 2_000_000)).await;
    assert_eq!(s.run().await.counts.rejected, 1);
    // Back to the content that landed (row 1's channel is "2").
    s.partner.exec(&set("2", 3_000_000)).await;
    let o = s.run().await;
    assert_eq!((o.counts.updated, o.counts.unchanged), (0, 1), "{:?}", o.counts);
    assert_eq!(entry(&s, "HK00000001", &["status"]).await, ["resolved"]);
    add_channel_nine(&s);
    let (code, out) = cli(&s, &["rejects", "retry"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nothing to retry"), "{out}");
    assert_eq!(
        s.province
            .scalar("SELECT channel FROM work_order WHERE order_no = 'HK00000001'")
            .await
            .as_deref(),
        Some("02")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_version_followed_by_the_landed_content_resolves_its_entry_sqlite() {
    a_rejected_version_followed_by_the_landed_content_resolves_its_entry(Sqlite, Sqlite).await
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_version_followed_by_the_landed_content_resolves_its_entry_postgres() {
    a_rejected_version_followed_by_the_landed_content_resolves_its_entry(Postgres, Postgres).await
}
