//! The example partners' staging tables and sample rows, on any engine.
//!
//! `hlx demo` puts them in SQLite files; the integration tests put each on
//! the engine such a partner really runs (Haikou and 12315 on MariaDB,
//! Sanya on PostgreSQL) and run the shipped example mappings over them. The
//! rows carry the ugly cases of DOMAIN.md on purpose: all-zero, empty and
//! 12-character string times, trailing spaces in codes, `+86` / `0086`
//! phones, values masked upstream, emoji, unknown codes, NULL watermarks,
//! 12-digit division codes and rows a partner marks deleted.
//!
//! The generator is deterministic: the same rows on every machine.

use crate::db::sql::{exec, exec_pool, Arg};
use crate::db::{Engine, Pool};
use crate::protect::{Cipher, Keyring};

/// A partner shape of DOMAIN.md, with its example mappings in `mappings/examples/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A city platform: pinyin-initial columns, string times, its own codes,
    /// district names, an operation flag (I/U/D), a processing flag (CLBZ:
    /// 0 new, 1 taken, 2 failed) with its message column (CLJG).
    Haikou,
    /// A department system (12315-like): camelCase columns, `gmtModified`,
    /// `isDeleted`, word status codes, 12-digit region codes; and its
    /// inbound table `t_dispatch` for orders the province pushes.
    Dept12315,
    /// A second city on PostgreSQL: snake_case columns, an integer key,
    /// timestamptz times, channel names, its own category taxonomy, and a
    /// flow-event table next to the orders.
    Sanya,
}

impl Shape {
    pub fn partner(self) -> &'static str {
        match self {
            Shape::Haikou => "haikou",
            Shape::Dept12315 => "dept12315",
            Shape::Sanya => "sanya",
        }
    }
}

/// Column types as each engine spells them.
#[derive(Clone, Copy)]
enum Ty {
    Str(u16),
    Text,
    /// A naive timestamp with microseconds.
    Ts6,
    /// A naive timestamp with milliseconds.
    Ts3,
    /// A time zone-aware timestamp.
    TsTz,
    BigInt,
    SmallInt,
}

fn ty(e: Engine, t: Ty) -> String {
    match (e, t) {
        (Engine::Sqlite, Ty::BigInt | Ty::SmallInt) => "INTEGER".into(),
        (Engine::Sqlite, _) => "TEXT".into(),
        (_, Ty::Str(n)) => format!("varchar({n})"),
        (_, Ty::Text) => "text".into(),
        (Engine::Postgres, Ty::Ts6) => "timestamp(6)".into(),
        (Engine::Postgres, Ty::Ts3) => "timestamp(3)".into(),
        (Engine::Postgres, Ty::TsTz) => "timestamptz".into(),
        (Engine::MySql, Ty::Ts6 | Ty::TsTz) => "datetime(6)".into(),
        (Engine::MySql, Ty::Ts3) => "datetime(3)".into(),
        (_, Ty::BigInt) => "bigint".into(),
        (_, Ty::SmallInt) => "smallint".into(),
    }
}

/// A placeholder for a time given as text.
fn ts_param(e: Engine, t: Ty) -> &'static str {
    match (e, t) {
        (Engine::Postgres, Ty::TsTz) => "CAST(? AS timestamptz)",
        (Engine::Postgres, Ty::Ts3) => "CAST(? AS timestamp(3))",
        (Engine::Postgres, _) => "CAST(? AS timestamp(6))",
        _ => "?",
    }
}

