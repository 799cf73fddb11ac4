//! Faults: the process killed at any instant, connections dropped mid-run.
//! The rerun must end with the target equal to the source, no duplicates and
//! no lost rows.

use crate::helpers::*;
use hotline_exchange::db::Engine;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn spawn_run(cfg: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hlx"))
        .args(["-c", cfg.to_str().unwrap(), "run"])
        .env("HLX_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn killed_runs_resume_exactly(p: Engine, q: Engine) {
    let s = setup(p, q, "batch_size = 500").await;
    // 20,000 rows, 50 per watermark value: ties straddle batch boundaries.
    let rows: Vec<Row> = (0..20_000)
        .map(|i| row(i, Some(&ts("2024-03-01 08:00:00", (i as i64 / 50) * 1000))))
        .collect();
    insert(&s.partner, &rows).await;
    s.config(); // the config loads
    let hlx_cfg = s.scratch.path();
    // Migrate first so the progress query has tables to read.
    let st = Command::new(env!("CARGO_BIN_EXE_hlx"))
        .args(["-c", hlx_cfg.to_str().unwrap(), "migrate"])
        .status()
        .unwrap();
    assert!(st.success());
    let mut last = 0;
    for (round, delay_ms) in [(0, 0u64), (1, 7), (2, 23)] {
        let mut child = spawn_run(&hlx_cfg);
        // Kill once it has committed more batches than before (or after a
        // short delay, to land inside a batch).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let done = batches_committed(&s.province).await;
            if done > last || Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                last = done;
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let n = s.province.count("work_order").await;
        assert!(n <= 20_000, "round {round}: {n} rows");
    }
    let o = s.run().await;
    assert_eq!(o.status, hotline_exchange::exchange::Status::Ok, "{:?}", o.error);
    assert_eq!(s.province.count("work_order").await, 20_000);
    assert_eq!(
        s.target_keys().await,
        s.source_keys("1=1").await,
        "target equals source"
    );
    assert_eq!(
        s.province.count(&s.province.hlx("hlx_row_state")).await,
        20_000,
        "one checksum per row"
    );
    let interrupted = s
        .province
        .count(&format!("{} WHERE status = 'interrupted'", s.province.hlx("hlx_run")))
        .await;
    assert!(interrupted >= 1, "killed runs are recorded as interrupted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_runs_resume_exactly_sqlite() {
    killed_runs_resume_exactly(Sqlite, Sqlite).await
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_runs_resume_exactly_postgres() {
    killed_runs_resume_exactly(Postgres, Postgres).await
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_runs_resume_exactly_mariadb() {
    killed_runs_resume_exactly(MySql, MySql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_province_connection_fails_the_run_cleanly_and_the_rerun_completes() {
    let s = setup(MySql, Postgres, "batch_size = 500").await;
    let rows: Vec<Row> = (0..10_000)
        .map(|i| row(i, Some(&ts("2024-03-01 08:00:00", i as i64 * 1000))))
        .collect();
    insert(&s.partner, &rows).await;
    let cfg = s.scratch.path();
    assert!(Command::new(env!("CARGO_BIN_EXE_hlx"))
        .args(["-c", cfg.to_str().unwrap(), "migrate"])
        .status()
        .unwrap()
        .success());
    let mut child = spawn_run(&cfg);
    let deadline = Instant::now() + Duration::from_secs(60);
    while batches_committed(&s.province).await < 2 && Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let db = s.province.url.rsplit('/').next().unwrap().to_string();
    s.province.exec(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' AND application_name = 'hlx' AND pid <> pg_backend_pid()")).await;
    let _ = child.wait();
    let o = s.run().await;
    assert_eq!(o.status, hotline_exchange::exchange::Status::Ok, "{:?}", o.error);
    assert_eq!(s.province.count("work_order").await, 10_000);
    assert_eq!(s.target_keys().await, s.source_keys("1=1").await);
}

/// The sessions of database `db` that ended because their client went away
/// without saying goodbye (`pg_stat_database.sessions_abandoned`), once the
/// sessions started since `since` (`now()` text) have all ended.
async fn abandoned_once_gone(at: &TestDb, db: &str, since: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = at
            .scalar(&format!(
                "SELECT count(*)::text FROM pg_stat_activity WHERE datname = '{db}' \
                 AND backend_start >= '{since}' AND pid <> pg_backend_pid()"
            ))
            .await;
        if left.as_deref() == Some("0") || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A backend's counters reach the shared statistics as it exits.
    at.scalar(&format!(
        "SELECT sessions_abandoned::text FROM pg_stat_database WHERE datname = '{db}'"
    ))
    .await
    .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shot_run_ends_its_database_sessions_instead_of_dropping_them() {
    // A cron'd `hlx run` that exits with its connections open leaves a
    // "could not receive data from client: Connection reset by peer" in the
    // PostgreSQL log per connection per run; PostgreSQL counts such
    // sessions as abandoned in pg_stat_database, per database.
    let s = setup(Postgres, Postgres, "").await;
    insert(&s.partner, &[row(1, Some(&ts("2024-03-01 08:00:00", 0)))]).await;
    let name = |d: &TestDb| d.url.rsplit('/').next().unwrap().to_string();
    let (pdb, qdb) = (name(&s.partner), name(&s.province));
    let since = s.province.scalar("SELECT now()::text").await.unwrap();
    let before = (
        abandoned_once_gone(&s.province, &pdb, &since).await,
        abandoned_once_gone(&s.province, &qdb, &since).await,
    );
    let cfg = s.scratch.path();
    for args in [&["migrate"][..], &["run"], &["status"]] {
        let o = Command::new(env!("CARGO_BIN_EXE_hlx"))
            .args(["-c", cfg.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(s.province.count("work_order").await, 1, "the run ran");
    let after = (
        abandoned_once_gone(&s.province, &pdb, &since).await,
        abandoned_once_gone(&s.province, &qdb, &since).await,
    );
    assert_eq!(after, before, "sessions abandoned at (partner, province)");
}
