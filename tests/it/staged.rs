//! A first load into PostgreSQL writes the next batch on a second connection
//! while the batch before waits to commit (src/exchange/pipeline.rs). What a
//! DBA checks: batches still commit in the order they were read, the state
//! commits with its rows, a lock or a dropped connection of either batch
//! loses nothing and duplicates nothing.

use crate::helpers::*;
use hotline_exchange::db::sql::{exec, fetch_pool};
use hotline_exchange::db::Engine;
use hotline_exchange::exchange::Status;
use std::time::{Duration, Instant};

/// The hlx backends that hold a write lock on the target table, with their
/// state (`active`, `idle in transaction`) and whether they wait on a lock.
async fn writers(q: &TestDb) -> Vec<(i32, String, bool)> {
    let rows = fetch_pool(
        &q.pool,
        "SELECT a.pid::bigint, a.state, (a.wait_event_type IS NOT DISTINCT FROM 'Lock') \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.relation = 'work_order'::regclass AND l.mode = 'RowExclusiveLock' \
         AND a.application_name = 'hlx' ORDER BY a.pid",
        &[],
    )
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.i64(0).unwrap().unwrap() as i32,
                r.text(1).unwrap().unwrap_or_default(),
                r.bool(2).unwrap().unwrap_or(false),
            )
        })
        .collect()
}

/// Waits until two hlx backends hold a write lock on the target, one of
/// them waiting on a lock (the first batch's tail, on the held log head).
async fn wait_for_writers(q: &TestDb) -> Vec<(i32, String, bool)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let w = writers(q).await;
        if w.len() >= 2 && w.iter().any(|(_, _, waits)| *waits) {
            return w;
        }
        assert!(
            Instant::now() < deadline,
            "never saw two hlx transactions writing the target at once, one waiting to commit: {w:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Holds the exchange log's head row, so that the first batch's tail (which
/// appends to the log last) waits, as a slow commit would.
async fn hold_log_head(q: &TestDb) -> hotline_exchange::db::Tx {
    let mut tx = q.pool.begin().await.unwrap();
    exec(
        &mut tx,
        "SELECT seq FROM hlx.hlx_exchange_log_head WHERE id = 1 FOR UPDATE",
        &[],
    )
    .await
    .unwrap();
    tx
}

async fn migrate(s: &Setup) {
    hotline_exchange::state::State::new(s.province.pool.clone())
        .migrate(false)
        .await
        .unwrap();
}

/// The batch entries of the exchange log, in seq order, as (wm_to, inserted).
async fn logged_batches(q: &TestDb) -> Vec<(String, i64)> {
    fetch_pool(
        &q.pool,
        "SELECT wm_to, inserted FROM hlx.hlx_exchange_log WHERE kind = 'batch' ORDER BY seq",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.text(0).unwrap().unwrap_or_default(), r.i64(1).unwrap().unwrap()))
    .collect()
}

/// 2,000 rows in batches of 200 at a partner on `p`, a PostgreSQL province
/// migrated, and its exchange log's head held.
async fn ten_batches_and_the_log_head_held(p: Engine) -> (Setup, hotline_exchange::db::Tx) {
    let s = setup(p, Postgres, "batch_size = 200").await;
    let rows: Vec<Row> = (0..2000)
        .map(|i| row(i, Some(&ts("2024-03-01 08:00:00", i as i64 * 1000))))
        .collect();
    insert(&s.partner, &rows).await;
    migrate(&s).await;
    let held = hold_log_head(&s.province).await;
    (s, held)
}

