//! Two-way exchange (`direction = "both"`): field ownership, conflicts
//! settled by policy and recorded, and no echo: two sides editing for many
//! rounds converge and then go idle.

use crate::helpers::*;
use hotline_exchange::db::Engine;
use hotline_exchange::exchange::{Outcome, Status};

const SYNC: &str = r#"
name = "dept12315.sync"
partner = "dept12315"
direction = "both"

[source]                       # 12315's side
table = "t_order_sync"
key = ["hotlineOrderNo"]
watermark = "gmtModified"

[target]                       # the province's side
table = "work_order"
key = ["order_no"]
watermark = "updated_at"

[conflict]
policy = "newer_wins"
skew = "0s"

[fields]
order_no      = { from = "hotlineOrderNo", owner = "province" }
source_system = { value = "dept12315", owner = "province" }
content       = { from = "content", owner = "province" }
deadline      = { from = "deadline", owner = "province", datetime = true }
status        = { from = "status", owner = "both", codeset = "sync.status" }
result        = { from = "handleResult", owner = "partner" }
"#;

const SETS: &str = r#"
[status]
"NEW"   = "21"
"DOING" = "22"
"DONE"  = "60"
"#;

struct TwoWay {
    partner: TestDb,
    province: TestDb,
    scratch: Scratch,
}

