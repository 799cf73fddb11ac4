//! `hlx daemon`: every enabled mapping on its exchange frequency, for months.
//!
//! * **Schedules.** tokio-cron-scheduler fires one job per mapping (`every
//!   30s` as a repeated job, a 6-field cron expression in `[defaults]
//!   timezone`). A job only *nudges* its mapping's worker through a channel of
//!   one slot, so ticks that fire while a run is in progress collapse into one:
//!   a long run delays only its own next tick, never another mapping's, and a
//!   mapping never runs twice at once. `every` mappings also run once at
//!   start; cron mappings wait for their time.
//! * **Isolation.** Each mapping has its own worker. A failed run is retried
//!   after an exponential back-off with jitter (`[daemon] retry_min` doubling
//!   up to `retry_max`); ticks inside the back-off are skipped. Other partners
//!   keep their schedule. Runs in progress are bounded by `[daemon] max_runs`,
//!   connections per partner by its `max_connections`, and every partner
//!   statement by its `statement_timeout`.
//! * **Signals.** SIGTERM/SIGINT: no new run starts; runs in progress finish
//!   their current batch and commit (see [`crate::exchange`]); after `[daemon]
//!   grace` (default 30 s) the rest are abandoned, which rolls their open
//!   batch back. Either way the exit code is 0 and nothing is half-written. A
//!   second signal abandons at once. SIGHUP reloads: the new config is
//!   validated first, and a bad one is refused (logged with file, line and
//!   column) while the old one keeps running.
//! * **Supervision.** systemd's notify protocol through [`Notifier`]: READY
//!   after the config loaded and migrations ran, STATUS after every run,
//!   WATCHDOG while the scheduler's heartbeat job keeps ticking, STOPPING.
//!
//! A reload starts a new *generation* (exchange, scheduler, workers) and stops
//! the old one's workers after their current run; a per-mapping lock shared by
//! all generations keeps an old run and a new one of the same mapping apart.

use crate::config::{self, Config, DaemonSettings, Schedule};
use crate::db::Pool;
use crate::exchange::{Exchange, Outcome, Status};
use crate::shutdown::Shutdown;
use crate::state::State;
use crate::systemd::Notifier;
use anyhow::Context as _;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_cron_scheduler::{Job, JobScheduler};

/// What every generation shares.
struct Shared {
    /// One lock per mapping name, across generations.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The global bound on runs in progress (`[daemon] max_runs`).
    runs: Arc<Semaphore>,
    /// Permits `runs` was created with or resized to.
    max_runs: Mutex<usize>,
    /// Per mapping, for the STATUS line.
    health: Mutex<BTreeMap<String, Health>>,
    /// Milliseconds since `started` at the scheduler's last heartbeat.
    heartbeat_ms: AtomicU64,
    started: Instant,
    /// Woken when `health` changed, so the STATUS line is refreshed.
    changed: tokio::sync::Notify,
}

#[derive(Default, Clone)]
struct Health {
    running: bool,
    /// Consecutive failed runs.
    failures: u32,
    last_error: Option<String>,
    last_ok: Option<chrono::DateTime<chrono::Local>>,
}

