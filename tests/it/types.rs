//! The column types real partners use arrive without loss: DECIMAL, BIGINT
//! past 2^53, DATETIME(3)/TIMESTAMP(3)/TIMESTAMPTZ, DATE, booleans, text with
//! CJK, emoji, tabs, newlines, quotes and backslashes, NULLs, and MySQL's
//! zero dates (read as NULL rather than failing the batch).

use crate::helpers::*;
use hotline_exchange::db::Engine;
use hotline_exchange::exchange::Status;

const COLS: &[&str] = &["id", "amount", "big", "ts3", "tstz", "d", "note", "flag", "zero_dt"];

fn ddl(e: Engine, table: &str) -> String {
    match e {
        Postgres => format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, amount numeric(12,2), big bigint, ts3 timestamp(3), tstz timestamptz, \
             d date, note text, flag boolean, zero_dt timestamp, upd timestamp(6))"
        ),
        MySql => format!(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, amount DECIMAL(12,2), big BIGINT, ts3 DATETIME(3), tstz TIMESTAMP(3) NULL, \
             d DATE, note TEXT, flag TINYINT(1), zero_dt DATETIME NULL, upd DATETIME(6)) CHARACTER SET utf8mb4"
        ),
        Sqlite => format!(
            "CREATE TABLE {table} (id INTEGER PRIMARY KEY, amount NUMERIC, big INTEGER, ts3 TEXT, tstz TEXT, d TEXT, note TEXT, \
             flag INTEGER, zero_dt TEXT, upd TEXT)"
        ),
    }
}

const NOTE: &str = "工单内容 😡\t制表\n换行\r回车 “引号” 'single' \\ 反斜杠 \\N";

async fn fill(p: &TestDb) {
    let note = NOTE.replace('\'', "''");
    match p.engine {
        Postgres => {
            p.exec(&format!(
                "INSERT INTO stg_types VALUES (1, 12345678.90, 9007199254740993, '2024-03-01 08:30:00.123', '2024-03-01 08:30:00.123+08:00', \
                 '2024-03-01', E'{}', true, NULL, '2024-03-01 09:00:00.000001')",
                note.replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n").replace('\r', "\\r")
            ))
            .await
        }
        MySql => {
            // Zero dates need a permissive sql_mode, on the same connection as the insert.
            let mut tx = p.pool.begin().await.unwrap();
            hotline_exchange::db::sql::exec(&mut tx, "SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'", &[]).await.unwrap();
            hotline_exchange::db::sql::exec(
                &mut tx,
                "INSERT INTO stg_types VALUES (1, 12345678.90, 9007199254740993, '2024-03-01 08:30:00.123', '2024-03-01 00:30:00.123', \
                 '2024-03-01', ?, 1, '0000-00-00 00:00:00', '2024-03-01 09:00:00.000001')",
                &[NOTE.into()],
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
        Sqlite => {
            p.exec_args(
                "INSERT INTO stg_types VALUES (1, 12345678.90, 9007199254740993, '2024-03-01 08:30:00.123', '2024-03-01T08:30:00.123+08:00', \
                 '2024-03-01', ?, 1, NULL, '2024-03-01 09:00:00.000001')",
                &[NOTE.into()],
            )
            .await
        }
    }
    p.exec("INSERT INTO stg_types (id, upd) VALUES (2, '2024-03-01 09:00:00.000002')")
        .await;
}

const MAPPING_TYPES: &str = r#"
name = "haikou.types"
partner = "haikou"
[source]
table = "stg_types"
key = ["id"]
watermark = "upd"
[target]
table = "t_types"
key = ["id"]
[fields]
id = "id"
amount = "amount"
big = "big"
ts3 = "ts3"
tstz = "tstz"
d = "d"
note = "note"
flag = "flag"
zero_dt = "zero_dt"
upd = "upd"
"#;

async fn types_arrive_without_loss(e: Engine) {
    let p = fresh(e, "partner").await;
    let q = fresh(e, "province").await;
    p.exec(&ddl(e, "stg_types")).await;
    q.exec(&ddl(e, "t_types")).await;
    fill(&p).await;
    let s = scratch(&q.url, &[("haikou", &p.url)], &[("types.toml", MAPPING_TYPES)], "");
    let o = run_once(&load(&s.path())).await;
    assert_eq!(o[0].status, Status::Ok, "{:?}", o[0].error);
    assert_eq!(o[0].counts.inserted, 2);
    let mut src = p.rows("stg_types", COLS, "id").await;
    let got = q.rows("t_types", COLS, "id").await;
    if e == MySql {
        // The zero date arrives as NULL; everything else is identical.
        assert_eq!(src[0][8], "0000-00-00 00:00:00");
        src[0][8] = "NULL".into();
    }
    assert_eq!(got, src);
    assert!(got[0][6].contains('😡') && got[0][6].contains('\t') && got[0][6].contains('\\'));
    assert_eq!(got[0][2], "9007199254740993");
    // And nothing moves the second time.
    let o = run_once(&load(&s.path())).await;
    assert_eq!((o[0].counts.inserted, o[0].counts.updated), (0, 0), "{:?}", o[0].counts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_types_arrive_without_loss_postgres() {
    types_arrive_without_loss(Postgres).await
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_types_arrive_without_loss_mariadb() {
    types_arrive_without_loss(MySql).await
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_types_arrive_without_loss_sqlite() {
    types_arrive_without_loss(Sqlite).await
}