/// Province on `q` and 12315 on `p`; on each side a change column that the
/// database itself bumps on every update (trigger / ON UPDATE), so that the
/// rows hlx writes come back to it: the echo it must not repeat.
async fn two_way(p: Engine, q: Engine) -> TwoWay {
    let partner = fresh(p, "dept12315").await;
    let province = fresh(q, "province").await;
    match p {
        MySql => {
            partner
                .exec(
                    "CREATE TABLE t_order_sync (hotlineOrderNo varchar(32) NOT NULL PRIMARY KEY, content text, deadline datetime(6) NULL, \
                     status varchar(8), handleResult varchar(200), \
                     gmtModified datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))",
                )
                .await
        }
        _ => {
            partner
                .exec(
                    "CREATE TABLE t_order_sync (hotlineOrderNo varchar(32) NOT NULL PRIMARY KEY, content text, deadline timestamp(6) NULL, \
                     status varchar(8), handleResult varchar(200), gmtModified timestamp(6) NOT NULL DEFAULT clock_timestamp())",
                )
                .await;
            partner
                .exec(
                    "CREATE FUNCTION bump() RETURNS trigger AS $$ BEGIN NEW.\"gmtmodified\" := clock_timestamp(); RETURN NEW; END $$ LANGUAGE plpgsql",
                )
                .await;
            partner
                .exec("CREATE TRIGGER bump BEFORE UPDATE ON t_order_sync FOR EACH ROW EXECUTE FUNCTION bump()")
                .await;
        }
    }
    partner
        .exec("CREATE INDEX t_order_sync_mod ON t_order_sync (gmtModified, hotlineOrderNo)")
        .await;
    // Every session here is UTC, so the databases' own clocks (ON UPDATE,
    // triggers) write UTC wall-clock time into naive columns: both zones UTC.
    let scratch = scratch(
        &province.url,
        &[("dept12315", &partner.url)],
        &[("sync.toml", SYNC)],
        "",
    );
    let cfg = scratch.path();
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("timezone = \"+08:00\"", "timezone = \"UTC\"");
    std::fs::write(&cfg, text + "timezone = \"UTC\"\n").unwrap();
    std::fs::write(scratch.dir.path().join("mappings/codesets/sync.toml"), SETS).unwrap();
    let o = crate::files::hlx(&["-c", cfg.to_str().unwrap(), "migrate"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    match q {
        Postgres => {
            province
                .exec("CREATE FUNCTION bump() RETURNS trigger AS $$ BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$ LANGUAGE plpgsql")
                .await;
            province
                .exec("CREATE TRIGGER bump BEFORE UPDATE ON work_order FOR EACH ROW EXECUTE FUNCTION bump()")
                .await;
        }
        _ => {
            province
                .exec("ALTER TABLE work_order MODIFY updated_at datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)")
                .await
        }
    }
    TwoWay {
        partner,
        province,
        scratch,
    }
}

impl TwoWay {
    /// One exchange: the pull half, then the push half.
    async fn round(&self) -> (Outcome, Outcome) {
        let mut o = run_once(&load(&self.scratch.path())).await;
        o.sort_by(|a, b| a.mapping.cmp(&b.mapping));
        assert_eq!(o.len(), 2);
        for x in &o {
            assert_eq!(x.status, Status::Ok, "{}: {:?}", x.mapping, x.error);
        }
        let push = o.pop().unwrap();
        let pull = o.pop().unwrap();
        assert_eq!(
            (pull.mapping.as_str(), push.mapping.as_str()),
            ("dept12315.sync.pull", "dept12315.sync.push")
        );
        (pull, push)
    }

    async fn province_edit(&self, sql_set: &str, key: &str) {
        // The province's application; its change column moves by trigger.
        self.province
            .exec(&format!("UPDATE work_order SET {sql_set} WHERE order_no = '{key}'"))
            .await;
    }

    async fn partner_edit(&self, sql_set: &str, key: &str) {
        self.partner
            .exec(&format!(
                "UPDATE t_order_sync SET {sql_set} WHERE hotlineOrderNo = '{key}'"
            ))
            .await;
    }

    async fn status(&self, key: &str) -> (String, String) {
        let q = self
            .province
            .rows(&format!("work_order WHERE order_no = '{key}'"), &["status"], "order_no")
            .await;
        let p = self
            .partner
            .rows(
                &format!("t_order_sync WHERE hotlineOrderNo = '{key}'"),
                &["status"],
                "hotlineOrderNo",
            )
            .await;
        (q[0][0].clone(), p[0][0].clone())
    }
}

fn writes(o: &Outcome) -> u64 {
    o.counts.inserted + o.counts.updated + o.counts.deleted
}

async fn pause() {
    // Change columns have microseconds; make "later" unambiguous.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
}

async fn both_sides_edit_their_own_and_shared_fields_converge_and_conflicts_are_recorded(p: Engine, q: Engine) {
    let s = two_way(p, q).await;
    let now = match q {
        Postgres => "clock_timestamp()",
        _ => "CURRENT_TIMESTAMP(6)",
    };
    for i in 1..=5 {
        s.province
            .exec(&format!(
                "INSERT INTO work_order (order_no, source_system, content, status, deadline, updated_at) \
                 VALUES ('HK0{i}', 'province', '派单 {i}', '21', {now}, {now})"
            ))
            .await;
    }
    // Round 1: the dispatched orders go out; nothing comes back.
    let (pull, push) = s.round().await;
    assert_eq!((writes(&pull), push.counts.inserted), (0, 5), "{pull:?} {push:?}");
    assert_eq!(s.partner.count("t_order_sync WHERE status = 'NEW'").await, 5);
    let (pull, push) = s.round().await;
    assert_eq!(
        (writes(&pull), writes(&push)),
        (0, 0),
        "no echo of what was pushed: {pull:?} {push:?}"
    );

    // 12315 works on two orders: its own field and the shared status.
    pause().await;
    s.partner.edit_result("HK01").await;
    s.partner_edit("status = 'DONE', handleResult = '已退款'", "HK02").await;
    let (pull, push) = s.round().await;
    assert_eq!((pull.counts.updated, writes(&push)), (2, 0), "{pull:?} {push:?}");
    assert_eq!(s.status("HK02").await, ("60".into(), "DONE".into()));
    let r = s
        .province
        .rows("work_order WHERE order_no IN ('HK01', 'HK02')", &["result"], "order_no")
        .await;
    assert_eq!(r, [["已受理"], ["已退款"]]);

    // 12315 overwrites the province's own field: ignored and counted.
    pause().await;
    s.partner_edit("content = '被改了'", "HK03").await;
    let (pull, _) = s.round().await;
    assert_eq!(pull.counts.ignored, 1, "{pull:?}");
    assert_eq!(
        s.province
            .rows("work_order WHERE order_no = 'HK03'", &["content"], "order_no")
            .await,
        [["派单 3"]]
    );

    // Where the province copes: once the province's row moves again (its
    // trigger here), it sends its own value back over 12315's edit.
    if q == Postgres {
        s.round().await;
        assert_eq!(
            s.partner
                .rows(
                    "t_order_sync WHERE hotlineOrderNo = 'HK03'",
                    &["content"],
                    "hotlineOrderNo"
                )
                .await,
            [["派单 3"]],
            "the province's field re-asserted"
        );
    }

    // Each side changes a different field of one row: no conflict, both kept.
    pause().await;
    s.partner_edit("status = 'DOING'", "HK01").await;
    s.province_edit("content = '省里补充了内容'", "HK01").await;
    // The province changes the shared status, 12315 only its own field.
    pause().await;
    s.province_edit("status = '22'", "HK02").await;
    s.partner_edit("handleResult = '补充说明'", "HK02").await;
    s.round().await;
    s.round().await;
    assert_eq!(
        s.status("HK01").await,
        ("22".into(), "DOING".into()),
        "12315's status taken"
    );
    assert_eq!(
        s.partner
            .rows(
                "t_order_sync WHERE hotlineOrderNo = 'HK01'",
                &["content"],
                "hotlineOrderNo"
            )
            .await,
        [["省里补充了内容"]]
    );
    assert_eq!(
        s.status("HK02").await,
        ("22".into(), "DOING".into()),
        "the province's status kept and sent"
    );
    assert_eq!(
        s.province
            .rows("work_order WHERE order_no = 'HK02'", &["result"], "order_no")
            .await,
        [["补充说明"]]
    );

    // A conflict the partner wins (its change is later) …
    pause().await;
    s.province_edit("status = '22'", "HK04").await;
    pause().await;
    s.partner_edit("status = 'DONE'", "HK04").await;
    // … and one the province wins.
    pause().await;
    s.partner_edit("status = 'DONE'", "HK05").await;
    pause().await;
    s.province_edit("status = '22'", "HK05").await;
    s.round().await;
    s.round().await;
    assert_eq!(
        s.status("HK04").await,
        ("60".into(), "DONE".into()),
        "the newer side won"
    );
    assert_eq!(
        s.status("HK05").await,
        ("22".into(), "DOING".into()),
        "the newer side won"
    );
    let conflicts = s
        .province
        .rows(
            &format!("{} WHERE mapping = 'dept12315.sync'", s.province.hlx("hlx_conflict")),
            &[
                "row_key",
                "field",
                "agreed_value",
                "province_value",
                "partner_value",
                "kept",
            ],
            "row_key",
        )
        .await;
    assert_eq!(
        conflicts,
        [
            ["HK04", "status", "21", "22", "60", "partner"],
            ["HK05", "status", "21", "22", "60", "province"],
        ]
    );

    // Many quiet rounds: nothing moves any more on either side.
    for _ in 0..5 {
        let (pull, push) = s.round().await;
        assert_eq!((writes(&pull), writes(&push)), (0, 0), "converged: {pull:?} {push:?}");
    }
    // Both sides agree on every shared and owned field.
    for i in 1..=5 {
        let (q, p) = s.status(&format!("HK0{i}")).await;
        let back = match p.as_str() {
            "NEW" => "21",
            "DOING" => "22",
            "DONE" => "60",
            other => panic!("{other}"),
        };
        assert_eq!(q, back, "HK0{i}");
    }
}

impl TestDb {
    async fn edit_result(&self, key: &str) {
        self.exec(&format!(
            "UPDATE t_order_sync SET handleResult = '已受理' WHERE hotlineOrderNo = '{key}'"
        ))
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_way_postgres_province_mariadb_partner() {
    both_sides_edit_their_own_and_shared_fields_converge_and_conflicts_are_recorded(MySql, Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_way_mariadb_province_postgres_partner() {
    both_sides_edit_their_own_and_shared_fields_converge_and_conflicts_are_recorded(Postgres, MySql).await
}

#[test]
fn a_two_way_mapping_that_cannot_read_both_ways_is_refused_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("mappings/codesets")).unwrap();
    std::fs::write(
        dir.path().join("mappings/codesets/sync.toml"),
        format!("{SETS}\"END\" = \"60\"\n"),
    )
    .unwrap();
    let cfg = dir.path().join("exchange.toml");
    std::fs::write(
        &cfg,
        "[province]\nurl = \"sqlite://p.db\"\n\n[[partner]]\nname = \"dept12315\"\nurl = \"sqlite://d.db\"\n",
    )
    .unwrap();
    let broken = SYNC.replace("watermark = \"updated_at\"\n", "").replace(
        "result        = { from = \"handleResult\", owner = \"partner\" }",
        "result        = \"handleResult\"",
    );
    std::fs::write(dir.path().join("mappings/sync.toml"), broken).unwrap();
    let check = || {
        let o = crate::files::hlx(&["-c", cfg.to_str().unwrap(), "check", "--offline"]);
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (code, err) = check();
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains("sync.toml:") && err.contains("[target] watermark: a two-way mapping names"),
        "{err}"
    );
    assert!(
        err.contains("field `result`: in a two-way mapping every field names its owner"),
        "{err}"
    );
    // Fixed, but the status code set maps two 12315 words to one code.
    std::fs::write(dir.path().join("mappings/sync.toml"), SYNC).unwrap();
    let (code, err) = check();
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains("cannot be reversed: it is not one-to-one (`60` ← `DONE`, `END`)"),
        "{err}"
    );
    std::fs::write(dir.path().join("mappings/codesets/sync.toml"), SETS).unwrap();
    let (code, err) = check();
    assert_eq!(code, Some(0), "{err}");
}

/// The push half never runs on its own (it could overwrite partner changes
/// not yet pulled), confidential orders keep their fields back, and
/// reconcile refuses a half.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_half_runs_after_its_pull_keeps_confidential_fields_back_and_is_not_reconciled() {
    let s = two_way(MySql, Postgres).await;
    let text = SYNC.replace(
        "[fields]",
        "[confidential]\ncolumn = \"is_confidential\"\nfields = [\"content\"]\n\n[fields]",
    );
    std::fs::write(s.scratch.dir.path().join("mappings/sync.toml"), text).unwrap();
    for (i, secret) in [(1, false), (2, true)] {
        s.province
            .exec(&format!(
                "INSERT INTO work_order (order_no, source_system, content, status, is_confidential, updated_at) \
                 VALUES ('HK0{i}', 'province', '诉求人张三的住址', '21', {secret}, clock_timestamp())"
            ))
            .await;
    }
    let cfg = s.scratch.path();
    let o = crate::files::hlx(&[
        "-c",
        cfg.to_str().unwrap(),
        "--format",
        "json",
        "run",
        "-m",
        "dept12315.sync.push",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = j
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["mapping"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["dept12315.sync.pull", "dept12315.sync.push"],
        "its pull half ran first"
    );
    let sent = s
        .partner
        .rows("t_order_sync", &["hotlineOrderNo", "content"], "hotlineOrderNo")
        .await;
    assert_eq!(
        sent,
        [["HK01", "诉求人张三的住址"], ["HK02", "NULL"]],
        "保密件: content kept back"
    );
    let o = crate::files::hlx(&["-c", cfg.to_str().unwrap(), "reconcile", "-m", "dept12315.sync.pull"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("is a half of the two-way mapping dept12315.sync"), "{err}");
}
