//! The `hlx` command line. Exit codes: 0 success; 1 the work ran and
//! something failed; 2 bad usage; 78 (EX_CONFIG) an invalid config, mapping
//! or code set (so systemd's `RestartPreventExitStatus=78` stops a restart loop).

use crate::config::{self, Config};
use crate::exchange::{Exchange, Outcome, Status};
use crate::shutdown::Shutdown;
use crate::state::{Position, State};
use crate::value::Value;
use anyhow::Context as _;
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
    /// `hlx report` only.
    Csv,
    /// `hlx report` only.
    Html,
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
    /// Run every mapping on its schedule until SIGTERM/SIGINT; SIGHUP reloads the configuration.
    Daemon,
    /// One line per mapping: watermark, lag, last run, quarantined rows.
    Status,
    /// The sync report for a period: per partner and mapping, what moved, what was rejected, who is behind.
    Report {
        /// Start: a duration back from now (24h, 7d) or a time (2026-11-25, 2026-11-25 08:00) in [defaults] timezone.
        #[arg(long, default_value = "24h")]
        since: String,
        /// End (default now), same forms as --since.
        #[arg(long)]
        until: Option<String>,
        /// Only this partner.
        #[arg(long, value_name = "NAME")]
        partner: Option<String>,
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// CSV: start with a UTF-8 byte-order mark (for spreadsheet programs).
        #[arg(long)]
        bom: bool,
    },
    /// The quarantine: list, show and retry rows that failed their mapping.
    Rejects {
        #[command(subcommand)]
        action: crate::rejects::Action,
    },
    /// The hash-chained exchange log.
    Log {
        #[command(subcommand)]
        action: LogAction,
    },
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
    /// Compare a mapping's source and target in full, in chunks of keys; with --apply, repair the drift (hard deletes included).
    Reconcile {
        #[arg(short, long, value_name = "NAME")]
        mapping: String,
        /// Repair: upsert missing and differing rows, delete target rows whose source row is gone.
        #[arg(long, conflicts_with = "dry_run")]
        apply: bool,
        /// Only report (the default).
        #[arg(long)]
        dry_run: bool,
    },
    /// Load reference data from CSV into the provincial tables (checked first; one transaction).
    Load {
        #[command(subcommand)]
        what: crate::load::Action,
    },
    /// Print a new random key in hex for [protection] keys (store it in a credential file).
    Keygen {
        /// What the key is for: sm4 (16 bytes), aes-256-gcm (32), hmac-sm3 (32).
        #[arg(long, value_name = "USE", default_value = "sm4", value_parser = ["sm4", "aes-256-gcm", "hmac-sm3"])]
        r#for: String,
    },
    /// Decrypt values that `protect` fields stored (arguments, or one per line on standard input).
    Decrypt { values: Vec<String> },
    /// The stored hash of a value, for looking up a `hash` field without its plain value.
    Hash {
        /// The mapping that defines the field.
        #[arg(short, long, value_name = "NAME")]
        mapping: String,
        /// The target field (e.g. caller_phone_hash).
        #[arg(long, value_name = "FIELD")]
        field: String,
        value: String,
    },
}

#[derive(Subcommand)]
enum LogAction {
    /// Walk the chain; report the first entry altered, removed or re-ordered (exit 1 if broken).
    Verify,
    /// Drop entries older than [log] retention_days (at least 180), leaving a checkpoint.
    Prune {
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
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hlx: cannot start the runtime: {e}");
            return EXIT_FAILED;
        }
    };
    crate::db::track_pools();
    rt.block_on(async {
        let code = dispatch(cli).await;
        crate::db::close_all(std::time::Duration::from_secs(5)).await;
        code
    })
}

