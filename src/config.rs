//! `exchange.toml`: the province, the partners, the defaults, where the
//! mappings live. Loading reads the config, every mapping in `[mappings] dir`
//! and every code set in `<dir>/codesets/`, and collects every problem with
//! its file, line and column ([`crate::diag`]). Passwords are read only when a
//! connection is made ([`Endpoint::password`]) and live in [`Secret`].

use crate::db::Engine;
use crate::diag::{Diagnostic, Diagnostics, SourceFile};
use crate::mapping::{self, codeset::CodeSets, Mapping};
use crate::protect::{KeyBytes, Keyring};
use crate::secret::{redact_url, Secret};
use chrono::FixedOffset;
use indexmap::IndexMap;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;

/// A length of time written as `30s`, `5m`, `2h`, `1d` or `250ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub fn parse(s: &str) -> Result<Duration, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (n, unit) = t.split_at(split);
        let bad = || {
            format!("duration `{t}`: expected a number and a unit, e.g. \"30s\", \"10m\", \"2h\", \"1d\", \"500ms\"")
        };
        let n: u64 = n.parse().map_err(|_| bad())?;
        let secs = match unit.trim() {
            "ms" => return Ok(Duration(std::time::Duration::from_millis(n))),
            "s" => n,
            "m" | "min" => n * 60,
            "h" => n * 3600,
            "d" => n * 86400,
            _ => return Err(bad()),
        };
        Ok(Duration(std::time::Duration::from_secs(secs)))
    }

    pub fn chrono(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }
}

impl std::fmt::Display for Duration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0.as_secs();
        if self.0.subsec_millis() != 0 || s == 0 {
            write!(f, "{}ms", self.0.as_millis())
        } else if s % 86400 == 0 {
            write!(f, "{}d", s / 86400)
        } else if s % 3600 == 0 {
            write!(f, "{}h", s / 3600)
        } else if s % 60 == 0 {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

/// The exchange frequency: `every 5m`, or a 6-field cron expression
/// (`sec min hour day-of-month month day-of-week`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Every(Duration),
    Cron(String),
}

impl Schedule {
    pub fn parse(s: &str) -> Result<Schedule, String> {
        let t = s.trim();
        if let Some(rest) = t.strip_prefix("every ") {
            let d = Duration::parse(rest).map_err(|e| format!("schedule `{t}`: {e}"))?;
            if d.0 < std::time::Duration::from_secs(1) {
                return Err(format!("schedule `{t}`: at least every 1s"));
            }
            return Ok(Schedule::Every(d));
        }
        let fields: Vec<&str> = t.split_whitespace().collect();
        if fields.len() != 6 {
            return Err(format!(
                "schedule `{t}`: expected \"every 5m\" or a 6-field cron expression such as \"0 */5 * * * *\" (sec min hour day month weekday), found {} fields",
                fields.len()
            ));
        }
        let expr = fields.join(" ");
        cron_parser()
            .parse(&expr)
            .map_err(|e| format!("schedule `{t}`: {e} (fields: sec min hour day month weekday)"))?;
        Ok(Schedule::Cron(fields.join(" ")))
    }
}

/// The cron dialect of the scheduler (tokio-cron-scheduler parses with the
/// same settings), so that `hlx check` refuses what the daemon would refuse.
pub fn cron_parser() -> croner::parser::CronParser {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Every(d) => write!(f, "every {d}"),
            Schedule::Cron(c) => f.write_str(c),
        }
    }
}

/// What a rejected row does to its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnReject {
    /// Store the row and its reason in the quarantine, keep going.
    Quarantine,
    /// Stop the mapping at the first rejected row; its batch is rolled back.
    Halt,
}

impl OnReject {
    pub fn parse(s: &str) -> Result<OnReject, String> {
        match s {
            "quarantine" => Ok(OnReject::Quarantine),
            "halt" => Ok(OnReject::Halt),
            other => Err(format!("on_reject `{other}`: expected \"quarantine\" or \"halt\"")),
        }
    }
}

