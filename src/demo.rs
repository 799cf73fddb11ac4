//! `hlx demo`: a working exchange on a fresh machine with nothing installed.
//!
//! Creates, under the demo directory, three SQLite partner databases in the
//! shapes real partners have ([`crate::samples`]: a city platform with
//! pinyin columns and string times, a 12315-like department system, a second
//! city with its own taxonomy and flow events), a SQLite provincial
//! database, the `exchange.toml`, the example mappings and code sets that
//! connect them and fresh protection keys, then runs every mapping once and
//! prints the run summary. Run it again to see that nothing moves the second
//! time.

use crate::config;
use crate::db::Pool;
use crate::exchange::Exchange;
use crate::samples::{self, Shape};
use crate::shutdown::Shutdown;
use std::path::Path;
use std::sync::Arc;

// The demo runs the example mappings that ship in mappings/examples/.
const FILES: &[(&str, &str)] = &[
    (
        "haikou_work_order.toml",
        include_str!("../mappings/examples/haikou_work_order.toml"),
    ),
    (
        "dept12315_work_order.toml",
        include_str!("../mappings/examples/dept12315_work_order.toml"),
    ),
    (
        "dept12315_dispatch.toml",
        include_str!("../mappings/examples/dept12315_dispatch.toml"),
    ),
    (
        "sanya_work_order.toml",
        include_str!("../mappings/examples/sanya_work_order.toml"),
    ),
    (
        "sanya_work_order_flow.toml",
        include_str!("../mappings/examples/sanya_work_order_flow.toml"),
    ),
    (
        "sanya_knowledge.toml",
        include_str!("../mappings/examples/sanya_knowledge.toml"),
    ),
    (
        "codesets/haikou.toml",
        include_str!("../mappings/examples/codesets/haikou.toml"),
    ),
    (
        "codesets/dept12315.toml",
        include_str!("../mappings/examples/codesets/dept12315.toml"),
    ),
    (
        "codesets/sanya.toml",
        include_str!("../mappings/examples/codesets/sanya.toml"),
    ),
    (
        "codesets/province.toml",
        include_str!("../mappings/codesets/province.toml"),
    ),
    (
        "codesets/division_hainan.toml",
        include_str!("../mappings/codesets/division_hainan.toml"),
    ),
];

/// Work orders the demo's province has dispatched to 12315.
const DISPATCHES: usize = 60;

/// Rows per partner.
const ROWS: &[(Shape, usize)] = &[(Shape::Haikou, 400), (Shape::Dept12315, 150), (Shape::Sanya, 300)];

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
                "hlx demo: created {} (three SQLite partners, one SQLite province: pulls, a push and a two-way exchange)\n",
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
    std::fs::create_dir_all(dir.join("keys"))?;
    let abs = std::fs::canonicalize(dir)?;
    // Fresh keys for this demo only; a real site keeps them in systemd
    // credentials (README, "Field protection").
    std::fs::write(dir.join("keys/sm4-demo"), crate::protect::generate_key_hex(16) + "\n")?;
    std::fs::write(dir.join("keys/hmac-demo"), crate::protect::generate_key_hex(32) + "\n")?;
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
hotline = "hk_12345"
url = "sqlite://{d}/haikou.db"

[[partner]]
name = "dept12315"
title = "12315 市场监管投诉举报热线"
hotline = "hn_12315"
url = "sqlite://{d}/dept12315.db"

[[partner]]
name = "sanya"
title = "三亚市12345热线平台"
hotline = "sy_12345"
url = "sqlite://{d}/sanya.db"

[mappings]
dir = "mappings"

[protection]
keys = {{ sm4-demo = "keys/sm4-demo", hmac-demo = "keys/hmac-demo" }}
encrypt_key = "sm4-demo"
hash_key = "hmac-demo"
"#,
        d = abs.display()
    );
    for (file, text) in FILES {
        std::fs::write(dir.join("mappings").join(file), text)?;
    }
    for (shape, rows) in ROWS {
        let ep = config::Endpoint::from_url(
            &format!("sqlite://{}/{}.db", abs.display(), shape.partner()),
            chrono::FixedOffset::east_opt(8 * 3600).expect("+8"),
        )?;
        let pool = Pool::connect(&ep, true).await?;
        samples::create(&pool, *shape).await?;
        samples::fill(&pool, *shape, 0, *rows).await?;
        pool.close().await;
    }
    // The province: its schema, and work orders the hotline dispatched to
    // 12315, which dept12315.dispatch pushes into 12315's inbound table.
    let ep = config::Endpoint::from_url(
        &format!("sqlite://{}/province.db", abs.display()),
        chrono::FixedOffset::east_opt(8 * 3600).expect("+8"),
    )?;
    let province = Pool::connect(&ep, true).await?;
    crate::state::State::new(province.clone()).migrate(false).await?;
    let mut keys = crate::protect::Keyring::default();
    keys.insert(
        "sm4-demo",
        crate::protect::KeyBytes::from_hex(&std::fs::read_to_string(dir.join("keys/sm4-demo"))?)
            .map_err(anyhow::Error::msg)?,
    );
    keys.encrypt_key = Some("sm4-demo".into());
    samples::province_dispatches(&province, &keys, DISPATCHES).await?;
    province.close().await;
    std::fs::write(dir.join("exchange.toml"), cfg)?;
    Ok(())
}