/// Logs go to stderr (the journal, under systemd), one line per event.
/// `HLX_LOG` overrides the level; `[log]` in the config sets the daemon's
/// level and format; other commands log warnings and errors only.
fn init_tracing(log: Option<&config::LogSettings>) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::EnvFilter;
    let level = log.map(|l| l.level.as_str()).unwrap_or("warn");
    let level = std::env::var("HLX_LOG").unwrap_or_else(|_| level.to_string());
    // The scheduler crate narrates its own start-up at INFO; keep the journal
    // for what hlx does unless someone asks for it by name.
    let quiet = if level.contains("tokio_cron_scheduler") {
        String::new()
    } else {
        ",tokio_cron_scheduler=warn".to_string()
    };
    let filter = EnvFilter::try_new(format!("{level}{quiet}")).unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match log.map(|l| l.format) {
        Some(config::LogFormat::Json) => builder.json().with_current_span(true).with_span_list(false).try_init(),
        _ => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
    };
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
        init_tracing(None);
        return crate::demo::run(dir, cli.format == Format::Json).await;
    }
    if let Command::Keygen { r#for } = &cli.command {
        let len = if r#for == "sm4" { 16 } else { 32 };
        println!("{}", crate::protect::generate_key_hex(len));
        return EXIT_OK;
    }
    let cfg = match load(&cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Command::Daemon = &cli.command {
        init_tracing(Some(&cfg.log));
        return crate::daemon::run(cfg, crate::systemd::Notifier::from_env()).await;
    }
    init_tracing(None);
    let cfg = Arc::new(cfg);
    match &cli.command {
        Command::Demo { .. } | Command::Daemon | Command::Keygen { .. } => unreachable!("handled above"),
        Command::Decrypt { values } => decrypt(&cfg, values),
        Command::Load { what } => crate::load::main(&cfg, what, cli.format).await,
        Command::Reconcile { mapping, apply, .. } => reconcile(&cfg, mapping, *apply, cli.format).await,
        Command::Hash { mapping, field, value } => hash(&cfg, mapping, field, value),
        Command::Check { offline } => check(&cfg, *offline, cli.format).await,
        Command::Migrate { state_only } => match crate::db::Pool::connect(&cfg.province, true).await {
            Ok(pool) => match State::new(pool).migrate(*state_only || cfg.existing_schema).await {
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
                    eprintln!("{}", unknown_mapping(&cfg, n));
                    return EXIT_USAGE;
                }
            }
            let ex = match Exchange::open_for(cfg.clone(), true, mappings).await {
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
        Command::Rejects { action } => crate::rejects::main(&cfg, action, cli.format).await,
        Command::Log { action } => log_command(&cfg, action, cli.format).await,
        Command::Report {
            since,
            until,
            partner,
            out,
            bom,
        } => {
            report(
                &cfg,
                since,
                until.as_deref(),
                partner.as_deref(),
                out.as_deref(),
                *bom,
                cli.format,
            )
            .await
        }
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
        if c.ignored > 0 {
            s.push_str(&format!(
                "{:<w$}  {} change(s) to fields the other side owns were ignored (two-way)\n",
                "", c.ignored
            ));
        }
        if c.fallbacks > 0 {
            s.push_str(&format!(
                "{:<w$}  {} row(s) classified 'other' by code-set fallback (unknown partner codes; see the log)\n",
                "", c.fallbacks
            ));
        }
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
    let mut advice: Vec<String> = Vec::new();
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
                let ex = Exchange::with_province(cfg.clone(), province.clone());
                for m in &cfg.mappings {
                    let r = check_mapping(&ex, m).await;
                    match r {
                        Ok(found) => {
                            for n in found.problems {
                                problems.push(format!("mapping {}: {n}", m.name));
                            }
                            for n in found.advice {
                                advice.push(format!("mapping {}: advice: {n}", m.name));
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
                "advice": advice,
            })
        );
    } else {
        for p in problems.iter().chain(&advice) {
            println!("{p}");
        }
        println!(
            "{}: {} partner(s), {} mapping(s), {} mapping test(s){}: {}",
            cfg.path.display(),
            cfg.partners.len(),
            cfg.mappings.len(),
            tests,
            if offline { ", offline" } else { ", tables checked live" },
            match (problems.len(), advice.len()) {
                (0, 0) => "ok".to_string(),
                (0, a) => format!("ok, {a} piece(s) of advice"),
                (p, 0) => format!("{p} problem(s)"),
                (p, a) => format!("{p} problem(s), {a} piece(s) of advice"),
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

/// What the online check found in one mapping's databases.
#[derive(Default)]
struct Findings {
    /// Problems: the check fails (exit 1).
    problems: Vec<String>,
    /// Advice: would make polls cheaper; the check still passes.
    advice: Vec<String>,
}

/// Online checks of one mapping: tables and columns exist, the source is
/// readable, declared lengths fit, and the indexes polls and upserts need.
async fn check_mapping(ex: &Exchange, m: &crate::mapping::Mapping) -> anyhow::Result<Findings> {
    use crate::db::catalog::Kind;
    // The same source reader and target writer a run uses.
    let (reader, writer, partner_target) = crate::exchange::ends(ex, m).await?;
    let (src_pool, tgt_pool) = match partner_target {
        Some(partner) => (ex.province.clone(), partner),
        None => (ex.partner_pool(&m.partner).await?, ex.province.clone()),
    };
    reader.check_readable().await?;
    // The flag pattern writes the partner's table: prove the right now.
    reader
        .check_markable()
        .await
        .with_context(|| format!("partner {}", m.partner))?;
    if m.direction == crate::mapping::Direction::Push {
        // hlx writes the partner's table: prove the rights now, not at 3 a.m.
        let deletes = m.source.deleted.is_some() && matches!(m.target.on_delete, crate::mapping::OnDelete::Delete);
        writer
            .check_writable(&tgt_pool, deletes)
            .await
            .with_context(|| format!("partner {}", m.partner))?;
    }
    let mut notes = Vec::new();
    let mut advice = Vec::new();
    let target = crate::db::catalog::require(&tgt_pool, &m.target.table, "target").await?;
    for f in &m.fields {
        // Ciphertext and hex digests are longer than the values they stand for.
        if let (Some(need), Ok((_, col))) = (f.stored_chars_needed(), target.column(f.target.as_str())) {
            if col.max_chars.is_some_and(|len| len < need as i64) {
                notes.push(format!(
                    "field `{}`: target column {} holds {} characters; its {} needs at least {need}",
                    f.target,
                    col.name,
                    col.max_chars.unwrap_or_default(),
                    if matches!(f.transform, crate::mapping::rules::Transform::Protect { .. }) {
                        "ciphertext"
                    } else {
                        "hash"
                    }
                ));
            }
        }
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
    let pool = src_pool;
    // A view's indexes are its base tables', which the catalog does not tie to it.
    let view = crate::db::catalog::is_view(&pool, &reader.catalog).await?;
    if let Some(w) = m.source.watermark.filter(|_| !view) {
        let wm = reader
            .catalog
            .column(m.source.columns[w].as_str())
            .map(|(_, c)| c.name.clone())
            .unwrap_or_default();
        let idx = crate::db::catalog::indexes(&pool, &reader.catalog).await?;
        let key: Vec<String> = m
            .source
            .key
            .iter()
            .filter_map(|&k| reader.catalog.column(m.source.columns[k].as_str()).ok())
            .map(|(_, c)| c.name.clone())
            .collect();
        if !idx
            .iter()
            .any(|i| i.columns.first().is_some_and(|c| c.eq_ignore_ascii_case(&wm)))
        {
            notes.push(format!(
                "source table {} has no index starting with the watermark column {wm}: every poll scans the table \
                 (CREATE INDEX … ON {} ({wm}, {}))",
                reader.catalog.name,
                reader.catalog.name,
                key.join(", ")
            ));
        } else if pool.engine() == crate::db::Engine::Postgres
            && reader.can_probe()
            && m.lookback.0.as_nanos() > 0
            && m.source.consume.is_none()
            && !reader.covered_by(&idx)
        {
            // InnoDB's secondary indexes carry the primary key; PostgreSQL's
            // do not, and the look-back probe then reads the table.
            advice.push(format!(
                "source table {}: no index holds ({wm}, {}): every poll reads from the table each row changed within \
                 `lookback` (CREATE INDEX … ON {} ({wm}, {}) lets PostgreSQL answer from the index once VACUUM has run)",
                reader.catalog.name,
                key.join(", "),
                reader.catalog.name,
                key.join(", ")
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
    let idx = crate::db::catalog::indexes(&tgt_pool, &target).await?;
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
    Ok(Findings {
        problems: notes,
        advice,
    })
}

async fn status(cfg: &Arc<Config>, format: Format) -> i32 {
    let state = match province_state(cfg).await {
        Ok(p) => State::new(p),
        Err(code) => return code,
    };
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
                r.lag_seconds.map(crate::report::human).unwrap_or_else(|| "-".into()),
                r.last_status.as_deref().unwrap_or("never"),
                r.last_finished.as_deref().unwrap_or("-"),
                r.quarantined,
                r.schedule
            );
        }
    }
    EXIT_OK
}

#[allow(clippy::too_many_arguments)]
async fn report(
    cfg: &Arc<Config>,
    since: &str,
    until: Option<&str>,
    partner: Option<&str>,
    out: Option<&std::path::Path>,
    bom: bool,
    format: Format,
) -> i32 {
    use crate::report;
    let zone = cfg.defaults.timezone;
    let now = chrono::Utc::now();
    let (since, until) = match (
        report::parse_time(since, zone, now),
        until.map(|u| report::parse_time(u, zone, now)).transpose(),
    ) {
        (Ok(s), Ok(u)) => (s, u.unwrap_or(now)),
        (Err(e), _) => {
            eprintln!("hlx: --since {e}");
            return EXIT_USAGE;
        }
        (_, Err(e)) => {
            eprintln!("hlx: --until {e}");
            return EXIT_USAGE;
        }
    };
    if let Some(p) = partner {
        if cfg.partner(p).is_none() {
            eprintln!("hlx: no partner named `{p}`");
            return EXIT_USAGE;
        }
    }
    let pool = match province_state(cfg).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let r = match report::build(cfg, &pool, since, until, partner).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hlx: cannot build the report: {e:#}");
            return EXIT_FAILED;
        }
    };
    let text = match format {
        Format::Text => report::text(&r, zone),
        Format::Json => report::json(&r),
        Format::Csv => report::csv(&r, bom),
        Format::Html => report::html(&r, zone),
    };
    match out {
        None => print!("{text}"),
        Some(path) => {
            if let Err(e) = std::fs::write(path, &text) {
                eprintln!("hlx: cannot write {}: {e}", path.display());
                return EXIT_FAILED;
            }
            eprintln!("{}", report::summary_line(&r));
        }
    }
    EXIT_OK
}

async fn log_command(cfg: &Arc<Config>, action: &LogAction, format: Format) -> i32 {
    let pool = match province_state(cfg).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    match action {
        LogAction::Verify => match crate::exchange_log::verify(&pool).await {
            Err(e) => {
                eprintln!("hlx: cannot read the exchange log: {e:#}");
                EXIT_FAILED
            }
            Ok(v) => {
                if format == Format::Json {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                } else {
                    let range = match (v.first_seq, v.last_seq) {
                        (Some(a), Some(b)) => format!("entries {a}..{b}"),
                        _ => "no entries".into(),
                    };
                    match &v.broken {
                        None => println!(
                            "exchange log intact: {} entries ({range}); head {} {}",
                            v.entries, v.head_seq, v.head_hash
                        ),
                        Some(b) => println!(
                            "exchange log BROKEN at entry {}{}: {}\n(checked {} entries, {range}; the head names entry {})",
                            b.seq,
                            b.logged_at.as_deref().map(|t| format!(" ({t})")).unwrap_or_default(),
                            b.problem,
                            v.entries,
                            v.head_seq
                        ),
                    }
                }
                if v.broken.is_some() {
                    EXIT_FAILED
                } else {
                    EXIT_OK
                }
            }
        },
        LogAction::Prune { yes } => {
            if !yes {
                eprintln!(
                    "hlx: prune drops exchange log entries older than {} days; add --yes to confirm",
                    cfg.log.retention_days
                );
                return EXIT_USAGE;
            }
            let cutoff = chrono::Utc::now() - chrono::Duration::days(cfg.log.retention_days as i64);
            match crate::exchange_log::prune(&pool, cfg.log.chain_hash, cutoff).await {
                Ok(n) => {
                    println!(
                        "pruned {n} exchange log entries logged before {}",
                        cutoff.format("%Y-%m-%d %H:%M:%S UTC")
                    );
                    EXIT_OK
                }
                Err(e) => {
                    eprintln!("hlx: prune failed: {e:#}");
                    EXIT_FAILED
                }
            }
        }
    }
}

/// Connects to the province and makes sure hlx's state tables exist (the
/// commands that read state); prints the error and gives the exit code.
async fn province_state(cfg: &Config) -> Result<crate::db::Pool, i32> {
    let pool = crate::db::Pool::connect(&cfg.province, true).await.map_err(|e| {
        eprintln!("hlx: {e:#}");
        EXIT_FAILED
    })?;
    State::new(pool.clone()).migrate(true).await.map_err(|e| {
        eprintln!("hlx: {e:#}");
        EXIT_FAILED
    })?;
    Ok(pool)
}

/// `hlx: no mapping named `x` (known: a, b)`.
pub(crate) fn unknown_mapping(cfg: &Config, name: &str) -> String {
    format!(
        "hlx: no mapping named `{name}` (known: {})",
        cfg.mappings
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
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

/// `hlx decrypt`: one plain value per line, in the order given (a blank
/// input line gives a blank output line, as a NULL would). A value that does
/// not decrypt is reported on stderr with its position, its output line is
/// blank, and the exit code is 1; the others are still printed.
fn decrypt(cfg: &Config, values: &[String]) -> i32 {
    use std::io::BufRead as _;
    let mut code = EXIT_OK;
    let mut one = |n: usize, v: &str| {
        if v.trim().is_empty() {
            println!();
            return;
        }
        match cfg.keys.decrypt(v) {
            Ok(p) => println!("{p}"),
            Err(e) => {
                eprintln!("hlx: value {n}: {e}");
                println!();
                code = EXIT_FAILED;
            }
        }
    };
    if values.is_empty() {
        for (i, line) in std::io::stdin().lock().split(b'\n').enumerate() {
            match line {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(l) => one(i + 1, l.trim_end_matches('\r')),
                    Err(_) => one(i + 1, "not UTF-8 (not an hlx ciphertext)"),
                },
                Err(e) => {
                    eprintln!("hlx: reading standard input: {e}");
                    return EXIT_FAILED;
                }
            }
        }
    } else {
        for (i, v) in values.iter().enumerate() {
            one(i + 1, v);
        }
    }
    code
}

/// `hlx hash`: the value as the field would store it.
fn hash(cfg: &Config, mapping: &str, field: &str, value: &str) -> i32 {
    let Some(m) = cfg.mapping(mapping) else {
        eprintln!("{}", unknown_mapping(cfg, mapping));
        return EXIT_USAGE;
    };
    match m.hash_of(field, value) {
        Ok(h) => {
            println!("{h}");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("hlx: {e}");
            EXIT_USAGE
        }
    }
}

/// `hlx reconcile`: exit 0 when source and target agree (or the drift was
/// repaired), 1 when a dry run found drift or the comparison failed.
async fn reconcile(cfg: &Arc<Config>, mapping: &str, apply: bool, format: Format) -> i32 {
    let Some(m) = cfg.mapping(mapping) else {
        eprintln!("{}", unknown_mapping(cfg, mapping));
        return EXIT_USAGE;
    };
    let ex = match Exchange::open(cfg.clone(), true).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("hlx: {e:#}");
            return EXIT_FAILED;
        }
    };
    let r = crate::reconcile::reconcile(&ex, m, apply).await;
    ex.province.close().await;
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hlx: reconcile {mapping}: {e:#}");
            return EXIT_FAILED;
        }
    };
    let drift = r.missing + r.differs + r.extra;
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    } else {
        println!(
            "{}: {} source row(s), {} target row(s) in its slice: {} equal, {} missing on the target, {} differ, {} extra on the target, {} rejected by the mapping{}",
            r.mapping,
            r.source_rows,
            r.target_rows,
            r.equal,
            r.missing,
            r.differs,
            r.extra,
            r.rejected,
            match (drift, apply) {
                (0, _) => " — in step".to_string(),
                (_, true) => " — repaired".to_string(),
                (_, false) => " — dry run, nothing changed (--apply repairs)".to_string(),
            }
        );
        for k in &r.missing_keys {
            println!("  missing  {k}");
        }
        for d in &r.differing {
            println!("  differs  {}: {}", d.key, d.fields.join(", "));
        }
        for k in &r.extra_keys {
            println!("  extra    {k}");
        }
    }
    if drift > 0 && !apply {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}