impl Shared {
    fn new(settings: &DaemonSettings) -> Shared {
        Shared {
            locks: Mutex::new(HashMap::new()),
            runs: Arc::new(Semaphore::new(settings.max_runs)),
            max_runs: Mutex::new(settings.max_runs),
            health: Mutex::new(BTreeMap::new()),
            heartbeat_ms: AtomicU64::new(0),
            started: Instant::now(),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn lock_for(&self, mapping: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut g = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        g.entry(mapping.to_string()).or_default().clone()
    }

    /// Applies a reloaded `max_runs` (only permits not in use can be taken back).
    fn resize(&self, max_runs: usize) {
        let mut cur = self.max_runs.lock().unwrap_or_else(|p| p.into_inner());
        if max_runs > *cur {
            self.runs.add_permits(max_runs - *cur);
        } else if max_runs < *cur {
            self.runs.forget_permits(*cur - max_runs);
        }
        *cur = max_runs;
    }

    fn update(&self, mapping: &str, f: impl FnOnce(&mut Health)) {
        {
            let mut g = self.health.lock().unwrap_or_else(|p| p.into_inner());
            f(g.entry(mapping.to_string()).or_default());
        }
        self.changed.notify_one();
    }

    /// Forgets mappings a reload removed.
    fn retain(&self, names: &[String]) {
        let mut g = self.health.lock().unwrap_or_else(|p| p.into_inner());
        g.retain(|k, _| names.contains(k));
    }

    fn beat(&self) {
        self.heartbeat_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// The scheduler ticked within `within`.
    fn healthy(&self, within: Duration) -> bool {
        let last = Duration::from_millis(self.heartbeat_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last) <= within
    }

    /// The STATUS line: `3 mappings, 1 running (a), 1 failing (b: why); last ok 12:00:03`.
    fn status_line(&self) -> String {
        let g = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let running: Vec<&str> = g.iter().filter(|(_, h)| h.running).map(|(k, _)| k.as_str()).collect();
        let failing: Vec<(&String, &Health)> = g.iter().filter(|(_, h)| h.failures > 0).collect();
        let mut s = format!("{} mapping(s)", g.len());
        if !running.is_empty() {
            s.push_str(&format!(", running: {}", running.join(" ")));
        }
        if failing.is_empty() {
            s.push_str(", none failing");
        } else {
            s.push_str(&format!(", {} failing", failing.len()));
            let (name, h) = failing[0];
            let why: String = h.last_error.as_deref().unwrap_or("").chars().take(120).collect();
            s.push_str(&format!(" ({name}: {why})"));
        }
        if let Some(t) = g.values().filter_map(|h| h.last_ok).max() {
            s.push_str(&format!("; last ok {}", t.format("%H:%M:%S")));
        }
        s
    }
}

/// One config's exchange, scheduler and workers.
struct Generation {
    config: Arc<Config>,
    scheduler: JobScheduler,
    /// Ends this generation's workers after their current run (reload).
    stop: Shutdown,
    workers: JoinSet<()>,
}

/// Runs the daemon until SIGTERM/SIGINT; returns the exit code.
pub async fn run(config: Config, notifier: Notifier) -> i32 {
    // Signals first, so a stop during start-up is honoured too.
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        _ => {
            tracing::error!("cannot install signal handlers");
            return crate::cli::EXIT_FAILED;
        }
    };
    let shutdown = Shutdown::new();
    let config = Arc::new(config);
    let shared = Arc::new(Shared::new(&config.daemon));

    // The province: wait for it (a daemon started before its database must
    // not give up), then migrate.
    let mut attempt = 0;
    let province = loop {
        match Pool::connect(&config.province, true).await {
            Ok(p) => break p,
            Err(e) => {
                attempt += 1;
                let wait = backoff(attempt, &config.daemon);
                tracing::error!("province: {e:#}; retrying in {}s", wait.as_secs());
                notifier.status(&format!("waiting for the province database: {e:#}"));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = term.recv() => return crate::cli::EXIT_OK,
                    _ = int.recv() => return crate::cli::EXIT_OK,
                }
            }
        }
    };
    if let Err(e) = State::new(province.clone()).migrate(config.existing_schema).await {
        tracing::error!("province: migration failed: {e:#}");
        return crate::cli::EXIT_FAILED;
    }
    let mut current = match start_generation(config.clone(), province.clone(), &shared, &shutdown).await {
        Ok(g) => g,
        Err(e) => {
            tracing::error!("cannot start the scheduler: {e:#}");
            return crate::cli::EXIT_FAILED;
        }
    };
    let mut retired: Vec<JoinSet<()>> = Vec::new();
    let (config_tx, config_rx) = tokio::sync::watch::channel(current.config.clone());
    let housekeeping = tokio::spawn(housekeeping(config_rx, province.clone(), shutdown.clone()));
    tracing::info!(
        mappings = current.config.mappings.iter().filter(|m| m.enabled).count(),
        "hlx daemon started with {}",
        current.config.path.display()
    );
    notifier.ready(&shared.status_line());

    let mut watchdog = notifier.watchdog_every().map(tokio::time::interval);
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = hup.recv() => {
                notifier.reloading();
                if let Some(next) = reload(&current, &province, &shared, &shutdown).await {
                    let _ = config_tx.send(next.config.clone());
                    let old = std::mem::replace(&mut current, next);
                    retired.push(retire(old).await);
                }
                retired.retain_mut(|set| {
                    while set.try_join_next().is_some() {}
                    !set.is_empty()
                });
                notifier.ready(&shared.status_line());
            }
            _ = shared.changed.notified() => notifier.status(&shared.status_line()),
            _ = async { watchdog.as_mut().expect("guarded").tick().await }, if watchdog.is_some() => {
                // Keep-alives only while the scheduler's heartbeat job runs:
                // a wedged scheduler lets systemd's watchdog restart us.
                if shared.healthy(Duration::from_secs(5)) {
                    notifier.watchdog();
                } else {
                    tracing::error!("the scheduler's heartbeat stopped; withholding the watchdog keep-alive");
                }
            }
        }
    }

    // Stop: no new runs; runs in progress end at their batch boundary.
    let grace = current.config.daemon.grace.0;
    notifier.stopping(&format!(
        "stopping: waiting up to {}s for runs to commit",
        grace.as_secs()
    ));
    shutdown.trigger();
    housekeeping.abort();
    retired.push(retire(current).await);
    let drain = async {
        for set in &mut retired {
            while set.join_next().await.is_some() {}
        }
    };
    tokio::select! {
        _ = tokio::time::timeout(grace, drain) => {}
        _ = term.recv() => tracing::warn!("second signal: abandoning runs in progress"),
        _ = int.recv() => tracing::warn!("second signal: abandoning runs in progress"),
    }
    let mut abandoned = 0;
    for set in &mut retired {
        abandoned += set.len();
        set.abort_all();
        while set.join_next().await.is_some() {}
    }
    if abandoned > 0 {
        tracing::warn!("{abandoned} run(s) did not finish their batch in time; their open batch was rolled back");
    }
    province.close().await;
    tracing::info!("hlx daemon stopped");
    crate::cli::EXIT_OK
}

