//! The `hlx` command line. Exit codes: 0 success; 1 the work ran and
//! something failed; 2 bad usage; 78 (EX_CONFIG) an invalid config, mapping
//! or code set (so systemd's `RestartPreventExitStatus=78` stops a restart loop).

use crate::config::{self, Config};
use crate::exchange::{Exchange, Outcome, Status};
use crate::shutdown::Shutdown;
use crate::state::{Position, State};
use crate::value::Value;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::sync::Arc;

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_CONFIG: i32 = 78;

#[derive(Parser)]
#[command(name = "hlx", version, about = "The 12345 hotline database-table exchange daemon")]
struct Cli {
    /// Path of exchange.toml (default ./exchange.toml, then /etc/hlx/exchange.toml).
    #[arg(short, long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Create SQLite partners with sample 12345 data and a provincial database, then run every mapping once.
    Demo {
        /// Where to put the demo (default ./hlx-demo).
        #[arg(long, default_value = "hlx-demo")]
        dir: PathBuf,
    },
    /// Validate exchange.toml, mappings and code sets, run the mappings' tests, and (unless --offline) check the live tables.
    Check {
        /// Do not connect to any database.
        #[arg(long)]
        offline: bool,
    },
    /// Create or upgrade the provincial schema and hlx's state tables.
    Migrate {
        /// Only hlx's own hlx_ tables (the provincial tables already exist).
        #[arg(long)]
        state_only: bool,
    },
    /// Run mappings once, to completion (default: all enabled mappings).
    Run {
        /// A mapping to run; repeat for several.
        #[arg(short, long = "mapping", value_name = "NAME")]
        mappings: Vec<String>,
    },
    /// One line per mapping: watermark, lag, last run, quarantined rows.
    Status,
    /// Move a mapping's watermark back so the next run re-reads (checksums keep it cheap).
    Reset {
        #[arg(short, long, value_name = "NAME")]
        mapping: String,
        /// The watermark value to restart from (default: from the beginning).
        #[arg(long, value_name = "VALUE")]
        to: Option<String>,
        /// Also forget row checksums, so every re-read row is written again.
        #[arg(long)]
        rewrite: bool,
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs the command line; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    init_tracing();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hlx: cannot start the runtime: {e}");
            return EXIT_FAILED;
        }
    };
    rt.block_on(dispatch(cli))
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HLX_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn load(cli: &Cli) -> Result<Config, i32> {
    let path = config::locate(cli.config.as_deref());
    match config::load(&path) {
        Ok(c) => {
            for w in c.warnings.warnings() {
                eprintln!("{w}");
            }
            Ok(c)
        }
        Err(d) => {
            eprintln!("{d}");
            eprintln!("hlx: {} error(s) in the configuration; nothing was run", d.errors());
            Err(EXIT_CONFIG)
        }
    }
}

async fn dispatch(cli: Cli) -> i32 {
    if let Command::Demo { dir } = &cli.command {
        return crate::demo::run(dir, cli.format == Format::Json).await;
    }
    let cfg = match load(&cli) {
        Ok(c) => Arc::new(c),
        Err(code) => return code,
    };
    match &cli.command {
        Command::Demo { .. } => unreachable!("handled above"),
        Command::Check { offline } => check(&cfg, *offline, cli.format).await,
        Command::Migrate { state_only } => match crate::db::Pool::connect(&cfg.province, true).await {
            Ok(pool) => match State::new(pool).migrate(*state_only).await {
                Ok(()) => {
                    println!("migrated {}", cfg.province.display_url());
                    EXIT_OK
                }
                Err(e) => {
                    eprintln!("hlx: migrate failed: {e:#}");
                    EXIT_FAILED
                }
            },
            Err(e) => {
                eprintln!("hlx: {e:#}");
                EXIT_FAILED
            }
        },
        Command::Run { mappings } => {
            for n in mappings {
                if cfg.mapping(n).is_none() {
                    eprintln!(
                        "hlx: no mapping named `{n}` (known: {})",
                        cfg.mappings
                            .iter()
                            .map(|m| m.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    return EXIT_USAGE;
                }
            }
            let ex = match Exchange::open(cfg.clone(), true).await {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("hlx: {e:#}");
                    return EXIT_FAILED;
                }
            };
            let shutdown = Shutdown::new();
            let s2 = shutdown.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("hlx: stopping after the current batch");
                    s2.trigger();
                }
            });
            let outcomes = ex.run_all(mappings, &shutdown).await;
            print_outcomes(&outcomes, cli.format);
            if outcomes
                .iter()
                .any(|o| matches!(o.status, Status::Failed | Status::Halted))
            {
                EXIT_FAILED
            } else {
                EXIT_OK
            }
        }
        Command::Status => status(&cfg, cli.format).await,
        Command::Reset {
            mapping,
            to,
            rewrite,
            yes,
        } => reset(&cfg, mapping, to.as_deref(), *rewrite, *yes).await,
    }
}

/// Prints a run summary.
pub fn print_outcomes(outcomes: &[Outcome], format: Format) {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(outcomes).unwrap_or_default());
        return;
    }
    print!("{}", render_outcomes(outcomes));
}

