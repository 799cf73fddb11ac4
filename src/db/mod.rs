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
    Pg(PoolTx<sqlx::Postgres>),
    My(PoolTx<sqlx::MySql>),
    Lite(PoolTx<sqlx::Sqlite>),
}

/// Runs `f` on one connection of `pool` and gives the connection back to
/// the pool before returning, so that the next statement finds it idle.
///
/// sqlx gives a connection back in a spawned task that first pings the
/// server; a statement issued meanwhile finds no idle connection and opens
/// another. Over TLS that costs a handshake (about 90 ms to a local
/// PostgreSQL with sqlx 0.9.0, which leaves Nagle's algorithm on:
/// transact-rs/sqlx#4335), and a one-shot `hlx run` would open two or three
/// connections where one does. The price is that the caller waits for
/// that ping: one more round trip per statement (and per commit), which
/// is less than a new connection costs anywhere. On an error the
/// connection goes back the usual way.
pub(crate) async fn with_conn<DB: sqlx::Database, T>(
    pool: &sqlx::Pool<DB>,
    f: impl AsyncFnOnce(&mut DB::Connection) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut conn = pool.acquire().await?;
    let out = f(&mut conn).await?;
    conn.return_to_pool().await;
    Ok(out)
}

/// A transaction on one pooled connection, which hands the connection
/// back to the pool before [`commit`](Self::commit) or
/// [`rollback`](Self::rollback) returns (see [`with_conn`] for why;
/// `sqlx::Transaction` gives it back in a spawned task). Dropped while
/// open (an error, a cancellation, or a caller that forgot to end it), it
/// closes its connection instead of giving it back, and the server rolls
/// the transaction back: end it with `rollback` to keep the connection.
pub struct PoolTx<DB: sqlx::Database> {
    conn: sqlx::pool::PoolConnection<DB>,
    open: bool,
}

impl<DB: sqlx::Database> PoolTx<DB>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    async fn begin(pool: &sqlx::Pool<DB>, begin: &'static str) -> anyhow::Result<PoolTx<DB>> {
        // Open from before BEGIN is sent: a begin that fails or is
        // cancelled half-way (a timeout) closes the connection, so it never
        // goes back to the pool inside a transaction.
        let mut tx = PoolTx {
            conn: pool.acquire().await?,
            open: true,
        };
        tx.conn.execute(begin).await?;
        Ok(tx)
    }

    async fn end(mut self, how: &'static str) -> anyhow::Result<()> {
        self.conn.execute(how).await?;
        self.open = false;
        self.conn.return_to_pool().await;
        Ok(())
    }
}

impl<DB: sqlx::Database> std::ops::Deref for PoolTx<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.conn
    }
}

impl<DB: sqlx::Database> std::ops::DerefMut for PoolTx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }
}

impl<DB: sqlx::Database> Drop for PoolTx<DB> {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}

impl Tx {
    pub async fn commit(self) -> anyhow::Result<()> {
        match self {
            Tx::Pg(t) => t.end("COMMIT").await?,
            Tx::My(t) => t.end("COMMIT").await?,
            Tx::Lite(t) => t.end("COMMIT").await?,
        }
        Ok(())
    }

    /// Rolls back now and keeps the connection (dropping an open
    /// transaction closes its connection).
    pub async fn rollback(self) -> anyhow::Result<()> {
        match self {
            Tx::Pg(t) => t.end("ROLLBACK").await?,
            Tx::My(t) => t.end("ROLLBACK").await?,
            Tx::Lite(t) => t.end("ROLLBACK").await?,
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

/// The pools the process opened, kept only once [`track_pools`] asked for
/// it (the binary does; a library user or a test that drops a pool must not
/// have it kept open here).
static OPEN: std::sync::Mutex<Option<Vec<Pool>>> = std::sync::Mutex::new(None);

/// From now on, every pool [`Pool::connect`] opens is remembered until
/// [`close_all`] closes it.
pub fn track_pools() {
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    open.get_or_insert_with(Vec::new);
}

fn opened(pool: &Pool) {
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = open.as_mut() {
        // A daemon reconnects to a partner that went away: forget the pools
        // already closed rather than keep them for months.
        v.retain(|p| !p.is_closed());
        v.push(pool.clone());
    }
}

/// Closes every pool still open (see [`track_pools`]), waiting at most
/// `within` for them. Without it a process that exits drops its connections
/// mid-session: each server sees a reset and says so in its log
/// (PostgreSQL: "could not receive data from client: Connection reset by
/// peer"; MariaDB counts an aborted connection), once per connection, every
/// run.
pub async fn close_all(within: std::time::Duration) {
    let pools = {
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        open.as_mut().map(std::mem::take).unwrap_or_default()
    };
    let all = futures::future::join_all(pools.iter().map(Pool::close));
    if tokio::time::timeout(within, all).await.is_err() {
        tracing::warn!("connections still in use after {within:?}; exiting without closing them");
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
        let pool = r.map_err(|e| {
            anyhow::anyhow!(
                "cannot connect to {shown}: {}",
                scrub(&format!("{e:#}"), password.as_ref())
            )
        })?;
        opened(&pool);
        Ok(pool)
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
            Pool::Pg(p) => Tx::Pg(PoolTx::begin(p, "BEGIN").await?),
            Pool::My(p) => Tx::My(PoolTx::begin(p, "BEGIN").await?),
            // IMMEDIATE takes the write lock up front: a deferred transaction
            // that later writes can fail with SQLITE_BUSY_SNAPSHOT, which no
            // busy timeout resolves.
            Pool::Lite(p) => Tx::Lite(PoolTx::begin(p, "BEGIN IMMEDIATE").await?),
        })
    }

    pub fn is_closed(&self) -> bool {
        match self {
            Pool::Pg(p) => p.is_closed(),
            Pool::My(p) => p.is_closed(),
            Pool::Lite(p) => p.is_closed(),
        }
    }

    /// Ends every connection with the protocol's goodbye (PostgreSQL's
    /// Terminate, MySQL's COM_QUIT, SQLite's close and WAL checkpoint);
    /// waits for connections in use to come back first.
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