/// Creates the shape's staging table(s) with the index an idle poll needs.
pub async fn create(pool: &Pool, shape: Shape) -> anyhow::Result<()> {
    let e = pool.engine();
    let t = |x| ty(e, x);
    let ddl: Vec<String> = match shape {
        Shape::Haikou => vec![
            format!(
                "CREATE TABLE stg_gd_info (GDBH {} NOT NULL PRIMARY KEY, LDSJ {}, LDHM {}, SQQD {}, SQLX {}, WTFL {}, SQNR {}, \
                 SFDZ {}, SSQY {}, BLZT {}, BJSJ {}, BLJG {}, MYD {}, UPDATE_TIME {} NULL, OP_FLAG {}, CLBZ {} DEFAULT '0', CLJG {}, PCH {})",
                t(Ty::Str(32)), t(Ty::Str(14)), t(Ty::Str(32)), t(Ty::Str(4)), t(Ty::Str(4)), t(Ty::Str(20)), t(Ty::Text),
                t(Ty::Str(200)), t(Ty::Str(20)), t(Ty::Str(4)), t(Ty::Str(14)), t(Ty::Text), t(Ty::Str(2)), t(Ty::Ts6),
                t(Ty::Str(1)), t(Ty::Str(1)), t(Ty::Str(100)), t(Ty::Str(16))
            ),
            "CREATE INDEX stg_gd_info_ut ON stg_gd_info (UPDATE_TIME, GDBH)".into(),
        ],
        Shape::Dept12315 => vec![
            format!(
                "CREATE TABLE t_complaint (regNo {} NOT NULL PRIMARY KEY, hotlineOrderNo {} NOT NULL, bizType {}, acceptTime {}, \
                 consumerTel {}, goodsCategory {}, regionCode {}, status {}, content {}, gmtModified {} NULL, isDeleted {} DEFAULT 0)",
                t(Ty::Str(32)), t(Ty::Str(32)), t(Ty::Str(4)), t(Ty::Ts6), t(Ty::Str(32)), t(Ty::Str(16)), t(Ty::Str(12)),
                t(Ty::Str(8)), t(Ty::Text), t(Ty::Ts3), t(Ty::SmallInt)
            ),
            "CREATE INDEX t_complaint_modified ON t_complaint (gmtModified, regNo)".into(),
            // The inbound table the province pushes dispatched orders into;
            // receivedAt is 12315's own (hlx never writes it).
            format!(
                "CREATE TABLE t_dispatch (hotlineOrderNo {} NOT NULL PRIMARY KEY, bizType {}, status {}, consumerName {}, \
                 consumerTel {}, content {}, regionCode {}, deadline {}, dispatchTime {}, receivedAt {} NULL)",
                t(Ty::Str(32)), t(Ty::Str(4)), t(Ty::Str(8)), t(Ty::Str(32)), t(Ty::Str(32)), t(Ty::Text), t(Ty::Str(12)),
                t(Ty::Ts6), t(Ty::Ts3), t(Ty::Ts6)
            ),
        ],
        Shape::Sanya => vec![
            format!(
                "CREATE TABLE gd_order (id {} NOT NULL PRIMARY KEY, case_no {} NOT NULL, reported_at {}, channel {}, category {}, \
                 caller_phone {}, caller_name {}, content {}, region_code {}, state {}, satisfaction {}, modified_at {} NOT NULL, \
                 is_deleted {} DEFAULT 0)",
                t(Ty::BigInt), t(Ty::Str(32)), t(Ty::TsTz), t(Ty::Str(16)), t(Ty::Str(16)), t(Ty::Str(32)), t(Ty::Str(32)),
                t(Ty::Text), t(Ty::Str(12)), t(Ty::SmallInt), t(Ty::SmallInt), t(Ty::Ts6), t(Ty::SmallInt)
            ),
            "CREATE INDEX gd_order_modified ON gd_order (modified_at, id)".into(),
            format!(
                "CREATE TABLE gd_flow (flow_no {} NOT NULL PRIMARY KEY, case_no {} NOT NULL, seq {}, action {}, action_time {}, \
                 from_unit {}, to_unit {}, opinion {}, modified_at {} NOT NULL)",
                t(Ty::Str(32)), t(Ty::Str(32)), t(Ty::SmallInt), t(Ty::Str(16)), t(Ty::TsTz), t(Ty::Str(100)),
                t(Ty::Str(100)), t(Ty::Text), t(Ty::Ts6)
            ),
            "CREATE INDEX gd_flow_modified ON gd_flow (modified_at, flow_no)".into(),
            // The city's knowledge base, exchanged both ways with the province's.
            format!(
                "CREATE TABLE kb_article (article_no {} NOT NULL PRIMARY KEY, title {} NOT NULL, content {}, category {}, \
                 keywords {}, status {}, issuer {}, updated_at {} NOT NULL DEFAULT {})",
                t(Ty::Str(64)), t(Ty::Str(500)), t(Ty::Text), t(Ty::Str(200)), t(Ty::Str(200)), t(Ty::Str(8)),
                t(Ty::Str(100)), t(Ty::Ts6),
                // The city's clock stamps rows it did not write itself (hlx
                // sends province-owned and shared columns only).
                match e {
                    Engine::Postgres => "LOCALTIMESTAMP",
                    Engine::MySql => "CURRENT_TIMESTAMP(6)",
                    Engine::Sqlite => "CURRENT_TIMESTAMP",
                }
            ),
            "CREATE INDEX kb_article_updated ON kb_article (updated_at, article_no)".into(),
        ],
    };
    for sql in ddl {
        exec_pool(pool, &sql, &[]).await?;
    }
    Ok(())
}