/// A run halts (its current batch rolled back) when rejections pass either
/// limit, as DataX's errorLimit does: a plainly broken mapping must not
/// quarantine a whole table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RejectLimit {
    /// At most this many rejected rows in one run.
    pub count: Option<u64>,
    /// At most this share of the rows read in one run, checked once the run has
    /// read `RATIO_MIN_ROWS` rows (so three rows with one bad one do not halt).
    pub ratio: Option<f64>,
}

/// Rows a run must have read before [`RejectLimit::ratio`] is applied.
pub const RATIO_MIN_ROWS: u64 = 100;

impl Default for RejectLimit {
    fn default() -> Self {
        RejectLimit {
            count: None,
            ratio: Some(0.5),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRejectLimit {
    #[serde(default)]
    count: Option<i64>,
    #[serde(default)]
    ratio: Option<f64>,
}

impl RawRejectLimit {
    pub fn check(&self) -> Result<RejectLimit, String> {
        let count = match self.count {
            Some(c) if c < 0 => return Err("reject_limit.count must be 0 or more".into()),
            c => c.map(|c| c as u64),
        };
        if let Some(r) = self.ratio {
            if !(0.0..=1.0).contains(&r) {
                return Err("reject_limit.ratio must be between 0 and 1".into());
            }
        }
        Ok(RejectLimit {
            count,
            ratio: self.ratio,
        })
    }
}

/// `[defaults]`, checked.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub schedule: Schedule,
    pub batch_size: usize,
    pub lookback: Duration,
    pub timezone: FixedOffset,
    pub on_reject: OnReject,
    pub reject_limit: RejectLimit,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            schedule: Schedule::Every(Duration(std::time::Duration::from_secs(300))),
            batch_size: 5000,
            lookback: Duration(std::time::Duration::from_secs(600)),
            timezone: FixedOffset::east_opt(8 * 3600).expect("+8"),
            on_reject: OnReject::Quarantine,
            reject_limit: RejectLimit::default(),
        }
    }
}

/// `[daemon]`, checked: how `hlx daemon` paces and bounds its runs.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    /// Runs in progress at once, across all partners.
    pub max_runs: usize,
    /// How long SIGTERM waits for runs to finish their batch before rolling back.
    pub grace: Duration,
    /// The first retry after a failed run; doubles per failure (with jitter)…
    pub retry_min: Duration,
    /// …up to this cap.
    pub retry_max: Duration,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            max_runs: 4,
            grace: Duration(std::time::Duration::from_secs(30)),
            retry_min: Duration(std::time::Duration::from_secs(10)),
            retry_max: Duration(std::time::Duration::from_secs(600)),
        }
    }
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `[log]`, checked.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing filter: `info`, `warn`, `hotline_exchange=debug`, …
    pub level: String,
    /// The exchange log's chain hash.
    pub chain_hash: crate::exchange_log::ChainHash,
    /// Exchange log entries are kept at least this long (never under 180).
    pub retention_days: u32,
}

/// The legal floor for keeping the exchange log (网络安全法: six months).
pub const MIN_RETENTION_DAYS: u32 = 180;

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Text,
            level: "info".into(),
            chain_hash: crate::exchange_log::ChainHash::Sha256,
            retention_days: MIN_RETENTION_DAYS,
        }
    }
}

/// What a partner overrides for its mappings.
#[derive(Debug, Clone, Default)]
pub struct PartnerDefaults {
    pub zone: Option<FixedOffset>,
    pub schedule: Option<Schedule>,
    pub batch_size: Option<usize>,
    pub lookback: Option<Duration>,
}

/// Where a password comes from.
#[derive(Debug, Clone)]
pub enum PasswordSource {
    None,
    Env(String),
    File(PathBuf),
}

