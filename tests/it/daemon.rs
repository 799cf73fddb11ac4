//! `hlx daemon` as systemd runs it: the real binary as a child process,
//! against real PostgreSQL and MariaDB, stopped and reloaded with signals.

use crate::helpers::*;
use hotline_exchange::db::Engine;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A daemon child whose log (stderr) goes to a file the test can read.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(cfg: &Path, env: &[(&str, &str)]) -> Daemon {
        let log = cfg.with_file_name(format!("daemon-{}.log", fastrand_suffix()));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hlx"));
        cmd.args(["-c", cfg.to_str().unwrap(), "daemon"])
            .env("HLX_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Daemon {
            child: cmd.spawn().unwrap(),
            log,
        }
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill -{sig}");
    }

    /// Waits for the exit (after a signal sent elsewhere).
    fn wait_exit(mut self, limit: Duration) -> (i32, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st.code().unwrap_or(-1), self.log());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the daemon did not exit within {limit:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        let mut s = String::new();
        std::fs::File::open(&self.log).unwrap().read_to_string(&mut s).unwrap();
        s
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the log to contain `needle`.
    async fn wait_log(&mut self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.log().contains(needle) {
            assert!(self.alive(), "the daemon exited early; log:\n{}", self.log());
            assert!(
                Instant::now() < deadline,
                "`{needle}` not logged within {limit:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM and the exit code.
    fn stop(self, limit: Duration) -> (i32, String) {
        self.signal("TERM");
        self.wait_exit(limit)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fastrand_suffix() -> String {
    format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// Waits until `table` on `db` holds `n` rows.
async fn wait_count(db: &TestDb, table: &str, n: i64, limit: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        // Until the daemon has migrated, the table does not exist yet.
        let c = match hotline_exchange::db::sql::fetch_pool(&db.pool, &format!("SELECT COUNT(*) FROM {table}"), &[])
            .await
        {
            Ok(r) => r[0].i64(0).unwrap().unwrap_or(0),
            Err(_) => -1,
        };
        if c == n {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < limit, "{table}: {c} rows, expected {n} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A timestamp a little in the past, as the staging table stores it.
fn now_ts(offset_us: i64) -> String {
    (chrono::Utc::now().naive_utc() + chrono::Duration::hours(8) + chrono::Duration::microseconds(offset_us))
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

fn set_schedule(cfg: &Path, schedule: &str) {
    let text = std::fs::read_to_string(cfg).unwrap();
    let text = text.replace("schedule = \"every 1m\"", &format!("schedule = \"{schedule}\""));
    std::fs::write(cfg, text).unwrap();
}

async fn rows_inserted_while_it_runs_arrive_within_two_periods(p: Engine, q: Engine) {
    let s = setup(p, q, "").await;
    let cfg = s.scratch.path();
    set_schedule(&cfg, "every 2s");
    let first: Vec<Row> = (0..10).map(|i| row(i, Some(&now_ts(-60_000_000 + i as i64)))).collect();
    insert(&s.partner, &first).await;
    let mut d = Daemon::start(&cfg, &[]);
    // The first run starts at once (start-up time is not what is measured).
    wait_count(&s.province, "work_order", 10, Duration::from_secs(60)).await;
    d.wait_log("run ok", Duration::from_secs(10)).await;
    for round in 0..3 {
        let more: Vec<Row> = (0..5)
            .map(|i| row(100 + round * 10 + i, Some(&now_ts(i as i64))))
            .collect();
        insert(&s.partner, &more).await;
        // Two periods (4 s), plus 2 s for the run itself on a loaded CI machine.
        let took = wait_count(
            &s.province,
            "work_order",
            10 + 5 * (round as i64 + 1),
            Duration::from_secs(6),
        )
        .await;
        eprintln!("round {round}: arrived after {took:?}");
    }
    assert_eq!(s.target_keys().await, s.source_keys("1=1").await);
    let (code, log) = d.stop(Duration::from_secs(40));
    assert_eq!(code, 0, "log:\n{log}");
    assert!(
        log.contains("mapping=haikou.work_order"),
        "log lines name the mapping:\n{log}"
    );
    assert!(log.contains("run_id="), "log lines carry the run id:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_inserted_while_the_daemon_runs_arrive_within_two_periods_mariadb_to_postgres() {
    rows_inserted_while_it_runs_arrive_within_two_periods(MySql, Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_inserted_while_the_daemon_runs_arrive_within_two_periods_postgres_to_mariadb() {
    rows_inserted_while_it_runs_arrive_within_two_periods(Postgres, MySql).await
}

async fn sigterm_during_a_large_run_exits_0_and_the_rerun_is_exact(p: Engine, q: Engine) {
    let s = setup(p, q, "batch_size = 500").await;
    let cfg = s.scratch.path();
    let rows: Vec<Row> = (0..40_000)
        .map(|i| row(i, Some(&ts("2024-03-01 08:00:00", (i as i64 / 20) * 1000))))
        .collect();
    insert(&s.partner, &rows).await;
    assert!(Command::new(env!("CARGO_BIN_EXE_hlx"))
        .args(["-c", cfg.to_str().unwrap(), "migrate"])
        .status()
        .unwrap()
        .success());
    let mut d = Daemon::start(&cfg, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while batches_committed(&s.province).await < 3 {
        assert!(d.alive() && Instant::now() < deadline, "log:\n{}", d.log());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (code, log) = d.stop(Duration::from_secs(40));
    assert_eq!(code, 0, "SIGTERM exits 0; log:\n{log}");
    let landed = s.province.count("work_order").await;
    assert!(landed < 40_000, "stopped before the end ({landed} rows)");
    assert_eq!(landed % 500, 0, "whole batches only: {landed} rows");
    let stopped = s
        .province
        .count(&format!("{} WHERE status = 'stopped'", s.province.hlx("hlx_run")))
        .await;
    assert_eq!(stopped, 1, "the run is recorded as stopped; log:\n{log}");
    // The rerun moves exactly the rest.
    let o = s.run().await;
    assert_eq!(o.status, hotline_exchange::exchange::Status::Ok, "{:?}", o.error);
    assert_eq!(o.counts.inserted, 40_000 - landed as u64);
    assert_eq!(s.target_keys().await, s.source_keys("1=1").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_large_run_exits_0_and_the_rerun_is_exact_postgres() {
    sigterm_during_a_large_run_exits_0_and_the_rerun_is_exact(Postgres, Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_large_run_exits_0_and_the_rerun_is_exact_mariadb() {
    sigterm_during_a_large_run_exits_0_and_the_rerun_is_exact(MySql, MySql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_mapping_keeps_the_old_config_and_a_good_one_takes_effect() {
    let s = setup(MySql, Postgres, "").await;
    let cfg = s.scratch.path();
    set_schedule(&cfg, "every 1s");
    insert(&s.partner, &[row(1, Some(&now_ts(-1_000_000)))]).await;
    let mut d = Daemon::start(&cfg, &[]);
    wait_count(&s.province, "work_order", 1, Duration::from_secs(60)).await;

    let mapping = cfg.with_file_name("mappings").join("haikou.toml");
    std::fs::write(&mapping, MAPPING.replace("[fields]", "[fields\nbroken = ")).unwrap();
    d.signal("HUP");
    d.wait_log("reload refused", Duration::from_secs(20)).await;
    let log = d.log();
    assert!(log.contains("haikou.toml:"), "the error names the file:\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("haikou.toml:") && l.contains("reload refused")),
        "with line and column:\n{log}"
    );
    // The old config still moves rows.
    insert(&s.partner, &[row(2, Some(&now_ts(0)))]).await;
    wait_count(&s.province, "work_order", 2, Duration::from_secs(20)).await;

    // A good change takes effect for the next runs.
    std::fs::write(
        &mapping,
        MAPPING.replace(
            "source_system       = { value = \"haikou\" }",
            "source_system       = { value = \"haikou_v2\" }",
        ),
    )
    .unwrap();
    d.signal("HUP");
    d.wait_log("configuration reloaded", Duration::from_secs(20)).await;
    insert(&s.partner, &[row(3, Some(&now_ts(1)))]).await;
    wait_count(&s.province, "work_order", 3, Duration::from_secs(20)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = s
            .province
            .scalar("SELECT source_system FROM work_order WHERE order_no = 'HK00000003'")
            .await;
        if v.as_deref() == Some("haikou_v2") {
            break;
        }
        assert!(Instant::now() < deadline, "the reloaded mapping was not used: {v:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, log) = d.stop(Duration::from_secs(40));
    assert_eq!(code, 0, "log:\n{log}");
}

const SANYA: &str = r#"
name = "sanya.work_order"
partner = "sanya"

[source]
table = "stg_gd_info"
key = ["GDBH"]
watermark = "UPDATE_TIME"

[target]
table = "work_order"
key = ["order_no"]

[fields]
order_no            = "GDBH"
source_system       = { value = "sanya" }
source_order_no     = "GDBH"
content             = { from = "SQNR", required = true }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_partner_does_not_stop_another_and_catches_up_when_it_returns() {
    let haikou = fresh(Postgres, "haikou").await;
    let sanya = fresh(MySql, "sanya").await;
    let q = fresh(Postgres, "province").await;
    create_stage(&haikou).await;
    create_stage(&sanya).await;
    let sc = scratch(
        &q.url,
        &[("haikou", &haikou.url), ("sanya", &sanya.url)],
        &[("haikou.toml", MAPPING), ("sanya.toml", SANYA)],
        "",
    );
    let cfg = sc.path();
    set_schedule(&cfg, "every 1s");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).unwrap() + "\n[daemon]\nretry_min = \"1s\"\nretry_max = \"2s\"\n",
    )
    .unwrap();
    insert(&haikou, &[row(1, Some(&now_ts(-1_000_000)))]).await;
    insert(&sanya, &[row(5001, Some(&now_ts(-1_000_000)))]).await;
    let mut d = Daemon::start(&cfg, &[]);
    wait_count(&q, "work_order", 2, Duration::from_secs(60)).await;

    // haikou moves to a port where nothing listens.
    let good = std::fs::read_to_string(&cfg).unwrap();
    // The URL may carry a password (user:password@host:port/db).
    let host_port = haikou.url.rsplit('@').next().unwrap().split('/').next().unwrap();
    let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
    let down = haikou.url.replacen(host_port, &format!("{host}:1"), 1);
    assert_ne!(down, haikou.url);
    std::fs::write(&cfg, good.replace(&haikou.url, &down)).unwrap();
    d.signal("HUP");
    d.wait_log("configuration reloaded", Duration::from_secs(20)).await;
    insert(&haikou, &[row(2, Some(&now_ts(0)))]).await;
    insert(&sanya, &[row(5002, Some(&now_ts(0)))]).await;
    // sanya keeps its schedule…
    wait_count(&q, "work_order", 3, Duration::from_secs(20)).await;
    d.wait_log("retrying in", Duration::from_secs(20)).await;
    insert(&sanya, &[row(5003, Some(&now_ts(1)))]).await;
    wait_count(&q, "work_order", 4, Duration::from_secs(20)).await;
    assert!(d.alive());
    let keys = q.rows("work_order", &["order_no"], "order_no").await;
    assert!(!keys.iter().any(|k| k[0] == "HK00000002"), "haikou is down: {keys:?}");

    // …and haikou catches up on its own once it is back.
    std::fs::write(&cfg, good).unwrap();
    d.signal("HUP");
    wait_count(&q, "work_order", 5, Duration::from_secs(30)).await;
    let (code, log) = d.stop(Duration::from_secs(40));
    assert_eq!(code, 0, "log:\n{log}");
    assert!(log.contains("partner=haikou"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notify_protocol_says_ready_status_watchdog_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let s = setup(Postgres, Postgres, "").await;
    let cfg = s.scratch.path();
    insert(&s.partner, &[row(1, Some(&now_ts(-1_000_000)))]).await;
    let sock_path = cfg.with_file_name("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let d = Daemon::start(
        &cfg,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut seen: Vec<String> = Vec::new();
    // Reads notifications until one contains `until`.
    let read = |seen: &mut Vec<String>, until: &str| {
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(30);
        while !seen.iter().any(|m| m.contains(until)) {
            assert!(Instant::now() < deadline, "no {until} in {seen:?}");
            let n = sock.recv(&mut buf).unwrap();
            seen.push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
    };
    read(&mut seen, "READY=1");
    let ready = seen.iter().position(|m| m.contains("READY=1")).unwrap();
    assert!(seen[ready].contains("STATUS="), "READY comes with a status: {seen:?}");
    read(&mut seen, "WATCHDOG=1");
    // After the first run, the status names the mappings and says none fail.
    read(&mut seen, "STATUS=1 mapping(s), none failing; last ok");
    d.signal("TERM");
    read(&mut seen, "STOPPING=1");
    let (code, log) = d.wait_exit(Duration::from_secs(40));
    assert_eq!(code, 0, "log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_province_dropping_every_connection_fails_runs_cleanly_and_the_daemon_resumes() {
    let s = setup(MySql, Postgres, "").await;
    let cfg = s.scratch.path();
    set_schedule(&cfg, "every 1s");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).unwrap() + "\n[daemon]\nretry_min = \"1s\"\nretry_max = \"2s\"\n",
    )
    .unwrap();
    insert(&s.partner, &[row(1, Some(&now_ts(-1_000_000)))]).await;
    let mut d = Daemon::start(&cfg, &[]);
    wait_count(&s.province, "work_order", 1, Duration::from_secs(60)).await;
    // What a province restart looks like from hlx: every connection dies.
    let db = s.province.url.rsplit('/').next().unwrap().to_string();
    for _ in 0..3 {
        s.province
            .exec(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' \
                 AND application_name = 'hlx' AND pid <> pg_backend_pid()"
            ))
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    insert(&s.partner, &[row(2, Some(&now_ts(0)))]).await;
    wait_count(&s.province, "work_order", 2, Duration::from_secs(30)).await;
    assert!(d.alive(), "the daemon does not exit; log:\n{}", d.log());
    assert_eq!(s.target_keys().await, s.source_keys("1=1").await);
    let (code, log) = d.stop(Duration::from_secs(40));
    assert_eq!(code, 0, "log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_writes_yesterdays_report_with_the_log_head() {
    let s = setup(Sqlite, Sqlite, "").await;
    let cfg = s.scratch.path();
    let reports = s.scratch.dir.path().join("reports");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).unwrap() + &format!("\n[report]\ndir = \"{}\"\n", reports.display()),
    )
    .unwrap();
    let mut d = Daemon::start(&cfg, &[]);
    d.wait_log("daily report", Duration::from_secs(30)).await;
    let yesterday = (chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        - chrono::Duration::days(1))
    .format("%Y-%m-%d")
    .to_string();
    let json = std::fs::read_to_string(reports.join(format!("hlx-report-{yesterday}.json"))).unwrap();
    let j: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(j["log_head"]["hash"].as_str().map(str::len), Some(64));
    assert!(reports.join(format!("hlx-report-{yesterday}.html")).exists());
    assert!(d.log().contains("exchange log head"), "{}", d.log());
    let (code, _) = d.stop(Duration::from_secs(40));
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_reconcile_propagates_a_hard_delete() {
    let s = setup(MySql, Postgres, "").await;
    let cfg = s.scratch.path();
    let mapping = s.scratch.dir.path().join("mappings/haikou.toml");
    let text = std::fs::read_to_string(&mapping).unwrap();
    std::fs::write(
        &mapping,
        text.replace(
            "partner = \"haikou\"\n",
            "partner = \"haikou\"\nreconcile = \"every 1s\"\n",
        ),
    )
    .unwrap();
    insert(
        &s.partner,
        &[row(1, Some(&now_ts(-2_000_000))), row(2, Some(&now_ts(-1_000_000)))],
    )
    .await;
    let d = Daemon::start(&cfg, &[]);
    wait_count(&s.province, "work_order", 2, Duration::from_secs(30)).await;
    // A hard delete: no delta shows it; the scheduled reconcile does.
    s.partner
        .exec("DELETE FROM stg_gd_info WHERE GDBH = 'HK00000001'")
        .await;
    wait_count(&s.province, "work_order", 1, Duration::from_secs(30)).await;
    let (code, log) = d.stop(Duration::from_secs(40));
    assert_eq!(code, 0, "log:\n{log}");
    assert!(log.contains("reconcile repaired drift"), "{log}");
    assert_eq!(s.target_keys().await, ["HK00000002"]);
}