/// Once a day, shortly after local midnight (`[defaults] timezone`), and once
/// at start: writes the previous day's report (`hlx-report-YYYY-MM-DD.html`
/// and `.json`, with the exchange log's head hash) to `[report] dir` unless
/// it is there already, and prunes exchange log entries older than `[log]
/// retention_days`. Failures are logged and retried the next day.
async fn housekeeping(config: tokio::sync::watch::Receiver<Arc<Config>>, province: Pool, shutdown: Shutdown) {
    loop {
        let cfg = config.borrow().clone();
        if let Err(e) = daily(&cfg, &province).await {
            tracing::error!("daily report / log pruning: {e:#}");
        }
        let zone = cfg.defaults.timezone;
        let now = chrono::Utc::now().with_timezone(&zone);
        let next_midnight = (now.date_naive() + chrono::Duration::days(1))
            .and_hms_opt(0, 5, 0)
            .and_then(|t| t.and_local_timezone(zone).single())
            .map(|t| (t - now).to_std().unwrap_or(Duration::from_secs(3600)))
            .unwrap_or(Duration::from_secs(86400));
        tokio::select! {
            _ = tokio::time::sleep(next_midnight) => {}
            _ = shutdown.wait() => return,
        }
    }
}

async fn daily(cfg: &Config, province: &Pool) -> anyhow::Result<()> {
    let cutoff = chrono::Utc::now() - chrono::Duration::days(cfg.log.retention_days as i64);
    let pruned = crate::exchange_log::prune(province, cfg.log.chain_hash, cutoff).await?;
    if pruned > 0 {
        tracing::info!(
            "pruned {pruned} exchange log entries older than {} days",
            cfg.log.retention_days
        );
    }
    let Some(dir) = &cfg.report.dir else { return Ok(()) };
    let zone = cfg.defaults.timezone;
    let today = chrono::Utc::now().with_timezone(&zone).date_naive();
    let day = today - chrono::Duration::days(1);
    let base = dir.join(format!("hlx-report-{}", day.format("%Y-%m-%d")));
    let (html, json) = (base.with_extension("html"), base.with_extension("json"));
    if html.exists() && json.exists() {
        return Ok(());
    }
    let start = |d: chrono::NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(zone).single())
            .map(|t| t.with_timezone(&chrono::Utc))
            .context("local midnight")
    };
    let r = crate::report::build(cfg, province, start(day)?, start(today)?, None).await?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&html, crate::report::html(&r, zone)).with_context(|| format!("writing {}", html.display()))?;
    std::fs::write(&json, crate::report::json(&r)).with_context(|| format!("writing {}", json.display()))?;
    tracing::info!(
        "daily report {} written: {}; exchange log head {} {}",
        html.display(),
        crate::report::summary_line(&r),
        r.log_head.seq,
        r.log_head.hash
    );
    Ok(())
}