/// A database to connect to. `Debug` shows the URL redacted.
#[derive(Clone)]
pub struct Endpoint {
    /// As written in the config (may hold a password; never printed).
    url: String,
    pub engine: Engine,
    pub password: PasswordSource,
    pub max_connections: u32,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    /// Time zone of naive timestamps in this database.
    pub zone: FixedOffset,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.display_url())
            .field("engine", &self.engine)
            .field("password", &self.password)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// The URL with any password replaced by `***`: the only form ever shown.
    pub fn display_url(&self) -> String {
        redact_url(&self.url)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Reads the password now (so a rotated credential file is picked up).
    pub fn password(&self) -> anyhow::Result<Option<Secret>> {
        match &self.password {
            PasswordSource::None => Ok(None),
            PasswordSource::Env(var) => match std::env::var(var) {
                Ok(v) => Ok(Some(Secret::new(v))),
                Err(_) => anyhow::bail!("environment variable {var} (password_env) is not set"),
            },
            PasswordSource::File(p) => {
                let p = resolve_credential(p);
                match std::fs::read_to_string(&p) {
                    Ok(v) => Ok(Some(Secret::new(v.trim_end_matches(['\n', '\r'])))),
                    Err(e) => anyhow::bail!("cannot read password_file {}: {e}", p.display()),
                }
            }
        }
    }

    /// An endpoint for tests and the demo.
    pub fn from_url(url: &str, zone: FixedOffset) -> anyhow::Result<Endpoint> {
        Ok(Endpoint {
            url: url.to_string(),
            engine: Engine::from_url(url).map_err(anyhow::Error::msg)?,
            password: PasswordSource::None,
            max_connections: 4,
            connect_timeout: Duration(std::time::Duration::from_secs(10)),
            statement_timeout: Duration(std::time::Duration::from_secs(600)),
            zone,
        })
    }
}

/// A relative `password_file` is looked up in `$CREDENTIALS_DIRECTORY` first
/// (systemd's `LoadCredential=`), so the unit can say `password_file = "province"`.
fn resolve_credential(p: &Path) -> PathBuf {
    if p.is_relative() {
        if let Ok(dir) = std::env::var("CREDENTIALS_DIRECTORY") {
            let c = Path::new(&dir).join(p);
            if c.exists() {
                return c;
            }
        }
    }
    p.to_path_buf()
}

/// A partner, checked.
#[derive(Debug, Clone)]
pub struct Partner {
    pub name: String,
    pub title: Option<String>,
    /// `hotline = "…"`: the hotline this partner serves, for reports.
    pub hotline: Option<String>,
    pub endpoint: Endpoint,
    pub defaults: PartnerDefaults,
}

/// The whole configuration, checked.
#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
    pub province: Endpoint,
    /// `[province] provincial_schema = "existing"`: the provincial tables are
    /// the DBA's; `migrate`, `run` and the daemon create hlx's state only.
    pub existing_schema: bool,
    pub defaults: Defaults,
    pub partners: Vec<Partner>,
    pub mappings: Vec<Mapping>,
    pub mappings_dir: PathBuf,
    pub report: ReportSettings,
    pub daemon: DaemonSettings,
    pub log: LogSettings,
    /// `[protection]`: keys for `hash` and `protect` fields and `hlx decrypt`.
    pub keys: Arc<Keyring>,
    /// Warnings found while loading (errors make loading fail).
    pub warnings: Diagnostics,
}

impl Config {
    pub fn partner(&self, name: &str) -> Option<&Partner> {
        self.partners.iter().find(|p| p.name == name)
    }

    pub fn mapping(&self, name: &str) -> Option<&Mapping> {
        self.mappings.iter().find(|m| m.name == name)
    }

