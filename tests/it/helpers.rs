//! Fresh databases per test on each engine, and a scratch exchange around them.
//!
//! PostgreSQL and MariaDB must be running (CI starts them); a test that cannot
//! reach its server fails, it does not skip. Override the admin URLs with
//! `HLX_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) and
//! `HLX_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/mysql`).

use hotline_exchange::config::{self, Config, Endpoint};
use hotline_exchange::db::sql::{exec_pool, fetch_pool, Arg};
use hotline_exchange::db::{Engine, Pool};
use hotline_exchange::exchange::{Exchange, Outcome};
use hotline_exchange::shutdown::Shutdown;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub use hotline_exchange::db::Engine::{MySql, Postgres, Sqlite};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn pg_admin() -> String {
    std::env::var("HLX_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}
fn my_admin() -> String {
    std::env::var("HLX_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".into())
}

fn zone() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600).unwrap()
}

/// A database made for one test.
pub struct TestDb {
    pub engine: Engine,
    pub url: String,
    pub pool: Pool,
    _dir: Option<tempfile::TempDir>,
}

/// Creates an empty database on `engine`.
pub async fn fresh(engine: Engine, tag: &str) -> TestDb {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let name = format!("hlx_it_{}_{}_{n}", std::process::id(), tag);
    match engine {
        Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/{name}.db", dir.path().display());
            TestDb::open(engine, url, true, Some(dir)).await
        }
        Postgres => server_db(engine, &pg_admin(), &format!("CREATE DATABASE {name}"), &name).await,
        MySql => {
            server_db(
                engine,
                &my_admin(),
                &format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"),
                &name,
            )
            .await
        }
    }
}

/// Creates database `name` on a server through its admin URL and connects to it.
async fn server_db(engine: Engine, admin_url: &str, create: &str, name: &str) -> TestDb {
    let admin = Pool::connect(&Endpoint::from_url(admin_url, zone()).unwrap(), false)
        .await
        .unwrap_or_else(|e| panic!("{engine:?} is needed for this test and is not reachable at {admin_url}: {e:#}"));
    exec_pool(&admin, create, &[]).await.unwrap();
    admin.close().await;
    TestDb::open(engine, replace_db(admin_url, name), false, None).await
}

fn replace_db(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{db}")
}

impl TestDb {
    async fn open(engine: Engine, url: String, create: bool, dir: Option<tempfile::TempDir>) -> TestDb {
        let pool = Pool::connect(&Endpoint::from_url(&url, zone()).unwrap(), create)
            .await
            .unwrap();
        TestDb {
            engine,
            url,
            pool,
            _dir: dir,
        }
    }

