//! hlx — the 12345 hotline database-table exchange daemon.
//!
//! A map of the crate, from the edges in:
//!
//! * [`cli`] — the `hlx` commands; thin, they call into the rest.
//! * [`config`] — `exchange.toml`, raw → checked, every problem with
//!   `file:line:col` ([`diag`]); secrets in [`secret::Secret`].
//! * [`mapping`] — mapping files, raw → checked, and the **pure core**:
//!   field rules ([`mapping::rules`]), code sets, date-times, the Guangdong
//!   classification code, masking, row checksums, mapping test cases.
//! * [`db`] — the I/O edge over sqlx: connections with pinned session
//!   settings, the catalog, the keyset source reader, the target writer.
//! * [`state`] — hlx's `hlx_` tables in the provincial database: leases,
//!   watermark positions, row checksums, runs, quarantine.
//! * [`exchange`] — the engine: a run of a mapping, batch by batch, each batch
//!   one provincial transaction covering target rows and state together.
//! * [`rejects`] — `hlx rejects`: list, show (masked) and retry the
//!   quarantine; a retry runs through the engine like a run.
//! * [`exchange_log`] — the hash-chained exchange log: appended in each
//!   batch's transaction, verified by `hlx log verify`, pruned with checkpoints.
//! * [`report`] — sync reports (text, JSON, CSV, self-contained HTML).
//! * [`daemon`] — `hlx daemon`: every mapping on its schedule, isolated,
//!   with back-off, signals, reload and systemd's notify protocol
//!   ([`systemd`]).
//! * [`demo`] — `hlx demo`: SQLite partners with sample 12345 data.
//!
//! Values cross every boundary as [`value::Value`], which keeps full
//! precision and has one canonical byte form for checksums.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod db;
pub mod demo;
pub mod diag;
pub mod exchange;
pub mod exchange_log;
pub mod ident;
pub mod load;
pub mod mapping;
pub mod protect;
pub mod reconcile;
pub mod rejects;
pub mod report;
pub mod samples;
pub mod secret;
pub mod shutdown;
pub mod state;
pub mod systemd;
pub mod value;
pub mod window;