    /// The mappings a run of `names` takes: those named (unknown names are
    /// skipped), or every enabled one when `names` is empty.
    pub fn selected(&self, names: &[String]) -> Vec<&Mapping> {
        if names.is_empty() {
            self.mappings.iter().filter(|m| m.enabled).collect()
        } else {
            names.iter().filter_map(|n| self.mapping(n)).collect()
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    province: Spanned<RawDb>,
    #[serde(default)]
    defaults: Option<RawDefaults>,
    #[serde(default, rename = "partner")]
    partners: Vec<Spanned<RawPartner>>,
    #[serde(default)]
    mappings: Option<RawMappings>,
    #[serde(default)]
    report: Option<RawReport>,
    #[serde(default)]
    daemon: Option<RawDaemon>,
    #[serde(default)]
    log: Option<RawLog>,
    #[serde(default)]
    protection: Option<RawProtection>,
}

/// `[protection]`: key id = key file (hex), and which keys new values use.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProtection {
    #[serde(default)]
    keys: IndexMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    encrypt_key: Option<Spanned<String>>,
    #[serde(default)]
    hash_key: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDb {
    url: Spanned<String>,
    #[serde(default)]
    password_env: Option<Spanned<String>>,
    #[serde(default)]
    password_file: Option<Spanned<String>>,
    #[serde(default)]
    max_connections: Option<Spanned<i64>>,
    #[serde(default)]
    connect_timeout: Option<Spanned<String>>,
    #[serde(default)]
    statement_timeout: Option<Spanned<String>>,
    #[serde(default)]
    timezone: Option<Spanned<String>>,
    /// `[province]` only: "default" (hlx creates the provincial tables) or
    /// "existing" (the DBA's own tables; hlx migrates its `hlx_` state only).
    #[serde(default)]
    provincial_schema: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartner {
    name: Spanned<String>,
    #[serde(default)]
    title: Option<String>,
    /// The hotline this partner serves (a `hotline.hotline_code`, e.g.
    /// `yc_12315`): reports group partners by it.
    #[serde(default)]
    hotline: Option<String>,
    url: Spanned<String>,
    #[serde(default)]
    password_env: Option<Spanned<String>>,
    #[serde(default)]
    password_file: Option<Spanned<String>>,
    #[serde(default)]
    max_connections: Option<Spanned<i64>>,
    #[serde(default)]
    connect_timeout: Option<Spanned<String>>,
    #[serde(default)]
    statement_timeout: Option<Spanned<String>>,
    #[serde(default)]
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    schedule: Option<Spanned<String>>,
    #[serde(default)]
    batch_size: Option<Spanned<i64>>,
    #[serde(default)]
    lookback: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    #[serde(default)]
    schedule: Option<Spanned<String>>,
    #[serde(default)]
    batch_size: Option<Spanned<i64>>,
    #[serde(default)]
    lookback: Option<Spanned<String>>,
    #[serde(default)]
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    on_reject: Option<Spanned<String>>,
    #[serde(default)]
    reject_limit: Option<RawRejectLimit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMappings {
    #[serde(default)]
    dir: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReport {
    #[serde(default)]
    dir: Option<String>,
    #[serde(default)]
    lag_threshold: Option<Spanned<String>>,
    #[serde(default)]
    silent_after: Option<Spanned<String>>,
}

/// `[report]`, checked: when a mapping counts as lagging or silent.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// Where the daemon writes the daily report (html and json).
    pub dir: Option<PathBuf>,
    /// Lagging: the watermark is older than this, or no run succeeded for this long.
    pub lag_threshold: Duration,
    /// Silent: runs succeed but no new row arrived for longer than this.
    pub silent_after: Duration,
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings {
            dir: None,
            lag_threshold: Duration(std::time::Duration::from_secs(3600)),
            silent_after: Duration(std::time::Duration::from_secs(86400)),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    #[serde(default)]
    max_runs: Option<Spanned<i64>>,
    #[serde(default)]
    grace: Option<Spanned<String>>,
    #[serde(default)]
    retry_min: Option<Spanned<String>>,
    #[serde(default)]
    retry_max: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    #[serde(default)]
    format: Option<Spanned<String>>,
    #[serde(default)]
    level: Option<Spanned<String>>,
    #[serde(default)]
    chain_hash: Option<Spanned<String>>,
    #[serde(default)]
    retention_days: Option<Spanned<i64>>,
}

/// Reads `[protection]`: every key file now, so a missing or malformed key
/// is a config error (exit 78) and not a failed run later. A relative key
/// file is looked up in `$CREDENTIALS_DIRECTORY` (systemd's `LoadCredential=`)
/// and then next to exchange.toml.
fn keyring(file: &SourceFile, raw: Option<&RawProtection>, base: &Path, diags: &mut Diagnostics) -> Keyring {
    let mut ring = Keyring::default();
    let Some(r) = raw else { return ring };
    for (id, path) in &r.keys {
        if !KEY_ID_RE.is_match(id.get_ref()) {
            diags.push(file.at(
                id.span(),
                format!(
                    "[protection] key id `{}`: expected letters, digits, `_` and `-`",
                    id.get_ref()
                ),
            ));
            continue;
        }
        let p = resolve_credential(Path::new(path.get_ref()));
        let p = if p.is_relative() { base.join(p) } else { p };
        match std::fs::read_to_string(&p) {
            Ok(text) => match KeyBytes::from_hex(&text) {
                Ok(k) => ring.insert(id.get_ref(), k),
                Err(e) => diags.push(file.at(
                    path.span(),
                    format!("[protection] key `{}` in {}: {e}", id.get_ref(), p.display()),
                )),
            },
            Err(e) => diags.push(file.at(
                path.span(),
                format!("[protection] key `{}`: cannot read {}: {e}", id.get_ref(), p.display()),
            )),
        }
    }
    for (what, id) in [("encrypt_key", &r.encrypt_key), ("hash_key", &r.hash_key)] {
        if let Some(id) = id {
            if !r.keys.keys().any(|k| k.get_ref() == id.get_ref()) {
                diags.push(file.at(
                    id.span(),
                    format!("[protection] {what} `{}` is not one of [protection] keys", id.get_ref()),
                ));
            }
        }
    }
    if let (Some(e), Some(h)) = (&r.encrypt_key, &r.hash_key) {
        if e.get_ref() == h.get_ref() {
            diags.push(file.at(
                h.span(),
                "[protection] hash_key is the encrypt_key: use a separate key for hashing (hlx keygen --for hmac-sm3)",
            ));
        }
    }
    ring.encrypt_key = r.encrypt_key.as_ref().map(|k| k.get_ref().clone());
    ring.hash_key = r.hash_key.as_ref().map(|k| k.get_ref().clone());
    ring
}

fn daemon_settings(file: &SourceFile, raw: Option<&RawDaemon>, diags: &mut Diagnostics) -> DaemonSettings {
    let mut d = DaemonSettings::default();
    let Some(r) = raw else { return d };
    if let Some(m) = &r.max_runs {
        if (1..=256).contains(m.get_ref()) {
            d.max_runs = *m.get_ref() as usize;
        } else {
            diags.push(file.at(
                m.span(),
                format!("[daemon] max_runs {}: expected 1 to 256", m.get_ref()),
            ));
        }
    }
    if let Some(g) = parse_spanned(file, &r.grace, Duration::parse, diags) {
        d.grace = g;
    }
    if let Some(x) = parse_spanned(file, &r.retry_min, Duration::parse, diags) {
        d.retry_min = x;
    }
    if let Some(x) = parse_spanned(file, &r.retry_max, Duration::parse, diags) {
        d.retry_max = x;
    }
    if d.retry_min.0.is_zero() || d.retry_max < d.retry_min {
        let at = r
            .retry_max
            .as_ref()
            .or(r.retry_min.as_ref())
            .map(|s| s.span())
            .unwrap_or(0..0);
        diags.push(file.at(
            at,
            format!(
                "[daemon] retry_min {} and retry_max {}: expected 0 < retry_min <= retry_max",
                d.retry_min, d.retry_max
            ),
        ));
    }
    d
}

fn log_settings(file: &SourceFile, raw: Option<&RawLog>, diags: &mut Diagnostics) -> LogSettings {
    let mut l = LogSettings::default();
    let Some(r) = raw else { return l };
    if let Some(f) = &r.format {
        match f.get_ref().as_str() {
            "text" => l.format = LogFormat::Text,
            "json" => l.format = LogFormat::Json,
            other => diags.push(file.at(
                f.span(),
                format!("[log] format `{other}`: expected \"text\" or \"json\""),
            )),
        }
    }
    if let Some(v) = &r.level {
        match tracing_subscriber::EnvFilter::try_new(v.get_ref()) {
            Ok(_) => l.level = v.get_ref().clone(),
            Err(e) => diags.push(file.at(
                v.span(),
                format!(
                    "[log] level `{}`: {e} (expected e.g. \"info\", \"warn\", \"hotline_exchange=debug\")",
                    v.get_ref()
                ),
            )),
        }
    }
    if let Some(h) = parse_spanned(file, &r.chain_hash, crate::exchange_log::ChainHash::parse, diags) {
        l.chain_hash = h;
    }
    if let Some(d) = &r.retention_days {
        let v = *d.get_ref();
        if (MIN_RETENTION_DAYS as i64..=36500).contains(&v) {
            l.retention_days = v as u32;
        } else {
            diags.push(file.at(
                d.span(),
                format!(
                    "[log] retention_days {v}: expected {MIN_RETENTION_DAYS} to 36500 (the exchange log is kept at least six months, Cybersecurity Law art. 21)"
                ),
            ));
        }
    }
    l
}

/// Picks `-c PATH`, else `./exchange.toml`, else `/etc/hlx/exchange.toml`.
pub fn locate(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    let local = PathBuf::from("exchange.toml");
    if local.exists() {
        return local;
    }
    PathBuf::from("/etc/hlx/exchange.toml")
}

fn parse_spanned<T>(
    file: &SourceFile,
    v: &Option<Spanned<String>>,
    parse: impl Fn(&str) -> Result<T, String>,
    diags: &mut Diagnostics,
) -> Option<T> {
    let v = v.as_ref()?;
    match parse(v.get_ref()) {
        Ok(x) => Some(x),
        Err(e) => {
            diags.push(file.at(v.span(), e));
            None
        }
    }
}

fn db_endpoint(
    file: &SourceFile,
    raw: &RawDb,
    base: &Path,
    zone: FixedOffset,
    diags: &mut Diagnostics,
    what: &str,
) -> Option<Endpoint> {
    let engine = match Engine::from_url(raw.url.get_ref()) {
        Ok(e) => Some(e),
        Err(e) => {
            diags.push(file.at(raw.url.span(), format!("{what} url: {e}")));
            None
        }
    };
    let password = match (&raw.password_env, &raw.password_file) {
        (Some(_), Some(f)) => {
            diags.push(file.at(
                f.span(),
                format!("{what}: give password_env or password_file, not both"),
            ));
            PasswordSource::None
        }
        (Some(e), None) => PasswordSource::Env(e.get_ref().clone()),
        (None, Some(f)) => {
            let p = PathBuf::from(f.get_ref());
            // Relative paths are relative to the config file, unless systemd's
            // credentials directory holds them (see resolve_credential).
            let p = if p.is_relative() && std::env::var_os("CREDENTIALS_DIRECTORY").is_none() {
                base.join(p)
            } else {
                p
            };
            PasswordSource::File(p)
        }
        (None, None) => PasswordSource::None,
    };
    if let Ok(u) = url::Url::parse(raw.url.get_ref()) {
        if u.password().is_some() {
            diags.push(
                file.at(raw.url.span(), format!("{what} url carries a password: move it to password_env or password_file (it is never printed, but config files get copied)"))
                    .warning(),
            );
        }
    }
    let max_connections = match &raw.max_connections {
        Some(m) if (1..=64).contains(m.get_ref()) => *m.get_ref() as u32,
        Some(m) => {
            diags.push(file.at(
                m.span(),
                format!("{what} max_connections {}: expected 1 to 64", m.get_ref()),
            ));
            4
        }
        None => 4,
    };
    let connect_timeout = parse_spanned(file, &raw.connect_timeout, Duration::parse, diags)
        .unwrap_or(Duration(std::time::Duration::from_secs(10)));
    let statement_timeout = parse_spanned(file, &raw.statement_timeout, Duration::parse, diags)
        .unwrap_or(Duration(std::time::Duration::from_secs(600)));
    let zone = parse_spanned(file, &raw.timezone, crate::mapping::datetime::parse_zone, diags).unwrap_or(zone);
    Some(Endpoint {
        url: raw.url.get_ref().clone(),
        engine: engine?,
        password,
        max_connections,
        connect_timeout,
        statement_timeout,
        zone,
    })
}

static KEY_ID_RE: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new("^[A-Za-z0-9_-]{1,64}$").expect("valid regex"));

static PARTNER_RE: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new(r"^[a-z0-9_]+$").expect("static regex"));

/// Loads and checks the config and everything it points at. Returns every
/// error at once.
pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    let mut diags = Diagnostics::default();
    let file = match SourceFile::read(path) {
        Ok(f) => f,
        Err(d) => {
            diags.push(d);
            return Err(diags);
        }
    };
    let raw: RawConfig = match toml::from_str(&file.text) {
        Ok(r) => r,
        Err(e) => {
            diags.push(file.toml_error(&e));
            return Err(diags);
        }
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };

    let mut defaults = Defaults::default();
    if let Some(d) = &raw.defaults {
        if let Some(s) = parse_spanned(&file, &d.schedule, Schedule::parse, &mut diags) {
            defaults.schedule = s;
        }
        if let Some(b) = &d.batch_size {
            if (1..=1_000_000).contains(b.get_ref()) {
                defaults.batch_size = *b.get_ref() as usize;
            } else {
                diags.push(file.at(b.span(), format!("batch_size {}: expected 1 to 1000000", b.get_ref())));
            }
        }
        if let Some(l) = parse_spanned(&file, &d.lookback, Duration::parse, &mut diags) {
            defaults.lookback = l;
        }
        if let Some(z) = parse_spanned(&file, &d.timezone, crate::mapping::datetime::parse_zone, &mut diags) {
            defaults.timezone = z;
        }
        if let Some(o) = parse_spanned(&file, &d.on_reject, OnReject::parse, &mut diags) {
            defaults.on_reject = o;
        }
        if let Some(r) = &d.reject_limit {
            match r.check() {
                Ok(l) => defaults.reject_limit = l,
                Err(e) => diags.push(Diagnostic::file(path, format!("[defaults] {e}"))),
            }
        }
    }

    let existing_schema = match &raw.province.get_ref().provincial_schema {
        None => false,
        Some(s) if s.get_ref() == "default" => false,
        Some(s) if s.get_ref() == "existing" => true,
        Some(s) => {
            diags.push(file.at(
                s.span(),
                format!(
                    "[province] provincial_schema `{}`: expected \"default\" (hlx creates its tables) or \"existing\" (yours; hlx migrates only its hlx_ state)",
                    s.get_ref()
                ),
            ));
            false
        }
    };
    let province = db_endpoint(
        &file,
        raw.province.get_ref(),
        &base,
        defaults.timezone,
        &mut diags,
        "[province]",
    );

    let mut partners: Vec<Partner> = Vec::new();
    for p in &raw.partners {
        let rp = p.get_ref();
        let name = rp.name.get_ref().clone();
        if !PARTNER_RE.is_match(&name) {
            diags.push(file.at(
                rp.name.span(),
                format!("partner name `{name}`: expected lower-case letters, digits and `_`"),
            ));
        }
        if partners.iter().any(|x| x.name == name) {
            diags.push(file.at(rp.name.span(), format!("partner `{name}` is declared twice")));
            continue;
        }
        let db = RawDb {
            url: rp.url.clone(),
            password_env: rp.password_env.clone(),
            password_file: rp.password_file.clone(),
            max_connections: rp.max_connections.clone(),
            connect_timeout: rp.connect_timeout.clone(),
            statement_timeout: rp.statement_timeout.clone(),
            timezone: rp.timezone.clone(),
            provincial_schema: None,
        };
        let what = format!("partner `{name}`");
        let Some(endpoint) = db_endpoint(&file, &db, &base, defaults.timezone, &mut diags, &what) else {
            continue;
        };
        let pd = PartnerDefaults {
            zone: rp.timezone.as_ref().map(|_| endpoint.zone),
            schedule: parse_spanned(&file, &rp.schedule, Schedule::parse, &mut diags),
            batch_size: match &rp.batch_size {
                Some(b) if (1..=1_000_000).contains(b.get_ref()) => Some(*b.get_ref() as usize),
                Some(b) => {
                    diags.push(file.at(b.span(), format!("batch_size {}: expected 1 to 1000000", b.get_ref())));
                    None
                }
                None => None,
            },
            lookback: parse_spanned(&file, &rp.lookback, Duration::parse, &mut diags),
        };
        partners.push(Partner {
            name,
            title: rp.title.clone(),
            hotline: rp.hotline.clone(),
            endpoint,
            defaults: pd,
        });
    }

    let daemon = daemon_settings(&file, raw.daemon.as_ref(), &mut diags);
    let mut report = ReportSettings::default();
    if let Some(r) = &raw.report {
        report.dir = r.dir.as_ref().map(|d| base.join(d));
        if let Some(d) = parse_spanned(&file, &r.lag_threshold, Duration::parse, &mut diags) {
            report.lag_threshold = d;
        }
        if let Some(d) = parse_spanned(&file, &r.silent_after, Duration::parse, &mut diags) {
            report.silent_after = d;
        }
    }
    let log = log_settings(&file, raw.log.as_ref(), &mut diags);
    let keys = Arc::new(keyring(&file, raw.protection.as_ref(), &base, &mut diags));

    let mappings_dir = base.join(
        raw.mappings
            .as_ref()
            .and_then(|m| m.dir.clone())
            .unwrap_or_else(|| "mappings".into()),
    );
    let codesets = CodeSets::load(&mappings_dir.join("codesets"), &mut diags);
    let mut mappings: Vec<Mapping> = Vec::new();
    match std::fs::read_dir(&mappings_dir) {
        Ok(entries) => {
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            let lookup = |n: &str| partners.iter().find(|p| p.name == n).map(|p| p.defaults.clone());
            let ctx = mapping::Context {
                defaults: &defaults,
                partner: &lookup,
                codesets: &codesets,
                keys: &keys,
            };
            for f in files {
                for m in mapping::load(&f, &ctx, &mut diags) {
                    if let Some(other) = mappings.iter().find(|x| x.name == m.name) {
                        diags.push(Diagnostic::file(
                            &f,
                            format!("mapping `{}` is also defined in {}", m.name, other.file.display()),
                        ));
                        continue;
                    }
                    mappings.push(m);
                }
            }
        }
        Err(e) => diags.push(Diagnostic::file(
            &mappings_dir,
            format!("cannot read the mappings directory: {e}"),
        )),
    }

    if diags.has_errors() {
        return Err(diags);
    }
    Ok(Config {
        path: path.to_path_buf(),
        province: province.expect("no errors means the province parsed"),
        existing_schema,
        defaults,
        partners,
        mappings,
        mappings_dir,
        report,
        daemon,
        log,
        keys,
        warnings: diags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_password_in_a_url() {
        let e = Endpoint::from_url("mysql://hlx:topsecret@10.0.0.1/db", FixedOffset::east_opt(0).unwrap()).unwrap();
        let shown = format!("{e:?}");
        assert!(!shown.contains("topsecret"), "{shown}");
        assert!(shown.contains("hlx:***@10.0.0.1"), "{shown}");
    }

    #[test]
    fn durations_and_schedules() {
        assert_eq!(Duration::parse("10m").unwrap().0.as_secs(), 600);
        assert_eq!(Duration::parse("500ms").unwrap().0.as_millis(), 500);
        assert!(Duration::parse("10 minutes").is_err());
        assert_eq!(
            Schedule::parse("every 30s").unwrap(),
            Schedule::Every(Duration::parse("30s").unwrap())
        );
        assert_eq!(
            Schedule::parse("0 */5 * * * *").unwrap(),
            Schedule::Cron("0 */5 * * * *".into())
        );
        let e = Schedule::parse("*/5 * * * *").unwrap_err();
        assert!(e.contains("found 5 fields"), "{e}");
        // Six fields, but minute 61 does not exist: refused before the daemon sees it.
        let e = Schedule::parse("0 61 * * * *").unwrap_err();
        assert!(e.contains("0 61 * * * *"), "{e}");
        assert!(Schedule::parse("0 0 2 * * Mon-Fri").is_ok());
        assert_eq!(Duration::parse("90s").unwrap().to_string(), "90s");
        assert_eq!(Duration::parse("120m").unwrap().to_string(), "2h");
    }
}