    pub async fn exec(&self, sql: &str) {
        exec_pool(&self.pool, sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:#}"));
    }

    pub async fn exec_args(&self, sql: &str, args: &[Arg]) {
        exec_pool(&self.pool, sql, args)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:#}"));
    }

    /// `SELECT` with every column cast to text; NULL as "NULL".
    pub async fn rows(&self, table: &str, cols: &[&str], order: &str) -> Vec<Vec<String>> {
        let cast = |c: &str| match self.engine {
            Postgres => format!("{c}::text"),
            MySql => format!("CAST({c} AS CHAR)"),
            Sqlite => format!("CAST({c} AS TEXT)"),
        };
        let sql = format!(
            "SELECT {} FROM {table} ORDER BY {order}",
            cols.iter().map(|c| cast(c)).collect::<Vec<_>>().join(", ")
        );
        let rows = fetch_pool(&self.pool, &sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:#}"));
        rows.iter()
            .map(|r| {
                (0..cols.len())
                    .map(|i| r.text(i).unwrap().unwrap_or_else(|| "NULL".into()))
                    .collect()
            })
            .collect()
    }

    pub async fn count(&self, table: &str) -> i64 {
        let r = fetch_pool(&self.pool, &format!("SELECT COUNT(*) FROM {table}"), &[])
            .await
            .unwrap();
        r[0].i64(0).unwrap().unwrap()
    }

    pub async fn scalar(&self, sql: &str) -> Option<String> {
        let r = fetch_pool(&self.pool, sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:#}"));
        r.first().and_then(|r| r.text(0).unwrap())
    }

    /// hlx's table name for this engine (schema `hlx` on PostgreSQL).
    pub fn hlx(&self, table: &str) -> String {
        match self.engine {
            Postgres => format!("hlx.{table}"),
            _ => table.to_string(),
        }
    }

    /// A parameter for a timestamp column of the staging table.
    pub fn ts_param(&self) -> &'static str {
        match self.engine {
            Postgres => "CAST(? AS timestamp(6))",
            _ => "?",
        }
    }
}

/// The staging table every pull test uses: a Haikou-like shape.
pub async fn create_stage(p: &TestDb) {
    let ts = match p.engine {
        Postgres => "timestamp(6)",
        MySql => "datetime(6)",
        Sqlite => "TEXT",
    };
    p.exec(&format!(
        "CREATE TABLE stg_gd_info (GDBH varchar(32) NOT NULL PRIMARY KEY, LDSJ varchar(14), LDHM varchar(20), QDLX varchar(4), \
         SQNR text, WTFL varchar(20), UPDATE_TIME {ts} NULL, OP_FLAG char(1))"
    ))
    .await;
    p.exec("CREATE INDEX stg_ut ON stg_gd_info (UPDATE_TIME, GDBH)").await;
}

/// One staging row.
#[derive(Clone, Debug)]
pub struct Row {
    pub gdbh: String,
    pub ldsj: String,
    pub ldhm: String,
    pub qdlx: String,
    pub sqnr: String,
    pub wtfl: String,
    pub ut: Option<String>,
    pub op: String,
}

pub fn row(i: usize, ut: Option<&str>) -> Row {
    Row {
        gdbh: format!("HK{i:08}"),
        ldsj: format!("202403{:02}083000", 1 + i % 28),
        ldhm: format!("+86 138-{:04}-{:04}", i % 10000, (i * 7) % 10000),
        qdlx: format!("{}", 1 + i % 3),
        sqnr: format!("路灯不亮 第{i}号 😡"),
        wtfl: "0102".into(),
        ut: ut.map(str::to_string),
        op: "I".into(),
    }
}

/// Inserts rows (in chunks) into the staging table.
pub async fn insert(p: &TestDb, rows: &[Row]) {
    for chunk in rows.chunks(500) {
        let one = format!("(?, ?, ?, ?, ?, ?, {}, ?)", p.ts_param());
        let sql = format!(
            "INSERT INTO stg_gd_info (GDBH, LDSJ, LDHM, QDLX, SQNR, WTFL, UPDATE_TIME, OP_FLAG) VALUES {}",
            vec![one; chunk.len()].join(", ")
        );
        let mut args = Vec::new();
        for r in chunk {
            args.extend([
                Arg::from(r.gdbh.as_str()),
                r.ldsj.as_str().into(),
                r.ldhm.as_str().into(),
                r.qdlx.as_str().into(),
                r.sqnr.as_str().into(),
                r.wtfl.as_str().into(),
                Arg::Text(r.ut.clone()),
                r.op.as_str().into(),
            ]);
        }
        p.exec_args(&sql, &args).await;
    }
}

pub const MAPPING: &str = r#"
name = "haikou.work_order"
partner = "haikou"

[source]
table = "stg_gd_info"
key = ["GDBH"]
watermark = "UPDATE_TIME"
deleted = { column = "OP_FLAG", equals = "D" }

[target]
table = "work_order"
key = ["order_no"]

[fields]
order_no            = "GDBH"
source_system       = { value = "haikou" }
source_order_no     = "GDBH"
call_time           = { from = "LDSJ", datetime = ["%Y%m%d%H%M%S", "%Y%m%d%H%M"] }
caller_phone_masked = { from = "LDHM", mask = "phone" }
channel             = { from = "QDLX", codeset = "channel" }
category_code       = { from = "WTFL", appeal_code = true }
content             = { from = "SQNR", required = true, max_chars = 50 }
updated_at          = { from = "UPDATE_TIME", datetime = true }
"#;

pub const CODESETS: &str = r#"
[channel]
"1" = "01"
"2" = "02"
"3" = "03"
"#;

/// A scratch directory with exchange.toml, mappings and code sets.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("exchange.toml")
    }
}