/// A small deterministic generator.
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
const NAMES: &[&str] = &["张三", "李小龙", "欧阳娜娜", "王五", "陈*"];

/// Inserts `rows` sample rows (numbered from `from`) into the shape's tables.
pub async fn fill(pool: &Pool, shape: Shape, from: usize, rows: usize) -> anyhow::Result<()> {
    let e = pool.engine();
    let mut g = Lcg(12345 + from as u64);
    let mut tx = pool.begin().await?;
    for i in from..from + rows {
        let (sql, args) = match shape {
            Shape::Haikou => haikou_row(e, &mut g, i),
            Shape::Dept12315 => dept_row(e, &mut g, i),
            Shape::Sanya => {
                let (sql, args) = sanya_flow_row(e, &mut g, i);
                exec(&mut tx, &sql, &args).await?;
                if i % 10 == 0 {
                    let (sql, args) = sanya_article_row(e, &mut g, i / 10);
                    exec(&mut tx, &sql, &args).await?;
                }
                sanya_row(e, &mut g, i)
            }
        };
        exec(&mut tx, &sql, &args).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn haikou_row(e: Engine, g: &mut Lcg, i: usize) -> (String, Vec<Arg>) {
    let day = 1 + (i / 40 % 28) as u32;
    let ldsj = match i % 97 {
        13 => "00000000000000".to_string(),
        29 => String::new(),
        41 => format!("202403{day:02}0930"),
        _ => format!("202403{day:02}{:02}{:02}{:02}", 8 + i % 10, i % 60, (i * 7) % 60),
    };
    let phone = match i % 5 {
        0 => format!("+86 138-{:04}-{:04}", i % 10000, 1000 + i % 9000),
        1 => format!("0086139{:08}", (i * 13) % 100_000_000),
        2 => "137****5678".to_string(),
        _ => format!("1{}{:09}", 3 + i % 6, (i * 7919) % 1_000_000_000),
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
    let sql = format!(
        "INSERT INTO stg_gd_info (GDBH, LDSJ, LDHM, SQQD, SQLX, WTFL, SQNR, SFDZ, SSQY, BLZT, BJSJ, BLJG, MYD, UPDATE_TIME, OP_FLAG, PCH) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {}, ?, ?)",
        ts_param(e, Ty::Ts6)
    );
    let args: Vec<Arg> = vec![
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
    (sql, args)
}

fn dept_row(e: Engine, g: &mut Lcg, i: usize) -> (String, Vec<Arg>) {
    let day = 1 + (i / 10 % 28);
    let region = match i % 23 {
        4 => format!("4601{:02}003", 5 + i % 4), // a 9-digit township code
        9 => "4601".to_string(),                 // truncated upstream: rejected
        _ => format!("4601{:02}{:06}", 5 + i % 4, (i * 37) % 1_000_000),
    };
    let category = match i % 19 {
        6 => "食品-乳制品", // unknown below a known category: falls back to 'other'
        11 => "二手车",     // unknown with no known ancestor: rejected
        _ => g.pick(&["食品", "家电", "服装", "预付卡", "食品-保健食品"]),
    };
    let sql = format!(
        "INSERT INTO t_complaint (regNo, hotlineOrderNo, bizType, acceptTime, consumerTel, goodsCategory, regionCode, status, content, gmtModified, isDeleted) \
         VALUES (?, ?, ?, {}, ?, ?, ?, ?, ?, {}, ?)",
        ts_param(e, Ty::Ts6),
        ts_param(e, Ty::Ts3)
    );
    let args: Vec<Arg> = vec![
        format!("SC{:08}", 20240000 + i).into(),
        format!("SJ2024{i:06}").into(),
        g.pick(&["ZX", "TS", "JB"]).into(),
        format!("2024-03-{day:02} {:02}:{:02}:00", 8 + i % 9, i % 60).into(),
        format!("+86{}", 13800000000u64 + i as u64 * 7).into(),
        category.into(),
        region.into(),
        format!(
            "{}{}",
            g.pick(&["ACPT", "MDOK", "RTRN", "FINI"]),
            if i % 7 == 0 { " " } else { "" }
        )
        .into(),
        format!("消费者投诉：{}", g.pick(TOPICS)).into(),
        format!("2024-03-{day:02} 20:{:02}:{:02}.{:03}", i % 60, (i * 17) % 60, i % 1000).into(),
        Arg::I64(Some(if i % 50 == 3 { 1 } else { 0 })),
    ];
    (sql, args)
}

fn sanya_row(e: Engine, g: &mut Lcg, i: usize) -> (String, Vec<Arg>) {
    let day = 1 + (i / 30 % 28);
    let reported = match i % 41 {
        17 => None,
        _ => Some(format!(
            "2024-03-{day:02} {:02}:{:02}:{:02}+08:00",
            7 + i % 12,
            i % 60,
            (i * 3) % 60
        )),
    };
    let channel = match i % 37 {
        20 => "抖音".to_string(), // not a channel the code set knows: default 99
        _ => format!(
            "{}{}",
            g.pick(&["电话", "微信", "网站", "12345小程序", "信件"]),
            if i % 13 == 0 { " " } else { "" }
        ),
    };
    let category = match i % 29 {
        8 => "CS0107".to_string(), // an unknown sub-category: falls back to CS01's 'other'
        15 => "ZZ01".to_string(),  // unknown with no known ancestor: rejected
        _ => g
            .pick(&["CS", "CS01", "CS0102", "JT", "JT03", "HJ", "HJ0201"])
            .to_string(),
    };
    let phone = match i % 4 {
        0 => format!("+86 139 {:04} {:04}", i % 10000, (i * 11) % 10000),
        1 => format!("0898-{:08}", 65_000_000 + i),
        2 => "139****0000".to_string(),
        _ => format!("13{:09}", (i * 104_729) % 1_000_000_000),
    };
    let region = match i % 31 {
        12 => "4602020".to_string(), // 7 digits: rejected
        _ => format!("4602{:02}{:03}{:03}", 2 + i % 4, 1 + i % 9, 1 + i % 20),
    };
    let content = match i % 53 {
        26 => "   ".to_string(), // blank: rejected as required
        _ => format!("{}（三亚 第{}号）", g.pick(TOPICS), i),
    };
    let modified = format!(
        "2024-03-{day:02} 21:{:02}:{:02}.{:06}",
        (i / 60) % 60,
        i % 60,
        (i * 7_919) % 1_000_000
    );
    let sql = format!(
        "INSERT INTO gd_order (id, case_no, reported_at, channel, category, caller_phone, caller_name, content, region_code, state, \
         satisfaction, modified_at, is_deleted) VALUES (?, ?, {}, ?, ?, ?, ?, ?, ?, ?, ?, {}, ?)",
        ts_param(e, Ty::TsTz),
        ts_param(e, Ty::Ts6)
    );
    let state = 1 + (g.next() % 6) as i64;
    let args: Vec<Arg> = vec![
        Arg::I64(Some(i as i64 + 1)),
        format!("SY2024{i:06}").into(),
        reported.into(),
        channel.into(),
        category.into(),
        phone.into(),
        g.pick(NAMES).into(),
        content.into(),
        region.into(),
        Arg::I64(Some(state)),
        Arg::I64(if state == 6 { Some((g.next() % 6) as i64) } else { None }),
        modified.into(),
        Arg::I64(Some(if i % 43 == 21 { 1 } else { 0 })),
    ];
    (sql, args)
}

fn sanya_flow_row(e: Engine, g: &mut Lcg, i: usize) -> (String, Vec<Arg>) {
    let day = 1 + (i / 30 % 28);
    let action = match i % 47 {
        33 => "转办", // not in the code set: rejected
        _ => g.pick(&["派单", "签收", "退回", "延期申请", "办结反馈", "催办"]),
    };
    let sql = format!(
        "INSERT INTO gd_flow (flow_no, case_no, seq, action, action_time, from_unit, to_unit, opinion, modified_at) \
         VALUES (?, ?, ?, ?, {}, ?, ?, ?, {})",
        ts_param(e, Ty::TsTz),
        ts_param(e, Ty::Ts6)
    );
    let args: Vec<Arg> = vec![
        format!("SYF2024{i:06}").into(),
        format!("SY2024{i:06}").into(),
        Arg::I64(Some(1 + (i % 3) as i64)),
        action.into(),
        format!("2024-03-{day:02} 10:{:02}:00+08:00", i % 60).into(),
        "三亚市12345热线".into(),
        g.pick(&["吉阳区政府", "天涯区政府", "市综合执法局", "市市场监管局"])
            .into(),
        if action == "退回" {
            Some("不属于本单位职责，请改派。".to_string())
        } else {
            None
        }
        .into(),
        format!("2024-03-{day:02} 21:30:{:02}.{:06}", i % 60, (i * 31) % 1_000_000).into(),
    ];
    (sql, args)
}

/// The province's side of the dispatch example (`dept12315_dispatch.toml`):
/// the view `v_dispatch_12315` over `work_order`, and `rows` work orders the
/// hotline dispatched to market regulation (handling unit `SCJGJ`), the
/// appellant's name and phone encrypted with `keys`, every seventh one
/// confidential (保密件). The provincial schema must exist.
pub async fn province_dispatches(pool: &Pool, keys: &Keyring, rows: usize) -> anyhow::Result<()> {
    let e = pool.engine();
    exec_pool(
        pool,
        "CREATE VIEW v_dispatch_12315 AS SELECT * FROM work_order WHERE handling_unit_code = 'SCJGJ'",
        &[],
    )
    .await?;
    let time = |day: usize, hms: &str| match e {
        Engine::Sqlite => format!("2024-03-{day:02}T{hms}+08:00"),
        Engine::Postgres => format!("2024-03-{day:02} {hms}+08:00"),
        Engine::MySql => format!("2024-03-{day:02} {hms}"),
    };
    let ts = ts_param(e, Ty::TsTz);
    let mut g = Lcg(2024);
    let mut tx = pool.begin().await?;
    for i in 0..rows {
        let day = 1 + i % 20;
        let phone = format!("138{:08}", (i * 7_919) % 100_000_000);
        let sql = format!(
            "INSERT INTO work_order (order_no, source_system, source_order_no, appeal_type, status, content, appellant_name, \
             caller_phone, is_confidential, division_code, handling_unit_code, handling_unit_name, deadline, updated_at) \
             VALUES (?, 'province', ?, ?, ?, ?, ?, ?, ?, ?, 'SCJGJ', '海南省市场监督管理局', {ts}, {ts})"
        );
        let args: Vec<Arg> = vec![
            format!("HN2024{i:06}").into(),
            format!("HN2024{i:06}").into(),
            g.pick(&["01", "02", "05"]).into(),
            g.pick(&["21", "22", "60"]).into(),
            format!("{}（派单 第{i}号）", g.pick(TOPICS)).into(),
            keys.encrypt(Cipher::Sm4Gcm, g.pick(NAMES))
                .map_err(anyhow::Error::msg)?
                .into(),
            keys.encrypt(Cipher::Sm4Gcm, &phone).map_err(anyhow::Error::msg)?.into(),
            Arg::Bool(Some(i % 7 == 3)),
            g.pick(&["460105", "460106", "460202"]).into(),
            time(day + 7, "17:30:00").into(),
            time(day, &format!("10:{:02}:{:02}", i % 60, (i * 13) % 60)).into(),
        ];
        exec(&mut tx, &sql, &args).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn sanya_article_row(e: Engine, g: &mut Lcg, i: usize) -> (String, Vec<Arg>) {
    let topic = g.pick(&["城市管理", "交通出行", "社会保障", "市场监管"]);
    let sql = format!(
        "INSERT INTO kb_article (article_no, title, content, category, keywords, status, issuer, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, {})",
        ts_param(e, Ty::Ts6)
    );
    let args: Vec<Arg> = vec![
        format!("SYKB{i:05}").into(),
        format!("{topic}常见问题解答（第{i}期）").into(),
        format!(
            "问：{topic}方面的诉求如何办理？答：请拨打12345或登录政务服务网。{}",
            g.pick(TOPICS)
        )
        .into(),
        format!("三亚/{topic}").into(),
        format!("{topic},12345").into(),
        g.pick(&["草稿", "发布", "发布", "撤回"]).into(),
        g.pick(&["三亚市综合执法局", "三亚市交通运输局", "三亚市人社局"]).into(),
        format!(
            "2024-02-{:02} 12:00:{:02}.{:06}",
            1 + i % 28,
            i % 60,
            (i * 7) % 1_000_000
        )
        .into(),
    ];
    (sql, args)
}
