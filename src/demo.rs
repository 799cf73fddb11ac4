//! `hlx demo`: a working exchange on a fresh machine with nothing installed.
//!
//! Creates, under the demo directory, two SQLite partner databases in the
//! shapes real partners have (DOMAIN.md: a city platform with pinyin columns
//! and string times, a 12315-like department system), a SQLite provincial
//! database, the `exchange.toml`, mappings and code sets that connect them,
//! then runs every mapping once and prints the run summary. Run it again to
//! see that nothing moves the second time.

use crate::config;
use crate::db::sql::exec_pool;
use crate::db::Pool;
use crate::exchange::Exchange;
use crate::shutdown::Shutdown;
use std::path::Path;
use std::sync::Arc;

// The demo runs the example mappings that ship in mappings/examples/.
const HAIKOU_MAPPING: &str = include_str!("../mappings/examples/haikou_work_order.toml");
const HAIKOU_CODES: &str = include_str!("../mappings/examples/codesets/haikou.toml");
const DEPT_MAPPING: &str = include_str!("../mappings/examples/dept12315_work_order.toml");
const DEPT_CODES: &str = include_str!("../mappings/examples/codesets/dept12315.toml");

/// Rows per partner.
const HAIKOU_ROWS: usize = 400;
const DEPT_ROWS: usize = 150;

/// A small deterministic generator (the demo is the same on every machine).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() as usize) % xs.len()]
    }
}

const TOPICS: &[&str] = &[
    "夜间施工噪音很大，严重影响周边居民正常休息",
    "小区停水已超过两天，物业称正在协调",
    "路灯损坏长期不亮，老人和小孩出行很不方便",
    "流动摊贩占用人行道，影响通行",
    "超市销售过期食品，要求查处",
    "公司拖欠工资三个月，请求协调",
    "餐饮油烟直排，附近居民已联名投诉 😡",
    "景区门票价格不透明，导游强制购物 🙏",
];
const ADDRESSES: &[&str] = &[
    "滨海大道幸福小区",
    "国兴大道椰风花园 ",
    "  龙昆南路金海岸公寓",
    "海府路阳光家园",
    "白龙南路海景湾",
];
const DISTRICTS: &[&str] = &["秀英区", "龙华区", "琼山区", "美兰区"];

/// Runs the demo; returns the exit code.
pub async fn run(dir: &Path, json: bool) -> i32 {
    match go(dir, json).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hlx demo: {e:#}");
            crate::cli::EXIT_FAILED
        }
    }
}

async fn go(dir: &Path, json: bool) -> anyhow::Result<i32> {
    let fresh = !dir.join("exchange.toml").exists();
    if fresh {
        setup(dir).await?;
    }
    let path = dir.join("exchange.toml");
    let cfg = match config::load(&path) {
        Ok(c) => Arc::new(c),
        Err(d) => {
            eprintln!("{d}");
            return Ok(crate::cli::EXIT_CONFIG);
        }
    };
    let ex = Exchange::open(cfg, true).await?;
    let outcomes = ex.run_all(&[], &Shutdown::new()).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
    } else {
        if fresh {
            println!(
                "hlx demo: created {} (two SQLite partners, one SQLite province)\n",
                dir.display()
            );
        } else {
            println!(
                "hlx demo: {} exists; ran its mappings again (nothing changed at the partners, so nothing moves)\n",
                dir.display()
            );
        }
        print!("{}", crate::cli::render_outcomes(&outcomes));
        let abs = std::fs::canonicalize(dir)?;
        println!(
            "\nprovincial database: {}/province.db   (sqlite3 {0}/province.db 'SELECT * FROM work_order LIMIT 5')",
            abs.display()
        );
        println!(
            "quarantined rows:    sqlite3 {}/province.db 'SELECT row_key, reason FROM hlx_quarantine'",
            abs.display()
        );
        println!(
            "again:               hlx -c {}/exchange.toml run      status: hlx -c {0}/exchange.toml status",
            abs.display()
        );
    }
    let failed = outcomes.iter().any(|o| {
        matches!(
            o.status,
            crate::exchange::Status::Failed | crate::exchange::Status::Halted
        )
    });
    Ok(if failed {
        crate::cli::EXIT_FAILED
    } else {
        crate::cli::EXIT_OK
    })
}