/// SIGHUP: loads and validates the config again. `None` (and the old config
/// stays) when it is invalid or the scheduler cannot take it.
async fn reload(
    current: &Generation,
    province: &Pool,
    shared: &Arc<Shared>,
    shutdown: &Shutdown,
) -> Option<Generation> {
    let path: PathBuf = current.config.path.clone();
    let config = match config::load(&path) {
        Ok(c) => c,
        Err(d) => {
            for line in d.to_string().lines() {
                tracing::error!("reload refused: {line}");
            }
            tracing::error!(
                "reload refused: {} error(s) in the configuration; the previous configuration stays in force",
                d.errors()
            );
            return None;
        }
    };
    for w in config.warnings.warnings() {
        tracing::warn!("{w}");
    }
    if config.province.url() != current.config.province.url() {
        tracing::error!("reload refused: [province] url changed; that needs a restart (systemctl restart hlx)");
        return None;
    }
    if let Err(e) = State::new(province.clone()).migrate(config.existing_schema).await {
        tracing::error!("reload: migration failed, keeping the previous configuration: {e:#}");
        return None;
    }
    shared.resize(config.daemon.max_runs);
    match start_generation(Arc::new(config), province.clone(), shared, shutdown).await {
        Ok(g) => {
            tracing::info!(
                mappings = g.config.mappings.iter().filter(|m| m.enabled).count(),
                "configuration reloaded"
            );
            Some(g)
        }
        Err(e) => {
            tracing::error!("reload refused: {e:#}");
            None
        }
    }
}

/// Stops a generation's scheduler and tells its workers to end after their
/// current run; returns the workers to wait for.
async fn retire(mut g: Generation) -> JoinSet<()> {
    g.stop.trigger();
    if let Err(e) = g.scheduler.shutdown().await {
        tracing::warn!("stopping the old scheduler: {e}");
    }
    g.workers
}

async fn start_generation(
    config: Arc<Config>,
    province: Pool,
    shared: &Arc<Shared>,
    shutdown: &Shutdown,
) -> anyhow::Result<Generation> {
    let exchange = Arc::new(Exchange::with_province(config.clone(), province));
    let mut scheduler = JobScheduler::new().await.context("scheduler")?;
    let stop = Shutdown::new();
    let mut workers = JoinSet::new();
    let enabled: Vec<String> = config
        .mappings
        .iter()
        .filter(|m| m.enabled)
        .map(|m| m.name.clone())
        .collect();
    shared.retain(&enabled);
    let mut jobs = Vec::new();
    // The push half of a two-way mapping runs right after its pull half, in
    // the pull half's worker, on the pull half's schedule.
    let runs_with_its_pull = |m: &crate::mapping::Mapping| {
        m.pair.as_ref().is_some_and(|p| {
            p.role == crate::mapping::Direction::Push && config.mapping(&p.sibling).is_some_and(|s| s.enabled)
        })
    };
    for m in config.mappings.iter().filter(|m| m.enabled && !runs_with_its_pull(m)) {
        let (tx, rx) = mpsc::channel::<()>(1);
        let job = tick_job(&m.schedule, config.defaults.timezone, tx.clone())
            .with_context(|| format!("mapping {}: schedule `{}`", m.name, m.schedule))?;
        jobs.push(job);
        if matches!(m.schedule, Schedule::Every(_)) {
            let _ = tx.try_send(());
        }
        shared.update(&m.name, |_| {});
        if let Some(r) = &m.reconcile {
            let (rtx, rrx) = mpsc::channel::<()>(1);
            jobs.push(
                tick_job(r, config.defaults.timezone, rtx)
                    .with_context(|| format!("mapping {}: reconcile `{r}`", m.name))?,
            );
            workers.spawn(reconcile_worker(
                exchange.clone(),
                m.name.clone(),
                rrx,
                shared.clone(),
                stop.clone(),
                shutdown.clone(),
            ));
        }
        workers.spawn(worker(
            exchange.clone(),
            m.name.clone(),
            rx,
            shared.clone(),
            stop.clone(),
            shutdown.clone(),
        ));
    }
    let hb = shared.clone();
    jobs.push(Job::new_repeated_async(Duration::from_secs(1), move |_, _| {
        let hb = hb.clone();
        Box::pin(async move { hb.beat() })
    })?);
    let added = async {
        for j in jobs {
            scheduler.add(j).await?;
        }
        scheduler.start().await
    }
    .await;
    if let Err(e) = added {
        stop.trigger();
        let _ = scheduler.shutdown().await;
        return Err(anyhow::anyhow!("scheduler: {e}"));
    }
    shared.beat();
    Ok(Generation {
        config,
        scheduler,
        stop,
        workers,
    })
}