async fn the_next_batch_is_written_while_the_one_before_waits_to_commit(p: Engine) {
    let (s, held) = ten_batches_and_the_log_head_held(p).await;
    let cfg = s.config();
    let watch = async {
        // The first batch waits for the log's head; the second is written beside it.
        wait_for_writers(&s.province).await;
        // And no third: at most two batches are in flight (memory stays flat).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let w = writers(&s.province).await;
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(
            s.province.count("work_order").await,
            0,
            "nothing is visible before the first batch commits"
        );
        held.rollback().await.unwrap();
    };
    let (mut outs, ()) = tokio::join!(run_once(&cfg), watch);
    let o = outs.pop().unwrap();
    assert_eq!(o.status, Status::Ok, "{:?}", o.error);
    assert_eq!((o.counts.read, o.counts.inserted, o.counts.batches), (2000, 2000, 10));
    assert_eq!(s.target_keys().await, s.source_keys("1=1").await);
    assert_eq!(s.province.count(&s.province.hlx("hlx_row_state")).await, 2000);
    // Committed in the order read: each entry's position is past the one before.
    let logged = logged_batches(&s.province).await;
    assert_eq!(logged.len(), 10, "{logged:?}");
    assert!(logged.windows(2).all(|w| w[0].0 < w[1].0), "{logged:?}");
    assert!(logged.iter().all(|(_, n)| *n == 200), "{logged:?}");
    let v = hotline_exchange::exchange_log::verify(&s.province.pool).await.unwrap();
    assert!(v.broken.is_none(), "{:?}", v.broken);
    // The next run has nothing to do.
    let again = s.run().await;
    assert_eq!(
        (again.counts.inserted, again.counts.updated),
        (0, 0),
        "{:?}",
        again.counts
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_batch_is_written_while_the_one_before_waits_to_commit_postgres() {
    the_next_batch_is_written_while_the_one_before_waits_to_commit(Postgres).await
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_batch_is_written_while_the_one_before_waits_to_commit_mariadb_to_postgres() {
    the_next_batch_is_written_while_the_one_before_waits_to_commit(MySql).await
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_batch_is_written_while_the_one_before_waits_to_commit_sqlite_to_postgres() {
    the_next_batch_is_written_while_the_one_before_waits_to_commit(Sqlite).await
}

/// A unique index of the province's besides the key: two rows of adjacent
/// batches collide on it. Whichever batch's COPY gets there first, the row
/// read first lands and the later one is quarantined, as one batch at a
/// time would have it, and the run does not hang on the two transactions'
/// locks (the earlier batch waiting on the later one, which commits only
/// after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_two_batches_in_flight_that_collide_on_a_unique_index_land_in_read_order() {
    for (first, second) in [(199usize, 200usize), (150, 201), (0, 399)] {
        let s = setup(MySql, Postgres, "batch_size = 200").await;
        migrate(&s).await;
        s.province
            .exec("CREATE UNIQUE INDEX work_order_content_once ON work_order (content)")
            .await;
        let mut rows: Vec<Row> = (0..1000)
            .map(|i| row(i, Some(&ts("2024-03-01 08:00:00", i as i64 * 1000))))
            .collect();
        rows[second].sqnr = rows[first].sqnr.clone();
        insert(&s.partner, &rows).await;
        // The earlier batch dawdles just before its colliding row, so the
        // later one gets there first: the earlier one then waits on it.
        s.province
            .exec(&format!(
                "CREATE FUNCTION dawdle() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.order_no = '{}' THEN PERFORM pg_sleep(1); END IF; RETURN NEW; END $$",
                rows[first].gdbh
            ))
            .await;
        s.province
            .exec("CREATE TRIGGER dawdle BEFORE INSERT ON work_order FOR EACH ROW EXECUTE FUNCTION dawdle()")
            .await;
        let o = tokio::time::timeout(Duration::from_secs(60), s.run())
            .await
            .expect("the run finishes");
        assert_eq!(o.status, Status::Ok, "{:?}", o.error);
        assert_eq!(
            (o.counts.inserted, o.counts.rejected),
            (999, 1),
            "rows {first}, {second}: {:?}",
            o.counts
        );
        let qt = s.province.hlx("hlx_quarantine");
        let got = s.province.rows(&qt, &["row_key", "rule"], "row_key").await;
        assert_eq!(
            got,
            vec![vec![rows[second].gdbh.clone(), "target".to_string()]],
            "rows {first}, {second}"
        );
        let mut want = s.source_keys("1=1").await;
        want.retain(|k| *k != rows[second].gdbh);
        assert_eq!(s.target_keys().await, want);
        assert_eq!(s.province.count(&s.province.hlx("hlx_row_state")).await, 999);
        let v = hotline_exchange::exchange_log::verify(&s.province.pool).await.unwrap();
        assert!(v.broken.is_none(), "{:?}", v.broken);
    }
}

/// Either connection of the two batches in flight dropped: the run fails,
/// what committed is a prefix, and the rerun ends with the target equal to
/// the source, one state row per row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_of_either_batch_in_flight_loses_nothing() {
    for victim in ["waiting to commit", "staged after it"] {
        let (s, held) = ten_batches_and_the_log_head_held(MySql).await;
        let cfg = s.config();
        let kill = async {
            let w = wait_for_writers(&s.province).await;
            let pid = w
                .iter()
                .find(|(_, _, waits)| *waits == (victim == "waiting to commit"))
                .unwrap_or_else(|| panic!("{victim}: {w:?}"))
                .0;
            s.province.exec(&format!("SELECT pg_terminate_backend({pid})")).await;
            held.rollback().await.unwrap();
        };
        let (mut outs, ()) = tokio::join!(run_once(&cfg), kill);
        let o = outs.pop().unwrap();
        assert_eq!(o.status, Status::Failed, "{victim}: {:?}", o.counts);
        let landed = s.province.count("work_order").await;
        assert!(
            landed <= 200,
            "{victim}: at most the first batch committed, {landed} rows"
        );
        assert_eq!(
            s.province.count(&s.province.hlx("hlx_row_state")).await,
            landed,
            "{victim}: state committed with its rows"
        );

        let o = s.run().await;
        assert_eq!(o.status, Status::Ok, "{victim}: {:?}", o.error);
        assert_eq!(s.target_keys().await, s.source_keys("1=1").await, "{victim}");
        assert_eq!(
            s.province.count(&s.province.hlx("hlx_row_state")).await,
            2000,
            "{victim}"
        );
    }
}