/// Writes a config for a province and partners (name, url), the given
/// mapping files and code sets, plus `extra` lines in `[defaults]`.
pub fn scratch(province: &str, partners: &[(&str, &str)], mappings: &[(&str, &str)], defaults: &str) -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("mappings/codesets")).unwrap();
    let mut cfg = format!(
        "[province]\nurl = \"{province}\"\n\n[defaults]\nschedule = \"every 1m\"\ntimezone = \"+08:00\"\n{defaults}\n"
    );
    for (name, url) in partners {
        cfg.push_str(&format!(
            "\n[[partner]]\nname = \"{name}\"\nurl = \"{url}\"\nconnect_timeout = \"3s\"\n"
        ));
    }
    std::fs::write(dir.path().join("exchange.toml"), cfg).unwrap();
    for (file, text) in mappings {
        std::fs::write(dir.path().join("mappings").join(file), text).unwrap();
    }
    std::fs::write(dir.path().join("mappings/codesets/haikou.toml"), CODESETS).unwrap();
    Scratch { dir }
}

pub fn load(path: &Path) -> Arc<Config> {
    Arc::new(config::load(path).unwrap_or_else(|d| panic!("config should load:\n{d}")))
}

/// Runs every mapping once, in process.
pub async fn run_once(cfg: &Arc<Config>) -> Vec<Outcome> {
    let ex = Exchange::open(cfg.clone(), true).await.unwrap();
    let out = ex.run_all(&[], &Shutdown::new()).await;
    ex.province.close().await;
    out
}

/// A partner and a province on the given engines, the staging table and the
/// standard mapping, ready to run.
pub struct Setup {
    pub partner: TestDb,
    pub province: TestDb,
    pub scratch: Scratch,
}

pub async fn setup(partner: Engine, province: Engine, defaults: &str) -> Setup {
    let p = fresh(partner, "partner").await;
    let q = fresh(province, "province").await;
    create_stage(&p).await;
    let scratch = scratch(&q.url, &[("haikou", &p.url)], &[("haikou.toml", MAPPING)], defaults);
    Setup {
        partner: p,
        province: q,
        scratch,
    }
}

impl Setup {
    pub fn config(&self) -> Arc<Config> {
        load(&self.scratch.path())
    }

    pub async fn run(&self) -> Outcome {
        let mut o = run_once(&self.config()).await;
        assert_eq!(o.len(), 1);
        o.pop().unwrap()
    }

    /// The target as text, ordered by key.
    pub async fn target(&self) -> Vec<Vec<String>> {
        self.province
            .rows(
                "work_order",
                &[
                    "order_no",
                    "source_system",
                    "call_time",
                    "caller_phone_masked",
                    "channel",
                    "category_code",
                    "content",
                    "updated_at",
                ],
                "order_no",
            )
            .await
    }

    pub async fn target_keys(&self) -> Vec<String> {
        self.province
            .rows("work_order", &["order_no"], "order_no")
            .await
            .into_iter()
            .map(|r| r[0].clone())
            .collect()
    }

    pub async fn source_keys(&self, where_: &str) -> Vec<String> {
        let sql = format!("stg_gd_info WHERE {where_}");
        self.partner
            .rows(&sql, &["GDBH"], "GDBH")
            .await
            .into_iter()
            .map(|r| r[0].clone())
            .collect()
    }
}

/// Microsecond timestamps as text, `base` plus `us` microseconds.
pub fn ts(base: &str, us: i64) -> String {
    let t =
        chrono::NaiveDateTime::parse_from_str(base, "%Y-%m-%d %H:%M:%S").unwrap() + chrono::Duration::microseconds(us);
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// Batches committed so far, over every run (progress of a run in another process).
pub async fn batches_committed(q: &TestDb) -> i64 {
    let t = q.hlx("hlx_run");
    q.scalar(
        &format!("SELECT CAST(COALESCE(SUM(batches), 0) AS CHAR(20)) FROM {t}").replace(
            "CHAR(20)",
            if q.engine == Postgres {
                "text"
            } else if q.engine == Sqlite {
                "TEXT"
            } else {
                "CHAR(20)"
            },
        ),
    )
    .await
    .map(|s| s.parse().unwrap_or(0))
    .unwrap_or(0)
}

/// `each_engine!(f)`: a module `f` with one test per engine (SQLite,
/// PostgreSQL, MariaDB), each calling `f(engine)`.
macro_rules! each_engine {
    ($name:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(Postgres).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mariadb() {
                super::$name(MySql).await
            }
        }
    };
}
pub(crate) use each_engine;

/// `same_engine_pairs!(f)`: like [`each_engine`], calling `f(engine, engine)`
/// (partner and province on the same engine).
macro_rules! same_engine_pairs {
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
        }
    };
}
pub(crate) use same_engine_pairs;