/// A scheduler job that nudges a mapping's worker. `try_send` on a channel of
/// one slot: a tick while one is already pending is dropped (coalesced).
fn tick_job(schedule: &Schedule, zone: chrono::FixedOffset, tx: mpsc::Sender<()>) -> anyhow::Result<Job> {
    let nudge = move |_, _| {
        let _ = tx.try_send(());
        Box::pin(async {}) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
    };
    Ok(match schedule {
        Schedule::Every(d) => Job::new_repeated_async(d.0, nudge)?,
        Schedule::Cron(expr) => Job::new_async_tz(expr.as_str(), zone, nudge)?,
    })
}

/// Why a worker woke up.
enum Wake {
    Tick,
    Retry,
}

/// One mapping's loop: wait for a tick (or the end of a back-off), take the
/// mapping's lock and a run permit, run, record, repeat.
async fn worker(
    exchange: Arc<Exchange>,
    name: String,
    mut ticks: mpsc::Receiver<()>,
    shared: Arc<Shared>,
    stop: Shutdown,
    shutdown: Shutdown,
) {
    let settings = exchange.config.daemon.clone();
    let Some(m) = exchange.config.mapping(&name) else {
        return;
    };
    let mut failures: u32 = 0;
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let wake = tokio::select! {
            biased;
            _ = shutdown.wait() => return,
            _ = stop.wait() => return,
            _ = async { tokio::time::sleep_until(retry_at.expect("guarded")).await }, if retry_at.is_some() => Wake::Retry,
            t = ticks.recv() => match t {
                Some(()) => Wake::Tick,
                None => return,
            },
        };
        if let (Wake::Tick, Some(at)) = (&wake, retry_at) {
            if tokio::time::Instant::now() < at {
                tracing::debug!(partner = %m.partner, mapping = %m.name, "tick skipped: backing off after a failure");
                continue;
            }
        }
        retry_at = None;
        let lock = shared.lock_for(&name);
        let _one_at_a_time = tokio::select! {
            g = lock.lock_owned() => g,
            _ = shutdown.wait() => return,
        };
        let _permit = tokio::select! {
            p = shared.runs.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.wait() => return,
        };
        if stop.is_triggered() || shutdown.is_triggered() {
            return;
        }
        shared.update(&name, |h| h.running = true);
        let mut out = exchange.run(m, &shutdown).await;
        // A two-way pull half: its push half follows at once.
        if let Some(push) = m
            .pair
            .as_ref()
            .filter(|p| p.role == crate::mapping::Direction::Pull)
            .and_then(|p| exchange.config.mapping(&p.sibling))
            .filter(|p| p.enabled)
        {
            // Only after a pull that ran to the end: a push must not
            // overwrite partner changes the pull has not taken yet.
            if out.status == Status::Ok && !shutdown.is_triggered() {
                shared.update(&push.name, |h| h.running = true);
                let pushed = exchange.run(push, &shutdown).await;
                record(&shared, &push.name, &pushed, 0);
                if matches!(pushed.status, Status::Failed | Status::Halted) {
                    out = pushed;
                }
            }
        }
        let failed = matches!(out.status, Status::Failed | Status::Halted);
        if failed {
            failures += 1;
            let wait = backoff(failures, &settings);
            retry_at = Some(tokio::time::Instant::now() + wait);
            tracing::warn!(
                partner = %m.partner,
                mapping = %m.name,
                failures,
                "run {}; retrying in {}s",
                out.status.as_str(),
                wait.as_secs()
            );
        } else if out.status != Status::Skipped {
            if failures > 0 {
                tracing::info!(partner = %m.partner, mapping = %m.name, "recovered after {failures} failed run(s)");
            }
            failures = 0;
        }
        record(&shared, &name, &out, failures);
    }
}