/// The run summary as aligned text.
pub fn render_outcomes(outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    let w = outcomes
        .iter()
        .map(|o| o.mapping.chars().count())
        .max()
        .unwrap_or(7)
        .max(7);
    s.push_str(&format!(
        "{:<w$}  {:<8} {:>8} {:>8} {:>8} {:>9} {:>7} {:>8} {:>8}  watermark\n",
        "mapping", "result", "read", "inserted", "updated", "unchanged", "deleted", "rejected", "seconds"
    ));
    for o in outcomes {
        let c = &o.counts;
        s.push_str(&format!(
            "{:<w$}  {:<8} {:>8} {:>8} {:>8} {:>9} {:>7} {:>8} {:>8.2}  {}\n",
            o.mapping,
            o.status.as_str(),
            c.read,
            c.inserted,
            c.updated,
            c.unchanged,
            c.deleted,
            c.rejected,
            o.seconds,
            o.watermark.as_deref().unwrap_or("-")
        ));
        if let Some(e) = &o.error {
            s.push_str(&format!("{:<w$}  ! {e}\n", ""));
        }
    }
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o.status, Status::Failed | Status::Halted))
        .count();
    s.push_str(&format!(
        "{} mapping(s), {} ok, {} failed\n",
        outcomes.len(),
        outcomes.len() - failed,
        failed
    ));
    s
}

async fn check(cfg: &Arc<Config>, offline: bool, format: Format) -> i32 {
    let mut problems: Vec<String> = Vec::new();
    let mut config_problems = 0;
    for m in &cfg.mappings {
        for f in m.run_tests() {
            problems.push(f);
            config_problems += 1;
        }
    }
    let mut checked = Vec::new();
    if !offline {
        match crate::db::Pool::connect(&cfg.province, true).await {
            Err(e) => problems.push(format!("province: {e:#}")),
            Ok(province) => {
                let ex = Exchange {
                    config: cfg.clone(),
                    state: State::new(province.clone()),
                    province: province.clone(),
                    partners: Default::default(),
                    owner: String::new(),
                };
                for m in &cfg.mappings {
                    let r = check_mapping(&ex, m).await;
                    match r {
                        Ok(notes) => {
                            for n in notes {
                                problems.push(format!("mapping {}: {n}", m.name));
                            }
                            checked.push(m.name.clone());
                        }
                        Err(e) => problems.push(format!("mapping {}: {e:#}", m.name)),
                    }
                }
            }
        }
    }
    let tests: usize = cfg.mappings.iter().map(|m| m.tests.len()).sum();
    if format == Format::Json {
        println!(
            "{}",
            serde_json::json!({
                "config": cfg.path.display().to_string(),
                "mappings": cfg.mappings.iter().map(|m| &m.name).collect::<Vec<_>>(),
                "tests": tests,
                "online": !offline,
                "problems": problems,
            })
        );
    } else {
        for p in &problems {
            println!("{p}");
        }
        println!(
            "{}: {} partner(s), {} mapping(s), {} mapping test(s){}: {}",
            cfg.path.display(),
            cfg.partners.len(),
            cfg.mappings.len(),
            tests,
            if offline { ", offline" } else { ", tables checked live" },
            if problems.is_empty() {
                "ok".to_string()
            } else {
                format!("{} problem(s)", problems.len())
            }
        );
    }
    if config_problems > 0 {
        EXIT_CONFIG
    } else if !problems.is_empty() {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

/// Online checks of one mapping: tables and columns exist, the source is
/// readable, and declared lengths fit. Returns non-fatal notes.
async fn check_mapping(ex: &Exchange, m: &crate::mapping::Mapping) -> anyhow::Result<Vec<String>> {
    use crate::db::catalog::Kind;
    let pool = ex.partner_pool(&m.partner).await?;
    let reader = crate::db::read::Reader::new(pool, m).await?;
    reader.check_readable().await?;
    crate::db::write::Writer::new(&ex.province, m, ex.config.defaults.timezone).await?;
    let mut notes = Vec::new();
    let target = crate::db::catalog::require(&ex.province, &m.target.table, "target").await?;
    for f in &m.fields {
        if let (Some(max), Ok((_, col))) = (f.max_chars, target.column(f.target.as_str())) {
            if let Some(len) = col.max_chars {
                if max as i64 > len {
                    notes.push(format!(
                        "field `{}`: max_chars = {max} but target column {} holds {len} characters",
                        f.target, col.name
                    ));
                }
            }
        }
    }
    if reader.watermark_kind() == Some(Kind::Int) && m.lookback.0.as_secs() > 0 {
        notes.push(
            "the watermark is an integer: the look-back window does not apply to it (late commits of lower values are not re-read)"
                .into(),
        );
    }
    // Indexes: an idle poll must be an index seek, and upserts need a unique key.
    let pool = ex.partner_pool(&m.partner).await?;
    if let Some(w) = m.source.watermark {
        let wm = reader
            .catalog
            .column(m.source.columns[w].as_str())
            .map(|(_, c)| c.name.clone())
            .unwrap_or_default();
        let idx = crate::db::catalog::indexes(&pool, &reader.catalog).await?;
        if !idx
            .iter()
            .any(|i| i.columns.first().is_some_and(|c| c.eq_ignore_ascii_case(&wm)))
        {
            notes.push(format!(
                "source table {} has no index starting with the watermark column {wm}: every poll scans the table \
                 (CREATE INDEX … ON {} ({wm}, <key>))",
                reader.catalog.name, reader.catalog.name
            ));
        }
    }
    let keys: Vec<String> = m
        .target
        .key
        .iter()
        .filter_map(|&k| {
            target
                .column(m.fields[k].target.as_str())
                .ok()
                .map(|(_, c)| c.name.to_ascii_lowercase())
        })
        .collect();
    let idx = crate::db::catalog::indexes(&ex.province, &target).await?;
    let unique = idx.iter().any(|i| {
        let mut a: Vec<String> = i.columns.iter().map(|c| c.to_ascii_lowercase()).collect();
        let mut b = keys.clone();
        a.sort();
        b.sort();
        i.unique && a == b
    });
    if !unique {
        notes.push(format!(
            "target table {} has no unique index or primary key on ({}): upserts need one",
            target.name,
            keys.join(", ")
        ));
    }
    Ok(notes)
}

async fn status(cfg: &Arc<Config>, format: Format) -> i32 {
    let pool = match crate::db::Pool::connect(&cfg.province, true).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("hlx: {e:#}");
            return EXIT_FAILED;
        }
    };
    let state = State::new(pool.clone());
    if let Err(e) = state.migrate(true).await {
        eprintln!("hlx: {e:#}");
        return EXIT_FAILED;
    }
    let mut rows = Vec::new();
    for m in &cfg.mappings {
        match crate::state::mapping_status(&state, m, cfg.defaults.timezone).await {
            Ok(s) => rows.push(s),
            Err(e) => {
                eprintln!("hlx: status of {}: {e:#}", m.name);
                return EXIT_FAILED;
            }
        }
    }
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
    } else {
        let w = rows.iter().map(|r| r.mapping.chars().count()).max().unwrap_or(7).max(7);
        println!(
            "{:<w$}  {:<26} {:>10}  {:<9} {:<20} {:>11}  schedule",
            "mapping", "watermark", "lag", "last run", "finished", "quarantined"
        );
        for r in &rows {
            println!(
                "{:<w$}  {:<26} {:>10}  {:<9} {:<20} {:>11}  {}",
                r.mapping,
                r.watermark.as_deref().unwrap_or("-"),
                r.lag_seconds.map(human_secs).unwrap_or_else(|| "-".into()),
                r.last_status.as_deref().unwrap_or("never"),
                r.last_finished.as_deref().unwrap_or("-"),
                r.quarantined,
                r.schedule
            );
        }
    }
    EXIT_OK
}

