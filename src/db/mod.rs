//! The database edge: one enum over the three sqlx drivers.
//!
//! * [`Pool`] connects with pinned session settings: UTC session time zone on
//!   PostgreSQL and MySQL (a watermark means the same instant on both sides),
//!   `utf8mb4` on MySQL, WAL and a busy timeout on SQLite, and a statement
//!   timeout where the engine has one.
//! * [`catalog`] reads a table's columns and types, so that identifiers from a
//!   mapping are matched to the real (case-folded) names and values are decoded
//!   without loss.
//! * [`read`] is the source reader (keyset batches on (watermark, key)).
//! * [`write`] is the target writer (COPY + upsert on PostgreSQL, multi-row
//!   upserts on MySQL and SQLite).
//! * [`sql`] runs hlx's own statements with a small argument type.

pub mod catalog;
pub mod pgbin;
pub mod read;
pub mod sql;
pub mod write;

use crate::config::Endpoint;
use crate::secret::{scrub, Secret};
use anyhow::Context as _;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::Executor as _;
use std::str::FromStr;

/// Which database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    Postgres,
    MySql,
    Sqlite,
}

impl Engine {
    /// From a URL scheme: `postgres://`, `postgresql://`, `mysql://`,
    /// `mariadb://`, `sqlite:`.
    pub fn from_url(url: &str) -> Result<Engine, String> {
        let scheme = url.split(':').next().unwrap_or("");
        match scheme {
            "postgres" | "postgresql" => Ok(Engine::Postgres),
            "mysql" | "mariadb" => Ok(Engine::MySql),
            "sqlite" => Ok(Engine::Sqlite),
            _ => Err("expected a URL starting with postgres://, mysql://, mariadb:// or sqlite:".to_string()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::MySql => "mysql",
            Engine::Sqlite => "sqlite",
        }
    }
}

/// A connection pool to one database.
#[derive(Clone, Debug)]
pub enum Pool {
    Pg(PgPool),
    My(MySqlPool),
    Lite(SqlitePool),
}

/// A transaction on a [`Pool`].
pub enum Tx {
    Pg(sqlx::Transaction<'static, sqlx::Postgres>),
    My(sqlx::Transaction<'static, sqlx::MySql>),
    Lite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl Tx {
    pub async fn commit(self) -> anyhow::Result<()> {
        match self {
            Tx::Pg(t) => t.commit().await?,
            Tx::My(t) => t.commit().await?,
            Tx::Lite(t) => t.commit().await?,
        }
        Ok(())
    }

    /// Rolls back now (dropping a transaction rolls it back only once its
    /// connection is used again).
    pub async fn rollback(self) -> anyhow::Result<()> {
        match self {
            Tx::Pg(t) => t.rollback().await?,
            Tx::My(t) => t.rollback().await?,
            Tx::Lite(t) => t.rollback().await?,
        }
        Ok(())
    }

    pub fn engine(&self) -> Engine {
        match self {
            Tx::Pg(_) => Engine::Postgres,
            Tx::My(_) => Engine::MySql,
            Tx::Lite(_) => Engine::Sqlite,
        }
    }
}

impl Pool {
    /// Connects to an endpoint. `create` makes a missing SQLite file (the
    /// province and the demo); partners' SQLite files must exist.
    /// Errors carry the redacted URL and never the password.
    pub async fn connect(ep: &Endpoint, create: bool) -> anyhow::Result<Pool> {
        let password = ep.password()?;
        let shown = ep.display_url();
        let r = Self::connect_inner(ep, password.as_ref(), create).await;
        r.map_err(|e| {
            anyhow::anyhow!(
                "cannot connect to {shown}: {}",
                scrub(&format!("{e:#}"), password.as_ref())
            )
        })
    }

    async fn connect_inner(ep: &Endpoint, password: Option<&Secret>, create: bool) -> anyhow::Result<Pool> {
        let acquire = ep.connect_timeout.0;
        let stmt_ms = ep.statement_timeout.0.as_millis().to_string();
        match ep.engine {
            Engine::Postgres => {
                let mut o = PgConnectOptions::from_str(ep.url()).context("bad PostgreSQL URL")?;
                if let Some(p) = password {
                    o = o.password(p.expose());
                }
                o = o
                    .options([("TimeZone", "UTC"), ("statement_timeout", stmt_ms.as_str())])
                    .application_name("hlx");
                let pool = PgPoolOptions::new()
                    .max_connections(ep.max_connections)
                    .acquire_timeout(acquire)
                    .connect_with(o)
                    .await?;
                Ok(Pool::Pg(pool))
            }
            Engine::MySql => {
                let url = ep.url().replacen("mariadb://", "mysql://", 1);
                let mut o = MySqlConnectOptions::from_str(&url).context("bad MySQL URL")?;
                if let Some(p) = password {
                    o = o.password(p.expose());
                }
                o = o.charset("utf8mb4").timezone(Some("+00:00".to_string()));
                let secs = ep.statement_timeout.0.as_secs_f64();
                let pool = MySqlPoolOptions::new()
                    .max_connections(ep.max_connections)
                    .acquire_timeout(acquire)
                    .after_connect(move |conn, _| {
                        Box::pin(async move {
                            // MariaDB and MySQL name the statement timeout differently;
                            // set whichever this server has.
                            let maria = format!("SET SESSION max_statement_time = {secs}");
                            if conn.execute(sqlx::AssertSqlSafe(maria)).await.is_err() {
                                let my = format!("SET SESSION max_execution_time = {}", (secs * 1000.0) as u64);
                                let _ = conn.execute(sqlx::AssertSqlSafe(my)).await;
                            }
                            conn.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_with(o)
                    .await?;
                Ok(Pool::My(pool))
            }
            Engine::Sqlite => {
                let o = SqliteConnectOptions::from_str(ep.url())
                    .context("bad SQLite URL (expected sqlite://path/to/file.db)")?
                    .create_if_missing(create)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(std::time::Duration::from_secs(30))
                    .foreign_keys(true);
                let pool = SqlitePoolOptions::new()
                    .max_connections(ep.max_connections)
                    .acquire_timeout(acquire)
                    .connect_with(o)
                    .await?;
                Ok(Pool::Lite(pool))
            }
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Pool::Pg(_) => Engine::Postgres,
            Pool::My(_) => Engine::MySql,
            Pool::Lite(_) => Engine::Sqlite,
        }
    }

    pub async fn begin(&self) -> anyhow::Result<Tx> {
        Ok(match self {
            Pool::Pg(p) => Tx::Pg(p.begin().await?),
            Pool::My(p) => Tx::My(p.begin().await?),
            // IMMEDIATE takes the write lock up front: a deferred transaction
            // that later writes can fail with SQLITE_BUSY_SNAPSHOT, which no
            // busy timeout resolves.
            Pool::Lite(p) => Tx::Lite(p.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    pub async fn close(&self) {
        match self {
            Pool::Pg(p) => p.close().await,
            Pool::My(p) => p.close().await,
            Pool::Lite(p) => p.close().await,
        }
    }

    /// A cheap round trip, to tell "down" from "slow".
    pub async fn ping(&self) -> anyhow::Result<()> {
        sql::exec_pool(self, "SELECT 1", &[]).await.map(|_| ())
    }
}