/// A mapping's scheduled reconcile (`reconcile = …`): under the mapping's
/// lock, so it never overlaps the mapping's own runs; `--apply` semantics.
async fn reconcile_worker(
    exchange: Arc<Exchange>,
    name: String,
    mut ticks: mpsc::Receiver<()>,
    shared: Arc<Shared>,
    stop: Shutdown,
    shutdown: Shutdown,
) {
    let Some(m) = exchange.config.mapping(&name) else {
        return;
    };
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait() => return,
            _ = stop.wait() => return,
            t = ticks.recv() => if t.is_none() { return },
        }
        let lock = shared.lock_for(&name);
        let _one_at_a_time = tokio::select! {
            g = lock.lock_owned() => g,
            _ = shutdown.wait() => return,
        };
        let _permit = tokio::select! {
            p = shared.runs.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.wait() => return,
        };
        match crate::reconcile::reconcile(&exchange, m, true).await {
            Ok(r) if r.missing + r.differs + r.extra == 0 => {
                tracing::info!(partner = %m.partner, mapping = %m.name, rows = r.source_rows, "reconcile: in step")
            }
            Ok(r) => tracing::warn!(
                partner = %m.partner,
                mapping = %m.name,
                missing = r.missing,
                differs = r.differs,
                extra = r.extra,
                "reconcile repaired drift"
            ),
            Err(e) => tracing::error!(partner = %m.partner, mapping = %m.name, "reconcile failed: {e:#}"),
        }
    }
}

fn record(shared: &Shared, name: &str, out: &Outcome, failures: u32) {
    shared.update(name, |h| {
        h.running = false;
        h.failures = failures;
        if failures > 0 {
            h.last_error = out.error.clone();
        } else if matches!(out.status, Status::Ok) {
            h.last_ok = Some(chrono::Local::now());
            h.last_error = None;
        }
    });
}

/// The wait before retry number `failures` (1-based): `retry_min` doubling
/// per failure up to `retry_max`, then drawn from its upper half so that
/// mappings failing together do not retry together.
fn backoff(failures: u32, s: &DaemonSettings) -> Duration {
    let exp = s.retry_min.0.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    let d = exp.min(s.retry_max.0);
    d.mul_f64(0.5 + 0.5 * fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let s = DaemonSettings {
            retry_min: config::Duration(Duration::from_secs(10)),
            retry_max: config::Duration(Duration::from_secs(60)),
            ..DaemonSettings::default()
        };
        for _ in 0..200 {
            let one = backoff(1, &s);
            assert!(
                one >= Duration::from_secs(5) && one <= Duration::from_secs(10),
                "{one:?}"
            );
            let three = backoff(3, &s);
            assert!(
                three >= Duration::from_secs(20) && three <= Duration::from_secs(40),
                "{three:?}"
            );
            let many = backoff(40, &s);
            assert!(
                many >= Duration::from_secs(30) && many <= Duration::from_secs(60),
                "{many:?}"
            );
        }
    }

    #[test]
    fn the_status_line_names_what_runs_and_what_fails() {
        let shared = Shared::new(&DaemonSettings::default());
        shared.update("haikou.work_order", |h| h.running = true);
        shared.update("dept12315.complaint", |h| {
            h.failures = 2;
            h.last_error = Some("partner dept12315: cannot connect\nsecond line".into());
        });
        let s = shared.status_line();
        assert!(
            s.starts_with("2 mapping(s), running: haikou.work_order, 1 failing"),
            "{s}"
        );
        assert!(
            s.contains("dept12315.complaint: partner dept12315: cannot connect"),
            "{s}"
        );
    }
}