fn human_secs(s: i64) -> String {
    match s {
        s if s < 0 => "ahead".into(),
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

async fn reset(cfg: &Arc<Config>, mapping: &str, to: Option<&str>, rewrite: bool, yes: bool) -> i32 {
    let Some(m) = cfg.mapping(mapping) else {
        eprintln!("hlx: no mapping named `{mapping}`");
        return EXIT_USAGE;
    };
    if !yes {
        eprintln!("hlx: reset moves the watermark of {mapping} back; add --yes to confirm");
        return EXIT_USAGE;
    }
    let pool = match crate::db::Pool::connect(&cfg.province, true).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("hlx: {e:#}");
            return EXIT_FAILED;
        }
    };
    let state = State::new(pool);
    let r = async {
        state.migrate(true).await?;
        let id = state.mapping_id(&m.name, &m.partner).await?;
        let pos = match to {
            None => None,
            Some(v) => {
                let old = state.position(id).await?;
                let wm = match old.as_ref().map(|p| &p.wm) {
                    Some(Value::Timestamp(_)) => chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S%.f")
                        .or_else(|_| chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f"))
                        .map(Value::Timestamp)
                        .map_err(|e| anyhow::anyhow!("--to {v}: expected YYYY-MM-DD HH:MM:SS[.ffffff] ({e})"))?,
                    Some(Value::TimestampTz(_)) => chrono::DateTime::parse_from_rfc3339(v)
                        .map(Value::TimestampTz)
                        .map_err(|e| anyhow::anyhow!("--to {v}: expected an RFC 3339 time with offset ({e})"))?,
                    Some(Value::Int(_)) => Value::Int(
                        v.parse()
                            .map_err(|_| anyhow::anyhow!("--to {v}: expected an integer"))?,
                    ),
                    _ => Value::Text(v.to_string()),
                };
                Some(Position { wm, key: vec![] })
            }
        };
        state.reset_position(id, pos.as_ref()).await?;
        if rewrite {
            state.forget_checksums(id).await?;
        }
        anyhow::Ok(())
    }
    .await;
    match r {
        Ok(()) => {
            println!(
                "{mapping}: watermark reset to {}{}",
                to.unwrap_or("the beginning"),
                if rewrite { ", checksums forgotten" } else { "" }
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("hlx: {e:#}");
            EXIT_FAILED
        }
    }
}