async fn setup(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("mappings/codesets"))?;
    let abs = std::fs::canonicalize(dir)?;
    let cfg = format!(
        r#"# hlx demo: every database is a SQLite file in this directory.
[province]
url = "sqlite://{d}/province.db"

[defaults]
schedule = "every 1m"
batch_size = 100
lookback = "10m"
timezone = "+08:00"
on_reject = "quarantine"

[[partner]]
name = "haikou"
title = "海口市12345热线平台"
url = "sqlite://{d}/haikou.db"

[[partner]]
name = "dept12315"
title = "12315 市场监管投诉举报热线"
url = "sqlite://{d}/dept12315.db"

[mappings]
dir = "mappings"
"#,
        d = abs.display()
    );
    std::fs::write(dir.join("mappings/haikou_work_order.toml"), HAIKOU_MAPPING)?;
    std::fs::write(dir.join("mappings/codesets/haikou.toml"), HAIKOU_CODES)?;
    std::fs::write(dir.join("mappings/dept12315_work_order.toml"), DEPT_MAPPING)?;
    std::fs::write(dir.join("mappings/codesets/dept12315.toml"), DEPT_CODES)?;

    let ep = |f: &str| {
        config::Endpoint::from_url(
            &format!("sqlite://{}/{f}", abs.display()),
            chrono::FixedOffset::east_opt(8 * 3600).expect("+8"),
        )
    };
    let haikou = Pool::connect(&ep("haikou.db")?, true).await?;
    exec_pool(
        &haikou,
        "CREATE TABLE IF NOT EXISTS stg_gd_info (GDBH TEXT PRIMARY KEY, LDSJ TEXT, LDHM TEXT, SQQD TEXT, SQLX TEXT, WTFL TEXT, SQNR TEXT, \
         SFDZ TEXT, SSQY TEXT, BLZT TEXT, BJSJ TEXT, BLJG TEXT, MYD TEXT, UPDATE_TIME TEXT, OP_FLAG TEXT, CLBZ TEXT DEFAULT '0', PCH TEXT)",
        &[],
    )
    .await?;
    exec_pool(
        &haikou,
        "CREATE INDEX IF NOT EXISTS stg_gd_info_ut ON stg_gd_info (UPDATE_TIME, GDBH)",
        &[],
    )
    .await?;
    let mut g = Lcg(12345);
    let mut tx = haikou.begin().await?;
    for i in 0..HAIKOU_ROWS {
        let day = 1 + (i / 40) as u32;
        let ldsj = match i % 97 {
            13 => "00000000000000".to_string(),
            29 => String::new(),
            41 => format!("202403{day:02}0930"),
            _ => format!("202403{day:02}{:02}{:02}{:02}", 8 + i % 10, i % 60, (i * 7) % 60),
        };
        let phone = match i % 5 {
            0 => format!("+86 138-{:04}-{:04}", i, 1000 + i),
            1 => format!("0086139{:08}", i * 13),
            2 => "137****5678".to_string(),
            _ => format!("1{}{:09}", 3 + i % 6, i * 7919),
        };
        let channel = match i {
            57 => "42".to_string(),
            _ => format!("{}{}", 1 + i % 5, if i % 11 == 0 { "  " } else { "" }),
        };
        let wtfl = match i {
            88 => "0100020000".to_string(),
            _ => format!(
                "{:02}{:02}{}",
                1 + i % 14,
                1 + i % 9,
                if i % 3 == 0 { "01" } else { "" }
            ),
        };
        let content = match i {
            133 => String::new(),
            _ => format!("{}（第{}号）", g.pick(TOPICS), i),
        };
        let status = g.pick(&["SL", "PD", "BL", "TH", "BJ"]);
        let bjsj = if status == "BJ" {
            format!("202403{:02}1700{:02}", day + 1, i % 60)
        } else {
            String::new()
        };
        let ut = format!(
            "2024-03-{day:02} 18:{:02}:{:02}.{:06}",
            (i / 60) % 60,
            i % 60,
            (i * 104729) % 1_000_000
        );
        let op = if i % 67 == 5 {
            "D"
        } else if i % 3 == 0 {
            "U"
        } else {
            "I"
        };
        let sql = "INSERT INTO stg_gd_info (GDBH, LDSJ, LDHM, SQQD, SQLX, WTFL, SQNR, SFDZ, SSQY, BLZT, BJSJ, BLJG, MYD, UPDATE_TIME, OP_FLAG, PCH) \
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        let args: Vec<crate::db::sql::Arg> = vec![
            format!("HK2024{i:06}").into(),
            ldsj.into(),
            phone.into(),
            channel.into(),
            g.pick(&["ZX", "TS", "QZ", "JY", "JB", "XX"]).into(),
            wtfl.into(),
            content.into(),
            g.pick(ADDRESSES).into(),
            g.pick(DISTRICTS).into(),
            status.into(),
            bjsj.into(),
            if status == "BJ" {
                Some("经核实已处理完毕，来电人表示满意。".to_string())
            } else {
                None
            }
            .into(),
            if status == "BJ" {
                g.pick(&["1", "2", "3", ""]).to_string()
            } else {
                String::new()
            }
            .into(),
            (if i % 150 == 7 { None } else { Some(ut) }).into(),
            op.into(),
            format!("PCH{:04}", i / 100).into(),
        ];
        crate::db::sql::exec(&mut tx, sql, &args).await?;
    }
    tx.commit().await?;
    haikou.close().await;

    let dept = Pool::connect(&ep("dept12315.db")?, true).await?;
    exec_pool(
        &dept,
        "CREATE TABLE IF NOT EXISTS t_complaint (regNo TEXT PRIMARY KEY, hotlineOrderNo TEXT NOT NULL, bizType TEXT, acceptTime TEXT, \
         consumerTel TEXT, goodsCategory TEXT, regionCode TEXT, status TEXT, content TEXT, gmtModified TEXT, isDeleted INTEGER DEFAULT 0)",
        &[],
    )
    .await?;
    exec_pool(
        &dept,
        "CREATE INDEX IF NOT EXISTS t_complaint_modified ON t_complaint (gmtModified, regNo)",
        &[],
    )
    .await?;
    let mut tx = dept.begin().await?;
    for i in 0..DEPT_ROWS {
        let args: Vec<crate::db::sql::Arg> = vec![
            format!("SC{:08}", 20240000 + i).into(),
            format!("SJ2024{i:06}").into(),
            g.pick(&["ZX", "TS", "JB"]).into(),
            format!("2024-03-{:02} {:02}:{:02}:00", 1 + i / 10, 8 + i % 9, i % 60).into(),
            format!("+86{}", 13800000000u64 + i as u64 * 7).into(),
            g.pick(&["食品", "家电", "服装", "预付卡"]).into(),
            format!("4601{:02}000000", 5 + i % 4).into(),
            format!(
                "{}{}",
                g.pick(&["ACPT", "MDOK", "RTRN", "FINI"]),
                if i % 7 == 0 { " " } else { "" }
            )
            .into(),
            format!("消费者投诉：{}", g.pick(TOPICS)).into(),
            format!(
                "2024-03-{:02} 20:{:02}:{:02}.{:03}",
                1 + i / 10,
                i % 60,
                (i * 17) % 60,
                i % 1000
            )
            .into(),
            crate::db::sql::Arg::I64(Some(if i % 50 == 3 { 1 } else { 0 })),
        ];
        crate::db::sql::exec(
            &mut tx,
            "INSERT INTO t_complaint (regNo, hotlineOrderNo, bizType, acceptTime, consumerTel, goodsCategory, regionCode, status, content, gmtModified, isDeleted) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            &args,
        )
        .await?;
    }
    tx.commit().await?;
    dept.close().await;
    std::fs::write(dir.join("exchange.toml"), cfg)?;
    Ok(())
}
